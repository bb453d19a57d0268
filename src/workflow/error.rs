//! Workflow errors: invalid definitions and refused run inputs.

use thiserror::Error;

use crate::scheduler::{ReportError, SchedulerError};
use crate::{AttemptToken, StepId, WorkflowId};

/// Why a workflow definition was refused. Each variant names the steps
/// involved.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DefinitionError {
    /// A workflow needs at least one step.
    #[error("workflow `{0}` has no steps")]
    Empty(String),
    /// A step id is empty.
    #[error("a step has an empty id")]
    EmptyId,
    /// Two steps share an id.
    #[error("step id `{0}` is used twice")]
    DuplicateStep(String),
    /// A [`Gate`](super::Gate) admits no version a run could have started
    /// under.
    #[error("{context}: its gate is empty: {reason}")]
    BadGate {
        /// The step (`step `id``) or edge (`edge `a` -> `b``).
        context: String,
        /// Why.
        reason: &'static str,
    },
    /// The definition is not valid as the runs of one of its gated
    /// versions see it.
    #[error("for the runs of version {version}: {source}")]
    AtVersion {
        /// The first version of the stretch found invalid.
        version: u32,
        /// What is wrong with it.
        source: Box<DefinitionError>,
    },
    /// [`WorkflowDef::at_version`](super::WorkflowDef::at_version) was
    /// asked for a version later than the definition's.
    #[error(
        "version {version} is later than the definition's version {latest}; no run of it could be served"
    )]
    LaterVersion {
        /// The version asked for.
        version: u32,
        /// The definition's version.
        latest: u32,
    },
    /// A step's [alias](super::StepDef::alias) is another step's id, or an
    /// alias given twice.
    #[error(
        "step `{step}` gives alias `{alias}`, which is already a step's id or alias; an old key may name one step only"
    )]
    AliasConflict {
        /// The step giving the alias.
        step: String,
        /// The alias.
        alias: String,
    },
    /// An edge, input mapping, entry or output names a step that does not
    /// exist.
    #[error("{context} names unknown step `{step}`")]
    UnknownStep {
        /// Where the name appeared.
        context: String,
        /// The unknown id.
        step: String,
    },
    /// Two edges join the same pair of steps.
    #[error("the edge `{from}` -> `{to}` is declared twice")]
    DuplicateEdge {
        /// Source step.
        from: String,
        /// Target step.
        to: String,
    },
    /// The edges form a cycle; `path` starts and ends at the same step.
    #[error("cycle: {}", path.join(" -> "))]
    Cycle {
        /// The steps around the cycle.
        path: Vec<String>,
    },
    /// Steps that no execution can reach from the entry steps.
    #[error("unreachable steps: {}", steps.join(", "))]
    Unreachable {
        /// The unreachable steps, in declaration order.
        steps: Vec<String>,
    },
    /// A merge or partial join with fewer than two incoming edges.
    #[error("step `{step}` joins {inputs} input(s); a {join} join needs at least 2")]
    JoinTooFewInputs {
        /// The step.
        step: String,
        /// Its incoming edges.
        inputs: usize,
        /// The join kind.
        join: &'static str,
    },
    /// An N-of-M join with N outside `1..=M`.
    #[error("step `{step}` waits for {n} of {m} inputs")]
    ImpossibleQuorum {
        /// The step.
        step: String,
        /// Required inputs.
        n: u32,
        /// Incoming edges.
        m: usize,
    },
    /// An input mapping names a step that is not a direct predecessor.
    #[error("step `{step}` takes input from `{input}`, which is not one of its predecessors")]
    InputNotPredecessor {
        /// The step.
        step: String,
        /// The named input.
        input: String,
    },
    /// Options that cannot be combined on one step.
    #[error("step `{step}`: {reason}")]
    ConflictingOptions {
        /// The step.
        step: String,
        /// What conflicts.
        reason: &'static str,
    },
    /// A labelled edge out of a wait step whose label is neither one of its
    /// signals nor its timeout.
    #[error("edge `{from}` -> `{to}` is labelled `{label}`, which step `{from}` can never choose")]
    UnknownLabel {
        /// The wait step.
        from: String,
        /// The target.
        to: String,
        /// The label.
        label: String,
    },
    /// Sub-workflows nested deeper than the limit.
    #[error("sub-workflow step `{step}` nests {depth} levels deep; the limit is {limit}")]
    TooDeep {
        /// The step holding the too-deep child.
        step: String,
        /// Its nesting depth.
        depth: u32,
        /// The limit.
        limit: u32,
    },
    /// A list names the same item twice: the entry list, a step's inputs,
    /// signals or capabilities.
    #[error("{context} names `{name}` twice")]
    DuplicateName {
        /// The list: `the entry list`, or the step and field.
        context: String,
        /// The repeated name.
        name: String,
    },
    /// A step (or wait) timeout of zero: every attempt would time out the
    /// instant it starts.
    #[error("step `{0}` has a zero timeout")]
    ZeroTimeout(String),
    /// A step or wait timeout longer than [`MAX_TIMEOUT`](super::MAX_TIMEOUT):
    /// it would saturate the clock to "never" and never fire.
    #[error(
        "step `{step}`: its {field} of {timeout:?} is longer than a hundred years and could never fire; use a shorter one, or none"
    )]
    TimeoutTooLong {
        /// The step.
        step: String,
        /// `timeout` or `wait timeout`.
        field: &'static str,
        /// The timeout given.
        timeout: std::time::Duration,
    },
    /// A wait step with neither a signal nor a timeout: nothing but a
    /// cancellation could ever end it.
    #[error("wait step `{0}` has neither a signal nor a timeout, so it could never end")]
    WaitNeverEnds(String),
    /// A count above the limit this crate sets on it (see
    /// [`MAX_ATTEMPTS`](super::MAX_ATTEMPTS),
    /// [`MAX_ITERATIONS`](super::MAX_ITERATIONS),
    /// [`MAX_INSTANCES`](super::MAX_INSTANCES) and
    /// [`MAX_DEPTH_LIMIT`](super::MAX_DEPTH_LIMIT)).
    #[error("{context}: {field} is {value}; the limit is {limit}")]
    TooLarge {
        /// The step (`step `id``) or `the workflow`.
        context: String,
        /// The field.
        field: &'static str,
        /// The value given.
        value: u64,
        /// The limit.
        limit: u64,
    },
}

