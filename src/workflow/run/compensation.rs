//! Failing for good and compensating: a run's [`Saga`].

use super::{AttemptEnd, CompensationState, Phase, Timer, WorkflowRun};
use crate::workflow::{
    FailureCause, PendingCompensation, RunAction, RunError, RunOutcome, Saga, StepCancelReason,
    StepFailure, WorkflowDef, WorkflowEvent,
};
use crate::{AttemptToken, Instant, StepId};

/// The saga of a run of `def` that completed `completions` (executions,
/// in completion order, with their steps), before it compensates: each
/// step depends on its predecessors, a loop on itself (its earlier
/// iterations fed the later ones), and every completed execution of a
/// compensable step is recorded.
pub(in crate::workflow) fn run_saga(
    def: &WorkflowDef,
    completions: impl IntoIterator<Item = (u32, StepId)>,
) -> Saga<StepId, u32> {
    let mut saga = Saga::new();
    for (step, step_def) in def.steps() {
        let looped = step_def.max_iterations.is_some();
        let depends = def
            .predecessors(step)
            .map(|(s, _)| s)
            .chain(looped.then_some(step));
        // Recording only fails once compensating.
        let _ = saga.depend(step, depends);
    }
    for (exec, step) in completions {
        if def.step(step).is_some_and(|s| s.compensable) {
            let _ = saga.record(step, exec, []);
        }
    }
    saga
}

impl<P: Clone> WorkflowRun<P> {
    pub(super) fn fail_step(&mut self, step: StepId, reason: String, now: Instant) {
        // A multi-instance step fails with instances still open: `abort`
        // only stops steps that are not terminal, so stop them here, or
        // their late results would be accepted while compensating.
        self.stop_execs(step, StepCancelReason::RunAborted, now);
        self.slot_mut(step).state = super::StepState::Failed;
        self.state.open_steps = self.state.open_steps.saturating_sub(1);
        let run = self.state.id;
        self.emit(WorkflowEvent::StepFailed { run, step });
        self.abort(FailureCause::StepFailed { step, reason }, now);
    }

    /// Stops everything still open and starts compensating.
    pub(super) fn abort(&mut self, cause: FailureCause, now: Instant) {
        let run = self.state.id;
        self.emit(WorkflowEvent::RunFailed {
            run,
            cause: cause.clone(),
        });
        for i in 0..self.state.steps.len() {
            let step = StepId::new(i as u64);
            if !self.state.steps[i].state.is_terminal() {
                self.stop_step(step, StepCancelReason::RunAborted, now);
            }
        }
        self.work.clear();
        let execs = &self.state.execs;
        let mut saga = run_saga(
            &self.def,
            self.state
                .completions
                .iter()
                .map(|&exec| (exec, execs[exec as usize].step)),
        );
        saga.compensate();
        self.state.phase = Phase::Compensating { cause, saga };
        self.next_compensation(now);
    }

    /// Starts the next compensation, or ends the run if none is left.
    fn next_compensation(&mut self, now: Instant) {
        let Phase::Compensating { saga, .. } = &mut self.state.phase else {
            return;
        };
        let given_up = saga.undone_len();
        let next = saga.poll_compensation().map(|c| *c.value);
        // Executions met blocked on the way.
        for undone in saga.undone().skip(given_up) {
            if let Some(e) = self.state.execs.get_mut(*undone.value as usize) {
                e.compensation = CompensationState::Blocked;
            }
        }
        if let Some(exec) = next {
            self.start_compensation(exec, now);
            return;
        }
        let Phase::Compensating { cause, saga } =
            std::mem::replace(&mut self.state.phase, Phase::Running)
        else {
            return;
        };
        let run = self.state.id;
        let outcome = if saga.is_empty() {
            RunOutcome::Failed(cause)
        } else {
            let pending: Vec<PendingCompensation> = saga
                .undone()
                .map(|undone| {
                    let e = &self.state.execs[*undone.value as usize];
                    PendingCompensation {
                        step: e.step,
                        instance: e.instance,
                        iteration: e.iteration,
                        failure: undone.failure.map(str::to_string),
                    }
                })
                .collect();
            let complete = pending.is_empty();
            self.emit(WorkflowEvent::RunCompensated { run, complete });
            if complete {
                RunOutcome::Compensated(cause)
            } else {
                RunOutcome::CompensationFailed { cause, pending }
            }
        };
        self.finish(outcome);
    }

    pub(super) fn start_compensation(&mut self, exec: u32, now: Instant) {
        let (token, attempt) = self.new_attempt(exec, true, now);
        let e = &mut self.state.execs[exec as usize];
        e.compensation = CompensationState::Running(token);
        self.state.actions.push_back(RunAction::Compensate {
            step: e.step,
            token,
            attempt,
            instance: e.instance,
            iteration: e.iteration,
        });
    }

    pub(super) fn on_compensated(
        &mut self,
        token: AttemptToken,
        result: Result<(), StepFailure>,
        now: Instant,
    ) -> Result<(), RunError> {
        let exec = self.running(token, true)?;
        let step = self.state.execs[exec as usize].step;
        let outcome = match result {
            Ok(()) => {
                self.end_attempt(token, AttemptEnd::Succeeded, now);
                self.state.execs[exec as usize].compensation = CompensationState::Done;
                let run = self.state.id;
                self.emit(WorkflowEvent::StepCompensated { run, step });
                None
            }
            Err(failure) => {
                self.end_attempt(token, AttemptEnd::Failed, now);
                if let Some(until) = self.retry_at(exec, true, &failure, now) {
                    self.state.execs[exec as usize].compensation =
                        CompensationState::Delayed { until };
                    self.timer(until, Timer::CompensationRetry(exec));
                    return Ok(());
                }
                // Left for manual handling; the saga blocks the
                // compensation of every step it depends on.
                self.state.execs[exec as usize].compensation = CompensationState::Failed;
                Some(failure.reason)
            }
        };
        if let Phase::Compensating { saga, .. } = &mut self.state.phase {
            // The compensation in progress is this execution's.
            if let Some(id) = saga.in_progress() {
                let _ = match outcome {
                    None => saga.compensated(id),
                    Some(reason) => saga.failed(id, reason),
                };
            }
        }
        self.next_compensation(now);
        Ok(())
    }
}
