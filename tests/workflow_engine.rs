//! The workflow engine: runs on a dispatcher, agent steps as tasks.

#![cfg(feature = "workflow")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use taskweave::agent::AgentProfile;
use taskweave::resilience::Fixed;
use taskweave::scheduler::{Dispatcher, DispatcherConfig};
use taskweave::workflow::{
    EngineAction, EngineError, FailureCause, MismatchPolicy, Resumed, RunOutcome, StartPolicy,
    Started, StepDef, StepFailure, StepInput, StepOutput, StepTask, WorkflowDef, WorkflowEngine,
    WorkflowEvent, WorkflowRun,
};
use taskweave::{AgentId, AttemptToken, Instant, TaskId, WorkflowId};

const T0: Instant = Instant::ZERO;

mod harness;

use harness::{EngineOnPool, Harness, Machine, PoolAction};

/// An engine on a pool the test owns, in the shared harness, with the
/// engine's former methods.
type Host = Harness<EngineOnPool<String, StepTask>>;

impl Host {
    fn start(&mut self, def: Arc<WorkflowDef>, input: Option<String>, now: Instant) -> WorkflowId {
        let EngineOnPool { engine, pool } = &mut self.machine;
        engine.start(pool, def, input, now)
    }

    /// The engine's next action; no plain task runs here, so the only
    /// action handed back to the host is a lost agent.
    fn start_version(&mut self, policy: StartPolicy) -> Result<WorkflowId, EngineError> {
        let EngineOnPool { engine, pool } = &mut self.machine;
        engine.start_version(pool, "order", policy, None, self.now)
    }

    fn poll_action(&mut self) -> Option<EngineAction<String>> {
        loop {
            match self.machine.poll_action()? {
                PoolAction::Engine(action) => return Some(action),
                PoolAction::Plain(taskweave::scheduler::Action::AgentLost { .. }) => {}
                PoolAction::Plain(action) => panic!("a plain task's action: {action:?}"),
            }
        }
    }

    fn report(
        &mut self,
        task: TaskId,
        agent: AgentId,
        token: AttemptToken,
        result: Result<StepOutput<String>, StepFailure>,
        now: Instant,
    ) -> Result<(), EngineError> {
        let EngineOnPool { engine, pool } = &mut self.machine;
        engine.report(pool, task, agent, token, result, now)
    }

    fn compensated(
        &mut self,
        run: WorkflowId,
        token: AttemptToken,
        result: Result<(), StepFailure>,
        now: Instant,
    ) -> Result<(), EngineError> {
        let EngineOnPool { engine, pool } = &mut self.machine;
        engine.compensated(pool, run, token, result, now)
    }

    fn report_local(
        &mut self,
        run: WorkflowId,
        token: AttemptToken,
        result: Result<StepOutput<String>, StepFailure>,
        now: Instant,
    ) -> Result<(), EngineError> {
        let EngineOnPool { engine, pool } = &mut self.machine;
        engine.report_local(pool, run, token, result, now)
    }

    fn cancel(&mut self, run: WorkflowId, now: Instant) -> Result<(), EngineError> {
        let EngineOnPool { engine, pool } = &mut self.machine;
        engine.cancel(pool, run, now)
    }

    fn unregister_agent(&mut self, agent: AgentId, now: Instant) -> Result<(), EngineError> {
        self.machine.pool.unregister_agent(agent, now)?;
        Ok(())
    }

    fn run(&self, run: WorkflowId) -> Option<&WorkflowRun<String>> {
        self.machine.engine.run(run)
    }

    fn input(
        &self,
        run: WorkflowId,
        token: AttemptToken,
    ) -> Result<StepInput<String>, EngineError> {
        self.machine.engine.input(run, token)
    }

    fn active_runs(&self) -> usize {
        self.machine.engine.active_runs()
    }

    fn dispatcher(&self) -> &Dispatcher<StepTask> {
        &self.machine.pool
    }
}

fn engine_with(agents: &[(u64, &[&str])]) -> Host {
    let mut pool = Dispatcher::new(DispatcherConfig::default());
    for &(id, capabilities) in agents {
        let profile = AgentProfile::builder()
            .capabilities(capabilities.iter().copied())
            .capacity(4)
            .build()
            .unwrap();
        pool.register_agent(AgentId::new(id), profile, T0).unwrap();
    }
    let engine = WorkflowEngine::new();
    Harness::new(EngineOnPool { engine, pool }, T0)
}

/// A finished top-level run: its id, outcome and output.
type Finished = (WorkflowId, RunOutcome, Option<String>);

/// Drives the engine until no action is left: agent steps answer with
/// `agent_result(step id, input values, compensation?)`, local steps with their step id, compensations succeed.
/// Returns the log of what happened and the finished runs.
fn drive(
    engine: &mut Host,
    mut agent_result: impl FnMut(&str, &[String], bool) -> Result<StepOutput<String>, StepFailure>,
) -> (Vec<String>, Vec<Finished>) {
    let (mut log, mut finished) = (Vec::new(), Vec::new());
    loop {
        while let Some(action) = engine.poll_action() {
            let now = engine.now;
            match action {
                EngineAction::Assign {
                    task,
                    agent,
                    token,
                    step,
                } => {
                    let def = Arc::clone(engine.run(step.run).unwrap().definition());
                    let id = def.step(step.step).unwrap().id.clone();
                    let verb = if step.compensation { "undo" } else { "run" };
                    log.push(format!("{verb} {id} on {agent}"));
                    let inputs: Vec<String> = engine
                        .input(step.run, step.token)
                        .unwrap()
                        .inputs
                        .into_iter()
                        .map(|(_, value)| value)
                        .collect();
                    let result = agent_result(&id, &inputs, step.compensation);
                    engine.report(task, agent, token, result, now).unwrap();
                }
                EngineAction::RunLocal { run, step, token } => {
                    let def = Arc::clone(engine.run(run).unwrap().definition());
                    let id = def.step(step).unwrap().id.clone();
                    log.push(format!("local {id}"));
                    engine
                        .report_local(run, token, Ok(StepOutput::new(id)), now)
                        .unwrap();
                }
                EngineAction::CompensateLocal { run, step, token } => {
                    let def = Arc::clone(engine.run(run).unwrap().definition());
                    log.push(format!("undo {}", def.step(step).unwrap().id));
                    engine.compensated(run, token, Ok(()), now).unwrap();
                }
                EngineAction::Finished {
                    run,
                    outcome,
                    output,
                } => finished.push((run, outcome, output)),
                other => log.push(format!("{other:?}")),
            }
        }
        if engine.advance().is_none() {
            return (log, finished);
        }
    }
}

