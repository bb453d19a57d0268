//! The envelope every message travels in, its validation and its
//! conversions.

use std::fmt;
use std::time::Duration;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};

use super::{Body, Inbound, ProtocolError};
use crate::scheduler::{Action, Metadata, TaskReport};
use crate::{AgentId, Instant, Priority};

/// The protocol version this build speaks. A message with another version is
/// refused with [`ProtocolError::UnsupportedVersion`].
pub const PROTOCOL_VERSION: u16 = 1;

/// Names one message. Chosen by the sender; unique per sender is enough for
/// correlation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageId(u64);

impl MessageId {
    /// Wraps a raw value.
    pub const fn new(raw: u64) -> Self {
        MessageId(raw)
    }

    /// The raw value.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl From<u64> for MessageId {
    fn from(raw: u64) -> Self {
        MessageId(raw)
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "msg-{}", self.0)
    }
}

/// One end of a conversation: the orchestrator (the host that owns the
/// [`Dispatcher`](crate::scheduler::Dispatcher)) or one agent.
///
/// On the wire: `"orchestrator"` or `{"agent": 7}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// The orchestrator.
    Orchestrator,
    /// An agent.
    Agent(AgentId),
}

impl Endpoint {
    /// The agent's id, or `None` for the orchestrator.
    pub const fn agent(self) -> Option<AgentId> {
        match self {
            Endpoint::Agent(agent) => Some(agent),
            Endpoint::Orchestrator => None,
        }
    }

    /// Whether this is the orchestrator.
    pub const fn is_orchestrator(self) -> bool {
        matches!(self, Endpoint::Orchestrator)
    }
}

impl From<AgentId> for Endpoint {
    fn from(agent: AgentId) -> Self {
        Endpoint::Agent(agent)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Orchestrator => f.write_str("orchestrator"),
            Endpoint::Agent(agent) => write!(f, "{agent}"),
        }
    }
}

/// One message between the orchestrator and an agent: routing and timing
/// metadata around a [`Body`].
///
/// A valid envelope has the current [`PROTOCOL_VERSION`], a body that its
/// sender may send to its recipient (see
/// [`BodyKind::sent_by_agent`](super::BodyKind::sent_by_agent)), no
/// correlation to itself, a non-zero TTL and, for progress, a fraction
/// within `[0, 1]`. The constructors ([`new`](Self::new),
/// [`from_agent`](Self::from_agent), [`to_agent`](Self::to_agent),
/// [`reply`](Self::reply), [`from_action`](Self::from_action)) and setters
/// keep it valid; the fields are public for hosts that build or inspect
/// messages by hand, and every way in — deserialization from any serde
/// format, and [`into_inbound`](Self::into_inbound) — runs
/// [`validate`](Self::validate), so an invalid envelope is refused with a
/// typed error rather than applied.
///
/// `sent_at` is the sender's clock. The dispatcher runs on the host's clock
/// only: [`Inbound::apply_to`] takes `now` from the host.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Envelope<P> {
    /// Protocol version, [`PROTOCOL_VERSION`] when built by this crate.
    pub version: u16,
    /// This message's id.
    pub id: MessageId,
    /// The message this one answers, if any.
    pub correlation_id: Option<MessageId>,
    /// Who sends it.
    pub sender: Endpoint,
    /// Whom it is for.
    pub recipient: Endpoint,
    /// When the sender sent it, on the sender's clock.
    pub sent_at: Instant,
    /// Delivery priority, a hint for the transport.
    pub priority: Priority,
    /// How long after `sent_at` the message stays worth acting on; `None`:
    /// forever. See [`is_expired`](Self::is_expired).
    pub ttl: Option<Duration>,
    /// What it says.
    pub body: Body<P>,
}

impl<P> Envelope<P> {
    /// A message from `sender` to `recipient` with the current protocol
    /// version, normal priority, no correlation and no TTL.
    ///
    /// # Errors
    ///
    /// [`ProtocolError::WrongSender`] or [`ProtocolError::WrongRecipient`]
    /// when the body does not travel in that direction, and
    /// [`ProtocolError::FractionOutOfRange`] for a bad progress fraction.
    pub fn new(
        id: MessageId,
        sender: Endpoint,
        recipient: Endpoint,
        sent_at: Instant,
        body: Body<P>,
    ) -> Result<Self, ProtocolError> {
        let envelope = Envelope {
            version: PROTOCOL_VERSION,
            id,
            correlation_id: None,
            sender,
            recipient,
            sent_at,
            priority: Priority::Normal,
            ttl: None,
            body,
        };
        envelope.validate()?;
        Ok(envelope)
    }

