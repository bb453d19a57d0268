//! The sans-IO dispatcher: queue, route, assign, and see every task to one end.
//!
//! **One face.** Every public method of [`Dispatcher`] is declared in this
//! file, in four groups: inputs, outputs (`poll_*`), queries, and state
//! and configuration. The host's loop is always the same: feed an input
//! with the current instant; drain [`poll_action`](Dispatcher::poll_action)
//! until it answers `None`, carrying out each action; sleep until
//! [`poll_timeout`](Dispatcher::poll_timeout) or the next input, and on
//! waking call [`handle_timeout`](Dispatcher::handle_timeout).
//!
//! Behind the face the work is split by concern, in the manner of
//! quinn-proto's connection:
//!
//! * `actions` — what the dispatcher answers: actions, cancel reasons,
//!   submissions;
//! * `admission` — submissions, idempotency keys, the way into the queue;
//! * `placement` — the dispatch loop, routing, assignment, parking,
//!   preemption and reserved capacity;
//! * `reports` and `attempts` — reports, and where a task goes when an
//!   attempt ends;
//! * `agents` — registration, status, heartbeats and failover;
//! * `timers` — the clock rule and every timer;
//! * `redrive` — requeueing dead letters, one or by a filter;
//! * `keys` — concurrency keys: their limits, policies and rates;
//! * `gating` — the dispatcher's side of the gates (circuit breakers, the
//!   kind bulkhead, kind and agent rate limits and the retry budget), whose
//!   state is one `Gates` value of the scheduler's `gates` module;
//! * `events` — every event into the metrics and to the observer;
//! * `plain` — the shorter instance of the cycle a plain dispatcher runs;
//! * `scale` — the pools watched for scale hints and their load.

mod actions;
mod admission;
mod agents;
mod attempts;
mod events;
mod gating;
#[cfg(feature = "cluster")]
mod issued_ids;
mod keys;
mod placement;
mod plain;
mod queries;
mod redrive;
mod reports;
mod scale;
mod timers;
mod unroutable;

pub use actions::{Action, CancelReason, Submitted};
use placement::Source;
pub use redrive::Redriven;
pub use unroutable::Unroutable;

use super::scale::{ScaleError, ScaleHint, ScalePolicy, Watch};
use super::state::State;
use super::{
    Applied, ApplyError, DeadLetter, DeadLetterFilter, DispatcherConfig, Event, Input, ReportError,
    SchedulerError, Snapshot, SubmitError, TaskReport, TaskSpec,
};
use crate::Observer;
use crate::agent::{AgentProfile, AgentStatus};
use crate::routing::{LeastLoaded, RoutingStrategy};
use crate::{AgentId, Instant, TaskId};

/// The sans-IO dispatcher. See the [module docs](super).
pub struct Dispatcher<P, S = Box<dyn RoutingStrategy + Send>> {
    pub(super) config: DispatcherConfig,
    pub(super) strategy: S,
    /// What the strategy's [`learns`](RoutingStrategy::learns) answered
    /// when the dispatcher took it.
    pub(super) learns: bool,
    pub(super) observer: Option<Box<dyn Observer<Event> + Send>>,
    /// Set while a [`SharedDispatcher`](super::SharedDispatcher) holds the
    /// dispatcher: where [`set_observer`](Self::set_observer) hands the
    /// host's observer, so that it runs outside the lock.
    #[cfg(feature = "sync")]
    pub(super) handoff: Option<super::shared::Handoff>,
    /// Whether a task's cycle may take its plain instance: what
    /// [`plain_now`](Self::plain_now) answered when it last could change
    /// (see the `plain` module). `false` is always correct (the full
    /// path); `true` only while `plain_now` holds, so whatever sets an
    /// observer recomputes it.
    pub(super) plain: bool,
    /// The pools watched for [scale hints](Self::scale_hint). Not part of
    /// a snapshot: the host watches them again on a restored dispatcher.
    pub(super) watches: Vec<Watch>,
    pub(super) state: State<P>,
}

