//! The per-task scheduling options: start times, metadata, costs against
//! rate limits, and dead-letter redrive. Case counts follow
//! `PROPTEST_CASES`.

#![cfg(feature = "serde")]

mod corrupt;

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use taskweave::agent::AgentProfile;
use taskweave::protocol::{Body, Envelope, MessageId};
use taskweave::resilience::{KeyedRateLimiter, Quota};
use taskweave::routing::{LeastLoaded, RoutingStrategy};
use taskweave::scheduler::{
    Action, AttemptOutcome, ConcurrencyLimit, DeadLetterCause, DeadLetterFilter, Dispatcher,
    DispatcherConfig, Expiry, LimitScope, MAX_CONCURRENCY_KEYS, MAX_KEY_BYTES, Metadata,
    SchedulerError, Snapshot, SubmitErrorKind, TaskReport, TaskSpec, TaskState,
};
use taskweave::{AgentId, Instant, TaskId, TaskRequirements};

mod harness;

fn agent(d: &mut Dispatcher<u32>, id: u64, capacity: u32, now: Instant) {
    let profile = AgentProfile::builder().capacity(capacity).build().unwrap();
    d.register_agent(AgentId::new(id), profile, now).unwrap();
}

fn strategy() -> Box<dyn RoutingStrategy + Send> {
    Box::new(LeastLoaded::new())
}

/// Fails every attempt handed out at `now` with a fatal outcome.
fn fail_every_attempt(d: &mut Dispatcher<u32>, now: Instant) {
    while let Some(action) = d.poll_action() {
        if let Action::Assign {
            task, agent, token, ..
        } = action
        {
            let outcome = AttemptOutcome::fatal("provider down");
            let report = TaskReport {
                task,
                agent,
                token,
                outcome,
            };
            d.report(report, now).unwrap();
        }
    }
}

proptest! {
    #![proptest_config(corrupt::config(64))]

    /// No task is assigned before its `not_before`, `poll_timeout` never
    /// sleeps past a start that is due, and every task runs in the end.
    #[test]
    fn no_task_is_dispatched_before_its_start(
        starts in proptest::collection::vec(proptest::option::of(0u64..60_000), 1..60),
        steps in proptest::collection::vec(0u64..5_000, 1..80),
    ) {
        let mut d: Dispatcher<u32> = Dispatcher::new(DispatcherConfig::default());
        agent(&mut d, 1, 4, Instant::ZERO);
        let mut start_of = BTreeMap::new();
        for (n, start) in starts.iter().enumerate() {
            let mut spec = TaskSpec::new(n as u32);
            if let Some(ms) = start {
                spec = spec.not_before(Instant::from_millis(*ms));
            }
            let task = d.submit(spec, Instant::ZERO).unwrap().id();
            start_of.insert(task, Instant::from_millis(start.unwrap_or(0)));
        }
        let mut now = Instant::ZERO;
        let mut done = 0;
        let mut step = steps.iter().cycle();
        for _ in 0..10_000 {
            if done == starts.len() {
                break;
            }
            while let Some(action) = d.poll_action() {
                if let Action::Assign { task, agent, token, .. } = action {
                    prop_assert!(now >= start_of[&task], "{} ran at {} before {}", task, now, start_of[&task]);
                    d.report(TaskReport { task, agent, token, outcome: AttemptOutcome::Success }, now).unwrap();
                    done += 1;
                }
            }
            let next_start = start_of
                .iter()
                .filter(|(t, _)| d.task_state(**t) == Some(TaskState::Delayed { until: start_of[t] }))
                .map(|(_, &at)| at)
                .min();
            if let Some(at) = next_start {
                prop_assert!(d.poll_timeout().is_some_and(|wake| wake <= at));
            }
            // Jump by a random step, or to the wake-up instant.
            let jump = now + Duration::from_millis(*step.next().unwrap_or(&1));
            now = match d.poll_timeout() {
                Some(wake) if wake < jump => wake,
                _ => jump,
            };
            d.handle_timeout(now);
        }
        prop_assert_eq!(done, starts.len());
    }

    /// Metadata comes back as submitted from the dispatcher, from a
    /// restored snapshot, from a dead letter and through the protocol.
    #[test]
    fn metadata_round_trips(
        entries in proptest::collection::btree_map("[a-z-]{1,12}", "\\PC{0,40}", 0..10),
    ) {
        let metadata: Metadata = entries.clone().into_iter().collect();
        let mut d: Dispatcher<u32> = Dispatcher::new(DispatcherConfig::default());
        let mut spec = TaskSpec::new(7);
        spec.options_mut().metadata = metadata.clone();
        let task = d.submit(spec, Instant::ZERO).unwrap().id();
        prop_assert_eq!(d.metadata(task), Some(&metadata));

        let json = serde_json::to_string(&d.snapshot()).unwrap();
        let snapshot: Snapshot<u32> = serde_json::from_str(&json).unwrap();
        let mut restored = Dispatcher::restore(DispatcherConfig::default(), strategy(), snapshot).unwrap();
        prop_assert_eq!(restored.metadata(task), Some(&metadata));

        agent(&mut restored, 1, 1, Instant::ZERO);
        let action = restored.poll_action().unwrap();
        let envelope = Envelope::from_action(&action, Some(7u32), MessageId::new(1), Instant::ZERO)
            .unwrap()
            .with_metadata(restored.metadata(task).cloned().unwrap_or_default());
        let wire = serde_json::to_string(&envelope).unwrap();
        let read: Envelope<u32> = serde_json::from_str(&wire).unwrap();
        let Body::Assign { metadata: carried, .. } = read.body else {
            return Err(TestCaseError::fail("not an assignment"));
        };
        prop_assert_eq!(&carried, &metadata);

        let Action::Assign { agent, token, .. } = action else {
            return Err(TestCaseError::fail("not an assignment"));
        };
        let outcome = AttemptOutcome::fatal("no");
        restored.report(TaskReport { task, agent, token, outcome }, Instant::ZERO).unwrap();
        let letter = restored.dead_letters().get(task).unwrap();
        prop_assert_eq!(&letter.spec.options().metadata, &metadata);
    }
}

