//! Properties of workflow runs over random DAGs and random step outcomes.
//!
//! Case count: `PROPTEST_CASES` (default 256).

#![cfg(all(feature = "serde", feature = "workflow"))]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use taskweave::resilience::Fixed;
use taskweave::workflow::{
    Join, ReplayCheck, RunAction, RunInput, RunJournal, RunOutcome, RunRecorder, StepDef,
    StepFailure, StepOutput, StepState, WorkflowDef, WorkflowRun, check_replay,
};
use taskweave::{AttemptToken, Instant, StepId, WorkflowId};

mod harness;

/// A random step: its predecessors among the earlier steps, join,
/// compensability and retry limit.
#[derive(Clone, Debug)]
struct StepPlan {
    preds: Vec<usize>,
    join: u8,
    quorum: u32,
    cancel_remaining: bool,
    compensable: bool,
    max_attempts: u32,
    delay_ms: u64,
}

fn dag() -> impl Strategy<Value = Vec<StepPlan>> {
    (2usize..10).prop_flat_map(|n| {
        (0..n)
            .map(|i| {
                (
                    proptest::sample::subsequence((0..i).collect::<Vec<_>>(), 0..=i.min(3)),
                    0u8..3,
                    1u32..4,
                    any::<bool>(),
                    any::<bool>(),
                    1u32..4,
                    0u64..3,
                )
                    .prop_map(
                        |(
                            preds,
                            join,
                            quorum,
                            cancel_remaining,
                            compensable,
                            max_attempts,
                            delay_ms,
                        )| {
                            StepPlan {
                                preds,
                                join,
                                quorum,
                                cancel_remaining,
                                compensable,
                                max_attempts,
                                delay_ms,
                            }
                        },
                    )
            })
            .collect::<Vec<_>>()
    })
}

fn build(plan: &[StepPlan]) -> Arc<WorkflowDef> {
    let mut builder = WorkflowDef::builder("random", 1);
    for (i, step) in plan.iter().enumerate() {
        let m = step.preds.len() as u32;
        let join = match step.join {
            _ if m < 2 => Join::All,
            0 => Join::All,
            1 => Join::Merge,
            _ => Join::Quorum {
                n: step.quorum.min(m),
                cancel_remaining: step.cancel_remaining,
            },
        };
        let mut def = StepDef::local(format!("s{i}"))
            .join(join)
            .retry(Fixed::new(Duration::from_millis(step.delay_ms), step.max_attempts).unwrap());
        if step.compensable {
            def = def.compensable();
        }
        builder = builder.step(def);
        for &p in &step.preds {
            builder = builder.edge(format!("s{p}"), format!("s{i}"));
        }
    }
    Arc::new(builder.build().expect("random DAGs are valid"))
}

/// How the host answers: outcome codes consumed per answer (0..=5 success,
/// 6 retryable failure, 7 fatal failure), which pending request to answer
/// next, and when (if ever) to cancel the run.
#[derive(Clone, Debug)]
struct Script {
    outcomes: Vec<u8>,
    picks: Vec<usize>,
    cancel_at: Option<usize>,
}

fn script() -> impl Strategy<Value = Script> {
    (
        proptest::collection::vec(0u8..8, 1..64),
        proptest::collection::vec(any::<usize>(), 1..64),
        proptest::option::weighted(0.15, 0usize..20),
    )
        .prop_map(|(outcomes, picks, cancel_at)| Script {
            outcomes,
            picks,
            cancel_at,
        })
}

/// A recorded execution: every input with its instant, and the actions the
/// run handed out after each (index 0: after the start), as the run's
/// [`RunRecorder`] kept them.
struct Recording {
    recorded: RunJournal<u32>,
    journal: Vec<(Instant, RunInput<u32>)>,
    actions: Vec<Vec<RunAction>>,
    outcome: RunOutcome,
}

impl Recording {
    fn new(recorded: RunJournal<u32>, outcome: RunOutcome) -> Self {
        let entries = recorded.entries();
        Recording {
            journal: entries[1..]
                .iter()
                .map(|e| (e.at, e.input.clone().expect("only the start has no input")))
                .collect(),
            actions: entries.iter().map(|e| e.actions.clone()).collect(),
            recorded,
            outcome,
        }
    }
}