#[test]
fn agent_steps_go_to_capable_agents_and_outputs_flow() {
    let def = Arc::new(
        WorkflowDef::builder("pipeline", 1)
            .step(StepDef::agent("sql").capabilities(["sql"]))
            .step(StepDef::agent("gpu").capabilities(["gpu"]))
            .step(StepDef::local("join"))
            .edge("sql", "join")
            .edge("gpu", "join")
            .build()
            .unwrap(),
    );
    let mut engine = engine_with(&[(1, &["sql"]), (2, &["gpu"])]);
    let run = engine.start(def, None, T0);
    let (log, finished) = drive(&mut engine, |id, _, _| Ok(StepOutput::new(id.to_string())));
    assert_eq!(
        log,
        ["run sql on agent-1", "run gpu on agent-2", "local join"]
    );
    assert_eq!(
        finished,
        [(run, RunOutcome::Succeeded, Some("join".to_string()))]
    );
    assert_eq!(engine.active_runs(), 0);
    assert_eq!(engine.dispatcher().live_tasks(), 0);
}

#[test]
fn a_failed_agent_step_is_retried_by_its_own_policy() {
    let def = Arc::new(
        WorkflowDef::builder("retry", 1)
            .step(
                StepDef::agent("flaky")
                    .capabilities(["x"])
                    .retry(Fixed::new(Duration::from_secs(1), 3).unwrap()),
            )
            .build()
            .unwrap(),
    );
    let mut engine = engine_with(&[(1, &["x"])]);
    engine.start(def, None, T0);
    let mut calls = 0;
    let (log, finished) = drive(&mut engine, |_, _, _| {
        calls += 1;
        if calls < 3 {
            Err(StepFailure::retryable("busy"))
        } else {
            Ok(StepOutput::new("done".to_string()))
        }
    });
    assert_eq!(log.len(), 3, "{log:?}");
    assert_eq!(finished[0].1, RunOutcome::Succeeded);
    // The dispatcher's dead letters were the engine's to handle, not kept.
    assert!(engine.dispatcher().dead_letters().is_empty());
}

#[test]
fn agent_steps_are_compensated_through_the_dispatcher_in_reverse() {
    let def = Arc::new(
        WorkflowDef::builder("saga", 1)
            .step(StepDef::agent("reserve").capabilities(["x"]).compensable())
            .step(StepDef::local("note").compensable())
            .step(StepDef::agent("charge").capabilities(["x"]))
            .chain(["reserve", "note", "charge"])
            .build()
            .unwrap(),
    );
    let mut engine = engine_with(&[(1, &["x"])]);
    let run = engine.start(def, None, T0);
    let (log, finished) = drive(&mut engine, |id, _, compensation| {
        match (id, compensation) {
            ("charge", false) => Err(StepFailure::fatal("declined")),
            _ => Ok(StepOutput::empty()),
        }
    });
    assert_eq!(
        log,
        [
            "run reserve on agent-1",
            "local note",
            "run charge on agent-1",
            "undo note",
            "undo reserve on agent-1",
        ]
    );
    let RunOutcome::Compensated(FailureCause::StepFailed { reason, .. }) = &finished[0].1 else {
        panic!("{finished:?}");
    };
    assert_eq!(reason, "declined");
    assert_eq!(finished[0].0, run);
}

#[test]
fn a_sub_workflow_runs_inside_the_engine_and_completes_its_parent_step() {
    let child = Arc::new(
        WorkflowDef::builder("child", 1)
            .step(StepDef::agent("inner").capabilities(["x"]))
            .build()
            .unwrap(),
    );
    let def = Arc::new(
        WorkflowDef::builder("parent", 1)
            .step(StepDef::local("before"))
            .step(StepDef::sub_workflow("delegate", child))
            .step(
                StepDef::agent("after")
                    .capabilities(["x"])
                    .inputs(["delegate"]),
            )
            .chain(["before", "delegate", "after"])
            .build()
            .unwrap(),
    );
    let mut engine = engine_with(&[(1, &["x"])]);
    let run = engine.start(def, None, T0);
    let (log, finished) = drive(&mut engine, |id, inputs, _| {
        Ok(StepOutput::new(format!("{id}({})", inputs.join(","))))
    });
    assert_eq!(
        log,
        [
            "local before",
            "run inner on agent-1",
            "run after on agent-1"
        ]
    );
    // The child got the parent step's input and its output fed `after`.
    assert_eq!(
        finished,
        [(
            run,
            RunOutcome::Succeeded,
            Some("after(inner())".to_string())
        )]
    );
}

