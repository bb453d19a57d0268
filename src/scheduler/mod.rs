//! The dispatcher: priority scheduling and the lifecycle of every task.
//!
//! [`Dispatcher`] is a sans-IO state machine in the style of quinn-proto.
//! The host feeds it inputs — [`submit`](Dispatcher::submit),
//! [`report`](Dispatcher::report), [`heartbeat`](Dispatcher::heartbeat),
//! agent registration, [`cancel`](Dispatcher::cancel) and
//! [`handle_timeout`](Dispatcher::handle_timeout) — each with the current
//! [`Instant`](crate::Instant), and pulls decisions out with
//! [`poll_action`](Dispatcher::poll_action) and the next wake-up instant with
//! [`poll_timeout`](Dispatcher::poll_timeout).
//!
//! Every task is in exactly one [`TaskState`]:
//!
//! ```text
//! Queued ──assign──▶ InFlight ──success──▶ Completed
//!   ▲  ▲                │ failure: retry policy
//!   │  └──failover──────┤──▶ Delayed ──retry instant──▶ Queued
//!   │                   └──▶ DeadLettered (retries exhausted, non-retryable)
//!   └── Cancelled / Expired (TTL, deadline) from any live state
//! ```
//!
//! * **Queue**: four levels, FIFO within a level, with aging so low
//!   priorities cannot starve (see the bound below), bounded capacity
//!   (a full queue hands the task back), an optional share of slots reserved
//!   for P0/P1, and idempotency keys.
//! * **Routing**: the dispatcher routes through the [`Registry`](crate::agent::Registry)
//!   and a [`RoutingStrategy`](crate::routing::RoutingStrategy). A task no
//!   agent can take right now is parked with others of the same requirements
//!   and retried only when an agent that could serve them frees a slot, so
//!   it never blocks the tasks behind it.
//! * **Fencing**: every assignment carries an [`AttemptToken`](crate::AttemptToken).
//!   A report with another token or from another agent is rejected with a
//!   [`ReportError`] and changes nothing — late results after failover and
//!   forged results alike.
//! * **Failover**: an agent that is unregistered, taken offline, or misses
//!   its heartbeats loses its tasks back to the queue, in their original
//!   order, preferably for another agent. An attempt that exceeds its timeout
//!   counts as a failure.
//! * **Retries** follow a [`RetryPolicy`](crate::resilience::RetryPolicy);
//!   a failure marked non-retryable, an exhausted policy, an expired TTL or
//!   deadline and a task unroutable for too long all end in the
//!   [`DeadLetterQueue`], which supports inspection, requeue and purge.
//! * **Journal**: every input is an [`Input`] value that
//!   [`Dispatcher::apply`] applies, as the method it stands for would;
//!   replaying recorded inputs rebuilds the same state and actions.
//! * **Gates**: per-agent circuit breakers and rate limits, a per-kind
//!   bulkhead and rate limit, and a retry budget, all optional (see
//!   [`DispatcherConfigBuilder`]).
//! * **Errors** are layered: each input method returns its own error
//!   ([`SubmitError`], [`ReportError`], [`SchedulerError`]), `apply` an
//!   [`ApplyError`] wrapping them; all convert into [`crate::Error`].
//! * **Snapshots**: [`Dispatcher::snapshot`] captures the whole state as a
//!   serde value; [`Dispatcher::restore`] continues from it exactly.
//! * **Threads**: the dispatcher is `Send`; [`SharedDispatcher`] is a
//!   cloneable handle for hosts with many producer threads.
//! * **Bounded memory**: finished tasks leave the live table; the last
//!   `terminal_history` terminal states stay queryable.
//!
//! **Where the code is.** `dispatcher/` is the face (every public method
//! in its `mod.rs`) and the concerns behind it, one file each; `task/` is a
//! task as the host writes it (spec, options, metadata, serialized form);
//! `queue/` holds queued tasks (levels, fair-share lanes); `state/` is what
//! the dispatcher knows (the task slab, per-agent tables, interned
//! requirements, timers); `gates/` is every limit that may hold a task
//! back (breakers, rates, bulkheads, concurrency keys); `durable/` is the
//! dispatcher as stored data (journal inputs, snapshots and their checks).
//! Configuration, errors, events, metrics, dead letters and the shared
//! handle are files of their own here.
//!
//! **Aging bound.** With aging interval `a`, a task of priority `Pk` gains
//! one level per `a` waited, so after `k·a` it competes with `P0` work and
//! wins on age. Under a sustained stream of `P0` tasks, a `P3` task is
//! therefore assigned within `3·a` plus the time to serve the tasks already
//! queued ahead of it.
//!
//! ```
//! use taskweave::agent::AgentProfile;
//! use taskweave::scheduler::{Action, AttemptOutcome, Dispatcher, DispatcherConfig, TaskReport, TaskSpec, TaskState};
//! use taskweave::{AgentId, Instant, TaskRequirements};
//!
//! let mut dispatcher = Dispatcher::new(DispatcherConfig::builder().build()?);
//! let now = Instant::ZERO;
//! let gpu = AgentProfile::builder().capabilities(["gpu"]).capacity(2).build()?;
//! dispatcher.register_agent(AgentId::new(1), gpu, now)?;
//!
//! let task = dispatcher.submit(TaskSpec::new("render").requirements(TaskRequirements::new().require(["gpu"])), now)?.id();
//! let Some(Action::Assign { agent, token, .. }) = dispatcher.poll_action() else { unreachable!() };
//! assert_eq!(dispatcher.payload(task), Some(&"render"));
//!
//! // A report with the wrong token is rejected and changes nothing.
//! let forged = TaskReport { task, agent, token: taskweave::AttemptToken::new(999), outcome: AttemptOutcome::Success };
//! assert!(dispatcher.report(forged, now).is_err());
//!
//! dispatcher.report(TaskReport { task, agent, token, outcome: AttemptOutcome::Success }, now)?;
//! assert_eq!(dispatcher.task_state(task), Some(TaskState::Completed));
//! # Ok::<(), taskweave::Error>(())
//! ```

