//! Plain tasks and workflows on ONE dispatcher and one agent pool: each
//! agent registered once, the host pulling every pool action and handing
//! it to the engine, which keeps its steps' and hands the rest back.
//!
//! Several definitions (parallel branches, step retries, a compensating
//! failure, local steps) run interleaved with plain tasks the pool retries
//! by its own policy, under seeded random failures. Every plain task ends
//! exactly once, every step of every run reaches exactly one final state,
//! every run ends with an outcome, nothing is left in the pool or the
//! engine, and no plain task's action or result ever reaches the engine
//! (nor a step's the host's plain-task code).

#![cfg(feature = "workflow")]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use taskweave::agent::AgentProfile;
use taskweave::resilience::Fixed;
use taskweave::scheduler::{
    Action, AttemptOutcome, Dispatcher, DispatcherConfig, TaskReport, TaskState,
};
use taskweave::workflow::{
    EngineAction, EngineError, RunOutcome, StepDef, StepFailure, StepOutput, StepTask, WorkflowDef,
    WorkflowEngine, WorkflowEvent,
};
use taskweave::{AgentId, AttemptToken, Instant, StepId, TaskId, WorkflowId};

mod harness;

use harness::{EngineOnPool, Harness, Next, PoolAction};

/// The host's payload: its own jobs, and workflow steps.
#[derive(Clone, Debug, PartialEq)]
enum Job {
    Plain(u32),
    Step(StepTask),
}

impl From<StepTask> for Job {
    fn from(step: StepTask) -> Self {
        Job::Step(step)
    }
}

/// SplitMix64: a seeded, dependency-free source of failures.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// True with probability `percent` / 100.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn retry(attempts: u32) -> Fixed {
    Fixed::new(Duration::from_millis(5), attempts).unwrap()
}

fn definitions() -> Vec<Arc<WorkflowDef>> {
    let fan = WorkflowDef::builder("fan", 1)
        .step(StepDef::agent("split").capabilities(["cpu"]))
        .step(StepDef::agent("left").capabilities(["cpu"]).retry(retry(4)))
        .step(
            StepDef::agent("middle")
                .capabilities(["gpu"])
                .retry(retry(4)),
        )
        .step(
            StepDef::agent("right")
                .capabilities(["cpu"])
                .retry(retry(4)),
        )
        .step(StepDef::local("merge"))
        .edge("split", "left")
        .edge("split", "middle")
        .edge("split", "right")
        .edge("left", "merge")
        .edge("middle", "merge")
        .edge("right", "merge")
        .build()
        .unwrap();
    let order = WorkflowDef::builder("order", 1)
        .step(
            StepDef::agent("reserve")
                .capabilities(["cpu"])
                .compensable(),
        )
        .step(
            StepDef::agent("charge")
                .capabilities(["cpu"])
                .compensable()
                .retry(retry(2)),
        )
        .step(StepDef::local("notify").compensable())
        // Fails for good in about half the runs: the run compensates.
        .step(StepDef::agent("ship").capabilities(["gpu"]))
        .chain(["reserve", "charge", "notify", "ship"])
        .build()
        .unwrap();
    let report = WorkflowDef::builder("report", 1)
        .step(
            StepDef::agent("query")
                .capabilities(["gpu"])
                .retry(retry(3)),
        )
        .step(
            StepDef::agent("audit")
                .capabilities(["cpu"])
                .retry(retry(3)),
        )
        .step(StepDef::local("format"))
        .edge("query", "format")
        .edge("audit", "format")
        .build()
        .unwrap();
    vec![Arc::new(fan), Arc::new(order), Arc::new(report)]
}

/// Work an agent is doing: it ends at `at`.
#[derive(Clone, Copy, Debug)]
enum Work {
    Plain {
        task: TaskId,
        agent: AgentId,
        token: AttemptToken,
    },
    Step {
        task: TaskId,
        agent: AgentId,
        token: AttemptToken,
        step: StepTask,
    },
}

#[derive(Default, Debug)]
struct PlainRecord {
    assignments: u32,
    completed: u32,
    dead_lettered: u32,
}

