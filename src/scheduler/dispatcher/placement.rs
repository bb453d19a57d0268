//! Dispatch and placement: the dispatch loop, routing, assignment,
//! parking, preemption and reserved capacity.

use std::collections::VecDeque;
use std::time::Duration;

use super::super::Event;
use super::super::queue::{Entry, HeadKey};
use super::super::state::Task;
use super::super::state::requirements::{KindId, RequirementsId};
use super::super::state::timer::Timer;
use super::super::task::TaskState;
use super::{Action, CancelReason, Dispatcher};
use crate::agent::{AgentStatus, Slot};
use crate::routing::{Candidates, RoutingStrategy, route_to_slot};
use crate::{AgentId, AttemptToken, Instant, Priority, TaskId};

/// Where the next task comes from.
#[derive(Clone, Copy)]
pub(super) enum Source {
    Main,
    Parked(usize),
}

impl<P, S: RoutingStrategy> Dispatcher<P, S> {
    /// Assigns waiting tasks while agents have free slots.
    ///
    /// With every slot taken, only P0 tasks are looked at, and only when
    /// preemption may free a slot for them.
    #[inline(always)]
    pub(super) fn dispatch(&mut self, now: Instant) {
        // Nothing queued: what the queues hold, if anything, is dead. The
        // common case after a report, so checked without a call.
        if self.state.counts.any_queued() {
            self.dispatch_queued(now);
        }
    }

    /// [`dispatch`](Self::dispatch), with tasks queued. Out of line, so
    /// the check above costs its callers no registers.
    #[inline(never)]
    fn dispatch_queued(&mut self, now: Instant) {
        while let Some(max_level) = self.dispatch_limit::<false>() {
            let Some((source, entry)) = self.next_entry(now, max_level) else {
                break;
            };
            self.place::<false>(source, entry, now);
        }
    }

    /// The lowest priority that may be dispatched now, or `None` when no
    /// task can be. (`PLAIN`: see the `plain` module.)
    pub(super) fn dispatch_limit<const PLAIN: bool>(&self) -> Option<Priority> {
        let saturated = self.state.registry.available_agents() == 0;
        match (saturated, !PLAIN && self.config.settings.preemption) {
            (true, false) => None,
            (true, true) => Some(Priority::Critical),
            (false, _) if !PLAIN && self.reservation_active() => Some(Priority::High),
            (false, _) => Some(Priority::Low),
        }
    }

    /// Assigns the entry taken from `source`, or parks it when its kind's
    /// gates or the lack of an eligible agent hold it back. (`PLAIN`: see
    /// the `plain` module.)
    pub(super) fn place<const PLAIN: bool>(&mut self, source: Source, entry: Entry, now: Instant) {
        let kind = match PLAIN {
            true => None,
            false => self.gated_kind(entry.task),
        };
        if !self
            .state
            .gates
            .kind_has_room(kind, &self.state.requirements)
        {
            // Unblocked when a task of this kind finishes.
            self.park(entry, source, now);
            return;
        }
        if !PLAIN && self.state.key_gates.is_on() && !self.keys_admit(&entry, now) {
            // Woken when a holder of the key ends.
            return;
        }
        let routed = match self.route(entry.task) {
            None if !PLAIN && self.preempt_for(&entry, now) => self.route(entry.task),
            routed => routed,
        };
        let routed = match PLAIN {
            true => routed,
            false => self.within_agent_rate(routed, entry.task, now),
        };
        let cost = match kind {
            Some(_) => self.state.tasks.cost_of(entry.task),
            None => 1,
        };
        let gates = &mut self.state.gates;
        let requirements = &self.state.requirements;
        match routed.map(|agent| (agent, gates.take_kind_rate(kind, requirements, cost, now))) {
            Some((agent, Ok(()))) => {
                if PLAIN || !self.state.key_gates.is_on() || self.take_key_rates(&entry, now) {
                    self.assign::<PLAIN>(source, entry, agent, kind, now);
                }
            }
            Some((_, Err(until))) => {
                let requirements = self.state.tasks.get(entry.task).map(|t| t.requirements);
                self.park(entry, source, now);
                if let Some(requirements) = requirements {
                    self.arm(until, Timer::KindRate(requirements));
                }
            }
            None => self.park(entry, source, now),
        }
    }

