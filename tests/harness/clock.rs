//! The host's clock as the properties of untrusted input move it.

use std::time::Duration;

use proptest::prelude::*;
use taskweave::Instant;

/// One move of a host's clock. A host's clock may step back or jump to the
/// end of time; the machines must take either as no time passing or as
/// time passing, never as a reason to panic or loop.
#[derive(Clone, Debug)]
pub(crate) enum Clock {
    Forward(Duration),
    Back(Duration),
    Same,
    /// This many nanoseconds before [`Instant::MAX`].
    NearMax(u64),
    Max,
    /// To the machine's next timer (or nowhere, without one).
    ToTimer,
}

impl Clock {
    /// Where this move takes a clock at `now`, given the machine's next
    /// timer.
    pub(crate) fn apply(&self, now: Instant, timer: Option<Instant>) -> Instant {
        match *self {
            Clock::Forward(by) => now.saturating_add(by),
            Clock::Back(by) => Instant::from_nanos(
                now.as_nanos()
                    .saturating_sub(u64::try_from(by.as_nanos()).unwrap_or(u64::MAX)),
            ),
            Clock::Same => now,
            Clock::NearMax(before) => Instant::from_nanos(u64::MAX - before),
            Clock::Max => Instant::MAX,
            Clock::ToTimer => timer.unwrap_or(now),
        }
    }
}

/// Clock moves: forward up to `forward`, back up to `back`, now and then
/// the same instant, near or at the end of time, and often to the
/// machine's next timer.
pub(crate) fn clock(forward: Duration, back: Duration) -> impl Strategy<Value = Clock> {
    let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    prop_oneof![
        4 => (1..nanos(forward)).prop_map(|n| Clock::Forward(Duration::from_nanos(n))),
        2 => (1..nanos(back)).prop_map(|n| Clock::Back(Duration::from_nanos(n))),
        1 => Just(Clock::Same),
        1 => (0u64..65_536).prop_map(Clock::NearMax),
        1 => Just(Clock::Max),
        3 => Just(Clock::ToTimer),
    ]
}
