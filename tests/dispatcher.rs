//! The dispatcher's behaviours, one by one.

use std::time::Duration;

use taskweave::agent::{AgentProfile, AgentStatus};
use taskweave::resilience::{ExponentialBackoff, Fixed, Jitter};
use taskweave::scheduler::{
    Action, AttemptOutcome, CancelReason, DeadLetterReason, Dispatcher, DispatcherConfig,
    DispatcherConfigBuilder, Expiry, ReportError, SchedulerError, SubmitErrorKind, Submitted,
    TaskReport, TaskSpec, TaskState,
};
use taskweave::{AgentId, AttemptToken, Instant, Priority, TaskId, TaskRequirements};

mod harness;

use harness::drain;

fn t(secs: u64) -> Instant {
    Instant::from_secs(secs)
}

fn agent(n: u64) -> AgentId {
    AgentId::new(n)
}

fn profile(capacity: u32, caps: &[&str]) -> AgentProfile {
    AgentProfile::builder()
        .capabilities(caps.iter().copied())
        .capacity(capacity)
        .build()
        .unwrap()
}

fn dispatcher(config: DispatcherConfigBuilder) -> Dispatcher<&'static str> {
    Dispatcher::new(config.build().unwrap())
}

/// The assignments among pending actions: (task, agent, token).
fn assignments(d: &mut Dispatcher<&'static str>) -> Vec<(TaskId, AgentId, AttemptToken)> {
    drain(d)
        .into_iter()
        .filter_map(|a| match a {
            Action::Assign {
                task, agent, token, ..
            } => Some((task, agent, token)),
            _ => None,
        })
        .collect()
}

fn succeed(
    d: &mut Dispatcher<&'static str>,
    (task, agent, token): (TaskId, AgentId, AttemptToken),
    now: Instant,
) {
    let report = TaskReport {
        task,
        agent,
        token,
        outcome: AttemptOutcome::Success,
    };
    d.report(report, now).unwrap();
}

