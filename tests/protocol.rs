//! The orchestrator ⇄ agent protocol: wire format, validation and the
//! conversions to and from the dispatcher.

#![cfg(feature = "serde")]

mod corrupt;

use std::time::Duration;

use proptest::prelude::*;
use serde_json::{Value, json};
use taskweave::agent::{AgentProfile, AgentStatus, RegistryError};
use taskweave::protocol::{
    Body, BodyKind, Endpoint, Envelope, Handled, Inbound, MessageId, PROTOCOL_VERSION,
    ProtocolError, RejectReason,
};
use taskweave::resilience::Fixed;
use taskweave::scheduler::{
    Action, AttemptOutcome, CancelReason, DeadLetterReason, Dispatcher, DispatcherConfig, Expiry,
    ReportError, SchedulerError, TaskReport, TaskSpec, TaskState,
};
use taskweave::{AgentId, AttemptToken, Instant, Priority, TaskId};

type Env = Envelope<String>;

const A: AgentId = AgentId::new(7);
const B: AgentId = AgentId::new(8);
const TASK: TaskId = TaskId::new(3);
const TOKEN: AttemptToken = AttemptToken::new(11);

fn ms(millis: u64) -> Instant {
    Instant::from_millis(millis)
}

fn profile() -> AgentProfile {
    AgentProfile::builder()
        .capabilities(["gpu", "python"])
        .capacity(2)
        .weight(3)
        .priority(5)
        .cost_per_task(0.25)
        .label("zone", "eu")
        .build()
        .unwrap()
}

/// A valid envelope for `body`, travelling in the body's direction.
fn envelope(body: Body<String>) -> Env {
    if body.kind().sent_by_agent() {
        Envelope::from_agent(A, MessageId::new(1), ms(5), body).unwrap()
    } else {
        Envelope::to_agent(A, MessageId::new(1), ms(5), body).unwrap()
    }
}

/// Serializes to JSON and back; the result must equal the original.
fn json_round_trip(original: &Env) -> Env {
    let json = serde_json::to_string(original).unwrap();
    let back: Env = serde_json::from_str(&json).unwrap();
    assert_eq!(&back, original, "{json}");
    back
}

/// The message serde_json gives when decoding `value` as an envelope.
fn decode_error(value: Value) -> String {
    serde_json::from_value::<Env>(value)
        .unwrap_err()
        .to_string()
}

/// `envelope` breaks exactly `expected`: `validate`, `into_inbound` and
/// decoding from JSON all refuse it.
fn assert_refused(envelope: Env, expected: ProtocolError) {
    assert_eq!(envelope.validate(), Err(expected.clone()));
    let json = serde_json::to_value(&envelope).unwrap();
    let message = decode_error(json);
    assert!(
        message.starts_with(&expected.to_string()),
        "{message:?} should start with {expected}"
    );
    assert_eq!(envelope.into_inbound(), Err(expected));
}

fn dispatcher() -> Dispatcher<String> {
    let config = DispatcherConfig::builder()
        .retry_policy(Fixed::new(Duration::from_secs(1), 5).unwrap())
        .build()
        .unwrap();
    Dispatcher::new(config)
}

/// Applies an agent message the way a host would: JSON in, dispatcher call.
fn deliver(
    d: &mut Dispatcher<String>,
    message: &Env,
    now: Instant,
) -> Result<Handled<String>, taskweave::Error> {
    let wire = serde_json::to_string(message).unwrap();
    let received: Env = serde_json::from_str(&wire).unwrap();
    received
        .into_inbound()
        .unwrap()
        .apply_to(d, now)
        .map_err(taskweave::Error::from)
}

fn register(d: &mut Dispatcher<String>, agent: AgentId) {
    let hello = Envelope::from_agent(
        agent,
        MessageId::new(1),
        ms(0),
        Body::Register { profile: profile() },
    )
    .unwrap();
    assert_eq!(deliver(d, &hello, ms(0)), Ok(Handled::Done));
}

/// Submits one task and returns its assignment (task, agent, token, attempt).
fn submit_and_assign(
    d: &mut Dispatcher<String>,
    now: Instant,
) -> (TaskId, AgentId, AttemptToken, u32) {
    let task = d.submit(TaskSpec::new("job".into()), now).unwrap().id();
    match d.poll_action() {
        Some(Action::Assign {
            task: assigned,
            agent,
            token,
            attempt,
        }) if assigned == task => (task, agent, token, attempt),
        other => panic!("expected an assignment of {task}, got {other:?}"),
    }
}

// ----- wire format: a JSON round trip per body ------------------------------

#[test]
fn register_round_trips() {
    json_round_trip(&envelope(Body::Register { profile: profile() }));
    json_round_trip(&envelope(Body::Register {
        profile: AgentProfile::builder().build().unwrap(),
    }));
}

#[test]
fn deregister_round_trips() {
    json_round_trip(&envelope(Body::Deregister));
}

#[test]
fn heartbeat_round_trips() {
    json_round_trip(&envelope(Body::Heartbeat));
}

#[test]
fn status_update_round_trips_for_every_status() {
    for status in [
        AgentStatus::Online,
        AgentStatus::Draining,
        AgentStatus::Offline,
        AgentStatus::Unhealthy,
    ] {
        json_round_trip(&envelope(Body::StatusUpdate { status }));
    }
}

#[test]
fn accept_round_trips() {
    json_round_trip(&envelope(Body::Accept {
        task: TASK,
        token: TOKEN,
    }));
}

