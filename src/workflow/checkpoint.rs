//! [`Checkpoint`]: a run's state as a serde value, and resuming from it.

use std::sync::Arc;

use super::run::RunState;
use super::{RunAction, RunError, WorkflowDef, WorkflowRun};

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
///
/// A checkpoint is data from outside: [`WorkflowRun::resume`] checks every
/// index, count and id in it against the definition and the rest of the
/// state, and refuses an inconsistent one with
/// [`RunError::InvalidCheckpoint`] naming the field. Its serde form is
/// canonical: reading it back gives an equal checkpoint, and equal
/// checkpoints write the same bytes (timers are kept ordered, and no
/// floating-point number is stored). It carries a format number
/// ([`Checkpoint::FORMAT`]); another format is refused with
/// [`RunError::UnsupportedCheckpoint`].
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Checkpoint<P> {
    /// The checkpoint format; missing in format 1, read as 0 then.
    #[cfg_attr(feature = "serde", serde(default))]
    format: u32,
    name: String,
    version: u32,
    hash: u64,
    /// The version the run started under, when earlier than `version`:
    /// the definition is [seen as that version's runs see
    /// it](WorkflowDef::at_version).
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    origin: Option<u32>,
    state: RunState<P>,
}

impl<P> Checkpoint<P> {
    /// The format this release writes and reads. Format 2 added this field,
    /// the run's latest `now`, ordered timers, and a compensating run's
    /// progress as a [`Saga`](super::Saga).
    pub const FORMAT: u32 = 2;

    /// The checkpoint's format.
    pub fn format(&self) -> u32 {
        self.format
    }

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

    /// The version the run started under (its
    /// [origin](WorkflowDef::origin)): the definition's version, unless
    /// the run migrated from an earlier one.
    pub fn origin(&self) -> u32 {
        self.origin.unwrap_or(self.version)
    }

    /// The run's id.
    pub fn run_id(&self) -> crate::WorkflowId {
        self.state.id
    }
}

impl<P: Clone> WorkflowRun<P> {
    /// The run's state as a value. The observer is not part of it.
    pub fn checkpoint(&self) -> Checkpoint<P> {
        let def = self.definition();
        Checkpoint {
            format: Checkpoint::<P>::FORMAT,
            name: def.name().to_string(),
            version: def.version(),
            hash: def.content_hash(),
            origin: def.earlier_origin(),
            state: self.state().clone(),
        }
    }

    /// Continues a run from a checkpoint taken under `def`.
    ///
    /// # Errors
    ///
    /// [`RunError::UnsupportedCheckpoint`] if the checkpoint has another
    /// [format](Checkpoint::FORMAT); [`RunError::DefinitionMismatch`] if it
    /// was taken under another definition: another name, version or
    /// content; [`RunError::InvalidCheckpoint`] if its state is not one a
    /// run of `def` can be in (an index out of range, a count that does not
    /// match what it counts, an id listed twice, a step state the phase or
    /// the edges contradict, an origin later than the version...), naming
    /// the field.
    ///
    /// A run that started under an earlier version than `def`'s (it
    /// migrated) resumes on `def` [as its origin's runs see
    /// it](WorkflowDef::at_version).
    pub fn resume(def: Arc<WorkflowDef>, checkpoint: Checkpoint<P>) -> Result<Self, RunError> {
        if checkpoint.format != Checkpoint::<P>::FORMAT {
            return Err(RunError::UnsupportedCheckpoint {
                found: checkpoint.format,
                supported: Checkpoint::<P>::FORMAT,
            });
        }
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
        let origin = checkpoint.origin();
        let def = if def.origin() == origin {
            def
        } else {
            Arc::new(
                def.at_version(origin)
                    .map_err(|_| RunError::InvalidCheckpoint {
                        field: "origin".to_string(),
                        reason: "is later than the definition's version",
                    })?,
            )
        };
        checkpoint.state.validate(&def)?;
        Ok(WorkflowRun::from_state(def, checkpoint.state))
    }

    /// Hands out again the action of every attempt still running, unless
    /// it is still queued: for a host that resumes a run whose attempts
    /// were lost with the process that ran them. Their tokens stay valid.
    pub(super) fn reissue_running(&mut self) {
        let queued: std::collections::HashSet<_> = self
            .state()
            .actions
            .iter()
            .filter_map(|action| match *action {
                RunAction::Start { token, .. } | RunAction::Compensate { token, .. } => Some(token),
                _ => None,
            })
            .collect();
        let mut again = Vec::new();
        for (t, attempt) in self.state().attempts.iter().enumerate() {
            let token = crate::AttemptToken::new(t as u64);
            if attempt.end.is_some() || queued.contains(&token) {
                continue;
            }
            let exec = &self.state().execs[attempt.exec as usize];
            let (step, attempt_number) = (exec.step, attempt.number);
            let (instance, iteration) = (exec.instance, exec.iteration);
            again.push(if attempt.compensation {
                RunAction::Compensate {
                    step,
                    token,
                    attempt: attempt_number,
                    instance,
                    iteration,
                }
            } else {
                RunAction::Start {
                    step,
                    token,
                    attempt: attempt_number,
                    instance,
                    iteration,
                }
            });
        }
        self.queue_actions(again);
    }
}
