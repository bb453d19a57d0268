//! How the roles pace themselves: lease, polling, batching, snapshots and
//! the backoff after a store failure, validated when built.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::scheduler::ScalePolicy;

/// A [`NodeConfig`] or [`SessionConfig`] that cannot work.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid cluster configuration: {0}")]
pub struct ConfigError(pub String);

/// How a node leads and follows. Build one with [`NodeConfig::builder`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeConfig {
    pub(crate) name: String,
    pub(crate) lease_ttl: Duration,
    pub(crate) renew_every: Duration,
    pub(crate) follow_every: Duration,
    pub(crate) idle_poll: Duration,
    /// With notices ([`NodeConfigBuilder::woken_by_notices`]): the
    /// longest an idle leader or a follower goes without reading.
    pub(crate) notices: Option<Duration>,
    pub(crate) batch: usize,
    pub(crate) journal_page: usize,
    pub(crate) snapshot_every: u64,
    pub(crate) snapshot_scale: u64,
    pub(crate) trim: bool,
    pub(crate) status_every: Duration,
    pub(crate) backoff: Backoff,
    pub(crate) max_output_bytes: usize,
    /// The pools whose scale hints a leader's status carries.
    pub(crate) pools: Vec<(String, BTreeSet<String>, ScalePolicy)>,
}

impl NodeConfig {
    /// Most inbox messages one commit may consume.
    pub const MAX_BATCH: usize = 100_000;

    /// Most pools a status carries scale hints for.
    pub const MAX_POOLS: usize = 64;

    /// The largest [`snapshot_scale`](NodeConfigBuilder::snapshot_scale):
    /// more would leave a large state's journal untrimmed for long.
    pub const MAX_SNAPSHOT_SCALE: u64 = 100;

    /// The largest output limit a node takes (16 MiB): a store keeps an
    /// output in one row, and one so large belongs elsewhere (return a
    /// reference to it).
    pub const MAX_OUTPUT_LIMIT: usize = 16 << 20;

    /// A builder for the node called `name` (its lease holder name and log
    /// prefix), with defaults that suit PostgreSQL on a LAN: a 1 s lease
    /// renewed every 250 ms, followers polling every 20 ms, an idle leader
    /// polling its inbox every 2 ms (or woken by the store's notices:
    /// [`woken_by_notices`](NodeConfigBuilder::woken_by_notices)),
    /// batches of 1,000 messages, a snapshot
    /// every 4,000 entries, or 2 per live task and active run when they
    /// are more, with the journal trimmed behind it, status every
    /// 250 ms, a backoff from 50 ms to 2 s, and outputs of up to 1 MiB.
    pub fn builder(name: impl Into<String>) -> NodeConfigBuilder {
        NodeConfigBuilder(NodeConfig {
            name: name.into(),
            lease_ttl: Duration::from_secs(1),
            renew_every: Duration::from_millis(250),
            follow_every: Duration::from_millis(20),
            idle_poll: Duration::from_millis(2),
            notices: None,
            batch: 1_000,
            journal_page: 2_000,
            snapshot_every: 4_000,
            snapshot_scale: 2,
            trim: true,
            status_every: Duration::from_millis(250),
            backoff: Backoff::new(Duration::from_millis(50), Duration::from_secs(2)),
            max_output_bytes: 1 << 20,
            pools: Vec::new(),
        })
    }

    /// Entries from one snapshot to the next with `items` in the state
    /// (live tasks and active runs): `every`, or `snapshot_scale` per
    /// item when that is more.
    pub(crate) fn snapshot_interval(&self, items: u64) -> u64 {
        let scaled = items.saturating_mul(self.snapshot_scale);
        self.snapshot_every.max(scaled)
    }

    /// The defaults, unchecked: replaced before use.
    pub(crate) fn placeholder() -> Self {
        NodeConfig::builder("node").0
    }

    /// This configuration under another name.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when the name is empty or over 200 bytes.
    pub fn renamed(&self, name: impl Into<String>) -> Result<Self, ConfigError> {
        NodeConfigBuilder(NodeConfig {
            name: name.into(),
            ..self.clone()
        })
        .build()
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The lease's time to live.
    pub fn lease_ttl(&self) -> Duration {
        self.lease_ttl
    }

    /// The largest output a task may complete with, in the store's
    /// encoding ([`InboxMessage::bytes`](super::InboxMessage::bytes)). A
    /// larger one fails its task for good, with a reason naming the
    /// limit: keep a large result elsewhere and return a reference to it.
    pub fn max_output_bytes(&self) -> usize {
        self.max_output_bytes
    }

    /// The shortest pause between two operations of an idle node: its
    /// polling periods and the backoff's first pause.
    pub(crate) fn shortest_pause(&self) -> Duration {
        [
            self.idle_poll,
            self.follow_every,
            self.renew_every,
            self.status_every,
            self.backoff.min,
        ]
        .into_iter()
        .fold(Duration::MAX, Duration::min)
    }
}

/// Builds a [`NodeConfig`]; [`build`](Self::build) checks it.
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until built"]
pub struct NodeConfigBuilder(NodeConfig);

impl NodeConfigBuilder {
    /// How long a lease lasts unless renewed, and how often the leader
    /// renews it when it has nothing to commit (every write renews it too).
    pub fn lease(mut self, ttl: Duration, renew_every: Duration) -> Self {
        self.0.lease_ttl = ttl;
        self.0.renew_every = renew_every;
        self
    }

