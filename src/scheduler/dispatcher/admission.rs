//! Admission and idempotency: submissions become queued tasks.

use super::super::queue::Entry;
use super::super::state::idempotency::ScopedKey;
use super::super::state::timer::Timer;
use super::super::state::{Extras, Task};
use super::super::task::key_name::KeyName;
use super::super::task::options::{FairShare, TaskOptions};
use super::super::task::{TaskSpec, TaskState};
use super::super::{
    Event, LimitScope, MAX_CONCURRENCY_KEYS, MAX_KEY_BYTES, SubmitError, SubmitErrorKind,
    TenantQuota,
};
use super::{Dispatcher, Source, Submitted};
use crate::routing::RoutingStrategy;
use crate::{Instant, Priority, TaskRequirements};

impl<P, S: RoutingStrategy> Dispatcher<P, S> {
    /// [`submit`](Self::submit) of any spec.
    #[inline(never)]
    pub(super) fn submit_spec(
        &mut self,
        spec: TaskSpec<P>,
        now: Instant,
    ) -> Result<Submitted, SubmitError<P>> {
        let now = self.tick(now);
        let filed = self.admit(spec, now)?;
        Ok(self.enter::<false>(filed, now))
    }

    /// [`submit`](Self::submit) of a task with no limit, key or option:
    /// what [`admit`](Self::admit) does with such a spec, with nothing of
    /// it to look at but the queue's room. `PLAIN`: see the `plain` module.
    #[inline(never)]
    pub(super) fn submit_unlimited<const PLAIN: bool>(
        &mut self,
        payload: P,
        priority: Priority,
        requirements: TaskRequirements,
        now: Instant,
    ) -> Result<Submitted, SubmitError<P>> {
        let now = self.tick(now);
        self.forget_expired_keys(now);
        if let Some(kind) = self.queue_full() {
            let spec = TaskSpec::new(payload)
                .priority(priority)
                .requirements(requirements);
            return Err(SubmitError {
                kind,
                spec: Box::new(spec),
            });
        }
        let waiting = Waiting {
            payload,
            priority,
            requirements,
            extras: None,
            lane: (0, 0),
            start: None,
            ttl_due: None,
            deadline: None,
            idempotency_key: None,
            fingerprint: None,
        };
        let filed = self.file::<PLAIN>(waiting, now);
        Ok(self.enter::<PLAIN>(filed, now))
    }

    /// A filed submission enters dispatch: its entry, if it has one (a
    /// delayed task has none yet), is offered, and waiting work dispatched.
    #[inline(always)]
    fn enter<const PLAIN: bool>(
        &mut self,
        (submitted, entry): (Submitted, Option<Entry>),
        now: Instant,
    ) -> Submitted {
        if let Some(entry) = entry {
            self.offer::<PLAIN>(entry, now);
        }
        self.dispatch(now);
        submitted
    }

    pub(super) fn enqueue(
        &mut self,
        spec: TaskSpec<P>,
        now: Instant,
    ) -> Result<Submitted, SubmitError<P>> {
        let (submitted, entry) = self.admit(spec, now)?;
        if let Some(entry) = entry {
            self.state.queue.push(entry);
        }
        Ok(submitted)
    }

