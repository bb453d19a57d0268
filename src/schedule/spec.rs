//! [`ScheduleSpec`]: when a schedule fires, how far it catches up, how
//! much it jitters, and what a fire does when the last run still goes.

use std::time::Duration;

use super::{MAX_CATCH_UP, MAX_PERIOD, OverlapPolicy, ScheduleError};
use crate::Instant;

/// When a schedule fires: every `period`, at `phase` past each multiple of
/// it on the host's clock ([`Instant`]), and what it does then. Made by
/// [`ScheduleSpec::every`]; every instance is valid.
///
/// ```
/// use std::time::Duration;
/// use taskweave::Instant;
/// use taskweave::schedule::{OverlapPolicy, ScheduleSpec};
///
/// let hourly = ScheduleSpec::every(Duration::from_secs(3600))
///     .phase(Duration::from_secs(15 * 60)) // at a quarter past
///     .overlap(OverlapPolicy::BufferOne)
///     .build()?;
/// assert_eq!(hourly.fire_at_or_after(Instant::from_secs(1)), Instant::from_secs(900));
/// assert_eq!(hourly.fire_at_or_after(Instant::from_secs(901)), Instant::from_secs(4500));
///
/// // A jitter as long as the period could swap two fires: refused.
/// assert!(ScheduleSpec::every(Duration::from_secs(60)).jitter(Duration::from_secs(60)).build().is_err());
/// # Ok::<(), taskweave::schedule::ScheduleError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "ScheduleSpecBuilder"))]
pub struct ScheduleSpec {
    every: Duration,
    phase: Duration,
    overlap: OverlapPolicy,
    catch_up: Duration,
    jitter: Duration,
}

/// Builds a [`ScheduleSpec`]; [`build`](Self::build) validates it. Its
/// serde form is the spec's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
#[must_use]
pub struct ScheduleSpecBuilder {
    every: Duration,
    #[cfg_attr(feature = "serde", serde(default))]
    phase: Duration,
    #[cfg_attr(feature = "serde", serde(default))]
    overlap: OverlapPolicy,
    #[cfg_attr(feature = "serde", serde(default = "default_catch_up"))]
    catch_up: Duration,
    #[cfg_attr(feature = "serde", serde(default))]
    jitter: Duration,
}

/// How late a fire may still start by default: a minute.
pub const DEFAULT_CATCH_UP: Duration = Duration::from_secs(60);

#[cfg(feature = "serde")]
fn default_catch_up() -> Duration {
    DEFAULT_CATCH_UP
}

impl ScheduleSpec {
    /// A schedule that fires every `period`: at 0, `period`, 2 × `period`
    /// … of the host's clock, unless a [phase](ScheduleSpecBuilder::phase)
    /// shifts them.
    pub fn every(period: Duration) -> ScheduleSpecBuilder {
        ScheduleSpecBuilder {
            every: period,
            phase: Duration::ZERO,
            overlap: OverlapPolicy::Skip,
            catch_up: DEFAULT_CATCH_UP,
            jitter: Duration::ZERO,
        }
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.every
    }

    /// Where in each period it fires.
    pub fn phase(&self) -> Duration {
        self.phase
    }

    /// What a fire does while a run is still going.
    pub fn overlap(&self) -> OverlapPolicy {
        self.overlap
    }

    /// How late a fire may still start: a fire noticed later (the host was
    /// down) is missed.
    pub fn catch_up(&self) -> Duration {
        self.catch_up
    }

    /// The most a start is delayed past its fire, by an amount drawn from
    /// the schedules' seed and the fire, so it replays.
    pub fn jitter(&self) -> Duration {
        self.jitter
    }

    fn period_nanos(&self) -> u64 {
        nanos(self.every)
    }

    /// The first fire at or after `at`; [`Instant::MAX`] ("never") past
    /// the last representable one.
    pub fn fire_at_or_after(&self, at: Instant) -> Instant {
        let (phase, period) = (nanos(self.phase), self.period_nanos());
        let Some(since) = at.as_nanos().checked_sub(phase) else {
            return Instant::from_nanos(phase);
        };
        since
            .div_ceil(period)
            .checked_mul(period)
            .and_then(|offset| offset.checked_add(phase))
            .map_or(Instant::MAX, Instant::from_nanos)
    }

    /// The fire after `fire`, a fire of this schedule.
    pub(super) fn after(&self, fire: Instant) -> Instant {
        fire.as_nanos()
            .checked_add(self.period_nanos())
            .map_or(Instant::MAX, Instant::from_nanos)
    }

