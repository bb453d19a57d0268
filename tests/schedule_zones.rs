//! Cron schedules on a time zone's wall clock (feature `time-zones`): as
//! a property over random POSIX TZ rules and years, a daily job at a time
//! the spring-forward change skips fires once that day, at the first
//! instant after the gap, and a daily job at a time the fall-back change
//! repeats fires once that day, the first time; every other day each
//! fires once, at its time. Rules from untrusted text never panic. The
//! offsets of ten IANA zones' rules agree with the tz database's tables
//! of transitions from 2024 to 2037.
//!
//! Case count: `PROPTEST_CASES` (default 256).

#![cfg(all(feature = "time-zones", feature = "serde"))]

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use taskweave::Instant;
use taskweave::schedule::{
    OverlapPolicy, ScheduleAction, ScheduleSpec, Schedules, TimeZone, WallClock,
};

mod corrupt;

/// The fires of a daily cron job at `hour:minute` on `zone`'s clock from
/// `from` to `to`, as the host of a [`Schedules`] sees them: each run ends
/// at once.
fn fires(zone: &TimeZone, hour: u32, minute: u32, from: Instant, to: Instant) -> Vec<Instant> {
    let spec = ScheduleSpec::cron(format!("0 {minute} {hour} * * *"))
        .zone(zone.clone())
        .overlap(OverlapPolicy::AllowAll)
        .build()
        .unwrap();
    let mut schedules = Schedules::new(1);
    schedules.add("daily", spec, from).unwrap();
    let mut fires = Vec::new();
    while let Some(now) = schedules.poll_timeout().filter(|&at| at <= to) {
        schedules.handle_timeout(now);
        while let Some(action) = schedules.poll_action() {
            if let ScheduleAction::Start { key, .. } = action {
                fires.push(key.fire);
                schedules.run_ended(&key, now).unwrap();
            }
        }
    }
    fires
}

/// The fires per local date.
fn per_day(zone: &TimeZone, fires: &[Instant]) -> BTreeMap<(i64, u32, u32), Vec<WallClock>> {
    let mut days: BTreeMap<_, Vec<_>> = BTreeMap::new();
    for &fire in fires {
        let clock = zone.wall_clock(fire);
        days.entry((clock.year, clock.month, clock.day))
            .or_default()
            .push(clock);
    }
    days
}

/// `at` less `seconds`.
fn before(at: Instant, seconds: u64) -> Instant {
    Instant::from_nanos(at.as_nanos() - seconds * 1_000_000_000)
}

fn secs(s: i64) -> Instant {
    Instant::from_secs(u64::try_from(s).unwrap())
}

/// `h[:mm]` of a number of minutes, with the sign POSIX puts on offsets.
fn posix_time(minutes: i64) -> String {
    let sign = if minutes < 0 { "-" } else { "" };
    let m = minutes.abs();
    format!("{sign}{}:{:02}", m / 60, m % 60)
}

/// A zone with daylight saving time: its rule, standard offset (minutes
/// east), the extra minutes of summer time, and its two transitions as
/// (month, week, weekday, minutes after midnight).
#[derive(Clone, Debug)]
struct Zone {
    std_east: i64,
    extra: i64,
    start: (u32, u32, u32, i64),
    end: (u32, u32, u32, i64),
}

impl Zone {
    fn rule(&self) -> String {
        let (sm, sw, sd, st) = self.start;
        let (em, ew, ed, et) = self.end;
        format!(
            "<STD>{}<DST>{},M{sm}.{sw}.{sd}/{},M{em}.{ew}.{ed}/{}",
            posix_time(-self.std_east),
            posix_time(-(self.std_east + self.extra)),
            posix_time(st),
            posix_time(et),
        )
    }
}

fn zone() -> impl Strategy<Value = Zone> {
    (
        -48i64..=56,
        prop_oneof![Just(30i64), Just(60), Just(120)],
        (1u32..=12, 1u32..=5, 0u32..=6, 0i64..=4 * 60),
        (2u32..=10, 1u32..=5, 0u32..=6, 2 * 60i64..=4 * 60),
    )
        .prop_map(|(quarters, extra, start, (gap, ew, ed, et))| Zone {
            std_east: quarters * 15,
            extra,
            start,
            // At least two months from the start, so the days around one
            // change do not reach the other.
            end: ((start.0 + gap - 1) % 12 + 1, ew, ed, et),
        })
}

