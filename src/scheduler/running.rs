//! The tasks one agent runs, in assignment order, stored inline while they
//! are few.
//!
//! The dispatcher keeps one such list per agent and touches two of them per
//! task (on assignment and when the attempt ends). A `Vec` would put every
//! list behind its own allocation, one more cache miss per touch with many
//! agents; up to [`INLINE`] ids live in the map entry itself.

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
    /// Grew past [`INLINE`] once; stays on the heap.
    Spilled(Vec<TaskId>),
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
            Running::Spilled(ids) => ids,
        }
    }

    /// Appends `task`.
    #[inline]
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
                *self = Running::Spilled(spilled);
            }
            Running::Spilled(ids) => ids.push(task),
        }
    }

    /// Removes `task`, keeping the order of the rest; whether it was there.
    #[inline]
    pub(crate) fn remove(&mut self, task: TaskId) -> bool {
        let Some(at) = self.as_slice().iter().position(|&t| t == task) else {
            return false;
        };
        match self {
            Running::Inline { len, ids } => {
                // At most three moves: a loop the compiler unrolls, where
                // `copy_within` would call `memmove`.
                for i in at + 1..usize::from(*len).min(INLINE) {
                    ids[i - 1] = ids[i];
                }
                *len -= 1;
            }
            Running::Spilled(ids) => {
                ids.remove(at);
            }
        }
        true
    }

    /// The ids as a `Vec`, in assignment order.
    pub(crate) fn into_vec(self) -> Vec<TaskId> {
        match self {
            Running::Inline { len, ids } => ids[..usize::from(len)].to_vec(),
            Running::Spilled(ids) => ids,
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
            Running::Spilled(ids)
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

    #[test]
    fn keeps_assignment_order_inline_and_spilled() {
        let ids: Vec<TaskId> = (1..=7).map(TaskId::new).collect();
        let mut running = Running::default();
        for (n, &id) in ids.iter().enumerate() {
            running.push(id);
            assert_eq!(running.as_slice(), &ids[..=n]);
        }
        assert!(matches!(running, Running::Spilled(_)));
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
}
