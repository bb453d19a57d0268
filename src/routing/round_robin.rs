use super::state::{Repr, mismatch};
use super::{Candidates, RoutingError, RoutingStrategy, StrategyState};
use crate::AgentId;

/// True rotation: each pick takes the next eligible agent in registration
/// order after the previous pick, wrapping around.
///
/// Over `k · n` picks among a stable set of `n` eligible agents, each gets
/// exactly `k`. Costs `O(c log n)` through the registration-order index.
#[derive(Clone, Copy, Debug, Default)]
pub struct RoundRobin {
    last: Option<u64>,
}

impl RoundRobin {
    /// A rotation that starts at the first eligible agent.
    pub fn new() -> Self {
        Self::default()
    }
}

impl RoutingStrategy for RoundRobin {
    fn select(&mut self, candidates: &Candidates<'_>) -> Option<AgentId> {
        let next = match self.last {
            Some(order) => candidates.next_after(order),
            None => candidates.first(),
        }?;
        self.last = Some(next.order());
        Some(next.id())
    }

    fn learns(&self) -> bool {
        false
    }

    fn save_state(&self) -> StrategyState {
        StrategyState(Repr::RoundRobin { last: self.last })
    }

    /// Any position is valid: one past every agent wraps around.
    fn load_state(&mut self, state: StrategyState) -> Result<(), RoutingError> {
        match state.0 {
            Repr::RoundRobin { last } => {
                self.last = last;
                Ok(())
            }
            other => Err(mismatch("RoundRobin", &other)),
        }
    }
}
