//! [`Saga`]: a compensation log, usable on its own or inside a workflow
//! run. Part of the core: it needs no feature and no dependency beyond
//! the standard library, and `workflow` re-exports it.

use std::collections::{BTreeMap, BTreeSet};

use thiserror::Error;

/// Names one recorded action of a [`Saga`]: its position in completion
/// order (0 for the first action recorded).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct CompensationId(u32);

impl CompensationId {
    /// The id of the `index`-th recorded action.
    ///
    /// ```
    /// use taskweave::saga::CompensationId;
    ///
    /// assert_eq!(CompensationId::new(3).get(), 3);
    /// ```
    pub const fn new(index: u32) -> Self {
        CompensationId(index)
    }

    /// Its position in completion order.
    pub const fn get(self) -> u32 {
        self.0
    }
}

/// Where one recorded action of a [`Saga`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum CompensationStatus {
    /// Not handed out yet.
    Waiting,
    /// Handed out by [`Saga::poll_compensation`]; its outcome is awaited.
    InProgress,
    /// Undone (terminal).
    Compensated,
    /// Its compensation failed for good (terminal).
    Failed,
    /// Never handed out: an action depending on it could not be undone
    /// (terminal).
    Blocked,
}

/// A compensation to perform, handed out by [`Saga::poll_compensation`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compensation<'a, K, T> {
    /// Report its outcome with this id.
    pub id: CompensationId,
    /// The key it was recorded under.
    pub key: &'a K,
    /// What was recorded with it (what the host needs to undo it).
    pub value: &'a T,
}

/// An action left undone when a [`Saga`] is over: listed by
/// [`Saga::undone`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Undone<'a, K, T> {
    /// The action.
    pub id: CompensationId,
    /// The key it was recorded under.
    pub key: &'a K,
    /// What was recorded with it.
    pub value: &'a T,
    /// `Some(reason)` if its compensation failed; `None` if it was blocked
    /// because an action depending on it could not be undone.
    pub failure: Option<&'a str>,
}

/// Why a [`Saga`] refused an input; a refused input changes nothing.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SagaError {
    /// Actions are recorded (and dependencies declared) only before
    /// [`Saga::compensate`].
    #[error("the saga is compensating: nothing more can be recorded")]
    Compensating,
    /// The saga holds [`u32::MAX`] actions already.
    #[error("the saga is full")]
    Full,
    /// No compensation with this id is in progress.
    #[error("compensation {0:?} is not in progress")]
    NotInProgress(CompensationId),
}

#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
struct Entry<K, T> {
    key: K,
    value: T,
    status: CompensationStatus,
}

/// A compensation log: the saga pattern without a workflow.
///
/// The host [`record`](Self::record)s each completed action it may have to
/// undo, under a key, with what it needs to undo it and the keys of the
/// actions it depends on. When something fails, [`compensate`](Self::compensate)
/// turns the log around: [`poll_compensation`](Self::poll_compensation)
/// hands out the recorded actions one at a time, in reverse order of
/// completion, so an action is undone only after every later action —
/// among them every completed action depending on it. The host reports
/// each outcome ([`compensated`](Self::compensated) or
/// [`failed`](Self::failed)); retrying a compensation is the host's
/// business before it reports a failure. A compensation that fails for
/// good blocks, transitively, the keys its action depends on: their
/// actions are never handed out and stay listed in
/// [`undone`](Self::undone) with the failed one, for manual handling.
///
/// Dependencies are between keys. A key may be recorded several times (a
/// loop's iterations, the instances of a fan-out): a failure blocks every
/// not yet compensated action of each key depended on. A key may depend on
/// itself (each of its actions fed the next: one that cannot be undone
/// blocks the earlier ones), and [`depend`](Self::depend) declares the
/// dependencies of a key with nothing to undo, so blocking passes through
/// it.
///
/// The saga is sans-IO and deterministic: it calls nothing and reads no
/// clock. With the `workflow` feature, `workflow::WorkflowRun` compensates
/// with one.
///
/// ```
/// use taskweave::saga::Saga;
///
/// let mut saga: Saga<&str, u32> = Saga::new();
/// saga.record("hotel", 17, [])?;
/// saga.record("flight", 42, ["hotel"])?;
/// // Charging the card failed: undo the rest, latest first.
/// saga.compensate();
/// let c = saga.poll_compensation().unwrap();
/// assert_eq!((*c.key, *c.value), ("flight", 42));
/// let id = c.id;
/// assert!(saga.poll_compensation().is_none(), "one at a time");
/// saga.compensated(id)?;
/// let c = saga.poll_compensation().unwrap();
/// assert_eq!(*c.key, "hotel");
/// let id = c.id;
/// saga.compensated(id)?;
/// assert!(saga.poll_compensation().is_none());
/// assert!(saga.is_done() && saga.is_complete());
/// # Ok::<(), taskweave::saga::SagaError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Saga<K: Ord, T> {
    /// Recorded actions, in completion order.
    entries: Vec<Entry<K, T>>,
    /// The keys each key depends on.
    depends: BTreeMap<K, Vec<K>>,
    /// `None` while recording; then how many entries, from the first, are
    /// still to be considered.
    remaining: Option<u32>,
    /// The entry handed out and not yet reported.
    in_progress: Option<u32>,
    /// Keys whose actions must not be undone.
    blocked: BTreeSet<K>,
    /// Entries failed or blocked, in the order they were given up, with the
    /// failure's reason.
    undone: Vec<(u32, Option<String>)>,
}