fn fail(
    d: &mut Dispatcher<&'static str>,
    (task, agent, token): (TaskId, AgentId, AttemptToken),
    outcome: AttemptOutcome,
    now: Instant,
) {
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

fn submit(d: &mut Dispatcher<&'static str>, spec: TaskSpec<&'static str>, now: Instant) -> TaskId {
    d.submit(spec, now).unwrap().id()
}

#[test]
fn higher_priority_first_then_fifo() {
    let mut d = dispatcher(DispatcherConfig::builder());
    let busy = submit(&mut d, TaskSpec::new("busy"), t(0));
    d.register_agent(agent(1), profile(1, &[]), t(0)).unwrap();
    let first = assignments(&mut d);
    assert_eq!(first[0].0, busy);
    let low = submit(&mut d, TaskSpec::new("low").priority(Priority::Low), t(0));
    let crit = submit(
        &mut d,
        TaskSpec::new("crit").priority(Priority::Critical),
        t(0),
    );
    let normal_a = submit(&mut d, TaskSpec::new("a"), t(0));
    let normal_b = submit(&mut d, TaskSpec::new("b"), t(0));
    assert_eq!(d.queue_depth(Priority::Normal), 2);
    let mut order = Vec::new();
    let mut current = first[0];
    for _ in 0..4 {
        succeed(&mut d, current, t(0));
        current = assignments(&mut d)[0];
        order.push(current.0);
    }
    assert_eq!(order, [crit, normal_a, normal_b, low]);
}

#[test]
fn aging_bounds_the_wait_of_low_priority_work_under_a_p0_stream() {
    let aging = Duration::from_secs(10);
    let mut d = dispatcher(DispatcherConfig::builder().aging_interval(Some(aging)));
    d.register_agent(agent(1), profile(1, &[]), t(0)).unwrap();
    let mut running = assignments(&mut d);
    assert!(running.is_empty());
    submit(
        &mut d,
        TaskSpec::new("p0").priority(Priority::Critical),
        t(0),
    );
    let low = submit(&mut d, TaskSpec::new("p3").priority(Priority::Low), t(0));
    running = assignments(&mut d);
    // One P0 task arrives every second and each takes one second.
    for second in 1..100 {
        submit(
            &mut d,
            TaskSpec::new("p0").priority(Priority::Critical),
            t(second),
        );
        succeed(&mut d, running[0], t(second));
        running = assignments(&mut d);
        if running[0].0 == low {
            assert!(second <= 30, "P3 waited {second}s, bound is 3 × 10s");
            return;
        }
    }
    panic!("the P3 task starved");
}

#[test]
fn a_full_queue_hands_the_task_back() {
    let mut d = dispatcher(DispatcherConfig::builder().queue_capacity(2));
    submit(&mut d, TaskSpec::new("1"), t(0));
    submit(&mut d, TaskSpec::new("2"), t(0));
    let refused = d.submit(TaskSpec::new("3"), t(0)).unwrap_err();
    assert_eq!(refused.kind, SubmitErrorKind::QueueFull { capacity: 2 });
    assert_eq!(refused.spec.payload, "3");
    let late = d.submit(TaskSpec::new("late").deadline(t(5)), t(9));
    assert!(late.is_err());
    // A spec with no limit or option is refused on a shorter path: it
    // comes back whole, priority and requirements included.
    let asks = TaskRequirements::new().require(["gpu"]).kind("render");
    let spec = TaskSpec::new("4")
        .priority(Priority::High)
        .requirements(asks.clone());
    let refused = d.submit(spec, t(0)).unwrap_err();
    assert_eq!(refused.kind, SubmitErrorKind::QueueFull { capacity: 2 });
    let back = *refused.spec;
    assert_eq!((back.payload, back.priority), ("4", Priority::High));
    assert_eq!(back.requirements, asks);
    assert!(back.ttl.is_none() && back.deadline.is_none() && back.attempt_timeout.is_none());
}

#[test]
fn reserved_slots_are_kept_for_p0_and_p1() {
    let mut d = dispatcher(DispatcherConfig::builder().reserved_share(0.5));
    d.register_agent(agent(1), profile(1, &[]), t(0)).unwrap();
    d.register_agent(agent(2), profile(1, &[]), t(0)).unwrap();
    submit(&mut d, TaskSpec::new("normal"), t(0));
    assert_eq!(assignments(&mut d).len(), 1);
    let second_normal = submit(&mut d, TaskSpec::new("normal 2"), t(0));
    assert!(
        assignments(&mut d).is_empty(),
        "half the slots are busy: P2 must wait"
    );
    let high = submit(&mut d, TaskSpec::new("high").priority(Priority::High), t(0));
    assert_eq!(assignments(&mut d)[0].0, high);
    assert_eq!(d.task_state(second_normal), Some(TaskState::Queued));
}

#[test]
fn idempotency_keys_return_the_existing_task_within_the_window() {
    let mut d = dispatcher(DispatcherConfig::builder().idempotency_window(Duration::from_secs(60)));
    let first = d
        .submit(TaskSpec::new("a").idempotency_key("k"), t(0))
        .unwrap();
    let again = d
        .submit(TaskSpec::new("b").idempotency_key("k"), t(30))
        .unwrap();
    assert_eq!(again, Submitted::Duplicate(first.id()));
    assert_eq!(d.live_tasks(), 1);
    let later = d
        .submit(TaskSpec::new("c").idempotency_key("k"), t(61))
        .unwrap();
    assert!(matches!(later, Submitted::New(id) if id != first.id()));
}

#[test]
fn reports_are_fenced() {
    let mut d = dispatcher(DispatcherConfig::builder());
    d.register_agent(agent(1), profile(1, &[]), t(0)).unwrap();
    d.register_agent(agent(2), profile(1, &[]), t(0)).unwrap();
    let task = submit(&mut d, TaskSpec::new("x"), t(0));
    let (_, holder, token) = assignments(&mut d)[0];
    let other = if holder == agent(1) {
        agent(2)
    } else {
        agent(1)
    };
    let report = |agent, token| TaskReport {
        task,
        agent,
        token,
        outcome: AttemptOutcome::Success,
    };
    let forged = AttemptToken::new(token.get() + 100);
    assert_eq!(
        d.report(report(holder, forged), t(1)),
        Err(ReportError::StaleToken {
            task,
            token: forged
        })
    );
    assert_eq!(
        d.report(report(other, token), t(1)),
        Err(ReportError::WrongAgent { task, agent: other })
    );
    let ghost = TaskId::new(999_999);
    let ghost_report = TaskReport {
        task: ghost,
        ..report(holder, token)
    };
    assert_eq!(
        d.report(ghost_report, t(1)),
        Err(ReportError::UnknownTask(ghost))
    );
    assert!(matches!(
        d.task_state(task),
        Some(TaskState::InFlight { .. })
    ));
    d.report(report(holder, token), t(1)).unwrap();
    assert_eq!(
        d.report(report(holder, token), t(2)),
        Err(ReportError::NotInFlight {
            task,
            state: TaskState::Completed
        })
    );
}

#[test]
fn unregistering_an_agent_fails_its_tasks_over_in_order_and_fences_late_results() {
    let mut d = dispatcher(DispatcherConfig::builder());
    d.register_agent(agent(1), profile(3, &[]), t(0)).unwrap();
    let ids: Vec<TaskId> = ["a", "b", "c"]
        .iter()
        .map(|p| submit(&mut d, TaskSpec::new(*p), t(0)))
        .collect();
    let old = assignments(&mut d);
    assert_eq!(old.len(), 3);
    d.register_agent(agent(2), profile(1, &[]), t(1)).unwrap();
    let requeued = d.unregister_agent(agent(1), t(2)).unwrap();
    assert_eq!(requeued, ids);
    let actions = drain(&mut d);
    let cancels = actions
        .iter()
        .filter(|a| {
            matches!(
                a,
                Action::Cancel {
                    reason: CancelReason::AgentLost,
                    ..
                }
            )
        })
        .count();
    assert_eq!(cancels, 3);
    let reassigned: Vec<_> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Assign { task, agent, .. } => Some((*task, *agent)),
            _ => None,
        })
        .collect();
    assert_eq!(
        reassigned,
        [(ids[0], agent(2))],
        "the oldest task goes first"
    );
    assert_eq!(
        d.metrics().counters.preempted,
        3,
        "failovers count as attempts taken back"
    );
    // The lost agent's late result is rejected.
    let late = TaskReport {
        task: ids[0],
        agent: agent(1),
        token: old[0].2,
        outcome: AttemptOutcome::Success,
    };
    assert!(d.report(late, t(3)).is_err());
    assert_eq!(d.queue_depth(Priority::Normal), 2);
}

