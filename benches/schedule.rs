//! Cost of a schedule's fire among many, against the bare timer it is
//! judged by, measured in the same run:
//!
//! * `schedule/bare_timer`: a `BTreeSet<(u64, u64)>` of 10,000 timers,
//!   one due per second; per fire, the first is popped and filed again a
//!   period later — the least any host keeping 10,000 periodic timers does.
//! * `schedule/fire`: [`Schedules`] with 10,000 schedules every 10,000 s,
//!   one due per second (phases 0, 1, 2 … s); per fire,
//!   `handle_timeout` at the next due second, `poll_action` of its start,
//!   and `run_ended` of that run.
//! * `schedule/cron_fire`: the same with 10,000 cron schedules read in
//!   UTC, each daily at its own second (`S M H * * *` for seconds 0 to
//!   9,999 of the day), one due per second: each fire adds the cron
//!   search for the schedule's next fire.
//!
//! Throughput is per fire. Run with `cargo bench --features schedule
//! --bench schedule`.

#[path = "workloads/config.rs"]
mod bench_config;
use bench_config::config;

use std::collections::BTreeSet;
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use taskweave::Instant;
use taskweave::schedule::{ScheduleAction, ScheduleSpec, Schedules};

const SCHEDULES: u64 = 10_000;

fn fire(c: &mut Criterion) {
    let mut group = c.benchmark_group("schedule");
    group.throughput(Throughput::Elements(1));
    let mut timers: BTreeSet<(u64, u64)> = (0..SCHEDULES).map(|i| (i, i)).collect();
    group.bench_function("bare_timer", |b| {
        b.iter(|| {
            if let Some((due, id)) = timers.pop_first() {
                timers.insert((black_box(due) + SCHEDULES, id));
            }
        })
    });

    let mut every = Schedules::new(1);
    for i in 0..SCHEDULES {
        let spec = ScheduleSpec::every(Duration::from_secs(SCHEDULES))
            .phase(Duration::from_secs(i))
            .build()
            .expect("a valid spec");
        every
            .add(format!("s{i:05}"), spec, Instant::ZERO)
            .expect("ids are unique");
    }
    group.bench_function("fire", |b| b.iter(|| fire_next(&mut every)));

    let mut cron = Schedules::new(1);
    for i in 0..SCHEDULES {
        let pattern = format!("{} {} {} * * *", i % 60, i / 60 % 60, i / 3600);
        let spec = ScheduleSpec::cron(pattern).build().expect("a valid spec");
        cron.add(format!("s{i:05}"), spec, Instant::ZERO)
            .expect("ids are unique");
    }
    group.bench_function("cron_fire", |b| b.iter(|| fire_next(&mut cron)));
    group.finish();
}

/// Wakes `schedules` at its next due instant, and ends at once the run
/// each start names.
fn fire_next(schedules: &mut Schedules) {
    let now = schedules.poll_timeout().unwrap_or(Instant::ZERO);
    schedules.handle_timeout(now);
    while let Some(action) = schedules.poll_action() {
        if let ScheduleAction::Start { key, .. } = action {
            let ended = schedules.run_ended(black_box(&key), now);
            debug_assert!(ended.is_ok());
        }
    }
}

criterion_group! {
    name = schedule;
    config = config(20);
    targets = fire
}
criterion_main!(schedule);
