//! The dispatcher's timers: what it must look at, and when.

use std::collections::BTreeSet;

use super::requirements::RequirementsId;
use crate::{AgentId, AttemptToken, Instant, TaskId};

/// Something the dispatcher must look at, at a given instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(crate) enum Timer {
    Ttl(TaskId),
    Deadline(TaskId),
    Attempt(TaskId, AttemptToken),
    Retry(TaskId),
    Unroutable(TaskId),
    Heartbeat(AgentId),
    Breaker(AgentId),
    AgentRate(AgentId),
    KindRate(RequirementsId),
    /// A concurrency key's rate conforms again.
    KeyRate(u32),
}

/// The armed timers in firing order — by instant, then in the order they
/// were armed — and how many have been armed, which orders them and tells
/// one call's timers from those its firing arms.
#[derive(Clone, Debug, Default)]
pub(in crate::scheduler) struct Timers {
    armed: BTreeSet<(Instant, u64, Timer)>,
    issued: u64,
}

impl Timers {
    /// Timers as a snapshot stores them: the armed set, and the count.
    pub(in crate::scheduler) fn from_parts(
        armed: BTreeSet<(Instant, u64, Timer)>,
        issued: u64,
    ) -> Self {
        Timers { armed, issued }
    }

    /// Every armed timer, in firing order, with its arming number.
    pub(in crate::scheduler) fn armed(&self) -> &BTreeSet<(Instant, u64, Timer)> {
        &self.armed
    }

    /// How many timers have been armed: every arming number lies below.
    #[inline]
    pub(in crate::scheduler) fn issued(&self) -> &u64 {
        &self.issued
    }

    /// Arms `timer` for `at`. `O(log t)` for `t` armed timers.
    #[inline]
    pub(in crate::scheduler) fn arm(&mut self, at: Instant, timer: Timer) {
        let seq = self.issued;
        self.issued = seq.saturating_add(1);
        self.armed.insert((at, seq, timer));
    }

    /// The instant of the earliest armed timer.
    #[inline]
    pub(in crate::scheduler) fn next_at(&self) -> Option<Instant> {
        self.armed.first().map(|&(at, _, _)| at)
    }

    /// Takes the earliest timer if it fires at `now` and was armed before
    /// `issued_before` (an [`issued`](Self::issued) taken when the call
    /// began, so a timer that firing arms waits for the next call).
    #[inline]
    pub(in crate::scheduler) fn pop_due(
        &mut self,
        now: Instant,
        issued_before: u64,
    ) -> Option<(Instant, Timer)> {
        let &(at, seq, timer) = self.armed.first()?;
        if !at.fires_at(now) || seq >= issued_before {
            return None;
        }
        self.armed.pop_first();
        Some((at, timer))
    }
}
