//! Every state a workflow engine and its pool reach by themselves restores,
//! and the restored pair goes on exactly as the original.
//!
//! Random sequences of starts (fresh and under chosen ids), agent reports
//! (successes and failures, of steps and compensations), in-process
//! results, signals, cancels, heartbeats and time jumps drive two worlds
//! with the same inputs. One of them, at random moments, is replaced by
//! the engine and pool restored from their snapshots written to JSON and
//! read back. After every input both worlds must have handed out the same
//! actions and hold the same state (their snapshots are equal).
//!
//! A second property corrupts engine snapshots: each is refused with a
//! typed error, or restores to an engine that keeps running safely.
//!
//! Case counts follow `PROPTEST_CASES` (default 64).

#![cfg(all(feature = "workflow", feature = "serde"))]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use serde_json::Value;
use taskweave::agent::AgentProfile;
use taskweave::resilience::{Fixed, RetrySpec};
use taskweave::routing::LeastLoaded;
use taskweave::scheduler::{Action, Dispatcher, DispatcherConfig};
use taskweave::workflow::{
    EngineAction, EngineSnapshot, RunRetention, StepDef, StepFailure, StepOutput, StepTask,
    WorkflowDef, WorkflowEngine,
};
use taskweave::{AgentId, AttemptToken, Instant, StepId, TaskId, WorkflowId};

mod corrupt;

const AGENTS: u64 = 2;

/// Pull limit meaning "every action".
const SETTLED: usize = 10_000;

fn retry(delay_ms: u64, attempts: u32) -> RetrySpec {
    RetrySpec::from(Fixed::new(Duration::from_millis(delay_ms), attempts).unwrap())
}

/// A saga of agent and in-process steps, a wait for a signal with a
/// timer, a parent with a sub-workflow, and a step that times out.
fn definitions() -> Vec<Arc<WorkflowDef>> {
    let saga = WorkflowDef::builder("saga", 1)
        .step(StepDef::agent("reserve").compensable().retry(retry(2, 3)))
        .step(StepDef::agent("charge").compensable().retry(retry(1, 2)))
        .step(StepDef::local("note").compensable())
        .step(StepDef::agent("ship"))
        .chain(["reserve", "charge", "note", "ship"])
        .build()
        .unwrap();
    let waits = WorkflowDef::builder("waits", 1)
        .step(StepDef::agent("ask"))
        .step(StepDef::wait("answer", ["go"]).timeout(Duration::from_millis(7)))
        .step(
            StepDef::agent("act")
                .timeout(Duration::from_millis(5))
                .retry(retry(0, 3)),
        )
        .chain(["ask", "answer", "act"])
        .build()
        .unwrap();
    let child = Arc::new(
        WorkflowDef::builder("child", 1)
            .step(StepDef::agent("inner").compensable())
            .step(StepDef::local("close"))
            .edge("inner", "close")
            .build()
            .unwrap(),
    );
    let parent = WorkflowDef::builder("parent", 1)
        .step(StepDef::agent("first").compensable())
        .step(StepDef::sub_workflow("nested", child))
        .step(StepDef::agent("last"))
        .chain(["first", "nested", "last"])
        .deadline(Duration::from_millis(40))
        .build()
        .unwrap();
    // A step no agent can take: the pool gives it up (unroutable), on
    // its own clock.
    let stuck = WorkflowDef::builder("stuck", 1)
        .step(
            StepDef::agent("train")
                .capabilities(["gpu"])
                .retry(retry(3, 2)),
        )
        .build()
        .unwrap();
    vec![
        Arc::new(saga),
        Arc::new(waits),
        Arc::new(parent),
        Arc::new(stuck),
    ]
}

/// A small queue (steps are refused, child runs end as they start) and a
/// limit on unroutable tasks (the pool gives steps up by itself).
fn pool_config() -> DispatcherConfig {
    DispatcherConfig::builder()
        .queue_capacity(2)
        .unroutable_timeout(Duration::from_millis(4))
        .build()
        .unwrap()
}

#[derive(Clone, Debug)]
enum Op {
    Start(usize),
    StartAs(usize, u64),
    Agent {
        pick: usize,
        ok: bool,
    },
    Local {
        pick: usize,
        ok: bool,
    },
    Signal(usize),
    Cancel(usize),
    Heartbeat,
    Tick(u64),
    /// The pool's clock alone moves (a host whose pool alone was due).
    TickPool(u64),
    Restore,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0usize..4).prop_map(Op::Start),
        1 => (0usize..4, 1u64..6).prop_map(|(d, id)| Op::StartAs(d, id)),
        6 => (any::<usize>(), proptest::bool::weighted(0.75))
            .prop_map(|(pick, ok)| Op::Agent { pick, ok }),
        3 => (any::<usize>(), proptest::bool::weighted(0.75))
            .prop_map(|(pick, ok)| Op::Local { pick, ok }),
        1 => any::<usize>().prop_map(Op::Signal),
        1 => any::<usize>().prop_map(Op::Cancel),
        2 => Just(Op::Heartbeat),
        3 => (0u64..12).prop_map(Op::Tick),
        1 => (0u64..12).prop_map(Op::TickPool),
        3 => Just(Op::Restore),
    ]
}