    /// A message from `agent` to the orchestrator; see [`new`](Self::new).
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new): an orchestrator body ([`Body::Assign`],
    /// [`Body::Cancel`]) or a bad progress fraction.
    pub fn from_agent(
        agent: AgentId,
        id: MessageId,
        sent_at: Instant,
        body: Body<P>,
    ) -> Result<Self, ProtocolError> {
        Self::new(
            id,
            Endpoint::Agent(agent),
            Endpoint::Orchestrator,
            sent_at,
            body,
        )
    }

    /// A message from the orchestrator to `agent`; see [`new`](Self::new).
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new): an agent body such as [`Body::Heartbeat`].
    pub fn to_agent(
        agent: AgentId,
        id: MessageId,
        sent_at: Instant,
        body: Body<P>,
    ) -> Result<Self, ProtocolError> {
        Self::new(
            id,
            Endpoint::Orchestrator,
            Endpoint::Agent(agent),
            sent_at,
            body,
        )
    }

    /// An answer to this message: sender and recipient swapped,
    /// `correlation_id` set to this message's id, same priority, no TTL.
    ///
    /// ```
    /// use taskweave::protocol::{Body, Endpoint, Envelope, MessageId};
    /// use taskweave::{AgentId, AttemptToken, Instant, TaskId};
    ///
    /// let (task, token) = (TaskId::new(1), AttemptToken::new(1));
    /// let assign = Envelope::to_agent(AgentId::new(3), MessageId::new(10), Instant::ZERO,
    ///     Body::Assign { task, token, attempt: 1, payload: Some("job"), metadata: Default::default() })?;
    /// let accept = assign.reply(MessageId::new(1), Instant::from_millis(2), Body::Accept { task, token })?;
    /// assert_eq!(accept.sender, Endpoint::Agent(AgentId::new(3)));
    /// assert_eq!(accept.correlation_id, Some(MessageId::new(10)));
    /// # Ok::<(), taskweave::protocol::ProtocolError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new), and [`ProtocolError::SelfCorrelation`] if `id`
    /// is this message's id.
    pub fn reply(
        &self,
        id: MessageId,
        sent_at: Instant,
        body: Body<P>,
    ) -> Result<Self, ProtocolError> {
        Self::new(id, self.recipient, self.sender, sent_at, body)?
            .with_correlation(self.id)
            .map(|reply| reply.with_priority(self.priority))
    }

    /// Marks this message as an answer to `id`.
    ///
    /// # Errors
    ///
    /// [`ProtocolError::SelfCorrelation`] if `id` is this message's own id.
    pub fn with_correlation(mut self, id: MessageId) -> Result<Self, ProtocolError> {
        if id == self.id {
            return Err(ProtocolError::SelfCorrelation { id });
        }
        self.correlation_id = Some(id);
        Ok(self)
    }

    /// Sets the delivery priority.
    pub fn with_priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the time-to-live.
    ///
    /// # Errors
    ///
    /// [`ProtocolError::ZeroTtl`] for a zero duration.
    pub fn with_ttl(mut self, ttl: Duration) -> Result<Self, ProtocolError> {
        if ttl.is_zero() {
            return Err(ProtocolError::ZeroTtl { id: self.id });
        }
        self.ttl = Some(ttl);
        Ok(self)
    }

    /// Checks every rule a valid envelope obeys (see the [type docs](Self)).
    /// Deserialization and [`into_inbound`](Self::into_inbound) call it.
    ///
    /// # Errors
    ///
    /// The first rule broken, checked in this order:
    /// [`UnsupportedVersion`](ProtocolError::UnsupportedVersion),
    /// [`SelfCorrelation`](ProtocolError::SelfCorrelation),
    /// [`ZeroTtl`](ProtocolError::ZeroTtl),
    /// [`WrongSender`](ProtocolError::WrongSender),
    /// [`WrongRecipient`](ProtocolError::WrongRecipient),
    /// [`FractionOutOfRange`](ProtocolError::FractionOutOfRange).
    pub fn validate(&self) -> Result<(), ProtocolError> {
        check_version(self.version)?;
        if self.correlation_id == Some(self.id) {
            return Err(ProtocolError::SelfCorrelation { id: self.id });
        }
        if self.ttl.is_some_and(|ttl| ttl.is_zero()) {
            return Err(ProtocolError::ZeroTtl { id: self.id });
        }
        let kind = self.body.kind();
        let from_agent = kind.sent_by_agent();
        if self.sender.is_orchestrator() == from_agent {
            return Err(ProtocolError::WrongSender {
                kind,
                sender: self.sender,
            });
        }
        if self.recipient.is_orchestrator() != from_agent {
            return Err(ProtocolError::WrongRecipient {
                kind,
                recipient: self.recipient,
            });
        }
        if let Body::Progress { fraction, .. } = self.body {
            if !(0.0..=1.0).contains(&fraction) {
                return Err(ProtocolError::FractionOutOfRange { fraction });
            }
        }
        Ok(())
    }

    /// The instant the message stops being worth acting on (`sent_at + ttl`,
    /// saturating), or `None` without a TTL.
    pub fn expires_at(&self) -> Option<Instant> {
        self.ttl.map(|ttl| self.sent_at.saturating_add(ttl))
    }

    /// Whether the TTL has run out at `now` (`now >= sent_at + ttl`). An
    /// agent should not start an expired [`Body::Assign`]. Both instants
    /// are compared as given: sender and receiver must share an epoch.
    pub fn is_expired(&self, now: Instant) -> bool {
        self.expires_at().is_some_and(|at| now >= at)
    }

    /// The envelope with `metadata` on its [`Body::Assign`] (other bodies
    /// carry none and are returned unchanged): the task's
    /// [`Dispatcher::metadata`](crate::scheduler::Dispatcher::metadata), so
    /// trace context and labels reach the agent with every assignment.
    ///
    /// ```
    /// use taskweave::agent::AgentProfile;
    /// use taskweave::protocol::{Body, Envelope, MessageId};
    /// use taskweave::scheduler::{Dispatcher, DispatcherConfig, TaskSpec};
    /// use taskweave::{AgentId, Instant};
    ///
    /// let mut d = Dispatcher::new(DispatcherConfig::default());
    /// d.register_agent(AgentId::new(1), AgentProfile::builder().build()?, Instant::ZERO)?;
    /// let task = d.submit(TaskSpec::new("job").metadata("traceparent", "00-abc-01"), Instant::ZERO)?.id();
    /// let action = d.poll_action().unwrap();
    /// let message = Envelope::from_action(&action, d.payload(task).copied(), MessageId::new(1), Instant::ZERO)
    ///     .unwrap()
    ///     .with_metadata(d.metadata(task).cloned().unwrap_or_default());
    /// let Body::Assign { metadata, .. } = &message.body else { unreachable!() };
    /// assert_eq!(metadata.get("traceparent"), Some("00-abc-01"));
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    pub fn with_metadata(mut self, metadata: Metadata) -> Self {
        if let Body::Assign {
            metadata: carried, ..
        } = &mut self.body
        {
            *carried = metadata;
        }
        self
    }

    /// The message an agent must receive for a dispatcher action:
    /// [`Action::Assign`] becomes a [`Body::Assign`] carrying `payload`
    /// (the caller clones it from [`Dispatcher::payload`](crate::scheduler::Dispatcher::payload)),
    /// [`Action::Cancel`] a [`Body::Cancel`] (at [`Priority::High`], so a
    /// prioritizing transport stops wasted work first; `payload` is
    /// dropped). The other actions are notices for the host with no agent
    /// message: `None`.
    ///
    /// The envelope is sent at `now` by the orchestrator, without
    /// correlation or TTL, and without metadata: add the task's with
    /// [`with_metadata`](Self::with_metadata).
    pub fn from_action(
        action: &Action,
        payload: Option<P>,
        id: MessageId,
        now: Instant,
    ) -> Option<Self> {
        let (agent, priority, body) = match *action {
            Action::Assign {
                task,
                agent,
                token,
                attempt,
            } => (
                agent,
                Priority::Normal,
                Body::Assign {
                    task,
                    token,
                    attempt,
                    payload,
                    metadata: Default::default(),
                },
            ),
            Action::Cancel {
                task,
                agent,
                token,
                reason,
            } => (
                agent,
                Priority::High,
                Body::Cancel {
                    task,
                    token,
                    reason,
                },
            ),
            Action::DeadLettered { .. } | Action::Expired { .. } | Action::AgentLost { .. } => {
                return None;
            }
        };
        Some(Envelope {
            version: PROTOCOL_VERSION,
            id,
            correlation_id: None,
            sender: Endpoint::Orchestrator,
            recipient: Endpoint::Agent(agent),
            sent_at: now,
            priority,
            ttl: None,
            body,
        })
    }

    /// The dispatcher input an agent's message stands for, with the agent
    /// taken from the sender. Apply it with [`Inbound::apply_to`].
    ///
    /// # Errors
    ///
    /// Whatever [`validate`](Self::validate) finds, and
    /// [`ProtocolError::NotInbound`] for [`Body::Assign`] and
    /// [`Body::Cancel`], which travel the other way.
    pub fn into_inbound(self) -> Result<Inbound<P>, ProtocolError> {
        self.validate()?;
        let kind = self.body.kind();
        if !kind.sent_by_agent() {
            return Err(ProtocolError::NotInbound { kind });
        }
        let Endpoint::Agent(agent) = self.sender else {
            return Err(ProtocolError::WrongSender {
                kind,
                sender: self.sender,
            });
        };
        Ok(match self.body {
            Body::Register { profile } => Inbound::Register { agent, profile },
            Body::Deregister => Inbound::Deregister { agent },
            Body::Heartbeat => Inbound::Heartbeat { agent },
            Body::StatusUpdate { status } => Inbound::Status { agent, status },
            Body::Accept { task, token } => Inbound::Accepted { agent, task, token },
            Body::Reject {
                task,
                token,
                reason,
            } => Inbound::Rejected {
                agent,
                task,
                token,
                reason,
            },
            Body::Progress {
                task,
                token,
                fraction,
                note,
            } => Inbound::Progress {
                agent,
                task,
                token,
                fraction,
                note,
            },
            Body::Result {
                task,
                token,
                outcome,
                output,
            } => Inbound::Report {
                report: TaskReport {
                    task,
                    agent,
                    token,
                    outcome,
                },
                output,
            },
            Body::Assign { .. } | Body::Cancel { .. } => {
                return Err(ProtocolError::NotInbound { kind });
            }
        })
    }
}