#[test]
fn missed_heartbeats_lose_the_agent_and_a_heartbeat_brings_it_back() {
    let mut d = dispatcher(DispatcherConfig::builder().heartbeats(Duration::from_secs(5), 2));
    d.register_agent(agent(1), profile(1, &[]), t(0)).unwrap();
    d.register_agent(agent(2), profile(1, &[]), t(0)).unwrap();
    let task = submit(&mut d, TaskSpec::new("x"), t(0));
    let (_, first, _) = assignments(&mut d)[0];
    let survivor = if first == agent(1) {
        agent(2)
    } else {
        agent(1)
    };
    d.heartbeat(survivor, t(8)).unwrap();
    assert_eq!(d.poll_timeout(), Some(t(10)));
    d.handle_timeout(t(10));
    let actions = drain(&mut d);
    assert!(actions.contains(&Action::AgentLost { agent: first }));
    assert!(actions.iter().any(
        |a| matches!(a, Action::Assign { task: t, agent, .. } if *t == task && *agent == survivor)
    ));
    assert_eq!(
        d.registry().get(first).unwrap().status(),
        AgentStatus::Unhealthy
    );
    d.heartbeat(first, t(11)).unwrap();
    assert_eq!(
        d.registry().get(first).unwrap().status(),
        AgentStatus::Online
    );
    // The survivor kept beating until 8 s: it is lost at 18 s unless it beats again.
    d.handle_timeout(t(17));
    assert!(drain(&mut d).is_empty());
    d.handle_timeout(t(18));
    assert!(drain(&mut d).contains(&Action::AgentLost { agent: survivor }));
}