fn drain(run: &mut WorkflowRun<u32>) -> Vec<RunAction> {
    harness::drain(run)
}

/// Whether `step`'s join was satisfied by its predecessors' states.
fn join_satisfied(run: &WorkflowRun<u32>, step: StepId) -> bool {
    let def = run.definition();
    let states: Vec<StepState> = def
        .predecessors(step)
        .map(|(p, _)| run.step_state(p).unwrap())
        .collect();
    if states.is_empty() {
        return true;
    }
    let completed = states
        .iter()
        .filter(|&&s| s == StepState::Completed)
        .count() as u32;
    match def.step(step).unwrap().join {
        Join::All => completed as usize == states.len(),
        Join::Merge => completed > 0 && states.iter().all(|s| s.is_terminal()),
        Join::Quorum { n, .. } => completed >= n,
    }
}

/// Runs `def` to its end under `script`, checking the per-action
/// invariants on the way.
fn execute(def: &Arc<WorkflowDef>, script: &Script) -> Result<Recording, TestCaseError> {
    let mut recorder =
        RunRecorder::new(Arc::clone(def), WorkflowId::new(9), Some(0), Instant::ZERO);
    let mut now = Instant::ZERO;
    // Requests awaiting an answer, by token: Some(step) for a step attempt,
    // None for a compensation.
    let mut open: BTreeMap<AttemptToken, (StepId, bool)> = BTreeMap::new();
    let mut completions: Vec<(StepId, u32)> = Vec::new();
    let mut compensations: Vec<(StepId, u32)> = Vec::new();
    let (mut outcomes, mut picks) = (script.outcomes.iter().cycle(), script.picks.iter().cycle());
    let mut actions: Vec<RunAction> = std::iter::from_fn(|| recorder.poll_action()).collect();
    for round in 0..10_000 {
        let run = recorder.run();
        let mut finished = false;
        for action in &actions {
            match *action {
                RunAction::Start { step, token, .. } => {
                    prop_assert!(join_satisfied(run, step), "{step} started early");
                    prop_assert!(open.insert(token, (step, false)).is_none());
                }
                RunAction::Compensate {
                    step,
                    token,
                    iteration,
                    ..
                } => {
                    prop_assert!(open.insert(token, (step, true)).is_none());
                    if compensations.last() != Some(&(step, iteration)) {
                        compensations.push((step, iteration));
                    }
                }
                RunAction::Cancel { token, .. } => {
                    prop_assert!(open.remove(&token).is_some(), "{token} ended twice");
                }
                RunAction::Expand { .. } => prop_assert!(false, "no multi-instance steps"),
                RunAction::Finished => finished = true,
            }
        }
        if finished {
            prop_assert!(open.is_empty(), "attempts left open: {open:?}");
            let outcome = run
                .outcome()
                .cloned()
                .expect("finished runs have an outcome");
            check_outcome(run, &outcome, &completions, &compensations)?;
            return Ok(Recording::new(recorder.journal().clone(), outcome));
        }
        let input = if script.cancel_at == Some(round) && !run.is_compensating() {
            RunInput::Cancel
        } else if open.is_empty() {
            let at = run.poll_timeout();
            prop_assert!(at.is_some(), "the run is stuck");
            now = now.max(at.unwrap_or(now));
            RunInput::Tick
        } else {
            let pick = picks.next().copied().unwrap_or(0) % open.len();
            let (&token, &(step, compensation)) = open.iter().nth(pick).unwrap();
            open.remove(&token);
            let code = *outcomes.next().unwrap_or(&0);
            if compensation {
                let result = match code {
                    6 => Err(StepFailure::retryable("undo busy")),
                    7 => Err(StepFailure::fatal("undo impossible")),
                    _ => Ok(()),
                };
                RunInput::Compensated { token, result }
            } else {
                match code {
                    6 => RunInput::Failed {
                        token,
                        failure: StepFailure::retryable("busy"),
                    },
                    7 => RunInput::Failed {
                        token,
                        failure: StepFailure::fatal("broken"),
                    },
                    _ => {
                        let iteration = run.input(token).unwrap().iteration;
                        completions.push((step, iteration));
                        RunInput::Succeeded {
                            token,
                            output: StepOutput::new(step.get() as u32),
                        }
                    }
                }
            }
        };
        recorder
            .apply(input.clone(), now)
            .map_err(|e| TestCaseError::fail(format!("{input:?} refused: {e}")))?;
        actions = std::iter::from_fn(|| recorder.poll_action()).collect();
    }
    Err(TestCaseError::fail("the run did not finish"))
}

