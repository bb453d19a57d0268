//! The leader's intake, as properties and cases: a message the roles or
//! the authorizer refuse changes nothing but its verdict (two replicas take
//! the same messages; the first refuses some of them, the second never
//! sees those; every batch and the final state must be the same), and a
//! flood of heartbeats journals one per agent and batch.

use std::time::Duration;

use proptest::prelude::*;

use super::intake::intake;
use super::replica::Replica;
use crate::agent::AgentProfile;
use crate::cluster::Redrive;
use crate::cluster::authorizer::{Action, AllowRoles, Authorizer, Denied, Request};
use crate::cluster::contract::{InboxMessage, Message, Sender, TaskEnd, Verdict};
use crate::scheduler::{AttemptOutcome, DeadLetterFilter, DispatcherConfig, TaskReport, TaskSpec};
use crate::{AgentId, AttemptToken, Instant, TaskId, TenantId};

/// One inbox message, drawn from a small world: three agents, a handful
/// of task ids and tokens, and messages of the wrong role too.
fn message() -> impl Strategy<Value = (Sender, Message<String>)> {
    let agent = (1u64..=3).prop_map(|id| Sender::Agent {
        agent: AgentId::new(id),
        incarnation: 1,
    });
    let tenant = (1u64..=2).prop_map(|t| Sender::Tenant(crate::TenantId::new(t)));
    let sender = prop_oneof![agent.clone(), Just(Sender::Client), tenant];
    let body = prop_oneof![
        (1u32..=3).prop_map(|capacity| Message::Register {
            profile: AgentProfile::builder()
                .capacity(capacity)
                .build()
                .expect("a valid profile"),
        }),
        Just(Message::Heartbeat),
        (1u64..=6, 1u64..=6, 1u64..=3, any::<bool>()).prop_map(|(task, token, agent, ok)| {
            Message::Report(TaskReport {
                task: TaskId::new(task),
                agent: AgentId::new(agent),
                token: AttemptToken::new(token),
                outcome: if ok {
                    AttemptOutcome::Success
                } else {
                    AttemptOutcome::failure("flaky")
                },
            })
        }),
        (1usize..=3).prop_map(|n| Message::Submit(
            (0..n).map(|i| TaskSpec::new(format!("job {i}"))).collect()
        )),
        (1u64..=6).prop_map(|task| Message::Cancel(TaskId::new(task))),
        (1u64..=6, 1u64..=6, 1u64..=3).prop_map(|(task, token, agent)| {
            Message::Report(TaskReport {
                task: TaskId::new(task),
                agent: AgentId::new(agent),
                token: AttemptToken::new(token),
                outcome: AttemptOutcome::fatal("broken for good"),
            })
        }),
        (1u64..=6).prop_map(|task| Message::Redrive(Redrive::Task(TaskId::new(task)))),
        Just(Message::Redrive(Redrive::Matching(DeadLetterFilter::new()))),
        Just(Message::Drain),
    ];
    (sender, body)
}

fn replica() -> Replica<String> {
    let config = DispatcherConfig::builder()
        .heartbeats(Duration::from_millis(50), 3)
        .build()
        .expect("a valid config");
    Replica::empty(config, None)
}

fn state(replica: &Replica<String>) -> serde_json::Value {
    serde_json::to_value(replica.state()).expect("a state serializes")
}

/// Message `id` from `sender`, as the store hands it to the leader.
fn inbox(id: u64, sender: Sender, body: Message<String>) -> InboxMessage<String> {
    InboxMessage {
        id,
        sender,
        body: Ok(body),
        bytes: 0,
    }
}

/// Agent 1's first incarnation.
const AGENT_ONE: Sender = Sender::Agent {
    agent: AgentId::new(1),
    incarnation: 1,
};

fn body_action(message: &InboxMessage<String>) -> Action {
    message
        .body
        .as_ref()
        .map(Action::of)
        .expect("the test's bodies decode")
}

struct RefuseAll;

impl Authorizer<String> for RefuseAll {
    fn authorize(&self, _: &Request<'_, String>) -> Result<(), Denied> {
        Err(Denied("refused by the test".into()))
    }
}

