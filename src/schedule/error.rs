//! [`ScheduleError`]: a schedule refused, or a call about one refused.

use std::time::Duration;

use thiserror::Error;

use super::{MAX_BACKFILL, MAX_CATCH_UP, MAX_ID_LEN, MAX_PERIOD};
use crate::Instant;

/// Why a schedule, a call about one, or stored schedules were refused. A
/// refused call changes nothing.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// A period of zero, or longer than [`MAX_PERIOD`].
    #[error("the period is {0:?}; it must be above zero and at most {max:?}", max = MAX_PERIOD)]
    Period(Duration),
    /// A phase that is not below the period.
    #[error("the phase {phase:?} is not below the period {period:?}; take it modulo the period")]
    Phase {
        /// The phase given.
        phase: Duration,
        /// The period.
        period: Duration,
    },
    /// A jitter that is not below the period: two fires could swap.
    #[error(
        "the jitter {jitter:?} is not below the period {period:?}; fires could swap their order"
    )]
    Jitter {
        /// The jitter given.
        jitter: Duration,
        /// The period.
        period: Duration,
    },
    /// A cron pattern croner refuses, or one that never matches.
    #[error("the cron pattern `{expr}` is refused: {reason}")]
    Cron {
        /// The pattern (its first [`MAX_CRON_LEN`](super::MAX_CRON_LEN) characters).
        expr: String,
        /// Why.
        reason: String,
    },
    /// Neither or both of a period and a cron pattern, or a setting of
    /// one given to the other.
    #[error("the schedule's timetable is refused: {0}")]
    Timetable(&'static str),
    /// A catch-up window longer than [`MAX_CATCH_UP`].
    #[error("the catch-up window {0:?} is above {max:?}", max = MAX_CATCH_UP)]
    CatchUp(Duration),
    /// An empty schedule id, or one longer than [`MAX_ID_LEN`] bytes.
    #[error("a schedule id must be 1 to {max} bytes long", max = MAX_ID_LEN)]
    BadId,
    /// No schedule has this id.
    #[error("no schedule `{0}`; add it first")]
    Unknown(String),
    /// A schedule with this id exists already.
    #[error("schedule `{0}` exists already; remove it first, or pick another id")]
    Exists(String),
    /// The run reported ended is not one of the schedule's runs going.
    #[error(
        "schedule `{schedule}` has no run of the fire at {fire:?} going; report each run's end once"
    )]
    NotRunning {
        /// The schedule.
        schedule: String,
        /// The fire the run was started for.
        fire: Instant,
    },
    /// A backfill over more fires than [`MAX_BACKFILL`].
    #[error("a backfill of {fires} fires is above {max}; split the range", max = MAX_BACKFILL)]
    BackfillTooLarge {
        /// The fires in the range.
        fires: u64,
    },
    /// Stored schedules that no sequence of calls could have produced.
    #[error("the stored schedules are inconsistent: {0}")]
    Invalid(&'static str),
}