#[test]
fn reject_round_trips_for_every_reason() {
    for reason in [
        RejectReason::Busy,
        RejectReason::Incapable,
        RejectReason::ShuttingDown,
        RejectReason::Other("disk full".into()),
    ] {
        json_round_trip(&envelope(Body::Reject {
            task: TASK,
            token: TOKEN,
            reason,
        }));
    }
}

#[test]
fn progress_round_trips_including_the_bounds() {
    for (fraction, note) in [
        (0.0, None),
        (0.25, Some("parsing".to_string())),
        (1.0, Some(String::new())),
    ] {
        json_round_trip(&envelope(Body::Progress {
            task: TASK,
            token: TOKEN,
            fraction,
            note,
        }));
    }
}

#[test]
fn result_round_trips_for_every_outcome() {
    for (outcome, output) in [
        (AttemptOutcome::Success, Some("42".to_string())),
        (AttemptOutcome::Success, None),
        (AttemptOutcome::failure("timeout"), None),
        (AttemptOutcome::fatal("bad input"), Some("partial".into())),
    ] {
        json_round_trip(&envelope(Body::Result {
            task: TASK,
            token: TOKEN,
            outcome,
            output,
        }));
    }
}

#[test]
fn assign_round_trips_with_and_without_payload() {
    for payload in [Some("summarize".to_string()), None] {
        json_round_trip(&envelope(Body::Assign {
            task: TASK,
            token: TOKEN,
            attempt: 2,
            payload,
            metadata: Default::default(),
        }));
    }
}

#[test]
fn cancel_round_trips_for_every_reason() {
    for reason in [
        CancelReason::Cancelled,
        CancelReason::Expired,
        CancelReason::TimedOut,
        CancelReason::AgentLost,
        CancelReason::Preempted,
    ] {
        json_round_trip(&envelope(Body::Cancel {
            task: TASK,
            token: TOKEN,
            reason,
        }));
    }
}

#[test]
fn envelope_metadata_round_trips() {
    let e = envelope(Body::Heartbeat)
        .with_correlation(MessageId::new(99))
        .unwrap()
        .with_ttl(Duration::from_millis(1_500))
        .unwrap()
        .with_priority(Priority::Critical);
    let back = json_round_trip(&e);
    assert_eq!(back.correlation_id, Some(MessageId::new(99)));
    assert_eq!(back.ttl, Some(Duration::from_millis(1_500)));
    assert_eq!(back.priority, Priority::Critical);
    assert_eq!(back.version, PROTOCOL_VERSION);
}

#[test]
fn wire_format_is_stable() {
    let heartbeat =
        Envelope::<String>::from_agent(A, MessageId::new(12), ms(5_000), Body::Heartbeat).unwrap();
    assert_eq!(
        serde_json::to_value(&heartbeat).unwrap(),
        json!({
            "version": 1, "id": 12, "correlation_id": null,
            "sender": {"agent": 7}, "recipient": "orchestrator",
            "sent_at": 5_000_000_000u64, "priority": "Normal", "ttl": null,
            "body": {"type": "heartbeat"}
        })
    );
    let assign = envelope(Body::Assign {
        task: TASK,
        token: TOKEN,
        attempt: 1,
        payload: Some("job".into()),
        metadata: Default::default(),
    });
    assert_eq!(
        serde_json::to_value(&assign).unwrap()["body"],
        json!({"type": "assign", "data": {"task": 3, "token": 11, "attempt": 1, "payload": "job"}})
    );
    let status = envelope(Body::StatusUpdate {
        status: AgentStatus::Draining,
    });
    assert_eq!(
        serde_json::to_value(&status).unwrap()["body"],
        json!({"type": "status_update", "data": {"status": "Draining"}})
    );
}

#[test]
fn body_kinds_match_wire_names() {
    let samples = samples();
    let kinds: Vec<BodyKind> = samples.iter().map(Body::kind).collect();
    assert_eq!(kinds, BodyKind::ALL);
    for body in samples {
        let kind = body.kind();
        let value = serde_json::to_value(envelope(body)).unwrap();
        assert_eq!(value["body"]["type"], kind.name());
        assert_eq!(kind.to_string(), kind.name());
    }
}

/// One body of every kind, in [`BodyKind::ALL`] order.
fn samples() -> Vec<Body<String>> {
    vec![
        Body::Register { profile: profile() },
        Body::Deregister,
        Body::Heartbeat,
        Body::StatusUpdate {
            status: AgentStatus::Offline,
        },
        Body::Accept {
            task: TASK,
            token: TOKEN,
        },
        Body::Reject {
            task: TASK,
            token: TOKEN,
            reason: RejectReason::Busy,
        },
        Body::Progress {
            task: TASK,
            token: TOKEN,
            fraction: 0.5,
            note: None,
        },
        Body::Result {
            task: TASK,
            token: TOKEN,
            outcome: AttemptOutcome::Success,
            output: None,
        },
        Body::Assign {
            task: TASK,
            token: TOKEN,
            attempt: 1,
            payload: None,
            metadata: Default::default(),
        },
        Body::Cancel {
            task: TASK,
            token: TOKEN,
            reason: CancelReason::Cancelled,
        },
    ]
}

// ----- validation: one test per error ---------------------------------------