proptest! {
    #[test]
    fn a_refused_message_changes_nothing_but_its_verdict(
        messages in prop::collection::vec((message(), any::<bool>()), 1..40),
    ) {
        let (mut asked, mut spared) = (replica(), replica());
        for (i, ((sender, body), refuse)) in messages.into_iter().enumerate() {
            let now = Instant::from_millis(1 + 20 * i as u64);
            let inbox = inbox(i as u64 + 1, sender, body);
            let authorizer: &dyn Authorizer<String> = if refuse { &RefuseAll } else { &AllowRoles };
            let seen = intake(&mut asked, vec![inbox.clone()], authorizer, false, usize::MAX, now);
            // The spared replica never sees a message the roles or the
            // authorizer refuse: a refusal must leave what a missing
            // message leaves.
            let allowed = !refuse && body_action(&inbox).allowed_to(sender);
            let shown = if allowed { vec![inbox] } else { Vec::new() };
            let unseen = intake(&mut spared, shown, &AllowRoles, false, usize::MAX, now);
            if !allowed {
                let refused = matches!(&seen.consumed[..], [(_, Verdict::Refused(_))]);
                prop_assert!(refused, "message {} was let through: {:?}", i, seen.consumed);
            }
            prop_assert_eq!(&seen.entries, &unseen.entries, "message {}", i);
            prop_assert_eq!(&seen.outputs, &unseen.outputs, "message {}", i);
            prop_assert_eq!(state(&asked), state(&spared), "message {}", i);
        }
    }
}

#[test]
fn the_roles_refuse_before_the_authorizer_is_asked() {
    let asked = std::cell::Cell::new(0);
    let counting = |_: &Request<'_, String>| {
        asked.set(asked.get() + 1);
        Ok(())
    };
    let mut replica = replica();
    let client_heartbeat = inbox(1, Sender::Client, Message::Heartbeat);
    let agent_drain = inbox(2, AGENT_ONE, Message::Drain);
    let batch = intake(
        &mut replica,
        vec![client_heartbeat, agent_drain],
        &counting,
        false,
        usize::MAX,
        Instant::from_millis(1),
    );
    assert_eq!(
        asked.get(),
        0,
        "the authorizer was asked about a role's refusal"
    );
    assert!(batch.entries.is_empty());
    let reasons: Vec<_> = batch.consumed.iter().map(|(_, v)| v.clone()).collect();
    assert!(
        matches!(&reasons[..], [Verdict::Refused(a), Verdict::Refused(b)]
            if a.contains("only an agent") && b.contains("Drain")),
        "{reasons:?}"
    );
}

#[test]
fn a_denied_message_is_answered_with_the_reason() {
    let mut replica = replica();
    let drain = inbox(1, Sender::Client, Message::Drain);
    let batch = intake(
        &mut replica,
        vec![drain],
        &RefuseAll,
        false,
        usize::MAX,
        Instant::from_millis(1),
    );
    assert_eq!(
        batch.consumed,
        vec![(
            1,
            Verdict::Refused("not authorized: refused by the test".into())
        )]
    );
    assert!(batch.entries.is_empty() && !replica.draining);
}

/// A body that does not decode is refused with the decoder's words cut
/// short: a decoder quotes what it read, and a peer's 16 MB body must not
/// come back as a 16 MB verdict (and log line).
#[test]
fn a_huge_body_that_does_not_decode_gets_a_short_verdict() {
    let mut replica = replica();
    for quoted in ["x".repeat(16 << 20), "é".repeat(1_000)] {
        let reason = format!("unknown variant `{quoted}`");
        let huge = InboxMessage {
            id: 1,
            sender: AGENT_ONE,
            body: Err(reason.clone()),
            bytes: quoted.len(),
        };
        let batch = intake(
            &mut replica,
            vec![huge],
            &AllowRoles,
            false,
            usize::MAX,
            Instant::from_millis(1),
        );
        let [(1, Verdict::Refused(verdict))] = &batch.consumed[..] else {
            panic!("{:?}", batch.consumed);
        };
        assert!(verdict.len() < 400, "{} bytes", verdict.len());
        assert!(
            verdict.starts_with("the message does not decode: unknown variant `")
                && verdict.ends_with(&format!("… ({} bytes in all)", reason.len())),
            "{verdict}"
        );
        assert!(batch.entries.is_empty());
    }
}

