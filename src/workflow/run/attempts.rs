//! Starting executions and attempts, and taking their results: successes
//! with their branch choices, failures and retries, multi-instance
//! expansions and signals.

use super::{
    Attempt, AttemptEnd, CompensationState, Exec, ExecState, NONE, StepState, Timer, Tries,
    WorkflowRun,
};
use crate::resilience::RetryPolicy;
use crate::workflow::{RunAction, RunError, StepFailure, StepKind, StepOutput, WorkflowEvent};
use crate::{AttemptToken, Instant, StepId};

impl<P: Clone> WorkflowRun<P> {
    // ---- starting work -------------------------------------------------

    pub(super) fn make_ready(&mut self, step: StepId, now: Instant) {
        // Copied out rather than holding a clone of the `Arc` (two atomic
        // operations per step on the hot path).
        let meta = self.def.meta(step);
        let wait = if meta.wait {
            match &self.step_def(step).kind {
                StepKind::Wait { timeout, .. } => Some(*timeout),
                _ => None,
            }
        } else {
            None
        };
        let multi_instance = meta.multi;
        if let Some(timeout) = wait {
            self.slot_mut(step).state = StepState::Waiting;
            self.state.waiting.push(step);
            if let Some(timeout) = timeout {
                self.timer(now.saturating_add(timeout), Timer::Wait(step));
            }
        } else if multi_instance {
            self.slot_mut(step).state = StepState::Expanding;
            self.state.actions.push_back(RunAction::Expand { step });
        } else {
            self.slot_mut(step).state = StepState::Active;
            let exec = self.new_exec(step, None, 1, None, NONE);
            self.start_attempt(exec, now);
        }
    }

    pub(super) fn new_exec(
        &mut self,
        step: StepId,
        instance: Option<u32>,
        iteration: u32,
        item: Option<P>,
        previous: u32,
    ) -> u32 {
        let index = self.state.execs.len() as u32;
        self.state.execs.push(Exec {
            step,
            instance,
            iteration,
            item,
            previous,
            horizon: self.state.completions.len() as u32,
            seq: NONE,
            state: ExecState::Cancelled,
            tries: Tries::default(),
            output: None,
            compensation: CompensationState::NotStarted,
            compensation_tries: Tries::default(),
        });
        self.slot_mut(step).exec = index;
        index
    }

    pub(super) fn record_completion(&mut self, exec: u32) {
        self.state.execs[exec as usize].seq = self.state.completions.len() as u32;
        self.state.completions.push(exec);
    }

    pub(super) fn new_attempt(
        &mut self,
        exec: u32,
        compensation: bool,
        now: Instant,
    ) -> (AttemptToken, u32) {
        let token = AttemptToken::new(self.state.attempts.len() as u64);
        let timeout = self.def.meta(self.state.execs[exec as usize].step).timeout;
        let e = &mut self.state.execs[exec as usize];
        let tries = if compensation {
            &mut e.compensation_tries
        } else {
            &mut e.tries
        };
        tries.attempts += 1;
        let number = tries.attempts;
        let deadline = timeout
            .filter(|_| !compensation)
            .map(|timeout| now.saturating_add(timeout));
        self.state.attempts.push(Attempt {
            exec,
            number,
            compensation,
            start: now,
            end: None,
            deadline,
            outcome: AttemptEnd::Running,
        });
        if let Some(deadline) = deadline {
            self.timer(deadline, Timer::AttemptTimeout(token));
        }
        (token, number)
    }

    pub(super) fn start_attempt(&mut self, exec: u32, now: Instant) {
        let (token, attempt) = self.new_attempt(exec, false, now);
        let e = &mut self.state.execs[exec as usize];
        e.state = ExecState::Running(token);
        let (step, instance, iteration) = (e.step, e.instance, e.iteration);
        self.state.actions.push_back(RunAction::Start {
            step,
            token,
            attempt,
            instance,
            iteration,
        });
        let run = self.state.id;
        self.emit(WorkflowEvent::StepStarted { run, step, attempt });
    }

