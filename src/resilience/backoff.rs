//! Exponential backoff with the jitter modes of the AWS Architecture Blog
//! post "Exponential Backoff And Jitter" (Marc Brooker, 2015).

use std::num::NonZeroU32;
use std::time::Duration;

use rand::{Rng, RngExt};

use super::retry::{attempts_left, validate_max_attempts};
use super::{ResilienceError, RetryPolicy, RetrySpec, saturating_nanos};

/// How [`ExponentialBackoff`] randomises its delays, so that clients that
/// failed together do not retry together.
///
/// With `d = min(cap, base · factor^(failures − 1))`:
///
/// | mode | delay |
/// |---|---|
/// | `None` | `d` |
/// | `Full` | uniform in `[0, d]` |
/// | `Equal` | `d/2` + uniform in `[0, d/2]`, so within `[d/2, d]` |
/// | `Decorrelated` | `min(cap, uniform in [base, 3 · previous])`, `previous` being the last delay used (`base` at first, never less than `base`) |
///
/// ```
/// use taskweave::resilience::Jitter;
///
/// assert_eq!(Jitter::default(), Jitter::Full);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Jitter {
    /// No randomness: the plain exponential sequence.
    None,
    /// Uniform between zero and the exponential delay (AWS "full jitter").
    #[default]
    Full,
    /// Half the exponential delay plus a uniform share of the other half.
    Equal,
    /// Uniform between `base` and three times the previous delay, capped;
    /// grows with the delays actually used rather than the attempt count.
    Decorrelated,
}

/// Exponentially growing delays, capped and jittered, for a bounded number
/// of attempts.
///
/// The exponential delay after `n` failed attempts is
/// `d = min(cap, base · factorⁿ⁻¹)`, computed with saturating arithmetic (an
/// enormous factor or attempt count gives `cap`, never a panic); the
/// [`Jitter`] mode then randomises it. Delays longer than `u64::MAX`
/// nanoseconds (about 584 years) are clamped to that. The power is computed
/// by repeated IEEE multiplication, so delays are bit-identical on every
/// platform.
///
/// ```
/// use std::time::Duration;
/// use rand::SeedableRng;
/// use rand::rngs::StdRng;
/// use taskweave::resilience::{ExponentialBackoff, Jitter, RetryPolicy};
///
/// let backoff = ExponentialBackoff::builder()
///     .base(Duration::from_millis(100))
///     .factor(2.0)
///     .cap(Duration::from_millis(500))
///     .max_attempts(5)
///     .jitter(Jitter::None)
///     .build()?;
/// let mut rng = StdRng::seed_from_u64(0);
/// let delays: Vec<_> = (1..=5).map(|n| backoff.next_delay(n, None, &mut rng)).collect();
/// let ms = |ms| Some(Duration::from_millis(ms));
/// assert_eq!(delays, [ms(100), ms(200), ms(400), ms(500), None]);
/// # Ok::<(), taskweave::resilience::ResilienceError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "ExponentialBackoffBuilder"))]
pub struct ExponentialBackoff {
    base: Duration,
    factor: f64,
    cap: Duration,
    max_attempts: NonZeroU32,
    jitter: Jitter,
}

impl Default for ExponentialBackoff {
    /// Base 100 ms, factor 2, cap 30 s, 5 attempts and [`Jitter::Full`].
    fn default() -> Self {
        ExponentialBackoff {
            base: Duration::from_millis(100),
            factor: 2.0,
            cap: Duration::from_secs(30),
            max_attempts: NonZeroU32::MIN.saturating_add(4),
            jitter: Jitter::Full,
        }
    }
}

impl ExponentialBackoff {
    /// A builder starting from the [defaults](Self::default): base 100 ms,
    /// factor 2, cap 30 s, 5 attempts and [`Jitter::Full`].
    pub fn builder() -> ExponentialBackoffBuilder {
        ExponentialBackoffBuilder::default()
    }

    /// The first delay.
    pub fn base(&self) -> Duration {
        self.base
    }

    /// How much each delay grows over the previous one (finite, ≥ 1).
    pub fn factor(&self) -> f64 {
        self.factor
    }

    /// The longest delay.
    pub fn cap(&self) -> Duration {
        self.cap
    }

