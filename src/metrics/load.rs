//! How evenly work is spread over a pool of agents.

/// Utilization statistics of a pool: mean, variance, extremes and spread of
/// `load / capacity` over the agents.
///
/// Built from `(load, capacity)` pairs, one per agent, in one pass
/// (Welford's algorithm, so the variance does not suffer from cancellation).
/// Utilization may exceed `1.0` for an over-committed agent; it is reported
/// as is. Agents with capacity `0` have nothing to utilize and are skipped
/// (not counted in [`agents`](LoadStats::agents)).
///
/// An empty pool gives [`LoadStats::default()`]: every field zero, no NaN.
/// The result depends on the order of the pairs only through floating-point
/// rounding, and is the same for the same order every time.
///
/// ```
/// use taskweave::metrics::LoadStats;
///
/// let stats = LoadStats::from_pairs([(1, 4), (2, 4), (3, 4), (4, 4)]);
/// assert_eq!(stats.agents, 4);
/// assert_eq!(stats.mean, 0.625);
/// assert_eq!((stats.min, stats.max, stats.spread), (0.25, 1.0, 0.75));
/// assert!((stats.variance - 0.078125).abs() < 1e-12);
///
/// let empty = LoadStats::from_pairs([]);
/// assert_eq!(empty, LoadStats::default());
/// assert_eq!(empty.mean, 0.0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct LoadStats {
    /// Agents counted (those with a non-zero capacity).
    pub agents: usize,
    /// Mean utilization.
    pub mean: f64,
    /// Population variance of utilization (divided by the number of agents,
    /// not one less).
    pub variance: f64,
    /// Lowest utilization.
    pub min: f64,
    /// Highest utilization.
    pub max: f64,
    /// `max − min`: 0 when work is spread perfectly evenly.
    pub spread: f64,
}

impl LoadStats {
    /// Statistics of the `(load, capacity)` pairs, one per agent. `O(n)`.
    pub fn from_pairs<I>(pairs: I) -> LoadStats
    where
        I: IntoIterator<Item = (u32, u32)>,
    {
        let mut agents = 0usize;
        let mut mean = 0.0f64;
        let mut m2 = 0.0f64;
        let mut min = f64::INFINITY;
        let mut max = f64::NEG_INFINITY;
        for (load, capacity) in pairs {
            if capacity == 0 {
                continue;
            }
            let utilization = f64::from(load) / f64::from(capacity);
            agents += 1;
            let delta = utilization - mean;
            mean += delta / agents as f64;
            m2 += delta * (utilization - mean);
            min = min.min(utilization);
            max = max.max(utilization);
        }
        if agents == 0 {
            return LoadStats::default();
        }
        LoadStats {
            agents,
            mean,
            variance: (m2 / agents as f64).max(0.0),
            min,
            max,
            spread: max - min,
        }
    }

    /// Standard deviation of utilization: the square root of
    /// [`variance`](LoadStats::variance).
    pub fn std_dev(&self) -> f64 {
        self.variance.sqrt()
    }
}

impl FromIterator<(u32, u32)> for LoadStats {
    fn from_iter<I: IntoIterator<Item = (u32, u32)>>(pairs: I) -> LoadStats {
        LoadStats::from_pairs(pairs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn known_inputs() {
        let stats = LoadStats::from_pairs([(0, 2), (2, 2), (1, 2), (1, 2)]);
        assert_eq!(stats.agents, 4);
        assert!(close(stats.mean, 0.5));
        assert!(close(stats.variance, 0.125));
        assert!(close(stats.std_dev(), 0.125f64.sqrt()));
        assert_eq!((stats.min, stats.max, stats.spread), (0.0, 1.0, 1.0));
    }

    #[test]
    fn mixed_capacities_use_ratios() {
        let stats: LoadStats = [(3, 4), (6, 8), (75, 100)].into_iter().collect();
        assert!(close(stats.mean, 0.75));
        assert!(close(stats.variance, 0.0));
        assert_eq!(stats.spread, 0.0);
    }

    #[test]
    fn even_pool_has_no_spread() {
        let stats = LoadStats::from_pairs(std::iter::repeat_n((3, 7), 1_000));
        assert_eq!(stats.agents, 1_000);
        assert!(close(stats.mean, 3.0 / 7.0));
        assert!(stats.variance < 1e-15);
        assert_eq!(stats.spread, 0.0);
    }

    #[test]
    fn single_agent() {
        let stats = LoadStats::from_pairs([(1, 3)]);
        assert_eq!(stats.agents, 1);
        assert_eq!(
            (stats.mean, stats.variance, stats.spread),
            (1.0 / 3.0, 0.0, 0.0)
        );
    }

    #[test]
    fn empty_and_zero_capacity_give_zeros_not_nan() {
        for stats in [
            LoadStats::from_pairs([]),
            LoadStats::from_pairs([(0, 0), (5, 0)]),
        ] {
            assert_eq!(stats, LoadStats::default());
            assert_eq!(stats.agents, 0);
            assert_eq!(stats.std_dev(), 0.0);
            assert!(!stats.mean.is_nan() && !stats.variance.is_nan());
        }
        let skipped = LoadStats::from_pairs([(5, 0), (1, 2)]);
        assert_eq!(skipped.agents, 1);
        assert_eq!(skipped.mean, 0.5);
    }

    #[test]
    fn overcommitted_agents_and_extreme_values() {
        let stats = LoadStats::from_pairs([(u32::MAX, 1), (0, u32::MAX)]);
        assert_eq!(stats.max, f64::from(u32::MAX));
        assert_eq!(stats.min, 0.0);
        assert!(stats.variance.is_finite() && stats.variance > 0.0);
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serde_round_trip() {
        let stats = LoadStats::from_pairs([(1, 4), (3, 4)]);
        let json = serde_json::to_string(&stats).unwrap();
        assert_eq!(serde_json::from_str::<LoadStats>(&json).unwrap(), stats);
    }
}
