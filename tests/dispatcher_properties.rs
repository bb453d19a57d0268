//! State-machine properties of the dispatcher over random interleavings of
//! every input: submissions, agents joining, leaving, changing status and
//! beating, good, failed, stale, forged and misdirected reports,
//! cancellations and time jumps. Case counts follow `PROPTEST_CASES`.

#![cfg(feature = "serde")]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use proptest::prelude::*;
use taskweave::agent::{AgentProfile, AgentStatus};
use taskweave::resilience::{BreakerConfig, BreakerState, Fixed};
use taskweave::scheduler::{
    Action, Applied, ApplyError, AttemptOutcome, Dispatcher, DispatcherConfig, Input, TaskReport,
    TaskSpec, TaskState,
};
use taskweave::{AgentId, AttemptToken, Instant, Priority, TaskId, TaskRequirements};

mod harness;

#[derive(Clone, Debug)]
enum Op {
    Submit {
        priority: u8,
        gpu: bool,
        ttl: Option<u8>,
    },
    Register {
        gpu: bool,
        capacity: u32,
    },
    Unregister(prop::sample::Index),
    SetStatus(prop::sample::Index, u8),
    Heartbeat(prop::sample::Index),
    Succeed(prop::sample::Index),
    Fail(prop::sample::Index, bool),
    Stale(prop::sample::Index),
    Forged(prop::sample::Index),
    WrongAgent(prop::sample::Index),
    Cancel(prop::sample::Index),
    Advance(u16),
}

fn op() -> impl Strategy<Value = Op> {
    use prop::sample::Index;
    prop_oneof![
        4 => (0u8..4, any::<bool>(), proptest::option::weighted(0.2, 1u8..30))
            .prop_map(|(priority, gpu, ttl)| Op::Submit { priority, gpu, ttl }),
        1 => (any::<bool>(), 1u32..4).prop_map(|(gpu, capacity)| Op::Register { gpu, capacity }),
        1 => any::<Index>().prop_map(Op::Unregister),
        1 => (any::<Index>(), 0u8..4).prop_map(|(i, s)| Op::SetStatus(i, s)),
        1 => any::<Index>().prop_map(Op::Heartbeat),
        4 => any::<Index>().prop_map(Op::Succeed),
        2 => (any::<Index>(), any::<bool>()).prop_map(|(i, r)| Op::Fail(i, r)),
        1 => any::<Index>().prop_map(Op::Stale),
        1 => any::<Index>().prop_map(Op::Forged),
        1 => any::<Index>().prop_map(Op::WrongAgent),
        1 => any::<Index>().prop_map(Op::Cancel),
        2 => (1u16..20_000).prop_map(Op::Advance),
    ]
}

/// What the harness knows: the attempts it was told about, agent specs.
#[derive(Default)]
struct Model {
    now: Instant,
    agents: BTreeMap<AgentId, (bool, u32)>,
    next_agent: u64,
    submitted: Vec<(TaskId, bool)>,
    /// Attempts the host was told to run and has not seen end.
    running: Vec<(TaskId, AgentId, AttemptToken)>,
    /// Every token ever issued, to build stale reports.
    past: Vec<(TaskId, AgentId, AttemptToken)>,
    terminal: BTreeMap<TaskId, TaskState>,
    completions: BTreeMap<TaskId, u32>,
    actions: Vec<Action>,
    journal: Vec<Input<u32>>,
}

fn config() -> DispatcherConfig {
    DispatcherConfig::builder()
        .aging_interval(Some(Duration::from_secs(2)))
        .heartbeats(Duration::from_secs(3), 2)
        .attempt_timeout(Duration::from_secs(8))
        .unroutable_timeout(Duration::from_secs(25))
        .retry_policy(Fixed::new(Duration::from_millis(500), 3).unwrap())
        .circuit_breaker(
            BreakerConfig::builder()
                .consecutive_failures(2)
                .cooldown(Duration::from_secs(4))
                .probes(1)
                .build()
                .unwrap(),
        )
        .preemption(true)
        .queue_capacity(40)
        .terminal_history(100_000)
        .build()
        .unwrap()
}

