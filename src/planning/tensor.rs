//! The task tensor `T[n_tasks, n_agents, p_levels]` and its dense form.
//!
//! Axis 0 is the task, axis 1 the agent, axis 2 the [`Priority`] level
//! (`P0`–`P3`). A task's slice `T[t, .., ..]` holds where the task goes:
//!
//! * an assigned task is **one-hot**: 1 at `(t, its agent, its priority)`;
//! * an unassigned task holds **probabilities** at its priority level only:
//!   a softmax of its candidates' scores over the agents capable of it
//!   ([`TensorOptions`]). The slice sums to 1, or to 0 when no agent is
//!   capable.
//!
//! [`TaskTensor`] is the dense form, an `ndarray::Array3<f32>`;
//! [`SparseTaskTensor`] the sparse coordinate (COO) form. Both carry a
//! [`TensorIndex`] naming the axes, convert into each other, and are built
//! from the same inputs: a plan ([`TensorTask`]s over an agent list) or the
//! live tasks of a [`Dispatcher`].

mod build;
mod index;
mod options;
mod sparse;

use std::mem::size_of;

use ndarray::{Array3, ArrayView2, ArrayView3, Axis};

pub use index::TensorIndex;
pub use options::{TensorOptions, TensorTask};
pub use sparse::{SparseEntry, SparseTaskTensor};

use build::{Row, Sink};

use crate::agent::AgentRecord;
use crate::planning::PlanningError;
use crate::routing::{ResolvedRequirements, RoutingStrategy, Scored};
use crate::scheduler::Dispatcher;
use crate::{AgentId, Priority};

/// Number of priority levels: the length of axis 2.
pub const PRIORITY_LEVELS: usize = Priority::LEVELS;

/// The task tensor in dense form: an `Array3<f32>` of shape
/// `[n_tasks, n_agents, 4]` in standard (row-major) layout, plus the
/// [`TensorIndex`] naming its axes.
///
/// Memory is `16 · n_tasks · n_agents` bytes — 160 MB for 10,000 tasks and
/// 1,000 agents — so prefer [`SparseTaskTensor`] for large pools and convert
/// only the part of the work that needs dense algebra. A dense tensor holds
/// at most [`MAX_DENSE_CELLS`] cells (1 GiB); larger shapes are refused with
/// [`PlanningError::TooLarge`].
///
/// **ndarray in the API, on purpose.** The dense form *is* an ndarray
/// `Array3` (and its views), so a host can hand it straight to numeric
/// code; that is the one place third-party types appear in taskweave's
/// public signatures. The `planning` feature pins the ndarray version, and
/// [`planning::ndarray`](crate::planning::ndarray) re-exports it so a host
/// names the same types.
///
/// ```
/// use taskweave::planning::{TaskTensor, TensorOptions, TensorTask};
/// use taskweave::{AgentId, Priority, TaskId};
///
/// let agents = [AgentId::new(10), AgentId::new(11), AgentId::new(12)];
/// let tasks = [
///     TensorTask::assigned_to(TaskId::new(1), Priority::Critical, 2),
///     TensorTask::with_candidates(TaskId::new(2), Priority::Low, [(0, 1.0), (1, 1.0)]),
///     TensorTask::with_candidates(TaskId::new(3), Priority::Normal, []),
/// ];
/// let tensor = TaskTensor::from_plan(&agents, &tasks, &TensorOptions::new())?;
/// assert_eq!(tensor.shape(), [3, 3, 4]);
/// assert_eq!(tensor.get(0, 2, Priority::Critical), Some(1.0));
/// assert_eq!(tensor.get(1, 0, Priority::Low), Some(0.5));
/// assert_eq!(tensor.row_sums(), [1.0, 1.0, 0.0]);
///
/// let sparse = tensor.to_sparse();
/// assert_eq!(sparse.nnz(), 3);
/// assert_eq!(sparse.to_dense()?, tensor);
/// # Ok::<(), taskweave::planning::PlanningError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct TaskTensor {
    index: TensorIndex,
    values: Array3<f32>,
}