/// The host's side: what the engine asked of it and it has not done yet.
#[derive(Clone, Debug, Default)]
struct Host {
    now: Instant,
    /// Agent attempts handed out: task → (agent, token, compensation).
    assigned: BTreeMap<TaskId, (AgentId, AttemptToken, bool)>,
    /// In-process attempts: (run, token) → (step, compensation).
    local: BTreeMap<(WorkflowId, AttemptToken), (StepId, bool)>,
    /// Every run started.
    runs: Vec<WorkflowId>,
    /// Everything handed out, in order.
    trace: Vec<String>,
}

struct World {
    engine: WorkflowEngine<u64>,
    pool: Dispatcher<StepTask>,
    host: Host,
    /// The engine was restored from a corrupted snapshot: a task id
    /// changed in it makes the pool's task one the engine does not know,
    /// whose actions it hands to the host (it cannot tell without the
    /// pool), so the host takes them.
    corrupted: bool,
}

impl World {
    fn new() -> World {
        let mut pool = Dispatcher::new(pool_config());
        for a in 1..=AGENTS {
            let profile = AgentProfile::builder().capacity(2).build().unwrap();
            pool.register_agent(AgentId::new(a), profile, Instant::ZERO)
                .unwrap();
        }
        let mut engine = WorkflowEngine::new();
        engine.set_retention(RunRetention::new(3, Duration::from_millis(20)).unwrap());
        World {
            engine,
            pool,
            host: Host::default(),
            corrupted: false,
        }
    }

    /// Pulls up to `limit` actions of the pool (through the engine) and
    /// of the engine, and files them with the host.
    fn settle(&mut self, limit: usize) {
        for _ in 0..limit {
            if let Some(action) = self.pool.poll_action() {
                // The pool holds nothing but steps: only an agent's loss
                // is the host's.
                match self.engine.handle_action(&mut self.pool, action) {
                    None | Some(Action::AgentLost { .. }) => {}
                    Some(_) if self.corrupted => {}
                    Some(plain) => panic!("a step's action reached the host: {plain:?}"),
                }
                continue;
            }
            let Some(action) = self.engine.poll_action() else {
                return;
            };
            self.host.trace.push(format!("{action:?}"));
            let host = &mut self.host;
            match action {
                EngineAction::Assign {
                    task,
                    agent,
                    token,
                    step,
                } => {
                    host.assigned
                        .insert(task, (agent, token, step.compensation));
                }
                EngineAction::CancelAssigned { task, .. } => {
                    host.assigned.remove(&task);
                }
                EngineAction::RunLocal { run, step, token } => {
                    host.local.insert((run, token), (step, false));
                }
                EngineAction::CompensateLocal { run, step, token } => {
                    host.local.insert((run, token), (step, true));
                }
                EngineAction::CancelLocal { run, token, .. } => {
                    host.local.remove(&(run, token));
                }
                EngineAction::Expand { .. } => unreachable!("no multi-instance step"),
                EngineAction::Finished { .. } => {}
            }
        }
        assert!(limit < SETTLED, "the engine and pool did not settle");
    }

    /// Carries out `op`, then pulls `pull` actions: mostly all of them,
    /// now and then a few, so that snapshots hold actions not yet pulled
    /// and tasks the pool still owes an action about.
    fn apply(&mut self, &(ref op, pull): &(Op, u8), defs: &[Arc<WorkflowDef>]) {
        self.act(op, defs);
        self.settle(if pull < 64 {
            usize::from(pull % 4)
        } else {
            SETTLED
        });
    }

