//! The tasks one agent runs, in assignment order, stored inline while they
//! are few.
//!
//! The dispatcher keeps one such list per agent and touches two of them per
//! task (on assignment and when the attempt ends). A `Vec` would put every
//! list behind its own allocation, one more cache miss per touch with many
//! agents; up to [`INLINE`] ids live in the map entry itself.
//!
//! A longer list (an agent of large capacity) is a `Vec` whose first ids
//! may be dead: attempts mostly end in the order they started, so removing
//! the oldest id only moves the list's start, and any other removal shifts
//! the shorter side. Removing from a full list of 100 ids cost a 400-byte
//! `memmove` per report before.

use crate::TaskId;

/// Ids stored without an allocation.
const INLINE: usize = 4;

/// A list of task ids that stores up to [`INLINE`] of them inline. Travels
/// as a plain sequence (the same form as a `Vec<TaskId>`).
#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(from = "Vec<TaskId>", into = "Vec<TaskId>"))]
pub(crate) enum Running {
    /// The first `len` ids are the list.
    Inline { len: u8, ids: [TaskId; INLINE] },
    /// Grew past [`INLINE`] once; stays on the heap. The list is
    /// `ids[start..]`; `start` is never past the end.
    Spilled { ids: Vec<TaskId>, start: usize },
}

impl Default for Running {
    fn default() -> Self {
        Running::Inline {
            len: 0,
            ids: [TaskId::new(0); INLINE],
        }
    }
}

impl Running {
    /// The ids, in assignment order.
    #[inline]
    pub(crate) fn as_slice(&self) -> &[TaskId] {
        match self {
            Running::Inline { len, ids } => &ids[..usize::from(*len)],
            Running::Spilled { ids, start } => ids.get(*start..).unwrap_or_default(),
        }
    }

    /// Appends `task`.
    #[inline(always)]
    pub(crate) fn push(&mut self, task: TaskId) {
        match self {
            Running::Inline { len, ids } if usize::from(*len) < INLINE => {
                ids[usize::from(*len)] = task;
                *len += 1;
            }
            Running::Inline { ids, .. } => {
                let mut spilled = Vec::with_capacity(INLINE * 2);
                spilled.extend_from_slice(ids);
                spilled.push(task);
                *self = Running::Spilled {
                    ids: spilled,
                    start: 0,
                };
            }
            Running::Spilled { ids, start } => {
                // Reuse the dead prefix rather than grow: the vector never
                // holds more than its live ids' high-water mark.
                if *start > 0 && ids.len() == ids.capacity() {
                    ids.drain(..*start);
                    *start = 0;
                }
                ids.push(task);
            }
        }
    }

    /// Removes `task`, keeping the order of the rest; whether it was there.
    #[inline(always)]
    pub(crate) fn remove(&mut self, task: TaskId) -> bool {
        let Some(at) = self.as_slice().iter().position(|&t| t == task) else {
            return false;
        };
        match self {
            Running::Inline { len, ids } => {
                // Every id after `at` moves one place forward, in a fixed
                // number of steps that the compiler unrolls (a loop bounded
                // by `len` kept its counter and checks; `copy_within` would
                // call `memmove`). The ids it copies from past `len` are
                // unused.
                for i in 0..INLINE - 1 {
                    if i >= at {
                        ids[i] = ids[i + 1];
                    }
                }
                *len -= 1;
            }
            Running::Spilled { ids, start } => {
                let live = ids.len() - *start;
                if at < live / 2 {
                    // Nearer the front (the oldest, usually first): shift
                    // the ids before it one place on, and start later (an
                    // id stays after it, since `live >= 2` here).
                    ids.copy_within(*start..*start + at, *start + 1);
                    *start += 1;
                } else {
                    ids.remove(*start + at);
                }
            }
        }
        true
    }

    /// The ids as a `Vec`, in assignment order.
    pub(crate) fn into_vec(self) -> Vec<TaskId> {
        match self {
            Running::Inline { len, ids } => ids[..usize::from(len)].to_vec(),
            Running::Spilled { mut ids, start } => {
                ids.drain(..start);
                ids
            }
        }
    }
}

impl From<Vec<TaskId>> for Running {
    fn from(ids: Vec<TaskId>) -> Self {
        if ids.len() <= INLINE {
            let mut running = Running::default();
            for id in ids {
                running.push(id);
            }
            running
        } else {
            Running::Spilled { ids, start: 0 }
        }
    }
}

impl From<Running> for Vec<TaskId> {
    fn from(running: Running) -> Self {
        running.into_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Pushes and removals (of listed and unlisted ids) agree with a
        /// `Vec` model, inline and spilled alike.
        #[test]
        fn behaves_as_an_ordered_vec(ops in proptest::collection::vec((any::<bool>(), 0u64..12), 0..80)) {
            let mut running = Running::default();
            let mut model: Vec<TaskId> = Vec::new();
            let mut next = 100u64;
            for (push, pick) in ops {
                if push && model.len() < 10 {
                    next += 1;
                    running.push(TaskId::new(next));
                    model.push(TaskId::new(next));
                } else {
                    // Ids 0..12 beyond the list's length are not in it.
                    let victim = model.get(pick as usize).copied().unwrap_or(TaskId::new(pick));
                    let listed = model.contains(&victim);
                    prop_assert_eq!(running.remove(victim), listed);
                    model.retain(|&t| t != victim);
                }
                prop_assert_eq!(running.as_slice(), model.as_slice());
            }
        }
    }

    #[test]
    fn keeps_assignment_order_inline_and_spilled() {
        let ids: Vec<TaskId> = (1..=7).map(TaskId::new).collect();
        let mut running = Running::default();
        for (n, &id) in ids.iter().enumerate() {
            running.push(id);
            assert_eq!(running.as_slice(), &ids[..=n]);
        }
        assert!(matches!(running, Running::Spilled { .. }));
        assert!(running.remove(ids[2]));
        assert!(!running.remove(ids[2]));
        let mut expected = ids.clone();
        expected.remove(2);
        assert_eq!(running.as_slice(), expected.as_slice());

        let mut small = Running::from(ids[..3].to_vec());
        assert!(matches!(small, Running::Inline { .. }));
        assert!(small.remove(ids[0]));
        assert_eq!(small.as_slice(), &ids[1..3]);
        assert_eq!(small.clone().into_vec(), ids[1..3].to_vec());
        assert!(small.remove(ids[2]) && small.remove(ids[1]));
        assert!(small.as_slice().is_empty());
    }

    #[test]
    fn a_spilled_list_removes_anywhere_and_reuses_its_dead_front() {
        let mut running = Running::default();
        let mut expected: Vec<TaskId> = Vec::new();
        for n in 1..=40u64 {
            running.push(TaskId::new(n));
            expected.push(TaskId::new(n));
            // Oldest first mostly, sometimes from the middle or the back.
            let victim = match n % 5 {
                0 => expected.first().copied(),
                3 => expected.get(expected.len() / 3).copied(),
                4 => expected.last().copied(),
                _ => None,
            };
            if let Some(victim) = victim {
                assert!(running.remove(victim));
                expected.retain(|&t| t != victim);
            }
            assert_eq!(running.as_slice(), expected.as_slice());
        }
        while let Some(&oldest) = expected.first() {
            assert!(running.remove(oldest));
            expected.remove(0);
            assert_eq!(running.as_slice(), expected.as_slice());
        }
        running.push(TaskId::new(99));
        assert_eq!(running.clone().into_vec(), vec![TaskId::new(99)]);
        if let Running::Spilled { ids, .. } = &running {
            assert!(ids.capacity() <= 64, "the dead front was reused");
        }
    }
}
