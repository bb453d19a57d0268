//! Concurrency keys: limits on the tasks in flight that hold a key (a
//! provider, a customer), across all kinds and agents, with an optional
//! cost-weighted rate.
//!
//! [`ConcurrencyLimit`] is the configuration; `KeyGates` the state: for each
//! configured key, the tasks holding it in flight (in start order), the
//! tasks waiting for it, and its rate limiter. A waiting task is woken when
//! a holder ends or the key's rate conforms again; tasks of other keys go
//! past it.

use std::collections::{BTreeMap, BTreeSet};

use super::holders::Holders;
use crate::resilience::{Quota, RateLimiter};
use crate::scheduler::queue::{Entry, Queue};
use crate::scheduler::{KeyName, MAX_CONCURRENCY_KEYS};
use crate::{AttemptToken, Instant, Priority, TaskId};

/// What happens when a task comes up for dispatch and one of its
/// concurrency keys is at its limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum WhenFull {
    /// The task waits until a task holding the key ends (default).
    #[default]
    Queue,
    /// The task holding the key that started first is cancelled
    /// ([`CancelReason::Superseded`](crate::scheduler::CancelReason::Superseded)) and
    /// the new one takes its place.
    CancelOldest,
    /// The task holding the key that started last is cancelled and the new
    /// one takes its place.
    CancelNewest,
}

/// The limit of one concurrency key
/// ([`DispatcherConfigBuilder::concurrency_limit`](crate::scheduler::DispatcherConfigBuilder::concurrency_limit)).
///
/// ```
/// use std::time::Duration;
/// use taskweave::resilience::Quota;
/// use taskweave::scheduler::{ConcurrencyLimit, DispatcherConfig, WhenFull};
///
/// // At most 4 OpenAI calls in flight, 90,000 tokens a minute (bursts of
/// // 10,000); tasks declare their tokens with `TaskSpec::cost`.
/// let tokens = Quota::new(90_000, Duration::from_secs(60))?.with_burst(10_000)?;
/// let config = DispatcherConfig::builder()
///     .concurrency_limit("openai", ConcurrencyLimit::new(4).rate(tokens))
///     .concurrency_limit("nightly-report", ConcurrencyLimit::new(1).when_full(WhenFull::CancelOldest))
///     .build()?;
/// # let _ = config;
/// # Ok::<(), taskweave::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ConcurrencyLimit {
    max_in_flight: u32,
    when_full: WhenFull,
    rate: Option<Quota>,
}

impl ConcurrencyLimit {
    /// At most `max_in_flight` tasks holding the key run at once (at least
    /// 1, checked when the configuration is built); a full key queues.
    pub fn new(max_in_flight: u32) -> Self {
        ConcurrencyLimit {
            max_in_flight,
            when_full: WhenFull::Queue,
            rate: None,
        }
    }

    /// What a full key does with one more task.
    pub fn when_full(mut self, policy: WhenFull) -> Self {
        self.when_full = policy;
        self
    }

    /// Also limits the rate at which tasks holding the key start, in cost
    /// units ([`TaskSpec::cost`](crate::scheduler::TaskSpec::cost)) per period.
    pub fn rate(mut self, quota: Quota) -> Self {
        self.rate = Some(quota);
        self
    }

    /// The most tasks in flight.
    pub fn max_in_flight(&self) -> u32 {
        self.max_in_flight
    }

    /// The policy when full.
    pub fn policy(&self) -> WhenFull {
        self.when_full
    }

    /// The rate, if limited.
    pub fn quota(&self) -> Option<Quota> {
        self.rate
    }
}

/// The configured concurrency keys of one task, as key indices, sorted and
/// distinct: a small copyable set (a task carries at most
/// [`MAX_CONCURRENCY_KEYS`] keys), so the hot path never allocates for it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(into = "Vec<u32>", try_from = "Vec<u32>")
)]
pub(crate) struct KeySet {
    keys: [u32; MAX_CONCURRENCY_KEYS],
    len: u8,
}

impl KeySet {
    pub(crate) const EMPTY: KeySet = KeySet {
        keys: [0; MAX_CONCURRENCY_KEYS],
        len: 0,
    };

    /// The keys, ascending.
    pub(crate) fn as_slice(&self) -> &[u32] {
        &self.keys[..usize::from(self.len).min(MAX_CONCURRENCY_KEYS)]
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds `key`, keeping the set sorted and distinct; a full set keeps
    /// its [`MAX_CONCURRENCY_KEYS`] smallest keys.
    fn insert(&mut self, key: u32) {
        let len = usize::from(self.len).min(MAX_CONCURRENCY_KEYS);
        let at = self.keys[..len].partition_point(|&k| k < key);
        if at == MAX_CONCURRENCY_KEYS || (at < len && self.keys[at] == key) {
            return;
        }
        let end = (len + 1).min(MAX_CONCURRENCY_KEYS);
        self.keys.copy_within(at..end - 1, at + 1);
        self.keys[at] = key;
        self.len = end as u8;
    }
}

impl TryFrom<Vec<u32>> for KeySet {
    type Error = String;

