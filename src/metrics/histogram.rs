//! Log-bucketed histograms of `u64` values with bounded memory.

use std::fmt;
use std::time::Duration;

/// Each power-of-two range is split into `2^SUB_BITS` linear buckets.
const SUB_BITS: u32 = 7;
/// Buckets per group (one group per power-of-two range).
const SUB: usize = 1 << SUB_BITS;
/// Buckets covering the whole `u64` range: values below `2 * SUB` have a
/// bucket each (groups 0 and 1), then one group per leading-bit position
/// `SUB_BITS + 1 ..= 63`.
const BUCKETS: usize = (u64::BITS as usize - SUB_BITS as usize + 1) * SUB;

/// The bucket holding `value`: a leading-zeros count, a shift and an add.
fn bucket_of(value: u64) -> usize {
    let top_bit = u64::BITS - 1 - (value | 1).leading_zeros();
    let shift = top_bit.saturating_sub(SUB_BITS);
    ((shift as usize) << SUB_BITS) + (value >> shift) as usize
}

/// `duration` in whole nanoseconds, `u64::MAX` if more: what
/// `u64::try_from(duration.as_nanos())` gives, without `u128` arithmetic.
pub(crate) fn nanos_saturating(duration: Duration) -> u64 {
    duration
        .as_secs()
        .checked_mul(1_000_000_000)
        .and_then(|nanos| nanos.checked_add(u64::from(duration.subsec_nanos())))
        .unwrap_or(u64::MAX)
}

/// The smallest value and the width of bucket `index` (`index < BUCKETS`).
fn bucket_bounds(index: usize) -> (u64, u64) {
    let shift = (index >> SUB_BITS).saturating_sub(1);
    let low = ((index - (shift << SUB_BITS)) as u64) << shift;
    (low, 1 << shift)
}

/// The value reported for a sample known only to lie in bucket `index`.
fn bucket_midpoint(index: usize) -> u64 {
    let (low, width) = bucket_bounds(index);
    low + width / 2
}

/// A histogram of `u64` values (typically nanoseconds) with fixed relative
/// precision and bounded memory, in the style of HdrHistogram.
///
/// Values below 256 are counted exactly. Above, each power-of-two range
/// `[2^e, 2^(e+1))` is split into 128 equal buckets, so a bucket is at most
/// `1/128` of the values it holds wide. A quantile reports the midpoint of
/// its bucket (clamped to the recorded minimum and maximum), so it is within
/// [`Histogram::MAX_RELATIVE_ERROR`] (`1/256`) of the exact sample at that
/// rank: `|reported − exact| ≤ exact / 256`. [`count`](Histogram::count),
/// [`min`](Histogram::min), [`max`](Histogram::max), [`sum`](Histogram::sum)
/// and [`mean`](Histogram::mean) are exact.
///
/// **Memory** does not depend on the number of samples. Buckets are stored
/// in groups of 128 (1 KiB), one group per power-of-two range, for the
/// ranges between the smallest and the largest value seen, and never more
/// than the 58 groups that cover all of `u64`: at most
/// [`MAX_HEAP_BYTES`](Histogram::MAX_HEAP_BYTES) (59,392 bytes) of heap on
/// top of the struct itself (80 bytes on 64-bit targets). Latencies from
/// 1 µs to 10 s, for example, span 25 ranges: 25 KiB.
///
/// **Cost:** [`record`](Histogram::record) is `O(1)`: a leading-zeros count,
/// a shift and an add (the first value outside the current ranges also grows
/// the bucket storage, at most 58 times over a histogram's life).
/// [`quantile`](Histogram::quantile) scans the stored buckets: `O(b)`,
/// `b ≤ 7,424`. [`merge`](Histogram::merge) is `O(b)`.
///
/// With the `serde` feature a histogram serializes as its non-empty buckets
/// and exact statistics; deserialization checks that they agree.
///
/// ```
/// use std::time::Duration;
/// use taskweave::metrics::Histogram;
///
/// let mut latency = Histogram::new();
/// for ms in 1..=100 {
///     latency.record_duration(Duration::from_millis(ms));
/// }
/// assert_eq!(latency.count(), 100);
/// assert_eq!(latency.min(), Some(1_000_000));
/// assert_eq!(latency.max(), Some(100_000_000));
/// assert_eq!(latency.mean(), Some(50_500_000.0));
///
/// // The 99th percentile is the 99th of 100 samples, 99 ms, within 1/256.
/// let p99 = latency.p99().unwrap();
/// assert!(p99.abs_diff(99_000_000) <= 99_000_000 / 256);
///
/// // Out-of-range quantiles are an answer, not a panic.
/// assert_eq!(latency.quantile(1.5), None);
/// assert_eq!(latency.quantile(f64::NAN), None);
/// ```
#[derive(Clone)]
pub struct Histogram {
    /// Index of the bucket stored in `counts[0]`; a multiple of `SUB`.
    offset: usize,
    /// Counts of the buckets `offset .. offset + counts.len()`; the length
    /// is a multiple of `SUB` and `offset + counts.len() <= BUCKETS`.
    counts: Vec<u64>,
    count: u64,
    sum: u128,
    /// `u64::MAX` while empty.
    min: u64,
    /// `0` while empty.
    max: u64,
}