/// [`config`] without the breaker, preemption and unroutable timeout: a
/// dispatcher whose cycle takes the plain path (unless it has an
/// observer).
fn plain_config() -> DispatcherConfig {
    DispatcherConfig::builder()
        .aging_interval(Some(Duration::from_secs(2)))
        .heartbeats(Duration::from_secs(3), 2)
        .attempt_timeout(Duration::from_secs(8))
        .retry_policy(Fixed::new(Duration::from_millis(500), 3).unwrap())
        .queue_capacity(40)
        .terminal_history(100_000)
        .build()
        .unwrap()
}

fn pick<T: Copy>(items: &[T], index: &prop::sample::Index) -> Option<T> {
    (!items.is_empty()).then(|| items[index.index(items.len())])
}

/// Applies one input through the journal entry point and records it.
fn apply(
    d: &mut Dispatcher<u32>,
    m: &mut Model,
    input: Input<u32>,
) -> Result<Applied<u32>, ApplyError<u32>> {
    m.journal.push(input.clone());
    d.apply(input)
}

/// Applies one op; returns an error message if an invariant broke.
fn step(d: &mut Dispatcher<u32>, m: &mut Model, op: &Op) -> Result<(), String> {
    let agents: Vec<AgentId> = m.agents.keys().copied().collect();
    let now = m.now;
    match op {
        Op::Submit { priority, gpu, ttl } => {
            let requirements = if *gpu {
                TaskRequirements::new().require(["gpu"])
            } else {
                TaskRequirements::new()
            };
            let mut spec = TaskSpec::new(m.submitted.len() as u32)
                .priority(Priority::from_index(*priority as usize).unwrap_or_default())
                .requirements(requirements);
            if let Some(ttl) = ttl {
                spec = spec.ttl(Duration::from_secs(u64::from(*ttl)));
            }
            if let Ok(Applied::Submitted(s)) = apply(d, m, Input::Submit { spec, now }) {
                m.submitted.push((s.id(), *gpu));
            }
        }
        Op::Register { gpu, capacity } => {
            let id = AgentId::new(m.next_agent);
            m.next_agent += 1;
            let caps: &[&str] = if *gpu { &["gpu", "cpu"] } else { &["cpu"] };
            let profile = AgentProfile::builder()
                .capabilities(caps.iter().copied())
                .capacity(*capacity)
                .build()
                .unwrap();
            let _ = apply(
                d,
                m,
                Input::RegisterAgent {
                    agent: id,
                    profile,
                    now,
                },
            )
            .map_err(|e| e.to_string())?;
            m.agents.insert(id, (*gpu, *capacity));
        }
        Op::Unregister(i) => {
            if let Some(agent) = pick(&agents, i) {
                let _ = apply(d, m, Input::UnregisterAgent { agent, now })
                    .map_err(|e| e.to_string())?;
                m.agents.remove(&agent);
            }
        }
        Op::SetStatus(i, s) => {
            if let Some(agent) = pick(&agents, i) {
                let status = [
                    AgentStatus::Online,
                    AgentStatus::Draining,
                    AgentStatus::Offline,
                    AgentStatus::Unhealthy,
                ][*s as usize];
                let _ = apply(d, m, Input::SetAgentStatus { agent, status, now })
                    .map_err(|e| e.to_string())?;
            }
        }
        Op::Heartbeat(i) => {
            if let Some(agent) = pick(&agents, i) {
                let _ = apply(d, m, Input::Heartbeat { agent, now }).map_err(|e| e.to_string())?;
            }
        }
        Op::Succeed(i) | Op::Fail(i, _) => {
            if let Some((task, agent, token)) = pick(&m.running, i) {
                let outcome = match op {
                    Op::Fail(_, retryable) => AttemptOutcome::Failure {
                        reason: "boom".into(),
                        retryable: *retryable,
                    },
                    _ => AttemptOutcome::Success,
                };
                let success = outcome == AttemptOutcome::Success;
                let current = matches!(d.task_state(task), Some(TaskState::InFlight { token: t, .. }) if t == token);
                let report = TaskReport {
                    task,
                    agent,
                    token,
                    outcome,
                };
                let result = apply(d, m, Input::Report { report, now }).map(drop);
                if result.is_ok() != current {
                    return Err(format!(
                        "report of current={current} attempt gave {result:?}"
                    ));
                }
                if result.is_ok() && success {
                    *m.completions.entry(task).or_default() += 1;
                }
            }
        }
        Op::Stale(i) | Op::Forged(i) | Op::WrongAgent(i) => {
            let source = if matches!(op, Op::Stale(_)) {
                &m.past
            } else {
                &m.running
            };
            if let Some((task, agent, token)) = pick(source, i) {
                let before = d.task_state(task);
                let (agent, token) = match op {
                    Op::Forged(_) => (agent, AttemptToken::new(token.get() ^ 0xdead_beef)),
                    Op::WrongAgent(_) => (AgentId::new(agent.get() + 1_000), token),
                    _ => (agent, token),
                };
                let current = matches!(before, Some(TaskState::InFlight { token: t, agent: a, .. }) if t == token && a == agent);
                let report = TaskReport {
                    task,
                    agent,
                    token,
                    outcome: AttemptOutcome::Success,
                };
                let result = apply(d, m, Input::Report { report, now }).map(drop);
                if !current {
                    if result.is_ok() {
                        return Err(format!("{op:?} was accepted"));
                    }
                    if d.task_state(task) != before {
                        return Err(format!("rejected {op:?} changed the task"));
                    }
                } else if result.is_ok() {
                    *m.completions.entry(task).or_default() += 1;
                }
            }
        }
        Op::Cancel(i) => {
            let ids: Vec<TaskId> = m.submitted.iter().map(|s| s.0).collect();
            if let Some(task) = pick(&ids, i) {
                let live = d.task_state(task).is_some_and(|s| !s.is_terminal());
                if apply(d, m, Input::Cancel { task, now }).is_ok() != live {
                    return Err(format!("cancel of live={live} task disagreed"));
                }
            }
        }
        Op::Advance(ms) => {
            m.now += Duration::from_millis(u64::from(*ms));
            let now = m.now;
            // Agents that are online beat half the time, so some are lost;
            // now and then the host excuses everyone's silence (an outage).
            if ms % 2 == 0 {
                for &agent in &agents {
                    let _ =
                        apply(d, m, Input::Heartbeat { agent, now }).map_err(|e| e.to_string())?;
                }
            } else if ms % 3 == 0 {
                let _ = apply(d, m, Input::ExcuseSilence { now }).map_err(|e| e.to_string())?;
            }
            let _ = apply(d, m, Input::HandleTimeout { now }).map_err(|e| e.to_string())?;
        }
    }
    check(d, m)
}