struct World {
    /// The engine on its pool, with the agents' work in flight.
    sim: Harness<EngineOnPool<String, Job>, Work>,
    rng: Rng,
    plain: BTreeMap<TaskId, PlainRecord>,
    /// Assignments of each run attempt (run, run token).
    step_assignments: BTreeMap<(WorkflowId, AttemptToken), u32>,
    runs: BTreeMap<WorkflowId, Arc<WorkflowDef>>,
    finished: BTreeMap<WorkflowId, Vec<RunOutcome>>,
    tried_cross_report: bool,
}

impl World {
    fn submit_plain(&mut self, n: u32) {
        let spec = taskweave::scheduler::TaskSpec::new(Job::Plain(n));
        let task = self
            .sim
            .machine
            .pool
            .submit(spec, self.sim.now)
            .unwrap()
            .id();
        self.plain.insert(task, PlainRecord::default());
    }

    fn start(&mut self, def: &Arc<WorkflowDef>) {
        let EngineOnPool { engine, pool } = &mut self.sim.machine;
        let run = engine.start(pool, Arc::clone(def), None, self.sim.now);
        self.runs.insert(run, Arc::clone(def));
    }

    fn busy_for(&mut self) -> Duration {
        Duration::from_millis(1 + self.rng.below(20))
    }

    fn schedule(&mut self, work: Work) {
        let at = self.sim.now.saturating_add(self.busy_for());
        self.sim.schedule(at, work);
    }

    fn unschedule(&mut self, task: TaskId, token: AttemptToken) {
        self.sim.unschedule(|work| match *work {
            Work::Plain {
                task: t, token: k, ..
            }
            | Work::Step {
                task: t, token: k, ..
            } => (t, k) != (task, token),
        });
    }

    /// A pool action the engine handed back: the host's own.
    fn host_action(&mut self, action: Action) {
        match action {
            Action::Assign {
                task, agent, token, ..
            } => {
                let record = self
                    .plain
                    .get_mut(&task)
                    .unwrap_or_else(|| panic!("a step's assignment reached the host: {task}"));
                record.assignments += 1;
                assert!(matches!(
                    self.sim.machine.pool.payload(task),
                    Some(Job::Plain(_))
                ));
                self.schedule(Work::Plain { task, agent, token });
            }
            Action::Cancel { task, token, .. } => {
                assert!(
                    self.plain.contains_key(&task),
                    "a step's cancel reached the host"
                );
                self.unschedule(task, token);
            }
            Action::DeadLettered { task, .. } | Action::Expired { task, .. } => {
                let record = self
                    .plain
                    .get_mut(&task)
                    .unwrap_or_else(|| panic!("a step's dead letter reached the host: {task}"));
                record.dead_lettered += 1;
            }
            Action::AgentLost { agent } => panic!("no agent is lost here: {agent}"),
        }
    }

    fn engine_action(&mut self, action: EngineAction<String>) {
        let now = self.sim.now;
        let EngineOnPool { engine, pool } = &mut self.sim.machine;
        match action {
            EngineAction::Assign {
                task,
                agent,
                token,
                step,
            } => {
                assert!(
                    !self.plain.contains_key(&task),
                    "a plain task reached the engine"
                );
                assert_eq!(self.sim.machine.pool.payload(task), Some(&Job::Step(step)));
                *self
                    .step_assignments
                    .entry((step.run, step.token))
                    .or_default() += 1;
                self.schedule(Work::Step {
                    task,
                    agent,
                    token,
                    step,
                });
            }
            EngineAction::CancelAssigned { task, token, .. } => {
                assert!(!self.plain.contains_key(&task));
                self.unschedule(task, token);
            }
            EngineAction::RunLocal { run, token, .. } => {
                let result = if self.rng.chance(10) {
                    Err(StepFailure::fatal("local step broke"))
                } else {
                    Ok(StepOutput::new("local".to_string()))
                };
                engine.report_local(pool, run, token, result, now).unwrap();
            }
            EngineAction::CompensateLocal { run, token, .. } => {
                engine.compensated(pool, run, token, Ok(()), now).unwrap();
            }
            EngineAction::Finished { run, outcome, .. } => {
                self.finished.entry(run).or_default().push(outcome);
            }
            other => panic!("unexpected engine action {other:?}"),
        }
    }