impl<P, S> std::fmt::Debug for Dispatcher<P, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("agents", &self.state.registry.len())
            .field("live_tasks", &self.state.tasks.len())
            .field("counts", &self.state.counts)
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
        Self::assemble(config, strategy, state)
    }
}

/// **Inputs.** Each takes the host's clock reading `now` (time never goes
/// back: an earlier `now` counts as the latest seen), changes the state,
/// and queues what the host must do as actions.
impl<P, S: RoutingStrategy> Dispatcher<P, S> {
    /// Submits a task.
    ///
    /// Inline: where the host builds the spec, which of its limits and
    /// options are set is known, and a task that sets none of them takes
    /// a shorter way in (nothing of the spec left to check or to store).
    ///
    /// # Errors
    ///
    /// [`SubmitError`] handing the task back: the queue is full, its
    /// deadline has passed, or it asks for a zero attempt timeout.
    #[inline(always)]
    pub fn submit(&mut self, spec: TaskSpec<P>, now: Instant) -> Result<Submitted, SubmitError<P>> {
        if spec.is_unlimited() {
            let TaskSpec {
                payload,
                priority,
                requirements,
                ..
            } = spec;
            return match self.plain {
                true => self.submit_unlimited::<true>(payload, priority, requirements, now),
                false => self.submit_unlimited::<false>(payload, priority, requirements, now),
            };
        }
        self.submit_spec(spec, now)
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

    /// Takes an agent's report on an attempt.
    ///
    /// Inline, and split by outcome: where the host builds the report, the
    /// outcome is often known, and only that outcome's path remains.
    ///
    /// # Errors
    ///
    /// A [`ReportError`] for a report that is not from the agent holding the
    /// task's current attempt with its token; such a report changes nothing
    /// but the rejected-report counter.
    #[inline(always)]
    pub fn report(&mut self, report: TaskReport, now: Instant) -> Result<(), ReportError> {
        self.report_attempt(report, now)
    }

    /// Cancels a task and hands its payload back; the cancel wins whatever
    /// the task is doing. A queued, delayed (waiting for its start or a
    /// retry) or parked task ends at once; a running attempt gets an
    /// [`Action::Cancel`] for its agent, and its later report is rejected.
    ///
    /// ```
    /// use taskweave::agent::AgentProfile;
    /// use taskweave::scheduler::{Action, AttemptOutcome, Dispatcher, DispatcherConfig, TaskReport, TaskSpec, TaskState};
    /// use taskweave::{AgentId, Instant};
    ///
    /// let mut d = Dispatcher::new(DispatcherConfig::default());
    /// let now = Instant::ZERO;
    /// let later = d.submit(TaskSpec::new("later").not_before(Instant::from_secs(60)), now)?.id();
    /// assert_eq!(d.cancel(later, now)?, "later");
    /// assert_eq!(d.task_state(later), Some(TaskState::Cancelled));
    ///
    /// d.register_agent(AgentId::new(1), AgentProfile::builder().build()?, now)?;
    /// let running = d.submit(TaskSpec::new("running"), now)?.id();
    /// let Some(Action::Assign { agent, token, .. }) = d.poll_action() else { unreachable!() };
    /// d.cancel(running, now)?;
    /// assert!(matches!(d.poll_action(), Some(Action::Cancel { task, .. }) if task == running));
    /// let late = TaskReport { task: running, agent, token, outcome: AttemptOutcome::Success };
    /// assert!(d.report(late, now).is_err());
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`SchedulerError::UnknownTask`] or [`SchedulerError::AlreadyFinished`].
    pub fn cancel(&mut self, task: TaskId, now: Instant) -> Result<P, SchedulerError> {
        self.cancel_live(task, now)
    }

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
        // New names may complete resolutions made without them.
        (self.state.requirements).names_learned(&self.state.registry);
        self.state.gates.agent_joined(agent, &self.config);
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
        self.remove_agent(agent, now)
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
        self.change_agent_status(agent, status, now)
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
        if lost && self.config.settings.heartbeats.is_some() {
            self.set_agent_status(agent, AgentStatus::Online, now)?;
        }
        Ok(())
    }

    /// Excuses every agent's silence up to `now`: the host could not hear
    /// its agents until then (its link to them, or to the store their
    /// heartbeats go through, was down), which is nobody's fault. Each
    /// agent watched for heartbeats counts as heard from at `now`, so none
    /// is lost before a heartbeat timeout from `now`; an agent already
    /// lost stays lost until its own heartbeat. Nothing without
    /// [heartbeats](super::DispatcherConfigBuilder::heartbeats). `O(a)`
    /// for `a` agents watched.
    pub fn excuse_silence(&mut self, now: Instant) {
        let now = self.tick(now);
        self.forgive_silence(now);
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
        let armed_before = *self.state.timers.issued();
        while let Some((at, timer)) = self.state.timers.pop_due(now, armed_before) {
            self.fire(timer, at, now);
        }
        self.dispatch(now);
    }

    /// Submits a dead-lettered task again, as a new task (manual override)
    /// without its deadline, keeping the letter as history.
    ///
    /// # Errors
    ///
    /// [`SchedulerError::NoDeadLetter`]; or the submit error of a letter the queue refuses
    /// or marked [`TaskSpec::no_redrive`]: it stays in the dead-letter queue.
    pub fn requeue_dead_letter(
        &mut self,
        task: TaskId,
        now: Instant,
    ) -> Result<Submitted, SchedulerError> {
        self.requeue_letter(task, now)
    }

    /// Requeues every dead letter `filter` matches, oldest first, as new
    /// tasks without their deadlines, each keeping its letters as history
    /// ([`DeadLetter::history`]), and dispatches once at the end. Letters
    /// the queue refuses, or marked [`TaskSpec::no_redrive`], stay where
    /// they were (listed in [`Redriven::refused`]). `O(letters)`.
    ///
    /// ```
    /// use taskweave::scheduler::{AttemptOutcome, DeadLetterCause, DeadLetterFilter, Dispatcher, DispatcherConfig, TaskReport, TaskSpec};
    /// use taskweave::scheduler::Action;
    /// use taskweave::agent::AgentProfile;
    /// use taskweave::{AgentId, Instant};
    ///
    /// let mut d = Dispatcher::new(DispatcherConfig::default());
    /// d.register_agent(AgentId::new(1), AgentProfile::builder().build()?, Instant::ZERO)?;
    /// let task = d.submit(TaskSpec::new("charge").fairness("acme", 1), Instant::ZERO)?.id();
    /// let Some(Action::Assign { agent, token, .. }) = d.poll_action() else { unreachable!() };
    /// let outcome = AttemptOutcome::fatal("card declined");
    /// d.report(TaskReport { task, agent, token, outcome }, Instant::ZERO)?;
    ///
    /// let filter = DeadLetterFilter::new().cause(DeadLetterCause::NonRetryable).key("acme");
    /// let redriven = d.redrive_dead_letters(&filter, Instant::from_secs(60));
    /// let (old, new) = redriven.requeued[0];
    /// assert_eq!(old, task);
    /// assert!(d.dead_letters().is_empty());
    /// # let _ = new;
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    pub fn redrive_dead_letters(&mut self, filter: &DeadLetterFilter, now: Instant) -> Redriven {
        self.redrive_matching(filter, now)
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

    /// Applies one input by calling the method it stands for. Recording
    /// every input applied, through this method or the methods themselves,
    /// is enough to replay the dispatcher (see [`Input`]).
    ///
    /// # Errors
    ///
    /// Whatever the corresponding method returns, as an [`ApplyError`]; a
    /// refused submission hands its task back in
    /// [`ApplyError::Submit`], and a batch's refused tasks come back in
    /// [`Applied::Batch`], as with [`submit`](Self::submit) and
    /// [`submit_batch`](Self::submit_batch).
    pub fn apply(&mut self, input: Input<P>) -> Result<Applied<P>, ApplyError<P>> {
        self.apply_input(input)
    }
}

