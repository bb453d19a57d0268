//! What a simulation runs: the cluster's shape, the workload, the links,
//! and the fault menu, validated when built.

use std::time::Duration;

use crate::AgentId;
use crate::scheduler::{AttemptOutcome, DispatcherConfig, TaskSpec};

use super::super::config::{ConfigError, NodeConfig, SessionConfig};
use super::super::contract::{Assignment, Entry};
use super::world::TICK;
use crate::rng::SplitMix64;

/// A seeded source of the simulation's choices, lent to [`SimWork`].
#[derive(Debug)]
pub struct SimRng(pub(crate) SplitMix64);

impl SimRng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        rand::Rng::next_u64(&mut self.0)
    }

    /// `true` with probability `p` (clamped to 0..=1).
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    /// A duration drawn uniformly from `from..=to`.
    pub fn between(&mut self, from: Duration, to: Duration) -> Duration {
        let span = to.saturating_sub(from).as_nanos() as u64;
        from + Duration::from_nanos(self.next_u64() % span.saturating_add(1).max(1))
    }
}

/// The host's side of a simulation: the tasks its clients submit and how
/// its agents' attempts go. Implement it with a model of the real agent
/// code to see how the cluster treats it under faults.
pub trait SimWork<P> {
    /// The `n`-th task a client submits.
    fn task(&mut self, n: u64, rng: &mut SimRng) -> TaskSpec<P>;

    /// How `agent`'s attempt at `work` goes: how long it takes and how it
    /// ends.
    fn attempt(
        &mut self,
        agent: AgentId,
        work: &Assignment<P>,
        rng: &mut SimRng,
    ) -> (Duration, AttemptOutcome);
}

/// The default workload: payloads are task numbers; an attempt takes
/// `work` (uniform) and fails with probability `fail`, a fifth of those
/// for good.
#[derive(Clone, Debug)]
pub struct UniformWork {
    /// An attempt's duration: from, to.
    pub work: (Duration, Duration),
    /// The share of attempts that fail.
    pub fail: f64,
}

impl SimWork<u64> for UniformWork {
    fn task(&mut self, n: u64, _rng: &mut SimRng) -> TaskSpec<u64> {
        TaskSpec::new(n)
    }

    fn attempt(
        &mut self,
        _: AgentId,
        _: &Assignment<u64>,
        rng: &mut SimRng,
    ) -> (Duration, AttemptOutcome) {
        let took = rng.between(self.work.0, self.work.1);
        let outcome = if !rng.chance(self.fail) {
            AttemptOutcome::Success
        } else if rng.chance(0.2) {
            AttemptOutcome::fatal("simulated fatal failure")
        } else {
            AttemptOutcome::failure("simulated failure")
        };
        (took, outcome)
    }
}

