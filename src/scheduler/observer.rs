//! The dispatcher's lifecycle [`Event`]s, for an
//! [`Observer<Event>`](crate::Observer).

use std::time::Duration;

use crate::{AgentId, Instant, Priority, TaskId};

/// Something that happened to a task or an agent, reported to the
/// dispatcher's [`Observer`](crate::Observer) (and counted in its metrics) as it happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A task was accepted.
    Submitted {
        /// The task.
        task: TaskId,
        /// Its priority.
        priority: Priority,
    },
    /// A task was assigned to an agent.
    Assigned {
        /// The task.
        task: TaskId,
        /// The agent.
        agent: AgentId,
        /// Its priority.
        priority: Priority,
        /// 1 for the first attempt.
        attempt: u32,
        /// How long it waited in the queue this time.
        waited: Duration,
    },
    /// A task succeeded.
    Completed {
        /// The task.
        task: TaskId,
        /// The agent.
        agent: AgentId,
        /// Its priority.
        priority: Priority,
        /// How long the successful attempt ran.
        ran: Duration,
    },
    /// An attempt failed (reported failure or timeout).
    Failed {
        /// The task.
        task: TaskId,
        /// The agent.
        agent: AgentId,
        /// Whether a retry could help.
        retryable: bool,
    },
    /// A failed task will be tried again at `at`.
    Retried {
        /// The task.
        task: TaskId,
        /// When it becomes ready again.
        at: Instant,
    },
    /// A task ended in the dead-letter queue (not counting expiry).
    DeadLettered {
        /// The task.
        task: TaskId,
    },
    /// A task ran out of time (it is in the dead-letter queue too).
    Expired {
        /// The task.
        task: TaskId,
    },
    /// The host cancelled a task.
    Cancelled {
        /// The task.
        task: TaskId,
    },
    /// A running low-priority task gave its slot to a waiting P0 task and
    /// went back to the queue.
    Preempted {
        /// The task that was stopped.
        task: TaskId,
        /// The agent it ran on.
        agent: AgentId,
    },
    /// A running task was taken back from an agent that was lost or taken
    /// out of service, and went back to the queue.
    FailedOver {
        /// The task.
        task: TaskId,
        /// The agent it ran on.
        agent: AgentId,
    },
    /// A report was rejected (stale, forged, misdirected or late).
    ReportRejected {
        /// The task it named.
        task: TaskId,
        /// The agent it came from.
        agent: AgentId,
    },
    /// An agent's circuit breaker opened.
    BreakerTripped {
        /// The agent.
        agent: AgentId,
    },
    /// An agent was lost (missed heartbeats) or taken out of service with
    /// tasks in flight; its tasks went back to the queue.
    AgentLost {
        /// The agent.
        agent: AgentId,
    },
}