/// Drains actions into the model and checks every invariant.
fn check(d: &mut Dispatcher<u32>, m: &mut Model) -> Result<(), String> {
    while let Some(action) = d.poll_action() {
        if let Action::Assign {
            task, agent, token, ..
        } = action
        {
            let gpu_task = m.submitted.iter().find(|s| s.0 == task).map(|s| s.1);
            let (gpu_agent, _) = *m.agents.get(&agent).ok_or("assigned to an unknown agent")?;
            if gpu_task == Some(true) && !gpu_agent {
                return Err(format!("gpu task {task} assigned to cpu agent {agent}"));
            }
            if let Some(BreakerState::Open { .. }) = d.breaker_state(agent, m.now) {
                return Err(format!("{agent} received {task} while its breaker is open"));
            }
            let status = d.registry().get(agent).map(|r| r.status());
            if status != Some(AgentStatus::Online) {
                return Err(format!("assigned to {agent} in status {status:?}"));
            }
            m.running.push((task, agent, token));
            m.past.push((task, agent, token));
        }
        m.actions.push(action);
    }
    // Attempts the dispatcher no longer considers current are over.
    m.running.retain(|&(task, agent, token)| {
        matches!(d.task_state(task), Some(TaskState::InFlight { agent: a, token: t, .. }) if a == agent && t == token)
    });
    // Capacity: in flight never exceeds capacity, and matches the load.
    for (&agent, &(_, capacity)) in &m.agents {
        let held = d.in_flight(agent).len();
        let load = d.registry().get(agent).map_or(0, |r| r.load()) as usize;
        if held > capacity as usize || held != load {
            return Err(format!(
                "agent {agent}: {held} in flight, load {load}, capacity {capacity}"
            ));
        }
    }
    // Every task has exactly one state; terminal states are final; nothing is lost.
    let mut waiting = 0;
    let mut running = 0;
    for &(task, _) in &m.submitted {
        let state = d.task_state(task).ok_or(format!("task {task} lost"))?;
        if let Some(&terminal) = m.terminal.get(&task) {
            if state != terminal {
                return Err(format!(
                    "task {task} left terminal state {terminal:?} for {state:?}"
                ));
            }
        } else if state.is_terminal() {
            m.terminal.insert(task, state);
        }
        match state {
            TaskState::Queued | TaskState::Delayed { .. } => waiting += 1,
            TaskState::InFlight { .. } => running += 1,
            _ => {}
        }
    }
    if waiting != d.waiting() {
        return Err(format!(
            "waiting: model {waiting}, dispatcher {}",
            d.waiting()
        ));
    }
    let in_flight: usize = m.agents.keys().map(|&a| d.in_flight(a).len()).sum();
    if running != in_flight {
        return Err(format!(
            "{running} tasks in flight but agents hold {in_flight}"
        ));
    }
    if let Some((task, n)) = m.completions.iter().find(|(_, n)| **n > 1) {
        return Err(format!("task {task} completed {n} times"));
    }
    for (&task, _) in m.completions.iter() {
        if d.task_state(task) != Some(TaskState::Completed) {
            return Err(format!(
                "accepted success of {task} but state {:?}",
                d.task_state(task)
            ));
        }
    }
    Ok(())
}

