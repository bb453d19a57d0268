//! Attempts: how an attempt ends, and where its task goes next —
//! retried, requeued, dead-lettered, finished or cancelled. (An agent's
//! report on an attempt comes in through `reports`.)

use super::super::state::requirements::RequirementsId;
use super::super::state::timer::Timer;
use super::super::state::{Extras, Task};
use super::super::task::options::TaskOptions;
use super::super::task::{DeadLetterReason, Expiry, TaskSpec, TaskState, Terminal};
use super::super::{DeadLetter, Event, SchedulerError};
use super::{Action, CancelReason, Dispatcher};
use crate::agent::{Outcome, Slot};
use crate::routing::{Feedback, RoutingStrategy};
use crate::{AgentId, AttemptToken, Instant, Priority, TaskId};

impl<P, S: RoutingStrategy> Dispatcher<P, S> {
    /// The work of [`cancel`](Self::cancel), whose docs say what it does.
    pub(super) fn cancel_live(&mut self, task: TaskId, now: Instant) -> Result<P, SchedulerError> {
        let state = self.live_state(task)?;
        let now = self.tick(now);
        if let TaskState::InFlight { agent, token, .. } = state {
            self.stop_attempt(task, agent, token, None, CancelReason::Cancelled, now);
        }
        let entry = self
            .finish(task, Terminal::Cancelled)
            .ok_or(SchedulerError::UnknownTask(task))?;
        self.emit(Event::Cancelled { task }, now);
        self.dispatch(now);
        Ok(entry.payload)
    }

    /// Ends a running attempt from the dispatcher's side — cancelled,
    /// expired, timed out, preempted, failed over — and tells the host to
    /// stop it on the agent.
    pub(super) fn stop_attempt(
        &mut self,
        task: TaskId,
        agent: AgentId,
        token: AttemptToken,
        outcome: Option<Outcome>,
        reason: CancelReason,
        now: Instant,
    ) {
        self.close_attempt(task, agent, outcome, now);
        self.state.actions.push_back(Action::Cancel {
            task,
            agent,
            token,
            reason,
        });
    }

    /// Ends `task`'s current attempt on `agent`: frees its slot, and feeds
    /// the outcome, if the attempt produced one, to the agent's history, the
    /// routing strategy and the circuit breaker. An attempt that ended
    /// without an outcome (cancelled, expired, failed over, preempted) gives
    /// its probe permit back instead.
    pub(super) fn close_attempt(
        &mut self,
        task: TaskId,
        agent: AgentId,
        outcome: Option<Outcome>,
        now: Instant,
    ) {
        // A task that is not live (no caller passes one) has no attempt.
        let attempt = self.state.tasks.get_mut(task).map(|t| Attempt::take(t));
        let attempt = attempt.unwrap_or_else(|| Attempt {
            slot: self.state.registry.slot_of(agent).unwrap_or(Slot::MAX),
            probe: false,
            token: None,
            requirements: RequirementsId::MAX,
        });
        self.close_claimed::<false>(task, agent, attempt, outcome, now);
    }

    /// [`close_attempt`](Self::close_attempt), with the attempt's parts
    /// already taken from the task. Out of line: it is large, and called
    /// from both report paths and from `close_attempt`. (`PLAIN`: see the
    /// `plain` module.)
    #[inline(never)]
    pub(super) fn close_claimed<const PLAIN: bool>(
        &mut self,
        task: TaskId,
        agent: AgentId,
        attempt: Attempt,
        outcome: Option<Outcome>,
        now: Instant,
    ) {
        let Attempt {
            slot,
            probe,
            token,
            requirements,
        } = attempt;
        // An emptied list stays (agents go idle and busy all the time); it
        // goes when the agent fails over or leaves.
        if let Some(list) = self.state.in_flight.get_mut(agent, slot) {
            list.remove(task);
        }
        if !PLAIN && self.state.key_gates.is_on() {
            if let Some(token) = token {
                self.keys_released(task, token, now);
            }
        }
        if !PLAIN && self.state.gates.by_kind() {
            self.kind_slot_freed(self.state.requirements.kind(requirements));
        }
        let released = (self.state.registry)
            .release_slot(agent, slot, outcome)
            .is_ok();
        match outcome {
            Some(outcome) if !PLAIN => {
                if self.learns {
                    self.learn(requirements, agent, outcome);
                }
                self.breaker_outcome(agent, probe, outcome.success, now);
            }
            // No strategy that learns, no breaker.
            Some(_) => {}
            None if probe => self.state.gates.release_probe(agent),
            None => {}
        }
        if !PLAIN {
            self.sync_slot_limit(agent, now);
        }
        if released {
            self.capacity_freed(agent);
        }
    }

