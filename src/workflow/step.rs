//! The [`Step`] trait for in-process steps, and the values that flow in and
//! out of every step.

use crate::{AttemptToken, StepId};

/// What one execution of a step receives: the outputs its input mapping
/// names, plus whatever its pattern adds.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct StepInput<P> {
    /// The step.
    pub step: StepId,
    /// The attempt's fencing token: the result must carry it.
    pub token: AttemptToken,
    /// 1 for the first attempt of this execution.
    pub attempt: u32,
    /// 1 for the first iteration (loops count up).
    pub iteration: u32,
    /// The run's input, for entry steps (steps without predecessors).
    pub run_input: Option<P>,
    /// The predecessors' outputs, in the step's input-mapping order; a
    /// multi-instance predecessor contributes one entry per instance.
    pub inputs: Vec<(StepId, P)>,
    /// For a multi-instance step: this instance's index and item.
    pub item: Option<(u32, P)>,
    /// For a loop: the previous iteration's output.
    pub previous: Option<P>,
}

/// What a successful execution hands back.
///
/// ```
/// use taskweave::workflow::StepOutput;
///
/// let out = StepOutput::new(42).branch("large");
/// assert_eq!(out.value, Some(42));
/// assert_eq!(out.branches, ["large"]);
/// assert!(!StepOutput::<u32>::empty().again);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct StepOutput<P> {
    /// The output, passed to the steps that take it as input.
    pub value: Option<P>,
    /// For a decision step: the labels of the branches to take.
    pub branches: Vec<String>,
    /// For a loop step: whether to run another iteration.
    pub again: bool,
}

impl<P> StepOutput<P> {
    /// An output value, no branch choice, no further iteration.
    pub fn new(value: P) -> Self {
        StepOutput {
            value: Some(value),
            branches: Vec::new(),
            again: false,
        }
    }

    /// No output value.
    pub fn empty() -> Self {
        StepOutput {
            value: None,
            branches: Vec::new(),
            again: false,
        }
    }

    /// Chooses one more branch label.
    pub fn branch(mut self, label: impl Into<String>) -> Self {
        self.branches.push(label.into());
        self
    }

    /// Asks a loop step for another iteration.
    pub fn again(mut self) -> Self {
        self.again = true;
        self
    }
}

/// Why an execution (or a compensation) failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct StepFailure {
    /// Why, in the step's words.
    pub reason: String,
    /// Whether trying again could help; `false` skips the retry policy.
    pub retryable: bool,
}

impl StepFailure {
    /// A failure the retry policy may retry.
    pub fn retryable(reason: impl Into<String>) -> Self {
        StepFailure {
            reason: reason.into(),
            retryable: true,
        }
    }

    /// A failure no retry can fix.
    pub fn fatal(reason: impl Into<String>) -> Self {
        StepFailure {
            reason: reason.into(),
            retryable: false,
        }
    }
}

/// An in-process step: code the host (or the threaded driver) runs itself.
///
/// `run` is called once per attempt with the execution's input;
/// `compensate` undoes a completed execution when the workflow fails (the
/// default does nothing and succeeds). Both must be safe to call from any
/// thread. A closure `Fn(&StepInput<P>) -> Result<StepOutput<P>, StepFailure>`
/// is a step without compensation.
///
/// ```
/// use taskweave::workflow::{Step, StepFailure, StepInput, StepOutput};
///
/// struct Double;
/// impl Step<u64> for Double {
///     fn run(&self, input: &StepInput<u64>) -> Result<StepOutput<u64>, StepFailure> {
///         let sum: u64 = input.inputs.iter().map(|(_, v)| v).sum();
///         Ok(StepOutput::new(2 * sum))
///     }
/// }
/// let add_one = |input: &StepInput<u64>| Ok(StepOutput::new(input.run_input.unwrap_or(0) + 1));
/// # let _: &dyn Step<u64> = &add_one;
/// # let _: &dyn Step<u64> = &Double;
/// ```
pub trait Step<P>: Send + Sync {
    /// Runs one attempt.
    ///
    /// # Errors
    ///
    /// A [`StepFailure`]; retryable ones go through the step's retry policy.
    fn run(&self, input: &StepInput<P>) -> Result<StepOutput<P>, StepFailure>;

    /// Undoes a completed execution whose output was `output`.
    ///
    /// # Errors
    ///
    /// A [`StepFailure`]; retryable ones go through the step's retry policy,
    /// and a compensation that fails for good is left for manual handling.
    fn compensate(&self, input: &StepInput<P>, output: Option<&P>) -> Result<(), StepFailure> {
        let _ = (input, output);
        Ok(())
    }
}

impl<P, F> Step<P> for F
where
    F: Fn(&StepInput<P>) -> Result<StepOutput<P>, StepFailure> + Send + Sync,
{
    fn run(&self, input: &StepInput<P>) -> Result<StepOutput<P>, StepFailure> {
        self(input)
    }
}
