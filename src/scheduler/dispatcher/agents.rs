//! Agents: registration, status, heartbeats and failover.

use super::super::state::running::Running;
use super::super::state::timer::Timer;
use super::super::task::TaskState;
use super::super::{Event, SchedulerError};
use super::{Action, CancelReason, Dispatcher};
use crate::agent::{AgentStatus, Slot};
use crate::routing::RoutingStrategy;
use crate::{AgentId, Instant, TaskId};

impl<P, S: RoutingStrategy> Dispatcher<P, S> {
    /// The work of [`unregister_agent`](Self::unregister_agent), whose docs say what it does.
    pub(super) fn remove_agent(
        &mut self,
        agent: AgentId,
        now: Instant,
    ) -> Result<Vec<TaskId>, SchedulerError> {
        if !self.state.registry.contains(agent) {
            return Err(crate::agent::RegistryError::UnknownAgent(agent).into());
        }
        let now = self.tick(now);
        let requeued = self.fail_over(agent, now);
        self.state.registry.unregister(agent)?;
        self.state.heartbeat_due.remove(&agent);
        self.state.gates.agent_left(agent);
        self.dispatch(now);
        Ok(requeued)
    }

    /// The work of [`set_agent_status`](Self::set_agent_status), whose docs say what it does.
    pub(super) fn change_agent_status(
        &mut self,
        agent: AgentId,
        status: AgentStatus,
        now: Instant,
    ) -> Result<Vec<TaskId>, SchedulerError> {
        let previous = self.state.registry.set_status(agent, status)?;
        let now = self.tick(now);
        let requeued = match status {
            AgentStatus::Offline | AgentStatus::Unhealthy => self.fail_over(agent, now),
            AgentStatus::Online | AgentStatus::Draining => Vec::new(),
        };
        if status == AgentStatus::Online && previous != AgentStatus::Online {
            self.arm_heartbeat(agent, now);
            self.capacity_freed(agent);
        }
        self.dispatch(now);
        Ok(requeued)
    }

    /// Requeues every task `agent` is running, in original order.
    pub(super) fn fail_over(&mut self, agent: AgentId, now: Instant) -> Vec<TaskId> {
        let slot = self.state.registry.slot_of(agent).unwrap_or(Slot::MAX);
        let mut tasks = (self.state.in_flight)
            .remove(agent, slot)
            .map_or_else(Vec::new, Running::into_vec);
        tasks.sort_by_key(|&t| self.state.tasks.get(t).map_or(u64::MAX, |e| e.seq));
        for &task in &tasks {
            if let Some(TaskState::InFlight { token, .. }) =
                self.state.tasks.get(task).map(|t| t.state)
            {
                self.stop_attempt(task, agent, token, None, CancelReason::AgentLost, now);
                self.emit(Event::FailedOver { task, agent }, now);
                if let Some(entry) = self.state.tasks.get_mut(task) {
                    entry.extras_mut().last_agent = Some(agent);
                }
                if !self.attempts_spent(task, "its agent was lost", now) {
                    self.requeue(task, now);
                }
            }
        }
        tasks
    }

    pub(super) fn arm_heartbeat(&mut self, agent: AgentId, now: Instant) {
        if let Some(heartbeats) = self.config.settings.heartbeats {
            let due = now.saturating_add(heartbeats.timeout());
            self.state.heartbeat_due.insert(agent, due);
            self.arm(due, Timer::Heartbeat(agent));
        }
    }

    /// The work of [`excuse_silence`](Self::excuse_silence), whose docs say what it does.
    pub(super) fn forgive_silence(&mut self, now: Instant) {
        for &agent in self.state.heartbeat_due.keys() {
            // Every watched agent is registered (a removal unwatches it).
            let _ = self.state.registry.heartbeat(agent, now);
        }
    }

    /// A heartbeat timer fired: lose the agent if it has been silent too
    /// long, otherwise check again when its silence would reach the limit.
    pub(super) fn check_heartbeat(&mut self, agent: AgentId, at: Instant, now: Instant) {
        let (Some(heartbeats), Some(&due)) = (
            self.config.settings.heartbeats,
            self.state.heartbeat_due.get(&agent),
        ) else {
            return;
        };
        if due != at {
            return; // superseded by a later arming
        }
        let Some(record) = self.state.registry.get(agent) else {
            return;
        };
        let silent_until = record.last_heartbeat().saturating_add(heartbeats.timeout());
        // A silence that ends at `Instant::MAX` never ends (the clock rule).
        if silent_until > now || silent_until.is_never() {
            self.state.heartbeat_due.insert(agent, silent_until);
            self.arm(silent_until, Timer::Heartbeat(agent));
        } else {
            // Silent too long: no longer watched until it comes back online.
            self.state.heartbeat_due.remove(&agent);
            if !matches!(record.status(), AgentStatus::Online | AgentStatus::Draining) {
                return;
            }
            let _ = self
                .state
                .registry
                .set_status(agent, AgentStatus::Unhealthy);
            self.state.actions.push_back(Action::AgentLost { agent });
            self.emit(Event::AgentLost { agent }, now);
            self.fail_over(agent, now);
        }
    }
}