impl<K: Ord, T> Default for Saga<K, T> {
    fn default() -> Self {
        Saga {
            entries: Vec::new(),
            depends: BTreeMap::new(),
            remaining: None,
            in_progress: None,
            blocked: BTreeSet::new(),
            undone: Vec::new(),
        }
    }
}

impl<K: Ord + Clone, T> Saga<K, T> {
    /// An empty log, recording.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a completed action under `key`, with `value` (what undoing
    /// it needs) and the keys it depends on (added to those `key` already
    /// has).
    ///
    /// # Errors
    ///
    /// [`SagaError::Compensating`] once [`compensate`](Self::compensate)
    /// was called; [`SagaError::Full`] past [`u32::MAX`] actions.
    pub fn record(
        &mut self,
        key: K,
        value: T,
        depends_on: impl IntoIterator<Item = K>,
    ) -> Result<CompensationId, SagaError> {
        if self.remaining.is_some() {
            return Err(SagaError::Compensating);
        }
        let id = u32::try_from(self.entries.len())
            .ok()
            .filter(|&id| id < u32::MAX)
            .ok_or(SagaError::Full)?;
        self.add_depends(key.clone(), depends_on);
        self.entries.push(Entry {
            key,
            value,
            status: CompensationStatus::Waiting,
        });
        Ok(CompensationId(id))
    }

    /// Declares that `key` depends on `depends_on` without recording an
    /// action: a failure blocking `key` blocks them too.
    ///
    /// # Errors
    ///
    /// [`SagaError::Compensating`] once [`compensate`](Self::compensate)
    /// was called.
    pub fn depend(
        &mut self,
        key: K,
        depends_on: impl IntoIterator<Item = K>,
    ) -> Result<(), SagaError> {
        if self.remaining.is_some() {
            return Err(SagaError::Compensating);
        }
        self.add_depends(key, depends_on);
        Ok(())
    }

    fn add_depends(&mut self, key: K, depends_on: impl IntoIterator<Item = K>) {
        let mut depends_on = depends_on.into_iter().peekable();
        if depends_on.peek().is_none() {
            return;
        }
        let list = self.depends.entry(key).or_default();
        for dep in depends_on {
            if !list.contains(&dep) {
                list.push(dep);
            }
        }
    }

    /// Starts compensating: nothing more is recorded, and
    /// [`poll_compensation`](Self::poll_compensation) hands the actions
    /// out. Calling it again changes nothing.
    pub fn compensate(&mut self) {
        if self.remaining.is_none() {
            self.remaining = Some(self.entries.len() as u32);
        }
    }

    /// Whether [`compensate`](Self::compensate) was called.
    pub fn is_compensating(&self) -> bool {
        self.remaining.is_some()
    }