    /// How often a follower reads the journal and the lease.
    pub fn follow_every(mut self, every: Duration) -> Self {
        self.0.follow_every = every;
        self
    }

    /// How often an idle leader reads its inbox (without notices).
    pub fn idle_poll(mut self, every: Duration) -> Self {
        self.0.idle_poll = every;
        self
    }

    /// The host wakes the node with [`Node::notice`](super::Node::notice)
    /// whenever the store tells it of an inbox post or a journal commit
    /// (PostgreSQL's `LISTEN`/`NOTIFY`), so that an idle node need not
    /// poll. An idle leader then reads its inbox on a notice, when a
    /// timer of its state is due, and at least every `every` (the net
    /// for a lost notice), instead of every idle poll. A follower reads
    /// the journal on a notice (at most once per follow period) and at
    /// least every `every`, and the lease every renewal period (not every
    /// follow period): a takeover comes up to a renewal period later than
    /// the lease's expiry.
    pub fn woken_by_notices(mut self, every: Duration) -> Self {
        self.0.notices = Some(every);
        self
    }

    /// Most inbox messages in one commit (group commit).
    pub fn batch(mut self, messages: usize) -> Self {
        self.0.batch = messages;
        self
    }

    /// Most journal entries one read answers.
    pub fn journal_page(mut self, entries: usize) -> Self {
        self.0.journal_page = entries;
        self
    }

    /// Journal entries between snapshots, and whether to delete the
    /// journal behind the previous snapshot when a new one is stored.
    /// With a large state, the leader waits longer: see
    /// [`snapshot_scale`](Self::snapshot_scale).
    pub fn snapshots(mut self, every: u64, trim: bool) -> Self {
        self.0.snapshot_every = every;
        self.0.trim = trim;
        self
    }

    /// Entries between snapshots per item of the state (a live task or an
    /// active run), when that is more than the `every` of
    /// [`snapshots`](Self::snapshots): a snapshot writes the whole state,
    /// so the leader writes a large one no more often than it writes a
    /// journal of about its size, and a commit waits on fewer of them.
    /// The replay after a failover grows with the state in the same
    /// proportion. Default 2; 0 takes a snapshot every `every` entries
    /// whatever the state; at most [`MAX_SNAPSHOT_SCALE`](NodeConfig::MAX_SNAPSHOT_SCALE).
    pub fn snapshot_scale(mut self, entries_per_item: u64) -> Self {
        self.0.snapshot_scale = entries_per_item;
        self
    }

    /// How often the leader publishes its [`Status`](super::Status) while
    /// anything changes; while it only takes heartbeats, every four
    /// periods (its status then rides on the commit of the heartbeats).
    pub fn status_every(mut self, every: Duration) -> Self {
        self.0.status_every = every;
        self
    }

    /// A pool whose [scale hint](crate::scheduler::Dispatcher::scale_hint)
    /// the leader's status carries: the agents with every one of
    /// `capabilities` and the work they could take. The leader counts its
    /// rates from when it took the lead.
    pub fn scale_pool<I: Into<String>>(
        mut self,
        name: impl Into<String>,
        capabilities: impl IntoIterator<Item = I>,
        policy: ScalePolicy,
    ) -> Self {
        let capabilities = capabilities.into_iter().map(Into::into).collect();
        self.0.pools.push((name.into(), capabilities, policy));
        self
    }

    /// The largest output a task may complete with, in bytes of the
    /// store's encoding: 1 to [`NodeConfig::MAX_OUTPUT_LIMIT`].
    pub fn max_output_bytes(mut self, bytes: usize) -> Self {
        self.0.max_output_bytes = bytes;
        self
    }

    /// The pause after a store failure: `min`, doubling up to `max`.
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.0.backoff = Backoff::new(min, max);
        self
    }

