//! The criterion settings every bench shares: half a second of warm-up,
//! two seconds of measurement, and the bench's own number of samples.

use std::time::Duration;

use criterion::Criterion;

/// Criterion with the shared times and `samples` samples.
pub(crate) fn config(samples: usize) -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(samples)
}
