//! A schedule through a simulated day, under each overlap policy.
//!
//! A report runs every 15 minutes and takes 5 to 40 minutes (drawn from a
//! seed), so runs often overlap the next fire. The host is down from
//! 03:00 to 05:00; the catch-up window is 30 minutes, so after the restart
//! only the fires of the last half hour start. The same day runs under
//! each [`OverlapPolicy`], and a line per policy shows what became of the
//! 97 fires (00:00 to 24:00 inclusive). The example checks each policy's promise and exits non-zero
//! if one was broken.
//!
//! `cargo run --release --features schedule --example schedule_day`

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use taskweave::Instant;
use taskweave::schedule::{
    OverlapPolicy, RunKey, ScheduleAction, ScheduleError, ScheduleSpec, Schedules,
};

#[path = "support/checks.rs"]
mod checks;

const MINUTE: u64 = 60;
const DAY: u64 = 24 * 60 * MINUTE;
/// The host is down over this range of seconds: no wake, no report.
const DOWN: (u64, u64) = (3 * 60 * MINUTE, 5 * 60 * MINUTE);

/// What one policy did over the day.
struct Day {
    started: u64,
    skipped: u64,
    missed: u64,
    cancelled: u64,
    /// Fires still waiting at the end.
    waiting: u64,
    /// The most runs going at once.
    most_going: usize,
    /// The longest a start came after its fire.
    longest_wait: Duration,
    /// Starts of fires during the downtime.
    started_while_down: u64,
}

/// Run times from a seed: 5 to 40 minutes.
struct RunTimes(u64);

impl RunTimes {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (5 + (self.0 >> 33) % 36) * MINUTE
    }
}

fn day(overlap: OverlapPolicy) -> Result<Day, ScheduleError> {
    let spec = ScheduleSpec::every(Duration::from_secs(15 * MINUTE))
        .overlap(overlap)
        .catch_up(Duration::from_secs(30 * MINUTE))
        .jitter(Duration::from_secs(20))
        .build()?;
    let mut schedules = Schedules::new(42);
    schedules.add("report", spec, Instant::ZERO)?;
    let mut times = RunTimes(7);
    // Runs going, by the second they end.
    let mut ends: BTreeMap<(u64, Instant), RunKey> = BTreeMap::new();
    let mut result = Day {
        started: 0,
        skipped: 0,
        missed: 0,
        cancelled: 0,
        waiting: 0,
        most_going: 0,
        longest_wait: Duration::ZERO,
        started_while_down: 0,
    };
    // The host wakes every minute, except while it is down, until ten
    // minutes past midnight (the fire at 24:00 is due by then).
    for now in (0..=DAY + 10 * MINUTE).step_by(MINUTE as usize) {
        if (DOWN.0..DOWN.1).contains(&now) {
            continue;
        }
        let at = Instant::from_secs(now);
        while let Some((&(end, fire), _)) = ends.iter().next() {
            if end > now {
                break;
            }
            if let Some(key) = ends.remove(&(end, fire)) {
                schedules.run_ended(&key, at)?;
            }
        }
        schedules.handle_timeout(at);
        while let Some(action) = schedules.poll_action() {
            match action {
                ScheduleAction::Start { key, .. } => {
                    let fire = key.fire.as_nanos() / 1_000_000_000;
                    result.longest_wait = result
                        .longest_wait
                        .max(Duration::from_secs(now.saturating_sub(fire)));
                    if (DOWN.0..DOWN.1).contains(&fire) {
                        result.started_while_down += 1;
                    }
                    ends.insert((now + times.next(), key.fire), key);
                }
                ScheduleAction::Cancel { key } => {
                    // Cancelled: it ends at the next wake.
                    ends.retain(|_, going| *going != key);
                    ends.insert((now, key.fire), key);
                }
            }
        }
        result.most_going = result.most_going.max(ends.len());
    }
    let counts = schedules.counts("report").unwrap_or_default();
    result.started = counts.started;
    result.skipped = counts.skipped;
    result.missed = counts.missed;
    result.cancelled = counts.cancelled;
    result.waiting = schedules.buffered("report").len() as u64;
    Ok(result)
}

fn main() -> Result<ExitCode, ScheduleError> {
    println!("every 15 min, runs of 5-40 min, host down 03:00-05:00, catch-up 30 min\n");
    println!(
        "{:<12} {:>7} {:>7} {:>6} {:>9} {:>7} {:>10} {:>12}",
        "policy",
        "started",
        "skipped",
        "missed",
        "cancelled",
        "waiting",
        "most going",
        "longest wait"
    );
    let mut checks = Vec::new();
    for overlap in [
        OverlapPolicy::Skip,
        OverlapPolicy::BufferOne,
        OverlapPolicy::BufferAll,
        OverlapPolicy::CancelOther,
        OverlapPolicy::AllowAll,
    ] {
        let d = day(overlap)?;
        println!(
            "{:<12} {:>7} {:>7} {:>6} {:>9} {:>7} {:>10} {:>10} s",
            format!("{overlap:?}"),
            d.started,
            d.skipped,
            d.missed,
            d.cancelled,
            d.waiting,
            d.most_going,
            d.longest_wait.as_secs()
        );
        // 97 fires from 00:00 to 24:00 inclusive; those from 03:00 to
        // 04:15 fall before the window when the host is back at 05:00
        // (04:30, 04:45 and 05:00 are within it).
        let accounted = d.started + d.skipped + d.missed + d.waiting;
        checks.push((
            format!("{overlap:?}: each of the 97 fires is started, skipped, missed or waiting"),
            accounted == 97,
        ));
        checks.push((
            format!("{overlap:?}: the 6 fires from 03:00 to 04:15 are missed, no more"),
            d.missed == 6 && d.started_while_down <= 2,
        ));
        let kept = match overlap {
            OverlapPolicy::AllowAll => d.skipped == 0 && d.most_going > 1,
            OverlapPolicy::CancelOther => d.most_going <= 1 && d.cancelled > 0,
            OverlapPolicy::Skip | OverlapPolicy::BufferOne | OverlapPolicy::BufferAll => {
                d.most_going <= 1
            }
        };
        checks.push((format!("{overlap:?}: keeps its promise"), kept));
    }
    Ok(if checks::report(&checks) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
