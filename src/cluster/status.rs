//! What the leader publishes about the cluster for operators: the
//! `status` an operator's command prints.

use std::collections::BTreeMap;

use super::contract::Sender;
use crate::Instant;
use crate::agent::AgentStatus;
use crate::priority::Priority;
use crate::routing::RoutingStrategy;
use crate::scheduler::{Dispatcher, ScaleHint, Unroutable};

/// The most requirement sets of unroutable tasks a status lists.
pub const MAX_UNROUTABLE_LISTED: usize = 16;

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
    /// `online`, `draining`, `lost` (it missed its heartbeats; a new
    /// incarnation's registration brings it back) or `offline`.
    pub status: String,
}

/// The cluster as its leader saw it when it published this.
#[derive(Clone, Debug, PartialEq, Default)]
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
    /// The scale hint of each pool the leader's configuration names
    /// ([`NodeConfigBuilder::scale_pool`](super::NodeConfigBuilder::scale_pool)).
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Vec::is_empty")
    )]
    pub pools: Vec<ScaleHint>,
    /// Queued tasks no online agent can take, by requirement set, with
    /// why ([`Dispatcher::unroutable`]); at most
    /// [`MAX_UNROUTABLE_LISTED`] sets.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Vec::is_empty")
    )]
    pub unroutable: Vec<Unroutable>,
    /// The runs the nodes host ([`Node::host_runs`](super::Node::host_runs));
    /// `None` on a cluster without.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub runs: Option<RunsStatus>,
    /// The inbox messages the leader read since its previous status, and
    /// who sent the most of them: a login that floods the inbox is named
    /// here. `None` when it read none.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub inbox: Option<InboxLoad>,
}

/// The inbox messages a leader read between two statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct InboxLoad {
    /// How many (a message read again after a failed commit counts again).
    pub messages: u64,
    /// Who sent the most of them (the first in [`Sender`] order on a tie).
    pub busiest: Sender,
    /// How many of them it sent.
    pub busiest_messages: u64,
}

impl InboxLoad {
    /// The load of the messages counted by sender in `counts`; `None`
    /// when there is none.
    pub(crate) fn of(counts: &BTreeMap<Sender, u64>) -> Option<InboxLoad> {
        let (&busiest, &busiest_messages) = counts.iter().rev().max_by_key(|&(_, &count)| count)?;
        Some(InboxLoad {
            messages: counts.values().sum(),
            busiest,
            busiest_messages,
        })
    }
}

/// The hosted runs in a [`Status`], by state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RunsStatus {
    /// Runs going forward (sub-workflow runs included).
    pub running: u64,
    /// Runs compensating after a failure or a cancel.
    pub compensating: u64,
    /// Finished runs the leader remembers (a start with one's id names
    /// it; `RunRetention` bounds them).
    pub finished: u64,
    /// Workflow versions registered.
    pub workflows: u64,
}

/// The status-relevant part of a node's state, read off its dispatcher.
/// `oldest` is the submission instant of the oldest queued task.
pub(crate) fn read<P, S: RoutingStrategy>(
    dispatcher: &Dispatcher<P, S>,
    oldest: Option<Instant>,
    now: Instant,
) -> Status {
    let mut status = Status::default();
    // O(1) counts, kept by the dispatcher: no walk over the live tasks.
    for priority in Priority::ALL {
        status.queued[priority.index()] = dispatcher.queue_depth(priority) as u64;
    }
    let waiting = dispatcher.waiting() as u64;
    status.delayed = waiting.saturating_sub(status.queued.iter().sum());
    status.in_flight = (dispatcher.live_tasks() as u64).saturating_sub(waiting);
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
    let counters = dispatcher.counters();
    status.dead_letters = dispatcher.dead_letters().len() as u64;
    status.submitted = counters.submitted;
    status.completed = counters.completed;
    status.dead_lettered = counters.dead_lettered;
    status.expired = counters.expired;
    status.unroutable = dispatcher.unroutable();
    status.unroutable.truncate(MAX_UNROUTABLE_LISTED);
    status.at = now;
    status
}

fn status_name(status: AgentStatus) -> &'static str {
    match status {
        AgentStatus::Online => "online",
        AgentStatus::Draining => "draining",
        // In a cluster only missed heartbeats make an agent unhealthy.
        AgentStatus::Unhealthy => "lost",
        AgentStatus::Offline => "offline",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AgentId;
    use crate::agent::AgentProfile;
    use crate::scheduler::{DispatcherConfig, TaskSpec, TaskState};

    /// The counts a status reads in `O(1)` are those a walk over the live
    /// tasks finds.
    #[test]
    fn the_counts_match_a_walk_over_the_live_tasks() {
        let mut d: Dispatcher<u32> = Dispatcher::new(DispatcherConfig::default());
        let now = Instant::from_secs(1);
        let profile = AgentProfile::builder().capacity(2).build().unwrap();
        d.register_agent(AgentId::new(1), profile, now).unwrap();
        for (i, priority) in Priority::ALL.into_iter().cycle().take(9).enumerate() {
            let spec = TaskSpec::new(i as u32).priority(priority);
            let spec = if i % 4 == 0 {
                spec.not_before(Instant::from_secs(60))
            } else {
                spec
            };
            let _ = d.submit(spec, now).unwrap();
        }
        while d.poll_action().is_some() {}
        let status = read(&d, None, now);
        let mut walked = Status::default();
        for (_, state, priority, _) in d.iter_live_tasks() {
            match state {
                TaskState::Queued => walked.queued[priority.index()] += 1,
                TaskState::Delayed { .. } => walked.delayed += 1,
                TaskState::InFlight { .. } => walked.in_flight += 1,
                _ => {}
            }
        }
        assert_eq!(
            (status.queued, status.delayed, status.in_flight),
            (walked.queued, walked.delayed, walked.in_flight)
        );
        assert_eq!((walked.delayed, walked.in_flight), (3, 2));
        assert_eq!(status.submitted, 9);
    }
}
