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
    /// Letters the queue refused (full, for one), with why; they stay in
    /// the dead-letter queue.
    pub refused: Vec<(TaskId, SubmitErrorKind)>,
}

impl<P, S: RoutingStrategy> Dispatcher<P, S> {
    /// Submits a dead-lettered task again, as a new task (manual override)
    /// without its deadline, keeping the letter as history.
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
        let now = self.tick(now);
        let result = self.resubmit(letter, now);
        self.dispatch(now);
        result.map(Submitted::New).map_err(SchedulerError::Submit)
    }

    /// Requeues every dead letter `filter` matches, oldest first, as new
    /// tasks without their deadlines, each keeping its letters as history
    /// ([`DeadLetter::history`]), and dispatches once at the end. Letters
    /// the queue refuses stay where they were. `O(letters)`.
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
        let now = self.tick(now);
        let letters = self
            .state
            .dead_letters
            .purge(|letter| filter.matches(letter));
        let mut redriven = Redriven::default();
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
    fn resubmit(&mut self, letter: DeadLetter<P>, now: Instant) -> Result<TaskId, SubmitErrorKind> {
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