/// Why a run refused an input. A refused input changes nothing.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RunError {
    /// The token names no attempt of this run.
    #[error("{0} is not an attempt of this run")]
    UnknownAttempt(AttemptToken),
    /// The attempt already ended (a late or duplicate result) or was
    /// cancelled.
    #[error("{0} is no longer running")]
    StaleAttempt(AttemptToken),
    /// A step result for a compensation attempt, or the other way round.
    #[error("{token} is {} attempt", if *compensation { "a compensation" } else { "a step" })]
    WrongAttemptKind {
        /// The attempt.
        token: AttemptToken,
        /// Whether it is a compensation attempt.
        compensation: bool,
    },
    /// The run is already compensating.
    #[error("the run is compensating")]
    Compensating,
    /// The step id is not in the definition.
    #[error("{0} is not a step of this workflow")]
    UnknownStep(StepId),
    /// The step is not waiting for the input given.
    #[error("{step} is not {expected}")]
    UnexpectedInput {
        /// The step.
        step: StepId,
        /// What it would have to be doing.
        expected: &'static str,
    },
    /// No waiting step listens for this signal.
    #[error("no step is waiting for signal `{0}`")]
    NoWaiter(String),
    /// A step chose branches it does not have, or the wrong number of them.
    #[error("{step} chose branches {chosen:?}: {reason}")]
    InvalidBranches {
        /// The step.
        step: StepId,
        /// The labels chosen.
        chosen: Vec<String>,
        /// What is wrong.
        reason: &'static str,
    },
    /// A step that is not a loop asked to run again.
    #[error("{0} is not a loop and cannot run again")]
    NotALoop(StepId),
    /// The run has ended.
    #[error("the run has ended")]
    Finished,
    /// A checkpoint taken under another definition.
    #[error(
        "checkpoint of `{found_name}` v{found_version} (hash {found_hash:016x}) cannot resume `{expected_name}` v{expected_version} (hash {expected_hash:016x})"
    )]
    DefinitionMismatch {
        /// The definition given.
        expected_name: String,
        /// Its version.
        expected_version: u32,
        /// Its content hash.
        expected_hash: u64,
        /// The checkpoint's definition.
        found_name: String,
        /// Its version.
        found_version: u32,
        /// Its content hash.
        found_hash: u64,
    },
    /// A checkpoint of another format version than this release reads
    /// ([`Checkpoint::FORMAT`](super::Checkpoint::FORMAT)).
    #[error("checkpoint format {found} is not supported (this release reads format {supported})")]
    UnsupportedCheckpoint {
        /// The checkpoint's format.
        found: u32,
        /// The format this release reads.
        supported: u32,
    },
    /// A checkpoint whose state is inconsistent with its definition or
    /// with itself: corrupted, or edited by hand. Nothing was resumed.
    #[error("invalid checkpoint: `{field}` {reason}")]
    InvalidCheckpoint {
        /// The offending field, as a path into the state (e.g.
        /// `execs[3].previous`).
        field: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A multi-instance step was given more items than
    /// [`MAX_INSTANCES`](super::MAX_INSTANCES).
    #[error("{step} was given {items} items; the limit is {limit}")]
    TooManyItems {
        /// The step.
        step: StepId,
        /// Items given.
        items: usize,
        /// The limit.
        limit: u32,
    },
}