    pub(super) fn end_attempt(&mut self, token: AttemptToken, outcome: AttemptEnd, now: Instant) {
        if let Some(attempt) = self.state.attempts.get_mut(token.get() as usize) {
            attempt.end = Some(now);
            attempt.outcome = outcome;
        }
    }

    // ---- results -------------------------------------------------------

    pub(super) fn on_success(
        &mut self,
        token: AttemptToken,
        output: StepOutput<P>,
        now: Instant,
    ) -> Result<(), RunError> {
        let exec = self.running(token, false)?;
        let step = self.state.execs[exec as usize].step;
        let decision = self.check_branches(step, &output.branches, output.again)?;
        let max_iterations = self.def.meta(step).max_iterations;
        if output.again && max_iterations.is_none() {
            return Err(RunError::NotALoop(step));
        }
        self.end_attempt(token, AttemptEnd::Succeeded, now);
        let e = &mut self.state.execs[exec as usize];
        e.state = ExecState::Completed;
        e.output = output.value;
        let iteration = e.iteration;
        self.record_completion(exec);

        if !self.slot_mut(step).instances.is_empty() {
            self.instance_ended(step, None, now);
        } else if output.again {
            if max_iterations.is_some_and(|max| iteration < max) {
                let next = self.new_exec(step, None, iteration + 1, None, exec);
                self.start_attempt(next, now);
            } else {
                let reason = format!("the loop reached its cap of {iteration} iterations");
                self.fail_step(step, reason, now);
            }
        } else {
            // A step without labelled edges fires them all: no label lookups.
            self.complete_step(step, decision.then_some(&output.branches[..]), now);
        }
        Ok(())
    }

    /// Checks a step's branch choice against its labelled edges; `Ok`
    /// says whether the step has labelled edges (is a decision).
    pub(super) fn check_branches(
        &self,
        step: StepId,
        chosen: &[String],
        again: bool,
    ) -> Result<bool, RunError> {
        let invalid = |reason| {
            Err(RunError::InvalidBranches {
                step,
                chosen: chosen.to_vec(),
                reason,
            })
        };
        if !self.def.meta(step).decision {
            return if chosen.is_empty() {
                Ok(false)
            } else {
                invalid("the step has no labelled branches")
            };
        }
        if again {
            // A loop that is also a decision chooses on its last iteration.
            return if chosen.is_empty() {
                Ok(true)
            } else {
                invalid("a loop chooses its branches on its last iteration")
            };
        }
        if chosen.is_empty() {
            return invalid("a decision step must choose a branch");
        }
        let labels: Vec<&str> = self.def.successors(step).filter_map(|(_, l)| l).collect();
        if chosen.iter().any(|c| !labels.contains(&c.as_str())) {
            return invalid("a chosen label has no branch");
        }
        if self.step_def(step).choice == crate::workflow::Choice::Exclusive && chosen.len() != 1 {
            return invalid("an exclusive choice takes exactly one branch");
        }
        Ok(true)
    }

    pub(super) fn attempt_failed(&mut self, exec: u32, failure: StepFailure, now: Instant) {
        let step = self.state.execs[exec as usize].step;
        if let Some(until) = self.retry_at(exec, false, &failure, now) {
            let e = &mut self.state.execs[exec as usize];
            e.state = ExecState::Delayed { until };
            let attempt = e.tries.attempts;
            self.timer(until, Timer::Retry(exec));
            let run = self.state.id;
            self.emit(WorkflowEvent::StepRetried {
                run,
                step,
                attempt,
                at: until,
            });
            return;
        }
        self.state.execs[exec as usize].state = ExecState::Failed;
        if self.slot_mut(step).instances.is_empty() {
            self.fail_step(step, failure.reason, now);
        } else {
            self.instance_ended(step, Some(failure.reason), now);
        }
    }

