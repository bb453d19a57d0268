//! Dead-letter redrive: requeueing dead-lettered tasks, one or in bulk by a
//! filter, each keeping the history of its earlier letters.

use super::super::task::TaskSpec;
use super::super::{DeadLetter, DeadLetterFilter, SchedulerError, SubmitError, SubmitErrorKind};
use super::{Dispatcher, Submitted};
use crate::routing::RoutingStrategy;
use crate::{Instant, TaskId};

/// What [`Dispatcher::redrive_dead_letters`] did with each matching letter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[must_use = "refused letters stay in the dead-letter queue; the host should know which"]
pub struct Redriven {
    /// `(dead-lettered task, new task)` for every letter requeued, oldest
    /// letter first.
    pub requeued: Vec<(TaskId, TaskId)>,
    /// Letters the queue refused (full, for one) or that may not be
    /// redriven ([`TaskSpec::no_redrive`]), with why; they stay in the
    /// dead-letter queue.
    pub refused: Vec<(TaskId, SubmitErrorKind)>,
}

impl<P, S: RoutingStrategy> Dispatcher<P, S> {
    /// The work of [`requeue_dead_letter`](Self::requeue_dead_letter), whose docs say what it does.
    pub(super) fn requeue_letter(
        &mut self,
        task: TaskId,
        now: Instant,
    ) -> Result<Submitted, SchedulerError> {
        if (self.state.dead_letters.get(task)).is_some_and(DeadLetter::held) {
            return Err(SchedulerError::Submit(SubmitErrorKind::NotRedrivable));
        }
        let letter = self
            .state
            .dead_letters
            .take(task)
            .ok_or(SchedulerError::NoDeadLetter(task))?;
        let now = self.tick(now);
        let result = self.resubmit(letter, now);
        self.dispatch(now);
        result.map(Submitted::New).map_err(SchedulerError::Submit)
    }

    /// The work of [`redrive_dead_letters`](Self::redrive_dead_letters), whose docs say what it does.
    pub(super) fn redrive_matching(&mut self, filter: &DeadLetterFilter, now: Instant) -> Redriven {
        let now = self.tick(now);
        let mut redriven = Redriven::default();
        // Letters whose submitter retries them stay where they are.
        let letters = self.state.dead_letters.purge(|letter| {
            if !filter.matches(letter) {
                return false;
            }
            if letter.held() {
                (redriven.refused).push((letter.task, SubmitErrorKind::NotRedrivable));
                return false;
            }
            true
        });
        for letter in letters {
            let task = letter.task;
            match self.resubmit(letter, now) {
                Ok(new) => redriven.requeued.push((task, new)),
                Err(kind) => redriven.refused.push((task, kind)),
            }
        }
        self.dispatch(now);
        redriven
    }

    /// Admits a letter's task again and files it; a refused letter goes
    /// back to the dead-letter queue.
    pub(super) fn resubmit(
        &mut self,
        letter: DeadLetter<P>,
        now: Instant,
    ) -> Result<TaskId, SubmitErrorKind> {
        let history = letter.history_with_self();
        let DeadLetter {
            task,
            spec,
            reason,
            attempts,
            at,
            history: earlier,
        } = letter;
        let spec = TaskSpec {
            deadline: None,
            ..spec
        };
        match self.enqueue(spec, now) {
            Ok(submitted) => {
                let id = submitted.id();
                if let Some(t) = self.state.tasks.get_mut(id) {
                    t.extras_mut().history = history;
                }
                Ok(id)
            }
            Err(SubmitError { kind, spec }) => {
                self.state.dead_letters.push(DeadLetter {
                    task,
                    spec: *spec,
                    reason,
                    attempts,
                    at,
                    history: earlier,
                });
                Err(kind)
            }
        }
    }
}
