//! Admission and idempotency: submissions become queued tasks.

use super::super::queue::Entry;
use super::super::state::{Extras, Task, Timer};
use super::super::task::{TaskSpec, TaskState};
use super::super::{DeadLetter, Event, SchedulerError, SubmitError, SubmitErrorKind};
use super::{Dispatcher, Source, Submitted};
use crate::routing::RoutingStrategy;
use crate::{Instant, TaskId};

impl<P, S: RoutingStrategy> Dispatcher<P, S> {
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
        if self.state.waiting >= self.config.settings.queue_capacity {
            let kind = SubmitErrorKind::QueueFull {
                capacity: self.config.settings.queue_capacity,
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
        if self.config.settings.unroutable_timeout.is_some() {
            let requirements = self.state.tasks.get(task).map(|t| t.requirements);
            if let Some(requirements) = requirements {
                self.track_unroutable(task, requirements, now);
            }
        }
        if let Some(key) = idempotency_key {
            let expires = now.saturating_add(self.config.settings.idempotency_window);
            self.state.idempotency.insert(key.clone(), task);
            self.state.idempotency_expiry.push_back((expires, key));
        }
        self.state.gates.request(now);
        self.emit(Event::Submitted { task, priority }, now);
        Ok((Submitted::New(task), Some(entry)))
    }

    /// Files a new entry. When nothing waits that [`dispatch`](Self::dispatch)
    /// would serve first — the main queue is empty and every parked group is
    /// blocked — and its level may be dispatched now, the entry goes straight
    /// to routing: what `dispatch` would do next, without the queue round trip.
    pub(super) fn offer(&mut self, entry: Entry, now: Instant) {
        let nothing_ahead =
            self.state.queue.is_empty() && self.state.parked.iter().all(|g| g.blocked);
        match self.dispatch_limit() {
            Some(max_level) if nothing_ahead && entry.priority <= max_level => {
                self.place(Source::Main, entry, now)
            }
            _ => self.state.queue.push(entry),
        }
    }

    pub(super) fn forget_expired_keys(&mut self, now: Instant) {
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
}
