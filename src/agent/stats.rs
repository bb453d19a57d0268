//! Performance history of one agent.

use std::time::Duration;

/// The result of one task attempt, as fed to the registry and to learning
/// strategies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Outcome {
    /// Whether the attempt succeeded.
    pub success: bool,
    /// How long the attempt took.
    pub latency: Duration,
}

impl Outcome {
    /// A successful attempt that took `latency`.
    pub const fn success(latency: Duration) -> Self {
        Outcome {
            success: true,
            latency,
        }
    }

    /// A failed attempt that took `latency`.
    pub const fn failure(latency: Duration) -> Self {
        Outcome {
            success: false,
            latency,
        }
    }
}

/// Counters and moving averages of an agent's outcomes.
///
/// Latency is an exponentially weighted moving average (EWMA) whose
/// smoothing factor the [`Registry`](crate::agent::Registry) sets.
#[derive(Clone, Debug, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PerformanceStats {
    completed: u64,
    failed: u64,
    /// Travels as its bit pattern, so a stored snapshot comes back exact.
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_bits::option"))]
    ewma_latency_nanos: Option<f64>,
}

impl PerformanceStats {
    /// Folds one outcome in, with EWMA smoothing factor `alpha` in `(0, 1]`.
    pub(crate) fn record(&mut self, outcome: Outcome, alpha: f64) {
        // Saturating: counts restored from a snapshot may sit at the top.
        if outcome.success {
            self.completed = self.completed.saturating_add(1);
        } else {
            self.failed = self.failed.saturating_add(1);
        }
        // Through u64: converting a u128 to f64 costs a library call. The
        // same value as `u64::try_from(latency.as_nanos())`, saturating,
        // without the u128 arithmetic.
        let latency = outcome.latency;
        let sample = latency
            .as_secs()
            .checked_mul(1_000_000_000)
            .and_then(|nanos| nanos.checked_add(u64::from(latency.subsec_nanos())))
            .unwrap_or(u64::MAX) as f64;
        self.ewma_latency_nanos = Some(match self.ewma_latency_nanos {
            None => sample,
            Some(avg) => avg + alpha * (sample - avg),
        });
    }

    /// Successful attempts.
    pub fn completed(&self) -> u64 {
        self.completed
    }

    /// Failed attempts.
    pub fn failed(&self) -> u64 {
        self.failed
    }

    /// All recorded attempts.
    pub fn attempts(&self) -> u64 {
        self.completed.saturating_add(self.failed)
    }

    /// Share of successful attempts, or `None` before the first outcome.
    pub fn success_rate(&self) -> Option<f64> {
        (self.attempts() > 0).then(|| self.completed as f64 / self.attempts() as f64)
    }

    /// Success rate with a uniform prior (Laplace smoothing): `0.5` with no
    /// history, moving towards the observed rate as outcomes accumulate.
    pub fn smoothed_success_rate(&self) -> f64 {
        (self.completed as f64 + 1.0) / (self.attempts() as f64 + 2.0)
    }

    /// Moving average of latency, or `None` before the first outcome.
    pub fn ewma_latency(&self) -> Option<Duration> {
        self.ewma_latency_nanos
            .map(|n| Duration::from_nanos(n.round().clamp(0.0, u64::MAX as f64) as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_rates_and_ewma() {
        let mut s = PerformanceStats::default();
        assert_eq!(s.success_rate(), None);
        assert_eq!(s.smoothed_success_rate(), 0.5);
        s.record(Outcome::success(Duration::from_millis(100)), 0.5);
        s.record(Outcome::failure(Duration::from_millis(300)), 0.5);
        assert_eq!((s.completed(), s.failed(), s.attempts()), (1, 1, 2));
        assert_eq!(s.success_rate(), Some(0.5));
        assert_eq!(s.ewma_latency(), Some(Duration::from_millis(200)));
    }
}
