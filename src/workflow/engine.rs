//! [`WorkflowEngine`]: many workflow runs at once on one dispatcher.

use std::collections::{BTreeSet, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::{EngineError, StepFailure, StepOutput, TaskPool, WorkflowEvent, WorkflowRun};
use crate::Observer;
use crate::hash::IdMap;

mod actions;
mod migrate;
mod pump;
mod queries;
mod restore;
mod resume;
mod retention;
mod snapshot;
mod start;
mod versions;

use crate::scheduler::{Action, AttemptOutcome, ReportError, TaskReport};
use crate::{AgentId, AttemptToken, Instant, StepId, TaskId, WorkflowId};
pub use actions::{EngineAction, StepTask};
pub use resume::{MismatchPolicy, Resumed};
pub use retention::{FinishedRun, RunRetention, Started};
pub use snapshot::EngineSnapshot;
pub use versions::StartPolicy;

struct Entry<P> {
    run: WorkflowRun<P>,
    /// The run's key in the engine's timer set.
    timer: Option<Instant>,
    /// For a sub-workflow run: the parent run and the attempt it completes.
    parent: Option<(WorkflowId, AttemptToken)>,
}

type SharedObserver = Arc<std::sync::Mutex<Box<dyn Observer<WorkflowEvent> + Send>>>;

/// Runs many [`WorkflowRun`]s at once on a task pool the host owns — a
/// [`Dispatcher`](crate::scheduler::Dispatcher), through [`TaskPool`] — so
/// plain tasks and workflow steps share one pool of agents.
///
/// Ready agent steps become tasks of the host's pool ([`StepTask`]
/// payloads), routed by the step's required capabilities and priority;
/// their outcomes become step results. In-process steps, multi-instance
/// expansions and local compensations come out as actions for the host (or
/// the threaded driver). Sub-workflow steps start child runs inside the
/// engine, whose outcome completes the parent step. Timers of every run
/// are kept in one ordered set, so [`poll_timeout`](Self::poll_timeout)
/// and [`handle_timeout`](Self::handle_timeout) cost `O(log runs)`.
///
/// The host is the only one to pull the pool's actions. It hands each to
/// [`handle_action`](Self::handle_action): the engine keeps those about
/// its own tasks (it knows them by id) and gives every other back, so a
/// plain task's action never reaches the engine and a step's never reaches
/// the host's plain-task code. Every call that may start or stop steps
/// takes the pool as `&mut`.
///
/// Step retries belong to the runs, by each step's own policy: the engine
/// reports a failed step attempt to the pool as not retryable, so the
/// pool's retry policy — the host's configuration, left as it is — never
/// retries a step, and takes the resulting dead letter at once. A step
/// task the pool gives up on by itself (expired, or dead-lettered after
/// its own retries of timed-out attempts) fails the run's attempt.
/// Failover of agents that are lost or unregistered, and the retries of
/// attempts the pool timed out, stay with the pool: the task is assigned
/// again ([`EngineAction::Assign`] with a new token), invisibly to the
/// run.
///
/// ```
/// use std::sync::Arc;
/// use taskweave::agent::AgentProfile;
/// use taskweave::scheduler::{Action, AttemptOutcome, Dispatcher, DispatcherConfig, TaskReport, TaskSpec};
/// use taskweave::workflow::{EngineAction, RunOutcome, StepDef, StepOutput, StepTask, WorkflowDef, WorkflowEngine};
/// use taskweave::{AgentId, Instant};
///
/// /// The host's payload: its own jobs and workflow steps, on one pool.
/// #[derive(Debug)]
/// enum Job {
///     Backup,
///     Step(StepTask),
/// }
/// impl From<StepTask> for Job {
///     fn from(step: StepTask) -> Self {
///         Job::Step(step)
///     }
/// }
///
/// let def = Arc::new(
///     WorkflowDef::builder("report", 1)
///         .step(StepDef::agent("query").capabilities(["sql"]))
///         .step(StepDef::local("format"))
///         .edge("query", "format")
///         .build()?,
/// );
/// let now = Instant::ZERO;
/// let mut pool: Dispatcher<Job> = Dispatcher::new(DispatcherConfig::default());
/// // Each agent registered once, for tasks and steps alike.
/// pool.register_agent(AgentId::new(1), AgentProfile::builder().capabilities(["sql"]).build()?, now)?;
/// let mut engine: WorkflowEngine<String> = WorkflowEngine::new();
/// let backup = pool.submit(TaskSpec::new(Job::Backup), now)?.id();
/// engine.start(&mut pool, def, None, now);
/// let mut backed_up = false;
/// loop {
///     // The pool's actions first: the engine keeps its steps' and hands
///     // the host's own back.
///     if let Some(action) = pool.poll_action() {
///         match engine.handle_action(&mut pool, action) {
///             Some(Action::Assign { task, agent, token, .. }) => {
///                 assert_eq!(task, backup);
///                 backed_up = true;
///                 let outcome = AttemptOutcome::Success;
///                 pool.report(TaskReport { task, agent, token, outcome }, now)?;
///             }
///             Some(other) => unreachable!("{other:?}"),
///             None => {}
///         }
///         continue;
///     }
///     let Some(action) = engine.poll_action() else { break };
///     match action {
///         EngineAction::Assign { task, agent, token, .. } => {
///             engine.report(&mut pool, task, agent, token, Ok(StepOutput::new("42 rows".to_string())), now)?
///         }
///         EngineAction::RunLocal { run, token, .. } => {
///             let input = engine.input(run, token)?;
///             let rows = &input.inputs[0].1;
///             engine.report_local(&mut pool, run, token, Ok(StepOutput::new(format!("<p>{rows}</p>"))), now)?;
///         }
///         EngineAction::Finished { outcome, output, .. } => {
///             assert_eq!(outcome, RunOutcome::Succeeded);
///             assert_eq!(output.as_deref(), Some("<p>42 rows</p>"));
///         }
///         other => unreachable!("{other:?}"),
///     }
/// }
/// assert!(backed_up);
/// assert_eq!(engine.active_runs(), 0);
/// assert_eq!(pool.live_tasks(), 0);
/// # Ok::<(), taskweave::Error>(())
/// ```
pub struct WorkflowEngine<P> {
    runs: IdMap<WorkflowId, Entry<P>>,
    /// Pool task of each run attempt submitted and not yet resolved.
    live: IdMap<(WorkflowId, AttemptToken), TaskId>,
    /// Every pool task of the engine's the pool may still speak of.
    tasks: IdMap<TaskId, Tracked>,
    /// Child run of each sub-workflow attempt.
    children: IdMap<(WorkflowId, AttemptToken), WorkflowId>,
    timers: BTreeSet<(Instant, WorkflowId)>,
    actions: VecDeque<EngineAction<P>>,
    next_run: u64,
    observer: Option<SharedObserver>,
    /// The latest `now` seen: an earlier one counts as this.
    latest: Instant,
    /// Registered definitions by name and version.
    versions: versions::Versions,
    /// Checkpoints no registered definition served, by run.
    parked: std::collections::BTreeMap<WorkflowId, super::Checkpoint<P>>,
    /// What `resume` does with such a checkpoint.
    mismatch: MismatchPolicy,
    /// The top-level runs that finished, as long as the retention keeps
    /// them.
    finished: retention::Finished<P>,
}

/// One of the engine's pool tasks.
#[derive(Clone, Copy, Debug)]
struct Tracked {
    step: StepTask,
    /// Resolved for the run; the pool still owes one action about it (the
    /// dead letter of a reported failure, the cancel of an attempt in
    /// flight), which the engine swallows.
    closing: bool,
}

impl<P> fmt::Debug for WorkflowEngine<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkflowEngine")
            .field("active_runs", &self.runs.len())
            .field("live_tasks", &self.live.len())
            .field("pending_actions", &self.actions.len())
            .finish_non_exhaustive()
    }
}

