//! [`OverlapPolicy`]: what a fire does when the schedule's previous run
//! is still going.

/// What a fire does when a run the schedule started earlier is still
/// going, as Temporal's schedules do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum OverlapPolicy {
    /// The fire is skipped (counted in
    /// [`ScheduleCounts::skipped`](super::ScheduleCounts::skipped)).
    #[default]
    Skip,
    /// One fire waits for the run to end, then starts; any further fire
    /// meanwhile is skipped.
    BufferOne,
    /// Every fire waits, in order, and they start one at a time (at most
    /// [`MAX_BUFFERED`](super::MAX_BUFFERED) wait; more are skipped).
    BufferAll,
    /// The runs going are cancelled ([`ScheduleAction::Cancel`](super::ScheduleAction::Cancel)),
    /// and the fire starts once they have ended; a newer fire replaces a
    /// waiting one.
    CancelOther,
    /// The fire starts at once, beside the runs going (at most
    /// [`MAX_RUNNING`](super::MAX_RUNNING) at a time; more are skipped).
    AllowAll,
}