/// Why a [`WorkflowEngine`](super::WorkflowEngine) refused a call. A
/// refused call changes nothing.
#[derive(Clone, Debug, PartialEq, Error)]
#[non_exhaustive]
pub enum EngineError {
    /// No active run has this id: it never existed, or it finished and
    /// the engine no longer remembers it ([`RunFinished`](Self::RunFinished)
    /// while it does).
    #[error("{0} is not an active run")]
    UnknownRun(WorkflowId),
    /// The run finished (within the engine's
    /// [retention](super::RunRetention)): a signal, cancel or result for
    /// it comes too late.
    #[error("{run} already finished ({outcome:?}); it takes no more input")]
    RunFinished {
        /// The run.
        run: WorkflowId,
        /// How it ended.
        outcome: super::RunOutcome,
    },
    /// The run refused the input.
    #[error(transparent)]
    Run(#[from] RunError),
    /// The report names no live task of the engine, or the pool refused
    /// it.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// No version of this workflow is registered
    /// ([`WorkflowEngine::register`](super::WorkflowEngine::register)).
    #[error("no version of workflow `{0}` is registered; register one first")]
    UnknownWorkflow(String),
    /// This version of the workflow is not registered.
    #[error("version {version} of workflow `{name}` is not registered")]
    UnknownVersion {
        /// The workflow.
        name: String,
        /// The version.
        version: u32,
    },
    /// Another definition with this name and version (another content
    /// hash) is registered: a changed definition needs a new version.
    #[error(
        "another definition of workflow `{name}` version {version} is registered; give the changed one a new version"
    )]
    VersionConflict {
        /// The workflow.
        name: String,
        /// The version.
        version: u32,
    },
    /// The version still has active runs.
    #[error(
        "version {version} of workflow `{name}` still has {runs} active runs; remove it once they have finished (see live_runs)"
    )]
    VersionInUse {
        /// The workflow.
        name: String,
        /// The version.
        version: u32,
        /// Its active runs.
        runs: usize,
    },
    /// [`WorkflowEngine::migrate`](super::WorkflowEngine::migrate) could
    /// not move the run; it is unchanged.
    #[error(transparent)]
    Migration(#[from] super::MigrationError),
    /// A run with this id is active or parked already.
    #[error("{0} is already active or parked on this engine; resume each run once")]
    RunExists(WorkflowId),
    /// No registered definition serves the checkpoint, and the engine's
    /// [`MismatchPolicy`](super::MismatchPolicy) is `Reject`.
    #[error(
        "no registered definition serves {run}, a run of `{name}` v{version} (hash {hash:016x}); register that version, or migrate the checkpoint to a registered one (WorkflowDef::diff)"
    )]
    Unservable {
        /// The run.
        run: WorkflowId,
        /// Its workflow.
        name: String,
        /// The version it ran under.
        version: u32,
        /// That definition's content hash.
        hash: u64,
    },
    /// A ramp's share is above 100 %.
    #[error("a ramp to version {to} of {percent} % is above 100 %")]
    InvalidRamp {
        /// The version ramped to.
        to: u32,
        /// The share asked for.
        percent: u8,
    },
    /// A [`RunRetention`](super::RunRetention) above its limit.
    #[error("a retention of {max_runs} finished runs is above the limit of {limit}")]
    InvalidRetention {
        /// The runs asked for.
        max_runs: usize,
        /// [`RunRetention::MAX_RUNS`](super::RunRetention::MAX_RUNS).
        limit: usize,
    },
    /// [`WorkflowEngine::restore`](super::WorkflowEngine::restore) was not
    /// given a definition the snapshot uses.
    #[error(
        "the snapshot uses workflow `{name}` v{version} (hash {hash:016x}), which restore was not given; pass every definition its runs and registrations use"
    )]
    MissingDefinition {
        /// The workflow.
        name: String,
        /// The version.
        version: u32,
        /// The content hash.
        hash: u64,
    },
    /// An [`EngineSnapshot`](super::EngineSnapshot) of another format.
    #[error("engine snapshot format {found} is not supported (this release reads {supported})")]
    UnsupportedSnapshot {
        /// The snapshot's format.
        found: u32,
        /// The format this release reads.
        supported: u32,
    },
    /// An [`EngineSnapshot`](super::EngineSnapshot) that no engine could
    /// have taken; nothing was restored.
    #[error("the engine snapshot is inconsistent: `{field}` {reason}")]
    InvalidSnapshot {
        /// The first field found inconsistent.
        field: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The dispatcher refused an operation (kept for hosts that wrap pool
    /// calls in an `EngineError`; the engine itself no longer returns it).
    #[error(transparent)]
    Scheduler(#[from] SchedulerError),
}
