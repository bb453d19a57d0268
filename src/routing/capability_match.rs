use super::{Candidates, RoutingStrategy};
use crate::AgentId;
use crate::agent::AgentRecord;

/// First fit: the eligible agent registered first.
///
/// Simple and predictable; it fills early agents before later ones, which
/// suits pools where the first agents are the preferred ones. Costs
/// `O(c log n)` through the registration-order index.
#[derive(Clone, Copy, Debug, Default)]
pub struct CapabilityMatch;

impl CapabilityMatch {
    /// The strategy.
    pub fn new() -> Self {
        CapabilityMatch
    }
}

impl RoutingStrategy for CapabilityMatch {
    fn select(&mut self, candidates: &Candidates<'_>) -> Option<AgentId> {
        candidates.first().map(AgentRecord::id)
    }

    fn learns(&self) -> bool {
        false
    }
}
