//! Errors of the planning module.

use thiserror::Error;

use crate::workflow::DefinitionError;
use crate::{AgentId, Priority, TaskId};

/// Why a planning structure could not be built. Every variant carries the
/// offending value. More variants will come as the planning module grows.
#[derive(Clone, Debug, PartialEq, Error)]
#[non_exhaustive]
pub enum PlanningError {
    /// A task name would grow past
    /// [`MAX_TASK_NAME_BYTES`](crate::planning::MAX_TASK_NAME_BYTES) once
    /// every `{goal}` in it is replaced by the goal.
    #[error("task {task} would get a name of {bytes} bytes, more than the {max} allowed")]
    NameTooLong {
        /// The task template's id.
        task: String,
        /// The length the name would have, saturating at `usize::MAX`.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// A softmax temperature must be finite and greater than zero.
    #[error("softmax temperature must be finite and > 0, got {value}")]
    InvalidTemperature {
        /// The rejected temperature.
        value: f64,
    },
    /// A top-k cut must keep at least one candidate.
    #[error("top-k must keep at least one candidate, got {k}")]
    InvalidTopK {
        /// The rejected `k`.
        k: usize,
    },
    /// The same agent appears twice on the agent axis.
    #[error("agent {0} appears twice on the agent axis")]
    DuplicateAgent(AgentId),
    /// The same task appears twice on the task axis.
    #[error("task {0} appears twice on the task axis")]
    DuplicateTask(TaskId),
    /// A task names an agent index past the end of the agent axis.
    #[error("task {task} names agent index {agent}, but there are only {agents} agents")]
    AgentIndexOutOfRange {
        /// The task.
        task: TaskId,
        /// The agent index it named.
        agent: usize,
        /// The length of the agent axis.
        agents: usize,
    },
    /// A task lists the same agent twice among its candidates.
    #[error("task {task} lists agent index {agent} twice among its candidates")]
    DuplicateCandidate {
        /// The task.
        task: TaskId,
        /// The repeated agent index.
        agent: usize,
    },
    /// A routing score is NaN or infinite.
    #[error("task {task} has a non-finite score {score} for agent index {agent}")]
    NonFiniteScore {
        /// The task.
        task: TaskId,
        /// The agent index scored.
        agent: usize,
        /// The rejected score.
        score: f64,
    },
    /// A task is in flight on an agent that is not on the agent axis.
    #[error("task {task} is held by agent {agent}, which is not on the agent axis")]
    UnknownAgent {
        /// The task.
        task: TaskId,
        /// The agent holding it.
        agent: AgentId,
    },
    /// An array's shape does not match the index maps it is paired with.
    #[error("shape mismatch: expected {expected:?}, found {found:?}")]
    ShapeMismatch {
        /// `[tasks, agents, levels]` of the index maps.
        expected: [usize; 3],
        /// The shape found.
        found: [usize; 3],
    },
    /// The tensor is too large to represent: an axis longer than `u32::MAX`,
    /// or a dense form of more than
    /// [`MAX_DENSE_CELLS`](crate::planning::MAX_DENSE_CELLS) cells.
    #[error("a tensor of {tasks} tasks x {agents} agents is too large to represent")]
    TooLarge {
        /// Length of the task axis.
        tasks: usize,
        /// Length of the agent axis.
        agents: usize,
    },
    /// A sparse entry lies outside the tensor's shape.
    #[error("entry ({task}, {agent}) is outside a tensor of {tasks} tasks x {agents} agents")]
    EntryOutOfRange {
        /// Task index of the entry.
        task: usize,
        /// Agent index of the entry.
        agent: usize,
        /// Length of the task axis.
        tasks: usize,
        /// Length of the agent axis.
        agents: usize,
    },
    /// Two sparse entries share one coordinate.
    #[error("two entries at ({task}, {agent}, {priority})")]
    DuplicateEntry {
        /// Task index.
        task: usize,
        /// Agent index.
        agent: usize,
        /// Priority level.
        priority: Priority,
    },
    /// A tensor value is not a probability: NaN, infinite, negative or above 1.
    #[error("value {value} at ({task}, {agent}, {priority}) is not in [0, 1]")]
    InvalidValue {
        /// Task index.
        task: usize,
        /// Agent index.
        agent: usize,
        /// Priority level.
        priority: Priority,
        /// The rejected value.
        value: f32,
    },

    // --- capability matrix and phased plans ---
    /// An agent's number is out of range: a speed that is not finite and
    /// positive, a cost that is not finite and non-negative, a success rate
    /// outside `[0, 1]`.
    #[error("agent {agent} has an invalid {field}: {value}")]
    InvalidAgent {
        /// The agent.
        agent: AgentId,
        /// The field: `speed`, `cost` or `success_rate`.
        field: &'static str,
        /// The rejected value.
        value: f64,
    },
    /// The agent is not in the capability matrix.
    #[error("agent {0} is not in the capability matrix")]
    UnknownPlanAgent(AgentId),
    /// A phase names a step the workflow lacks.
    #[error("phase {phase:?} names step {step:?}, which the workflow lacks")]
    UnknownPlanStep {
        /// The phase.
        phase: String,
        /// The unknown step key.
        step: String,
    },
    /// A step is listed twice: in two phases, or twice in one.
    #[error("step {step:?} is listed in phase {first_phase:?} and again in {second_phase:?}")]
    StepListedTwice {
        /// The step key.
        step: String,
        /// The phase listing it first.
        first_phase: String,
        /// The phase listing it again (the same one for a repeat).
        second_phase: String,
    },
    /// A step is in no phase.
    #[error("step {step:?} is in no phase")]
    StepWithoutPhase {
        /// The step key.
        step: String,
    },
    /// A phase has no steps.
    #[error("phase {phase:?} has no steps")]
    EmptyPhase {
        /// The phase.
        phase: String,
    },
    /// Two phases share a name.
    #[error("two phases are named {phase:?}")]
    DuplicatePhase {
        /// The repeated name.
        phase: String,
    },
    /// A step depends on a step of a later phase.
    #[error(
        "step {step:?} of phase {phase:?} depends on {depends_on:?} of the later phase {later_phase:?}"
    )]
    PhaseOrder {
        /// The dependent step.
        step: String,
        /// Its phase.
        phase: String,
        /// The step it depends on.
        depends_on: String,
        /// That step's phase, which comes later.
        later_phase: String,
    },

    // --- goal decomposition ---
    /// No template's pattern matches the goal.
    #[error("no template matches the goal {goal:?}")]
    NoMatchingTemplate {
        /// The goal.
        goal: String,
    },
    /// Two templates share a name.
    #[error("two templates are named {template:?}")]
    DuplicateTemplate {
        /// The repeated name.
        template: String,
    },
    /// A template has no pattern, or a pattern without words: it could
    /// never be selected.
    #[error("template {template:?} has no pattern with words in it")]
    TemplateWithoutPattern {
        /// The template.
        template: String,
    },
    /// A template does not make a valid plan.
    #[error("template {template:?} does not make a valid plan")]
    InvalidTemplate {
        /// The template.
        template: String,
        /// Why its plan is invalid.
        source: Box<PlanningError>,
    },
    /// The workflow of a plan is invalid.
    #[error(transparent)]
    Definition(#[from] DefinitionError),

    // --- team assembly ---
    /// Some agent steps of a phase can be done by no agent of the matrix.
    ///
    /// A step is uncovered when it needs a capability no agent has, or
    /// when every capability it needs exists but no single agent has them
    /// all. Every uncovered step of the phase is reported, not just the
    /// first. Only [`StepKind::Agent`](crate::workflow::StepKind::Agent)
    /// steps need an agent: local, wait and sub-workflow steps never make
    /// this error, whatever capabilities they list.
    #[error(
        "phase {phase:?}: no agent can do steps {steps:?} (capabilities no agent has: \
         {capabilities:?}; combinations no single agent has: {combinations:?})"
    )]
    UncoveredCapabilities {
        /// The phase.
        phase: String,
        /// Capabilities the uncovered steps need and no agent has at all,
        /// sorted and deduplicated.
        capabilities: Vec<String>,
        /// The capability sets of the uncovered steps whose capabilities
        /// all exist but never together on one agent: each sorted, the
        /// list sorted and deduplicated. (With no agent at all, a step
        /// needing nothing shows here as the empty set.)
        combinations: Vec<Vec<String>>,
        /// The keys of the steps no agent can do, in the phase's order.
        steps: Vec<String>,
    },
    /// A phase index past the end of the plan.
    #[error("phase index {index} is out of range: the plan has {phases} phases")]
    PhaseOutOfRange {
        /// The index asked for.
        index: usize,
        /// Number of phases of the plan.
        phases: usize,
    },
    /// A team assembler setting is out of range: a continuity preference
    /// outside `[0, 1]`, a weight that is not finite and non-negative.
    #[error("team setting {setting} must be {expected}, got {value}")]
    InvalidTeamSetting {
        /// The setting: `continuity`, `load_weight` or `performance_weight`.
        setting: &'static str,
        /// The accepted range, in words.
        expected: &'static str,
        /// The rejected value.
        value: f64,
    },

    // --- HEFT ---
    /// A step has no estimated duration, so a schedule cannot tell how long
    /// it runs on any agent.
    #[error("step {step:?} has no estimated duration")]
    MissingEstimate {
        /// The step's key.
        step: String,
    },
    /// No agent of the capability matrix has every capability a step
    /// requires.
    #[error("no agent has every capability step {step:?} requires: {capabilities:?}")]
    NoCapableAgent {
        /// The step's key.
        step: String,
        /// The capabilities it requires.
        capabilities: Vec<String>,
    },
}
