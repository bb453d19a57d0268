//! Schedules (feature `schedule`): runs started every period, with
//! Temporal's semantics — an overlap policy, a catch-up window after
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
//! Fires fall on multiples of a period (with a phase) of the host's
//! clock. Calendar expressions (cron) and time zones are not supported
//! yet.

mod error;
mod input;
mod overlap;
mod schedules;
#[cfg(feature = "serde")]
mod snapshot;
mod spec;

use std::time::Duration;

pub use error::ScheduleError;
pub use input::ScheduleInput;
pub use overlap::OverlapPolicy;
pub use schedules::{RunKey, ScheduleAction, ScheduleCounts, Schedules};
pub use spec::{DEFAULT_CATCH_UP, ScheduleSpec, ScheduleSpecBuilder};

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

/// The most fires one [`Schedules::backfill`] covers.
pub const MAX_BACKFILL: u64 = 10_000;

/// The longest schedule id, in bytes.
pub const MAX_ID_LEN: usize = 256;
