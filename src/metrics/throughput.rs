//! Completions per second over a sliding window.

use std::time::Duration;

use super::MetricsError;
use crate::Instant;

/// Counts events (typically task completions) in a sliding window of fixed
/// time buckets and reports their rate.
///
/// The window of `window` is split into `buckets` buckets of
/// `window / buckets` each, aligned to the host's epoch; the rate covers the
/// bucket holding `now` and the `buckets − 1` before it, divided by the whole
/// window. Finer buckets make the window slide more smoothly; memory is one
/// `u64` per bucket, fixed when built, whatever the number of events. During
/// the first window after start the rate ramps up, since the divisor is
/// always the full window.
///
/// Time is injected: every call takes `now`. An instant earlier than the
/// latest one seen is treated as no time passing (an event is counted in the
/// newest bucket, a query answers as of the latest instant), so a host clock
/// stepping backwards cannot corrupt the window or panic.
///
/// ```
/// use std::time::Duration;
/// use taskweave::Instant;
/// use taskweave::metrics::Throughput;
///
/// // A 10-second window in 10 one-second buckets.
/// let mut completions = Throughput::new(Duration::from_secs(10), 10)?;
/// for ms in (0..5_000).step_by(100) {
///     completions.record(Instant::from_millis(ms)); // 10 per second for 5 s
/// }
/// assert_eq!(completions.count(Instant::from_secs(5)), 50);
/// assert_eq!(completions.per_second(Instant::from_secs(5)), 5.0);
///
/// // Twelve seconds later the window has slid past every completion.
/// assert_eq!(completions.per_second(Instant::from_secs(17)), 0.0);
/// # Ok::<(), taskweave::metrics::MetricsError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Throughput {
    /// Width of a bucket in nanoseconds, at least 1.
    width: u64,
    /// The tick (`nanos / width`) of the newest bucket.
    head: u64,
    /// Where the head bucket is in `counts`: `head % counts.len()`.
    head_slot: usize,
    /// The first nanosecond past the head bucket: recording before it
    /// needs no division.
    head_end: u64,
    /// Ring of counts: tick `t` in `head + 1 − len ..= head` lives at
    /// `t % len`. Length between 1 and [`Throughput::MAX_BUCKETS`].
    counts: Vec<u64>,
}

impl Throughput {
    /// The most buckets a window may have (32 KiB of counts).
    pub const MAX_BUCKETS: usize = 4_096;

    /// A window of `window` split into `buckets` equal buckets.
    ///
    /// The bucket width is `window / buckets` rounded down to a whole
    /// nanosecond, so the effective [`window`](Throughput::window) may be a
    /// few nanoseconds shorter than asked when they do not divide.
    ///
    /// # Errors
    ///
    /// [`MetricsError::InvalidBucketCount`] unless `1 ≤ buckets ≤`
    /// [`MAX_BUCKETS`](Throughput::MAX_BUCKETS),
    /// [`MetricsError::WindowTooShort`] if a bucket would be shorter than
    /// 1 ns, [`MetricsError::WindowTooLong`] if `window` does not fit in
    /// `u64` nanoseconds.
    pub fn new(window: Duration, buckets: usize) -> Result<Throughput, MetricsError> {
        if buckets == 0 || buckets > Self::MAX_BUCKETS {
            return Err(MetricsError::InvalidBucketCount {
                buckets,
                max: Self::MAX_BUCKETS,
            });
        }
        let nanos =
            u64::try_from(window.as_nanos()).map_err(|_| MetricsError::WindowTooLong(window))?;
        let width = nanos / buckets as u64;
        if width == 0 {
            return Err(MetricsError::WindowTooShort { window, buckets });
        }
        Ok(Throughput::at_head(width, 0, vec![0; buckets]))
    }

    /// A window whose newest bucket is tick `head`.
    fn at_head(width: u64, head: u64, counts: Vec<u64>) -> Self {
        let mut throughput = Throughput {
            width,
            head,
            head_slot: 0,
            head_end: 0,
            counts,
        };
        throughput.set_head(head);
        throughput
    }

    /// Records one event at `now`. `O(1)` amortized: `O(buckets)` at worst
    /// when a long quiet spell has to be cleared.
    #[inline]
    pub fn record(&mut self, now: Instant) {
        self.record_n(now, 1);
    }

    /// Records `events` events at `now` (saturating).
    #[inline]
    pub fn record_n(&mut self, now: Instant, events: u64) {
        if now.as_nanos() >= self.head_end {
            self.advance(now);
        }
        if let Some(count) = self.counts.get_mut(self.head_slot) {
            *count = count.saturating_add(events);
        }
    }