impl<P: Clone> Default for WorkflowEngine<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Clone> WorkflowEngine<P> {
    /// An engine with no run, for a pool the host owns.
    pub fn new() -> Self {
        WorkflowEngine {
            runs: IdMap::default(),
            live: IdMap::default(),
            tasks: IdMap::default(),
            children: IdMap::default(),
            timers: BTreeSet::new(),
            actions: VecDeque::new(),
            next_run: 1,
            observer: None,
            latest: Instant::ZERO,
            versions: versions::Versions::default(),
            parked: std::collections::BTreeMap::new(),
            mismatch: MismatchPolicy::default(),
            finished: retention::Finished::default(),
        }
    }

    /// Sets the observer of every run started from now on.
    pub fn set_observer(&mut self, observer: impl Observer<WorkflowEvent> + Send + 'static) {
        self.observer = Some(Arc::new(std::sync::Mutex::new(Box::new(observer))));
    }

    /// The next action, if any.
    #[must_use = "an action must be carried out, or its run waits forever"]
    pub fn poll_action(&mut self) -> Option<EngineAction<P>> {
        self.actions.pop_front()
    }

    /// Takes one action the host pulled from `pool`
    /// ([`Dispatcher::poll_action`](crate::scheduler::Dispatcher::poll_action)):
    /// an action about one of the engine's step tasks is kept — an
    /// assignment becomes [`EngineAction::Assign`], the pool's own cancel
    /// of an attempt [`EngineAction::CancelAssigned`], a task the pool gave
    /// up on a failed attempt, and the trailing action of a task the engine
    /// resolved already is dropped — and `None` is returned; any other action (a plain
    /// task's, [`Action::AgentLost`]) is handed back untouched.
    #[must_use = "an action handed back is the host's to carry out"]
    pub fn handle_action(&mut self, pool: &mut impl TaskPool, action: Action) -> Option<Action> {
        let task = match &action {
            Action::Assign { task, .. }
            | Action::Cancel { task, .. }
            | Action::DeadLettered { task, .. }
            | Action::Expired { task, .. } => *task,
            Action::AgentLost { .. } => return Some(action),
        };
        let Some(&tracked) = self.tasks.get(&task) else {
            return Some(action);
        };
        match action {
            Action::Assign {
                task, agent, token, ..
            } => {
                if !tracked.closing {
                    self.actions.push_back(EngineAction::Assign {
                        task,
                        agent,
                        token,
                        step: tracked.step,
                    });
                }
            }
            Action::Cancel {
                task, agent, token, ..
            } => {
                if tracked.closing {
                    // The engine's own cancel, handed out already.
                    self.tasks.remove(&task);
                } else {
                    // The pool stopped an attempt (timed out, agent lost):
                    // it assigns the task again or gives it up.
                    self.actions
                        .push_back(EngineAction::CancelAssigned { task, agent, token });
                }
            }
            Action::DeadLettered { task, .. } | Action::Expired { task, .. } => {
                if tracked.closing {
                    self.tasks.remove(&task);
                    // A reported failure's letter, taken already; or one
                    // the pool kept after all.
                    let _ = pool.take_given_up(task);
                } else {
                    self.task_failed(pool, task, tracked.step);
                }
            }
            Action::AgentLost { .. } => {}
        }
        None
    }

