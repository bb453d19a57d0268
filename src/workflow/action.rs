//! The values a run exchanges with its host: [`RunAction`]s out,
//! [`RunInput`]s in, and the [`RunOutcome`] at the end.

use super::{StepFailure, StepOutput};
use crate::{AttemptToken, StepId};

/// What the host should do next; pulled with
/// [`WorkflowRun::poll_action`](super::WorkflowRun::poll_action).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum RunAction {
    /// Run an attempt of `step` (its input:
    /// [`WorkflowRun::input`](super::WorkflowRun::input)). Report the result
    /// with `token`.
    Start {
        /// The step.
        step: StepId,
        /// The attempt's fencing token.
        token: AttemptToken,
        /// 1 for the first attempt of this execution.
        attempt: u32,
        /// For a multi-instance step, the instance index.
        instance: Option<u32>,
        /// 1 for the first iteration.
        iteration: u32,
    },
    /// `step` fans out: give the run its items with
    /// [`WorkflowRun::expand`](super::WorkflowRun::expand).
    Expand {
        /// The multi-instance step.
        step: StepId,
    },
    /// Stop the attempt `token` of `step`; its result will be rejected.
    Cancel {
        /// The step.
        step: StepId,
        /// The attempt.
        token: AttemptToken,
        /// Why.
        reason: StepCancelReason,
    },
    /// Undo a completed execution of `step`; report with `token`.
    Compensate {
        /// The step.
        step: StepId,
        /// The compensation attempt's token.
        token: AttemptToken,
        /// 1 for the first compensation attempt.
        attempt: u32,
        /// The instance, for a multi-instance step.
        instance: Option<u32>,
        /// The iteration compensated.
        iteration: u32,
    },
    /// The run ended; its outcome is
    /// [`WorkflowRun::outcome`](super::WorkflowRun::outcome).
    Finished,
}

/// Why a running attempt is stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum StepCancelReason {
    /// It exceeded the step's timeout (counted as a failure).
    TimedOut,
    /// The host cancelled the step.
    StepCancelled,
    /// A cancelling join no longer needs its branch.
    BranchCancelled,
    /// The run is failing: another step failed for good, the run was
    /// cancelled, or its deadline passed.
    RunAborted,
}

/// An input to a run: everything that can change its state. Recording
/// `(now, input)` pairs and applying them to a fresh run of the same
/// definition, id and input reproduces the run exactly.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum RunInput<P> {
    /// An attempt succeeded.
    Succeeded {
        /// The attempt.
        token: AttemptToken,
        /// Its output.
        output: StepOutput<P>,
    },
    /// An attempt failed.
    Failed {
        /// The attempt.
        token: AttemptToken,
        /// Why.
        failure: StepFailure,
    },
    /// The items of a multi-instance step.
    Expanded {
        /// The step.
        step: StepId,
        /// One per instance.
        items: Vec<P>,
    },
    /// A named signal for the waiting steps that listen for it.
    Signal {
        /// The signal's name.
        name: String,
        /// The waiting steps' output.
        payload: Option<P>,
    },
    /// A compensation attempt ended.
    Compensated {
        /// The compensation attempt.
        token: AttemptToken,
        /// `Err` if it failed.
        result: Result<(), StepFailure>,
    },
    /// Cancel one step (pattern 19); its branch is skipped.
    CancelStep {
        /// The step.
        step: StepId,
    },
    /// Cancel the run (pattern 20): stop everything and compensate.
    Cancel,
    /// Time passed: fire due timers.
    Tick,
}

/// Why a run failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum FailureCause {
    /// A step failed for good.
    StepFailed {
        /// The step.
        step: StepId,
        /// The last failure's reason.
        reason: String,
    },
    /// The host cancelled the run.
    Cancelled,
    /// The workflow's deadline passed.
    DeadlineExceeded,
    /// No registered definition could serve the run when an engine resumed
    /// it ([`MismatchPolicy::Fail`](super::MismatchPolicy::Fail)); nothing
    /// was compensated, for nothing could run.
    Unservable {
        /// The run's workflow.
        name: String,
        /// The version it ran under.
        version: u32,
        /// That definition's content hash.
        hash: u64,
    },
}

/// A completed execution whose compensation still needs a human.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PendingCompensation {
    /// The step.
    pub step: StepId,
    /// The instance, for a multi-instance step.
    pub instance: Option<u32>,
    /// The iteration.
    pub iteration: u32,
    /// `Some(reason)` if its compensation failed for good; `None` if it was
    /// not attempted because a step depending on it could not be
    /// compensated.
    pub failure: Option<String>,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum RunOutcome {
    /// Every step completed or was skipped.
    Succeeded,
    /// The run failed and nothing needed compensating.
    Failed(FailureCause),
    /// The run failed and every completed compensable execution was
    /// compensated.
    Compensated(FailureCause),
    /// The run failed and some compensations could not be done.
    CompensationFailed {
        /// Why the run failed.
        cause: FailureCause,
        /// Exactly what still needs manual handling, in the order it would
        /// have been compensated.
        pending: Vec<PendingCompensation>,
    },
}

impl FailureCause {
    /// The cause in words, naming a step by its key in `def` (its id
    /// where `def` has no such step).
    pub fn describe(&self, def: &super::WorkflowDef) -> String {
        match self {
            FailureCause::StepFailed { step, reason } => {
                format!("step `{}` failed: {reason}", step_key(def, *step))
            }
            FailureCause::Cancelled => "cancelled".into(),
            FailureCause::DeadlineExceeded => "its deadline passed".into(),
            FailureCause::Unservable {
                name,
                version,
                hash,
            } => format!("no registered definition serves {name} v{version} (hash {hash:016x})"),
        }
    }
}

impl RunOutcome {
    /// How the run ended, in words, naming steps by their keys in `def`:
    ///
    /// ```
    /// use taskweave::workflow::{FailureCause, RunOutcome, StepDef, WorkflowDef};
    ///
    /// let def = WorkflowDef::builder("order", 1)
    ///     .step(StepDef::agent("reserve").compensable())
    ///     .step(StepDef::agent("charge"))
    ///     .edge("reserve", "charge")
    ///     .build()?;
    /// let charge = def.step_id("charge").unwrap();
    /// let outcome = RunOutcome::Compensated(FailureCause::StepFailed {
    ///     step: charge,
    ///     reason: "card declined".into(),
    /// });
    /// assert_eq!(outcome.describe(&def), "compensated after step `charge` failed: card declined");
    /// # Ok::<(), taskweave::workflow::DefinitionError>(())
    /// ```
    pub fn describe(&self, def: &super::WorkflowDef) -> String {
        match self {
            RunOutcome::Succeeded => "succeeded".into(),
            RunOutcome::Failed(cause) => format!("failed: {}", cause.describe(def)),
            RunOutcome::Compensated(cause) => {
                format!("compensated after {}", cause.describe(def))
            }
            RunOutcome::CompensationFailed { cause, pending } => {
                let steps: Vec<String> = pending
                    .iter()
                    .map(|p| format!("`{}`", step_key(def, p.step)))
                    .collect();
                format!(
                    "{}; compensations still owed by hand: {}",
                    cause.describe(def),
                    steps.join(", ")
                )
            }
        }
    }
}

/// `step`'s key in `def` ([`WorkflowDef::key`](super::WorkflowDef)), or
/// its id where `def` has no such step.
fn step_key(def: &super::WorkflowDef, step: StepId) -> String {
    match def.key(step) {
        "" => format!("{step:?}"),
        key => key.to_owned(),
    }
}
