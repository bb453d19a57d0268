//! The dispatcher's built-in metrics, fed by its own [`Event`]s.

use std::time::Duration;

use super::Event;
use crate::agent::Registry;
use crate::metrics::{Counters, Histogram, HistogramSummary, LoadStats, Throughput};
use crate::{AgentId, Instant, Priority};

/// Window over which [`DispatcherMetrics::completions_per_second`] is measured.
pub const THROUGHPUT_WINDOW: Duration = Duration::from_secs(10);

/// Counters, per-priority latency histograms and completion throughput,
/// updated from events in bounded memory.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(crate) struct Recorder {
    counters: Counters,
    queue_wait: [Histogram; Priority::LEVELS],
    run_time: [Histogram; Priority::LEVELS],
    completions: Throughput,
    latest: Instant,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            counters: Counters::default(),
            queue_wait: Default::default(),
            run_time: Default::default(),
            completions: Throughput::new(THROUGHPUT_WINDOW, 10)
                .expect("ten one-second buckets are a valid window"),
            latest: Instant::ZERO,
        }
    }
}

impl Recorder {
    pub(crate) fn record(&mut self, event: &Event, now: Instant) {
        self.latest = self.latest.max(now);
        let c = &mut self.counters;
        match *event {
            Event::Submitted { .. } => c.submitted += 1,
            Event::Assigned {
                priority, waited, ..
            } => {
                c.assigned += 1;
                self.queue_wait[priority.index()].record_duration(waited);
            }
            Event::Completed { priority, ran, .. } => {
                c.completed += 1;
                self.run_time[priority.index()].record_duration(ran);
                self.completions.record(now);
            }
            Event::Failed { .. } => c.failed += 1,
            Event::Retried { .. } => c.retried += 1,
            Event::DeadLettered { .. } => c.dead_lettered += 1,
            Event::Expired { .. } => c.expired += 1,
            Event::Cancelled { .. } => c.cancelled += 1,
            Event::Preempted { .. } | Event::FailedOver { .. } => c.preempted += 1,
            Event::ReportRejected { .. } => c.rejected_reports += 1,
            Event::BreakerTripped { .. } => c.breaker_trips += 1,
            Event::AgentLost { .. } => {}
        }
    }

    pub(crate) fn snapshot(&self, registry: &Registry) -> DispatcherMetrics {
        DispatcherMetrics {
            counters: self.counters,
            queue_wait: self.queue_wait.each_ref().map(Histogram::summary),
            run_time: self.run_time.each_ref().map(Histogram::summary),
            load: registry.iter().map(|r| (r.load(), r.capacity())).collect(),
            utilization: registry.iter().map(|r| (r.id(), r.utilization())).collect(),
            completions_per_second: self.completions.per_second(self.latest),
        }
    }
}

/// A point-in-time view of the dispatcher's metrics.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct DispatcherMetrics {
    /// Lifecycle counters.
    pub counters: Counters,
    /// Time from entering the queue to assignment, per priority level
    /// (index 0 is P0): p50 / p95 / p99 in nanoseconds.
    pub queue_wait: [HistogramSummary; Priority::LEVELS],
    /// Run time of successful attempts, per priority level.
    pub run_time: [HistogramSummary; Priority::LEVELS],
    /// Utilization statistics across agents (mean, variance, spread).
    pub load: LoadStats,
    /// Utilization (`load / capacity`) per agent, in registration order.
    pub utilization: Vec<(AgentId, f64)>,
    /// Completions per second over the last [`THROUGHPUT_WINDOW`].
    pub completions_per_second: f64,
}