#[test]
fn excused_silence_is_counted_from_the_excuse_and_a_lost_agent_stays_lost() {
    let mut d = dispatcher(DispatcherConfig::builder().heartbeats(Duration::from_secs(5), 2));
    d.register_agent(agent(1), profile(1, &[]), t(0)).unwrap();
    d.register_agent(agent(2), profile(1, &[]), t(0)).unwrap();
    let task = submit(&mut d, TaskSpec::new("x"), t(0));
    let (_, running, token) = assignments(&mut d)[0];
    let idle = if running == agent(1) {
        agent(2)
    } else {
        agent(1)
    };
    // The idle agent is lost at 10 s; at 12 s the host could not hear
    // anyone since 3 s, and excuses the silence.
    d.heartbeat(running, t(3)).unwrap();
    d.handle_timeout(t(10));
    assert!(drain(&mut d).contains(&Action::AgentLost { agent: idle }));
    d.excuse_silence(t(12));
    // Nobody is lost before 22 s: the running agent keeps its attempt.
    d.handle_timeout(t(13));
    d.handle_timeout(t(21));
    assert!(drain(&mut d).is_empty());
    assert_eq!(
        d.task_state(task),
        Some(TaskState::InFlight {
            agent: running,
            token,
            attempt: 1
        })
    );
    assert_eq!(
        d.registry().get(idle).unwrap().status(),
        AgentStatus::Unhealthy,
        "an agent lost before the excuse stays lost"
    );
    d.handle_timeout(t(22));
    assert!(drain(&mut d).contains(&Action::AgentLost { agent: running }));
}

#[test]
fn attempt_timeouts_retry_and_then_dead_letter() {
    let retry = Fixed::new(Duration::from_secs(1), 2).unwrap();
    let mut d = dispatcher(
        DispatcherConfig::builder()
            .attempt_timeout(Duration::from_secs(10))
            .retry_policy(retry),
    );
    d.register_agent(agent(1), profile(1, &[]), t(0)).unwrap();
    let task = submit(&mut d, TaskSpec::new("slow"), t(0));
    assert_eq!(assignments(&mut d).len(), 1);
    d.handle_timeout(t(10));
    let actions = drain(&mut d);
    assert!(actions.iter().any(|a| matches!(
        a,
        Action::Cancel {
            reason: CancelReason::TimedOut,
            ..
        }
    )));
    assert_eq!(
        d.task_state(task),
        Some(TaskState::Delayed { until: t(11) })
    );
    d.handle_timeout(t(11));
    assert_eq!(assignments(&mut d).len(), 1);
    d.handle_timeout(t(21));
    let actions = drain(&mut d);
    assert!(actions.iter().any(|a| matches!(
        a,
        Action::DeadLettered {
            reason: DeadLetterReason::RetriesExhausted { attempts: 2, .. },
            ..
        }
    )));
    assert_eq!(d.task_state(task), Some(TaskState::DeadLettered));
    assert_eq!(d.registry().get(agent(1)).unwrap().stats().failed(), 2);
}

#[test]
fn failures_retry_with_backoff_on_another_agent_and_non_retryable_ones_dead_letter() {
    let backoff = ExponentialBackoff::builder()
        .base(Duration::from_secs(1))
        .jitter(Jitter::None)
        .max_attempts(5)
        .build()
        .unwrap();
    let mut d = dispatcher(DispatcherConfig::builder().retry_policy(backoff));
    d.register_agent(agent(1), profile(1, &[]), t(0)).unwrap();
    d.register_agent(agent(2), profile(1, &[]), t(0)).unwrap();
    let task = submit(&mut d, TaskSpec::new("flaky"), t(0));
    let first = assignments(&mut d)[0];
    fail(&mut d, first, AttemptOutcome::failure("boom"), t(1));
    assert_eq!(d.task_state(task), Some(TaskState::Delayed { until: t(2) }));
    d.handle_timeout(t(2));
    let second = assignments(&mut d)[0];
    assert_ne!(second.1, first.1, "a retry prefers another agent");
    fail(&mut d, second, AttemptOutcome::fatal("bad input"), t(3));
    assert_eq!(d.task_state(task), Some(TaskState::DeadLettered));
    let letter = d.dead_letters().get(task).unwrap();
    assert_eq!(
        letter.reason,
        DeadLetterReason::NonRetryable {
            reason: "bad input".into()
        }
    );
    assert_eq!(letter.spec.payload, "flaky");
    // Manual requeue makes a new task from the letter.
    let again = d.requeue_dead_letter(task, t(4)).unwrap();
    assert_ne!(again.id(), task);
    assert!(d.dead_letters().is_empty());
    assert!(matches!(
        d.requeue_dead_letter(task, t(4)),
        Err(SchedulerError::NoDeadLetter(_))
    ));
}