    /// The fires from `fire`, a fire of this schedule, up to `end`
    /// excluded.
    pub(super) fn fires_before(&self, fire: Instant, end: Instant) -> u64 {
        if fire.is_never() {
            return 0;
        }
        end.as_nanos()
            .saturating_sub(fire.as_nanos())
            .div_ceil(self.period_nanos())
    }

    /// Whether `at` is one of this schedule's fires.
    #[cfg(any(test, feature = "serde"))]
    pub(super) fn is_fire(&self, at: Instant) -> bool {
        at.as_nanos()
            .checked_sub(nanos(self.phase))
            .is_some_and(|since| since % self.period_nanos() == 0)
    }
}

/// A duration in 64-bit nanoseconds, saturating.
pub(super) fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl ScheduleSpecBuilder {
    /// Shifts the fires by `phase` (below the period) past each multiple
    /// of the period.
    pub fn phase(mut self, phase: Duration) -> Self {
        self.phase = phase;
        self
    }

    /// What a fire does while a run is still going (default
    /// [`OverlapPolicy::Skip`]).
    pub fn overlap(mut self, overlap: OverlapPolicy) -> Self {
        self.overlap = overlap;
        self
    }

    /// How late a fire may still start (default [`DEFAULT_CATCH_UP`], at
    /// most [`MAX_CATCH_UP`]).
    pub fn catch_up(mut self, window: Duration) -> Self {
        self.catch_up = window;
        self
    }

    /// Delays each start by up to `jitter` (below the period), drawn from
    /// the schedules' seed and the fire.
    pub fn jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }

    /// Validates the spec.
    ///
    /// # Errors
    ///
    /// [`ScheduleError::Period`], [`Phase`](ScheduleError::Phase),
    /// [`Jitter`](ScheduleError::Jitter) or
    /// [`CatchUp`](ScheduleError::CatchUp).
    pub fn build(self) -> Result<ScheduleSpec, ScheduleError> {
        let period = self.every;
        if period.is_zero() || period > MAX_PERIOD {
            return Err(ScheduleError::Period(period));
        }
        if self.phase >= period {
            return Err(ScheduleError::Phase {
                phase: self.phase,
                period,
            });
        }
        if self.jitter >= period {
            return Err(ScheduleError::Jitter {
                jitter: self.jitter,
                period,
            });
        }
        if self.catch_up > MAX_CATCH_UP {
            return Err(ScheduleError::CatchUp(self.catch_up));
        }
        Ok(ScheduleSpec {
            every: period,
            phase: self.phase,
            overlap: self.overlap,
            catch_up: self.catch_up,
            jitter: self.jitter,
        })
    }
}

impl TryFrom<ScheduleSpecBuilder> for ScheduleSpec {
    type Error = ScheduleError;

    fn try_from(builder: ScheduleSpecBuilder) -> Result<Self, Self::Error> {
        builder.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn fires_fall_on_the_phase_of_each_period() {
        let spec = ScheduleSpec::every(secs(10))
            .phase(secs(3))
            .build()
            .unwrap();
        let at = |s| spec.fire_at_or_after(Instant::from_secs(s)).as_nanos() / 1_000_000_000;
        assert_eq!([at(0), at(3), at(4), at(13), at(14)], [3, 3, 13, 13, 23]);
        assert_eq!(
            spec.fires_before(Instant::from_secs(3), Instant::from_secs(23)),
            2
        );
        assert_eq!(
            spec.fires_before(Instant::from_secs(3), Instant::from_secs(24)),
            3
        );
        assert!(spec.is_fire(Instant::from_secs(13)) && !spec.is_fire(Instant::from_secs(12)));
        assert_eq!(spec.fire_at_or_after(Instant::MAX), Instant::MAX);
        assert_eq!(spec.after(Instant::from_nanos(u64::MAX - 1)), Instant::MAX);
    }

    #[test]
    fn a_spec_that_cannot_work_is_refused() {
        assert_eq!(
            ScheduleSpec::every(Duration::ZERO).build(),
            Err(ScheduleError::Period(Duration::ZERO))
        );
        assert!(ScheduleSpec::every(MAX_PERIOD * 2).build().is_err());
        assert!(ScheduleSpec::every(secs(5)).phase(secs(5)).build().is_err());
        assert!(
            ScheduleSpec::every(secs(5))
                .jitter(secs(5))
                .build()
                .is_err()
        );
        assert!(
            ScheduleSpec::every(secs(5))
                .catch_up(MAX_CATCH_UP * 2)
                .build()
                .is_err()
        );
        assert!(
            ScheduleSpec::every(MAX_PERIOD)
                .catch_up(MAX_CATCH_UP)
                .build()
                .is_ok()
        );
    }
}