    fn try_from(keys: Vec<u32>) -> Result<Self, Self::Error> {
        let sorted = keys.iter().zip(keys.iter().skip(1)).all(|(a, b)| a < b);
        if keys.len() > MAX_CONCURRENCY_KEYS || !sorted {
            return Err(format!(
                "{keys:?} is not a set of at most {MAX_CONCURRENCY_KEYS} keys"
            ));
        }
        let mut set = KeySet::EMPTY;
        set.keys[..keys.len()].copy_from_slice(&keys);
        set.len = keys.len() as u8;
        Ok(set)
    }
}

impl From<KeySet> for Vec<u32> {
    fn from(set: KeySet) -> Self {
        set.as_slice().to_vec()
    }
}

/// The state of one configured key.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(crate) struct KeyGate {
    /// Tasks holding the key in flight, by attempt token: oldest start
    /// first, `O(1)` to add and to remove the oldest, `O(log n)`
    /// amortized to remove another.
    running: Holders,
    /// Tasks waiting for the key (entries of tasks no longer queued are
    /// dead, dropped as they are reached).
    waiting: Queue,
    rate: Option<RateLimiter>,
    /// While the rate refuses, the instant it conforms again (its
    /// [`Timer::KeyRate`](crate::scheduler::state::Timer) is armed): waiters are not
    /// woken before, so none is woken only to be refused.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    rate_blocked_until: Option<Instant>,
}

/// The state of every configured key, in key order.
#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(crate) struct KeyGates {
    gates: Vec<KeyGate>,
    /// The configured keys' names, sorted: a key's index is its position.
    /// Derived from the configuration.
    #[cfg_attr(feature = "serde", serde(skip))]
    names: Vec<String>,
    #[cfg_attr(feature = "serde", serde(skip))]
    limits: Vec<ConcurrencyLimit>,
}

impl KeyGates {
    /// No task holds or waits for a key.
    pub(crate) fn new(
        limits: &BTreeMap<String, ConcurrencyLimit>,
        aging: Option<std::time::Duration>,
    ) -> Self {
        let mut gates = KeyGates {
            gates: limits
                .values()
                .map(|limit| KeyGate {
                    running: Holders::default(),
                    waiting: Queue::new(aging),
                    rate: limit.rate.map(RateLimiter::new),
                    rate_blocked_until: None,
                })
                .collect(),
            ..KeyGates::default()
        };
        gates.derive(limits);
        gates
    }

    fn derive(&mut self, limits: &BTreeMap<String, ConcurrencyLimit>) {
        self.names = limits.keys().cloned().collect();
        self.limits = limits.values().copied().collect();
    }

    /// Whether any key is configured.
    #[inline]
    pub(crate) fn is_on(&self) -> bool {
        !self.gates.is_empty()
    }

    /// The configured keys among `keys` (at most
    /// [`MAX_CONCURRENCY_KEYS`], checked at submission; of more, the
    /// smallest indices), as indices. No allocation and no hashing: a
    /// binary search of the sorted names per key.
    pub(crate) fn limited(&self, keys: &[KeyName]) -> KeySet {
        let mut limited = KeySet::EMPTY;
        for key in keys {
            if let Ok(at) = self
                .names
                .binary_search_by(|name| name.as_bytes().cmp(key.as_bytes()))
            {
                limited.insert(at as u32);
            }
        }
        limited
    }

    /// The configured limit of key `key`.
    pub(crate) fn limit(&self, key: u32) -> Option<&ConcurrencyLimit> {
        self.limits.get(key as usize)
    }

    /// Whether key `key` is at its limit.
    pub(crate) fn is_full(&self, key: u32) -> bool {
        match (self.gates.get(key as usize), self.limit(key)) {
            (Some(gate), Some(limit)) => gate.running.len() >= limit.max_in_flight as usize,
            _ => false,
        }
    }

    /// The task a full key's policy cancels, if it cancels one.
    pub(crate) fn victim(&self, key: u32) -> Option<TaskId> {
        let running = &self.gates.get(key as usize)?.running;
        match self.limit(key)?.when_full {
            WhenFull::Queue => None,
            WhenFull::CancelOldest => running.first().map(|&(_, task)| task),
            WhenFull::CancelNewest => running.last().map(|&(_, task)| task),
        }
    }

