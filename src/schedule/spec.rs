//! [`ScheduleSpec`]: when a schedule fires (every period, or at the
//! matches of a cron pattern), how far it catches up, how much it
//! jitters, and what a fire does when the last run still goes.

use std::sync::Arc;
use std::time::Duration;

use super::cron::CronTable;
use super::timetable::{Timetable, nanos};
#[cfg(feature = "time-zones")]
use super::zone::TimeZone;
use super::{MAX_CATCH_UP, MAX_PERIOD, OverlapPolicy, ScheduleError};
use crate::Instant;

/// When a schedule fires and what it does then. Made by
/// [`ScheduleSpec::every`] (every `period`, at `phase` past each multiple
/// of it on the host's clock) or [`ScheduleSpec::cron`] (at the matches
/// of a cron pattern, the host's clock read as time since the Unix
/// epoch, on a UTC wall clock or, with feature `time-zones`, a
/// [`TimeZone`](super::TimeZone)'s); every instance is valid.
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
/// // Weekdays at 09:30 UTC: 2025-01-01 (1,735,689,600 s) was a Wednesday.
/// let standup = ScheduleSpec::cron("30 9 * * MON-FRI").build()?;
/// let new_year = Instant::from_secs(1_735_689_600);
/// assert_eq!(standup.fire_at_or_after(new_year), Instant::from_secs(1_735_689_600 + 9 * 3600 + 1800));
///
/// // A jitter as long as the period could swap two fires: refused.
/// assert!(ScheduleSpec::every(Duration::from_secs(60)).jitter(Duration::from_secs(60)).build().is_err());
/// assert!(ScheduleSpec::cron("0 0 30 2 *").build().is_err()); // February 30th
/// # Ok::<(), taskweave::schedule::ScheduleError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(try_from = "ScheduleSpecBuilder", into = "ScheduleSpecBuilder")
)]
pub struct ScheduleSpec {
    timetable: Timetable,
    overlap: OverlapPolicy,
    catch_up: Duration,
    jitter: Duration,
}

/// Builds a [`ScheduleSpec`]; [`build`](Self::build) validates it. Its
/// serde form is the spec's: `every` (with `phase`) or `cron` (with
/// `zone`, a POSIX TZ rule), then `overlap`, `catch_up` and `jitter`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
#[must_use]
pub struct ScheduleSpecBuilder {
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    every: Option<Duration>,
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Duration::is_zero")
    )]
    phase: Duration,
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    cron: Option<String>,
    #[cfg(feature = "time-zones")]
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    zone: Option<TimeZone>,
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
    fn builder() -> ScheduleSpecBuilder {
        ScheduleSpecBuilder {
            every: None,
            phase: Duration::ZERO,
            cron: None,
            #[cfg(feature = "time-zones")]
            zone: None,
            overlap: OverlapPolicy::Skip,
            catch_up: DEFAULT_CATCH_UP,
            jitter: Duration::ZERO,
        }
    }

    /// A schedule that fires every `period`: at 0, `period`, 2 × `period`
    /// … of the host's clock, unless a [phase](ScheduleSpecBuilder::phase)
    /// shifts them.
    pub fn every(period: Duration) -> ScheduleSpecBuilder {
        ScheduleSpecBuilder {
            every: Some(period),
            ..Self::builder()
        }
    }

    /// A schedule that fires at each match of the cron pattern `expr`,
    /// parsed by [croner](https://docs.rs/croner): five fields (minute,
    /// hour, day of month, month, day of week), or six with seconds
    /// first, or seven with a year last; `L`, `W`, `#` and names such as
    /// `MON` or `JAN` are understood. The host's clock is read as time
    /// since the Unix epoch, on a UTC wall clock unless
    /// [`zone`](ScheduleSpecBuilder::zone) names another.
    ///
    /// In a zone that changes its clock, a pattern with a single value in
    /// each of its seconds, minutes and hours (`30 2 * * *`) fires once on
    /// the day of the change: at the first instant after the gap when the
    /// change skips its time, the first time when the change repeats it.
    /// Any other pattern (a wildcard, a step, a list or a range in a time
    /// field) skips its times in a gap and fires on both passes of a
    /// repeated stretch, as croner does.
    pub fn cron(expr: impl Into<String>) -> ScheduleSpecBuilder {
        ScheduleSpecBuilder {
            cron: Some(expr.into()),
            ..Self::builder()
        }
    }

    /// The period, for a schedule made by [`every`](Self::every).
    pub fn period(&self) -> Option<Duration> {
        match &self.timetable {
            Timetable::Every { period, .. } => Some(*period),
            Timetable::Cron(_) => None,
        }
    }

    /// Where in each period it fires (zero for a cron schedule).
    pub fn phase(&self) -> Duration {
        match &self.timetable {
            Timetable::Every { phase, .. } => *phase,
            Timetable::Cron(_) => Duration::ZERO,
        }
    }

    /// The cron pattern, for a schedule made by [`cron`](Self::cron).
    pub fn cron_pattern(&self) -> Option<&str> {
        match &self.timetable {
            Timetable::Cron(table) => Some(table.expr()),
            Timetable::Every { .. } => None,
        }
    }

    /// The zone a cron schedule reads its wall clock in; `None` is UTC.
    #[cfg(feature = "time-zones")]
    pub fn zone(&self) -> Option<&TimeZone> {
        match &self.timetable {
            Timetable::Cron(table) => table.zone(),
            Timetable::Every { .. } => None,
        }
    }

    pub(super) fn timetable(&self) -> &Timetable {
        &self.timetable
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
    /// the schedules' seed and the fire, so it replays. A cron fire's
    /// delay stays below the time to the fire after it, so fires keep
    /// their order.
    pub fn jitter(&self) -> Duration {
        self.jitter
    }

    /// The first fire at or after `at`; [`Instant::MAX`] ("never") past
    /// the last representable one. One cron search for a cron schedule.
    pub fn fire_at_or_after(&self, at: Instant) -> Instant {
        self.timetable.fire_at_or_after(at)
    }

    /// The most the start of `fire` may be delayed: the jitter, below the
    /// time to the next fire.
    pub(super) fn jitter_below(&self, fire: Instant) -> u64 {
        let jitter = nanos(self.jitter);
        match &self.timetable {
            Timetable::Every { .. } => jitter,
            Timetable::Cron(_) if jitter == 0 => 0,
            Timetable::Cron(_) => {
                let gap = self.timetable.after(fire).as_nanos() - fire.as_nanos();
                jitter.min(gap)
            }
        }
    }
}

