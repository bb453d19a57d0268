use super::state::{Repr, mismatch, strictly_sorted};
use super::{Candidates, RoutingError, RoutingStrategy, StrategyState, prune_departed};
use crate::AgentId;
use crate::hash::IdMap;

/// Smooth weighted round robin (the nginx algorithm).
///
/// Each pick adds every eligible agent's weight to its running credit, takes
/// the agent with the most credit (ties to the one registered first) and
/// charges it the total weight. Over every cycle of `Σ weight` picks among a
/// stable set of agents, each agent is chosen exactly `weight` times, and
/// heavy agents' turns are spread through the cycle rather than bunched
/// (weights 5, 1, 1 give `a a b a c a a`).
///
/// Costs `O(n)` per pick: every eligible agent's credit moves on every pick,
/// which is what makes the sequence smooth.
#[derive(Clone, Debug, Default)]
pub struct WeightedRoundRobin {
    credit: IdMap<AgentId, i64>,
}

impl WeightedRoundRobin {
    /// A strategy with no credit yet.
    pub fn new() -> Self {
        Self::default()
    }
}

impl RoutingStrategy for WeightedRoundRobin {
    fn select(&mut self, candidates: &Candidates<'_>) -> Option<AgentId> {
        prune_departed(&mut self.credit, candidates.registry());
        let mut total = 0i64;
        let mut best: Option<(i64, u64, AgentId)> = None;
        for record in candidates.iter() {
            let weight = i64::from(record.profile().weight());
            total = total.saturating_add(weight);
            let credit = self.credit.entry(record.id()).or_insert(0);
            *credit = credit.saturating_add(weight);
            let better = best.is_none_or(|(c, order, _)| {
                (*credit, std::cmp::Reverse(record.order())) > (c, std::cmp::Reverse(order))
            });
            if better {
                best = Some((*credit, record.order(), record.id()));
            }
        }
        let (_, _, chosen) = best?;
        if let Some(credit) = self.credit.get_mut(&chosen) {
            *credit = credit.saturating_sub(total);
        }
        Some(chosen)
    }

    fn learns(&self) -> bool {
        false
    }

    fn save_state(&self) -> StrategyState {
        let mut credit: Vec<_> = self.credit.iter().map(|(&id, &c)| (id, c)).collect();
        credit.sort_unstable();
        StrategyState(Repr::WeightedRoundRobin { credit })
    }

    /// Any credit is valid (credits saturate); each agent appears once.
    fn load_state(&mut self, state: StrategyState) -> Result<(), RoutingError> {
        match state.0 {
            Repr::WeightedRoundRobin { credit } => {
                strictly_sorted("WeightedRoundRobin", &credit, |&(id, _)| id)?;
                self.credit = credit.into_iter().collect();
                Ok(())
            }
            other => Err(mismatch("WeightedRoundRobin", &other)),
        }
    }
}