    /// Creates the task of an accepted submission, with its timers, and
    /// returns the queue entry for the caller to file; a duplicate has none.
    pub(super) fn admit(
        &mut self,
        mut spec: TaskSpec<P>,
        now: Instant,
    ) -> Result<(Submitted, Option<Entry>), SubmitError<P>> {
        self.forget_expired_keys(now);
        let scoped =
            (spec.idempotency_key.as_deref()).map(|key| ScopedKey::new(spec.options().tenant, key));
        if let Some((existing, first)) = scoped.as_ref().and_then(|k| self.state.idempotency.get(k))
        {
            let fingerprint = spec.options().payload_fingerprint;
            if let (Some(first), Some(again)) = (first, fingerprint) {
                if first != again {
                    return Err(SubmitError {
                        kind: SubmitErrorKind::KeyConflict { task: existing },
                        spec: Box::new(spec),
                    });
                }
            }
            return Ok((Submitted::Duplicate(existing), None));
        }
        if let Some(kind) = self.refusal(&spec, now) {
            return Err(SubmitError {
                kind,
                spec: Box::new(spec),
            });
        }
        // Last, as it counts the task: nothing may refuse it after this.
        if let Some(tenant) = spec.options().tenant {
            let quota = self.config.settings.tenant_quota(tenant);
            let cost = spec.options().cost;
            if let Err(limit) = self.state.tenants.admit(tenant, cost, quota, now) {
                return Err(SubmitError {
                    kind: SubmitErrorKind::OverQuota { tenant, limit },
                    spec: Box::new(spec),
                });
            }
            // A tenant whose fair share is keyed by it: one lane, whatever
            // key the task named.
            if let Some(weight) = quota.and_then(TenantQuota::fair_share_weight) {
                let key = KeyName::display(tenant);
                spec.options_mut().fairness = Some(FairShare { key, weight });
            }
        }
        let TaskSpec {
            payload,
            priority,
            requirements,
            ttl,
            deadline,
            attempt_timeout,
            idempotency_key: _,
            options,
        } = spec;
        let start = options
            .as_ref()
            .and_then(|o| o.not_before)
            .filter(|&at| at > now);
        // The TTL counts from the start: submission, or `not_before`.
        let ttl_due = ttl.map(|ttl| start.unwrap_or(now).saturating_add(ttl));
        let fingerprint = options.as_ref().and_then(|o| o.payload_fingerprint);
        let (lane, weight) = match options.as_ref().and_then(|o| o.fairness.as_ref()) {
            Some(share) => (self.state.fair_keys.acquire(&share.key), share.weight),
            None => (0, 0),
        };
        let extras = if options.is_some()
            || ttl.is_some()
            || deadline.is_some()
            || attempt_timeout.is_some()
        {
            let options = options.map_or(TaskOptions::NONE, |o| *o);
            Some(Box::new(Extras {
                ttl,
                ttl_due,
                deadline,
                attempt_timeout,
                not_before: options.not_before,
                fairness: options.fairness.map(|share| (share, lane)),
                limited: self.state.key_gates.limited(&options.concurrency_keys),
                concurrency_keys: options.concurrency_keys,
                cost: options.cost,
                metadata: options.metadata,
                max_attempts: options.max_attempts,
                tenant: options.tenant,
                no_redrive: options.no_redrive,
                ..Extras::default()
            }))
        } else {
            None
        };
        let waiting = Waiting {
            payload,
            priority,
            requirements,
            extras,
            lane: (lane, weight),
            start,
            ttl_due,
            deadline,
            idempotency_key: scoped,
            fingerprint,
        };
        Ok(self.file::<false>(waiting, now))
    }

    /// Files an accepted task: its slot, its timers and idempotency key,
    /// the counts, and the [`Event::Submitted`]; returns its id, and its
    /// queue entry unless it waits for its start.
    #[inline(always)]
    fn file<const PLAIN: bool>(
        &mut self,
        waiting: Waiting<P>,
        now: Instant,
    ) -> (Submitted, Option<Entry>) {
        let (priority, start) = (waiting.priority, waiting.start);
        let seq = self.state.next_seq;
        self.state.next_seq = seq.saturating_add(1);
        let state = match start {
            Some(until) => TaskState::Delayed { until },
            None => TaskState::Queued,
        };
        let task = self.state.tasks.insert(Task {
            payload: waiting.payload,
            state,
            seq,
            assigned_at: now,
            extras: waiting.extras,
            requirements: self.state.requirements.acquire(waiting.requirements),
            agent_slot: 0,
            attempts: 0,
            failures: 0,
            priority,
            probe: false,
        });
        self.state.counts.count(state, priority, 1);
        let (lane, weight) = waiting.lane;
        let entry = Entry {
            seq,
            task,
            priority,
            since: now,
            lane,
            weight,
            woken: false,
        };
        if let Some(due) = waiting.ttl_due {
            self.arm(due, Timer::Ttl(task));
        }
        if let Some(deadline) = waiting.deadline {
            self.arm(deadline, Timer::Deadline(task));
        }
        if let Some(until) = start {
            self.arm(until, Timer::Retry(task));
        } else if !PLAIN && self.config.settings.unroutable_timeout.is_some() {
            let requirements = self.state.tasks.get(task).map(|t| t.requirements);
            if let Some(requirements) = requirements {
                self.track_unroutable(task, requirements, now);
            }
        }
        if let Some(key) = waiting.idempotency_key {
            let expires = now.saturating_add(self.config.settings.idempotency_window);
            self.state
                .idempotency
                .insert(key, task, expires, waiting.fingerprint);
        }
        // On both paths: a watched pool does not cost the plain one.
        if !self.watches.is_empty() {
            let requirements = self.state.tasks.get(task).map(|t| t.requirements);
            if let Some(requirements) = requirements {
                self.scale_arrival(requirements, now);
            }
        }
        self.state.gates.request(now);
        self.emit_on::<PLAIN>(Event::Submitted { task, priority }, now);
        (Submitted::New(task), start.is_none().then_some(entry))
    }

    /// Why a submission must be refused, if it must: a full queue, or a
    /// task that could never run as asked.
    fn refusal(&self, spec: &TaskSpec<P>, now: Instant) -> Option<SubmitErrorKind> {
        if let Some(full) = self.queue_full() {
            return Some(full);
        }
        if spec.attempt_timeout.is_some_and(|t| t.is_zero()) {
            return Some(SubmitErrorKind::ZeroAttemptTimeout);
        }
        if let Some(deadline) = spec.deadline.filter(|&d| d <= now) {
            return Some(SubmitErrorKind::DeadlinePassed { deadline, now });
        }
        if spec.is_plain() {
            return None;
        }
        self.option_refusal(spec)
    }