/// **Outputs.** After every input, the host drains
/// [`poll_action`](Self::poll_action) until it answers `None` and carries
/// each action out; then it sleeps until [`poll_timeout`](Self::poll_timeout)
/// (or the next input) and calls [`handle_timeout`](Self::handle_timeout).
impl<P, S: RoutingStrategy> Dispatcher<P, S> {
    /// The next action for the host, oldest first.
    #[must_use = "an action the host does not carry out is lost"]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.state.actions.pop_front()
    }

    /// The next instant at which [`handle_timeout`](Self::handle_timeout)
    /// has work, if any. Timers due at [`Instant::MAX`] never fire and are
    /// not reported.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.state.timers.next_at().filter(|at| !at.is_never())
    }
}

/// **State and configuration.** The whole state as a value, and the
/// observer.
impl<P, S: RoutingStrategy> Dispatcher<P, S> {
    /// A copy of everything the dispatcher knows — tasks and payloads,
    /// queues, timers, agents, breakers, limiters, metrics, the random
    /// source, the routing strategy's state
    /// ([`RoutingStrategy::save_state`]) — as a value that serde can store.
    /// The observer is not part of it.
    #[must_use]
    pub fn snapshot(&self) -> Snapshot<P>
    where
        P: Clone,
    {
        self.capture_snapshot()
    }

