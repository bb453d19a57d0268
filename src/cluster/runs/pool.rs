//! [`HostPool`]: the replica's dispatcher lent to the hosted runs' engine
//! as its task pool.

use crate::scheduler::{Dispatcher, ReportError, TaskReport};
use crate::workflow::pool::{cancel_in, given_up_in, running_in, submit_to};
use crate::workflow::{StepTask, TaskPool};
use crate::{AgentId, AttemptToken, Instant, Priority, TaskId, TaskRequirements};

/// The dispatcher as the engine's pool. A step task is submitted with
/// the `blank` payload and listed in `submitted`; the caller writes its
/// real payload in before any action about it is published.
pub(super) struct HostPool<'a, P> {
    pub(super) dispatcher: &'a mut Dispatcher<P>,
    pub(super) blank: &'a P,
    pub(super) submitted: &'a mut Vec<(TaskId, StepTask)>,
}

impl<P: Clone> TaskPool for HostPool<'_, P> {
    fn submit_step(
        &mut self,
        step: StepTask,
        priority: Priority,
        requirements: TaskRequirements,
        now: Instant,
    ) -> Result<TaskId, String> {
        let payload = self.blank.clone();
        let task = submit_to(self.dispatcher, payload, priority, requirements, now)?;
        self.submitted.push((task, step));
        Ok(task)
    }

    fn cancel_task(&mut self, task: TaskId, now: Instant) -> Option<(AgentId, AttemptToken)> {
        cancel_in(self.dispatcher, task, now)
    }

    fn is_running(&self, task: TaskId) -> bool {
        running_in(self.dispatcher, task)
    }

    fn verify_report(
        &self,
        task: TaskId,
        agent: AgentId,
        token: AttemptToken,
    ) -> Result<(), ReportError> {
        self.dispatcher.verify_report(task, agent, token)
    }

    fn report(&mut self, report: TaskReport, now: Instant) -> Result<(), ReportError> {
        self.dispatcher.report(report, now)
    }

    fn take_given_up(&mut self, task: TaskId) -> Option<(String, Instant)> {
        given_up_in(self.dispatcher, task)
    }
}