#[test]
fn another_version_is_refused_through_serde() {
    let mut value = serde_json::to_value(envelope(Body::Heartbeat)).unwrap();
    value["version"] = json!(99);
    let expected = ProtocolError::UnsupportedVersion {
        version: 99,
        supported: PROTOCOL_VERSION,
    };
    let message = decode_error(value.clone());
    assert!(message.starts_with(&expected.to_string()), "{message}");
    assert!(message.starts_with("unsupported protocol version 99"));

    // Read in wire order (the version comes first), the version is refused
    // before a body this build cannot parse.
    let wire = serde_json::to_string(&envelope(Body::Heartbeat))
        .unwrap()
        .replace("\"version\":1", "\"version\":99")
        .replace(
            "{\"type\":\"heartbeat\"}",
            "{\"type\":\"teleport\",\"data\":{\"to\":\"mars\"}}",
        );
    assert!(wire.starts_with("{\"version\":99,") && wire.contains("teleport"));
    let message = serde_json::from_str::<Env>(&wire).unwrap_err().to_string();
    assert!(message.starts_with(&expected.to_string()), "{message}");

    let mut old = envelope(Body::Heartbeat);
    old.version = 0;
    assert_eq!(
        old.validate(),
        Err(ProtocolError::UnsupportedVersion {
            version: 0,
            supported: PROTOCOL_VERSION
        })
    );
}

#[test]
fn agent_message_from_the_orchestrator_is_refused() {
    let mut e = envelope(Body::Heartbeat);
    e.sender = Endpoint::Orchestrator;
    assert_refused(
        e,
        ProtocolError::WrongSender {
            kind: BodyKind::Heartbeat,
            sender: Endpoint::Orchestrator,
        },
    );
}

#[test]
fn agent_message_to_an_agent_is_refused() {
    let mut e = envelope(Body::Result {
        task: TASK,
        token: TOKEN,
        outcome: AttemptOutcome::Success,
        output: None,
    });
    e.recipient = Endpoint::Agent(B);
    assert_refused(
        e,
        ProtocolError::WrongRecipient {
            kind: BodyKind::Result,
            recipient: Endpoint::Agent(B),
        },
    );
}

#[test]
fn every_agent_message_from_the_orchestrator_is_refused() {
    for body in samples().into_iter().filter(|b| b.kind().sent_by_agent()) {
        let kind = body.kind();
        let mut e = envelope(body);
        e.sender = Endpoint::Orchestrator;
        assert_refused(
            e,
            ProtocolError::WrongSender {
                kind,
                sender: Endpoint::Orchestrator,
            },
        );
    }
}

#[test]
fn assignment_sent_by_an_agent_is_refused() {
    let mut e = envelope(Body::Assign {
        task: TASK,
        token: TOKEN,
        attempt: 1,
        payload: None,
        metadata: Default::default(),
    });
    e.sender = Endpoint::Agent(A);
    e.recipient = Endpoint::Orchestrator;
    assert_refused(
        e,
        ProtocolError::WrongSender {
            kind: BodyKind::Assign,
            sender: Endpoint::Agent(A),
        },
    );
    assert!(
        Envelope::<String>::from_agent(
            A,
            MessageId::new(1),
            ms(0),
            Body::Cancel {
                task: TASK,
                token: TOKEN,
                reason: CancelReason::Cancelled,
            }
        )
        .is_err()
    );
}

#[test]
fn cancel_addressed_to_the_orchestrator_is_refused() {
    let mut e = envelope(Body::Cancel {
        task: TASK,
        token: TOKEN,
        reason: CancelReason::TimedOut,
    });
    e.recipient = Endpoint::Orchestrator;
    assert_refused(
        e,
        ProtocolError::WrongRecipient {
            kind: BodyKind::Cancel,
            recipient: Endpoint::Orchestrator,
        },
    );
}

#[test]
fn progress_outside_zero_to_one_is_refused() {
    for fraction in [1.5, -0.01, f32::INFINITY, f32::NEG_INFINITY] {
        let mut e = envelope(Body::Progress {
            task: TASK,
            token: TOKEN,
            fraction: 0.5,
            note: None,
        });
        if let Body::Progress { fraction: f, .. } = &mut e.body {
            *f = fraction;
        }
        if fraction.is_finite() {
            assert_refused(e, ProtocolError::FractionOutOfRange { fraction });
        } else {
            assert_eq!(
                e.validate(),
                Err(ProtocolError::FractionOutOfRange { fraction })
            );
        }
    }
    // Through the constructor, and in JSON.
    let built = Envelope::<String>::from_agent(
        A,
        MessageId::new(1),
        ms(0),
        Body::Progress {
            task: TASK,
            token: TOKEN,
            fraction: 2.0,
            note: None,
        },
    );
    assert_eq!(
        built,
        Err(ProtocolError::FractionOutOfRange { fraction: 2.0 })
    );
    let mut value = serde_json::to_value(envelope(Body::Progress {
        task: TASK,
        token: TOKEN,
        fraction: 0.5,
        note: None,
    }))
    .unwrap();
    value["body"]["data"]["fraction"] = json!(7);
    assert!(decode_error(value).starts_with("progress fraction must be within [0, 1], got 7"));
}

#[test]
fn nan_progress_is_refused() {
    let built = Envelope::<String>::from_agent(
        A,
        MessageId::new(1),
        ms(0),
        Body::Progress {
            task: TASK,
            token: TOKEN,
            fraction: f32::NAN,
            note: None,
        },
    );
    assert!(matches!(
        built,
        Err(ProtocolError::FractionOutOfRange { fraction }) if fraction.is_nan()
    ));
    // JSON has no NaN: serde_json writes null, which does not decode.
    let mut e = envelope(Body::Progress {
        task: TASK,
        token: TOKEN,
        fraction: 0.5,
        note: None,
    });
    if let Body::Progress { fraction, .. } = &mut e.body {
        *fraction = f32::NAN;
    }
    assert!(serde_json::from_str::<Env>(&serde_json::to_string(&e).unwrap()).is_err());
    assert!(matches!(
        e.into_inbound(),
        Err(ProtocolError::FractionOutOfRange { fraction }) if fraction.is_nan()
    ));
}