#[test]
fn ttl_and_deadline_expire_tasks() {
    let mut d = dispatcher(DispatcherConfig::builder());
    let waiting = submit(
        &mut d,
        TaskSpec::new("ttl").ttl(Duration::from_secs(5)),
        t(0),
    );
    let running = submit(
        &mut d,
        TaskSpec::new("deadline")
            .deadline(t(20))
            .priority(Priority::High),
        t(0),
    );
    d.register_agent(agent(1), profile(1, &[]), t(1)).unwrap();
    assert_eq!(assignments(&mut d)[0].0, running);
    d.handle_timeout(t(5));
    assert_eq!(
        drain(&mut d),
        [Action::Expired {
            task: waiting,
            limit: Expiry::Ttl
        }]
    );
    d.handle_timeout(t(20));
    let actions = drain(&mut d);
    assert!(actions.iter().any(|a| matches!(a, Action::Cancel { task, reason: CancelReason::Expired, .. } if *task == running)));
    assert!(actions.contains(&Action::Expired {
        task: running,
        limit: Expiry::Deadline
    }));
    assert_eq!(d.dead_letters().len(), 2);
    assert_eq!(d.registry().get(agent(1)).unwrap().load(), 0);
}

#[test]
fn unroutable_tasks_park_without_blocking_others_and_dead_letter_after_the_limit() {
    let mut d = dispatcher(DispatcherConfig::builder().unroutable_timeout(Duration::from_secs(30)));
    d.register_agent(agent(1), profile(1, &["cpu"]), t(0))
        .unwrap();
    d.register_agent(agent(2), profile(1, &["gpu"]), t(0))
        .unwrap();
    let gpu = TaskRequirements::new().require(["gpu"]);
    let g1 = submit(&mut d, TaskSpec::new("g1").requirements(gpu.clone()), t(0));
    let g2 = submit(&mut d, TaskSpec::new("g2").requirements(gpu.clone()), t(0));
    let c1 = submit(
        &mut d,
        TaskSpec::new("c1").requirements(TaskRequirements::new().require(["cpu"])),
        t(0),
    );
    let tpu = submit(
        &mut d,
        TaskSpec::new("tpu").requirements(TaskRequirements::new().require(["tpu"])),
        t(0),
    );
    let assigned = assignments(&mut d);
    let ids: Vec<TaskId> = assigned.iter().map(|a| a.0).collect();
    assert_eq!(
        ids,
        [g1, c1],
        "the waiting gpu task does not block the cpu task"
    );
    succeed(&mut d, assigned[0], t(1));
    assert_eq!(
        assignments(&mut d)[0].0,
        g2,
        "freed gpu slot unblocks the parked group"
    );
    d.handle_timeout(t(30));
    let actions = drain(&mut d);
    assert!(
        actions.iter().any(|a| matches!(
            a,
            Action::DeadLettered { task, reason: DeadLetterReason::Unroutable { .. } } if *task == tpu
        )),
        "{actions:?} {:?}",
        d.task_state(tpu)
    );
    // A tpu agent arriving now is too late for it, but serves new tpu work.
    d.register_agent(agent(3), profile(1, &["tpu"]), t(31))
        .unwrap();
    let tpu2 = submit(
        &mut d,
        TaskSpec::new("tpu2").requirements(TaskRequirements::new().require(["tpu"])),
        t(31),
    );
    assert_eq!(assignments(&mut d)[0].0, tpu2);
}

#[test]
fn cancel_returns_the_payload_and_stops_a_running_attempt() {
    let mut d = dispatcher(DispatcherConfig::builder());
    d.register_agent(agent(1), profile(1, &[]), t(0)).unwrap();
    let running = submit(&mut d, TaskSpec::new("running"), t(0));
    let queued = submit(&mut d, TaskSpec::new("queued"), t(0));
    assert_eq!(assignments(&mut d).len(), 1);
    assert_eq!(d.cancel(queued, t(1)), Ok("queued"));
    assert_eq!(d.cancel(running, t(1)), Ok("running"));
    let actions = drain(&mut d);
    assert!(actions.iter().any(|a| matches!(
        a,
        Action::Cancel {
            reason: CancelReason::Cancelled,
            ..
        }
    )));
    assert_eq!(
        d.cancel(running, t(2)),
        Err(SchedulerError::AlreadyFinished {
            task: running,
            state: TaskState::Cancelled
        })
    );
    assert_eq!(d.registry().get(agent(1)).unwrap().load(), 0);
    assert_eq!(d.waiting(), 0);
}

