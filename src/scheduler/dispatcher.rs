//! The sans-IO dispatcher: queue, route, assign, and see every task to one end.

use std::time::Duration;

use super::queue::{Entry, HeadKey, Queue};
use super::requirements_table::RequirementsId;
use super::state::{Extras, Parked, State, Task, Timer};
use super::task::{AttemptOutcome, DeadLetterReason, Expiry, TaskReport, TaskSpec, TaskState};
use super::{
    DeadLetter, DeadLetterQueue, DispatcherConfig, DispatcherMetrics, Event, Observer, ReportError,
    SchedulerError, SubmitError, SubmitErrorKind,
};
use crate::agent::{AgentProfile, AgentStatus, Outcome, Registry};
use crate::resilience::{BreakerState, CircuitBreaker, RateLimiter};
use crate::routing::{Feedback, LeastLoaded, RoutingError, RoutingStrategy};
use crate::{AgentId, AttemptToken, Instant, Priority, TaskId};

/// What the host should do next; pulled with [`Dispatcher::poll_action`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Action {
    /// Start `task` on `agent`. Its report must carry `token`.
    Assign {
        /// The task (its payload: [`Dispatcher::payload`]).
        task: TaskId,
        /// The agent chosen.
        agent: AgentId,
        /// Fencing token of this attempt.
        token: AttemptToken,
        /// 1 for the first attempt.
        attempt: u32,
    },
    /// Stop the attempt `token` of `task` on `agent`; any result it still
    /// sends will be rejected.
    Cancel {
        /// The task.
        task: TaskId,
        /// The agent running it.
        agent: AgentId,
        /// The attempt to stop.
        token: AttemptToken,
        /// Why.
        reason: CancelReason,
    },
    /// `task` failed for good; its letter is in the dead-letter queue.
    DeadLettered {
        /// The task.
        task: TaskId,
        /// Why.
        reason: DeadLetterReason,
    },
    /// `task` ran out of time; its letter is in the dead-letter queue.
    Expired {
        /// The task.
        task: TaskId,
        /// Which limit ran out.
        limit: Expiry,
    },
    /// `agent` missed its heartbeats and is now unhealthy; its tasks were
    /// requeued.
    AgentLost {
        /// The agent.
        agent: AgentId,
    },
}

/// Why a running attempt is being stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum CancelReason {
    /// The host cancelled the task.
    Cancelled,
    /// The task's deadline passed.
    Expired,
    /// The attempt exceeded its timeout; the task will be retried or
    /// dead-lettered.
    TimedOut,
    /// The agent was lost or taken out of service; the task was requeued.
    AgentLost,
    /// A waiting P0 task needed the slot; the task was requeued without
    /// spending a retry.
    Preempted,
}

/// The result of a successful submission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Submitted {
    /// A new task was created.
    New(TaskId),
    /// The idempotency key was seen within the window: this is the existing
    /// task, and the new payload was dropped.
    Duplicate(TaskId),
}

impl Submitted {
    /// The task id, new or existing.
    pub fn id(self) -> TaskId {
        match self {
            Submitted::New(id) | Submitted::Duplicate(id) => id,
        }
    }
}

/// Where the next task comes from.
#[derive(Clone, Copy)]
enum Source {
    Main,
    Parked(usize),
}

/// The sans-IO dispatcher. See the [module docs](super).
pub struct Dispatcher<P, S = Box<dyn RoutingStrategy + Send>> {
    pub(super) config: DispatcherConfig,
    pub(super) strategy: S,
    pub(super) observer: Option<Box<dyn Observer + Send>>,
    pub(super) state: State<P>,
}

impl<P, S> std::fmt::Debug for Dispatcher<P, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("agents", &self.state.registry.len())
            .field("live_tasks", &self.state.tasks.len())
            .field("waiting", &self.state.waiting)
            .field("queued_by_level", &self.state.queued_by_level)
            .field("dead_letters", &self.state.dead_letters.len())
            .field("pending_actions", &self.state.actions.len())
            .finish_non_exhaustive()
    }
}

impl<P> Dispatcher<P> {
    /// A dispatcher that routes with [`LeastLoaded`].
    pub fn new(config: DispatcherConfig) -> Self {
        Self::with_strategy(config, Box::new(LeastLoaded::new()))
    }
}

impl<P, S: RoutingStrategy> Dispatcher<P, S> {
    /// A dispatcher that routes with `strategy`.
    pub fn with_strategy(config: DispatcherConfig, strategy: S) -> Self {
        let state = State::new(&config);
        Dispatcher {
            config,
            strategy,
            observer: None,
            state,
        }
    }

    // ----- agents -------------------------------------------------------