#[test]
fn message_correlated_to_itself_is_refused() {
    let mut e = envelope(Body::Heartbeat);
    e.correlation_id = Some(e.id);
    assert_refused(e.clone(), ProtocolError::SelfCorrelation { id: e.id });
    assert_eq!(
        envelope(Body::Heartbeat).with_correlation(MessageId::new(1)),
        Err(ProtocolError::SelfCorrelation {
            id: MessageId::new(1)
        })
    );
}

#[test]
fn zero_ttl_is_refused() {
    let mut e = envelope(Body::Heartbeat);
    e.ttl = Some(Duration::ZERO);
    assert_refused(
        e,
        ProtocolError::ZeroTtl {
            id: MessageId::new(1),
        },
    );
    assert_eq!(
        envelope(Body::Heartbeat).with_ttl(Duration::ZERO),
        Err(ProtocolError::ZeroTtl {
            id: MessageId::new(1)
        })
    );
}

#[test]
fn invalid_profile_and_unknown_body_are_refused() {
    let mut value = serde_json::to_value(envelope(Body::Register { profile: profile() })).unwrap();
    value["body"]["data"]["profile"]["capacity"] = json!(0);
    assert!(decode_error(value).contains("capacity must be at least 1"));

    let mut value = serde_json::to_value(envelope(Body::Heartbeat)).unwrap();
    value["body"] = json!({"type": "teleport"});
    assert!(decode_error(value).contains("teleport"));
}

// ----- constructors and time ---------------------------------------------------

#[test]
fn constructors_set_direction_and_defaults() {
    let e = Envelope::<String>::new(
        MessageId::new(4),
        Endpoint::Agent(A),
        Endpoint::Orchestrator,
        ms(3),
        Body::Heartbeat,
    )
    .unwrap();
    assert_eq!(
        e,
        Envelope::from_agent(A, MessageId::new(4), ms(3), Body::Heartbeat).unwrap()
    );
    assert_eq!(
        (e.version, e.correlation_id, e.priority, e.ttl),
        (PROTOCOL_VERSION, None, Priority::Normal, None)
    );
    assert_eq!(
        Envelope::<String>::to_agent(A, MessageId::new(4), ms(3), Body::Heartbeat),
        Err(ProtocolError::WrongSender {
            kind: BodyKind::Heartbeat,
            sender: Endpoint::Orchestrator
        })
    );
}

#[test]
fn reply_swaps_endpoints_and_correlates() {
    let assign = envelope(Body::Assign {
        task: TASK,
        token: TOKEN,
        attempt: 1,
        payload: Some("job".into()),
        metadata: Default::default(),
    })
    .with_priority(Priority::High);
    let accept: Envelope<String> = assign
        .reply(
            MessageId::new(2),
            ms(9),
            Body::Accept {
                task: TASK,
                token: TOKEN,
            },
        )
        .unwrap();
    assert_eq!(accept.sender, Endpoint::Agent(A));
    assert_eq!(accept.recipient, Endpoint::Orchestrator);
    assert_eq!(accept.correlation_id, Some(assign.id));
    assert_eq!(accept.priority, Priority::High);
    assert_eq!(accept.sent_at, ms(9));
    // Reusing the id it answers would correlate it to itself.
    assert_eq!(
        assign.reply(assign.id, ms(9), Body::Heartbeat),
        Err(ProtocolError::SelfCorrelation { id: assign.id })
    );
    // An agent cannot answer with an orchestrator message.
    assert!(matches!(
        assign.reply(
            MessageId::new(3),
            ms(9),
            Body::Cancel {
                task: TASK,
                token: TOKEN,
                reason: CancelReason::Cancelled
            }
        ),
        Err(ProtocolError::WrongSender { .. })
    ));
}

#[test]
fn ttl_expires_at_sent_at_plus_ttl() {
    let e = envelope(Body::Heartbeat);
    assert_eq!(e.expires_at(), None);
    assert!(!e.is_expired(Instant::MAX));
    let e = e.with_ttl(Duration::from_millis(10)).unwrap();
    assert_eq!(e.expires_at(), Some(ms(15)));
    assert!(!e.is_expired(ms(14)));
    assert!(e.is_expired(ms(15)));
    let far = Envelope::<String>::from_agent(A, MessageId::new(1), Instant::MAX, Body::Heartbeat)
        .unwrap()
        .with_ttl(Duration::from_secs(1))
        .unwrap();
    assert_eq!(far.expires_at(), Some(Instant::MAX));
}

// ----- outbound: actions to messages ----------------------------------------

#[test]
fn assign_action_becomes_an_assign_message() {
    let action = Action::Assign {
        task: TASK,
        agent: A,
        token: TOKEN,
        attempt: 2,
    };
    let e =
        Envelope::from_action(&action, Some("job".to_string()), MessageId::new(50), ms(8)).unwrap();
    assert_eq!(e.validate(), Ok(()));
    assert_eq!(
        (e.sender, e.recipient, e.sent_at, e.id, e.priority),
        (
            Endpoint::Orchestrator,
            Endpoint::Agent(A),
            ms(8),
            MessageId::new(50),
            Priority::Normal
        )
    );
    assert_eq!(
        e.body,
        Body::Assign {
            task: TASK,
            token: TOKEN,
            attempt: 2,
            payload: Some("job".into()),
            metadata: Default::default(),
        }
    );
    json_round_trip(&e);
}