    /// Pulls every pool and engine action until none is left.
    fn settle(&mut self) {
        loop {
            let actions = self.sim.drain();
            if actions.is_empty() {
                return;
            }
            for action in actions {
                match action {
                    PoolAction::Plain(action) => self.host_action(action),
                    PoolAction::Engine(action) => self.engine_action(action),
                }
            }
        }
    }

    /// Finishes the earliest work, or fires the earliest timer; false when
    /// nothing is left to happen.
    fn advance(&mut self) -> bool {
        match self.sim.advance() {
            None => false,
            Some(Next::Timer(_)) => true,
            Some(Next::Work(work)) => {
                self.finish(work);
                true
            }
        }
    }

    fn finish(&mut self, work: Work) {
        let now = self.sim.now;
        match work {
            Work::Plain { task, agent, token } => {
                if !self.tried_cross_report {
                    // A plain task's result offered to the engine is refused
                    // and changes nothing.
                    self.tried_cross_report = true;
                    let EngineOnPool { engine, pool } = &mut self.sim.machine;
                    let refused = engine.report(
                        pool,
                        task,
                        agent,
                        token,
                        Ok(StepOutput::new("not a step".to_string())),
                        now,
                    );
                    assert!(
                        matches!(refused, Err(EngineError::Report(_))),
                        "{refused:?}"
                    );
                }
                let outcome = if self.rng.chance(35) {
                    AttemptOutcome::Failure {
                        reason: "plain job failed".to_string(),
                        retryable: true,
                    }
                } else {
                    AttemptOutcome::Success
                };
                let success = outcome == AttemptOutcome::Success;
                self.sim
                    .machine
                    .pool
                    .report(
                        TaskReport {
                            task,
                            agent,
                            token,
                            outcome,
                        },
                        now,
                    )
                    .unwrap();
                if success {
                    self.plain.get_mut(&task).unwrap().completed += 1;
                }
            }
            Work::Step {
                task,
                agent,
                token,
                step,
            } => {
                let def = Arc::clone(&self.runs[&step.run]);
                let id = def.step(step.step).unwrap().id.clone();
                let result = if step.compensation {
                    // Compensations fail now and then; without a retry
                    // policy they fail for good.
                    if self.rng.chance(10) {
                        Err(StepFailure::retryable("undo failed"))
                    } else {
                        Ok(StepOutput::empty())
                    }
                } else if id == "ship" && self.rng.chance(50) {
                    Err(StepFailure::fatal("no courier"))
                } else if self.rng.chance(25) {
                    Err(StepFailure::retryable("flaky agent"))
                } else {
                    Ok(StepOutput::new(id))
                };
                let EngineOnPool { engine, pool } = &mut self.sim.machine;
                engine
                    .report(pool, task, agent, token, result, now)
                    .unwrap();
            }
        }
    }
}

