//! What a node tells its host: its role, and events worth a log line.

use std::fmt;
use std::time::Duration;

use crate::AgentId;

use super::super::contract::{MessageId, Sender, StoreFailure};

/// What a node is doing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// Restoring the latest snapshot and catching up with the journal.
    Starting,
    /// Tailing the journal; it takes the lease when it expires.
    Following,
    /// Leading with this epoch.
    Leading {
        /// The lease's epoch.
        epoch: u64,
    },
    /// The cluster was drained and stopped: the host ends the node.
    Stopped,
    /// The store holds something this node cannot read (a snapshot that
    /// does not restore, journal entries out of place, an answer of
    /// another kind): a person must look. The node reads it again after a
    /// backoff ([`NodeEvent::BadAnswer`]) and goes on once it reads; a
    /// host may end it instead.
    Failed(String),
}

/// Something a node did or saw that its host should log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeEvent {
    /// Restored the snapshot after `seq` (0: none) and will catch up.
    Restored {
        /// The last entry the snapshot covers.
        seq: u64,
    },
    /// Took the lease.
    TookLease {
        /// The new epoch.
        epoch: u64,
    },
    /// Leads from entry `seq` on, with `in_flight` attempts to reconcile.
    Leading {
        /// The epoch.
        epoch: u64,
        /// The last entry applied.
        seq: u64,
        /// Attempts in flight in its state.
        in_flight: usize,
    },
    /// Lost the lease; follows again.
    Deposed {
        /// The epoch it held.
        epoch: u64,
        /// Why it knows.
        cause: StoreFailure,
    },
    /// A message was refused; its verdict says why too.
    Refused {
        /// The message.
        message: MessageId,
        /// Who sent it.
        sender: Sender,
        /// Why.
        reason: String,
    },
    /// A new incarnation of a registered agent replaced the old one,
    /// whose attempts went back to the queue.
    AgentReplaced {
        /// The agent.
        agent: AgentId,
        /// The old incarnation.
        old: u64,
        /// The new one.
        new: u64,
        /// Attempts requeued.
        requeued: usize,
    },
    /// An agent missed its heartbeats; its attempts went back to the queue.
    AgentLost {
        /// The agent.
        agent: AgentId,
    },
    /// A store operation failed; the node tries again after `retry_in`.
    StoreTrouble {
        /// The operation.
        op: &'static str,
        /// What the store said.
        failure: StoreFailure,
        /// The pause before the next try.
        retry_in: Duration,
    },
    /// The store gave an answer the node cannot use: one that does not
    /// read (its role is [`Role::Failed`] until an answer reads again), or
    /// one that contradicts what the store said before (a lease lost
    /// before it could expire, a trimmed entry no snapshot covers, a
    /// consumed message handed out again). The node asks again after
    /// `retry_in`, a pause that grows while such answers go on, so a
    /// corrupt or inconsistent store cannot make it spin.
    BadAnswer {
        /// What was wrong with the answer.
        why: String,
        /// The pause before the next try.
        retry_in: Duration,
    },
    /// The cluster is draining: no submissions from here on.
    Draining,
    /// This leader stopped the drained cluster after entry `seq`.
    Stopped {
        /// The last entry.
        seq: u64,
    },
}

impl fmt::Display for NodeEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeEvent::Restored { seq } => write!(f, "restored the snapshot after entry {seq}"),
            NodeEvent::TookLease { epoch } => write!(f, "took the lease with epoch {epoch}"),
            NodeEvent::Leading {
                epoch,
                seq,
                in_flight,
            } => write!(
                f,
                "leading with epoch {epoch} from entry {seq}, {in_flight} attempts in flight"
            ),
            NodeEvent::Deposed { epoch, cause } => {
                write!(
                    f,
                    "lost the lease of epoch {epoch} ({cause}); following again"
                )
            }
            NodeEvent::Refused {
                message,
                sender,
                reason,
            } => write!(f, "refused message {message} from {sender:?}: {reason}"),
            NodeEvent::AgentReplaced {
                agent,
                old,
                new,
                requeued,
            } => write!(
                f,
                "agent {agent} restarted (incarnation {old} -> {new}); {requeued} attempts of the old one requeued"
            ),
            NodeEvent::AgentLost { agent } => {
                write!(
                    f,
                    "agent {agent} missed its heartbeats; its attempts are requeued"
                )
            }
            NodeEvent::StoreTrouble {
                op,
                failure,
                retry_in,
            } => write!(f, "{op}: {failure}; trying again in {retry_in:?}"),
            NodeEvent::BadAnswer { why, retry_in } => write!(
                f,
                "the store's answer cannot be used ({why}); trying again in {retry_in:?}"
            ),
            NodeEvent::Draining => write!(f, "draining: submissions are refused from here on"),
            NodeEvent::Stopped { seq } => {
                write!(f, "stopped the drained cluster after entry {seq}")
            }
        }
    }
}