    /// The most attempts, counting the first.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts.get()
    }

    /// The jitter mode.
    pub fn jitter(&self) -> Jitter {
        self.jitter
    }

    /// The delay before jitter after `failures` failed attempts:
    /// `min(cap, base · factor^(failures − 1))` (0 failures count as 1).
    /// Ignores `max_attempts`.
    pub fn exponential_delay(&self, failures: u32) -> Duration {
        Duration::from_nanos(self.exponential_nanos(failures))
    }

    fn exponential_nanos(&self, failures: u32) -> u64 {
        let growth = power(self.factor, failures.saturating_sub(1));
        // `as` saturates: an infinite product becomes u64::MAX, then the cap.
        let nanos = (saturating_nanos(self.base) as f64 * growth) as u64;
        nanos.min(saturating_nanos(self.cap))
    }
}

/// `x^exp` by repeated squaring: `O(log exp)` IEEE multiplications, so the
/// result is the same on every platform (unlike `f64::powi`).
fn power(mut x: f64, mut exp: u32) -> f64 {
    let mut acc = 1.0;
    while exp > 0 {
        if exp & 1 == 1 {
            acc *= x;
        }
        x *= x;
        exp >>= 1;
    }
    acc
}

impl RetryPolicy for ExponentialBackoff {
    fn next_delay(
        &self,
        failures: u32,
        previous_delay: Option<Duration>,
        rng: &mut dyn Rng,
    ) -> Option<Duration> {
        if !attempts_left(failures, self.max_attempts) {
            return None;
        }
        let nanos = match self.jitter {
            Jitter::None => self.exponential_nanos(failures),
            Jitter::Full => rng.random_range(0..=self.exponential_nanos(failures)),
            Jitter::Equal => {
                let d = self.exponential_nanos(failures);
                let half = d / 2;
                half + rng.random_range(0..=d - half)
            }
            Jitter::Decorrelated => {
                let base = saturating_nanos(self.base);
                let previous = previous_delay.map_or(base, saturating_nanos).max(base);
                rng.random_range(base..=previous.saturating_mul(3))
                    .min(saturating_nanos(self.cap))
            }
        };
        Some(Duration::from_nanos(nanos))
    }

    fn spec(&self) -> Option<RetrySpec> {
        Some(RetrySpec::Exponential(*self))
    }
}

impl TryFrom<ExponentialBackoffBuilder> for ExponentialBackoff {
    type Error = ResilienceError;

    fn try_from(builder: ExponentialBackoffBuilder) -> Result<Self, ResilienceError> {
        builder.build()
    }
}

/// Builder of [`ExponentialBackoff`]; [`build`](Self::build) validates.
///
/// ```
/// use std::time::Duration;
/// use taskweave::resilience::{ExponentialBackoff, ResilienceError};
///
/// let err = ExponentialBackoff::builder().factor(0.5).build().unwrap_err();
/// assert!(matches!(err, ResilienceError::OutOfRange { value, .. } if value == 0.5));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default))]
pub struct ExponentialBackoffBuilder {
    base: Duration,
    factor: f64,
    cap: Duration,
    max_attempts: u32,
    jitter: Jitter,
}

impl Default for ExponentialBackoffBuilder {
    fn default() -> Self {
        let defaults = ExponentialBackoff::default();
        ExponentialBackoffBuilder {
            base: defaults.base,
            factor: defaults.factor,
            cap: defaults.cap,
            max_attempts: defaults.max_attempts.get(),
            jitter: defaults.jitter,
        }
    }
}

impl ExponentialBackoffBuilder {
    /// The first delay; must be longer than zero and at most the cap.
    pub fn base(mut self, base: Duration) -> Self {
        self.base = base;
        self
    }

    /// Growth per failed attempt; must be finite and at least 1.
    pub fn factor(mut self, factor: f64) -> Self {
        self.factor = factor;
        self
    }

    /// The longest delay; must be at least the base.
    pub fn cap(mut self, cap: Duration) -> Self {
        self.cap = cap;
        self
    }