fn one_pool_case(seed: u64) {
    let config = DispatcherConfig::builder()
        // The host's own retry policy: plain tasks get 4 attempts. Steps
        // are never retried by it.
        .retry_policy(retry(4))
        .build()
        .unwrap();
    let mut pool: Dispatcher<Job> = Dispatcher::new(config);
    for (id, capabilities) in [
        (1, &["cpu"][..]),
        (2, &["cpu", "gpu"][..]),
        (3, &["gpu"][..]),
        (4, &["cpu"][..]),
    ] {
        let profile = AgentProfile::builder()
            .capabilities(capabilities.iter().copied())
            .capacity(3)
            .build()
            .unwrap();
        pool.register_agent(AgentId::new(id), profile, Instant::ZERO)
            .unwrap();
    }
    let mut engine = WorkflowEngine::new();
    let events: Arc<Mutex<Vec<WorkflowEvent>>> = Arc::default();
    let sink = Arc::clone(&events);
    engine.set_observer(move |event: &WorkflowEvent| sink.lock().unwrap().push(event.clone()));
    let mut world = World {
        sim: Harness::new(EngineOnPool { engine, pool }, Instant::ZERO),
        rng: Rng(seed),
        plain: BTreeMap::new(),
        step_assignments: BTreeMap::new(),
        runs: BTreeMap::new(),
        finished: BTreeMap::new(),
        tried_cross_report: false,
    };
    let defs = definitions();
    // Interleave: plain tasks and runs of every definition start together,
    // and more of both arrive while the first are running.
    let (mut plain_left, mut runs_left) = (40u32, 15usize);
    for n in 0..10 {
        world.submit_plain(n);
    }
    for def in &defs {
        world.start(def);
    }
    let mut steps = 0;
    loop {
        world.settle();
        steps += 1;
        assert!(steps < 100_000, "seed {seed}: no end in sight");
        if steps % 3 == 0 && plain_left > 0 {
            world.submit_plain(plain_left);
            plain_left -= 1;
            continue;
        }
        if steps % 7 == 0 && runs_left > 0 {
            runs_left -= 1;
            let def = Arc::clone(&defs[runs_left % defs.len()]);
            world.start(&def);
            continue;
        }
        if !world.advance() {
            if plain_left == 0 && runs_left == 0 {
                break;
            }
            // Idle: let more arrive.
            steps += 2;
        }
    }
    world.settle();

    // Every plain task ended exactly once, as the pool says.
    assert_eq!(world.plain.len(), 50, "seed {seed}");
    let mut retried_plain = 0;
    for (task, record) in &world.plain {
        assert_eq!(
            record.completed + record.dead_lettered,
            1,
            "seed {seed}: plain {task} {record:?}"
        );
        let state = world.sim.machine.pool.task_state(*task);
        match record.completed {
            1 => assert_eq!(state, Some(TaskState::Completed), "seed {seed}: {task}"),
            _ => assert_eq!(state, Some(TaskState::DeadLettered), "seed {seed}: {task}"),
        }
        if record.assignments > 1 {
            retried_plain += 1;
        }
        assert!(record.assignments <= 4, "seed {seed}: {task} {record:?}");
    }
    assert!(
        retried_plain > 0,
        "seed {seed}: the pool's policy retries plain tasks"
    );

    // Each run attempt became one task, assigned once: the pool never
    // retried a step (the steps' own policies did, through their runs).
    assert!(
        world.step_assignments.values().all(|&n| n == 1),
        "seed {seed}: {:?}",
        world.step_assignments
    );

    // Every run ended once, with an outcome; every step of it reached
    // exactly one final state.
    assert_eq!(world.runs.len(), defs.len() + 15, "seed {seed}");
    let events = events.lock().unwrap();
    let mut finals: BTreeMap<(WorkflowId, StepId), u32> = BTreeMap::new();
    for event in events.iter() {
        match *event {
            WorkflowEvent::StepCompleted { run, step }
            | WorkflowEvent::StepFailed { run, step }
            | WorkflowEvent::StepSkipped { run, step } => {
                *finals.entry((run, step)).or_default() += 1;
            }
            _ => {}
        }
    }
    let mut compensated = 0;
    for (run, def) in &world.runs {
        let outcomes = world.finished.get(run).map_or(&[][..], Vec::as_slice);
        assert_eq!(outcomes.len(), 1, "seed {seed}: {run} ended {outcomes:?}");
        if !matches!(outcomes[0], RunOutcome::Succeeded) {
            compensated += 1;
        }
        for (step, _) in def.steps() {
            assert_eq!(
                finals.get(&(*run, step)).copied(),
                Some(1),
                "seed {seed}: {run} step {step}"
            );
        }
    }
    assert!(
        compensated > 0,
        "seed {seed}: some runs fail and compensate"
    );

    // Nothing is lost or left behind.
    assert_eq!(world.sim.machine.engine.active_runs(), 0, "seed {seed}");
    assert_eq!(world.sim.machine.engine.live_tasks(), 0, "seed {seed}");
    assert_eq!(world.sim.machine.pool.live_tasks(), 0, "seed {seed}");
    assert!(!world.sim.has_work(), "seed {seed}");
    // The pool's dead letters are the host's plain tasks only: the engine
    // took its steps'.
    for letter in world.sim.machine.pool.dead_letters().iter() {
        assert!(
            matches!(letter.spec.payload, Job::Plain(_)),
            "seed {seed}: {letter:?}"
        );
    }
}

#[test]
fn plain_tasks_and_workflows_share_one_pool() {
    for seed in 0..24 {
        one_pool_case(seed);
    }
}
