//! Errors of the planning module.

use thiserror::Error;

use crate::{AgentId, Priority, TaskId};

/// Why a planning structure could not be built. Every variant carries the
/// offending value. More variants will come as the planning module grows.
#[derive(Clone, Debug, PartialEq, Error)]
#[non_exhaustive]
pub enum PlanningError {
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
    /// or a dense form larger than `isize::MAX` bytes.
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
}
