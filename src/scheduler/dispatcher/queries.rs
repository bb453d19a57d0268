//! Queries: read-only views of the dispatcher, and the dead-letter queue.

use super::super::Metadata;
use super::super::stats::Recorder;
use super::super::task::TaskState;
use super::super::{DeadLetter, DeadLetterQueue, DispatcherMetrics, Event};
use super::{Action, Dispatcher};
use crate::Observer;
use crate::agent::Registry;
use crate::resilience::BreakerState;
use crate::routing::RoutingStrategy;
use crate::{AgentId, Instant, Priority, TaskId};

impl<P, S: RoutingStrategy> Dispatcher<P, S> {
    /// The next action for the host, oldest first.
    #[must_use = "an action the host does not carry out is lost"]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.state.actions.pop_front()
    }

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

    /// The payload of a live task.
    pub fn payload(&self, task: TaskId) -> Option<&P> {
        self.state.tasks.get(task).map(|t| &t.payload)
    }

    /// The metadata of a live task ([`TaskSpec::metadata`](super::super::TaskSpec::metadata)),
    /// to hand to its agent with an [`Action::Assign`](super::Action::Assign)
    /// (the protocol's `Envelope::with_metadata` carries it). Empty for a
    /// task submitted without any.
    pub fn metadata(&self, task: TaskId) -> Option<&Metadata> {
        self.state.tasks.get(task).map(|t| &t.extras().metadata)
    }

    /// Tasks queued (not delayed, not running) at `priority`.
    pub fn queue_depth(&self, priority: Priority) -> usize {
        self.state.queued_by_level[priority.index()]
    }

    /// Tasks waiting: queued or delayed.
    pub fn waiting(&self) -> usize {
        self.state.waiting
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

    /// Counters, per-priority wait and run-time percentiles, load spread and
    /// throughput.
    pub fn metrics(&self) -> DispatcherMetrics {
        self.state.recorder.snapshot(&self.state.registry)
    }

    /// Sets the observer that receives every lifecycle [`Event`]. On a
    /// dispatcher held by a [`SharedDispatcher`](crate::scheduler::SharedDispatcher)
    /// (through its lock), the observer goes to the handle and runs outside
    /// the lock, as if set with
    /// [`SharedDispatcher::set_observer`](crate::scheduler::SharedDispatcher::set_observer).
    pub fn set_observer(&mut self, observer: impl Observer<Event> + Send + 'static) {
        let observer: Box<dyn Observer<Event> + Send> = Box::new(observer);
        #[cfg(feature = "sync")]
        let observer = match &self.handoff {
            Some(handoff) => handoff.take_over(observer),
            None => observer,
        };
        self.observer = Some(observer);
        self.plain = self.plain_now();
    }

    /// The state of `agent`'s circuit breaker at `now`, if breakers are on.
    pub fn breaker_state(&self, agent: AgentId, now: Instant) -> Option<BreakerState> {
        self.state.gates.breaker_state(agent, now)
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

    /// Removes and returns the dead letter of `task`, if held.
    pub fn take_dead_letter(&mut self, task: TaskId) -> Option<DeadLetter<P>> {
        self.state.dead_letters.take(task)
    }

    /// Removes and returns the dead letters matching `filter`.
    pub fn purge_dead_letters(
        &mut self,
        filter: impl FnMut(&DeadLetter<P>) -> bool,
    ) -> Vec<DeadLetter<P>> {
        self.state.dead_letters.purge(filter)
    }

    /// Records an event in the metrics and hands it to the observer.
    /// Inline, so the recorder's match on the event folds at each call.
    #[inline(always)]
    pub(super) fn emit(&mut self, event: Event, now: Instant) {
        self.emit_on::<false>(event, now);
    }

    /// [`emit`](Self::emit) on the cycle's paths: the plain instance has
    /// no observer to tell.
    #[inline(always)]
    pub(super) fn emit_on<const PLAIN: bool>(&mut self, event: Event, now: Instant) {
        self.state.recorder.record(&event, now);
        if PLAIN {
            return;
        }
        if let Some(observer) = &mut self.observer {
            observer.on_event(&event);
        }
    }

    /// [`emit`](Self::emit) for the timed events of every task's cycle:
    /// `record` feeds the metrics with nanoseconds, and the event, whose
    /// `Duration` costs a division to build and more to take apart again,
    /// is built only for an observer.
    #[inline(always)]
    pub(super) fn emit_timed<const PLAIN: bool>(
        &mut self,
        record: impl FnOnce(&mut Recorder),
        event: impl FnOnce() -> Event,
    ) {
        record(&mut self.state.recorder);
        if PLAIN {
            return;
        }
        if let Some(observer) = &mut self.observer {
            observer.on_event(&event());
        }
    }
}
