//! The audit's checks of hosted runs, entry by entry: each run ends once,
//! and only after it started; no step of a run starts or completes after
//! the run ended; only a completed step is compensated, and compensations
//! follow the saga's order (the reverse of the completions); and a step
//! holds the output of the report that completed it.
//!
//! The replayed engine's events say what it did: the checks hold them
//! against the journal's entries and against each other, so an engine
//! that breaks a rule is caught in any journal that makes it show.
//!
//! A run the audit met in the snapshot it started from has a history the
//! audit did not see, and the engine does not report its events: only
//! its end and its outputs are checked.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::workflow::{
    RunOutcome, StepState, StepTask, WorkflowDef, WorkflowEngine, WorkflowEvent,
};
use crate::{StepId, WorkflowId};

use super::super::contract::RunEnd;
use super::super::runs::HostedRuns;

/// Hosted runs' totals in the checked entries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunTotals {
    /// Runs started (sub-workflow runs included).
    pub started: u64,
    /// Top-level runs ended.
    pub ended: u64,
    /// Steps completed.
    pub steps_completed: u64,
    /// Steps compensated.
    pub steps_compensated: u64,
}

/// What the audit saw of a run it watched start.
#[derive(Debug, Default)]
struct Seen {
    /// Its completed steps, in completion order.
    completed: Vec<StepId>,
    /// Once compensating: the completions before this index are the ones
    /// still to compensate.
    uncompensated: Option<usize>,
}

/// A step task's success the journal brought, to check once applied.
pub(super) struct Completion<P> {
    step: StepTask,
    def: Arc<WorkflowDef>,
    /// The output its step takes from the report.
    output: Option<P>,
}

/// The checks of hosted runs.
pub(super) struct RunAudit {
    /// The replayed engine's events since the last entry.
    events: Arc<Mutex<Vec<WorkflowEvent>>>,
    /// The runs that have not ended: `None` for one met in the snapshot.
    active: HashMap<WorkflowId, Option<Seen>>,
    totals: RunTotals,
}

impl RunAudit {
    /// Watches the runs `runs` hosts, from now on.
    pub(super) fn new<P: Clone>(runs: &mut HostedRuns<P>) -> Self {
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&events);
        runs.observe(move |event: &WorkflowEvent| lock(&sink).push(event.clone()));
        let active = runs.engine().runs().map(|run| (run.id(), None)).collect();
        RunAudit {
            events,
            active,
            totals: RunTotals::default(),
        }
    }

    pub(super) fn totals(&self) -> RunTotals {
        self.totals
    }

    /// What to check of the success report of `task`, before the entry
    /// that carries it applies: `None` unless it runs a step of an
    /// active run (a compensation's output goes nowhere). The output is
    /// copied only then: a plain task's is not.
    pub(super) fn completion<P: Clone>(
        runs: &HostedRuns<P>,
        task: crate::TaskId,
        output: Option<&P>,
    ) -> Option<Completion<P>> {
        let engine = runs.engine();
        let step = engine.step_task(task).filter(|s| !s.compensation)?;
        let def = Arc::clone(engine.run(step.run)?.definition());
        let output = match output {
            Some(output) => runs.read_output(output.clone()).ok()?.value,
            None => None,
        };
        Some(Completion { step, def, output })
    }

    /// Checks one applied entry: the engine's events, the runs it
    /// ended, and the step `completion` its accepted report completed.
    pub(super) fn entry<P: Clone + PartialEq>(
        &mut self,
        seq: u64,
        engine: &WorkflowEngine<P>,
        ended: &[RunEnd<P>],
        completion: Option<Completion<P>>,
        violations: &mut Vec<String>,
    ) {
        let events = std::mem::take(&mut *lock(&self.events));
        for event in events {
            self.event(seq, event, violations);
        }
        if let Some(completion) = completion {
            check_output(seq, engine, ended, completion, violations);
        }
        for end in ended {
            self.totals.ended += 1;
            if self.active.remove(&end.run).is_none() {
                violations.push(format!(
                    "entry {seq}: run {} ended, but it was not active: it ended before, or never \
                     started",
                    end.run
                ));
            }
        }
    }

    fn event(&mut self, seq: u64, event: WorkflowEvent, violations: &mut Vec<String>) {
        let after_end = |run: WorkflowId, step: StepId, what: &str| {
            format!("entry {seq}: step {step} of run {run} {what} after the run ended")
        };
        match event {
            WorkflowEvent::RunStarted { run } => {
                self.totals.started += 1;
                if self.active.insert(run, Some(Seen::default())).is_some() {
                    violations.push(format!(
                        "entry {seq}: run {run} started again while it was active"
                    ));
                }
            }
            WorkflowEvent::StepStarted { run, step, .. } if !self.active.contains_key(&run) => {
                violations.push(after_end(run, step, "started"));
            }
            WorkflowEvent::StepCompleted { run, step } => {
                self.totals.steps_completed += 1;
                match self.active.get_mut(&run) {
                    Some(Some(seen)) => seen.completed.push(step),
                    Some(None) => {}
                    None => violations.push(after_end(run, step, "completed")),
                }
            }
            WorkflowEvent::StepCompensated { run, step } => {
                self.totals.steps_compensated += 1;
                let Some(Some(seen)) = self.active.get_mut(&run) else {
                    return;
                };
                if let Err(why) = seen.compensated(step) {
                    violations.push(format!(
                        "entry {seq}: step {step} of run {run} was compensated, but {why}"
                    ));
                }
            }
            _ => {}
        }
    }
}