#[test]
fn cancel_action_becomes_a_cancel_message() {
    let action = Action::Cancel {
        task: TASK,
        agent: B,
        token: TOKEN,
        reason: CancelReason::TimedOut,
    };
    let e = Envelope::from_action(
        &action,
        Some("ignored".to_string()),
        MessageId::new(51),
        ms(8),
    )
    .unwrap();
    assert_eq!(e.validate(), Ok(()));
    assert_eq!(e.recipient, Endpoint::Agent(B));
    assert_eq!(e.priority, Priority::High);
    assert_eq!(
        e.body,
        Body::Cancel {
            task: TASK,
            token: TOKEN,
            reason: CancelReason::TimedOut
        }
    );
}

#[test]
fn host_notices_have_no_agent_message() {
    for action in [
        Action::DeadLettered {
            task: TASK,
            reason: DeadLetterReason::NonRetryable {
                reason: "bad".into(),
            },
        },
        Action::Expired {
            task: TASK,
            limit: Expiry::Ttl,
        },
        Action::AgentLost { agent: A },
    ] {
        assert_eq!(
            Envelope::<String>::from_action(&action, None, MessageId::new(1), ms(0)),
            None
        );
    }
}

// ----- inbound: messages to dispatcher inputs -------------------------------

#[test]
fn every_agent_message_becomes_its_inbound() {
    let report = TaskReport {
        task: TASK,
        agent: A,
        token: TOKEN,
        outcome: AttemptOutcome::fatal("no"),
    };
    let cases: Vec<(Body<String>, Inbound<String>)> = vec![
        (
            Body::Register { profile: profile() },
            Inbound::Register {
                agent: A,
                profile: profile(),
            },
        ),
        (Body::Deregister, Inbound::Deregister { agent: A }),
        (Body::Heartbeat, Inbound::Heartbeat { agent: A }),
        (
            Body::StatusUpdate {
                status: AgentStatus::Draining,
            },
            Inbound::Status {
                agent: A,
                status: AgentStatus::Draining,
            },
        ),
        (
            Body::Accept {
                task: TASK,
                token: TOKEN,
            },
            Inbound::Accepted {
                agent: A,
                task: TASK,
                token: TOKEN,
            },
        ),
        (
            Body::Reject {
                task: TASK,
                token: TOKEN,
                reason: RejectReason::Incapable,
            },
            Inbound::Rejected {
                agent: A,
                task: TASK,
                token: TOKEN,
                reason: RejectReason::Incapable,
            },
        ),
        (
            Body::Progress {
                task: TASK,
                token: TOKEN,
                fraction: 0.75,
                note: Some("almost".into()),
            },
            Inbound::Progress {
                agent: A,
                task: TASK,
                token: TOKEN,
                fraction: 0.75,
                note: Some("almost".into()),
            },
        ),
        (
            Body::Result {
                task: TASK,
                token: TOKEN,
                outcome: AttemptOutcome::fatal("no"),
                output: Some("log".into()),
            },
            Inbound::Report {
                report,
                output: Some("log".into()),
            },
        ),
    ];
    assert_eq!(
        cases.len(),
        BodyKind::ALL.iter().filter(|k| k.sent_by_agent()).count()
    );
    for (body, expected) in cases {
        let inbound = envelope(body).into_inbound().unwrap();
        assert_eq!(inbound.agent(), A);
        assert_eq!(inbound, expected);
    }
}

#[test]
fn orchestrator_messages_are_not_inbound() {
    for body in samples().into_iter().filter(|b| !b.kind().sent_by_agent()) {
        let kind = body.kind();
        assert_eq!(
            envelope(body).into_inbound(),
            Err(ProtocolError::NotInbound { kind })
        );
    }
}

#[test]
fn register_heartbeat_and_duplicates_reach_the_registry() {
    let mut d = dispatcher();
    let beat = Envelope::from_agent(A, MessageId::new(2), ms(1), Body::Heartbeat).unwrap();
    assert_eq!(
        deliver(&mut d, &beat, ms(1)),
        Err(SchedulerError::Registry(RegistryError::UnknownAgent(A)).into())
    );
    register(&mut d, A);
    assert!(d.registry().get(A).is_some());
    assert_eq!(deliver(&mut d, &beat, ms(2)), Ok(Handled::Done));
    let again = Envelope::from_agent(
        A,
        MessageId::new(3),
        ms(3),
        Body::Register { profile: profile() },
    )
    .unwrap();
    assert_eq!(
        deliver(&mut d, &again, ms(3)),
        Err(SchedulerError::Registry(RegistryError::DuplicateAgent(A)).into())
    );
}

#[test]
fn status_update_offline_requeues_the_agents_tasks() {
    let mut d = dispatcher();
    register(&mut d, A);
    let (task, agent, token, _) = submit_and_assign(&mut d, ms(1));
    assert_eq!(agent, A);
    let offline = Envelope::from_agent(
        A,
        MessageId::new(2),
        ms(2),
        Body::StatusUpdate {
            status: AgentStatus::Offline,
        },
    )
    .unwrap();
    assert_eq!(
        deliver(&mut d, &offline, ms(2)),
        Ok(Handled::Requeued(vec![task]))
    );
    assert_eq!(d.task_state(task), Some(TaskState::Queued));
    let cancel = d.poll_action().unwrap();
    let message = Envelope::<String>::from_action(&cancel, None, MessageId::new(9), ms(2)).unwrap();
    assert_eq!(
        message.body,
        Body::Cancel {
            task,
            token,
            reason: CancelReason::AgentLost
        }
    );
    assert_eq!(d.registry().get(A).unwrap().status(), AgentStatus::Offline);
}

