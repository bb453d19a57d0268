//! x

use super::super::Event;
use super::super::state::Timer;
use super::Dispatcher;
use crate::resilience::BreakerState;
use crate::routing::RoutingStrategy;
use crate::{AgentId, Instant, TaskId};

impl<P, S: RoutingStrategy> Dispatcher<P, S> {
    /// Feeds an outcome to `agent`'s breaker. Outcomes of attempts started
    /// before the breaker opened do not count while it is open or half-open:
    /// only probes speak for a recovering agent.
    pub(super) fn breaker_outcome(
        &mut self,
        agent: AgentId,
        probe: bool,
        success: bool,
        now: Instant,
    ) {
        let Some(breaker) = self.state.breakers.get_mut(&agent) else {
            return;
        };
        if !probe && !breaker.state(now).is_closed() {
            return;
        }
        if success {
            breaker.on_success(now);
        } else if breaker.on_failure(now) {
            let reopen = breaker.next_transition();
            self.emit(Event::BreakerTripped { agent }, now);
            if let Some(at) = reopen {
                self.arm(at, Timer::Breaker(agent));
            }
        }
    }

    /// Mirrors `agent`'s breaker and rate limit into its registry slot limit:
    /// none while the breaker is closed and the agent within its rate, zero
    /// new tasks while the breaker is open, the free probe permits while it
    /// is half-open, and no new task while the agent is over its rate.
    pub(super) fn sync_slot_limit(&mut self, agent: AgentId, now: Instant) {
        if self.state.breakers.is_empty() && self.state.agent_rates.is_empty() {
            return;
        }
        let Some(record) = self.state.registry.get(agent) else {
            return;
        };
        let breaker_limit =
            self.state
                .breakers
                .get(&agent)
                .and_then(|breaker| match breaker.state(now) {
                    BreakerState::Closed => None,
                    BreakerState::Open { .. } => Some(0),
                    BreakerState::HalfOpen => {
                        let free = breaker
                            .config()
                            .probes()
                            .saturating_sub(breaker.probes_in_flight());
                        Some(record.load().saturating_add(free))
                    }
                });
        let rate_limit = self
            .state
            .rate_blocked_until
            .get(&agent)
            .filter(|&&until| now < until)
            .map(|_| record.load());
        let limit = match (breaker_limit, rate_limit) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if record.slot_limit() != limit {
            let _ = self.state.registry.set_slot_limit(agent, limit);
        }
    }

    /// The kind of `task`, when kind gates (bulkhead, kind rate limit) are on.
    #[inline]
    pub(super) fn gated_kind(&self, task: TaskId) -> Option<String> {
        if self.state.bulkhead.is_none() && self.state.kind_rates.is_none() {
            return None;
        }
        self.kind_of(task)
    }

    pub(super) fn kind_of(&self, task: TaskId) -> Option<String> {
        let t = self.state.tasks.get(task)?;
        Some(
            self.state
                .requirements
                .requirements(t.requirements)?
                .task_kind()?
                .to_owned(),
        )
    }

    /// Whether the bulkhead lets one more task of `kind` run.
    pub(super) fn bulkhead_admits(&self, kind: Option<&String>) -> bool {
        match (kind, &self.state.bulkhead) {
            (Some(kind), Some(bulkhead)) => bulkhead.in_flight(kind) < bulkhead.limit(kind),
            _ => true,
        }
    }

    /// Takes a cell of `kind`'s rate, or says when one will conform.
    pub(super) fn kind_rate_admits(
        &mut self,
        kind: Option<&String>,
        now: Instant,
    ) -> Result<(), Instant> {
        match (kind, &mut self.state.kind_rates) {
            (Some(kind), Some(limiter)) => limiter.check(kind, now).map_err(|n| n.earliest()),
            _ => Ok(()),
        }
    }

    /// A task of `kind` finished an attempt: its bulkhead slot frees, so
    /// parked groups of that kind may try again.
    pub(super) fn kind_slot_freed(&mut self, kind: &String) {
        let Some(bulkhead) = &mut self.state.bulkhead else {
            return;
        };
        let _ = bulkhead.release(kind);
        for group in self.state.parked.iter_mut().filter(|g| g.blocked) {
            let same = self
                .state
                .requirements
                .requirements(group.requirements)
                .and_then(|r| r.task_kind())
                == Some(kind.as_str());
            if same {
                group.blocked = false;
            }
        }
    }

    /// Counts an assignment against `agent`'s rate; if its next task would
    /// exceed the rate, the agent takes none until it conforms again.
    pub(super) fn spend_agent_rate(&mut self, agent: AgentId, now: Instant) {
        let Some(limiter) = self.state.agent_rates.get_mut(&agent) else {
            return;
        };
        let _ = limiter.check(now);
        let mut probe = limiter.clone();
        if let Err(not_until) = probe.check(now) {
            let until = not_until.earliest();
            self.state.rate_blocked_until.insert(agent, until);
            self.arm(until, Timer::AgentRate(agent));
        }
    }
}