/// The first instant from `near` on at which `zone`'s clock changes to
/// `offset_east` minutes ahead of UTC: a day at a time for at most 400
/// days (the rules change clocks months apart), then an hour, then a
/// minute at a time (they change clocks on whole minutes).
fn change_to(zone: &TimeZone, offset_east: i64, near: Instant) -> Instant {
    let is_on = |at: Instant| i64::from(zone.offset_at(at)) == offset_east * 60;
    let mut at = near;
    for _ in 0..400 {
        let day = at + Duration::from_secs(86_400);
        if !is_on(at) && is_on(day) {
            for step in [3600, 60] {
                while !is_on(at + Duration::from_secs(step)) {
                    at += Duration::from_secs(step);
                }
            }
            return at + Duration::from_secs(60);
        }
        at = day;
    }
    panic!("no change to {offset_east} min within 400 days");
}

proptest! {
    #![proptest_config(corrupt::config(256))]

    /// A daily job in the spring-forward gap fires once that day, at the
    /// change; a fixed-time job in the repeated stretch of the fall-back
    /// day fires once, the first time; every other day each fires once,
    /// at its time.
    #[test]
    fn daily_jobs_fire_once_on_the_days_the_clock_changes(
        rule in zone(), year in 2000i64..2400, into_gap in 0.0f64..1.0, into_repeat in 0.0f64..1.0,
    ) {
        let zone = TimeZone::posix(&rule.rule()).unwrap();
        // Where the year starts (on the standard clock), and each change.
        let jan_1 = secs((year - 1970) * 365 * 86_400 + ((year - 1969) / 4) * 86_400);
        let spring = change_to(&zone, rule.std_east + rule.extra, jan_1);
        let fall = change_to(&zone, rule.std_east, spring);

        // Spring: the clock jumps from the change's local time; a job
        // inside the skipped stretch runs at the change itself.
        let skipped_from = (zone.wall_clock(before(spring, 1)).second_of_day + 1) % 86_400;
        let gap_job = skipped_from + (into_gap * (rule.extra * 60) as f64) as u32 / 60 * 60;
        prop_assume!(gap_job < 86_400);
        let (hour, minute) = (gap_job / 3600, gap_job % 3600 / 60);
        let window = (before(spring, 3 * 86_400), spring + Duration::from_secs(3 * 86_400));
        let got = fires(&zone, hour, minute, window.0, window.1);
        let days = per_day(&zone, &got);
        prop_assert!(days.values().all(|f| f.len() == 1), "{}: {:?}", rule.rule(), days);
        prop_assert!(got.contains(&spring), "{}: {:?} lacks the change {:?}", rule.rule(), got, spring);
        prop_assert!(got.iter().filter(|&&f| f != spring).all(|&f| zone.wall_clock(f).second_of_day == gap_job));
        prop_assert!(days.len() >= 5);

        // Fall: the clock goes back by `extra`; a job in the stretch
        // shown twice runs the first time only.
        let repeated_to = zone.wall_clock(before(fall, 1)).second_of_day + 1;
        let stretch = (rule.extra * 60) as u32;
        prop_assume!(repeated_to >= stretch);
        let repeat_job = repeated_to - stretch + (into_repeat * f64::from(stretch)) as u32 / 60 * 60;
        let (hour, minute) = (repeat_job / 3600, repeat_job % 3600 / 60);
        let window = (before(fall, 3 * 86_400), fall + Duration::from_secs(3 * 86_400));
        let got = fires(&zone, hour, minute, window.0, window.1);
        let days = per_day(&zone, &got);
        prop_assert!(days.values().all(|f| f.len() == 1), "{}: {:?}", rule.rule(), days);
        prop_assert!(got.iter().all(|&f| zone.wall_clock(f).second_of_day == repeat_job));
        let first_pass = got.iter().find(|&&f| f < fall && f + Duration::from_secs(u64::from(stretch)) >= fall);
        prop_assert!(first_pass.is_some(), "{}: {:?} fires not before the change {:?}", rule.rule(), got, fall);
        prop_assert!(days.len() >= 5);
    }

    /// Any text, or a valid rule with one byte changed, is a zone or a
    /// typed refusal; a zone read from it answers offsets and cron
    /// searches without a panic or a hang, and a daily job on it keeps
    /// firing.
    #[test]
    fn rules_from_untrusted_text_are_refused_or_work(
        rule in zone(), at in any::<prop::sample::Index>(), byte in any::<u8>(), text in ".{0,40}",
    ) {
        let mut mutated = rule.rule().into_bytes();
        let i = at.index(mutated.len());
        mutated[i] = byte;
        for candidate in [String::from_utf8_lossy(&mutated).into_owned(), text] {
            if let Ok(zone) = TimeZone::posix(&candidate) {
                corrupt::watchdog(10, move || {
                    let _ = zone.offset_at(Instant::MAX);
                    let spec = ScheduleSpec::cron("30 2 * * *").zone(zone).build().unwrap();
                    let mut at = Instant::ZERO;
                    // A daily job never stops firing: every accepted rule
                    // moves clocks by at most the two hours croner handles.
                    for _ in 0..50 {
                        at = spec.fire_at_or_after(at + Duration::from_secs(1));
                        assert!(!at.is_never(), "a daily job stopped on {}", spec.zone().unwrap());
                    }
                });
            }
        }
    }
}