proptest! {
    /// Whatever a decoder says of a body, any length, any characters: the
    /// verdict quotes it whole up to 240 bytes, and past that a prefix of
    /// it cut at a character boundary within 240 bytes and its length.
    #[test]
    fn a_refusal_quotes_any_decoder_words_within_its_bound(reason in ".{0,400}") {
        let undecoded =
            InboxMessage { id: 1, sender: AGENT_ONE, body: Err(reason.clone()), bytes: 0 };
        let now = Instant::from_millis(1);
        let batch = intake(&mut replica(), vec![undecoded], &AllowRoles, false, usize::MAX, now);
        let [(1, Verdict::Refused(verdict))] = &batch.consumed[..] else {
            panic!("{:?}", batch.consumed);
        };
        let quoted = verdict.strip_prefix("the message does not decode: ").expect("the prefix");
        if reason.len() <= 240 {
            prop_assert_eq!(quoted, reason.as_str());
        } else {
            let suffix = format!("… ({} bytes in all)", reason.len());
            let kept = quoted.strip_suffix(&suffix).expect("the length");
            prop_assert!(reason.starts_with(kept) && kept.len() <= 240 && kept.len() > 236);
        }
        prop_assert!(batch.entries.is_empty());
    }
}

#[test]
fn a_flood_of_heartbeats_journals_one_per_agent_and_batch() {
    let message = |id, body| inbox(id, AGENT_ONE, body);
    let profile = AgentProfile::builder().build().expect("a valid profile");
    let (mut flooded, mut once) = (replica(), replica());
    let now = Instant::from_millis(1);
    let mut flood = vec![message(
        1,
        Message::Register {
            profile: profile.clone(),
        },
    )];
    flood.extend((2..=1_000).map(|id| message(id, Message::Heartbeat)));
    let batch = intake(&mut flooded, flood, &AllowRoles, false, usize::MAX, now);
    assert_eq!(batch.entries.len(), 2, "a registration and one heartbeat");
    assert!(batch.consumed.iter().all(|(_, v)| *v == Verdict::Accepted));
    assert_eq!(batch.consumed.len(), 1_000);
    let single = vec![
        message(1, Message::Register { profile }),
        message(2, Message::Heartbeat),
    ];
    let _ = intake(&mut once, single, &AllowRoles, false, usize::MAX, now);
    assert_eq!(state(&flooded), state(&once));
    // The next batch journals the agent's heartbeat again.
    let later = intake(
        &mut flooded,
        vec![message(1_001, Message::Heartbeat)],
        &AllowRoles,
        false,
        usize::MAX,
        Instant::from_millis(2),
    );
    assert_eq!(later.entries.len(), 1);
}

/// The report of `assignment`'s attempt failing for good.
fn fails_for_good(assignment: &crate::cluster::Assignment<String>) -> TaskReport {
    TaskReport {
        task: assignment.task,
        agent: assignment.agent,
        token: assignment.token,
        outcome: AttemptOutcome::fatal("broken"),
    }
}

/// Agent 1 registers, a tenant submits a task, and the agent fails it for
/// good: the replica holds one dead letter, the tenant's. Answers the
/// dead task's id and the entries journaled so far.
fn one_dead_letter(leader: &mut Replica<String>) -> (TaskId, Vec<crate::cluster::Entry<String>>) {
    dead_letter_of(leader, TaskSpec::new("job".into()))
}

/// [`one_dead_letter`] of the task `spec`.
fn dead_letter_of(
    leader: &mut Replica<String>,
    spec: TaskSpec<String>,
) -> (TaskId, Vec<crate::cluster::Entry<String>>) {
    let tenant = Sender::Tenant(crate::TenantId::new(1));
    let profile = AgentProfile::builder().build().expect("a valid profile");
    let at = Instant::from_millis;
    let mut entries = Vec::new();
    let mut step = |leader: &mut Replica<String>, id, sender, body, now| {
        let batch = intake(
            leader,
            vec![inbox(id, sender, body)],
            &AllowRoles,
            false,
            usize::MAX,
            now,
        );
        entries.extend(batch.entries.iter().cloned());
        batch
    };
    let _ = step(leader, 1, AGENT_ONE, Message::Register { profile }, at(1));
    let submitted = step(leader, 2, tenant, Message::Submit(vec![spec]), at(2));
    let assignment = submitted.outputs.assign[0].clone();
    let report = fails_for_good(&assignment);
    let _ = step(leader, 3, AGENT_ONE, Message::Report(report), at(3));
    assert_eq!(leader.dispatcher.dead_letters().len(), 1);
    (assignment.task, entries)
}