fn run(ops: &[Op]) -> Result<(Dispatcher<u32>, Model), String> {
    run_with(config(), ops)
}

fn run_with(config: DispatcherConfig, ops: &[Op]) -> Result<(Dispatcher<u32>, Model), String> {
    let mut d = Dispatcher::new(config);
    let mut m = Model::default();
    for op in ops {
        step(&mut d, &mut m, op).map_err(|e| format!("after {op:?}: {e}"))?;
    }
    Ok((d, m))
}

/// Everything observable about a dispatcher's tasks and agents.
fn observable(d: &Dispatcher<u32>, m: &Model) -> String {
    let tasks: Vec<_> = m
        .submitted
        .iter()
        .map(|&(t, _)| (t, d.task_state(t), d.payload(t).copied()))
        .collect();
    let agents: Vec<_> = d
        .registry()
        .iter()
        .map(|r| (r.id(), r.status(), r.load(), d.in_flight(r.id()).to_vec()))
        .collect();
    format!(
        "{tasks:?} {agents:?} {:?} {} {:?}",
        d.metrics().counters,
        d.waiting(),
        d.poll_timeout()
    )
}

proptest! {
    #[test]
    fn invariants_hold_over_random_interleavings(ops in proptest::collection::vec(op(), 1..120)) {
        run(&ops).map_err(TestCaseError::fail)?;
    }

    /// Replaying the recorded journal — after a JSON round trip — into a
    /// fresh dispatcher gives the identical action sequence and state.
    #[test]
    fn replaying_the_journal_reproduces_actions_and_state(ops in proptest::collection::vec(op(), 1..80)) {
        let (original, m) = run(&ops).map_err(TestCaseError::fail)?;
        let json = serde_json::to_string(&m.journal).unwrap();
        let journal: Vec<Input<u32>> = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&journal, &m.journal);
        let mut replayed = Dispatcher::new(config());
        let mut actions = Vec::new();
        for input in journal {
            let _ = replayed.apply(input);
            actions.extend(harness::drain(&mut replayed).into_iter());
        }
        prop_assert_eq!(&actions, &m.actions);
        prop_assert_eq!(observable(&replayed, &m), observable(&original, &m));
    }

    /// Snapshotting mid-run, sending the snapshot through JSON and restoring
    /// it continues the run exactly: same actions, same state.
    #[test]
    fn snapshot_and_restore_mid_run_continue_identically(
        ops in proptest::collection::vec(op(), 1..80),
        cut in any::<proptest::sample::Index>(),
    ) {
        let (original, m) = run(&ops).map_err(TestCaseError::fail)?;
        let cut = cut.index(m.journal.len() + 1);
        let mut first = Dispatcher::new(config());
        let mut actions = Vec::new();
        for input in m.journal[..cut].iter().cloned() {
            let _ = first.apply(input);
            actions.extend(harness::drain(&mut first).into_iter());
        }
        let json = serde_json::to_string(&first.snapshot()).unwrap();
        drop(first);
        let strategy: Box<dyn taskweave::routing::RoutingStrategy + Send> =
            Box::new(taskweave::routing::LeastLoaded::new());
        let mut restored =
            Dispatcher::restore(config(), strategy, serde_json::from_str(&json).unwrap()).unwrap();
        for input in m.journal[cut..].iter().cloned() {
            let _ = restored.apply(input);
            actions.extend(harness::drain(&mut restored).into_iter());
        }
        prop_assert_eq!(&actions, &m.actions);
        prop_assert_eq!(observable(&restored, &m), observable(&original, &m));
    }

    /// A dispatcher with none of the optional machinery runs its cycle's
    /// plain instance; an observer makes it take the full one. Replaying
    /// one journal into both gives the same actions, the same state and
    /// the same stored form, and the observer sees one event per counted
    /// one.
    #[test]
    fn the_plain_path_matches_the_full_one(ops in proptest::collection::vec(op(), 1..120)) {
        let (_, m) = run_with(plain_config(), &ops).map_err(TestCaseError::fail)?;
        let mut plain = Dispatcher::new(plain_config());
        let mut full = Dispatcher::new(plain_config());
        let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = std::sync::Arc::clone(&events);
        full.set_observer(move |event: &taskweave::scheduler::Event| {
            seen.lock().unwrap().push(*event);
        });
        let (mut plain_actions, mut full_actions) = (Vec::new(), Vec::new());
        for input in m.journal.iter().cloned() {
            let from_plain = format!("{:?}", plain.apply(input.clone()));
            let from_full = format!("{:?}", full.apply(input));
            prop_assert_eq!(from_plain, from_full);
            plain_actions.extend(harness::drain(&mut plain).into_iter());
            full_actions.extend(harness::drain(&mut full).into_iter());
        }
        prop_assert_eq!(&plain_actions, &full_actions);
        prop_assert_eq!(&plain_actions, &m.actions);
        prop_assert_eq!(observable(&plain, &m), observable(&full, &m));
        prop_assert_eq!(
            serde_json::to_string(&plain.snapshot()).unwrap(),
            serde_json::to_string(&full.snapshot()).unwrap()
        );
        let counters = full.metrics().counters;
        let submitted = events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| matches!(e, taskweave::scheduler::Event::Submitted { .. }))
            .count() as u64;
        prop_assert_eq!(submitted, counters.submitted);
    }

    /// Every task reaches a terminal state once agents keep reporting success.
    #[test]
    fn every_task_ends_once_agents_work(ops in proptest::collection::vec(op(), 1..60)) {
        let mut d = Dispatcher::new(config());
        let mut m = Model::default();
        for op in &ops {
            step(&mut d, &mut m, op).map_err(TestCaseError::fail)?;
        }
        // Bring in a healthy gpu agent and let everything finish.
        step(&mut d, &mut m, &Op::Register { gpu: true, capacity: 3 }).map_err(TestCaseError::fail)?;
        for _ in 0..400 {
            let agents: Vec<AgentId> = m.agents.keys().copied().collect();
            for agent in agents {
                let _ = d.heartbeat(agent, m.now);
                let _ = d.set_agent_status(agent, AgentStatus::Online, m.now);
            }
            check(&mut d, &mut m).map_err(TestCaseError::fail)?;
            let running = m.running.clone();
            for (task, agent, token) in running {
                let _ = d.report(TaskReport { task, agent, token, outcome: AttemptOutcome::Success }, m.now);
            }
            m.now += Duration::from_millis(500);
            d.handle_timeout(m.now);
            check(&mut d, &mut m).map_err(TestCaseError::fail)?;
        }
        let unfinished: BTreeSet<TaskId> = m
            .submitted
            .iter()
            .map(|s| s.0)
            .filter(|&t| !d.task_state(t).is_some_and(|s| s.is_terminal()))
            .collect();
        prop_assert!(unfinished.is_empty(), "never finished: {:?}", unfinished);
    }
}