fn check_version(version: u16) -> Result<(), ProtocolError> {
    if version == PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(ProtocolError::UnsupportedVersion {
            version,
            supported: PROTOCOL_VERSION,
        })
    }
}

/// A protocol version that is refused as soon as it is read, so a message
/// from another version fails with [`ProtocolError::UnsupportedVersion`]
/// before its body (whose shape may differ) is parsed — provided the version
/// comes first on the wire, as [`Envelope`]'s `Serialize` writes it. A
/// format that reorders fields (a sorted map) may report a body error
/// instead; either way the message is refused.
struct WireVersion(u16);

impl<'de> Deserialize<'de> for WireVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let version = u16::deserialize(deserializer)?;
        check_version(version).map_err(D::Error::custom)?;
        Ok(WireVersion(version))
    }
}

/// The wire form of [`Envelope`], before validation.
#[derive(Deserialize)]
#[serde(rename = "Envelope")]
struct RawEnvelope<P> {
    version: WireVersion,
    id: MessageId,
    correlation_id: Option<MessageId>,
    sender: Endpoint,
    recipient: Endpoint,
    sent_at: Instant,
    priority: Priority,
    ttl: Option<Duration>,
    body: Body<P>,
}

impl<'de, P: Deserialize<'de>> Deserialize<'de> for Envelope<P> {
    /// Decodes and [validates](Envelope::validate): an invalid message is a
    /// decoding error carrying the [`ProtocolError`]'s message.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = RawEnvelope::<P>::deserialize(deserializer)?;
        let envelope = Envelope {
            version: raw.version.0,
            id: raw.id,
            correlation_id: raw.correlation_id,
            sender: raw.sender,
            recipient: raw.recipient,
            sent_at: raw.sent_at,
            priority: raw.priority,
            ttl: raw.ttl,
            body: raw.body,
        };
        envelope.validate().map_err(D::Error::custom)?;
        Ok(envelope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::BodyKind;

    const AGENT: Endpoint = Endpoint::Agent(AgentId::new(4));

    fn sample(kind: BodyKind) -> Body<u8> {
        use crate::agent::{AgentProfile, AgentStatus};
        use crate::scheduler::{AttemptOutcome, CancelReason};
        use crate::{AttemptToken, TaskId};

        let (task, token) = (TaskId::new(1), AttemptToken::new(2));
        match kind {
            BodyKind::Register => Body::Register {
                profile: AgentProfile::builder().build().unwrap(),
            },
            BodyKind::Deregister => Body::Deregister,
            BodyKind::Heartbeat => Body::Heartbeat,
            BodyKind::StatusUpdate => Body::StatusUpdate {
                status: AgentStatus::Draining,
            },
            BodyKind::Accept => Body::Accept { task, token },
            BodyKind::Reject => Body::Reject {
                task,
                token,
                reason: crate::protocol::RejectReason::Busy,
            },
            BodyKind::Progress => Body::Progress {
                task,
                token,
                fraction: 0.5,
                note: None,
            },
            BodyKind::Result => Body::Result {
                task,
                token,
                outcome: AttemptOutcome::Success,
                output: Some(7),
            },
            BodyKind::Assign => Body::Assign {
                task,
                token,
                attempt: 1,
                payload: Some(3),
                metadata: Default::default(),
            },
            BodyKind::Cancel => Body::Cancel {
                task,
                token,
                reason: CancelReason::Cancelled,
            },
        }
    }

    fn envelope(kind: BodyKind) -> Envelope<u8> {
        let (sender, recipient) = if kind.sent_by_agent() {
            (AGENT, Endpoint::Orchestrator)
        } else {
            (Endpoint::Orchestrator, AGENT)
        };
        Envelope::new(
            MessageId::new(9),
            sender,
            recipient,
            Instant::ZERO,
            sample(kind),
        )
        .unwrap()
    }

    #[test]
    fn ids_and_endpoints_display_with_their_kind() {
        assert_eq!(MessageId::from(5).to_string(), "msg-5");
        assert_eq!(MessageId::new(5).get(), 5);
        assert_eq!(Endpoint::Orchestrator.to_string(), "orchestrator");
        assert_eq!(Endpoint::from(AgentId::new(2)).to_string(), "agent-2");
        assert_eq!(AGENT.agent(), Some(AgentId::new(4)));
        assert_eq!(Endpoint::Orchestrator.agent(), None);
    }

    #[test]
    fn every_kind_travels_only_in_its_direction() {
        for kind in BodyKind::ALL {
            let good = envelope(kind);
            assert_eq!(good.body.kind(), kind);
            assert_eq!(good.validate(), Ok(()));

            let mut reversed = good.clone();
            std::mem::swap(&mut reversed.sender, &mut reversed.recipient);
            assert!(matches!(
                reversed.validate(),
                Err(ProtocolError::WrongSender { kind: k, .. }) if k == kind
            ));

            let mut sideways = good.clone();
            if kind.sent_by_agent() {
                sideways.recipient = Endpoint::Agent(AgentId::new(5));
            } else {
                sideways.recipient = Endpoint::Orchestrator;
            }
            assert!(matches!(
                sideways.validate(),
                Err(ProtocolError::WrongRecipient { kind: k, .. }) if k == kind
            ));
        }
    }

    #[test]
    fn version_is_checked_first() {
        let mut e = envelope(BodyKind::Heartbeat);
        e.version = 2;
        e.correlation_id = Some(e.id);
        assert_eq!(
            e.validate(),
            Err(ProtocolError::UnsupportedVersion {
                version: 2,
                supported: PROTOCOL_VERSION
            })
        );
    }

    #[test]
    fn error_messages_are_lowercase_and_carry_data() {
        let e = ProtocolError::WrongSender {
            kind: BodyKind::StatusUpdate,
            sender: Endpoint::Orchestrator,
        };
        assert_eq!(
            e.to_string(),
            "status_update messages are sent by an agent, not by orchestrator"
        );
        let e = ProtocolError::WrongRecipient {
            kind: BodyKind::Assign,
            recipient: Endpoint::Orchestrator,
        };
        assert_eq!(
            e.to_string(),
            "assign messages are addressed to an agent, not to orchestrator"
        );
        let e = ProtocolError::FractionOutOfRange { fraction: 1.5 };
        assert_eq!(
            e.to_string(),
            "progress fraction must be within [0, 1], got 1.5"
        );
        let e = ProtocolError::UnsupportedVersion {
            version: 99,
            supported: 1,
        };
        assert!(e.to_string().starts_with("unsupported protocol version 99"));
    }
}