#[test]
fn submissions_that_could_never_run_are_refused_with_their_reason() {
    let quota = Quota::new(10, Duration::from_secs(1)).unwrap();
    let config = DispatcherConfig::builder()
        .kind_rate_limit(KeyedRateLimiter::new(quota.with_burst(20).unwrap()))
        .agent_rate_limit(quota.with_burst(30).unwrap())
        .concurrency_limit("tokens", ConcurrencyLimit::new(5).rate(quota))
        .build()
        .unwrap();
    let mut d: Dispatcher<u32> = Dispatcher::new(config);
    let now = Instant::from_secs(5);
    let kind = TaskRequirements::new().kind("llm");
    let cases: Vec<(TaskSpec<u32>, SubmitErrorKind)> = vec![
        (TaskSpec::new(1).cost(0), SubmitErrorKind::ZeroCost),
        (
            TaskSpec::new(2).requirements(kind.clone()).cost(21),
            SubmitErrorKind::CostOverBurst {
                limit: LimitScope::Kind,
                cost: 21,
                burst: 20,
            },
        ),
        (
            TaskSpec::new(3).cost(31),
            SubmitErrorKind::CostOverBurst {
                limit: LimitScope::Agent,
                cost: 31,
                burst: 30,
            },
        ),
        (
            TaskSpec::new(4).concurrency_key("tokens").cost(11),
            SubmitErrorKind::CostOverBurst {
                limit: LimitScope::ConcurrencyKey,
                cost: 11,
                burst: 10,
            },
        ),
        (
            TaskSpec::new(5).fairness("acme", 0),
            SubmitErrorKind::ZeroFairnessWeight,
        ),
        (
            TaskSpec::new(5).max_attempts(0),
            SubmitErrorKind::ZeroMaxAttempts,
        ),
        (
            TaskSpec::new(6)
                .not_before(Instant::from_secs(9))
                .deadline(Instant::from_secs(9)),
            SubmitErrorKind::StartAfterDeadline {
                not_before: Instant::from_secs(9),
                deadline: Instant::from_secs(9),
            },
        ),
        (
            TaskSpec::new(6).not_before(Instant::MAX),
            SubmitErrorKind::StartNever {
                not_before: Instant::MAX,
            },
        ),
        (
            TaskSpec::new(7).concurrency_key("k".repeat(MAX_KEY_BYTES + 1)),
            SubmitErrorKind::KeyTooLong {
                bytes: MAX_KEY_BYTES + 1,
            },
        ),
        (
            TaskSpec::new(8).fairness("f".repeat(MAX_KEY_BYTES + 1), 1),
            SubmitErrorKind::KeyTooLong {
                bytes: MAX_KEY_BYTES + 1,
            },
        ),
    ];
    for (spec, expected) in cases {
        let payload = spec.payload;
        let error = d.submit(spec, now).unwrap_err();
        assert_eq!(error.kind, expected);
        assert_eq!(error.spec.payload, payload, "the task is handed back");
    }
    let mut many = TaskSpec::new(9);
    for n in 0..=MAX_CONCURRENCY_KEYS {
        many = many.concurrency_key(n.to_string());
    }
    let error = d.submit(many, now).unwrap_err();
    assert_eq!(
        error.kind,
        SubmitErrorKind::TooManyConcurrencyKeys {
            count: MAX_CONCURRENCY_KEYS + 1
        }
    );
    let huge = TaskSpec::new(10).metadata("blob", "x".repeat(Metadata::MAX_BYTES));
    assert!(matches!(
        d.submit(huge, now).unwrap_err().kind,
        SubmitErrorKind::MetadataTooLarge(_)
    ));
    assert_eq!(d.live_tasks(), 0);
    // At the burst it is fine.
    assert!(
        d.submit(TaskSpec::new(11).requirements(kind).cost(10), now)
            .is_ok()
    );
}