/// Outcome-level properties: success means every step ended well;
/// compensation ran in exactly the reverse order of completion.
fn check_outcome(
    run: &WorkflowRun<u32>,
    outcome: &RunOutcome,
    completions: &[(StepId, u32)],
    compensations: &[(StepId, u32)],
) -> Result<(), TestCaseError> {
    let def = run.definition();
    let states: Vec<StepState> = def
        .steps()
        .map(|(id, _)| run.step_state(id).unwrap())
        .collect();
    prop_assert!(states.iter().all(|s| s.is_terminal()), "{states:?}");
    let blocked: Vec<(StepId, u32)> = match outcome {
        RunOutcome::Succeeded => {
            prop_assert!(!states.contains(&StepState::Failed));
            prop_assert!(compensations.is_empty());
            return Ok(());
        }
        RunOutcome::CompensationFailed { pending, .. } => pending
            .iter()
            .filter(|p| p.failure.is_none())
            .map(|p| (p.step, p.iteration))
            .collect(),
        _ => Vec::new(),
    };
    let expected: Vec<(StepId, u32)> = completions
        .iter()
        .rev()
        .copied()
        .filter(|&(step, _)| def.step(step).unwrap().compensable)
        .filter(|c| !blocked.contains(c))
        .collect();
    prop_assert_eq!(compensations, &expected[..]);
    if let RunOutcome::Failed(_) = outcome {
        prop_assert!(expected.is_empty());
    }
    Ok(())
}

/// Replays `journal` into a fresh run, returning the actions after each
/// input, and the run.
fn replay(
    def: &Arc<WorkflowDef>,
    journal: &[(Instant, RunInput<u32>)],
) -> (Vec<Vec<RunAction>>, WorkflowRun<u32>) {
    let mut run = WorkflowRun::new(Arc::clone(def), WorkflowId::new(9), Some(0), Instant::ZERO);
    let mut actions = vec![drain(&mut run)];
    for (now, input) in journal {
        run.apply(input.clone(), *now)
            .expect("replayed inputs are accepted");
        actions.push(drain(&mut run));
    }
    (actions, run)
}

proptest! {
    #[test]
    fn runs_keep_their_invariants_and_replay_exactly(
        plan in dag(),
        script in script(),
        cut in any::<prop::sample::Index>(),
    ) {
        let def = build(&plan);
        let recording = execute(&def, &script)?;

        // Journal replay: the same actions, the same outcome.
        let (actions, replayed) = replay(&def, &recording.journal);
        prop_assert_eq!(&actions, &recording.actions);
        prop_assert_eq!(replayed.outcome(), Some(&recording.outcome));

        // The recorder's journal replays under its own definition.
        let entries = recording.journal.len() + 1;
        prop_assert_eq!(
            check_replay(&recording.recorded, &def),
            Ok(ReplayCheck::Compatible { entries })
        );

        // Checkpoint (through JSON) at a random input, resume, continue.
        let k = cut.index(recording.journal.len() + 1);
        let (_, before) = replay(&def, &recording.journal[..k]);
        let json = serde_json::to_string(&before.checkpoint()).unwrap();
        let mut resumed =
            WorkflowRun::resume(Arc::clone(&def), serde_json::from_str(&json).unwrap()).unwrap();
        for (i, (now, input)) in recording.journal[k..].iter().enumerate() {
            resumed.apply(input.clone(), *now).unwrap();
            prop_assert_eq!(&drain(&mut resumed), &recording.actions[k + i + 1]);
        }
        prop_assert_eq!(resumed.outcome(), Some(&recording.outcome));
    }
}
