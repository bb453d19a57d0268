//! Host-supplied time.
//!
//! taskweave never reads a clock. Every state machine takes the current time
//! as an [`Instant`] argument: nanoseconds since an epoch the host chooses
//! (process start, the Unix epoch, tick zero of a simulation). Spans of time
//! are plain [`std::time::Duration`]s.

use std::fmt;
use std::ops::{Add, AddAssign, Sub};
use std::time::Duration;

/// A point in time, in nanoseconds since a host-chosen epoch.
///
/// `Instant` is a plain number: cheap to copy, totally ordered, serializable,
/// and free of any clock. Arithmetic saturates instead of overflowing, so a
/// huge timeout from untrusted input cannot panic.
///
/// ```
/// use std::time::Duration;
/// use taskweave::Instant;
///
/// let start = Instant::from_millis(1_000);
/// let later = start + Duration::from_millis(250);
/// assert_eq!(later.as_nanos(), 1_250_000_000);
/// assert_eq!(later.saturating_duration_since(start), Duration::from_millis(250));
/// assert_eq!(start.saturating_duration_since(later), Duration::ZERO);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct Instant(u64);

impl Instant {
    /// The epoch itself.
    pub const ZERO: Instant = Instant(0);
    /// The latest representable instant; used as "never".
    pub const MAX: Instant = Instant(u64::MAX);

    /// An instant `nanos` nanoseconds after the epoch.
    pub const fn from_nanos(nanos: u64) -> Self {
        Instant(nanos)
    }

    /// An instant `millis` milliseconds after the epoch (saturating).
    pub const fn from_millis(millis: u64) -> Self {
        Instant(millis.saturating_mul(1_000_000))
    }

    /// An instant `secs` seconds after the epoch (saturating).
    pub const fn from_secs(secs: u64) -> Self {
        Instant(secs.saturating_mul(1_000_000_000))
    }

    /// Nanoseconds since the epoch.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Time elapsed from `earlier` to `self`, or zero if `earlier` is later.
    pub const fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// `self + duration`, or `None` if it does not fit.
    pub fn checked_add(self, duration: Duration) -> Option<Instant> {
        let nanos = u64::try_from(duration.as_nanos()).ok()?;
        self.0.checked_add(nanos).map(Instant)
    }

    /// `self + duration`, clamped to [`Instant::MAX`].
    pub fn saturating_add(self, duration: Duration) -> Instant {
        self.checked_add(duration).unwrap_or(Instant::MAX)
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;

    /// Saturating addition: never panics.
    fn add(self, rhs: Duration) -> Instant {
        self.saturating_add(rhs)
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, rhs: Duration) {
        *self = self.saturating_add(rhs);
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;

    /// Saturating difference: zero when `rhs` is later than `self`.
    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_duration_since(rhs)
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0 / 1_000_000_000;
        let nanos = self.0 % 1_000_000_000;
        write!(f, "{secs}.{nanos:09}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_instead_of_panicking() {
        assert_eq!(Instant::MAX + Duration::from_secs(1), Instant::MAX);
        assert_eq!(Instant::from_nanos(5).checked_add(Duration::MAX), None);
        assert_eq!(Instant::ZERO - Instant::from_secs(3), Duration::ZERO);
        let mut t = Instant::from_secs(1);
        t += Duration::from_millis(500);
        assert_eq!(t, Instant::from_millis(1_500));
    }

    #[test]
    fn display_shows_seconds_with_nanos() {
        assert_eq!(Instant::from_millis(1_500).to_string(), "1.500000000s");
    }
}