    fn act(&mut self, op: &Op, defs: &[Arc<WorkflowDef>]) {
        let now = self.host.now;
        let (engine, pool, host) = (&mut self.engine, &mut self.pool, &mut self.host);
        let run_at = |pick: usize| host.runs.get(pick % host.runs.len().max(1)).copied();
        match *op {
            Op::Start(d) => {
                let id = engine.start(pool, Arc::clone(&defs[d]), Some(d as u64), now);
                host.runs.push(id);
            }
            Op::StartAs(d, id) => {
                let started =
                    engine.start_as(pool, Arc::clone(&defs[d]), WorkflowId::new(id), None, now);
                host.trace.push(format!("{started:?}"));
                host.runs.push(started.id());
            }
            Op::Agent { pick, ok } => {
                let Some((&task, &(agent, token, compensation))) =
                    host.assigned.iter().nth(pick % host.assigned.len().max(1))
                else {
                    return;
                };
                host.assigned.remove(&task);
                let result = if ok {
                    Ok(StepOutput::new(task.get() * 10 + u64::from(compensation)))
                } else {
                    Err(StepFailure::retryable("refused"))
                };
                let report = engine.report(pool, task, agent, token, result, now);
                host.trace.push(format!("report {task}: {report:?}"));
            }
            Op::Local { pick, ok } => {
                let Some((&(run, token), &(_, compensation))) =
                    host.local.iter().nth(pick % host.local.len().max(1))
                else {
                    return;
                };
                host.local.remove(&(run, token));
                let result = if compensation {
                    engine.compensated(
                        pool,
                        run,
                        token,
                        if ok {
                            Ok(())
                        } else {
                            Err(StepFailure::fatal("no"))
                        },
                        now,
                    )
                } else if ok {
                    engine.report_local(pool, run, token, Ok(StepOutput::new(7)), now)
                } else {
                    engine.report_local(pool, run, token, Err(StepFailure::fatal("no")), now)
                };
                host.trace
                    .push(format!("local {run} {token:?}: {result:?}"));
            }
            Op::Signal(pick) => {
                if let Some(run) = run_at(pick) {
                    let signal = engine.signal(pool, run, "go", Some(3), now);
                    host.trace.push(format!("signal {run}: {signal:?}"));
                }
            }
            Op::Cancel(pick) => {
                if let Some(run) = run_at(pick) {
                    let cancel = engine.cancel(pool, run, now);
                    host.trace.push(format!("cancel {run}: {cancel:?}"));
                }
            }
            Op::Heartbeat => {
                for a in 1..=AGENTS {
                    let _ = pool.heartbeat(AgentId::new(a), now);
                }
            }
            Op::Tick(ms) => {
                let now = now.saturating_add(Duration::from_millis(ms));
                host.now = now;
                pool.handle_timeout(now);
                engine.handle_timeout(pool, now);
            }
            Op::TickPool(ms) => {
                let now = now.saturating_add(Duration::from_millis(ms));
                host.now = now;
                pool.handle_timeout(now);
            }
            Op::Restore => {}
        }
    }

    /// Both halves through JSON and back, as a standby would read them.
    fn restored(&self, defs: &[Arc<WorkflowDef>]) -> World {
        let pool_json = serde_json::to_string(&self.pool.snapshot()).unwrap();
        let engine_json = serde_json::to_string(&self.engine.snapshot()).unwrap();
        let pool = Dispatcher::restore(
            pool_config(),
            Box::new(LeastLoaded::new()) as Box<_>,
            serde_json::from_str(&pool_json).unwrap(),
        )
        .unwrap();
        let engine = WorkflowEngine::restore(
            serde_json::from_str(&engine_json).unwrap(),
            defs.iter().cloned(),
        )
        .unwrap_or_else(|e| panic!("a snapshot the engine took is refused: {e}"));
        World {
            engine,
            pool,
            host: self.host.clone(),
            corrupted: self.corrupted,
        }
    }

    fn state(&self) -> (Value, Value, usize, usize, usize) {
        (
            serde_json::to_value(self.engine.snapshot()).unwrap(),
            serde_json::to_value(self.pool.snapshot()).unwrap(),
            self.engine.live_tasks(),
            self.engine.active_runs(),
            self.engine.finished_runs(),
        )
    }
}

fn twins(ops: &[(Op, u8)]) -> Result<(), TestCaseError> {
    let defs = definitions();
    let (mut original, mut restored) = (World::new(), World::new());
    for (i, op) in ops.iter().enumerate() {
        if matches!(op.0, Op::Restore) {
            restored = restored.restored(&defs);
        }
        original.apply(op, &defs);
        restored.apply(op, &defs);
        prop_assert_eq!(
            &original.host.trace,
            &restored.host.trace,
            "the actions differ after input {} ({:?})",
            i,
            op
        );
        prop_assert!(
            original.state() == restored.state(),
            "the states differ after input {} ({:?})",
            i,
            op
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(corrupt::config(64))]

    /// Snapshot and restore at any moment: the restored engine and pool
    /// hand out the same actions and reach the same states.
    #[test]
    fn a_restored_engine_goes_on_as_the_original(ops in proptest::collection::vec((op(), any::<u8>()), 1..120)) {
        twins(&ops)?;
    }

    /// A corrupted engine snapshot is refused with a typed error, or the
    /// engine it restores keeps running without a panic or a hang.
    #[test]
    fn corrupted_engine_snapshots_are_refused_or_run_on_safely(
        ops in proptest::collection::vec((op(), any::<u8>()), 1..60),
        corruptions in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u64>(), any::<bool>()), 1..4),
        after in proptest::collection::vec((op(), any::<u8>()), 1..40),
    ) {
        corrupt::watchdog(60, move || {
            let defs = definitions();
            let mut world = World::new();
            for op in &ops {
                world.apply(op, &defs);
            }
            let mut value = serde_json::to_value(world.engine.snapshot()).unwrap();
            for (at, how, noise, array) in corruptions {
                corrupt_once(&mut value, at, how, noise, array);
            }
            let Ok(snapshot) = serde_json::from_value::<EngineSnapshot<u64>>(value) else {
                return;
            };
            match WorkflowEngine::restore(snapshot, defs.iter().cloned()) {
                Err(refused) => assert!(!refused.to_string().is_empty()),
                Ok(engine) => {
                    world.engine = engine;
                    world.corrupted = true;
                    for op in &after {
                        world.apply(op, &defs);
                    }
                }
            }
        });
    }
}

