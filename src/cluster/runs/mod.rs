//! Workflow runs hosted by the cluster's nodes: a [`WorkflowEngine`]
//! beside each replica's dispatcher, driven by journal entries only.
//!
//! A client's [`RunCommand`] (register a definition, start, signal or
//! cancel a run) is journaled as [`Entry::Run`](super::Entry::Run) before
//! the leader acts on it, and the engine's timers fire through
//! [`Entry::RunTimers`](super::Entry::RunTimers). Everything else the
//! engine does follows from entries the dispatcher applies anyway: a
//! step's task is submitted to the replica's own dispatcher, and the
//! report that ends it (with its output) completes the step. A follower
//! that applies the same journal therefore holds the same runs, and a
//! node's snapshot carries them ([`NodeState::runs`](super::NodeState)):
//! a run outlives the leader, the client that started it, and the store's
//! restarts.
//!
//! A hosted run executes no user code inside a node, so a definition
//! whose steps would need host code — a [`Local`](crate::workflow::StepKind::Local)
//! step, a multi-instance step, a compensable sub-workflow step — is
//! refused when it is registered.

mod codec;
mod command;
mod definitions;
mod pool;
mod schedules;
mod tenants;

use std::sync::Arc;

use crate::schedule::ScheduleAction;
use crate::scheduler::TenantLimit;
use crate::scheduler::{Action, AttemptOutcome, Dispatcher, TaskReport};
use crate::workflow::{
    EngineAction, EngineSnapshot, StepFailure, StepOutput, StepTask, WorkflowDef, WorkflowEngine,
};
use crate::{Instant, TaskId, TenantId, WorkflowId};
pub use codec::RunCodec;
pub use command::{RunCommand, RunEnd};
use definitions::{NO_HOST_CODE, definition_in, needs_no_host};
use pool::HostPool;
use schedules::HostedSchedules;
pub use schedules::{MAX_SCHEDULES, ScheduleCommand, ScheduledStart, SchedulesSnapshot};
use tenants::RunTenants;

/// How many workflow versions a cluster keeps registered at most.
pub const MAX_DEFINITIONS: usize = 1_024;

/// How many runs a cluster holds active at most (sub-workflow runs
/// included): a start beyond is refused, so a client cannot make the
/// nodes hoard memory with runs that wait for ever.
pub const MAX_ACTIVE_RUNS: usize = 100_000;

/// The hosted runs in a node's snapshot: the registered definitions,
/// the engine's state and the schedules (left out when there is none).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(bound(
    serialize = "P: serde::Serialize",
    deserialize = "P: serde::Deserialize<'de>"
))]
pub struct RunsSnapshot<P> {
    definitions: Vec<WorkflowDef>,
    engine: EngineSnapshot<P>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    schedules: Option<SchedulesSnapshot<P>>,
    /// The tenant of each top-level run a tenant's client started, by
    /// run (left out when there is none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    tenants: Vec<(WorkflowId, TenantId)>,
}

impl<P> RunsSnapshot<P> {
    /// The schedules the snapshot holds, if any.
    pub fn schedules(&self) -> Option<&SchedulesSnapshot<P>> {
        self.schedules.as_ref()
    }

    /// The finished runs its engine remembers (the engine's retention),
    /// oldest end first: a store keeps their ends readable for as long
    /// ([`NodeOp::PutSnapshot`](super::NodeOp::PutSnapshot)).
    pub fn remembered_runs(&self) -> impl Iterator<Item = WorkflowId> + '_ {
        self.engine.remembered().iter().map(|finished| finished.run)
    }
}

impl<P: Clone> RunsSnapshot<P> {
    /// The engine the snapshot holds, to read (an operator's view of a
    /// run: its steps, their outputs, a picture); it drives nothing.
    ///
    /// # Errors
    ///
    /// The engine's, for a snapshot that does not restore.
    pub fn engine(self) -> Result<WorkflowEngine<P>, crate::workflow::EngineError> {
        WorkflowEngine::restore(self.engine, self.definitions.into_iter().map(Arc::new))
    }
}

