//! [`DriverError`]: why the driver could not start or finish a run.

use thiserror::Error;

use crate::scheduler::SchedulerError;
use crate::workflow::{EngineError, RunError};

/// Why a [`Driver`](super::Driver) could not be built or could not drive a
/// run to its end.
///
/// The configuration errors (`UnregisteredStep`, `MissingExpander`,
/// `UnboundedWait`) are found by [`Driver::check`](super::Driver::check)
/// before [`Driver::run`](super::Driver::run) hands out any work, so a run
/// refused for them is left untouched.
#[derive(Clone, Debug, PartialEq, Error)]
#[non_exhaustive]
pub enum DriverError {
    /// A pool needs at least one worker thread.
    #[error("a driver needs at least one worker thread")]
    NoThreads,
    /// The operating system refused to start a worker thread.
    #[error("could not start a worker thread: {0}")]
    Spawn(String),
    /// A local or agent step with no step registered under its id, and no
    /// default step.
    #[error("workflow `{workflow}`: no step is registered for `{step}` and there is no default")]
    UnregisteredStep {
        /// The definition's name.
        workflow: String,
        /// The step's id.
        step: String,
    },
    /// A multi-instance step with no expander registered under its id.
    #[error("workflow `{workflow}`: multi-instance step `{step}` has no expander")]
    MissingExpander {
        /// The definition's name.
        workflow: String,
        /// The step's id.
        step: String,
    },
    /// A wait step without a timeout: the driver delivers no signals, so
    /// nothing could end it.
    #[error(
        "workflow `{workflow}`: wait step `{step}` has no timeout and the driver sends no signals"
    )]
    UnboundedWait {
        /// The definition's name.
        workflow: String,
        /// The step's id.
        step: String,
    },
    /// The run refused an input the driver had to give it (items from an
    /// expander, for instance).
    #[error(transparent)]
    Run(#[from] RunError),
    /// The engine refused an input the driver had to give it.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The run has not finished, yet nothing is running and no timer is
    /// set: some of its actions were taken before it was handed to the
    /// driver. The run is left as it is.
    #[error("the run is stalled: nothing is running and no timer is set")]
    Stalled,
    /// The worker pool has stopped.
    #[error("the worker pool has stopped")]
    PoolStopped,
    /// The dispatcher refused an agent of an
    /// [`AgentRunner`](super::AgentRunner).
    #[error(transparent)]
    Scheduler(#[from] SchedulerError),
    /// Live tasks remain, yet nothing is running and no timer is set: no
    /// agent could ever take them.
    #[error("{live} tasks are stalled: nothing is running and no timer is set")]
    TasksStalled {
        /// The dispatcher's live tasks.
        live: usize,
    },
}