    /// Feeds an outcome (already in the agent's history) of a task with
    /// this requirement set to the strategy.
    pub(super) fn learn(&mut self, requirements: RequirementsId, agent: AgentId, outcome: Outcome) {
        let kind = (self.state.requirements)
            .requirements(requirements)
            .and_then(|r| r.task_kind());
        self.strategy.observe(&Feedback {
            agent,
            kind,
            outcome,
        });
    }

    /// A failed attempt: retry after the policy's delay, or dead-letter.
    pub(super) fn attempt_failed(
        &mut self,
        task: TaskId,
        agent: AgentId,
        reason: String,
        retryable: bool,
        now: Instant,
    ) {
        if !retryable {
            self.dead_letter(task, DeadLetterReason::NonRetryable { reason }, now);
            return;
        }
        if self.attempts_spent(task, &reason, now) {
            return;
        }
        let within_budget = self.state.gates.spend_retry(now);
        let Some(entry) = self.state.tasks.get_mut(task) else {
            return;
        };
        entry.failures = entry.failures.saturating_add(1);
        entry.extras_mut().last_agent = Some(agent);
        let delay = match within_budget {
            true => self.config.retry.policy.next_delay(
                entry.failures,
                entry.extras().last_delay,
                &mut self.state.rng,
            ),
            false => None,
        };
        let Some(delay) = delay else {
            let attempts = entry.attempts;
            let reason = DeadLetterReason::RetriesExhausted {
                attempts,
                last_error: reason,
            };
            self.dead_letter(task, reason, now);
            return;
        };
        entry.extras_mut().last_delay = Some(delay);
        let until = now.saturating_add(delay);
        self.emit(Event::Retried { task, at: until }, now);
        if until <= now || self.ttl_ran_out(task, now) {
            self.requeue(task, now);
        } else {
            self.set_state(task, TaskState::Delayed { until });
            self.arm(until, Timer::Retry(task));
        }
    }

    /// Dead-letters `task` if it was handed out as many times as its
    /// [`max_attempts`](crate::scheduler::TaskSpec::max_attempts) allows,
    /// its last attempt having ended for `reason`; whether it did.
    pub(super) fn attempts_spent(&mut self, task: TaskId, reason: &str, now: Instant) -> bool {
        let Some(entry) = self.state.tasks.get(task) else {
            return false;
        };
        let attempts = entry.attempts;
        if entry
            .extras()
            .max_attempts
            .is_none_or(|most| attempts < most)
        {
            return false;
        }
        let reason = DeadLetterReason::RetriesExhausted {
            attempts,
            last_error: reason.to_owned(),
        };
        self.dead_letter(task, reason, now);
        true
    }

    /// Puts a task back in the queue at its original FIFO position, or
    /// expires it if its TTL ran out while it was running.
    pub(super) fn requeue(&mut self, task: TaskId, now: Instant) {
        if self.ttl_ran_out(task, now) {
            self.expire(task, Expiry::Ttl, now);
            return;
        }
        self.set_state(task, TaskState::Queued);
        if let Some(entry) = self
            .state
            .tasks
            .get(task)
            .map(|t| self.entry_of(task, t, now))
        {
            self.state.queue.push(entry);
        }
    }

    /// Whether `task`'s TTL, counted from submission, has run out by `now`.
    /// Its timer did nothing if it fired while the task was running, so
    /// every return to waiting asks again.
    pub(super) fn ttl_ran_out(&self, task: TaskId, now: Instant) -> bool {
        self.state
            .tasks
            .get(task)
            .and_then(|t| t.extras().ttl_due)
            .is_some_and(|due| due.fires_at(now))
    }

    pub(super) fn expire(&mut self, task: TaskId, limit: Expiry, now: Instant) {
        self.dead_letter(task, DeadLetterReason::Expired { limit }, now);
    }

