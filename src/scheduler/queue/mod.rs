//! Per-priority queues with aging, FIFO or fair-share within a level.
//!
//! Four queues, one per level, each sorted by submission sequence number
//! (within each fair-share lane, once keyed tasks arrive: see
//! [`Level`](level::Level)).
//! The next task is the head with the best *effective* priority — its level
//! minus one for every full aging interval it has waited — with ties going
//! to the older task. Within a level the head is the oldest task, so the best
//! of the four heads is the best task overall: popping costs `O(1)`.
//!
//! **Aging bound.** A task of level `L` reaches effective priority 0 after
//! waiting `L × aging_interval`; from then on it ties with fresh `P0` work
//! and wins on age. So under any stream of `P0` tasks, a `P3` task waits at
//! most `3 × aging_interval` plus the time to serve the tasks that were
//! already ahead of it (queued earlier at effective priority 0).
//!
//! Entries that end while queued (cancelled, expired) are not searched for:
//! they are dropped lazily when they reach the head ([`Queue::best`]
//! asks the caller whether an entry is still live).

pub(super) mod entry;
pub(super) mod fair_keys;
pub(super) mod level;
pub(super) mod parked;

use std::time::Duration;

use crate::{Instant, Priority};
pub(crate) use entry::Entry;
use level::Level;

/// Ranks a queue head: (effective level, sequence number, level index);
/// the smallest key is served first.
pub(crate) type HeadKey = (usize, u64, usize);

/// Per-level queues; see the [module docs](self).
#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(crate) struct Queue {
    levels: [Level; Priority::LEVELS],
    /// Aging interval in nanoseconds (`None`: no aging).
    aging_nanos: Option<u64>,
}

impl Queue {
    /// Empty queues; `aging_interval = None` disables aging.
    pub(crate) fn new(aging_interval: Option<Duration>) -> Self {
        Queue {
            levels: Default::default(),
            aging_nanos: aging_interval
                .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
                .filter(|&n| n > 0),
        }
    }

    /// Adds an entry at its FIFO position (in its lane): at the back for
    /// new work, ahead of younger entries for work coming back (failover,
    /// retries).
    pub(crate) fn push(&mut self, entry: Entry) {
        self.levels[entry.priority.index()].push(entry);
    }

    /// The effective priority of `entry` at `now` (0 is most urgent).
    pub(crate) fn effective_level(&self, entry: &Entry, now: Instant) -> usize {
        let level = entry.priority.index();
        match self.aging_nanos {
            Some(interval) => {
                let waited = now.as_nanos().saturating_sub(entry.since.as_nanos());
                let steps = waited / interval;
                level.saturating_sub(usize::try_from(steps).unwrap_or(usize::MAX))
            }
            None => level,
        }
    }

    /// The best live head whose *base* priority is at most `max_level`
    /// (reservations restrict work to P0/P1), as `(effective level, seq,
    /// level)`: smaller is better. Dead heads (`is_live` false) are dropped
    /// on the way.
    pub(crate) fn best(
        &mut self,
        now: Instant,
        max_level: Priority,
        mut is_live: impl FnMut(&Entry) -> bool,
    ) -> Option<HeadKey> {
        let mut best: Option<HeadKey> = None;
        for index in 0..=max_level.index() {
            while let Some(head) = self.levels[index].front() {
                if is_live(head) {
                    let key = (self.effective_level(head, now), head.seq, index);
                    best = Some(best.map_or(key, |b| b.min(key)));
                    break;
                }
                self.levels[index].pop_front(false);
            }
        }
        best
    }

    /// The head of the level a [`HeadKey`] names.
    pub(crate) fn peek(&self, key: HeadKey) -> Option<&Entry> {
        self.levels[key.2].front()
    }

    /// Removes the head of the level a [`HeadKey`] names.
    pub(crate) fn pop(&mut self, key: HeadKey) -> Option<Entry> {
        self.levels[key.2].pop_front(true)
    }

