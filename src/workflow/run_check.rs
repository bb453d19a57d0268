//! Validation of a run's state read back from a [`Checkpoint`]: a
//! checkpoint is data from outside, so every index, count and id in it is
//! checked against its definition and against the rest of the state before
//! a run resumes from it.
//!
//! The checks are the invariants the run keeps by construction, so a state
//! a run produced always passes, and a state that passes is one the run can
//! continue from without indexing out of range, underflowing a count, or
//! waiting for something that can never happen.
//!
//! [`Checkpoint`]: super::Checkpoint

use super::join::Decision;
use super::run::{
    CompensationState, EdgeState, Exec, ExecState, NONE, Phase, RunState, StepSlot, Timer,
};
use super::{
    AttemptEnd, MAX_ATTEMPTS, MAX_INSTANCES, MAX_ITERATIONS, RunError, StepState, WorkflowDef,
};
use crate::StepId;

mod progress;

/// Refuses the checkpoint unless `ok`, naming the field.
fn check(ok: bool, field: impl FnOnce() -> String, reason: &'static str) -> Result<(), RunError> {
    if ok {
        Ok(())
    } else {
        Err(RunError::InvalidCheckpoint {
            field: field(),
            reason,
        })
    }
}

/// Whether `step` is a step of a definition with `n` steps.
fn in_range(step: StepId, n: usize) -> bool {
    usize::try_from(step.get()).is_ok_and(|i| i < n)
}

fn is_live(state: ExecState) -> bool {
    matches!(state, ExecState::Running(_) | ExecState::Delayed { .. })
}

impl<P> RunState<P> {
    /// Checks the whole state against `def`.
    ///
    /// # Errors
    ///
    /// [`RunError::InvalidCheckpoint`] naming the first field found wrong.
    pub(super) fn validate(&self, def: &WorkflowDef) -> Result<(), RunError> {
        let n = def.len();
        check(
            self.steps.len() == n,
            || "steps".into(),
            "does not have one entry per step of the definition",
        )?;
        check(
            self.edges.len() == def.graph().edge_count(),
            || "edges".into(),
            "does not have one entry per edge of the definition",
        )?;
        check(
            self.started_at <= self.latest,
            || "latest".into(),
            "is before started_at",
        )?;
        check(
            self.execs.len() < NONE as usize && self.attempts.len() < NONE as usize,
            || "execs".into(),
            "has too many entries",
        )?;
        self.check_attempts()?;
        self.check_execs(def)?;
        self.check_completions()?;
        self.check_steps(def)?;
        self.check_waiting(def)?;
        self.check_timers()?;
        self.check_actions(def)?;
        self.check_phase(def)
    }

    /// Attempts: their executions exist, numbers count up per execution,
    /// and an open attempt is the one its execution is running.
    fn check_attempts(&self) -> Result<(), RunError> {
        // Per execution: (attempts, ended attempts) of the step, then of
        // its compensation.
        let mut counts = vec![[(0u32, 0u32); 2]; self.execs.len()];
        for (t, a) in self.attempts.iter().enumerate() {
            let field = |name: &str| format!("attempts[{t}].{name}");
            let exec = self.execs.get(a.exec as usize);
            check(exec.is_some(), || field("exec"), "names no execution")?;
            let Some(exec) = exec else { continue };
            let count = &mut counts[a.exec as usize][usize::from(a.compensation)];
            count.0 += 1;
            count.1 += u32::from(a.end.is_some());
            check(
                a.number == count.0,
                || field("number"),
                "does not count the execution's attempts",
            )?;
            check(
                a.end.is_none() == (a.outcome == AttemptEnd::Running),
                || field("outcome"),
                "disagrees with end",
            )?;
            check(
                a.start <= self.latest
                    && a.end.is_none_or(|end| a.start <= end && end <= self.latest),
                || field("end"),
                "is out of order with start and the latest now",
            )?;
            check(
                a.deadline.is_none() || !a.compensation,
                || field("deadline"),
                "is set on a compensation attempt",
            )?;
            if a.end.is_none() {
                let token = crate::AttemptToken::new(t as u64);
                let running = if a.compensation {
                    exec.compensation == CompensationState::Running(token)
                } else {
                    exec.state == ExecState::Running(token)
                };
                check(
                    running,
                    || field("end"),
                    "is open but its execution does not run it",
                )?;
            }
        }
        for (i, (e, &[(tries, ended), (compensations, undone)])) in
            self.execs.iter().zip(&counts).enumerate()
        {
            check(
                e.tries.attempts == tries
                    && e.tries.failures <= ended
                    && e.compensation_tries.attempts == compensations
                    && e.compensation_tries.failures <= undone,
                || format!("execs[{i}].tries"),
                "does not count the execution's attempts",
            )?;
            check(
                tries <= MAX_ATTEMPTS && compensations <= MAX_ATTEMPTS,
                || format!("execs[{i}].tries"),
                "counts more attempts than the limit",
            )?;
        }
        Ok(())
    }

