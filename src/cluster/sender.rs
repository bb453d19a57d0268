//! [`Sender`]: who posted an inbox message.

use std::fmt;

use crate::{AgentId, TenantId};

/// Who posted an inbox message. The store sets it from the connection's
/// identity, never from the message body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Sender {
    /// An agent, with the incarnation it registered as.
    Agent {
        /// The agent.
        agent: AgentId,
        /// Its incarnation (a store-issued number that grows with every
        /// start of the agent).
        incarnation: u64,
    },
    /// A client (`submit`, `cancel`, `drain`). Its tasks have no tenant:
    /// the leader clears one a body names.
    Client,
    /// A client that acts for one tenant (on PostgreSQL, a submitter
    /// login `init` mapped to the tenant). The leader makes each task it
    /// submits the tenant's ([`TaskSpec::tenant`](crate::scheduler::TaskSpec::tenant), whatever the body
    /// said), so its keys are the tenant's and the tenant's quota applies;
    /// it cancels only the tenant's live tasks. The runs it starts are
    /// the tenant's (their ids, ends and steps), it signals and cancels
    /// only those, and [`TenantQuota::live_runs`](crate::scheduler::TenantQuota::live_runs)
    /// bounds them. It may not drain the cluster, define workflows nor
    /// schedule runs.
    Tenant(TenantId),
}

impl Sender {
    /// The tenant the sender acts for: a [`Sender::Tenant`]'s, or none.
    pub fn tenant(self) -> Option<TenantId> {
        match self {
            Sender::Tenant(tenant) => Some(tenant),
            Sender::Agent { .. } | Sender::Client => None,
        }
    }
}

/// `agent 1 (incarnation 2)`, `the clients` (every client of no tenant:
/// they share one identity), `tenant-1's client`.
impl fmt::Display for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sender::Agent { agent, incarnation } => {
                write!(f, "agent {} (incarnation {incarnation})", agent.get())
            }
            Sender::Client => f.write_str("the clients"),
            Sender::Tenant(tenant) => write!(f, "{tenant}'s client"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn senders_read_as_who_they_are() {
        let agent = Sender::Agent {
            agent: AgentId::new(1),
            incarnation: 2,
        };
        assert_eq!(agent.to_string(), "agent 1 (incarnation 2)");
        assert_eq!(Sender::Client.to_string(), "the clients");
        assert_eq!(
            Sender::Tenant(TenantId::new(3)).to_string(),
            "tenant-3's client"
        );
    }
}
