//! [`Checkpoint`]: a run's state as a serde value, and resuming from it.

use std::sync::Arc;

use super::run::RunState;
use super::{RunError, WorkflowDef, WorkflowRun};

/// A run's whole state, tied to the definition it ran under. Taken with
/// [`WorkflowRun::checkpoint`], stored with serde, continued with
/// [`WorkflowRun::resume`]: the resumed run hands out the same actions and
/// reaches the same outcome as one that never stopped.
///
/// ```
/// use std::sync::Arc;
/// use taskweave::workflow::{RunAction, StepDef, StepOutput, WorkflowDef, WorkflowRun};
/// use taskweave::{Instant, WorkflowId};
///
/// let def = Arc::new(WorkflowDef::builder("two", 1).step(StepDef::local("a")).step(StepDef::local("b")).edge("a", "b").build()?);
/// let mut run: WorkflowRun<u32> = WorkflowRun::new(Arc::clone(&def), WorkflowId::new(7), None, Instant::ZERO);
/// let Some(RunAction::Start { token, .. }) = run.poll_action() else { unreachable!() };
/// run.succeed(token, StepOutput::new(1), Instant::ZERO)?;
///
/// let json = serde_json::to_string(&run.checkpoint()).unwrap();
/// let mut resumed: WorkflowRun<u32> = WorkflowRun::resume(def, serde_json::from_str(&json).unwrap())?;
/// assert!(matches!(resumed.poll_action(), Some(RunAction::Start { .. })));
///
/// // Another definition (or version) is refused.
/// let other = Arc::new(WorkflowDef::builder("two", 2).step(StepDef::local("a")).build()?);
/// assert!(WorkflowRun::resume(other, run.checkpoint()).is_err());
/// # Ok::<(), taskweave::Error>(())
/// ```
#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Checkpoint<P> {
    name: String,
    version: u32,
    hash: u64,
    state: RunState<P>,
}

impl<P> Checkpoint<P> {
    /// The definition's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The definition's version.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The definition's content hash.
    pub fn content_hash(&self) -> u64 {
        self.hash
    }
}

impl<P: Clone> WorkflowRun<P> {
    /// The run's state as a value. The observer is not part of it.
    pub fn checkpoint(&self) -> Checkpoint<P> {
        let def = self.definition();
        Checkpoint {
            name: def.name().to_string(),
            version: def.version(),
            hash: def.content_hash(),
            state: self.state().clone(),
        }
    }

    /// Continues a run from a checkpoint taken under `def`.
    ///
    /// # Errors
    ///
    /// [`RunError::DefinitionMismatch`] if the checkpoint was taken under
    /// another definition: another name, version or content.
    pub fn resume(def: Arc<WorkflowDef>, checkpoint: Checkpoint<P>) -> Result<Self, RunError> {
        if checkpoint.hash != def.content_hash()
            || checkpoint.version != def.version()
            || checkpoint.name != def.name()
        {
            return Err(RunError::DefinitionMismatch {
                expected_name: def.name().to_string(),
                expected_version: def.version(),
                expected_hash: def.content_hash(),
                found_name: checkpoint.name,
                found_version: checkpoint.version,
                found_hash: checkpoint.hash,
            });
        }
        Ok(WorkflowRun::from_state(def, checkpoint.state))
    }
}
