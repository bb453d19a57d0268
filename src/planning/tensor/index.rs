//! The index maps of a task tensor: task index ↔ [`TaskId`], agent index ↔
//! [`AgentId`].

use std::mem::size_of;

use super::super::PlanningError;
use crate::{AgentId, TaskId};

/// The two axes of a task tensor named: position `i` on the task axis is
/// task `tasks()[i]`, position `j` on the agent axis is agent `agents()[j]`.
///
/// Lookups by id binary-search a sorted copy of each axis (`O(log n)`), so
/// the index holds no hash map and its memory is exact. Both axes are at
/// most `u32::MAX` long, which lets the sparse form store its coordinates
/// in 32 bits.
///
/// ```
/// use taskweave::planning::TensorIndex;
/// use taskweave::{AgentId, TaskId};
///
/// let index = TensorIndex::new([TaskId::new(7), TaskId::new(3)], [AgentId::new(1)])?;
/// assert_eq!(index.task_index(TaskId::new(3)), Some(1));
/// assert_eq!(index.agent_id(0), Some(AgentId::new(1)));
/// assert!(TensorIndex::new([TaskId::new(7), TaskId::new(7)], []).is_err());
/// # Ok::<(), taskweave::planning::PlanningError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "IndexParts", into = "IndexParts"))]
pub struct TensorIndex {
    tasks: Vec<TaskId>,
    agents: Vec<AgentId>,
    /// `(id, position)`, sorted by id.
    task_lookup: Vec<(TaskId, u32)>,
    /// `(id, position)`, sorted by id.
    agent_lookup: Vec<(AgentId, u32)>,
}

/// What a [`TensorIndex`] serializes to: the two axes in order.
#[cfg(feature = "serde")]
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct IndexParts {
    tasks: Vec<TaskId>,
    agents: Vec<AgentId>,
}

#[cfg(feature = "serde")]
impl TryFrom<IndexParts> for TensorIndex {
    type Error = PlanningError;

    fn try_from(parts: IndexParts) -> Result<Self, Self::Error> {
        TensorIndex::new(parts.tasks, parts.agents)
    }
}

#[cfg(feature = "serde")]
impl From<TensorIndex> for IndexParts {
    fn from(index: TensorIndex) -> Self {
        IndexParts {
            tasks: index.tasks,
            agents: index.agents,
        }
    }
}

/// `(id, position)` pairs sorted by id, or the first repeated id.
fn lookup<T: Copy + Ord>(ids: &[T]) -> Result<Vec<(T, u32)>, T> {
    let mut sorted: Vec<(T, u32)> = ids
        .iter()
        .zip(0u32..)
        .map(|(&id, position)| (id, position))
        .collect();
    sorted.sort_unstable();
    match sorted.windows(2).find(|pair| pair[0].0 == pair[1].0) {
        Some(pair) => Err(pair[0].0),
        None => Ok(sorted),
    }
}

fn find<T: Copy + Ord>(lookup: &[(T, u32)], id: T) -> Option<usize> {
    lookup
        .binary_search_by(|&(probe, _)| probe.cmp(&id))
        .ok()
        .and_then(|at| lookup.get(at))
        .map(|&(_, position)| position as usize)
}

impl TensorIndex {
    /// Names the task axis and the agent axis, in the order given.
    ///
    /// Costs `O(n log n + m log m)` for `n` tasks and `m` agents.
    ///
    /// # Errors
    ///
    /// [`PlanningError::DuplicateTask`] or [`PlanningError::DuplicateAgent`]
    /// for an id given twice (the smallest such id is reported);
    /// [`PlanningError::TooLarge`] for an axis longer than `u32::MAX`.
    pub fn new(
        tasks: impl IntoIterator<Item = TaskId>,
        agents: impl IntoIterator<Item = AgentId>,
    ) -> Result<Self, PlanningError> {
        let tasks: Vec<TaskId> = tasks.into_iter().collect();
        let agents: Vec<AgentId> = agents.into_iter().collect();
        if u32::try_from(tasks.len()).is_err() || u32::try_from(agents.len()).is_err() {
            return Err(PlanningError::TooLarge {
                tasks: tasks.len(),
                agents: agents.len(),
            });
        }
        let task_lookup = lookup(&tasks).map_err(PlanningError::DuplicateTask)?;
        let agent_lookup = lookup(&agents).map_err(PlanningError::DuplicateAgent)?;
        Ok(TensorIndex {
            tasks,
            agents,
            task_lookup,
            agent_lookup,
        })
    }

