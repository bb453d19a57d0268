//! The dispatcher's built-in metrics, fed by its own [`Event`]s.

use std::time::Duration;

use super::Event;
use crate::agent::Registry;
use crate::metrics::{
    Counters, Histogram, HistogramSummary, LoadStats, Throughput, nanos_saturating,
};
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
    /// Records `event`. A rejected report counts and changes nothing else,
    /// not even the metrics clock.
    ///
    /// Inline, with a submission (every task's) handled here: the
    /// dispatcher builds each event where it emits it, so the match folds
    /// away and only that event's updates remain. The rest goes to
    /// [`record_other`](Self::record_other). (A plain `#[inline]` was not
    /// taken: the call stayed, and so did the match.) Assignments and
    /// completions, the other two events of every task's cycle, the
    /// dispatcher feeds through [`assigned`](Self::assigned) and
    /// [`completed`](Self::completed), in nanoseconds, without an event.
    #[inline(always)]
    pub(crate) fn record(&mut self, event: &Event, now: Instant) {
        match *event {
            Event::Submitted { .. } => {
                self.tick(now);
                bump(&mut self.counters.submitted);
            }
            _ => self.record_other(event, now),
        }
    }

    /// An assignment of a task of `priority` that waited `waited`
    /// nanoseconds.
    #[inline(always)]
    pub(crate) fn assigned(&mut self, priority: Priority, waited: u64, now: Instant) {
        self.tick(now);
        bump(&mut self.counters.assigned);
        self.queue_wait[priority.index()].record(waited);
    }

    /// A completion of a task of `priority` that ran `ran` nanoseconds.
    #[inline(always)]
    pub(crate) fn completed(&mut self, priority: Priority, ran: u64, now: Instant) {
        self.tick(now);
        bump(&mut self.counters.completed);
        self.run_time[priority.index()].record(ran);
        self.completions.record(now);
    }

    /// Moves the metrics clock forward to `now`.
    #[inline]
    fn tick(&mut self, now: Instant) {
        self.latest = self.latest.max(now);
    }

    /// [`record`](Self::record) for every event but a submission: those
    /// outside a task's common cycle, and an assignment or completion
    /// given whole as an event.
    #[inline(never)]
    fn record_other(&mut self, event: &Event, now: Instant) {
        if let Event::ReportRejected { .. } = event {
            bump(&mut self.counters.rejected_reports);
            return;
        }
        self.tick(now);
        let c = &mut self.counters;
        match *event {
            // `record` handles it itself.
            Event::Submitted { .. } => {}
            Event::Assigned {
                priority, waited, ..
            } => self.assigned(priority, nanos_saturating(waited), now),
            Event::Completed { priority, ran, .. } => {
                self.completed(priority, nanos_saturating(ran), now)
            }
            Event::Failed { .. } => bump(&mut c.failed),
            Event::Retried { .. } => bump(&mut c.retried),
            Event::DeadLettered { .. } => bump(&mut c.dead_lettered),
            Event::Expired { .. } => bump(&mut c.expired),
            Event::Cancelled { .. } => bump(&mut c.cancelled),
            Event::Preempted { .. } | Event::FailedOver { .. } => bump(&mut c.preempted),
            Event::ReportRejected { .. } => {}
            Event::BreakerTripped { .. } => bump(&mut c.breaker_trips),
            Event::AgentLost { .. } => {}
        }
    }

    /// Checks a recorder read from a snapshot: its throughput window is the
    /// one [`DispatcherMetrics::completions_per_second`] documents.
    pub(crate) fn check(&self) -> Result<(), String> {
        let (window, width) = (self.completions.window(), self.completions.bucket_width());
        if window != THROUGHPUT_WINDOW || width != Duration::from_secs(1) {
            return Err(format!(
                "throughput window {window:?} in buckets of {width:?}"
            ));
        }
        Ok(())
    }

    /// Checks a recorder read from a snapshot against the tasks it
    /// counted: `live` tasks (queued, delayed or in flight), `in_flight` of
    /// them running. Every task submitted is live or ended once (completed,
    /// dead-lettered, expired or cancelled); every assignment has its wait
    /// recorded and every completion its run time; an attempt ends at most
    /// once (completed, failed or taken back) unless it is still running,
    /// and each failure is retried or dead-lettered. A counter at
    /// `u64::MAX` has stopped counting, so the relations it is part of are
    /// not checked. `rejected_reports` and `breaker_trips` count events
    /// that leave no other trace and are taken as stored.
    pub(crate) fn check_counts(&self, live: usize, in_flight: usize) -> Result<(), String> {
        let c = &self.counters;
        let waits = histogram_counts(&self.queue_wait);
        let runs = histogram_counts(&self.run_time);
        let (live, in_flight) = (live as u128, in_flight as u128);
        let ended = [c.completed, c.dead_lettered, c.expired, c.cancelled];
        let wide = |values: &[u64]| values.iter().map(|&v| u128::from(v)).sum::<u128>();
        let saturated = |values: &[u64]| values.contains(&u64::MAX);
        let mut problems = Vec::new();
        if !saturated(&[&[c.submitted][..], &ended].concat()) {
            let accounted = wide(&ended) + live;
            if u128::from(c.submitted) != accounted {
                problems.push(format!(
                    "submitted {} disagrees with {accounted} tasks ended or live",
                    c.submitted
                ));
            }
        }
        if !saturated(&[c.assigned, waits]) && c.assigned != waits {
            problems.push(format!(
                "assigned {} disagrees with {waits} recorded waits",
                c.assigned
            ));
        }
        if !saturated(&[c.completed, runs]) && c.completed != runs {
            problems.push(format!(
                "completed {} disagrees with {runs} recorded run times",
                c.completed
            ));
        }
        let attempts_ended = [c.completed, c.failed, c.preempted];
        if !saturated(&[&[c.assigned][..], &attempts_ended].concat()) {
            let at_least = wide(&attempts_ended) + in_flight;
            let at_most = at_least + wide(&[c.dead_lettered, c.expired, c.cancelled]);
            if !(at_least..=at_most).contains(&u128::from(c.assigned)) {
                problems.push(format!(
                    "assigned {} is outside {at_least}..={at_most} (attempts ended or running)",
                    c.assigned
                ));
            }
        }
        let failures_accounted =
            c.retried <= c.failed && u128::from(c.failed) <= wide(&[c.retried, c.dead_lettered]);
        if !saturated(&[c.failed, c.retried, c.dead_lettered]) && !failures_accounted {
            problems.push(format!(
                "failed {} is not between retried {} and retried plus dead-lettered {}",
                c.failed, c.retried, c.dead_lettered
            ));
        }
        match problems.is_empty() {
            true => Ok(()),
            false => Err(format!("counters: {}", problems.join("; "))),
        }
    }

    pub(crate) fn counters(&self) -> Counters {
        self.counters
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

/// The values recorded in `histograms`, saturating.
fn histogram_counts(histograms: &[Histogram]) -> u64 {
    histograms
        .iter()
        .fold(0u64, |sum, h| sum.saturating_add(h.count()))
}

/// Counts one more; a counter restored at its maximum stays there.
#[inline]
fn bump(counter: &mut u64) {
    *counter = counter.saturating_add(1);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AgentId, TaskId};

    /// An assignment and a completion recorded as whole events move the
    /// metrics exactly as the dispatcher's own nanosecond feed does.
    #[test]
    fn whole_events_record_as_the_nanosecond_feed() {
        let (task, agent, at) = (TaskId::new(1), AgentId::new(2), Instant::from_nanos(9_000));
        let (waited, ran) = (Duration::from_nanos(1_234), Duration::from_micros(5_678));
        let mut whole = Recorder::default();
        whole.record(
            &Event::Assigned {
                task,
                agent,
                priority: Priority::High,
                attempt: 1,
                waited,
            },
            at,
        );
        whole.record(
            &Event::Completed {
                task,
                agent,
                priority: Priority::High,
                ran,
            },
            at,
        );
        let mut fed = Recorder::default();
        fed.assigned(Priority::High, 1_234, at);
        fed.completed(Priority::High, 5_678_000, at);
        let registry = Registry::default();
        let (whole, fed) = (whole.snapshot(&registry), fed.snapshot(&registry));
        assert_eq!(whole, fed);
        assert_eq!((whole.counters.assigned, whole.counters.completed), (1, 1));
        let level = Priority::High.index();
        assert_eq!(whole.queue_wait[level].count, 1);
        assert_eq!(whole.run_time[level].max, 5_678_000);
    }
}