/// The letter of a task submitted with `no_redrive` (a cluster workflow
/// client's step) stays where it is, whichever way an operator redrives
/// it: refused by id, listed as refused by a filter, no end republished.
#[test]
fn a_letter_marked_no_redrive_is_refused_to_an_operator() {
    let mut leader = replica();
    let spec = TaskSpec::new("step".into()).max_attempts(1).no_redrive();
    let (dead, _) = dead_letter_of(&mut leader, spec);
    let every = Redrive::Matching(crate::scheduler::DeadLetterFilter::new());
    let messages = vec![
        inbox(4, Sender::Client, Message::Redrive(Redrive::Task(dead))),
        inbox(5, Sender::Client, Message::Redrive(every)),
    ];
    let at = Instant::from_millis;
    let batch = intake(&mut leader, messages, &AllowRoles, false, usize::MAX, at(4));
    let verdicts: Vec<_> = batch.consumed.iter().map(|(_, v)| v.clone()).collect();
    let [
        Verdict::Refused(by_id),
        Verdict::Redriven { requeued, refused },
    ] = &verdicts[..]
    else {
        panic!("{verdicts:?}");
    };
    assert!(by_id.contains("no_redrive"), "{by_id}");
    assert!(requeued.is_empty(), "{requeued:?}");
    let [(letter, why)] = &refused[..] else {
        panic!("{refused:?}")
    };
    assert!(*letter == dead && why.contains("no_redrive"), "{why}");
    assert!(batch.outputs.ended.is_empty() && batch.outputs.assign.is_empty());
    assert_eq!(leader.dispatcher.dead_letters().len(), 1);
}

/// An operator's redrive requeues the letter as a new task of the same
/// tenant, assigned at once, with the old and new ids in the verdict; a
/// follower replaying the journal reaches the same state; the second
/// redrive of the same letter finds none; a tenant may not redrive.
#[test]
fn a_redriven_letter_runs_again_as_the_tenants_new_task() {
    let mut leader = replica();
    let (dead, mut entries) = one_dead_letter(&mut leader);
    let at = Instant::from_millis;
    let messages = vec![
        inbox(
            4,
            Sender::Tenant(crate::TenantId::new(1)),
            Message::Redrive(Redrive::Task(dead)),
        ),
        inbox(5, Sender::Client, Message::Redrive(Redrive::Task(dead))),
        inbox(6, Sender::Client, Message::Redrive(Redrive::Task(dead))),
    ];
    let batch = intake(&mut leader, messages, &AllowRoles, false, usize::MAX, at(4));
    let verdicts: Vec<_> = batch.consumed.iter().map(|(_, v)| v.clone()).collect();
    let [
        Verdict::Refused(tenant),
        Verdict::Redriven { requeued, refused },
        Verdict::Refused(gone),
    ] = &verdicts[..]
    else {
        panic!("{verdicts:?}");
    };
    assert!(tenant.contains("Redrive"), "{tenant}");
    assert!(gone.contains("no dead letter"), "{gone}");
    let [(old, new)] = requeued[..] else {
        panic!("{requeued:?}")
    };
    assert!(old == dead && new != dead && refused.is_empty());
    assert_eq!(batch.outputs.assign.first().map(|a| a.task), Some(new));
    // The letter's outcome is replaced by one naming the new task, for
    // the letter's tenant (its client may wait on the letter's id).
    assert_eq!(batch.outputs.ended, vec![(dead, TaskEnd::Redriven(new))]);
    assert_eq!(batch.outputs.tenants, vec![(dead, TenantId::new(1))]);
    assert_eq!(leader.dispatcher.dead_letters().len(), 0);
    entries.extend(batch.entries);
    let mut follower = replica();
    for entry in entries {
        let _ = follower.apply(entry);
    }
    assert_eq!(state(&follower), state(&leader));
    // The new task is the tenant's to the leader and to a follower that
    // takes over: its end is published to the tenant alone.
    for replica in [&mut leader, &mut follower] {
        let cancel = inbox(
            7,
            Sender::Tenant(crate::TenantId::new(1)),
            Message::Cancel(new),
        );
        let batch = intake(replica, vec![cancel], &AllowRoles, false, usize::MAX, at(5));
        assert_eq!(batch.consumed[0].1, Verdict::Accepted);
        assert_eq!(batch.outputs.tenants, vec![(new, crate::TenantId::new(1))]);
    }
}

