//! [`WorkflowEngine`]: many workflow runs at once on one dispatcher.

use std::collections::{BTreeSet, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::{
    EngineError, RunAction, RunOutcome, StepDef, StepFailure, StepInput, StepKind, StepOutput,
    WorkflowDef, WorkflowEvent, WorkflowObserver, WorkflowRun,
};
use crate::agent::AgentProfile;
use crate::hash::IdMap;
use crate::resilience::Never;
use crate::routing::{LeastLoaded, RoutingStrategy};
use crate::scheduler::{
    Action, AttemptOutcome, Dispatcher, DispatcherConfig, TaskReport, TaskSpec,
};
use crate::{AgentId, AttemptToken, Instant, StepId, TaskId, TaskRequirements, WorkflowId};

/// The dispatcher payload of a workflow task: which attempt of which run it
/// carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct StepTask {
    /// The run.
    pub run: WorkflowId,
    /// The step.
    pub step: StepId,
    /// The run's attempt token (not the dispatcher's).
    pub token: AttemptToken,
    /// Whether the task compensates the step instead of running it.
    pub compensation: bool,
}

/// What the host should do next; pulled with
/// [`WorkflowEngine::poll_action`].
#[derive(Clone, Debug, PartialEq)]
pub enum EngineAction<P> {
    /// Run (or compensate) an agent step on `agent`; its input is
    /// [`WorkflowEngine::input`]`(step.run, step.token)`. Report with
    /// [`WorkflowEngine::report`] and this `task` and `token`.
    Assign {
        /// The dispatcher task.
        task: TaskId,
        /// The agent chosen.
        agent: AgentId,
        /// The dispatcher's fencing token.
        token: AttemptToken,
        /// The run attempt it carries.
        step: StepTask,
    },
    /// Stop the dispatcher attempt `token` of `task` on `agent`.
    CancelAssigned {
        /// The dispatcher task.
        task: TaskId,
        /// The agent running it.
        agent: AgentId,
        /// The dispatcher's token.
        token: AttemptToken,
    },
    /// Run an in-process step; report with [`WorkflowEngine::report_local`].
    RunLocal {
        /// The run.
        run: WorkflowId,
        /// The step.
        step: StepId,
        /// The run's attempt token.
        token: AttemptToken,
    },
    /// Compensate an in-process or sub-workflow step; report with
    /// [`WorkflowEngine::compensated`].
    CompensateLocal {
        /// The run.
        run: WorkflowId,
        /// The step.
        step: StepId,
        /// The compensation attempt's token.
        token: AttemptToken,
    },
    /// Stop an in-process attempt.
    CancelLocal {
        /// The run.
        run: WorkflowId,
        /// The step.
        step: StepId,
        /// The attempt.
        token: AttemptToken,
    },
    /// A multi-instance step needs its items: [`WorkflowEngine::expand`].
    Expand {
        /// The run.
        run: WorkflowId,
        /// The step.
        step: StepId,
    },
    /// An agent missed its heartbeats; its tasks were requeued.
    AgentLost {
        /// The agent.
        agent: AgentId,
    },
    /// A top-level run ended (sub-workflow runs report to their parent
    /// step instead). The run is removed from the engine.
    Finished {
        /// The run.
        run: WorkflowId,
        /// How it ended.
        outcome: RunOutcome,
        /// Its output.
        output: Option<P>,
    },
}

struct Entry<P> {
    run: WorkflowRun<P>,
    /// The run's key in the engine's timer set.
    timer: Option<Instant>,
    /// For a sub-workflow run: the parent run and the attempt it completes.
    parent: Option<(WorkflowId, AttemptToken)>,
}

type SharedObserver = Arc<Mutex<Box<dyn WorkflowObserver + Send>>>;

