//! The replica's restores: a tenant's live step task stays the tenant's,
//! a state whose tenant runs the engine forgot restores, and every state
//! a sequence of hosted-run commands leads to (of two tenants and of
//! none, with time jumping past the engine's retention) restores to
//! itself; ids skipped past any values keep every new id fresh.

use proptest::prelude::*;

use super::*;
use crate::TenantId;
use crate::cluster::contract::RunCommand;
use crate::workflow::{StepDef, WorkflowDef, WorkflowDefBuilder};

fn codec() -> RunCodec<String> {
    RunCodec::new(String::new(), |_, _, _| "ship".to_string())
}

fn run(command: RunCommand<String>, tenant: Option<TenantId>) -> Entry<String> {
    Entry::Run {
        command,
        tenant,
        now: Instant::from_secs(1),
    }
}

fn start(id: u64) -> RunCommand<String> {
    RunCommand::Start {
        workflow: "ship".into(),
        version: None,
        id: Some(WorkflowId::new(id)),
        input: None,
    }
}

/// A replica that hosts runs, `def` registered, and its configuration.
fn hosting(def: WorkflowDefBuilder) -> (DispatcherConfig, Replica<String>) {
    let config = DispatcherConfig::builder().build().expect("a config");
    let mut replica = Replica::empty(config.clone(), Some(codec()));
    let def = def.build().expect("a definition");
    let registered = replica.apply(run(RunCommand::Register(Box::new(def)), None));
    assert!(registered.result.is_ok(), "the definition registers");
    (config, replica)
}

/// The step task run `id` submitted.
fn step_of(replica: &Replica<String>, id: u64) -> TaskId {
    let engine = replica.engine().expect("runs hosted");
    let mut steps = engine.step_tasks();
    let found = steps.find(|(_, step)| step.run == WorkflowId::new(id));
    found.expect("a step task").0
}

/// Starts a run without an id: the id it took.
fn fresh_run(replica: &mut Replica<String>) -> WorkflowId {
    let mut command = start(0);
    if let RunCommand::Start { id, .. } = &mut command {
        *id = None;
    }
    match replica.apply(run(command, None)).result {
        Ok(Effect::Run(id)) => id,
        Ok(_) => panic!("the start named no run"),
        Err(e) => panic!("{e}"),
    }
}

/// Every run id and step task id the replica holds.
fn ids(replica: &Replica<String>) -> (Vec<WorkflowId>, Vec<TaskId>) {
    let engine = replica.engine().expect("runs hosted");
    engine
        .step_tasks()
        .map(|(task, step)| (step.run, task))
        .unzip()
}

/// A state put back to an earlier one (a database restored from a
/// backup) that journals the later state's `SkipIds` gives no run and no
/// step task an id the later state gave, and a snapshot keeps that.
#[test]
fn skipped_ids_are_never_handed_out_again() {
    let (config, mut later) = hosting(WorkflowDef::builder("ship", 1).step(StepDef::agent("ship")));
    let _ = fresh_run(&mut later);
    let restore = |replica: &Replica<String>| {
        let seq = replica.next_seq - 1;
        Replica::restore(config.clone(), Some(codec()), seq, replica.state()).expect("restores")
    };
    let mut earlier = restore(&later);
    assert!(later.apply(run(start(50), None)).result.is_ok());
    for _ in 0..3 {
        let _ = fresh_run(&mut later);
    }
    let (later_runs, later_tasks) = ids(&later);
    let (kept_runs, kept_tasks) = ids(&earlier);
    let mut unskipped = restore(&earlier);
    let reused = fresh_run(&mut unskipped);
    assert!(
        later_runs.contains(&reused),
        "the test needs an id to reuse"
    );
    let skip = later.issued().entry(Instant::from_secs(2));
    assert!(earlier.apply(skip).result.is_ok());
    let mut earlier = restore(&earlier);
    for _ in 0..60 {
        let _ = fresh_run(&mut earlier);
    }
    let (runs, tasks) = ids(&earlier);
    let new_runs = runs.iter().filter(|run| !kept_runs.contains(run));
    let new_tasks = tasks.iter().filter(|task| !kept_tasks.contains(task));
    assert_eq!(new_runs.clone().count(), 60);
    assert!(new_runs.clone().all(|run| !later_runs.contains(run)));
    assert!(new_tasks.clone().all(|task| !later_tasks.contains(task)));
    assert!(new_runs.clone().all(|run| run.get() > 50));
}