#[test]
fn deregister_requeues_and_forgets_the_agent() {
    let mut d = dispatcher();
    register(&mut d, A);
    let (task, _, _, _) = submit_and_assign(&mut d, ms(1));
    let bye = Envelope::from_agent(A, MessageId::new(2), ms(2), Body::Deregister).unwrap();
    assert_eq!(
        deliver(&mut d, &bye, ms(2)),
        Ok(Handled::Requeued(vec![task]))
    );
    assert!(d.registry().get(A).is_none());
    assert_eq!(d.task_state(task), Some(TaskState::Queued));
}

#[test]
fn accept_and_progress_are_checked_against_the_current_attempt() {
    let mut d = dispatcher();
    register(&mut d, A);
    register(&mut d, B);
    let (task, agent, token, _) = submit_and_assign(&mut d, ms(1));
    let other = if agent == A { B } else { A };
    let accept = |from: AgentId, task: TaskId, token: AttemptToken| {
        Envelope::from_agent(from, MessageId::new(5), ms(2), Body::Accept { task, token }).unwrap()
    };
    let progress = Envelope::from_agent(
        agent,
        MessageId::new(6),
        ms(3),
        Body::Progress {
            task,
            token,
            fraction: 0.5,
            note: None,
        },
    )
    .unwrap();

    assert_eq!(
        deliver(&mut d, &accept(agent, task, token), ms(2)),
        Ok(Handled::Done)
    );
    assert_eq!(deliver(&mut d, &progress, ms(3)), Ok(Handled::Done));
    let stale = AttemptToken::new(token.get() + 100);
    assert_eq!(
        deliver(&mut d, &accept(agent, task, stale), ms(3)),
        Err(ReportError::StaleToken { task, token: stale }.into())
    );
    assert_eq!(
        deliver(&mut d, &accept(other, task, token), ms(3)),
        Err(ReportError::WrongAgent { task, agent: other }.into())
    );
    let unknown = TaskId::new(999);
    assert_eq!(
        deliver(&mut d, &accept(agent, unknown, token), ms(3)),
        Err(ReportError::UnknownTask(unknown).into())
    );
    // Informational messages change nothing.
    assert_eq!(
        d.task_state(task),
        Some(TaskState::InFlight {
            agent,
            token,
            attempt: 1
        })
    );
    d.cancel(task, ms(4)).unwrap();
    assert_eq!(
        deliver(&mut d, &progress, ms(5)),
        Err(ReportError::NotInFlight {
            task,
            state: TaskState::Cancelled
        }
        .into())
    );
}

#[test]
fn reject_is_a_retryable_failure() {
    let mut d = dispatcher();
    register(&mut d, A);
    register(&mut d, B);
    let (task, agent, token, attempt) = submit_and_assign(&mut d, ms(1));
    assert_eq!(attempt, 1);
    let reject = Envelope::from_agent(
        agent,
        MessageId::new(2),
        ms(2),
        Body::Reject {
            task,
            token,
            reason: RejectReason::Busy,
        },
    )
    .unwrap();
    assert_eq!(deliver(&mut d, &reject, ms(2)), Ok(Handled::Done));
    assert!(d.dead_letters().is_empty());
    assert!(!matches!(
        d.task_state(task),
        Some(TaskState::InFlight { .. })
    ));
    // The same rejection again is stale.
    assert!(matches!(
        deliver(&mut d, &reject, ms(2)),
        Err(taskweave::Error::Report(ReportError::NotInFlight { .. }))
    ));
    d.handle_timeout(Instant::from_secs(10));
    let retried = std::iter::from_fn(|| d.poll_action()).find_map(|a| match a {
        Action::Assign {
            task: t, attempt, ..
        } if t == task => Some(attempt),
        _ => None,
    });
    assert_eq!(retried, Some(2));
}

#[test]
fn results_are_fenced_and_hand_back_their_output() {
    let mut d = dispatcher();
    register(&mut d, A);
    let (task, _, token, _) = submit_and_assign(&mut d, ms(1));
    let result = |token: AttemptToken, outcome: AttemptOutcome| {
        Envelope::from_agent(
            A,
            MessageId::new(3),
            ms(4),
            Body::Result {
                task,
                token,
                outcome,
                output: Some("out".to_string()),
            },
        )
        .unwrap()
    };
    let forged = AttemptToken::new(token.get() + 1);
    assert_eq!(
        deliver(&mut d, &result(forged, AttemptOutcome::Success), ms(4)),
        Err(ReportError::StaleToken {
            task,
            token: forged
        }
        .into())
    );
    assert!(matches!(
        d.task_state(task),
        Some(TaskState::InFlight { .. })
    ));
    assert_eq!(
        deliver(
            &mut d,
            &result(token, AttemptOutcome::fatal("broken")),
            ms(5)
        ),
        Ok(Handled::Reported {
            task,
            output: Some("out".into())
        })
    );
    assert_eq!(d.task_state(task), Some(TaskState::DeadLettered));
}

// ----- end to end ------------------------------------------------------------

/// What an agent process does with a JSON message: decode, and answer an
/// assignment with accept, progress and result, all as JSON.
fn agent_answers(agent: AgentId, wire: &str, now: Instant) -> Vec<String> {
    let message: Env = serde_json::from_str(wire).unwrap();
    assert_eq!(message.recipient, Endpoint::Agent(agent));
    assert!(!message.is_expired(now));
    let Body::Assign {
        task,
        token,
        payload: Some(text),
        ..
    } = &message.body
    else {
        panic!("expected an assignment, got {message:?}");
    };
    let (task, token) = (*task, *token);
    let answers: [Body<String>; 3] = [
        Body::Accept { task, token },
        Body::Progress {
            task,
            token,
            fraction: 0.5,
            note: Some("halfway".into()),
        },
        Body::Result {
            task,
            token,
            outcome: AttemptOutcome::Success,
            output: Some(text.to_uppercase()),
        },
    ];
    answers
        .into_iter()
        .zip(100..)
        .map(|(body, id)| {
            let reply = message.reply(MessageId::new(id), now, body).unwrap();
            serde_json::to_string(&reply).unwrap()
        })
        .collect()
}