#[test]
fn an_unregistered_agent_fails_over_without_the_run_noticing() {
    let def = Arc::new(
        WorkflowDef::builder("failover", 1)
            .step(StepDef::agent("work").capabilities(["x"]))
            .build()
            .unwrap(),
    );
    let mut engine = engine_with(&[(1, &["x"]), (2, &["x"])]);
    engine.start(def, None, T0);
    let Some(EngineAction::Assign {
        task, agent, token, ..
    }) = engine.poll_action()
    else {
        panic!("expected an assignment");
    };
    engine.unregister_agent(agent, T0).unwrap();
    let mut reassigned = None;
    while let Some(action) = engine.poll_action() {
        if let EngineAction::Assign { agent: other, .. } = action {
            reassigned = Some(other);
        }
    }
    let other = reassigned.expect("the task was reassigned");
    assert_ne!(other, agent);
    // The lost agent's late report is refused and changes nothing.
    let late = engine.report(task, agent, token, Ok(StepOutput::new("late".into())), T0);
    assert!(matches!(late, Err(EngineError::Report(_))), "{late:?}");
    assert_eq!(engine.active_runs(), 1);
}

#[test]
fn cancelling_a_run_stops_its_agent_tasks() {
    let def = Arc::new(
        WorkflowDef::builder("cancel", 1)
            .step(StepDef::agent("long").capabilities(["x"]))
            .build()
            .unwrap(),
    );
    let mut engine = engine_with(&[(1, &["x"])]);
    let run = engine.start(def, None, T0);
    let Some(EngineAction::Assign { task, .. }) = engine.poll_action() else {
        panic!("expected an assignment");
    };
    engine.cancel(run, T0).unwrap();
    let actions: Vec<_> = std::iter::from_fn(|| engine.poll_action()).collect();
    assert!(matches!(
        actions[0],
        EngineAction::CancelAssigned { task: t, .. } if t == task
    ));
    assert!(matches!(
        &actions[1],
        EngineAction::Finished {
            outcome: RunOutcome::Failed(FailureCause::Cancelled),
            ..
        }
    ));
    assert_eq!(engine.dispatcher().live_tasks(), 0);
    // Cancelled again: the engine remembers how it ended.
    assert!(matches!(
        engine.cancel(run, T0),
        Err(EngineError::RunFinished {
            outcome: RunOutcome::Failed(FailureCause::Cancelled),
            ..
        })
    ));
}

#[test]
fn cancelling_a_run_cancels_its_queued_steps_at_once() {
    let mut builder = WorkflowDef::builder("wide", 1);
    for (name, capability) in [("a", "x"), ("b", "x"), ("c", "y"), ("d", "y")] {
        builder = builder.step(StepDef::agent(name).capabilities([capability]));
    }
    let def = Arc::new(builder.build().unwrap());
    // No agent offers "y": two steps run, two wait in the queue.
    let mut engine = engine_with(&[(1, &["x"])]);
    let run = engine.start(def, None, T0);
    let assigned = std::iter::from_fn(|| engine.poll_action())
        .filter(|a| matches!(a, EngineAction::Assign { .. }))
        .count();
    assert_eq!(assigned, 2);
    assert_eq!(engine.dispatcher().live_tasks(), 4);
    engine.cancel(run, T0).unwrap();
    let cancels = std::iter::from_fn(|| engine.poll_action())
        .filter(|a| matches!(a, EngineAction::CancelAssigned { .. }))
        .count();
    assert_eq!(cancels, 2);
    // The two queued steps ended with the run: nothing waits for an agent.
    assert_eq!(engine.dispatcher().live_tasks(), 0);
    assert_eq!(engine.dispatcher().waiting(), 0);
}

#[test]
fn a_thousand_runs_share_one_dispatcher() {
    let def = Arc::new(
        WorkflowDef::builder("fan", 1)
            .step(StepDef::agent("a").capabilities(["x"]))
            .step(StepDef::agent("b").capabilities(["x"]))
            .step(StepDef::agent("c").capabilities(["x"]))
            .edge("a", "c")
            .edge("b", "c")
            .build()
            .unwrap(),
    );
    let mut engine = engine_with(&[(1, &["x"]), (2, &["x"]), (3, &["x"])]);
    let runs: Vec<_> = (0..1000)
        .map(|_| engine.start(Arc::clone(&def), None, T0))
        .collect();
    assert_eq!(engine.active_runs(), 1000);
    let (log, mut finished) = drive(&mut engine, |_, _, _| Ok(StepOutput::empty()));
    assert_eq!(log.len(), 3000);
    finished.sort_by_key(|(run, _, _)| *run);
    assert_eq!(
        finished.iter().map(|(run, _, _)| *run).collect::<Vec<_>>(),
        runs
    );
    assert!(finished.iter().all(|(_, o, _)| *o == RunOutcome::Succeeded));
}

#[test]
fn cancelling_a_run_never_assigns_its_queued_steps() {
    let mut builder = WorkflowDef::builder("wide", 1);
    for n in 0..6 {
        builder = builder.step(StepDef::agent(format!("s{n}")).capabilities(["x"]));
    }
    let def = Arc::new(builder.build().unwrap());
    // One agent with 4 slots: 4 steps run, 2 wait in the queue.
    let mut engine = engine_with(&[(1, &["x"])]);
    let run = engine.start(def, None, T0);
    let assigned: Vec<TaskId> = std::iter::from_fn(|| engine.poll_action())
        .filter_map(|a| match a {
            EngineAction::Assign { task, .. } => Some(task),
            _ => None,
        })
        .collect();
    assert_eq!(assigned.len(), 4);
    engine.cancel(run, T0).unwrap();
    let cancelled: Vec<TaskId> = std::iter::from_fn(|| engine.poll_action())
        .filter_map(|a| match a {
            EngineAction::CancelAssigned { task, .. } => Some(task),
            EngineAction::Assign { .. } => panic!("a step of a cancelled run was assigned"),
            _ => None,
        })
        .collect();
    // Only the attempts the host started are cancelled on agents.
    assert_eq!(cancelled, assigned);
    assert_eq!(engine.dispatcher().live_tasks(), 0);
}

