use rand::SeedableRng;
use rand::rngs::StdRng;

use super::{Candidates, RoutingStrategy};
use crate::AgentId;

/// Power of two choices: draws two eligible agents at random and takes the
/// less loaded one (by `load / capacity`, ties to the one registered first).
///
/// Nearly as balanced as [`LeastLoaded`](super::LeastLoaded) at a fraction of
/// the bookkeeping, and free of herding when many routers share stale load
/// data. The random source is seeded, so the same seed and inputs give the
/// same choices. Costs `O(c)` per pick.
#[derive(Debug)]
pub struct PowerOfTwoChoices {
    rng: StdRng,
}

impl PowerOfTwoChoices {
    /// A strategy whose draws are determined by `seed`.
    pub fn new(seed: u64) -> Self {
        PowerOfTwoChoices {
            rng: StdRng::seed_from_u64(seed),
        }
    }
}

impl RoutingStrategy for PowerOfTwoChoices {
    fn select(&mut self, candidates: &Candidates<'_>) -> Option<AgentId> {
        let first = candidates.sample(&mut self.rng)?;
        let second = candidates.sample(&mut self.rng)?;
        Some(std::cmp::min_by(first, second, |a, b| a.cmp_utilization(b)).id())
    }
}
