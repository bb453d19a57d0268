//! [`Timetable`]: the instants a schedule fires at — every period, or
//! the matches of a cron pattern — and how to walk and count them.

use std::sync::Arc;
use std::time::Duration;

use super::civil::seconds_of_instant;
use super::cron::CronTable;
use crate::Instant;

/// When a schedule fires. Every fire is a whole instant; [`Instant::MAX`]
/// is "never again".
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) enum Timetable {
    /// At `phase` past each multiple of `period` of the host's clock;
    /// `phase < period`, `period > 0`.
    Every { period: Duration, phase: Duration },
    /// At each match of a cron pattern, the host's clock read as time
    /// since the Unix epoch.
    Cron(Arc<CronTable>),
}

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// A duration in 64-bit nanoseconds, saturating.
pub(super) fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// The instant `seconds` after the Unix epoch; never past the last one.
fn instant_of_seconds(seconds: Option<i64>) -> Instant {
    seconds
        .and_then(|s| u64::try_from(s).ok())
        .and_then(|s| s.checked_mul(NANOS_PER_SECOND))
        .map_or(Instant::MAX, Instant::from_nanos)
}

impl Timetable {
    /// The first fire at or after `at`; [`Instant::MAX`] ("never") past
    /// the last one.
    pub(super) fn fire_at_or_after(&self, at: Instant) -> Instant {
        if at.is_never() {
            return Instant::MAX;
        }
        match self {
            Timetable::Every { period, phase } => {
                let (phase, period) = (nanos(*phase), nanos(*period));
                let Some(since) = at.as_nanos().checked_sub(phase) else {
                    return Instant::from_nanos(phase);
                };
                since
                    .div_ceil(period)
                    .checked_mul(period)
                    .and_then(|offset| offset.checked_add(phase))
                    .map_or(Instant::MAX, Instant::from_nanos)
            }
            Timetable::Cron(table) => {
                let seconds = at.as_nanos().div_ceil(NANOS_PER_SECOND) as i64;
                instant_of_seconds(table.next(seconds, true))
            }
        }
    }

    /// The fire after `fire`.
    pub(super) fn after(&self, fire: Instant) -> Instant {
        match self {
            Timetable::Every { period, .. } => fire
                .as_nanos()
                .checked_add(nanos(*period))
                .map_or(Instant::MAX, Instant::from_nanos),
            Timetable::Cron(_) => fire
                .checked_add(Duration::from_nanos(1))
                .map_or(Instant::MAX, |next| self.fire_at_or_after(next)),
        }
    }

    /// Counts the fires from `fire` (one of them) up to `end` excluded,
    /// stopping after `budget` steps of a cron search: the count, and the
    /// first fire not counted (at or after `end` unless the budget ran
    /// out). `O(1)` for a period, `O(count)` searches for cron.
    pub(super) fn count_before(&self, fire: Instant, end: Instant, budget: u64) -> (u64, Instant) {
        if fire >= end {
            return (0, fire);
        }
        match self {
            Timetable::Every { period, .. } => {
                let period = nanos(*period);
                let count = (end.as_nanos() - fire.as_nanos()).div_ceil(period);
                let reached = count
                    .checked_mul(period)
                    .and_then(|span| fire.as_nanos().checked_add(span))
                    .map_or(Instant::MAX, Instant::from_nanos);
                (count, reached)
            }
            Timetable::Cron(_) => {
                let (mut count, mut at) = (0, fire);
                while at < end && count < budget {
                    count += 1;
                    at = self.after(at);
                }
                (count, at)
            }
        }
    }

    /// Counts the fires from `fire` (one of them) up to `end` excluded, as
    /// [`count_before`](Self::count_before) does within `budget` steps,
    /// and where the budget runs out jumps over the rest uncounted: the
    /// count, the first fire at or after `end`, and whether it jumped.
    /// At most `budget` searches and one more for cron, `O(1)` for a
    /// period.
    pub(super) fn skip_before(
        &self,
        fire: Instant,
        end: Instant,
        budget: u64,
    ) -> (u64, Instant, bool) {
        let (count, reached) = self.count_before(fire, end, budget);
        if reached >= end {
            return (count, reached, false);
        }
        (count, self.fire_at_or_after(end), true)
    }