    /// Length of the task axis.
    pub fn n_tasks(&self) -> usize {
        self.tasks.len()
    }

    /// Length of the agent axis.
    pub fn n_agents(&self) -> usize {
        self.agents.len()
    }

    /// The task axis: the task at each index.
    pub fn tasks(&self) -> &[TaskId] {
        &self.tasks
    }

    /// The agent axis: the agent at each index.
    pub fn agents(&self) -> &[AgentId] {
        &self.agents
    }

    /// The task at `index`, if the axis is that long.
    pub fn task_id(&self, index: usize) -> Option<TaskId> {
        self.tasks.get(index).copied()
    }

    /// The agent at `index`, if the axis is that long.
    pub fn agent_id(&self, index: usize) -> Option<AgentId> {
        self.agents.get(index).copied()
    }

    /// The position of `task` on the task axis. `O(log n)`.
    pub fn task_index(&self, task: TaskId) -> Option<usize> {
        find(&self.task_lookup, task)
    }

    /// The position of `agent` on the agent axis. `O(log m)`.
    pub fn agent_index(&self, agent: AgentId) -> Option<usize> {
        find(&self.agent_lookup, agent)
    }

    /// Heap bytes held (by capacity): the two axes and their sorted lookups.
    pub fn memory_bytes(&self) -> usize {
        self.tasks.capacity() * size_of::<TaskId>()
            + self.agents.capacity() * size_of::<AgentId>()
            + self.task_lookup.capacity() * size_of::<(TaskId, u32)>()
            + self.agent_lookup.capacity() * size_of::<(AgentId, u32)>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_invert_the_axes() {
        let tasks = [9, 2, 5].map(TaskId::new);
        let agents = [4, 1].map(AgentId::new);
        let index = TensorIndex::new(tasks, agents).unwrap();
        for (i, &task) in tasks.iter().enumerate() {
            assert_eq!(index.task_index(task), Some(i));
            assert_eq!(index.task_id(i), Some(task));
        }
        for (j, &agent) in agents.iter().enumerate() {
            assert_eq!(index.agent_index(agent), Some(j));
        }
        assert_eq!(index.task_index(TaskId::new(3)), None);
        assert_eq!(index.agent_id(2), None);
        assert_eq!((index.n_tasks(), index.n_agents()), (3, 2));
        assert!(index.memory_bytes() >= 3 * 8 + 2 * 8 + 3 * 16 + 2 * 16);
    }

    #[test]
    fn duplicates_are_refused_with_the_id() {
        assert_eq!(
            TensorIndex::new([TaskId::new(1), TaskId::new(1)], []),
            Err(PlanningError::DuplicateTask(TaskId::new(1)))
        );
        assert_eq!(
            TensorIndex::new([], [AgentId::new(2), AgentId::new(3), AgentId::new(2)]),
            Err(PlanningError::DuplicateAgent(AgentId::new(2)))
        );
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serde_round_trips_and_validates() {
        let index = TensorIndex::new([TaskId::new(3)], [AgentId::new(1), AgentId::new(2)]).unwrap();
        let json = serde_json::to_string(&index).unwrap();
        assert_eq!(json, r#"{"tasks":[3],"agents":[1,2]}"#);
        assert_eq!(serde_json::from_str::<TensorIndex>(&json).unwrap(), index);
        assert!(serde_json::from_str::<TensorIndex>(r#"{"tasks":[3,3],"agents":[]}"#).is_err());
    }
}
