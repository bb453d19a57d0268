//! [`WorkflowRun`]: the sans-IO state machine of one execution of a
//! workflow.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use petgraph::graph::EdgeIndex;

use super::definition::node;
use super::{
    FailureCause, RunAction, RunError, RunInput, RunOutcome, StepCancelReason, StepDef,
    StepFailure, StepInput, StepOutput, WorkflowDef, WorkflowEvent,
};
use crate::Observer;
use crate::hash::mix;
use crate::{AttemptToken, Instant, StepId, WorkflowId};

mod timers;

mod attempts;
mod compensation;
mod flow;
mod state;

pub(super) use compensation::run_saga;
pub(super) use state::{
    Attempt, CompensationState, EdgeState, Exec, ExecState, NONE, Phase, RunState, StepSlot, Timer,
    Tries,
};
pub use state::{AttemptEnd, StepState, TimelineEntry};

/// The sans-IO state machine of one workflow execution.
///
/// A run hands out [`RunAction`]s ([`poll_action`](Self::poll_action)) and
/// the next instant it needs waking ([`poll_timeout`](Self::poll_timeout)),
/// and takes [`RunInput`]s ([`apply`](Self::apply), or one of the named
/// shortcuts). It never reads a clock: every input comes with `now`. An
/// input the run cannot accept — a stale token, an unknown step, a branch
/// the step does not have — is a [`RunError`] and changes nothing.
///
/// Attempts are fenced: each [`RunAction::Start`] carries a fresh
/// [`AttemptToken`], and a result is accepted only for the attempt that is
/// still running, so a late result after a timeout or a cancellation is
/// refused.
///
/// When a step fails for good (after its retry policy), when the run is
/// cancelled or when its deadline passes, the run cancels every running
/// attempt and compensates each completed execution of a compensable step,
/// one at a time, in reverse order of completion, before it ends.
///
/// ```
/// use std::sync::Arc;
/// use taskweave::workflow::{RunAction, RunOutcome, StepDef, StepOutput, WorkflowDef, WorkflowRun};
/// use taskweave::{Instant, WorkflowId};
///
/// let def = Arc::new(
///     WorkflowDef::builder("greet", 1)
///         .step(StepDef::local("hello"))
///         .step(StepDef::local("world"))
///         .edge("hello", "world")
///         .build()?,
/// );
/// let mut run: WorkflowRun<String> = WorkflowRun::new(def, WorkflowId::new(1), None, Instant::ZERO);
/// let mut said = Vec::new();
/// while let Some(action) = run.poll_action() {
///     match action {
///         RunAction::Start { step, token, .. } => {
///             let name = run.definition().step(step).unwrap().id.clone();
///             said.push(name.clone());
///             run.succeed(token, StepOutput::new(name), Instant::ZERO)?;
///         }
///         RunAction::Finished => break,
///         other => unreachable!("{other:?}"),
///     }
/// }
/// assert_eq!(said, ["hello", "world"]);
/// assert_eq!(run.outcome(), Some(&RunOutcome::Succeeded));
/// assert_eq!(run.output().map(String::as_str), Some("world"));
/// # Ok::<(), taskweave::Error>(())
/// ```
pub struct WorkflowRun<P> {
    def: Arc<WorkflowDef>,
    /// Everything a checkpoint stores.
    state: RunState<P>,
    observer: Option<Box<dyn Observer<WorkflowEvent> + Send>>,
    /// Edge resolutions waiting to be applied (scratch, always empty between
    /// inputs).
    work: VecDeque<(EdgeIndex<u32>, StepId, bool)>,
}

/// The seed of a run's random choices: its id mixed with its
/// definition's hash.
pub(super) fn run_seed(id: WorkflowId, def: &WorkflowDef) -> u64 {
    mix(id.get(), def.content_hash())
}

