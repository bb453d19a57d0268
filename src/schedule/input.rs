//! [`ScheduleInput`]: every call on [`Schedules`] as data, to journal and
//! replay.

use super::{OverlapPolicy, RunKey, ScheduleError, ScheduleSpec, Schedules};
use crate::Instant;

/// One call on [`Schedules`] as a value: a host that journals these and
/// replays them on a fresh [`Schedules`] of the same seed gets the same
/// actions and the same state.
///
/// ```
/// use std::time::Duration;
/// use taskweave::Instant;
/// use taskweave::schedule::{ScheduleInput, ScheduleSpec, Schedules};
///
/// let spec = ScheduleSpec::every(Duration::from_secs(60)).build()?;
/// let journal = [
///     ScheduleInput::Add { id: "report".into(), spec, now: Instant::ZERO },
///     ScheduleInput::Timeout { now: Instant::from_secs(60) },
/// ];
/// let (mut a, mut b) = (Schedules::new(1), Schedules::new(1));
/// for input in journal.iter().cloned() {
///     a.apply(input.clone())?;
///     b.apply(input)?;
/// }
/// assert_eq!(a, b);
/// assert!(a.poll_action().is_some());
/// # Ok::<(), taskweave::schedule::ScheduleError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum ScheduleInput {
    /// [`Schedules::add`].
    Add {
        /// The schedule's id.
        id: String,
        /// When it fires.
        spec: ScheduleSpec,
        /// The host's clock.
        now: Instant,
    },
    /// [`Schedules::remove`].
    Remove {
        /// The schedule's id.
        id: String,
    },
    /// [`Schedules::handle_timeout`].
    Timeout {
        /// The host's clock.
        now: Instant,
    },
    /// [`Schedules::run_ended`].
    RunEnded {
        /// The run.
        key: RunKey,
        /// The host's clock.
        now: Instant,
    },
    /// [`Schedules::pause`].
    Pause {
        /// The schedule's id.
        id: String,
    },
    /// [`Schedules::unpause`].
    Unpause {
        /// The schedule's id.
        id: String,
        /// The host's clock.
        now: Instant,
    },
    /// [`Schedules::trigger`].
    Trigger {
        /// The schedule's id.
        id: String,
        /// The host's clock.
        now: Instant,
    },
    /// [`Schedules::backfill`].
    Backfill {
        /// The schedule's id.
        id: String,
        /// The first instant covered.
        from: Instant,
        /// The first instant not covered.
        to: Instant,
        /// The overlap policy of the backfilled fires.
        overlap: OverlapPolicy,
    },
}

impl Schedules {
    /// Applies one call given as data.
    ///
    /// # Errors
    ///
    /// As the call it stands for; a refused input changes nothing.
    pub fn apply(&mut self, input: ScheduleInput) -> Result<(), ScheduleError> {
        match input {
            ScheduleInput::Add { id, spec, now } => self.add(id, spec, now),
            ScheduleInput::Remove { id } => self.remove(&id).map(|_| ()),
            ScheduleInput::Timeout { now } => {
                self.handle_timeout(now);
                Ok(())
            }
            ScheduleInput::RunEnded { key, now } => self.run_ended(&key, now),
            ScheduleInput::Pause { id } => self.pause(&id),
            ScheduleInput::Unpause { id, now } => self.unpause(&id, now),
            ScheduleInput::Trigger { id, now } => self.trigger(&id, now),
            ScheduleInput::Backfill {
                id,
                from,
                to,
                overlap,
            } => self.backfill(&id, from, to, overlap).map(|_| ()),
        }
    }
}
