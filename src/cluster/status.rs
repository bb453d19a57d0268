//! What the leader publishes about the cluster for operators: the
//! `status` an operator's command prints.

use crate::Instant;
use crate::agent::AgentStatus;
use crate::priority::Priority;
use crate::routing::RoutingStrategy;
use crate::scheduler::{Dispatcher, TaskState};

/// One agent's line in a [`Status`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct AgentLoad {
    /// The agent.
    pub agent: crate::AgentId,
    /// The incarnation registered now.
    pub incarnation: u64,
    /// Attempts it holds.
    pub load: u32,
    /// Attempts it may hold.
    pub capacity: u32,
    /// Online, draining, unhealthy or offline.
    pub status: String,
}

/// The cluster as its leader saw it when it published this.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Status {
    /// The leader's epoch.
    pub epoch: u64,
    /// The leader's name.
    pub leader: String,
    /// The last journal entry applied.
    pub seq: u64,
    /// The leader's clock when it published this.
    pub at: Instant,
    /// Tasks queued, by priority (index 0 is P0).
    pub queued: [u64; Priority::LEVELS],
    /// Tasks waiting for a retry or a start instant.
    pub delayed: u64,
    /// Attempts in flight.
    pub in_flight: u64,
    /// Age of the oldest queued task in milliseconds, by the leader's clock
    /// (a task restored from a snapshot counts from the restore).
    pub oldest_queued_ms: Option<u64>,
    /// Every registered agent, in registration order.
    pub agents: Vec<AgentLoad>,
    /// Letters in the dead-letter queue.
    pub dead_letters: u64,
    /// Tasks submitted, ever.
    pub submitted: u64,
    /// Tasks completed, ever.
    pub completed: u64,
    /// Tasks dead-lettered, ever.
    pub dead_lettered: u64,
    /// Tasks expired, ever.
    pub expired: u64,
    /// The cluster refuses submissions and stops once idle.
    pub draining: bool,
}

/// The status-relevant part of a node's state, read off its dispatcher.
/// `oldest` is the submission instant of the oldest queued task.
pub(crate) fn read<P, S: RoutingStrategy>(
    dispatcher: &Dispatcher<P, S>,
    oldest: Option<Instant>,
    now: Instant,
) -> Status {
    let mut status = Status::default();
    for (_, state, priority, _) in dispatcher.iter_live_tasks() {
        match state {
            TaskState::Queued => status.queued[priority.index()] += 1,
            TaskState::Delayed { .. } => status.delayed += 1,
            TaskState::InFlight { .. } => status.in_flight += 1,
            _ => {}
        }
    }
    status.oldest_queued_ms = oldest
        .map(|at| u64::try_from(now.saturating_duration_since(at).as_millis()).unwrap_or(u64::MAX));
    status.agents = dispatcher
        .registry()
        .iter()
        .map(|record| AgentLoad {
            agent: record.id(),
            incarnation: super::incarnation::incarnation_of(record.profile()).unwrap_or(0),
            load: record.load(),
            capacity: record.profile().capacity(),
            status: status_name(record.status()).to_string(),
        })
        .collect();
    let counters = dispatcher.metrics().counters;
    status.dead_letters = dispatcher.dead_letters().len() as u64;
    status.submitted = counters.submitted;
    status.completed = counters.completed;
    status.dead_lettered = counters.dead_lettered;
    status.expired = counters.expired;
    status.at = now;
    status
}

fn status_name(status: AgentStatus) -> &'static str {
    match status {
        AgentStatus::Online => "online",
        AgentStatus::Draining => "draining",
        AgentStatus::Unhealthy => "unhealthy",
        AgentStatus::Offline => "offline",
    }
}
