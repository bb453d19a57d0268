//! One harness for every test that drives a sans-IO machine in virtual
//! time, as quinn's tests drive a connection pair: the host's clock, the
//! work the host has in flight, and bounds on what one call may hand out.
//!
//! A [`Machine`] is what the crate's state machines have in common —
//! actions out, timers in. [`Harness`] owns one, moves its clock (forward,
//! back or to the next timer, see [`Clock`]), drains its actions within a
//! bound, so that a runaway machine fails the test instead of hanging it,
//! and keeps the host's own pending work in time order beside the
//! machine's timers.

#![allow(dead_code, unused_imports)]

mod clock;
#[cfg(feature = "workflow")]
mod engine;
mod machine;

use std::collections::BTreeMap;

use taskweave::Instant;

pub(crate) use clock::{Clock, clock};
#[cfg(feature = "workflow")]
pub(crate) use engine::{EngineOnPool, PoolAction};
pub(crate) use machine::Machine;

/// What a test harness found wrong with the machine it drives.
pub(crate) type Broken = String;

/// The loose bound on the actions of one call: a machine handing out more
/// is running away.
const PER_CALL: usize = 1_000_000;

/// Every action `machine` has pending, in order, or an error when it hands
/// out more than `per_call`.
pub(crate) fn drain_within<M: Machine>(
    machine: &mut M,
    per_call: usize,
) -> Result<Vec<M::Action>, Broken> {
    let mut actions = Vec::new();
    while let Some(action) = machine.poll_action() {
        actions.push(action);
        if actions.len() > per_call {
            return Err(format!("more than {per_call} actions from one call"));
        }
    }
    Ok(actions)
}

/// Every action `machine` has pending, in order; a runaway machine fails
/// the test instead of hanging it.
pub(crate) fn drain<M: Machine>(machine: &mut M) -> Vec<M::Action> {
    drain_within(machine, PER_CALL).unwrap_or_else(|broken| panic!("{broken}"))
}

/// A machine, the host's clock and the host's work in flight.
pub(crate) struct Harness<M, W = ()> {
    pub(crate) machine: M,
    /// The host's clock: it may step back ([`Clock::Back`]); the machine's
    /// own clock must not.
    pub(crate) now: Instant,
    work: BTreeMap<(Instant, u64), W>,
    seq: u64,
    per_call: usize,
    per_case: usize,
    handed_out: usize,
}

/// What [`Harness::advance`] did: fired the machine's timers, or handed
/// the host the earliest of its own work.
#[derive(Debug)]
pub(crate) enum Next<W> {
    Timer(Instant),
    Work(W),
}

impl<M: Machine, W> Harness<M, W> {
    /// A harness whose clock starts at `now`. Its bounds are loose (a
    /// million actions per call) until [`Harness::bounded`] tightens them.
    pub(crate) fn new(machine: M, now: Instant) -> Self {
        Harness {
            machine,
            now,
            work: BTreeMap::new(),
            seq: 0,
            per_call: PER_CALL,
            per_case: usize::MAX,
            handed_out: 0,
        }
    }

    /// At most `per_call` actions from one call, `per_case` in all.
    pub(crate) fn bounded(mut self, per_call: usize, per_case: usize) -> Self {
        (self.per_call, self.per_case) = (per_call, per_case);
        self
    }

    /// Every pending action in order, or what broke a bound.
    pub(crate) fn try_drain(&mut self) -> Result<Vec<M::Action>, Broken> {
        let actions = drain_within(&mut self.machine, self.per_call)?;
        self.handed_out += actions.len();
        if self.handed_out > self.per_case {
            return Err(format!("more than {} actions in one case", self.per_case));
        }
        Ok(actions)
    }

    /// Every pending action in order; a broken bound fails the test.
    pub(crate) fn drain(&mut self) -> Vec<M::Action> {
        self.try_drain().unwrap_or_else(|broken| panic!("{broken}"))
    }

    /// Moves the host's clock to `now`, even back, and fires what is due.
    pub(crate) fn at(&mut self, now: Instant) {
        self.now = now;
        self.machine.handle_timeout(now);
    }

    /// Keeps `work` until `at`, for [`Harness::advance`] to hand back.
    pub(crate) fn schedule(&mut self, at: Instant, work: W) {
        self.seq += 1;
        self.work.insert((at, self.seq), work);
    }

    /// Drops the scheduled work `keep` refuses.
    pub(crate) fn unschedule(&mut self, mut keep: impl FnMut(&W) -> bool) {
        self.work.retain(|_, work| keep(work));
    }

    /// Whether the host has scheduled work left.
    pub(crate) fn has_work(&self) -> bool {
        !self.work.is_empty()
    }

    /// Moves time to the earliest of the machine's next timer and the
    /// host's next work: fires the timer (a timer wins a tie), or takes the
    /// work out and hands it back. Time never moves back here. `None` when
    /// nothing is left to happen.
    pub(crate) fn advance(&mut self) -> Option<Next<W>> {
        let work_at = self.work.keys().next().map(|&(at, _)| at);
        match (self.machine.poll_timeout(), work_at) {
            (None, None) => None,
            (Some(timer), work) if work.is_none_or(|at| timer <= at) => {
                self.at(self.now.max(timer));
                Some(Next::Timer(timer))
            }
            _ => {
                let ((at, _), work) = self.work.pop_first()?;
                self.now = self.now.max(at);
                Some(Next::Work(work))
            }
        }
    }
}