impl<P: fmt::Debug> fmt::Debug for WorkflowRun<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkflowRun")
            .field("definition", &self.def.name())
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl<P: Clone> WorkflowRun<P> {
    /// Starts a run of `def` at `now`. `input` is handed to the entry
    /// steps. The run's random choices (retry jitter) are seeded from `id`
    /// and the definition's hash, so the same id replays the same way.
    pub fn new(def: Arc<WorkflowDef>, id: WorkflowId, input: Option<P>, now: Instant) -> Self {
        let seed = run_seed(id, &def);
        Self::observed(def, id, input, now, seed, None)
    }

    /// Like [`new`](Self::new), with an observer that also sees the
    /// `RunStarted` event.
    pub fn with_observer(
        def: Arc<WorkflowDef>,
        id: WorkflowId,
        input: Option<P>,
        now: Instant,
        observer: impl Observer<WorkflowEvent> + Send + 'static,
    ) -> Self {
        let seed = run_seed(id, &def);
        Self::observed(def, id, input, now, seed, Some(Box::new(observer)))
    }

    /// A run whose random choices draw from `seed`: its id and definition
    /// (see [`run_seed`]), or, to replay a journal recorded under another
    /// definition, the recorded one.
    pub(super) fn observed(
        def: Arc<WorkflowDef>,
        id: WorkflowId,
        input: Option<P>,
        now: Instant,
        seed: u64,
        observer: Option<Box<dyn Observer<WorkflowEvent> + Send>>,
    ) -> Self {
        let state = RunState::new(&def, id, input, now, seed);
        let mut run = WorkflowRun {
            def,
            state,
            observer,
            work: VecDeque::new(),
        };
        run.emit(WorkflowEvent::RunStarted { run: id });
        if let Some(deadline) = run.def.deadline() {
            run.timer(now.saturating_add(deadline), Timer::Deadline);
        }
        let def = Arc::clone(&run.def);
        for &entry in def.entries() {
            run.make_ready(entry, now);
        }
        run
    }

    /// Sets (or replaces) the observer.
    pub fn set_observer(&mut self, observer: impl Observer<WorkflowEvent> + Send + 'static) {
        self.observer = Some(Box::new(observer));
    }

    /// The definition.
    pub fn definition(&self) -> &Arc<WorkflowDef> {
        &self.def
    }

    /// The run's id.
    pub fn id(&self) -> WorkflowId {
        self.state.id
    }

    /// When the run started.
    pub fn started_at(&self) -> Instant {
        self.state.started_at
    }

    /// The next action, if any.
    #[must_use = "an action must be carried out, or the run waits forever"]
    pub fn poll_action(&mut self) -> Option<RunAction> {
        self.state.actions.pop_front()
    }

    /// The earliest instant at which a timer may fire: wake the run then
    /// with [`handle_timeout`](Self::handle_timeout). The instant may belong
    /// to a timer that no longer matters; waking early is harmless. It may
    /// be at or before [`latest_now`](Self::latest_now) when a timer was set
    /// during the last `handle_timeout` for an instant already reached.
    /// Never [`Instant::MAX`]: that is "never".
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.state.timers.first().map(|&(at, _)| at)
    }

    /// How the run ended, once it has.
    pub fn outcome(&self) -> Option<&RunOutcome> {
        match &self.state.phase {
            Phase::Finished(outcome) => Some(outcome),
            _ => None,
        }
    }

    /// Whether the run has ended.
    pub fn is_finished(&self) -> bool {
        matches!(self.state.phase, Phase::Finished(_))
    }

    /// Whether the run is compensating.
    pub fn is_compensating(&self) -> bool {
        matches!(self.state.phase, Phase::Compensating { .. })
    }

    /// The state of `step`.
    pub fn step_state(&self, step: StepId) -> Option<StepState> {
        self.slot(step).map(|slot| slot.state)
    }

    /// The output of a completed step (of its last iteration, for a loop);
    /// `None` for a multi-instance step — see [`outputs`](Self::outputs).
    pub fn step_output(&self, step: StepId) -> Option<&P> {
        let slot = self.slot(step)?;
        if slot.state != StepState::Completed || !slot.instances.is_empty() {
            return None;
        }
        self.state.execs.get(slot.exec as usize)?.output.as_ref()
    }

    /// Every output `step` contributes to its successors' inputs: one per
    /// completed instance of a multi-instance step, otherwise at most one.
    pub fn outputs(&self, step: StepId) -> Vec<&P> {
        self.outputs_before(step, u32::MAX)
    }

    /// The outputs of `step`'s executions that completed before the
    /// `horizon`-th completion of the run.
    fn outputs_before(&self, step: StepId, horizon: u32) -> Vec<&P> {
        let Some(slot) = self.slot(step) else {
            return Vec::new();
        };
        if slot.state != StepState::Completed {
            return Vec::new();
        }
        let execs = if slot.instances.is_empty() {
            std::slice::from_ref(&slot.exec)
        } else {
            &slot.instances[..]
        };
        execs
            .iter()
            .filter_map(|&e| self.state.execs.get(e as usize))
            .filter(|exec| exec.state == ExecState::Completed && exec.seq < horizon)
            .filter_map(|exec| exec.output.as_ref())
            .collect()
    }

    /// The run's output: that of the definition's
    /// [output step](WorkflowDef::output).
    pub fn output(&self) -> Option<&P> {
        self.step_output(self.def.output()?)
    }

    /// The input the run was started with (for the driver's expanders).
    #[cfg_attr(not(feature = "driver"), allow(dead_code))]
    pub(crate) fn run_input(&self) -> Option<&P> {
        self.state.input.as_ref()
    }

    /// The input of the attempt `token` (a step attempt or a compensation
    /// attempt).
    ///
    /// # Errors
    ///
    /// [`RunError::UnknownAttempt`].
    pub fn input(&self, token: AttemptToken) -> Result<StepInput<P>, RunError> {
        let attempt = self.attempt(token)?;
        let exec = &self.state.execs[attempt.exec as usize];
        let step = exec.step;
        let run_input = if self.def.predecessors(step).len() == 0 {
            self.state.input.clone()
        } else {
            None
        };
        let mut inputs = Vec::new();
        // Only what had completed when the execution began: a
        // discriminator's late branches do not leak into its input.
        for from in self.def.input_steps(step) {
            let outputs = self.outputs_before(from, exec.horizon);
            inputs.extend(outputs.into_iter().map(|v| (from, v.clone())));
        }
        let previous = self
            .state
            .execs
            .get(exec.previous as usize)
            .and_then(|prev| prev.output.clone());
        Ok(StepInput {
            step,
            token,
            attempt: attempt.number,
            iteration: exec.iteration,
            run_input,
            inputs,
            item: exec.instance.zip(exec.item.clone()),
            previous,
        })
    }

    /// The output of the execution compensated by compensation attempt
    /// `token`.
    ///
    /// # Errors
    ///
    /// [`RunError::UnknownAttempt`].
    pub fn compensated_output(&self, token: AttemptToken) -> Result<Option<&P>, RunError> {
        let attempt = self.attempt(token)?;
        Ok(self.state.execs[attempt.exec as usize].output.as_ref())
    }

    /// Every attempt so far, in start order: the run's timeline.
    pub fn timeline(&self) -> impl Iterator<Item = TimelineEntry> + '_ {
        self.state.attempts.iter().enumerate().map(|(i, attempt)| {
            let exec = &self.state.execs[attempt.exec as usize];
            TimelineEntry {
                step: exec.step,
                token: AttemptToken::new(i as u64),
                instance: exec.instance,
                iteration: exec.iteration,
                attempt: attempt.number,
                compensation: attempt.compensation,
                start: attempt.start,
                end: attempt.end,
                outcome: attempt.outcome,
            }
        })
    }

    /// The step ids waiting for a signal, in the order they began waiting.
    pub fn waiting(&self) -> &[StepId] {
        &self.state.waiting
    }

    /// Applies one input: the single entry point every shortcut goes
    /// through, and what a journal replays.
    ///
    /// `now` earlier than the latest `now` the run accepted
    /// ([`latest_now`](Self::latest_now)) counts as that latest one: a
    /// clock that steps back makes no time pass, and fires nothing new.
    ///
    /// # Errors
    ///
    /// A [`RunError`] if the input cannot be accepted; the run is then
    /// unchanged.
    pub fn apply(&mut self, input: RunInput<P>, now: Instant) -> Result<(), RunError> {
        if self.is_finished() {
            return match input {
                RunInput::Tick => Ok(()),
                _ => Err(RunError::Finished),
            };
        }
        // A clock that went back counts as no time passing.
        let now = now.max(self.state.latest);
        let result = self.apply_at(input, now);
        if result.is_ok() {
            self.state.latest = now;
        }
        result
    }

    fn apply_at(&mut self, input: RunInput<P>, now: Instant) -> Result<(), RunError> {
        match input {
            RunInput::Succeeded { token, output } => self.on_success(token, output, now),
            RunInput::Failed { token, failure } => {
                let exec = self.running(token, false)?;
                self.end_attempt(token, AttemptEnd::Failed, now);
                self.attempt_failed(exec, failure, now);
                Ok(())
            }
            RunInput::Expanded { step, items } => self.on_expanded(step, items, now),
            RunInput::Signal { name, payload } => self.on_signal(&name, payload, now),
            RunInput::Compensated { token, result } => self.on_compensated(token, result, now),
            RunInput::CancelStep { step } => {
                let slot = self.slot(step).ok_or(RunError::UnknownStep(step))?;
                if self.is_compensating() {
                    return Err(RunError::Compensating);
                }
                if slot.state.is_terminal() {
                    return Err(RunError::UnexpectedInput {
                        step,
                        expected: "still open",
                    });
                }
                self.stop_step(step, StepCancelReason::StepCancelled, now);
                self.drain_edges(now);
                self.check_succeeded();
                Ok(())
            }
            RunInput::Cancel => {
                if !matches!(self.state.phase, Phase::Running) {
                    return Err(RunError::Compensating);
                }
                self.abort(FailureCause::Cancelled, now);
                Ok(())
            }
            RunInput::Tick => {
                self.fire_timers(now);
                Ok(())
            }
        }
    }

    /// Reports a successful attempt.
    ///
    /// # Errors
    ///
    /// See [`apply`](Self::apply).
    pub fn succeed(
        &mut self,
        token: AttemptToken,
        output: StepOutput<P>,
        now: Instant,
    ) -> Result<(), RunError> {
        self.apply(RunInput::Succeeded { token, output }, now)
    }

    /// Reports a failed attempt.
    ///
    /// # Errors
    ///
    /// See [`apply`](Self::apply).
    pub fn fail(
        &mut self,
        token: AttemptToken,
        failure: StepFailure,
        now: Instant,
    ) -> Result<(), RunError> {
        self.apply(RunInput::Failed { token, failure }, now)
    }

    /// Gives a multi-instance step its items.
    ///
    /// # Errors
    ///
    /// See [`apply`](Self::apply).
    pub fn expand(&mut self, step: StepId, items: Vec<P>, now: Instant) -> Result<(), RunError> {
        self.apply(RunInput::Expanded { step, items }, now)
    }

    /// Sends a named signal to the waiting steps that listen for it.
    ///
    /// # Errors
    ///
    /// See [`apply`](Self::apply).
    pub fn signal(
        &mut self,
        name: impl Into<String>,
        payload: Option<P>,
        now: Instant,
    ) -> Result<(), RunError> {
        let name = name.into();
        self.apply(RunInput::Signal { name, payload }, now)
    }

    /// Reports a compensation attempt.
    ///
    /// # Errors
    ///
    /// See [`apply`](Self::apply).
    pub fn compensated(
        &mut self,
        token: AttemptToken,
        result: Result<(), StepFailure>,
        now: Instant,
    ) -> Result<(), RunError> {
        self.apply(RunInput::Compensated { token, result }, now)
    }

    /// Cancels one step; its branch is skipped.
    ///
    /// # Errors
    ///
    /// See [`apply`](Self::apply).
    pub fn cancel_step(&mut self, step: StepId, now: Instant) -> Result<(), RunError> {
        self.apply(RunInput::CancelStep { step }, now)
    }

    /// Cancels the run: running attempts are stopped and completed
    /// compensable executions compensated.
    ///
    /// # Errors
    ///
    /// See [`apply`](Self::apply).
    pub fn cancel(&mut self, now: Instant) -> Result<(), RunError> {
        self.apply(RunInput::Cancel, now)
    }

    /// Fires the timers due at `now`: retries, attempt timeouts, wait
    /// timeouts and the workflow deadline.
    ///
    /// One call fires only the timers that were due when it began: a timer
    /// that firing sets at or before `now` (a retry without delay, say) is
    /// left for the next call, and [`poll_timeout`](Self::poll_timeout)
    /// points at it. So one call does bounded work whatever the clock and
    /// the definition. A timer computed to land at [`Instant::MAX`] never
    /// fires: an attempt timeout or a wait timeout there is dropped, and a
    /// retry there counts as giving up.
    pub fn handle_timeout(&mut self, now: Instant) {
        // A tick is always accepted.
        let _ = self.apply(RunInput::Tick, now);
    }

    pub(super) fn state(&self) -> &RunState<P> {
        &self.state
    }

    /// Queues `actions` after those already queued.
    pub(super) fn queue_actions(&mut self, actions: Vec<RunAction>) {
        self.state.actions.extend(actions);
    }

    /// Puts the run under `def` with `state` (a migration's result).
    pub(super) fn replace(&mut self, def: Arc<WorkflowDef>, state: RunState<P>) {
        self.def = def;
        self.state = state;
    }

    pub(super) fn from_state(def: Arc<WorkflowDef>, state: RunState<P>) -> Self {
        WorkflowRun {
            def,
            state,
            observer: None,
            work: VecDeque::new(),
        }
    }

    // ---- lookups -------------------------------------------------------

    fn slot(&self, step: StepId) -> Option<&StepSlot> {
        self.state.steps.get(step.get() as usize)
    }

    fn slot_mut(&mut self, step: StepId) -> &mut StepSlot {
        &mut self.state.steps[step.get() as usize]
    }

    fn step_def(&self, step: StepId) -> &StepDef {
        &self.def.graph()[node(step)]
    }

    pub(super) fn attempt(&self, token: AttemptToken) -> Result<&Attempt, RunError> {
        // A `match`, not `ok_or`: the error is built (and dropped) only
        // when needed, off the hot path.
        match usize::try_from(token.get())
            .ok()
            .and_then(|i| self.state.attempts.get(i))
        {
            Some(attempt) => Ok(attempt),
            None => Err(RunError::UnknownAttempt(token)),
        }
    }

    /// The execution of the running attempt `token`, which must be a
    /// compensation attempt or not as `compensation` says.
    fn running(&self, token: AttemptToken, compensation: bool) -> Result<u32, RunError> {
        let attempt = self.attempt(token)?;
        if attempt.compensation != compensation {
            return Err(RunError::WrongAttemptKind {
                token,
                compensation: attempt.compensation,
            });
        }
        if attempt.end.is_some() {
            return Err(RunError::StaleAttempt(token));
        }
        Ok(attempt.exec)
    }

    fn emit(&mut self, event: WorkflowEvent) {
        if let Some(observer) = &mut self.observer {
            observer.on_event(&event);
        }
    }
}