    /// Counts a failure of `exec` (or of its compensation) and asks the
    /// step's retry policy when to try again.
    pub(super) fn retry_at(
        &mut self,
        exec: u32,
        compensation: bool,
        failure: &StepFailure,
        now: Instant,
    ) -> Option<Instant> {
        let step = self.state.execs[exec as usize].step;
        let policy = self.step_def(step).retry;
        let e = &mut self.state.execs[exec as usize];
        let tries = if compensation {
            &mut e.compensation_tries
        } else {
            &mut e.tries
        };
        tries.failures += 1;
        if !failure.retryable {
            return None;
        }
        let delay = policy.next_delay(tries.failures, tries.last_delay, &mut self.state.rng)?;
        tries.last_delay = Some(delay);
        // A retry that would fall at `Instant::MAX` would never happen:
        // the failure is final instead of leaving the step waiting forever.
        let at = now.saturating_add(delay);
        (at != Instant::MAX).then_some(at)
    }

    /// One instance of a multi-instance step ended (`failure` if for good).
    pub(super) fn instance_ended(&mut self, step: StepId, failure: Option<String>, now: Instant) {
        let tolerated = self
            .step_def(step)
            .multi_instance
            .map_or(0, |m| m.tolerated_failures);
        let slot = self.slot_mut(step);
        slot.open_instances = slot.open_instances.saturating_sub(1);
        if failure.is_some() {
            slot.failed_instances += 1;
        }
        let (failed, open) = (slot.failed_instances, slot.open_instances);
        if failed > tolerated {
            let reason = format!(
                "{failed} instances failed, {tolerated} tolerated; last: {}",
                failure.unwrap_or_default()
            );
            self.fail_step(step, reason, now);
        } else if open == 0 {
            self.complete_step(step, Some(&[]), now);
        }
    }

    pub(super) fn on_expanded(
        &mut self,
        step: StepId,
        items: Vec<P>,
        now: Instant,
    ) -> Result<(), RunError> {
        let slot = self.slot(step).ok_or(RunError::UnknownStep(step))?;
        if slot.state != StepState::Expanding {
            return Err(RunError::UnexpectedInput {
                step,
                expected: "waiting for its items",
            });
        }
        if items.len() > crate::workflow::MAX_INSTANCES as usize {
            return Err(RunError::TooManyItems {
                step,
                items: items.len(),
                limit: crate::workflow::MAX_INSTANCES,
            });
        }
        if items.is_empty() {
            self.complete_step(step, Some(&[]), now);
            return Ok(());
        }
        self.slot_mut(step).state = StepState::Active;
        let count = items.len() as u32;
        let execs: Vec<u32> = items
            .into_iter()
            .enumerate()
            .map(|(i, item)| self.new_exec(step, Some(i as u32), 1, Some(item), NONE))
            .collect();
        let slot = self.slot_mut(step);
        slot.open_instances = count;
        slot.instances = execs.clone();
        for exec in execs {
            self.start_attempt(exec, now);
        }
        Ok(())
    }

    pub(super) fn on_signal(
        &mut self,
        name: &str,
        payload: Option<P>,
        now: Instant,
    ) -> Result<(), RunError> {
        let listeners: Vec<StepId> = self
            .state
            .waiting
            .iter()
            .copied()
            .filter(|&step| match &self.step_def(step).kind {
                StepKind::Wait { signals, .. } => signals.iter().any(|s| s == name),
                _ => false,
            })
            .collect();
        if listeners.is_empty() {
            return Err(RunError::NoWaiter(name.to_string()));
        }
        for step in listeners {
            // An earlier listener's completion may have cancelled this one
            // (a cancelling join): ending it again would count it twice.
            if self.slot(step).map(|s| s.state) == Some(StepState::Waiting) {
                self.end_wait(step, payload.clone(), name, now);
            }
        }
        Ok(())
    }

    /// A wait step ends with `label` (a signal's name or the timeout).
    pub(super) fn end_wait(&mut self, step: StepId, payload: Option<P>, label: &str, now: Instant) {
        self.state.waiting.retain(|&s| s != step);
        let exec = self.new_exec(step, None, 1, None, NONE);
        let e = &mut self.state.execs[exec as usize];
        e.state = ExecState::Completed;
        e.output = payload;
        self.record_completion(exec);
        self.complete_step(step, Some(&[label.to_string()]), now);
    }
}
