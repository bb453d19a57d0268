//! Messages between the orchestrator and its agents, and their conversion
//! to and from dispatcher inputs and actions.
//!
//! The library reads no socket: the host carries messages over whatever
//! transport it likes (HTTP, a message queue, stdin/stdout of a child
//! process), encoded with any serde format. This module fixes what the
//! messages *are*:
//!
//! * [`Envelope`] — version, [`MessageId`], optional correlation id, sender
//!   and recipient ([`Endpoint`]), send instant, delivery [`Priority`](crate::Priority),
//!   optional TTL — around a [`Body`], generic over the host's payload type
//!   `P` so an assignment carries the task's payload and a result its output.
//! * Validation. Serde alone cannot refuse a well-formed but contradictory
//!   message, so deserializing an [`Envelope`] from *any* format runs
//!   [`Envelope::validate`]: a wrong [`PROTOCOL_VERSION`], an agent message
//!   sent by the orchestrator or addressed to an agent (and the reverse for
//!   [`Body::Assign`] and [`Body::Cancel`]), a progress fraction outside
//!   `[0, 1]`, a message correlated to itself or a zero TTL is a decoding
//!   error carrying a [`ProtocolError`] message, never a value. The
//!   version is checked as soon as it is read, so a message from another
//!   version is refused with [`ProtocolError::UnsupportedVersion`] even if
//!   its body has a shape this build does not know.
//! * Inbound: [`Envelope::into_inbound`] turns an agent's message into an
//!   [`Inbound`], and [`Inbound::apply_to`] calls the matching
//!   [`Dispatcher`](crate::scheduler::Dispatcher) method at the host's
//!   `now`. Fencing is the dispatcher's: a result, rejection, acceptance or
//!   progress message for an attempt the agent no longer holds is refused.
//! * Outbound: [`Envelope::from_action`] turns
//!   [`Action::Assign`](crate::scheduler::Action::Assign) and
//!   [`Action::Cancel`](crate::scheduler::Action::Cancel) into messages for
//!   the agent concerned.
//!
//! | body | from → to | inbound / dispatcher call |
//! |---|---|---|
//! | `register` | agent → orchestrator | `register_agent` |
//! | `deregister` | agent → orchestrator | `unregister_agent` |
//! | `heartbeat` | agent → orchestrator | `heartbeat` |
//! | `status_update` | agent → orchestrator | `set_agent_status` |
//! | `accept` | agent → orchestrator | fencing check only |
//! | `reject` | agent → orchestrator | `report` of a retryable failure |
//! | `progress` | agent → orchestrator | fencing check only |
//! | `result` | agent → orchestrator | `report` |
//! | `assign` | orchestrator → agent | from `Action::Assign` |
//! | `cancel` | orchestrator → agent | from `Action::Cancel` |
//!
//! In JSON a heartbeat reads:
//!
//! ```json
//! {"version":1,"id":12,"correlation_id":null,"sender":{"agent":7},"recipient":"orchestrator",
//!  "sent_at":5000000000,"priority":"Normal","ttl":null,"body":{"type":"heartbeat"}}
//! ```
//!
//! `sent_at` is the sender's clock, kept for tracing and
//! [TTL checks](Envelope::is_expired); the dispatcher itself only ever sees
//! the host's `now`.
//!
//! ## Example
//!
//! An agent registers, receives an assignment and reports its result, every
//! message going through JSON:
//!
//! ```
//! use taskweave::agent::AgentProfile;
//! use taskweave::protocol::{Body, Endpoint, Envelope, Handled, MessageId};
//! use taskweave::scheduler::{AttemptOutcome, Dispatcher, DispatcherConfig, TaskSpec, TaskState};
//! use taskweave::{AgentId, Instant};
//!
//! let mut dispatcher: Dispatcher<String> = Dispatcher::new(DispatcherConfig::default());
//! let agent = AgentId::new(7);
//!
//! // The agent registers.
//! let profile = AgentProfile::builder().capabilities(["summarize"]).capacity(2).build()?;
//! let hello = Envelope::<String>::from_agent(agent, MessageId::new(1), Instant::ZERO, Body::Register { profile })?;
//! let wire = serde_json::to_string(&hello)?;
//!
//! // The orchestrator decodes (and so validates) it and applies it.
//! let received: Envelope<String> = serde_json::from_str(&wire)?;
//! received.into_inbound()?.apply_to(&mut dispatcher, Instant::from_millis(1))?;
//!
//! // The host submits a task; the dispatcher assigns it to the agent.
//! let now = Instant::from_millis(5);
//! let task = dispatcher.submit(TaskSpec::new("summarize report 42".to_string()), now)?.id();
//! let action = dispatcher.poll_action().ok_or("no action")?;
//! let payload = dispatcher.payload(task).cloned();
//! let assign = Envelope::from_action(&action, payload, MessageId::new(100), now).ok_or("not for an agent")?;
//! assert_eq!(assign.recipient, Endpoint::Agent(agent));
//! let wire = serde_json::to_string(&assign)?;
//!
//! // The agent does the work and answers with the attempt's token.
//! let assign: Envelope<String> = serde_json::from_str(&wire)?;
//! let Body::Assign { task, token, payload: Some(text), .. } = &assign.body else { panic!("not an assignment") };
//! let result = assign.reply(MessageId::new(2), Instant::from_millis(40), Body::Result {
//!     task: *task,
//!     token: *token,
//!     outcome: AttemptOutcome::Success,
//!     output: Some(text.to_uppercase()),
//! })?;
//! let wire = serde_json::to_string(&result)?;
//!
//! // The orchestrator applies the result and gets the output back.
//! let handled = serde_json::from_str::<Envelope<String>>(&wire)?
//!     .into_inbound()?
//!     .apply_to(&mut dispatcher, Instant::from_millis(41))?;
//! assert_eq!(handled, Handled::Reported { task: *task, output: Some("SUMMARIZE REPORT 42".into()) });
//! assert_eq!(dispatcher.task_state(*task), Some(TaskState::Completed));
//!
//! // A message from another protocol version is refused while decoding.
//! let future = wire.replace("\"version\":1", "\"version\":99");
//! let err = serde_json::from_str::<Envelope<String>>(&future).unwrap_err();
//! assert!(err.to_string().starts_with("unsupported protocol version 99"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![cfg(feature = "serde")]

mod body;
mod envelope;
mod error;
mod inbound;

pub use body::{Body, BodyKind, RejectReason};
pub use envelope::{Endpoint, Envelope, MessageId, PROTOCOL_VERSION};
pub use error::ProtocolError;
pub use inbound::{Handled, Inbound};