/// The runs a replica hosts.
pub(crate) struct HostedRuns<P> {
    engine: WorkflowEngine<P>,
    codec: RunCodec<P>,
    /// Step tasks submitted since the last settle, whose input is still
    /// to be written in.
    unfilled: Vec<(TaskId, StepTask)>,
    schedules: HostedSchedules<P>,
    /// Whose runs are whose.
    tenants: RunTenants,
    /// The cluster drains: the schedules start no run.
    draining: bool,
}

/// What [`HostedRuns::settle`] did: the dispatcher's actions to publish,
/// the runs that ended, and the tenant of each step task submitted for a
/// tenant's run.
pub(crate) struct Settled<P> {
    pub(crate) actions: Vec<Action>,
    pub(crate) ended: Vec<RunEnd<P>>,
    pub(crate) step_tenants: Vec<(TaskId, TenantId)>,
}

impl<P: Clone> HostedRuns<P> {
    pub(crate) fn new(codec: RunCodec<P>) -> Self {
        HostedRuns {
            engine: WorkflowEngine::new(),
            codec,
            unfilled: Vec::new(),
            schedules: HostedSchedules::new(),
            tenants: RunTenants::new(),
            draining: false,
        }
    }

    /// The runs a snapshot holds.
    ///
    /// # Errors
    ///
    /// Why the snapshot does not restore.
    pub(crate) fn restore(codec: RunCodec<P>, snapshot: RunsSnapshot<P>) -> Result<Self, String> {
        let definitions = snapshot.definitions.into_iter().map(Arc::new);
        let engine = WorkflowEngine::restore(snapshot.engine, definitions)
            .map_err(|e| format!("the hosted runs do not restore: {e}"))?;
        let schedules = match snapshot.schedules {
            Some(schedules) => HostedSchedules::restore(schedules)
                .map_err(|e| format!("the hosted schedules do not restore: {e}"))?,
            None => HostedSchedules::new(),
        };
        schedules.check(
            |run| engine.run(run).is_some(),
            |name, version| definition_in(&engine, name, version).is_ok(),
        )?;
        let tenants = RunTenants::restore(snapshot.tenants, &engine)
            .map_err(|e| format!("the hosted runs' tenants do not restore: {e}"))?;
        Ok(HostedRuns {
            engine,
            codec,
            unfilled: Vec::new(),
            schedules,
            tenants,
            // A leader takes no snapshot once draining: the drain is in
            // the journal after it.
            draining: false,
        })
    }

    pub(crate) fn snapshot(&self) -> RunsSnapshot<P> {
        RunsSnapshot {
            definitions: self.engine.registered().map(|d| (**d).clone()).collect(),
            engine: self.engine.snapshot(),
            schedules: self.schedules.snapshot(),
            tenants: self.tenants.snapshot(&self.engine),
        }
    }

