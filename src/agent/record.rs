//! One agent as the registry knows it: its [`AgentRecord`] and
//! [`AgentStatus`], and the part of a record the availability index files
//! it by.

use super::buckets::Ratio;
use super::index::{Availability, ClassId, Slot};
use super::{AgentProfile, PerformanceStats};
use crate::capability::CapabilitySet;
use crate::{AgentId, Instant};

/// Whether an agent takes new work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum AgentStatus {
    /// Takes new tasks (the only routable status).
    #[default]
    Online,
    /// Finishes what it holds but takes nothing new.
    Draining,
    /// Deliberately out of service.
    Offline,
    /// Failing health checks (for example missed heartbeats).
    Unhealthy,
}

/// Everything the registry knows about one agent.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct AgentRecord {
    pub(super) id: AgentId,
    pub(super) order: u64,
    pub(super) profile: AgentProfile,
    pub(super) capabilities: CapabilitySet,
    pub(super) labels: CapabilitySet,
    pub(super) class: ClassId,
    pub(super) status: AgentStatus,
    pub(super) load: u32,
    pub(super) slot_limit: Option<u32>,
    pub(super) stats: PerformanceStats,
    pub(super) registered_at: Instant,
    pub(super) last_heartbeat: Instant,
}

impl AgentRecord {
    /// The agent's id.
    pub fn id(&self) -> AgentId {
        self.id
    }

    /// Registration order: strictly increasing across registrations, never
    /// reused. Strategies break ties on it, lowest first.
    pub fn order(&self) -> u64 {
        self.order
    }

    /// The profile the agent registered with.
    pub fn profile(&self) -> &AgentProfile {
        &self.profile
    }

    /// The agent's capabilities, interned.
    pub fn capabilities(&self) -> &CapabilitySet {
        &self.capabilities
    }

    /// Current status.
    pub fn status(&self) -> AgentStatus {
        self.status
    }

    /// Tasks currently held.
    pub fn load(&self) -> u32 {
        self.load
    }

    /// Maximum concurrent tasks.
    pub fn capacity(&self) -> u32 {
        self.profile.capacity()
    }

    /// `load / capacity`, in `[0, 1]`.
    pub fn utilization(&self) -> f64 {
        f64::from(self.load) / f64::from(self.profile.capacity())
    }

    /// Orders agents by `load / capacity` (compared exactly, without
    /// floating point), then by registration order: the order in which
    /// load-aware strategies prefer them, least busy first.
    pub fn cmp_utilization(&self, other: &AgentRecord) -> std::cmp::Ordering {
        (self.ratio(), self.order).cmp(&(other.ratio(), other.order))
    }

    /// Whether the agent is online with a free slot (below its capacity and
    /// below its slot limit, if one is set).
    pub fn is_available(&self) -> bool {
        self.tracked().is_available()
    }

    /// The temporary cap on concurrent tasks set with
    /// [`Registry::set_slot_limit`](super::Registry::set_slot_limit), if any.
    pub fn slot_limit(&self) -> Option<u32> {
        self.slot_limit
    }

    /// Outcome history.
    pub fn stats(&self) -> &PerformanceStats {
        &self.stats
    }

    /// When the agent registered.
    pub fn registered_at(&self) -> Instant {
        self.registered_at
    }

    /// The last heartbeat (registration counts as one).
    pub fn last_heartbeat(&self) -> Instant {
        self.last_heartbeat
    }

    pub(crate) fn labels(&self) -> &CapabilitySet {
        &self.labels
    }

    fn ratio(&self) -> Ratio {
        Ratio {
            load: self.load,
            capacity: self.profile.capacity(),
        }
    }

    #[inline]
    pub(super) fn tracked(&self) -> TrackedState {
        TrackedState {
            status: self.status,
            load: self.load,
            capacity: self.capacity(),
            admits_below: self
                .slot_limit
                .map_or(self.capacity(), |limit| limit.min(self.capacity())),
            order: self.order,
            class: self.class,
        }
    }
}

/// The part of a record that the index and the online totals depend on.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct TrackedState {
    pub(super) status: AgentStatus,
    pub(super) load: u32,
    pub(super) capacity: u32,
    /// New tasks are admitted while `load` is below this.
    pub(super) admits_below: u32,
    pub(super) order: u64,
    pub(super) class: ClassId,
}

impl TrackedState {
    pub(super) fn is_available(&self) -> bool {
        self.status == AgentStatus::Online && self.load < self.admits_below
    }

    pub(super) fn availability(&self, slot: Slot) -> Option<Availability> {
        self.is_available().then_some(Availability {
            slot,
            order: self.order,
            ratio: Ratio {
                load: self.load,
                capacity: self.capacity,
            },
        })
    }
}
