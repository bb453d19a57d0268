//! Host-supplied time.
//!
//! taskweave never reads a clock. Every state machine takes the current time
//! as an [`Instant`] argument: nanoseconds since an epoch the host chooses
//! (process start, the Unix epoch, tick zero of a simulation). Spans of time
//! are plain [`std::time::Duration`]s.
//!
//! # The clock rule
//!
//! Host clocks step back (NTP, a VM migration, a journal replayed with
//! skewed times) and host-supplied durations can be absurd. Every state
//! machine and policy in the crate that takes `now` follows one rule:
//!
//! 1. **Time never runs backwards.** A `now` earlier than the latest `now`
//!    the state machine has seen is treated as that latest instant: no time
//!    passes, nothing that was not already due fires, and nothing recorded
//!    earlier is moved back.
//! 2. **Arithmetic saturates.** `Instant + Duration` clamps to
//!    [`Instant::MAX`]; `Instant - Instant` clamps to zero; products of
//!    host-given counts and durations saturate (or the builder that takes
//!    them refuses values that could overflow, as its docs say).
//! 3. **[`Instant::MAX`] means "never".** A deadline, retry or timeout that
//!    saturates to `Instant::MAX` never fires, even when `now` itself is
//!    `Instant::MAX`; a clock that reaches `Instant::MAX` therefore does not
//!    make every timer fire at once.

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
///
/// It prints as the [`Duration`] since the epoch prints (`{:?}` gives
/// `1.25s`, `250ms`; `{}` gives `1.250000000s`), and [`Instant::MAX`] as
/// `never`.
///
/// **Mapping a host clock.** Pick the epoch once, when the host starts,
/// and turn every reading of the host's monotonic clock into the time
/// since it:
///
/// ```
/// use taskweave::Instant;
///
/// let epoch = std::time::Instant::now();
/// // …later, at every call into taskweave:
/// let now = Instant::ZERO + epoch.elapsed();
/// assert!(now >= Instant::ZERO);
/// assert_eq!(format!("{:?}", Instant::from_millis(1_250)), "1.25s");
/// assert_eq!(format!("{:?}", Instant::MAX), "never");
/// ```
///
/// A host whose state outlives the process (a journal, a snapshot, a
/// cluster) needs an epoch that outlives it too: the Unix epoch read from
/// the wall clock (`SystemTime::now().duration_since(UNIX_EPOCH)`), or a
/// store's clock, as `taskweave-postgres` uses the database's. A wall
/// clock that steps back is taken care of by [the clock rule](self#the-clock-rule).
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct Instant(u64);

impl Instant {
    /// The epoch itself.
    pub const ZERO: Instant = Instant(0);
    /// The latest representable instant; used as "never": a timer due at
    /// `MAX` never fires (see [the clock rule](self#the-clock-rule)).
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

    /// Whether this is [`Instant::MAX`], the instant that never comes.
    pub const fn is_never(self) -> bool {
        self.0 == u64::MAX
    }

    /// Whether a timer due at `self` fires at `now`: it is due, and it is
    /// not [`Instant::MAX`] ("never").
    pub const fn fires_at(self, now: Instant) -> bool {
        self.0 <= now.0 && !self.is_never()
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

impl fmt::Debug for Instant {
    /// As the [`Duration`] since the epoch: `1.25s`; `never` for
    /// [`Instant::MAX`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_never() {
            return f.write_str("never");
        }
        fmt::Debug::fmt(&Duration::from_nanos(self.0), f)
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
    fn it_prints_as_the_duration_since_the_epoch() {
        assert_eq!(format!("{:?}", Instant::from_millis(250)), "250ms");
        assert_eq!(format!("{:?}", Instant::from_secs(90)), "90s");
        assert_eq!(format!("{:?}", Instant::ZERO), "0ns");
        assert_eq!(format!("{:?}", Instant::MAX), "never");
        assert_eq!(format!("{}", Instant::from_millis(1_500)), "1.500000000s");
    }

    #[test]
    fn max_is_never_due() {
        assert!(Instant::MAX.is_never());
        assert!(!Instant::MAX.fires_at(Instant::MAX));
        assert!(Instant::from_secs(1).fires_at(Instant::from_secs(1)));
        assert!(!Instant::from_secs(2).fires_at(Instant::from_secs(1)));
    }

    #[test]
    fn display_shows_seconds_with_nanos() {
        assert_eq!(Instant::from_millis(1_500).to_string(), "1.500000000s");
    }
}
