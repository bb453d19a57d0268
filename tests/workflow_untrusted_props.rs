//! Properties of workflow runs under untrusted input:
//! corrupted checkpoints of busy runs, random definitions read from JSON,
//! and random host clocks, for runs and for the engine. Every case must either be refused with a typed
//! error or run on with no panic, no hang (a watchdog thread, and bounds on
//! the work of each call and of the whole case), and the end-state
//! invariants intact.
//!
//! Case counts: `PROPTEST_CASES` if set, otherwise 64 for the corrupted
//! checkpoints and the random clocks of a run, 48 for the others.

#![cfg(all(feature = "serde", feature = "workflow"))]

mod corrupt;

use corrupt::{at_path, non_empty_array, paths_where, watchdog};

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use serde_json::{Value, json};
use taskweave::resilience::{Fixed, RetrySpec};
use taskweave::workflow::{
    Checkpoint, Join, MAX_ATTEMPTS, MAX_ITERATIONS, RunAction, RunError, StepDef, StepFailure,
    StepKind, StepOutput, StepState, WorkflowDef, WorkflowRun,
};
use taskweave::{AttemptToken, Instant, StepId, WorkflowId};

mod harness;

use harness::{Clock, EngineOnPool, Harness};

fn config() -> ProptestConfig {
    corrupt::config(48)
}

/// Actions one call may hand out, attempts it may add to the timeline.
const PER_CALL: usize = 2_000;
/// Actions one case may hand out in all.
const PER_CASE: usize = 400_000;

fn retry(delay_ms: u64, attempts: u32) -> RetrySpec {
    RetrySpec::from(Fixed::new(Duration::from_millis(delay_ms), attempts).unwrap())
}

// ---- the end-state invariant --------------------------------------------------

/// A run with an outcome has every step ended, no attempt running and no
/// timer; a run without one has a timer pending, or waits for the host or
/// for a signal.
fn invariants(run: &WorkflowRun<u32>) -> Result<(), String> {
    let def = run.definition();
    match run.outcome() {
        Some(outcome) => {
            for (step, _) in def.steps() {
                let state = run.step_state(step).unwrap();
                if !state.is_terminal() {
                    return Err(format!("{outcome:?} with {step} {state:?}"));
                }
            }
            if run.is_waiting_for_host() || run.timeline().any(|t| t.end.is_none()) {
                return Err(format!("{outcome:?} with an attempt running"));
            }
            if let Some(at) = run.poll_timeout() {
                return Err(format!("{outcome:?} with a timer at {at}"));
            }
        }
        None => {
            let busy = run.poll_timeout().is_some()
                || run.is_waiting_for_signal()
                || run.is_waiting_for_host();
            if !busy {
                let states: Vec<_> = def
                    .steps()
                    .map(|(s, _)| run.step_state(s).unwrap())
                    .collect();
                return Err(format!(
                    "stuck: no outcome and nothing to wait for: {states:?}"
                ));
            }
            if run.is_waiting_for_signal() == run.waiting().is_empty() {
                return Err("is_waiting_for_signal disagrees with waiting()".into());
            }
        }
    }
    Ok(())
}

// ---- a random host --------------------------------------------------------------

#[derive(Clone, Debug)]
enum Op {
    Succeed {
        pick: usize,
        branch: usize,
        again: bool,
    },
    Fail {
        pick: usize,
        retryable: bool,
    },
    Compensated {
        pick: usize,
        ok: bool,
    },
    Forged {
        token: u64,
        kind: u8,
    },
    Signal(usize),
    Expand {
        pick: usize,
        items: u8,
    },
    CancelStep(usize),
    Cancel,
    Tick(Clock),
    Checkpoint,
}

fn clock() -> impl Strategy<Value = Clock> {
    harness::clock(Duration::from_secs(5), Duration::from_secs(2))
}

