use super::{Candidates, RoutingStrategy};
use crate::AgentId;
use crate::agent::AgentRecord;

/// The eligible agent with the highest profile
/// [`priority`](crate::agent::AgentProfile::priority), then the least loaded
/// among those, ties broken as in [`LeastLoaded`](super::LeastLoaded).
///
/// Suits tiered pools: premium agents take work while they have free slots,
/// the rest absorb overflow. Costs `O(c log k)` through the priority index.
#[derive(Clone, Copy, Debug, Default)]
pub struct PriorityBased;

impl PriorityBased {
    /// The strategy.
    pub fn new() -> Self {
        PriorityBased
    }
}

impl RoutingStrategy for PriorityBased {
    fn select(&mut self, candidates: &Candidates<'_>) -> Option<AgentId> {
        candidates.highest_priority().map(AgentRecord::id)
    }

    fn learns(&self) -> bool {
        false
    }
}
