//! Snapshots: a dispatcher's state as a stored value, and the checks that
//! make a restored dispatcher as safe as a fresh one.
//!
//! A snapshot read back from a disk or a database is untrusted input.
//! [`Dispatcher::restore`] therefore checks everything it takes — every
//! index in range, every count against the collections it counts, ids
//! unique, loads within capacity and equal to the tasks each agent runs,
//! every waiting task reachable (queued once, or delayed with its retry
//! timer), counters ahead of every number they handed out, the event
//! counters against the tasks they counted — and rebuilds
//! what is derived rather than trusting it. Anything inconsistent is a
//! [`SchedulerError::CorruptSnapshot`] naming the field; nothing is
//! allocated from a number before it is checked.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::agent::COUNTER_LIMIT;
use crate::resilience::RetrySpec;
use crate::routing::{RoutingStrategy, StrategyState};
use crate::scheduler::config::{RetrySetting, Settings};
use crate::scheduler::dispatcher::Action;
use crate::scheduler::durable::state_form::{StateForm, StateView};
use crate::scheduler::state::State;
use crate::scheduler::state::counts::WaitingCounts;
use crate::scheduler::state::requirements::RequirementsId;
use crate::scheduler::state::timer::Timer;
use crate::scheduler::task::TaskState;
use crate::scheduler::{Dispatcher, DispatcherConfig, SchedulerError};
use crate::{AgentId, Instant, TaskId};

/// A dispatcher's state as a value: taken with [`Dispatcher::snapshot`],
/// stored with serde, continued with [`Dispatcher::restore`].
///
/// The stored form is exact and canonical: a serde_json round trip restores
/// the same state, and equal states serialize to equal bytes (maps travel
/// sorted by key, accumulated floats as their bit patterns). Settings a
/// host wrote as decimals (an agent's cost, the latency smoothing) travel
/// as decimals.
///
/// Store it in a self-describing format: JSON as here, or another that
/// writes what each value is (CBOR, MessagePack). Fields at their
/// defaults are left out and some values are read by their shape (a
/// priority by index or name, a slot's occupant as a row or a tag), which
/// formats that write bare values in a fixed order (bincode, postcard)
/// cannot express: reading from one fails with the format's error.
/// [`Dispatcher::serialize_snapshot`] writes the same bytes without
/// copying the state first.
///
/// ```
/// use taskweave::scheduler::{Dispatcher, DispatcherConfig, TaskSpec};
/// use taskweave::routing::{LeastLoaded, RoutingStrategy};
/// use taskweave::Instant;
///
/// let mut d: Dispatcher<String> = Dispatcher::new(DispatcherConfig::default());
/// let task = d.submit(TaskSpec::new("report".to_string()), Instant::ZERO)?.id();
/// let json = serde_json::to_string(&d.snapshot()).unwrap();
/// let snapshot = serde_json::from_str(&json).unwrap();
/// let strategy: Box<dyn RoutingStrategy + Send> = Box::new(LeastLoaded::new());
/// let restored = Dispatcher::restore(DispatcherConfig::default(), strategy, snapshot)?;
/// assert_eq!(restored.payload(task).map(String::as_str), Some("report"));
/// assert_eq!(serde_json::to_string(&restored.snapshot()).unwrap(), json);
/// # Ok::<(), taskweave::Error>(())
/// ```
#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Snapshot<P> {
    version: u32,
    settings: Settings,
    /// The retry policy, when it is a built-in one.
    retry: Option<RetrySpec>,
    strategy: StrategyState,
    state: StateForm<P>,
    /// Taken by [`Dispatcher::snapshot`] in this process (and maybe
    /// cloned), not read from outside: what holds by construction needs no
    /// second look (the idempotency keys' agreement with their queue,
    /// checked key by key otherwise). Never stored; a snapshot read back
    /// is checked in full.
    #[cfg_attr(feature = "serde", serde(skip))]
    captured: bool,
}

impl<P> Snapshot<P> {
    /// The snapshot format this library writes. Version 8 writes a queued
    /// task's state in its row as `0` (`"Queued"` before): seven bytes less
    /// a queued task, about a tenth of a mostly queued snapshot; versions 4
    /// to 7 read as before. Version 7 writes what it
    /// holds once per task as rows: a live task, its slot and its queue
    /// entry as arrays of their fields without names, a priority as its
    /// index; about a third of version 6's bytes. Versions 4 to 6 read as
    /// before. Version 6 adds tenants
    /// (a task's tenant, keys scoped to it, each tenant's cost-rate
    /// limiter), written only where a task has a tenant, so a version 5
    /// snapshot reads as before. Version 5 leaves the fields of a dead
    /// letter's task spec out at their defaults; version 4 wrote them all.
    pub const VERSION: u32 = 8;

