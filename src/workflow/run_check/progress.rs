//! The part of a checkpoint's validation that concerns what a run waits
//! for and hands out next: its waiting list, timers, queued actions and
//! phase.

use super::super::run::{CompensationState, Phase, RunState, Timer, run_saga};
use super::super::{
    CompensationStatus, FailureCause, RunAction, RunOutcome, StepState, WorkflowDef,
};
use super::{check, in_range};
use crate::workflow::RunError;
use crate::{Instant, StepId};

impl<P> RunState<P> {
    /// The waiting list holds each waiting step once.
    pub(super) fn check_waiting(&self, def: &WorkflowDef) -> Result<(), RunError> {
        let mut seen = vec![false; def.len()];
        for (k, &step) in self.waiting.iter().enumerate() {
            let ok = in_range(step, def.len())
                && !std::mem::replace(&mut seen[step.get() as usize], true)
                && self.steps[step.get() as usize].state == StepState::Waiting;
            check(
                ok,
                || format!("waiting[{k}]"),
                "is not a waiting step, or is listed twice",
            )?;
        }
        let waiting = self
            .steps
            .iter()
            .filter(|s| s.state == StepState::Waiting)
            .count();
        check(
            waiting == self.waiting.len(),
            || "waiting".into(),
            "does not list every waiting step",
        )
    }

    /// Timers name things that exist; none is set for "never".
    pub(super) fn check_timers(&self) -> Result<(), RunError> {
        for (k, &(at, timer)) in self.timers.iter().enumerate() {
            let ok = at != Instant::MAX
                && match timer {
                    Timer::Deadline => true,
                    Timer::Wait(step) => in_range(step, self.steps.len()),
                    Timer::Retry(exec) | Timer::CompensationRetry(exec) => {
                        (exec as usize) < self.execs.len()
                    }
                    Timer::AttemptTimeout(token) => {
                        usize::try_from(token.get()).is_ok_and(|t| t < self.attempts.len())
                    }
                };
            check(ok, || format!("timers[{k}]"), "names nothing of this run")?;
        }
        check(
            self.timers.is_empty() || !matches!(self.phase, Phase::Finished(_)),
            || "timers".into(),
            "are set on a finished run",
        )
    }

    /// Actions not yet handed out name real steps and attempts.
    pub(super) fn check_actions(&self, def: &WorkflowDef) -> Result<(), RunError> {
        let attempt_of = |token: crate::AttemptToken, step: StepId, compensation: bool| {
            usize::try_from(token.get())
                .ok()
                .and_then(|t| self.attempts.get(t))
                .is_some_and(|a| {
                    a.compensation == compensation && self.execs[a.exec as usize].step == step
                })
        };
        for (k, action) in self.actions.iter().enumerate() {
            let ok = match *action {
                RunAction::Start { step, token, .. } => attempt_of(token, step, false),
                RunAction::Compensate { step, token, .. } => attempt_of(token, step, true),
                RunAction::Cancel { step, token, .. } => {
                    attempt_of(token, step, false) || attempt_of(token, step, true)
                }
                RunAction::Expand { step } => in_range(step, def.len()) && def.meta(step).multi,
                RunAction::Finished => matches!(self.phase, Phase::Finished(_)),
            };
            check(
                ok,
                || format!("actions[{k}]"),
                "names no step or attempt of this run",
            )?;
        }
        Ok(())
    }

    /// The phase agrees with the steps and, while compensating, with the
    /// compensation queue.
    pub(super) fn check_phase(&self, def: &WorkflowDef) -> Result<(), RunError> {
        let n = def.len();
        let cause_ok = |cause: &FailureCause| match cause {
            FailureCause::StepFailed { step, .. } => in_range(*step, n),
            FailureCause::Cancelled | FailureCause::DeadlineExceeded => true,
            // Only an engine ends a run so, without running it.
            FailureCause::Unservable { .. } => false,
        };
        match &self.phase {
            Phase::Running => check(
                self.open_steps > 0,
                || "open_steps".into(),
                "is zero on a running run",
            ),
            Phase::Compensating { cause, saga } => {
                check(cause_ok(cause), || "phase.cause".into(), "names no step")?;
                check(
                    self.open_steps == 0,
                    || "open_steps".into(),
                    "is not zero while compensating",
                )?;
                check(
                    saga.is_compensating() && saga.is_consistent(),
                    || "phase.saga".into(),
                    "is not a consistent saga that compensates",
                )?;
                let expected = run_saga(
                    def,
                    self.completions.iter().filter_map(|&exec| {
                        let e = self.execs.get(exec as usize)?;
                        Some((exec, e.step))
                    }),
                );
                check(
                    saga.same_dependencies(&expected)
                        && saga.len() == expected.len()
                        && saga
                            .iter()
                            .zip(expected.iter())
                            .all(|(a, b)| a.1 == b.1 && a.2 == b.2),
                    || "phase.saga".into(),
                    "does not record the completed compensable executions",
                )?;
                // The run compensates one execution at a time, from the
                // moment it fails until it finishes.
                check(
                    saga.in_progress().is_some(),
                    || "phase.saga".into(),
                    "has no compensation in progress",
                )?;
                let mut seen = vec![false; self.execs.len()];
                for (id, _, &exec, status) in saga.iter() {
                    let e = self.execs.get(exec as usize);
                    let ok = e.is_some_and(|e| match status {
                        CompensationStatus::Waiting => {
                            e.compensation == CompensationState::NotStarted
                        }
                        CompensationStatus::InProgress => matches!(
                            e.compensation,
                            CompensationState::Running(_) | CompensationState::Delayed { .. }
                        ),
                        CompensationStatus::Compensated => {
                            e.compensation == CompensationState::Done
                        }
                        CompensationStatus::Failed => e.compensation == CompensationState::Failed,
                        CompensationStatus::Blocked => e.compensation == CompensationState::Blocked,
                    });
                    check(
                        ok,
                        || format!("phase.saga[{}]", id.get()),
                        "disagrees with its execution's compensation",
                    )?;
                    if let Some(flag) = seen.get_mut(exec as usize) {
                        *flag = true;
                    }
                }
                // Every other execution that was ever compensated is in
                // the saga.
                let stray = self
                    .execs
                    .iter()
                    .enumerate()
                    .any(|(i, e)| e.compensation != CompensationState::NotStarted && !seen[i]);
                check(
                    !stray,
                    || "phase.saga".into(),
                    "misses an execution being compensated",
                )
            }
            Phase::Finished(outcome) => {
                let ok = match outcome {
                    RunOutcome::Succeeded => true,
                    RunOutcome::Failed(cause) | RunOutcome::Compensated(cause) => cause_ok(cause),
                    RunOutcome::CompensationFailed { cause, pending } => {
                        cause_ok(cause) && pending.iter().all(|p| in_range(p.step, n))
                    }
                };
                check(ok, || "phase.outcome".into(), "names no step")?;
                check(
                    self.open_steps == 0,
                    || "open_steps".into(),
                    "is not zero on a finished run",
                )?;
                let busy = self.execs.iter().any(|e| {
                    matches!(
                        e.compensation,
                        CompensationState::Running(_) | CompensationState::Delayed { .. }
                    )
                });
                check(
                    !busy,
                    || "execs".into(),
                    "still compensate on a finished run",
                )
            }
        }
    }
}