    /// Executions: their step, instance, iteration, predecessor, place in
    /// the completion order and running attempt.
    fn check_execs(&self, def: &WorkflowDef) -> Result<(), RunError> {
        let n = def.len();
        for (i, e) in self.execs.iter().enumerate() {
            let field = |name: &str| format!("execs[{i}].{name}");
            check(in_range(e.step, n), || field("step"), "names no step")?;
            let meta = def.meta(e.step);
            let slot = &self.steps[e.step.get() as usize];
            check(
                e.instance.is_some() == meta.multi && (e.item.is_none() || e.instance.is_some()),
                || field("instance"),
                "disagrees with the step being multi-instance",
            )?;
            if let Some(k) = e.instance {
                check(
                    k < MAX_INSTANCES && slot.instances.get(k as usize) == Some(&(i as u32)),
                    || field("instance"),
                    "is not this execution's place among the step's instances",
                )?;
            }
            let cap = meta.max_iterations.unwrap_or(1).min(MAX_ITERATIONS);
            check(
                (1..=cap).contains(&e.iteration),
                || field("iteration"),
                "is outside the step's iterations",
            )?;
            let previous_ok = if e.previous == NONE {
                e.iteration == 1
            } else {
                (e.previous as usize) < i
                    && self.execs[e.previous as usize].step == e.step
                    && self.execs[e.previous as usize].iteration.checked_add(1) == Some(e.iteration)
            };
            check(
                previous_ok,
                || field("previous"),
                "is not the step's previous iteration",
            )?;
            check(
                e.horizon as usize <= self.completions.len(),
                || field("horizon"),
                "is beyond the completions",
            )?;
            let completed = e.state == ExecState::Completed;
            check(
                if e.seq == NONE {
                    !completed
                } else {
                    completed && self.completions.get(e.seq as usize) == Some(&(i as u32))
                },
                || field("seq"),
                "is not the execution's place in the completion order",
            )?;
            self.check_exec_state(i, e, slot)?;
        }
        Ok(())
    }

    fn check_exec_state(&self, i: usize, e: &Exec<P>, slot: &StepSlot) -> Result<(), RunError> {
        let field = |name: &str| format!("execs[{i}].{name}");
        match e.state {
            ExecState::Running(token) => {
                let attempt = self.attempts.get(token.get() as usize);
                check(
                    attempt.is_some_and(|a| {
                        a.exec as usize == i && !a.compensation && a.end.is_none()
                    }),
                    || field("state"),
                    "runs an attempt that is not its open attempt",
                )?;
            }
            ExecState::Delayed { until } => {
                check(
                    self.timers.contains(&(until, Timer::Retry(i as u32))),
                    || field("state"),
                    "waits for a retry no timer starts",
                )?;
            }
            ExecState::Completed | ExecState::Failed | ExecState::Cancelled => {}
        }
        if is_live(e.state) {
            check(
                slot.state == StepState::Active
                    && matches!(self.phase, Phase::Running)
                    && (e.instance.is_some() || slot.exec as usize == i),
                || field("state"),
                "runs outside an active step's latest execution",
            )?;
        }
        match e.compensation {
            CompensationState::NotStarted => {}
            CompensationState::Running(token) => {
                let attempt = self.attempts.get(token.get() as usize);
                check(
                    attempt
                        .is_some_and(|a| a.exec as usize == i && a.compensation && a.end.is_none()),
                    || field("compensation"),
                    "runs an attempt that is not its open compensation",
                )?;
            }
            CompensationState::Delayed { until } => {
                check(
                    self.timers
                        .contains(&(until, Timer::CompensationRetry(i as u32))),
                    || field("compensation"),
                    "waits for a retry no timer starts",
                )?;
            }
            CompensationState::Done | CompensationState::Failed | CompensationState::Blocked => {}
        }
        if e.compensation != CompensationState::NotStarted {
            check(
                e.state == ExecState::Completed && !matches!(self.phase, Phase::Running),
                || field("compensation"),
                "is set on an execution that is not being compensated",
            )?;
        }
        Ok(())
    }

    /// The completion order lists each completed execution once, at its
    /// `seq`.
    fn check_completions(&self) -> Result<(), RunError> {
        for (k, &exec) in self.completions.iter().enumerate() {
            check(
                self.execs
                    .get(exec as usize)
                    .is_some_and(|e| e.seq as usize == k),
                || format!("completions[{k}]"),
                "is not a completed execution at this place",
            )?;
        }
        Ok(())
    }

