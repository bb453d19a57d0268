//! The [`RetryPolicy`] trait and the two simplest policies, [`Fixed`] and
//! [`Never`]. [`ExponentialBackoff`](super::ExponentialBackoff) lives in its
//! own file.

use std::num::NonZeroU32;
use std::time::Duration;

use rand::Rng;

use super::{ResilienceError, RetrySpec};

/// Decides whether a failed task is tried again, and after how long.
///
/// A policy is stateless and shared: the caller (a dispatcher) keeps the
/// per-task state — how many attempts failed and the delay it used last —
/// and passes it in. `failures` counts the failed attempts so far, so it is
/// at least 1 on the first call (0 is treated as 1). `None` means give up.
///
/// The trait is object-safe (`Box<dyn RetryPolicy + Send>` works), and any
/// `Fn(u32, Option<Duration>, &mut dyn Rng) -> Option<Duration>` closure
/// implements it. Randomness comes only from `rng`, so a seeded RNG gives
/// the same delays every run.
///
/// ```
/// use std::time::Duration;
/// use rand::{Rng, SeedableRng};
/// use rand::rngs::StdRng;
/// use taskweave::resilience::{Fixed, Never, RetryPolicy};
///
/// let policies: Vec<Box<dyn RetryPolicy + Send>> = vec![
///     Box::new(Fixed::new(Duration::from_secs(1), 3)?),
///     Box::new(Never),
///     // Linear backoff as a closure: 1s, 2s, then give up.
///     Box::new(|failures: u32, _: Option<Duration>, _: &mut dyn Rng| {
///         (failures < 3).then(|| Duration::from_secs(failures.into()))
///     }),
/// ];
/// let mut rng = StdRng::seed_from_u64(1);
/// let delays: Vec<_> = policies.iter().map(|p| p.next_delay(2, None, &mut rng)).collect();
/// assert_eq!(delays, [Some(Duration::from_secs(1)), None, Some(Duration::from_secs(2))]);
/// # Ok::<(), taskweave::resilience::ResilienceError>(())
/// ```
pub trait RetryPolicy {
    /// The delay before the next attempt, after `failures` failed attempts
    /// (the last one after `previous_delay`, if it was a retry), or `None`
    /// to give up.
    fn next_delay(
        &self,
        failures: u32,
        previous_delay: Option<Duration>,
        rng: &mut dyn Rng,
    ) -> Option<Duration>;

    /// This policy as data, if it is one of the built-in ones: what lets a
    /// dispatcher's configuration travel with its snapshots. The default,
    /// for a host policy or a closure, is `None`.
    fn spec(&self) -> Option<RetrySpec> {
        None
    }
}

impl<F> RetryPolicy for F
where
    F: Fn(u32, Option<Duration>, &mut dyn Rng) -> Option<Duration>,
{
    fn next_delay(
        &self,
        failures: u32,
        previous_delay: Option<Duration>,
        rng: &mut dyn Rng,
    ) -> Option<Duration> {
        self(failures, previous_delay, rng)
    }
}

/// Whether another attempt fits under `max_attempts` (counting the first)
/// after `failures` failed ones.
pub(super) fn attempts_left(failures: u32, max_attempts: NonZeroU32) -> bool {
    failures < max_attempts.get()
}

/// Validates a maximum attempt count (at least 1, counting the first try).
pub(super) fn validate_max_attempts(max_attempts: u32) -> Result<NonZeroU32, ResilienceError> {
    NonZeroU32::new(max_attempts).ok_or(ResilienceError::ZeroCount {
        parameter: "max attempts",
    })
}

/// Retries after the same delay every time, up to a number of attempts.
///
/// ```
/// use std::time::Duration;
/// use rand::SeedableRng;
/// use rand::rngs::StdRng;
/// use taskweave::resilience::{Fixed, RetryPolicy};
///
/// let policy = Fixed::new(Duration::from_millis(500), 3)?; // first try + 2 retries
/// let mut rng = StdRng::seed_from_u64(0);
/// assert_eq!(policy.next_delay(1, None, &mut rng), Some(Duration::from_millis(500)));
/// assert_eq!(policy.next_delay(2, None, &mut rng), Some(Duration::from_millis(500)));
/// assert_eq!(policy.next_delay(3, None, &mut rng), None);
/// assert!(Fixed::new(Duration::ZERO, 0).is_err());
/// # Ok::<(), taskweave::resilience::ResilienceError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Fixed {
    delay: Duration,
    max_attempts: NonZeroU32,
}