/// The faults a simulation injects, each a rate per simulated second or a
/// probability per store operation. [`FaultMenu::none`] injects nothing;
/// [`Default`] a mix of every kind.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultMenu {
    /// Crash and restart of a node (leader or standby), per second.
    pub crash_node: f64,
    /// The leader frozen past its lease (1.5 leases), per second; it then
    /// wakes and goes on writing.
    pub pause_leader: f64,
    /// An agent restarted with the same id at once (inside its heartbeat
    /// window), per second.
    pub restart_agent: f64,
    /// An agent that dies and comes back after its heartbeat timeout, per
    /// second.
    pub kill_agent: f64,
    /// An agent that dies for good, per second (never more than a third
    /// of the agents): its attempts must fail over once its heartbeats
    /// stop.
    pub die_agent: f64,
    /// An agent that holds attempts cut off from the store while its work
    /// goes on, per second, until a little after the leader fails its
    /// attempts over (up to a heartbeat interval): the reports it sends
    /// once it is back race the attempts' next tries and must be fenced
    /// (a workflow step's output among them must go nowhere).
    pub partition_agent: f64,
    /// The store restarts: down for 0.1–1 s, the answers of operations in
    /// flight lost, per second.
    pub restart_store: f64,
    /// An operation that takes effect but whose answer is lost.
    pub lose_answer: f64,
    /// An operation the store refuses without effect, as a database
    /// refuses a transaction (a serialization failure, a timeout):
    /// [`StoreFailure::Failed`](crate::cluster::StoreFailure::Failed).
    pub refuse: f64,
    /// An operation lost on the way to the store (no effect, no answer).
    pub drop_request: f64,
    /// An operation that reaches the store only after its sender gave up
    /// waiting: it takes effect, and its sender learns nothing (a server
    /// still finishing the transaction of a broken connection).
    pub late_request: f64,
    /// An operation delivered twice (the second answer discarded).
    pub duplicate_request: f64,
    /// The chance that an agent restarted at once has its previous life's
    /// claim and report reach the store after the new life registered (a
    /// process that died with both on the wire): neither may touch the
    /// new life's attempts, and the report must be refused.
    pub old_life: f64,
    /// The most a node's clock is off the store's (each node draws its
    /// skew once); at most a quarter of the lease.
    pub clock_skew: Duration,
    /// The share of agents that work ten times slower.
    pub slow_agents: f64,
    /// The share of attempts that run 6 s: a cancel of one must reach its
    /// agent, which stops it, within 5 s while the store stays up.
    pub long_attempts: f64,
    /// The share of tasks a client cancels soon after submitting.
    pub cancel: f64,
    /// The client stops for 1–5 s, per second, and comes back as a new
    /// process that knows nothing of the submissions it had not heard
    /// back from (it cancels none of their tasks): the cluster must end
    /// their tasks all the same.
    pub client_stops: f64,
    /// A burst of submissions, half again the queue's capacity, per
    /// second: some of it must be refused, with a verdict, and none lost.
    pub burst: f64,
    /// An operator redrives every dead letter, per second: each runs
    /// again as a new task, which must end once like any other, on the
    /// leader and on every standby that takes over.
    pub redrive: f64,
}

impl FaultMenu {
    /// No fault at all.
    pub fn none() -> Self {
        FaultMenu {
            crash_node: 0.0,
            pause_leader: 0.0,
            restart_agent: 0.0,
            kill_agent: 0.0,
            die_agent: 0.0,
            partition_agent: 0.0,
            restart_store: 0.0,
            lose_answer: 0.0,
            refuse: 0.0,
            drop_request: 0.0,
            late_request: 0.0,
            duplicate_request: 0.0,
            old_life: 0.0,
            clock_skew: Duration::ZERO,
            slow_agents: 0.0,
            long_attempts: 0.0,
            cancel: 0.0,
            client_stops: 0.0,
            burst: 0.0,
            redrive: 0.0,
        }
    }
}

impl Default for FaultMenu {
    /// Every kind, at rates that give a few dozen faults per simulated
    /// minute.
    fn default() -> Self {
        FaultMenu {
            crash_node: 0.05,
            pause_leader: 0.03,
            restart_agent: 0.1,
            kill_agent: 0.03,
            die_agent: 0.005,
            partition_agent: 0.1,
            restart_store: 0.02,
            lose_answer: 0.002,
            refuse: 0.002,
            drop_request: 0.002,
            late_request: 0.001,
            duplicate_request: 0.002,
            old_life: 0.5,
            clock_skew: Duration::from_millis(100),
            slow_agents: 0.2,
            long_attempts: 0.002,
            client_stops: 0.02,
            cancel: 0.02,
            burst: 0.01,
            redrive: 0.05,
        }
    }
}

/// Re-encodes a journal entry as a store would keep it, answering it read
/// back and its size; the simulation applies it to every committed entry.
pub type EntryCodec<P> = fn(&Entry<P>) -> Result<(Entry<P>, usize), String>;