#[test]
fn costs_are_charged_against_a_kind_rate() {
    // 10 tokens a second, bursts of 10: a 6-token task, then another must
    // wait until 2 tokens more have accrued (0.2 s).
    let quota = Quota::new(10, Duration::from_secs(1)).unwrap();
    let config = DispatcherConfig::builder()
        .kind_rate_limit(KeyedRateLimiter::new(quota))
        .build()
        .unwrap();
    let mut d: Dispatcher<u32> = Dispatcher::new(config);
    let t0 = Instant::from_secs(10);
    agent(&mut d, 1, 4, t0);
    let kind = TaskRequirements::new().kind("llm");
    let _ = d
        .submit(TaskSpec::new(1).requirements(kind.clone()).cost(6), t0)
        .unwrap();
    let _ = d
        .submit(TaskSpec::new(2).requirements(kind).cost(6), t0)
        .unwrap();
    assert!(matches!(d.poll_action(), Some(Action::Assign { .. })));
    assert_eq!(d.poll_action(), None);
    let wake = d.poll_timeout().unwrap();
    assert_eq!(wake, t0 + Duration::from_millis(200));
    d.handle_timeout(wake);
    assert!(matches!(d.poll_action(), Some(Action::Assign { .. })));
}

#[test]
fn a_delayed_task_counts_its_ttl_from_its_start_and_keeps_its_deadline() {
    let mut d: Dispatcher<u32> = Dispatcher::new(DispatcherConfig::default());
    let t0 = Instant::ZERO;
    let start = Instant::from_secs(100);
    let ttl = d
        .submit(
            TaskSpec::new(1)
                .not_before(start)
                .ttl(Duration::from_secs(10)),
            t0,
        )
        .unwrap()
        .id();
    let deadline = d
        .submit(
            TaskSpec::new(2)
                .not_before(start)
                .deadline(Instant::from_secs(105)),
            t0,
        )
        .unwrap()
        .id();
    assert_eq!(d.task_state(ttl), Some(TaskState::Delayed { until: start }));
    assert_eq!(d.poll_timeout(), Some(start));
    d.handle_timeout(start);
    assert_eq!(d.task_state(ttl), Some(TaskState::Queued));
    assert_eq!(d.task_state(deadline), Some(TaskState::Queued));
    d.handle_timeout(Instant::from_secs(105));
    assert_eq!(d.task_state(deadline), Some(TaskState::Expired));
    d.handle_timeout(Instant::from_secs(109));
    assert_eq!(d.task_state(ttl), Some(TaskState::Queued));
    d.handle_timeout(Instant::from_secs(110));
    assert_eq!(d.task_state(ttl), Some(TaskState::Expired));
    assert!(matches!(
        d.poll_action(),
        Some(Action::Expired {
            limit: Expiry::Deadline,
            ..
        })
    ));
}

