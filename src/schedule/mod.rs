//! Schedules (feature `schedule`): runs started every period or at the
//! matches of a cron pattern (parsed by croner), with Temporal's
//! semantics — an overlap policy, a catch-up window after
//! downtime, jitter from a seed, pause, trigger now and backfill — as a
//! sans-IO state machine.
//!
//! [`Schedules`] never reads a clock: the host calls
//! [`handle_timeout`](Schedules::handle_timeout) at
//! [`poll_timeout`](Schedules::poll_timeout), starts and cancels the runs
//! the [`ScheduleAction`]s name, and reports each run's end with
//! [`run_ended`](Schedules::run_ended). A run's identity is its
//! [`RunKey`]: the schedule id and the fire, so a fire journaled twice
//! starts one run when the host refuses a second start of the same key.
//! The state is data ([`Schedules`] is serde, checked when read back),
//! and every call is also a [`ScheduleInput`] a host can journal and
//! replay.
//!
//! A schedule made by [`ScheduleSpec::every`] fires on multiples of a
//! period (with a phase) of the host's clock, whatever its epoch. One made
//! by [`ScheduleSpec::cron`] reads the host's clock as time since the
//! Unix epoch, on a UTC wall clock or, with feature `time-zones`, on a
//! [`TimeZone`] given as a POSIX TZ rule, daylight saving time included.

mod civil;
mod cron;
mod error;
mod input;
mod overlap;
mod schedules;
#[cfg(feature = "serde")]
mod snapshot;
mod spec;
mod timetable;
#[cfg(feature = "time-zones")]
mod zone;

use std::time::Duration;

pub use cron::MAX_CRON_LEN;
pub use error::ScheduleError;
pub use input::ScheduleInput;
pub use overlap::OverlapPolicy;
pub use schedules::{RunKey, ScheduleAction, ScheduleCounts, Schedules};
pub use spec::{DEFAULT_CATCH_UP, ScheduleSpec, ScheduleSpecBuilder};
#[cfg(feature = "time-zones")]
pub use zone::{MAX_ZONE_LEN, TimeZone, WallClock, ZoneError};

/// The longest period: a hundred years.
pub const MAX_PERIOD: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// The longest catch-up window: a year.
pub const MAX_CATCH_UP: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// The most fires of one schedule handled at one wake: older ones are
/// missed, so a host that was down long never starts an unbounded burst.
pub const MAX_FIRES_PER_WAKE: u64 = 1_000;

/// The most fires a [`OverlapPolicy::BufferAll`] schedule keeps waiting.
pub const MAX_BUFFERED: usize = 1_000;

/// The most runs of one [`OverlapPolicy::AllowAll`] schedule going at once.
pub const MAX_RUNNING: usize = 1_000;

/// The most steps of a cron search one schedule takes at one wake to
/// count the fires it missed: a schedule further behind jumps to the
/// fires it may still start with one more search, leaving the rest
/// uncounted ([`ScheduleCounts::jumps`]), so a clock that leaps ahead by
/// any amount costs a bounded wake. A schedule every period counts its
/// fires in one step.
pub const MAX_STEPS_PER_WAKE: u64 = 10_000;

/// The most fires one [`Schedules::backfill`] covers.
pub const MAX_BACKFILL: u64 = 10_000;

/// The longest schedule id, in bytes.
pub const MAX_ID_LEN: usize = 256;