#[test]
fn central_europe_and_the_us_east_coast() {
    let paris = TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap();
    // 2025-03-29 00:00 UTC to 2025-04-01: 02:30 does not exist on March
    // 30th; the job runs at 03:00 CEST (01:00 UTC) that day.
    let from = secs(1_743_206_400);
    let got = fires(&paris, 2, 30, from, from + Duration::from_secs(3 * 86_400));
    let shown: Vec<String> = got
        .iter()
        .map(|&f| paris.wall_clock(f).to_string())
        .collect();
    assert_eq!(
        shown,
        [
            "2025-03-29 02:30:00",
            "2025-03-30 03:00:00",
            "2025-03-31 02:30:00"
        ]
    );
    // New York, 2025-11-02: 01:30 happens twice; the job runs at the
    // first, 05:30 UTC.
    let new_york = TimeZone::posix("EST5EDT,M3.2.0,M11.1.0").unwrap();
    let from = secs(1_761_955_200); // 2025-11-01 00:00 UTC
    let got = fires(
        &new_york,
        1,
        30,
        from,
        from + Duration::from_secs(3 * 86_400),
    );
    assert_eq!(got[1], secs(1_762_061_400));
    assert_eq!(got.len(), 3);
}

/// Every change of offset from 2024 to 2037 of ten IANA zones, as
/// Python's zoneinfo reads the tzfiles' tables of transitions
/// (`tests/fixtures/zone_transitions.py`), against the POSIX rule of each
/// tzfile's last line: the offset before, at and between the changes.
#[test]
fn offsets_agree_with_the_tz_database_from_2024_to_2037() {
    let data: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/zone_transitions.json")).unwrap();
    let number = |v: &serde_json::Value| v.as_i64().unwrap();
    let (from, to) = (number(&data["from"]), number(&data["to"]));
    let zones = data["zones"].as_array().unwrap();
    assert_eq!(zones.len(), 10);
    for zone in zones {
        let name = zone["zone"].as_str().unwrap();
        let tz = TimeZone::posix(zone["rule"].as_str().unwrap()).unwrap();
        let offset = |at: i64| i64::from(tz.offset_at(secs(at)));
        let mut changes: Vec<(i64, i64)> = zone["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (number(&c[0]), number(&c[1])))
            .collect();
        changes.push((to, 0));
        let (mut since, mut expected) = (from, number(&zone["first"]));
        for (at, after) in changes {
            for probe in [since, (since + at) / 2, at - 1] {
                assert_eq!(offset(probe), expected, "{name} at {probe}");
            }
            (since, expected) = (at, after);
        }
    }
}