#[test]
fn terminal_history_is_bounded() {
    let mut d = dispatcher(DispatcherConfig::builder().terminal_history(2));
    let ids: Vec<TaskId> = (0..3)
        .map(|_| submit(&mut d, TaskSpec::new("x"), t(0)))
        .collect();
    for &id in &ids {
        d.cancel(id, t(0)).unwrap();
    }
    assert_eq!(d.task_state(ids[0]), None);
    assert_eq!(d.task_state(ids[2]), Some(TaskState::Cancelled));
    assert!(matches!(
        d.cancel(ids[0], t(0)),
        Err(SchedulerError::UnknownTask(_))
    ));
}

#[test]
fn batch_submit_dispatches_once_and_reports_each_result() {
    let mut d = dispatcher(DispatcherConfig::builder().queue_capacity(3));
    d.register_agent(agent(1), profile(2, &[]), t(0)).unwrap();
    let results = d.submit_batch((0..6).map(|_| TaskSpec::new("x")), t(0));
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 3);
    assert_eq!(assignments(&mut d).len(), 2);
    assert_eq!(d.waiting(), 1);
}

#[test]
fn invalid_configs_are_rejected() {
    let b = DispatcherConfig::builder;
    assert!(b().queue_capacity(0).build().is_err());
    assert!(b().reserved_share(1.0).build().is_err());
    assert!(b().reserved_share(f64::NAN).build().is_err());
    assert!(b().aging_interval(Some(Duration::ZERO)).build().is_err());
    assert!(b().heartbeats(Duration::from_secs(1), 0).build().is_err());
    assert!(b().attempt_timeout(Duration::ZERO).build().is_err());
    assert!(b().terminal_history(0).build().is_err());
}

#[test]
fn an_open_breaker_sends_nothing_and_a_probe_closes_it() {
    use taskweave::resilience::{BreakerConfig, BreakerState};
    let breaker = BreakerConfig::builder()
        .consecutive_failures(2)
        .minimum_calls(u32::MAX)
        .cooldown(Duration::from_secs(10))
        .probes(1)
        .successes_to_close(1)
        .build()
        .unwrap();
    let retry = Fixed::new(Duration::ZERO, 100).unwrap();
    let mut d = dispatcher(
        DispatcherConfig::builder()
            .circuit_breaker(breaker)
            .retry_policy(retry),
    );
    d.register_agent(agent(1), profile(4, &[]), t(0)).unwrap();
    submit(&mut d, TaskSpec::new("a"), t(0));
    submit(&mut d, TaskSpec::new("b"), t(0));
    let running = assignments(&mut d);
    assert_eq!(running.len(), 2);
    fail(&mut d, running[0], AttemptOutcome::failure("x"), t(1));
    // One failure: still closed, the retry goes straight back to agent 1.
    let retry_run = assignments(&mut d);
    assert_eq!(retry_run.len(), 1);
    fail(&mut d, running[1], AttemptOutcome::failure("x"), t(2));
    assert!(
        drain(&mut d)
            .iter()
            .all(|a| !matches!(a, Action::Assign { .. })),
        "open breaker admits nothing"
    );
    assert_eq!(
        d.breaker_state(agent(1), t(2)),
        Some(BreakerState::Open { until: t(12) })
    );
    assert_eq!(d.metrics().counters.breaker_trips, 1);
    // The attempt started before the trip succeeds: it does not close the breaker.
    succeed(&mut d, retry_run[0], t(3));
    assert!(assignments(&mut d).is_empty());
    // After the cooldown exactly one probe goes out; its success closes the breaker.
    d.handle_timeout(t(12));
    let probes = assignments(&mut d);
    assert_eq!(probes.len(), 1);
    assert_eq!(
        d.breaker_state(agent(1), t(12)),
        Some(BreakerState::HalfOpen)
    );
    succeed(&mut d, probes[0], t(13));
    assert_eq!(d.breaker_state(agent(1), t(13)), Some(BreakerState::Closed));
    assert_eq!(assignments(&mut d).len(), 0, "nothing left to run");
    assert_eq!(d.live_tasks(), 0);
}

