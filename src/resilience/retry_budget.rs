//! A retry budget: retries capped at a share of recent traffic, so that an
//! outage does not multiply the load on whatever is already failing.

use std::time::Duration;

use super::ResilienceError;
use super::window::SlidingWindow;
use crate::Instant;

/// Caps retries as a share of recent traffic (Finagle's `RetryBudget`).
///
/// Within a sliding time window, at most
/// `min_retries + ⌊ratio × requests⌋` retries are allowed, where `requests`
/// counts the first attempts recorded with
/// [`record_request`](Self::record_request) and the retries are those
/// granted by [`try_spend`](Self::try_spend). `min_retries` lets a quiet
/// system still retry; `ratio` bounds the extra load retries add to a busy
/// one. Record first attempts only — a retry is not a request.
///
/// The window is a fixed ring of `buckets` time buckets, so memory does not
/// grow with traffic; an event counts for between `window − window/buckets`
/// and `window` after it happened. Time that goes backwards counts as no
/// time passing. With the `serde` feature the ratio and the window are
/// checked again when deserialized.
///
/// ```
/// use std::time::Duration;
/// use taskweave::Instant;
/// use taskweave::resilience::RetryBudget;
///
/// let mut budget = RetryBudget::builder()
///     .window(Duration::from_secs(10))
///     .min_retries(1)
///     .ratio(0.1)
///     .build()?;
/// let now = Instant::from_secs(1);
/// for _ in 0..20 {
///     budget.record_request(now);
/// }
/// // 1 + 10% of 20 = 3 retries in this window.
/// assert_eq!(budget.available(now), 3);
/// assert!((0..3).all(|_| budget.try_spend(now)));
/// assert!(!budget.try_spend(now));
/// // Once the window has moved on, the floor of 1 is back.
/// assert!(budget.try_spend(now + Duration::from_secs(11)));
/// # Ok::<(), taskweave::resilience::ResilienceError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "BudgetForm"))]
pub struct RetryBudget {
    min_retries: u32,
    ratio: f64,
    /// `[requests, retries]` per bucket.
    window: SlidingWindow,
}

/// The unchecked fields of a [`RetryBudget`], as deserialized.
#[cfg(feature = "serde")]
#[derive(serde::Deserialize)]
struct BudgetForm {
    min_retries: u32,
    ratio: f64,
    window: SlidingWindow,
}

#[cfg(feature = "serde")]
impl TryFrom<BudgetForm> for RetryBudget {
    type Error = ResilienceError;

    /// The ratio is checked as [`RetryBudgetBuilder::build`] checks it; the
    /// window checks itself.
    fn try_from(form: BudgetForm) -> Result<Self, ResilienceError> {
        Ok(RetryBudget {
            min_retries: form.min_retries,
            ratio: validate_ratio(form.ratio)?,
            window: form.window,
        })
    }
}

/// `ratio` if it is within `[0, 1]` (so not NaN).
fn validate_ratio(ratio: f64) -> Result<f64, ResilienceError> {
    if !(0.0..=1.0).contains(&ratio) {
        return Err(ResilienceError::OutOfRange {
            parameter: "retry ratio",
            value: ratio,
            expected: "within [0, 1]",
        });
    }
    Ok(ratio)
}

impl RetryBudget {
    /// A builder with a 10 s window in 10 buckets, `min_retries` 10 and
    /// `ratio` 0.2.
    pub fn builder() -> RetryBudgetBuilder {
        RetryBudgetBuilder::default()
    }

    /// Records a first attempt at `now`, which earns `ratio` of a retry.
    pub fn record_request(&mut self, now: Instant) {
        self.window.add(now, [1, 0]);
    }

    /// Spends one retry at `now` if the budget allows it; `false` means do
    /// not retry.
    pub fn try_spend(&mut self, now: Instant) -> bool {
        let allowed = self.available(now) > 0;
        if allowed {
            self.window.add(now, [0, 1]);
        }
        allowed
    }

    /// How many retries [`try_spend`](Self::try_spend) would grant at `now`.
    pub fn available(&self, now: Instant) -> u64 {
        let [requests, retries] = self.window.totals(now);
        // `as` saturates, and ratio ≤ 1 keeps the product within u64.
        let earned = (self.ratio * requests as f64) as u64;
        u64::from(self.min_retries)
            .saturating_add(earned)
            .saturating_sub(retries)
    }
}

/// Builder of [`RetryBudget`]; [`build`](Self::build) validates. With the
/// `serde` feature it deserializes from a configuration file (missing fields
/// take the defaults).
///
/// ```
/// use std::time::Duration;
/// use taskweave::resilience::{ResilienceError, RetryBudget};
///
/// let err = RetryBudget::builder().ratio(1.5).build().unwrap_err();
/// assert_eq!(err.to_string(), "retry ratio must be within [0, 1], got 1.5");
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default))]
pub struct RetryBudgetBuilder {
    window: Duration,
    buckets: u32,
    min_retries: u32,
    ratio: f64,
}

impl Default for RetryBudgetBuilder {
    fn default() -> Self {
        RetryBudgetBuilder {
            window: Duration::from_secs(10),
            buckets: 10,
            min_retries: 10,
            ratio: 0.2,
        }
    }
}

