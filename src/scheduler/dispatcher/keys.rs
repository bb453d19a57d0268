//! Concurrency keys at work: a task whose key is at its limit waits for
//! it (or supersedes a holder, by the key's policy), holders are counted
//! from assignment to the end of the attempt, and cost-weighted key rates
//! are taken as a task starts.
//!
//! **Never over-admitted.** A key's holders are counted in
//! [`assign`](Dispatcher::assign) and released in
//! [`close_attempt`](Dispatcher::close_attempt), the two places every
//! attempt starts and ends, and a task is assigned only after
//! [`keys_admit`](Dispatcher::keys_admit) found room in every key it holds.
//!
//! **In order.** A task that comes up for dispatch while one of its keys
//! has waiters joins them, and the key serves its best waiter (by
//! priority, age and fair share), so arrivals do not overtake it.
//!
//! **Nothing waits for ever.** A key with live waiters is full (each holder
//! that ends wakes one), has its rate timer armed, or has a woken task
//! queued, which wakes the next as it starts or ends.

use super::super::Event;
use super::super::gates::concurrency::KeySet;
use super::super::queue::Entry;
use super::super::state::timer::Timer;
use super::super::task::{TaskState, Terminal};
use super::{CancelReason, Dispatcher};
use crate::routing::RoutingStrategy;
use crate::{AttemptToken, Instant, TaskId};

impl<P, S: RoutingStrategy> Dispatcher<P, S> {
    /// The configured concurrency keys `task` holds, if keys are on.
    pub(super) fn limited_keys(&self, task: TaskId) -> KeySet {
        if !self.state.key_gates.is_on() {
            return KeySet::EMPTY;
        }
        self.state
            .tasks
            .get(task)
            .map_or(KeySet::EMPTY, |t| t.extras().limited)
    }

    /// Whether `entry`'s task may start as far as its concurrency keys go.
    /// A key at its limit either takes the entry aside until it has room
    /// (`false`), or, by its policy, cancels a holder to make room.
    pub(super) fn keys_admit(&mut self, entry: &Entry, now: Instant) -> bool {
        let keys = self.limited_keys(entry.task);
        let keys = keys.as_slice();
        let gates = &self.state.key_gates;
        // A new arrival joins a key's waiters rather than passing them; the
        // key then serves its best waiter, in fair-share order.
        if !entry.woken {
            if let Some(&key) = keys.iter().find(|&&k| gates.has_waiters(k)) {
                self.wait_on_key(key, entry, keys, now);
                self.wake_key(key, now);
                return false;
            }
        }
        // A key that queues holds the task back before any holder is
        // cancelled for it.
        let queues = |&&key: &&u32| gates.is_full(key) && gates.victim(key).is_none();
        if let Some(&key) = keys.iter().find(queues) {
            self.wait_on_key(key, entry, keys, now);
            return false;
        }
        for &key in keys {
            if let Some(victim) = self
                .state
                .key_gates
                .victim(key)
                .filter(|_| self.state.key_gates.is_full(key))
            {
                self.supersede(victim, now);
            }
        }
        true
    }

    /// Takes the cost of `entry`'s task from the rates of its keys, or
    /// sets the entry aside until the first key that refuses conforms.
    pub(super) fn take_key_rates(&mut self, entry: &Entry, now: Instant) -> bool {
        let keys = self.limited_keys(entry.task);
        if keys.is_empty() {
            return true;
        }
        let cost = self.state.tasks.cost_of(entry.task);
        match self.state.key_gates.take_rates(keys.as_slice(), cost, now) {
            Ok(()) => true,
            Err((key, until)) => {
                self.arm(until, Timer::KeyRate(key));
                self.wait_on_key(key, entry, keys.as_slice(), now);
                false
            }
        }
    }

    /// Sets `entry` aside on `key`. The task may have been woken for its
    /// other keys: they pass the turn on.
    fn wait_on_key(&mut self, key: u32, entry: &Entry, keys: &[u32], now: Instant) {
        self.state.key_gates.wait(key, *entry);
        for &other in keys.iter().filter(|&&k| k != key) {
            self.wake_key(other, now);
        }
    }

    /// `task`'s attempt `token` started: it holds its keys; a key with
    /// room wakes its next waiter.
    pub(super) fn keys_started(&mut self, task: TaskId, token: AttemptToken, now: Instant) {
        let keys = self.limited_keys(task);
        self.state.key_gates.started(keys.as_slice(), task, token);
        for &key in keys.as_slice() {
            self.wake_key(key, now);
        }
    }

    /// `task`'s attempt `token` ended: it releases its keys, each waking a
    /// waiter.
    pub(super) fn keys_released(&mut self, task: TaskId, token: AttemptToken, now: Instant) {
        for &key in self.limited_keys(task).as_slice() {
            if self.state.key_gates.ended(key, task, token) {
                self.wake_key(key, now);
            }
        }
    }

    /// A task that held `keys` ended (it may have been woken for them and
    /// never started): each key with room passes the turn on.
    pub(super) fn keys_passed_on(&mut self, keys: KeySet) {
        let now = self.state.clock;
        for &key in keys.as_slice() {
            self.wake_key(key, now);
        }
    }

    /// Moves the best live waiter of `key`, if the key has room, back to
    /// the main queue.
    pub(super) fn wake_key(&mut self, key: u32, now: Instant) {
        // Asked at every start and end of a holder: most often nothing
        // waits, and nothing is to be done.
        if self.state.key_gates.is_idle(key) || self.state.key_gates.is_full(key) {
            return;
        }
        let tasks = &self.state.tasks;
        let is_live = |e: &Entry| tasks.is_queued(e.task);
        let cost_of = |e: &Entry| tasks.cost_of(e.task);
        match self.state.key_gates.wake(key, now, is_live, cost_of) {
            Ok(Some(entry)) => self.state.queue.push(entry),
            Ok(None) => {}
            Err(until) => self.arm(until, Timer::KeyRate(key)),
        }
    }

    /// Cancels `task`, in flight on a full key, for a newer task.
    fn supersede(&mut self, task: TaskId, now: Instant) {
        let Some(TaskState::InFlight { agent, token, .. }) =
            self.state.tasks.get(task).map(|t| t.state)
        else {
            return;
        };
        self.stop_attempt(task, agent, token, None, CancelReason::Superseded, now);
        self.finish_dropping(task, Terminal::Cancelled);
        self.emit(Event::Cancelled { task }, now);
    }
}