    /// The snapshot formats this library restores.
    pub const READABLE: std::ops::RangeInclusive<u32> = 4..=Self::VERSION;

    /// The format version this snapshot says it is in.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The configuration the snapshot was taken with, for a standby that
    /// restores it without the leader's parameters at hand.
    ///
    /// # Errors
    ///
    /// [`SchedulerError::CorruptSnapshot`] for settings no builder would
    /// accept; [`SchedulerError::InvalidConfig`] when the dispatcher ran a
    /// host retry policy, which only the host can supply again (build the
    /// configuration as the leader did).
    pub fn config(&self) -> Result<DispatcherConfig, SchedulerError> {
        self.settings
            .validate()
            .map_err(|error| corrupt("settings", error.to_string()))?;
        let Some(spec) = self.retry else {
            return Err(SchedulerError::InvalidConfig {
                setting: "retry policy",
                value: "a host policy, which a snapshot does not hold".to_string(),
            });
        };
        Ok(DispatcherConfig {
            settings: self.settings.clone(),
            retry: RetrySetting::new(spec),
        })
    }
}

/// A [`Snapshot`] borrowed from a live dispatcher: its fields in its
/// order, the state as a [`StateView`]. Written as it is
/// ([`Dispatcher::serialize_snapshot`]) or copied into a [`Snapshot`]
/// ([`Dispatcher::snapshot`]), so both are assembled in one place.
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
struct SnapshotView<'a, P> {
    version: u32,
    settings: &'a Settings,
    retry: Option<RetrySpec>,
    strategy: StrategyState,
    state: StateView<'a, P>,
}

impl<P, S: RoutingStrategy> Dispatcher<P, S> {
    /// The dispatcher's snapshot, borrowed.
    fn snapshot_view(&self) -> SnapshotView<'_, P> {
        SnapshotView {
            version: Snapshot::<P>::VERSION,
            settings: &self.config.settings,
            retry: self.config.retry.spec,
            strategy: self.strategy.save_state(),
            state: StateView::of(&self.state),
        }
    }

    /// The work of [`serialize_snapshot`](Self::serialize_snapshot), whose
    /// docs say what it does.
    #[cfg(feature = "serde")]
    pub(in crate::scheduler) fn write_snapshot<W: serde::Serializer>(
        &self,
        serializer: W,
    ) -> Result<W::Ok, W::Error>
    where
        P: serde::Serialize,
    {
        serde::Serialize::serialize(&self.snapshot_view(), serializer)
    }

    /// The work of [`snapshot`](Self::snapshot), whose docs say what it does.
    pub(in crate::scheduler) fn capture_snapshot(&self) -> Snapshot<P>
    where
        P: Clone,
    {
        let view = self.snapshot_view();
        Snapshot {
            version: view.version,
            settings: view.settings.clone(),
            retry: view.retry,
            strategy: view.strategy,
            state: StateForm::from(view.state),
            captured: true,
        }
    }

    /// The work of [`restore`](Self::restore), whose docs say what it does.
    pub(in crate::scheduler) fn restore_checked(
        config: DispatcherConfig,
        mut strategy: S,
        snapshot: Snapshot<P>,
    ) -> Result<Self, SchedulerError> {
        if !Snapshot::<P>::READABLE.contains(&snapshot.version) {
            return Err(SchedulerError::SnapshotVersion {
                found: snapshot.version,
                supported: Snapshot::<P>::VERSION,
            });
        }
        if let Some(setting) = config.settings.first_difference(&snapshot.settings) {
            return Err(SchedulerError::ConfigMismatch { setting });
        }
        // Two host policies (`None`) cannot be compared, and are trusted.
        if config.retry.spec != snapshot.retry {
            return Err(SchedulerError::ConfigMismatch {
                setting: "retry policy",
            });
        }
        strategy
            .load_state(snapshot.strategy)
            .map_err(|error| corrupt("strategy", error.to_string()))?;
        let state = State::from(snapshot.state).validated(&config.settings, snapshot.captured)?;
        Ok(Dispatcher::assemble(config, strategy, state))
    }
}

pub(in crate::scheduler) fn corrupt(field: &str, problem: impl Into<String>) -> SchedulerError {
    SchedulerError::CorruptSnapshot {
        field: field.to_string(),
        problem: problem.into(),
    }
}

