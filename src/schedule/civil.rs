//! Seconds since the Unix epoch and the proleptic Gregorian calendar:
//! the arithmetic a cron schedule and a time zone need, with no date-time
//! crate. Days are counted with Howard Hinnant's `days_from_civil`.

use croner::{CivilDateTime, Weekday};

use crate::Instant;

pub(super) const SECONDS_PER_DAY: i64 = 86_400;

/// The days from 1970-01-01 to `year-month-day` (month 1 to 12).
pub(super) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let shifted_month = i64::from((month + 9) % 12);
    let day_of_year = (153 * shifted_month + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date of the day `days` after 1970-01-01: (year, month, day).
pub(super) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The whole seconds of `at`, read as nanoseconds since the Unix epoch.
pub(super) fn seconds_of_instant(at: Instant) -> i64 {
    // At most 1.8e10: within an i64.
    (at.as_nanos() / 1_000_000_000) as i64
}

/// The weekday of the day `days` after 1970-01-01 (a Thursday).
pub(super) fn weekday_of_day(days: i64) -> Weekday {
    Weekday::from_days_from_sunday((days + 4).rem_euclid(7) as u32)
}

/// The seconds after the epoch of a wall clock read as UTC.
pub(super) fn seconds_of(civil: CivilDateTime) -> i64 {
    days_from_civil(i64::from(civil.year()), civil.month(), civil.day()) * SECONDS_PER_DAY
        + i64::from(civil.hour()) * 3600
        + i64::from(civil.minute()) * 60
        + i64::from(civil.second())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_dates_round_trip_over_four_centuries() {
        let start = days_from_civil(1900, 1, 1);
        for days in start..start + 146_097 {
            let (year, month, day) = civil_from_days(days);
            assert_eq!(days_from_civil(year, month, day), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
        assert_eq!(
            weekday_of_day(days_from_civil(2026, 11, 25)),
            Weekday::Wednesday
        );
    }

    #[test]
    fn wall_clocks_read_as_utc_give_their_seconds() {
        let leap_day = CivilDateTime::from_ymd_hms(2000, 2, 29, 0, 0, 1).unwrap();
        assert_eq!(seconds_of(leap_day), 951_782_401);
        let epoch = CivilDateTime::from_ymd_hms(1970, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(seconds_of(epoch), 0);
    }
}
