//! Planning: goal decomposition, team assembly, HEFT, the task tensor.
//!
//! These parts decide *how* a goal is split and *who* works on it, ahead
//! of the [`Dispatcher`](crate::scheduler::Dispatcher) and the
//! [`WorkflowEngine`](crate::workflow::WorkflowEngine), which decide *when*.
//! Like the rest of the crate they are pure: values in, values out.
//!
//! | step | type | gives |
//! |---|---|---|
//! | decompose a goal | [`Decomposer`], [`TemplateDecomposer`] | a [`Plan`]: a [`WorkflowDef`](crate::workflow::WorkflowDef) of atomic subtasks (dependencies, capabilities, priority, estimate) in ordered [`Phase`]s |
//! | describe the pool | [`CapabilityMatrix`] of [`PlanAgent`]s | skills, speed, capacity, load, cost, success rate per agent |
//! | staff each phase | [`TeamAssembler`] | a [`Team`] per phase, [`TeamChange`]s between them |
//! | plan the workflow | [`heft`] | a [`Schedule`]: agent, start and finish per step, makespan, critical path |
//! | see it as numbers | [`TaskTensor`], [`SparseTaskTensor`] | `T[n_tasks, n_agents, p_levels]` of a plan or a live dispatcher |
//!
//! ```
//! use taskweave::AgentId;
//! use taskweave::planning::{
//!     CapabilityMatrix, Decomposer, PlanAgent, TaskTensor, TeamAssembler, TemplateDecomposer,
//!     TensorOptions, heft,
//! };
//!
//! let plan = TemplateDecomposer::builtin().decompose("Develop an ML model for churn")?;
//! let names: Vec<&str> = plan.phases().iter().map(|p| p.name()).collect();
//! assert_eq!(names, ["requirements", "design", "implementation", "testing"]);
//!
//! let pool = CapabilityMatrix::new([
//!     PlanAgent::new(AgentId::new(1), ["analysis", "ml", "statistics"]).speed(1.5),
//!     PlanAgent::new(AgentId::new(2), ["data-engineering", "python"]),
//!     PlanAgent::new(AgentId::new(3), ["ml", "gpu", "testing"]).speed(2.0),
//! ])?;
//! let teams = TeamAssembler::new().assemble(&plan, &pool)?;
//! assert_eq!(teams.len(), 4);
//! assert_eq!(teams[0].members(), [AgentId::new(1)]);
//!
//! let schedule = heft(plan.workflow(), &pool)?;
//! assert!(schedule.makespan() > std::time::Duration::ZERO);
//! let rows = schedule.tensor_tasks();
//! let tensor = TaskTensor::from_plan(&pool.ids(), &rows, &TensorOptions::new())?;
//! assert_eq!(tensor.shape(), [plan.workflow().len(), 3, 4]);
//! # Ok::<(), taskweave::Error>(())
//! ```
//!
//! **Goal decomposition.** A [`Decomposer`] turns a goal into a [`Plan`].
//! [`TemplateDecomposer`] is rule-based: goal patterns select
//! [`GoalTemplate`]s of [`PhaseTemplate`]s and [`TaskTemplate`]s, which are
//! serde data a host can load; a goal no template matches is
//! [`PlanningError::NoMatchingTemplate`], never a silent one-step plan. A
//! host that wants a language model implements the trait, or passes a
//! closure (see [`Decomposer`]).
//!
//! **Team assembly** staffs each phase of a [`Plan`] from a
//! [`CapabilityMatrix`]: a [`TeamAssembler`] picks members so that every
//! agent step has one member holding all its capabilities — the fewest agents or
//! the cheapest ([`TeamObjective`]), weighing load and success rate,
//! preferring the previous phase's members — prunes the team to an
//! irredundant one and spreads the phase's steps over it. Steps nobody can
//! do come back as [`PlanningError::UncoveredCapabilities`] naming them;
//! [`TeamAssembler::assemble_phase`] restructures one phase against a
//! fresh matrix, and [`Team::changes_from`] tells who joined and who left.
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
//!
//! **HEFT** ([`heft`]) plans a whole workflow ahead on the agents of a
//! [`CapabilityMatrix`]: each step on a capable agent, by upward rank, where
//! it finishes earliest (filling idle gaps), given its estimated duration
//! and the agents' speeds — or the plain list schedule when that is
//! shorter, so the plan is never worse than it. The [`Schedule`] has each step's agent, start
//! and finish, the makespan and the critical path; it draws itself as a
//! Mermaid Gantt chart and becomes a one-hot task tensor through
//! [`Schedule::tensor_tasks`].

mod decompose;
mod error;
mod heft;
mod matrix;
mod plan;
mod team;
mod tensor;

pub use decompose::{
    Decomposer, GoalTemplate, MAX_TASK_NAME_BYTES, PhaseTemplate, TaskTemplate, TemplateDecomposer,
};
pub use error::PlanningError;
pub use heft::{Schedule, ScheduleOrigin, ScheduledStep, heft};
pub use matrix::{CapabilityMatrix, PlanAgent};
/// The ndarray crate [`TaskTensor`]'s dense form is made of, re-exported so
/// a host uses the very version taskweave was built with.
pub use ndarray;
pub use plan::{Phase, Plan};
pub use team::{Team, TeamAssembler, TeamChange, TeamObjective};
pub use tensor::{
    MAX_DENSE_CELLS, PRIORITY_LEVELS, SparseEntry, SparseTaskTensor, TaskTensor, TensorIndex,
    TensorOptions, TensorTask,
};