    /// The oldest of the newest `n` fires at or before `now` (`n ≥ 1`), or
    /// [`Instant::ZERO`] when there are fewer. `O(1)` for a period, `n`
    /// searches for cron.
    pub(super) fn newest(&self, now: Instant, n: u64) -> Instant {
        match self {
            Timetable::Every { period, phase } => {
                let (period, phase) = (nanos(*period), nanos(*phase));
                let Some(since) = now.as_nanos().checked_sub(phase) else {
                    return Instant::ZERO;
                };
                let last = phase + since / period * period;
                let back = n.saturating_sub(1).saturating_mul(period);
                last.checked_sub(back)
                    .map_or(Instant::ZERO, Instant::from_nanos)
            }
            Timetable::Cron(table) => {
                let mut at = Some(seconds_of_instant(now));
                let mut inclusive = true;
                for _ in 0..n {
                    at = at
                        .and_then(|seconds| table.previous(seconds, inclusive))
                        .filter(|&seconds| seconds >= 0);
                    inclusive = false;
                }
                at.map_or(Instant::ZERO, |seconds| instant_of_seconds(Some(seconds)))
            }
        }
    }

    /// The least time between two fires: the period, or a second for a
    /// cron pattern (its finest field).
    pub(super) fn least_gap(&self) -> Duration {
        match self {
            Timetable::Every { period, .. } => *period,
            Timetable::Cron(_) => Duration::from_secs(1),
        }
    }

    /// Whether `at` is one of the fires.
    #[cfg(any(test, feature = "serde"))]
    pub(super) fn is_fire(&self, at: Instant) -> bool {
        self.fire_at_or_after(at) == at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every(period: u64, phase: u64) -> Timetable {
        Timetable::Every {
            period: Duration::from_secs(period),
            phase: Duration::from_secs(phase),
        }
    }

    fn cron(expr: &str) -> Timetable {
        Timetable::Cron(Arc::new(CronTable::new(expr, None).unwrap()))
    }

    fn secs(s: u64) -> Instant {
        Instant::from_secs(s)
    }

    #[test]
    fn periodic_fires_fall_on_the_phase_of_each_period() {
        let table = every(10, 3);
        let at = |s| table.fire_at_or_after(secs(s)).as_nanos() / 1_000_000_000;
        assert_eq!([at(0), at(3), at(4), at(13), at(14)], [3, 3, 13, 13, 23]);
        assert_eq!(table.count_before(secs(3), secs(23), 0), (2, secs(23)));
        assert_eq!(table.count_before(secs(3), secs(24), 0), (3, secs(33)));
        assert_eq!(table.newest(secs(25), 2), secs(13));
        assert_eq!(table.newest(secs(4), 5), Instant::ZERO);
        assert!(table.is_fire(secs(13)) && !table.is_fire(secs(12)));
        assert_eq!(table.fire_at_or_after(Instant::MAX), Instant::MAX);
        assert_eq!(table.after(Instant::from_nanos(u64::MAX - 1)), Instant::MAX);
    }

    #[test]
    fn cron_fires_are_the_pattern_s_matches_in_utc() {
        // Every quarter of an hour, and 2025-01-01 00:00 UTC is 1,735,689,600 s.
        let table = cron("*/15 * * * *");
        let new_year = 1_735_689_600;
        assert_eq!(table.fire_at_or_after(secs(new_year)), secs(new_year));
        assert_eq!(
            table.fire_at_or_after(Instant::from_nanos(new_year * 1_000_000_000 + 1)),
            secs(new_year + 900)
        );
        assert_eq!(table.after(secs(new_year)), secs(new_year + 900));
        assert_eq!(
            table.count_before(secs(new_year), secs(new_year + 3600), 100),
            (4, secs(new_year + 3600))
        );
        assert_eq!(
            table.count_before(secs(new_year), secs(new_year + 3600), 2),
            (2, secs(new_year + 1800))
        );
        // Past its budget, a skip jumps to the first fire at or after the end.
        assert_eq!(
            table.skip_before(secs(new_year), secs(new_year + 3000), 2),
            (2, secs(new_year + 3600), true)
        );
        assert_eq!(
            table.skip_before(secs(new_year), secs(new_year + 3000), 100),
            (4, secs(new_year + 3600), false)
        );
        assert_eq!(table.newest(secs(new_year + 1000), 2), secs(new_year));
        // Fewer fires than asked since the epoch.
        assert_eq!(table.newest(secs(1000), 1000), Instant::ZERO);
        assert!(table.is_fire(secs(new_year + 2700)) && !table.is_fire(secs(new_year + 1)));
        // Every day at 09:30, and the first Monday of each month.
        let daily = cron("30 9 * * *");
        assert_eq!(
            daily.fire_at_or_after(secs(new_year)),
            secs(new_year + 9 * 3600 + 1800)
        );
        let monday = cron("0 0 * * MON#1");
        // 2025-01-06 was the first Monday of January.
        assert_eq!(
            monday.fire_at_or_after(secs(new_year)),
            secs(new_year + 5 * 86_400)
        );
    }

    #[test]
    fn a_cron_pattern_that_never_matches_is_refused() {
        for expr in ["", "61 * * * *", "* * *", "0 0 30 2 *", &"* ".repeat(200)] {
            assert!(CronTable::new(expr, None).is_err(), "{expr}");
        }
    }
}
