//! Why a protocol message was refused.

use thiserror::Error;

use super::{BodyKind, Endpoint, MessageId};

/// Why an [`Envelope`](super::Envelope) is invalid, or cannot be turned into
/// a dispatcher input.
///
/// Deserializing an envelope runs the same checks as
/// [`Envelope::validate`](super::Envelope::validate); through a format crate
/// such as `serde_json` the error then arrives as that crate's error, with
/// this error's message.
#[derive(Clone, Debug, PartialEq, Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The message speaks another protocol version.
    #[error("unsupported protocol version {version} (this build speaks version {supported})")]
    UnsupportedVersion {
        /// The version the message carried.
        version: u16,
        /// The version this build speaks, [`PROTOCOL_VERSION`](super::PROTOCOL_VERSION).
        supported: u16,
    },
    /// The body may not be sent by this endpoint: agent messages come from
    /// an agent, assignments and cancellations from the orchestrator.
    #[error("{kind} messages are sent by {}, not by {sender}", .kind.expected_sender())]
    WrongSender {
        /// What the message is.
        kind: BodyKind,
        /// Who sent it.
        sender: Endpoint,
    },
    /// The body may not be addressed to this endpoint: agent messages go to
    /// the orchestrator, assignments and cancellations to an agent.
    #[error("{kind} messages are addressed to {}, not to {recipient}", .kind.expected_recipient())]
    WrongRecipient {
        /// What the message is.
        kind: BodyKind,
        /// Whom it was addressed to.
        recipient: Endpoint,
    },
    /// A progress fraction outside `[0, 1]`, or NaN.
    #[error("progress fraction must be within [0, 1], got {fraction}")]
    FractionOutOfRange {
        /// The fraction the message carried.
        fraction: f32,
    },
    /// A message that names itself as the message it answers.
    #[error("message {id} names itself as its correlation id")]
    SelfCorrelation {
        /// The message.
        id: MessageId,
    },
    /// A time-to-live of zero: the message would be expired when sent.
    #[error("message {id} has a ttl of zero")]
    ZeroTtl {
        /// The message.
        id: MessageId,
    },
    /// An orchestrator-to-agent message handed to
    /// [`Envelope::into_inbound`](super::Envelope::into_inbound).
    #[error("{kind} messages go from the orchestrator to an agent and are not dispatcher inputs")]
    NotInbound {
        /// What the message is.
        kind: BodyKind,
    },
}