/// The most `f32` cells a dense tensor may hold: `2^28` (268,435,456
/// cells, 1 GiB of values), e.g. 65,536 tasks × 1,024 agents × 4 levels.
///
/// Every dense tensor this crate builds ([`TaskTensor::from_plan`],
/// [`TaskTensor::from_dispatcher_with`], [`SparseTaskTensor::to_dense`]) is
/// checked against it, with checked multiplication, *before* anything is
/// allocated, and refused with [`PlanningError::TooLarge`] above it: a
/// shape taken from untrusted input (a deserialized [`SparseTaskTensor`] of
/// a few MB can name 100,000 tasks × 100,000 agents) cannot make the
/// process abort on a huge allocation. Work with the sparse form beyond it.
pub const MAX_DENSE_CELLS: usize = 1 << 28;

/// Number of `f32` cells of a dense tensor of `tasks × agents × 4`, if it
/// is at most [`MAX_DENSE_CELLS`] (and so its bytes fit in `isize`).
fn dense_len(tasks: usize, agents: usize) -> Result<usize, PlanningError> {
    tasks
        .checked_mul(agents)
        .and_then(|cells| cells.checked_mul(PRIORITY_LEVELS))
        .filter(|&len| len <= MAX_DENSE_CELLS)
        .filter(|&len| {
            len.checked_mul(size_of::<f32>())
                .is_some_and(|bytes| isize::try_from(bytes).is_ok())
        })
        .ok_or(PlanningError::TooLarge { tasks, agents })
}

/// Fills a zeroed row-major buffer.
struct DenseSink {
    values: Vec<f32>,
    /// `n_agents · 4`: the length of one task's slice.
    stride: usize,
}

impl DenseSink {
    fn new(index: &TensorIndex) -> Result<Self, PlanningError> {
        let len = dense_len(index.n_tasks(), index.n_agents())?;
        Ok(DenseSink {
            values: vec![0.0; len],
            stride: index.n_agents() * PRIORITY_LEVELS,
        })
    }

    fn finish(self, index: TensorIndex) -> Result<TaskTensor, PlanningError> {
        let shape = (index.n_tasks(), index.n_agents(), PRIORITY_LEVELS);
        let found = self.values.len();
        let values = Array3::from_shape_vec(shape, self.values).map_err(|_| {
            PlanningError::ShapeMismatch {
                expected: [shape.0, shape.1, shape.2],
                found: [found, 1, 1],
            }
        })?;
        Ok(TaskTensor { index, values })
    }
}

impl Sink for DenseSink {
    fn row(&mut self, task: u32, priority: Priority, entries: &Row) {
        let base = task as usize * self.stride + priority.index();
        for &(agent, p) in entries {
            if let Some(cell) = self.values.get_mut(base + agent as usize * PRIORITY_LEVELS) {
                *cell = p;
            }
        }
    }
}

impl TaskTensor {
    /// The dense tensor of a plan: task `i` of `tasks` on row `i`, agent
    /// index `j` naming `agents[j]`.
    ///
    /// Costs `O(n · m)` to zero the array plus the candidates' softmax.
    ///
    /// # Errors
    ///
    /// [`PlanningError::DuplicateTask`] / [`PlanningError::DuplicateAgent`]
    /// for an id given twice; [`PlanningError::AgentIndexOutOfRange`],
    /// [`PlanningError::DuplicateCandidate`] or
    /// [`PlanningError::NonFiniteScore`] for a malformed task;
    /// [`PlanningError::TooLarge`] when the array would hold more than
    /// [`MAX_DENSE_CELLS`] cells (checked before anything is allocated).
    pub fn from_plan(
        agents: &[AgentId],
        tasks: &[TensorTask],
        options: &TensorOptions,
    ) -> Result<Self, PlanningError> {
        // Refuse an oversized shape before sorting ids or allocating.
        dense_len(tasks.len(), agents.len())?;
        let index = build::plan_index(agents, tasks)?;
        let mut sink = DenseSink::new(&index)?;
        build::plan_rows(&index, tasks, options, &mut sink)?;
        sink.finish(index)
    }