#[test]
fn a_tenants_live_step_task_is_the_tenants_after_a_restore() {
    let acme = TenantId::new(1);
    let (config, mut replica) =
        hosting(WorkflowDef::builder("ship", 1).step(StepDef::agent("ship")));
    let entries = [run(start(1), Some(acme)), run(start(2), None)];
    for entry in entries {
        assert!(replica.apply(entry).result.is_ok());
    }
    let (acmes, plain) = (step_of(&replica, 1), step_of(&replica, 2));
    assert_eq!(replica.tenants.get(acmes), Some(acme));
    assert_eq!(replica.tenants.get(plain), None);
    let seq = replica.next_seq - 1;
    let restored =
        Replica::restore(config, Some(codec()), seq, replica.state()).expect("the state restores");
    assert_eq!(restored.tenants.get(acmes), Some(acme));
    assert_eq!(restored.tenants.get(plain), None);
}

#[test]
fn a_state_whose_tenant_runs_the_engine_forgot_restores() {
    let acme = TenantId::new(1);
    let (config, mut replica) =
        hosting(WorkflowDef::builder("ship", 1).step(StepDef::agent("ship")));
    let cancel = Entry::Run {
        command: RunCommand::Cancel(WorkflowId::new(1)),
        tenant: Some(acme),
        now: Instant::from_secs(2),
    };
    // A day and more later, the engine no longer remembers the run.
    let later = Entry::RunTimers {
        now: Instant::from_secs(2 + 25 * 60 * 60),
    };
    let entries = [run(start(1), Some(acme)), cancel, later];
    for entry in entries {
        assert!(replica.apply(entry).result.is_ok());
    }
    let engine = replica.engine().expect("runs hosted");
    assert!(
        engine.finished_run(WorkflowId::new(1)).is_none(),
        "forgotten"
    );
    let seq = replica.next_seq - 1;
    let restored = Replica::restore(config, Some(codec()), seq, replica.state());
    assert!(restored.is_ok(), "{:?}", restored.err());
}

/// One entry of the property: a run command for a tenant (or none), or
/// time passing.
fn any_entry() -> impl Strategy<Value = (Option<RunCommand<String>>, Option<u64>, u64)> {
    let id = (1u64..6).prop_map(WorkflowId::new);
    let command = prop_oneof![
        id.clone().prop_map(|id| start(id.get())),
        id.clone().prop_map(RunCommand::Cancel),
        id.prop_map(|run| RunCommand::Signal {
            run,
            name: "go".into(),
            payload: None,
        }),
    ];
    // Seconds to move on: mostly small, sometimes past a day.
    let after = prop_oneof![4 => 0u64..5, 1 => Just(25 * 60 * 60)];
    (
        proptest::option::weighted(0.8, command),
        proptest::option::of(1u64..=2),
        after,
    )
}

/// The state `replica` snapshots restores, and to itself.
fn restores_to_itself(
    config: &DispatcherConfig,
    replica: &Replica<String>,
) -> Result<(), TestCaseError> {
    let seq = replica.next_seq - 1;
    let state = serde_json::to_value(replica.state()).expect("a state serializes");
    let restored = Replica::restore(config.clone(), Some(codec()), seq, replica.state());
    let restored = restored.map_err(TestCaseError::fail)?;
    let again = serde_json::to_value(restored.state()).expect("a state serializes");
    prop_assert_eq!(again, state);
    Ok(())
}

/// One step of the skip property: a run started without an id or with
/// one, ids skipped past any values, a cancel, or the timers.
#[derive(Clone, Debug)]
enum SkipOp {
    Fresh,
    Start(u64),
    Skip { tasks: u32, runs: u64 },
    Cancel(u64),
    Timers,
}