/// A host that mostly moves the run along: busy runs to checkpoint.
fn gentle_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (any::<usize>(), any::<usize>(), proptest::bool::weighted(0.3))
            .prop_map(|(pick, branch, again)| Op::Succeed { pick, branch, again }),
        2 => any::<usize>().prop_map(|pick| Op::Fail { pick, retryable: true }),
        2 => (any::<usize>(), proptest::bool::weighted(0.8))
            .prop_map(|(pick, ok)| Op::Compensated { pick, ok }),
        1 => any::<usize>().prop_map(Op::Signal),
        2 => (any::<usize>(), 0u8..4).prop_map(|(pick, items)| Op::Expand { pick, items }),
        3 => (0u64..300_000_000).prop_map(|d| Op::Tick(Clock::Forward(Duration::from_nanos(d)))),
        1 => Just(Op::Checkpoint),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (any::<usize>(), any::<usize>(), proptest::bool::weighted(0.3))
            .prop_map(|(pick, branch, again)| Op::Succeed { pick, branch, again }),
        3 => (any::<usize>(), any::<bool>()).prop_map(|(pick, retryable)| Op::Fail { pick, retryable }),
        3 => (any::<usize>(), proptest::bool::weighted(0.8))
            .prop_map(|(pick, ok)| Op::Compensated { pick, ok }),
        1 => (prop_oneof![0u64..64, any::<u64>()], 0u8..3)
            .prop_map(|(token, kind)| Op::Forged { token, kind }),
        2 => any::<usize>().prop_map(Op::Signal),
        2 => (any::<usize>(), 0u8..5).prop_map(|(pick, items)| Op::Expand { pick, items }),
        1 => any::<usize>().prop_map(Op::CancelStep),
        1 => Just(Op::Cancel),
        4 => clock().prop_map(Op::Tick),
        1 => Just(Op::Checkpoint),
    ]
}

/// Drives one run in the shared harness, checking the bounds and
/// invariants after every call.
struct Host {
    sim: Harness<WorkflowRun<u32>>,
}

impl Host {
    fn new(run: WorkflowRun<u32>) -> Result<Self, String> {
        let now = run.latest_now();
        let sim = Harness::new(run, now).bounded(PER_CALL, PER_CASE);
        let mut host = Host { sim };
        host.settle(0)?;
        Ok(host)
    }

    /// Drains the actions of one call, within the bounds.
    fn settle(&mut self, attempts_before: usize) -> Result<Vec<RunAction>, String> {
        let actions = self.sim.try_drain()?;
        let attempts = self.sim.machine.timeline().count();
        if attempts > attempts_before + PER_CALL {
            return Err(format!(
                "{} attempts from one call",
                attempts - attempts_before
            ));
        }
        invariants(&self.sim.machine)?;
        Ok(actions)
    }

    fn open(&self, compensation: bool) -> Vec<(AttemptToken, StepId)> {
        self.sim
            .machine
            .timeline()
            .filter(|t| t.end.is_none() && t.compensation == compensation)
            .map(|t| (t.token, t.step))
            .collect()
    }