/// Ensures `value` lies below the counter `next` that handed it out.
fn issued(field: &str, value: u64, next: u64) -> Result<(), SchedulerError> {
    if value < next {
        Ok(())
    } else {
        Err(corrupt(
            field,
            format!("{value} was never handed out (next is {next})"),
        ))
    }
}

impl<P> State<P> {
    /// Checks a state read from a snapshot and rebuilds what it derives;
    /// `captured` (taken in this process) skips the checks of what the
    /// library keeps by construction and costs most.
    fn validated(mut self, settings: &Settings, captured: bool) -> Result<Self, SchedulerError> {
        let counters = [
            ("next_seq", self.next_seq),
            ("next_token", self.next_token),
            ("next_timer", *self.timers.issued()),
        ];
        for (field, value) in counters {
            if value > COUNTER_LIMIT {
                return Err(corrupt(
                    field,
                    format!("{value} leaves no room to count on"),
                ));
            }
        }
        self.tasks = self.tasks.validated().map_err(|p| corrupt("tasks", p))?;
        self.requirements = self
            .requirements
            .validated(&self.registry)
            .map_err(|p| corrupt("requirements", p))?;
        self.queue = self.queue.validated().map_err(|p| corrupt("queue", p))?;
        self.check_parked()?;
        let in_flight = self.check_tasks()?;
        self.check_in_flight(&in_flight)?;
        self.check_options(settings)?;
        self.check_queue_entries()?;
        let armed = self.check_timers()?;
        self.check_attempt_timers(settings, &armed)?;
        self.check_key_waiters(&armed)?;
        self.check_agent_maps()?;
        if !captured {
            self.check_idempotency(settings)?;
        }
        self.check_actions()?;
        self.check_gates(&armed)?;
        self.recorder.check().map_err(|p| corrupt("recorder", p))?;
        let running = in_flight.values().map(BTreeSet::len).sum();
        (self.recorder)
            .check_counts(self.tasks.len(), running)
            .map_err(|p| corrupt("recorder", p))?;
        Ok(self)
    }

    /// The gates agree with the agents, the timers and the tasks in flight
    /// (see [`Gates::check`](crate::scheduler::dispatcher::Gates::check)).
    fn check_gates(&self, armed: &BTreeSet<(Timer, Instant)>) -> Result<(), SchedulerError> {
        let running = self.tasks.iter().filter_map(|(_, task)| {
            let kind = self
                .requirements
                .requirements(task.requirements)
                .and_then(|r| r.task_kind());
            match task.state {
                TaskState::InFlight { .. } => kind,
                _ => None,
            }
        });
        self.gates.check(
            &self.registry,
            self.clock,
            |timer, at| armed.contains(&(timer, at)),
            running,
        )
    }

    /// Parked groups: valid queues of known, distinct requirement sets.
    fn check_parked(&mut self) -> Result<(), SchedulerError> {
        let requirements = &self.requirements;
        self.parked.checked(
            |index, group| {
                let field = format!("parked[{index}]");
                group.queue =
                    std::mem::replace(&mut group.queue, crate::scheduler::queue::Queue::new(None))
                        .validated()
                        .map_err(|p| corrupt(&field, p))?;
                if requirements.requirements(group.requirements).is_none() {
                    return Err(corrupt(&field, "names no requirement set"));
                }
                Ok(())
            },
            |index| {
                corrupt(
                    &format!("parked[{index}]"),
                    "repeats another group's requirements",
                )
            },
        )
    }

