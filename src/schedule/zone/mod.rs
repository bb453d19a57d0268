//! [`TimeZone`] (feature `time-zones`): a POSIX TZ rule, the clock a
//! cron schedule reads its wall-clock times in.

mod posix;

use std::fmt;

use croner::Resolution;
use thiserror::Error;

use super::civil::{
    SECONDS_PER_DAY, civil_from_days, days_from_civil, seconds_of_instant, weekday_of_day,
};
use crate::Instant;

/// The longest rule text, in bytes.
pub const MAX_ZONE_LEN: usize = 128;

/// A time zone as a POSIX TZ rule: a standard offset from UTC and, if the
/// zone has daylight saving time, its offset and the yearly rule for when
/// it starts and ends, as in `CET-1CEST,M3.5.0,M10.5.0/3` (Central
/// Europe) or `EST5EDT,M3.2.0,M11.1.0` (US Eastern).
///
/// It is the last line of a zone's tzfile (`tail -n1
/// /usr/share/zoneinfo/Europe/Paris`), so a host reads the rule where it
/// keeps its zones and hands it over: taskweave reads no files. The rule
/// holds for every year; a zone whose rules changed in the past gives
/// today's offsets for those years too. Offsets are read east of UTC, as
/// usual, though POSIX writes them west (`CET-1` is UTC+1).
///
/// ```
/// use taskweave::Instant;
/// use taskweave::schedule::TimeZone;
///
/// let paris = TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3")?;
/// // 2025-03-30 01:00 UTC: summer time has just begun (02:00 became 03:00).
/// assert_eq!(paris.offset_at(Instant::from_secs(1_743_296_400)), 7200);
/// assert_eq!(paris.wall_clock(Instant::from_secs(1_743_296_400)).to_string(), "2025-03-30 03:00:00");
/// assert!(TimeZone::posix("CET-1CEST").is_err()); // daylight saving time needs its rule
/// # Ok::<(), taskweave::schedule::ZoneError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TimeZone {
    rule: String,
    /// The standard offset east of UTC, in seconds.
    std: i32,
    dst: Option<Dst>,
}

/// Daylight saving time: its offset east of UTC and when it starts and
/// ends each year.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Dst {
    offset: i32,
    start: Transition,
    end: Transition,
}

/// A yearly change of clock: a day and a time of day on the clock in
/// force before it (which may exceed a day, or be negative).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Transition {
    date: RuleDate,
    time: i32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum RuleDate {
    /// `Jn`: day 1 to 365, never counting February 29.
    NoLeapDay(u16),
    /// `n`: day 0 to 365, counting February 29.
    Day(u16),
    /// `Mm.w.d`: weekday `d` (0 is Sunday) of week `w` of month `m`,
    /// week 5 being the last.
    Weekday { month: u8, week: u8, weekday: u8 },
}

/// Why a TZ rule was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ZoneError {
    /// Not in the POSIX form.
    #[error(
        "not a POSIX TZ rule: at byte {at}, expected {expected}; write it as the last line of a tzfile, such as CET-1CEST,M3.5.0,M10.5.0/3"
    )]
    Syntax {
        /// Where.
        at: usize,
        /// What the rule needed there.
        expected: &'static str,
    },
    /// A number beyond its field's range.
    #[error("a number at byte {at} is above {max}, the most its field allows")]
    OutOfRange {
        /// Where the number starts.
        at: usize,
        /// Its field's largest value.
        max: i64,
    },
    /// Daylight saving time more than two hours from standard time.
    #[error(
        "daylight saving time at {dst} s east of UTC is more than two hours from standard time at {std} s; no zone changes its clock by more"
    )]
    Shift {
        /// The standard offset east of UTC, in seconds.
        std: i32,
        /// The daylight saving offset east of UTC, in seconds.
        dst: i32,
    },
    /// A rule longer than [`MAX_ZONE_LEN`].
    #[error("the rule is {0} bytes long, above {max}", max = MAX_ZONE_LEN)]
    TooLong(usize),
}

impl TimeZone {
    /// UTC: no offset, no daylight saving time.
    pub fn utc() -> TimeZone {
        TimeZone {
            rule: "UTC0".to_owned(),
            std: 0,
            dst: None,
        }
    }

    /// The zone of a POSIX TZ rule.
    ///
    /// # Errors
    ///
    /// [`ZoneError`] naming where the rule is not in the POSIX form.
    pub fn posix(rule: &str) -> Result<TimeZone, ZoneError> {
        if rule.len() > MAX_ZONE_LEN {
            return Err(ZoneError::TooLong(rule.len()));
        }
        let (std, dst) = posix::parse(rule)?;
        Ok(TimeZone {
            rule: rule.to_owned(),
            std,
            dst,
        })
    }