    /// The tenant of each live step task of a tenant's run: what a
    /// restored replica confines the steps' ends to.
    pub(crate) fn step_tenants(&self) -> impl Iterator<Item = (TaskId, TenantId)> + '_ {
        let engine = &self.engine;
        engine
            .step_tasks()
            .filter_map(|(task, step)| Some((task, self.tenants.of(engine, step.run)?)))
    }

    pub(crate) fn engine(&self) -> &WorkflowEngine<P> {
        &self.engine
    }

    /// Has `observer` hear the events of every run started from now on
    /// (the audit's checks of runs).
    pub(crate) fn observe(
        &mut self,
        observer: impl crate::Observer<crate::workflow::WorkflowEvent> + Send + 'static,
    ) {
        self.engine.set_observer(observer);
    }

    /// Runs started without an id take ids from `next` on
    /// ([`Entry::SkipIds`](super::Entry::SkipIds)).
    pub(crate) fn skip_issued_runs(&mut self, next: u64) {
        self.engine.skip_issued_runs(next);
    }

    /// A completed step task's output read as its step's, as a report
    /// applies it.
    pub(crate) fn read_output(&self, output: P) -> Result<StepOutput<P>, String> {
        (self.codec.step_output)(output)
    }

    /// Whether `task` is one of the runs' step tasks.
    pub(crate) fn owns(&self, task: TaskId) -> bool {
        self.engine.owns(task)
    }

    /// Active runs.
    pub(crate) fn active(&self) -> usize {
        self.engine.active_runs()
    }

    /// Whether a run's timer or a schedule's fire is due at `now` (a
    /// fire is not, once the cluster drains).
    pub(crate) fn due(&self, now: Instant) -> bool {
        self.next_due().is_some_and(|at| at <= now)
    }

    /// When a timer is due next: a run's (a wait, a step's deadline) or,
    /// unless the cluster drains, a schedule's.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        let schedules = self.schedules.poll_timeout().filter(|_| !self.draining);
        [self.engine.poll_timeout(), schedules]
            .into_iter()
            .flatten()
            .min()
    }

    /// The cluster drains: from here on the schedules start no run (their
    /// fires wait), so the drain ends once the runs going ended.
    pub(crate) fn drain(&mut self) {
        self.draining = true;
    }

    /// Applies a client's command, sent for `tenant` (or for none); a
    /// start answers the run it names. A run is its starter's: a command
    /// about another's run is refused as one about a run that is not
    /// active, and a start under another's run id is refused.
    pub(crate) fn command(
        &mut self,
        dispatcher: &mut Dispatcher<P>,
        command: RunCommand<P>,
        tenant: Option<TenantId>,
        now: Instant,
    ) -> Result<Option<WorkflowId>, String> {
        self.tenants.forget(&self.engine);
        if let (RunCommand::Register(_) | RunCommand::Schedule(_), Some(tenant)) =
            (&command, tenant)
        {
            return Err(format!(
                "{tenant} may start, signal and cancel its own runs only: workflows and \
                 schedules are an operator's (a client of no tenant)"
            ));
        }
        match command {
            RunCommand::Register(def) => self.register(*def).map(|()| None),
            RunCommand::Start {
                workflow,
                version,
                id,
                input,
            } => self
                .start(dispatcher, (&workflow, version), id, input, tenant, now)
                .map(Some),
            RunCommand::Signal { run, name, payload } => {
                self.owned(run, tenant)?;
                self.with_pool(dispatcher, |engine, pool| {
                    engine.signal(pool, run, &name, payload, now)
                })
                .map(|()| None)
                .map_err(|e| e.to_string())
            }
            RunCommand::Cancel(run) => {
                self.owned(run, tenant)?;
                self.with_pool(dispatcher, |engine, pool| engine.cancel(pool, run, now))
                    .map(|()| None)
                    .map_err(|e| e.to_string())
            }
            RunCommand::Schedule(command) => {
                let engine = &self.engine;
                let registered =
                    |name: &str, version| definition_in(engine, name, version).map(|_| ());
                self.schedules
                    .command(command, registered, now)
                    .map(|()| None)
            }
        }
    }

    /// Starts a run of `workflow` (a name and a version, or the highest)
    /// for `tenant`, under `id` or a fresh one; a start under the id of a
    /// run the engine knows names that run, if it is the same tenant's.
    fn start(
        &mut self,
        dispatcher: &mut Dispatcher<P>,
        (workflow, version): (&str, Option<u32>),
        id: Option<WorkflowId>,
        input: Option<P>,
        tenant: Option<TenantId>,
        now: Instant,
    ) -> Result<WorkflowId, String> {
        let def = self.definition(workflow, version)?;
        let known = id
            .filter(|&id| self.engine.run(id).is_some() || self.engine.finished_run(id).is_some());
        if let Some(id) = known {
            if self.tenants.of(&self.engine, id) != tenant {
                return Err(format!(
                    "another client's run holds the id {id}: start this one under another id \
                     (or under none, and the cluster picks one)"
                ));
            }
        } else {
            if self.engine.active_runs() >= MAX_ACTIVE_RUNS {
                return Err(format!(
                    "the cluster holds {MAX_ACTIVE_RUNS} active runs, its limit: start this \
                     one once others ended (cancel those no longer wanted)"
                ));
            }
            if let Some(tenant) = tenant {
                let quota = dispatcher
                    .tenant_quota(tenant)
                    .and_then(|q| q.max_live_runs());
                if let Some(limit) = quota.filter(|&limit| self.tenants.live(tenant) >= limit) {
                    let limit = TenantLimit::LiveRuns { limit };
                    return Err(format!("{tenant} is at its quota of {limit}"));
                }
            }
        }
        let (run, new) = self.with_pool(dispatcher, |engine, pool| match id {
            Some(id) => {
                let started = engine.start_as(pool, def, id, input, now);
                (started.id(), started.is_new())
            }
            None => (engine.start(pool, def, input, now), true),
        });
        if new {
            self.tenants.started(run, tenant);
        }
        Ok(run)
    }

    /// Refuses a command about `run` from a client of another tenant
    /// than the run's, in the words of a run that is not active.
    fn owned(&self, run: WorkflowId, tenant: Option<TenantId>) -> Result<(), String> {
        match self.tenants.of(&self.engine, run) == tenant {
            true => Ok(()),
            false => Err(crate::workflow::EngineError::UnknownRun(run).to_string()),
        }
    }

    /// An agent's report on a step task, with its output.
    pub(crate) fn report(
        &mut self,
        dispatcher: &mut Dispatcher<P>,
        report: TaskReport,
        output: Option<P>,
        now: Instant,
    ) -> Result<(), String> {
        let result = match report.outcome {
            AttemptOutcome::Success => match output {
                Some(output) => (self.codec.step_output)(output).map_err(|why| {
                    StepFailure::fatal(format!("the step's output does not read: {why}"))
                }),
                None => Ok(StepOutput::empty()),
            },
            AttemptOutcome::Failure { reason, retryable } => Err(StepFailure { reason, retryable }),
        };
        let TaskReport {
            task, agent, token, ..
        } = report;
        self.with_pool(dispatcher, |engine, pool| {
            engine.report(pool, task, agent, token, result, now)
        })
        .map_err(|e| e.to_string())
    }

    /// Fires the runs' timers and the schedules' fires due at `now`.
    pub(crate) fn timers(&mut self, dispatcher: &mut Dispatcher<P>, now: Instant) {
        self.with_pool(dispatcher, |engine, pool| engine.handle_timeout(pool, now));
        if !self.draining {
            self.schedules.handle_timeout(now);
        }
    }

    /// Hands the dispatcher's actions to the engine (and to the result,
    /// to publish), carries out the engine's own and the schedules', until
    /// none has more; then writes the input of every step task submitted
    /// meanwhile. `now` is the instant of the entry just applied.
    pub(crate) fn settle(&mut self, dispatcher: &mut Dispatcher<P>, now: Instant) -> Settled<P> {
        let mut settled = Settled {
            actions: Vec::new(),
            ended: Vec::new(),
            step_tenants: Vec::new(),
        };
        loop {
            let mut moved = false;
            while let Some(action) = dispatcher.poll_action() {
                moved = true;
                settled.actions.push(action.clone());
                // An action about no step is the dispatcher's alone.
                let _ = self.with_pool(dispatcher, |engine, pool| {
                    engine.handle_action(pool, action)
                });
            }
            while let Some(action) = self.engine.poll_action() {
                moved = true;
                self.carry_out(dispatcher, action, &mut settled.ended, now);
            }
            while let Some((action, start)) = self.schedules.poll_action() {
                moved = true;
                self.fire(dispatcher, action, start, now);
            }
            if !moved {
                break;
            }
        }
        for (task, step) in std::mem::take(&mut self.unfilled) {
            if let Some(tenant) = self.tenants.of(&self.engine, step.run) {
                settled.step_tenants.push((task, tenant));
            }
            let (Some(run), Ok(input), Some(payload)) = (
                self.engine.run(step.run),
                self.engine.input(step.run, step.token),
                dispatcher.payload_mut(task),
            ) else {
                continue;
            };
            *payload = (self.codec.step_payload)(run.definition(), step, input);
        }
        settled
    }

    /// One engine action. Assignments and cancels of step tasks are the
    /// outbox's already; a host-code action cannot come from a
    /// definition that registered, and fails its step if it does.
    fn carry_out(
        &mut self,
        dispatcher: &mut Dispatcher<P>,
        action: EngineAction<P>,
        ended: &mut Vec<RunEnd<P>>,
        now: Instant,
    ) {
        let no_host = || StepFailure::fatal(NO_HOST_CODE);
        let now = now.max(self.engine.latest_now());
        // Each refusal means the run moved on already: nothing to undo.
        let _ = match action {
            EngineAction::Finished {
                run,
                outcome,
                output,
            } => {
                self.schedules.run_ended(run, now);
                ended.push(RunEnd {
                    run,
                    outcome,
                    output,
                    tenant: self.tenants.finished(run),
                });
                Ok(())
            }
            EngineAction::RunLocal { run, token, .. } => self.with_pool(dispatcher, |e, pool| {
                e.report_local(pool, run, token, Err(no_host()), now)
            }),
            EngineAction::CompensateLocal { run, token, .. } => self
                .with_pool(dispatcher, |e, pool| {
                    e.compensated(pool, run, token, Err(no_host()), now)
                }),
            EngineAction::Expand { run, .. } => {
                self.with_pool(dispatcher, |e, pool| e.cancel(pool, run, now))
            }
            EngineAction::Assign { .. }
            | EngineAction::CancelAssigned { .. }
            | EngineAction::CancelLocal { .. } => Ok(()),
        };
    }

    /// A schedule's action: starts the run of a fire (with the fire's key
    /// as its id), or cancels one.
    fn fire(
        &mut self,
        dispatcher: &mut Dispatcher<P>,
        action: ScheduleAction,
        start: Option<ScheduledStart<P>>,
        now: Instant,
    ) {
        match (action, start) {
            (ScheduleAction::Start { key, .. }, Some(start)) => {
                let id = key.workflow_id();
                let def = definition_in(&self.engine, &start.workflow, start.version);
                let room = !self.draining && self.engine.active_runs() < MAX_ACTIVE_RUNS;
                let started = match def {
                    Ok(def) if room => {
                        let ScheduledStart { input, .. } = start;
                        self.with_pool(dispatcher, |engine, pool| {
                            engine.start_as(pool, def, id, input, now).is_new()
                        })
                    }
                    _ => false,
                };
                if started {
                    self.tenants.started(id, None);
                }
                match started {
                    true => self.schedules.started(id, key),
                    false => self.schedules.not_started(&key, now),
                }
            }
            (ScheduleAction::Start { key, .. }, None) => self.schedules.not_started(&key, now),
            (ScheduleAction::Cancel { key }, _) => {
                let run = key.workflow_id();
                // A run that ended already told its schedule so.
                let _ = self.with_pool(dispatcher, |engine, pool| engine.cancel(pool, run, now));
            }
        }
    }

    fn register(&mut self, def: WorkflowDef) -> Result<(), String> {
        needs_no_host(&def)?;
        let known = self
            .engine
            .versions(def.name())
            .any(|d| d.version() == def.version());
        if !known && self.engine.registered().count() >= MAX_DEFINITIONS {
            return Err(format!(
                "the cluster keeps at most {MAX_DEFINITIONS} workflow versions registered"
            ));
        }
        self.engine
            .register(Arc::new(def))
            .map_err(|e| e.to_string())
    }

    fn definition(&self, workflow: &str, version: Option<u32>) -> Result<Arc<WorkflowDef>, String> {
        definition_in(&self.engine, workflow, version)
    }

    fn with_pool<R>(
        &mut self,
        dispatcher: &mut Dispatcher<P>,
        call: impl FnOnce(&mut WorkflowEngine<P>, &mut HostPool<'_, P>) -> R,
    ) -> R {
        let mut pool = HostPool {
            dispatcher,
            blank: &self.codec.blank,
            submitted: &mut self.unfilled,
        };
        call(&mut self.engine, &mut pool)
    }
}

#[cfg(test)]
mod tests;
