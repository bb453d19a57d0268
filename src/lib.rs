//! # taskweave
//!
//! Embeddable, runtime-agnostic task distribution and workflow
//! orchestration for pools of agents — LLM agents, workers, services,
//! robots. A host application links taskweave,
//! tells it which agents exist and what each task needs, and gets back
//! decisions: which agent runs which task.
//!
//! ## Architecture
//!
//! taskweave is **sans-IO**: no module reads a clock, sleeps, spawns a
//! thread or touches a socket or a file. Time comes in as an [`Instant`]
//! argument chosen by the host; decisions come out as return values. The same
//! core therefore runs under plain threads, an async runtime, a game loop or
//! a simulation in virtual time, and it is **deterministic**: the same inputs
//! and seeds give the same decisions, bit for bit. Ties break on registration
//! order, never on hash-map iteration order.
//!
//! Capabilities are named with strings by the host and interned into
//! bitsets ([`capability`]), so checking that an agent has every required
//! capability is a few word operations. The [`agent::Registry`] groups agents
//! with identical capabilities and labels into classes and keeps, per class,
//! the available agents ordered by registration, load and priority, updated on
//! every change. Routing ([`routing`]) first narrows the pool to the eligible
//! agents — hard constraints are never left to a strategy — and then lets a
//! small, pluggable [`routing::RoutingStrategy`] choose among them. Indexed
//! strategies cost `O(c · log n)` for `c` matching classes, so a pool of
//! 10,000 agents routes about as fast as a pool of 10.
//!
//! Bad input gets a typed error, never a panic: invalid profiles are rejected
//! when built, unknown agents and capabilities are reported with the
//! offending value, and a strategy that answers with an ineligible agent is
//! caught and reported.
//!
//! ## Module map
//!
//! | module | what it holds |
//! |---|---|
//! | [`time`] | [`Instant`]: nanoseconds since a host-chosen epoch |
//! | [`id`] | [`AgentId`], [`TaskId`], [`WorkflowId`], [`StepId`], [`AttemptToken`] |
//! | [`priority`] | [`Priority`] P0–P3 |
//! | [`capability`] | capability interning and [`capability::CapabilitySet`] bitsets |
//! | [`requirements`] | [`TaskRequirements`] and [`LabelConstraint`]: what a task asks of its agent |
//! | [`agent`] | the [`agent::Agent`] trait, [`agent::AgentProfile`], the [`agent::Registry`] |
//! | [`routing`] | the [`routing::RoutingStrategy`] trait, eligibility and nine strategies |
//! | [`scheduler`] | the sans-IO [`scheduler::Dispatcher`]: priority queue, task lifecycle, retries, failover, dead letters |
//! | [`resilience`] | retry policies with backoff and jitter, retry budget, circuit breaker, bulkhead, rate limiter |
//! | [`metrics`] | counters, log-bucketed histograms, load statistics, throughput |
//! | `protocol` (feature `serde`) | serde messages between orchestrator and agents: `Envelope`, `Body`, validation, conversion from actions and to dispatcher inputs |
//! | [`workflow`] | [`workflow::WorkflowDef`] (petgraph DAGs), [`workflow::WorkflowRun`] (patterns, sagas, checkpoints), [`workflow::WorkflowEngine`], Mermaid / DOT export |
//! | [`coordination`] | contract-net [`coordination::Auction`], weighted [`coordination::Ballot`], hierarchical [`coordination::Delegation`] |
//! | [`planning`] | goal decomposition ([`planning::Decomposer`], [`planning::TemplateDecomposer`]), team assembly ([`planning::TeamAssembler`]), HEFT ([`planning::heft`]), the task tensor [`planning::TaskTensor`] / [`planning::SparseTaskTensor`] |
//! | `driver` (feature `driver`) | a ready-made host loop running workflow steps on a crossbeam thread pool: `Driver` |
//! | [`error`] | the crate-wide [`Error`] |
//!
//! ## Quickstart
//!
//! ```
//! use taskweave::agent::{AgentProfile, Registry};
//! use taskweave::routing::RoundRobin;
//! use taskweave::{AgentId, Instant, LabelConstraint, TaskRequirements};
//!
//! let mut registry = Registry::new();
//! let now = Instant::ZERO;
//! let gpu_eu = AgentProfile::builder().capabilities(["gpu", "python"]).capacity(4).label("zone", "eu").build()?;
//! let gpu_us = AgentProfile::builder().capabilities(["gpu", "python"]).capacity(4).label("zone", "us").build()?;
//! let cpu = AgentProfile::builder().capabilities(["python"]).capacity(8).build()?;
//! registry.register(AgentId::new(1), gpu_eu.clone(), now)?;
//! registry.register(AgentId::new(2), gpu_eu, now)?;
//! registry.register(AgentId::new(3), gpu_us, now)?;
//! registry.register(AgentId::new(4), cpu, now)?;
//!
//! let train = TaskRequirements::new()
//!     .require(["gpu"])
//!     .label(LabelConstraint::equals("zone", "eu"));
//! let mut rotation = RoundRobin::new();
//! let picks: Vec<_> = (0..4).map(|_| registry.route(&mut rotation, &train)).collect::<Result<_, _>>()?;
//! assert_eq!(picks, [1, 2, 1, 2].map(AgentId::new));
//!
//! // Nobody has a TPU: an answer, not a panic.
//! let tpu = TaskRequirements::new().require(["tpu"]);
//! assert!(registry.route(&mut rotation, &tpu).is_err());
//! # Ok::<(), taskweave::Error>(())
//! ```

#![forbid(unsafe_code)]

pub mod agent;
pub mod capability;
pub mod coordination;
#[cfg(feature = "driver")]
pub mod driver;
pub mod error;
mod hash;
pub mod id;
pub mod metrics;
pub mod planning;
pub mod priority;
#[cfg(feature = "serde")]
pub mod protocol;
pub mod requirements;
pub mod resilience;
mod rng;
pub mod routing;
pub mod scheduler;
#[cfg(feature = "serde")]
mod serde_bits;
#[cfg(feature = "serde")]
mod serde_maps;
pub mod time;
pub mod workflow;

pub use error::Error;

/// The README's code sample, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
pub use id::{AgentId, AttemptToken, StepId, TaskId, WorkflowId};
pub use priority::Priority;
pub use requirements::{LabelConstraint, TaskRequirements};
pub use time::Instant;