    /// With preemption on, frees a slot for a waiting P0 task by stopping
    /// the lowest-priority (then youngest) running task on an agent that
    /// could serve it. Returns whether a slot was freed.
    pub(super) fn preempt_for(&mut self, entry: &Entry, now: Instant) -> bool {
        if !self.config.settings.preemption || entry.priority != Priority::Critical {
            return false;
        }
        let Some(resolved) = self
            .state
            .tasks
            .get(entry.task)
            .and_then(|t| self.state.requirements.resolved(t.requirements))
        else {
            return false;
        };
        let candidates = Candidates::new(&self.state.registry, resolved);
        let mut victim: Option<((usize, u64), TaskId, AgentId, AttemptToken)> = None;
        for record in self.state.registry.iter() {
            let capable = record.status() == AgentStatus::Online
                && record.slot_limit().is_none()
                && candidates.admits_ignoring_load(record);
            if !capable {
                continue;
            }
            for &task in self.in_flight(record.id()) {
                let Some(t) = self.state.tasks.get(task) else {
                    continue;
                };
                let TaskState::InFlight { token, .. } = t.state else {
                    continue;
                };
                let rank = (t.priority.index(), t.seq);
                if t.priority != Priority::Critical && victim.is_none_or(|(best, ..)| rank > best) {
                    victim = Some((rank, task, record.id(), token));
                }
            }
        }
        let Some((_, task, agent, token)) = victim else {
            return false;
        };
        self.stop_attempt(task, agent, token, None, CancelReason::Preempted, now);
        self.emit(Event::Preempted { task, agent }, now);
        if !self.attempts_spent(task, "it was preempted", now) {
            self.requeue(task, now);
        }
        true
    }

    pub(super) fn reservation_active(&self) -> bool {
        let share = self.config.settings.reserved_share;
        share > 0.0
            && self.state.registry.online_load() as f64
                >= (1.0 - share) * self.state.registry.online_capacity() as f64
    }

    /// Pops the best live entry among the main queue and the unblocked
    /// parked groups.
    pub(super) fn next_entry(
        &mut self,
        now: Instant,
        max_level: Priority,
    ) -> Option<(Source, Entry)> {
        if self.state.queue.is_empty() && self.state.parked.is_empty() {
            return None;
        }
        let tasks = &self.state.tasks;
        let is_live = |e: &Entry| tasks.is_queued(e.task);
        let mut best: Option<(HeadKey, Source)> = self
            .state
            .queue
            .best(now, max_level, is_live)
            .map(|k| (k, Source::Main));
        let mut emptied = false;
        for (index, group) in self.state.parked.iter_mut().enumerate() {
            if group.blocked {
                continue;
            }
            match group.queue.best(now, max_level, is_live) {
                Some(key) if best.is_none_or(|(b, _)| key < b) => {
                    best = Some((key, Source::Parked(index)))
                }
                Some(_) => {}
                None => emptied |= group.queue.is_empty(),
            }
        }
        let (key, source) = best?;
        let entry = match source {
            Source::Main => self.state.queue.pop(key),
            Source::Parked(index) => self
                .state
                .parked
                .get_mut(index)
                .and_then(|g| g.queue.pop(key)),
        };
        if emptied && matches!(source, Source::Main) {
            self.state.parked.drop_empty();
        }
        entry.map(|e| (source, e))
    }

    /// Chooses an agent for `task`, preferring one other than the agent that
    /// last failed it; returns it with its registry slot, or `None` when no
    /// agent can take it now (why does not matter here: the task waits).
    pub(super) fn route(&mut self, task: TaskId) -> Option<(AgentId, Slot)> {
        let entry = self.state.tasks.get(task)?;
        let (requirements, last_agent) = (entry.requirements, entry.extras().last_agent);
        let resolved = (self.state.requirements)
            .resolve(requirements, &self.state.registry)
            .ok()?;
        if let Some(last) = last_agent.filter(|&a| !resolved.avoids(a)) {
            let elsewhere = resolved.also_avoiding(last);
            if let Ok(chosen) = route_to_slot(&self.state.registry, &mut self.strategy, &elsewhere)
            {
                return Some(chosen);
            }
        }
        route_to_slot(&self.state.registry, &mut self.strategy, resolved).ok()
    }

    /// Starts `entry`'s task on `agent`. Should the breaker or the registry
    /// refuse the slot after all (the slot limit and eligibility keep that
    /// from happening), the entry is parked rather than queued again, so
    /// [`dispatch`](Self::dispatch) always makes progress.
    pub(super) fn assign<const PLAIN: bool>(
        &mut self,
        source: Source,
        entry: Entry,
        (agent, slot): (AgentId, Slot),
        kind: Option<KindId>,
        now: Instant,
    ) {
        let task = entry.task;
        let opened = match PLAIN {
            // No breaker to ask.
            true => Some(false),
            false => self.state.gates.open_attempt(agent, now),
        };
        let Some(probe) = opened else {
            self.park(entry, source, now);
            self.sync_slot_limit(agent, now);
            return;
        };
        if self.state.registry.acquire_slot(agent, slot).is_err() {
            if probe {
                self.state.gates.release_probe(agent);
            }
            self.park(entry, source, now);
            return;
        }
        // The bulkhead had room when `place` looked, before routing.
        self.state
            .gates
            .kind_started(kind, &self.state.requirements);
        if !PLAIN {
            self.spend_agent_rate(agent, task, now);
        }
        let token = AttemptToken::new(self.state.next_token);
        self.state.next_token = self.state.next_token.saturating_add(1);
        let default_timeout = self.config.settings.attempt_timeout;
        let Some(task_entry) = self.state.tasks.get_mut(task) else {
            return;
        };
        task_entry.attempts = task_entry.attempts.saturating_add(1);
        task_entry.assigned_at = now;
        if let Some(extras) = task_entry.extras.as_deref_mut() {
            extras.unroutable_since = None;
        }
        task_entry.probe = probe;
        task_entry.agent_slot = slot;
        let (attempt, priority) = (task_entry.attempts, task_entry.priority);
        let timeout = task_entry.extras().attempt_timeout.or(default_timeout);
        let running = TaskState::InFlight {
            agent,
            token,
            attempt,
        };
        let before = std::mem::replace(&mut task_entry.state, running);
        self.state.counts.count(before, priority, -1);
        self.state.in_flight.get_or_default(agent, slot).push(task);
        if !PLAIN && self.state.key_gates.is_on() {
            self.keys_started(task, token, now);
        }
        if let Some(timeout) = timeout {
            self.arm(now.saturating_add(timeout), Timer::Attempt(task, token));
        }
        if !PLAIN {
            self.sync_slot_limit(agent, now);
        }
        push_assign(&mut self.state.actions, task, agent, token, attempt);
        let waited = now.as_nanos().saturating_sub(entry.since.as_nanos());
        self.emit_timed::<PLAIN>(
            |metrics| metrics.assigned(priority, waited, now),
            || Event::Assigned {
                task,
                agent,
                priority,
                attempt,
                waited: Duration::from_nanos(waited),
            },
        );
    }