impl Histogram {
    /// The largest relative error of a reported quantile: `1/256`.
    pub const MAX_RELATIVE_ERROR: f64 = 1.0 / (2 * SUB) as f64;

    /// The most heap memory a histogram's buckets ever take: 59,392 bytes,
    /// one `u64` for each of the 7,424 buckets that cover all of `u64`.
    pub const MAX_HEAP_BYTES: usize = BUCKETS * size_of::<u64>();

    /// An empty histogram. Allocates nothing until the first value.
    pub const fn new() -> Self {
        Histogram {
            offset: 0,
            counts: Vec::new(),
            count: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }

    /// Records one value. `O(1)`.
    #[inline]
    pub fn record(&mut self, value: u64) {
        let index = bucket_of(value);
        // The common case: the bucket is stored, one bounds check (an index
        // below `offset` wraps past the end).
        match self.counts.get_mut(index.wrapping_sub(self.offset)) {
            Some(slot) => *slot = slot.saturating_add(1),
            None => self.grow_and_count(index),
        }
        self.count = self.count.saturating_add(1);
        self.sum = self.sum.saturating_add(u128::from(value));
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }

    /// Records a duration as whole nanoseconds, saturating at `u64::MAX`
    /// (about 584 years).
    #[inline]
    pub fn record_duration(&mut self, duration: Duration) {
        self.record(nanos_saturating(duration));
    }

    /// [`record`](Self::record)'s way to a bucket not stored yet: rare
    /// (each group of buckets is stored once), so kept out of line.
    #[cold]
    #[inline(never)]
    fn grow_and_count(&mut self, index: usize) {
        self.cover(index, index);
        self.add_to_bucket(index, 1);
    }

    /// Number of recorded values (saturating at `u64::MAX`).
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Whether no value has been recorded.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The smallest recorded value, exactly, or `None` if empty.
    pub fn min(&self) -> Option<u64> {
        (self.count > 0).then_some(self.min)
    }

    /// The largest recorded value, exactly, or `None` if empty.
    pub fn max(&self) -> Option<u64> {
        (self.count > 0).then_some(self.max)
    }

    /// The sum of all recorded values, exactly (saturating at `u128::MAX`,
    /// which takes more than `2^64` values).
    pub fn sum(&self) -> u128 {
        self.sum
    }

    /// The arithmetic mean of the recorded values, or `None` if empty.
    ///
    /// Computed from the exact sum and count, rounded once to `f64`.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum as f64 / self.count as f64)
    }