/// Version `v` of the "order" workflow: an agent step named `step`, then a
/// local one.
fn order(v: u32, step: &str) -> Arc<WorkflowDef> {
    Arc::new(
        WorkflowDef::builder("order", v)
            .step(StepDef::agent(step).capabilities(["work"]))
            .step(StepDef::local("done"))
            .edge(step, "done")
            .build()
            .unwrap(),
    )
}

#[test]
fn versions_live_side_by_side_and_one_is_removed_once_drained() {
    let mut host = engine_with(&[(1, &["work"])]);
    let (v1, v2) = (order(1, "pick"), order(2, "pick_and_pack"));
    host.machine.engine.register(Arc::clone(&v1)).unwrap();
    let old = host.start_version(StartPolicy::Latest).unwrap();
    host.machine.engine.register(Arc::clone(&v2)).unwrap();
    let new = host.start_version(StartPolicy::Latest).unwrap();
    let pinned = host.start_version(StartPolicy::Pinned(1)).unwrap();

    // A run in flight keeps the definition it started with.
    let hash = |run| host.run(run).unwrap().definition().content_hash();
    assert_eq!(
        (hash(old), hash(new), hash(pinned)),
        (v1.content_hash(), v2.content_hash(), v1.content_hash())
    );
    let live = host.machine.engine.live_runs("order");
    let expected = [((1, v1.content_hash()), 2), ((2, v2.content_hash()), 1)];
    assert_eq!(live.into_iter().collect::<Vec<_>>(), expected);
    assert_eq!(
        host.machine.engine.unregister("order", 1),
        Err(EngineError::VersionInUse {
            name: "order".into(),
            version: 1,
            runs: 2
        })
    );

    let (log, finished) = drive(&mut host, |_, _, _| Ok(StepOutput::new("ok".into())));
    assert_eq!(finished.len(), 3, "{log:?}");
    assert!(
        log.contains(&"run pick_and_pack on agent-1".to_string()),
        "{log:?}"
    );
    assert!(host.machine.engine.live_runs("order").is_empty());
    let removed = host.machine.engine.unregister("order", 1).unwrap();
    assert_eq!(removed.content_hash(), v1.content_hash());
    let left: Vec<u32> = host
        .machine
        .engine
        .versions("order")
        .map(|d| d.version())
        .collect();
    assert_eq!(left, [2]);
    assert_eq!(
        host.start_version(StartPolicy::Pinned(1)),
        Err(EngineError::UnknownVersion {
            name: "order".into(),
            version: 1
        })
    );
}

#[test]
fn a_ramp_sends_its_share_of_new_runs_and_decides_alike_on_replay() {
    const RUNS: usize = 2_000;
    let versions_of = |percent: u8| {
        let mut host = engine_with(&[]);
        host.machine.engine.register(order(1, "pick")).unwrap();
        host.machine.engine.register(order(2, "pack")).unwrap();
        let ramp = StartPolicy::Ramp { to: 2, percent };
        (0..RUNS)
            .map(|_| {
                let run = host.start_version(ramp).unwrap();
                host.run(run).unwrap().definition().version()
            })
            .collect::<Vec<u32>>()
    };
    for percent in [0u8, 10, 50, 90, 100] {
        let picked = versions_of(percent);
        let on_v2 = picked.iter().filter(|&&v| v == 2).count();
        let share = on_v2 as f64 * 100.0 / RUNS as f64;
        match percent {
            0 => assert_eq!(on_v2, 0),
            100 => assert_eq!(on_v2, RUNS),
            _ => assert!(
                (share - f64::from(percent)).abs() < 5.0,
                "{percent} %: {share} %"
            ),
        }
        // The same run ids on a fresh engine take the same versions.
        assert_eq!(versions_of(percent), picked);
    }
}

#[test]
fn a_ramped_run_takes_the_version_its_own_id_draws() {
    let ramp = StartPolicy::Ramp { to: 2, percent: 50 };
    let ramped = |host: &mut Host| {
        host.machine.engine.register(order(1, "pick")).unwrap();
        host.machine.engine.register(order(2, "pack")).unwrap();
    };
    // What the ramp gives each id: on a fresh engine, the n-th run takes
    // id n.
    let mut fresh = engine_with(&[]);
    ramped(&mut fresh);
    let version_of: Vec<u32> = (1..=400u64)
        .map(|n| {
            let run = fresh.start_version(ramp).unwrap();
            assert_eq!(run, WorkflowId::new(n));
            fresh.run(run).unwrap().definition().version()
        })
        .collect();
    // Runs started under ids of the host's own hold every other id, so
    // most ramped runs take an id past the one the engine would count.
    let mut host = engine_with(&[]);
    ramped(&mut host);
    for n in (1..400).step_by(2) {
        let EngineOnPool { engine, pool } = &mut host.machine;
        let id = WorkflowId::new(n);
        assert!(
            engine
                .start_as(pool, order(1, "pick"), id, None, host.now)
                .is_new()
        );
    }
    for _ in 0..200 {
        let run = host.start_version(ramp).unwrap();
        assert_eq!(
            host.run(run).unwrap().definition().version(),
            version_of[run.get() as usize - 1],
            "{run:?}"
        );
    }
}

