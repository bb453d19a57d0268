//! [`WorkflowRun`]: the sans-IO state machine of one execution of a
//! workflow.

use std::collections::{BTreeSet, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use petgraph::graph::EdgeIndex;

use super::definition::node;
use super::{
    FailureCause, Join, PendingCompensation, RunAction, RunError, RunInput, RunOutcome,
    StepCancelReason, StepDef, StepFailure, StepInput, StepKind, StepOutput, WorkflowDef,
    WorkflowEvent, WorkflowObserver,
};
use crate::hash::mix;
use crate::resilience::RetryPolicy;
use crate::rng::SplitMix64;
use crate::{AttemptToken, Instant, StepId, WorkflowId};

mod timers;

/// Where a step is in a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum StepState {
    /// Its join is not satisfied yet.
    Pending,
    /// A deferred choice waiting for a signal or its timer.
    Waiting,
    /// A multi-instance step waiting for its items.
    Expanding,
    /// Executions are running or waiting to be retried.
    Active,
    /// Completed (terminal).
    Completed,
    /// Skipped: an untaken branch or an unsatisfiable join (terminal).
    Skipped,
    /// Cancelled by the host, a cancelling join, or a failing run
    /// (terminal).
    Cancelled,
    /// Failed for good (terminal).
    Failed,
}

impl StepState {
    /// Whether the state is final.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            StepState::Completed | StepState::Skipped | StepState::Cancelled | StepState::Failed
        )
    }
}

/// How an attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum AttemptEnd {
    /// Still running.
    Running,
    /// Succeeded.
    Succeeded,
    /// Failed.
    Failed,
    /// Exceeded the step's timeout.
    TimedOut,
    /// Cancelled.
    Cancelled,
}

/// One attempt in a run's timeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimelineEntry {
    /// The step.
    pub step: StepId,
    /// The attempt's token.
    pub token: AttemptToken,
    /// The instance, for a multi-instance step.
    pub instance: Option<u32>,
    /// The iteration.
    pub iteration: u32,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// Whether this attempt was a compensation.
    pub compensation: bool,
    /// When it started.
    pub start: Instant,
    /// When it ended, if it has.
    pub end: Option<Instant>,
    /// How it ended.
    pub outcome: AttemptEnd,
}

