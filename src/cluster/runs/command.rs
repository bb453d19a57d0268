//! What a client asks of the hosted runs, and how a run ended as a
//! commit publishes it.

use super::ScheduleCommand;
use crate::workflow::{RunOutcome, WorkflowDef};
use crate::{TenantId, WorkflowId};

/// What a client asks of the cluster's hosted runs
/// ([`Message::Run`](crate::cluster::Message::Run)).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum RunCommand<P> {
    /// Registers a version of a workflow. The same definition again
    /// changes nothing; another one under a registered name and version
    /// is refused.
    Register(Box<WorkflowDef>),
    /// Starts a run of `workflow` at `version` (the highest registered
    /// when `None`). A start with the `id` of a run that is active, or
    /// finished within the retention, starts nothing and names that run.
    Start {
        /// The workflow's name.
        workflow: String,
        /// The version, or the highest registered.
        version: Option<u32>,
        /// The run's id, an idempotency key; the leader picks a fresh one
        /// when `None`.
        id: Option<WorkflowId>,
        /// The run's input.
        input: Option<P>,
    },
    /// Sends a signal to a run's waiting steps.
    Signal {
        /// The run.
        run: WorkflowId,
        /// The signal's name.
        name: String,
        /// What it carries.
        payload: Option<P>,
    },
    /// Cancels a run: it compensates what it completed, then ends.
    Cancel(WorkflowId),
    /// Adds, pauses, resumes, triggers or removes a schedule that starts
    /// runs.
    Schedule(ScheduleCommand<P>),
}

/// How a hosted run ended, as a commit publishes it
/// ([`Outputs::runs`](crate::cluster::Outputs::runs)).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunEnd<P> {
    /// The run.
    pub run: WorkflowId,
    /// How it ended.
    pub outcome: RunOutcome,
    /// Its output.
    pub output: Option<P>,
    /// The tenant whose client started it: its end is that tenant's to
    /// read alone. `None` for a run of no tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<TenantId>,
}
