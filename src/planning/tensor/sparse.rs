//! The sparse coordinate (COO) form of the task tensor.

use std::mem::size_of;

use super::build::{self, Row, Sink};
use super::{DenseSink, PRIORITY_LEVELS, TaskTensor, TensorIndex, TensorOptions, TensorTask};
use crate::agent::AgentRecord;
use crate::planning::PlanningError;
use crate::routing::{ResolvedRequirements, RoutingStrategy, Scored};
use crate::scheduler::Dispatcher;
use crate::{AgentId, Priority};

/// One non-zero value of a [`SparseTaskTensor`].
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SparseEntry {
    /// Task index (axis 0).
    pub task: usize,
    /// Agent index (axis 1).
    pub agent: usize,
    /// Priority level (axis 2).
    pub priority: Priority,
    /// The value: 1 for an assignment, a probability for a candidate.
    pub value: f32,
}

/// The task tensor in sparse coordinate (COO) form: the non-zero values and
/// their `(task, agent, priority)` coordinates, sorted by task, then agent,
/// then priority — the row-major order of the dense array — with no zero
/// stored and no coordinate twice.
///
/// Coordinates are stored as separate arrays (`u32` task, `u32` agent, one
/// byte of priority, `f32` value: 13 bytes per non-zero), so 10,000 tasks
/// with 16 candidates each take about 2 MB whatever the number of agents.
/// Building one from a plan or a dispatcher never touches the dense
/// `n_tasks × n_agents × 4` space: time and memory grow with the number of
/// tasks and non-zeros.
///
/// ```
/// use taskweave::planning::{SparseTaskTensor, TensorOptions, TensorTask};
/// use taskweave::{AgentId, Priority, TaskId};
///
/// let agents: Vec<AgentId> = (0..1_000).map(AgentId::new).collect();
/// let tasks = [
///     TensorTask::assigned_to(TaskId::new(1), Priority::Critical, 999),
///     TensorTask::with_candidates(TaskId::new(2), Priority::Low, [(7, 2.0), (3, 2.0)]),
/// ];
/// let tensor = SparseTaskTensor::from_plan(&agents, &tasks, &TensorOptions::new())?;
/// assert_eq!((tensor.shape(), tensor.nnz()), ([2, 1_000, 4], 3));
/// let open: Vec<(usize, f32)> = tensor.task_entries(1).map(|e| (e.agent, e.value)).collect();
/// assert_eq!(open, [(3, 0.5), (7, 0.5)]);
/// assert_eq!(tensor.get(0, 999, Priority::Critical), Some(1.0));
/// assert_eq!(tensor.get(0, 998, Priority::Critical), Some(0.0));
/// assert_eq!(tensor.row_sums(), [1.0, 1.0]);
/// # Ok::<(), taskweave::planning::PlanningError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(try_from = "SparseParts", into = "SparseParts")
)]
pub struct SparseTaskTensor {
    index: TensorIndex,
    tasks: Vec<u32>,
    agents: Vec<u32>,
    priorities: Vec<Priority>,
    values: Vec<f32>,
}

/// What a [`SparseTaskTensor`] serializes to: the index and the
/// coordinate arrays. Deserializing validates them again.
#[cfg(feature = "serde")]
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct SparseParts {
    index: TensorIndex,
    tasks: Vec<u32>,
    agents: Vec<u32>,
    priorities: Vec<Priority>,
    values: Vec<f32>,
}

#[cfg(feature = "serde")]
impl TryFrom<SparseParts> for SparseTaskTensor {
    type Error = PlanningError;

    fn try_from(parts: SparseParts) -> Result<Self, Self::Error> {
        let n = parts.values.len();
        if [
            parts.tasks.len(),
            parts.agents.len(),
            parts.priorities.len(),
        ] != [n, n, n]
        {
            return Err(PlanningError::ShapeMismatch {
                expected: [n, n, n],
                found: [
                    parts.tasks.len(),
                    parts.agents.len(),
                    parts.priorities.len(),
                ],
            });
        }
        let entries = parts
            .tasks
            .iter()
            .zip(&parts.agents)
            .zip(&parts.priorities)
            .zip(&parts.values)
            .map(|(((&task, &agent), &priority), &value)| SparseEntry {
                task: task as usize,
                agent: agent as usize,
                priority,
                value,
            });
        SparseTaskTensor::from_entries(parts.index, entries)
    }
}