    /// The rule's text, as given.
    pub fn rule(&self) -> &str {
        &self.rule
    }

    /// The offset east of UTC in force at `at` (seconds since the Unix
    /// epoch), in seconds.
    pub fn offset_at(&self, at: Instant) -> i32 {
        self.offset_at_seconds(seconds_of_instant(at))
    }

    /// What a clock in this zone shows at `at` (since the Unix epoch).
    pub fn wall_clock(&self, at: Instant) -> WallClock {
        let utc = seconds_of_instant(at);
        WallClock::of(utc + i64::from(self.offset_at_seconds(utc)))
    }

    pub(in crate::schedule) fn offset_at_seconds(&self, utc: i64) -> i32 {
        let Some(dst) = self.dst else {
            return self.std;
        };
        let year = civil_from_days((utc + i64::from(self.std)).div_euclid(SECONDS_PER_DAY)).0;
        // The last change of clock at or before `utc`: a transition's time
        // may reach a week past its day, so the two years before count.
        let mut last: Option<(i64, bool)> = None;
        for year in year - 2..=year + 1 {
            let start = dst.start.utc(year, self.std);
            let end = dst.end.utc(year, dst.offset);
            // At a tie the start wins: a zone in daylight saving time all
            // year ends it and starts it again at the same instant.
            for (at, starts) in [(end, false), (start, true)] {
                if at <= utc && last.is_none_or(|(latest, _)| at >= latest) {
                    last = Some((at, starts));
                }
            }
        }
        match last {
            Some((_, true)) => dst.offset,
            _ => self.std,
        }
    }

    /// The instants (seconds since the epoch) a clock in this zone shows
    /// `local` at, `local` being its wall clock read as UTC.
    pub(in crate::schedule) fn resolve(&self, local: i64) -> Resolution<i64> {
        let mut instants = [self.std]
            .into_iter()
            .chain(self.dst.map(|dst| dst.offset))
            .map(|offset| local - i64::from(offset))
            .filter(|&utc| i64::from(self.offset_at_seconds(utc)) == local - utc);
        match (instants.next(), instants.next()) {
            (Some(a), Some(b)) if a != b => Resolution::Ambiguous(a.min(b), a.max(b)),
            (Some(a), _) => Resolution::Single(a),
            (None, _) => Resolution::Gap,
        }
    }
}

impl Transition {
    /// The instant of this change in `year`, read on a clock `offset`
    /// east of UTC.
    fn utc(&self, year: i64, offset: i32) -> i64 {
        let day = match self.date {
            RuleDate::NoLeapDay(n) => {
                let after_february = is_leap_year(year) && n >= 60;
                days_from_civil(year, 1, 1) + i64::from(n) - 1 + i64::from(after_february)
            }
            RuleDate::Day(n) => days_from_civil(year, 1, 1) + i64::from(n),
            RuleDate::Weekday {
                month,
                week,
                weekday,
            } => {
                let first = days_from_civil(year, u32::from(month), 1);
                let first_weekday = i64::from(weekday_of_day(first).num_days_from_sunday());
                let day = first
                    + (i64::from(weekday) - first_weekday).rem_euclid(7)
                    + 7 * (i64::from(week) - 1);
                // Week 5 is the last: a sixth week does not exist.
                if day >= first + i64::from(days_in_month(year, month)) {
                    day - 7
                } else {
                    day
                }
            }
        };
        day * SECONDS_PER_DAY + i64::from(self.time) - i64::from(offset)
    }
}

/// Whether `year` has a February 29th.
fn is_leap_year(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// The days of `month` (1 to 12) of `year`.
fn days_in_month(year: i64, month: u8) -> u8 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl fmt::Debug for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TimeZone({:?})", self.rule)
    }
}

impl fmt::Display for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rule)
    }
}

/// What a wall clock shows: a date of the proleptic Gregorian calendar
/// and a time of day, to the second.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WallClock {
    /// The year.
    pub year: i64,
    /// The month, 1 to 12.
    pub month: u32,
    /// The day of the month, 1 to 31.
    pub day: u32,
    /// Seconds since midnight, 0 to 86,399.
    pub second_of_day: u32,
}

impl WallClock {
    fn of(local: i64) -> WallClock {
        let (year, month, day) = civil_from_days(local.div_euclid(SECONDS_PER_DAY));
        WallClock {
            year,
            month,
            day,
            second_of_day: local.rem_euclid(SECONDS_PER_DAY) as u32,
        }
    }
}

