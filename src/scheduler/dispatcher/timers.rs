//! Timers: the clock rule, arming, and what each timer does when it fires.

use std::time::Duration;

use super::super::Event;
use super::super::state::timer::Timer;
use super::super::task::{DeadLetterReason, Expiry, TaskState};
use super::{CancelReason, Dispatcher};
use crate::Instant;
use crate::agent::Outcome;
use crate::routing::RoutingStrategy;

impl<P, S: RoutingStrategy> Dispatcher<P, S> {
    pub(super) fn fire(&mut self, timer: Timer, at: Instant, now: Instant) {
        match timer {
            Timer::Ttl(task) => {
                let waiting = self.state.tasks.get(task).is_some_and(|t| {
                    matches!(t.state, TaskState::Queued | TaskState::Delayed { .. })
                });
                if waiting {
                    self.expire(task, Expiry::Ttl, now);
                }
            }
            Timer::Deadline(task) => {
                if let Some(state) = self.state.tasks.get(task).map(|t| t.state) {
                    if let TaskState::InFlight { agent, token, .. } = state {
                        self.stop_attempt(task, agent, token, None, CancelReason::Expired, now);
                    }
                    self.expire(task, Expiry::Deadline, now);
                }
            }
            Timer::Attempt(task, token) => {
                let running = self.state.tasks.get(task).and_then(|t| match t.state {
                    TaskState::InFlight {
                        agent,
                        token: current,
                        ..
                    } if current == token => Some(agent),
                    _ => None,
                });
                if let Some(agent) = running {
                    let latency = self
                        .state
                        .tasks
                        .get(task)
                        .map_or(Duration::ZERO, |t| now - t.assigned_at);
                    self.stop_attempt(
                        task,
                        agent,
                        token,
                        Some(Outcome::failure(latency)),
                        CancelReason::TimedOut,
                        now,
                    );
                    self.emit(
                        Event::Failed {
                            task,
                            agent,
                            retryable: true,
                        },
                        now,
                    );
                    self.attempt_failed(task, agent, "attempt timed out".into(), true, now);
                }
            }
            Timer::Retry(task) => {
                let due = self.state.tasks.get(task).is_some_and(
                    |t| matches!(t.state, TaskState::Delayed { until } if until <= now),
                );
                if due {
                    self.requeue(task, now);
                }
            }
            Timer::Unroutable(task) => {
                if let Some(requirements) = self.state.tasks.get(task).map(|t| t.requirements) {
                    self.track_unroutable(task, requirements, now);
                }
                let waited = self.state.tasks.get(task).and_then(|t| {
                    match (t.state, t.extras().unroutable_since) {
                        (TaskState::Queued, Some(since)) => Some(now - since),
                        _ => None,
                    }
                });
                let limit = self
                    .config
                    .settings
                    .unroutable_timeout
                    .unwrap_or(Duration::MAX);
                if let Some(waited) = waited.filter(|&w| w >= limit) {
                    self.dead_letter(task, DeadLetterReason::Unroutable { waited }, now);
                }
            }
            Timer::Heartbeat(agent) => self.check_heartbeat(agent, at, now),
            Timer::Breaker(agent) => {
                self.sync_slot_limit(agent, now);
                self.capacity_freed(agent);
            }
            Timer::AgentRate(agent) => {
                if self.state.gates.rate_block_ended(agent, now) {
                    self.sync_slot_limit(agent, now);
                    self.capacity_freed(agent);
                }
            }
            Timer::KeyRate(key) => self.wake_key(key, now),
            Timer::KindRate(requirements) => {
                if let Some(group) = self.state.parked.of(requirements) {
                    group.blocked = false;
                }
            }
        }
    }

    /// `now` under the [clock rule](crate::time#the-clock-rule): never
    /// earlier than the latest `now` seen.
    pub(super) fn tick(&mut self, now: Instant) -> Instant {
        self.state.clock = self.state.clock.max(now);
        self.state.clock
    }

    pub(super) fn arm(&mut self, at: Instant, timer: Timer) {
        self.state.timers.arm(at, timer);
    }
}