/// One simulation's settings. Build with [`SimConfig::builder`].
#[derive(Clone, Debug)]
pub struct SimConfig<P> {
    pub(crate) seed: u64,
    pub(crate) nodes: usize,
    pub(crate) agents: usize,
    pub(crate) capacity: u32,
    pub(crate) tasks_per_second: f64,
    pub(crate) faulty_for: Duration,
    pub(crate) liveness_bound: Duration,
    pub(crate) link_delay: (Duration, Duration),
    pub(crate) faults: FaultMenu,
    pub(crate) node: NodeConfig,
    pub(crate) session: SessionConfig,
    pub(crate) dispatcher: DispatcherConfig,
    pub(crate) codec: Option<EntryCodec<P>>,
    pub(crate) keep_trace: bool,
}

/// Builds a [`SimConfig`].
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until built"]
pub struct SimConfigBuilder<P> {
    config: SimConfig<P>,
    roles: Option<(NodeConfig, SessionConfig, DispatcherConfig)>,
}

impl<P> SimConfig<P> {
    /// Defaults: seed `seed`, three nodes, ten agents of eight slots, 200
    /// tasks per second, faults from [`FaultMenu::default`] for ten
    /// simulated minutes, then 60 s for every task to end; links of
    /// 0.2–2 ms; the nodes are woken by the store's notices of posts and
    /// appends (each lost like a request) and read at least every second
    /// when idle, the agents claim at
    /// once when the store notices them of work and every 250 ms
    /// otherwise, and heartbeat every 250 ms (8 missed: lost); the queue holds
    /// 2,000 tasks, and a burst submits half again as many.
    pub fn builder(seed: u64) -> SimConfigBuilder<P> {
        SimConfigBuilder {
            config: SimConfig {
                seed,
                nodes: 3,
                agents: 10,
                capacity: 8,
                tasks_per_second: 200.0,
                faulty_for: Duration::from_secs(600),
                liveness_bound: Duration::from_secs(60),
                link_delay: (Duration::from_micros(200), Duration::from_millis(2)),
                faults: FaultMenu::default(),
                node: NodeConfig::placeholder(),
                session: SessionConfig::placeholder(),
                dispatcher: DispatcherConfig::default(),
                codec: None,
                keep_trace: true,
            },
            roles: None,
        }
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }
}

/// The largest queue a simulation with bursts accepts: a burst submits
/// half again as many tasks at once.
const MAX_BURST_QUEUE: usize = 1_000_000;

/// The most tasks a simulation's clients may submit while the faults last
/// (its rate times the faults' duration, bursts included): each one costs
/// time, and the checks remember every task ever accepted.
pub const MAX_TASKS: u64 = 10_000_000;

/// The most store operations the roles' polling may take in a whole run
/// (the faults' duration and the liveness bound): each node and agent is
/// counted once per its shortest pause (its polling periods, the first
/// pause of its backoff), and at most once per round trip to the store
/// (twice the link's shortest delay). A simulated week at the default
/// settings (and a day's liveness bound) takes about a quarter of it.
pub const MAX_OPERATIONS: u64 = 1_000_000_000;

/// A burst's size: half again the queue's capacity, so that it cannot all
/// fit and some of it must be refused, not lost.
pub(crate) fn burst_size(capacity: usize) -> u64 {
    (capacity as u64).saturating_add(capacity as u64 / 2)
}

/// The roles' configurations a simulation uses unless told otherwise.
fn default_roles() -> Result<(NodeConfig, SessionConfig, DispatcherConfig), ConfigError> {
    let ms = Duration::from_millis;
    // A snapshot every 4,000 entries whatever the state: as many restores
    // from snapshots as before the scale existed, and the same traces.
    let node = NodeConfig::builder("node")
        .idle_poll(ms(20))
        .woken_by_notices(ms(1_000))
        .follow_every(ms(50))
        .snapshot_scale(0)
        .build()?;
    let session = SessionConfig::builder().claim_poll(ms(250)).build()?;
    let dispatcher = DispatcherConfig::builder()
        .heartbeats(ms(250), 8)
        .queue_capacity(2_000)
        .build()
        .map_err(|e| ConfigError(e.to_string()))?;
    Ok((node, session, dispatcher))
}

