//! A sliding time window of counters with bounded memory, shared by the
//! retry budget (requests, retries) and the circuit breaker (successes,
//! failures).

use std::time::Duration;

use super::{ResilienceError, saturating_nanos};
use crate::Instant;

/// The most buckets a window may be split into.
pub(crate) const MAX_BUCKETS: u32 = 1024;

/// The counters recorded in one bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
struct Bucket {
    /// Which bucket of time (`nanos / width`) the counts belong to.
    index: u64,
    counts: [u64; 2],
}

/// Two counters summed over the last `window` of time, kept in a fixed ring
/// of equal time buckets. An event counts for between `window − width` and
/// `window` after it happened, where `width = window / buckets` (rounded down
/// to whole nanoseconds).
///
/// Time that goes backwards is treated as no time passing: an event is filed
/// under the latest bucket seen so far.
///
/// Deserializing checks the invariants [`new`](Self::new) and
/// [`add`](Self::add) keep: a width of at least 1 ns, 1 to 1024 buckets,
/// every non-empty bucket in its ring slot and no later than the latest
/// bucket seen.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "WindowForm"))]
pub(crate) struct SlidingWindow {
    /// Nanoseconds per bucket, at least 1.
    width: u64,
    /// The latest bucket index seen.
    latest: u64,
    buckets: Box<[Bucket]>,
}

/// The unchecked fields of a [`SlidingWindow`], as deserialized.
#[cfg(feature = "serde")]
#[derive(serde::Deserialize)]
struct WindowForm {
    width: u64,
    latest: u64,
    buckets: Box<[Bucket]>,
}

#[cfg(feature = "serde")]
impl TryFrom<WindowForm> for SlidingWindow {
    type Error = &'static str;

    fn try_from(form: WindowForm) -> Result<Self, Self::Error> {
        let WindowForm {
            width,
            latest,
            buckets,
        } = form;
        if width == 0 {
            return Err("a window bucket must be at least 1ns wide");
        }
        let len = buckets.len() as u64;
        if len == 0 || len > u64::from(MAX_BUCKETS) {
            return Err("a window needs 1 to 1024 buckets");
        }
        if latest > u64::MAX / width {
            return Err("the latest bucket of a window lies past the end of time");
        }
        let misplaced = buckets.iter().zip(0u64..).any(|(bucket, slot)| {
            bucket.counts != [0; 2] && (bucket.index % len != slot || bucket.index > latest)
        });
        if misplaced {
            return Err("a window bucket is out of its slot or later than the latest seen");
        }
        Ok(SlidingWindow {
            width,
            latest,
            buckets,
        })
    }
}

impl SlidingWindow {
    /// Whether `self` has the shape (bucket width and count) of `other`.
    #[cfg(feature = "serde")]
    pub(crate) fn same_shape(&self, other: &SlidingWindow) -> bool {
        self.width == other.width && self.buckets.len() == other.buckets.len()
    }

    /// A window of `window` split into `buckets` buckets.
    ///
    /// # Errors
    ///
    /// [`ResilienceError::ZeroDuration`] for an empty window and
    /// [`ResilienceError::InvalidBuckets`] unless
    /// `1 ≤ buckets ≤ min(1024, window in nanoseconds)`.
    pub(crate) fn new(window: Duration, buckets: u32) -> Result<Self, ResilienceError> {
        let window_nanos = saturating_nanos(window);
        if window_nanos == 0 {
            return Err(ResilienceError::ZeroDuration {
                parameter: "window",
            });
        }
        let max = u32::try_from(window_nanos).map_or(MAX_BUCKETS, |n| n.min(MAX_BUCKETS));
        if buckets == 0 || buckets > max {
            return Err(ResilienceError::InvalidBuckets {
                buckets,
                max,
                window,
            });
        }
        Ok(SlidingWindow {
            width: window_nanos / u64::from(buckets),
            latest: 0,
            buckets: vec![Bucket::default(); buckets as usize].into_boxed_slice(),
        })
    }

    /// The bucket index for `now`, never earlier than the latest seen.
    fn index(&self, now: Instant) -> u64 {
        (now.as_nanos() / self.width).max(self.latest)
    }

