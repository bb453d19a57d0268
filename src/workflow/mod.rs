//! Workflows: many steps with dependencies, choices and joins, run across
//! agents, able to undo what they did when they cannot finish.
//!
//! | type | role |
//! |---|---|
//! | [`WorkflowDef`] | a validated petgraph DAG of [`StepDef`]s and labelled [`Edge`]s, with a name, a version and a stable content hash; serde reads and writes it as data |
//! | [`Step`] | in-process step code: `run`, and optionally `compensate` |
//! | [`WorkflowRun`] | the sans-IO state machine of one execution: [`RunAction`]s out, [`RunInput`]s in, a [`RunOutcome`] at the end |
//! | [`Checkpoint`] | a run's state as a serde value, resumable under the same definition |
//! | [`WorkflowEngine`] | many runs at once on a [`Dispatcher`](crate::scheduler::Dispatcher) the host owns ([`TaskPool`]), beside the host's plain tasks: agent steps become tasks, task outcomes step results |
//! | [`StartPolicy`] | which registered version a new run of the engine takes: [`WorkflowEngine::register`], [`WorkflowEngine::start_version`], [`WorkflowEngine::live_runs`] |
//! | [`RunRecorder`], [`RunJournal`], [`check_replay`] | a run's journal of inputs and actions, and whether another definition (a new version) reproduces it: [`ReplayCheck`] |
//! | [`WorkflowEvent`] | what a run or the engine reports to an [`Observer`](crate::Observer) |
//! | [`Saga`] | a compensation log on its own: record completed actions with their dependencies, undo them in reverse order |
//! | [`mermaid_flowchart`], [`mermaid_run_flowchart`], [`mermaid_gantt`], [`dot_graph`], [`dot_run_graph`] | diagrams as text: Mermaid flowcharts of a definition or of a run coloured by step state, a Mermaid Gantt chart of a run's attempts, Graphviz DOT |
//!
//! # Control flow
//!
//! The patterns are numbered as in van der Aalst's workflow patterns.
//!
//! | pattern | how |
//! |---|---|
//! | sequence (1), parallel split (2) | unlabelled edges |
//! | synchronization (3) | [`Join::All`] (the default) |
//! | exclusive choice (4), multi-choice (6) | labelled edges ([`WorkflowDefBuilder::branch`]); the step's [`StepOutput::branches`] choose, [`Choice`] says how many; untaken branches are skipped and skips propagate |
//! | simple merge (5), discriminator (9), cancelling discriminator (29) | [`Join::first`], [`Join::first_cancelling`] |
//! | synchronizing merge (7) | [`Join::Merge`] |
//! | N-of-M partial join (30, 32) | [`Join::Quorum`] |
//! | structured loop (21) | [`StepDef::repeat`]; the step asks for another iteration with [`StepOutput::again`] |
//! | multi-instance (12–14, 34) | [`StepDef::multi_instance`]; the run asks for the items ([`RunAction::Expand`]) |
//! | sub-workflow | [`StepKind::SubWorkflow`], nesting depth validated |
//! | deferred choice (16) | [`StepKind::Wait`]: a named signal or a timer, whichever comes first |
//! | cancel step (19), cancel run (20) | [`WorkflowRun::cancel_step`], [`WorkflowRun::cancel`] |
//!
//! Every step has its own retry policy and attempt timeout; a definition may
//! set a deadline for the whole run.
//!
//! # Untrusted input and the host's clock
//!
//! Definitions and checkpoints may come from outside. A definition is
//! validated whether built in code or read as data: no name twice in a list,
//! no zero timeout, and counts within [`MAX_ATTEMPTS`], [`MAX_ITERATIONS`],
//! [`MAX_INSTANCES`] and [`MAX_DEPTH_LIMIT`]. [`WorkflowRun::resume`] checks
//! a checkpoint's every index and count against its definition before
//! running it ([`RunError::InvalidCheckpoint`]).
//!
//! Time comes from the host as `now`. A `now` earlier than one a run has
//! seen counts as no time passing; instant arithmetic saturates; a timer
//! that would fire at [`Instant::MAX`](crate::Instant::MAX) never fires (a
//! retry there counts as giving up); and one
//! [`handle_timeout`](WorkflowRun::handle_timeout) fires only the timers
//! due when it began, so every call does bounded work.
//!
//! # Sagas
//!
//! When a step fails for good, the run cancels every running attempt and
//! compensates each completed execution of a compensable step, one at a
//! time, in reverse order of completion — so a step is compensated only
//! after every completed step that depends on it. A compensation is retried
//! by the step's policy; one that fails for good blocks the compensation of
//! the steps it depends on, and the run ends
//! [`RunOutcome::CompensationFailed`] listing exactly what is left. The run
//! keeps this log in a [`Saga`], which a host can use without a workflow
//! for its own sequence of calls.
//!
//! ```
//! use std::sync::Arc;
//! use taskweave::workflow::{RunAction, RunOutcome, StepDef, StepFailure, StepOutput, WorkflowDef, WorkflowRun};
//! use taskweave::{Instant, WorkflowId};
//!
//! let def = Arc::new(
//!     WorkflowDef::builder("order", 1)
//!         .step(StepDef::local("reserve").compensable())
//!         .step(StepDef::local("charge"))
//!         .edge("reserve", "charge")
//!         .build()?,
//! );
//! let mut run: WorkflowRun<()> = WorkflowRun::new(Arc::clone(&def), WorkflowId::new(1), None, Instant::ZERO);
//! let mut log = Vec::new();
//! while let Some(action) = run.poll_action() {
//!     let now = Instant::ZERO;
//!     match action {
//!         RunAction::Start { step, token, .. } if def.step(step).unwrap().id == "charge" => {
//!             run.fail(token, StepFailure::fatal("card declined"), now)?
//!         }
//!         RunAction::Start { token, .. } => run.succeed(token, StepOutput::empty(), now)?,
//!         RunAction::Compensate { step, token, .. } => {
//!             log.push(def.step(step).unwrap().id.clone());
//!             run.compensated(token, Ok(()), now)?;
//!         }
//!         RunAction::Finished => break,
//!         other => unreachable!("{other:?}"),
//!     }
//! }
//! assert_eq!(log, ["reserve"]);
//! assert!(matches!(run.outcome(), Some(RunOutcome::Compensated(_))));
//! # Ok::<(), taskweave::Error>(())
//! ```