#[test]
fn cancelling_a_delayed_or_retrying_task_ends_it_at_once() {
    let mut d: Dispatcher<u32> = Dispatcher::new(DispatcherConfig::default());
    let t0 = Instant::ZERO;
    let delayed = d
        .submit(TaskSpec::new(1).not_before(Instant::from_secs(60)), t0)
        .unwrap()
        .id();
    assert_eq!(d.cancel(delayed, t0), Ok(1));
    assert_eq!(d.task_state(delayed), Some(TaskState::Cancelled));
    agent(&mut d, 1, 1, t0);
    let retrying = d.submit(TaskSpec::new(2), t0).unwrap().id();
    let Some(Action::Assign { agent, token, .. }) = d.poll_action() else {
        panic!("no assignment");
    };
    let failed = TaskReport {
        task: retrying,
        agent,
        token,
        outcome: AttemptOutcome::failure("try again"),
    };
    d.report(failed, t0).unwrap();
    assert!(matches!(
        d.task_state(retrying),
        Some(TaskState::Delayed { .. })
    ));
    assert_eq!(d.cancel(retrying, t0), Ok(2));
    d.handle_timeout(Instant::from_secs(3_600));
    assert_eq!(d.task_state(retrying), Some(TaskState::Cancelled));
    assert_eq!(d.poll_action(), None);
}

#[test]
fn redrive_requeues_by_filter_and_keeps_history() {
    let mut d: Dispatcher<u32> = Dispatcher::new(DispatcherConfig::default());
    let t0 = Instant::ZERO;
    agent(&mut d, 1, 8, t0);
    let llm = TaskRequirements::new().kind("llm");
    let specs = [
        TaskSpec::new(1)
            .requirements(llm.clone())
            .fairness("acme", 1),
        TaskSpec::new(2)
            .requirements(llm.clone())
            .concurrency_key("acme"),
        TaskSpec::new(3).requirements(llm).fairness("globex", 1),
        TaskSpec::new(4).fairness("acme", 1),
    ];
    for spec in specs {
        let _ = d.submit(spec, t0).unwrap();
    }
    fail_every_attempt(&mut d, t0);
    assert_eq!(d.dead_letters().len(), 4);

    let filter = DeadLetterFilter::new()
        .kind("llm")
        .cause(DeadLetterCause::NonRetryable)
        .key("acme");
    let t1 = Instant::from_secs(60);
    let redriven = d.redrive_dead_letters(&filter, t1);
    assert_eq!(redriven.requeued.len(), 2);
    assert!(redriven.refused.is_empty());
    let payloads: Vec<u32> = d.dead_letters().iter().map(|l| l.spec.payload).collect();
    assert_eq!(payloads, [3, 4]);

    fail_every_attempt(&mut d, t1);
    for (old, new) in &redriven.requeued {
        let letter = d.dead_letters().get(*new).unwrap();
        assert_eq!(letter.history.len(), 1);
        assert_eq!(letter.history[0].task, *old);
        assert_eq!(letter.history[0].at, t0);
        assert_eq!(
            letter.history[0].reason.cause(),
            DeadLetterCause::NonRetryable
        );
    }
    let none = d.redrive_dead_letters(&DeadLetterFilter::new().cause(DeadLetterCause::Expired), t1);
    assert!(none.requeued.is_empty() && none.refused.is_empty());
}

#[test]
fn redrive_leaves_what_a_full_queue_refuses() {
    let config = DispatcherConfig::builder()
        .queue_capacity(1)
        .build()
        .unwrap();
    let mut d: Dispatcher<u32> = Dispatcher::new(config);
    let t0 = Instant::ZERO;
    agent(&mut d, 1, 2, t0);
    for n in 0..2 {
        let _ = d.submit(TaskSpec::new(n), t0).unwrap();
        let Some(Action::Assign {
            task, agent, token, ..
        }) = harness::drain(&mut d)
            .into_iter()
            .find(|a| matches!(a, Action::Assign { .. }))
        else {
            panic!("no assignment");
        };
        let outcome = AttemptOutcome::fatal("bad input");
        d.report(
            TaskReport {
                task,
                agent,
                token,
                outcome,
            },
            t0,
        )
        .unwrap();
    }
    d.unregister_agent(AgentId::new(1), t0).unwrap();
    let redriven = d.redrive_dead_letters(&DeadLetterFilter::new(), t0);
    assert_eq!(redriven.requeued.len(), 1);
    assert_eq!(redriven.refused.len(), 1);
    assert!(matches!(
        redriven.refused[0].1,
        SubmitErrorKind::QueueFull { .. }
    ));
    assert_eq!(d.dead_letters().len(), 1);
}

