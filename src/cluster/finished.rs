//! [`Finished`]: what an agent reports when it finishes an attempt.

use crate::scheduler::{AttemptOutcome, TaskReport};
use crate::{AgentId, AttemptToken, TaskId};

use super::contract::Message;

/// What an agent sends when it finishes an attempt: a report, and with a
/// success, possibly an output. Built only by the constructors, so an
/// output never rides on a failure.
#[derive(Clone, Debug, PartialEq)]
pub struct Finished<P> {
    report: TaskReport,
    output: Option<P>,
}

impl<P> Finished<P> {
    /// A report with no output.
    pub fn report(report: TaskReport) -> Self {
        Finished {
            report,
            output: None,
        }
    }

    /// A success of `agent`'s attempt `token` on `task`, with its output.
    pub fn completed(task: TaskId, agent: AgentId, token: AttemptToken, output: P) -> Self {
        Finished {
            report: TaskReport {
                task,
                agent,
                token,
                outcome: AttemptOutcome::Success,
            },
            output: Some(output),
        }
    }

    /// The report.
    pub fn task_report(&self) -> &TaskReport {
        &self.report
    }

    /// The output, with a success that has one.
    pub fn output(&self) -> Option<&P> {
        self.output.as_ref()
    }

    /// The inbox message it posts.
    pub fn into_message(self) -> Message<P> {
        match self.output {
            None => Message::Report(self.report),
            Some(output) => Message::Completed {
                task: self.report.task,
                token: self.report.token,
                output,
            },
        }
    }
}