mod action;
mod checkpoint;
#[cfg(feature = "serde")]
mod data;
mod definition;
mod diff;
mod engine;
mod error;
mod export;
mod join;
mod journal;
mod migration;
mod observer;
pub(crate) mod pool;
mod replay;
mod run;
mod run_check;
mod step;
mod step_def;

pub use crate::saga::{Compensation, CompensationId, CompensationStatus, Saga, SagaError, Undone};
pub use action::{
    FailureCause, PendingCompensation, RunAction, RunInput, RunOutcome, StepCancelReason,
};
pub use checkpoint::Checkpoint;
pub use definition::{
    DEFAULT_MAX_DEPTH, Edge, Gate, MAX_ATTEMPTS, MAX_DEPTH_LIMIT, MAX_GATED_VERSIONS,
    MAX_INSTANCES, MAX_ITERATIONS, MAX_TIMEOUT, WorkflowDef, WorkflowDefBuilder, WorkflowGraph,
};
pub use diff::{DefinitionDiff, StepChange, StepDiff};
pub use engine::{
    EngineAction, EngineSnapshot, FinishedRun, MismatchPolicy, Resumed, RunRetention, StartPolicy,
    Started, StepTask, WorkflowEngine,
};
pub use error::{DefinitionError, EngineError, RunError};
#[cfg(feature = "planning")]
pub(crate) use export::display_name;
pub use export::{
    dot_graph, dot_run_graph, mermaid_flowchart, mermaid_gantt, mermaid_run_flowchart,
};
pub use join::Join;
pub use journal::{JournalEntry, RunJournal, RunRecorder};
pub use migration::{Migration, MigrationError};
pub use observer::WorkflowEvent;
pub use pool::TaskPool;
pub use replay::{
    Divergence, Produced, ReplayCheck, ReplayError, check_replay, check_replay_migrated,
};
pub use run::{AttemptEnd, StepState, TimelineEntry, WorkflowRun};
pub use step::{Step, StepFailure, StepInput, StepOutput};
pub use step_def::{Choice, MultiInstance, StepDef, StepKind, TIMEOUT_LABEL};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_runs_and_engines_cross_threads() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<WorkflowDef>();
        send_sync::<std::sync::Arc<WorkflowDef>>();
        send::<WorkflowRun<String>>();
        send::<WorkflowEngine<String>>();
    }
}
