//! Keeping failures small: retries, circuit breakers, bulkheads and rate
//! limits.
//!
//! Every type here is a plain, sans-IO state machine or policy. None of them
//! reads a clock or sleeps: the host passes `now` as an
//! [`Instant`](crate::Instant) and gets
//! back a decision — a delay, a yes/no, or the instant at which the answer
//! changes. Randomness (jitter) comes from an RNG the caller passes in, so
//! the same seed gives the same delays.
//!
//! | type | decides | memory |
//! |---|---|---|
//! | [`RetryPolicy`] ([`ExponentialBackoff`], [`Fixed`], [`Never`], closures; [`RetrySpec`] as data) | whether and when to retry a failed attempt | none (the caller keeps per-task state) |
//! | [`RetryBudget`] | whether retries are still a small enough share of recent traffic | fixed ring of time buckets |
//! | [`CircuitBreaker`] | whether an agent gets calls at all (closed, open, half-open probes) | fixed ring of time buckets |
//! | [`Bulkhead`] | whether another call of a kind may start (in-flight cap per key) | one counter per busy key |
//! | [`RateLimiter`], [`KeyedRateLimiter`] | whether a call fits a rate quota (GCRA), or when it will | one instant per limiter or key |
//!
//! Configurations are validated when built; an invalid one is a
//! [`ResilienceError`] carrying the offending values. A refused call is a
//! typed answer ([`BreakerRejected`], [`BulkheadFull`], [`NotUntil`]), never a
//! panic.
//!
//! ```
//! use std::time::Duration;
//! use rand::SeedableRng;
//! use rand::rngs::StdRng;
//! use taskweave::Instant;
//! use taskweave::resilience::{BreakerConfig, CircuitBreaker, ExponentialBackoff, Jitter, RetryPolicy};
//!
//! let backoff = ExponentialBackoff::builder()
//!     .base(Duration::from_millis(100))
//!     .cap(Duration::from_secs(5))
//!     .max_attempts(4)
//!     .jitter(Jitter::Equal)
//!     .build()?;
//! let mut breaker = CircuitBreaker::new(BreakerConfig::builder().consecutive_failures(3).build()?);
//! let mut rng = StdRng::seed_from_u64(7);
//!
//! // An agent fails every call: retry with backoff until the breaker trips.
//! let (mut now, mut failures, mut previous) = (Instant::ZERO, 0, None);
//! while breaker.try_acquire(now).is_ok() {
//!     failures += 1;
//!     if breaker.on_failure(now) {
//!         break; // tripped: stop sending this agent work for a while
//!     }
//!     let Some(delay) = backoff.next_delay(failures, previous, &mut rng) else { break };
//!     assert!(delay >= Duration::from_millis(50) && delay <= Duration::from_secs(5));
//!     previous = Some(delay);
//!     now += delay;
//! }
//! assert_eq!(failures, 3);
//! assert!(breaker.try_acquire(now).is_err());
//! // The host wakes the breaker when its cooldown ends.
//! let wake = breaker.next_transition().expect("an open breaker has a wake-up instant");
//! assert!(breaker.try_acquire(wake).is_ok()); // a half-open probe
//! # Ok::<(), taskweave::Error>(())
//! ```

mod backoff;
mod bulkhead;
mod circuit_breaker;
mod rate_limiter;
mod retry;
mod retry_budget;
mod retry_spec;
mod window;

use std::time::Duration;

use thiserror::Error;

pub use backoff::{ExponentialBackoff, ExponentialBackoffBuilder, Jitter};
pub use bulkhead::{Bulkhead, BulkheadFull, NotInFlight};
pub use circuit_breaker::{
    BreakerConfig, BreakerConfigBuilder, BreakerRejected, BreakerState, CircuitBreaker,
};
pub use rate_limiter::{InsufficientCapacity, KeyedRateLimiter, NotUntil, Quota, RateLimiter};
pub use retry::{Fixed, Never, RetryPolicy};
pub use retry_budget::{RetryBudget, RetryBudgetBuilder};
pub use retry_spec::RetrySpec;

/// Why a resilience policy could not be built.
#[derive(Clone, Debug, PartialEq, Error)]
#[non_exhaustive]
pub enum ResilienceError {
    /// A real-valued parameter outside its allowed range (or not finite).
    #[error("{parameter} must be {expected}, got {value}")]
    OutOfRange {
        /// Which parameter.
        parameter: &'static str,
        /// The rejected value.
        value: f64,
        /// The allowed range, in words.
        expected: &'static str,
    },
    /// A count that must be at least 1 was zero.
    #[error("{parameter} must be at least 1, got 0")]
    ZeroCount {
        /// Which parameter.
        parameter: &'static str,
    },
    /// A span that must be positive was zero.
    #[error("{parameter} must be longer than zero, got 0ns")]
    ZeroDuration {
        /// Which parameter.
        parameter: &'static str,
    },
    /// The first backoff delay is longer than the cap.
    #[error("base delay {base:?} exceeds cap {cap:?}")]
    BaseExceedsCap {
        /// The base (first) delay.
        base: Duration,
        /// The cap.
        cap: Duration,
    },
    /// A sliding window cannot be split into this many buckets: there must be
    /// between 1 and `max` of them, each at least a nanosecond long.
    #[error("bucket count must be between 1 and {max} for a window of {window:?}, got {buckets}")]
    InvalidBuckets {
        /// The rejected bucket count.
        buckets: u32,
        /// The most buckets this window allows.
        max: u32,
        /// The window.
        window: Duration,
    },
    /// A rate quota finer than one cell per nanosecond.
    #[error("quota of {cells} cells per {period:?} is finer than one cell per nanosecond")]
    QuotaTooFine {
        /// Cells per period.
        cells: u32,
        /// The period.
        period: Duration,
    },
}

/// `duration` in whole nanoseconds, clamped to `u64::MAX` (about 584 years).
fn saturating_nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_are_lowercase_and_carry_values() {
        let cases = [
            (
                ResilienceError::OutOfRange {
                    parameter: "backoff factor",
                    value: 0.5,
                    expected: "finite and at least 1",
                },
                "backoff factor must be finite and at least 1, got 0.5",
            ),
            (
                ResilienceError::BaseExceedsCap {
                    base: Duration::from_secs(2),
                    cap: Duration::from_secs(1),
                },
                "base delay 2s exceeds cap 1s",
            ),
            (
                ResilienceError::InvalidBuckets {
                    buckets: 0,
                    max: 10,
                    window: Duration::from_nanos(10),
                },
                "bucket count must be between 1 and 10 for a window of 10ns, got 0",
            ),
        ];
        for (err, msg) in cases {
            assert_eq!(err.to_string(), msg);
        }
    }

    #[test]
    fn saturating_nanos_clamps() {
        assert_eq!(saturating_nanos(Duration::from_nanos(7)), 7);
        assert_eq!(saturating_nanos(Duration::MAX), u64::MAX);
    }

    #[test]
    fn converts_into_the_crate_error() {
        let err: crate::Error = ResilienceError::ZeroCount {
            parameter: "probes",
        }
        .into();
        assert_eq!(err.to_string(), "probes must be at least 1, got 0");
    }
}
