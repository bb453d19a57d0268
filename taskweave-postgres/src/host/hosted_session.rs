//! [`HostedSession`]: what the blocking and the async agent share, the
//! session's state machine and its metrics, with no connection in it.

use std::time::Duration;

use taskweave::cluster::{AgentSession, Assignment};
use taskweave::scheduler::AttemptOutcome;
use taskweave::{AttemptToken, TaskId};

use super::log_line::session_level;
use super::{LogLine, until};
use crate::metrics::AgentMetrics;

/// An agent session as a host drives it: [`PgAgent`](crate::PgAgent)
/// and [`AsyncPgAgent`](crate::AsyncPgAgent) run its operations on their
/// connections and hand everything else here.
#[derive(Debug)]
pub(super) struct HostedSession<P> {
    pub(super) session: AgentSession<P>,
    pub(super) metrics: Option<AgentMetrics>,
    /// The connection's reconnections when last looked at.
    reconnections: u64,
}

impl<P> HostedSession<P> {
    pub(super) fn new(session: AgentSession<P>) -> Self {
        HostedSession {
            session,
            metrics: None,
            reconnections: 0,
        }
    }
}

impl<P: Clone> HostedSession<P> {
    /// After the operations due ran: notices that came meanwhile (a
    /// connection buffers them until read) or, after a reconnection, any
    /// that may have been lost have the next step claim at once. `log`
    /// hears every event; answers the work newly claimed.
    pub(super) fn after_ops(
        &mut self,
        noticed: bool,
        reconnections: u64,
        statements: u64,
        log: &mut dyn FnMut(LogLine<'_>),
    ) -> Vec<Assignment<P>> {
        if noticed || reconnections != self.reconnections {
            self.reconnections = reconnections;
            self.session.work_published();
        }
        while let Some(event) = self.session.poll_event() {
            log(LogLine {
                level: session_level(&event),
                text: &event.to_string(),
            });
        }
        let work: Vec<_> = std::iter::from_fn(|| self.session.poll_work()).collect();
        if let Some(metrics) = &self.metrics {
            metrics.claimed(work.len(), self.session.held());
            metrics.sent(statements);
        }
        work
    }

    /// How long a host may sleep before the session has something to do,
    /// at most `cap`.
    pub(super) fn pause(&self, cap: Duration) -> Duration {
        self.session.poll_timeout().map_or(cap, |at| until(at, cap))
    }

    /// The attempts the cluster took back since the last call.
    pub(super) fn cancelled(&mut self) -> Vec<(TaskId, AttemptToken)> {
        let taken: Vec<_> = std::iter::from_fn(|| self.session.poll_cancelled()).collect();
        if let Some(metrics) = self.metrics.as_ref().filter(|_| !taken.is_empty()) {
            metrics.taken_back(taken.len(), self.session.held());
        }
        taken
    }

    /// The result of an attempt handed out; `false` for one not held.
    pub(super) fn finish(
        &mut self,
        task: TaskId,
        token: AttemptToken,
        outcome: AttemptOutcome,
    ) -> bool {
        let succeeded = matches!(outcome, AttemptOutcome::Success);
        let held = self.session.finish(task, token, outcome);
        if let (Some(metrics), true) = (&self.metrics, held) {
            metrics.reported(succeeded, self.session.held());
        }
        held
    }

    /// A success with its output; `false` for an attempt not held.
    pub(super) fn complete(&mut self, task: TaskId, token: AttemptToken, output: P) -> bool {
        let held = self.session.complete(task, token, output);
        if let (Some(metrics), true) = (&self.metrics, held) {
            metrics.reported(true, self.session.held());
        }
        held
    }
}
