//! Agent messages as dispatcher inputs.

use super::RejectReason;
use crate::agent::{AgentProfile, AgentStatus};
use crate::routing::RoutingStrategy;
use crate::scheduler::{
    ApplyError, AttemptOutcome, Dispatcher, ReportError, TaskReport, TaskState,
};
use crate::{AgentId, AttemptToken, Instant, TaskId};

/// What an agent's message asks of the dispatcher; made by
/// [`Envelope::into_inbound`](super::Envelope::into_inbound), with the agent
/// taken from the envelope's sender, and applied with
/// [`apply_to`](Self::apply_to).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Inbound<P> {
    /// [`Dispatcher::register_agent`].
    Register {
        /// The agent.
        agent: AgentId,
        /// Its profile.
        profile: AgentProfile,
    },
    /// [`Dispatcher::unregister_agent`].
    Deregister {
        /// The agent.
        agent: AgentId,
    },
    /// [`Dispatcher::heartbeat`].
    Heartbeat {
        /// The agent.
        agent: AgentId,
    },
    /// [`Dispatcher::set_agent_status`].
    Status {
        /// The agent.
        agent: AgentId,
        /// Its new status.
        status: AgentStatus,
    },
    /// The agent started the attempt. Informational: only checked against
    /// the task's current attempt.
    Accepted {
        /// The agent.
        agent: AgentId,
        /// The task.
        task: TaskId,
        /// The attempt's token.
        token: AttemptToken,
    },
    /// The agent refused the attempt: applied as a retryable failure
    /// [report](Dispatcher::report).
    Rejected {
        /// The agent.
        agent: AgentId,
        /// The task.
        task: TaskId,
        /// The attempt's token.
        token: AttemptToken,
        /// Why.
        reason: RejectReason,
    },
    /// How far the attempt has got. Informational: only checked against the
    /// task's current attempt.
    Progress {
        /// The agent.
        agent: AgentId,
        /// The task.
        task: TaskId,
        /// The attempt's token.
        token: AttemptToken,
        /// Share done, within `[0, 1]`.
        fraction: f32,
        /// Free text.
        note: Option<String>,
    },
    /// [`Dispatcher::report`], plus the output the agent sent along.
    Report {
        /// The report.
        report: TaskReport,
        /// The attempt's output, if any.
        output: Option<P>,
    },
}

/// What applying an [`Inbound`] handed back.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Handled<P> {
    /// Applied; nothing to hand back.
    Done,
    /// The agent left or went out of service; these tasks, which it held,
    /// went back to the queue (an [`Action::Cancel`](crate::scheduler::Action::Cancel)
    /// for each is pending).
    Requeued(Vec<TaskId>),
    /// A result was accepted (the task completed, or its failure was
    /// handled by the retry policy); here is the output it carried.
    Reported {
        /// The task.
        task: TaskId,
        /// The output the agent sent with the result, if any.
        output: Option<P>,
    },
}

impl<P> Inbound<P> {
    /// The agent the message came from.
    pub fn agent(&self) -> AgentId {
        match self {
            Inbound::Register { agent, .. }
            | Inbound::Deregister { agent }
            | Inbound::Heartbeat { agent }
            | Inbound::Status { agent, .. }
            | Inbound::Accepted { agent, .. }
            | Inbound::Rejected { agent, .. }
            | Inbound::Progress { agent, .. } => *agent,
            Inbound::Report { report, .. } => report.agent,
        }
    }

    /// Calls the matching dispatcher method at the host's `now`.
    ///
    /// | inbound | dispatcher call | handed back |
    /// |---|---|---|
    /// | `Register` | [`register_agent`](Dispatcher::register_agent) | `Done` |
    /// | `Deregister` | [`unregister_agent`](Dispatcher::unregister_agent) | `Requeued` |
    /// | `Heartbeat` | [`heartbeat`](Dispatcher::heartbeat) | `Done` |
    /// | `Status` | [`set_agent_status`](Dispatcher::set_agent_status) | `Requeued` |
    /// | `Report` | [`report`](Dispatcher::report) | `Reported` with the output |
    /// | `Rejected` | [`report`](Dispatcher::report) of a retryable failure naming the reason | `Done` |
    /// | `Accepted`, `Progress` | none: fencing check only | `Done` |
    ///
    /// An `Accepted` or `Progress` about an attempt that is no longer
    /// current fails exactly as a report would, so the host learns that the
    /// agent works on something stale and can tell it to stop.
    ///
    /// # Errors
    ///
    /// The dispatcher's error as an [`ApplyError`] (which `?` turns into
    /// the crate [`Error`](crate::Error)): a
    /// [`RegistryError`](crate::agent::RegistryError) (inside
    /// [`SchedulerError`](crate::scheduler::SchedulerError)) for a duplicate
    /// or unknown agent, a [`ReportError`] for a report, rejection,
    /// acceptance or progress that does not come from the holder of the
    /// task's current attempt with its token. A refused input changes
    /// nothing.
    pub fn apply_to<S: RoutingStrategy>(
        self,
        dispatcher: &mut Dispatcher<P, S>,
        now: Instant,
    ) -> Result<Handled<P>, ApplyError<P>> {
        Ok(match self {
            Inbound::Register { agent, profile } => {
                dispatcher.register_agent(agent, profile, now)?;
                Handled::Done
            }
            Inbound::Deregister { agent } => {
                Handled::Requeued(dispatcher.unregister_agent(agent, now)?)
            }
            Inbound::Heartbeat { agent } => {
                dispatcher.heartbeat(agent, now)?;
                Handled::Done
            }
            Inbound::Status { agent, status } => {
                Handled::Requeued(dispatcher.set_agent_status(agent, status, now)?)
            }
            Inbound::Accepted { agent, task, token }
            | Inbound::Progress {
                agent, task, token, ..
            } => {
                check_holder(dispatcher, task, agent, token)?;
                Handled::Done
            }
            Inbound::Rejected {
                agent,
                task,
                token,
                reason,
            } => {
                let report = TaskReport {
                    task,
                    agent,
                    token,
                    outcome: AttemptOutcome::failure(format!("rejected by {agent}: {reason}")),
                };
                dispatcher.report(report, now)?;
                Handled::Done
            }
            Inbound::Report { report, output } => {
                let task = report.task;
                dispatcher.report(report, now)?;
                Handled::Reported { task, output }
            }
        })
    }
}

/// The check [`Dispatcher::report`] makes, without reporting anything.
fn check_holder<P, S: RoutingStrategy>(
    dispatcher: &Dispatcher<P, S>,
    task: TaskId,
    agent: AgentId,
    token: AttemptToken,
) -> Result<(), ReportError> {
    match dispatcher.task_state(task) {
        None => Err(ReportError::UnknownTask(task)),
        Some(TaskState::InFlight {
            agent: holder,
            token: current,
            ..
        }) => {
            if token != current {
                Err(ReportError::StaleToken { task, token })
            } else if agent != holder {
                Err(ReportError::WrongAgent { task, agent })
            } else {
                Ok(())
            }
        }
        Some(state) => Err(ReportError::NotInFlight { task, state }),
    }
}