/// 0, 1, `max`, one below it, or a small number.
fn extreme(max: u64) -> impl Strategy<Value = u64> {
    prop_oneof![Just(0), Just(1), Just(max), Just(max - 1), 2u64..100]
}

fn any_skip_op() -> impl Strategy<Value = SkipOp> {
    let tasks = extreme(u32::MAX.into()).prop_map(|v| u32::try_from(v).unwrap_or(u32::MAX));
    let runs = extreme(u64::MAX);
    prop_oneof![
        3 => Just(SkipOp::Fresh),
        1 => (1u64..6).prop_map(SkipOp::Start),
        2 => (tasks, runs).prop_map(|(tasks, runs)| SkipOp::Skip { tasks, runs }),
        1 => (1u64..100).prop_map(SkipOp::Cancel),
        1 => Just(SkipOp::Timers),
    ]
}

/// Whether `id` is past `floor`, or the floor so near the end that the
/// ids after it may have wrapped around.
fn at_or_past(id: u64, floor: u64, end: u64) -> bool {
    id >= floor || floor > end - 64
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(64)
    ))]

    /// Whatever a leader's runs went through, the state it snapshots
    /// restores, and to itself.
    #[test]
    fn every_state_of_tenants_runs_restores_to_itself(
        entries in proptest::collection::vec(any_entry(), 1..40),
    ) {
        let (config, mut replica) = hosting(
            WorkflowDef::builder("ship", 1)
                .step(StepDef::wait("gate", ["go"]))
                .step(StepDef::agent("ship"))
                .edge("gate", "ship"),
        );
        let mut now = Instant::from_secs(1);
        for (command, tenant, after) in entries {
            now = now.saturating_add(std::time::Duration::from_secs(after));
            let entry = match command {
                Some(command) => Entry::Run { command, tenant: tenant.map(TenantId::new), now },
                None => Entry::RunTimers { now },
            };
            let _ = replica.apply(entry);
            restores_to_itself(&config, &replica)?;
        }
    }

    /// `SkipIds` with any values (a journal is untrusted) changes no run
    /// and no task it holds: no panic, every state restores to itself, and
    /// a run started without an id takes one no run holds, at or past the
    /// highest run floor, with a step task at or past the highest task
    /// floor (unless a floor sits so near the end that ids wrapped).
    #[test]
    fn skipped_ids_of_any_value_keep_every_id_fresh(
        ops in proptest::collection::vec(any_skip_op(), 1..40),
    ) {
        let (config, mut replica) =
            hosting(WorkflowDef::builder("ship", 1).step(StepDef::agent("ship")));
        let (mut task_floor, mut run_floor) = (0u32, 0u64);
        for op in ops {
            let now = Instant::from_secs(1);
            let entry = match op {
                SkipOp::Fresh => {
                    let (held, _) = ids(&replica);
                    let id = fresh_run(&mut replica);
                    let engine = replica.engine().expect("runs hosted");
                    prop_assert!(!held.contains(&id), "{id} was live");
                    prop_assert!(at_or_past(id.get(), run_floor, u64::MAX), "{id} below {run_floor}");
                    let step = step_of(&replica, id.get()).get() >> 32;
                    prop_assert!(at_or_past(step, task_floor.into(), u32::MAX.into()), "step below {task_floor}");
                    prop_assert!(engine.finished_run(id).is_none(), "{id} is also a finished run");
                    None
                }
                SkipOp::Start(id) => Some(run(start(id), None)),
                SkipOp::Skip { tasks, runs } => {
                    task_floor = task_floor.max(tasks);
                    run_floor = run_floor.max(runs);
                    Some(Entry::SkipIds { tasks, runs, now })
                }
                SkipOp::Cancel(id) => Some(run(RunCommand::Cancel(WorkflowId::new(id)), None)),
                SkipOp::Timers => Some(Entry::RunTimers { now }),
            };
            if let Some(entry) = entry {
                let _ = replica.apply(entry);
            }
            restores_to_itself(&config, &replica)?;
        }
    }
}
