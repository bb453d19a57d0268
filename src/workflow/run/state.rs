//! What a run is made of: the states of its steps, executions and
//! attempts, its timers and phase — everything a checkpoint stores.

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use crate::rng::SplitMix64;
use crate::workflow::{FailureCause, RunAction, RunOutcome, Saga, WorkflowDef};
use crate::{AttemptToken, Instant, StepId, WorkflowId};

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

pub(in crate::workflow) const NONE: u32 = u32::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(in crate::workflow) enum EdgeState {
    Pending,
    Fired,
    Skipped,
}

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(in crate::workflow) struct StepSlot {
    pub(in crate::workflow) state: StepState,
    pub(in crate::workflow) fired: u32,
    pub(in crate::workflow) skipped: u32,
    /// The latest execution (`NONE` if none).
    pub(in crate::workflow) exec: u32,
    /// A multi-instance step's executions, in instance order.
    pub(in crate::workflow) instances: Vec<u32>,
    pub(in crate::workflow) open_instances: u32,
    pub(in crate::workflow) failed_instances: u32,
}

impl StepSlot {
    /// A step the run has not reached: pending, no incoming edge resolved,
    /// never started.
    pub(in crate::workflow) fn unreached() -> Self {
        StepSlot {
            state: StepState::Pending,
            fired: 0,
            skipped: 0,
            exec: NONE,
            instances: Vec::new(),
            open_instances: 0,
            failed_instances: 0,
        }
    }

    /// Whether the run has not reached the step.
    pub(in crate::workflow) fn is_unreached(&self) -> bool {
        *self == StepSlot::unreached()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(in crate::workflow) enum ExecState {
    Delayed { until: Instant },
    Running(AttemptToken),
    Completed,
    Failed,
    Cancelled,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(in crate::workflow) enum CompensationState {
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
pub(in crate::workflow) struct Tries {
    pub(in crate::workflow) attempts: u32,
    pub(in crate::workflow) failures: u32,
    pub(in crate::workflow) last_delay: Option<Duration>,
}

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(in crate::workflow) struct Exec<P> {
    pub(in crate::workflow) step: StepId,
    pub(in crate::workflow) instance: Option<u32>,
    pub(in crate::workflow) iteration: u32,
    pub(in crate::workflow) item: Option<P>,
    pub(in crate::workflow) previous: u32,
    /// How many executions of the run had completed when this one was
    /// created: its input sees only those.
    pub(in crate::workflow) horizon: u32,
    /// Its position in the run's completion order, once completed.
    pub(in crate::workflow) seq: u32,
    pub(in crate::workflow) state: ExecState,
    pub(in crate::workflow) tries: Tries,
    pub(in crate::workflow) output: Option<P>,
    pub(in crate::workflow) compensation: CompensationState,
    pub(in crate::workflow) compensation_tries: Tries,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(in crate::workflow) struct Attempt {
    pub(in crate::workflow) exec: u32,
    pub(in crate::workflow) number: u32,
    pub(in crate::workflow) compensation: bool,
    pub(in crate::workflow) start: Instant,
    pub(in crate::workflow) end: Option<Instant>,
    pub(in crate::workflow) deadline: Option<Instant>,
    pub(in crate::workflow) outcome: AttemptEnd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(in crate::workflow) enum Timer {
    Deadline,
    Wait(StepId),
    Retry(u32),
    AttemptTimeout(AttemptToken),
    CompensationRetry(u32),
}

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(in crate::workflow) enum Phase {
    Running,
    Compensating {
        cause: FailureCause,
        /// The completed executions of compensable steps, keyed by step,
        /// each step depending on its predecessors (and a loop on
        /// itself).
        saga: Saga<StepId, u32>,
    },
    Finished(RunOutcome),
}

/// Everything a run is, apart from its definition and observer: what a
/// checkpoint stores.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(in crate::workflow) struct RunState<P> {
    pub(in crate::workflow) id: WorkflowId,
    pub(in crate::workflow) started_at: Instant,
    /// The latest `now` the run accepted: an earlier one counts as this.
    pub(in crate::workflow) latest: Instant,
    pub(in crate::workflow) input: Option<P>,
    pub(in crate::workflow) steps: Vec<StepSlot>,
    pub(in crate::workflow) edges: Vec<EdgeState>,
    pub(in crate::workflow) execs: Vec<Exec<P>>,
    pub(in crate::workflow) attempts: Vec<Attempt>,
    pub(in crate::workflow) actions: VecDeque<RunAction>,
    /// Ordered, so a checkpoint lists them canonically; a timer that
    /// would fire at [`Instant::MAX`] ("never") is not kept.
    pub(in crate::workflow) timers: BTreeSet<(Instant, Timer)>,
    /// Completed executions, in completion order.
    pub(in crate::workflow) completions: Vec<u32>,
    /// Wait steps currently waiting, in the order they started waiting.
    pub(in crate::workflow) waiting: Vec<StepId>,
    pub(in crate::workflow) open_steps: usize,
    pub(in crate::workflow) phase: Phase,
    pub(in crate::workflow) rng: SplitMix64,
}

impl<P> RunState<P> {
    /// The state of a run of `def` starting at `now`, nothing done yet:
    /// every step unreached but those absent for the definition's origin,
    /// skipped without an event as if never declared.
    pub(in crate::workflow) fn new(
        def: &WorkflowDef,
        id: WorkflowId,
        input: Option<P>,
        now: Instant,
        seed: u64,
    ) -> Self {
        let n = def.len();
        let mut state = RunState {
            id,
            started_at: now,
            latest: now,
            input,
            steps: vec![StepSlot::unreached(); n],
            edges: vec![EdgeState::Pending; def.graph().edge_count()],
            execs: Vec::with_capacity(n),
            attempts: Vec::with_capacity(n),
            actions: VecDeque::new(),
            timers: BTreeSet::new(),
            completions: Vec::with_capacity(n),
            waiting: Vec::new(),
            open_steps: n,
            phase: Phase::Running,
            rng: SplitMix64::new(seed),
        };
        for &absent in def.absent_steps() {
            state.steps[absent.get() as usize].state = StepState::Skipped;
            state.open_steps -= 1;
        }
        state
    }
}