impl Fixed {
    /// Waits `delay` between attempts; at most `max_attempts` attempts in
    /// all, counting the first. A zero delay retries at once.
    ///
    /// # Errors
    ///
    /// [`ResilienceError::ZeroCount`] if `max_attempts` is 0.
    pub fn new(delay: Duration, max_attempts: u32) -> Result<Self, ResilienceError> {
        Ok(Fixed {
            delay,
            max_attempts: validate_max_attempts(max_attempts)?,
        })
    }

    /// The delay between attempts.
    pub fn delay(&self) -> Duration {
        self.delay
    }

    /// The most attempts, counting the first.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts.get()
    }
}

impl RetryPolicy for Fixed {
    fn next_delay(&self, failures: u32, _: Option<Duration>, _: &mut dyn Rng) -> Option<Duration> {
        attempts_left(failures, self.max_attempts).then_some(self.delay)
    }

    fn spec(&self) -> Option<RetrySpec> {
        Some(RetrySpec::Fixed(*self))
    }
}

/// Never retries: the first failure is final.
///
/// ```
/// use rand::SeedableRng;
/// use rand::rngs::StdRng;
/// use taskweave::resilience::{Never, RetryPolicy};
///
/// assert_eq!(Never.next_delay(1, None, &mut StdRng::seed_from_u64(0)), None);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Never;

impl RetryPolicy for Never {
    fn next_delay(&self, _: u32, _: Option<Duration>, _: &mut dyn Rng) -> Option<Duration> {
        None
    }

    fn spec(&self) -> Option<RetrySpec> {
        Some(RetrySpec::Never)
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    fn rng() -> StdRng {
        StdRng::seed_from_u64(42)
    }

    #[test]
    fn fixed_respects_max_attempts() {
        let policy = Fixed::new(Duration::from_secs(2), 3).unwrap();
        let delays: Vec<_> = (0..=4)
            .map(|f| policy.next_delay(f, None, &mut rng()))
            .collect();
        let two = Some(Duration::from_secs(2));
        assert_eq!(delays, [two, two, two, None, None]);
        assert_eq!(policy.next_delay(u32::MAX, None, &mut rng()), None);
    }

    #[test]
    fn fixed_with_one_attempt_never_retries() {
        let policy = Fixed::new(Duration::from_secs(2), 1).unwrap();
        assert_eq!(policy.next_delay(1, None, &mut rng()), None);
    }

    #[test]
    fn fixed_rejects_zero_attempts() {
        assert_eq!(
            Fixed::new(Duration::from_secs(1), 0),
            Err(ResilienceError::ZeroCount {
                parameter: "max attempts"
            })
        );
    }

    #[test]
    fn never_gives_up_at_once() {
        assert_eq!(Never.next_delay(1, None, &mut rng()), None);
        assert_eq!(Never.next_delay(0, None, &mut rng()), None);
    }

    #[test]
    fn boxed_send_trait_objects_work() {
        fn assert_send<T: Send>(_: &T) {}
        let policies: Vec<Box<dyn RetryPolicy + Send>> = vec![
            Box::new(Never),
            Box::new(Fixed::new(Duration::from_millis(10), 5).unwrap()),
            Box::new(
                |failures: u32, previous: Option<Duration>, _: &mut dyn Rng| {
                    (failures < 2).then(|| previous.unwrap_or(Duration::from_millis(1)) * 2)
                },
            ),
        ];
        assert_send(&policies);
        let mut rng = rng();
        let first: Vec<_> = policies
            .iter()
            .map(|p| p.next_delay(1, None, &mut rng))
            .collect();
        assert_eq!(
            first,
            [
                None,
                Some(Duration::from_millis(10)),
                Some(Duration::from_millis(2))
            ]
        );
        assert_eq!(policies[2].next_delay(2, None, &mut rng), None);
    }

    #[test]
    fn closures_receive_the_rng() {
        use rand::RngExt;
        let jittered = |_: u32, _: Option<Duration>, rng: &mut dyn Rng| {
            Some(Duration::from_millis(rng.random_range(0..100)))
        };
        let a = jittered.next_delay(1, None, &mut rng());
        let b = jittered.next_delay(1, None, &mut rng());
        assert_eq!(a, b);
    }

    #[cfg(feature = "serde")]
    #[test]
    fn fixed_serde_round_trip_validates() {
        let policy = Fixed::new(Duration::from_secs(1), 3).unwrap();
        let json = serde_json::to_string(&policy).unwrap();
        assert_eq!(serde_json::from_str::<Fixed>(&json).unwrap(), policy);
        let bad = json.replace("\"max_attempts\":3", "\"max_attempts\":0");
        assert!(serde_json::from_str::<Fixed>(&bad).is_err());
    }
}