#[test]
fn preemption_makes_room_for_p0_without_spending_a_retry() {
    let mut d = dispatcher(
        DispatcherConfig::builder()
            .preemption(true)
            .retry_policy(Fixed::new(Duration::ZERO, 1).unwrap()),
    );
    d.register_agent(agent(1), profile(1, &[]), t(0)).unwrap();
    let low = submit(&mut d, TaskSpec::new("low").priority(Priority::Low), t(0));
    assert_eq!(assignments(&mut d)[0].0, low);
    let urgent = submit(
        &mut d,
        TaskSpec::new("urgent").priority(Priority::Critical),
        t(1),
    );
    let actions = drain(&mut d);
    assert!(actions.iter().any(|a| matches!(a, Action::Cancel { task, reason: CancelReason::Preempted, .. } if *task == low)));
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Assign { task, .. } if *task == urgent))
    );
    assert_eq!(d.task_state(low), Some(TaskState::Queued));
    assert_eq!(d.metrics().counters.preempted, 1);
    // Preemption is off by default: a P0 task then waits.
    let mut plain = dispatcher(DispatcherConfig::builder());
    plain
        .register_agent(agent(1), profile(1, &[]), t(0))
        .unwrap();
    submit(
        &mut plain,
        TaskSpec::new("low").priority(Priority::Low),
        t(0),
    );
    drain(&mut plain);
    submit(
        &mut plain,
        TaskSpec::new("urgent").priority(Priority::Critical),
        t(1),
    );
    assert!(drain(&mut plain).is_empty());
}

#[test]
fn an_exhausted_retry_budget_dead_letters_instead_of_retrying() {
    use taskweave::resilience::RetryBudget;
    let budget = RetryBudget::builder()
        .min_retries(0)
        .ratio(0.0)
        .build()
        .unwrap();
    let mut d = dispatcher(DispatcherConfig::builder().retry_budget(budget));
    d.register_agent(agent(1), profile(1, &[]), t(0)).unwrap();
    let task = submit(&mut d, TaskSpec::new("x"), t(0));
    let run = assignments(&mut d)[0];
    fail(&mut d, run, AttemptOutcome::failure("boom"), t(1));
    assert_eq!(d.task_state(task), Some(TaskState::DeadLettered));
}

#[test]
fn metrics_and_observer_see_every_lifecycle_event() {
    use std::sync::{Arc, Mutex};
    use taskweave::scheduler::Event;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let mut d = dispatcher(
        DispatcherConfig::builder().retry_policy(Fixed::new(Duration::ZERO, 2).unwrap()),
    );
    d.set_observer(move |e: &Event| log.lock().unwrap().push(*e));
    d.register_agent(agent(1), profile(2, &[]), t(0)).unwrap();
    submit(&mut d, TaskSpec::new("ok"), t(0));
    submit(&mut d, TaskSpec::new("flaky"), t(0));
    let runs = assignments(&mut d);
    succeed(&mut d, runs[0], t(2));
    fail(&mut d, runs[1], AttemptOutcome::failure("x"), t(3));
    let retry = assignments(&mut d)[0];
    let bogus = TaskReport {
        token: AttemptToken::new(77),
        ..TaskReport {
            task: retry.0,
            agent: retry.1,
            token: retry.2,
            outcome: AttemptOutcome::Success,
        }
    };
    assert!(d.report(bogus, t(4)).is_err());
    succeed(&mut d, retry, t(5));
    let m = d.metrics();
    let c = m.counters;
    assert_eq!(
        (
            c.submitted,
            c.assigned,
            c.completed,
            c.failed,
            c.retried,
            c.rejected_reports
        ),
        (2, 3, 2, 1, 1, 1)
    );
    assert_eq!(m.run_time[Priority::Normal.index()].count, 2);
    assert_eq!(m.queue_wait[Priority::Normal.index()].count, 3);
    assert_eq!(m.load.agents, 1);
    assert!(m.completions_per_second > 0.0);
    let events = seen.lock().unwrap();
    assert_eq!(events.len(), 10);
    assert!(matches!(events[0], Event::Submitted { .. }));
}

