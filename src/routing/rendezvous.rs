use super::{Candidates, RoutingError, RoutingStrategy, highest_scoring};
use crate::AgentId;
use crate::agent::AgentRecord;
use crate::hash::{mix, unit_interval};

/// Weighted rendezvous (highest random weight) hashing on the task's
/// affinity key, with a bounded-load fallback.
///
/// Every agent gets a score `-weight / ln(u)` from a stable hash `u` of
/// (key, agent id); the key goes to the best-scoring eligible agent. When an
/// agent leaves, only its keys move; when one joins, it takes about
/// `1/(n+1)` of the keys (weighted by its share).
///
/// Bounded load (as in consistent hashing with bounded loads): an agent is
/// skipped while taking the task would push it above `bound ×` its fair
/// share of the online load, so a hot key cannot pile onto one agent; the
/// key then goes to the next agent in its preference order. Tasks without
/// an affinity key go to the least-loaded agent.
///
/// Costs `O(n)` per pick: each eligible agent is scored once.
#[derive(Clone, Copy, Debug)]
pub struct Rendezvous {
    bound: f64,
}

impl Rendezvous {
    /// Default load bound: an agent may carry 25 % over its fair share.
    pub const DEFAULT_BOUND: f64 = 1.25;

    /// Rendezvous hashing with the default load bound.
    pub fn new() -> Self {
        Rendezvous {
            bound: Self::DEFAULT_BOUND,
        }
    }

    /// Rendezvous hashing whose agents may carry at most `bound ×` their
    /// fair share of the load.
    ///
    /// # Errors
    ///
    /// [`RoutingError::InvalidParameter`] unless `bound` is finite and ≥ 1.
    pub fn with_load_bound(bound: f64) -> Result<Self, RoutingError> {
        if !(bound.is_finite() && bound >= 1.0) {
            return Err(RoutingError::InvalidParameter {
                parameter: "rendezvous load bound",
                value: bound,
            });
        }
        Ok(Rendezvous { bound })
    }

    /// The score of `agent` for the key hashed to `key`; higher wins.
    pub fn score(key: u64, agent: AgentId, weight: u32) -> f64 {
        -f64::from(weight) / unit_interval(mix(key, agent.get())).ln()
    }

    /// Whether giving `record` one more task keeps it within the bound:
    /// `load + 1 ≤ ⌈bound · (online load + 1) · capacity / online capacity⌉`.
    fn within_bound(&self, record: &AgentRecord, online_load: u64, online_capacity: u64) -> bool {
        let share =
            (online_load + 1) as f64 * f64::from(record.capacity()) / online_capacity.max(1) as f64;
        f64::from(record.load() + 1) <= (self.bound * share).ceil()
    }
}

impl Default for Rendezvous {
    fn default() -> Self {
        Self::new()
    }
}

impl RoutingStrategy for Rendezvous {
    fn select(&mut self, candidates: &Candidates<'_>) -> Option<AgentId> {
        let Some(key) = candidates.requirements().affinity_hash() else {
            return candidates.least_loaded().map(AgentRecord::id);
        };
        let registry = candidates.registry();
        let (load, capacity) = (registry.online_load(), registry.online_capacity());
        let score = |record: &AgentRecord| Self::score(key, record.id(), record.profile().weight());
        let within = candidates
            .iter()
            .filter(|record| self.within_bound(record, load, capacity));
        highest_scoring(within, score)
            .or_else(|| highest_scoring(candidates.iter(), score))
            .map(AgentRecord::id)
    }

    fn learns(&self) -> bool {
        false
    }
}