    /// The earliest instant the engine's runs need waking. It may be at or
    /// before [`latest_now`](Self::latest_now) when a run set a timer for
    /// an instant already reached during the last
    /// [`handle_timeout`](Self::handle_timeout). The pool's own timers are
    /// the host's to drive.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|&(at, _)| at)
    }

    /// Fires the runs' timers due at `now`.
    ///
    /// Each run whose timer was due when the call began is woken once
    /// ([`WorkflowRun::handle_timeout`]); a timer set during the call for an
    /// instant already reached waits for the next call, so one call does
    /// bounded work. A `now` earlier than one seen before counts as the
    /// latest one: a clock that steps back fires nothing new.
    pub fn handle_timeout(&mut self, pool: &mut impl TaskPool, now: Instant) {
        let now = self.clock(now);
        let first_later = (
            now.saturating_add(Duration::from_nanos(1)),
            WorkflowId::new(0),
        );
        let later = self.timers.split_off(&first_later);
        let due = std::mem::replace(&mut self.timers, later);
        for (at, id) in due {
            let Some(entry) = self.runs.get_mut(&id) else {
                continue;
            };
            // Rescheduled meanwhile (by a parent or child run's progress).
            if entry.timer != Some(at) {
                continue;
            }
            entry.timer = None;
            entry.run.handle_timeout(now);
            self.pump(pool, id, now);
        }
    }

    /// The latest `now` the engine was given: every call with an earlier
    /// one is handled at this instant instead.
    pub fn latest_now(&self) -> Instant {
        self.latest
    }

    fn clock(&mut self, now: Instant) -> Instant {
        self.latest = self.latest.max(now);
        self.latest
    }

    /// Reports the result of an agent step (or compensation) assigned with
    /// [`EngineAction::Assign`]. For a compensation, any `Ok` output is
    /// ignored. The pool gets the report too (a failure as not retryable:
    /// the step's own policy decides on a retry).
    ///
    /// # Errors
    ///
    /// [`EngineError::Report`] if the task is not the engine's or the pool
    /// refuses the report (an unknown task, a stale token, another agent);
    /// a [`RunError`] if the run refuses the result (for instance an
    /// invalid branch choice). A refused report changes nothing.
    ///
    /// [`RunError`]: super::RunError
    pub fn report(
        &mut self,
        pool: &mut impl TaskPool,
        task: TaskId,
        agent: AgentId,
        token: AttemptToken,
        result: Result<StepOutput<P>, StepFailure>,
        now: Instant,
    ) -> Result<(), EngineError> {
        let now = self.clock(now);
        let step = match self.tasks.get(&task) {
            Some(tracked) if !tracked.closing => tracked.step,
            _ => return Err(ReportError::UnknownTask(task).into()),
        };
        pool.verify_report(task, agent, token)?;
        let outcome = match &result {
            Ok(_) => AttemptOutcome::Success,
            // Never retried by the pool: the run has the failure, and
            // retries it by the step's policy.
            Err(failure) => AttemptOutcome::Failure {
                reason: failure.reason.clone(),
                retryable: false,
            },
        };
        let failed = result.is_err();
        let entry = self
            .runs
            .get_mut(&step.run)
            .ok_or(EngineError::UnknownRun(step.run))?;
        match (step.compensation, result) {
            (false, Ok(output)) => entry.run.succeed(step.token, output, now)?,
            (false, Err(failure)) => entry.run.fail(step.token, failure, now)?,
            (true, result) => entry.run.compensated(step.token, result.map(drop), now)?,
        }
        self.live.remove(&(step.run, step.token));
        pool.report(
            TaskReport {
                task,
                agent,
                token,
                outcome,
            },
            now,
        )?;
        if failed {
            // Dead-lettered: the letter is the engine's to take, and the
            // pool's action about it to swallow.
            let _ = pool.take_given_up(task);
            if let Some(tracked) = self.tasks.get_mut(&task) {
                tracked.closing = true;
            }
        } else {
            self.tasks.remove(&task);
        }
        self.pump(pool, step.run, now);
        Ok(())
    }

    /// Reports the result of an in-process step ([`EngineAction::RunLocal`]).
    ///
    /// # Errors
    ///
    /// [`EngineError::RunFinished`] for a run that finished,
    /// [`EngineError::UnknownRun`] for one the engine does not know, or
    /// the run's error.
    pub fn report_local(
        &mut self,
        pool: &mut impl TaskPool,
        run: WorkflowId,
        token: AttemptToken,
        result: Result<StepOutput<P>, StepFailure>,
        now: Instant,
    ) -> Result<(), EngineError> {
        let now = self.clock(now);
        self.with_run(pool, run, now, |r| match result {
            Ok(output) => r.succeed(token, output, now),
            Err(failure) => r.fail(token, failure, now),
        })
    }

    /// Reports a local compensation ([`EngineAction::CompensateLocal`]).
    ///
    /// # Errors
    ///
    /// [`EngineError::RunFinished`] for a run that finished,
    /// [`EngineError::UnknownRun`] for one the engine does not know, or
    /// the run's error.
    pub fn compensated(
        &mut self,
        pool: &mut impl TaskPool,
        run: WorkflowId,
        token: AttemptToken,
        result: Result<(), StepFailure>,
        now: Instant,
    ) -> Result<(), EngineError> {
        let now = self.clock(now);
        self.with_run(pool, run, now, |r| r.compensated(token, result, now))
    }

    /// Gives a multi-instance step its items ([`EngineAction::Expand`]).
    ///
    /// # Errors
    ///
    /// [`EngineError::RunFinished`] for a run that finished,
    /// [`EngineError::UnknownRun`] for one the engine does not know, or
    /// the run's error.
    pub fn expand(
        &mut self,
        pool: &mut impl TaskPool,
        run: WorkflowId,
        step: StepId,
        items: Vec<P>,
        now: Instant,
    ) -> Result<(), EngineError> {
        let now = self.clock(now);
        self.with_run(pool, run, now, |r| r.expand(step, items, now))
    }

    /// Sends a signal to a run's waiting steps.
    ///
    /// # Errors
    ///
    /// [`EngineError::RunFinished`] for a run that finished,
    /// [`EngineError::UnknownRun`] for one the engine does not know, or
    /// the run's error.
    pub fn signal(
        &mut self,
        pool: &mut impl TaskPool,
        run: WorkflowId,
        name: &str,
        payload: Option<P>,
        now: Instant,
    ) -> Result<(), EngineError> {
        let now = self.clock(now);
        self.with_run(pool, run, now, |r| r.signal(name, payload, now))
    }

    /// Cancels a run (it compensates, then finishes).
    ///
    /// # Errors
    ///
    /// [`EngineError::RunFinished`] for a run that finished,
    /// [`EngineError::UnknownRun`] for one the engine does not know, or
    /// the run's error.
    pub fn cancel(
        &mut self,
        pool: &mut impl TaskPool,
        run: WorkflowId,
        now: Instant,
    ) -> Result<(), EngineError> {
        let now = self.clock(now);
        self.with_run(pool, run, now, |r| r.cancel(now))
    }

    /// Cancels one step of a run.
    ///
    /// # Errors
    ///
    /// [`EngineError::RunFinished`] for a run that finished,
    /// [`EngineError::UnknownRun`] for one the engine does not know, or
    /// the run's error.
    pub fn cancel_step(
        &mut self,
        pool: &mut impl TaskPool,
        run: WorkflowId,
        step: StepId,
        now: Instant,
    ) -> Result<(), EngineError> {
        let now = self.clock(now);
        self.with_run(pool, run, now, |r| r.cancel_step(step, now))
    }

    fn with_run(
        &mut self,
        pool: &mut impl TaskPool,
        run: WorkflowId,
        now: Instant,
        input: impl FnOnce(&mut WorkflowRun<P>) -> Result<(), super::RunError>,
    ) -> Result<(), EngineError> {
        let Some(entry) = self.runs.get_mut(&run) else {
            return Err(self.absent(run));
        };
        input(&mut entry.run)?;
        self.pump(pool, run, now);
        Ok(())
    }

    /// Why `run` takes no input: it finished, or the engine does not know
    /// it.
    fn absent(&self, run: WorkflowId) -> EngineError {
        match self.finished_run(run) {
            Some(finished) => EngineError::RunFinished {
                run,
                outcome: finished.outcome.clone(),
            },
            None => EngineError::UnknownRun(run),
        }
    }
}
