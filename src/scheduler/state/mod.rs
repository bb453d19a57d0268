//! Everything a dispatcher knows, as plain data: the state a [`Snapshot`]
//! carries and [`Dispatcher`](super::Dispatcher) works on.
//!
//! [`Snapshot`]: super::Snapshot

pub(super) mod agent_table;
pub(super) mod counts;
pub(super) mod idempotency;
pub(super) mod requirements;
pub(super) mod running;
pub(super) mod slab;
pub(super) mod timer;

use std::collections::VecDeque;
use std::time::Duration;

use super::dead_letter::PriorLetter;
use super::gates::Gates;
use super::gates::concurrency::{KeyGates, KeySet};
use super::gates::tenants::TenantLoads;
use super::queue::Queue;
use super::queue::fair_keys::FairKeys;
use super::queue::parked::ParkedGroups;
use super::stats::Recorder;
use super::task::key_name::KeyName;
use super::task::metadata::Metadata;
use super::task::options::FairShare;
use super::task::{TaskState, Terminal};
use super::{Action, DeadLetterQueue, DispatcherConfig};
use crate::agent::{Registry, Slot};
use crate::hash::IdMap;
use crate::rng::SplitMix64;
use crate::{AgentId, Instant, Priority, TaskId, TenantId};
use agent_table::AgentTable;
use counts::WaitingCounts;
use idempotency::IdempotencyKeys;
use requirements::{RequirementsId, RequirementsTable};
use running::Running;
use slab::TaskSlab;
use timer::Timers;

/// One live (non-terminal) task. Kept small (the queue may hold millions):
/// what most tasks never use lives in [`Extras`], allocated on first use.
/// Stored as a row ([`rows`](super::durable::rows)), its fields in this
/// order: the ones with a default last, left out of the row's end while
/// at it.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
pub(super) struct Task<P> {
    pub(super) payload: P,
    #[cfg_attr(
        feature = "serde",
        serde(deserialize_with = "crate::scheduler::durable::rows::state::deserialize")
    )]
    pub(super) state: TaskState,
    pub(super) seq: u64,
    pub(super) assigned_at: Instant,
    pub(super) requirements: RequirementsId,
    /// While in flight: the registry slot of its agent (derived from the
    /// agent's id when a snapshot is restored).
    #[cfg_attr(feature = "serde", serde(skip))]
    pub(super) agent_slot: Slot,
    #[cfg_attr(
        feature = "serde",
        serde(deserialize_with = "crate::scheduler::durable::rows::priority::deserialize")
    )]
    pub(super) priority: Priority,
    #[cfg_attr(feature = "serde", serde(default))]
    pub(super) attempts: u32,
    #[cfg_attr(feature = "serde", serde(default))]
    pub(super) failures: u32,
    #[cfg_attr(feature = "serde", serde(default))]
    pub(super) extras: Option<Box<Extras>>,
    /// Whether the current attempt is a half-open breaker's probe.
    #[cfg_attr(feature = "serde", serde(default))]
    pub(super) probe: bool,
}

/// The rarely used part of a task: its time limits, retry history and
/// scheduling options.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(super) struct Extras {
    pub(super) ttl: Option<Duration>,
    /// Start (submission or `not_before`) + TTL: checked whenever the task
    /// (re-)enters waiting.
    pub(super) ttl_due: Option<Instant>,
    pub(super) deadline: Option<Instant>,
    pub(super) attempt_timeout: Option<Duration>,
    pub(super) last_delay: Option<Duration>,
    pub(super) last_agent: Option<AgentId>,
    pub(super) unroutable_since: Option<Instant>,
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub(super) not_before: Option<Instant>,
    /// The fair share as submitted, and its interned lane.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub(super) fairness: Option<(FairShare, u32)>,
    /// The concurrency keys as submitted, and the configured ones among
    /// them as key indices.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Vec::is_empty")
    )]
    pub(super) concurrency_keys: Vec<KeyName>,
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "KeySet::is_empty")
    )]
    pub(super) limited: KeySet,
    #[cfg_attr(feature = "serde", serde(default = "super::task::form::one"))]
    pub(super) cost: u32,
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Metadata::is_empty")
    )]
    pub(super) metadata: Metadata,
    /// The most attempts it may be handed out ([`TaskSpec::max_attempts`](crate::scheduler::TaskSpec::max_attempts)).
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub(super) max_attempts: Option<u32>,
    /// Earlier dead letters of the same work, oldest first (redriven).
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Vec::is_empty")
    )]
    pub(super) history: Vec<PriorLetter>,
    /// The tenant that owns it ([`TaskSpec::tenant`](crate::scheduler::TaskSpec::tenant)).
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub(super) tenant: Option<TenantId>,
    /// Its dead letter is never redriven ([`TaskSpec::no_redrive`](crate::scheduler::TaskSpec::no_redrive)).
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "super::task::form::is_false")
    )]
    pub(super) no_redrive: bool,
}

