//! The dispatcher's read-only views: its clock, tasks, agents, queues,
//! counters and dead letters. None changes the state.

use super::Dispatcher;
use super::reports::holds;
use crate::agent::Registry;
use crate::metrics::Counters;
use crate::resilience::BreakerState;
use crate::routing::RoutingStrategy;
use crate::scheduler::{DeadLetterQueue, DispatcherMetrics, Metadata, ReportError, TaskState};
use crate::{AgentId, AttemptToken, Instant, Priority, TaskId, TenantId};

/// **Queries.** Read-only views; none changes the state.
impl<P, S: RoutingStrategy> Dispatcher<P, S> {
    /// The dispatcher's clock: the latest `now` it has been given. An
    /// earlier `now` counts as this instant (the
    /// [clock rule](crate::time#the-clock-rule)).
    pub fn clock(&self) -> Instant {
        self.state.clock
    }

    /// The state of a live task, or the terminal state of a recently
    /// finished one (the last `terminal_history` are remembered).
    pub fn task_state(&self, task: TaskId) -> Option<TaskState> {
        self.state
            .tasks
            .get(task)
            .map(|t| t.state)
            .or_else(|| self.state.tasks.record(task).map(|&t| t.into()))
    }

    /// Whether `task` is live: waiting, delayed or running. `O(1)`.
    pub fn is_live(&self, task: TaskId) -> bool {
        self.state.tasks.get(task).is_some()
    }

    /// The payload of a live task.
    pub fn payload(&self, task: TaskId) -> Option<&P> {
        self.state.tasks.get(task).map(|t| &t.payload)
    }

    /// The payload of a live task, to write once more before anything
    /// read it: a cluster's hosted runs fill a step task's input in after
    /// the engine submitted it.
    #[cfg(feature = "cluster")]
    pub(crate) fn payload_mut(&mut self, task: TaskId) -> Option<&mut P> {
        self.state.tasks.get_mut(task).map(|t| &mut t.payload)
    }

    /// The metadata of a live task ([`TaskSpec::metadata`](super::TaskSpec::metadata)),
    /// to hand to its agent with an [`Action::Assign`](super::Action::Assign)
    /// (the protocol's `Envelope::with_metadata` carries it). Empty for a
    /// task submitted without any.
    pub fn metadata(&self, task: TaskId) -> Option<&Metadata> {
        self.state.tasks.get(task).map(|t| &t.extras().metadata)
    }

    /// The tenant of a live task ([`TaskSpec::tenant`](super::TaskSpec::tenant)):
    /// a host that takes cancels from tenants checks it first, so that a
    /// tenant cancels only its own tasks. `None` for a task with no tenant
    /// or no longer live.
    pub fn tenant(&self, task: TaskId) -> Option<TenantId> {
        self.state.tasks.get(task).and_then(|t| t.extras().tenant)
    }

    /// The live tasks (waiting, delayed or running) of `tenant`: what its
    /// [`TenantQuota::live_tasks`](crate::scheduler::TenantQuota::live_tasks) bounds.
    pub fn tenant_live_tasks(&self, tenant: TenantId) -> u32 {
        self.state.tenants.live(tenant)
    }

    /// The quota `tenant` is held to (its own, or every tenant's), if any.
    pub fn tenant_quota(&self, tenant: TenantId) -> Option<&crate::scheduler::TenantQuota> {
        self.config.settings.tenant_quota(tenant)
    }

    /// Tasks queued (not delayed, not running) at `priority`.
    pub fn queue_depth(&self, priority: Priority) -> usize {
        self.state.counts.queued(priority)
    }

    /// Tasks waiting: queued or delayed.
    pub fn waiting(&self) -> usize {
        self.state.counts.waiting()
    }

    /// Tasks not yet in a terminal state.
    pub fn live_tasks(&self) -> usize {
        self.state.tasks.len()
    }

    /// Every live task — queued, delayed or in flight — with its state,
    /// priority and requirements. The order is the order of the dispatcher's
    /// task slots: deterministic for a given history of inputs, but not
    /// submission order. Read-only; costs `O(n)` for `n` the peak number of
    /// live tasks plus `terminal_history`.
    pub fn iter_live_tasks(
        &self,
    ) -> impl Iterator<Item = (TaskId, TaskState, Priority, &crate::TaskRequirements)> + '_ {
        let requirements = &self.state.requirements;
        self.state.tasks.iter().filter_map(move |(id, task)| {
            // A live task always holds its interned requirements.
            let needs = requirements.requirements(task.requirements)?;
            Some((id, task.state, task.priority, needs))
        })
    }

    /// The tasks `agent` is running.
    pub fn in_flight(&self, agent: AgentId) -> &[TaskId] {
        let slot = self.state.registry.slot_of(agent);
        slot.and_then(|slot| self.state.in_flight.get(agent, slot))
            .map_or(&[], |r| r.as_slice())
    }

    /// The lifecycle counters alone: `O(1)`, where
    /// [`metrics`](Self::metrics) also summarises every histogram.
    pub fn counters(&self) -> Counters {
        self.state.recorder.counters()
    }

    /// Counters, per-priority wait and run-time percentiles, load spread and
    /// throughput.
    pub fn metrics(&self) -> DispatcherMetrics {
        self.state.recorder.snapshot(&self.state.registry)
    }

    /// The state of `agent`'s circuit breaker at `now`, if breakers are on.
    pub fn breaker_state(&self, agent: AgentId, now: Instant) -> Option<BreakerState> {
        self.state.gates.breaker_state(agent, now)
    }

    /// Checks, without changing anything, that [`report`](Self::report)
    /// would accept a report on `task` from `agent` with `token`.
    ///
    /// # Errors
    ///
    /// The [`ReportError`] `report` would return.
    pub fn verify_report(
        &self,
        task: TaskId,
        agent: AgentId,
        token: AttemptToken,
    ) -> Result<(), ReportError> {
        match self.state.tasks.get(task) {
            Some(t) if holds(t, agent, token) => Ok(()),
            _ => Err(self.report_error(task, agent, token)),
        }
    }

    /// The agent registry (status, load, history of every agent).
    pub fn registry(&self) -> &Registry {
        &self.state.registry
    }

    /// The routing strategy.
    pub fn strategy(&self) -> &S {
        &self.strategy
    }

    /// The dead-letter queue.
    pub fn dead_letters(&self) -> &DeadLetterQueue<P> {
        &self.state.dead_letters
    }
}