    /// A full queue, if it is.
    #[inline]
    fn queue_full(&self) -> Option<SubmitErrorKind> {
        let capacity = self.config.settings.queue_capacity;
        (self.state.counts.waiting() >= capacity).then_some(SubmitErrorKind::QueueFull { capacity })
    }

    /// Why the scheduling options of a submission could never work: a
    /// start that never comes or is at or after the deadline, oversized
    /// metadata or keys, a weight or cost of zero, a cost above a burst.
    fn option_refusal(&self, spec: &TaskSpec<P>) -> Option<SubmitErrorKind> {
        let options = spec.options();
        if let Some(not_before) = options.not_before.filter(|at| at.is_never()) {
            return Some(SubmitErrorKind::StartNever { not_before });
        }
        if let (Some(not_before), Some(deadline)) = (options.not_before, spec.deadline) {
            if not_before >= deadline {
                return Some(SubmitErrorKind::StartAfterDeadline {
                    not_before,
                    deadline,
                });
            }
        }
        if let Err(too_large) = options.metadata.check() {
            return Some(too_large.into());
        }
        if let Some(share) = &options.fairness {
            if share.weight == 0 {
                return Some(SubmitErrorKind::ZeroFairnessWeight);
            }
        }
        if options.max_attempts == Some(0) {
            return Some(SubmitErrorKind::ZeroMaxAttempts);
        }
        let count = options.concurrency_keys.len();
        if count > MAX_CONCURRENCY_KEYS {
            return Some(SubmitErrorKind::TooManyConcurrencyKeys { count });
        }
        let keys = options
            .concurrency_keys
            .iter()
            .chain(options.fairness.as_ref().map(|s| &s.key));
        if let Some(bytes) = keys.map(|key| key.len()).find(|&n| n > MAX_KEY_BYTES) {
            return Some(SubmitErrorKind::KeyTooLong { bytes });
        }
        self.cost_refusal(spec)
    }

    /// A zero cost, or one above the burst of a rate limit the task falls
    /// under.
    fn cost_refusal(&self, spec: &TaskSpec<P>) -> Option<SubmitErrorKind> {
        let cost = spec.options().cost;
        if cost == 0 {
            return Some(SubmitErrorKind::ZeroCost);
        }
        if cost == 1 {
            return None;
        }
        let settings = &self.config.settings;
        let kind = spec.requirements.task_kind();
        let kind_burst = settings
            .kind_rate_limit
            .as_ref()
            .zip(kind)
            .map(|(limiter, kind)| limiter.quota(&kind.to_string()).burst());
        let agent_burst = settings.agent_rate_limit.map(|quota| quota.burst());
        let key_bursts = spec.options().concurrency_keys.iter().filter_map(|key| {
            let limit = settings.concurrency_limits.get(key.as_str())?;
            limit.quota().map(|quota| quota.burst())
        });
        let bursts = kind_burst
            .map(|b| (LimitScope::Kind, b))
            .into_iter()
            .chain(agent_burst.map(|b| (LimitScope::Agent, b)))
            .chain(key_bursts.map(|b| (LimitScope::ConcurrencyKey, b)));
        for (limit, burst) in bursts {
            if cost > burst {
                return Some(SubmitErrorKind::CostOverBurst { limit, cost, burst });
            }
        }
        None
    }

    /// Files a new entry. When nothing waits that [`dispatch`](Self::dispatch)
    /// would serve first — the main queue is empty and every parked group is
    /// blocked — and its level may be dispatched now, the entry goes straight
    /// to routing: what `dispatch` would do next, without the queue round trip.
    #[inline(always)]
    pub(super) fn offer<const PLAIN: bool>(&mut self, entry: Entry, now: Instant) {
        let nothing_ahead = self.state.queue.is_empty() && self.state.parked.all_blocked();
        match self.dispatch_limit::<PLAIN>() {
            Some(max_level) if nothing_ahead && entry.priority <= max_level => {
                self.place::<PLAIN>(Source::Main, entry, now)
            }
            _ => self.state.queue.push(entry),
        }
    }

    /// Forgets the idempotency keys whose window has passed by `now`.
    #[inline(always)]
    pub(super) fn forget_expired_keys(&mut self, now: Instant) {
        self.state.idempotency.forget_expired(now);
    }
}

/// An accepted submission, ready to be filed: what
/// [`Dispatcher::file`] stores and arms.
struct Waiting<P> {
    payload: P,
    priority: Priority,
    requirements: TaskRequirements,
    extras: Option<Box<Extras>>,
    /// The fair-share lane (0: none) and its weight.
    lane: (u32, u16),
    /// When a delayed task may start.
    start: Option<Instant>,
    ttl_due: Option<Instant>,
    deadline: Option<Instant>,
    idempotency_key: Option<ScopedKey>,
    /// The payload's fingerprint, kept with the idempotency key.
    fingerprint: Option<u64>,
}