    /// The value at quantile `q` (`0.0` is the minimum, `0.5` the median,
    /// `1.0` the maximum), or `None` if the histogram is empty or `q` is NaN
    /// or outside `[0, 1]`.
    ///
    /// Uses the nearest-rank definition: the `⌈q · count⌉`-th smallest value
    /// (at least the first). The minimum and maximum are exact; any other
    /// rank is within [`MAX_RELATIVE_ERROR`](Self::MAX_RELATIVE_ERROR) of the
    /// exact value. `O(b)` in the number of stored buckets.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.count == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        // Saturating float-to-int cast; q * count is finite and non-negative.
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        if rank == 1 {
            return Some(self.min);
        }
        if rank == self.count {
            return Some(self.max);
        }
        let mut seen = 0u64;
        for (i, &count) in self.counts.iter().enumerate() {
            seen = seen.saturating_add(count);
            if seen >= rank {
                // max/min rather than clamp, which would panic on min > max.
                let value = bucket_midpoint(self.offset + i);
                return Some(value.max(self.min).min(self.max));
            }
        }
        Some(self.max)
    }

    /// The median, [`quantile(0.5)`](Self::quantile).
    pub fn p50(&self) -> Option<u64> {
        self.quantile(0.5)
    }

    /// The 95th percentile, [`quantile(0.95)`](Self::quantile).
    pub fn p95(&self) -> Option<u64> {
        self.quantile(0.95)
    }

    /// The 99th percentile, [`quantile(0.99)`](Self::quantile).
    pub fn p99(&self) -> Option<u64> {
        self.quantile(0.99)
    }

    /// Adds every value recorded in `other`, as if each had been recorded
    /// here. `O(b)`.
    pub fn merge(&mut self, other: &Histogram) {
        let mut nonzero = other.nonzero_buckets();
        let Some((first, _)) = nonzero.next() else {
            return;
        };
        let last = nonzero.last().map_or(first, |(index, _)| index);
        self.cover(first, last);
        for (index, count) in other.nonzero_buckets() {
            self.add_to_bucket(index, count);
        }
        self.count = self.count.saturating_add(other.count);
        self.sum = self.sum.saturating_add(other.sum);
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// Forgets every value. Keeps the bucket storage, so recording the same
    /// range of values again allocates nothing.
    pub fn reset(&mut self) {
        self.counts.fill(0);
        self.count = 0;
        self.sum = 0;
        self.min = u64::MAX;
        self.max = 0;
    }

    /// Count, min, max, mean, p50, p95 and p99 in one value.
    ///
    /// An empty histogram gives [`HistogramSummary::default()`]: every field
    /// zero.
    pub fn summary(&self) -> HistogramSummary {
        HistogramSummary {
            count: self.count,
            min: self.min().unwrap_or(0),
            max: self.max().unwrap_or(0),
            mean: self.mean().unwrap_or(0.0),
            p50: self.p50().unwrap_or(0),
            p95: self.p95().unwrap_or(0),
            p99: self.p99().unwrap_or(0),
        }
    }

    /// Grows the stored buckets, a whole group at a time, to include the
    /// buckets `first ..= last`.
    fn cover(&mut self, first: usize, last: usize) {
        let start = first & !(SUB - 1);
        let end = (last | (SUB - 1)) + 1;
        if self.counts.is_empty() {
            self.offset = start;
            self.counts.reserve_exact(end - start);
            self.counts.resize(end - start, 0);
            return;
        }
        // Exact reservations keep the heap within MAX_HEAP_BYTES.
        if start < self.offset {
            let grow = self.offset - start;
            self.counts.reserve_exact(grow);
            self.counts.splice(0..0, std::iter::repeat_n(0, grow));
            self.offset = start;
        }
        let stored_end = self.offset + self.counts.len();
        if end > stored_end {
            self.counts.reserve_exact(end - stored_end);
            self.counts.resize(end - self.offset, 0);
        }
    }

    /// Adds `count` to bucket `index`, which [`cover`](Self::cover) has
    /// made sure is stored.
    fn add_to_bucket(&mut self, index: usize, count: u64) {
        if let Some(slot) = self.stored_bucket(index) {
            *slot = slot.saturating_add(count);
        }
    }

    /// The count of bucket `index`, if it is stored.
    fn stored_bucket(&mut self, index: usize) -> Option<&mut u64> {
        index
            .checked_sub(self.offset)
            .and_then(|i| self.counts.get_mut(i))
    }

    /// `(bucket index, count)` of every non-empty bucket, in value order.
    fn nonzero_buckets(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|&(_, &count)| count > 0)
            .map(|(i, &count)| (self.offset + i, count))
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

/// Two histograms are equal when they hold the same bucket counts and the
/// same exact statistics, however much storage each has grown.
impl PartialEq for Histogram {
    fn eq(&self, other: &Histogram) -> bool {
        self.count == other.count
            && self.sum == other.sum
            && self.min() == other.min()
            && self.max() == other.max()
            && self.nonzero_buckets().eq(other.nonzero_buckets())
    }
}

impl Eq for Histogram {}

/// Shows the summary statistics, not the thousands of buckets.
impl fmt::Debug for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.count)
            .field("min", &self.min())
            .field("max", &self.max())
            .field("mean", &self.mean())
            .field("p50", &self.p50())
            .field("p99", &self.p99())
            .finish_non_exhaustive()
    }
}