impl fmt::Display for WallClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.second_of_day;
        write!(
            f,
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            self.year,
            self.month,
            self.day,
            s / 3600,
            s % 3600 / 60,
            s % 60
        )
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for TimeZone {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.rule)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for TimeZone {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let rule = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        TimeZone::posix(&rule).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(year: i64, month: u32, day: u32, hour: i64, minute: i64) -> i64 {
        days_from_civil(year, month, day) * SECONDS_PER_DAY + hour * 3600 + minute * 60
    }

    #[test]
    fn central_europe_changes_clock_on_the_last_sundays_of_march_and_october() {
        let paris = TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap();
        // 2025-03-30 01:00 UTC (02:00 CET) starts summer time.
        assert_eq!(paris.offset_at_seconds(utc(2025, 3, 30, 0, 59)), 3600);
        assert_eq!(paris.offset_at_seconds(utc(2025, 3, 30, 1, 0)), 7200);
        // 2025-10-26 01:00 UTC (03:00 CEST) ends it.
        assert_eq!(paris.offset_at_seconds(utc(2025, 10, 26, 0, 59)), 7200);
        assert_eq!(paris.offset_at_seconds(utc(2025, 10, 26, 1, 0)), 3600);
        // 02:30 on the spring day never happens; on the autumn day twice.
        assert_eq!(paris.resolve(utc(2025, 3, 30, 2, 30)), Resolution::Gap);
        assert_eq!(
            paris.resolve(utc(2025, 10, 26, 2, 30)),
            Resolution::Ambiguous(utc(2025, 10, 26, 0, 30), utc(2025, 10, 26, 1, 30))
        );
        assert_eq!(
            paris.resolve(utc(2025, 7, 1, 12, 0)),
            Resolution::Single(utc(2025, 7, 1, 10, 0))
        );
    }

    #[test]
    fn southern_zones_quoted_names_and_all_year_summer_time() {
        // Chile: summer time from the first Sunday of September to the
        // first Sunday of April, transitions at 24:00.
        let santiago = TimeZone::posix("<-04>4<-03>,M9.1.6/24,M4.1.6/24").unwrap();
        assert_eq!(
            santiago.offset_at_seconds(utc(2025, 1, 15, 12, 0)),
            -3 * 3600
        );
        assert_eq!(
            santiago.offset_at_seconds(utc(2025, 6, 15, 12, 0)),
            -4 * 3600
        );
        let always = TimeZone::posix("EST5EDT,0/0,J365/25").unwrap();
        for month in 1..=12 {
            assert_eq!(
                always.offset_at_seconds(utc(2026, month, 1, 5, 0)),
                -4 * 3600
            );
        }
        let kolkata = TimeZone::posix("IST-5:30").unwrap();
        assert_eq!(kolkata.offset_at_seconds(0), 5 * 3600 + 1800);
        assert_eq!(TimeZone::utc().resolve(42), Resolution::Single(42));
    }

    #[test]
    fn months_have_their_lengths() {
        for (year, month) in [(2024, 2), (2100, 2), (2000, 2), (2025, 4), (2025, 12)] {
            let next = if month == 12 {
                (year + 1, 1)
            } else {
                (year, month + 1)
            };
            let length = days_from_civil(next.0, next.1, 1) - days_from_civil(year, month, 1);
            assert_eq!(i64::from(days_in_month(year, month as u8)), length);
        }
    }

    #[test]
    fn malformed_rules_name_where_they_go_wrong() {
        for (rule, at) in [
            ("", 0),
            ("CE-1", 2),
            ("CET", 3),
            ("CET-1CEST", 9),
            ("CET-1CEST,M3.5", 14),
            ("CET-1CEST,M3.5.0", 16),
            ("CET-1CEST,M3.5.0,M10.5.0/3x", 26),
            ("<+03", 4),
        ] {
            match TimeZone::posix(rule) {
                Err(ZoneError::Syntax { at: got, .. }) => assert_eq!(got, at, "{rule}"),
                other => panic!("{rule}: {other:?}"),
            }
        }
        assert!(matches!(
            TimeZone::posix("CET-25"),
            Err(ZoneError::OutOfRange { max: 24, .. })
        ));
        assert!(matches!(
            TimeZone::posix("CET-1CEST,M13.1.0,M10.5.0"),
            Err(ZoneError::OutOfRange { max: 12, .. })
        ));
        assert!(TimeZone::posix("CET-1CEST,J0,J300").is_err());
        // A three-hour jump: croner's search of the gap would give up.
        assert_eq!(
            TimeZone::posix("AAA0BBB-3,M3.5.0/1,M10.5.0/4"),
            Err(ZoneError::Shift {
                std: 0,
                dst: 10_800
            })
        );
        assert!(TimeZone::posix("<+00>0<+02>-2,M3.5.0/1,M10.5.0/3").is_ok());
        assert!(TimeZone::posix(&"A".repeat(200)).is_err());
    }
}