    /// The most attempts, counting the first; must be at least 1 (1 means
    /// never retry).
    pub fn max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts;
        self
    }

    /// The jitter mode.
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// Validates and builds the policy.
    ///
    /// # Errors
    ///
    /// [`ResilienceError::ZeroDuration`] for a zero base,
    /// [`ResilienceError::OutOfRange`] for a factor below 1 or not finite,
    /// [`ResilienceError::BaseExceedsCap`] if the base is longer than the
    /// cap, and [`ResilienceError::ZeroCount`] for zero max attempts.
    pub fn build(self) -> Result<ExponentialBackoff, ResilienceError> {
        if self.base.is_zero() {
            return Err(ResilienceError::ZeroDuration {
                parameter: "base delay",
            });
        }
        if !self.factor.is_finite() || self.factor < 1.0 {
            return Err(ResilienceError::OutOfRange {
                parameter: "backoff factor",
                value: self.factor,
                expected: "finite and at least 1",
            });
        }
        if self.base > self.cap {
            return Err(ResilienceError::BaseExceedsCap {
                base: self.base,
                cap: self.cap,
            });
        }
        Ok(ExponentialBackoff {
            base: self.base,
            factor: self.factor,
            cap: self.cap,
            max_attempts: validate_max_attempts(self.max_attempts)?,
            jitter: self.jitter,
        })
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn backoff(jitter: Jitter) -> ExponentialBackoff {
        ExponentialBackoff::builder()
            .base(100 * MS)
            .factor(2.0)
            .cap(3_000 * MS)
            .max_attempts(10)
            .jitter(jitter)
            .build()
            .unwrap()
    }

    /// Nominal delays 100, 200, 400, 800, 1600, 3000 (capped), 3000, ...
    fn nominal(failures: u32) -> Duration {
        (100 * MS * 2u32.pow(failures - 1)).min(3_000 * MS)
    }

    #[test]
    fn no_jitter_is_the_capped_exponential_sequence() {
        let b = backoff(Jitter::None);
        let mut rng = StdRng::seed_from_u64(0);
        for n in 1..10 {
            assert_eq!(b.next_delay(n, None, &mut rng), Some(nominal(n)), "n = {n}");
        }
        assert_eq!(b.exponential_delay(0), 100 * MS);
    }

    #[test]
    fn max_attempts_is_respected() {
        for jitter in [
            Jitter::None,
            Jitter::Full,
            Jitter::Equal,
            Jitter::Decorrelated,
        ] {
            let b = backoff(jitter);
            let mut rng = StdRng::seed_from_u64(0);
            assert!(b.next_delay(9, None, &mut rng).is_some(), "{jitter:?}");
            assert_eq!(b.next_delay(10, None, &mut rng), None, "{jitter:?}");
            assert_eq!(b.next_delay(u32::MAX, None, &mut rng), None, "{jitter:?}");
        }
        let once = ExponentialBackoff::builder()
            .max_attempts(1)
            .build()
            .unwrap();
        assert_eq!(
            once.next_delay(1, None, &mut StdRng::seed_from_u64(0)),
            None
        );
    }

    #[test]
    fn full_jitter_stays_within_zero_and_the_delay() {
        let b = backoff(Jitter::Full);
        let mut rng = StdRng::seed_from_u64(1);
        let mut below_half = false;
        for _ in 0..50 {
            for n in 1..10 {
                let d = b.next_delay(n, None, &mut rng).unwrap();
                assert!(d <= nominal(n), "n = {n}: {d:?}");
                below_half |= d < nominal(n) / 2;
            }
        }
        assert!(below_half, "full jitter should use the whole range");
    }

    #[test]
    fn equal_jitter_stays_within_half_and_the_delay() {
        let b = backoff(Jitter::Equal);
        let mut rng = StdRng::seed_from_u64(2);
        for _ in 0..50 {
            for n in 1..10 {
                let d = b.next_delay(n, None, &mut rng).unwrap();
                assert!(d >= nominal(n) / 2 && d <= nominal(n), "n = {n}: {d:?}");
            }
        }
    }

    #[test]
    fn decorrelated_jitter_stays_within_base_and_three_times_previous() {
        let b = backoff(Jitter::Decorrelated);
        let mut rng = StdRng::seed_from_u64(3);
        let mut previous = None;
        let mut reached_cap = false;
        for n in 1..200 {
            let d = b.next_delay(n % 9 + 1, previous, &mut rng).unwrap();
            let upper = (3 * previous.unwrap_or(100 * MS)).min(3_000 * MS);
            assert!(
                d >= 100 * MS && d <= upper,
                "{d:?} not in [100ms, {upper:?}]"
            );
            reached_cap |= d == 3_000 * MS;
            previous = Some(d);
        }
        assert!(reached_cap);
        // A previous delay shorter than base counts as base.
        let d = b.next_delay(1, Some(Duration::ZERO), &mut rng).unwrap();
        assert!(d >= 100 * MS && d <= 300 * MS);
    }

    #[test]
    fn same_seed_gives_same_delays() {
        for jitter in [Jitter::Full, Jitter::Equal, Jitter::Decorrelated] {
            let b = backoff(jitter);
            let run = |seed| {
                let mut rng = StdRng::seed_from_u64(seed);
                let mut previous = None;
                (1..10)
                    .map(|n| {
                        previous = b.next_delay(n, previous, &mut rng);
                        previous
                    })
                    .collect::<Vec<_>>()
            };
            assert_eq!(run(9), run(9), "{jitter:?}");
            assert_ne!(run(9), run(10), "{jitter:?}");
        }
    }

    #[test]
    fn huge_factors_and_attempts_saturate_to_the_cap() {
        let b = ExponentialBackoff::builder()
            .base(Duration::from_secs(1))
            .factor(f64::MAX)
            .cap(Duration::MAX)
            .max_attempts(u32::MAX)
            .jitter(Jitter::None)
            .build()
            .unwrap();
        assert_eq!(b.exponential_delay(1), Duration::from_secs(1));
        assert_eq!(b.exponential_delay(3), Duration::from_nanos(u64::MAX));
        assert_eq!(
            b.exponential_delay(u32::MAX),
            Duration::from_nanos(u64::MAX)
        );
        let mut rng = StdRng::seed_from_u64(0);
        for jitter in [Jitter::Full, Jitter::Equal, Jitter::Decorrelated] {
            let b = ExponentialBackoff::builder()
                .cap(Duration::MAX)
                .factor(1e300)
                .max_attempts(u32::MAX)
                .jitter(jitter)
                .build()
                .unwrap();
            assert!(
                b.next_delay(u32::MAX - 1, Some(Duration::MAX), &mut rng)
                    .is_some()
            );
        }
    }

    #[test]
    fn default_is_what_the_builder_builds() {
        let d = ExponentialBackoff::default();
        assert_eq!(ExponentialBackoff::builder().build(), Ok(d));
        assert_eq!(
            (d.base(), d.factor(), d.cap(), d.max_attempts(), d.jitter()),
            (100 * MS, 2.0, Duration::from_secs(30), 5, Jitter::Full)
        );
    }

    #[test]
    fn factor_one_is_constant() {
        let b = ExponentialBackoff::builder()
            .factor(1.0)
            .jitter(Jitter::None)
            .build()
            .unwrap();
        assert_eq!(b.exponential_delay(u32::MAX), 100 * MS);
    }

    #[test]
    fn power_is_exact_for_powers_of_two() {
        assert_eq!(power(2.0, 0), 1.0);
        assert_eq!(power(2.0, 10), 1024.0);
        assert_eq!(power(1.5, 3), 3.375);
        assert_eq!(power(2.0, 5000), f64::INFINITY);
    }

    #[test]
    fn invalid_configurations_are_rejected() {
        let b = ExponentialBackoff::builder;
        assert_eq!(
            b().base(Duration::ZERO).build(),
            Err(ResilienceError::ZeroDuration {
                parameter: "base delay"
            })
        );
        for factor in [0.99, -2.0, f64::INFINITY, f64::NAN] {
            assert!(
                matches!(
                    b().factor(factor).build(),
                    Err(ResilienceError::OutOfRange { parameter: "backoff factor", value, .. })
                        if value.to_bits() == factor.to_bits()
                ),
                "{factor}"
            );
        }
        assert_eq!(
            b().base(2 * MS).cap(MS).build(),
            Err(ResilienceError::BaseExceedsCap {
                base: 2 * MS,
                cap: MS
            })
        );
        assert_eq!(
            b().max_attempts(0).build(),
            Err(ResilienceError::ZeroCount {
                parameter: "max attempts"
            })
        );
        assert!(b().base(MS).cap(MS).build().is_ok());
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serde_round_trip_validates() {
        let b = backoff(Jitter::Equal);
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(
            serde_json::from_str::<ExponentialBackoff>(&json).unwrap(),
            b
        );
        let bad = json.replace("\"factor\":2.0", "\"factor\":0.5");
        let err = serde_json::from_str::<ExponentialBackoff>(&bad).unwrap_err();
        assert!(err.to_string().contains("backoff factor must be"), "{err}");
        let partial: ExponentialBackoff = serde_json::from_str(r#"{"max_attempts":2}"#).unwrap();
        assert_eq!(partial.max_attempts(), 2);
    }
}
