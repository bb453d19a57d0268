//! A node's log lines for refused messages, bounded per sender: a
//! flooding peer costs a few lines a window, not one per message (a
//! count flood once grew a node's log by 1.9 GB in six minutes).

use std::collections::BTreeMap;
use std::time::Duration;

use taskweave::cluster::{NodeEvent, Sender};
use taskweave::{AgentId, Instant, TenantId};

/// How many refusals of one sender a window logs in full.
const LOGGED_IN_FULL: u64 = 3;
/// How long a window lasts.
const WINDOW: Duration = Duration::from_secs(10);

/// Whose refusals a tally counts: an agent's, whatever its incarnation; a
/// tenant's clients'; or the clients of no tenant. None can vary it at
/// will (the database sets a message's agent and tenant from its login).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Who {
    Clients,
    Tenant(TenantId),
    Agent(AgentId),
}

impl Who {
    fn of(sender: &Sender) -> Self {
        match *sender {
            Sender::Agent { agent, .. } => Who::Agent(agent),
            Sender::Tenant(tenant) => Who::Tenant(tenant),
            Sender::Client => Who::Clients,
        }
    }
}

impl std::fmt::Display for Who {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Who::Clients => f.write_str("clients of no tenant"),
            Who::Tenant(tenant) => write!(f, "{tenant}'s clients"),
            Who::Agent(agent) => write!(f, "{agent}"),
        }
    }
}

/// The refusals of one sender in the current window.
#[derive(Debug, Default)]
struct Tally {
    refused: u64,
    latest: String,
}

/// Which refusals a node logs: in each window, the first
/// [`LOGGED_IN_FULL`] of each sender as they come, and one line for the
/// rest when the window ends. Its memory is one entry per agent and per
/// tenant refused in the window (an incarnation does not make a new
/// sender, so a peer cannot grow it by varying its incarnation).
#[derive(Debug, Default)]
pub(super) struct RefusalLog {
    since: Option<Instant>,
    senders: BTreeMap<Who, Tally>,
}

impl RefusalLog {
    /// The line to log for `event` at `now`, if any: every event but a
    /// refusal past its sender's share of the window.
    pub(super) fn line(&mut self, event: &NodeEvent, now: Instant) -> Option<String> {
        let NodeEvent::Refused { sender, reason, .. } = event else {
            return Some(event.to_string());
        };
        self.since.get_or_insert(now);
        let tally = self.senders.entry(Who::of(sender)).or_default();
        tally.refused += 1;
        if tally.refused <= LOGGED_IN_FULL {
            Some(event.to_string())
        } else {
            tally.latest.clone_from(reason);
            None
        }
    }

    /// Once a window has passed: a line for each sender refused more
    /// often than it logged, and a new window.
    pub(super) fn summaries(&mut self, now: Instant) -> Vec<String> {
        let Some(since) = self.since else {
            return Vec::new();
        };
        if now.saturating_duration_since(since) < WINDOW {
            return Vec::new();
        }
        self.since = None;
        let tallies = std::mem::take(&mut self.senders);
        tallies
            .into_iter()
            .filter(|(_, tally)| tally.refused > LOGGED_IN_FULL)
            .map(|(who, tally)| {
                format!(
                    "refused {} more messages from {who} in the last {}s (not logged one by \
                     one; the latest: {}); `taskweave-pg status` names who fills the inbox",
                    tally.refused - LOGGED_IN_FULL,
                    WINDOW.as_secs(),
                    tally.latest
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(agent: Option<u64>, incarnation: u64, n: u64) -> NodeEvent {
        NodeEvent::Refused {
            message: n,
            sender: agent.map_or(Sender::Client, |agent| Sender::Agent {
                agent: AgentId::new(agent),
                incarnation,
            }),
            reason: format!("reason {n}"),
        }
    }

    /// 10,000 refusals of one agent under ever new incarnations, and two
    /// of a client, in one window: the first three of the agent and both
    /// of the client logged, then one line that counts the rest.
    #[test]
    fn a_flood_costs_a_few_lines_a_window() {
        let mut log = RefusalLog::default();
        let start = Instant::from_secs(100);
        let mut lines: Vec<String> = (1..=10_000)
            .filter_map(|n| log.line(&refused(Some(3), n, n), start))
            .collect();
        lines.extend((1..=2).filter_map(|n| log.line(&refused(None, 0, n), start)));
        assert_eq!(lines.len(), 5, "{lines:?}");
        assert!(
            log.summaries(start.saturating_add(Duration::from_secs(9)))
                .is_empty()
        );
        let summary = log.summaries(start.saturating_add(WINDOW));
        assert_eq!(summary.len(), 1, "{summary:?}");
        assert!(
            summary[0].starts_with("refused 9997 more messages from agent-3 in the last 10s")
                && summary[0].contains("the latest: reason 10000"),
            "{summary:?}"
        );
        // A new window logs in full again.
        let again = log.line(&refused(Some(3), 1, 1), start.saturating_add(WINDOW));
        assert!(again.is_some());
        assert!(log.summaries(start.saturating_add(WINDOW * 2)).is_empty());
    }

    /// One tenant's flood of refusals does not silence another tenant's,
    /// nor a plain client's; each gets its own summary.
    #[test]
    fn each_tenants_clients_are_a_sender_of_their_own() {
        let mut log = RefusalLog::default();
        let start = Instant::from_secs(100);
        let of = |sender: Sender, n: u64| NodeEvent::Refused {
            message: n,
            sender,
            reason: format!("reason {n}"),
        };
        let (acme, globex) = (TenantId::new(1), TenantId::new(2));
        let mut lines: Vec<String> = (1..=100)
            .filter_map(|n| log.line(&of(Sender::Tenant(acme), n), start))
            .collect();
        lines.extend((1..=2).filter_map(|n| log.line(&of(Sender::Tenant(globex), n), start)));
        lines.extend((1..=5).filter_map(|n| log.line(&of(Sender::Client, n), start)));
        assert_eq!(lines.len(), 3 + 2 + 3, "{lines:?}");
        let summary = log.summaries(start.saturating_add(WINDOW));
        assert_eq!(summary.len(), 2, "{summary:?}");
        assert!(
            summary[0].starts_with("refused 2 more messages from clients of no tenant"),
            "{summary:?}"
        );
        assert!(
            summary[1].starts_with("refused 97 more messages from tenant-1's clients"),
            "{summary:?}"
        );
    }

    #[test]
    fn other_events_are_logged_as_they_come() {
        let mut log = RefusalLog::default();
        let event = NodeEvent::TookLease { epoch: 3 };
        assert_eq!(log.line(&event, Instant::ZERO), Some(event.to_string()));
    }
}