#[test]
fn costs_are_charged_against_an_agent_rate() {
    // Each agent takes 10 cells a second, bursts of 10. A 6-cell task
    // leaves 4: too few for a second 6-cell task, which waits until its
    // whole cost conforms (0.2 s later), so the rate holds exactly.
    let quota = Quota::new(10, Duration::from_secs(1)).unwrap();
    let config = DispatcherConfig::builder()
        .agent_rate_limit(quota)
        .build()
        .unwrap();
    let mut d: Dispatcher<u32> = Dispatcher::new(config);
    let t0 = Instant::from_secs(10);
    agent(&mut d, 1, 8, t0);
    for n in 0..3 {
        let _ = d.submit(TaskSpec::new(n).cost(6), t0).unwrap();
    }
    let assigned = harness::drain(&mut d)
        .into_iter()
        .filter(|a| matches!(a, Action::Assign { .. }))
        .count();
    assert_eq!(assigned, 1, "4 cells left cannot pay for a 6-cell task");
    let wake = d.poll_timeout().unwrap();
    assert_eq!(wake, t0 + Duration::from_millis(200));
    d.handle_timeout(wake);
    assert!(matches!(d.poll_action(), Some(Action::Assign { .. })));
    assert_eq!(d.poll_action(), None);

    // The same three tasks at cost 1 all go at once.
    let mut cheap: Dispatcher<u32> = Dispatcher::new(
        DispatcherConfig::builder()
            .agent_rate_limit(quota)
            .build()
            .unwrap(),
    );
    agent(&mut cheap, 1, 8, t0);
    for n in 0..3 {
        let _ = cheap.submit(TaskSpec::new(n), t0).unwrap();
    }
    let assigned = harness::drain(&mut cheap)
        .into_iter()
        .filter(|a| matches!(a, Action::Assign { .. }))
        .count();
    assert_eq!(assigned, 3);
}

proptest! {
    #![proptest_config(corrupt::config(64))]

    /// An agent's rate holds for task costs over every window: the cost of
    /// the tasks an agent started in `[a, b]` is at most its burst plus
    /// what the rate earns in `b - a` (GCRA's bound), whatever the costs,
    /// quota and clock; and every task runs in the end.
    #[test]
    fn an_agent_rate_holds_over_every_window_whatever_the_costs(
        cells in 1u32..6, period_ms in 100u64..3_000, burst in 1u32..5, agents in 1u64..4,
        costs in proptest::collection::vec(1u32..5, 1..40),
        steps in proptest::collection::vec(0u64..700, 1..40),
    ) {
        let quota = Quota::new(cells, Duration::from_millis(period_ms))
            .unwrap()
            .with_burst(burst)
            .unwrap();
        let config = DispatcherConfig::builder().agent_rate_limit(quota).build().unwrap();
        let mut d: Dispatcher<u32> = Dispatcher::new(config);
        let mut now = Instant::from_secs(1);
        for id in 1..=agents {
            agent(&mut d, id, 4, now);
        }
        let mut cost_of = BTreeMap::new();
        for (n, cost) in costs.iter().enumerate() {
            let cost = (*cost).min(burst);
            let task = d.submit(TaskSpec::new(n as u32).cost(cost), now).unwrap().id();
            cost_of.insert(task, cost);
        }
        let mut started: BTreeMap<AgentId, Vec<(Instant, u32)>> = BTreeMap::new();
        let mut step = steps.iter().cycle();
        for _ in 0..20_000 {
            while let Some(action) = d.poll_action() {
                if let Action::Assign { task, agent, token, .. } = action {
                    let cost = cost_of[&task];
                    started.entry(agent).or_default().push((now, cost));
                    d.report(TaskReport { task, agent, token, outcome: AttemptOutcome::Success }, now).unwrap();
                }
            }
            if d.live_tasks() == 0 {
                break;
            }
            let jump = now + Duration::from_millis(*step.next().unwrap_or(&1));
            now = match d.poll_timeout() {
                Some(wake) if wake < jump => wake,
                _ => jump,
            };
            d.handle_timeout(now);
        }
        prop_assert_eq!(d.live_tasks(), 0, "every task runs in the end");
        let interval = u128::from(quota.interval().as_nanos() as u64);
        for (agent, starts) in &started {
            for (i, &(a, _)) in starts.iter().enumerate() {
                let mut spent = 0u128;
                for &(b, cost) in &starts[i..] {
                    spent += u128::from(cost);
                    let earned = u128::from((b - a).as_nanos() as u64);
                    prop_assert!(
                        spent * interval <= u128::from(burst) * interval + earned,
                        "agent {} spent {} cells in {:?} (burst {}, one cell per {:?})",
                        agent, spent, b - a, burst, quota.interval()
                    );
                }
            }
        }
    }
}