/// Runs many [`WorkflowRun`]s at once on one [`Dispatcher`].
///
/// Ready agent steps become dispatcher tasks, routed by the step's required
/// capabilities and priority; task outcomes become step results. In-process
/// steps, multi-instance expansions and local compensations come out as
/// actions for the host (or the threaded driver). Sub-workflow steps start
/// child runs inside the engine, whose outcome completes the parent step.
/// Timers of every run are kept in one ordered set, so
/// [`poll_timeout`](Self::poll_timeout) and
/// [`handle_timeout`](Self::handle_timeout) cost `O(log runs)`.
///
/// Step retries belong to the runs: the engine sets the dispatcher's retry
/// policy to [`Never`] and turns every dead-lettered or expired task into a
/// failed attempt of its step. Failover of agents that are lost or
/// unregistered stays with the dispatcher: their tasks are requeued and
/// reassigned, invisibly to the run.
///
/// ```
/// use std::sync::Arc;
/// use taskweave::agent::AgentProfile;
/// use taskweave::scheduler::DispatcherConfig;
/// use taskweave::workflow::{EngineAction, RunOutcome, StepDef, StepOutput, WorkflowDef, WorkflowEngine};
/// use taskweave::{AgentId, Instant};
///
/// let def = Arc::new(
///     WorkflowDef::builder("report", 1)
///         .step(StepDef::agent("query").capabilities(["sql"]))
///         .step(StepDef::local("format"))
///         .edge("query", "format")
///         .build()?,
/// );
/// let mut engine: WorkflowEngine<String> = WorkflowEngine::new(DispatcherConfig::default());
/// let now = Instant::ZERO;
/// engine.register_agent(AgentId::new(1), AgentProfile::builder().capabilities(["sql"]).build()?, now)?;
/// let run = engine.start(def, None, now);
/// while let Some(action) = engine.poll_action() {
///     match action {
///         EngineAction::Assign { task, agent, token, .. } => {
///             engine.report(task, agent, token, Ok(StepOutput::new("42 rows".to_string())), now)?
///         }
///         EngineAction::RunLocal { run, token, .. } => {
///             let input = engine.input(run, token)?;
///             let rows = &input.inputs[0].1;
///             engine.report_local(run, token, Ok(StepOutput::new(format!("<p>{rows}</p>"))), now)?;
///         }
///         EngineAction::Finished { outcome, output, .. } => {
///             assert_eq!(outcome, RunOutcome::Succeeded);
///             assert_eq!(output.as_deref(), Some("<p>42 rows</p>"));
///         }
///         other => unreachable!("{other:?}"),
///     }
/// }
/// assert_eq!(engine.active_runs(), 0);
/// # let _ = run;
/// # Ok::<(), taskweave::Error>(())
/// ```
pub struct WorkflowEngine<P, S = Box<dyn RoutingStrategy + Send>> {
    dispatcher: Dispatcher<StepTask, S>,
    runs: IdMap<WorkflowId, Entry<P>>,
    /// Dispatcher task of each run attempt submitted and not yet resolved.
    live: IdMap<(WorkflowId, AttemptToken), TaskId>,
    /// Child run of each sub-workflow attempt.
    children: IdMap<(WorkflowId, AttemptToken), WorkflowId>,
    timers: BTreeSet<(Instant, WorkflowId)>,
    actions: VecDeque<EngineAction<P>>,
    next_run: u64,
    observer: Option<SharedObserver>,
    /// The latest `now` seen: an earlier one counts as this.
    latest: Instant,
}

impl<P, S> fmt::Debug for WorkflowEngine<P, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkflowEngine")
            .field("active_runs", &self.runs.len())
            .field("live_tasks", &self.live.len())
            .field("pending_actions", &self.actions.len())
            .finish_non_exhaustive()
    }
}

impl<P: Clone> WorkflowEngine<P> {
    /// An engine over a dispatcher with `config` (its retry policy replaced
    /// by [`Never`]) and the [`LeastLoaded`] strategy.
    pub fn new(config: DispatcherConfig) -> Self {
        Self::with_strategy(config, Box::new(LeastLoaded::new()))
    }
}