    /// Writes [`snapshot`](Self::snapshot)'s value to `serializer` straight
    /// from the dispatcher, copying nothing: the same bytes as serializing
    /// `snapshot()`, read back the same way ([`Snapshot`] deserializes
    /// them), without its copy of every task (less than half the time of
    /// `serde_json::to_vec(&d.snapshot())` at 100,000 tasks in
    /// `perf_report`) and without asking the payload to be [`Clone`].
    /// `O(n)` in the size of the state, plus the sort of each map by key.
    ///
    /// The dispatcher is borrowed for the whole write, the writer's I/O
    /// included. Behind a
    /// [`SharedDispatcher`](crate::scheduler::SharedDispatcher)'s lock,
    /// where every other thread waits for it, [`snapshot`](Self::snapshot)
    /// under the lock and the write after it holds the lock for less time.
    ///
    /// ```
    /// use taskweave::routing::{LeastLoaded, RoutingStrategy};
    /// use taskweave::scheduler::{Dispatcher, DispatcherConfig, Snapshot, TaskSpec};
    /// use taskweave::Instant;
    ///
    /// let mut d: Dispatcher<String> = Dispatcher::new(DispatcherConfig::default());
    /// d.submit(TaskSpec::new("report".to_string()), Instant::ZERO)?;
    /// let mut bytes = Vec::new();
    /// d.serialize_snapshot(&mut serde_json::Serializer::new(&mut bytes))?;
    /// assert_eq!(bytes, serde_json::to_vec(&d.snapshot())?);
    /// let snapshot: Snapshot<String> = serde_json::from_slice(&bytes)?;
    /// let strategy: Box<dyn RoutingStrategy + Send> = Box::new(LeastLoaded::new());
    /// let restored = Dispatcher::restore(DispatcherConfig::default(), strategy, snapshot)?;
    /// assert_eq!(restored.live_tasks(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The serializer's: a payload it cannot write, or its writer's
    /// failure.
    #[cfg(feature = "serde")]
    pub fn serialize_snapshot<W: serde::Serializer>(&self, serializer: W) -> Result<W::Ok, W::Error>
    where
        P: serde::Serialize,
    {
        self.write_snapshot(serializer)
    }