#[test]
fn a_dispatcher_driven_only_through_envelopes_completes_a_task() {
    let mut d = dispatcher();
    let mut next_id = 1..;
    let mut id = || MessageId::new(next_id.next().unwrap());

    // The agent registers and heartbeats over JSON.
    for (body, at) in [
        (Body::Register { profile: profile() }, 0),
        (Body::Heartbeat, 1),
    ] {
        let wire =
            serde_json::to_string(&Envelope::<String>::from_agent(A, id(), ms(at), body).unwrap())
                .unwrap();
        let received: Env = serde_json::from_str(&wire).unwrap();
        assert_eq!(
            received.into_inbound().unwrap().apply_to(&mut d, ms(at)),
            Ok(Handled::Done)
        );
    }

    // The host submits a task directly; the assignment goes out as JSON.
    let task = d
        .submit(TaskSpec::new("render scene".into()), ms(2))
        .unwrap()
        .id();
    let action = d.poll_action().unwrap();
    let payload = d.payload(task).cloned();
    let assign = Envelope::from_action(&action, payload, id(), ms(2)).unwrap();
    let wire = serde_json::to_string(&assign).unwrap();

    // The agent answers; the orchestrator applies each answer.
    let mut handled = Vec::new();
    for answer in agent_answers(A, &wire, ms(3)) {
        let received: Env = serde_json::from_str(&answer).unwrap();
        assert_eq!(received.correlation_id, Some(assign.id));
        handled.push(
            received
                .into_inbound()
                .unwrap()
                .apply_to(&mut d, ms(4))
                .unwrap(),
        );
    }
    assert_eq!(
        handled,
        [
            Handled::Done,
            Handled::Done,
            Handled::Reported {
                task,
                output: Some("RENDER SCENE".into())
            }
        ]
    );
    assert_eq!(d.task_state(task), Some(TaskState::Completed));
    assert_eq!(d.poll_action(), None);
    assert_eq!(d.registry().get(A).unwrap().load(), 0);
}

#[test]
fn a_result_after_cancellation_is_refused() {
    let mut d = dispatcher();
    register(&mut d, A);
    let (task, _, _, _) = submit_and_assign(&mut d, ms(1));
    let assign_action = Action::Assign {
        task,
        agent: A,
        token: match d.task_state(task) {
            Some(TaskState::InFlight { token, .. }) => token,
            other => panic!("{other:?}"),
        },
        attempt: 1,
    };
    let assign = Envelope::from_action(
        &assign_action,
        Some("job".to_string()),
        MessageId::new(1),
        ms(1),
    )
    .unwrap();
    d.cancel(task, ms(2)).unwrap();
    let cancel =
        Envelope::<String>::from_action(&d.poll_action().unwrap(), None, MessageId::new(2), ms(2))
            .unwrap();
    let cancel: Env = serde_json::from_str(&serde_json::to_string(&cancel).unwrap()).unwrap();
    assert!(matches!(
        cancel.body,
        Body::Cancel {
            reason: CancelReason::Cancelled,
            ..
        }
    ));
    // The agent's result crossed the cancellation on the wire.
    let late = agent_answers(A, &serde_json::to_string(&assign).unwrap(), ms(3));
    let result: Env = serde_json::from_str(&late[2]).unwrap();
    assert!(matches!(
        result
            .into_inbound()
            .unwrap()
            .apply_to(&mut d, ms(3))
            .map_err(taskweave::Error::from),
        Err(taskweave::Error::Report(ReportError::NotInFlight { .. }))
    ));
    assert_eq!(d.task_state(task), Some(TaskState::Cancelled));
}

// ----- properties --------------------------------------------------------------

fn arb_profile() -> impl Strategy<Value = AgentProfile> {
    (
        proptest::sample::subsequence(vec!["gpu", "cpu", "llm", "python"], 0..=4),
        1u32..16,
        1u32..8,
        0u32..100,
        0u32..40,
        proptest::option::of(proptest::sample::select(vec!["eu", "us"])),
    )
        .prop_map(|(caps, capacity, weight, priority, cost, zone)| {
            let mut b = AgentProfile::builder()
                .capabilities(caps)
                .capacity(capacity)
                .weight(weight)
                .priority(priority)
                .cost_per_task(f64::from(cost) * 0.25);
            if let Some(zone) = zone {
                b = b.label("zone", zone);
            }
            b.build().unwrap()
        })
}

fn arb_text() -> impl Strategy<Value = String> {
    "[a-z \"\\\\é]{0,12}"
}