#[cfg(feature = "serde")]
impl From<SparseTaskTensor> for SparseParts {
    fn from(tensor: SparseTaskTensor) -> Self {
        SparseParts {
            index: tensor.index,
            tasks: tensor.tasks,
            agents: tensor.agents,
            priorities: tensor.priorities,
            values: tensor.values,
        }
    }
}

/// Appends rows, which arrive in task order with agents sorted.
struct SparseSink {
    tasks: Vec<u32>,
    agents: Vec<u32>,
    priorities: Vec<Priority>,
    values: Vec<f32>,
}

impl SparseSink {
    fn with_capacity(nnz: usize) -> Self {
        SparseSink {
            tasks: Vec::with_capacity(nnz),
            agents: Vec::with_capacity(nnz),
            priorities: Vec::with_capacity(nnz),
            values: Vec::with_capacity(nnz),
        }
    }

    fn push(&mut self, task: u32, agent: u32, priority: Priority, value: f32) {
        self.tasks.push(task);
        self.agents.push(agent);
        self.priorities.push(priority);
        self.values.push(value);
    }

    fn finish(mut self, index: TensorIndex) -> SparseTaskTensor {
        self.tasks.shrink_to_fit();
        self.agents.shrink_to_fit();
        self.priorities.shrink_to_fit();
        self.values.shrink_to_fit();
        SparseTaskTensor {
            index,
            tasks: self.tasks,
            agents: self.agents,
            priorities: self.priorities,
            values: self.values,
        }
    }
}

impl Sink for SparseSink {
    fn row(&mut self, task: u32, priority: Priority, entries: &Row) {
        for &(agent, value) in entries {
            self.push(task, agent, priority, value);
        }
    }
}

impl SparseTaskTensor {
    /// The sparse tensor of a plan: task `i` of `tasks` on row `i`, agent
    /// index `j` naming `agents[j]`. The same values as
    /// [`TaskTensor::from_plan`], without the dense array.
    ///
    /// Costs `O(n log n + m log m)` for the index plus `O(c log c)` per task
    /// with `c` candidates.
    ///
    /// # Errors
    ///
    /// As [`TaskTensor::from_plan`], except that no size is too large.
    pub fn from_plan(
        agents: &[AgentId],
        tasks: &[TensorTask],
        options: &TensorOptions,
    ) -> Result<Self, PlanningError> {
        let index = build::plan_index(agents, tasks)?;
        let mut sink = SparseSink::with_capacity(build::plan_nnz_bound(tasks, options));
        build::plan_rows(&index, tasks, options, &mut sink)?;
        Ok(sink.finish(index))
    }

    /// The sparse tensor of a dispatcher's live tasks, scored with the
    /// default [`Scored`] weights. See [`TaskTensor::from_dispatcher_with`]
    /// for the axes and the meaning of the values.
    ///
    /// # Errors
    ///
    /// As [`from_dispatcher_with`](Self::from_dispatcher_with).
    pub fn from_dispatcher<P, S: RoutingStrategy>(
        dispatcher: &Dispatcher<P, S>,
        options: &TensorOptions,
    ) -> Result<Self, PlanningError> {
        let scored = Scored::new();
        Self::from_dispatcher_with(dispatcher, options, |r, a| scored.score(r, a))
    }

    /// The sparse tensor of a dispatcher's live tasks, with `score` rating
    /// each capable agent; the same values as
    /// [`TaskTensor::from_dispatcher_with`]. Every capable agent of a
    /// waiting task is a non-zero: set a top-k cut in `options` to bound
    /// them when many agents are capable.
    ///
    /// Costs `O(live tasks + r · m + nnz)` for `r` distinct requirement sets
    /// and `m` agents.
    ///
    /// # Errors
    ///
    /// [`PlanningError::NonFiniteScore`] if `score` returns NaN or an
    /// infinity.
    pub fn from_dispatcher_with<P, S, F>(
        dispatcher: &Dispatcher<P, S>,
        options: &TensorOptions,
        score: F,
    ) -> Result<Self, PlanningError>
    where
        S: RoutingStrategy,
        F: FnMut(&ResolvedRequirements, &AgentRecord) -> f64,
    {
        let (index, live) = build::live(dispatcher)?;
        let mut sink = SparseSink::with_capacity(live.len());
        live.rows(&index, options, score, &mut sink)?;
        Ok(sink.finish(index))
    }

