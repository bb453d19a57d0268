//! [`TaskEnd`]: how a task ended, as a leader publishes it, and
//! [`Outcome`]: that end with the task's output, as a client reads it.

use crate::TaskId;
use crate::scheduler::{DeadLetterReason, Expiry};

/// How a task ended, as a leader publishes it for the client that
/// submitted it ([`ClientOp::Outcomes`](super::ClientOp::Outcomes)).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum TaskEnd {
    /// An agent reported success.
    Completed,
    /// It failed for good; its letter is in the dead-letter queue.
    DeadLettered(DeadLetterReason),
    /// It ran out of time; its letter is in the dead-letter queue.
    Expired(Expiry),
    /// A client cancelled it.
    Cancelled,
    /// It was a dead letter, and an operator requeued it as this new task
    /// ([`Message::Redrive`](super::Message::Redrive)): that task's
    /// outcome is the one to wait for. It replaces the letter's
    /// `DeadLettered` or `Expired`.
    Redriven(TaskId),
}

impl std::fmt::Display for TaskEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TaskEnd::Completed => f.write_str("completed"),
            TaskEnd::DeadLettered(DeadLetterReason::RetriesExhausted {
                attempts,
                last_error,
            }) => write!(f, "dead-lettered after {attempts} attempts: {last_error}"),
            TaskEnd::DeadLettered(DeadLetterReason::NonRetryable { reason }) => {
                write!(f, "dead-lettered: {reason}")
            }
            TaskEnd::DeadLettered(DeadLetterReason::Unroutable { waited }) => {
                write!(f, "dead-lettered: no agent could take it for {waited:?}")
            }
            TaskEnd::DeadLettered(DeadLetterReason::Expired { limit })
            | TaskEnd::Expired(limit) => match limit {
                Expiry::Ttl => f.write_str("expired: its time to live ran out"),
                Expiry::Deadline => f.write_str("expired: its deadline passed"),
            },
            TaskEnd::Cancelled => f.write_str("cancelled"),
            TaskEnd::Redriven(task) => {
                write!(
                    f,
                    "dead-lettered, then requeued as {task}: read its outcome"
                )
            }
        }
    }
}

/// How a task ended, and its result: what a client reads back
/// ([`ClientOp::Outcomes`](super::ClientOp::Outcomes)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome<P> {
    /// How it ended.
    pub end: TaskEnd,
    /// The output its agent completed it with
    /// ([`Message::Completed`](super::Message::Completed)); `None` for a task that did not complete,
    /// or completed without one.
    pub output: Option<P>,
}
