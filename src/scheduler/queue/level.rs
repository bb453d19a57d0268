//! One priority level of a [`Queue`](super::Queue): FIFO, or —
//! once a task with a fair-share key arrives — deficit round robin over
//! fair-share lanes.
//!
//! Each key has a lane, FIFO by submission sequence; tasks without a key
//! share lane 0 (weight 1). The lanes with entries wait their turn in a
//! ring; the lane at the front takes up to its weight in tasks, then goes
//! to the back with its credit renewed. A lane that empties leaves the
//! ring (and forgets its credit, as in deficit round robin). Every
//! operation is `O(1)` (amortized; one id-map lookup), and a level that
//! never saw a key is a plain deque: fair shares cost nothing unused.

use std::collections::VecDeque;

use super::entry::Entry;
use crate::hash::IdMap;

/// One priority level; see the [module docs](self).
#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(crate) struct Level {
    /// Entries without a key (lane 0), FIFO.
    plain: VecDeque<Entry>,
    /// The lanes, while any keyed entry is queued.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    fair: Option<Box<Lanes>>,
}

/// The keyed lanes of a level and their ring.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
struct Lanes {
    /// Keyed lanes with entries, by lane id.
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_maps::as_pairs"))]
    keyed: IdMap<u32, Lane>,
    /// The lanes with entries (0: `plain`), front first.
    ring: VecDeque<u32>,
    /// Tasks the front lane may still take in this turn.
    credit: u32,
}

#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
struct Lane {
    entries: VecDeque<Entry>,
    weight: u16,
}

/// Inserts `entry` at its FIFO position: at the back for new work, ahead
/// of younger entries for work coming back (failover, retries).
fn insert_in_order(deque: &mut VecDeque<Entry>, entry: Entry) {
    if deque.back().is_none_or(|last| last.seq < entry.seq) {
        deque.push_back(entry);
    } else {
        let at = deque.partition_point(|e| e.seq < entry.seq);
        deque.insert(at, entry);
    }
}

impl Level {
    /// Adds an entry to its lane.
    pub(crate) fn push(&mut self, entry: Entry) {
        if entry.lane == 0 && self.fair.is_none() {
            insert_in_order(&mut self.plain, entry);
            return;
        }
        let plain_waiting = !self.plain.is_empty();
        let fair = self.fair.get_or_insert_with(|| {
            Box::new(Lanes {
                keyed: IdMap::default(),
                ring: plain_waiting.then_some(0).into_iter().collect(),
                credit: 1,
            })
        });
        let (deque, weight) = match entry.lane {
            0 => (&mut self.plain, 1),
            id => {
                let lane = fair.keyed.entry(id).or_insert_with(|| Lane {
                    entries: VecDeque::new(),
                    weight: entry.weight,
                });
                lane.weight = entry.weight.max(1);
                (&mut lane.entries, lane.weight)
            }
        };
        let joins = deque.is_empty();
        insert_in_order(deque, entry);
        if joins {
            fair.ring.push_back(entry.lane);
        }
        if fair.ring.front() == Some(&entry.lane) {
            // A lane joining an empty ring starts its turn; a front lane
            // whose weight dropped (a key's weight is its latest task's)
            // keeps no more credit than its new weight.
            fair.credit = match joins && fair.ring.len() == 1 {
                true => u32::from(weight),
                false => fair.credit.min(u32::from(weight)),
            };
        }
    }

    /// The entry served next.
    #[inline]
    pub(crate) fn front(&self) -> Option<&Entry> {
        match &self.fair {
            None => self.plain.front(),
            Some(fair) => match *fair.ring.front()? {
                0 => self.plain.front(),
                id => fair.keyed.get(&id)?.entries.front(),
            },
        }
    }

    /// Removes the front entry. `served`: it is dispatched, and spends a
    /// unit of its lane's credit; otherwise it is a dead entry dropped.
    #[inline]
    pub(crate) fn pop_front(&mut self, served: bool) -> Option<Entry> {
        let Some(fair) = &mut self.fair else {
            return self.plain.pop_front();
        };
        let id = *fair.ring.front()?;
        let (entry, emptied) = match id {
            0 => (self.plain.pop_front()?, self.plain.is_empty()),
            id => {
                let lane = fair.keyed.get_mut(&id)?;
                (lane.entries.pop_front()?, lane.entries.is_empty())
            }
        };
        if served {
            fair.credit = fair.credit.saturating_sub(1);
        }
        if emptied {
            fair.ring.pop_front();
            fair.keyed.remove(&id);
        } else if fair.credit == 0 {
            fair.ring.rotate_left(1);
        } else {
            return Some(entry);
        }
        match fair.ring.front() {
            None => self.fair = None,
            Some(&next) => fair.credit = u32::from(fair.weight(next)),
        }
        Some(entry)
    }

