//! [`RunCodec`]: how hosted runs meet the cluster's payload.

use crate::workflow::{StepInput, StepOutput, StepTask, WorkflowDef};

/// How hosted runs meet the cluster's payload `P`: the payload of a
/// step's task, written from the run's definition, the step and its input
/// (its predecessors' outputs, or the run's input), and a completed
/// task's output read as the step's. Every node of a cluster must be
/// built with the same codec.
pub struct RunCodec<P> {
    pub(super) blank: P,
    pub(super) step_payload: fn(&WorkflowDef, StepTask, StepInput<P>) -> P,
    pub(super) step_output: fn(P) -> Result<StepOutput<P>, String>,
}

impl<P: Clone> Clone for RunCodec<P> {
    fn clone(&self) -> Self {
        RunCodec {
            blank: self.blank.clone(),
            step_payload: self.step_payload,
            step_output: self.step_output,
        }
    }
}

impl<P> std::fmt::Debug for RunCodec<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunCodec").finish_non_exhaustive()
    }
}

impl<P> RunCodec<P> {
    /// A codec that writes a step's task payload with `step_payload` and
    /// takes a completed task's output as the step's output as it is
    /// (a success without an output completes the step without one).
    /// `blank` is what a step's task holds between its submission and
    /// the writing of its input, within one journal entry: it is never
    /// published nor stored.
    pub fn new(blank: P, step_payload: fn(&WorkflowDef, StepTask, StepInput<P>) -> P) -> Self {
        RunCodec {
            blank,
            step_payload,
            step_output: |output| Ok(StepOutput::new(output)),
        }
    }

    /// Reads a completed task's output as its step's with `read` (for a
    /// decision's branches, or a loop's `again`); an output `read`
    /// refuses fails the step for good, with its reason.
    #[must_use]
    pub fn step_output(mut self, read: fn(P) -> Result<StepOutput<P>, String>) -> Self {
        self.step_output = read;
        self
    }
}