impl<P: Clone, S: RoutingStrategy> WorkflowEngine<P, S> {
    /// An engine over a dispatcher with `config` (its retry policy replaced
    /// by [`Never`]) and `strategy`.
    pub fn with_strategy(mut config: DispatcherConfig, strategy: S) -> Self {
        config.retry = Box::new(Never);
        WorkflowEngine {
            dispatcher: Dispatcher::with_strategy(config, strategy),
            runs: IdMap::default(),
            live: IdMap::default(),
            children: IdMap::default(),
            timers: BTreeSet::new(),
            actions: VecDeque::new(),
            next_run: 1,
            observer: None,
            latest: Instant::ZERO,
        }
    }

    /// Sets the observer of every run started from now on.
    pub fn set_observer(&mut self, observer: impl WorkflowObserver + Send + 'static) {
        self.observer = Some(Arc::new(Mutex::new(Box::new(observer))));
    }

    /// The dispatcher (agents, queues, metrics).
    pub fn dispatcher(&self) -> &Dispatcher<StepTask, S> {
        &self.dispatcher
    }

    /// Registers an agent with the dispatcher.
    ///
    /// # Errors
    ///
    /// As [`Dispatcher::register_agent`].
    pub fn register_agent(
        &mut self,
        agent: AgentId,
        profile: AgentProfile,
        now: Instant,
    ) -> Result<(), EngineError> {
        let now = self.clock(now);
        Ok(self.dispatcher.register_agent(agent, profile, now)?)
    }

    /// Unregisters an agent; its tasks are requeued.
    ///
    /// # Errors
    ///
    /// As [`Dispatcher::unregister_agent`].
    pub fn unregister_agent(&mut self, agent: AgentId, now: Instant) -> Result<(), EngineError> {
        let now = self.clock(now);
        self.dispatcher.unregister_agent(agent, now)?;
        Ok(())
    }

    /// Records a heartbeat.
    ///
    /// # Errors
    ///
    /// As [`Dispatcher::heartbeat`].
    pub fn heartbeat(&mut self, agent: AgentId, now: Instant) -> Result<(), EngineError> {
        let now = self.clock(now);
        Ok(self.dispatcher.heartbeat(agent, now)?)
    }

    /// Starts a run of `def` with `input`; returns its id.
    pub fn start(&mut self, def: Arc<WorkflowDef>, input: Option<P>, now: Instant) -> WorkflowId {
        let now = self.clock(now);
        self.spawn(def, input, None, now)
    }

    /// Runs that have not finished yet, sub-workflow runs included.
    pub fn active_runs(&self) -> usize {
        self.runs.len()
    }

    /// A run that has not finished yet.
    pub fn run(&self, run: WorkflowId) -> Option<&WorkflowRun<P>> {
        self.runs.get(&run).map(|entry| &entry.run)
    }

