//! A schedule's fire, seen twice, starts one run on the workflow engine:
//! the host restores its schedules from a state stored before a fire and
//! replays the journaled wake, the schedules ask for the same run again,
//! and `WorkflowEngine::start_as` refuses its id while the first run is on
//! the engine, and after it ended (the engine remembers finished runs).

#![cfg(all(feature = "schedule", feature = "workflow", feature = "serde"))]

use std::sync::Arc;
use std::time::Duration;

use taskweave::schedule::{
    OverlapPolicy, RunKey, ScheduleAction, ScheduleInput, ScheduleSpec, Schedules,
};
use taskweave::scheduler::{Action, Dispatcher, DispatcherConfig};
use taskweave::workflow::{
    EngineAction, Started, StepDef, StepOutput, StepTask, WorkflowDef, WorkflowEngine,
};
use taskweave::{AgentId, Instant};

type Pool = Dispatcher<StepTask>;

/// Starts the run of every `Start` the schedules ask for, under its key's
/// id: the keys whose run started, and those the engine refused as already
/// on it.
fn start_runs(
    schedules: &mut Schedules,
    engine: &mut WorkflowEngine<String>,
    pool: &mut Pool,
    def: &Arc<WorkflowDef>,
    now: Instant,
) -> (Vec<RunKey>, Vec<RunKey>) {
    let (mut started, mut refused) = (Vec::new(), Vec::new());
    while let Some(action) = schedules.poll_action() {
        let ScheduleAction::Start { key, .. } = action else {
            panic!("only starts are asked for: {action:?}");
        };
        let start = engine.start_as(pool, Arc::clone(def), key.workflow_id(), None, now);
        assert_eq!(start.id(), key.workflow_id());
        match start {
            Started::New(_) => started.push(key),
            Started::Active(_) | Started::Finished(_) => refused.push(key),
        }
    }
    (started, refused)
}

/// Runs every step the engine hands out on `agent`, to the end of the
/// run; the end of each run finished.
fn finish_runs(
    engine: &mut WorkflowEngine<String>,
    pool: &mut Pool,
    agent: AgentId,
    now: Instant,
) -> usize {
    let mut finished = 0;
    loop {
        if let Some(action) = pool.poll_action() {
            let kept = engine.handle_action(pool, action);
            assert!(
                kept.is_none() || matches!(kept, Some(Action::AgentLost { .. })),
                "{kept:?}"
            );
            continue;
        }
        match engine.poll_action() {
            Some(EngineAction::Assign {
                task,
                agent: to,
                token,
                ..
            }) => {
                assert_eq!(to, agent);
                let output = Ok(StepOutput::new("written".to_string()));
                engine
                    .report(pool, task, to, token, output, now)
                    .expect("the report is taken");
            }
            Some(EngineAction::Finished { .. }) => finished += 1,
            Some(other) => panic!("{other:?}"),
            None => return finished,
        }
    }
}

#[test]
fn a_fire_replayed_after_a_restart_starts_one_run() {
    let def = Arc::new(
        WorkflowDef::builder("nightly-report", 1)
            .step(StepDef::agent("write"))
            .build()
            .unwrap(),
    );
    let mut pool: Pool = Dispatcher::new(DispatcherConfig::default());
    let agent = AgentId::new(1);
    let profile = taskweave::agent::AgentProfile::builder().build().unwrap();
    pool.register_agent(agent, profile, Instant::ZERO).unwrap();
    let mut engine: WorkflowEngine<String> = WorkflowEngine::new();

    // AllowAll: the schedules alone would start a second run of the same
    // fire if they did not know of the first.
    let hourly = ScheduleSpec::every(Duration::from_secs(3_600))
        .overlap(OverlapPolicy::AllowAll)
        .build()
        .unwrap();
    let mut schedules = Schedules::new(7);
    schedules
        .apply(ScheduleInput::Add {
            id: "nightly".into(),
            spec: hourly,
            now: Instant::ZERO,
        })
        .unwrap();
    let stored = serde_json::to_string(&schedules).unwrap();

    // The fire at one hour: journaled, applied, its run started.
    let fire = Instant::from_secs(3_600);
    let wake = ScheduleInput::Timeout { now: fire };
    schedules.apply(wake.clone()).unwrap();
    let (started, refused) = start_runs(&mut schedules, &mut engine, &mut pool, &def, fire);
    assert_eq!((started.len(), refused.len()), (1, 0));
    let key = started[0].clone();
    assert_eq!(key.fire, fire);

    // The host restarts: its schedules come back from the state stored
    // before the fire, and the journal's wake is applied again. The
    // schedules ask for the same run; the engine still has it.
    let mut schedules: Schedules = serde_json::from_str(&stored).unwrap();
    schedules.apply(wake).unwrap();
    let (started, refused) = start_runs(&mut schedules, &mut engine, &mut pool, &def, fire);
    assert!(started.is_empty(), "a second run of one fire: {started:?}");
    assert_eq!(refused, std::slice::from_ref(&key));
    assert_eq!(engine.active_runs(), 1);

    // The one run ends, once; the next fire starts a run of its own.
    assert_eq!(finish_runs(&mut engine, &mut pool, agent, fire), 1);

    // The fire replayed once more, after its run ended: the engine
    // remembers the end (RunRetention) and starts nothing.
    let mut replayed: Schedules = serde_json::from_str(&stored).unwrap();
    replayed
        .apply(ScheduleInput::Timeout { now: fire })
        .unwrap();
    let (started, refused) = start_runs(&mut replayed, &mut engine, &mut pool, &def, fire);
    assert!(started.is_empty(), "a finished fire ran again: {started:?}");
    assert_eq!(refused, std::slice::from_ref(&key));
    assert_eq!(
        engine.finished_run(key.workflow_id()).map(|f| f.at),
        Some(fire)
    );

    schedules.run_ended(&key, fire).unwrap();
    assert!(schedules.running("nightly").is_empty());
    let next = Instant::from_secs(7_200);
    schedules
        .apply(ScheduleInput::Timeout { now: next })
        .unwrap();
    let (started, refused) = start_runs(&mut schedules, &mut engine, &mut pool, &def, next);
    assert_eq!((started.len(), refused.len()), (1, 0));
    assert_ne!(started[0].workflow_id(), key.workflow_id());
    assert_eq!(finish_runs(&mut engine, &mut pool, agent, next), 1);
}
