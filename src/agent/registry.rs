//! The agent registry: who is there, what they can do, how busy and how good.

use std::collections::BTreeMap;
use std::fmt;

use thiserror::Error;

mod tracking;

use super::index::{AvailabilityIndex, Slot};
pub use super::record::{AgentRecord, AgentStatus};
use super::{AgentProfile, Outcome, PerformanceStats};
use crate::capability::CapabilityInterner;
use crate::hash::IdMap;
use crate::{AgentId, Instant};

/// Why the registry refused a request. Every variant names the agent.
#[derive(Clone, Debug, PartialEq, Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// An agent with this id is already registered.
    #[error("agent {0} is already registered")]
    DuplicateAgent(AgentId),
    /// No agent with this id is registered.
    #[error("agent {0} is not registered")]
    UnknownAgent(AgentId),
    /// A load above the agent's capacity was reported.
    #[error("load {load} exceeds capacity {capacity} of agent {agent}")]
    LoadExceedsCapacity {
        /// The agent.
        agent: AgentId,
        /// The load that was asked for.
        load: u32,
        /// The agent's capacity.
        capacity: u32,
    },
    /// A slot was acquired on an agent whose slots are all taken.
    #[error("agent {agent} has no free slot (capacity {capacity})")]
    NoFreeSlot {
        /// The agent.
        agent: AgentId,
        /// The agent's capacity.
        capacity: u32,
    },
    /// A slot was released on an agent that holds none.
    #[error("agent {0} holds no slot to release")]
    NoSlotHeld(AgentId),
    /// The EWMA smoothing factor must lie in `(0, 1]`.
    #[error("ewma smoothing factor must be in (0, 1], got {0}")]
    InvalidSmoothing(f64),
}

/// Default EWMA smoothing factor of latency averages.
pub const DEFAULT_SMOOTHING: f64 = 0.2;

/// The set of known agents, with the indexes routing needs.
///
/// Every mutation (register, unregister, status, load) updates the
/// availability index in `O(log n)`, so routing reads ready-made indexes.
/// Iteration is in registration order; nothing depends on hash order.
///
/// With `serde`, a registry is stored as what it knows (names, agents,
/// the order agents wait in) without what it derives, and reading it back
/// checks everything and rebuilds the indexes: a registry from untrusted
/// bytes is refused with an error naming the problem, or is as consistent
/// as one built by calls. Equal registries serialize to equal bytes.
///
/// ```
/// use taskweave::agent::{AgentProfile, AgentStatus, Registry};
/// use taskweave::{AgentId, Instant};
///
/// let mut registry = Registry::new();
/// let gpu = AgentProfile::builder().capabilities(["gpu"]).capacity(2).build()?;
/// registry.register(AgentId::new(1), gpu, Instant::ZERO)?;
/// registry.acquire(AgentId::new(1))?;
/// registry.set_status(AgentId::new(1), AgentStatus::Draining)?;
/// let agent = registry.get(AgentId::new(1)).unwrap();
/// assert_eq!((agent.load(), agent.status()), (1, AgentStatus::Draining));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(
        try_from = "super::registry_form::RegistryForm",
        into = "super::registry_form::RegistryForm"
    )
)]
pub struct Registry {
    pub(super) capabilities: CapabilityInterner,
    pub(super) labels: CapabilityInterner,
    pub(super) slots: Vec<Option<AgentRecord>>,
    pub(super) free_slots: Vec<Slot>,
    pub(super) slot_of: IdMap<AgentId, Slot>,
    pub(super) by_order: BTreeMap<u64, Slot>,
    pub(super) index: AvailabilityIndex,
    pub(super) next_order: u64,
    pub(super) online_load: u64,
    pub(super) online_capacity: u64,
    pub(super) smoothing: f64,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("agents", &self.len())
            .field("capabilities", &self.capabilities.len())
            .field("online_load", &self.online_load)
            .field("online_capacity", &self.online_capacity)
            .finish_non_exhaustive()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            capabilities: CapabilityInterner::new(),
            labels: CapabilityInterner::new(),
            slots: Vec::new(),
            free_slots: Vec::new(),
            slot_of: IdMap::default(),
            by_order: BTreeMap::new(),
            index: AvailabilityIndex::default(),
            next_order: 0,
            online_load: 0,
            online_capacity: 0,
            smoothing: DEFAULT_SMOOTHING,
        }
    }
}

