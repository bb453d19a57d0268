//! What a message says.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::agent::{AgentProfile, AgentStatus};
use crate::scheduler::{AttemptOutcome, CancelReason, Metadata};
use crate::{AttemptToken, TaskId};

/// The content of an [`Envelope`](super::Envelope), generic over the host's
/// payload type `P` (the `P` of [`Dispatcher<P, _>`](crate::scheduler::Dispatcher)):
/// an assignment carries the task's payload and a result may carry an output
/// of the same type.
///
/// The first eight variants are sent by an agent to the orchestrator;
/// [`Assign`](Body::Assign) and [`Cancel`](Body::Cancel) by the
/// orchestrator to an agent ([`BodyKind::sent_by_agent`]).
///
/// On the wire the body is adjacently tagged, `{"type": "assign", "data":
/// {…}}`, with snake-case type names; bodies without fields carry no
/// `data`. Adjacent tagging keeps the format usable with non-self-describing
/// serde formats as well as JSON, CBOR or MessagePack.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Body<P> {
    /// An agent announces itself and what it can do.
    Register {
        /// Its capabilities, capacity and labels (validated when decoded).
        profile: AgentProfile,
    },
    /// An agent leaves; the tasks it holds go back to the queue.
    Deregister,
    /// An agent is alive.
    Heartbeat,
    /// An agent changes its own status (for example to `Draining` before a
    /// shutdown).
    StatusUpdate {
        /// The new status.
        status: AgentStatus,
    },
    /// An agent confirms it started an assigned attempt.
    Accept {
        /// The task.
        task: TaskId,
        /// The attempt's fencing token, from the [`Assign`](Body::Assign).
        token: AttemptToken,
    },
    /// An agent refuses an assigned attempt.
    Reject {
        /// The task.
        task: TaskId,
        /// The attempt's fencing token.
        token: AttemptToken,
        /// Why.
        reason: RejectReason,
    },
    /// An agent reports how far an attempt has got.
    Progress {
        /// The task.
        task: TaskId,
        /// The attempt's fencing token.
        token: AttemptToken,
        /// Share of the work done, within `[0, 1]`.
        fraction: f32,
        /// Free text for humans.
        note: Option<String>,
    },
    /// An agent reports how an attempt ended.
    Result {
        /// The task.
        task: TaskId,
        /// The attempt's fencing token.
        token: AttemptToken,
        /// Success or failure.
        outcome: AttemptOutcome,
        /// What the attempt produced, if anything.
        output: Option<P>,
    },
    /// The orchestrator hands an agent one attempt of a task.
    Assign {
        /// The task.
        task: TaskId,
        /// Fencing token: every answer about this attempt must carry it.
        token: AttemptToken,
        /// 1 for the first attempt.
        attempt: u32,
        /// The task's payload, if the orchestrator sends it along.
        payload: Option<P>,
        /// The task's metadata ([`TaskSpec::metadata`](crate::scheduler::TaskSpec::metadata)):
        /// trace context, tenant, labels. Absent from the JSON when empty,
        /// and bounded when read.
        #[serde(default, skip_serializing_if = "Metadata::is_empty")]
        metadata: Metadata,
    },
    /// The orchestrator stops an attempt; any result it still sends will be
    /// rejected.
    Cancel {
        /// The task.
        task: TaskId,
        /// The attempt to stop.
        token: AttemptToken,
        /// Why.
        reason: CancelReason,
    },
}

impl<P> Body<P> {
    /// Which kind of message this is.
    pub fn kind(&self) -> BodyKind {
        match self {
            Body::Register { .. } => BodyKind::Register,
            Body::Deregister => BodyKind::Deregister,
            Body::Heartbeat => BodyKind::Heartbeat,
            Body::StatusUpdate { .. } => BodyKind::StatusUpdate,
            Body::Accept { .. } => BodyKind::Accept,
            Body::Reject { .. } => BodyKind::Reject,
            Body::Progress { .. } => BodyKind::Progress,
            Body::Result { .. } => BodyKind::Result,
            Body::Assign { .. } => BodyKind::Assign,
            Body::Cancel { .. } => BodyKind::Cancel,
        }
    }
}

/// The kind of a [`Body`], without its data; displayed as its wire name
/// (`status_update`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum BodyKind {
    /// [`Body::Register`].
    Register,
    /// [`Body::Deregister`].
    Deregister,
    /// [`Body::Heartbeat`].
    Heartbeat,
    /// [`Body::StatusUpdate`].
    StatusUpdate,
    /// [`Body::Accept`].
    Accept,
    /// [`Body::Reject`].
    Reject,
    /// [`Body::Progress`].
    Progress,
    /// [`Body::Result`].
    Result,
    /// [`Body::Assign`].
    Assign,
    /// [`Body::Cancel`].
    Cancel,
}

impl BodyKind {
    /// Every kind, agent messages first.
    pub const ALL: [BodyKind; 10] = [
        BodyKind::Register,
        BodyKind::Deregister,
        BodyKind::Heartbeat,
        BodyKind::StatusUpdate,
        BodyKind::Accept,
        BodyKind::Reject,
        BodyKind::Progress,
        BodyKind::Result,
        BodyKind::Assign,
        BodyKind::Cancel,
    ];

    /// Whether agents send this kind to the orchestrator (`true`) or the
    /// orchestrator sends it to an agent (`false`).
    pub const fn sent_by_agent(self) -> bool {
        !matches!(self, BodyKind::Assign | BodyKind::Cancel)
    }

    /// The wire name, as in the body's `type` field.
    pub const fn name(self) -> &'static str {
        match self {
            BodyKind::Register => "register",
            BodyKind::Deregister => "deregister",
            BodyKind::Heartbeat => "heartbeat",
            BodyKind::StatusUpdate => "status_update",
            BodyKind::Accept => "accept",
            BodyKind::Reject => "reject",
            BodyKind::Progress => "progress",
            BodyKind::Result => "result",
            BodyKind::Assign => "assign",
            BodyKind::Cancel => "cancel",
        }
    }

    pub(super) const fn expected_sender(self) -> &'static str {
        if self.sent_by_agent() {
            "an agent"
        } else {
            "the orchestrator"
        }
    }

    pub(super) const fn expected_recipient(self) -> &'static str {
        if self.sent_by_agent() {
            "the orchestrator"
        } else {
            "an agent"
        }
    }
}

impl fmt::Display for BodyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why an agent refused an assignment.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RejectReason {
    /// No free capacity right now.
    Busy,
    /// The agent cannot do this task.
    Incapable,
    /// The agent is shutting down.
    ShuttingDown,
    /// Anything else, in the agent's words.
    Other(String),
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RejectReason::Busy => f.write_str("busy"),
            RejectReason::Incapable => f.write_str("incapable"),
            RejectReason::ShuttingDown => f.write_str("shutting down"),
            RejectReason::Other(reason) => write!(f, "{reason:?}"),
        }
    }
}