    /// Takes `cost` cells of every key's rate in `keys`, or none and says
    /// which key conforms when.
    pub(crate) fn take_rates(
        &mut self,
        keys: &[u32],
        cost: u32,
        now: Instant,
    ) -> Result<(), (u32, Instant)> {
        for &key in keys {
            let Some(mut probe) = self.gates.get(key as usize).and_then(|g| g.rate.clone()) else {
                continue;
            };
            // A cost above the burst was refused at submission.
            if let Ok(Err(wait)) = probe.check_n(now, cost) {
                let until = wait.earliest();
                if let Some(gate) = self.gates.get_mut(key as usize) {
                    gate.rate_blocked_until = Some(until);
                }
                return Err((key, until));
            }
        }
        for &key in keys {
            if let Some(limiter) = self
                .gates
                .get_mut(key as usize)
                .and_then(|g| g.rate.as_mut())
            {
                let _ = limiter.check_n(now, cost);
            }
        }
        Ok(())
    }

    /// `task`'s attempt `token` starts holding `keys`.
    pub(crate) fn started(&mut self, keys: &[u32], task: TaskId, token: AttemptToken) {
        for &key in keys {
            if let Some(gate) = self.gates.get_mut(key as usize) {
                gate.running.insert((token, task));
            }
        }
    }

    /// `task`'s attempt `token` stopped holding key `key`; returns whether
    /// it held it.
    pub(crate) fn ended(&mut self, key: u32, task: TaskId, token: AttemptToken) -> bool {
        self.gates
            .get_mut(key as usize)
            .is_some_and(|gate| gate.running.remove(&(token, task)))
    }

    /// Sets `entry` aside until key `key` has room.
    pub(crate) fn wait(&mut self, key: u32, entry: Entry) {
        if let Some(gate) = self.gates.get_mut(key as usize) {
            gate.waiting.push(Entry {
                woken: false,
                ..entry
            });
        }
    }

    /// Whether nothing waits for key `key` and its rate refuses nothing:
    /// [`wake`](Self::wake) would find nothing to do.
    pub(crate) fn is_idle(&self, key: u32) -> bool {
        self.gates
            .get(key as usize)
            .is_none_or(|g| g.waiting.is_empty() && g.rate_blocked_until.is_none())
    }

    /// Whether tasks (live or dead) wait for key `key`.
    pub(crate) fn has_waiters(&self, key: u32) -> bool {
        self.gates
            .get(key as usize)
            .is_some_and(|g| !g.waiting.is_empty())
    }

    /// The best live entry waiting for key `key`, taken out, if the key's
    /// rate would let its cost (`cost_of`) through now; otherwise the key
    /// is rate-blocked and the instant it conforms comes back, for a timer.
    /// Nothing is taken that the rate would refuse, so the order of the
    /// waiters (fair shares included) is the order they are served in.
    pub(crate) fn wake(
        &mut self,
        key: u32,
        now: Instant,
        is_live: impl FnMut(&Entry) -> bool,
        cost_of: impl Fn(&Entry) -> u32,
    ) -> Result<Option<Entry>, Instant> {
        let Some(gate) = self.gates.get_mut(key as usize) else {
            return Ok(None);
        };
        match gate.rate_blocked_until {
            Some(until) if now < until => return Ok(None),
            Some(_) => gate.rate_blocked_until = None,
            None => {}
        }
        // Nothing waits (every start and end of a holder asks): no head
        // to look for.
        if gate.waiting.is_empty() {
            return Ok(None);
        }
        let Some(head) = gate.waiting.best(now, Priority::Low, is_live) else {
            return Ok(None);
        };
        if let (Some(rate), Some(entry)) = (&gate.rate, gate.waiting.peek(head)) {
            if let Ok(Err(wait)) = rate.clone().check_n(now, cost_of(entry)) {
                gate.rate_blocked_until = Some(wait.earliest());
                return Err(wait.earliest());
            }
        }
        Ok(gate.waiting.pop(head).map(|entry| Entry {
            woken: true,
            ..entry
        }))
    }

    /// The instant key `key`'s rate conforms again, while it refuses.
    pub(crate) fn rate_blocked_until(&self, key: u32) -> Option<Instant> {
        self.gates.get(key as usize)?.rate_blocked_until
    }

