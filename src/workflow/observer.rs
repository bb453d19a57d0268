//! Lifecycle events of workflow runs, for an
//! [`Observer<WorkflowEvent>`](crate::Observer).

use super::FailureCause;
use crate::{Instant, StepId, WorkflowId};

/// One lifecycle event of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorkflowEvent {
    /// The run started.
    RunStarted {
        /// The run.
        run: WorkflowId,
    },
    /// Every step completed or was skipped.
    RunCompleted {
        /// The run.
        run: WorkflowId,
    },
    /// The run failed; compensation (if any) follows.
    RunFailed {
        /// The run.
        run: WorkflowId,
        /// Why.
        cause: FailureCause,
    },
    /// Compensation ended; `complete` is false if some compensations were
    /// left for manual handling.
    RunCompensated {
        /// The run.
        run: WorkflowId,
        /// Whether every compensation succeeded.
        complete: bool,
    },
    /// An attempt of a step started.
    StepStarted {
        /// The run.
        run: WorkflowId,
        /// The step.
        step: StepId,
        /// 1 for the first attempt.
        attempt: u32,
    },
    /// A step completed.
    StepCompleted {
        /// The run.
        run: WorkflowId,
        /// The step.
        step: StepId,
    },
    /// A failed attempt will be retried at `at`.
    StepRetried {
        /// The run.
        run: WorkflowId,
        /// The step.
        step: StepId,
        /// The attempt that failed.
        attempt: u32,
        /// When the next attempt starts.
        at: Instant,
    },
    /// A step failed for good.
    StepFailed {
        /// The run.
        run: WorkflowId,
        /// The step.
        step: StepId,
    },
    /// A step was skipped (an untaken branch, or a join that can no longer
    /// be satisfied) or cancelled.
    StepSkipped {
        /// The run.
        run: WorkflowId,
        /// The step.
        step: StepId,
    },
    /// A completed execution of a step was compensated.
    StepCompensated {
        /// The run.
        run: WorkflowId,
        /// The step.
        step: StepId,
    },
    /// An engine was given the run's checkpoint but has no definition to
    /// serve it, and parked it
    /// ([`MismatchPolicy::Park`](super::MismatchPolicy::Park)): one event
    /// per park, never repeated while it waits.
    RunParked {
        /// The run.
        run: WorkflowId,
        /// Its workflow.
        name: String,
        /// The version it ran under.
        version: u32,
        /// That definition's content hash.
        hash: u64,
    },
}