#[test]
fn a_run_moved_onto_a_version_with_a_new_entry_step_runs_it() {
    // v2 drops the edge s0 -> s1: s1 is an entry step of v2.
    let chain = |version: u32, linked: bool| {
        let mut builder = WorkflowDef::builder("order", version)
            .step(StepDef::local("s0"))
            .step(StepDef::local("s1"))
            .step(StepDef::local("s2"))
            .edge("s1", "s2");
        if linked {
            builder = builder.edge("s0", "s1");
        }
        Arc::new(builder.build().unwrap())
    };
    let mut host = engine_with(&[]);
    host.machine.engine.register(chain(1, true)).unwrap();
    host.machine.engine.register(chain(2, false)).unwrap();
    let run = host.start_version(StartPolicy::Pinned(1)).unwrap();
    host.migrate(run, 2).unwrap();
    let (log, finished) = drive(&mut host, |_, _, _| unreachable!("no agent step"));
    assert_eq!(log, ["local s0", "local s1", "local s2"]);
    assert_eq!(finished.len(), 1);
    assert_eq!(finished[0].1, RunOutcome::Succeeded);
}

#[test]
fn registering_and_starting_refuse_what_does_not_match() {
    let mut host = engine_with(&[]);
    assert_eq!(
        host.start_version(StartPolicy::Latest),
        Err(EngineError::UnknownWorkflow("order".into()))
    );
    let engine = &mut host.machine.engine;
    engine.register(order(1, "pick")).unwrap();
    // The same definition again changes nothing; another one under the
    // same version is refused.
    engine.register(order(1, "pick")).unwrap();
    let conflict = engine.register(order(1, "pack")).unwrap_err();
    assert_eq!(
        conflict,
        EngineError::VersionConflict {
            name: "order".into(),
            version: 1
        }
    );
    assert!(conflict.to_string().contains("new version"), "{conflict}");
    assert_eq!(engine.versions("order").count(), 1);
    assert!(matches!(
        engine.unregister("order", 7),
        Err(EngineError::UnknownVersion { version: 7, .. })
    ));
    assert_eq!(
        host.start_version(StartPolicy::Ramp {
            to: 1,
            percent: 101
        }),
        Err(EngineError::InvalidRamp {
            to: 1,
            percent: 101
        })
    );
    assert!(matches!(
        host.start_version(StartPolicy::Ramp { to: 3, percent: 5 }),
        Err(EngineError::UnknownVersion { version: 3, .. })
    ));
    // A ramp to the only version sends every run there.
    let run = host
        .start_version(StartPolicy::Ramp { to: 1, percent: 0 })
        .unwrap();
    assert_eq!(host.run(run).unwrap().definition().version(), 1);
    assert_eq!(host.active_runs(), 1);
}

// ---- resuming runs, and checkpoints no definition serves -------------

impl Host {
    fn resume(
        &mut self,
        checkpoint: taskweave::workflow::Checkpoint<String>,
    ) -> Result<Resumed, EngineError> {
        let EngineOnPool { engine, pool } = &mut self.machine;
        engine.resume(pool, checkpoint, self.now)
    }

    fn resume_parked(&mut self) -> Vec<WorkflowId> {
        let EngineOnPool { engine, pool } = &mut self.machine;
        engine.resume_parked(pool, self.now)
    }
}

/// Every event the engine's runs emit.
fn recorded(host: &mut Host) -> Arc<Mutex<Vec<WorkflowEvent>>> {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    host.machine
        .engine
        .set_observer(move |event: &WorkflowEvent| sink.lock().unwrap().push(event.clone()));
    events
}

/// A checkpoint of `def`'s run 41, taken once its first step was handed
/// out and before it was answered.
fn in_flight(def: &Arc<WorkflowDef>) -> taskweave::workflow::Checkpoint<String> {
    let mut run = WorkflowRun::new(Arc::clone(def), WorkflowId::new(41), None, T0);
    let _started = run.poll_action();
    run.checkpoint()
}

#[test]
fn a_resumed_run_hands_its_running_attempts_out_again() {
    let v1 = order(1, "pick");
    let straight = {
        let mut host = engine_with(&[(1, &["work"])]);
        host.machine.engine.register(Arc::clone(&v1)).unwrap();
        let checkpoint = in_flight(&v1);
        assert_eq!(
            host.resume(checkpoint).unwrap(),
            Resumed::Running(WorkflowId::new(41))
        );
        drive(&mut host, |_, _, _| Ok(StepOutput::new("ok".into())))
    };
    assert_eq!(straight.0, ["run pick on agent-1", "local done"]);
    assert_eq!(straight.1.len(), 1);
    assert_eq!(straight.1[0].1, RunOutcome::Succeeded);

    // Resuming twice is refused; so is a checkpoint of another format.
    let mut host = engine_with(&[(1, &["work"])]);
    host.machine.engine.register(Arc::clone(&v1)).unwrap();
    assert!(host.resume(in_flight(&v1)).is_ok());
    assert_eq!(
        host.resume(in_flight(&v1)),
        Err(EngineError::RunExists(WorkflowId::new(41)))
    );
    #[cfg(feature = "serde")]
    {
        let mut value = serde_json::to_value(in_flight(&v1)).unwrap();
        value["format"] = 99.into();
        value["state"]["id"] = 42.into();
        let other_format = serde_json::from_value(value).unwrap();
        assert!(matches!(
            host.resume(other_format),
            Err(EngineError::Run(
                taskweave::workflow::RunError::UnsupportedCheckpoint { found: 99, .. }
            ))
        ));
    }
    // New runs do not take a resumed run's id.
    let next = host.start(Arc::clone(&v1), None, T0);
    assert!(next.get() > 41, "{next}");
}

