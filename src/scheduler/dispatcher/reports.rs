//! Reports: how an agent's report on an attempt is checked, and taken —
//! the attempt closed, then the task finished or its failure handled.

use std::time::Duration;

use super::super::state::Task;
use super::super::task::{AttemptOutcome, TaskReport, TaskState, Terminal};
use super::super::{Event, ReportError};
use super::Dispatcher;
use super::attempts::Attempt;
use crate::agent::Outcome;
use crate::routing::RoutingStrategy;
use crate::{AgentId, AttemptToken, Instant, Priority, TaskId};

impl<P, S: RoutingStrategy> Dispatcher<P, S> {
    /// The work of [`report`](Self::report), whose docs say what it does.
    #[inline(always)]
    pub(super) fn report_attempt(
        &mut self,
        report: TaskReport,
        now: Instant,
    ) -> Result<(), ReportError> {
        let TaskReport {
            task,
            agent,
            token,
            outcome,
        } = report;
        match outcome {
            AttemptOutcome::Success => match self.plain {
                true => self.report_success::<true>(task, agent, token, now),
                false => self.report_success::<false>(task, agent, token, now),
            },
            AttemptOutcome::Failure { reason, retryable } => {
                self.report_failure(task, agent, token, (reason, retryable), now)
            }
        }
    }

    /// [`report`](Self::report) of a success. (`PLAIN`: see the `plain`
    /// module.)
    #[inline(never)]
    fn report_success<const PLAIN: bool>(
        &mut self,
        task: TaskId,
        agent: AgentId,
        token: AttemptToken,
        now: Instant,
    ) -> Result<(), ReportError> {
        let (now, ran, priority) = self.close_reported::<PLAIN>(task, agent, token, true, now)?;
        // On both paths, as in `file`.
        if !self.watches.is_empty() {
            self.scale_completion(task, ran, now);
        }
        self.finish_dropping(task, Terminal::Completed);
        self.emit_timed::<PLAIN>(
            |metrics| metrics.completed(priority, ran, now),
            || Event::Completed {
                task,
                agent,
                priority,
                ran: Duration::from_nanos(ran),
            },
        );
        self.dispatch(now);
        Ok(())
    }

    /// [`report`](Self::report) of a failure, with its reason and whether
    /// it is retryable.
    #[inline(never)]
    fn report_failure(
        &mut self,
        task: TaskId,
        agent: AgentId,
        token: AttemptToken,
        (reason, retryable): (String, bool),
        now: Instant,
    ) -> Result<(), ReportError> {
        let (now, ..) = self.close_reported::<false>(task, agent, token, false, now)?;
        self.emit(
            Event::Failed {
                task,
                agent,
                retryable,
            },
            now,
        );
        self.attempt_failed(task, agent, reason, retryable, now);
        self.dispatch(now);
        Ok(())
    }

    /// Checks a report and closes its attempt: the clock, how long the
    /// attempt ran (nanoseconds) and the task's priority. A refused report
    /// only counts as rejected.
    #[inline(always)]
    fn close_reported<const PLAIN: bool>(
        &mut self,
        task: TaskId,
        agent: AgentId,
        token: AttemptToken,
        success: bool,
        now: Instant,
    ) -> Result<(Instant, u64, Priority), ReportError> {
        // One lookup of the task: the attempt's parts are taken where the
        // report is checked.
        let (attempt, assigned_at, priority) = match self.claim_attempt(task, agent, token) {
            Ok(claimed) => claimed,
            Err(error) => {
                self.emit(Event::ReportRejected { task, agent }, self.state.clock);
                return Err(error);
            }
        };
        let now = self.tick(now);
        let ran = now.as_nanos().saturating_sub(assigned_at.as_nanos());
        let latency = Duration::from_nanos(ran);
        self.close_claimed::<PLAIN>(
            task,
            agent,
            attempt,
            Some(Outcome { success, latency }),
            now,
        );
        Ok((now, ran, priority))
    }

    /// Why `report` refuses a report on `task` from `agent` with `token`,
    /// for a report that does not come from the holder of the current
    /// attempt.
    #[cold]
    #[inline(never)]
    pub(super) fn report_error(
        &self,
        task: TaskId,
        agent: AgentId,
        token: AttemptToken,
    ) -> ReportError {
        let Some(entry) = self.state.tasks.get(task) else {
            return match self.state.tasks.record(task) {
                Some(&state) => ReportError::NotInFlight {
                    task,
                    state: state.into(),
                },
                None => ReportError::UnknownTask(task),
            };
        };
        match entry.state {
            TaskState::InFlight { token: current, .. } if token != current => {
                ReportError::StaleToken { task, token }
            }
            TaskState::InFlight { .. } => ReportError::WrongAgent { task, agent },
            state => ReportError::NotInFlight { task, state },
        }
    }

    /// The parts of `task`'s current attempt, taken (its probe permit passes
    /// to the caller), with when it started and the task's priority, if
    /// `agent` holds it with `token`.
    #[inline]
    fn claim_attempt(
        &mut self,
        task: TaskId,
        agent: AgentId,
        token: AttemptToken,
    ) -> Result<(Attempt, Instant, Priority), ReportError> {
        match self.state.tasks.get_mut(task) {
            Some(t) if holds(t, agent, token) => Ok((Attempt::take(t), t.assigned_at, t.priority)),
            _ => Err(self.report_error(task, agent, token)),
        }
    }
}

/// Whether `agent` holds `t`'s current attempt, with `token`.
#[inline(always)]
pub(super) fn holds<P>(t: &Task<P>, agent: AgentId, token: AttemptToken) -> bool {
    matches!(t.state, TaskState::InFlight { agent: holder, token: current, .. }
        if holder == agent && current == token)
}