    /// Registers an agent, online and idle; waiting tasks may go to it at once.
    ///
    /// # Errors
    ///
    /// [`SchedulerError::Registry`] with a duplicate id.
    pub fn register_agent(
        &mut self,
        agent: AgentId,
        profile: AgentProfile,
        now: Instant,
    ) -> Result<(), SchedulerError> {
        let now = self.tick(now);
        self.state.registry.register(agent, profile, now)?;
        if let Some(config) = &self.config.circuit_breaker {
            self.state
                .breakers
                .insert(agent, CircuitBreaker::new(config.clone()));
        }
        if let Some(quota) = self.config.agent_rate_limit {
            self.state
                .agent_rates
                .insert(agent, RateLimiter::new(quota));
        }
        self.arm_heartbeat(agent, now);
        self.capacity_freed(agent);
        self.dispatch(now);
        Ok(())
    }

    /// Removes an agent. Its in-flight tasks go back to the queue in their
    /// original order, preferably for another agent; the ids are returned.
    ///
    /// # Errors
    ///
    /// [`SchedulerError::Registry`] for an unknown agent.
    pub fn unregister_agent(
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
        self.state.breakers.remove(&agent);
        self.state.agent_rates.remove(&agent);
        self.state.rate_blocked_until.remove(&agent);
        self.dispatch(now);
        Ok(requeued)
    }

    /// Sets an agent's status. `Draining` keeps its running tasks;
    /// `Offline` and `Unhealthy` requeue them (returned); `Online` makes it
    /// eligible again.
    ///
    /// # Errors
    ///
    /// [`SchedulerError::Registry`] for an unknown agent.
    pub fn set_agent_status(
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

    /// Stops sending new tasks to `agent`; it finishes what it holds.
    ///
    /// # Errors
    ///
    /// [`SchedulerError::Registry`] for an unknown agent.
    pub fn drain_agent(&mut self, agent: AgentId, now: Instant) -> Result<(), SchedulerError> {
        self.set_agent_status(agent, AgentStatus::Draining, now)
            .map(drop)
    }

    /// Records a heartbeat. An agent marked unhealthy for missing heartbeats
    /// comes back online.
    ///
    /// # Errors
    ///
    /// [`SchedulerError::Registry`] for an unknown agent.
    pub fn heartbeat(&mut self, agent: AgentId, now: Instant) -> Result<(), SchedulerError> {
        self.state.registry.heartbeat(agent, now)?;
        let now = self.tick(now);
        let lost = self
            .state
            .registry
            .get(agent)
            .is_some_and(|r| r.status() == AgentStatus::Unhealthy);
        if lost && self.config.heartbeats.is_some() {
            self.set_agent_status(agent, AgentStatus::Online, now)?;
        }
        Ok(())
    }

    // ----- tasks --------------------------------------------------------

    /// Submits a task.
    ///
    /// # Errors
    ///
    /// [`SubmitError`] handing the task back: the queue is full, its
    /// deadline has passed, or it asks for a zero attempt timeout.
    pub fn submit(&mut self, spec: TaskSpec<P>, now: Instant) -> Result<Submitted, SubmitError<P>> {
        let now = self.tick(now);
        let (submitted, entry) = self.admit(spec, now)?;
        if let Some(entry) = entry {
            self.offer(entry, now);
        }
        self.dispatch(now);
        Ok(submitted)
    }

    /// Submits several tasks and dispatches once at the end. One result per
    /// task, in order.
    pub fn submit_batch(
        &mut self,
        specs: impl IntoIterator<Item = TaskSpec<P>>,
        now: Instant,
    ) -> Vec<Result<Submitted, SubmitError<P>>> {
        let now = self.tick(now);
        let results = specs
            .into_iter()
            .map(|spec| self.enqueue(spec, now))
            .collect();
        self.dispatch(now);
        results
    }

    /// Cancels a task and hands its payload back. A running attempt gets an
    /// [`Action::Cancel`].
    ///
    /// # Errors
    ///
    /// [`SchedulerError::UnknownTask`] or [`SchedulerError::AlreadyFinished`].
    pub fn cancel(&mut self, task: TaskId, now: Instant) -> Result<P, SchedulerError> {
        let state = self.live_state(task)?;
        let now = self.tick(now);
        if let TaskState::InFlight { agent, token, .. } = state {
            self.stop_attempt(task, agent, token, None, CancelReason::Cancelled, now);
        }
        let entry = self
            .finish(task, TaskState::Cancelled)
            .ok_or(SchedulerError::UnknownTask(task))?;
        self.emit(Event::Cancelled { task }, now);
        self.dispatch(now);
        Ok(entry.payload)
    }

    /// Takes an agent's report on an attempt.
    ///
    /// # Errors
    ///
    /// A [`ReportError`] for a report that is not from the agent holding the
    /// task's current attempt with its token; such a report changes nothing
    /// but the rejected-report counter.
    pub fn report(&mut self, report: TaskReport, now: Instant) -> Result<(), ReportError> {
        let TaskReport {
            task,
            agent,
            token,
            outcome,
        } = report;
        let (assigned_at, priority) = match self.check_report(task, agent, token) {
            Ok(attempt) => attempt,
            Err(error) => {
                self.emit(Event::ReportRejected { task, agent }, self.state.clock);
                return Err(error);
            }
        };
        let now = self.tick(now);
        let latency = now.saturating_duration_since(assigned_at);
        let success = outcome == AttemptOutcome::Success;
        self.close_attempt(task, agent, Some(Outcome { success, latency }), now);
        match outcome {
            AttemptOutcome::Success => {
                self.finish(task, TaskState::Completed);
                self.emit(
                    Event::Completed {
                        task,
                        agent,
                        priority,
                        ran: latency,
                    },
                    now,
                );
            }
            AttemptOutcome::Failure { reason, retryable } => {
                self.emit(
                    Event::Failed {
                        task,
                        agent,
                        retryable,
                    },
                    now,
                );
                self.attempt_failed(task, agent, reason, retryable, now);
            }
        }
        self.dispatch(now);
        Ok(())
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
        self.check_report(task, agent, token).map(drop)
    }

    /// Whether a report comes from the holder of the current attempt; if so,
    /// when that attempt started and the task's priority.
    fn check_report(
        &self,
        task: TaskId,
        agent: AgentId,
        token: AttemptToken,
    ) -> Result<(Instant, Priority), ReportError> {
        let Some(entry) = self.state.tasks.get(task) else {
            return Err(match self.state.tasks.record(task) {
                Some(&state) => ReportError::NotInFlight { task, state },
                None => ReportError::UnknownTask(task),
            });
        };
        match entry.state {
            TaskState::InFlight {
                agent: holder,
                token: current,
                ..
            } => {
                if token != current {
                    return Err(ReportError::StaleToken { task, token });
                }
                if agent != holder {
                    return Err(ReportError::WrongAgent { task, agent });
                }
            }
            state => return Err(ReportError::NotInFlight { task, state }),
        }
        Ok((entry.assigned_at, entry.priority))
    }

    /// Handles every timer due at `now`: TTLs, deadlines, attempt timeouts,
    /// retry instants, unroutable limits and missed heartbeats.
    ///
    /// One call fires only the timers that were armed before it: a timer
    /// that firing arms at an instant already due waits for the next call
    /// (and [`poll_timeout`](Self::poll_timeout) says so), so no call loops.
    /// A timer due at [`Instant::MAX`] never fires (the
    /// [clock rule](crate::time#the-clock-rule)).
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.tick(now);
        let armed_before = self.state.next_timer;
        while let Some(&(at, seq, timer)) = self.state.timers.first() {
            if !at.fires_at(now) || seq >= armed_before {
                break;
            }
            self.state.timers.pop_first();
            self.fire(timer, at, now);
        }
        self.dispatch(now);
    }