    fn signals(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .sim
            .machine
            .definition()
            .steps()
            .filter_map(|(_, s)| match &s.kind {
                StepKind::Wait { signals, .. } => Some(signals.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        names.push("nobody-listens".into());
        names
    }

    fn output(&self, step: StepId, branch: usize, again: bool) -> StepOutput<u32> {
        let def = self.sim.machine.definition();
        let mut output = StepOutput::new(branch as u32);
        let labels: Vec<String> = def
            .successors(step)
            .filter_map(|(_, l)| l.map(str::to_string))
            .collect();
        if again && def.step(step).is_some_and(|s| s.max_iterations.is_some()) {
            output.again = true;
        } else if !labels.is_empty() {
            output = output.branch(labels[branch % labels.len()].clone());
        }
        output
    }

    /// Applies one operation; a refused input is fine, a panic or a broken
    /// bound is not.
    fn apply(&mut self, op: &Op) -> Result<(), String> {
        let before = self.sim.machine.timeline().count();
        let now = self.sim.now;
        let def = Arc::clone(self.sim.machine.definition());
        let mut backward_quiet = false;
        match *op {
            Op::Succeed {
                pick,
                branch,
                again,
            } => {
                let open = self.open(false);
                if let Some(&(token, step)) = open.get(pick % open.len().max(1)) {
                    let output = self.output(step, branch, again);
                    let _ = self.sim.machine.succeed(token, output, now);
                }
            }
            Op::Fail { pick, retryable } => {
                let open = self.open(false);
                if let Some(&(token, _)) = open.get(pick % open.len().max(1)) {
                    let failure = if retryable {
                        StepFailure::retryable("no")
                    } else {
                        StepFailure::fatal("no")
                    };
                    let _ = self.sim.machine.fail(token, failure, now);
                }
            }
            Op::Compensated { pick, ok } => {
                let open = self.open(true);
                if let Some(&(token, _)) = open.get(pick % open.len().max(1)) {
                    let result = if ok {
                        Ok(())
                    } else {
                        Err(StepFailure::retryable("undo failed"))
                    };
                    let _ = self.sim.machine.compensated(token, result, now);
                }
            }
            Op::Forged { token, kind } => {
                let token = AttemptToken::new(token);
                let _ = match kind {
                    0 => self.sim.machine.succeed(token, StepOutput::new(0), now),
                    1 => self
                        .sim
                        .machine
                        .fail(token, StepFailure::retryable("forged"), now),
                    _ => self.sim.machine.compensated(token, Ok(()), now),
                };
            }
            Op::Signal(pick) => {
                let names = self.signals();
                let _ = self
                    .sim
                    .machine
                    .signal(names[pick % names.len()].clone(), Some(1), now);
            }
            Op::Expand { pick, items } => {
                let expanding: Vec<StepId> = def
                    .steps()
                    .map(|(s, _)| s)
                    .filter(|&s| self.sim.machine.step_state(s) == Some(StepState::Expanding))
                    .collect();
                let step = expanding
                    .get(pick % expanding.len().max(1))
                    .copied()
                    .unwrap_or(StepId::new(pick as u64 % 64));
                let _ = self
                    .sim
                    .machine
                    .expand(step, (0..u32::from(items)).collect(), now);
            }
            Op::CancelStep(pick) => {
                let _ = self
                    .sim
                    .machine
                    .cancel_step(StepId::new(pick as u64 % 16), now);
            }
            Op::Cancel => {
                let _ = self.sim.machine.cancel(now);
            }
            Op::Tick(ref clock) => {
                let next = clock.apply(now, self.sim.machine.poll_timeout());
                let latest = self.sim.machine.latest_now();
                // Nothing is due at an instant before the latest one that
                // was not due at the latest one already.
                backward_quiet =
                    next < latest && self.sim.machine.poll_timeout().is_none_or(|at| at > latest);
                self.sim.at(next);
                if self.sim.machine.latest_now() < latest {
                    return Err("the run's clock went back".into());
                }
            }
            Op::Checkpoint => {
                // A state the run produced is always accepted, and its
                // serde form is exact and canonical.
                let checkpoint = self.sim.machine.checkpoint();
                let text = serde_json::to_string(&checkpoint).map_err(|e| e.to_string())?;
                let back: Checkpoint<u32> =
                    serde_json::from_str(&text).map_err(|e| e.to_string())?;
                if back != checkpoint {
                    return Err("the checkpoint changed in a round trip".into());
                }
                if serde_json::to_string(&back).map_err(|e| e.to_string())? != text {
                    return Err("the checkpoint's bytes changed in a round trip".into());
                }
                let resumed = WorkflowRun::resume(def, back)
                    .map_err(|e| format!("a valid checkpoint was refused: {e}"))?;
                if resumed.checkpoint() != checkpoint {
                    return Err("resuming changed the state".into());
                }
                self.sim.machine = resumed;
            }
        }
        let actions = self.settle(before)?;
        if backward_quiet && !actions.is_empty() {
            return Err(format!("a step back in time fired {actions:?}"));
        }
        Ok(())
    }

    fn drive(&mut self, ops: &[Op]) -> Result<(), String> {
        for op in ops {
            self.apply(op)?;
        }
        Ok(())
    }
}

// ---- busy runs ---------------------------------------------------------------------

/// Definitions mixing the patterns: parallel branches, a choice, a loop, a
/// fan-out, a wait with a timer, retries, timeouts, compensable steps, a
/// merge, a cancelling quorum and a deadline.
fn definitions() -> Vec<Arc<WorkflowDef>> {
    let mixed = WorkflowDef::builder("mixed", 1)
        .step(
            StepDef::local("a")
                .compensable()
                .retry(retry(0, 3))
                .timeout(Duration::from_secs(5)),
        )
        .step(StepDef::local("d"))
        .step(StepDef::agent("l").compensable().repeat(3))
        .step(
            StepDef::local("r")
                .multi_instance(1)
                .compensable()
                .retry(retry(2, 2)),
        )
        .step(StepDef::local("j").join(Join::Merge))
        .step(StepDef::wait("w", ["go", "stop"]).timeout(Duration::from_secs(3)))
        .step(StepDef::local("g"))
        .step(StepDef::local("t").compensable())
        .step(StepDef::local("m").join(Join::Merge))
        .step(StepDef::local("z").compensable())
        .edge("a", "d")
        .branch("d", "l", "left")
        .branch("d", "r", "right")
        .edge("l", "j")
        .edge("r", "j")
        .edge("a", "w")
        .branch("w", "g", "go")
        .branch("w", "t", "timeout")
        .edge("g", "m")
        .edge("t", "m")
        .edge("j", "z")
        .edge("m", "z")
        .deadline(Duration::from_secs(30))
        .build()
        .unwrap();
    let quorum = WorkflowDef::builder("quorum", 1)
        .step(StepDef::local("s").compensable())
        .step(
            StepDef::agent("p1")
                .compensable()
                .retry(retry(1, 5))
                .timeout(Duration::from_secs(1)),
        )
        .step(
            StepDef::agent("p2")
                .compensable()
                .retry(retry(0, 50))
                .timeout(Duration::from_millis(1)),
        )
        .step(StepDef::agent("p3").compensable())
        .step(StepDef::local("q").join(Join::Quorum {
            n: 2,
            cancel_remaining: true,
        }))
        .step(StepDef::local("after").compensable().repeat(2))
        .edge("s", "p1")
        .edge("s", "p2")
        .edge("s", "p3")
        .edge("p1", "q")
        .edge("p2", "q")
        .edge("p3", "q")
        .edge("q", "after")
        .build()
        .unwrap();
    vec![Arc::new(mixed), Arc::new(quorum)]
}

/// A mutation of a checkpoint's JSON.
#[derive(Clone, Debug)]
enum Mutation {
    /// Replace the `at % leaves`-th number or string.
    Leaf { at: usize, with: u64 },
    /// Append a copy of an element to the `at % arrays`-th non-empty array.
    Duplicate { at: usize, element: usize },
    /// Remove an element of the `at % arrays`-th non-empty array.
    Remove { at: usize, element: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        6 => (any::<usize>(), any::<u64>()).prop_map(|(at, with)| Mutation::Leaf { at, with }),
        1 => (any::<usize>(), any::<usize>())
            .prop_map(|(at, element)| Mutation::Duplicate { at, element }),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(at, element)| Mutation::Remove { at, element }),
    ]
}

const NAMES: &[&str] = &[
    "Pending",
    "Waiting",
    "Expanding",
    "Active",
    "Completed",
    "Skipped",
    "Cancelled",
    "Failed",
    "Fired",
    "Running",
    "NotStarted",
    "Done",
    "Blocked",
    "Succeeded",
    "TimedOut",
    "Deadline",
    "Finished",
    "Compensating",
    "",
    "x",
    "go",
];

fn corrupt(value: &mut Value, mutation: &Mutation) {
    let leaf_paths = paths_where(value, |v| v.is_number() || v.is_string());
    let array_paths = paths_where(value, non_empty_array);
    match *mutation {
        Mutation::Leaf { at, with } => {
            if leaf_paths.is_empty() {
                return;
            }
            let target = at_path(value, &leaf_paths[at % leaf_paths.len()]);
            *target = match target {
                Value::Number(n) => {
                    let old = n.as_u64().unwrap_or(0);
                    let choices = [
                        0,
                        1,
                        2,
                        old.wrapping_add(1),
                        old.wrapping_sub(1),
                        u64::from(u32::MAX),
                        u64::from(u32::MAX - 1),
                        u64::MAX,
                        with % 16,
                        with,
                    ];
                    // Small changes mostly: they are the ones that parse.
                    json!(choices[((with >> 8) % 10) as usize].min(if with % 3 == 0 {
                        u64::MAX
                    } else {
                        old.saturating_add(3)
                    }))
                }
                _ => json!(NAMES[(with % NAMES.len() as u64) as usize]),
            };
        }
        Mutation::Duplicate { at, element } | Mutation::Remove { at, element } => {
            if array_paths.is_empty() {
                return;
            }
            let target = at_path(value, &array_paths[at % array_paths.len()]);
            if let Value::Array(items) = target {
                let i = element % items.len();
                if matches!(mutation, Mutation::Duplicate { .. }) {
                    let copy = items[i].clone();
                    items.push(copy);
                } else {
                    items.remove(i);
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(corrupt::config(64))]

    /// Corrupted checkpoints of busy runs are refused with a typed error, or
    /// run on safely.
    #[test]
    fn corrupted_checkpoints_are_refused_or_run_on_safely(
        which in 0usize..2,
        prefix in proptest::collection::vec(gentle_op(), 0..24),
        mutations in proptest::collection::vec(mutation(), 1..3),
        after in proptest::collection::vec(op(), 100..300),
    ) {
        let outcome = watchdog(60, move || -> Result<(), String> {
            let def = Arc::clone(&definitions()[which]);
            let run = WorkflowRun::new(Arc::clone(&def), WorkflowId::new(5), Some(1), Instant::ZERO);
            let mut host = Host::new(run)?;
            host.drive(&prefix)?;
            let mut value = serde_json::to_value(host.sim.machine.checkpoint()).map_err(|e| e.to_string())?;
            for mutation in &mutations {
                corrupt(&mut value, mutation);
            }
            let Ok(checkpoint) = serde_json::from_value::<Checkpoint<u32>>(value) else {
                return Ok(()); // refused by serde: a typed error
            };
            let run = match WorkflowRun::resume(Arc::clone(&def), checkpoint) {
                Ok(run) => run,
                Err(
                    RunError::InvalidCheckpoint { .. }
                    | RunError::UnsupportedCheckpoint { .. }
                    | RunError::DefinitionMismatch { .. },
                ) => return Ok(()),
                Err(other) => return Err(format!("unexpected error {other:?}")),
            };
            let mut host = Host::new(run)?;
            host.drive(&after)
        });
        prop_assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
    }

    /// Random clocks: jumps, steps back, repeats and instants near
    /// `Instant::MAX`, with a host that fails, leaves attempts running and
    /// sends signals.
    #[test]
    fn random_clocks_keep_runs_safe(
        which in 0usize..3,
        ops in proptest::collection::vec(
            prop_oneof![
                4 => clock().prop_map(Op::Tick),
                1 => (any::<usize>(), any::<bool>()).prop_map(|(pick, retryable)| Op::Fail { pick, retryable }),
                1 => (any::<usize>(), any::<usize>()).prop_map(|(pick, branch)| Op::Succeed { pick, branch, again: false }),
                1 => any::<usize>().prop_map(Op::Signal),
                1 => (any::<usize>(), proptest::bool::weighted(0.7)).prop_map(|(pick, ok)| Op::Compensated { pick, ok }),
                1 => Just(Op::Checkpoint),
            ],
            1..200,
        ),
        start in prop_oneof![Just(0u64), Just(u64::MAX - 1_000_000), Just(u64::MAX), any::<u64>()],
    ) {
        let outcome = watchdog(60, move || -> Result<(), String> {
            let def = match which {
                0 | 1 => Arc::clone(&definitions()[which]),
                _ => Arc::new(
                    WorkflowDef::builder("timers", 1)
                        .step(StepDef::local("t").compensable().timeout(Duration::from_nanos(1)).retry(retry(0, MAX_ATTEMPTS)))
                        .step(StepDef::wait("w", ["go"]).timeout(Duration::from_millis(5)))
                        .step(StepDef::local("r").retry(retry(1, 50)).timeout(Duration::from_millis(3)))
                        .edge("t", "r")
                        .deadline(Duration::from_secs(1))
                        .build()
                        .map_err(|e| e.to_string())?,
                ),
            };
            let run = WorkflowRun::new(def, WorkflowId::new(8), None, Instant::from_nanos(start));
            let mut host = Host::new(run)?;
            host.drive(&ops)
        });
        prop_assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
    }
}

// ---- the engine under random clocks -------------------------------------------------

#[derive(Clone, Debug)]
enum EngineOp {
    Start(usize),
    Report { pick: usize, ok: bool },
    Tick(Clock),
    Signal(usize),
    Cancel(usize),
}

fn engine_op() -> impl Strategy<Value = EngineOp> {
    prop_oneof![
        1 => (0usize..2).prop_map(EngineOp::Start),
        4 => (any::<usize>(), proptest::bool::weighted(0.4))
            .prop_map(|(pick, ok)| EngineOp::Report { pick, ok }),
        4 => clock().prop_map(EngineOp::Tick),
        1 => any::<usize>().prop_map(EngineOp::Signal),
        1 => any::<usize>().prop_map(EngineOp::Cancel),
    ]
}

/// In-process definitions for the engine: immediate retries after 1 ns
/// timeouts, a wait with a timer, a deadline, compensation.
fn engine_definitions() -> Vec<Arc<WorkflowDef>> {
    let timers = WorkflowDef::builder("timers", 1)
        .step(
            StepDef::local("t")
                .compensable()
                .timeout(Duration::from_nanos(1))
                .retry(retry(0, MAX_ATTEMPTS)),
        )
        .step(StepDef::wait("w", ["go"]).timeout(Duration::from_millis(5)))
        .step(
            StepDef::local("r")
                .retry(retry(1, 50))
                .timeout(Duration::from_millis(3)),
        )
        .edge("t", "r")
        .deadline(Duration::from_secs(1))
        .build()
        .unwrap();
    let chain = WorkflowDef::builder("chain", 1)
        .step(StepDef::local("a").compensable().retry(retry(0, 20)))
        .step(
            StepDef::local("b")
                .compensable()
                .timeout(Duration::from_millis(2)),
        )
        .step(StepDef::local("c").retry(retry(0, 5)))
        .chain(["a", "b", "c"])
        .build()
        .unwrap();
    vec![Arc::new(timers), Arc::new(chain)]
}

fn engine_case(ops: &[EngineOp]) -> Result<(), String> {
    use taskweave::scheduler::{Dispatcher, DispatcherConfig};
    use taskweave::workflow::{StepTask, WorkflowEngine};

    let defs = engine_definitions();
    let pool: Dispatcher<StepTask> = Dispatcher::new(DispatcherConfig::default());
    let engine: WorkflowEngine<u32> = WorkflowEngine::new();
    let mut sim: Harness<_> =
        Harness::new(EngineOnPool { engine, pool }, Instant::ZERO).bounded(PER_CALL, PER_CASE);
    let mut runs = Vec::new();
    for op in ops {
        let now = sim.now;
        let latest = sim.machine.engine.latest_now();
        let mut backward_quiet = false;
        let EngineOnPool { engine, pool } = &mut sim.machine;
        match *op {
            EngineOp::Start(which) => {
                runs.push(engine.start(pool, Arc::clone(&defs[which]), None, now))
            }
            EngineOp::Report { pick, ok } => {
                let open: Vec<_> = runs
                    .iter()
                    .filter_map(|&id| engine.run(id).map(|run| (id, run)))
                    .flat_map(|(id, run)| {
                        run.timeline()
                            .filter(|t| t.end.is_none())
                            .map(move |t| (id, t.token, t.compensation))
                    })
                    .collect();
                if let Some(&(id, token, compensation)) = open.get(pick % open.len().max(1)) {
                    let _ = match (compensation, ok) {
                        (true, true) => engine.compensated(pool, id, token, Ok(()), now),
                        (true, false) => engine.compensated(
                            pool,
                            id,
                            token,
                            Err(StepFailure::retryable("no")),
                            now,
                        ),
                        (false, true) => {
                            engine.report_local(pool, id, token, Ok(StepOutput::new(1)), now)
                        }
                        (false, false) => engine.report_local(
                            pool,
                            id,
                            token,
                            Err(StepFailure::retryable("no")),
                            now,
                        ),
                    };
                }
            }
            EngineOp::Tick(ref clock) => {
                let next = clock.apply(now, engine.poll_timeout());
                backward_quiet =
                    next < latest && engine.poll_timeout().is_none_or(|at| at > latest);
                sim.at(next);
            }
            EngineOp::Signal(pick) => {
                if !runs.is_empty() {
                    let _ = engine.signal(pool, runs[pick % runs.len()], "go", None, now);
                }
            }
            EngineOp::Cancel(pick) => {
                if !runs.is_empty() {
                    let _ = engine.cancel(pool, runs[pick % runs.len()], now);
                }
            }
        }
        let actions = sim.try_drain()?.len();
        let engine = &sim.machine.engine;
        if backward_quiet && actions > 0 {
            return Err(format!("a step back in time made {actions} actions"));
        }
        if engine.latest_now() < latest {
            return Err("the engine's clock went back".into());
        }
        // Every active run keeps its invariants, and the engine wakes no
        // later than any of them asks.
        for &id in &runs {
            if let Some(run) = engine.run(id) {
                invariants(run)?;
                if let Some(at) = run.poll_timeout() {
                    if engine.poll_timeout().is_none_or(|e| e > at) {
                        return Err(format!("{id} wants waking at {at}, the engine does not"));
                    }
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// The engine under random clocks: no panic, no hang, bounded work per
    /// call, runs' invariants intact, timers never lost, and a step back in
    /// time fires nothing new.
    #[test]
    fn the_engine_stays_safe_under_random_clocks(
        ops in proptest::collection::vec(engine_op(), 1..150),
    ) {
        let outcome = watchdog(60, move || engine_case(&ops));
        prop_assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
    }
}

// ---- random definitions from JSON -------------------------------------------------

#[derive(Clone, Debug)]
struct TaskPlan {
    kind: u8,
    deps: Vec<(usize, bool)>,
    timeout: Option<u8>,
    retry: Option<(u8, u8)>,
    iterations: Option<u8>,
    multi: Option<u8>,
    join: (u8, u32, bool),
    compensable: bool,
    duplicate_capability: bool,
}

#[derive(Clone, Debug)]
struct DefPlan {
    tasks: Vec<TaskPlan>,
    entries: Option<Vec<usize>>,
    deadline: Option<u8>,
    max_depth: Option<u8>,
}

/// Mostly valid steps, with now and then something to refuse: a zero
/// timeout, a count beyond the limits, a repeated capability.
fn task_plan(i: usize) -> impl Strategy<Value = TaskPlan> {
    let deps = proptest::sample::subsequence((0..i).collect::<Vec<_>>(), 0..=i.min(3))
        .prop_flat_map(|deps| {
            let n = deps.len();
            (
                Just(deps),
                proptest::collection::vec(proptest::bool::weighted(0.25), n),
            )
        })
        .prop_map(|(deps, labelled)| deps.into_iter().zip(labelled).collect::<Vec<_>>());
    (
        prop_oneof![3 => Just(0u8), 3 => Just(1u8), 2 => Just(2u8), 1 => Just(3u8)],
        deps,
        proptest::option::weighted(0.4, prop_oneof![1 => Just(0u8), 12 => 1u8..5]),
        proptest::option::weighted(
            0.4,
            (
                0u8..4,
                prop_oneof![1 => Just(0u8), 30 => 1u8..4, 4 => 4u8..6],
            ),
        ),
        proptest::option::weighted(
            0.2,
            prop_oneof![1 => Just(0u8), 6 => Just(1u8), 2 => Just(2u8), 1 => Just(3u8)],
        ),
        proptest::option::weighted(0.15, prop_oneof![4 => 0u8..2, 1 => Just(2u8)]),
        (0u8..3, 1u32..4, any::<bool>()),
        any::<bool>(),
        proptest::bool::weighted(0.03),
    )
        .prop_map(
            move |(kind, deps, timeout, retry, iterations, multi, join, compensable, dup)| {
                TaskPlan {
                    kind,
                    deps,
                    timeout,
                    retry,
                    iterations,
                    multi,
                    join,
                    compensable,
                    duplicate_capability: dup,
                }
            },
        )
}

fn def_plan() -> impl Strategy<Value = DefPlan> {
    (1usize..8).prop_flat_map(|n| {
        (
            (0..n).map(task_plan).collect::<Vec<_>>(),
            proptest::option::weighted(0.2, proptest::collection::vec(0..n, 1..4)),
            proptest::option::weighted(0.3, 1u8..5),
            proptest::option::weighted(0.1, 0u8..5),
        )
            .prop_map(|(tasks, entries, deadline, max_depth)| DefPlan {
                tasks,
                entries,
                deadline,
                max_depth,
            })
    })
}

/// Durations from zero to the largest.
fn duration(choice: u8) -> Value {
    match choice {
        0 => json!({ "secs": 0, "nanos": 0 }),
        1 => json!({ "secs": 0, "nanos": 1 }),
        2 => json!({ "secs": 0, "nanos": 1_000_000 }),
        3 => json!({ "secs": 2, "nanos": 0 }),
        _ => json!({ "secs": u64::MAX, "nanos": 999_999_999 }),
    }
}

fn counts(choice: u8) -> u32 {
    [0, 1, 3, MAX_ATTEMPTS, MAX_ATTEMPTS + 1, u32::MAX][choice as usize % 6]
}

fn to_json(plan: &DefPlan) -> Value {
    let tasks: Vec<Value> = plan
        .tasks
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut task = json!({ "id": format!("s{i}") });
            task["kind"] = match t.kind {
                0 => json!("agent"),
                1 => json!("local"),
                2 => json!({ "wait": { "signals": ["go", "stop"] } }),
                _ => json!({ "wait": { "signals": [] } }),
            };
            if let Some(timeout) = t.timeout {
                task["timeout"] = duration(timeout);
            }
            if let Some((delay, attempts)) = t.retry {
                task["retry"] = json!({ "fixed": { "delay": duration(delay.min(3)), "max_attempts": counts(attempts) } });
            }
            let waits = t.kind >= 2;
            if let Some(iterations) = t.iterations.filter(|_| !waits) {
                task["max_iterations"] = json!([0, 2, MAX_ITERATIONS, u32::MAX][iterations as usize % 4]);
            }
            if let Some(multi) = t.multi.filter(|_| !waits && t.iterations.is_none()) {
                let tolerated = [0, 1, u32::MAX][multi as usize % 3];
                task["multi_instance"] = json!({ "tolerated_failures": tolerated });
            }
            let (join, n, cancel) = t.join;
            task["join"] = match join {
                _ if t.deps.len() < 2 => json!("all"),
                0 => json!("all"),
                1 => json!("merge"),
                _ => json!({ "quorum": { "n": n, "cancel_remaining": cancel } }),
            };
            task["compensable"] = json!(t.compensable && !waits);
            if t.duplicate_capability {
                task["capabilities"] = json!(["x", "x"]);
            }
            let deps: Vec<Value> = t
                .deps
                .iter()
                .enumerate()
                .map(|(k, &(from, labelled))| {
                    if labelled {
                        let label = match plan.tasks[from].kind {
                            2 => ["go", "stop", "timeout"][k % 3],
                            3 => "timeout",
                            _ => ["yes", "no"][k % 2],
                        };
                        json!({ "step": format!("s{from}"), "label": label })
                    } else {
                        json!(format!("s{from}"))
                    }
                })
                .collect();
            task["depends_on"] = json!(deps);
            task
        })
        .collect();
    let mut def = json!({ "name": "random", "version": 1, "tasks": tasks });
    if let Some(entries) = &plan.entries {
        def["entries"] = json!(entries.iter().map(|e| format!("s{e}")).collect::<Vec<_>>());
    }
    if let Some(deadline) = plan.deadline {
        def["deadline"] = duration(deadline);
    }
    if let Some(depth) = plan.max_depth {
        def["max_depth"] = json!([0, 8, 64, 65, u32::MAX][depth as usize % 5]);
    }
    def
}

/// What the plan holds that must be refused.
fn must_refuse(plan: &DefPlan) -> Option<&'static str> {
    if let Some(entries) = &plan.entries {
        let unique: BTreeSet<_> = entries.iter().collect();
        if unique.len() != entries.len() {
            return Some("duplicate entries");
        }
    }
    for t in &plan.tasks {
        if t.timeout == Some(0) {
            return Some("a zero timeout");
        }
        if t.retry.is_some_and(|(_, a)| counts(a) > MAX_ATTEMPTS) {
            return Some("too many attempts");
        }
        let waits = t.kind >= 2;
        if t.iterations == Some(3) && !waits {
            return Some("too many iterations");
        }
        if t.multi == Some(2) && !waits && t.iterations.is_none() {
            return Some("too many tolerated failures");
        }
        if t.duplicate_capability {
            return Some("a duplicate capability");
        }
    }
    if plan.max_depth.is_some_and(|d| d >= 3) {
        return Some("too deep a limit");
    }
    None
}

/// A cooperative host: answers every attempt (failing some), expands with
/// two items, signals waits, cancels waits nothing can end, and otherwise
/// moves the clock to the next timer. The run must end.
fn run_to_end(def: Arc<WorkflowDef>, seed: u64) -> Result<(), String> {
    let run = WorkflowRun::new(
        Arc::clone(&def),
        WorkflowId::new(seed),
        Some(0),
        Instant::ZERO,
    );
    let mut host = Host::new(run)?;
    let mut coin = seed;
    for _ in 0..20_000 {
        if host.sim.machine.outcome().is_some() {
            return Ok(());
        }
        coin = coin
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let roll = (coin >> 33) as usize;
        let op = if !host.open(true).is_empty() {
            Op::Compensated {
                pick: 0,
                ok: roll % 5 != 0,
            }
        } else if !host.open(false).is_empty() {
            if roll % 4 == 0 {
                Op::Fail {
                    pick: roll,
                    retryable: roll % 3 != 0,
                }
            } else {
                Op::Succeed {
                    pick: roll,
                    branch: roll,
                    again: roll % 7 == 0,
                }
            }
        } else if def
            .steps()
            .any(|(s, _)| host.sim.machine.step_state(s) == Some(StepState::Expanding))
        {
            Op::Expand {
                pick: roll,
                items: 2,
            }
        } else if let Some(&waiting) = host.sim.machine.waiting().first() {
            match &def.step(waiting).map(|s| &s.kind) {
                Some(StepKind::Wait { signals, .. }) if !signals.is_empty() => {
                    let names = host.signals();
                    Op::Signal(
                        names
                            .iter()
                            .position(|n| *n == signals[roll % signals.len()])
                            .unwrap_or(0),
                    )
                }
                _ if host.sim.machine.poll_timeout().is_some() => Op::Tick(Clock::ToTimer),
                _ => Op::CancelStep(waiting.get() as usize),
            }
        } else {
            Op::Tick(Clock::ToTimer)
        };
        host.apply(&op)?;
    }
    Err("the run did not end under a cooperative host".into())
}

proptest! {
    #![proptest_config(config())]

    /// Random definitions from JSON are refused with a typed error, or run
    /// to their end under a bound on the work per call.
    #[test]
    fn random_json_definitions_are_refused_or_run_to_their_end(plan in def_plan(), seed in any::<u64>()) {
        let json = to_json(&plan);
        let must = must_refuse(&plan);
        let outcome = watchdog(60, move || -> Result<(), String> {
            match serde_json::from_value::<WorkflowDef>(json) {
                Err(_) => Ok(()),
                Ok(_) if must.is_some() => Err(format!("accepted {}", must.unwrap_or_default())),
                Ok(def) => {
                    // Read back from its own data form, it is the same.
                    let text = serde_json::to_string(&def).map_err(|e| e.to_string())?;
                    let back: WorkflowDef = serde_json::from_str(&text).map_err(|e| e.to_string())?;
                    if back.content_hash() != def.content_hash() {
                        return Err("the data form does not round-trip".into());
                    }
                    run_to_end(Arc::new(def), seed)
                }
            }
        });
        prop_assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
    }
}

#[test]
fn the_corruption_walk_sees_every_leaf_and_array() {
    let value = json!({ "a": [1, 2, { "b": "x" }], "c": 3, "d": [] });
    let leaves = paths_where(&value, |v| v.is_number() || v.is_string());
    let arrays = paths_where(&value, non_empty_array);
    assert_eq!((leaves.len(), arrays.len()), (4, 1));
}
