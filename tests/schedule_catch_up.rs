//! Bounded catch-up: a host's clock that leaps ahead — a year, or to
//! `Instant::MAX`, which the clock rules call "never" — costs one wake of
//! at most the catch-up window's fires, and the fires missed are counted
//! (all of them by a schedule every period; by a cron schedule, up to
//! `MAX_STEPS_PER_WAKE`, with the jump over the rest counted in `jumps`).
//!
//! Case count: `PROPTEST_CASES` (default 256).

#![cfg(feature = "schedule")]

use std::time::Duration;

use proptest::prelude::*;
use taskweave::Instant;
use taskweave::schedule::{
    MAX_CATCH_UP, MAX_FIRES_PER_WAKE, MAX_STEPS_PER_WAKE, OverlapPolicy, ScheduleCounts,
    ScheduleSpec, ScheduleSpecBuilder, Schedules,
};

const YEAR: u64 = 365 * 86_400;

/// More wakes than any catch-up below may take: the loop gives up there
/// rather than run for hours when a wake handles one missed fire.
const WAKE_CAP: u64 = 100;

fn secs(s: u64) -> Instant {
    Instant::from_secs(s)
}

/// Schedules with `job` (runs going at once allowed, so every fire
/// handled starts) added at `added`.
fn added(spec: ScheduleSpecBuilder, added: Instant) -> Schedules {
    let spec = spec.overlap(OverlapPolicy::AllowAll).build().unwrap();
    let mut s = Schedules::new(3);
    s.add("job", spec, added).unwrap();
    s
}

/// The host's loop at one `now`: `handle_timeout` while `poll_timeout`
/// says a schedule is due, at most `WAKE_CAP` times. Returns the wakes.
fn wake_until_idle(s: &mut Schedules, now: Instant) -> u64 {
    let mut wakes = 0;
    while wakes < WAKE_CAP && s.poll_timeout().is_some_and(|due| due.fires_at(now)) {
        s.handle_timeout(now);
        wakes += 1;
    }
    while s.poll_action().is_some() {}
    wakes
}

/// The fires of `job` handled: started, skipped or waiting.
fn handled(s: &Schedules, counts: ScheduleCounts) -> u64 {
    counts.started + counts.skipped + s.buffered("job").len() as u64
}

