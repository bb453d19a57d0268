//! [`TaskPool`]: what the [`WorkflowEngine`](super::WorkflowEngine) needs
//! from the host's dispatcher.

use super::StepTask;
use crate::routing::RoutingStrategy;
use crate::scheduler::{Dispatcher, ReportError, TaskReport, TaskSpec, TaskState};
use crate::{AgentId, AttemptToken, Instant, Priority, TaskId, TaskRequirements};

/// The few things a [`WorkflowEngine`](super::WorkflowEngine) asks of the
/// task pool the host owns: submit a step as a task, cancel it, and take
/// the agent's report on it. The host keeps everything else — agents,
/// heartbeats, the pool's timers, its retry policy — and its own plain
/// tasks on the same pool.
///
/// Implemented for [`Dispatcher<T, S>`] whenever the host's payload `T`
/// can carry a step (`T: From<StepTask>`): [`StepTask`] itself, or an enum
/// of the host's with a variant for steps.
///
/// ```
/// use taskweave::scheduler::{Dispatcher, DispatcherConfig};
/// use taskweave::workflow::{StepTask, TaskPool};
///
/// /// The host's payload: its own jobs, and workflow steps.
/// #[derive(Debug)]
/// enum Job {
///     Backup(String),
///     Step(StepTask),
/// }
///
/// impl From<StepTask> for Job {
///     fn from(step: StepTask) -> Self {
///         Job::Step(step)
///     }
/// }
///
/// fn is_pool(_: &impl TaskPool) {}
/// is_pool(&Dispatcher::<Job>::new(DispatcherConfig::default()));
/// ```
pub trait TaskPool {
    /// Submits `step` as a task; returns its id, or why the pool refused
    /// it.
    ///
    /// # Errors
    ///
    /// The refusal, as text (it becomes the reason of a failed attempt).
    fn submit_step(
        &mut self,
        step: StepTask,
        priority: Priority,
        requirements: TaskRequirements,
        now: Instant,
    ) -> Result<TaskId, String>;

    /// Cancels `task`; returns the agent and token of the attempt that was
    /// in flight, if one was (the pool then also hands out an action
    /// cancelling it, which the engine swallows).
    fn cancel_task(&mut self, task: TaskId, now: Instant) -> Option<(AgentId, AttemptToken)>;

    /// Whether `task` has an attempt in flight. The engine cancels a
    /// batch of steps queued ones first, so a slot freed by a cancelled
    /// attempt is never handed to a step about to be cancelled. Default:
    /// `false` (the batch is then cancelled in the run's order).
    fn is_running(&self, task: TaskId) -> bool {
        let _ = task;
        false
    }

    /// Checks, without changing anything, that a report on `task` from
    /// `agent` with `token` would be accepted.
    ///
    /// # Errors
    ///
    /// Why it would not.
    fn verify_report(
        &self,
        task: TaskId,
        agent: AgentId,
        token: AttemptToken,
    ) -> Result<(), ReportError>;

    /// Takes a report. The engine calls it only after
    /// [`verify_report`](Self::verify_report) accepted the same task, agent
    /// and token, and after the run took the result: it must then
    /// succeed, or the engine's run and the pool disagree about the
    /// attempt.
    ///
    /// # Errors
    ///
    /// Why it was refused.
    fn report(&mut self, report: TaskReport, now: Instant) -> Result<(), ReportError>;

    /// Removes what the pool kept of a task it gave up on (its dead
    /// letter): why, and when. `None` if it keeps nothing.
    fn take_given_up(&mut self, task: TaskId) -> Option<(String, Instant)>;
}

impl<T: From<StepTask>, S: RoutingStrategy> TaskPool for Dispatcher<T, S> {
    fn submit_step(
        &mut self,
        step: StepTask,
        priority: Priority,
        requirements: TaskRequirements,
        now: Instant,
    ) -> Result<TaskId, String> {
        submit_to(self, T::from(step), priority, requirements, now)
    }

    fn cancel_task(&mut self, task: TaskId, now: Instant) -> Option<(AgentId, AttemptToken)> {
        cancel_in(self, task, now)
    }

    fn is_running(&self, task: TaskId) -> bool {
        running_in(self, task)
    }

    fn verify_report(
        &self,
        task: TaskId,
        agent: AgentId,
        token: AttemptToken,
    ) -> Result<(), ReportError> {
        Dispatcher::verify_report(self, task, agent, token)
    }

    fn report(&mut self, report: TaskReport, now: Instant) -> Result<(), ReportError> {
        Dispatcher::report(self, report, now)
    }

    fn take_given_up(&mut self, task: TaskId) -> Option<(String, Instant)> {
        given_up_in(self, task)
    }
}

/// [`TaskPool::submit_step`] on a dispatcher, with the step's payload.
pub(crate) fn submit_to<T, S: RoutingStrategy>(
    dispatcher: &mut Dispatcher<T, S>,
    payload: T,
    priority: Priority,
    requirements: TaskRequirements,
    now: Instant,
) -> Result<TaskId, String> {
    let spec = TaskSpec::new(payload)
        .priority(priority)
        .requirements(requirements);
    match dispatcher.submit(spec, now) {
        Ok(submitted) => Ok(submitted.id()),
        Err(refused) => Err(refused.kind.to_string()),
    }
}

/// [`TaskPool::cancel_task`] on a dispatcher.
pub(crate) fn cancel_in<T, S: RoutingStrategy>(
    dispatcher: &mut Dispatcher<T, S>,
    task: TaskId,
    now: Instant,
) -> Option<(AgentId, AttemptToken)> {
    let in_flight = match dispatcher.task_state(task) {
        Some(TaskState::InFlight { agent, token, .. }) => Some((agent, token)),
        _ => None,
    };
    dispatcher.cancel(task, now).ok().and(in_flight)
}

/// [`TaskPool::is_running`] on a dispatcher.
pub(crate) fn running_in<T, S: RoutingStrategy>(
    dispatcher: &Dispatcher<T, S>,
    task: TaskId,
) -> bool {
    matches!(
        dispatcher.task_state(task),
        Some(TaskState::InFlight { .. })
    )
}

/// [`TaskPool::take_given_up`] on a dispatcher: its dead letter.
pub(crate) fn given_up_in<T, S: RoutingStrategy>(
    dispatcher: &mut Dispatcher<T, S>,
    task: TaskId,
) -> Option<(String, Instant)> {
    dispatcher
        .take_dead_letter(task)
        .map(|letter| (format!("{:?}", letter.reason), letter.at))
}