    /// Checks and returns the configuration.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when the name is empty or longer than 200 bytes,
    /// the lease is zero or not renewed at least twice per lifetime, a
    /// period is zero or longer than an hour, the batch is 0 or over
    /// [`NodeConfig::MAX_BATCH`], the journal page is 0 or over 100,000,
    /// snapshots are never taken (0 entries), the output limit is 0 or over
    /// [`NodeConfig::MAX_OUTPUT_LIMIT`], or the scale pools are more
    /// than [`NodeConfig::MAX_POOLS`], one is named twice or has an empty
    /// name or one over 200 bytes.
    pub fn build(self) -> Result<NodeConfig, ConfigError> {
        let c = self.0;
        let hour = Duration::from_secs(3_600);
        let fail = |why: String| Err(ConfigError(why));
        if c.name.is_empty() || c.name.len() > 200 {
            return fail(format!(
                "a node's name must have 1 to 200 bytes, not {}",
                c.name.len()
            ));
        }
        for (what, d) in [
            ("the lease", c.lease_ttl),
            ("the renewal period", c.renew_every),
            ("the follow period", c.follow_every),
            ("the idle poll", c.idle_poll),
            ("the status period", c.status_every),
            ("the poll between notices", c.notices.unwrap_or(c.idle_poll)),
        ] {
            if d.is_zero() || d > hour {
                return fail(format!(
                    "{what} must be within 0..=1h and not zero, not {d:?}"
                ));
            }
        }
        if c.renew_every.saturating_mul(2) > c.lease_ttl {
            return fail(format!(
                "the lease ({:?}) must be renewed at least twice in its lifetime, not every {:?}",
                c.lease_ttl, c.renew_every
            ));
        }
        if c.batch == 0 || c.batch > NodeConfig::MAX_BATCH {
            return fail(format!(
                "the batch must be 1..={}, not {}",
                NodeConfig::MAX_BATCH,
                c.batch
            ));
        }
        if c.journal_page == 0 || c.journal_page > 100_000 {
            return fail(format!(
                "the journal page must be 1..=100000, not {}",
                c.journal_page
            ));
        }
        if c.snapshot_every == 0 {
            return fail("snapshots must be taken every 1 or more entries".into());
        }
        if c.snapshot_scale > NodeConfig::MAX_SNAPSHOT_SCALE {
            return fail(format!(
                "the snapshot scale must be 0..={} entries per item of state, not {}",
                NodeConfig::MAX_SNAPSHOT_SCALE,
                c.snapshot_scale
            ));
        }
        if c.max_output_bytes == 0 || c.max_output_bytes > NodeConfig::MAX_OUTPUT_LIMIT {
            return fail(format!(
                "the output limit must be 1..={} bytes, not {}",
                NodeConfig::MAX_OUTPUT_LIMIT,
                c.max_output_bytes
            ));
        }
        c.backoff.check()?;
        check_pools(&c.pools)?;
        Ok(c)
    }
}

/// The scale pools' count and names are sound.
fn check_pools(pools: &[(String, BTreeSet<String>, ScalePolicy)]) -> Result<(), ConfigError> {
    if pools.len() > NodeConfig::MAX_POOLS {
        return Err(ConfigError(format!(
            "a status carries at most {} scale pools, not {}",
            NodeConfig::MAX_POOLS,
            pools.len()
        )));
    }
    let mut names = BTreeSet::new();
    for (name, ..) in pools {
        if name.is_empty() || name.len() > 200 {
            return Err(ConfigError(format!(
                "a scale pool's name must have 1 to 200 bytes, not {}",
                name.len()
            )));
        }
        if !names.insert(name) {
            return Err(ConfigError(format!(
                "the scale pool `{name}` is named twice; give each pool its own name"
            )));
        }
    }
    Ok(())
}

/// How an agent session paces itself. Build one with
/// [`SessionConfig::builder`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    pub(crate) heartbeat_every: Duration,
    pub(crate) claim_poll: Duration,
    pub(crate) refusals_every: Duration,
    pub(crate) backoff: Backoff,
}

impl SessionConfig {
    /// The defaults, unchecked: replaced before use.
    pub(crate) fn placeholder() -> Self {
        SessionConfig::builder().0
    }

    /// The shortest pause between two operations of an idle session: its
    /// periods and the backoff's first pause.
    pub(crate) fn shortest_pause(&self) -> Duration {
        [
            self.heartbeat_every,
            self.claim_poll,
            self.refusals_every,
            self.backoff.min,
        ]
        .into_iter()
        .fold(Duration::MAX, Duration::min)
    }

    /// Defaults: a heartbeat every 250 ms, an idle claim every 5 ms, the
    /// refusals read every 500 ms, a backoff from 50 ms to 2 s.
    pub fn builder() -> SessionConfigBuilder {
        SessionConfigBuilder(SessionConfig {
            heartbeat_every: Duration::from_millis(250),
            claim_poll: Duration::from_millis(5),
            refusals_every: Duration::from_millis(500),
            backoff: Backoff::new(Duration::from_millis(50), Duration::from_secs(2)),
        })
    }
}

/// Builds a [`SessionConfig`]; [`build`](Self::build) checks it.
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until built"]
pub struct SessionConfigBuilder(SessionConfig);

