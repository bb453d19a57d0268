//! One queued task, as the [queue](crate::scheduler::queue) and its
//! [levels](super::level) hold it.

use crate::{Instant, Priority, TaskId};

/// One queued task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(crate) struct Entry {
    /// Submission sequence number: the FIFO key.
    pub(crate) seq: u64,
    pub(crate) task: TaskId,
    pub(crate) priority: Priority,
    /// When the task (re-)entered the queue; aging counts from here.
    pub(crate) since: Instant,
    /// The task's fair-share lane (0: none) and its weight.
    #[cfg_attr(feature = "serde", serde(default, skip_serializing_if = "is_zero"))]
    pub(crate) lane: u32,
    #[cfg_attr(feature = "serde", serde(default, skip_serializing_if = "is_zero"))]
    pub(crate) weight: u16,
    /// Taken from a concurrency key's waiters: it goes ahead of the key's
    /// other waiters (which a new arrival joins instead).
    #[cfg_attr(feature = "serde", serde(default, skip_serializing_if = "is_zero"))]
    pub(crate) woken: bool,
}

#[cfg(feature = "serde")]
fn is_zero<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}
