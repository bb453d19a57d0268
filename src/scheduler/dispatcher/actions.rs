//! What the dispatcher answers: the [`Action`]s a host carries out, why an
//! attempt is cancelled, and what a submission made.

use super::super::task::{DeadLetterReason, Expiry};
use crate::{AgentId, AttemptToken, TaskId};

/// What the host should do next; pulled with [`Dispatcher::poll_action`](super::Dispatcher::poll_action).
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use = "an action the host does not carry out is lost"]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Action {
    /// Start `task` on `agent`. Its report must carry `token`.
    Assign {
        /// The task (its payload: [`Dispatcher::payload`](super::Dispatcher::payload)).
        task: TaskId,
        /// The agent chosen.
        agent: AgentId,
        /// Fencing token of this attempt.
        token: AttemptToken,
        /// 1 for the first attempt.
        attempt: u32,
    },
    /// Stop the attempt `token` of `task` on `agent`; any result it still
    /// sends will be rejected.
    Cancel {
        /// The task.
        task: TaskId,
        /// The agent running it.
        agent: AgentId,
        /// The attempt to stop.
        token: AttemptToken,
        /// Why.
        reason: CancelReason,
    },
    /// `task` failed for good; its letter is in the dead-letter queue.
    DeadLettered {
        /// The task.
        task: TaskId,
        /// Why.
        reason: DeadLetterReason,
    },
    /// `task` ran out of time; its letter is in the dead-letter queue.
    Expired {
        /// The task.
        task: TaskId,
        /// Which limit ran out.
        limit: Expiry,
    },
    /// `agent` missed its heartbeats and is now unhealthy; its tasks were
    /// requeued.
    AgentLost {
        /// The agent.
        agent: AgentId,
    },
}

/// Why a running attempt is being stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum CancelReason {
    /// The host cancelled the task.
    Cancelled,
    /// The task's deadline passed.
    Expired,
    /// The attempt exceeded its timeout; the task will be retried or
    /// dead-lettered.
    TimedOut,
    /// The agent was lost or taken out of service; the task was requeued.
    AgentLost,
    /// A waiting P0 task needed the slot; the task was requeued without
    /// spending a retry.
    Preempted,
    /// A newer task of a full concurrency key took the slot
    /// ([`WhenFull`](super::super::WhenFull)); the task was cancelled.
    Superseded,
}

/// The result of a successful submission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "a duplicate submission names an existing task, not a new one"]
pub enum Submitted {
    /// A new task was created.
    New(TaskId),
    /// The idempotency key was seen within the window: this is the existing
    /// task, and the new payload was dropped.
    Duplicate(TaskId),
}

impl Submitted {
    /// The task id, new or existing.
    pub fn id(self) -> TaskId {
        match self {
            Submitted::New(id) | Submitted::Duplicate(id) => id,
        }
    }
}