/// A task's `max_attempts` caps what the retry policy allows, and holds
/// for every way an attempt ends: a failure, a lost agent, a preemption
/// (not tried here: it shares the lost agent's path).
#[test]
fn max_attempts_caps_retries_and_failovers_alike() {
    use taskweave::resilience::Fixed;
    use taskweave::scheduler::DeadLetterReason;
    let config = DispatcherConfig::builder()
        .retry_policy(Fixed::new(Duration::ZERO, 9).unwrap())
        .build()
        .unwrap();
    let mut d: Dispatcher<u32> = Dispatcher::new(config);
    let now = Instant::ZERO;
    agent(&mut d, 1, 4, now);
    let failing = d
        .submit(TaskSpec::new(1).max_attempts(2), now)
        .unwrap()
        .id();
    let lost = d
        .submit(TaskSpec::new(2).max_attempts(1), now)
        .unwrap()
        .id();
    let mut runs = BTreeMap::new();
    let mut letters = BTreeMap::new();
    for _ in 0..10 {
        while let Some(action) = d.poll_action() {
            match action {
                Action::Assign {
                    task, agent, token, ..
                } => {
                    *runs.entry(task).or_insert(0) += 1;
                    if task == failing {
                        let outcome = AttemptOutcome::failure("no");
                        d.report(
                            TaskReport {
                                task,
                                agent,
                                token,
                                outcome,
                            },
                            now,
                        )
                        .unwrap();
                    }
                }
                Action::DeadLettered { task, reason } => {
                    letters.insert(task, reason);
                }
                _ => {}
            }
        }
        if runs.contains_key(&lost) && !letters.contains_key(&lost) {
            let _ = d.unregister_agent(AgentId::new(1), now).unwrap();
            agent(&mut d, 1, 4, now);
        }
    }
    assert_eq!(runs[&failing], 2);
    assert_eq!(runs[&lost], 1);
    assert_eq!(
        letters[&failing],
        DeadLetterReason::RetriesExhausted {
            attempts: 2,
            last_error: "no".into()
        }
    );
    assert_eq!(
        letters[&lost],
        DeadLetterReason::RetriesExhausted {
            attempts: 1,
            last_error: "its agent was lost".into()
        }
    );
}

/// A spec using every option, as a journal or protocol message carries it.
fn spec_with_every_option() -> TaskSpec<u32> {
    TaskSpec::new(7)
        .priority(taskweave::Priority::High)
        .requirements(TaskRequirements::new().kind("llm"))
        .ttl(Duration::from_secs(30))
        .deadline(Instant::from_secs(60))
        .attempt_timeout(Duration::from_secs(5))
        .not_before(Instant::from_secs(2))
        .fairness("acme", 2)
        .concurrency_key("openai")
        .cost(3)
        .metadata("traceparent", "00-1-2-01")
        .max_attempts(2)
}

