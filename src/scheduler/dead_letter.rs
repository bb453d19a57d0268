//! The dead-letter queue: every task that ended in failure, with its reason.

use std::collections::VecDeque;

use super::task::{DeadLetterCause, DeadLetterReason, TaskSpec, UnknownCause};
use crate::{Instant, TaskId};

/// One dead-lettered task: its spec (payload included, so it can be
/// requeued), why it failed and when.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct DeadLetter<P> {
    /// The task's id.
    pub task: TaskId,
    /// The task as submitted.
    pub spec: TaskSpec<P>,
    /// Why it failed.
    pub reason: DeadLetterReason,
    /// Attempts made.
    pub attempts: u32,
    /// When it was dead-lettered.
    pub at: Instant,
    /// Earlier letters of the same work, oldest first: a task requeued
    /// from the dead-letter queue keeps its history, and a letter it
    /// earns again carries it (at most [`MAX_HISTORY`] entries, the
    /// oldest dropped first).
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Vec::is_empty")
    )]
    pub history: Vec<PriorLetter>,
}

/// Most earlier letters a [`DeadLetter`] keeps in its history.
pub const MAX_HISTORY: usize = 16;

/// An earlier dead letter of a requeued task: why and when it failed then.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PriorLetter {
    /// The task's id then.
    pub task: TaskId,
    /// Why it failed.
    pub reason: DeadLetterReason,
    /// Attempts made.
    pub attempts: u32,
    /// When it was dead-lettered.
    pub at: Instant,
}

impl<P> DeadLetter<P> {
    /// Whether its task was marked [`no_redrive`](super::TaskSpec::no_redrive):
    /// its submitter retries that work, no redrive requeues the letter.
    pub(crate) fn held(&self) -> bool {
        self.spec.options().no_redrive
    }

    /// The history a task requeued from this letter carries: this letter's
    /// history and the letter itself, at most [`MAX_HISTORY`] entries.
    pub fn history_with_self(&self) -> Vec<PriorLetter> {
        let skip = (self.history.len() + 1).saturating_sub(MAX_HISTORY);
        let mut history: Vec<PriorLetter> = self.history.iter().skip(skip).cloned().collect();
        history.push(PriorLetter {
            task: self.task,
            reason: self.reason.clone(),
            attempts: self.attempts,
            at: self.at,
        });
        history
    }
}

/// Which dead letters to redrive
/// ([`Dispatcher::redrive_dead_letters`](super::Dispatcher::redrive_dead_letters)):
/// every condition set must hold; the empty filter matches every letter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct DeadLetterFilter {
    kind: Option<String>,
    cause: Option<DeadLetterCause>,
    key: Option<String>,
}

impl DeadLetterFilter {
    /// Matches every letter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only tasks of this kind ([`TaskRequirements::kind`](crate::TaskRequirements::kind)).
    pub fn kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = Some(kind.into());
        self
    }

    /// Only letters with this cause.
    pub fn cause(mut self, cause: DeadLetterCause) -> Self {
        self.cause = Some(cause);
        self
    }

    /// Only tasks whose fair-share key or one of whose concurrency keys is
    /// `key`.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// The filter an operator types: each condition given as a word, or
    /// left out (a cause reads as [`DeadLetterCause`] prints).
    ///
    /// ```
    /// use taskweave::scheduler::{DeadLetterCause, DeadLetterFilter};
    ///
    /// let typed = DeadLetterFilter::from_words(Some("gpu"), Some("expired"), None)?;
    /// assert_eq!(typed, DeadLetterFilter::new().kind("gpu").cause(DeadLetterCause::Expired));
    /// assert!(DeadLetterFilter::from_words(None, Some("lost"), None).is_err());
    /// # Ok::<(), taskweave::scheduler::UnknownCause>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`UnknownCause`] for a cause that names none.
    pub fn from_words(
        kind: Option<&str>,
        cause: Option<&str>,
        key: Option<&str>,
    ) -> Result<Self, UnknownCause> {
        Ok(DeadLetterFilter {
            kind: kind.map(str::to_owned),
            cause: cause.map(str::parse).transpose()?,
            key: key.map(str::to_owned),
        })
    }

    /// Whether `letter` matches.
    pub fn matches<P>(&self, letter: &DeadLetter<P>) -> bool {
        let spec = &letter.spec;
        let kind_ok = self
            .kind
            .as_deref()
            .is_none_or(|kind| spec.requirements.task_kind() == Some(kind));
        let cause_ok = self.cause.is_none_or(|c| letter.reason.cause() == c);
        let key_ok = self.key.as_deref().is_none_or(|key| {
            let options = spec.options();
            options.fairness.as_ref().is_some_and(|f| f.key == key)
                || options.concurrency_keys.iter().any(|k| k == key)
        });
        kind_ok && cause_ok && key_ok
    }
}

/// FIFO of [`DeadLetter`]s, oldest first.
///
/// Letters hold their payloads so nothing is lost; they stay until the host
/// takes, requeues or purges them, so a host should purge what it has
/// handled.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct DeadLetterQueue<P> {
    letters: VecDeque<DeadLetter<P>>,
}

impl<P> Default for DeadLetterQueue<P> {
    fn default() -> Self {
        DeadLetterQueue {
            letters: VecDeque::new(),
        }
    }
}

impl<P> DeadLetterQueue<P> {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a letter at the back.
    pub fn push(&mut self, letter: DeadLetter<P>) {
        self.letters.push_back(letter);
    }

    /// The letters, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &DeadLetter<P>> {
        self.letters.iter()
    }

    /// The letter of `task`, if held.
    pub fn get(&self, task: TaskId) -> Option<&DeadLetter<P>> {
        self.letters.iter().find(|l| l.task == task)
    }

    /// Removes and returns the letter of `task`.
    pub fn take(&mut self, task: TaskId) -> Option<DeadLetter<P>> {
        let at = self.letters.iter().position(|l| l.task == task)?;
        self.letters.remove(at)
    }

    /// Removes and returns every letter matching `filter`, oldest first.
    pub fn purge(&mut self, mut filter: impl FnMut(&DeadLetter<P>) -> bool) -> Vec<DeadLetter<P>> {
        let (purged, kept): (Vec<_>, Vec<_>) = self.letters.drain(..).partition(|l| filter(l));
        self.letters = kept.into();
        purged
    }

    /// Number of letters held.
    pub fn len(&self) -> usize {
        self.letters.len()
    }

    /// Whether the queue is empty.
    pub fn is_empty(&self) -> bool {
        self.letters.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(n: u64) -> DeadLetter<u64> {
        DeadLetter {
            task: TaskId::new(n),
            spec: TaskSpec::new(n),
            reason: DeadLetterReason::NonRetryable {
                reason: "bad input".into(),
            },
            attempts: 1,
            at: Instant::ZERO,
            history: Vec::new(),
        }
    }

    #[test]
    fn take_and_purge() {
        let mut dlq = DeadLetterQueue::new();
        for n in 1..=5 {
            dlq.push(letter(n));
        }
        assert_eq!(dlq.take(TaskId::new(3)).map(|l| l.spec.payload), Some(3));
        assert!(dlq.get(TaskId::new(3)).is_none());
        let even = dlq.purge(|l| l.task.get() % 2 == 0);
        assert_eq!(even.len(), 2);
        assert_eq!(dlq.iter().map(|l| l.task.get()).collect::<Vec<_>>(), [1, 5]);
        assert_eq!(dlq.len(), 2);
    }
}
