//! Concurrency keys: limits on the tasks in flight that hold a key (a
//! provider, a customer), across all kinds and agents, with an optional
//! cost-weighted rate.
//!
//! [`ConcurrencyLimit`] is the configuration; `KeyGates` the state: for each
//! configured key, the tasks holding it in flight (in start order), the
//! tasks waiting for it, and its rate limiter. A waiting task is woken when
//! a holder ends or the key's rate conforms again; tasks of other keys go
//! past it.

use std::collections::{BTreeMap, HashMap};

use super::queue::{Entry, Queue};
use crate::resilience::{Quota, RateLimiter};
use crate::{Instant, Priority, TaskId};

/// What happens when a task comes up for dispatch and one of its
/// concurrency keys is at its limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum WhenFull {
    /// The task waits until a task holding the key ends (default).
    #[default]
    Queue,
    /// The task holding the key that started first is cancelled
    /// ([`CancelReason::Superseded`](super::CancelReason::Superseded)) and
    /// the new one takes its place.
    CancelOldest,
    /// The task holding the key that started last is cancelled and the new
    /// one takes its place.
    CancelNewest,
}

/// The limit of one concurrency key
/// ([`DispatcherConfigBuilder::concurrency_limit`](super::DispatcherConfigBuilder::concurrency_limit)).
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
    /// units ([`TaskSpec::cost`](super::TaskSpec::cost)) per period.
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

/// The state of one configured key.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(crate) struct KeyGate {
    /// Tasks holding the key in flight, oldest start first.
    running: Vec<TaskId>,
    /// Tasks waiting for the key (entries of tasks no longer queued are
    /// dead, dropped as they are reached).
    waiting: Queue,
    rate: Option<RateLimiter>,
}

/// The state of every configured key, in key order.
#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(crate) struct KeyGates {
    gates: Vec<KeyGate>,
    /// Derived from the configuration.
    #[cfg_attr(feature = "serde", serde(skip))]
    index: HashMap<String, u32>,
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
                    running: Vec::new(),
                    waiting: Queue::new(aging),
                    rate: limit.rate.map(RateLimiter::new),
                })
                .collect(),
            ..KeyGates::default()
        };
        gates.derive(limits);
        gates
    }

    fn derive(&mut self, limits: &BTreeMap<String, ConcurrencyLimit>) {
        self.index = limits.keys().cloned().zip(0..).collect();
        self.limits = limits.values().copied().collect();
    }

    /// Whether any key is configured.
    #[inline]
    pub(crate) fn is_on(&self) -> bool {
        !self.gates.is_empty()
    }

    /// The configured keys among `keys`, as indices, each once.
    pub(crate) fn limited(&self, keys: &[String]) -> Vec<u32> {
        let mut limited: Vec<u32> = keys
            .iter()
            .filter_map(|k| self.index.get(k).copied())
            .collect();
        limited.sort_unstable();
        limited.dedup();
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
            WhenFull::CancelOldest => running.first().copied(),
            WhenFull::CancelNewest => running.last().copied(),
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
                return Err((key, wait.earliest()));
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

    /// `task` starts holding `keys`.
    pub(crate) fn started(&mut self, keys: &[u32], task: TaskId) {
        for &key in keys {
            if let Some(gate) = self.gates.get_mut(key as usize) {
                gate.running.push(task);
            }
        }
    }

    /// `task` stopped holding key `key`; returns whether it held it.
    pub(crate) fn ended(&mut self, key: u32, task: TaskId) -> bool {
        let Some(gate) = self.gates.get_mut(key as usize) else {
            return false;
        };
        let Some(at) = gate.running.iter().position(|&t| t == task) else {
            return false;
        };
        gate.running.remove(at);
        true
    }

    /// Sets `entry` aside until key `key` has room.
    pub(crate) fn wait(&mut self, key: u32, entry: Entry) {
        if let Some(gate) = self.gates.get_mut(key as usize) {
            gate.waiting.push(entry);
        }
    }

    /// The best live entry waiting for key `key`, taken out.
    pub(crate) fn wake(
        &mut self,
        key: u32,
        now: Instant,
        is_live: impl FnMut(&Entry) -> bool,
    ) -> Option<Entry> {
        let waiting = &mut self.gates.get_mut(key as usize)?.waiting;
        let head = waiting.best(now, Priority::Low, is_live)?;
        waiting.pop(head)
    }

    /// Each key's waiting queue.
    pub(crate) fn waiters(&self) -> impl Iterator<Item = (u32, &Queue)> + '_ {
        (0..).zip(self.gates.iter().map(|g| &g.waiting))
    }

    /// Checks gates read from a snapshot against the configuration and the
    /// tasks in flight (`holders[key]`: the tasks in flight holding it),
    /// and derives the index. No rate may have seen time past `clock`, the
    /// dispatcher's: it would hold its key back until then.
    pub(crate) fn validated(
        mut self,
        limits: &BTreeMap<String, ConcurrencyLimit>,
        holders: &[Vec<TaskId>],
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
            let mut running = gate.running.clone();
            running.sort_unstable();
            running.dedup();
            let mut expected = holders[index].clone();
            expected.sort_unstable();
            if running.len() != gate.running.len() || running != expected {
                return Err(format!("key {name:?} disagrees with the tasks holding it"));
            }
            if running.len() > limit.max_in_flight as usize {
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
    use std::time::Duration;

    fn gates(policy: WhenFull) -> KeyGates {
        let limits =
            BTreeMap::from([("k".to_string(), ConcurrencyLimit::new(2).when_full(policy))]);
        KeyGates::new(&limits, None)
    }

    #[test]
    fn keys_fill_and_name_their_victims() {
        let mut g = gates(WhenFull::CancelOldest);
        let keys = g.limited(&["other".into(), "k".into(), "k".into()]);
        assert_eq!(keys, [0]);
        g.started(&keys, TaskId::new(1));
        assert!(!g.is_full(0));
        g.started(&keys, TaskId::new(2));
        assert!(g.is_full(0));
        assert_eq!(g.victim(0), Some(TaskId::new(1)));
        let mut newest = gates(WhenFull::CancelNewest);
        newest.started(&keys, TaskId::new(1));
        newest.started(&keys, TaskId::new(2));
        assert_eq!(newest.victim(0), Some(TaskId::new(2)));
        assert!(g.ended(0, TaskId::new(1)) && !g.ended(0, TaskId::new(1)));
        assert_eq!(gates(WhenFull::Queue).victim(0), None);
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
