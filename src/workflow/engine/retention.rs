//! What an engine remembers of its finished runs, so that a run id is an
//! idempotency key: a second start of an id returns the run that holds
//! it — active, parked, or finished within the retention window — and
//! starts nothing.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use super::WorkflowEngine;
use crate::hash::IdMap;
use crate::workflow::{EngineError, RunOutcome, TaskPool, WorkflowDef};
use crate::{Instant, WorkflowId};

/// How many finished runs, and for how long, an engine remembers (see
/// [`WorkflowEngine::set_retention`]). The record is bounded by both:
/// the oldest end is forgotten first.
///
/// ```
/// use std::time::Duration;
/// use taskweave::workflow::RunRetention;
///
/// let day = RunRetention::new(50_000, Duration::from_secs(86_400))?;
/// assert_eq!(day.max_runs(), 50_000);
/// assert!(RunRetention::new(RunRetention::MAX_RUNS + 1, Duration::ZERO).is_err());
/// # Ok::<(), taskweave::workflow::EngineError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RunRetention {
    max_runs: usize,
    max_age: Duration,
}

impl RunRetention {
    /// The most finished runs an engine may be asked to remember.
    pub const MAX_RUNS: usize = 1_000_000;

    /// Remembers at most `max_runs` finished runs, each for `max_age`
    /// after it ended.
    ///
    /// # Errors
    ///
    /// [`EngineError::InvalidRetention`] for more than
    /// [`MAX_RUNS`](Self::MAX_RUNS) runs.
    pub fn new(max_runs: usize, max_age: Duration) -> Result<Self, EngineError> {
        if max_runs > Self::MAX_RUNS {
            return Err(EngineError::InvalidRetention {
                max_runs,
                limit: Self::MAX_RUNS,
            });
        }
        Ok(RunRetention { max_runs, max_age })
    }

    /// Remembers nothing: an id is free again as soon as its run ends.
    pub fn none() -> Self {
        RunRetention {
            max_runs: 0,
            max_age: Duration::ZERO,
        }
    }

    /// The most finished runs remembered.
    pub fn max_runs(&self) -> usize {
        self.max_runs
    }

    /// How long after its end a run is remembered.
    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    /// Whether a run that ended `at` is still remembered at `now`.
    fn keeps(&self, at: Instant, now: Instant) -> bool {
        at.saturating_add(self.max_age) > now
    }
}

impl Default for RunRetention {
    /// 10,000 runs, for a day.
    fn default() -> Self {
        RunRetention {
            max_runs: 10_000,
            max_age: Duration::from_secs(24 * 60 * 60),
        }
    }
}

/// How a top-level run ended, as the engine remembers it.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct FinishedRun<P> {
    /// The run.
    pub run: WorkflowId,
    /// The name of the definition it ran (empty in an engine snapshot
    /// written before the name was kept).
    #[cfg_attr(feature = "serde", serde(default))]
    pub workflow: String,
    /// The version of the definition it ran (0 in an engine snapshot
    /// written before the version was kept).
    #[cfg_attr(feature = "serde", serde(default))]
    pub version: u32,
    /// How it ended.
    pub outcome: RunOutcome,
    /// Its output.
    pub output: Option<P>,
    /// When (the engine's clock).
    pub at: Instant,
}

/// What [`WorkflowEngine::start_as`] did with an id.
#[derive(Clone, Debug, PartialEq)]
#[must_use = "a start may have found the id taken and started nothing"]
pub enum Started<P> {
    /// A new run took the id.
    New(WorkflowId),
    /// A run with the id is active or parked: nothing started.
    Active(WorkflowId),
    /// A run with the id finished within the retention window: nothing
    /// started, and this is how it ended.
    Finished(FinishedRun<P>),
}

impl<P> Started<P> {
    /// The id asked for.
    pub fn id(&self) -> WorkflowId {
        match self {
            Started::New(id) | Started::Active(id) => *id,
            Started::Finished(finished) => finished.run,
        }
    }

    /// Whether a new run started.
    pub fn is_new(&self) -> bool {
        matches!(self, Started::New(_))
    }
}

/// The finished runs remembered, oldest end first.
#[derive(Debug)]
pub(super) struct Finished<P> {
    pub(super) retention: RunRetention,
    order: VecDeque<WorkflowId>,
    by_id: IdMap<WorkflowId, FinishedRun<P>>,
}

impl<P> Default for Finished<P> {
    fn default() -> Self {
        Finished {
            retention: RunRetention::default(),
            order: VecDeque::new(),
            by_id: IdMap::default(),
        }
    }
}

impl<P> Finished<P> {
    /// The run `id`'s end, if it is remembered at `now`.
    pub(super) fn get(&self, id: WorkflowId, now: Instant) -> Option<&FinishedRun<P>> {
        self.by_id
            .get(&id)
            .filter(|f| self.retention.keeps(f.at, now))
    }