    /// Whether `bucket` lies inside the window that ends in bucket `current`.
    fn is_live(&self, bucket: &Bucket, current: u64) -> bool {
        bucket.index <= current && current - bucket.index < self.buckets.len() as u64
    }

    /// Adds `delta` to the counters of the bucket holding `now`.
    pub(crate) fn add(&mut self, now: Instant, delta: [u64; 2]) {
        let current = self.index(now);
        self.latest = current;
        let slot = current
            .checked_rem(self.buckets.len() as u64)
            .and_then(|slot| usize::try_from(slot).ok());
        if let Some(bucket) = slot.and_then(|slot| self.buckets.get_mut(slot)) {
            if bucket.index != current {
                *bucket = Bucket {
                    index: current,
                    counts: [0; 2],
                };
            }
            for (count, add) in bucket.counts.iter_mut().zip(delta) {
                *count = count.saturating_add(add);
            }
        }
    }

    /// Both counters summed over the window that ends at `now`.
    pub(crate) fn totals(&self, now: Instant) -> [u64; 2] {
        let current = self.index(now);
        self.buckets
            .iter()
            .filter(|bucket| self.is_live(bucket, current))
            .fold([0; 2], |[a, b], bucket| {
                let [x, y] = bucket.counts;
                [a.saturating_add(x), b.saturating_add(y)]
            })
    }

    /// Forgets every count (the latest instant seen is kept).
    pub(crate) fn clear(&mut self) {
        self.buckets.fill(Bucket::default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(ms: u64, buckets: u32) -> SlidingWindow {
        SlidingWindow::new(Duration::from_millis(ms), buckets).unwrap()
    }

    #[test]
    fn counts_expire_after_the_window() {
        let mut w = window(100, 10);
        w.add(Instant::from_millis(5), [1, 0]);
        w.add(Instant::from_millis(55), [0, 2]);
        assert_eq!(w.totals(Instant::from_millis(60)), [1, 2]);
        // The bucket [0, 10ms) leaves once the window ends at [100, 110ms).
        assert_eq!(w.totals(Instant::from_millis(99)), [1, 2]);
        assert_eq!(w.totals(Instant::from_millis(100)), [0, 2]);
        assert_eq!(w.totals(Instant::from_millis(160)), [0, 0]);
    }

    #[test]
    fn a_reused_slot_starts_from_zero() {
        let mut w = window(100, 10);
        w.add(Instant::from_millis(5), [3, 3]);
        w.add(Instant::from_millis(105), [1, 0]);
        assert_eq!(w.totals(Instant::from_millis(105)), [1, 0]);
    }

    #[test]
    fn backwards_time_counts_as_no_time_passing() {
        let mut w = window(100, 10);
        w.add(Instant::from_millis(500), [1, 0]);
        w.add(Instant::from_millis(10), [1, 0]);
        assert_eq!(w.totals(Instant::ZERO), [2, 0]);
        assert_eq!(w.totals(Instant::from_millis(600)), [0, 0]);
    }

    #[test]
    fn clear_forgets_counts() {
        let mut w = window(100, 10);
        w.add(Instant::from_millis(5), [4, 4]);
        w.clear();
        assert_eq!(w.totals(Instant::from_millis(5)), [0, 0]);
    }

    #[test]
    fn invalid_shapes_are_rejected() {
        assert_eq!(
            SlidingWindow::new(Duration::ZERO, 1),
            Err(ResilienceError::ZeroDuration {
                parameter: "window"
            })
        );
        let too_many = |window, buckets, max| {
            assert_eq!(
                SlidingWindow::new(window, buckets),
                Err(ResilienceError::InvalidBuckets {
                    buckets,
                    max,
                    window
                })
            );
        };
        too_many(Duration::from_secs(1), 0, 1024);
        too_many(Duration::from_secs(1), 1025, 1024);
        too_many(Duration::from_nanos(5), 6, 5);
        assert!(SlidingWindow::new(Duration::MAX, 1024).is_ok());
    }

    #[test]
    fn counters_saturate() {
        let mut w = window(100, 1);
        w.add(Instant::ZERO, [u64::MAX, 1]);
        w.add(Instant::ZERO, [1, 1]);
        assert_eq!(w.totals(Instant::ZERO), [u64::MAX, 2]);
    }
}
