//! What a task tensor is built from and how: per-task input rows of a plan,
//! and the softmax settings.

use crate::planning::PlanningError;
use crate::{Priority, TaskId};

/// One task of a plan, as a planner hands it to
/// [`TaskTensor::from_plan`](super::TaskTensor::from_plan) or
/// [`SparseTaskTensor::from_plan`](super::SparseTaskTensor::from_plan).
///
/// Agents are named by their index on the agent axis (the position in the
/// agent list passed alongside). An assigned task becomes one-hot at
/// `(task, assigned, priority)`; an unassigned task gets a softmax of its
/// candidates' scores at its priority level, or an all-zero slice when it
/// has no candidate. Candidates are validated (index in range, no agent
/// twice, finite score) even for an assigned task, where they are not used.
///
/// ```
/// use taskweave::planning::TensorTask;
/// use taskweave::{Priority, TaskId};
///
/// let placed = TensorTask::assigned_to(TaskId::new(1), Priority::High, 0);
/// let open = TensorTask::with_candidates(TaskId::new(2), Priority::Low, [(0, 0.9), (2, 0.4)]);
/// assert_eq!(placed.assigned, Some(0));
/// assert_eq!(open.candidates.len(), 2);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TensorTask {
    /// The task's id, recorded in the tensor's [`TensorIndex`](super::TensorIndex).
    pub task: TaskId,
    /// The priority level the task's probability mass sits at.
    pub priority: Priority,
    /// The agent index the task is assigned to, if it is.
    pub assigned: Option<usize>,
    /// `(agent index, score)` of each agent that could take the task; a
    /// higher score means more likely.
    pub candidates: Vec<(usize, f64)>,
}

impl TensorTask {
    /// A task assigned to the agent at index `agent`.
    pub fn assigned_to(task: TaskId, priority: Priority, agent: usize) -> Self {
        TensorTask {
            task,
            priority,
            assigned: Some(agent),
            candidates: Vec::new(),
        }
    }

    /// An unassigned task with `(agent index, score)` candidates.
    pub fn with_candidates(
        task: TaskId,
        priority: Priority,
        candidates: impl IntoIterator<Item = (usize, f64)>,
    ) -> Self {
        TensorTask {
            task,
            priority,
            assigned: None,
            candidates: candidates.into_iter().collect(),
        }
    }
}

/// How candidate scores become probabilities: a softmax with a
/// temperature, optionally over the `k` best candidates only.
///
/// `p_i = exp((s_i − max s) / T) / Σ_j exp((s_j − max s) / T)`, computed in
/// `f64` (subtracting the maximum keeps it finite for any finite scores) and
/// stored as `f32`. A low temperature sharpens the distribution towards the
/// best score, a high one flattens it towards uniform. A probability that
/// underflows `f32` is stored as zero, so it is not a non-zero entry.
///
/// With a top-k cut, only the `k` highest-scoring candidates (ties to the
/// lower agent index) get probability; this keeps the sparse form small
/// when many agents are capable.
///
/// ```
/// use taskweave::planning::TensorOptions;
///
/// let sharp = TensorOptions::new().with_temperature(0.1)?.with_top_k(16)?;
/// assert_eq!((sharp.temperature(), sharp.top_k()), (0.1, Some(16)));
/// assert!(TensorOptions::new().with_temperature(0.0).is_err());
/// assert!(TensorOptions::new().with_temperature(f64::NAN).is_err());
/// assert!(TensorOptions::new().with_top_k(0).is_err());
/// # Ok::<(), taskweave::planning::PlanningError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TensorOptions {
    temperature: f64,
    top_k: Option<usize>,
}

impl Default for TensorOptions {
    /// Temperature 1, every capable agent.
    fn default() -> Self {
        TensorOptions {
            temperature: 1.0,
            top_k: None,
        }
    }
}

impl TensorOptions {
    /// Temperature 1, every capable agent.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the softmax temperature.
    ///
    /// # Errors
    ///
    /// [`PlanningError::InvalidTemperature`] unless `temperature` is finite
    /// and greater than zero.
    pub fn with_temperature(self, temperature: f64) -> Result<Self, PlanningError> {
        if !(temperature.is_finite() && temperature > 0.0) {
            return Err(PlanningError::InvalidTemperature { value: temperature });
        }
        Ok(TensorOptions {
            temperature,
            ..self
        })
    }

    /// Keeps only the `k` best-scoring candidates of each unassigned task.
    ///
    /// # Errors
    ///
    /// [`PlanningError::InvalidTopK`] for `k = 0`.
    pub fn with_top_k(self, k: usize) -> Result<Self, PlanningError> {
        if k == 0 {
            return Err(PlanningError::InvalidTopK { k });
        }
        Ok(TensorOptions {
            top_k: Some(k),
            ..self
        })
    }

    /// The softmax temperature.
    pub fn temperature(&self) -> f64 {
        self.temperature
    }

    /// The top-k cut, if any.
    pub fn top_k(&self) -> Option<usize> {
        self.top_k
    }
}
