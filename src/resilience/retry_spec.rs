//! [`RetrySpec`]: a retry policy chosen from the built-in ones, as data.

use std::time::Duration;

use rand::Rng;

use super::{ExponentialBackoff, Fixed, Never, RetryPolicy};

/// One of the built-in retry policies, as a value that can be stored in a
/// definition, compared and serialized. Where a closure or a custom
/// [`RetryPolicy`] is not needed — in a workflow step, for instance — this is
/// the policy.
///
/// ```
/// use std::time::Duration;
/// use rand::SeedableRng;
/// use rand::rngs::StdRng;
/// use taskweave::resilience::{Fixed, RetryPolicy, RetrySpec};
///
/// let spec = RetrySpec::from(Fixed::new(Duration::from_secs(1), 2)?);
/// let mut rng = StdRng::seed_from_u64(0);
/// assert_eq!(spec.next_delay(1, None, &mut rng), Some(Duration::from_secs(1)));
/// assert_eq!(spec.next_delay(2, None, &mut rng), None);
/// assert_eq!(RetrySpec::default(), RetrySpec::Never);
/// # Ok::<(), taskweave::resilience::ResilienceError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum RetrySpec {
    /// The first failure is final.
    #[default]
    Never,
    /// The same delay every time.
    Fixed(Fixed),
    /// Exponential backoff with jitter.
    Exponential(ExponentialBackoff),
}

impl RetrySpec {
    /// The most attempts the policy allows, counting the first.
    pub fn max_attempts(&self) -> u32 {
        match self {
            RetrySpec::Never => 1,
            RetrySpec::Fixed(fixed) => fixed.max_attempts(),
            RetrySpec::Exponential(backoff) => backoff.max_attempts(),
        }
    }
}

impl From<Never> for RetrySpec {
    fn from(_: Never) -> Self {
        RetrySpec::Never
    }
}

impl From<Fixed> for RetrySpec {
    fn from(fixed: Fixed) -> Self {
        RetrySpec::Fixed(fixed)
    }
}

impl From<ExponentialBackoff> for RetrySpec {
    fn from(backoff: ExponentialBackoff) -> Self {
        RetrySpec::Exponential(backoff)
    }
}

impl RetryPolicy for RetrySpec {
    fn next_delay(
        &self,
        failures: u32,
        previous_delay: Option<Duration>,
        rng: &mut dyn Rng,
    ) -> Option<Duration> {
        match self {
            RetrySpec::Never => Never.next_delay(failures, previous_delay, rng),
            RetrySpec::Fixed(fixed) => fixed.next_delay(failures, previous_delay, rng),
            RetrySpec::Exponential(backoff) => backoff.next_delay(failures, previous_delay, rng),
        }
    }

    fn spec(&self) -> Option<RetrySpec> {
        Some(*self)
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn each_variant_delegates_to_its_policy() {
        let mut rng = StdRng::seed_from_u64(3);
        let backoff = ExponentialBackoff::builder()
            .base(Duration::from_millis(10))
            .jitter(super::super::Jitter::None)
            .max_attempts(3)
            .build()
            .unwrap();
        let spec = RetrySpec::from(backoff);
        assert_eq!(spec.max_attempts(), 3);
        assert_eq!(
            spec.next_delay(2, None, &mut rng),
            backoff.next_delay(2, None, &mut rng)
        );
        assert_eq!(RetrySpec::from(Never).next_delay(1, None, &mut rng), None);
        assert_eq!(RetrySpec::Never.max_attempts(), 1);
    }
}
