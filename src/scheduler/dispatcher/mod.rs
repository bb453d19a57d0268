//! The sans-IO dispatcher: queue, route, assign, and see every task to one end.
//!
//! Split by concern, in the manner of quinn-proto's connection:
//!
//! * `admission` — submissions, idempotency keys, the way into the queue;
//! * `placement` — the dispatch loop, routing, assignment, parking,
//!   preemption and reserved capacity;
//! * `attempts` — reports, and where a task goes when an attempt ends;
//! * `agents` — registration, status, heartbeats and failover;
//! * `timers` — the clock rule and every timer;
//! * `queries` — read-only views and the dead-letter queue;
//! * `redrive` — requeueing dead letters, one or by a filter;
//! * `keys` — concurrency keys: their limits, policies and rates;
//! * `gating` — the dispatcher's side of the gates (circuit breakers, the
//!   kind bulkhead, kind and agent rate limits and the retry budget), whose
//!   state is one `Gates` value of the scheduler's `gates` module.

mod admission;
mod agents;
mod attempts;
mod gating;
mod keys;
mod placement;
mod plain;
mod queries;
mod redrive;
mod reports;
mod timers;

pub use redrive::Redriven;

use super::state::State;
use super::task::{DeadLetterReason, Expiry};
use super::{DispatcherConfig, Event};
use crate::Observer;
use crate::routing::{LeastLoaded, RoutingStrategy};
use crate::{AgentId, AttemptToken, TaskId};

/// What the host should do next; pulled with [`Dispatcher::poll_action`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use = "an action the host does not carry out is lost"]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Action {
    /// Start `task` on `agent`. Its report must carry `token`.
    Assign {
        /// The task (its payload: [`Dispatcher::payload`]).
        task: TaskId,
        /// The agent chosen.
        agent: AgentId,
        /// Fencing token of this attempt.
        token: AttemptToken,
        /// 1 for the first attempt.
        attempt: u32,
    },
    /// Stop the attempt `token` of `task` on `agent`; any result it still
    /// sends will be rejected.
    Cancel {
        /// The task.
        task: TaskId,
        /// The agent running it.
        agent: AgentId,
        /// The attempt to stop.
        token: AttemptToken,
        /// Why.
        reason: CancelReason,
    },
    /// `task` failed for good; its letter is in the dead-letter queue.
    DeadLettered {
        /// The task.
        task: TaskId,
        /// Why.
        reason: DeadLetterReason,
    },
    /// `task` ran out of time; its letter is in the dead-letter queue.
    Expired {
        /// The task.
        task: TaskId,
        /// Which limit ran out.
        limit: Expiry,
    },
    /// `agent` missed its heartbeats and is now unhealthy; its tasks were
    /// requeued.
    AgentLost {
        /// The agent.
        agent: AgentId,
    },
}

/// Why a running attempt is being stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum CancelReason {
    /// The host cancelled the task.
    Cancelled,
    /// The task's deadline passed.
    Expired,
    /// The attempt exceeded its timeout; the task will be retried or
    /// dead-lettered.
    TimedOut,
    /// The agent was lost or taken out of service; the task was requeued.
    AgentLost,
    /// A waiting P0 task needed the slot; the task was requeued without
    /// spending a retry.
    Preempted,
    /// A newer task of a full concurrency key took the slot
    /// ([`WhenFull`](super::WhenFull)); the task was cancelled.
    Superseded,
}

/// The result of a successful submission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "a duplicate submission names an existing task, not a new one"]
pub enum Submitted {
    /// A new task was created.
    New(TaskId),
    /// The idempotency key was seen within the window: this is the existing
    /// task, and the new payload was dropped.
    Duplicate(TaskId),
}

impl Submitted {
    /// The task id, new or existing.
    pub fn id(self) -> TaskId {
        match self {
            Submitted::New(id) | Submitted::Duplicate(id) => id,
        }
    }
}

/// Where the next task comes from.
#[derive(Clone, Copy)]
enum Source {
    Main,
    Parked(usize),
}

/// The sans-IO dispatcher. See the [module docs](super).
pub struct Dispatcher<P, S = Box<dyn RoutingStrategy + Send>> {
    pub(super) config: DispatcherConfig,
    pub(super) strategy: S,
    /// What the strategy's [`learns`](RoutingStrategy::learns) answered
    /// when the dispatcher took it.
    pub(super) learns: bool,
    pub(super) observer: Option<Box<dyn Observer<Event> + Send>>,
    /// Set while a [`SharedDispatcher`](super::SharedDispatcher) holds the
    /// dispatcher: where [`set_observer`](Self::set_observer) hands the
    /// host's observer, so that it runs outside the lock.
    #[cfg(feature = "sync")]
    pub(super) handoff: Option<super::shared::Handoff>,
    /// Whether a task's cycle may take its plain instance: what
    /// [`plain_now`](Self::plain_now) answered when it last could change
    /// (see the `plain` module). `false` is always correct (the full
    /// path); `true` only while `plain_now` holds, so whatever sets an
    /// observer recomputes it.
    pub(super) plain: bool,
    pub(super) state: State<P>,
}

impl<P, S> std::fmt::Debug for Dispatcher<P, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("agents", &self.state.registry.len())
            .field("live_tasks", &self.state.tasks.len())
            .field("waiting", &self.state.waiting)
            .field("queued_by_level", &self.state.queued_by_level)
            .field("dead_letters", &self.state.dead_letters.len())
            .field("pending_actions", &self.state.actions.len())
            .finish_non_exhaustive()
    }
}

impl<P> Dispatcher<P> {
    /// A dispatcher that routes with [`LeastLoaded`].
    pub fn new(config: DispatcherConfig) -> Self {
        Self::with_strategy(config, Box::new(LeastLoaded::new()))
    }
}
impl<P, S: RoutingStrategy> Dispatcher<P, S> {
    /// A dispatcher that routes with `strategy`.
    pub fn with_strategy(config: DispatcherConfig, strategy: S) -> Self {
        let state = State::new(&config);
        Self::assemble(config, strategy, state)
    }

    /// A dispatcher of these parts, with no observer: what building one
    /// and restoring one share. Asks the strategy whether it learns and
    /// settles which instance of the cycle runs.
    pub(super) fn assemble(config: DispatcherConfig, strategy: S, state: State<P>) -> Self {
        let mut dispatcher = Dispatcher {
            config,
            learns: strategy.learns(),
            strategy,
            observer: None,
            #[cfg(feature = "sync")]
            handoff: None,
            plain: false,
            state,
        };
        dispatcher.plain = dispatcher.plain_now();
        dispatcher
    }
}