    /// A tensor from entries in any order. Zero values are dropped.
    ///
    /// Costs `O(e log e)` for `e` entries.
    ///
    /// # Errors
    ///
    /// [`PlanningError::EntryOutOfRange`] for a coordinate outside the
    /// index's axes, [`PlanningError::InvalidValue`] for a value outside
    /// `[0, 1]` or NaN, [`PlanningError::DuplicateEntry`] for a coordinate
    /// given twice (zeros included).
    pub fn from_entries(
        index: TensorIndex,
        entries: impl IntoIterator<Item = SparseEntry>,
    ) -> Result<Self, PlanningError> {
        let (tasks, agents) = (index.n_tasks(), index.n_agents());
        let mut sorted: Vec<(u32, u32, Priority, f32)> = Vec::new();
        for entry in entries {
            let SparseEntry {
                task,
                agent,
                priority,
                value,
            } = entry;
            let coordinates = u32::try_from(task)
                .ok()
                .zip(u32::try_from(agent).ok())
                .filter(|_| task < tasks && agent < agents)
                .ok_or(PlanningError::EntryOutOfRange {
                    task,
                    agent,
                    tasks,
                    agents,
                })?;
            if !(0.0..=1.0).contains(&value) {
                return Err(PlanningError::InvalidValue {
                    task,
                    agent,
                    priority,
                    value,
                });
            }
            sorted.push((coordinates.0, coordinates.1, priority, value));
        }
        sorted.sort_unstable_by_key(|&(task, agent, priority, _)| (task, agent, priority));
        if let Some(pair) = sorted
            .windows(2)
            .find(|pair| (pair[0].0, pair[0].1, pair[0].2) == (pair[1].0, pair[1].1, pair[1].2))
        {
            return Err(PlanningError::DuplicateEntry {
                task: pair[0].0 as usize,
                agent: pair[0].1 as usize,
                priority: pair[0].2,
            });
        }
        let mut sink = SparseSink::with_capacity(sorted.len());
        for (task, agent, priority, value) in sorted.into_iter().filter(|e| e.3 != 0.0) {
            sink.push(task, agent, priority, value);
        }
        Ok(sink.finish(index))
    }

    /// The non-zero values of a dense tensor. Scans the whole array:
    /// `O(n · m)`.
    pub fn from_dense(dense: &TaskTensor) -> Self {
        let stride = dense.index().n_agents() * PRIORITY_LEVELS;
        // A built tensor is always in standard layout: this borrows.
        let values = dense.values.as_standard_layout();
        let flat = values.as_slice().unwrap_or_default();
        let mut sink = SparseSink::with_capacity(0);
        if stride > 0 {
            for (task, row) in (0u32..).zip(flat.chunks_exact(stride)) {
                for (agent, cell) in (0u32..).zip(row.chunks_exact(PRIORITY_LEVELS)) {
                    if cell.iter().all(|&v| v == 0.0) {
                        continue;
                    }
                    for (&priority, &value) in Priority::ALL.iter().zip(cell) {
                        if value != 0.0 {
                            sink.push(task, agent, priority, value);
                        }
                    }
                }
            }
        }
        sink.finish(dense.index().clone())
    }

    /// The dense form. Costs `O(n · m + nnz)`.
    ///
    /// # Errors
    ///
    /// [`PlanningError::TooLarge`] if the dense array would hold more than
    /// [`MAX_DENSE_CELLS`](super::MAX_DENSE_CELLS) cells; checked before
    /// anything is allocated.
    pub fn to_dense(&self) -> Result<TaskTensor, PlanningError> {
        let index = self.index.clone();
        let mut sink = DenseSink::new(&index)?;
        for (((&task, &agent), &priority), &value) in self
            .tasks
            .iter()
            .zip(&self.agents)
            .zip(&self.priorities)
            .zip(&self.values)
        {
            sink.row(task, priority, &[(agent, value)]);
        }
        sink.finish(index)
    }

    /// The index naming the axes.
    pub fn index(&self) -> &TensorIndex {
        &self.index
    }

    /// `[n_tasks, n_agents, 4]`.
    pub fn shape(&self) -> [usize; 3] {
        [self.index.n_tasks(), self.index.n_agents(), PRIORITY_LEVELS]
    }

    /// Number of non-zero values.
    pub fn nnz(&self) -> usize {
        self.values.len()
    }

    /// Task index of each non-zero.
    pub fn task_coords(&self) -> &[u32] {
        &self.tasks
    }

    /// Agent index of each non-zero.
    pub fn agent_coords(&self) -> &[u32] {
        &self.agents
    }

    /// Priority level of each non-zero.
    pub fn priorities(&self) -> &[Priority] {
        &self.priorities
    }

