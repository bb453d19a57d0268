//! Errors of the metrics module.

use std::time::Duration;

use thiserror::Error;

/// Why a metrics component could not be built.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// A sliding window needs between 1 and `max` buckets.
    #[error("a throughput window needs 1 to {max} buckets, got {buckets}")]
    InvalidBucketCount {
        /// The number of buckets asked for.
        buckets: usize,
        /// The largest number allowed.
        max: usize,
    },
    /// The window is shorter than one nanosecond per bucket.
    #[error("a {window:?} window cannot be split into {buckets} buckets of at least 1ns")]
    WindowTooShort {
        /// The window asked for.
        window: Duration,
        /// The number of buckets asked for.
        buckets: usize,
    },
    /// The window does not fit in `u64` nanoseconds (about 584 years).
    #[error("a {0:?} window does not fit in u64 nanoseconds")]
    WindowTooLong(Duration),
}