impl Extras {
    const NONE: Extras = Extras {
        ttl: None,
        ttl_due: None,
        deadline: None,
        attempt_timeout: None,
        last_delay: None,
        last_agent: None,
        unroutable_since: None,
        not_before: None,
        fairness: None,
        concurrency_keys: Vec::new(),
        limited: KeySet::EMPTY,
        cost: 1,
        metadata: Metadata::new(),
        max_attempts: None,
        history: Vec::new(),
        tenant: None,
        no_redrive: false,
    };
}

impl Default for Extras {
    fn default() -> Self {
        Self::NONE
    }
}

impl<P> Task<P> {
    pub(super) fn extras(&self) -> &Extras {
        static NONE: Extras = Extras::NONE;
        self.extras.as_deref().unwrap_or(&NONE)
    }

    pub(super) fn extras_mut(&mut self) -> &mut Extras {
        self.extras.get_or_insert_with(Box::default)
    }

    /// The fair-share lane and weight its queue entries carry: `(0, 0)`
    /// without a fair share.
    pub(super) fn lane(&self) -> (u32, u16) {
        (self.extras().fairness.as_ref()).map_or((0, 0), |(share, lane)| (*lane, share.weight))
    }
}

impl<P> TaskSlab<Task<P>, Terminal> {
    /// Whether `task` is live and queued: an entry naming any other task
    /// is dead, dropped when it comes up.
    pub(super) fn is_queued(&self, task: TaskId) -> bool {
        self.get(task).is_some_and(|t| t.state == TaskState::Queued)
    }

    /// `task`'s cost against rate limits (1 for a task no longer live).
    pub(super) fn cost_of(&self, task: TaskId) -> u32 {
        self.get(task).map_or(1, |t| t.extras().cost)
    }
}

/// Everything a dispatcher knows, apart from its configuration, routing
/// strategy and observer: what a [`Snapshot`] carries.
#[derive(Clone, Debug)]
pub(super) struct State<P> {
    pub(super) registry: Registry,
    pub(super) rng: SplitMix64,
    /// Live tasks, and the terminal states of the last `terminal_history`
    /// finished ones.
    pub(super) tasks: TaskSlab<Task<P>, Terminal>,
    pub(super) requirements: RequirementsTable,
    pub(super) queue: Queue,
    /// Tasks that found no eligible agent, by requirement set.
    pub(super) parked: ParkedGroups,
    /// Armed timers.
    pub(super) timers: Timers,
    pub(super) heartbeat_due: IdMap<AgentId, Instant>,
    pub(super) actions: VecDeque<Action>,
    /// The tasks each agent runs, by its registry slot.
    pub(super) in_flight: AgentTable<Running>,
    /// Idempotency keys within their window.
    pub(super) idempotency: IdempotencyKeys,
    pub(super) dead_letters: DeadLetterQueue<P>,
    /// Tasks queued and waiting, derived from `tasks`.
    pub(super) counts: WaitingCounts,
    pub(super) next_seq: u64,
    pub(super) next_token: u64,
    /// Breakers, bulkhead, kind and agent rate limits, retry budget.
    pub(super) gates: Gates,
    /// Concurrency keys: holders, waiters, rates.
    pub(super) key_gates: KeyGates,
    /// Fair-share keys of live tasks, as lane ids.
    pub(super) fair_keys: FairKeys,
    /// Each tenant's live tasks and cost-rate limiter.
    pub(super) tenants: TenantLoads,
    pub(super) recorder: Recorder,
    /// The latest `now` seen: an earlier one counts as this (the
    /// [clock rule](crate::time#the-clock-rule)).
    pub(super) clock: Instant,
}

impl<P> State<P> {
    /// The state of a new dispatcher with `config`.
    pub(super) fn new(config: &DispatcherConfig) -> Self {
        State {
            rng: SplitMix64::new(config.settings.seed),
            queue: Queue::new(config.settings.aging_interval),
            gates: Gates::new(config),
            key_gates: KeyGates::new(
                &config.settings.concurrency_limits,
                config.settings.aging_interval,
            ),
            fair_keys: FairKeys::default(),
            tenants: TenantLoads::default(),
            registry: Registry::new(),
            tasks: TaskSlab::default(),
            requirements: RequirementsTable::default(),
            parked: ParkedGroups::default(),
            timers: Timers::default(),
            heartbeat_due: IdMap::default(),
            actions: VecDeque::new(),
            in_flight: AgentTable::default(),
            idempotency: IdempotencyKeys::default(),
            dead_letters: DeadLetterQueue::new(),
            counts: WaitingCounts::default(),
            next_seq: 0,
            next_token: 0,
            recorder: Recorder::default(),
            clock: Instant::ZERO,
        }
    }
}