    /// The dense tensor of a dispatcher's live tasks, scored with the
    /// default [`Scored`] weights (skill, free capacity share, smoothed
    /// success rate, cost). See [`from_dispatcher_with`](Self::from_dispatcher_with).
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

    /// The dense tensor of a dispatcher's live tasks, with `score` rating
    /// each capable agent for a task's requirements.
    ///
    /// * Task axis: every live task, in
    ///   [`Dispatcher::iter_live_tasks`] order. Agent axis: every registered
    ///   agent, in registration order, whatever its status.
    /// * An in-flight task is one-hot on its agent at its priority.
    /// * A queued or delayed task gets a softmax of `score` over the agents
    ///   capable of it: online, with every required capability and label,
    ///   not excluded or avoided, the pinned agent if it is pinned — with a
    ///   free slot or not (a task usually waits because capable agents are
    ///   busy; the score can weigh that). Requirements that name a
    ///   capability or label no agent has make an all-zero slice.
    ///
    /// `score` depends only on the requirements and the agent, so tasks
    /// with equal requirements share one distribution, computed once.
    /// Costs `O(live tasks + r · m)` for `r` distinct requirement sets and
    /// `m` agents, plus zeroing the array.
    ///
    /// # Errors
    ///
    /// [`PlanningError::NonFiniteScore`] if `score` returns NaN or an
    /// infinity; [`PlanningError::TooLarge`] when the array would hold more
    /// than [`MAX_DENSE_CELLS`] cells.
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
        let mut sink = DenseSink::new(&index)?;
        live.rows(&index, options, score, &mut sink)?;
        sink.finish(index)
    }

    /// A tensor from an array and the index naming its axes. The array is
    /// copied into standard layout if it is not in it already.
    ///
    /// # Errors
    ///
    /// [`PlanningError::ShapeMismatch`] unless the array's shape is
    /// `[index.n_tasks(), index.n_agents(), 4]`;
    /// [`PlanningError::InvalidValue`] for a value outside `[0, 1]` or NaN.
    pub fn from_array(index: TensorIndex, values: Array3<f32>) -> Result<Self, PlanningError> {
        let expected = [index.n_tasks(), index.n_agents(), PRIORITY_LEVELS];
        let (t, a, l) = values.dim();
        if [t, a, l] != expected {
            return Err(PlanningError::ShapeMismatch {
                expected,
                found: [t, a, l],
            });
        }
        if let Some(((task, agent, level), &value)) = values
            .indexed_iter()
            .find(|(_, v)| !(0.0..=1.0).contains(*v))
        {
            return Err(PlanningError::InvalidValue {
                task,
                agent,
                priority: Priority::from_index(level).unwrap_or(Priority::Low),
                value,
            });
        }
        let values = if values.is_standard_layout() {
            values
        } else {
            values.as_standard_layout().into_owned()
        };
        Ok(TaskTensor { index, values })
    }

    /// The index naming the axes.
    pub fn index(&self) -> &TensorIndex {
        &self.index
    }

    /// `[n_tasks, n_agents, 4]`.
    pub fn shape(&self) -> [usize; 3] {
        let (t, a, l) = self.values.dim();
        [t, a, l]
    }

    /// The whole array.
    pub fn values(&self) -> ArrayView3<'_, f32> {
        self.values.view()
    }

    /// The index and the array.
    pub fn into_parts(self) -> (TensorIndex, Array3<f32>) {
        (self.index, self.values)
    }

    /// The value at `(task, agent, priority)`, or `None` outside the shape.
    pub fn get(&self, task: usize, agent: usize, priority: Priority) -> Option<f32> {
        self.values.get((task, agent, priority.index())).copied()
    }

    /// The slice of one task: `[n_agents, 4]`, or `None` past the last task.
    pub fn task_slice(&self, task: usize) -> Option<ArrayView2<'_, f32>> {
        (task < self.index.n_tasks()).then(|| self.values.index_axis(Axis(0), task))
    }

    /// The sum of one task's slice (1 or 0 for a built tensor), or `None`
    /// past the last task. Summed in `f64`.
    pub fn task_sum(&self, task: usize) -> Option<f32> {
        self.task_slice(task)
            .map(|slice| slice.iter().map(|&v| f64::from(v)).sum::<f64>() as f32)
    }

    /// The sum of every task's slice, in task order. Costs `O(n · m)`.
    pub fn row_sums(&self) -> Vec<f32> {
        self.values
            .outer_iter()
            .map(|slice| slice.iter().map(|&v| f64::from(v)).sum::<f64>() as f32)
            .collect()
    }

    /// Number of non-zero values. Scans the whole array: `O(n · m)`.
    pub fn nnz(&self) -> usize {
        self.values.iter().filter(|&&v| v != 0.0).count()
    }

    /// Heap bytes held: the array (`16 · n_tasks · n_agents`) and the index.
    pub fn memory_bytes(&self) -> usize {
        self.values.len() * size_of::<f32>() + self.index.memory_bytes()
    }

    /// The sparse form: every non-zero value, in row-major order. Scans the
    /// whole array: `O(n · m)`.
    pub fn to_sparse(&self) -> SparseTaskTensor {
        SparseTaskTensor::from_dense(self)
    }
}