#[test]
fn a_cron_schedule_a_year_behind_catches_up_in_one_wake_of_its_window() {
    // Every second, the default window of a minute.
    let mut s = added(ScheduleSpec::cron("* * * * * *"), secs(0));
    let now = secs(YEAR);
    assert_eq!(wake_until_idle(&mut s, now), 1);
    let counts = s.counts("job").unwrap();
    // The fires of the last minute start (61: both ends included); the
    // budget's worth of older ones is counted as missed, and the jump over
    // the rest is counted.
    assert_eq!(counts.started, 61);
    assert_eq!(counts.missed, MAX_STEPS_PER_WAKE);
    assert_eq!(counts.jumps, 1);
    assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(1)));
    #[cfg(feature = "serde")]
    {
        let stored = serde_json::to_string(&s).unwrap();
        assert!(stored.contains(r#""jumps":1"#), "{stored}");
        assert_eq!(serde_json::from_str::<Schedules>(&stored).unwrap(), s);
    }
    // The next second is an ordinary wake.
    assert_eq!(wake_until_idle(&mut s, secs(YEAR + 1)), 1);
    let counts = s.counts("job").unwrap();
    assert_eq!((counts.started, counts.jumps), (62, 1));
}

#[test]
fn a_clock_at_never_costs_one_wake_and_ends_the_timetable() {
    // The last whole second before Instant::MAX (18,446,744,073.7 s) is
    // the last fire; the window holds the 60 before and at it.
    let last = 18_446_744_073;
    for (spec, fires) in [
        (ScheduleSpec::cron("* * * * * *"), None),
        (ScheduleSpec::every(Duration::from_secs(1)), Some(last + 1)),
    ] {
        let mut s = added(spec, secs(0));
        assert_eq!(wake_until_idle(&mut s, Instant::MAX), 1);
        let counts = s.counts("job").unwrap();
        assert_eq!(counts.started, 60);
        assert_eq!(s.poll_timeout(), None, "no fire after the last one");
        match fires {
            // A period counts every fire it missed, in one step.
            Some(fires) => {
                assert_eq!(counts.jumps, 0);
                assert_eq!(counts.missed + counts.started, fires);
            }
            None => {
                assert_eq!(counts.jumps, 1);
                assert_eq!(counts.missed, MAX_STEPS_PER_WAKE);
            }
        }
    }
}

#[test]
fn a_window_wider_than_the_per_wake_limit_starts_the_newest_in_one_wake() {
    let spec = ScheduleSpec::cron("* * * * * *").catch_up(MAX_CATCH_UP);
    for now in [secs(2 * YEAR), Instant::MAX] {
        let mut s = added(spec.clone(), secs(0));
        assert_eq!(wake_until_idle(&mut s, now), 1);
        let counts = s.counts("job").unwrap();
        assert_eq!(counts.started, MAX_FIRES_PER_WAKE);
        assert_eq!((counts.missed, counts.jumps), (MAX_STEPS_PER_WAKE, 1));
    }
}

// ---- properties ------------------------------------------------------

fn spec() -> impl Strategy<Value = ScheduleSpec> {
    let every = (1u64..7_200, 0u64..7_200).prop_map(|(period, phase)| {
        ScheduleSpec::every(Duration::from_secs(period)).phase(Duration::from_secs(phase % period))
    });
    let cron = prop_oneof![
        Just("* * * * * *".to_owned()),
        (2u64..60).prop_map(|k| format!("*/{k} * * * * *")),
        (2u64..60).prop_map(|k| format!("0 */{k} * * * *")),
        Just("30 9 * * MON-FRI".to_owned()),
    ]
    .prop_map(ScheduleSpec::cron);
    let window = prop_oneof![
        (0u64..300).prop_map(Duration::from_secs),
        (0u64..YEAR).prop_map(Duration::from_secs),
        Just(MAX_CATCH_UP),
    ];
    (prop_oneof![every, cron], window, 0u64..100).prop_map(|(builder, window, jitter)| {
        // A jitter below the least time between fires (a second for cron).
        let least = builder
            .clone()
            .build()
            .unwrap()
            .period()
            .unwrap_or(Duration::from_secs(1));
        builder
            .catch_up(window)
            .jitter(least * jitter as u32 / 100)
            .overlap(OverlapPolicy::AllowAll)
            .build()
            .unwrap()
    })
}

/// How far the clock leaps: a little, up to years, or to "never".
fn leap() -> impl Strategy<Value = Option<u64>> {
    prop_oneof![
        (1u64..3_600).prop_map(Some),
        (1u64..100 * YEAR).prop_map(Some),
        Just(None),
    ]
}

/// The fires of `job` due by `now` from its first at or after `added`,
/// counting at most `cap` (one search each).
fn due_fires(s: &Schedules, added: Instant, now: Instant, cap: u64) -> u64 {
    let spec = s.spec("job").unwrap();
    let mut fire = spec.fire_at_or_after(added);
    let mut count = 0;
    while count < cap && s.due_at("job", fire).is_some_and(|due| due.fires_at(now)) {
        count += 1;
        fire = spec.fire_at_or_after(fire + Duration::from_nanos(1));
    }
    count
}

/// The same for a schedule every `period`, in `O(1)`: the fires up to
/// `now`, less the last when its jitter puts it after `now` (a jitter is
/// shorter than the period, so only the last can be).
fn due_every(s: &Schedules, period: Duration, added: Instant, now: Instant) -> u64 {
    let first = s.spec("job").unwrap().fire_at_or_after(added);
    if first > now || first.is_never() {
        return 0;
    }
    let period = period.as_nanos() as u64;
    let last = (now.as_nanos() - first.as_nanos()) / period;
    let last_fire = Instant::from_nanos(first.as_nanos() + last * period);
    let pending = !s.due_at("job", last_fire).unwrap().fires_at(now);
    last + 1 - u64::from(pending)
}

proptest! {
    /// Whatever the leap, one wake leaves the schedule not due at `now`,
    /// handles at most the window's fires and the per-wake limit, and
    /// accounts for every fire due: exactly, unless a cron schedule
    /// jumped over fires it did not count.
    #[test]
    fn a_leap_of_any_size_costs_one_bounded_wake(
        spec in spec(), start in 0u64..2_000_000_000, leap in leap(),
    ) {
        let added_at = secs(start);
        let now = leap.map_or(Instant::MAX, |leap| added_at + Duration::from_secs(leap));
        let mut s = Schedules::new(5);
        s.add("job", spec.clone(), added_at).unwrap();
        prop_assert!(wake_until_idle(&mut s, now) <= 1);
        prop_assert!(s.poll_timeout().is_none_or(|due| !due.fires_at(now)));
        let counts = s.counts("job").unwrap();
        let handled = handled(&s, counts);
        let least = spec.period().unwrap_or(Duration::from_secs(1));
        // A fire is handled when its due instant (jitter included) is in
        // the window: the fire itself at most a jitter earlier.
        let window_fires = (spec.catch_up() + spec.jitter()).as_nanos() / least.as_nanos() + 1;
        prop_assert!(handled <= MAX_FIRES_PER_WAKE.min(window_fires as u64), "{counts:?}");
        prop_assert!(counts.jumps <= 1);
        let accounted = handled + counts.missed;
        match spec.period() {
            Some(period) => {
                prop_assert_eq!(counts.jumps, 0);
                prop_assert_eq!(accounted, due_every(&s, period, added_at, now));
            }
            None if counts.jumps == 0 => {
                prop_assert_eq!(accounted, due_fires(&s, added_at, now, accounted + 1));
            }
            None => {
                prop_assert!(counts.missed >= MAX_STEPS_PER_WAKE, "{counts:?}");
                prop_assert!(due_fires(&s, added_at, now, accounted + 1) > accounted);
            }
        }
    }
}