    /// The next action for the host, oldest first.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.state.actions.pop_front()
    }

    /// The next instant at which [`handle_timeout`](Self::handle_timeout)
    /// has work, if any. Timers due at [`Instant::MAX`] never fire and are
    /// not reported.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.state
            .timers
            .first()
            .map(|&(at, _, _)| at)
            .filter(|at| !at.is_never())
    }

    // ----- queries ------------------------------------------------------

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
            .or_else(|| self.state.tasks.record(task).copied())
    }

    /// The payload of a live task.
    pub fn payload(&self, task: TaskId) -> Option<&P> {
        self.state.tasks.get(task).map(|t| &t.payload)
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
        self.state.in_flight.get(&agent).map_or(&[], Vec::as_slice)
    }

    /// Counters, per-priority wait and run-time percentiles, load spread and
    /// throughput.
    pub fn metrics(&self) -> DispatcherMetrics {
        self.state.recorder.snapshot(&self.state.registry)
    }

    /// Sets the observer that receives every lifecycle [`Event`].
    pub fn set_observer(&mut self, observer: impl Observer + Send + 'static) {
        self.observer = Some(Box::new(observer));
    }

    /// The state of `agent`'s circuit breaker at `now`, if breakers are on.
    pub fn breaker_state(&self, agent: AgentId, now: Instant) -> Option<BreakerState> {
        self.state.breakers.get(&agent).map(|b| b.state(now))
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

    /// Submits a dead-lettered task again, as a new task (manual override).
    ///
    /// # Errors
    ///
    /// [`SchedulerError::NoDeadLetter`]; or, if the queue refuses it, the
    /// submit error — the letter then stays in the dead-letter queue.
    pub fn requeue_dead_letter(
        &mut self,
        task: TaskId,
        now: Instant,
    ) -> Result<Submitted, SchedulerError> {
        let letter = self
            .state
            .dead_letters
            .take(task)
            .ok_or(SchedulerError::NoDeadLetter(task))?;
        let DeadLetter {
            task,
            spec,
            reason,
            attempts,
            at,
        } = letter;
        let spec = TaskSpec {
            deadline: None,
            ..spec
        };
        match self.submit(spec, now) {
            Ok(submitted) => Ok(submitted),
            Err(SubmitError { kind, spec }) => {
                self.state.dead_letters.push(DeadLetter {
                    task,
                    spec: *spec,
                    reason,
                    attempts,
                    at,
                });
                Err(SchedulerError::Submit(kind))
            }
        }
    }

    // ----- internals ----------------------------------------------------

    fn enqueue(&mut self, spec: TaskSpec<P>, now: Instant) -> Result<Submitted, SubmitError<P>> {
        let (submitted, entry) = self.admit(spec, now)?;
        if let Some(entry) = entry {
            self.state.queue.push(entry);
        }
        Ok(submitted)
    }

    /// Creates the task of an accepted submission, with its timers, and
    /// returns the queue entry for the caller to file; a duplicate has none.
    fn admit(
        &mut self,
        spec: TaskSpec<P>,
        now: Instant,
    ) -> Result<(Submitted, Option<Entry>), SubmitError<P>> {
        self.forget_expired_keys(now);
        if let Some(&existing) = spec
            .idempotency_key
            .as_ref()
            .and_then(|k| self.state.idempotency.get(k))
        {
            return Ok((Submitted::Duplicate(existing), None));
        }
        if self.state.waiting >= self.config.queue_capacity {
            let kind = SubmitErrorKind::QueueFull {
                capacity: self.config.queue_capacity,
            };
            return Err(SubmitError {
                kind,
                spec: Box::new(spec),
            });
        }
        if spec.attempt_timeout.is_some_and(|t| t.is_zero()) {
            return Err(SubmitError {
                kind: SubmitErrorKind::ZeroAttemptTimeout,
                spec: Box::new(spec),
            });
        }
        if let Some(deadline) = spec.deadline.filter(|&d| d <= now) {
            let kind = SubmitErrorKind::DeadlinePassed { deadline, now };
            return Err(SubmitError {
                kind,
                spec: Box::new(spec),
            });
        }
        let TaskSpec {
            payload,
            priority,
            requirements,
            ttl,
            deadline,
            attempt_timeout,
            idempotency_key,
        } = spec;
        let seq = self.state.next_seq;
        self.state.next_seq = seq.saturating_add(1);
        let limits = Extras {
            ttl,
            ttl_due: ttl.map(|ttl| now.saturating_add(ttl)),
            deadline,
            attempt_timeout,
            ..Extras::default()
        };
        let has_limits = ttl.is_some() || deadline.is_some() || attempt_timeout.is_some();
        let task = self.state.tasks.insert(Task {
            payload,
            state: TaskState::Queued,
            seq,
            assigned_at: now,
            extras: has_limits.then(|| Box::new(limits)),
            requirements: self.state.requirements.acquire(requirements),
            attempts: 0,
            failures: 0,
            priority,
            probe: false,
        });
        self.count(TaskState::Queued, priority, 1);
        let entry = Entry {
            seq,
            task,
            priority,
            since: now,
        };
        if let Some(ttl) = ttl {
            self.arm(now.saturating_add(ttl), Timer::Ttl(task));
        }
        if let Some(deadline) = deadline {
            self.arm(deadline, Timer::Deadline(task));
        }
        if self.config.unroutable_timeout.is_some() {
            let requirements = self.state.tasks.get(task).map(|t| t.requirements);
            if let Some(requirements) = requirements {
                self.track_unroutable(task, requirements, now);
            }
        }
        if let Some(key) = idempotency_key {
            let expires = now.saturating_add(self.config.idempotency_window);
            self.state.idempotency.insert(key.clone(), task);
            self.state.idempotency_expiry.push_back((expires, key));
        }
        if let Some(budget) = &mut self.state.retry_budget {
            budget.record_request(now);
        }
        self.emit(Event::Submitted { task, priority }, now);
        Ok((Submitted::New(task), Some(entry)))
    }

    /// Files a new entry. When nothing waits that [`dispatch`](Self::dispatch)
    /// would serve first — the main queue is empty and every parked group is
    /// blocked — and its level may be dispatched now, the entry goes straight
    /// to routing: what `dispatch` would do next, without the queue round trip.
    fn offer(&mut self, entry: Entry, now: Instant) {
        let nothing_ahead =
            self.state.queue.is_empty() && self.state.parked.iter().all(|g| g.blocked);
        match self.dispatch_limit() {
            Some(max_level) if nothing_ahead && entry.priority <= max_level => {
                self.place(Source::Main, entry, now)
            }
            _ => self.state.queue.push(entry),
        }
    }

    fn forget_expired_keys(&mut self, now: Instant) {
        while self
            .state
            .idempotency_expiry
            .front()
            .is_some_and(|(at, _)| *at <= now)
        {
            if let Some((_, key)) = self.state.idempotency_expiry.pop_front() {
                self.state.idempotency.remove(&key);
            }
        }
    }

    /// Assigns waiting tasks while agents have free slots.
    ///
    /// With every slot taken, only P0 tasks are looked at, and only when
    /// preemption may free a slot for them.
    fn dispatch(&mut self, now: Instant) {
        if self.state.queued_by_level.iter().all(|&n| n == 0) {
            // Nothing queued: what the queues hold, if anything, is dead.
            return;
        }
        while let Some(max_level) = self.dispatch_limit() {
            let Some((source, entry)) = self.next_entry(now, max_level) else {
                break;
            };
            self.place(source, entry, now);
        }
    }

    /// The lowest priority that may be dispatched now, or `None` when no
    /// task can be.
    fn dispatch_limit(&self) -> Option<Priority> {
        let saturated = self.state.registry.available_agents() == 0;
        match (saturated, self.config.preemption) {
            (true, false) => None,
            (true, true) => Some(Priority::Critical),
            (false, _) if self.reservation_active() => Some(Priority::High),
            (false, _) => Some(Priority::Low),
        }
    }

    /// Assigns the entry taken from `source`, or parks it when its kind's
    /// gates or the lack of an eligible agent hold it back.
    fn place(&mut self, source: Source, entry: Entry, now: Instant) {
        let kind = self.gated_kind(entry.task);
        if !self.bulkhead_admits(kind.as_ref()) {
            // Unblocked when a task of this kind finishes.
            self.park(entry, source, now);
            return;
        }
        let routed = match self.route(entry.task) {
            Err(_) if self.preempt_for(&entry, now) => self.route(entry.task),
            routed => routed,
        };
        match routed.map(|agent| (agent, self.kind_rate_admits(kind.as_ref(), now))) {
            Ok((agent, Ok(()))) => self.assign(source, entry, agent, kind, now),
            Ok((_, Err(until))) => {
                let requirements = self.state.tasks.get(entry.task).map(|t| t.requirements);
                self.park(entry, source, now);
                if let Some(requirements) = requirements {
                    self.arm(until, Timer::KindRate(requirements));
                }
            }
            Err(_) => self.park(entry, source, now),
        }
    }

    /// With preemption on, frees a slot for a waiting P0 task by stopping
    /// the lowest-priority (then youngest) running task on an agent that
    /// could serve it. Returns whether a slot was freed.
    fn preempt_for(&mut self, entry: &Entry, now: Instant) -> bool {
        if !self.config.preemption || entry.priority != Priority::Critical {
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
        let candidates = self.state.registry.candidates(resolved);
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
        self.requeue(task, now);
        true
    }

    fn reservation_active(&self) -> bool {
        let share = self.config.reserved_share;
        share > 0.0
            && self.state.registry.online_load() as f64
                >= (1.0 - share) * self.state.registry.online_capacity() as f64
    }

    /// Pops the best live entry among the main queue and the unblocked
    /// parked groups.
    fn next_entry(&mut self, now: Instant, max_level: Priority) -> Option<(Source, Entry)> {
        if self.state.queue.is_empty() && self.state.parked.is_empty() {
            return None;
        }
        let tasks = &self.state.tasks;
        let is_live = |e: &Entry| {
            tasks
                .get(e.task)
                .is_some_and(|t| t.state == TaskState::Queued)
        };
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
            self.drop_empty_groups();
        }
        entry.map(|e| (source, e))
    }

    fn drop_empty_groups(&mut self) {
        self.state.parked.retain(|g| !g.queue.is_empty());
        self.state.parked_index = self
            .state
            .parked
            .iter()
            .enumerate()
            .map(|(index, g)| (g.requirements, index))
            .collect();
    }

    /// Chooses an agent for `task`, preferring one other than the agent that
    /// last failed it.
    fn route(&mut self, task: TaskId) -> Result<AgentId, RoutingError> {
        let Some(entry) = self.state.tasks.get(task) else {
            return Err(RoutingError::NoEligibleAgent);
        };
        let (requirements, last_agent) = (entry.requirements, entry.extras().last_agent);
        let resolved = self
            .state
            .requirements
            .resolve(requirements, &self.state.registry)?;
        if let Some(last) = last_agent.filter(|&a| !resolved.avoids(a)) {
            let elsewhere = resolved.also_avoiding(last);
            if let Ok(agent) = self
                .state
                .registry
                .route_resolved(&mut self.strategy, &elsewhere)
            {
                return Ok(agent);
            }
        }
        self.state
            .registry
            .route_resolved(&mut self.strategy, resolved)
    }

    /// Starts `entry`'s task on `agent`. Should the breaker or the registry
    /// refuse the slot after all (the slot limit and eligibility keep that
    /// from happening), the entry is parked rather than queued again, so
    /// [`dispatch`](Self::dispatch) always makes progress.
    fn assign(
        &mut self,
        source: Source,
        entry: Entry,
        agent: AgentId,
        kind: Option<String>,
        now: Instant,
    ) {
        let task = entry.task;
        let probe = match self.state.breakers.get_mut(&agent) {
            Some(breaker) => {
                let half_open = breaker.state(now) == BreakerState::HalfOpen;
                if breaker.try_acquire(now).is_err() {
                    self.park(entry, source, now);
                    self.sync_slot_limit(agent, now);
                    return;
                }
                half_open
            }
            None => false,
        };
        if self.state.registry.acquire(agent).is_err() {
            if probe && let Some(breaker) = self.state.breakers.get_mut(&agent) {
                breaker.release_probe();
            }
            self.park(entry, source, now);
            return;
        }
        if let (Some(kind), Some(bulkhead)) = (&kind, &mut self.state.bulkhead) {
            // Checked by bulkhead_admits just before routing.
            let _ = bulkhead.try_acquire(kind);
        }
        self.spend_agent_rate(agent, now);
        let token = AttemptToken::new(self.state.next_token);
        self.state.next_token = self.state.next_token.saturating_add(1);
        let default_timeout = self.config.attempt_timeout;
        let Some(task_entry) = self.state.tasks.get_mut(task) else {
            return;
        };
        task_entry.attempts = task_entry.attempts.saturating_add(1);
        task_entry.assigned_at = now;
        if let Some(extras) = task_entry.extras.as_deref_mut() {
            extras.unroutable_since = None;
        }
        task_entry.probe = probe;
        let (attempt, priority) = (task_entry.attempts, task_entry.priority);
        let timeout = task_entry.extras().attempt_timeout.or(default_timeout);
        self.set_state(
            task,
            TaskState::InFlight {
                agent,
                token,
                attempt,
            },
        );
        self.state.in_flight.entry(agent).or_default().push(task);
        if let Some(timeout) = timeout {
            self.arm(now.saturating_add(timeout), Timer::Attempt(task, token));
        }
        self.sync_slot_limit(agent, now);
        self.state.actions.push_back(Action::Assign {
            task,
            agent,
            token,
            attempt,
        });
        let waited = now.saturating_duration_since(entry.since);
        self.emit(
            Event::Assigned {
                task,
                agent,
                priority,
                attempt,
                waited,
            },
            now,
        );
    }

    fn entry_of(&self, task: TaskId, t: &Task<P>, now: Instant) -> Entry {
        Entry {
            seq: t.seq,
            task,
            priority: t.priority,
            since: now,
        }
    }

    /// Sets an unroutable entry aside in its requirement group, blocked
    /// until an agent that could serve the group frees a slot.
    fn park(&mut self, entry: Entry, source: Source, now: Instant) {
        let Some(requirements) = self.state.tasks.get(entry.task).map(|t| t.requirements) else {
            return;
        };
        self.track_unroutable(entry.task, requirements, now);
        let index = match source {
            Source::Parked(index) => index,
            Source::Main => match self.state.parked_index.get(&requirements) {
                Some(&index) => index,
                None => {
                    self.state.parked.push(Parked {
                        requirements,
                        queue: Queue::new(self.config.aging_interval),
                        blocked: true,
                    });
                    self.state
                        .parked_index
                        .insert(requirements, self.state.parked.len() - 1);
                    self.state.parked.len() - 1
                }
            },
        };
        if let Some(group) = self.state.parked.get_mut(index) {
            group.queue.push(entry);
            group.blocked = true;
        }
    }

    /// Starts (or stops) the unroutable clock of a task: it runs while no
    /// online agent could serve the task at all, not while capable agents
    /// are merely busy.
    fn track_unroutable(&mut self, task: TaskId, requirements: RequirementsId, now: Instant) {
        let registry = &self.state.registry;
        let servable = self
            .state
            .requirements
            .resolve(requirements, registry)
            .is_ok_and(|r| registry.could_serve(r));
        let limit = self.config.unroutable_timeout;
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
    fn capacity_freed(&mut self, agent: AgentId) {
        if self.state.parked.iter().all(|g| !g.blocked) {
            return;
        }
        let Some(record) = self.state.registry.get(agent) else {
            return;
        };
        for group in self.state.parked.iter_mut().filter(|g| g.blocked) {
            group.blocked = match self.state.requirements.resolved(group.requirements) {
                Some(resolved) => !self.state.registry.candidates(resolved).admits(record),
                // Unresolved: a new agent may bring the missing names.
                None => false,
            };
        }
    }

    /// Ends a running attempt from the dispatcher's side — cancelled,
    /// expired, timed out, preempted, failed over — and tells the host to
    /// stop it on the agent.
    fn stop_attempt(
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
    fn close_attempt(
        &mut self,
        task: TaskId,
        agent: AgentId,
        outcome: Option<Outcome>,
        now: Instant,
    ) {
        // An emptied list stays (agents go idle and busy all the time); it
        // goes when the agent fails over or leaves.
        if let Some(list) = self.state.in_flight.get_mut(&agent)
            && let Some(at) = list.iter().position(|&t| t == task)
        {
            list.remove(at);
        }
        if let Some(kind) = self.gated_kind(task) {
            self.kind_slot_freed(&kind);
        }
        let probe = self
            .state
            .tasks
            .get_mut(task)
            .is_some_and(|t| std::mem::take(&mut t.probe));
        let released = self.state.registry.release_after(agent, outcome).is_ok();
        match outcome {
            Some(outcome) => {
                self.learn(task, agent, outcome);
                self.breaker_outcome(agent, probe, outcome.success, now);
            }
            None if probe => {
                if let Some(breaker) = self.state.breakers.get_mut(&agent) {
                    breaker.release_probe();
                }
            }
            None => {}
        }
        self.sync_slot_limit(agent, now);
        if released {
            self.capacity_freed(agent);
        }
    }

    /// Feeds an outcome (already in the agent's history) to the strategy.
    fn learn(&mut self, task: TaskId, agent: AgentId, outcome: Outcome) {
        let kind = self
            .state
            .tasks
            .get(task)
            .and_then(|t| self.state.requirements.requirements(t.requirements))
            .and_then(|r| r.task_kind());
        self.strategy.observe(&Feedback {
            agent,
            kind,
            outcome,
        });
    }

    /// Feeds an outcome to `agent`'s breaker. Outcomes of attempts started
    /// before the breaker opened do not count while it is open or half-open:
    /// only probes speak for a recovering agent.
    fn breaker_outcome(&mut self, agent: AgentId, probe: bool, success: bool, now: Instant) {
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
    fn sync_slot_limit(&mut self, agent: AgentId, now: Instant) {
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
    fn gated_kind(&self, task: TaskId) -> Option<String> {
        if self.state.bulkhead.is_none() && self.state.kind_rates.is_none() {
            return None;
        }
        self.kind_of(task)
    }

    fn kind_of(&self, task: TaskId) -> Option<String> {
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
    fn bulkhead_admits(&self, kind: Option<&String>) -> bool {
        match (kind, &self.state.bulkhead) {
            (Some(kind), Some(bulkhead)) => bulkhead.in_flight(kind) < bulkhead.limit(kind),
            _ => true,
        }
    }

    /// Takes a cell of `kind`'s rate, or says when one will conform.
    fn kind_rate_admits(&mut self, kind: Option<&String>, now: Instant) -> Result<(), Instant> {
        match (kind, &mut self.state.kind_rates) {
            (Some(kind), Some(limiter)) => limiter.check(kind, now).map_err(|n| n.earliest()),
            _ => Ok(()),
        }
    }

    /// A task of `kind` finished an attempt: its bulkhead slot frees, so
    /// parked groups of that kind may try again.
    fn kind_slot_freed(&mut self, kind: &String) {
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
    fn spend_agent_rate(&mut self, agent: AgentId, now: Instant) {
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

    /// A failed attempt: retry after the policy's delay, or dead-letter.
    fn attempt_failed(
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
        let within_budget = self
            .state
            .retry_budget
            .as_mut()
            .is_none_or(|b| b.try_spend(now));
        let Some(entry) = self.state.tasks.get_mut(task) else {
            return;
        };
        entry.failures = entry.failures.saturating_add(1);
        entry.extras_mut().last_agent = Some(agent);
        let delay = match within_budget {
            true => self.config.retry.next_delay(
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

    /// Puts a task back in the queue at its original FIFO position, or
    /// expires it if its TTL ran out while it was running.
    fn requeue(&mut self, task: TaskId, now: Instant) {
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

    /// Requeues every task `agent` is running, in original order.
    fn fail_over(&mut self, agent: AgentId, now: Instant) -> Vec<TaskId> {
        let mut tasks = self.state.in_flight.remove(&agent).unwrap_or_default();
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
                self.requeue(task, now);
            }
        }
        tasks
    }

    fn fire(&mut self, timer: Timer, at: Instant, now: Instant) {
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
                let limit = self.config.unroutable_timeout.unwrap_or(Duration::MAX);
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
                if self
                    .state
                    .rate_blocked_until
                    .get(&agent)
                    .is_some_and(|&until| until <= now)
                {
                    self.state.rate_blocked_until.remove(&agent);
                    self.sync_slot_limit(agent, now);
                    self.capacity_freed(agent);
                }
            }
            Timer::KindRate(requirements) => {
                if let Some(&index) = self.state.parked_index.get(&requirements) {
                    if let Some(group) = self.state.parked.get_mut(index) {
                        group.blocked = false;
                    }
                }
            }
        }
    }

    fn arm_heartbeat(&mut self, agent: AgentId, now: Instant) {
        if let Some(heartbeats) = self.config.heartbeats {
            let due = now.saturating_add(heartbeats.timeout());
            self.state.heartbeat_due.insert(agent, due);
            self.arm(due, Timer::Heartbeat(agent));
        }
    }

    /// A heartbeat timer fired: lose the agent if it has been silent too
    /// long, otherwise check again when its silence would reach the limit.
    fn check_heartbeat(&mut self, agent: AgentId, at: Instant, now: Instant) {
        let (Some(heartbeats), Some(&due)) =
            (self.config.heartbeats, self.state.heartbeat_due.get(&agent))
        else {
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

    /// Whether `task`'s TTL, counted from submission, has run out by `now`.
    /// Its timer did nothing if it fired while the task was running, so
    /// every return to waiting asks again.
    fn ttl_ran_out(&self, task: TaskId, now: Instant) -> bool {
        self.state
            .tasks
            .get(task)
            .and_then(|t| t.extras().ttl_due)
            .is_some_and(|due| due.fires_at(now))
    }

    fn expire(&mut self, task: TaskId, limit: Expiry, now: Instant) {
        self.dead_letter(task, DeadLetterReason::Expired { limit }, now);
    }

    /// Ends a task in failure: its letter goes to the dead-letter queue and
    /// the host gets a notice.
    fn dead_letter(&mut self, task: TaskId, reason: DeadLetterReason, now: Instant) {
        let terminal = match reason {
            DeadLetterReason::Expired { .. } => TaskState::Expired,
            _ => TaskState::DeadLettered,
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
        let extras = entry.extras().clone();
        let spec = TaskSpec {
            payload: entry.payload,
            priority: entry.priority,
            requirements,
            ttl: extras.ttl,
            deadline: extras.deadline,
            attempt_timeout: extras.attempt_timeout,
            idempotency_key: None,
        };
        self.emit(
            match terminal {
                TaskState::Expired => Event::Expired { task },
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
        });
    }

    /// Moves a task to a terminal state: out of the live table, into the
    /// bounded history.
    fn finish(&mut self, task: TaskId, terminal: TaskState) -> Option<Task<P>> {
        self.set_state(task, terminal);
        let entry = self
            .state
            .tasks
            .finish(task, terminal, self.config.terminal_history)?;
        self.state.requirements.release(entry.requirements);
        Some(entry)
    }

    /// The live state of `task`, or why it has none.
    fn live_state(&self, task: TaskId) -> Result<TaskState, SchedulerError> {
        match (self.state.tasks.get(task), self.state.tasks.record(task)) {
            (Some(t), _) => Ok(t.state),
            (None, Some(&state)) => Err(SchedulerError::AlreadyFinished { task, state }),
            (None, None) => Err(SchedulerError::UnknownTask(task)),
        }
    }

    /// Changes a task's state, keeping the per-level counters exact.
    fn set_state(&mut self, task: TaskId, state: TaskState) {
        let Some(entry) = self.state.tasks.get_mut(task) else {
            return;
        };
        let (old, priority) = (entry.state, entry.priority);
        entry.state = state;
        self.count(old, priority, -1);
        self.count(state, priority, 1);
    }

    fn count(&mut self, state: TaskState, priority: Priority, delta: isize) {
        let apply = |n: &mut usize| *n = n.saturating_add_signed(delta);
        match state {
            TaskState::Queued => {
                apply(&mut self.state.queued_by_level[priority.index()]);
                apply(&mut self.state.waiting);
            }
            TaskState::Delayed { .. } => apply(&mut self.state.waiting),
            _ => {}
        }
    }

    /// `now` under the [clock rule](crate::time#the-clock-rule): never
    /// earlier than the latest `now` seen.
    fn tick(&mut self, now: Instant) -> Instant {
        self.state.clock = self.state.clock.max(now);
        self.state.clock
    }

    fn arm(&mut self, at: Instant, timer: Timer) {
        let seq = self.state.next_timer;
        self.state.next_timer = seq.saturating_add(1);
        self.state.timers.insert((at, seq, timer));
    }

    /// Records an event in the metrics and hands it to the observer.
    fn emit(&mut self, event: Event, now: Instant) {
        self.state.recorder.record(&event, now);
        if let Some(observer) = &mut self.observer {
            observer.on_event(&event);
        }
    }
}