    pub(super) fn entry_of(&self, task: TaskId, t: &Task<P>, now: Instant) -> Entry {
        let (lane, weight) = t.lane();
        Entry {
            seq: t.seq,
            task,
            priority: t.priority,
            since: now,
            lane,
            weight,
            woken: false,
        }
    }

    /// Sets an unroutable entry aside in its requirement group, blocked
    /// until an agent that could serve the group frees a slot.
    pub(super) fn park(&mut self, entry: Entry, source: Source, now: Instant) {
        let Some(requirements) = self.state.tasks.get(entry.task).map(|t| t.requirements) else {
            return;
        };
        self.track_unroutable(entry.task, requirements, now);
        let index = match source {
            Source::Parked(index) => Some(index),
            Source::Main => None,
        };
        let aging = self.config.settings.aging_interval;
        self.state.parked.park(entry, requirements, index, aging);
    }

    /// Starts (or stops) the unroutable clock of a task: it runs while no
    /// online agent could serve the task at all, not while capable agents
    /// are merely busy.
    pub(super) fn track_unroutable(
        &mut self,
        task: TaskId,
        requirements: RequirementsId,
        now: Instant,
    ) {
        let registry = &self.state.registry;
        let servable = self
            .state
            .requirements
            .resolve(requirements, registry)
            .is_ok_and(|r| r.servable_by(registry));
        let limit = self.config.settings.unroutable_timeout;
        let Some(entry) = self.state.tasks.get_mut(task) else {
            return;
        };
        if servable {
            if let Some(extras) = entry.extras.as_deref_mut() {
                extras.unroutable_since = None;
            }
        } else if entry.extras().unroutable_since.is_none() {
            entry.extras_mut().unroutable_since = Some(now);
            if let Some(limit) = limit {
                self.arm(now.saturating_add(limit), Timer::Unroutable(task));
            }
        }
    }

    /// `agent` may have a free slot now: unblock the groups it could serve.
    pub(super) fn capacity_freed(&mut self, agent: AgentId) {
        if self.state.parked.iter().all(|g| !g.blocked) {
            return;
        }
        let Some(record) = self.state.registry.get(agent) else {
            return;
        };
        for group in self.state.parked.iter_mut().filter(|g| g.blocked) {
            group.blocked = match self.state.requirements.resolved(group.requirements) {
                Some(resolved) => !Candidates::new(&self.state.registry, resolved).admits(record),
                // Unresolved: a new agent may bring the missing names.
                None => false,
            };
        }
    }
}

/// Queues an [`Action::Assign`] with [`push_in_place`]. Out of line, so the
/// fields arrive in registers.
#[inline(never)]
fn push_assign(
    actions: &mut VecDeque<Action>,
    task: TaskId,
    agent: AgentId,
    token: AttemptToken,
    attempt: u32,
) {
    let assign = Action::Assign {
        task,
        agent,
        token,
        attempt,
    };
    push_in_place(actions, assign);
}

/// Pushes `value` at the back of `queue`, writing it straight into the
/// queue's storage when there is room.
///
/// A plain `push_back` of a value with drop glue builds it on the stack
/// first (the queue may grow, and a panic there would have to drop it),
/// then copies it in with loads wider than the stores that wrote its
/// fields: a store-forwarding stall, which cost about a sixth of placing a
/// task (perf). With room checked first, the common path cannot grow and
/// the copy goes away.
#[inline(always)]
fn push_in_place<T>(queue: &mut VecDeque<T>, value: T) {
    #[expect(
        clippy::if_same_then_else,
        reason = "the same call on both sides: only the first knows the queue cannot grow"
    )]
    if queue.len() < queue.capacity() {
        queue.push_back(value);
    } else {
        queue.push_back(value);
    }
}