/// The headline statistics of a [`Histogram`], from
/// [`Histogram::summary`].
///
/// All fields are zero for an empty histogram; `count == 0` tells that case
/// apart. Percentiles carry the histogram's relative error
/// ([`Histogram::MAX_RELATIVE_ERROR`]); the other fields are exact.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct HistogramSummary {
    /// Number of recorded values.
    pub count: u64,
    /// Smallest recorded value.
    pub min: u64,
    /// Largest recorded value.
    pub max: u64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Median.
    pub p50: u64,
    /// 95th percentile.
    pub p95: u64,
    /// 99th percentile.
    pub p99: u64,
}

#[cfg(feature = "serde")]
mod serde_impl {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{Histogram, bucket_bounds, bucket_of};

    /// The serialized form: exact statistics plus `(lowest value, count)` of
    /// each non-empty bucket. Bucket indexes stay private, so a future
    /// change of precision can still read old data. The sum can pass
    /// `u64::MAX`, which JSON readers do not take as a number: it travels
    /// as decimal text.
    #[derive(Serialize, Deserialize)]
    struct Repr {
        min: u64,
        max: u64,
        #[serde(with = "decimal")]
        sum: u128,
        buckets: Vec<(u64, u64)>,
    }

    /// A `u128` as its decimal digits.
    mod decimal {
        use serde::de::Error as _;
        use serde::{Deserialize, Deserializer, Serializer};

        pub(super) fn serialize<S: Serializer>(value: &u128, s: S) -> Result<S::Ok, S::Error> {
            s.collect_str(value)
        }

        pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
            let text = String::deserialize(d)?;
            text.parse()
                .map_err(|_| D::Error::custom("a histogram sum is not a decimal u128"))
        }
    }

    impl Serialize for Histogram {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            Repr {
                min: self.min().unwrap_or(0),
                max: self.max().unwrap_or(0),
                sum: self.sum,
                buckets: self
                    .nonzero_buckets()
                    .map(|(index, count)| (bucket_bounds(index).0, count))
                    .collect(),
            }
            .serialize(serializer)
        }
    }

    impl<'de> Deserialize<'de> for Histogram {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            let repr = Repr::deserialize(deserializer)?;
            let mut histogram = Histogram::new();
            for &(value, count) in &repr.buckets {
                let index = bucket_of(value);
                histogram.cover(index, index);
                histogram.add_to_bucket(index, count);
                histogram.count = histogram.count.saturating_add(count);
            }
            if histogram.count == 0 {
                return Ok(Histogram::new());
            }
            let mut nonzero = histogram.nonzero_buckets();
            let first = nonzero.next().map(|(index, _)| index);
            let last = nonzero.last().map(|(index, _)| index).or(first);
            let count = u128::from(histogram.count);
            let consistent = repr.min <= repr.max
                && first == Some(bucket_of(repr.min))
                && last == Some(bucket_of(repr.max))
                && repr.sum >= count.saturating_mul(u128::from(repr.min))
                && repr.sum <= count.saturating_mul(u128::from(repr.max));
            if !consistent {
                return Err(D::Error::custom(
                    "histogram min, max and sum disagree with its buckets",
                ));
            }
            histogram.min = repr.min;
            histogram.max = repr.max;
            histogram.sum = repr.sum;
            Ok(histogram)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn nanos_saturate_as_the_u128_conversion_does() {
        let max_secs = u64::MAX / 1_000_000_000;
        for duration in [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_secs(1),
            Duration::from_nanos(u64::MAX),
            Duration::from_nanos(u64::MAX) + Duration::from_nanos(1),
            Duration::new(max_secs, 999_999_999),
            Duration::new(max_secs + 1, 0),
            Duration::MAX,
        ] {
            let expected = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
            assert_eq!(nanos_saturating(duration), expected, "{duration:?}");
        }
    }

    /// The nearest-rank quantile of `sorted`, as `Histogram::quantile`
    /// defines it.
    fn exact_quantile(sorted: &[u64], q: f64) -> u64 {
        let n = sorted.len();
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
        sorted[rank - 1]
    }

    fn histogram_of(values: &[u64]) -> Histogram {
        let mut h = Histogram::new();
        for &v in values {
            h.record(v);
        }
        h
    }

    fn value() -> impl Strategy<Value = u64> {
        prop_oneof![
            0u64..512,
            1_000u64..10_000_000_000,
            (0u32..64).prop_map(|s| 1u64 << s),
            (0u32..64).prop_map(|s| (1u64 << s).wrapping_sub(1)),
            any::<u64>(),
        ]
    }

    #[test]
    fn buckets_tile_the_whole_range() {
        assert_eq!(BUCKETS, 7_424);
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        let mut next = 0u64;
        for index in 0..BUCKETS {
            let (low, width) = bucket_bounds(index);
            assert_eq!(low, next, "bucket {index} starts where {} ended", index - 1);
            assert_eq!(bucket_of(low), index);
            assert_eq!(bucket_of(low + (width - 1)), index);
            // Width is at most 1/128 of the bucket's smallest value.
            assert!(width == 1 || width * SUB as u64 <= low, "bucket {index}");
            next = low.wrapping_add(width);
        }
        assert_eq!(next, 0, "the last bucket ends at u64::MAX");
    }

    #[test]
    fn small_values_are_exact() {
        let values: Vec<u64> = (0..256).rev().collect();
        let h = histogram_of(&values);
        for (i, q) in [0.1, 0.25, 0.5, 0.75, 0.9].into_iter().enumerate() {
            let mut sorted = values.clone();
            sorted.sort_unstable();
            assert_eq!(h.quantile(q), Some(exact_quantile(&sorted, q)), "case {i}");
        }
    }

    #[test]
    fn exact_statistics() {
        let h = histogram_of(&[7, 1_000_003, 42, 5_000_000_017]);
        assert_eq!(h.count(), 4);
        assert_eq!(h.min(), Some(7));
        assert_eq!(h.max(), Some(5_000_000_017));
        assert_eq!(h.sum(), 5_001_000_069);
        assert_eq!(h.mean(), Some(5_001_000_069.0 / 4.0));
        assert_eq!(h.quantile(0.0), Some(7));
        assert_eq!(h.quantile(1.0), Some(5_000_000_017));
    }

    #[test]
    fn empty_histogram_answers_none() {
        let h = Histogram::new();
        assert!(h.is_empty());
        assert_eq!(
            (h.count(), h.min(), h.max(), h.mean()),
            (0, None, None, None)
        );
        assert_eq!((h.p50(), h.p95(), h.p99()), (None, None, None));
        assert_eq!(h.summary(), HistogramSummary::default());
        assert_eq!(h, Histogram::default());
    }

    #[test]
    fn bad_quantiles_are_none_not_panics() {
        let h = histogram_of(&[1, 2, 3]);
        for q in [-0.0001, 1.0001, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(h.quantile(q), None, "q = {q}");
        }
        assert_eq!(h.quantile(-0.0), Some(1));
        assert_eq!(h.quantile(f64::MIN_POSITIVE), Some(1));
    }

    #[test]
    fn extreme_values() {
        let mut h = histogram_of(&[0, u64::MAX, u64::MAX, 0, u64::MAX]);
        assert_eq!(h.min(), Some(0));
        assert_eq!(h.max(), Some(u64::MAX));
        assert_eq!(h.sum(), 3 * u128::from(u64::MAX));
        // Rank 3 of 5 lies in the top bucket: its midpoint, within 1/256.
        let p50 = h.p50().unwrap();
        assert!(p50 >= u64::MAX - u64::MAX / 256, "{p50}");
        assert_eq!(h.quantile(0.4), Some(0));
        assert_eq!(h.quantile(1.0), Some(u64::MAX));
        h.record_duration(Duration::MAX);
        assert_eq!(h.count(), 6);
        assert_eq!(h.max(), Some(u64::MAX));
        // Top bucket's midpoint, clamped, stays within the bound.
        let one_big = histogram_of(&[u64::MAX - 1, u64::MAX - 1, u64::MAX]);
        let p50 = one_big.p50().unwrap();
        assert!(p50.abs_diff(u64::MAX - 1) <= (u64::MAX - 1) / 256);
    }

    #[test]
    fn durations_record_as_nanoseconds() {
        let mut h = Histogram::new();
        h.record_duration(Duration::from_micros(3));
        assert_eq!(h.min(), Some(3_000));
    }

    #[test]
    fn summary_matches_accessors() {
        let values: Vec<u64> = (1..=1_000).map(|i| i * 1_000).collect();
        let h = histogram_of(&values);
        let s = h.summary();
        assert_eq!(s.count, 1_000);
        assert_eq!((s.min, s.max), (1_000, 1_000_000));
        assert_eq!(s.mean, 500_500.0);
        assert_eq!(Some(s.p50), h.p50());
        assert_eq!(Some(s.p95), h.p95());
        assert_eq!(Some(s.p99), h.p99());
        assert!(s.p95.abs_diff(950_000) <= 950_000 / 256);
    }

    #[test]
    fn memory_is_bounded_by_the_value_range() {
        let mut h = Histogram::new();
        for i in 0..100_000u64 {
            h.record(1_000 + i % 1_000);
        }
        // 1,000..2,000 spans two power-of-two ranges: 2 groups of 128.
        assert_eq!(h.counts.len(), 2 * SUB);
        h.record(0);
        h.record(u64::MAX);
        assert_eq!(h.counts.len(), BUCKETS);
        for i in 0..1_000u64 {
            h.record(i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        }
        assert_eq!(h.counts.len(), BUCKETS);
        assert_eq!(h.counts.capacity(), BUCKETS, "no slack beyond the bound");
        assert_eq!(h.counts.capacity() * 8, Histogram::MAX_HEAP_BYTES);
        assert_eq!(Histogram::MAX_HEAP_BYTES, 59_392);
        assert!(size_of::<Histogram>() <= 80);
    }

    #[test]
    fn microseconds_to_ten_seconds_take_25_ranges() {
        let mut h = Histogram::new();
        h.record_duration(Duration::from_micros(1));
        h.record_duration(Duration::from_secs(10));
        assert_eq!(h.counts.len(), 25 * SUB);
    }

    #[test]
    fn reset_forgets_values_and_keeps_storage() {
        let mut h = histogram_of(&[5, 5_000, 5_000_000]);
        let stored = h.counts.len();
        h.reset();
        assert_eq!(h, Histogram::new());
        assert_eq!(h.counts.len(), stored);
        h.record(9);
        assert_eq!(h, histogram_of(&[9]));
        assert_eq!((h.min(), h.max()), (Some(9), Some(9)));
    }

    #[test]
    fn merging_an_empty_histogram_changes_nothing() {
        let mut h = histogram_of(&[3, 300]);
        let before = h.clone();
        h.merge(&Histogram::new());
        assert_eq!(h, before);
        let mut empty = Histogram::new();
        empty.merge(&before);
        assert_eq!(empty, before);
    }

    #[test]
    fn debug_shows_statistics() {
        let text = format!("{:?}", histogram_of(&[4]));
        assert!(
            text.starts_with("Histogram { count: 1, min: Some(4)"),
            "{text}"
        );
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serde_round_trips_and_validates() {
        let h = histogram_of(&[0, 17, 1_000_000, 1_000_001, u64::MAX]);
        let json = serde_json::to_string(&h).unwrap();
        let back: Histogram = serde_json::from_str(&json).unwrap();
        assert_eq!(back, h);
        assert_eq!(back.summary(), h.summary());

        let empty: Histogram =
            serde_json::from_str(r#"{"min":0,"max":0,"sum":"0","buckets":[]}"#).unwrap();
        assert_eq!(empty, Histogram::new());

        for bad in [
            // min above max
            r#"{"min":9,"max":3,"sum":"12","buckets":[[3,1],[9,1]]}"#,
            // min not in the first bucket
            r#"{"min":2,"max":9,"sum":"12","buckets":[[3,1],[9,1]]}"#,
            // sum impossible for the extremes
            r#"{"min":3,"max":9,"sum":"100","buckets":[[3,1],[9,1]]}"#,
        ] {
            assert!(serde_json::from_str::<Histogram>(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn quantiles_are_within_the_relative_error(
            values in prop::collection::vec(value(), 1..300),
            qs in prop::collection::vec(0.0f64..=1.0, 1..8),
        ) {
            let h = histogram_of(&values);
            let mut sorted = values.clone();
            sorted.sort_unstable();
            for q in qs.into_iter().chain([0.0, 0.5, 0.95, 0.99, 1.0]) {
                let exact = exact_quantile(&sorted, q);
                let got = h.quantile(q).unwrap();
                let err = got.abs_diff(exact) as f64;
                prop_assert!(
                    err <= exact as f64 * Histogram::MAX_RELATIVE_ERROR,
                    "q = {q}: got {got}, exact {exact}"
                );
            }
            prop_assert_eq!(h.count(), values.len() as u64);
            prop_assert_eq!(h.min(), sorted.first().copied());
            prop_assert_eq!(h.max(), sorted.last().copied());
            let sum: u128 = values.iter().map(|&v| u128::from(v)).sum();
            prop_assert_eq!(h.sum(), sum);
            prop_assert_eq!(h.mean(), Some(sum as f64 / values.len() as f64));
        }

        #[test]
        fn merge_equals_recording_both(
            a in prop::collection::vec(value(), 0..100),
            b in prop::collection::vec(value(), 0..100),
        ) {
            let mut merged = histogram_of(&a);
            merged.merge(&histogram_of(&b));
            let both: Vec<u64> = a.iter().chain(&b).copied().collect();
            let expected = histogram_of(&both);
            prop_assert_eq!(&merged, &expected);
            prop_assert_eq!(merged.summary(), expected.summary());
        }
    }
}