impl<P> SimConfigBuilder<P> {
    /// The seed of every choice.
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = seed;
        self
    }

    /// Nodes (1..=9) and agents (1..=256) with `capacity` slots each.
    pub fn cluster(mut self, nodes: usize, agents: usize, capacity: u32) -> Self {
        (self.config.nodes, self.config.agents, self.config.capacity) = (nodes, agents, capacity);
        self
    }

    /// The rate clients submit tasks at, while faults last.
    pub fn tasks_per_second(mut self, rate: f64) -> Self {
        self.config.tasks_per_second = rate;
        self
    }

    /// How long faults are injected, and the bound within which every
    /// task must end after the last one (liveness).
    pub fn duration(mut self, faulty_for: Duration, liveness_bound: Duration) -> Self {
        self.config.faulty_for = faulty_for;
        self.config.liveness_bound = liveness_bound;
        self
    }

    /// The faults.
    pub fn faults(mut self, faults: FaultMenu) -> Self {
        self.config.faults = faults;
        self
    }

    /// The one-way delay of a link to the store: from, to.
    pub fn link_delay(mut self, from: Duration, to: Duration) -> Self {
        self.config.link_delay = (from, to);
        self
    }

    /// The nodes', agents' and dispatcher's configurations (the nodes'
    /// names are replaced by `node-0`, `node-1`, …).
    pub fn roles(
        mut self,
        node: NodeConfig,
        session: SessionConfig,
        dispatcher: DispatcherConfig,
    ) -> Self {
        self.roles = Some((node, session, dispatcher));
        self
    }

    /// Re-encodes every committed entry as a real store would.
    pub fn codec(mut self, codec: EntryCodec<P>) -> Self {
        self.config.codec = Some(codec);
        self
    }

    /// Keep the trace's recent lines for a violation's context (default);
    /// off, a run only hashes them.
    pub fn keep_trace(mut self, keep: bool) -> Self {
        self.config.keep_trace = keep;
        self
    }

    /// Checks and returns the configuration.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for a shape out of range, a rate or probability
    /// that is negative, not finite or above 1 where it is one, a clock
    /// skew over a quarter of the lease, a dispatcher without heartbeats
    /// or with a heartbeat timeout over an hour, a link delay range
    /// upside down, or more work than a run may take: over [`MAX_TASKS`]
    /// tasks or [`MAX_OPERATIONS`] polling operations; each error names
    /// the bound.
    pub fn build(self) -> Result<SimConfig<P>, ConfigError> {
        let mut c = self.config;
        (c.node, c.session, c.dispatcher) = match self.roles {
            Some(roles) => roles,
            None => default_roles()?,
        };
        let fail = |why: String| Err(ConfigError(why));
        if !(1..=9).contains(&c.nodes) || !(1..=256).contains(&c.agents) || c.capacity == 0 {
            return fail(format!(
                "a simulated cluster has 1..=9 nodes and 1..=256 agents of 1 or more slots, not {} / {} / {}",
                c.nodes, c.agents, c.capacity
            ));
        }
        let f = &c.faults;
        let rates = [
            f.crash_node,
            f.pause_leader,
            f.restart_agent,
            f.kill_agent,
            f.die_agent,
            f.partition_agent,
            f.restart_store,
            f.client_stops,
            f.burst,
            f.redrive,
            c.tasks_per_second,
        ];
        let chances = [
            f.lose_answer,
            f.refuse,
            f.drop_request,
            f.late_request,
            f.duplicate_request,
            f.old_life,
            f.slow_agents,
            f.long_attempts,
            f.cancel,
        ];
        if rates.iter().any(|r| !r.is_finite() || *r < 0.0 || *r > 1e6)
            || chances.iter().any(|p| !(0.0..=1.0).contains(p))
        {
            return fail("fault rates must be finite, 0 to 1e6 a second; chances 0 to 1".into());
        }
        if f.clock_skew > c.node.lease_ttl() / 4 {
            return fail(format!(
                "a clock skew of {:?} is beyond the lease margin (a quarter of {:?})",
                f.clock_skew,
                c.node.lease_ttl()
            ));
        }
        match c.dispatcher.heartbeats() {
            None => return fail("the dispatcher needs heartbeats".into()),
            Some(h) if h.timeout() > Duration::from_secs(3_600) => {
                return fail(format!(
                    "the dispatcher's heartbeat timeout ({:?} × {}) must be at most an hour in a simulation",
                    h.interval, h.tolerance
                ));
            }
            Some(_) => {}
        }
        if f.burst > 0.0 && c.dispatcher.queue_capacity() > MAX_BURST_QUEUE {
            return fail(format!(
                "a burst submits half again the queue's capacity: with bursts on, the queue holds at most {MAX_BURST_QUEUE} tasks, not {}",
                c.dispatcher.queue_capacity()
            ));
        }
        if c.link_delay.0 > c.link_delay.1 || c.link_delay.1 > Duration::from_secs(10) {
            return fail(format!(
                "the link delay {:?} must be from ≤ to ≤ 10 s",
                c.link_delay
            ));
        }
        if c.faulty_for > Duration::from_secs(86_400 * 7)
            || c.liveness_bound > Duration::from_secs(86_400)
        {
            return fail("a simulation lasts at most a week, its liveness bound a day".into());
        }
        check_work(&c)?;
        Ok(c)
    }
}