    /// Every live task on its own, the per-level counts, the users of each
    /// requirement set; returns the tasks each agent should hold.
    fn check_tasks(&mut self) -> Result<BTreeMap<AgentId, BTreeSet<TaskId>>, SchedulerError> {
        let mut users: HashMap<RequirementsId, usize> = HashMap::new();
        let mut in_flight: BTreeMap<AgentId, BTreeSet<TaskId>> = BTreeMap::new();
        let mut slots = Vec::new();
        self.counts = WaitingCounts::default();
        for (id, task) in self.tasks.iter() {
            let field = format!("tasks[{id}]");
            if self.requirements.requirements(task.requirements).is_none() {
                return Err(corrupt(&field, "names no requirement set"));
            }
            *users.entry(task.requirements).or_default() += 1;
            issued(&format!("{field}.seq"), task.seq, self.next_seq)?;
            if task.failures > task.attempts {
                return Err(corrupt(&field, "more failures than attempts"));
            }
            if task.extras().ttl.is_some() != task.extras().ttl_due.is_some() {
                return Err(corrupt(
                    &field,
                    "a TTL without its due instant, or the reverse",
                ));
            }
            self.counts.count(task.state, task.priority, 1);
            match task.state {
                TaskState::Queued | TaskState::Delayed { .. } => {}
                TaskState::InFlight {
                    agent,
                    token,
                    attempt,
                } => {
                    let Some(slot) = self.registry.slot_of(agent) else {
                        return Err(corrupt(&field, format!("runs on unknown agent {agent}")));
                    };
                    issued(&format!("{field}.token"), token.get(), self.next_token)?;
                    if attempt != task.attempts || attempt == 0 {
                        return Err(corrupt(&field, "attempt number disagrees with attempts"));
                    }
                    in_flight.entry(agent).or_default().insert(id);
                    slots.push((id, slot));
                }
                terminal => {
                    return Err(corrupt(&field, format!("is live but {terminal:?}")));
                }
            }
        }
        // Each running task knows its agent's slot in the restored registry.
        for (id, slot) in slots {
            if let Some(task) = self.tasks.get_mut(id) {
                task.agent_slot = slot;
            }
        }
        for (requirements, count) in self.requirements.users() {
            let expected = users.get(&requirements).copied().unwrap_or(0);
            if count != expected {
                return Err(corrupt(
                    &format!("requirements[{requirements}]"),
                    format!("counts {count} users, but {expected} tasks use it"),
                ));
            }
        }
        Ok(in_flight)
    }

    /// Each agent's in-flight list names exactly the tasks running on it,
    /// and its load in the registry is their number.
    fn check_in_flight(
        &mut self,
        expected: &BTreeMap<AgentId, BTreeSet<TaskId>>,
    ) -> Result<(), SchedulerError> {
        self.in_flight = std::mem::take(&mut self.in_flight)
            .placed(&self.registry)
            .map_err(|agent| corrupt(&format!("in_flight[{agent}]"), "unknown agent"))?;
        for (agent, list) in self.in_flight.iter() {
            let list = list.as_slice();
            let field = format!("in_flight[{agent}]");
            let listed: BTreeSet<TaskId> = list.iter().copied().collect();
            let running = expected.get(&agent).cloned().unwrap_or_default();
            if listed.len() != list.len() || listed != running {
                return Err(corrupt(
                    &field,
                    "disagrees with the tasks running on the agent",
                ));
            }
        }
        for record in self.registry.iter() {
            let running = expected.get(&record.id()).map_or(0, BTreeSet::len);
            if !self.in_flight.contains(record.id(), &self.registry) && running > 0 {
                return Err(corrupt(&format!("in_flight[{}]", record.id()), "missing"));
            }
            if record.load() as usize != running {
                return Err(corrupt(
                    &format!("registry agent {}", record.id()),
                    format!("load {} but {running} tasks in flight", record.load()),
                ));
            }
        }
        Ok(())
    }

    /// Every queued task has exactly one entry, at its priority and in
    /// its fair-share lane, in the main queue, a parked group or waiting
    /// for a concurrency key; entries of other tasks are dead and dropped
    /// as the queue reaches them.
    fn check_queue_entries(&self) -> Result<(), SchedulerError> {
        let mut seen = BTreeSet::new();
        let groups = self.parked.iter().map(|g| &g.queue);
        let keys = self.key_gates.waiters().map(|(_, q)| q);
        for entry in std::iter::once(&self.queue)
            .chain(groups)
            .chain(keys)
            .flat_map(|q| q.entries())
        {
            let field = format!("queue entry of task {}", entry.task);
            issued(&field, entry.seq, self.next_seq)?;
            let Some(task) = self.tasks.get(entry.task) else {
                continue;
            };
            if task.state != TaskState::Queued {
                continue;
            }
            if entry.seq != task.seq
                || entry.priority != task.priority
                || !self.entry_lane_agrees(entry)
            {
                return Err(corrupt(&field, "disagrees with its task"));
            }
            if !seen.insert(entry.task) {
                return Err(corrupt(&field, "appears twice"));
            }
        }
        let queued = self.counts.queued_total();
        if seen.len() != queued {
            return Err(corrupt("queue", "a queued task has no entry"));
        }
        Ok(())
    }

