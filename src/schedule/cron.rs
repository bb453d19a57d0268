//! [`CronTable`]: croner's patterns searched over taskweave's instants,
//! read as time since the Unix epoch on the wall clock of a time zone
//! (UTC unless feature `time-zones` gives another).

use std::cmp::Ordering;
use std::str::FromStr;

use croner::errors::CronError;
use croner::{CivilDate, CivilDateTime, CivilTime, Cron, CronDateTime, Resolution, Weekday};

use super::ScheduleError;
use super::civil::{SECONDS_PER_DAY, civil_from_days, seconds_of, weekday_of_day};
#[cfg(feature = "time-zones")]
use super::zone::TimeZone;

/// The longest cron expression, in bytes.
pub const MAX_CRON_LEN: usize = 256;

/// Without feature `time-zones` every cron schedule reads UTC: a zone
/// that cannot exist.
#[cfg(not(feature = "time-zones"))]
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) enum TimeZone {}

#[cfg(not(feature = "time-zones"))]
impl TimeZone {
    fn offset_at_seconds(&self, _: i64) -> i32 {
        match *self {}
    }

    fn resolve(&self, _: i64) -> Resolution<i64> {
        match *self {}
    }
}

/// A cron pattern and the zone whose wall clock it is read on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct CronTable {
    expr: String,
    cron: Cron,
    zone: Option<TimeZone>,
}

impl CronTable {
    /// Parses `expr` (five fields, or six with seconds first, or seven
    /// with a year last), read in `zone` (UTC if none).
    pub(super) fn new(expr: &str, zone: Option<TimeZone>) -> Result<CronTable, ScheduleError> {
        let refuse = |reason: String| ScheduleError::Cron {
            expr: expr.chars().take(MAX_CRON_LEN).collect(),
            reason,
        };
        if expr.len() > MAX_CRON_LEN {
            return Err(refuse(format!("it is longer than {MAX_CRON_LEN} bytes")));
        }
        let cron = Cron::from_str(expr).map_err(|e| refuse(e.to_string()))?;
        let table = CronTable {
            expr: expr.to_owned(),
            cron,
            zone,
        };
        if table.next(0, true).is_none() {
            return Err(refuse("it matches no instant after 1970".to_owned()));
        }
        Ok(table)
    }

    pub(super) fn expr(&self) -> &str {
        &self.expr
    }

    #[cfg(feature = "time-zones")]
    pub(super) fn zone(&self) -> Option<&TimeZone> {
        self.zone.as_ref()
    }

    fn at(&self, utc: i64) -> Zoned<'_> {
        Zoned {
            utc,
            zone: self.zone.as_ref(),
        }
    }

    /// The first fire at or after (`inclusive`) or after `utc` seconds,
    /// if croner finds one.
    pub(super) fn next(&self, utc: i64, inclusive: bool) -> Option<i64> {
        let found = self.cron.find_next_occurrence(&self.at(utc), inclusive);
        found.ok().map(|zoned| zoned.utc)
    }

    /// The last fire at or before (`inclusive`) or before `utc` seconds.
    pub(super) fn previous(&self, utc: i64, inclusive: bool) -> Option<i64> {
        let found = self.cron.find_previous_occurrence(&self.at(utc), inclusive);
        found.ok().map(|zoned| zoned.utc)
    }
}

/// An instant in seconds since the Unix epoch on a zone's clock: what
/// croner searches over.
#[derive(Clone)]
struct Zoned<'a> {
    utc: i64,
    zone: Option<&'a TimeZone>,
}

impl Zoned<'_> {
    fn local(&self) -> i64 {
        self.utc
            + self
                .zone
                .map_or(0, |zone| i64::from(zone.offset_at_seconds(self.utc)))
    }
}

impl CronDateTime for Zoned<'_> {
    fn to_civil(&self) -> CivilDateTime {
        let local = self.local();
        let (year, month, day) = civil_from_days(local.div_euclid(SECONDS_PER_DAY));
        let of_day = local.rem_euclid(SECONDS_PER_DAY);
        // Years within an i32 (croner searches years 1 to 5000), and the
        // parts in range.
        CivilDateTime::new(
            CivilDate::from_parts_unchecked(year as i32, month, day),
            CivilTime::from_parts_unchecked(
                (of_day / 3600) as u32,
                (of_day % 3600 / 60) as u32,
                (of_day % 60) as u32,
            ),
        )
    }

    fn civil_weekday(&self) -> Weekday {
        weekday_of_day(self.local().div_euclid(SECONDS_PER_DAY))
    }

    fn resolve_civil(&self, civil: CivilDateTime) -> Result<Resolution<Self>, CronError> {
        let local = seconds_of(civil);
        let at = |utc| Zoned {
            utc,
            zone: self.zone,
        };
        Ok(match self.zone.map(|zone| zone.resolve(local)) {
            None => Resolution::Single(at(local)),
            Some(Resolution::Single(utc)) => Resolution::Single(at(utc)),
            Some(Resolution::Ambiguous(a, b)) => Resolution::Ambiguous(at(a), at(b)),
            Some(Resolution::Gap) => Resolution::Gap,
        })
    }

    fn checked_add_seconds(&self, seconds: i64) -> Option<Self> {
        Some(Zoned {
            utc: self.utc.checked_add(seconds)?,
            zone: self.zone,
        })
    }

    fn cmp_instant(&self, other: &Self) -> Ordering {
        self.utc.cmp(&other.utc)
    }
}