/// One corruption: a leaf changed, or an array element duplicated or
/// removed.
fn corrupt_once(value: &mut Value, at: usize, how: u8, noise: u64, array: bool) {
    if array {
        let arrays = corrupt::paths_where(value, corrupt::non_empty_array);
        if let Some(path) = arrays.get(at % arrays.len().max(1)) {
            if let Value::Array(items) = corrupt::at_path(value, path) {
                let i = (noise as usize) % items.len();
                if how % 2 == 0 {
                    let copy = items[i].clone();
                    items.push(copy);
                } else {
                    items.remove(i);
                }
            }
        }
        return;
    }
    let leaves = corrupt::paths_where(value, |v| v.is_number() || v.is_boolean());
    if let Some(path) = leaves.get(at % leaves.len().max(1)) {
        let leaf = corrupt::at_path(value, path);
        *leaf = corrupt::corrupt_leaf(leaf, how, noise);
    }
}

#[test]
fn a_snapshot_without_its_definitions_or_of_another_format_is_refused() {
    let defs = definitions();
    let mut world = World::new();
    world.apply(&(Op::Start(2), u8::MAX), &defs);
    let snapshot = world.engine.snapshot();
    assert_eq!(snapshot.active_runs(), 1);
    // The parent alone serves its nested child too; without it, a typed
    // error names what is missing.
    let missing = WorkflowEngine::restore(snapshot.clone(), defs[..2].iter().cloned())
        .unwrap_err()
        .to_string();
    assert!(missing.contains("`parent` v1"), "{missing}");
    let mut value = serde_json::to_value(&snapshot).unwrap();
    value["format"] = 99.into();
    let other: EngineSnapshot<u64> = serde_json::from_value(value).unwrap();
    let refused = WorkflowEngine::restore(other, defs.iter().cloned())
        .unwrap_err()
        .to_string();
    assert!(refused.contains("format 99"), "{refused}");
}

/// Corruptions that keep every id in range but leave a run stuck are
/// refused: a parent that lost its child run, a run made its own parent,
/// an open agent attempt without its task.
#[test]
fn snapshots_that_would_leave_a_run_stuck_are_refused() {
    let defs = definitions();
    let mut world = World::new();
    // The parent's first step done: its sub-workflow's child runs.
    world.apply(&(Op::Start(2), u8::MAX), &defs);
    world.apply(&(Op::Agent { pick: 0, ok: true }, u8::MAX), &defs);
    let taken = serde_json::to_value(world.engine.snapshot()).unwrap();
    assert_eq!(
        taken["children"].as_array().map(Vec::len),
        Some(1),
        "{taken}"
    );
    let restore = |value: Value| {
        let snapshot: EngineSnapshot<u64> = serde_json::from_value(value).unwrap();
        WorkflowEngine::restore(snapshot, defs.iter().cloned()).map(|_| ())
    };
    assert!(restore(taken.clone()).is_ok());

    let mut orphaned = taken.clone();
    orphaned["children"] = serde_json::json!([]);
    for run in orphaned["runs"].as_array_mut().unwrap() {
        run[1] = Value::Null;
    }
    let mut own_parent = taken.clone();
    let parent = own_parent["runs"][0][0]["state"]["id"].clone();
    own_parent["runs"][0][1] = serde_json::json!([parent, 1]);
    let mut taskless = taken.clone();
    taskless["tasks"] = serde_json::json!([]);
    for (what, corrupt) in [
        ("orphaned", orphaned),
        ("own parent", own_parent),
        ("taskless", taskless),
    ] {
        let refused = restore(corrupt).expect_err(what).to_string();
        assert!(refused.contains("inconsistent"), "{what}: {refused}");
    }
}
