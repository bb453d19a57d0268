//! Planning: goal decomposition, team assembly, HEFT, the task tensor.
//!
//! **The task tensor** `T[n_tasks, n_agents, p_levels]` is where every task
//! stands, as numbers: one-hot on its agent and priority level once
//! assigned, a softmax of routing scores over the agents capable of it while
//! it waits ([`TensorOptions`] sets the temperature and an optional top-k
//! cut). Each task's slice sums to 1, or to 0 when no agent is capable. It
//! comes dense ([`TaskTensor`], an `ndarray::Array3<f32>`) or sparse
//! ([`SparseTaskTensor`], sorted coordinates — a few MB where the dense form
//! of 10,000 tasks × 1,000 agents takes 160 MB), built from a plan
//! ([`TensorTask`]s over an agent list) or from the live tasks of a
//! [`Dispatcher`](crate::scheduler::Dispatcher); a [`TensorIndex`] maps
//! positions to [`TaskId`](crate::TaskId)s and [`AgentId`](crate::AgentId)s.
//!
//! ```
//! use taskweave::agent::AgentProfile;
//! use taskweave::planning::{SparseTaskTensor, TensorOptions};
//! use taskweave::scheduler::{Dispatcher, DispatcherConfig, TaskSpec};
//! use taskweave::{AgentId, Instant, Priority, TaskRequirements};
//!
//! let mut dispatcher = Dispatcher::new(DispatcherConfig::default());
//! let now = Instant::ZERO;
//! let gpu = AgentProfile::builder().capabilities(["gpu"]).capacity(1).build()?;
//! dispatcher.register_agent(AgentId::new(1), gpu.clone(), now)?;
//! dispatcher.register_agent(AgentId::new(2), gpu, now)?;
//! let needs_gpu = TaskRequirements::new().require(["gpu"]);
//! for priority in [Priority::High, Priority::High, Priority::Low] {
//!     let spec = TaskSpec::new(()).priority(priority).requirements(needs_gpu.clone());
//!     dispatcher.submit(spec, now)?;
//! }
//! // Two tasks run (one-hot), the third waits for either agent.
//! let tensor = SparseTaskTensor::from_dispatcher(&dispatcher, &TensorOptions::new())?;
//! assert_eq!(tensor.shape(), [3, 2, 4]);
//! assert_eq!(tensor.nnz(), 4);
//! assert!(tensor.row_sums().iter().all(|&s| (s - 1.0).abs() < 1e-6));
//! # Ok::<(), taskweave::Error>(())
//! ```

mod error;
mod tensor;

pub use error::PlanningError;
pub use tensor::{
    PRIORITY_LEVELS, SparseEntry, SparseTaskTensor, TaskTensor, TensorIndex, TensorOptions,
    TensorTask,
};