    /// Events in the window ending at `now` (or at the latest instant seen,
    /// if `now` is earlier). `O(buckets)`.
    pub fn count(&self, now: Instant) -> u64 {
        let len = self.counts.len() as u64;
        let lag = self.tick(now).saturating_sub(self.head);
        (0..len.saturating_sub(lag))
            .filter_map(|age| self.head.checked_sub(age))
            .filter_map(|tick| self.counts.get(self.slot(tick)))
            .fold(0u64, |total, &count| total.saturating_add(count))
    }

    /// Events per second over the window ending at `now`:
    /// [`count`](Throughput::count) divided by the window. `O(buckets)`.
    pub fn per_second(&self, now: Instant) -> f64 {
        self.count(now) as f64 / self.window().as_secs_f64()
    }

    /// The effective window: bucket width times the number of buckets.
    pub fn window(&self) -> Duration {
        Duration::from_nanos(self.width).saturating_mul(self.counts.len() as u32)
    }

    /// The width of one bucket, the granularity at which the window slides.
    pub fn bucket_width(&self) -> Duration {
        Duration::from_nanos(self.width)
    }

    /// Forgets every event, including the latest instant seen.
    pub fn reset(&mut self) {
        self.counts.fill(0);
        self.set_head(0);
    }

    /// The bucket tick of `now`.
    fn tick(&self, now: Instant) -> u64 {
        now.as_nanos() / self.width
    }

    /// The ring position of `tick`.
    fn slot(&self, tick: u64) -> usize {
        (tick % self.counts.len() as u64) as usize
    }

    /// Moves the head to the tick of `now`, emptying the buckets it passes;
    /// an earlier `now` changes nothing.
    fn advance(&mut self, now: Instant) {
        let tick = self.tick(now);
        if tick <= self.head {
            return;
        }
        if tick - self.head >= self.counts.len() as u64 {
            self.counts.fill(0);
        } else {
            for passed in self.head + 1..=tick {
                let slot = self.slot(passed);
                if let Some(count) = self.counts.get_mut(slot) {
                    *count = 0;
                }
            }
        }
        self.set_head(tick);
    }

    fn set_head(&mut self, tick: u64) {
        self.head = tick;
        self.head_slot = self.slot(tick);
        self.head_end = tick.saturating_add(1).saturating_mul(self.width);
    }
}

#[cfg(feature = "serde")]
mod serde_impl {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::Throughput;

    /// The serialized form, checked on the way in.
    #[derive(Serialize, Deserialize)]
    struct Repr {
        bucket_width_nanos: u64,
        head_tick: u64,
        counts: Vec<u64>,
    }