/// The interned token of one `key = value` label. The length prefix keeps
/// `("a:b", "c")` and `("a", "b:c")` apart.
pub(crate) fn label_token(key: &str, value: &str) -> String {
    format!("{}:{key}{value}", key.len())
}

impl Registry {
    /// An empty registry with the default latency smoothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty registry whose latency EWMA uses smoothing factor `alpha`.
    ///
    /// # Errors
    ///
    /// [`RegistryError::InvalidSmoothing`] unless `0 < alpha <= 1`.
    pub fn with_smoothing(alpha: f64) -> Result<Self, RegistryError> {
        if !(alpha > 0.0 && alpha <= 1.0) {
            return Err(RegistryError::InvalidSmoothing(alpha));
        }
        Ok(Registry {
            smoothing: alpha,
            ..Self::default()
        })
    }

    /// Adds an agent, online, with no load; `now` counts as its first heartbeat.
    ///
    /// # Errors
    ///
    /// [`RegistryError::DuplicateAgent`] if `id` is already registered.
    pub fn register(
        &mut self,
        id: AgentId,
        profile: AgentProfile,
        now: Instant,
    ) -> Result<(), RegistryError> {
        if self.slot_of.contains_key(&id) {
            return Err(RegistryError::DuplicateAgent(id));
        }
        let capabilities = self.capabilities.intern_all(profile.capabilities());
        let labels = self
            .labels
            .intern_all(profile.labels().iter().map(|(k, v)| label_token(k, v)));
        let class = self.index.join(&capabilities, &labels, profile.priority());
        let order = self.next_order;
        self.next_order = order.saturating_add(1);
        let record = AgentRecord {
            id,
            order,
            profile,
            capabilities,
            labels,
            class,
            status: AgentStatus::Online,
            load: 0,
            slot_limit: None,
            stats: PerformanceStats::default(),
            registered_at: now,
            last_heartbeat: now,
        };
        let slot = match self.free_slots.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(None);
                (self.slots.len() - 1) as Slot
            }
        };
        self.track(slot, record.tracked(), 1);
        self.slots[slot as usize] = Some(record);
        self.slot_of.insert(id, slot);
        self.by_order.insert(order, slot);
        Ok(())
    }

    /// A registry of exactly these agents, in this order: a host's own
    /// candidate set — a subset of another registry's agents picked by the
    /// host's logic, or records it keeps itself — over which any routing
    /// strategy then runs ([`routing::route`](crate::routing::route),
    /// [`Candidates::new`](crate::routing::Candidates::new)). Each record
    /// keeps its profile, status, load, slot limit, history and heartbeat;
    /// registration order follows the iteration, and capability ids are
    /// interned afresh. Costs `O(n log n)`.
    ///
    /// ```
    /// use taskweave::agent::{AgentProfile, Registry};
    /// use taskweave::routing::{self, LeastLoaded};
    /// use taskweave::{AgentId, Instant, TaskRequirements};
    ///
    /// let mut pool = Registry::new();
    /// for id in 1..=6 {
    ///     let zone = if id % 2 == 0 { "eu" } else { "us" };
    ///     let profile = AgentProfile::builder().capacity(2).label("zone", zone).build()?;
    ///     pool.register(AgentId::new(id), profile, Instant::ZERO)?;
    /// }
    /// pool.acquire(AgentId::new(2))?;
    /// // The host's own shortlist: agents it trusts for this tenant.
    /// let shortlist = [2, 4].map(|id| pool.get(AgentId::new(id)).cloned().unwrap());
    /// let candidates = Registry::from_records(shortlist)?;
    /// let agent = routing::route(&candidates, &mut LeastLoaded::new(), &TaskRequirements::new())?;
    /// assert_eq!(agent, AgentId::new(4)); // agent 2 is busier
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`RegistryError::DuplicateAgent`] for an id given twice.
    pub fn from_records(
        records: impl IntoIterator<Item = AgentRecord>,
    ) -> Result<Registry, RegistryError> {
        let mut registry = Registry::new();
        for record in records {
            let AgentRecord {
                id,
                profile,
                status,
                load,
                slot_limit,
                stats,
                registered_at,
                last_heartbeat,
                ..
            } = record;
            registry.register(id, profile, registered_at)?;
            registry.update(id, |r| {
                // A record's load never exceeds its capacity.
                r.load = load.min(r.capacity());
                r.status = status;
                r.slot_limit = slot_limit;
                r.stats = stats;
                r.last_heartbeat = last_heartbeat;
                Ok(())
            })?;
        }
        Ok(registry)
    }

    /// Removes an agent and returns its last record (load included, so the
    /// caller can see what it still held).
    ///
    /// # Errors
    ///
    /// [`RegistryError::UnknownAgent`] if `id` is not registered.
    pub fn unregister(&mut self, id: AgentId) -> Result<AgentRecord, RegistryError> {
        let slot = self
            .slot_of
            .remove(&id)
            .ok_or(RegistryError::UnknownAgent(id))?;
        let record = self.slots[slot as usize]
            .take()
            .ok_or(RegistryError::UnknownAgent(id))?;
        self.track(slot, record.tracked(), -1);
        self.index.leave(record.class);
        self.by_order.remove(&record.order);
        self.free_slots.push(slot);
        Ok(record)
    }

    /// Sets an agent's status and returns the previous one.
    ///
    /// # Errors
    ///
    /// [`RegistryError::UnknownAgent`] if `id` is not registered.
    pub fn set_status(
        &mut self,
        id: AgentId,
        status: AgentStatus,
    ) -> Result<AgentStatus, RegistryError> {
        self.update(id, |record| {
            Ok(std::mem::replace(&mut record.status, status))
        })
    }

    /// Sets an agent's load (tasks held), for hosts that track load themselves.
    ///
    /// # Errors
    ///
    /// [`RegistryError::UnknownAgent`], or
    /// [`RegistryError::LoadExceedsCapacity`] if `load > capacity`.
    pub fn set_load(&mut self, id: AgentId, load: u32) -> Result<(), RegistryError> {
        self.update(id, |record| {
            if load > record.capacity() {
                return Err(RegistryError::LoadExceedsCapacity {
                    agent: id,
                    load,
                    capacity: record.capacity(),
                });
            }
            record.load = load;
            Ok(())
        })
    }

    /// Caps the agent's concurrent tasks below its capacity, or lifts the cap
    /// with `None`. Tasks it already holds are unaffected; no new task is
    /// routed to it while its load is at the cap. A dispatcher uses this to
    /// keep an agent with an open circuit breaker at zero new tasks, and at
    /// a few probes while the breaker is half-open.
    ///
    /// # Errors
    ///
    /// [`RegistryError::UnknownAgent`] if `id` is not registered.
    pub fn set_slot_limit(&mut self, id: AgentId, limit: Option<u32>) -> Result<(), RegistryError> {
        self.update(id, |record| {
            record.slot_limit = limit;
            Ok(())
        })
    }

    /// Takes one slot on the agent; returns the new load.
    ///
    /// # Errors
    ///
    /// [`RegistryError::UnknownAgent`], or [`RegistryError::NoFreeSlot`] when
    /// every slot is taken.
    pub fn acquire(&mut self, id: AgentId) -> Result<u32, RegistryError> {
        let slot = self.known_slot(id)?;
        self.acquire_slot(id, slot)
    }

    /// [`acquire`](Self::acquire) for the agent `id` in `slot` (as routing
    /// returned it): no lookup of the id.
    ///
    /// # Errors
    ///
    /// [`RegistryError::UnknownAgent`] unless `id` is in `slot`, or
    /// [`RegistryError::NoFreeSlot`].
    #[inline]
    pub(crate) fn acquire_slot(&mut self, id: AgentId, slot: Slot) -> Result<u32, RegistryError> {
        self.update_load(id, slot, |record| {
            if record.load >= record.capacity() {
                return Err(RegistryError::NoFreeSlot {
                    agent: id,
                    capacity: record.capacity(),
                });
            }
            record.load += 1;
            Ok(record.load)
        })
    }

    /// Frees one slot on the agent; returns the new load.
    ///
    /// # Errors
    ///
    /// [`RegistryError::UnknownAgent`], or [`RegistryError::NoSlotHeld`] when
    /// the load is already zero.
    pub fn release(&mut self, id: AgentId) -> Result<u32, RegistryError> {
        let slot = self.known_slot(id)?;
        self.release_slot(id, slot, None)
    }

    /// [`record_outcome`](Self::record_outcome) (when the attempt produced
    /// an outcome) and [`release`](Self::release) of the agent `id` in
    /// `slot`, without a lookup. The outcome is recorded even when no slot
    /// is held.
    #[inline]
    pub(crate) fn release_slot(
        &mut self,
        id: AgentId,
        slot: Slot,
        outcome: Option<Outcome>,
    ) -> Result<u32, RegistryError> {
        let alpha = self.smoothing;
        self.update_load(id, slot, |record| {
            if let Some(outcome) = outcome {
                record.stats.record(outcome, alpha);
            }
            record.load = record
                .load
                .checked_sub(1)
                .ok_or(RegistryError::NoSlotHeld(id))?;
            Ok(record.load)
        })
    }

    /// Records a heartbeat at `now` (an earlier `now` than the last one is
    /// ignored, so reordered heartbeats cannot move time backwards).
    ///
    /// # Errors
    ///
    /// [`RegistryError::UnknownAgent`] if `id` is not registered.
    pub fn heartbeat(&mut self, id: AgentId, now: Instant) -> Result<(), RegistryError> {
        let record = self.record_mut(id)?;
        record.last_heartbeat = record.last_heartbeat.max(now);
        Ok(())
    }

    /// Folds a task outcome into the agent's performance history.
    ///
    /// # Errors
    ///
    /// [`RegistryError::UnknownAgent`] if `id` is not registered.
    pub fn record_outcome(&mut self, id: AgentId, outcome: Outcome) -> Result<(), RegistryError> {
        let alpha = self.smoothing;
        self.record_mut(id)?.stats.record(outcome, alpha);
        Ok(())
    }

    /// The agent's record, if registered.
    pub fn get(&self, id: AgentId) -> Option<&AgentRecord> {
        self.slot_of.get(&id).and_then(|&slot| self.slot(slot))
    }

    /// The slot of agent `id`, if registered: stable while it stays.
    #[inline]
    pub(crate) fn slot_of(&self, id: AgentId) -> Option<Slot> {
        self.slot_of.get(&id).copied()
    }

    /// Whether `id` is registered.
    pub fn contains(&self, id: AgentId) -> bool {
        self.slot_of.contains_key(&id)
    }

    /// Every agent, in registration order.
    pub fn iter(&self) -> impl Iterator<Item = &AgentRecord> {
        self.by_order.values().filter_map(|&slot| self.slot(slot))
    }

    /// Number of registered agents.
    pub fn len(&self) -> usize {
        self.slot_of.len()
    }

    /// Whether no agent is registered.
    pub fn is_empty(&self) -> bool {
        self.slot_of.is_empty()
    }

    /// The capability names seen so far.
    pub fn capabilities(&self) -> &CapabilityInterner {
        &self.capabilities
    }

    /// Number of agents that are online with a free slot.
    pub fn available_agents(&self) -> usize {
        self.index.available()
    }

    /// Sum of the loads of online agents.
    pub fn online_load(&self) -> u64 {
        self.online_load
    }

    /// Sum of the capacities of online agents.
    pub fn online_capacity(&self) -> u64 {
        self.online_capacity
    }

    pub(crate) fn label_interner(&self) -> &CapabilityInterner {
        &self.labels
    }

    pub(super) fn index(&self) -> &AvailabilityIndex {
        &self.index
    }

    pub(crate) fn slot(&self, slot: Slot) -> Option<&AgentRecord> {
        self.slots.get(slot as usize).and_then(Option::as_ref)
    }

    fn record_mut(&mut self, id: AgentId) -> Result<&mut AgentRecord, RegistryError> {
        self.locate_mut(id).map(|(_, record)| record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn profile(capacity: u32) -> AgentProfile {
        AgentProfile::builder()
            .capabilities(["cpu"])
            .capacity(capacity)
            .build()
            .unwrap()
    }

    fn registry_with(ids: &[u64], capacity: u32) -> Registry {
        let mut registry = Registry::new();
        for &id in ids {
            registry
                .register(AgentId::new(id), profile(capacity), Instant::ZERO)
                .unwrap();
        }
        registry
    }

    #[test]
    fn duplicate_registration_is_refused_and_changes_nothing() {
        let mut registry = registry_with(&[1], 2);
        assert_eq!(
            registry.register(AgentId::new(1), profile(9), Instant::ZERO),
            Err(RegistryError::DuplicateAgent(AgentId::new(1)))
        );
        assert_eq!(registry.len(), 1);
        assert_eq!(registry.get(AgentId::new(1)).unwrap().capacity(), 2);
        assert_eq!(registry.online_capacity(), 2);
    }

    #[test]
    fn every_operation_on_an_unknown_agent_is_refused() {
        let mut registry = registry_with(&[1], 2);
        let ghost = AgentId::new(99);
        let unknown = RegistryError::UnknownAgent(ghost);
        assert_eq!(registry.unregister(ghost).unwrap_err(), unknown);
        assert_eq!(
            registry
                .set_status(ghost, AgentStatus::Offline)
                .unwrap_err(),
            unknown
        );
        assert_eq!(registry.set_load(ghost, 1).unwrap_err(), unknown);
        assert_eq!(registry.acquire(ghost).unwrap_err(), unknown);
        assert_eq!(registry.release(ghost).unwrap_err(), unknown);
        assert_eq!(
            registry.heartbeat(ghost, Instant::ZERO).unwrap_err(),
            unknown
        );
        let outcome = Outcome::success(Duration::ZERO);
        assert_eq!(
            registry.record_outcome(ghost, outcome).unwrap_err(),
            unknown
        );
        assert!(registry.get(ghost).is_none());
    }

    #[test]
    fn load_errors_carry_the_numbers_and_change_nothing() {
        let mut registry = registry_with(&[1], 2);
        let id = AgentId::new(1);
        assert_eq!(
            registry.set_load(id, 3),
            Err(RegistryError::LoadExceedsCapacity {
                agent: id,
                load: 3,
                capacity: 2
            })
        );
        assert_eq!(registry.release(id), Err(RegistryError::NoSlotHeld(id)));
        assert_eq!(registry.acquire(id), Ok(1));
        assert_eq!(registry.acquire(id), Ok(2));
        assert_eq!(
            registry.acquire(id),
            Err(RegistryError::NoFreeSlot {
                agent: id,
                capacity: 2
            })
        );
        assert_eq!(registry.get(id).unwrap().load(), 2);
        assert_eq!(registry.online_load(), 2);
        assert!(!registry.get(id).unwrap().is_available());
        assert_eq!(registry.release(id), Ok(1));
        assert!(registry.get(id).unwrap().is_available());
    }

    #[test]
    fn a_slot_limit_caps_availability_until_lifted() {
        let mut registry = registry_with(&[1], 3);
        let id = AgentId::new(1);
        registry.set_slot_limit(id, Some(0)).unwrap();
        assert!(!registry.get(id).unwrap().is_available());
        assert_eq!(registry.available_agents(), 0);
        registry.set_slot_limit(id, Some(1)).unwrap();
        registry.acquire(id).unwrap();
        assert!(!registry.get(id).unwrap().is_available());
        registry.set_slot_limit(id, None).unwrap();
        assert!(registry.get(id).unwrap().is_available());
        assert_eq!(registry.get(id).unwrap().slot_limit(), None);
        assert_eq!(
            registry.set_slot_limit(AgentId::new(9), None),
            Err(RegistryError::UnknownAgent(AgentId::new(9)))
        );
    }

    #[test]
    fn smoothing_factor_is_validated() {
        for bad in [0.0, -0.1, 1.5, f64::NAN] {
            assert!(matches!(
                Registry::with_smoothing(bad),
                Err(RegistryError::InvalidSmoothing(_))
            ));
        }
        assert!(Registry::with_smoothing(1.0).is_ok());
    }

    #[test]
    fn status_changes_move_totals_and_return_the_previous_status() {
        let mut registry = registry_with(&[1, 2], 3);
        registry.acquire(AgentId::new(2)).unwrap();
        assert_eq!((registry.online_load(), registry.online_capacity()), (1, 6));
        let previous = registry
            .set_status(AgentId::new(2), AgentStatus::Unhealthy)
            .unwrap();
        assert_eq!(previous, AgentStatus::Online);
        assert_eq!((registry.online_load(), registry.online_capacity()), (0, 3));
        registry
            .set_status(AgentId::new(2), AgentStatus::Online)
            .unwrap();
        assert_eq!((registry.online_load(), registry.online_capacity()), (1, 6));
        let removed = registry.unregister(AgentId::new(2)).unwrap();
        assert_eq!(removed.load(), 1);
        assert_eq!((registry.online_load(), registry.online_capacity()), (0, 3));
    }

    #[test]
    fn heartbeats_never_move_backwards_and_outcomes_accumulate() {
        let mut registry = registry_with(&[1], 1);
        let id = AgentId::new(1);
        registry.heartbeat(id, Instant::from_secs(5)).unwrap();
        registry.heartbeat(id, Instant::from_secs(3)).unwrap();
        assert_eq!(
            registry.get(id).unwrap().last_heartbeat(),
            Instant::from_secs(5)
        );
        registry
            .record_outcome(id, Outcome::success(Duration::from_millis(10)))
            .unwrap();
        registry
            .record_outcome(id, Outcome::failure(Duration::from_millis(30)))
            .unwrap();
        let stats = registry.get(id).unwrap().stats();
        assert_eq!((stats.completed(), stats.failed()), (1, 1));
        assert_eq!(stats.ewma_latency(), Some(Duration::from_millis(14)));
    }

    #[test]
    fn iteration_follows_registration_order_and_slots_are_reused() {
        let mut registry = registry_with(&[5, 3, 9], 1);
        registry.unregister(AgentId::new(3)).unwrap();
        registry
            .register(AgentId::new(3), profile(1), Instant::ZERO)
            .unwrap();
        let ids: Vec<u64> = registry.iter().map(|r| r.id().get()).collect();
        assert_eq!(ids, [5, 9, 3]);
        assert_eq!(registry.slots.len(), 3);
        let orders: Vec<u64> = registry.iter().map(AgentRecord::order).collect();
        assert!(orders.windows(2).all(|w| w[0] < w[1]));
    }
}