    /// Each non-zero value.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// Every non-zero, in coordinate order.
    pub fn iter(&self) -> impl Iterator<Item = SparseEntry> + '_ {
        self.entries(0..self.values.len())
    }

    /// The non-zeros of one task, by agent index; none past the last task.
    /// Costs `O(log nnz)` to find them.
    pub fn task_entries(&self, task: usize) -> impl Iterator<Item = SparseEntry> + '_ {
        self.entries(self.task_range(task))
    }

    /// The value at `(task, agent, priority)` (0 where nothing is stored),
    /// or `None` outside the shape. `O(log nnz)`.
    pub fn get(&self, task: usize, agent: usize, priority: Priority) -> Option<f32> {
        if task >= self.index.n_tasks() || agent >= self.index.n_agents() {
            return None;
        }
        let range = self.task_range(task);
        let agents = self.agents.get(range.clone()).unwrap_or_default();
        // Entries of one task are sorted by agent: at most four per agent.
        let first = agents.partition_point(|&a| (a as usize) < agent);
        let value = self
            .entries(range.start + first..range.end)
            .take_while(|e| e.agent == agent)
            .find(|e| e.priority == priority)
            .map_or(0.0, |e| e.value);
        Some(value)
    }

    /// The sum of one task's values (1 or 0 for a built tensor), or `None`
    /// past the last task. Summed in `f64`.
    pub fn task_sum(&self, task: usize) -> Option<f32> {
        (task < self.index.n_tasks()).then(|| {
            self.task_entries(task)
                .map(|e| f64::from(e.value))
                .sum::<f64>() as f32
        })
    }

    /// The sum of every task's values, in task order. `O(n + nnz)`.
    pub fn row_sums(&self) -> Vec<f32> {
        let mut sums = vec![0.0f64; self.index.n_tasks()];
        for (&task, &value) in self.tasks.iter().zip(&self.values) {
            if let Some(sum) = sums.get_mut(task as usize) {
                *sum += f64::from(value);
            }
        }
        sums.into_iter().map(|s| s as f32).collect()
    }

    /// Heap bytes held (by capacity): 13 bytes per non-zero plus the index.
    pub fn memory_bytes(&self) -> usize {
        self.tasks.capacity() * size_of::<u32>()
            + self.agents.capacity() * size_of::<u32>()
            + self.priorities.capacity() * size_of::<Priority>()
            + self.values.capacity() * size_of::<f32>()
            + self.index.memory_bytes()
    }

    /// Positions of task `task`'s non-zeros.
    fn task_range(&self, task: usize) -> std::ops::Range<usize> {
        let Ok(task) = u32::try_from(task) else {
            return 0..0;
        };
        let start = self.tasks.partition_point(|&t| t < task);
        let end = self.tasks.partition_point(|&t| t <= task);
        start..end
    }

    fn entries(&self, range: std::ops::Range<usize>) -> impl Iterator<Item = SparseEntry> + '_ {
        let tasks = self.tasks.get(range.clone()).unwrap_or_default();
        let agents = self.agents.get(range.clone()).unwrap_or_default();
        let priorities = self.priorities.get(range.clone()).unwrap_or_default();
        let values = self.values.get(range).unwrap_or_default();
        tasks.iter().zip(agents).zip(priorities).zip(values).map(
            |(((&task, &agent), &priority), &value)| SparseEntry {
                task: task as usize,
                agent: agent as usize,
                priority,
                value,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TaskId;

    fn index(tasks: u64, agents: u64) -> TensorIndex {
        TensorIndex::new((0..tasks).map(TaskId::new), (0..agents).map(AgentId::new)).unwrap()
    }

    fn entry(task: usize, agent: usize, priority: Priority, value: f32) -> SparseEntry {
        SparseEntry {
            task,
            agent,
            priority,
            value,
        }
    }

    #[test]
    fn entries_are_sorted_row_major_and_zeros_dropped() {
        let tensor = SparseTaskTensor::from_entries(
            index(3, 4),
            [
                entry(2, 0, Priority::Low, 1.0),
                entry(0, 3, Priority::High, 0.25),
                entry(0, 1, Priority::High, 0.75),
                entry(1, 2, Priority::Normal, 0.0),
            ],
        )
        .unwrap();
        assert_eq!(tensor.task_coords(), [0, 0, 2]);
        assert_eq!(tensor.agent_coords(), [1, 3, 0]);
        assert_eq!(
            tensor.priorities(),
            [Priority::High, Priority::High, Priority::Low]
        );
        assert_eq!(tensor.values(), [0.75, 0.25, 1.0]);
        assert_eq!(tensor.task_entries(1).count(), 0);
        assert_eq!(tensor.task_entries(7).count(), 0);
        assert_eq!(tensor.task_sum(1), Some(0.0));
        assert_eq!(tensor.task_sum(3), None);
        assert_eq!(tensor.row_sums(), [1.0, 0.0, 1.0]);
        assert_eq!(tensor.get(0, 3, Priority::High), Some(0.25));
        assert_eq!(tensor.get(0, 3, Priority::Low), Some(0.0));
        assert_eq!(tensor.get(0, 2, Priority::High), Some(0.0));
        assert_eq!(tensor.get(0, 4, Priority::High), None);
        assert_eq!(tensor.get(3, 0, Priority::High), None);
        let dense = tensor.to_dense().unwrap();
        assert_eq!(dense.nnz(), 3);
        assert_eq!(SparseTaskTensor::from(&dense), tensor);
        assert_eq!(TaskTensor::try_from(&tensor).unwrap(), dense);
    }

    #[test]
    fn bad_entries_get_typed_errors() {
        let build =
            |entries: Vec<SparseEntry>| SparseTaskTensor::from_entries(index(2, 2), entries);
        assert_eq!(
            build(vec![entry(2, 0, Priority::Low, 1.0)]),
            Err(PlanningError::EntryOutOfRange {
                task: 2,
                agent: 0,
                tasks: 2,
                agents: 2
            })
        );
        assert_eq!(
            build(vec![entry(0, 9, Priority::Low, 1.0)]).unwrap_err(),
            PlanningError::EntryOutOfRange {
                task: 0,
                agent: 9,
                tasks: 2,
                agents: 2
            }
        );
        for bad in [f32::NAN, -0.5, 1.5, f32::INFINITY] {
            assert!(matches!(
                build(vec![entry(1, 1, Priority::High, bad)]),
                Err(PlanningError::InvalidValue {
                    task: 1,
                    agent: 1,
                    ..
                })
            ));
        }
        assert_eq!(
            build(vec![
                entry(1, 1, Priority::High, 0.5),
                entry(0, 0, Priority::High, 0.5),
                entry(1, 1, Priority::High, 0.0),
            ]),
            Err(PlanningError::DuplicateEntry {
                task: 1,
                agent: 1,
                priority: Priority::High
            })
        );
    }

    #[test]
    fn building_never_touches_the_dense_space() {
        // 100,000 tasks x 100,000 agents would take 160 GB dense.
        let agents: Vec<AgentId> = (0..100_000).map(AgentId::new).collect();
        let tasks: Vec<TensorTask> = (0..100_000u64)
            .map(|t| {
                let agent = (t * 7919 % 100_000) as usize;
                TensorTask::with_candidates(TaskId::new(t), Priority::Normal, [(agent, 1.0)])
            })
            .collect();
        let tensor = SparseTaskTensor::from_plan(&agents, &tasks, &TensorOptions::new()).unwrap();
        assert_eq!(tensor.nnz(), 100_000);
        assert_eq!(tensor.shape(), [100_000, 100_000, 4]);
        assert!(
            tensor.memory_bytes() < 8_000_000,
            "{}",
            tensor.memory_bytes()
        );
    }

    #[test]
    fn memory_is_thirteen_bytes_per_non_zero_plus_the_index() {
        let tensor = SparseTaskTensor::from_entries(
            index(2, 2),
            [
                entry(0, 0, Priority::Low, 1.0),
                entry(1, 1, Priority::Low, 1.0),
            ],
        )
        .unwrap();
        assert_eq!(
            tensor.memory_bytes(),
            2 * 13 + tensor.index().memory_bytes()
        );
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serde_round_trips_and_validates_again() {
        let tensor = SparseTaskTensor::from_entries(
            index(2, 3),
            [
                entry(1, 2, Priority::Critical, 0.5),
                entry(1, 0, Priority::Critical, 0.5),
            ],
        )
        .unwrap();
        let json = serde_json::to_string(&tensor).unwrap();
        assert_eq!(
            serde_json::from_str::<SparseTaskTensor>(&json).unwrap(),
            tensor
        );
        let forged = json.replace("[0,2]", "[0,7]");
        assert_ne!(forged, json);
        assert!(serde_json::from_str::<SparseTaskTensor>(&forged).is_err());
        let ragged = json.replace("\"values\":[0.5,0.5]", "\"values\":[0.5]");
        assert!(serde_json::from_str::<SparseTaskTensor>(&ragged).is_err());
    }
}