/// The work a run plans is within [`MAX_TASKS`] and [`MAX_OPERATIONS`].
fn check_work<P>(c: &SimConfig<P>) -> Result<(), ConfigError> {
    let faulty = c.faulty_for.as_secs_f64();
    // A burst comes at most once a tick.
    let bursts = c.faults.burst.min(1.0 / TICK.as_secs_f64()) * faulty;
    let burst = burst_size(c.dispatcher.queue_capacity()) as f64;
    let tasks = c.tasks_per_second * faulty + bursts * burst;
    if tasks > MAX_TASKS as f64 {
        return Err(ConfigError(format!(
            "the clients would submit {tasks:.0} tasks ({} a second and {bursts:.0} bursts of \
             {burst} over {:?}), over the simulator's bound of {MAX_TASKS} (MAX_TASKS): lower \
             the rate, the bursts or the duration",
            c.tasks_per_second, c.faulty_for
        )));
    }
    let round_trip = c.link_delay.0.saturating_mul(2);
    let per_second = |shortest: Duration| {
        let pause = shortest.max(round_trip).max(Duration::from_nanos(1));
        1.0 / pause.as_secs_f64()
    };
    let whole = c.faulty_for.saturating_add(c.liveness_bound).as_secs_f64();
    let operations = whole
        * (c.nodes as f64 * per_second(c.node.shortest_pause())
            + c.agents as f64 * per_second(c.session.shortest_pause()));
    if operations > MAX_OPERATIONS as f64 {
        return Err(ConfigError(format!(
            "the roles would poll the store about {operations:.0} times over {whole:.0} simulated \
             seconds ({} nodes every {:?}, {} agents every {:?}, a round trip of at least \
             {round_trip:?}), over the simulator's bound of {MAX_OPERATIONS} (MAX_OPERATIONS): \
             lengthen the polling periods or the link delay, or shorten the run",
            c.nodes,
            c.node.shortest_pause(),
            c.agents,
            c.session.shortest_pause()
        )));
    }
    Ok(())
}
