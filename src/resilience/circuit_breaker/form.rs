//! A [`CircuitBreaker`]'s stored form, checked as it is read.

use super::super::window::SlidingWindow;
use super::{BreakerConfig, CircuitBreaker, Phase};
use crate::Instant;

/// The unchecked fields of a [`CircuitBreaker`], as deserialized.
#[derive(serde::Deserialize)]
pub(super) struct BreakerForm {
    config: BreakerConfig,
    phase: Phase,
    consecutive_failures: u32,
    outcomes: SlidingWindow,
    trips: u64,
    #[serde(default)]
    latest: Instant,
}

impl TryFrom<BreakerForm> for CircuitBreaker {
    type Error = &'static str;

    /// Checks what the breaker's methods keep true: the outcome window has
    /// the configuration's shape, a closed breaker has fewer consecutive
    /// failures than trip it (none otherwise), and a half-open one no more
    /// probes out than allowed and fewer successes than close it.
    fn try_from(form: BreakerForm) -> Result<Self, Self::Error> {
        let BreakerForm {
            config,
            phase,
            consecutive_failures,
            outcomes,
            trips,
            latest,
        } = form;
        if !outcomes.same_shape(&config.empty_window) {
            return Err("the breaker's outcome window does not match its configuration");
        }
        let consistent = match phase {
            Phase::Closed => consecutive_failures < config.consecutive_failures,
            Phase::Open { .. } => consecutive_failures == 0,
            Phase::HalfOpen { probes, successes } => {
                consecutive_failures == 0
                    && probes <= config.probes
                    && successes < config.successes_to_close
            }
        };
        if !consistent {
            return Err("the breaker's phase disagrees with its counters or configuration");
        }
        Ok(CircuitBreaker {
            config,
            phase,
            consecutive_failures,
            outcomes,
            trips,
            latest,
        })
    }
}
