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
//! ## The central loop
//!
//! Everything turns around one sans-IO loop, quinn-proto style: the host
//! feeds inputs with the current time and pulls decisions out.
//!
//! ```text
//! host ──submit(TaskSpec, now)────────────▶ Dispatcher ── queue, route, fence
//! host ◀──poll_action(): Assign{task, agent, token}──
//!      … runs the task on the agent, however it likes …
//! host ──report(TaskReport{task, agent, token, outcome}, now)──▶ Dispatcher
//! host ──handle_timeout(now) when now ≥ poll_timeout()──▶ Dispatcher
//!        (retries, attempt timeouts, TTLs, deadlines, lost heartbeats)
//! ```
//!
//! [`scheduler::Dispatcher`] is that loop for plain tasks; a workflow run
//! (`workflow::WorkflowRun`, feature `workflow`) is the same loop for the
//! steps of one DAG, and the workflow engine runs many
//! runs on a host's dispatcher. State that leaves the process — snapshots,
//! checkpoints, definitions, protocol messages — is untrusted when it comes
//! back (see [`scheduler::Snapshot`] and [the clock rule](time#the-clock-rule)).
//!
//! ## Layers and features
//!
//! The core is always built and depends only on `rand` and `thiserror`;
//! each layer above it is a cargo feature that owns its dependencies. A
//! lower layer never names a higher one.
//!
//! | layer | feature (default?) | dependencies | what it holds |
//! |---|---|---|---|
//! | [`time`], [`id`], [`priority`] | core | — | [`Instant`] and the clock rule; [`AgentId`], [`TaskId`], [`WorkflowId`], [`StepId`], [`AttemptToken`]; [`Priority`] P0–P3 |
//! | [`capability`], [`requirements`] | core | — | capability interning into bitsets; [`TaskRequirements`], [`LabelConstraint`] |
//! | [`agent`] | core | — | [`agent::AgentProfile`], the [`agent::Registry`] and its availability index |
//! | [`routing`] | core | — | the [`routing::RoutingStrategy`] trait, eligibility and nine strategies |
//! | [`scheduler`] | core | — | the sans-IO [`scheduler::Dispatcher`]: priority queue, lifecycle, retries, failover, dead letters, journal, snapshots |
//! | [`saga`] | core | — | [`saga::Saga`]: a compensation log that undoes completed actions latest first, respecting their dependencies (re-exported by `workflow`) |
//! | [`resilience`], [`metrics`] | core | — | retry policies, retry budget, circuit breaker, bulkhead, rate limiters; counters, histograms, throughput |
//! | serde support, `protocol` | `serde` (yes) | serde | `Serialize`/`Deserialize` everywhere; envelopes and bodies between orchestrator and agents |
//! | `scheduler::SharedDispatcher` | `sync` (yes) | parking_lot | a dispatcher shared by many threads |
//! | `workflow` | `workflow` (yes) | petgraph | `WorkflowDef` (a validated DAG), `WorkflowRun` (patterns, sagas, checkpoints), `WorkflowEngine`, Mermaid / DOT export |
//! | `planning` | `planning` | `workflow`, ndarray | goal decomposition, teams, HEFT, the task tensor |
//! | `coordination` | `coordination` | — | contract-net auctions, weighted consensus, delegation |
//! | `driver` | `driver` | `workflow`, crossbeam | a ready-made host loop on a thread pool |
//! | `schedule` | `schedule` | croner (default features off) | `Schedules`: runs started every period or at the matches of a cron pattern, with overlap policies, catch-up, jitter, pause, trigger and backfill, as a sans-IO state machine |
//! | `schedule::TimeZone` | `time-zones` | `schedule` | cron schedules read on a POSIX TZ rule's wall clock (daylight saving time included) instead of UTC |
//! | `cluster` | `cluster` | `serde`, `workflow` | a durable cluster's roles as sans-IO state machines over a store contract (`Node`, `AgentSession`, `MemStore`, `check_store`, `Auditor`), and workflow runs its nodes host (`Node::host_runs`); the `taskweave-postgres` crate hosts them on PostgreSQL |
//! | [`error`] | core | — | the crate-wide [`Error`], a convenience over each module's own error |
//!
//! The examples show each layer at work: `quickstart` (the main job:
//! dispatch, retry, failover, a workflow that compensates), `routing`
//! (every routing strategy compared), `saga` (compensation alone),
//! `dispatch` (the dispatcher under threads: retries, failover, breakers,
//! dead letters), `tokio_host` (the same dispatcher under tokio: agents as
//! async tasks, the host loop woken at `poll_timeout`), `fair_tenants`
//! (fair shares and a concurrency key with a token rate), `etl_pipeline` and
//! `order_saga` (workflows and sagas), `upgrade` (workflow versions side by
//! side), `schedule_day` (a schedule through a day under each overlap
//! policy), `cron_zones` (cron schedules through a year on Paris time),
//! `research_team` (planning and coordination) and `perf_report` (speed
//! against bare baselines); run one with
//! `cargo run --release --all-features --example NAME`.
//!
//! ## Extending taskweave
//!
//! Each extension point is a small trait a host implements in its own
//! crate, or a few files to touch in this one:
//!
//! | to add | implement | in this crate, the files to touch |
//! |---|---|---|
//! | a routing strategy | [`routing::RoutingStrategy`] (`select` over [`routing::Candidates`]; a closure is one) and pass it to [`scheduler::Dispatcher::with_strategy`] | a file beside `src/routing/least_loaded.rs`, its `pub use` in `src/routing/mod.rs`, a `StrategyState` arm in `src/routing/state.rs` if it learns |
//! | a retry policy | [`resilience::RetryPolicy`], or the data form [`resilience::RetrySpec`] for one that snapshots | `src/resilience/retry.rs`, `src/resilience/retry_spec.rs` |
//! | a gate (a limit that holds a task or an agent back) | — | its state and restore checks in `src/scheduler/gates/mod.rs`, where placement and attempts consult it in `src/scheduler/dispatcher/gating.rs`, its setting in `src/scheduler/config.rs`, a `Timer` in `src/scheduler/state/timer.rs` if it blocks until an instant |
//! | a join pattern | — | a `Join` variant in `src/workflow/join/mod.rs` and one file beside `all.rs`, `merge.rs` and `quorum.rs` with its checks, hash, decision and diagram line |
//! | a step's work | `workflow::Step` (feature `workflow`), or run steps as dispatcher tasks through `workflow::TaskPool` | — |
//! | a store backend for the cluster's journal | `cluster::Store` (feature `cluster`), checked by `cluster::check_store` | `taskweave-postgres/src/store/` is one |
//! | an observer of events | [`Observer`] | — |
//!
//! ## Quickstart
//!
//! A dispatcher routes tasks to agents and retries what fails; the host
//! feeds it time and reports and carries out the actions it hands back.
//! A saga undoes completed work, latest first. `cargo run --release
//! --example quickstart` tells the whole story: agents register, one
//! attempt is retried, a crashed agent's task fails over, and a workflow on
//! the same dispatcher fails for good and compensates in reverse order.
//!
//! ```
//! use std::time::Duration;
//! use taskweave::agent::AgentProfile;
//! use taskweave::resilience::Fixed;
//! use taskweave::saga::Saga;
//! use taskweave::scheduler::{Action, AttemptOutcome, Dispatcher, DispatcherConfig, TaskReport, TaskSpec};
//! use taskweave::{AgentId, Instant, TaskRequirements};
//!
//! let config = DispatcherConfig::builder()
//!     .retry_policy(Fixed::new(Duration::from_millis(500), 3)?)
//!     .build()?;
//! let mut dispatcher = Dispatcher::new(config);
//! let ada = AgentProfile::builder().capabilities(["write"]).capacity(2).build()?;
//! dispatcher.register_agent(AgentId::new(1), ada, Instant::ZERO)?;
//! let needs = TaskRequirements::new().require(["write"]);
//! dispatcher.submit(TaskSpec::new("summarize report-1").requirements(needs), Instant::ZERO)?;
//!
//! // The dispatcher decides, the host acts: run the attempt, report how it went.
//! let finish = |dispatcher: &mut Dispatcher<&str>, outcome, now| {
//!     let Some(Action::Assign { task, agent, token, .. }) = dispatcher.poll_action() else {
//!         panic!("an assignment was due");
//!     };
//!     dispatcher.report(TaskReport { task, agent, token, outcome }, now)
//! };
//! finish(&mut dispatcher, AttemptOutcome::failure("model overloaded"), Instant::from_secs(1))?;
//! // Retried after the policy's delay: the host sleeps until poll_timeout.
//! assert_eq!(dispatcher.poll_timeout(), Some(Instant::from_millis(1_500)));
//! dispatcher.handle_timeout(Instant::from_millis(1_500));
//! finish(&mut dispatcher, AttemptOutcome::Success, Instant::from_secs(2))?;
//! assert_eq!(dispatcher.live_tasks(), 0);
//!
//! // Compensation on its own: record what succeeded, undo it latest first.
//! let mut trip: Saga<&str, ()> = Saga::new();
//! trip.record("hotel", (), [])?;
//! trip.record("flight", (), ["hotel"])?;
//! trip.compensate(); // charging the card failed for good
//! let mut undone = Vec::new();
//! while let Some(step) = trip.poll_compensation() {
//!     let (key, id) = (*step.key, step.id);
//!     undone.push(key);
//!     trip.compensated(id)?;
//! }
//! assert_eq!(undone, ["flight", "hotel"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod agent;
pub mod capability;
#[cfg(feature = "cluster")]
pub mod cluster;
#[cfg(feature = "coordination")]
pub mod coordination;
#[cfg(feature = "workflow")]
mod diagram;
#[cfg(feature = "driver")]
pub mod driver;
pub mod error;
mod free_list;
mod hash;
pub mod id;
pub mod metrics;
pub mod observer;
#[cfg(feature = "planning")]
pub mod planning;
pub mod priority;
#[cfg(feature = "serde")]
pub mod protocol;
pub mod requirements;
pub mod resilience;
mod rng;
pub mod routing;
pub mod saga;
#[cfg(feature = "schedule")]
pub mod schedule;
pub mod scheduler;
#[cfg(feature = "serde")]
mod serde_bits;
#[cfg(feature = "serde")]
mod serde_maps;
pub mod time;
#[cfg(feature = "workflow")]
pub mod workflow;

