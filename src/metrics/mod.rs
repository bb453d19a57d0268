//! Measuring what the scheduler does: counters, latency histograms, load
//! balance and throughput.
//!
//! These are plain data structures with no clock and no I/O. A dispatcher
//! feeds them; a host reads them, snapshots them (with the `serde` feature)
//! or exports them to its own monitoring.
//!
//! * [`Counters`]: monotonic counts of submitted, assigned, completed,
//!   failed, retried, dead-lettered, expired, cancelled and preempted
//!   tasks, rejected reports and circuit-breaker trips.
//! * [`Histogram`]: log-bucketed histogram of `u64` values (latencies in
//!   nanoseconds) with `O(1)` recording, at most 1/256 relative error on
//!   quantiles, exact count, min, max and mean, and bounded memory (at most
//!   58 KiB, whatever the number of samples); [`HistogramSummary`] is its
//!   p50/p95/p99 digest.
//! * [`LoadStats`]: mean, variance, extremes and spread of `load / capacity`
//!   over a pool of agents.
//! * [`Throughput`]: events per second over a sliding window of fixed time
//!   buckets, with time passed in by the caller.
//!
//! ```
//! use std::time::Duration;
//! use taskweave::Instant;
//! use taskweave::metrics::{Counters, Histogram, LoadStats, Throughput};
//!
//! let mut counters = Counters::default();
//! let mut latency = Histogram::new();
//! let mut throughput = Throughput::new(Duration::from_secs(60), 60)?;
//!
//! for (i, ms) in [12u64, 15, 11, 250, 14].into_iter().enumerate() {
//!     let now = Instant::from_secs(i as u64);
//!     counters.completed += 1;
//!     latency.record_duration(Duration::from_millis(ms));
//!     throughput.record(now);
//! }
//!
//! let summary = latency.summary();
//! assert_eq!(summary.count, 5);
//! assert_eq!(summary.max, 250_000_000);
//! assert!(summary.p50.abs_diff(14_000_000) <= 14_000_000 / 256);
//! assert_eq!(counters.completed, 5);
//! assert_eq!(throughput.count(Instant::from_secs(4)), 5);
//!
//! let balance = LoadStats::from_pairs([(2, 4), (4, 4), (0, 4)]);
//! assert_eq!(balance.spread, 1.0);
//! # Ok::<(), taskweave::metrics::MetricsError>(())
//! ```

mod counters;
mod error;
mod histogram;
mod load;
mod throughput;

pub use counters::Counters;
pub use error::MetricsError;
pub(crate) use histogram::nanos_saturating;
pub use histogram::{Histogram, HistogramSummary};
pub use load::LoadStats;
pub use throughput::Throughput;