impl RetryBudgetBuilder {
    /// How far back requests and retries count; must be longer than zero.
    /// A window longer than `u64::MAX` nanoseconds (about 584 years) is
    /// clamped to it.
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// How many buckets the window is split into: between 1 and 1024, and
    /// at most one per nanosecond of window. More buckets expire old events
    /// more smoothly.
    pub fn buckets(mut self, buckets: u32) -> Self {
        self.buckets = buckets;
        self
    }

    /// Retries allowed per window regardless of traffic.
    pub fn min_retries(mut self, min_retries: u32) -> Self {
        self.min_retries = min_retries;
        self
    }

    /// Retries earned per request, within `[0, 1]`.
    pub fn ratio(mut self, ratio: f64) -> Self {
        self.ratio = ratio;
        self
    }

    /// Validates and builds an empty budget.
    ///
    /// # Errors
    ///
    /// [`ResilienceError::OutOfRange`] if `ratio` is outside `[0, 1]` or NaN,
    /// [`ResilienceError::ZeroDuration`] for a zero window and
    /// [`ResilienceError::InvalidBuckets`] for a bucket count that does not
    /// fit the window.
    pub fn build(self) -> Result<RetryBudget, ResilienceError> {
        Ok(RetryBudget {
            min_retries: self.min_retries,
            ratio: validate_ratio(self.ratio)?,
            window: SlidingWindow::new(self.window, self.buckets)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(min_retries: u32, ratio: f64) -> RetryBudget {
        RetryBudget::builder()
            .window(Duration::from_secs(10))
            .buckets(10)
            .min_retries(min_retries)
            .ratio(ratio)
            .build()
            .unwrap()
    }

    fn spend_all(budget: &mut RetryBudget, now: Instant) -> u32 {
        let mut spent = 0;
        while budget.try_spend(now) {
            spent += 1;
            assert!(spent <= 1_000, "budget never ran out");
        }
        spent
    }

    #[test]
    fn min_retries_without_traffic() {
        let mut b = budget(3, 0.5);
        assert_eq!(spend_all(&mut b, Instant::from_secs(1)), 3);
        assert_eq!(b.available(Instant::from_secs(1)), 0);
    }

    #[test]
    fn requests_earn_their_ratio_of_retries() {
        let mut b = budget(0, 0.25);
        let now = Instant::from_secs(1);
        for _ in 0..3 {
            b.record_request(now);
        }
        assert_eq!(b.available(now), 0, "0.75 rounds down");
        b.record_request(now);
        assert_eq!(spend_all(&mut b, now), 1);
        for _ in 0..8 {
            b.record_request(now);
        }
        assert_eq!(spend_all(&mut b, now), 2);
    }

    #[test]
    fn budget_refills_as_the_window_slides() {
        let mut b = budget(2, 0.0);
        let t0 = Instant::from_secs(100);
        let s = Duration::from_secs(1);
        assert!(b.try_spend(t0));
        assert!(b.try_spend(t0 + 5 * s));
        // Retries spent at t0 still count 9 s later.
        assert_eq!(b.available(t0 + 9 * s), 0);
        // The bucket of t0 has left the window; the one of t0 + 5 s has not.
        assert_eq!(b.available(t0 + 10 * s), 1);
        assert!(b.try_spend(t0 + 10 * s));
        assert!(!b.try_spend(t0 + 10 * s));
        assert_eq!(b.available(t0 + 15 * s), 1);
    }

    #[test]
    fn earned_retries_expire_with_their_requests() {
        let mut b = budget(0, 1.0);
        let t0 = Instant::from_secs(5);
        for _ in 0..4 {
            b.record_request(t0);
        }
        assert_eq!(b.available(t0), 4);
        assert_eq!(b.available(t0 + Duration::from_secs(10)), 0);
    }

    #[test]
    fn backwards_time_does_not_panic_or_refill() {
        let mut b = budget(1, 0.0);
        assert!(b.try_spend(Instant::from_secs(50)));
        assert!(!b.try_spend(Instant::ZERO));
        assert_eq!(b.available(Instant::from_secs(1)), 0);
    }

    #[test]
    fn invalid_configurations_are_rejected() {
        for ratio in [-0.1, 1.01, f64::NAN] {
            assert!(
                matches!(
                    RetryBudget::builder().ratio(ratio).build(),
                    Err(ResilienceError::OutOfRange { parameter: "retry ratio", value, .. })
                        if value.to_bits() == ratio.to_bits()
                ),
                "{ratio}"
            );
        }
        assert_eq!(
            RetryBudget::builder().window(Duration::ZERO).build(),
            Err(ResilienceError::ZeroDuration {
                parameter: "window"
            })
        );
        assert!(matches!(
            RetryBudget::builder().buckets(0).build(),
            Err(ResilienceError::InvalidBuckets { buckets: 0, .. })
        ));
        assert!(RetryBudget::builder().ratio(0.0).build().is_ok());
        assert!(RetryBudget::builder().ratio(1.0).build().is_ok());
    }

    #[cfg(feature = "serde")]
    #[test]
    fn builder_deserializes_with_defaults() {
        let builder: RetryBudgetBuilder = serde_json::from_str(r#"{"ratio":0.5}"#).unwrap();
        assert_eq!(builder, RetryBudget::builder().ratio(0.5));
        let json = serde_json::to_string(&builder).unwrap();
        assert_eq!(
            serde_json::from_str::<RetryBudgetBuilder>(&json).unwrap(),
            builder
        );
    }
}