pub use error::Error;

/// The README's code samples, compiled and run as doctests (they use every
/// layer).
#[cfg(all(
    doctest,
    feature = "serde",
    feature = "planning",
    feature = "coordination",
    feature = "cluster",
    feature = "schedule"
))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
/// The guides' code samples (docs/*.md), compiled and run as doctests, each
/// guide with the features its samples use.
#[cfg(doctest)]
#[doc = include_str!("../docs/dispatcher.md")]
struct DispatcherGuideDoctest;
#[cfg(all(doctest, feature = "serde", feature = "workflow", feature = "schedule"))]
#[doc = include_str!("../docs/workflows.md")]
struct WorkflowsGuideDoctest;
#[cfg(all(doctest, feature = "coordination", feature = "planning"))]
#[doc = include_str!("../docs/coordination-planning.md")]
struct CoordinationPlanningGuideDoctest;
#[cfg(all(doctest, feature = "cluster"))]
#[doc = include_str!("../docs/cluster.md")]
struct ClusterGuideDoctest;
#[cfg(all(doctest, feature = "cluster", feature = "workflow"))]
#[doc = include_str!("../docs/simulator.md")]
struct SimulatorGuideDoctest;
#[cfg(doctest)]
#[doc = include_str!("../docs/stored-formats.md")]
struct StoredFormatsGuideDoctest;
#[cfg(doctest)]
#[doc = include_str!("../docs/speed.md")]
struct SpeedGuideDoctest;
#[cfg(doctest)]
#[doc = include_str!("../docs/contents.md")]
struct ContentsGuideDoctest;
#[cfg(doctest)]
#[doc = include_str!("../docs/examples.md")]
struct ExamplesGuideDoctest;
pub use id::{AgentId, AttemptToken, ParseIdError, StepId, TaskId, TenantId, WorkflowId};
pub use observer::Observer;
pub use priority::Priority;
pub use requirements::{LabelConstraint, TaskRequirements};
pub use time::Instant;