/// The events heard, even after an observer panicked (the audit's own
/// closure never does).
fn lock(events: &Mutex<Vec<WorkflowEvent>>) -> std::sync::MutexGuard<'_, Vec<WorkflowEvent>> {
    events.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Seen {
    /// `step` was compensated: it must be the latest completion not
    /// compensated yet, bar the ones the saga skips (a step with nothing
    /// to undo, or one blocked by a failed compensation).
    fn compensated(&mut self, step: StepId) -> Result<(), &'static str> {
        let before = self.uncompensated.unwrap_or(self.completed.len());
        match self.completed[..before].iter().rposition(|&s| s == step) {
            Some(at) => {
                self.uncompensated = Some(at);
                Ok(())
            }
            None if self.completed.contains(&step) => {
                Err("out of the saga's order: a step that completed after it was compensated first")
            }
            None => Err("it never completed"),
        }
    }
}

/// A completed step holds the output of the report that completed it;
/// the run it ended (the definition's output step) ends with it.
fn check_output<P: Clone + PartialEq>(
    seq: u64,
    engine: &WorkflowEngine<P>,
    ended: &[RunEnd<P>],
    completion: Completion<P>,
    violations: &mut Vec<String>,
) {
    let Completion { step, def, output } = completion;
    let (run, step) = (step.run, step.step);
    let held = match engine.run(run) {
        Some(active) if active.step_state(step) == Some(StepState::Completed) => {
            active.step_output(step)
        }
        Some(_) => return,
        None => match ended.iter().find(|end| end.run == run) {
            Some(end) if end.outcome == RunOutcome::Succeeded && def.output() == Some(step) => {
                end.output.as_ref()
            }
            _ => return,
        },
    };
    if held != output.as_ref() {
        violations.push(format!(
            "entry {seq}: step {step} of run {run} holds an output other than the one of the \
             report that completed it"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(ids: &[u64]) -> Vec<StepId> {
        ids.iter().copied().map(StepId::new).collect()
    }

    /// Replays `events` as one entry's, with the runs it `ended`.
    fn entry(audit: &mut RunAudit, events: &[WorkflowEvent], ended: &[u64]) -> Vec<String> {
        lock(&audit.events).extend_from_slice(events);
        let ended: Vec<RunEnd<u32>> = ended
            .iter()
            .map(|&run| RunEnd {
                run: WorkflowId::new(run),
                outcome: RunOutcome::Succeeded,
                output: None,
                tenant: None,
            })
            .collect();
        let mut violations = Vec::new();
        audit.entry(1, &WorkflowEngine::new(), &ended, None, &mut violations);
        violations
    }

    #[test]
    fn a_run_that_ends_twice_or_runs_a_step_after_its_end_is_a_violation() {
        let mut audit = RunAudit {
            events: Arc::default(),
            active: HashMap::new(),
            totals: RunTotals::default(),
        };
        let run = WorkflowId::new(1);
        let step = StepId::new(0);
        let started = WorkflowEvent::StepStarted {
            run,
            step,
            attempt: 1,
        };
        let begun = [WorkflowEvent::RunStarted { run }, started.clone()];
        assert_eq!(entry(&mut audit, &begun, &[]), Vec::<String>::new());
        let again = entry(&mut audit, &[WorkflowEvent::RunStarted { run }], &[]);
        assert!(again[0].contains("started again"), "{again:?}");
        assert_eq!(entry(&mut audit, &[], &[1]), Vec::<String>::new());
        let late = entry(&mut audit, &[started], &[1]);
        assert_eq!(late.len(), 2, "{late:?}");
        assert!(late[0].contains("started after the run ended"), "{late:?}");
        assert!(late[1].contains("it ended before"), "{late:?}");
        let totals = audit.totals();
        assert_eq!((totals.started, totals.ended), (2, 2));
    }

    #[test]
    fn compensations_in_reverse_completion_order_pass_skipping_steps_with_nothing_to_undo() {
        let mut seen = Seen {
            completed: steps(&[0, 1, 2, 3]),
            uncompensated: None,
        };
        assert_eq!(seen.compensated(StepId::new(3)), Ok(()));
        // Step 2 had nothing to undo.
        assert_eq!(seen.compensated(StepId::new(1)), Ok(()));
        assert_eq!(seen.compensated(StepId::new(0)), Ok(()));
    }

    #[test]
    fn a_compensation_out_of_order_or_of_a_step_never_completed_is_a_violation() {
        let mut seen = Seen {
            completed: steps(&[0, 1, 2]),
            uncompensated: None,
        };
        assert_eq!(seen.compensated(StepId::new(1)), Ok(()));
        assert!(
            seen.compensated(StepId::new(2))
                .unwrap_err()
                .contains("order")
        );
        assert!(
            seen.compensated(StepId::new(7))
                .unwrap_err()
                .contains("never")
        );
    }

    #[test]
    fn a_loop_compensates_each_iteration_once() {
        let mut seen = Seen {
            completed: steps(&[0, 1, 1, 2]),
            uncompensated: None,
        };
        for step in [2, 1, 1, 0] {
            assert_eq!(seen.compensated(StepId::new(step)), Ok(()));
        }
        assert!(seen.compensated(StepId::new(1)).is_err());
    }
}