proptest! {
    #![proptest_config(corrupt::config(256))]

    /// A submission read from a corrupted entry — leaves moved to numeric
    /// edges, strings made over-long, fields dropped — is refused when
    /// read, refused at submission with a typed error, or runs to an end:
    /// never a panic, and the uncorrupted form reads back equal.
    #[test]
    fn corrupted_submissions_are_refused_or_run(
        picks in proptest::collection::vec(
            (any::<proptest::sample::Index>(), any::<u8>(), any::<u64>(), any::<bool>()),
            1..4,
        ),
    ) {
        let spec = spec_with_every_option();
        let value = serde_json::to_value(&spec).unwrap();
        let back: TaskSpec<u32> = serde_json::from_value(value.clone()).unwrap();
        prop_assert_eq!(&back, &spec);
        let mut bad = value;
        for (at, how, noise, drop) in picks {
            let leaves = corrupt::paths_where(&bad, |v| !(v.is_object() || v.is_array()));
            let path = &leaves[at.index(leaves.len())];
            match (drop, path.split_last()) {
                (true, Some((corrupt::PathStep::Key(key), parent))) => {
                    if let Some(fields) = corrupt::at_path(&mut bad, parent).as_object_mut() {
                        fields.remove(key);
                    }
                }
                _ => {
                    let leaf = corrupt::at_path(&mut bad, path);
                    *leaf = match &*leaf {
                        serde_json::Value::String(_) if how % 2 == 0 => {
                            serde_json::Value::from("k".repeat(MAX_KEY_BYTES + 1))
                        }
                        old => corrupt::corrupt_leaf(old, how, noise),
                    };
                }
            }
        }
        let Ok(spec) = serde_json::from_value::<TaskSpec<u32>>(bad) else {
            return Ok(());
        };
        let config = DispatcherConfig::builder()
            .kind_rate_limit(KeyedRateLimiter::new(Quota::new(10, Duration::from_secs(1)).unwrap()))
            .concurrency_limit(
                "openai",
                ConcurrencyLimit::new(1).rate(Quota::new(10, Duration::from_secs(1)).unwrap()),
            )
            .build()
            .unwrap();
        let mut d: Dispatcher<u32> = Dispatcher::with_strategy(config, strategy());
        agent(&mut d, 1, 2, Instant::ZERO);
        let mut now = Instant::from_secs(1);
        if d.submit(spec, now).is_err() {
            return Ok(());
        }
        // Run it to an end: every assignment succeeds; time moves to the
        // next timer (or a second on), a bounded number of times.
        for _ in 0..64 {
            while let Some(action) = d.poll_action() {
                if let Action::Assign { task, agent, token, .. } = action {
                    let outcome = AttemptOutcome::Success;
                    d.report(TaskReport { task, agent, token, outcome }, now).unwrap();
                }
            }
            if d.live_tasks() == 0 {
                break;
            }
            now = d.poll_timeout().unwrap_or(now).max(now.saturating_add(Duration::from_secs(1)));
            d.handle_timeout(now);
        }
        prop_assert_eq!(d.live_tasks(), 0, "the task ends (runs, expires or is dead-lettered)");
    }
}

#[test]
fn a_letter_marked_no_redrive_stays_where_it_is_through_a_restore() {
    let config = || DispatcherConfig::builder().build().unwrap();
    let mut d: Dispatcher<u32> = Dispatcher::new(config());
    let t0 = Instant::ZERO;
    // Queued when the snapshot is taken: the mark lives in the task.
    let held = d.submit(TaskSpec::new(1).no_redrive(), t0).unwrap().id();
    let plain = d.submit(TaskSpec::new(2), t0).unwrap().id();
    let snapshot = serde_json::to_string(&d.snapshot()).unwrap();
    let snapshot: Snapshot<u32> = serde_json::from_str(&snapshot).unwrap();
    let mut d = Dispatcher::restore(config(), strategy(), snapshot).unwrap();
    agent(&mut d, 1, 2, t0);
    fail_every_attempt(&mut d, t0);
    assert_eq!(d.dead_letters().len(), 2);

    let t1 = Instant::from_secs(60);
    let redriven = d.redrive_dead_letters(&DeadLetterFilter::new(), t1);
    assert_eq!(redriven.refused, [(held, SubmitErrorKind::NotRedrivable)]);
    assert_eq!(redriven.requeued.len(), 1);
    assert_eq!(redriven.requeued[0].0, plain);
    let refused = d.requeue_dead_letter(held, t1).unwrap_err();
    assert_eq!(
        refused,
        SchedulerError::Submit(SubmitErrorKind::NotRedrivable)
    );
    // And again once the letter itself went through a snapshot.
    let snapshot = serde_json::to_string(&d.snapshot()).unwrap();
    let snapshot: Snapshot<u32> = serde_json::from_str(&snapshot).unwrap();
    let mut d = Dispatcher::restore(config(), strategy(), snapshot).unwrap();
    let letters: Vec<TaskId> = d.dead_letters().iter().map(|l| l.task).collect();
    assert_eq!(letters, [held]);
    let redriven = d.redrive_dead_letters(&DeadLetterFilter::new(), t1);
    assert_eq!(redriven.refused, [(held, SubmitErrorKind::NotRedrivable)]);
    assert!(redriven.requeued.is_empty());
    assert_eq!(d.dead_letters().len(), 1);
}