    /// Remembers an end (whose id no run holds), then forgets what the
    /// retention no longer keeps.
    pub(super) fn record(&mut self, finished: FinishedRun<P>) {
        let now = finished.at;
        self.insert(finished);
        self.prune(now);
    }

    /// Remembers an end, newer than every other, forgetting nothing.
    pub(super) fn insert(&mut self, finished: FinishedRun<P>) {
        let id = finished.run;
        if self.by_id.insert(id, finished).is_none() {
            self.order.push_back(id);
        }
    }

    /// Forgets the ends that are too old at `now`, or too many.
    pub(super) fn prune(&mut self, now: Instant) {
        while let Some(&oldest) = self.order.front() {
            let keep = self.order.len() <= self.retention.max_runs
                && self
                    .by_id
                    .get(&oldest)
                    .is_some_and(|f| self.retention.keeps(f.at, now));
            if keep {
                break;
            }
            self.order.pop_front();
            self.by_id.remove(&oldest);
        }
    }

    /// Whether `id` is remembered, however old (an id to skip when
    /// choosing a fresh one).
    pub(super) fn holds(&self, id: WorkflowId) -> bool {
        self.by_id.contains_key(&id)
    }

    /// Every remembered end, oldest first.
    pub(super) fn iter(&self) -> impl Iterator<Item = &FinishedRun<P>> + '_ {
        self.order.iter().filter_map(|id| self.by_id.get(id))
    }

    pub(super) fn len(&self) -> usize {
        self.order.len()
    }
}

impl<P: Clone> WorkflowEngine<P> {
    /// Sets how many finished runs, and for how long, the engine
    /// remembers (default: [`RunRetention::default`]); a smaller window
    /// forgets the oldest ends at once.
    pub fn set_retention(&mut self, retention: RunRetention) {
        self.finished.retention = retention;
        self.finished.prune(self.latest);
    }

    /// How the top-level run `id` ended, if it finished within the
    /// retention window. `O(1)`.
    pub fn finished_run(&self, id: WorkflowId) -> Option<&FinishedRun<P>> {
        self.finished.get(id, self.latest)
    }

    /// Finished runs remembered now.
    pub fn finished_runs(&self) -> usize {
        self.finished.len()
    }

    /// The finished runs remembered now, oldest end first: what
    /// [`finished_run`](Self::finished_run) answers, all of them (an
    /// operator's listing). `O(1)` per run.
    pub fn remembered_ends(&self) -> impl Iterator<Item = &FinishedRun<P>> + '_ {
        let latest = self.latest;
        self.finished
            .iter()
            .filter(move |f| self.finished.retention.keeps(f.at, latest))
    }

    /// Starts a run of `def` under the id `id`, one the host derives from
    /// something it may see twice — a schedule's fire (`RunKey::workflow_id`
    /// of the `schedule` feature), a request's idempotency key — so that a
    /// second start of it starts nothing while the first run is on the
    /// engine or remembered as finished ([`RunRetention`]). Its ready agent
    /// steps are submitted to `pool`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use taskweave::scheduler::{Dispatcher, DispatcherConfig};
    /// use taskweave::workflow::{EngineAction, RunOutcome, Started, StepDef, StepOutput, StepTask, WorkflowDef, WorkflowEngine};
    /// use taskweave::{Instant, WorkflowId};
    ///
    /// let def = Arc::new(WorkflowDef::builder("report", 1).step(StepDef::local("write")).build()?);
    /// let mut pool: Dispatcher<StepTask> = Dispatcher::new(DispatcherConfig::default());
    /// let mut engine: WorkflowEngine<u32> = WorkflowEngine::new();
    /// let id = WorkflowId::new(0x5eed);
    /// assert_eq!(engine.start_as(&mut pool, Arc::clone(&def), id, None, Instant::ZERO), Started::New(id));
    /// assert_eq!(engine.start_as(&mut pool, Arc::clone(&def), id, None, Instant::ZERO), Started::Active(id));
    ///
    /// let Some(EngineAction::RunLocal { token, .. }) = engine.poll_action() else { unreachable!() };
    /// engine.report_local(&mut pool, id, token, Ok(StepOutput::new(7)), Instant::ZERO)?;
    /// // The run ended: a third start returns its end and runs nothing.
    /// let Started::Finished(end) = engine.start_as(&mut pool, def, id, None, Instant::ZERO) else { unreachable!() };
    /// assert_eq!((end.outcome, end.output), (RunOutcome::Succeeded, Some(7)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn start_as(
        &mut self,
        pool: &mut impl TaskPool,
        def: Arc<WorkflowDef>,
        id: WorkflowId,
        input: Option<P>,
        now: Instant,
    ) -> Started<P> {
        let now = self.clock(now);
        self.finished.prune(now);
        if self.runs.contains_key(&id) || self.parked.contains_key(&id) {
            return Started::Active(id);
        }
        if let Some(finished) = self.finished.get(id, now) {
            return Started::Finished(finished.clone());
        }
        self.spawn_as(pool, def, id, input, None, now);
        Started::New(id)
    }
}