    /// Each key's waiting queue.
    pub(crate) fn waiters(&self) -> impl Iterator<Item = (u32, &Queue)> + '_ {
        (0..).zip(self.gates.iter().map(|g| &g.waiting))
    }

    /// Checks gates read from a snapshot against the configuration and the
    /// tasks in flight (`holders[key]`: the attempts in flight holding it),
    /// and derives the index. No rate may have seen time past `clock`, the
    /// dispatcher's: it would hold its key back until then.
    pub(crate) fn validated(
        mut self,
        limits: &BTreeMap<String, ConcurrencyLimit>,
        holders: &[BTreeSet<(AttemptToken, TaskId)>],
        clock: Instant,
    ) -> Result<Self, String> {
        if self.gates.len() != limits.len() || holders.len() != limits.len() {
            return Err(format!(
                "{} keys, but {} configured",
                self.gates.len(),
                limits.len()
            ));
        }
        for ((index, gate), (name, limit)) in self.gates.iter_mut().enumerate().zip(limits) {
            if !gate.running.iter().eq(holders[index].iter()) {
                return Err(format!("key {name:?} disagrees with the tasks holding it"));
            }
            if gate.running.len() > limit.max_in_flight as usize {
                return Err(format!("key {name:?} is over its limit"));
            }
            if gate.rate.as_ref().map(RateLimiter::quota) != limit.rate {
                return Err(format!("key {name:?} has another rate than configured"));
            }
            if gate.rate.as_ref().is_some_and(|r| r.latest_seen() > clock) {
                return Err(format!("key {name:?} has a rate that saw past the clock"));
            }
            gate.waiting = std::mem::replace(&mut gate.waiting, Queue::new(None))
                .validated()
                .map_err(|p| format!("key {name:?}: {p}"))?;
        }
        self.derive(limits);
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    proptest! {
        /// `limited` is the sorted, distinct indices of the configured keys
        /// among any list of names (duplicates, unknown names and more than
        /// a set holds included), the smallest kept when there are too many.
        #[test]
        fn limited_keys_are_the_smallest_configured_indices(
            configured in proptest::collection::btree_set("[a-l]", 0..12),
            keys in proptest::collection::vec("[a-p]", 0..24),
        ) {
            let limits: BTreeMap<String, ConcurrencyLimit> = configured
                .iter()
                .map(|name| (name.clone(), ConcurrencyLimit::new(1)))
                .collect();
            let gates = KeyGates::new(&limits, None);
            let names: Vec<&String> = limits.keys().collect();
            let mut expected: Vec<u32> = keys
                .iter()
                .filter_map(|k| names.iter().position(|n| *n == k))
                .map(|at| at as u32)
                .collect();
            expected.sort_unstable();
            expected.dedup();
            expected.truncate(MAX_CONCURRENCY_KEYS);
            let names: Vec<KeyName> = keys.iter().map(KeyName::from).collect();
            let limited = gates.limited(&names);
            prop_assert_eq!(limited.as_slice(), expected.as_slice());
        }
    }

    fn gates(policy: WhenFull) -> KeyGates {
        let limits =
            BTreeMap::from([("k".to_string(), ConcurrencyLimit::new(2).when_full(policy))]);
        KeyGates::new(&limits, None)
    }

    #[test]
    fn keys_fill_and_name_their_victims() {
        let mut g = gates(WhenFull::CancelOldest);
        let keys = g.limited(&["other".into(), "k".into(), "k".into()]);
        assert_eq!(keys.as_slice(), [0]);
        let (t1, t2) = (TaskId::new(1), TaskId::new(2));
        let (a1, a2) = (AttemptToken::new(5), AttemptToken::new(6));
        g.started(keys.as_slice(), t1, a1);
        assert!(!g.is_full(0));
        g.started(keys.as_slice(), t2, a2);
        assert!(g.is_full(0));
        assert_eq!(g.victim(0), Some(t1));
        let mut newest = gates(WhenFull::CancelNewest);
        newest.started(keys.as_slice(), t1, a1);
        newest.started(keys.as_slice(), t2, a2);
        assert_eq!(newest.victim(0), Some(t2));
        assert!(g.ended(0, t1, a1) && !g.ended(0, t1, a1));
        assert_eq!(gates(WhenFull::Queue).victim(0), None);
        assert!(KeySet::try_from(vec![2, 1]).is_err());
        assert!(KeySet::try_from((0..9).collect::<Vec<u32>>()).is_err());
    }

    #[test]
    fn rates_are_taken_for_all_keys_or_none() {
        let quota = Quota::new(10, Duration::from_secs(1)).unwrap();
        let limits = BTreeMap::from([
            ("a".to_string(), ConcurrencyLimit::new(5).rate(quota)),
            (
                "b".to_string(),
                ConcurrencyLimit::new(5).rate(quota.with_burst(20).unwrap()),
            ),
        ]);
        let mut g = KeyGates::new(&limits, None);
        assert_eq!(g.take_rates(&[0, 1], 10, Instant::ZERO), Ok(()));
        let (key, _) = g.take_rates(&[0, 1], 10, Instant::ZERO).unwrap_err();
        assert_eq!(key, 0);
        // Key b was not charged by the refused attempt: it still has 10.
        assert_eq!(g.take_rates(&[1], 10, Instant::ZERO), Ok(()));
    }
}
