//! Autoscale: a pool of agents that follows the dispatcher's scale hint
//! through a simulated day.
//!
//! The host watches one pool (`Dispatcher::watch_pool`), asks for its hint
//! every 15 simulated seconds, and starts or drains agents to match
//! `desired_agents`, as a Kubernetes autoscaler or a process supervisor
//! would. Tasks arrive at random (Poisson) at a rate that follows a working
//! day: quiet at night, a morning ramp, a lunchtime peak, an evening fall.
//! Each runs 2 s on an agent of 4 slots. Everything runs in virtual time,
//! so the day takes a few seconds.
//!
//! It prints one line per hour (the rate, the queue and the age of its
//! oldest task, the agents serving and the count the hint wants), then
//! checks that the pool kept up (the oldest queued task under a minute at
//! every hint after the first hour), that it never flapped (at most two
//! changes of direction in any hour), and that it shrank again at night.
//! It exits with status 1 if a check fails.
//!
//! Run with `cargo run --release --example autoscale`.

#[path = "support/checks.rs"]
mod checks;
#[path = "support/pool_host.rs"]
mod pool_host;

use std::time::Duration;

use pool_host::{Host, POLL, direction_changes};
use taskweave::scheduler::ScalePolicy;

/// Tasks per second at `hour` (0–24) of the day.
fn rate_at(hour: f64) -> f64 {
    let day = match hour {
        h if h < 7.0 => 0.0,
        h if h < 10.0 => (h - 7.0) / 3.0,
        h if h < 12.0 => 1.0,
        h if h < 14.0 => 1.6,
        h if h < 18.0 => 1.0,
        h if h < 21.0 => 1.0 - (h - 18.0) / 3.0,
        _ => 0.0,
    };
    2.0 + 48.0 * day
}

fn main() {
    let policy = ScalePolicy::builder()
        .slots_per_agent(pool_host::SLOTS)
        .agents(1, 100)
        .stabilisation(Duration::from_secs(300))
        .build()
        .expect("a valid policy");
    let mut host = Host::new(2026, Duration::from_secs(2), policy);
    let segment = Duration::from_secs(15 * 60);
    let (mut worst_flaps, mut worst_age) = (0, Duration::ZERO);
    let (mut night, mut peak) = (u32::MAX, 0);
    println!("hour  tasks/s  queued  oldest   agents  wants");
    for hour in 0..24 {
        let mut hours_hints = Vec::new();
        for quarter in 0..4 {
            let at = f64::from(hour) + f64::from(quarter) / 4.0;
            hours_hints.extend(host.run_for(segment, rate_at(at + 0.125)));
        }
        worst_flaps = worst_flaps.max(direction_changes(&hours_hints));
        if hour > 0 {
            let oldest = hours_hints.iter().filter_map(|h| h.oldest_queued).max();
            worst_age = worst_age.max(oldest.unwrap_or_default());
        }
        let last = hours_hints.last().expect("four hints an hour at least");
        peak = peak.max(last.desired_agents);
        if hour == 23 {
            night = last.desired_agents;
        }
        println!(
            "{hour:>4}  {:>7.1}  {:>6}  {:>6.1}s  {:>6}  {:>5}",
            last.arrivals_per_second,
            last.queued,
            last.oldest_queued.unwrap_or_default().as_secs_f64(),
            last.agents,
            last.desired_agents,
        );
    }
    println!(
        "{} tasks over the day; a hint every {POLL:?}; peak {peak} agents, {night} at night\n",
        host.submitted
    );
    let passed = checks::report(&[
        (
            format!("the oldest queued task waited at most {worst_age:?} (under a minute)"),
            worst_age < Duration::from_secs(60),
        ),
        (
            format!("at most {worst_flaps} changes of direction in any hour (at most 2)"),
            worst_flaps <= 2,
        ),
        (
            format!("the pool shrank from {peak} agents at its peak to {night} at night"),
            night * 4 <= peak,
        ),
    ]);
    if !passed {
        std::process::exit(1);
    }
}