fn arb_body() -> impl Strategy<Value = Body<String>> {
    let ids =
        (any::<u64>(), any::<u64>()).prop_map(|(t, k)| (TaskId::new(t), AttemptToken::new(k)));
    let status = proptest::sample::select(vec![
        AgentStatus::Online,
        AgentStatus::Draining,
        AgentStatus::Offline,
        AgentStatus::Unhealthy,
    ]);
    let reject = prop_oneof![
        Just(RejectReason::Busy),
        Just(RejectReason::Incapable),
        Just(RejectReason::ShuttingDown),
        arb_text().prop_map(RejectReason::Other),
    ];
    let outcome = prop_oneof![
        Just(AttemptOutcome::Success),
        (arb_text(), any::<bool>())
            .prop_map(|(reason, retryable)| AttemptOutcome::Failure { reason, retryable }),
    ];
    let cancel = proptest::sample::select(vec![
        CancelReason::Cancelled,
        CancelReason::Expired,
        CancelReason::TimedOut,
        CancelReason::AgentLost,
        CancelReason::Preempted,
    ]);
    prop_oneof![
        arb_profile().prop_map(|profile| Body::Register { profile }),
        Just(Body::Deregister),
        Just(Body::Heartbeat),
        status.prop_map(|status| Body::StatusUpdate { status }),
        ids.clone()
            .prop_map(|(task, token)| Body::Accept { task, token }),
        (ids.clone(), reject).prop_map(|((task, token), reason)| Body::Reject {
            task,
            token,
            reason
        }),
        (ids.clone(), -0.5f32..1.5, proptest::option::of(arb_text())).prop_map(
            |((task, token), fraction, note)| Body::Progress {
                task,
                token,
                fraction,
                note
            }
        ),
        (ids.clone(), outcome, proptest::option::of(arb_text())).prop_map(
            |((task, token), outcome, output)| Body::Result {
                task,
                token,
                outcome,
                output
            }
        ),
        (ids.clone(), any::<u32>(), proptest::option::of(arb_text())).prop_map(
            |((task, token), attempt, payload)| Body::Assign {
                task,
                token,
                attempt,
                payload,
                metadata: Default::default(),
            }
        ),
        (ids, cancel).prop_map(|((task, token), reason)| Body::Cancel {
            task,
            token,
            reason
        }),
    ]
}

fn arb_endpoint() -> impl Strategy<Value = Endpoint> {
    prop_oneof![
        Just(Endpoint::Orchestrator),
        (0u64..4).prop_map(|a| Endpoint::Agent(AgentId::new(a))),
    ]
}

fn arb_envelope() -> impl Strategy<Value = Env> {
    (
        prop_oneof![Just(PROTOCOL_VERSION), 0u16..4],
        0u64..4,
        proptest::option::of(0u64..4),
        arb_endpoint(),
        arb_endpoint(),
        any::<u64>(),
        proptest::sample::select(Priority::ALL.to_vec()),
        proptest::option::of((0u64..3, 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n))),
        arb_body(),
    )
        .prop_map(
            |(version, id, correlation, sender, recipient, sent_at, priority, ttl, body)| {
                Envelope {
                    version,
                    id: MessageId::new(id),
                    correlation_id: correlation.map(MessageId::new),
                    sender,
                    recipient,
                    sent_at: Instant::from_nanos(sent_at),
                    priority,
                    ttl,
                    body,
                }
            },
        )
}

proptest! {
    /// Any envelope decodes from its JSON exactly when it is valid, and then
    /// to an equal value.
    #[test]
    fn json_decoding_accepts_exactly_the_valid_envelopes(e in arb_envelope()) {
        let json = serde_json::to_string(&e).unwrap();
        let decoded = serde_json::from_str::<Env>(&json);
        match e.validate() {
            Ok(()) => prop_assert_eq!(decoded.unwrap(), e),
            Err(error) => {
                let message = decoded.unwrap_err().to_string();
                prop_assert!(message.starts_with(&error.to_string()), "{} vs {}", message, error);
            }
        }
    }

    /// Every body, sent in its own direction with a valid fraction,
    /// round-trips and converts to an inbound exactly when agents send it.
    #[test]
    fn valid_bodies_round_trip_and_convert(mut body in arb_body(), id in any::<u64>()) {
        if let Body::Progress { fraction, .. } = &mut body {
            *fraction = fraction.clamp(0.0, 1.0);
        }
        let kind = body.kind();
        let e = if kind.sent_by_agent() {
            Envelope::from_agent(A, MessageId::new(id), ms(1), body)
        } else {
            Envelope::to_agent(A, MessageId::new(id), ms(1), body)
        }
        .unwrap();
        let back = json_round_trip(&e);
        prop_assert_eq!(back.into_inbound().is_ok(), kind.sent_by_agent());
    }

    /// A valid agent message with a number or string of its JSON corrupted
    /// is refused when decoded or converted, or is applied to a busy
    /// dispatcher without a panic: fenced out, refused as an unknown agent
    /// or task, or accepted like any message the host could have received.
    #[test]
    fn corrupted_agent_messages_are_refused_or_applied_safely(
        body in arb_body(),
        at in any::<proptest::sample::Index>(),
        with in prop_oneof![
            Just(json!(0)), Just(json!(u64::MAX)), Just(json!(u32::MAX)), Just(json!(-1)),
            Just(json!(1e300)), Just(json!("")), Just(json!("gpu")), Just(Value::Null),
            any::<u64>().prop_map(|n| json!(n)),
        ],
    ) {
        let Ok(message) = Envelope::from_agent(A, MessageId::new(9), ms(1), body) else {
            return Ok(());
        };
        let mut value = serde_json::to_value(&message).unwrap();
        let paths = corrupt::paths_where(&value, |v| v.is_number() || v.is_string());
        if !paths.is_empty() {
            *corrupt::at_path(&mut value, &paths[at.index(paths.len())]) = with;
        }
        let Ok(received) = serde_json::from_value::<Env>(value) else {
            return Ok(());
        };
        let Ok(inbound) = received.into_inbound() else {
            return Ok(());
        };
        let mut d = dispatcher();
        register(&mut d, A);
        let _ = submit_and_assign(&mut d, ms(1));
        let live_before = d.live_tasks();
        let _ = inbound.apply_to(&mut d, ms(2));
        // Whatever it was, the dispatcher still answers and lost nothing.
        prop_assert!(d.live_tasks() <= live_before);
        d.handle_timeout(ms(10_000));
        let _ = std::iter::from_fn(|| d.poll_action()).count();
    }
}
