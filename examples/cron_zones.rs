//! Cron schedules on a time zone's wall clock, through a year with two
//! changes of clock.
//!
//! Three schedules run on Paris time (`CET-1CEST,M3.5.0,M10.5.0/3`, the
//! last line of `/usr/share/zoneinfo/Europe/Paris`) through 2025:
//!
//! - a nightly job at 02:30, a time the spring change skips (on March
//!   30th the clock jumps from 02:00 to 03:00) and the autumn change shows
//!   twice (on October 26th it goes back from 03:00 to 02:00);
//! - an hourly job at minute 0;
//! - a stand-up at 09:30 on weekdays.
//!
//! The host's clock is the Unix time; the host wakes at each
//! `poll_timeout` and each run ends at once. The example prints the fires
//! around each change and checks that the nightly job fires once every
//! day (at 03:00 on the spring day, at the first 02:30 on the autumn day),
//! that the hourly job fires 23 times on the short day and 25 on the long
//! one, and that the stand-up fires on the 261 weekdays of 2025 at 09:30
//! local time. It exits non-zero if a check fails.
//!
//! `cargo run --release --features time-zones --example cron_zones`

use std::collections::BTreeMap;
use std::process::ExitCode;

use taskweave::Instant;
use taskweave::schedule::{
    OverlapPolicy, ScheduleAction, ScheduleError, ScheduleSpec, Schedules, TimeZone,
};

#[path = "support/checks.rs"]
mod checks;

/// 2025 in Paris, in Unix seconds: from 2025-01-01 00:00 CET (2024-12-31
/// 23:00 UTC) to 2026-01-01 00:00 CET, excluded.
const YEAR: (u64, u64) = (1_735_686_000, 1_767_222_000);

/// Each schedule's fires over 2025, by local date (`YYYY-MM-DD`), as
/// local times (`HH:MM:SS`).
type Fires = BTreeMap<String, BTreeMap<String, Vec<String>>>;

fn run_year(zone: &TimeZone) -> Result<Fires, ScheduleError> {
    let mut schedules = Schedules::new(2025);
    for (id, pattern) in [
        ("nightly", "30 2 * * *"),
        ("hourly", "0 * * * *"),
        ("standup", "30 9 * * MON-FRI"),
    ] {
        let spec = ScheduleSpec::cron(pattern)
            .zone(zone.clone())
            .overlap(OverlapPolicy::AllowAll)
            .build()?;
        schedules.add(id, spec, Instant::from_secs(YEAR.0))?;
    }
    let mut fires = Fires::new();
    while let Some(now) = schedules
        .poll_timeout()
        .filter(|&at| at < Instant::from_secs(YEAR.1))
    {
        schedules.handle_timeout(now);
        while let Some(action) = schedules.poll_action() {
            if let ScheduleAction::Start { key, .. } = action {
                let local = zone.wall_clock(key.fire).to_string();
                let (date, time) = local.split_at(10);
                fires
                    .entry(key.schedule.clone())
                    .or_default()
                    .entry(date.to_owned())
                    .or_default()
                    .push(time.trim().to_owned());
                schedules.run_ended(&key, now)?;
            }
        }
    }
    Ok(fires)
}

fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let paris = TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3")?;
    let fires = run_year(&paris)?;
    let on = |id: &str, date: &str| fires[id].get(date).cloned().unwrap_or_default();

    println!("Paris time ({paris}), 2025\n");
    for date in [
        "2025-03-29",
        "2025-03-30",
        "2025-03-31",
        "2025-10-25",
        "2025-10-26",
        "2025-10-27",
    ] {
        println!(
            "{date}  nightly {:<10}  hourly {:>2} fires  stand-up {}",
            on("nightly", date).join(" "),
            on("hourly", date).len(),
            on("standup", date).join(" "),
        );
    }
    println!();

    let nightly = &fires["nightly"];
    let hourly = &fires["hourly"];
    let standup = &fires["standup"];
    let checks = [
        (
            "the nightly job fires once on each of the 365 days".to_owned(),
            nightly.len() == 365 && nightly.values().all(|f| f.len() == 1),
        ),
        (
            "on March 30th, when 02:30 does not exist, it fires at 03:00".to_owned(),
            on("nightly", "2025-03-30") == ["03:00:00"],
        ),
        (
            "every other day it fires at 02:30, October 26th included (once)".to_owned(),
            nightly
                .iter()
                .filter(|(date, _)| *date != "2025-03-30")
                .all(|(_, f)| f == &["02:30:00"]),
        ),
        (
            "the hourly job fires 23 times on March 30th and 25 on October 26th".to_owned(),
            on("hourly", "2025-03-30").len() == 23 && on("hourly", "2025-10-26").len() == 25,
        ),
        (
            "the hourly job fires 24 times on every other day".to_owned(),
            hourly
                .iter()
                .filter(|(date, _)| !["2025-03-30", "2025-10-26"].contains(&date.as_str()))
                .all(|(_, f)| f.len() == 24),
        ),
        (
            "the stand-up fires on the 261 weekdays, at 09:30".to_owned(),
            standup.len() == 261 && standup.values().all(|f| f == &["09:30:00"]),
        ),
    ];
    Ok(if checks::report(&checks) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