    /// Timers were armed by this state, and everything that waits for one
    /// has it: delayed tasks their retry, watched agents their heartbeat
    /// check (rate-blocked agents their release: [`check_gates`](Self::check_gates)).
    /// Returns every armed timer with its instant.
    fn check_timers(&self) -> Result<BTreeSet<(Timer, Instant)>, SchedulerError> {
        let mut armed = BTreeSet::new();
        for &(at, seq, timer) in self.timers.armed() {
            issued("timers", seq, *self.timers.issued())?;
            if let Timer::Attempt(task, token) = timer {
                issued(
                    &format!("timer of task {task}"),
                    token.get(),
                    self.next_token,
                )?;
            }
            armed.insert((timer, at));
        }
        for (id, task) in self.tasks.iter() {
            if let TaskState::Delayed { until } = task.state {
                if !armed.contains(&(Timer::Retry(id), until)) {
                    return Err(corrupt(
                        &format!("tasks[{id}]"),
                        "delayed without its retry timer",
                    ));
                }
            }
        }
        for (&agent, &due) in &self.heartbeat_due {
            if !armed.contains(&(Timer::Heartbeat(agent), due)) {
                return Err(corrupt(&format!("heartbeat_due[{agent}]"), "no timer"));
            }
        }
        Ok(armed)
    }

    /// Every attempt in flight was handed out before the clock, and one
    /// under a timeout has its timer, armed at its start plus the timeout:
    /// an attempt without one, or with one set later, would wait for ever
    /// on an agent that heartbeats and never reports.
    fn check_attempt_timers(
        &self,
        settings: &Settings,
        armed: &BTreeSet<(Timer, Instant)>,
    ) -> Result<(), SchedulerError> {
        for (id, task) in self.tasks.iter() {
            let TaskState::InFlight { token, .. } = task.state else {
                continue;
            };
            let field = || format!("tasks[{id}]");
            if task.assigned_at > self.clock {
                return Err(corrupt(&field(), "handed out after the clock"));
            }
            let Some(timeout) = task.extras().attempt_timeout.or(settings.attempt_timeout) else {
                continue;
            };
            let due = task.assigned_at.saturating_add(timeout);
            if !armed.contains(&(Timer::Attempt(id, token), due)) {
                return Err(corrupt(&field(), "in flight without its attempt timer"));
            }
        }
        Ok(())
    }

    /// Heartbeat state belongs to registered agents (the gates' per-agent
    /// state: [`check_gates`](Self::check_gates)).
    fn check_agent_maps(&self) -> Result<(), SchedulerError> {
        if let Some(agent) = self
            .heartbeat_due
            .keys()
            .find(|&&a| !self.registry.contains(a))
        {
            return Err(corrupt(&format!("heartbeat_due[{agent}]"), "unknown agent"));
        }
        Ok(())
    }

    /// The idempotency keys and their expiry queue name the same keys, each
    /// once, in expiry order, none expiring later than a key submitted now
    /// would: a new key joins the queue at its end.
    fn check_idempotency(&self, settings: &Settings) -> Result<(), SchedulerError> {
        let (by_key, expiry, fingerprints) = self.idempotency.parts();
        if fingerprints.keys().any(|key| !by_key.contains_key(key)) {
            return Err(corrupt(
                "idempotency_fingerprints",
                "names a key that names no task",
            ));
        }
        if expiry
            .iter()
            .zip(expiry.iter().skip(1))
            .any(|(a, b)| a.0 > b.0)
        {
            return Err(corrupt("idempotency_expiry", "not in expiry order"));
        }
        let latest = self.clock.saturating_add(settings.idempotency_window);
        if expiry.back().is_some_and(|&(at, _)| at > latest) {
            return Err(corrupt(
                "idempotency_expiry",
                "expires later than the window allows at the state's clock",
            ));
        }
        // A window holds tens of thousands of keys and every restore checks
        // them, so each key is hashed once. Each key names its own task
        // (a repeated key names the first key's task and adds no key), so
        // the queue's keys are distinct when the tasks they name are; and
        // distinct keys of the map, as many as the map has, are all of it.
        let mut tasks = Vec::with_capacity(expiry.len());
        for (_, key) in expiry {
            match by_key.get(key) {
                // A key names the task submitted with it: one handed out
                // already, or a later task would share it.
                Some(task) if !self.tasks.issued(*task) => {
                    return Err(corrupt("idempotency", "names a task never issued"));
                }
                Some(task) => tasks.push(task.get()),
                None => return Err(corrupt("idempotency", "disagrees with its expiry queue")),
            }
        }
        tasks.sort_unstable();
        let same = tasks.len() == by_key.len() && tasks.windows(2).all(|w| w[0] != w[1]);
        if !same {
            return Err(corrupt("idempotency", "disagrees with its expiry queue"));
        }
        Ok(())
    }

    /// Pending actions carry tokens this state handed out.
    fn check_actions(&self) -> Result<(), SchedulerError> {
        for action in &self.actions {
            if let Action::Assign { token, .. } | Action::Cancel { token, .. } = action {
                issued("actions", token.get(), self.next_token)?;
            }
        }
        Ok(())
    }
}