    /// The next compensation to perform, if none is in progress: the latest
    /// recorded action not handed out yet whose key is not blocked. Blocked
    /// actions met on the way are given up ([`undone`](Self::undone)).
    /// `None` while recording, while a compensation is in progress, and
    /// once every action has been handed out.
    #[must_use = "a compensation handed out must be performed and reported"]
    pub fn poll_compensation(&mut self) -> Option<Compensation<'_, K, T>> {
        if self.in_progress.is_some() {
            return None;
        }
        let remaining = self.remaining.as_mut()?;
        while *remaining > 0 {
            *remaining -= 1;
            let index = *remaining;
            let Some(entry) = self.entries.get_mut(index as usize) else {
                continue;
            };
            if entry.status != CompensationStatus::Waiting {
                continue;
            }
            if self.blocked.contains(&entry.key) {
                entry.status = CompensationStatus::Blocked;
                self.undone.push((index, None));
                continue;
            }
            entry.status = CompensationStatus::InProgress;
            self.in_progress = Some(index);
            let entry = &self.entries[index as usize];
            return Some(Compensation {
                id: CompensationId(index),
                key: &entry.key,
                value: &entry.value,
            });
        }
        None
    }

    /// The compensation in progress, if any.
    pub fn in_progress(&self) -> Option<CompensationId> {
        self.in_progress.map(CompensationId)
    }

    /// Reports that compensation `id` succeeded.
    ///
    /// # Errors
    ///
    /// [`SagaError::NotInProgress`] unless `id` is the compensation in
    /// progress.
    pub fn compensated(&mut self, id: CompensationId) -> Result<(), SagaError> {
        let entry = self.take_in_progress(id)?;
        entry.status = CompensationStatus::Compensated;
        Ok(())
    }

    /// Reports that compensation `id` failed for good: it is left undone
    /// with `reason`, and the keys its action depends on are blocked,
    /// transitively.
    ///
    /// # Errors
    ///
    /// [`SagaError::NotInProgress`] unless `id` is the compensation in
    /// progress.
    pub fn failed(
        &mut self,
        id: CompensationId,
        reason: impl Into<String>,
    ) -> Result<(), SagaError> {
        let entry = self.take_in_progress(id)?;
        entry.status = CompensationStatus::Failed;
        let key = entry.key.clone();
        self.undone.push((id.0, Some(reason.into())));
        let mut stack: Vec<K> = self.depends.get(&key).cloned().unwrap_or_default();
        while let Some(at) = stack.pop() {
            if self.blocked.contains(&at) {
                continue;
            }
            if let Some(next) = self.depends.get(&at) {
                stack.extend(next.iter().cloned());
            }
            self.blocked.insert(at);
        }
        Ok(())
    }

    fn take_in_progress(&mut self, id: CompensationId) -> Result<&mut Entry<K, T>, SagaError> {
        if self.in_progress != Some(id.0) {
            return Err(SagaError::NotInProgress(id));
        }
        let entry = self
            .entries
            .get_mut(id.0 as usize)
            .ok_or(SagaError::NotInProgress(id))?;
        self.in_progress = None;
        Ok(entry)
    }

    /// Whether compensating is over: every action was handed out or given
    /// up and no outcome is awaited — true once
    /// [`poll_compensation`](Self::poll_compensation) has returned `None`
    /// with nothing in progress. `false` while recording.
    pub fn is_done(&self) -> bool {
        self.in_progress.is_none() && self.remaining == Some(0)
    }

    /// Whether compensating is over with every action undone.
    pub fn is_complete(&self) -> bool {
        self.is_done() && self.undone.is_empty()
    }

    /// The actions left undone (failed or blocked), in the order they were
    /// given up.
    pub fn undone(&self) -> impl Iterator<Item = Undone<'_, K, T>> + '_ {
        self.undone.iter().filter_map(|(index, failure)| {
            let entry = self.entries.get(*index as usize)?;
            Some(Undone {
                id: CompensationId(*index),
                key: &entry.key,
                value: &entry.value,
                failure: failure.as_deref(),
            })
        })
    }

    /// How many actions were left undone so far.
    pub fn undone_len(&self) -> usize {
        self.undone.len()
    }

    /// How many actions were recorded.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The key, value and status of action `id`.
    pub fn get(&self, id: CompensationId) -> Option<(&K, &T, CompensationStatus)> {
        let entry = self.entries.get(id.0 as usize)?;
        Some((&entry.key, &entry.value, entry.status))
    }

    /// Every recorded action with its status, in completion order.
    pub fn iter(&self) -> impl Iterator<Item = (CompensationId, &K, &T, CompensationStatus)> + '_ {
        self.entries
            .iter()
            .enumerate()
            .map(|(i, e)| (CompensationId(i as u32), &e.key, &e.value, e.status))
    }

    /// Whether the saga's parts agree (what it keeps by construction): for
    /// a saga read from outside before it is trusted.
    #[cfg(feature = "workflow")]
    pub(crate) fn is_consistent(&self) -> bool {
        let Some(remaining) = self.remaining else {
            return self.in_progress.is_none()
                && self.undone.is_empty()
                && self.blocked.is_empty()
                && self
                    .entries
                    .iter()
                    .all(|e| e.status == CompensationStatus::Waiting);
        };
        if remaining as usize > self.entries.len()
            || self.in_progress.is_some_and(|i| i != remaining)
        {
            return false;
        }
        let mut listed = vec![false; self.entries.len()];
        for (index, failure) in &self.undone {
            let Some(entry) = self.entries.get(*index as usize) else {
                return false;
            };
            let status_ok = match failure {
                Some(_) => entry.status == CompensationStatus::Failed,
                None => entry.status == CompensationStatus::Blocked,
            };
            if !status_ok || std::mem::replace(&mut listed[*index as usize], true) {
                return false;
            }
        }
        self.entries.iter().enumerate().all(|(i, e)| {
            let waiting = (i as u32) < remaining;
            match e.status {
                CompensationStatus::Waiting => waiting,
                CompensationStatus::InProgress => self.in_progress == Some(i as u32),
                CompensationStatus::Compensated => !waiting,
                CompensationStatus::Failed | CompensationStatus::Blocked => !waiting && listed[i],
            }
        })
    }

    /// Whether both sagas declare the same dependencies.
    #[cfg(feature = "workflow")]
    pub(crate) fn same_dependencies(&self, other: &Self) -> bool {
        self.depends == other.depends
    }

    /// The keys `key` depends on, as declared.
    pub fn depends_on(&self, key: &K) -> &[K] {
        self.depends.get(key).map_or(&[], Vec::as_slice)
    }
}

#[cfg(test)]
mod tests;