    /// The input of attempt `token` of `run`.
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownRun`], or the run's error.
    pub fn input(&self, run: WorkflowId, token: AttemptToken) -> Result<StepInput<P>, EngineError> {
        let entry = self.runs.get(&run).ok_or(EngineError::UnknownRun(run))?;
        Ok(entry.run.input(token)?)
    }

    /// The next action, if any.
    pub fn poll_action(&mut self) -> Option<EngineAction<P>> {
        self.drain_dispatcher();
        self.actions.pop_front()
    }

    /// The earliest instant the engine needs waking. It may be at or before
    /// [`latest_now`](Self::latest_now) when a run set a timer for an
    /// instant already reached during the last
    /// [`handle_timeout`](Self::handle_timeout).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let runs = self.timers.first().map(|&(at, _)| at);
        match (runs, self.dispatcher.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Fires the dispatcher's and the runs' timers due at `now`.
    ///
    /// Each run whose timer was due when the call began is woken once
    /// ([`WorkflowRun::handle_timeout`]); a timer set during the call for an
    /// instant already reached waits for the next call, so one call does
    /// bounded work. A `now` earlier than one seen before counts as the
    /// latest one: a clock that steps back fires nothing new.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.clock(now);
        self.dispatcher.handle_timeout(now);
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
            self.pump(id, now);
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
    /// ignored.
    ///
    /// # Errors
    ///
    /// [`EngineError::Report`] if the dispatcher refuses the report (an
    /// unknown task, a stale token, another agent); a [`RunError`] if the
    /// run refuses the result (for instance an invalid branch choice). A
    /// refused report changes nothing.
    ///
    /// [`RunError`]: super::RunError
    pub fn report(
        &mut self,
        task: TaskId,
        agent: AgentId,
        token: AttemptToken,
        result: Result<StepOutput<P>, StepFailure>,
        now: Instant,
    ) -> Result<(), EngineError> {
        let now = self.clock(now);
        self.dispatcher.verify_report(task, agent, token)?;
        let Some(&step) = self.dispatcher.payload(task) else {
            return Err(crate::scheduler::ReportError::UnknownTask(task).into());
        };
        let outcome = match &result {
            Ok(_) => AttemptOutcome::Success,
            Err(failure) => AttemptOutcome::Failure {
                reason: failure.reason.clone(),
                retryable: failure.retryable,
            },
        };
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
        self.dispatcher.report(
            TaskReport {
                task,
                agent,
                token,
                outcome,
            },
            now,
        )?;
        // A failure is dead-lettered (the dispatcher never retries for the
        // engine); the run has the failure already.
        self.dispatcher.take_dead_letter(task);
        self.pump(step.run, now);
        Ok(())
    }

    /// Reports the result of an in-process step ([`EngineAction::RunLocal`]).
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownRun`], or the run's error.
    pub fn report_local(
        &mut self,
        run: WorkflowId,
        token: AttemptToken,
        result: Result<StepOutput<P>, StepFailure>,
        now: Instant,
    ) -> Result<(), EngineError> {
        let now = self.clock(now);
        self.with_run(run, now, |r| match result {
            Ok(output) => r.succeed(token, output, now),
            Err(failure) => r.fail(token, failure, now),
        })
    }

    /// Reports a local compensation ([`EngineAction::CompensateLocal`]).
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownRun`], or the run's error.
    pub fn compensated(
        &mut self,
        run: WorkflowId,
        token: AttemptToken,
        result: Result<(), StepFailure>,
        now: Instant,
    ) -> Result<(), EngineError> {
        let now = self.clock(now);
        self.with_run(run, now, |r| r.compensated(token, result, now))
    }

    /// Gives a multi-instance step its items ([`EngineAction::Expand`]).
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownRun`], or the run's error.
    pub fn expand(
        &mut self,
        run: WorkflowId,
        step: StepId,
        items: Vec<P>,
        now: Instant,
    ) -> Result<(), EngineError> {
        let now = self.clock(now);
        self.with_run(run, now, |r| r.expand(step, items, now))
    }

    /// Sends a signal to a run's waiting steps.
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownRun`], or the run's error.
    pub fn signal(
        &mut self,
        run: WorkflowId,
        name: &str,
        payload: Option<P>,
        now: Instant,
    ) -> Result<(), EngineError> {
        let now = self.clock(now);
        self.with_run(run, now, |r| r.signal(name, payload, now))
    }

    /// Cancels a run (it compensates, then finishes).
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownRun`], or the run's error.
    pub fn cancel(&mut self, run: WorkflowId, now: Instant) -> Result<(), EngineError> {
        let now = self.clock(now);
        self.with_run(run, now, |r| r.cancel(now))
    }

    /// Cancels one step of a run.
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownRun`], or the run's error.
    pub fn cancel_step(
        &mut self,
        run: WorkflowId,
        step: StepId,
        now: Instant,
    ) -> Result<(), EngineError> {
        let now = self.clock(now);
        self.with_run(run, now, |r| r.cancel_step(step, now))
    }

    fn with_run(
        &mut self,
        run: WorkflowId,
        now: Instant,
        input: impl FnOnce(&mut WorkflowRun<P>) -> Result<(), super::RunError>,
    ) -> Result<(), EngineError> {
        let entry = self
            .runs
            .get_mut(&run)
            .ok_or(EngineError::UnknownRun(run))?;
        input(&mut entry.run)?;
        self.pump(run, now);
        Ok(())
    }

    fn spawn(
        &mut self,
        def: Arc<WorkflowDef>,
        input: Option<P>,
        parent: Option<(WorkflowId, AttemptToken)>,
        now: Instant,
    ) -> WorkflowId {
        let id = WorkflowId::new(self.next_run);
        self.next_run += 1;
        let run = match &self.observer {
            Some(shared) => {
                let shared = Arc::clone(shared);
                WorkflowRun::with_observer(def, id, input, now, move |event: &WorkflowEvent| {
                    shared.lock().on_event(event);
                })
            }
            None => WorkflowRun::new(def, id, input, now),
        };
        self.runs.insert(
            id,
            Entry {
                run,
                timer: None,
                parent,
            },
        );
        self.pump(id, now);
        id
    }

    /// Turns a run's pending actions into dispatcher tasks, child runs and
    /// engine actions, then files its next timer.
    fn pump(&mut self, id: WorkflowId, now: Instant) {
        loop {
            let Some(entry) = self.runs.get_mut(&id) else {
                return;
            };
            let Some(action) = entry.run.poll_action() else {
                break;
            };
            let def = Arc::clone(entry.run.definition());
            match action {
                RunAction::Start { step, token, .. } => {
                    let Some(step_def) = def.step(step) else {
                        continue;
                    };
                    match &step_def.kind {
                        StepKind::Agent => self.submit(id, step, token, false, now),
                        StepKind::SubWorkflow(child) => {
                            let input = entry.run.input(token).ok().and_then(|input| {
                                input
                                    .inputs
                                    .last()
                                    .map(|(_, v)| v.clone())
                                    .or(input.run_input)
                            });
                            let child =
                                self.spawn(Arc::clone(child), input, Some((id, token)), now);
                            self.children.insert((id, token), child);
                        }
                        StepKind::Local | StepKind::Wait { .. } => {
                            self.actions.push_back(EngineAction::RunLocal {
                                run: id,
                                step,
                                token,
                            });
                        }
                    }
                }
                RunAction::Expand { step } => {
                    self.actions
                        .push_back(EngineAction::Expand { run: id, step });
                }
                RunAction::Cancel { step, token, .. } => {
                    if let Some(task) = self.live.remove(&(id, token)) {
                        // Queued tasks vanish; in-flight ones come back as a
                        // dispatcher Cancel action.
                        let _ = self.dispatcher.cancel(task, now);
                        self.drain_dispatcher();
                    } else if let Some(child) = self.children.remove(&(id, token)) {
                        if let Some(entry) = self.runs.get_mut(&child) {
                            entry.parent = None;
                            let _ = entry.run.cancel(now);
                            self.pump(child, now);
                        }
                    } else {
                        self.actions.push_back(EngineAction::CancelLocal {
                            run: id,
                            step,
                            token,
                        });
                    }
                }
                RunAction::Compensate { step, token, .. } => {
                    if def.step(step).is_some_and(StepDef::is_agent) {
                        self.submit(id, step, token, true, now);
                    } else {
                        self.actions.push_back(EngineAction::CompensateLocal {
                            run: id,
                            step,
                            token,
                        });
                    }
                }
                RunAction::Finished => {
                    self.finished(id, now);
                    return;
                }
            }
        }
        self.reschedule(id);
    }

    fn submit(
        &mut self,
        run: WorkflowId,
        step: StepId,
        token: AttemptToken,
        compensation: bool,
        now: Instant,
    ) {
        let Some(entry) = self.runs.get_mut(&run) else {
            return;
        };
        let Some(step_def) = entry.run.definition().step(step) else {
            return;
        };
        let spec = TaskSpec::new(StepTask {
            run,
            step,
            token,
            compensation,
        })
        .priority(step_def.priority)
        .requirements(TaskRequirements::new().require(step_def.capabilities.iter().cloned()));
        match self.dispatcher.submit(spec, now) {
            Ok(submitted) => {
                self.live.insert((run, token), submitted.id());
                self.drain_dispatcher();
            }
            Err(refused) => {
                let failure = StepFailure::retryable(format!(
                    "the dispatcher refused the task: {}",
                    refused.kind
                ));
                let _ = if compensation {
                    entry.run.compensated(token, Err(failure), now)
                } else {
                    entry.run.fail(token, failure, now)
                };
            }
        }
    }

    fn reschedule(&mut self, id: WorkflowId) {
        let Some(entry) = self.runs.get_mut(&id) else {
            return;
        };
        let next = entry.run.poll_timeout();
        if next != entry.timer {
            if let Some(old) = entry.timer {
                self.timers.remove(&(old, id));
            }
            if let Some(new) = next {
                self.timers.insert((new, id));
            }
            entry.timer = next;
        }
    }

    fn finished(&mut self, id: WorkflowId, now: Instant) {
        let Some(entry) = self.runs.remove(&id) else {
            return;
        };
        if let Some(at) = entry.timer {
            self.timers.remove(&(at, id));
        }
        let outcome = entry
            .run
            .outcome()
            .cloned()
            .unwrap_or(RunOutcome::Failed(super::FailureCause::Cancelled));
        let output = entry.run.output().cloned();
        match entry.parent {
            Some((parent, token)) => {
                self.children.remove(&(parent, token));
                if let Some(parent_entry) = self.runs.get_mut(&parent) {
                    let _ = match outcome {
                        RunOutcome::Succeeded => parent_entry.run.succeed(
                            token,
                            StepOutput {
                                value: output,
                                branches: Vec::new(),
                                again: false,
                            },
                            now,
                        ),
                        other => parent_entry.run.fail(
                            token,
                            StepFailure::fatal(format!("the sub-workflow ended {other:?}")),
                            now,
                        ),
                    };
                    self.pump(parent, now);
                }
            }
            None => self.actions.push_back(EngineAction::Finished {
                run: id,
                outcome,
                output,
            }),
        }
    }

    /// Translates the dispatcher's pending actions, in order, so they take
    /// their place among the engine's.
    fn drain_dispatcher(&mut self) {
        while let Some(action) = self.dispatcher.poll_action() {
            self.on_dispatcher_action(action);
        }
    }

    fn on_dispatcher_action(&mut self, action: Action) {
        match action {
            Action::Assign {
                task, agent, token, ..
            } => {
                if let Some(&step) = self.dispatcher.payload(task) {
                    self.actions.push_back(EngineAction::Assign {
                        task,
                        agent,
                        token,
                        step,
                    });
                }
            }
            Action::Cancel {
                task, agent, token, ..
            } => self
                .actions
                .push_back(EngineAction::CancelAssigned { task, agent, token }),
            Action::DeadLettered { task, .. } | Action::Expired { task, .. } => {
                self.task_failed(task);
            }
            Action::AgentLost { agent } => {
                self.actions.push_back(EngineAction::AgentLost { agent });
            }
        }
    }

    /// A task the dispatcher gave up on: its attempt fails.
    fn task_failed(&mut self, task: TaskId) {
        let Some(letter) = self.dispatcher.take_dead_letter(task) else {
            return;
        };
        let step = letter.spec.payload;
        if self.live.remove(&(step.run, step.token)).is_none() {
            return;
        }
        let Some(entry) = self.runs.get_mut(&step.run) else {
            return;
        };
        let failure = StepFailure::retryable(format!("{:?}", letter.reason));
        let now = letter.at;
        let _ = if step.compensation {
            entry.run.compensated(step.token, Err(failure), now)
        } else {
            entry.run.fail(step.token, failure, now)
        };
        self.pump(step.run, now);
    }
}