    /// Checks a queue read from a snapshot: aging, if on, has a non-zero
    /// interval, and each level holds entries of its own priority in
    /// sequence order.
    ///
    /// # Errors
    ///
    /// The first inconsistency, as text.
    pub(crate) fn validated(self) -> Result<Self, String> {
        if self.aging_nanos == Some(0) {
            return Err("aging interval is zero".into());
        }
        for (index, level) in self.levels.iter().enumerate() {
            if level.entries().any(|e| e.priority.index() != index) {
                return Err(format!("level {index} holds an entry of another priority"));
            }
            level.check().map_err(|p| format!("level {index}: {p}"))?;
        }
        Ok(self)
    }

    /// Every entry, live or dead, level by level.
    pub(crate) fn entries(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.levels.iter().flat_map(Level::entries)
    }

    /// Whether no entry (live or dead) is queued.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.levels.iter().all(Level::is_empty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TaskId;

    fn entry(seq: u64, priority: Priority, since: u64) -> Entry {
        Entry {
            seq,
            task: TaskId::new(seq),
            priority,
            since: Instant::from_secs(since),
            lane: 0,
            weight: 0,
            woken: false,
        }
    }

    fn pop_best(
        queue: &mut Queue,
        now: Instant,
        max: Priority,
        live: impl FnMut(&Entry) -> bool,
    ) -> Option<u64> {
        let key = queue.best(now, max, live)?;
        queue.pop(key).map(|e| e.seq)
    }

    fn drain(queue: &mut Queue, now: Instant) -> Vec<u64> {
        std::iter::from_fn(|| pop_best(queue, now, Priority::Low, |_| true)).collect()
    }

    #[test]
    fn priority_first_then_fifo() {
        let mut q = Queue::new(None);
        q.push(entry(1, Priority::Low, 0));
        q.push(entry(2, Priority::Critical, 0));
        q.push(entry(3, Priority::Low, 0));
        q.push(entry(4, Priority::Critical, 0));
        q.push(entry(5, Priority::Normal, 0));
        assert_eq!(drain(&mut q, Instant::ZERO), [2, 4, 5, 1, 3]);
    }

    #[test]
    fn returning_work_keeps_its_original_place() {
        let mut q = Queue::new(None);
        for seq in [2, 5, 9] {
            q.push(entry(seq, Priority::Normal, 0));
        }
        q.push(entry(4, Priority::Normal, 0));
        q.push(entry(1, Priority::Normal, 0));
        assert_eq!(drain(&mut q, Instant::ZERO), [1, 2, 4, 5, 9]);
    }

    #[test]
    fn aging_lifts_old_low_priority_work() {
        let mut q = Queue::new(Some(Duration::from_secs(10)));
        q.push(entry(1, Priority::Low, 0));
        q.push(entry(2, Priority::Critical, 25));
        // At t = 29 the P3 task has aged two levels (P1): P0 still wins.
        assert_eq!(
            pop_best(&mut q, Instant::from_secs(29), Priority::Low, |_| true),
            Some(2)
        );
        q.push(entry(3, Priority::Critical, 29));
        // At t = 30 it has aged to P0 and wins on age.
        assert_eq!(
            pop_best(&mut q, Instant::from_secs(30), Priority::Low, |_| true),
            Some(1)
        );
    }

    #[test]
    fn reservation_limit_and_dead_entries() {
        let mut q = Queue::new(None);
        q.push(entry(1, Priority::Normal, 0));
        q.push(entry(2, Priority::High, 0));
        q.push(entry(3, Priority::High, 0));
        assert_eq!(
            pop_best(&mut q, Instant::ZERO, Priority::High, |e| e.seq != 2),
            Some(3)
        );
        assert_eq!(
            pop_best(&mut q, Instant::ZERO, Priority::High, |_| true),
            None
        );
        assert!(!q.is_empty());
    }
}