/// A redrive by a filter answers every letter it requeued; a draining
/// cluster refuses a redrive and journals nothing.
#[test]
fn a_filter_redrives_every_match_and_a_draining_cluster_none() {
    let mut leader = replica();
    let (dead, _) = one_dead_letter(&mut leader);
    let at = Instant::from_millis;
    let other_kind = Redrive::Matching(DeadLetterFilter::new().kind("other"));
    let every = Redrive::Matching(DeadLetterFilter::new());
    let messages = vec![
        inbox(4, Sender::Client, Message::Redrive(other_kind)),
        inbox(5, Sender::Client, Message::Drain),
        inbox(6, Sender::Client, Message::Redrive(every.clone())),
    ];
    let batch = intake(&mut leader, messages, &AllowRoles, false, usize::MAX, at(4));
    let none = Verdict::Redriven {
        requeued: vec![],
        refused: vec![],
    };
    assert_eq!(batch.consumed[0].1, none);
    assert!(matches!(&batch.consumed[2].1, Verdict::Refused(why) if why.contains("draining")));
    assert_eq!(batch.entries.len(), 2, "the empty redrive and the drain");
    let mut fresh = replica();
    let (dead_too, _) = one_dead_letter(&mut fresh);
    assert_eq!(dead, dead_too);
    let batch = intake(
        &mut fresh,
        vec![inbox(4, Sender::Client, Message::Redrive(every))],
        &AllowRoles,
        false,
        usize::MAX,
        at(4),
    );
    let [(_, Verdict::Redriven { requeued, refused })] = &batch.consumed[..] else {
        panic!("{:?}", batch.consumed);
    };
    assert!(requeued.len() == 1 && requeued[0].0 == dead && refused.is_empty());
    let new = requeued[0].1;
    assert_eq!(batch.outputs.ended, vec![(dead, TaskEnd::Redriven(new))]);
}

/// A letter dead-lettered and redriven in one batch publishes one end,
/// the redrive's: a commit publishes one end per task, and a store keeps
/// the first of any other.
#[test]
fn a_letter_redriven_in_the_batch_that_made_it_publishes_the_redrive_alone() {
    let mut leader = replica();
    let at = Instant::from_millis;
    let profile = AgentProfile::builder().build().expect("a valid profile");
    let register = inbox(1, AGENT_ONE, Message::Register { profile });
    let submit = inbox(
        2,
        Sender::Client,
        Message::Submit(vec![TaskSpec::new("job".into())]),
    );
    let batch = intake(
        &mut leader,
        vec![register, submit],
        &AllowRoles,
        false,
        usize::MAX,
        at(1),
    );
    let assignment = batch.outputs.assign[0].clone();
    let messages = vec![
        inbox(3, AGENT_ONE, Message::Report(fails_for_good(&assignment))),
        inbox(
            4,
            Sender::Client,
            Message::Redrive(Redrive::Task(assignment.task)),
        ),
    ];
    let batch = intake(&mut leader, messages, &AllowRoles, false, usize::MAX, at(2));
    let Verdict::Redriven { requeued, .. } = &batch.consumed[1].1 else {
        panic!("{:?}", batch.consumed);
    };
    let [(letter, new)] = requeued[..] else {
        panic!("{requeued:?}")
    };
    assert_eq!(letter, assignment.task);
    assert_eq!(batch.outputs.ended, vec![(letter, TaskEnd::Redriven(new))]);
}