    /// Steps: their counts, executions and instances, and whether their
    /// state agrees with the phase, the edges and the definition.
    fn check_steps(&self, def: &WorkflowDef) -> Result<(), RunError> {
        let running = matches!(self.phase, Phase::Running);
        for (i, exec) in self.execs.iter().enumerate() {
            check(
                def.is_present(exec.step),
                || format!("execs[{i}].step"),
                "is absent for the run's origin",
            )?;
        }
        for (i, edge) in self.edges.iter().enumerate() {
            check(
                def.is_edge_present(i) || *edge == EdgeState::Pending,
                || format!("edges[{i}]"),
                "is resolved, but absent for the run's origin",
            )?;
        }
        let mut open = 0usize;
        for (i, slot) in self.steps.iter().enumerate() {
            let step = StepId::new(i as u64);
            let field = |name: &str| format!("steps[{i}].{name}");
            let meta = def.meta(step);
            if !slot.state.is_terminal() {
                open += 1;
            }
            check(
                u64::from(slot.fired) + u64::from(slot.skipped) <= u64::from(meta.in_degree),
                || field("fired"),
                "counts more edges than the step has",
            )?;
            check(
                slot.exec == NONE
                    || self
                        .execs
                        .get(slot.exec as usize)
                        .is_some_and(|e| e.step == step),
                || field("exec"),
                "is not an execution of the step",
            )?;
            check(
                slot.instances.len() <= MAX_INSTANCES as usize
                    && (slot.instances.is_empty() || meta.multi)
                    && slot.instances.iter().enumerate().all(|(k, &e)| {
                        self.execs
                            .get(e as usize)
                            .is_some_and(|e| e.step == step && e.instance == Some(k as u32))
                    }),
                || field("instances"),
                "are not the step's instances in order",
            )?;
            let live = slot
                .instances
                .iter()
                .filter(|&&e| is_live(self.execs[e as usize].state))
                .count();
            let failed = slot
                .instances
                .iter()
                .filter(|&&e| self.execs[e as usize].state == ExecState::Failed)
                .count();
            check(
                slot.open_instances as usize <= slot.instances.len()
                    && slot.failed_instances as usize <= slot.instances.len(),
                || field("open_instances"),
                "counts more instances than the step has",
            )?;
            let unstarted = slot.exec == NONE && slot.instances.is_empty();
            if !def.is_present(step) {
                check(
                    slot.state == StepState::Skipped
                        && unstarted
                        && slot.fired == 0
                        && slot.skipped == 0,
                    || field("state"),
                    "is not the untouched skip of a step absent for the run's origin",
                )?;
                continue;
            }
            let ok = match slot.state {
                StepState::Pending => {
                    unstarted && running && self.check_pending(def, step, slot).is_ok()
                }
                StepState::Waiting => meta.wait && unstarted && running,
                StepState::Expanding => meta.multi && unstarted && running,
                StepState::Active if meta.wait => false,
                StepState::Active if meta.multi => {
                    running
                        && live > 0
                        && slot.open_instances as usize == live
                        && slot.failed_instances as usize == failed
                }
                StepState::Active => {
                    running
                        && self
                            .execs
                            .get(slot.exec as usize)
                            .is_some_and(|e| is_live(e.state))
                }
                StepState::Failed => !running,
                StepState::Completed | StepState::Skipped | StepState::Cancelled => true,
            };
            check(ok, || field("state"), "is inconsistent with the run")?;
            if running {
                self.check_edges_out(def, step, slot.state)?;
            }
        }
        check(
            self.open_steps == open,
            || "open_steps".into(),
            "does not count the steps still open",
        )
    }

    /// A pending step: its counts match its resolved incoming edges, and its
    /// join is not yet decided (it would have started or been skipped).
    fn check_pending(&self, def: &WorkflowDef, step: StepId, slot: &StepSlot) -> Result<(), ()> {
        if def.entries().contains(&step) {
            return Err(());
        }
        let (mut fired, mut skipped) = (0u32, 0u32);
        for &(_, edge) in def.predecessor_edges(step) {
            match self.edges[edge.index()] {
                EdgeState::Fired => fired += 1,
                EdgeState::Skipped => skipped += 1,
                EdgeState::Pending => {}
            }
        }
        if (fired, skipped) != (slot.fired, slot.skipped) {
            return Err(());
        }
        let m = def.meta(step).in_degree;
        let undecided = def.meta(step).join.decide(fired, skipped, m) == Decision::Wait;
        if undecided { Ok(()) } else { Err(()) }
    }

    /// While running, an edge is resolved exactly when its source has
    /// ended, and fired only if its source completed.
    fn check_edges_out(
        &self,
        def: &WorkflowDef,
        step: StepId,
        state: StepState,
    ) -> Result<(), RunError> {
        for &(_, edge) in def.successor_edges(step) {
            let ok = match self.edges[edge.index()] {
                EdgeState::Pending => !state.is_terminal(),
                EdgeState::Fired => state == StepState::Completed,
                EdgeState::Skipped => state.is_terminal(),
            };
            check(
                ok,
                || format!("edges[{}]", edge.index()),
                "disagrees with the state of its source step",
            )?;
        }
        Ok(())
    }
}