impl ScheduleSpecBuilder {
    /// Shifts the fires by `phase` (below the period) past each multiple
    /// of the period; not for a cron schedule.
    pub fn phase(mut self, phase: Duration) -> Self {
        self.phase = phase;
        self
    }

    /// Reads a cron schedule's pattern on the wall clock of `zone`.
    #[cfg(feature = "time-zones")]
    pub fn zone(mut self, zone: TimeZone) -> Self {
        self.zone = Some(zone);
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
    /// [`Jitter`](ScheduleError::Jitter),
    /// [`CatchUp`](ScheduleError::CatchUp),
    /// [`Cron`](ScheduleError::Cron) (a pattern croner refuses or that
    /// never matches) or [`Timetable`](ScheduleError::Timetable) (neither
    /// or both of a period and a pattern, a phase with a pattern, a zone
    /// with a period).
    pub fn build(self) -> Result<ScheduleSpec, ScheduleError> {
        #[cfg(feature = "time-zones")]
        let zone = self.zone;
        #[cfg(not(feature = "time-zones"))]
        let zone = None;
        let timetable = match (self.every, self.cron) {
            (Some(period), None) => {
                if zone.is_some() {
                    return Err(ScheduleError::Timetable(
                        "a time zone is for a cron schedule; a period counts on the host's clock",
                    ));
                }
                check_period(period, self.phase, self.jitter)?;
                Timetable::Every {
                    period,
                    phase: self.phase,
                }
            }
            (None, Some(expr)) => {
                if !self.phase.is_zero() {
                    return Err(ScheduleError::Timetable(
                        "a phase is for a schedule every period; shift a cron pattern's own fields",
                    ));
                }
                Timetable::Cron(Arc::new(CronTable::new(&expr, zone)?))
            }
            _ => {
                return Err(ScheduleError::Timetable(
                    "give either a period (`every`) or a cron pattern (`cron`)",
                ));
            }
        };
        if self.catch_up > MAX_CATCH_UP {
            return Err(ScheduleError::CatchUp(self.catch_up));
        }
        Ok(ScheduleSpec {
            timetable,
            overlap: self.overlap,
            catch_up: self.catch_up,
            jitter: self.jitter,
        })
    }
}

fn check_period(period: Duration, phase: Duration, jitter: Duration) -> Result<(), ScheduleError> {
    if period.is_zero() || period > MAX_PERIOD {
        return Err(ScheduleError::Period(period));
    }
    if phase >= period {
        return Err(ScheduleError::Phase { phase, period });
    }
    if jitter >= period {
        return Err(ScheduleError::Jitter { jitter, period });
    }
    Ok(())
}

impl TryFrom<ScheduleSpecBuilder> for ScheduleSpec {
    type Error = ScheduleError;

    fn try_from(builder: ScheduleSpecBuilder) -> Result<Self, Self::Error> {
        builder.build()
    }
}

impl From<ScheduleSpec> for ScheduleSpecBuilder {
    fn from(spec: ScheduleSpec) -> Self {
        let builder = match &spec.timetable {
            Timetable::Every { period, phase } => ScheduleSpec::every(*period).phase(*phase),
            Timetable::Cron(table) => ScheduleSpecBuilder {
                #[cfg(feature = "time-zones")]
                zone: table.zone().cloned(),
                ..ScheduleSpec::cron(table.expr())
            },
        };
        builder
            .overlap(spec.overlap)
            .catch_up(spec.catch_up)
            .jitter(spec.jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
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
