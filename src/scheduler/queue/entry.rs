//! One queued task, as the [queue](crate::scheduler::queue) and its
//! [levels](super::level) hold it.

use crate::{Instant, Priority, TaskId};

/// One queued task. Stored as a row
/// ([`rows`](crate::scheduler::durable::rows)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
pub(crate) struct Entry {
    /// Submission sequence number: the FIFO key.
    pub(crate) seq: u64,
    pub(crate) task: TaskId,
    #[cfg_attr(
        feature = "serde",
        serde(deserialize_with = "crate::scheduler::durable::rows::priority::deserialize")
    )]
    pub(crate) priority: Priority,
    /// When the task (re-)entered the queue; aging counts from here.
    pub(crate) since: Instant,
    /// The task's fair-share lane (0: none) and its weight.
    #[cfg_attr(feature = "serde", serde(default))]
    pub(crate) lane: u32,
    #[cfg_attr(feature = "serde", serde(default))]
    pub(crate) weight: u16,
    /// Taken from a concurrency key's waiters: it goes ahead of the key's
    /// other waiters (which a new arrival joins instead).
    #[cfg_attr(feature = "serde", serde(default))]
    pub(crate) woken: bool,
}
