use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::cluster::{Message, Verdict};
use crate::scheduler::{DeadLetterReason, Expiry};
use crate::workflow::{EngineAction, RunOutcome, StepDef, WorkflowDef};

const POLL: Duration = Duration::from_millis(10);

fn saga() -> Arc<WorkflowDef> {
    let def = WorkflowDef::builder("order", 1)
        .step(StepDef::agent("reserve").compensable())
        .step(StepDef::agent("charge"))
        .edge("reserve", "charge")
        .build()
        .unwrap();
    Arc::new(def)
}

fn client_with_run() -> (WorkflowClient<StepTask, ()>, crate::WorkflowId) {
    let mut client = WorkflowClient::new("test", POLL);
    let (engine, pool) = client.parts();
    let run = engine.start(pool, saga(), None, Instant::ZERO);
    (client, run)
}

/// Operations have no `PartialEq` (their payloads need not): compare what
/// they print.
fn assert_op(got: Option<ClientOp<StepTask>>, want: Option<ClientOp<StepTask>>) {
    assert_eq!(format!("{got:?}"), format!("{want:?}"));
}

fn at(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

/// The submissions in a post: each step's payload and idempotency key.
fn submissions(op: &ClientOp<StepTask>) -> Vec<(StepTask, String)> {
    let ClientOp::Post(messages) = op else {
        panic!("expected a post, got {op:?}");
    };
    messages
        .iter()
        .filter_map(|m| match m {
            Message::Submit(specs) => Some(
                specs
                    .iter()
                    .map(|s| (s.payload, s.idempotency_key.clone().unwrap()))
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        })
        .flatten()
        .collect()
}

/// Posts the pending messages at `clock` (ids from `first`), then, a poll
/// period later, answers their verdicts with `tasks`.
fn post_and_accept(
    client: &mut WorkflowClient<StepTask, ()>,
    clock: &mut u64,
    first: u64,
    tasks: &[u64],
) {
    let op = client.poll_op(at(*clock)).expect("a post");
    let count = match &op {
        ClientOp::Post(messages) => messages.len() as u64,
        other => panic!("expected a post, got {other:?}"),
    };
    let ids: Vec<MessageId> = (first..first + count).collect();
    client.handle_reply(Ok(ClientReply::Posted(ids.clone())), at(*clock));
    *clock += 10;
    let now = at(*clock);
    assert_op(client.poll_op(now), Some(ClientOp::Verdicts(ids)));
    let verdicts = tasks
        .iter()
        .map(|&t| Some(Verdict::Submitted(vec![Ok(TaskId::new(t))])))
        .collect();
    client.handle_reply(Ok(ClientReply::Verdicts(verdicts)), now);
}

fn finished(client: &mut WorkflowClient<StepTask, ()>) -> Option<RunOutcome> {
    let mut outcome = None;
    while let Some(action) = client.parts().0.poll_action() {
        if let EngineAction::Finished { outcome: o, .. } = action {
            outcome = Some(o);
        }
    }
    outcome
}

#[test]
fn a_step_runs_as_a_cluster_task_and_its_end_completes_it() {
    let (mut client, run) = client_with_run();
    let op = client.poll_op(at(0)).unwrap();
    let posted = submissions(&op);
    assert_eq!(posted.len(), 1, "one ready step: {op:?}");
    assert_eq!(posted[0].0.run, run);
    // One attempt, and no redrive: the step's own policy alone retries it.
    let ClientOp::Post(messages) = &op else {
        unreachable!("submissions read a post")
    };
    for message in messages {
        if let Message::Submit(specs) = message {
            assert!(specs.iter().all(|s| s.options().no_redrive), "{specs:?}");
            assert!(specs.iter().all(|s| s.options().max_attempts == Some(1)));
        }
    }
    let token = posted[0].0.token.get();
    assert_eq!(posted[0].1, format!("test/{}/{token}/run", run.get()));
    client.handle_reply(Ok(ClientReply::Posted(vec![7])), at(0));
    let verdicts = ClientOp::Verdicts(vec![7]);
    assert_op(client.poll_op(at(0)), Some(verdicts));
    let accepted = Verdict::Submitted(vec![Ok(TaskId::new(40))]);
    client.handle_reply(Ok(ClientReply::Verdicts(vec![Some(accepted)])), at(0));
    assert_op(
        client.poll_op(at(0)),
        Some(ClientOp::Outcomes(vec![TaskId::new(40)])),
    );
    client.handle_reply(Ok(ClientReply::Outcomes(vec![None])), at(0));
    // Read again only after the poll period.
    assert_op(client.poll_op(at(5)), None);
    assert_eq!(client.poll_timeout(), Some(at(10)));
    let ClientOp::Outcomes(_) = client.poll_op(at(10)).unwrap() else {
        panic!("expected a read of the ends");
    };
    let ends = vec![outcome_of(TaskEnd::Completed)];
    client.handle_reply(Ok(ClientReply::Outcomes(ends)), at(10));
    // The next step is posted; once it completes, the run succeeds.
    let mut clock = 10;
    post_and_accept(&mut client, &mut clock, 8, &[41]);
    client.poll_op(at(clock)).unwrap();
    let ends = vec![outcome_of(TaskEnd::Completed)];
    client.handle_reply(Ok(ClientReply::Outcomes(ends)), at(clock));
    assert_eq!(finished(&mut client), Some(RunOutcome::Succeeded));
    assert_eq!(client.pool().tracked(), 0);
    assert_eq!(client.pool().accepted(), 2);
}

#[test]
fn a_lost_post_is_posted_again_under_the_same_key() {
    let (mut client, _) = client_with_run();
    let first = submissions(&client.poll_op(at(0)).unwrap());
    let lost = StoreFailure::Unknown {
        cause: "timeout".into(),
    };
    client.handle_reply(Err(lost.clone()), at(0));
    assert_eq!(
        client.poll_event(),
        Some(ClientEvent::StoreFailed(lost.clone()))
    );
    assert_op(client.poll_op(at(5)), None);
    let again = submissions(&client.poll_op(at(10)).unwrap());
    assert_eq!(first, again);
}

#[test]
fn a_dead_lettered_step_fails_and_its_saga_compensates() {
    let (mut client, _) = client_with_run();
    let mut clock = 0;
    post_and_accept(&mut client, &mut clock, 1, &[40]);
    client.poll_op(at(clock)).unwrap();
    let done = vec![outcome_of(TaskEnd::Completed)];
    client.handle_reply(Ok(ClientReply::Outcomes(done)), at(clock));
    post_and_accept(&mut client, &mut clock, 2, &[41]);
    client.poll_op(at(clock)).unwrap();
    let failed = TaskEnd::DeadLettered(DeadLetterReason::NonRetryable {
        reason: "card declined".into(),
    });
    client.handle_reply(
        Ok(ClientReply::Outcomes(vec![outcome_of(failed)])),
        at(clock),
    );
    // `reserve` is compensated by a task of its own.
    let posted = submissions(&client.poll_op(at(clock)).unwrap());
    assert_eq!(posted.len(), 1);
    assert!(posted[0].0.compensation && posted[0].1.ends_with("/compensate"));
    client.handle_reply(Ok(ClientReply::Posted(vec![3])), at(clock));
    clock += 10;
    client.poll_op(at(clock)).unwrap();
    let accepted = Some(Verdict::Submitted(vec![Ok(TaskId::new(42))]));
    client.handle_reply(Ok(ClientReply::Verdicts(vec![accepted])), at(clock));
    client.poll_op(at(clock)).unwrap();
    let done = vec![outcome_of(TaskEnd::Completed)];
    client.handle_reply(Ok(ClientReply::Outcomes(done)), at(clock));
    match finished(&mut client) {
        Some(RunOutcome::Compensated(cause)) => {
            assert!(format!("{cause:?}").contains("card declined"), "{cause:?}");
        }
        other => panic!("expected a compensated run, got {other:?}"),
    }
}

#[test]
fn a_refused_or_expired_step_fails_its_attempt_with_the_reason() {
    let (mut client, _) = client_with_run();
    client.poll_op(at(0)).unwrap();
    client.handle_reply(Ok(ClientReply::Posted(vec![1])), at(0));
    client.poll_op(at(0)).unwrap();
    let refused = Verdict::Submitted(vec![Err("the queue is full".into())]);
    client.handle_reply(Ok(ClientReply::Verdicts(vec![Some(refused)])), at(0));
    match finished(&mut client) {
        Some(RunOutcome::Failed(cause)) => {
            assert!(
                format!("{cause:?}").contains("the queue is full"),
                "{cause:?}"
            );
        }
        other => panic!("expected a failed run, got {other:?}"),
    }
    let (mut client, _) = client_with_run();
    let mut clock = 0;
    post_and_accept(&mut client, &mut clock, 1, &[40]);
    client.poll_op(at(clock)).unwrap();
    let expired = TaskEnd::Expired(Expiry::Deadline);
    client.handle_reply(
        Ok(ClientReply::Outcomes(vec![outcome_of(expired)])),
        at(clock),
    );
    assert!(matches!(finished(&mut client), Some(RunOutcome::Failed(_))));
    assert_eq!(client.pool().tracked(), 0);
}

#[test]
fn a_step_cancelled_before_its_verdict_is_cancelled_once_the_cluster_names_it() {
    let (mut client, run) = client_with_run();
    client.poll_op(at(0)).unwrap();
    client.handle_reply(Ok(ClientReply::Posted(vec![1])), at(0));
    let (engine, pool) = client.parts();
    engine.cancel(pool, run, at(0)).unwrap();
    assert!(matches!(finished(&mut client), Some(RunOutcome::Failed(_))));
    // The submission's verdict names the task: the client cancels it.
    client.poll_op(at(0)).unwrap();
    let accepted = Some(Verdict::Submitted(vec![Ok(TaskId::new(40))]));
    client.handle_reply(Ok(ClientReply::Verdicts(vec![accepted])), at(0));
    assert_op(
        client.poll_op(at(0)),
        Some(ClientOp::Post(vec![Message::Cancel(TaskId::new(40))])),
    );
    client.handle_reply(Ok(ClientReply::Posted(vec![2])), at(0));
    assert_eq!(client.pool().tracked(), 0);
    assert_op(client.poll_op(at(100)), None);
}

#[test]
fn an_answer_of_the_wrong_kind_is_reported_and_changes_nothing() {
    let (mut client, _) = client_with_run();
    client.poll_op(at(0)).unwrap();
    client.handle_reply(Ok(ClientReply::Outcomes(vec![])), at(0));
    let event = client.poll_event().unwrap();
    assert!(matches!(event, ClientEvent::UnexpectedReply(_)));
    assert!(event.to_string().contains("check_store"), "{event}");
    // Unasked.
    client.handle_reply(Ok(ClientReply::Posted(vec![])), at(0));
    assert!(matches!(
        client.poll_event(),
        Some(ClientEvent::UnexpectedReply(_))
    ));
    assert_eq!(client.pool().tracked(), 1);
}

fn any_reply() -> impl Strategy<Value = Result<ClientReply<StepTask>, StoreFailure>> {
    let ids = || proptest::collection::vec(0u64..6, 0..4);
    let end = prop_oneof![
        Just(None),
        Just(outcome_of(TaskEnd::Completed)),
        Just(outcome_of(TaskEnd::Cancelled)),
        Just(outcome_of(TaskEnd::Expired(Expiry::Deadline))),
    ];
    let verdict = prop_oneof![
        Just(None),
        (0u64..6).prop_map(|t| Some(Verdict::Submitted(vec![Ok(TaskId::new(t))]))),
        Just(Some(Verdict::Submitted(vec![]))),
        Just(Some(Verdict::Accepted)),
        Just(Some(Verdict::Refused("no".into()))),
    ];
    prop_oneof![
        ids().prop_map(|v| Ok(ClientReply::Posted(v.into_iter().collect()))),
        proptest::collection::vec(verdict, 0..4).prop_map(|v| Ok(ClientReply::Verdicts(v))),
        proptest::collection::vec(end, 0..4).prop_map(|v| Ok(ClientReply::Outcomes(v))),
        Just(Err(StoreFailure::Unknown {
            cause: "lost".into()
        })),
        Just(Err(StoreFailure::Failed {
            cause: "down".into()
        })),
    ]
}

proptest! {
    /// Any answers at all — short, long, of the wrong kind, naming tasks
    /// twice — never panic, never leave the client stuck with an
    /// operation in flight, and a run ends at most once.
    #[test]
    fn corrupt_answers_never_panic_or_wedge_the_client(
        replies in proptest::collection::vec(any_reply(), 1..40),
    ) {
        let (mut client, _) = client_with_run();
        let mut ended = 0;
        for (i, reply) in replies.into_iter().enumerate() {
            let now = at(i as u64 * 10);
            client.handle_timeout(now);
            let _ = client.poll_op(now);
            client.handle_reply(reply, now);
            while client.poll_event().is_some() {}
            ended += usize::from(finished(&mut client).is_some());
            prop_assert!(client.sent.is_none());
        }
        prop_assert!(ended <= 1);
        prop_assert_eq!(ended == 1, client.engine().active_runs() == 0);
        // Then a store that keeps the contract, where every task
        // completes: nothing was lost, the run ends, nothing stays tracked.
        let mut fresh = 1_000u64;
        for round in 0..200u64 {
            let now = at(10_000 + round * 10);
            client.handle_timeout(now);
            let Some(op) = client.poll_op(now) else { continue };
            let reply = match op {
                ClientOp::Post(messages) => ClientReply::Posted(
                    messages.iter().map(|_| { fresh += 1; fresh }).collect(),
                ),
                ClientOp::Verdicts(ids) => ClientReply::Verdicts(
                    ids.iter()
                        .map(|_| {
                            fresh += 1;
                            Some(Verdict::Submitted(vec![Ok(TaskId::new(fresh))]))
                        })
                        .collect(),
                ),
                ClientOp::Outcomes(tasks) => ClientReply::Outcomes(
                    tasks.iter().map(|_| outcome_of(TaskEnd::Completed)).collect(),
                ),
                other => panic!("the client asked {other:?}"),
            };
            client.handle_reply(Ok(reply), now);
            ended += usize::from(finished(&mut client).is_some());
        }
        prop_assert_eq!(ended, 1);
        prop_assert_eq!(client.pool().tracked(), 0);
    }
}

/// Runs the client at `now`, answering every operation with `answer`, and
/// counts the operations it sends (at most 1,000).
fn ops_at(
    client: &mut WorkflowClient<StepTask, ()>,
    now: Instant,
    answer: &mut impl FnMut(&ClientOp<StepTask>) -> Result<ClientReply<StepTask>, StoreFailure>,
) -> usize {
    let mut sent = 0;
    while let Some(op) = client.poll_op(now) {
        let reply = answer(&op);
        client.handle_reply(reply, now);
        sent += 1;
        if sent == 1_000 {
            break;
        }
    }
    sent
}

/// Answers of the wrong kind, or posts answered with no ids, at one
/// instant: the client sends one operation, then waits a pause that
/// doubles up to two seconds, and at its end sends again.
#[test]
fn a_store_that_breaks_the_contract_is_asked_again_ever_later() {
    let wrong_kind = |_: &ClientOp<StepTask>| Ok(ClientReply::Verdicts(vec![]));
    let no_ids = |_: &ClientOp<StepTask>| Ok(ClientReply::Posted(vec![]));
    for mut answer in [
        Box::new(wrong_kind) as Box<dyn FnMut(&ClientOp<StepTask>) -> _>,
        Box::new(no_ids),
    ] {
        let (mut client, _) = client_with_run();
        let mut now = at(0);
        let mut pauses = Vec::new();
        for _ in 0..10 {
            assert_eq!(ops_at(&mut client, now, &mut answer), 1);
            assert!(matches!(
                client.poll_event(),
                Some(ClientEvent::UnexpectedReply(_))
            ));
            let wake = client.poll_timeout().expect("the client wakes again");
            pauses.push(wake.saturating_duration_since(now).as_millis());
            now = wake;
        }
        assert_eq!(
            pauses,
            [10, 20, 40, 80, 160, 320, 640, 1280, 2000, 2000],
            "{:?}",
            client.pool()
        );
    }
}

#[test]
fn the_ends_answered_with_another_kind_are_not_read_again_at_once() {
    let (mut client, _) = client_with_run();
    let mut clock = 0;
    post_and_accept(&mut client, &mut clock, 1, &[40]);
    let mut answer = |_: &ClientOp<StepTask>| Ok(ClientReply::Posted(vec![1]));
    assert_eq!(ops_at(&mut client, at(clock), &mut answer), 1);
    assert_eq!(client.poll_timeout(), Some(at(clock + 10)));
}

/// A round that reads only verdicts (no task of the client runs yet)
/// ends like any round: the next one is a poll period away.
#[test]
fn a_round_of_verdicts_alone_waits_for_the_next_period() {
    let (mut client, _) = client_with_run();
    client.poll_op(at(0)).unwrap();
    client.handle_reply(Ok(ClientReply::Posted(vec![7])), at(0));
    let mut pending = |_: &ClientOp<StepTask>| Ok(ClientReply::Verdicts(vec![None]));
    assert_eq!(ops_at(&mut client, at(0), &mut pending), 1);
    assert_eq!(client.poll_timeout(), Some(at(10)));
    assert_eq!(ops_at(&mut client, at(10), &mut pending), 1);
    assert_eq!(client.poll_timeout(), Some(at(20)));
}

proptest! {
    /// Whatever the store answers, the client sends at most a post, a
    /// round of reads (verdicts, outcomes) and the post of the steps the
    /// round's outcomes started at one instant, then names a later one.
    /// (The second post is not held back a period: a run's next step
    /// goes out as soon as its previous one's end is read.)
    #[test]
    fn any_answers_cost_a_bounded_number_of_operations_per_instant(
        replies in proptest::collection::vec(any_reply(), 1..40),
    ) {
        let (mut client, _) = client_with_run();
        let mut next = replies.iter().cycle();
        let now = at(0);
        let sent = ops_at(&mut client, now, &mut |_| next.next().cloned().unwrap());
        prop_assert!(sent <= 4, "{sent} operations at one instant");
        if let Some(wake) = client.poll_timeout() {
            prop_assert!(wake > now, "{wake:?}");
        }
    }
}

/// A task's end as a store answers it, without an output.
fn outcome_of(end: TaskEnd) -> Option<Outcome<StepTask>> {
    Some(Outcome { end, output: None })
}