#[cfg(feature = "serde")]
#[test]
fn a_migrated_checkpoint_resumes_on_a_fresh_engine_as_the_run_would_have_gone() {
    let (v1, v2) = (order(1, "pick"), order(2, "pick"));
    // v2 checks the pick before it is done.
    let v2 = Arc::new(
        WorkflowDef::builder("order", v2.version())
            .step(StepDef::agent("pick").capabilities(["work"]))
            .step(StepDef::local("check"))
            .step(StepDef::local("done"))
            .edge("pick", "check")
            .edge("check", "done")
            .build()
            .unwrap(),
    );
    let diff = WorkflowDef::diff(&v1, &v2);
    // Uninterrupted: the run moves in place and goes on.
    let mut moved = WorkflowRun::<String>::new(Arc::clone(&v1), WorkflowId::new(41), None, T0);
    moved.migrate(Arc::clone(&v2), &diff.migration()).unwrap();
    let mut steps = Vec::new();
    while let Some(action) = moved.poll_action() {
        if let taskweave::workflow::RunAction::Start { step, token, .. } = action {
            steps.push(v2.step(step).unwrap().id.clone());
            moved
                .succeed(token, StepOutput::new("ok".into()), T0)
                .unwrap();
        }
    }
    // Interrupted: checkpointed, migrated, stored, resumed on a fresh
    // engine that knows only v2.
    let stored = serde_json::to_string(&diff.migrate(in_flight(&v1)).unwrap()).unwrap();
    let mut host = engine_with(&[(1, &["work"])]);
    host.machine.engine.register(Arc::clone(&v2)).unwrap();
    let resumed = host.resume(serde_json::from_str(&stored).unwrap()).unwrap();
    assert_eq!(resumed, Resumed::Running(WorkflowId::new(41)));
    let (log, finished) = drive(&mut host, |_, _, _| Ok(StepOutput::new("ok".into())));
    let started: Vec<String> = log
        .iter()
        .map(|line| line.split(' ').nth(1).unwrap().to_owned())
        .collect();
    assert_eq!(started, steps);
    assert_eq!(started, ["pick", "check", "done"]);
    assert_eq!(finished[0].1, RunOutcome::Succeeded);
}

/// `pick -> check -> done`: v2 of [`order`] checks the pick before it
/// is done (and declares `check` first).
#[cfg(feature = "serde")]
fn checked_order() -> Arc<WorkflowDef> {
    Arc::new(
        WorkflowDef::builder("order", 2)
            .step(StepDef::local("check"))
            .step(StepDef::agent("pick").capabilities(["work"]))
            .step(StepDef::local("done"))
            .chain(["pick", "check", "done"])
            .build()
            .unwrap(),
    )
}

impl Host {
    fn migrate(&mut self, run: WorkflowId, version: u32) -> Result<(), EngineError> {
        let EngineOnPool { engine, pool } = &mut self.machine;
        engine.migrate(pool, run, version, self.now).map(|_| ())
    }
}

#[cfg(feature = "serde")]
#[test]
fn an_engine_moves_a_live_run_in_place_and_its_checkpoint_resumes_alike() {
    let (v1, v2) = (order(1, "pick"), checked_order());
    let mut host = engine_with(&[(1, &["work"])]);
    host.machine.engine.register(Arc::clone(&v1)).unwrap();
    host.machine.engine.register(Arc::clone(&v2)).unwrap();
    let run = host.start_version(StartPolicy::Pinned(1)).unwrap();
    // The run moves before the pool hands `pick` out: the pool's task now
    // carries v2's `pick` (another id: v2 declares `check` first).
    assert_eq!(
        host.migrate(WorkflowId::new(999), 2),
        Err(EngineError::UnknownRun(WorkflowId::new(999)))
    );
    assert!(matches!(
        host.migrate(run, 7),
        Err(EngineError::UnknownVersion { version: 7, .. })
    ));
    host.migrate(run, 2).unwrap();
    assert_eq!(host.run(run).unwrap().definition().version(), 2);
    let keys: Vec<_> = host.machine.engine.live_runs("order").into_keys().collect();
    assert_eq!(keys, [(2, v2.content_hash())]);
    // Stored now and resumed on a fresh engine that knows only v2, the
    // run goes on as the one left in place.
    let stored = serde_json::to_string(&host.run(run).unwrap().checkpoint()).unwrap();
    let (in_place, finished) = drive(&mut host, |_, _, _| Ok(StepOutput::new("ok".into())));
    assert_eq!(
        in_place,
        ["run pick on agent-1", "local check", "local done"]
    );
    assert_eq!(finished[0].1, RunOutcome::Succeeded);
    let mut fresh = engine_with(&[(1, &["work"])]);
    fresh.machine.engine.register(Arc::clone(&v2)).unwrap();
    let resumed = fresh.resume(serde_json::from_str(&stored).unwrap());
    assert_eq!(resumed, Ok(Resumed::Running(run)));
    let (again, finished) = drive(&mut fresh, |_, _, _| Ok(StepOutput::new("ok".into())));
    assert_eq!(again, in_place);
    assert_eq!(finished[0].1, RunOutcome::Succeeded);

    // Once `pick` completed under v1, `done` is reached, and v2 rewired
    // it: the engine refuses, and the run goes on under v1.
    let run = host.start_version(StartPolicy::Pinned(1)).unwrap();
    let Some(EngineAction::Assign {
        task, agent, token, ..
    }) = host.poll_action()
    else {
        panic!("pick is assigned")
    };
    host.report(task, agent, token, Ok(StepOutput::new("ok".into())), T0)
        .unwrap();
    assert!(matches!(
        host.migrate(run, 2),
        Err(EngineError::Migration(
            taskweave::workflow::MigrationError::StepReached { .. }
        ))
    ));
    let (log, _) = drive(&mut host, |_, _, _| Ok(StepOutput::new("ok".into())));
    assert_eq!(log, ["local done"]);
}

