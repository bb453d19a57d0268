//! When a leader publishes its [`Status`](crate::cluster::Status) next:
//! a status period after a commit that changed what it shows, and four
//! periods after one that only took heartbeats (an idle cluster's
//! commits), so a quiet leader does not write a status every period.

use std::time::Duration;

use crate::Instant;

/// A commit that only took heartbeats makes the status owed this many
/// status periods after the last one; the commits of the last of those
/// periods carry it (an idle leader's commits come about once per poll,
/// so its status rides on them instead of costing a commit of its own).
const QUIET_STATUS_PERIODS: u32 = 4;

/// What the commits since the last status changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
enum Stale {
    /// Nothing: the published status is current.
    #[default]
    No,
    /// Only agents' heartbeats (and the journal position they took).
    Quiet,
    /// Something a reader of the status would see.
    Yes,
}

/// When the last status was published, and what changed since.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct StatusClock {
    /// `None`: this leader published none yet.
    at: Option<Instant>,
    stale: Stale,
}

impl StatusClock {
    /// A new leader publishes its first status with its first commit.
    pub(crate) fn restart(&mut self) {
        self.at = None;
    }

    /// A commit changed the state (`quiet`: it only took heartbeats).
    pub(crate) fn changed(&mut self, quiet: bool) {
        let stale = if quiet { Stale::Quiet } else { Stale::Yes };
        self.stale = self.stale.max(stale);
    }

    /// When a status is owed, with status period `every`: `None` while
    /// the published one is current.
    pub(crate) fn owed_at(&self, every: Duration) -> Option<Instant> {
        let period = match self.stale {
            Stale::No => return None,
            Stale::Quiet => every.saturating_mul(QUIET_STATUS_PERIODS),
            Stale::Yes => every,
        };
        Some(
            self.at
                .map_or(Instant::ZERO, |at| at.saturating_add(period)),
        )
    }

    /// Whether a status is owed at `now`.
    pub(crate) fn owes(&self, now: Instant, every: Duration) -> bool {
        self.owed_at(every).is_some_and(|at| at <= now)
    }

    /// Whether the commit sent at `now` carries a status: the leader's
    /// first, one owed, or one owed for heartbeats within a period.
    pub(crate) fn publishes(&self, now: Instant, every: Duration) -> bool {
        let ahead = match self.stale {
            Stale::Quiet => every,
            Stale::No | Stale::Yes => Duration::ZERO,
        };
        self.at.is_none() || self.owes(now.saturating_add(ahead), every)
    }

    /// A status was published at `now`.
    pub(crate) fn published(&mut self, now: Instant) {
        self.at = Some(now);
        self.stale = Stale::No;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVERY: Duration = Duration::from_millis(250);

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn a_first_status_goes_with_the_first_commit() {
        let clock = StatusClock::default();
        assert!(clock.publishes(at(0), EVERY));
        assert_eq!(clock.owed_at(EVERY), None);
    }

    #[test]
    fn a_change_is_owed_a_period_later_and_heartbeats_four() {
        let mut clock = StatusClock::default();
        clock.published(at(1_000));
        clock.changed(true);
        assert_eq!(clock.owed_at(EVERY), Some(at(1_000 + 1_000)));
        assert!(!clock.publishes(at(1_300), EVERY));
        assert!(!clock.owes(at(1_800), EVERY));
        // A commit in the last period carries it.
        assert!(!clock.publishes(at(1_749), EVERY));
        assert!(clock.publishes(at(1_750), EVERY));
        assert!(clock.publishes(at(2_000), EVERY));
        // A change a reader would see brings it near; a later quiet one
        // does not push it back.
        clock.changed(false);
        clock.changed(true);
        assert_eq!(clock.owed_at(EVERY), Some(at(1_250)));
        assert!(!clock.publishes(at(1_100), EVERY), "not early for a change");
        clock.published(at(1_300));
        assert_eq!(clock.owed_at(EVERY), None);
        assert!(!clock.owes(at(60_000), EVERY));
    }

    #[test]
    fn a_restarted_clock_publishes_at_once() {
        let mut clock = StatusClock::default();
        clock.published(at(1_000));
        clock.restart();
        assert!(clock.publishes(at(1_001), EVERY));
        clock.changed(false);
        assert_eq!(clock.owed_at(EVERY), Some(Instant::ZERO));
    }
}