mod config;
#[cfg(feature = "serde")]
mod config_form;
mod dead_letter;
mod dispatcher;
mod durable;
mod errors;
mod gates;
mod observer;
mod queue;
mod scale;
#[cfg(feature = "sync")]
mod shared;
mod state;
mod stats;
mod task;

pub use crate::Observer;
pub use config::{DispatcherConfig, DispatcherConfigBuilder, Heartbeats, MAX_TERMINAL_HISTORY};
pub use dead_letter::{DeadLetter, DeadLetterFilter, DeadLetterQueue, MAX_HISTORY, PriorLetter};
pub use dispatcher::{Action, CancelReason, Dispatcher, Redriven, Submitted, Unroutable};
pub use durable::journal::{Applied, Input};
pub use durable::snapshot::Snapshot;
pub use errors::{
    ApplyError, LimitScope, ReportError, SchedulerError, SubmitError, SubmitErrorKind,
};
pub use gates::concurrency::{ConcurrencyLimit, WhenFull};
pub use gates::tenants::{TenantLimit, TenantQuota};
pub use observer::Event;
pub use scale::{
    MAX_SCALE, MAX_SCALE_WINDOW, ScaleChange, ScaleError, ScaleHint, ScalePolicy,
    ScalePolicyBuilder,
};
#[cfg(feature = "sync")]
pub use shared::{SharedDispatcher, SharedGuard};
pub use stats::{DispatcherMetrics, THROUGHPUT_WINDOW};
pub use task::key_name::KeyName;
pub use task::metadata::{Metadata, MetadataTooLarge};
pub use task::options::{FairShare, MAX_CONCURRENCY_KEYS, MAX_KEY_BYTES, TaskOptions};
pub use task::{
    AttemptOutcome, DeadLetterCause, DeadLetterReason, Expiry, TaskReport, TaskSpec, TaskState,
    UnknownCause,
};
