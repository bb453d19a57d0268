//! [`Ended`]: how a task ended in the journal, as the audit saw it, and
//! whether a published outcome says the same.

use crate::TaskId;

use super::super::contract::TaskEnd;

/// How a task ended in the journal, as the audit saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    Completed,
    DeadLettered,
    Expired,
    Cancelled,
    /// A dead letter requeued as this new task: its outcome is replaced.
    Redriven(TaskId),
}

impl Ended {
    /// Whether a published outcome says the same.
    pub(crate) fn agrees_with(self, end: &TaskEnd) -> bool {
        matches!(
            (self, end),
            (Ended::Completed, TaskEnd::Completed)
                | (Ended::DeadLettered, TaskEnd::DeadLettered(_))
                | (Ended::Expired, TaskEnd::Expired(_))
                | (Ended::Cancelled, TaskEnd::Cancelled)
        ) || matches!((self, end), (Ended::Redriven(a), TaskEnd::Redriven(b)) if a == *b)
    }
}

/// A task's end as the audit saw it: `(task, entry, how, output)`.
pub(crate) type EndSeen<P> = (TaskId, u64, Ended, Option<P>);