pub(super) const NONE: u32 = u32::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(super) enum EdgeState {
    Pending,
    Fired,
    Skipped,
}

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(super) struct StepSlot {
    pub(super) state: StepState,
    pub(super) fired: u32,
    pub(super) skipped: u32,
    /// The latest execution (`NONE` if none).
    pub(super) exec: u32,
    /// A multi-instance step's executions, in instance order.
    pub(super) instances: Vec<u32>,
    pub(super) open_instances: u32,
    pub(super) failed_instances: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(super) enum ExecState {
    Delayed { until: Instant },
    Running(AttemptToken),
    Completed,
    Failed,
    Cancelled,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(super) enum CompensationState {
    NotStarted,
    Delayed { until: Instant },
    Running(AttemptToken),
    Done,
    Failed,
    Blocked,
}

/// Retry bookkeeping of one kind of work (the execution, or its
/// compensation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(super) struct Tries {
    pub(super) attempts: u32,
    pub(super) failures: u32,
    pub(super) last_delay: Option<Duration>,
}

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(super) struct Exec<P> {
    pub(super) step: StepId,
    pub(super) instance: Option<u32>,
    pub(super) iteration: u32,
    pub(super) item: Option<P>,
    pub(super) previous: u32,
    /// How many executions of the run had completed when this one was
    /// created: its input sees only those.
    pub(super) horizon: u32,
    /// Its position in the run's completion order, once completed.
    pub(super) seq: u32,
    pub(super) state: ExecState,
    pub(super) tries: Tries,
    pub(super) output: Option<P>,
    pub(super) compensation: CompensationState,
    pub(super) compensation_tries: Tries,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(super) struct Attempt {
    pub(super) exec: u32,
    pub(super) number: u32,
    pub(super) compensation: bool,
    pub(super) start: Instant,
    pub(super) end: Option<Instant>,
    pub(super) deadline: Option<Instant>,
    pub(super) outcome: AttemptEnd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(super) enum Timer {
    Deadline,
    Wait(StepId),
    Retry(u32),
    AttemptTimeout(AttemptToken),
    CompensationRetry(u32),
}

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(super) enum Phase {
    Running,
    Compensating {
        cause: FailureCause,
        /// Executions to compensate, in order (reverse completion).
        queue: Vec<u32>,
        cursor: usize,
        /// Steps whose compensation must not run: a step depending on them
        /// could not be compensated.
        blocked: Vec<bool>,
        pending: Vec<PendingCompensation>,
    },
    Finished(RunOutcome),
}

/// Everything a run is, apart from its definition and observer: what a
/// checkpoint stores.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(super) struct RunState<P> {
    pub(super) id: WorkflowId,
    pub(super) started_at: Instant,
    /// The latest `now` the run accepted: an earlier one counts as this.
    pub(super) latest: Instant,
    pub(super) input: Option<P>,
    pub(super) steps: Vec<StepSlot>,
    pub(super) edges: Vec<EdgeState>,
    pub(super) execs: Vec<Exec<P>>,
    pub(super) attempts: Vec<Attempt>,
    pub(super) actions: VecDeque<RunAction>,
    /// Ordered, so a checkpoint lists them canonically; a timer that
    /// would fire at [`Instant::MAX`] ("never") is not kept.
    pub(super) timers: BTreeSet<(Instant, Timer)>,
    /// Completed executions, in completion order.
    pub(super) completions: Vec<u32>,
    /// Wait steps currently waiting, in the order they started waiting.
    pub(super) waiting: Vec<StepId>,
    pub(super) open_steps: usize,
    pub(super) phase: Phase,
    pub(super) rng: SplitMix64,
}

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
    /// The definition's per-step facts the hot path needs, packed
    /// (derived from `def`; not part of the state or a checkpoint).
    state: RunState<P>,
    observer: Option<Box<dyn WorkflowObserver + Send>>,
    /// Edge resolutions waiting to be applied (scratch, always empty between
    /// inputs).
    work: VecDeque<(EdgeIndex<u32>, StepId, bool)>,
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
        Self::observed(def, id, input, now, None)
    }

    /// Like [`new`](Self::new), with an observer that also sees the
    /// `RunStarted` event.
    pub fn with_observer(
        def: Arc<WorkflowDef>,
        id: WorkflowId,
        input: Option<P>,
        now: Instant,
        observer: impl WorkflowObserver + Send + 'static,
    ) -> Self {
        Self::observed(def, id, input, now, Some(Box::new(observer)))
    }

    fn observed(
        def: Arc<WorkflowDef>,
        id: WorkflowId,
        input: Option<P>,
        now: Instant,
        observer: Option<Box<dyn WorkflowObserver + Send>>,
    ) -> Self {
        let n = def.len();
        let state = RunState {
            id,
            started_at: now,
            latest: now,
            input,
            steps: vec![
                StepSlot {
                    state: StepState::Pending,
                    fired: 0,
                    skipped: 0,
                    exec: NONE,
                    instances: Vec::new(),
                    open_instances: 0,
                    failed_instances: 0,
                };
                n
            ],
            edges: vec![EdgeState::Pending; def.graph().edge_count()],
            execs: Vec::with_capacity(n),
            attempts: Vec::with_capacity(n),
            actions: VecDeque::new(),
            timers: BTreeSet::new(),
            completions: Vec::with_capacity(n),
            waiting: Vec::new(),
            open_steps: n,
            phase: Phase::Running,
            rng: SplitMix64::new(mix(id.get(), def.content_hash())),
        };
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
    pub fn set_observer(&mut self, observer: impl WorkflowObserver + Send + 'static) {
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

    fn attempt(&self, token: AttemptToken) -> Result<&Attempt, RunError> {
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

    // ---- starting work -------------------------------------------------

    fn make_ready(&mut self, step: StepId, now: Instant) {
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

    fn new_exec(
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

    fn record_completion(&mut self, exec: u32) {
        self.state.execs[exec as usize].seq = self.state.completions.len() as u32;
        self.state.completions.push(exec);
    }

    fn new_attempt(&mut self, exec: u32, compensation: bool, now: Instant) -> (AttemptToken, u32) {
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

    fn start_attempt(&mut self, exec: u32, now: Instant) {
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

    fn end_attempt(&mut self, token: AttemptToken, outcome: AttemptEnd, now: Instant) {
        if let Some(attempt) = self.state.attempts.get_mut(token.get() as usize) {
            attempt.end = Some(now);
            attempt.outcome = outcome;
        }
    }

    // ---- results -------------------------------------------------------

    fn on_success(
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
    fn check_branches(
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
        if self.step_def(step).choice == super::Choice::Exclusive && chosen.len() != 1 {
            return invalid("an exclusive choice takes exactly one branch");
        }
        Ok(true)
    }

    fn attempt_failed(&mut self, exec: u32, failure: StepFailure, now: Instant) {
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
    fn retry_at(
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
    fn instance_ended(&mut self, step: StepId, failure: Option<String>, now: Instant) {
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

    fn on_expanded(&mut self, step: StepId, items: Vec<P>, now: Instant) -> Result<(), RunError> {
        let slot = self.slot(step).ok_or(RunError::UnknownStep(step))?;
        if slot.state != StepState::Expanding {
            return Err(RunError::UnexpectedInput {
                step,
                expected: "waiting for its items",
            });
        }
        if items.len() > super::MAX_INSTANCES as usize {
            return Err(RunError::TooManyItems {
                step,
                items: items.len(),
                limit: super::MAX_INSTANCES,
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

    fn on_signal(&mut self, name: &str, payload: Option<P>, now: Instant) -> Result<(), RunError> {
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
    fn end_wait(&mut self, step: StepId, payload: Option<P>, label: &str, now: Instant) {
        self.state.waiting.retain(|&s| s != step);
        let exec = self.new_exec(step, None, 1, None, NONE);
        let e = &mut self.state.execs[exec as usize];
        e.state = ExecState::Completed;
        e.output = payload;
        self.record_completion(exec);
        self.complete_step(step, Some(&[label.to_string()]), now);
    }

    // ---- the graph -----------------------------------------------------

    /// `chosen`: the labels of the branches taken, or `None` for a step
    /// known to have no labelled outgoing edges (every edge fires).
    fn complete_step(&mut self, step: StepId, chosen: Option<&[String]>, now: Instant) {
        self.slot_mut(step).state = StepState::Completed;
        self.state.open_steps = self.state.open_steps.saturating_sub(1);
        let run = self.state.id;
        self.emit(WorkflowEvent::StepCompleted { run, step });
        // Disjoint field borrows: no clone of the `Arc` on the hot path.
        let (def, work) = (&self.def, &mut self.work);
        for &(to, edge) in def.successor_edges(step) {
            let fire = chosen.is_none_or(|chosen| {
                def.label(edge)
                    .is_none_or(|label| chosen.iter().any(|c| c == label))
            });
            work.push_back((edge, to, fire));
        }
        self.drain_edges(now);
        self.check_succeeded();
    }

    /// Skips or cancels `step`'s outgoing edges.
    fn skip_successors(&mut self, step: StepId) {
        for &(to, edge) in self.def.successor_edges(step) {
            self.work.push_back((edge, to, false));
        }
    }

    /// Applies queued edge resolutions until none is left, starting and
    /// skipping steps as their joins decide.
    fn drain_edges(&mut self, now: Instant) {
        while let Some((edge, to, fire)) = self.work.pop_front() {
            self.state.edges[edge.index()] = if fire {
                EdgeState::Fired
            } else {
                EdgeState::Skipped
            };
            let slot = self.slot_mut(to);
            if slot.state != StepState::Pending {
                continue;
            }
            if fire {
                slot.fired += 1;
            } else {
                slot.skipped += 1;
            }
            let (fired, skipped) = (slot.fired, slot.skipped);
            let meta = self.def.meta(to);
            let m = meta.in_degree;
            match meta.join {
                Join::All if skipped > 0 => self.skip_step(to),
                Join::All if fired == m => self.make_ready(to, now),
                Join::Merge if fired + skipped == m => {
                    if fired > 0 {
                        self.make_ready(to, now);
                    } else {
                        self.skip_step(to);
                    }
                }
                Join::Quorum {
                    n,
                    cancel_remaining,
                } => {
                    if fired >= n {
                        self.make_ready(to, now);
                        if cancel_remaining {
                            self.cancel_remaining(to, now);
                        }
                    } else if skipped > m.saturating_sub(n) {
                        self.skip_step(to);
                    }
                }
                _ => {}
            }
        }
    }

    fn skip_step(&mut self, step: StepId) {
        self.slot_mut(step).state = StepState::Skipped;
        self.state.open_steps = self.state.open_steps.saturating_sub(1);
        let run = self.state.id;
        self.emit(WorkflowEvent::StepSkipped { run, step });
        self.skip_successors(step);
    }

    /// After a cancelling join started: cancels the branches feeding its
    /// still-pending edges, walking upstream while a step is needed by no
    /// one else.
    fn cancel_remaining(&mut self, join: StepId, now: Instant) {
        let def = Arc::clone(&self.def);
        let mut stack: Vec<StepId> = def
            .predecessor_edges(join)
            .iter()
            .filter(|&&(_, edge)| self.state.edges[edge.index()] == EdgeState::Pending)
            .map(|&(from, _)| from)
            .collect();
        while let Some(step) = stack.pop() {
            if self.state.steps[step.get() as usize].state.is_terminal() {
                continue;
            }
            let still_needed = def
                .successor_edges(step)
                .iter()
                .any(|&(to, _)| self.state.steps[to.get() as usize].state == StepState::Pending);
            if still_needed {
                continue;
            }
            self.stop_step(step, StepCancelReason::BranchCancelled, now);
            stack.extend(def.predecessor_edges(step).iter().map(|&(from, _)| from));
        }
    }

    /// Stops whatever `step` is doing and marks it cancelled; its outgoing
    /// edges are queued as skipped.
    fn stop_step(&mut self, step: StepId, reason: StepCancelReason, now: Instant) {
        self.stop_execs(step, reason, now);
        self.state.waiting.retain(|&s| s != step);
        self.slot_mut(step).state = StepState::Cancelled;
        self.state.open_steps = self.state.open_steps.saturating_sub(1);
        let run = self.state.id;
        self.emit(WorkflowEvent::StepSkipped { run, step });
        self.skip_successors(step);
    }

    /// Cancels `step`'s running attempts and pending retries (every
    /// instance's, for a multi-instance step).
    fn stop_execs(&mut self, step: StepId, reason: StepCancelReason, now: Instant) {
        let slot = &self.state.steps[step.get() as usize];
        let execs: Vec<u32> = if slot.instances.is_empty() {
            (slot.exec != NONE)
                .then_some(slot.exec)
                .into_iter()
                .collect()
        } else {
            slot.instances.clone()
        };
        for exec in execs {
            match self.state.execs[exec as usize].state {
                ExecState::Running(token) => {
                    self.end_attempt(token, AttemptEnd::Cancelled, now);
                    self.state.actions.push_back(RunAction::Cancel {
                        step,
                        token,
                        reason,
                    });
                    self.state.execs[exec as usize].state = ExecState::Cancelled;
                }
                ExecState::Delayed { .. } => {
                    self.state.execs[exec as usize].state = ExecState::Cancelled;
                }
                ExecState::Completed | ExecState::Failed | ExecState::Cancelled => {}
            }
        }
    }

    fn check_succeeded(&mut self) {
        if self.state.open_steps == 0 && matches!(self.state.phase, Phase::Running) {
            let run = self.state.id;
            self.emit(WorkflowEvent::RunCompleted { run });
            self.finish(RunOutcome::Succeeded);
        }
    }

    fn finish(&mut self, outcome: RunOutcome) {
        self.state.phase = Phase::Finished(outcome);
        self.state.timers.clear();
        self.state.actions.push_back(RunAction::Finished);
    }

    // ---- failure and compensation --------------------------------------

    fn fail_step(&mut self, step: StepId, reason: String, now: Instant) {
        // A multi-instance step fails with instances still open: `abort`
        // only stops steps that are not terminal, so stop them here, or
        // their late results would be accepted while compensating.
        self.stop_execs(step, StepCancelReason::RunAborted, now);
        self.slot_mut(step).state = StepState::Failed;
        self.state.open_steps = self.state.open_steps.saturating_sub(1);
        let run = self.state.id;
        self.emit(WorkflowEvent::StepFailed { run, step });
        self.abort(FailureCause::StepFailed { step, reason }, now);
    }

    /// Stops everything still open and starts compensating.
    fn abort(&mut self, cause: FailureCause, now: Instant) {
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
        let queue: Vec<u32> = self
            .state
            .completions
            .iter()
            .rev()
            .copied()
            .filter(|&exec| {
                self.step_def(self.state.execs[exec as usize].step)
                    .compensable
            })
            .collect();
        self.state.phase = Phase::Compensating {
            cause,
            queue,
            cursor: 0,
            blocked: vec![false; self.state.steps.len()],
            pending: Vec::new(),
        };
        self.next_compensation(now);
    }

    /// Starts the next compensation, or ends the run if none is left.
    fn next_compensation(&mut self, now: Instant) {
        loop {
            let Phase::Compensating {
                queue,
                cursor,
                blocked,
                pending,
                ..
            } = &mut self.state.phase
            else {
                return;
            };
            let Some(&exec) = queue.get(*cursor) else {
                break;
            };
            let e = &mut self.state.execs[exec as usize];
            if blocked[e.step.get() as usize] {
                e.compensation = CompensationState::Blocked;
                pending.push(PendingCompensation {
                    step: e.step,
                    instance: e.instance,
                    iteration: e.iteration,
                    failure: None,
                });
                *cursor += 1;
                continue;
            }
            self.start_compensation(exec, now);
            return;
        }
        let Phase::Compensating {
            cause,
            queue,
            pending,
            ..
        } = std::mem::replace(&mut self.state.phase, Phase::Running)
        else {
            return;
        };
        let run = self.state.id;
        let outcome = if queue.is_empty() {
            RunOutcome::Failed(cause)
        } else {
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

    fn start_compensation(&mut self, exec: u32, now: Instant) {
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

    fn on_compensated(
        &mut self,
        token: AttemptToken,
        result: Result<(), StepFailure>,
        now: Instant,
    ) -> Result<(), RunError> {
        let exec = self.running(token, true)?;
        let step = self.state.execs[exec as usize].step;
        match result {
            Ok(()) => {
                self.end_attempt(token, AttemptEnd::Succeeded, now);
                self.state.execs[exec as usize].compensation = CompensationState::Done;
                let run = self.state.id;
                self.emit(WorkflowEvent::StepCompensated { run, step });
            }
            Err(failure) => {
                self.end_attempt(token, AttemptEnd::Failed, now);
                if let Some(until) = self.retry_at(exec, true, &failure, now) {
                    self.state.execs[exec as usize].compensation =
                        CompensationState::Delayed { until };
                    self.timer(until, Timer::CompensationRetry(exec));
                    return Ok(());
                }
                self.compensation_failed(exec, failure.reason);
            }
        }
        if let Phase::Compensating { cursor, .. } = &mut self.state.phase {
            *cursor += 1;
        }
        self.next_compensation(now);
        Ok(())
    }

    /// Leaves `exec` for manual handling and blocks the compensation of
    /// every step it depends on.
    fn compensation_failed(&mut self, exec: u32, reason: String) {
        let e = &mut self.state.execs[exec as usize];
        e.compensation = CompensationState::Failed;
        let (step, instance, iteration) = (e.step, e.instance, e.iteration);
        let def = Arc::clone(&self.def);
        let Phase::Compensating {
            blocked, pending, ..
        } = &mut self.state.phase
        else {
            return;
        };
        pending.push(PendingCompensation {
            step,
            instance,
            iteration,
            failure: Some(reason),
        });
        // A loop's earlier iterations fed the one that could not be undone.
        if def.step(step).is_some_and(|s| s.max_iterations.is_some()) {
            blocked[step.get() as usize] = true;
        }
        let mut stack: Vec<StepId> = def.predecessors(step).map(|(s, _)| s).collect();
        while let Some(at) = stack.pop() {
            if !std::mem::replace(&mut blocked[at.get() as usize], true) {
                stack.extend(def.predecessors(at).map(|(s, _)| s));
            }
        }
    }
}