#[test]
fn an_observer_sees_the_times_the_metrics_record() {
    use std::sync::{Arc, Mutex};
    use taskweave::scheduler::Event;
    // The same run with and without an observer: a task waits 2 s for an
    // agent, then runs 3 s; another is assigned at once and runs 1.5 s.
    let run = |observed: bool| {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut d = dispatcher(DispatcherConfig::builder());
        if observed {
            let log = Arc::clone(&seen);
            d.set_observer(move |e: &Event| log.lock().unwrap().push(*e));
        }
        let first = submit(&mut d, TaskSpec::new("waits"), t(0));
        d.register_agent(agent(1), profile(2, &[]), t(2)).unwrap();
        let waited = assignments(&mut d)[0];
        let second = submit(&mut d, TaskSpec::new("at once"), t(2));
        let at_once = assignments(&mut d)[0];
        succeed(&mut d, at_once, Instant::from_millis(3_500));
        succeed(&mut d, waited, t(5));
        let events = seen.lock().unwrap().clone();
        (d.metrics(), events, first, second)
    };
    let (metrics, events, first, second) = run(true);
    let (unobserved, none, ..) = run(false);
    assert!(none.is_empty());
    assert_eq!(metrics, unobserved);
    let times: Vec<(TaskId, &str, Duration)> = events
        .iter()
        .filter_map(|e| match *e {
            Event::Assigned { task, waited, .. } => Some((task, "waited", waited)),
            Event::Completed { task, ran, .. } => Some((task, "ran", ran)),
            _ => None,
        })
        .collect();
    assert_eq!(
        times,
        [
            (first, "waited", Duration::from_secs(2)),
            (second, "waited", Duration::ZERO),
            (second, "ran", Duration::from_millis(1_500)),
            (first, "ran", Duration::from_secs(3)),
        ]
    );
    let level = Priority::Normal.index();
    let (wait, ran) = (&metrics.queue_wait[level], &metrics.run_time[level]);
    assert_eq!((wait.count, wait.min, wait.max), (2, 0, 2_000_000_000));
    assert_eq!(
        (ran.count, ran.min, ran.max),
        (2, 1_500_000_000, 3_000_000_000)
    );
}

#[test]
fn a_kind_bulkhead_caps_tasks_in_flight_per_kind() {
    use taskweave::resilience::Bulkhead;
    let mut bulkhead = Bulkhead::new(100).unwrap();
    bulkhead.set_limit("render".to_string(), 1).unwrap();
    let mut d = dispatcher(DispatcherConfig::builder().kind_bulkhead(bulkhead));
    d.register_agent(agent(1), profile(4, &[]), t(0)).unwrap();
    let render = || TaskSpec::new("r").requirements(TaskRequirements::new().kind("render"));
    let first = submit(&mut d, render(), t(0));
    let second = submit(&mut d, render(), t(0));
    let other = submit(
        &mut d,
        TaskSpec::new("o").requirements(TaskRequirements::new().kind("index")),
        t(0),
    );
    let running = assignments(&mut d);
    let ids: Vec<TaskId> = running.iter().map(|a| a.0).collect();
    assert_eq!(
        ids,
        [first, other],
        "one render at a time; other kinds are not held up"
    );
    assert_eq!(d.task_state(second), Some(TaskState::Queued));
    succeed(&mut d, running[0], t(1));
    assert_eq!(assignments(&mut d)[0].0, second);
}

#[test]
fn rate_limits_per_kind_and_per_agent_delay_assignments_until_they_conform() {
    use taskweave::resilience::{KeyedRateLimiter, Quota};
    let one_per_second = Quota::new(1, Duration::from_secs(1)).unwrap();
    let mut d = dispatcher(
        DispatcherConfig::builder().kind_rate_limit(KeyedRateLimiter::new(one_per_second)),
    );
    d.register_agent(agent(1), profile(10, &[]), t(0)).unwrap();
    let mail = || TaskSpec::new("m").requirements(TaskRequirements::new().kind("mail"));
    submit(&mut d, mail(), t(0));
    let second = submit(&mut d, mail(), t(0));
    assert_eq!(assignments(&mut d).len(), 1);
    assert_eq!(d.poll_timeout(), Some(t(1)));
    d.handle_timeout(t(1));
    assert_eq!(assignments(&mut d)[0].0, second);

    let mut per_agent = dispatcher(DispatcherConfig::builder().agent_rate_limit(one_per_second));
    per_agent
        .register_agent(agent(1), profile(10, &[]), t(0))
        .unwrap();
    for _ in 0..3 {
        submit(&mut per_agent, TaskSpec::new("x"), t(0));
    }
    assert_eq!(
        assignments(&mut per_agent).len(),
        1,
        "the agent is over its rate"
    );
    per_agent.handle_timeout(t(1));
    assert_eq!(assignments(&mut per_agent).len(), 1);
    // A second agent takes work while the first is held back.
    per_agent
        .register_agent(agent(2), profile(10, &[]), t(1))
        .unwrap();
    assert_eq!(assignments(&mut per_agent).len(), 1);
    assert_eq!(per_agent.waiting(), 0);
}