#[test]
fn run_ids_never_collide_even_after_a_resumed_run_took_the_last_one() {
    let v1 = order(1, "pick");
    let mut host = engine_with(&[(1, &["work"])]);
    host.machine.engine.register(Arc::clone(&v1)).unwrap();
    let last = WorkflowId::new(u64::MAX);
    let checkpoint = WorkflowRun::<String>::new(Arc::clone(&v1), last, None, T0).checkpoint();
    assert_eq!(host.resume(checkpoint), Ok(Resumed::Running(last)));
    // New runs wrap around to the ids after 0, never the one taken.
    let a = host.start(Arc::clone(&v1), None, T0);
    let b = host.start(Arc::clone(&v1), None, T0);
    assert_eq!((a, b), (WorkflowId::new(1), WorkflowId::new(2)));
    assert_eq!(host.active_runs(), 3);
    // A host-chosen id is refused while its run is on the engine.
    let EngineOnPool { engine, pool } = &mut host.machine;
    assert_eq!(
        engine.start_as(pool, Arc::clone(&v1), a, None, T0),
        Started::Active(a)
    );
    let chosen = WorkflowId::new(3);
    assert_eq!(
        engine.start_as(pool, Arc::clone(&v1), chosen, None, T0),
        Started::New(chosen)
    );
    assert_eq!(host.start(Arc::clone(&v1), None, T0), WorkflowId::new(4));
    let (_, finished) = drive(&mut host, |_, _, _| Ok(StepOutput::new("ok".into())));
    assert_eq!(finished.len(), 5);
}

#[test]
fn a_run_no_definition_serves_is_parked_with_one_event_for_a_whole_day() {
    let v1 = order(1, "pick");
    let mut host = engine_with(&[(1, &["work"])]);
    let events = recorded(&mut host);
    host.machine.engine.register(order(2, "pack")).unwrap();
    let parked = host.resume(in_flight(&v1)).unwrap();
    assert_eq!(parked, Resumed::Parked(WorkflowId::new(41)));

    // 24 simulated hours, woken every second, asking for parked runs to
    // resume each time: nothing runs, nothing is retried, one event.
    for second in 1..=24 * 60 * 60 {
        host.at(Instant::from_secs(second));
        let now = host.now;
        host.machine.handle_timeout(now);
        assert!(host.resume_parked().is_empty());
        assert!(host.poll_action().is_none());
    }
    assert_eq!(host.machine.engine.parked_runs(), 1);
    assert_eq!(host.machine.engine.unservable_runs(), [WorkflowId::new(41)]);
    assert_eq!(host.machine.engine.poll_timeout(), None);
    assert_eq!(host.dispatcher().live_tasks(), 0);
    assert_eq!(
        *events.lock().unwrap(),
        [WorkflowEvent::RunParked {
            run: WorkflowId::new(41),
            name: "order".into(),
            version: 1,
            hash: v1.content_hash(),
        }]
    );

    // Its definition comes back: the run goes on where it stood.
    host.machine.engine.register(Arc::clone(&v1)).unwrap();
    assert!(host.machine.engine.unservable_runs().is_empty());
    assert_eq!(host.resume_parked(), [WorkflowId::new(41)]);
    let (log, finished) = drive(&mut host, |_, _, _| Ok(StepOutput::new("ok".into())));
    assert_eq!(log, ["run pick on agent-1", "local done"]);
    assert_eq!(finished[0].1, RunOutcome::Succeeded);
    assert_eq!(host.machine.engine.parked_runs(), 0);
}