    impl Serialize for Throughput {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            Repr {
                bucket_width_nanos: self.width,
                head_tick: self.head,
                counts: self.counts.clone(),
            }
            .serialize(serializer)
        }
    }

    impl<'de> Deserialize<'de> for Throughput {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            let repr = Repr::deserialize(deserializer)?;
            if repr.bucket_width_nanos == 0 {
                return Err(D::Error::custom(
                    "throughput bucket width must be at least 1ns",
                ));
            }
            if repr.counts.is_empty() || repr.counts.len() > Throughput::MAX_BUCKETS {
                return Err(D::Error::custom(format_args!(
                    "a throughput window needs 1 to {} buckets, got {}",
                    Throughput::MAX_BUCKETS,
                    repr.counts.len()
                )));
            }
            if repr.head_tick > u64::MAX / repr.bucket_width_nanos {
                return Err(D::Error::custom(
                    "throughput head tick lies past the end of time",
                ));
            }
            Ok(Throughput::at_head(
                repr.bucket_width_nanos,
                repr.head_tick,
                repr.counts,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Instant {
        Instant::from_secs(s)
    }

    fn ten_by_one() -> Throughput {
        Throughput::new(Duration::from_secs(10), 10).unwrap()
    }

    #[test]
    fn invalid_configurations_are_rejected() {
        let max = Throughput::MAX_BUCKETS;
        assert_eq!(
            Throughput::new(Duration::from_secs(1), 0),
            Err(MetricsError::InvalidBucketCount { buckets: 0, max })
        );
        assert_eq!(
            Throughput::new(Duration::from_secs(1), max + 1),
            Err(MetricsError::InvalidBucketCount {
                buckets: max + 1,
                max
            })
        );
        assert_eq!(
            Throughput::new(Duration::from_nanos(3), 4),
            Err(MetricsError::WindowTooShort {
                window: Duration::from_nanos(3),
                buckets: 4
            })
        );
        assert_eq!(
            Throughput::new(Duration::MAX, 4),
            Err(MetricsError::WindowTooLong(Duration::MAX))
        );
        assert!(Throughput::new(Duration::from_nanos(u64::MAX), max).is_ok());
    }

    #[test]
    fn window_rounds_down_to_whole_nanosecond_buckets() {
        let t = Throughput::new(Duration::from_nanos(10), 3).unwrap();
        assert_eq!(t.bucket_width(), Duration::from_nanos(3));
        assert_eq!(t.window(), Duration::from_nanos(9));
        assert_eq!(ten_by_one().window(), Duration::from_secs(10));
    }

    #[test]
    fn counts_within_the_window_and_slides() {
        let mut t = ten_by_one();
        for s in 0..20 {
            t.record_n(secs(s), s + 1);
        }
        // The window at t = 19 s holds seconds 10..=19: 11 + … + 20.
        assert_eq!(t.count(secs(19)), (11..=20).sum::<u64>());
        assert_eq!(t.per_second(secs(19)), 15.5);
        // Sliding forward without events drops the oldest buckets.
        assert_eq!(t.count(secs(20)), (12..=20).sum::<u64>());
        assert_eq!(t.count(secs(28)), 20);
        assert_eq!(t.count(secs(29)), 0);
        // The query did not change the state.
        assert_eq!(t.count(secs(19)), (11..=20).sum::<u64>());
    }

    #[test]
    fn buckets_are_aligned_to_the_epoch() {
        let mut t = ten_by_one();
        t.record(Instant::from_millis(999));
        t.record(Instant::from_millis(1_000));
        // At 10.5 s the bucket of second 0 has left the window.
        assert_eq!(t.count(Instant::from_millis(10_500)), 1);
    }

    #[test]
    fn long_quiet_spell_clears_everything() {
        let mut t = ten_by_one();
        t.record_n(secs(3), 7);
        t.record(secs(1_000_000));
        assert_eq!(t.count(secs(1_000_000)), 1);
        t.record(Instant::MAX);
        assert_eq!(t.count(Instant::MAX), 1);
    }

    #[test]
    fn partial_advance_clears_only_passed_buckets() {
        let mut t = ten_by_one();
        t.record_n(secs(2), 5);
        t.record_n(secs(5), 3);
        t.record_n(secs(13), 1);
        // Window at 13 s is 4..=13: 3 + 1; second 2 was cleared on the way.
        assert_eq!(t.count(secs(13)), 4);
    }

    #[test]
    fn time_going_backwards_is_no_time_passing() {
        let mut t = ten_by_one();
        t.record(secs(50));
        t.record(secs(10)); // earlier: counted as at 50 s
        assert_eq!(t.count(secs(50)), 2);
        assert_eq!(t.count(secs(0)), 2, "an earlier query answers as of 50 s");
        assert_eq!(t.count(secs(59)), 2);
        assert_eq!(t.count(secs(60)), 0);
    }

    #[test]
    fn counts_saturate() {
        let mut t = ten_by_one();
        t.record_n(secs(1), u64::MAX);
        t.record_n(secs(1), 5);
        t.record_n(secs(2), 5);
        assert_eq!(t.count(secs(2)), u64::MAX);
    }

    #[test]
    fn reset_forgets_events_and_time() {
        let mut t = ten_by_one();
        t.record(secs(100));
        t.reset();
        assert_eq!(t, ten_by_one());
        t.record(secs(1));
        assert_eq!(t.count(secs(1)), 1);
    }

    #[test]
    fn single_bucket_window() {
        let mut t = Throughput::new(Duration::from_secs(2), 1).unwrap();
        t.record(secs(0));
        t.record(secs(1));
        assert_eq!(t.per_second(secs(1)), 1.0);
        assert_eq!(t.count(secs(2)), 0);
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serde_round_trips_and_validates() {
        let mut t = ten_by_one();
        t.record_n(secs(42), 3);
        let back: Throughput = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        assert_eq!(back, t);
        for bad in [
            r#"{"bucket_width_nanos":0,"head_tick":0,"counts":[0]}"#,
            r#"{"bucket_width_nanos":1,"head_tick":0,"counts":[]}"#,
        ] {
            assert!(serde_json::from_str::<Throughput>(bad).is_err(), "{bad}");
        }
    }
}
