//! The dead-letter queue: every task that ended in failure, with its reason.

use std::collections::VecDeque;

use super::task::{DeadLetterReason, TaskSpec};
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
