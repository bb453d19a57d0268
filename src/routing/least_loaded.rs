use super::{Candidates, RoutingStrategy};
use crate::AgentId;
use crate::agent::AgentRecord;

/// The eligible agent with the lowest `load / capacity`. Among equally loaded
/// agents the one that reached that load first wins, so identical agents take
/// turns (see [`Candidates::least_loaded`]).
///
/// For identical tasks on agents of equal capacity it keeps the spread of
/// loads (max − min) at most 1. Reads the registry's load index: `O(c log k)`,
/// so 10,000 agents cost about what 10 do.
#[derive(Clone, Copy, Debug, Default)]
pub struct LeastLoaded;

impl LeastLoaded {
    /// The strategy.
    pub fn new() -> Self {
        LeastLoaded
    }
}

impl RoutingStrategy for LeastLoaded {
    fn select(&mut self, candidates: &Candidates<'_>) -> Option<AgentId> {
        candidates.least_loaded().map(AgentRecord::id)
    }

    fn learns(&self) -> bool {
        false
    }
}
