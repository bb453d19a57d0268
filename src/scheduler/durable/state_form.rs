//! The stored form of a dispatcher's [`State`]: its fields flat, in the
//! order snapshots have always had them. The state in memory keeps each
//! concern in a type of its own (timers, idempotency keys, parked groups);
//! the form is where they meet the snapshot format, which stays as it was.

use std::collections::{BTreeSet, VecDeque};

use crate::agent::Registry;
use crate::hash::IdMap;
use crate::resilience::RateLimiter;
use crate::rng::SplitMix64;
use crate::scheduler::DeadLetterQueue;
use crate::scheduler::dispatcher::Action;
use crate::scheduler::gates::Gates;
use crate::scheduler::gates::concurrency::KeyGates;
use crate::scheduler::gates::tenants::TenantLoads;
use crate::scheduler::queue::Queue;
use crate::scheduler::queue::fair_keys::FairKeys;
use crate::scheduler::queue::parked::ParkedGroups;
use crate::scheduler::state::agent_table::AgentTable;
use crate::scheduler::state::counts::WaitingCounts;
use crate::scheduler::state::idempotency::{ExpiryQueue, Fingerprints, IdempotencyKeys, KeyMap};
use crate::scheduler::state::requirements::RequirementsTable;
use crate::scheduler::state::running::Running;
use crate::scheduler::state::slab::TaskSlab;
use crate::scheduler::state::timer::{Timer, Timers};
use crate::scheduler::state::{State, Task};
use crate::scheduler::stats::Recorder;
use crate::scheduler::task::Terminal;
use crate::{AgentId, Instant, TenantId};

/// Declares the stored form of a [`State`] twice from one list of fields:
/// [`StateForm`], which owns them (read back, and returned by
/// [`Dispatcher::snapshot`](crate::scheduler::Dispatcher::snapshot)), and
/// [`StateView`], which borrows them from a live state (written straight
/// from it by
/// [`Dispatcher::serialize_snapshot`](crate::scheduler::Dispatcher::serialize_snapshot)).
/// One list keeps the two writing the same fields in the same order with
/// the same serde attributes, so they write the same bytes.
macro_rules! state_forms {
    ($($(#[$attr:meta])* $field:ident: $ty:ty,)*) => {
        /// A [`State`] as a snapshot stores it. What the state derives
        /// (queue counts) is not stored; [`State::from`] leaves it for the
        /// restore checks to rebuild.
        #[derive(Clone, Debug)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
        pub(in crate::scheduler) struct StateForm<P> {
            $($(#[$attr])* $field: $ty,)*
        }

        /// A [`State`]'s stored form borrowed from it: written, never read.
        #[cfg_attr(feature = "serde", derive(serde::Serialize))]
        pub(in crate::scheduler) struct StateView<'a, P> {
            $($(#[$attr])* $field: &'a $ty,)*
        }

        impl<P: Clone> From<StateView<'_, P>> for StateForm<P> {
            fn from(view: StateView<'_, P>) -> Self {
                StateForm {
                    $($field: view.$field.clone(),)*
                }
            }
        }
    };
}

state_forms! {
    registry: Registry,
    rng: SplitMix64,
    tasks: TaskSlab<Task<P>, Terminal>,
    requirements: RequirementsTable,
    queue: Queue,
    parked: ParkedGroups,
    timers: BTreeSet<(Instant, u64, Timer)>,
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_maps::as_pairs"))]
    heartbeat_due: IdMap<AgentId, Instant>,
    actions: VecDeque<Action>,
    in_flight: AgentTable<Running>,
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_maps::as_pairs"))]
    idempotency: KeyMap,
    idempotency_expiry: ExpiryQueue,
    /// Left out when no key has one, as in the forms written before.
    #[cfg_attr(
        feature = "serde",
        serde(
            default,
            skip_serializing_if = "std::collections::HashMap::is_empty",
            with = "crate::serde_maps::as_pairs"
        )
    )]
    idempotency_fingerprints: Fingerprints,
    dead_letters: DeadLetterQueue<P>,
    next_seq: u64,
    next_timer: u64,
    next_token: u64,
    gates: Gates,
    key_gates: KeyGates,
    fair_keys: FairKeys,
    /// Each tenant's cost-rate limiter; left out when none has one, as in
    /// the forms written before tenants.
    #[cfg_attr(
        feature = "serde",
        serde(
            default,
            skip_serializing_if = "std::collections::HashMap::is_empty",
            with = "crate::serde_maps::as_map"
        )
    )]
    tenant_rates: IdMap<TenantId, RateLimiter>,
    recorder: Recorder,
    clock: Instant,
}

impl<'a, P> StateView<'a, P> {
    /// `state`'s stored form, borrowed.
    pub(in crate::scheduler) fn of(state: &'a State<P>) -> Self {
        let (idempotency, idempotency_expiry, idempotency_fingerprints) = state.idempotency.parts();
        StateView {
            registry: &state.registry,
            rng: &state.rng,
            tasks: &state.tasks,
            requirements: &state.requirements,
            queue: &state.queue,
            parked: &state.parked,
            timers: state.timers.armed(),
            heartbeat_due: &state.heartbeat_due,
            actions: &state.actions,
            in_flight: &state.in_flight,
            idempotency,
            idempotency_expiry,
            idempotency_fingerprints,
            dead_letters: &state.dead_letters,
            next_seq: &state.next_seq,
            next_timer: state.timers.issued(),
            next_token: &state.next_token,
            gates: &state.gates,
            key_gates: &state.key_gates,
            fair_keys: &state.fair_keys,
            tenant_rates: state.tenants.rates(),
            recorder: &state.recorder,
            clock: &state.clock,
        }
    }
}

impl<P> From<StateForm<P>> for State<P> {
    fn from(form: StateForm<P>) -> Self {
        State {
            registry: form.registry,
            rng: form.rng,
            tasks: form.tasks,
            requirements: form.requirements,
            queue: form.queue,
            parked: form.parked,
            timers: Timers::from_parts(form.timers, form.next_timer),
            heartbeat_due: form.heartbeat_due,
            actions: form.actions,
            in_flight: form.in_flight,
            idempotency: IdempotencyKeys::from_parts(
                form.idempotency,
                form.idempotency_expiry,
                form.idempotency_fingerprints,
            ),
            dead_letters: form.dead_letters,
            counts: WaitingCounts::default(),
            next_seq: form.next_seq,
            next_token: form.next_token,
            gates: form.gates,
            key_gates: form.key_gates,
            fair_keys: form.fair_keys,
            tenants: TenantLoads::from_rates(form.tenant_rates),
            recorder: form.recorder,
            clock: form.clock,
        }
    }
}