    /// A dispatcher that continues from `snapshot`, with `config` and
    /// `strategy` supplied again by the host. It produces the same actions
    /// as the dispatcher the snapshot came from:
    ///
    /// - `config` must be the configuration the snapshot was taken with
    ///   (every setting is compared; a host retry policy, which a snapshot
    ///   cannot describe, is taken on trust). A standby without the
    ///   leader's parameters uses [`Snapshot::config`].
    /// - `strategy` must be of the kind the dispatcher routed with: it is
    ///   loaded with the saved state ([`RoutingStrategy::load_state`]), so
    ///   rotations, weighted credits, random draws and learned estimates
    ///   continue where they were.
    ///
    /// **Untrusted snapshots.** The snapshot is checked as untrusted input
    /// (every index, count, id, load and timer is checked against the
    /// rest of the state): a snapshot that is not one a
    /// dispatcher could have taken is refused, and a restored dispatcher
    /// keeps every guarantee of a fresh one — no panic, no hang, nothing
    /// lost. Parts with invariants of their own (the registry, capability
    /// sets, breakers, limiters, histograms) are checked as serde reads
    /// them, so a corrupt one already fails to deserialize. Costs
    /// `O(n log n)` in the size of the state.
    ///
    /// # Errors
    ///
    /// [`SchedulerError::SnapshotVersion`] for a snapshot written by an
    /// incompatible version of this library;
    /// [`SchedulerError::ConfigMismatch`] naming the first setting in which
    /// `config` differs from the snapshot's;
    /// [`SchedulerError::CorruptSnapshot`] naming the first inconsistent
    /// field (`strategy` for a state the strategy refused).
    pub fn restore(
        config: DispatcherConfig,
        strategy: S,
        snapshot: Snapshot<P>,
    ) -> Result<Self, SchedulerError> {
        Self::restore_checked(config, strategy, snapshot)
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
}

/// **Scale hints.** How many agents each watched pool should have; the
/// host or its orchestrator starts and stops them (see [`ScalePolicy`]).
impl<P, S: RoutingStrategy> Dispatcher<P, S> {
    /// Watches a pool: the online agents with every one of `capabilities`,
    /// and the tasks that require none beyond them. Its arrivals and
    /// completions are counted from now on (about a fifth more per cycle,
    /// see the `plain` module), and a restored dispatcher watches nothing
    /// until the host watches again.
    ///
    /// ```
    /// use taskweave::agent::AgentProfile;
    /// use taskweave::scheduler::{Dispatcher, DispatcherConfig, ScaleChange, ScalePolicy, TaskSpec};
    /// use taskweave::{AgentId, Instant, TaskRequirements};
    ///
    /// let mut d = Dispatcher::new(DispatcherConfig::default());
    /// d.watch_pool("gpu", ["gpu"], ScalePolicy::builder().slots_per_agent(2).build()?)?;
    /// let gpu = TaskRequirements::new().require(["gpu"]);
    /// for i in 0..5 {
    ///     let _ = d.submit(TaskSpec::new(i).requirements(gpu.clone()), Instant::ZERO)?;
    /// }
    /// let hint = d.scale_hint("gpu", Instant::from_secs(3))?;
    /// assert_eq!((hint.queued, hint.agents), (5, 0));
    /// assert_eq!(hint.oldest_queued, Some(std::time::Duration::from_secs(3)));
    /// // Nothing has run yet: the demand is the 5 tasks present, over 2
    /// // slots an agent at 80 % utilisation.
    /// assert_eq!((hint.desired_agents, hint.change), (4, ScaleChange::Up));
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ScaleError::PoolExists`] for a name already watched.
    pub fn watch_pool<I: Into<String>>(
        &mut self,
        name: impl Into<String>,
        capabilities: impl IntoIterator<Item = I>,
        policy: ScalePolicy,
    ) -> Result<(), ScaleError> {
        let capabilities = capabilities.into_iter().map(Into::into).collect();
        self.add_watch(name.into(), capabilities, policy)
    }

    /// Stops watching a pool; whether it was watched.
    pub fn unwatch_pool(&mut self, name: &str) -> bool {
        self.remove_watch(name)
    }

    /// The pool's hint at `now`, recorded for its stabilisation window.
    /// `O(n)` in the live tasks and the agents.
    ///
    /// # Errors
    ///
    /// [`ScaleError::UnknownPool`] for a pool not watched.
    pub fn scale_hint(&mut self, pool: &str, now: Instant) -> Result<ScaleHint, ScaleError> {
        let index = self.watches.iter().position(|w| w.name == pool);
        index
            .and_then(|index| self.hint_at(index, now))
            .ok_or_else(|| ScaleError::UnknownPool(pool.to_string()))
    }

    /// The hints of every watched pool, in the order they were watched.
    pub fn scale_hints(&mut self, now: Instant) -> Vec<ScaleHint> {
        (0..self.watches.len())
            .filter_map(|index| self.hint_at(index, now))
            .collect()
    }
}