    /// Ends a task in failure: its letter goes to the dead-letter queue and
    /// the host gets a notice.
    pub(super) fn dead_letter(&mut self, task: TaskId, reason: DeadLetterReason, now: Instant) {
        let terminal = match reason {
            DeadLetterReason::Expired { .. } => Terminal::Expired,
            _ => Terminal::DeadLettered,
        };
        let requirements = self
            .state
            .tasks
            .get(task)
            .and_then(|t| self.state.requirements.requirements(t.requirements))
            .cloned()
            .unwrap_or_default();
        let Some(entry) = self.finish(task, terminal) else {
            return;
        };
        let extras = entry.extras.map(|e| *e).unwrap_or_default();
        let spec = TaskSpec {
            payload: entry.payload,
            priority: entry.priority,
            requirements,
            ttl: extras.ttl,
            deadline: extras.deadline,
            attempt_timeout: extras.attempt_timeout,
            idempotency_key: None,
            options: None,
        }
        .with_options(TaskOptions {
            not_before: extras.not_before,
            fairness: extras.fairness.map(|(share, _)| share),
            concurrency_keys: extras.concurrency_keys,
            cost: extras.cost,
            metadata: extras.metadata,
            max_attempts: extras.max_attempts,
            payload_fingerprint: None,
            tenant: extras.tenant,
            no_redrive: extras.no_redrive,
        });
        self.emit(
            match terminal {
                Terminal::Expired => Event::Expired { task },
                _ => Event::DeadLettered { task },
            },
            now,
        );
        self.state.actions.push_back(match &reason {
            DeadLetterReason::Expired { limit } => Action::Expired {
                task,
                limit: *limit,
            },
            _ => Action::DeadLettered {
                task,
                reason: reason.clone(),
            },
        });
        self.state.dead_letters.push(DeadLetter {
            task,
            spec,
            reason,
            attempts: entry.attempts,
            at: now,
            history: extras.history,
        });
    }

    /// Moves a task to a terminal state: out of the live table, into the
    /// bounded history.
    pub(super) fn finish(&mut self, task: TaskId, terminal: Terminal) -> Option<Task<P>> {
        let keep = self.config.settings.terminal_history;
        let mut entry = self.state.tasks.finish(task, terminal, keep)?;
        self.finished(entry.state, entry.priority, entry.requirements);
        entry.state = terminal.into();
        if let Some(extras) = entry.extras.as_deref() {
            self.options_finished(extras);
        }
        Some(entry)
    }

    /// [`finish`](Self::finish) for a task whose payload nobody needs (a
    /// completion): it is dropped where it lies. Whether it was live.
    pub(super) fn finish_dropping(&mut self, task: TaskId, terminal: Terminal) -> bool {
        let keep = self.config.settings.terminal_history;
        let taken = self.state.tasks.finish_with(task, terminal, keep, |t| {
            (t.state, t.priority, t.requirements, t.extras.take())
        });
        let Some((state, priority, requirements, extras)) = taken else {
            return false;
        };
        self.finished(state, priority, requirements);
        if let Some(extras) = extras {
            self.options_finished(&extras);
        }
        true
    }

    /// The counts and the requirement set of a task that left `state`.
    #[inline]
    fn finished(&mut self, state: TaskState, priority: Priority, requirements: RequirementsId) {
        self.state.counts.count(state, priority, -1);
        self.state.requirements.release(requirements);
    }

    /// A finished task's fair-share lane and concurrency keys pass on.
    #[inline(never)]
    fn options_finished(&mut self, extras: &Extras) {
        if let Some((_, lane)) = extras.fairness {
            self.state.fair_keys.release(lane);
        }
        if let Some(tenant) = extras.tenant {
            self.state.tenants.release(tenant);
        }
        if self.state.key_gates.is_on() && !extras.limited.is_empty() {
            self.keys_passed_on(extras.limited);
        }
    }

    /// The live state of `task`, or why it has none.
    pub(super) fn live_state(&self, task: TaskId) -> Result<TaskState, SchedulerError> {
        match (self.state.tasks.get(task), self.state.tasks.record(task)) {
            (Some(t), _) => Ok(t.state),
            (None, Some(&state)) => Err(SchedulerError::AlreadyFinished {
                task,
                state: state.into(),
            }),
            (None, None) => Err(SchedulerError::UnknownTask(task)),
        }
    }

    /// Changes a task's state, keeping the per-level counters exact.
    pub(super) fn set_state(&mut self, task: TaskId, state: TaskState) {
        let Some(entry) = self.state.tasks.get_mut(task) else {
            return;
        };
        let (old, priority) = (entry.state, entry.priority);
        entry.state = state;
        self.state.counts.count(old, priority, -1);
        self.state.counts.count(state, priority, 1);
    }
}

/// What ending an attempt needs from its task, taken in one lookup.
pub(super) struct Attempt {
    /// The agent's registry slot.
    slot: Slot,
    /// Whether the attempt holds its breaker's probe permit.
    probe: bool,
    /// The attempt's token, if the task is in flight.
    token: Option<AttemptToken>,
    requirements: RequirementsId,
}

impl Attempt {
    /// The parts of `t`'s attempt; the probe permit moves out of the task.
    #[inline(always)]
    pub(super) fn take<P>(t: &mut Task<P>) -> Self {
        let token = match t.state {
            TaskState::InFlight { token, .. } => Some(token),
            _ => None,
        };
        Attempt {
            slot: t.agent_slot,
            probe: std::mem::take(&mut t.probe),
            token,
            requirements: t.requirements,
        }
    }
}