impl From<&TaskTensor> for SparseTaskTensor {
    fn from(dense: &TaskTensor) -> Self {
        dense.to_sparse()
    }
}

impl TryFrom<&SparseTaskTensor> for TaskTensor {
    type Error = PlanningError;

    fn try_from(sparse: &SparseTaskTensor) -> Result<Self, Self::Error> {
        sparse.to_dense()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TaskId;
    use ndarray::ShapeBuilder;

    fn agents(n: u64) -> Vec<AgentId> {
        (0..n).map(AgentId::new).collect()
    }

    #[test]
    fn assigned_tasks_are_one_hot_and_candidates_sum_to_one() {
        let tasks = [
            TensorTask::assigned_to(TaskId::new(5), Priority::High, 1),
            TensorTask::with_candidates(TaskId::new(6), Priority::Normal, [(2, 0.3), (0, 0.1)]),
        ];
        let tensor = TaskTensor::from_plan(&agents(3), &tasks, &TensorOptions::new()).unwrap();
        let slice = tensor.task_slice(0).unwrap();
        assert_eq!(slice.shape(), [3, 4]);
        assert_eq!(slice.iter().filter(|&&v| v != 0.0).count(), 1);
        assert_eq!(slice[[1, Priority::High.index()]], 1.0);
        let open = tensor.task_slice(1).unwrap();
        let level = Priority::Normal.index();
        assert!(open[[2, level]] > open[[0, level]]);
        assert_eq!(open[[1, level]], 0.0);
        assert!((tensor.task_sum(1).unwrap() - 1.0).abs() < 1e-6);
        assert_eq!(tensor.nnz(), 3);
        assert!(tensor.task_slice(2).is_none());
        assert_eq!(tensor.task_sum(2), None);
        assert_eq!(tensor.get(0, 3, Priority::High), None);
        assert_eq!(tensor.index().task_index(TaskId::new(6)), Some(1));
    }

    #[test]
    fn malformed_plans_get_typed_errors() {
        let run =
            |tasks: &[TensorTask]| TaskTensor::from_plan(&agents(2), tasks, &TensorOptions::new());
        let t = TaskId::new(9);
        assert_eq!(
            run(&[TensorTask::assigned_to(t, Priority::Low, 2)]),
            Err(PlanningError::AgentIndexOutOfRange {
                task: t,
                agent: 2,
                agents: 2
            })
        );
        assert_eq!(
            run(&[TensorTask::with_candidates(
                t,
                Priority::Low,
                [(0, 1.0), (5, 1.0)]
            )]),
            Err(PlanningError::AgentIndexOutOfRange {
                task: t,
                agent: 5,
                agents: 2
            })
        );
        assert_eq!(
            run(&[TensorTask::with_candidates(
                t,
                Priority::Low,
                [(1, 1.0), (1, 2.0)]
            )]),
            Err(PlanningError::DuplicateCandidate { task: t, agent: 1 })
        );
        assert!(matches!(
            run(&[TensorTask::with_candidates(
                t,
                Priority::Low,
                [(0, f64::NAN)]
            )]),
            Err(PlanningError::NonFiniteScore { agent: 0, .. })
        ));
        assert_eq!(
            run(&[TensorTask::with_candidates(
                t,
                Priority::Low,
                [(0, f64::INFINITY)]
            )]),
            Err(PlanningError::NonFiniteScore {
                task: t,
                agent: 0,
                score: f64::INFINITY
            })
        );
        let twice = [
            TensorTask::assigned_to(t, Priority::Low, 0),
            TensorTask::assigned_to(t, Priority::Low, 1),
        ];
        assert_eq!(run(&twice), Err(PlanningError::DuplicateTask(t)));
        assert_eq!(
            TaskTensor::from_plan(
                &[AgentId::new(1), AgentId::new(1)],
                &[],
                &TensorOptions::new()
            ),
            Err(PlanningError::DuplicateAgent(AgentId::new(1)))
        );
    }

    #[test]
    fn oversized_shapes_are_refused_before_allocating() {
        assert_eq!(
            dense_len(usize::MAX / 2, 3),
            Err(PlanningError::TooLarge {
                tasks: usize::MAX / 2,
                agents: 3
            })
        );
        assert_eq!(dense_len(10, 0), Ok(0));
        let empty = TaskTensor::from_plan(&[], &[], &TensorOptions::new()).unwrap();
        assert_eq!(
            (empty.shape(), empty.nnz(), empty.row_sums()),
            ([0, 0, 4], 0, vec![])
        );
    }

    #[test]
    fn from_array_checks_shape_and_values_and_normalises_layout() {
        let index = TensorIndex::new([TaskId::new(1), TaskId::new(2)], agents(3)).unwrap();
        assert_eq!(
            TaskTensor::from_array(index.clone(), Array3::zeros((2, 2, 4))),
            Err(PlanningError::ShapeMismatch {
                expected: [2, 3, 4],
                found: [2, 2, 4]
            })
        );
        let mut bad = Array3::zeros((2, 3, 4));
        bad[[1, 2, 3]] = f32::NAN;
        assert!(matches!(
            TaskTensor::from_array(index.clone(), bad),
            Err(PlanningError::InvalidValue {
                task: 1,
                agent: 2,
                priority: Priority::Low,
                ..
            })
        ));
        // Column-major input comes out row-major and equal.
        let mut fortran = Array3::zeros((2, 3, 4).f());
        fortran[[1, 0, 2]] = 1.0;
        let tensor = TaskTensor::from_array(index, fortran.clone()).unwrap();
        assert!(tensor.values().is_standard_layout());
        assert_eq!(tensor.values(), fortran.view());
        assert_eq!(
            tensor
                .to_sparse()
                .iter()
                .map(|e| (e.task, e.agent, e.priority))
                .collect::<Vec<_>>(),
            [(1, 0, Priority::Normal)]
        );
        let (_, array) = tensor.into_parts();
        assert_eq!(array.dim(), (2, 3, 4));
    }

    #[test]
    fn memory_is_sixteen_bytes_per_task_and_agent_plus_the_index() {
        let tasks: Vec<TensorTask> = (0..10)
            .map(|t| TensorTask::assigned_to(TaskId::new(t), Priority::Normal, 0))
            .collect();
        let tensor = TaskTensor::from_plan(&agents(5), &tasks, &TensorOptions::new()).unwrap();
        assert_eq!(
            tensor.memory_bytes(),
            10 * 5 * 16 + tensor.index().memory_bytes()
        );
    }
}