proptest! {
    /// Under a sustained stream of P0 work on one slot, a P3 task is assigned
    /// within 3 × aging interval plus the time to serve the P0 tasks that were
    /// queued ahead of it.
    #[test]
    fn aging_bounds_the_wait_of_a_p3_task(
        aging_secs in 1u64..8,
        run_ms in 100u64..2_000,
        backlog in 0usize..6,
        arrivals_per_run in 1usize..3,
    ) {
        let config = DispatcherConfig::builder()
            .aging_interval(Some(Duration::from_secs(aging_secs)))
            .queue_capacity(100_000)
            .build()
            .unwrap();
        let mut d: Dispatcher<u32> = Dispatcher::new(config);
        let agent = AgentId::new(1);
        d.register_agent(agent, AgentProfile::builder().build().unwrap(), Instant::ZERO).unwrap();
        let critical = |n| TaskSpec::new(n).priority(Priority::Critical);
        let mut now = Instant::ZERO;
        for n in 0..=backlog as u32 {
            let _ = d.submit(critical(n), now).unwrap();
        }
        let low = d.submit(TaskSpec::new(999).priority(Priority::Low), now).unwrap().id();
        let run = Duration::from_millis(run_ms);
        let bound = Duration::from_secs(3 * aging_secs) + run * (backlog as u32 + 2);
        let mut running: Option<(TaskId, AttemptToken)> = None;
        loop {
            while let Some(action) = d.poll_action() {
                if let Action::Assign { task, token, .. } = action {
                    prop_assert!(running.is_none());
                    running = Some((task, token));
                }
            }
            let (task, token) = running.take().expect("the agent always has work");
            if task == low {
                prop_assert!(now.saturating_duration_since(Instant::ZERO) <= bound, "P3 assigned at {} > bound {:?}", now, bound);
                break;
            }
            prop_assert!(now.saturating_duration_since(Instant::ZERO) <= bound, "P3 still waiting at {}", now);
            now += run;
            for n in 0..arrivals_per_run as u32 {
                let _ = d.submit(critical(1_000 + n), now).unwrap();
            }
            d.report(TaskReport { task, agent, token, outcome: AttemptOutcome::Success }, now).unwrap();
        }
    }
}