    /// Every entry, lane by lane.
    pub(crate) fn entries(&self) -> impl Iterator<Item = &Entry> + '_ {
        let keyed = self.fair.iter().flat_map(|f| f.keyed.values());
        self.plain
            .iter()
            .chain(keyed.flat_map(|lane| lane.entries.iter()))
    }

    /// Whether no entry is queued.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.plain.is_empty() && self.fair.is_none()
    }

    /// Checks a level read from a snapshot: each lane in sequence order
    /// and holding only its own entries, the ring naming exactly the lanes
    /// with entries, once each, and the credit within the front lane's
    /// weight.
    pub(crate) fn check(&self) -> Result<(), String> {
        let in_order =
            |d: &VecDeque<Entry>| d.iter().zip(d.iter().skip(1)).all(|(a, b)| a.seq <= b.seq);
        if !in_order(&self.plain) || self.plain.iter().any(|e| e.lane != 0) {
            return Err("the unkeyed lane is out of order or holds keyed entries".into());
        }
        let Some(fair) = &self.fair else {
            return Ok(());
        };
        for (&id, lane) in &fair.keyed {
            if id == 0 || lane.weight == 0 || lane.entries.is_empty() {
                return Err(format!("lane {id} is empty, unkeyed or of weight zero"));
            }
            if !in_order(&lane.entries) || lane.entries.iter().any(|e| e.lane != id) {
                return Err(format!("lane {id} is out of order or holds other entries"));
            }
        }
        let mut ring: Vec<u32> = fair.ring.iter().copied().collect();
        ring.sort_unstable();
        let mut expected: Vec<u32> = fair.keyed.keys().copied().collect();
        if !self.plain.is_empty() {
            expected.push(0);
        }
        expected.sort_unstable();
        if ring.is_empty() || ring != expected {
            return Err("the lane ring disagrees with the lanes".into());
        }
        let front = fair.ring.front().map_or(1, |&id| fair.weight(id));
        if fair.credit == 0 || fair.credit > u32::from(front) {
            return Err(format!("credit {} outside 1..={front}", fair.credit));
        }
        Ok(())
    }
}

impl Lanes {
    fn weight(&self, id: u32) -> u16 {
        self.keyed.get(&id).map_or(1, |lane| lane.weight)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Instant, Priority, TaskId};

    fn entry(seq: u64, lane: u32, weight: u16) -> Entry {
        Entry {
            seq,
            task: TaskId::new(seq),
            priority: Priority::Normal,
            since: Instant::ZERO,
            lane,
            weight,
            woken: false,
        }
    }

    fn drain(level: &mut Level) -> Vec<u32> {
        std::iter::from_fn(|| level.pop_front(true).map(|e| e.lane)).collect()
    }

    #[test]
    fn lanes_take_turns_by_weight_and_stay_fifo_within() {
        let mut level = Level::default();
        let mut seq = 0;
        for _ in 0..6 {
            seq += 1;
            level.push(entry(seq, 1, 3));
        }
        for _ in 0..3 {
            seq += 1;
            level.push(entry(seq, 2, 1));
        }
        assert!(level.check().is_ok());
        assert_eq!(drain(&mut level), [1, 1, 1, 2, 1, 1, 1, 2, 2]);
        assert!(level.is_empty() && level.fair.is_none());
    }

    #[test]
    fn a_long_lane_cannot_hold_back_a_short_one() {
        let mut level = Level::default();
        for seq in 0..10_000 {
            level.push(entry(seq, 1, 1));
        }
        for seq in 10_000..10_010 {
            level.push(entry(seq, 2, 1));
        }
        let served: Vec<u32> = (0..20)
            .filter_map(|_| level.pop_front(true))
            .map(|e| e.lane)
            .collect();
        assert_eq!(served.iter().filter(|&&l| l == 2).count(), 10);
    }

    #[test]
    fn unkeyed_work_is_one_lane_of_weight_one() {
        let mut level = Level::default();
        level.push(entry(1, 0, 1));
        level.push(entry(2, 0, 1));
        level.push(entry(3, 7, 2));
        level.push(entry(4, 7, 2));
        level.push(entry(5, 7, 2));
        assert_eq!(drain(&mut level), [0, 7, 7, 0, 7]);
    }

    #[test]
    fn dead_entries_spend_no_credit_and_returning_work_keeps_its_place() {
        let mut level = Level::default();
        level.push(entry(2, 1, 2));
        level.push(entry(3, 1, 2));
        level.push(entry(4, 2, 1));
        assert_eq!(level.pop_front(false).map(|e| e.seq), Some(2));
        level.push(entry(1, 1, 2));
        assert_eq!(level.front().map(|e| e.seq), Some(1));
        let order: Vec<u64> = std::iter::from_fn(|| level.pop_front(true).map(|e| e.seq)).collect();
        assert_eq!(order, [1, 3, 4]);
    }

    #[test]
    fn corrupt_levels_are_refused() {
        let mut level = Level::default();
        level.push(entry(1, 1, 1));
        level.push(entry(2, 2, 1));
        let mut bad = level.clone();
        bad.fair.as_mut().unwrap().ring.pop_back();
        assert!(bad.check().is_err());
        let mut bad = level.clone();
        bad.fair.as_mut().unwrap().credit = 5;
        assert!(bad.check().is_err());
        let mut bad = level;
        bad.plain.push_back(entry(3, 4, 1));
        assert!(bad.check().is_err());
    }
}
