//! The dispatcher's timers: what it must look at, and when.

use super::requirements::RequirementsId;
use crate::{AgentId, AttemptToken, TaskId};

/// Something the dispatcher must look at, at a given instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(crate) enum Timer {
    Ttl(TaskId),
    Deadline(TaskId),
    Attempt(TaskId, AttemptToken),
    Retry(TaskId),
    Unroutable(TaskId),
    Heartbeat(AgentId),
    Breaker(AgentId),
    AgentRate(AgentId),
    KindRate(RequirementsId),
    /// A concurrency key's rate conforms again.
    KeyRate(u32),
}
