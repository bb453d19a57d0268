use super::state::{Repr, mismatch};
use super::{Candidates, RoutingError, RoutingStrategy, StrategyState};
use crate::AgentId;
use crate::rng::SplitMix64;

/// Power of two choices: draws two eligible agents at random and takes the
/// less loaded one (by `load / capacity`, ties to the one registered first).
///
/// Nearly as balanced as [`LeastLoaded`](super::LeastLoaded) at a fraction of
/// the bookkeeping, and free of herding when many routers share stale load
/// data. The random source is seeded, so the same seed and inputs give the
/// same choices. Costs `O(c)` per pick.
#[derive(Debug)]
pub struct PowerOfTwoChoices {
    rng: SplitMix64,
}

impl PowerOfTwoChoices {
    /// A strategy whose draws are determined by `seed`.
    pub fn new(seed: u64) -> Self {
        PowerOfTwoChoices {
            rng: SplitMix64::new(seed),
        }
    }
}

impl RoutingStrategy for PowerOfTwoChoices {
    fn select(&mut self, candidates: &Candidates<'_>) -> Option<AgentId> {
        let first = candidates.sample(&mut self.rng)?;
        let second = candidates.sample(&mut self.rng)?;
        Some(std::cmp::min_by(first, second, |a, b| a.cmp_utilization(b)).id())
    }

    fn learns(&self) -> bool {
        false
    }

    fn save_state(&self) -> StrategyState {
        StrategyState(Repr::PowerOfTwoChoices {
            rng: self.rng.clone(),
        })
    }

    /// Any random state is valid.
    fn load_state(&mut self, state: StrategyState) -> Result<(), RoutingError> {
        match state.0 {
            Repr::PowerOfTwoChoices { rng } => {
                self.rng = rng;
                Ok(())
            }
            other => Err(mismatch("PowerOfTwoChoices", &other)),
        }
    }
}
