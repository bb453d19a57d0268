//! The dispatcher's side of the [gates](super::super::gates): which kind a
//! task counts against, breaker trips as events and timers, slot limits,
//! and agent rates spent and waited out.

use super::super::Event;
use super::super::gates::Verdict;
use super::super::state::requirements::KindId;
use super::super::state::timer::Timer;
use super::Dispatcher;
use crate::agent::Slot;
use crate::routing::RoutingStrategy;
use crate::{AgentId, Instant, TaskId};

impl<P, S: RoutingStrategy> Dispatcher<P, S> {
    /// The interned kind of `task`, when a kind gate is on.
    #[inline]
    pub(super) fn gated_kind(&self, task: TaskId) -> Option<KindId> {
        if !self.state.gates.by_kind() {
            return None;
        }
        let t = self.state.tasks.get(task)?;
        self.state.requirements.kind(t.requirements)
    }

    /// Feeds an attempt's outcome to `agent`'s breaker; a trip is an event,
    /// and a timer for when the breaker lets probes through.
    pub(super) fn breaker_outcome(
        &mut self,
        agent: AgentId,
        probe: bool,
        success: bool,
        now: Instant,
    ) {
        let verdict = self.state.gates.attempt_outcome(agent, probe, success, now);
        if let Verdict::Tripped(reopen) = verdict {
            self.emit(Event::BreakerTripped { agent }, now);
            if let Some(at) = reopen {
                self.arm(at, Timer::Breaker(agent));
            }
        }
    }

    /// Mirrors `agent`'s gates into its registry slot limit (see
    /// [`Gates::slot_limit`]).
    pub(super) fn sync_slot_limit(&mut self, agent: AgentId, now: Instant) {
        if !self.state.gates.limits_agents() {
            return;
        }
        let Some(record) = self.state.registry.get(agent) else {
            return;
        };
        let limit = self.state.gates.slot_limit(agent, record.load(), now);
        if record.slot_limit() != limit {
            let _ = self.state.registry.set_slot_limit(agent, limit);
        }
    }

    /// A task of `kind` ended an attempt: its bulkhead slot frees, so
    /// parked groups of that kind may try again.
    pub(super) fn kind_slot_freed(&mut self, kind: Option<KindId>) {
        if !self.state.gates.kind_ended(kind, &self.state.requirements) {
            return;
        }
        let requirements = &self.state.requirements;
        for group in self.state.parked.iter_mut().filter(|g| g.blocked) {
            if requirements.kind(group.requirements) == kind {
                group.blocked = false;
            }
        }
    }

    /// `routed`, or, while the agent it names cannot afford `task`'s
    /// whole cost within its rate, that agent blocked until it can and the
    /// task routed again. Each turn holds back one more agent, and an agent
    /// chosen twice ends the search, so this ends.
    pub(super) fn within_agent_rate(
        &mut self,
        mut routed: Option<(AgentId, Slot)>,
        task: TaskId,
        now: Instant,
    ) -> Option<(AgentId, Slot)> {
        if !self.state.gates.rates_agents() {
            return routed;
        }
        let cost = self.state.tasks.cost_of(task);
        let mut held_back = Vec::new();
        while let Some((agent, _)) = routed {
            if held_back.contains(&agent) {
                // Routing chose an agent held back already: the task waits.
                return None;
            }
            let Err(until) = self.state.gates.agent_affords(agent, cost, now) else {
                break;
            };
            self.state.gates.block_agent_rate(agent, until);
            self.sync_slot_limit(agent, now);
            self.arm(until, Timer::AgentRate(agent));
            held_back.push(agent);
            routed = self.route(task);
        }
        routed
    }

    /// Counts `task`'s assignment against `agent`'s rate; if its next task
    /// would exceed the rate, the agent takes none until it conforms again.
    pub(super) fn spend_agent_rate(&mut self, agent: AgentId, task: TaskId, now: Instant) {
        if !self.state.gates.limits_agents() {
            return;
        }
        let cost = self.state.tasks.cost_of(task);
        if let Some(until) = self.state.gates.spend_agent_rate(agent, cost, now) {
            self.arm(until, Timer::AgentRate(agent));
        }
    }
}