impl SessionConfigBuilder {
    /// Time between heartbeats; it must match the dispatcher's
    /// [`Heartbeats`](crate::scheduler::Heartbeats) interval.
    pub fn heartbeat_every(mut self, every: Duration) -> Self {
        self.0.heartbeat_every = every;
        self
    }

    /// How often an agent with free slots and nothing claimed asks again.
    pub fn claim_poll(mut self, every: Duration) -> Self {
        self.0.claim_poll = every;
        self
    }

    /// How often it reads the verdicts that refused its messages while it
    /// posts registrations or reports: within this period of each post.
    /// An agent that posted nothing but heartbeats since its last read
    /// (an idle one) reads them ten times less often; a heartbeat is
    /// refused only when the agent was replaced or lost.
    pub fn refusals_every(mut self, every: Duration) -> Self {
        self.0.refusals_every = every;
        self
    }

    /// The pause after a store failure: `min`, doubling up to `max`.
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.0.backoff = Backoff::new(min, max);
        self
    }

    /// Checks and returns the configuration.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when a period is zero or longer than an hour.
    pub fn build(self) -> Result<SessionConfig, ConfigError> {
        let c = self.0;
        for (what, d) in [
            ("the heartbeat period", c.heartbeat_every),
            ("the claim poll", c.claim_poll),
            ("the refusals period", c.refusals_every),
        ] {
            if d.is_zero() || d > Duration::from_secs(3_600) {
                return Err(ConfigError(format!(
                    "{what} must be within 0..=1h and not zero, not {d:?}"
                )));
            }
        }
        c.backoff.check()?;
        Ok(c)
    }
}

/// Exponential backoff after consecutive store failures: `min`, `2·min`,
/// … up to `max`; a success resets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max,
            failures: 0,
        }
    }

    fn check(&self) -> Result<(), ConfigError> {
        if self.min.is_zero() || self.min > self.max || self.max > Duration::from_secs(3_600) {
            return Err(ConfigError(format!(
                "the backoff must satisfy 0 < min ≤ max ≤ 1h, not {:?}..{:?}",
                self.min, self.max
            )));
        }
        Ok(())
    }

    /// The pause before the next try, and counts the failure.
    pub(crate) fn next(&mut self) -> Duration {
        let pause = self
            .min
            .saturating_mul(1 << self.failures.min(20))
            .min(self.max);
        self.failures = self.failures.saturating_add(1);
        pause
    }

    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }

    /// The longest pause.
    pub(crate) fn ceiling(&self) -> Duration {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_ceiling_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(50), Duration::from_millis(300));
        let pauses: Vec<u128> = (0..5).map(|_| b.next().as_millis()).collect();
        assert_eq!(pauses, [50, 100, 200, 300, 300]);
        b.reset();
        assert_eq!(b.next(), Duration::from_millis(50));
        for _ in 0..100 {
            assert!(b.next() <= Duration::from_millis(300));
        }
    }

    #[test]
    fn a_large_state_is_snapshotted_after_more_entries() {
        let config = |scale| {
            NodeConfig::builder("n")
                .snapshots(100, true)
                .snapshot_scale(scale)
                .build()
                .unwrap()
        };
        assert_eq!(config(2).snapshot_interval(10), 100);
        assert_eq!(config(2).snapshot_interval(6_000), 12_000);
        assert_eq!(config(0).snapshot_interval(6_000), 100);
        assert_eq!(config(100).snapshot_interval(u64::MAX), u64::MAX);
        assert_eq!(NodeConfig::builder("n").build().unwrap().snapshot_scale, 2);
    }

    #[test]
    fn unworkable_configurations_are_refused_with_the_reason() {
        let ms = Duration::from_millis;
        let lease = NodeConfig::builder("n").lease(ms(100), ms(80)).build();
        assert!(lease.unwrap_err().0.contains("renewed at least twice"));
        assert!(NodeConfig::builder("").build().is_err());
        assert!(NodeConfig::builder("n").batch(0).build().is_err());
        assert!(NodeConfig::builder("n").snapshots(0, true).build().is_err());
        let scale = NodeConfig::builder("n").snapshot_scale(101).build();
        assert!(scale.unwrap_err().0.contains("snapshot scale"));
        assert!(
            NodeConfig::builder("n")
                .backoff(ms(0), ms(1))
                .build()
                .is_err()
        );
        assert!(
            NodeConfig::builder("n")
                .idle_poll(Duration::ZERO)
                .build()
                .is_err()
        );
        assert!(
            SessionConfig::builder()
                .heartbeat_every(Duration::ZERO)
                .build()
                .is_err()
        );
        assert!(NodeConfig::builder("n").build().is_ok());
        assert!(SessionConfig::builder().build().is_ok());
    }
}