#[test]
fn a_run_no_definition_serves_can_be_rejected_or_failed_instead() {
    let v1 = order(1, "pick");
    let mut host = engine_with(&[(1, &["work"])]);
    host.machine
        .engine
        .set_mismatch_policy(MismatchPolicy::Reject);
    let refused = host.resume(in_flight(&v1)).unwrap_err();
    assert!(matches!(
        refused,
        EngineError::Unservable { version: 1, .. }
    ));
    assert!(
        refused.to_string().contains("register that version"),
        "{refused}"
    );
    assert_eq!(host.machine.engine.parked_runs(), 0);

    let events = recorded(&mut host);
    host.machine
        .engine
        .set_mismatch_policy(MismatchPolicy::Fail);
    assert_eq!(
        host.resume(in_flight(&v1)).unwrap(),
        Resumed::Failed(WorkflowId::new(41))
    );
    let cause = FailureCause::Unservable {
        name: "order".into(),
        version: 1,
        hash: v1.content_hash(),
    };
    match host.poll_action() {
        Some(EngineAction::Finished {
            run,
            outcome,
            output,
        }) => {
            assert_eq!(run, WorkflowId::new(41));
            assert_eq!(outcome, RunOutcome::Failed(cause.clone()));
            assert_eq!(output, None);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(host.poll_action(), None);
    assert_eq!(
        *events.lock().unwrap(),
        [WorkflowEvent::RunFailed {
            run: WorkflowId::new(41),
            cause
        }]
    );
    assert_eq!(host.active_runs(), 0);
}

/// A run id is an idempotency key while the engine remembers the run's
/// end; a signal or a cancel for a finished run says so; the record is
/// bounded by count and by age, and an id it forgot is free again.
#[test]
fn finished_runs_are_remembered_within_the_retention_and_no_longer() {
    use taskweave::workflow::{FinishedRun, RunRetention};

    let def = Arc::new(
        WorkflowDef::builder("one", 1)
            .step(StepDef::local("only"))
            .build()
            .unwrap(),
    );
    let mut pool: Dispatcher<StepTask> = Dispatcher::new(DispatcherConfig::default());
    let mut engine: WorkflowEngine<String> = WorkflowEngine::new();
    engine.set_retention(RunRetention::new(2, Duration::from_secs(60)).unwrap());
    let finish = |engine: &mut WorkflowEngine<String>, pool: &mut Dispatcher<StepTask>, now| {
        while let Some(action) = engine.poll_action() {
            if let EngineAction::RunLocal { run, token, .. } = action {
                let output = Ok(StepOutput::new(format!("{run}")));
                engine.report_local(pool, run, token, output, now).unwrap();
            }
        }
    };
    let t = |secs| Instant::from_secs(secs);
    for n in 1..=3 {
        let id = WorkflowId::new(n);
        let started = engine.start_as(&mut pool, Arc::clone(&def), id, None, t(n));
        assert_eq!(started, Started::New(id));
        finish(&mut engine, &mut pool, t(n));
    }
    // Two kept, the oldest forgotten.
    assert_eq!(engine.finished_runs(), 2);
    assert_eq!(engine.finished_run(WorkflowId::new(1)), None);
    let listed = |engine: &WorkflowEngine<String>| {
        engine
            .remembered_ends()
            .map(|f| f.run.get())
            .collect::<Vec<_>>()
    };
    assert_eq!(listed(&engine), [2, 3]);
    let kept = FinishedRun {
        run: WorkflowId::new(3),
        workflow: def.name().to_string(),
        version: def.version(),
        outcome: RunOutcome::Succeeded,
        output: Some("workflow-3".to_string()),
        at: t(3),
    };
    assert_eq!(engine.finished_run(WorkflowId::new(3)), Some(&kept));
    let again = engine.start_as(&mut pool, Arc::clone(&def), WorkflowId::new(3), None, t(4));
    assert_eq!(again, Started::Finished(kept));
    assert_eq!(engine.active_runs(), 0);
    // Late input to a finished run gets a verdict that says so.
    assert_eq!(
        engine.signal(&mut pool, WorkflowId::new(3), "go", None, t(4)),
        Err(EngineError::RunFinished {
            run: WorkflowId::new(3),
            outcome: RunOutcome::Succeeded
        })
    );
    assert!(matches!(
        engine.cancel(&mut pool, WorkflowId::new(2), t(4)),
        Err(EngineError::RunFinished { .. })
    ));
    assert_eq!(
        engine.cancel(&mut pool, WorkflowId::new(9), t(4)),
        Err(EngineError::UnknownRun(WorkflowId::new(9)))
    );
    // A checkpoint of a finished run is not resumed: it would run twice.
    let stale = WorkflowRun::<String>::new(Arc::clone(&def), WorkflowId::new(3), None, t(3));
    assert_eq!(
        engine.resume(&mut pool, stale.checkpoint(), t(4)),
        Err(EngineError::RunExists(WorkflowId::new(3)))
    );
    // A minute after its end, the run is forgotten and its id free.
    assert_eq!(
        engine.cancel(&mut pool, WorkflowId::new(3), t(63)),
        Err(EngineError::UnknownRun(WorkflowId::new(3)))
    );
    let reused = engine.start_as(&mut pool, Arc::clone(&def), WorkflowId::new(3), None, t(64));
    assert_eq!(reused, Started::New(WorkflowId::new(3)));
    assert_eq!(listed(&engine), [] as [u64; 0]);
    assert_eq!(engine.finished_runs(), 0);
    // Fresh ids skip the remembered ones: 1 ended, so the next is 2.
    finish(&mut engine, &mut pool, t(64));
    let one = engine.start_as(&mut pool, Arc::clone(&def), WorkflowId::new(1), None, t(64));
    assert!(one.is_new());
    finish(&mut engine, &mut pool, t(64));
    let fresh = engine.start(&mut pool, Arc::clone(&def), None, t(65));
    assert_eq!(fresh, WorkflowId::new(2));
    // Remembering nothing frees an id as soon as its run ends.
    engine.set_retention(RunRetention::none());
    assert_eq!(engine.finished_runs(), 0);
}

/// A run cancelled while the pool has given its step up (its dead letter
/// filed, its action not yet handed to the engine): the engine takes the
/// letter and swallows the action, which never reaches the host.
#[test]
fn a_cancel_racing_the_pools_give_up_keeps_the_steps_action_from_the_host() {
    let config = DispatcherConfig::builder()
        .unroutable_timeout(Duration::from_millis(10))
        .build()
        .unwrap();
    let mut pool: Dispatcher<StepTask> = Dispatcher::new(config);
    let profile = taskweave::agent::AgentProfile::builder().build().unwrap();
    pool.register_agent(AgentId::new(1), profile, T0).unwrap();
    let def = Arc::new(
        WorkflowDef::builder("train", 1)
            .step(StepDef::agent("fit").capabilities(["gpu"]))
            .build()
            .unwrap(),
    );
    let mut engine: WorkflowEngine<String> = WorkflowEngine::new();
    let run = engine.start(&mut pool, def, None, T0);
    let at = Instant::from_millis(10);
    pool.handle_timeout(at);
    engine.cancel(&mut pool, run, at).unwrap();
    let mut handed_back = Vec::new();
    while let Some(action) = pool.poll_action() {
        handed_back.extend(engine.handle_action(&mut pool, action));
    }
    assert!(handed_back.is_empty(), "{handed_back:?}");
    assert_eq!(pool.dead_letters().len(), 0);
    assert!(!engine.owns(taskweave::TaskId::new(0)));
    while let Some(action) = engine.poll_action() {
        if let EngineAction::Finished { outcome, .. } = action {
            assert!(matches!(outcome, RunOutcome::Failed(_)), "{outcome:?}");
        }
    }
}
