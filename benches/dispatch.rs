//! Cost of the dispatcher's full task cycle — submit, take the `Assign`
//! action, report success — at 10, 100, 1,000 and 10,000 agents, plus the
//! bare data-structure baselines it is judged against, measured in the same
//! run:
//!
//! * `full_cycle/{n}`: one task per iteration through a pool kept half busy
//!   (two tasks in flight per agent on average, capacity 4). Each iteration
//!   submits a task, takes its `Assign`, and reports success for the oldest
//!   task in flight, so every report frees a slot on a different agent and
//!   the least-loaded index is really exercised.
//! * `full_cycle_idle/{n}`: the same on an idle pool, reporting the task just
//!   assigned (the shortest possible path).
//! * `full_cycle_batch/{n}`: 1,000 tasks per iteration with `submit_batch`,
//!   then every action drained and reported until the pool is idle again.
//! * `baseline/vecdeque_priority_push_pop`: four `VecDeque`s, push to a
//!   level, pop from the first non-empty one.
//! * `baseline/indexed_least_loaded_pick/1000`: a `BTreeSet<(load ratio, id)>`
//!   of 1,000 agents; pop the least loaded, reinsert it one task busier.
//! * `scale/full_cycle_plain/1000` and `scale/full_cycle_watched/1000`: the
//!   steady cycle at 1,000 agents, without and with a pool watched for
//!   scale hints (every agent, every task): what watching costs a cycle.
//! * `scale/hint/10000` and `scale/walk_live_tasks/10000`: one
//!   `scale_hint` over 10,000 queued tasks, against a bare walk over the
//!   same tasks through `iter_live_tasks` counting the queued ones.
//!
//! Agents are identical (capacity 4, no capabilities), tasks carry a `u64`
//! payload and no requirements. Virtual time advances 1 µs per task. Setup
//! (building the pool, filling it) is not measured. Run with
//! `cargo bench --bench dispatch`.

#[path = "workloads/config.rs"]
mod bench_config;
use bench_config::config;

use std::collections::{BTreeSet, VecDeque};
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use taskweave::agent::AgentProfile;
use taskweave::scheduler::{
    Action, AttemptOutcome, Dispatcher, DispatcherConfig, ScalePolicy, TaskReport, TaskSpec,
    TaskState,
};
use taskweave::{AgentId, AttemptToken, Instant, TaskId};

const SIZES: [usize; 4] = [10, 100, 1_000, 10_000];
const SEED: u64 = 0x7a5c_3a7e;
/// Slots per agent.
const CAPACITY: u32 = 4;
/// Tasks kept in flight per agent in the steady-state cycle (half the slots).
const IN_FLIGHT_PER_AGENT: usize = 2;
/// Tasks per iteration of the batched cycle.
const BATCH: usize = 1_000;
/// Entries of the least-loaded index baseline.
const INDEX_ENTRIES: usize = 1_000;
/// Virtual time per task.
const TICK_NANOS: u64 = 1_000;

/// A dispatcher with `n` idle agents of capacity [`CAPACITY`].
fn pool(n: usize) -> Dispatcher<u64> {
    let config = DispatcherConfig::builder()
        .seed(SEED)
        .build()
        .expect("valid config");
    let mut dispatcher = Dispatcher::new(config);
    let profile = AgentProfile::builder()
        .capacity(CAPACITY)
        .build()
        .expect("valid profile");
    for i in 0..n {
        dispatcher
            .register_agent(AgentId::new(i as u64), profile.clone(), Instant::ZERO)
            .expect("fresh id");
    }
    dispatcher
}

/// Submits one task and returns its assignment.
fn submit_and_assign(
    dispatcher: &mut Dispatcher<u64>,
    payload: u64,
    now: Instant,
) -> (TaskId, AgentId, AttemptToken) {
    let _ = dispatcher
        .submit(TaskSpec::new(payload), now)
        .expect("queue has room");
    match dispatcher.poll_action() {
        Some(Action::Assign {
            task, agent, token, ..
        }) => (task, agent, token),
        other => panic!("expected an assignment, got {other:?}"),
    }
}

fn success(dispatcher: &mut Dispatcher<u64>, held: (TaskId, AgentId, AttemptToken), now: Instant) {
    let (task, agent, token) = held;
    let report = TaskReport {
        task,
        agent,
        token,
        outcome: AttemptOutcome::Success,
    };
    dispatcher.report(report, now).expect("current attempt");
}

/// A pool kept half busy: a FIFO of the attempts in flight.
struct Pipeline {
    dispatcher: Dispatcher<u64>,
    in_flight: VecDeque<(TaskId, AgentId, AttemptToken)>,
    clock: u64,
}

impl Pipeline {
    fn new(agents: usize) -> Self {
        let mut pipeline = Pipeline {
            dispatcher: pool(agents),
            in_flight: VecDeque::with_capacity(agents * IN_FLIGHT_PER_AGENT + 1),
            clock: 0,
        };
        for _ in 0..agents * IN_FLIGHT_PER_AGENT {
            pipeline.clock += TICK_NANOS;
            let now = Instant::from_nanos(pipeline.clock);
            let held = submit_and_assign(&mut pipeline.dispatcher, pipeline.clock, now);
            pipeline.in_flight.push_back(held);
        }
        pipeline
    }

    /// Submit → assign → report success for the oldest attempt in flight.
    fn cycle(&mut self) {
        self.clock += TICK_NANOS;
        let now = Instant::from_nanos(self.clock);
        let held = submit_and_assign(&mut self.dispatcher, black_box(self.clock), now);
        self.in_flight.push_back(held);
        if let Some(oldest) = self.in_flight.pop_front() {
            success(&mut self.dispatcher, oldest, now);
        }
    }
}

fn full_cycle(c: &mut Criterion) {
    let mut group = c.benchmark_group("full_cycle");
    group.throughput(Throughput::Elements(1));
    for n in SIZES {
        let mut pipeline = Pipeline::new(n);
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| pipeline.cycle());
        });
        black_box(pipeline.dispatcher.live_tasks());
    }
    group.finish();
}

fn full_cycle_idle(c: &mut Criterion) {
    let mut group = c.benchmark_group("full_cycle_idle");
    group.throughput(Throughput::Elements(1));
    for n in SIZES {
        let mut dispatcher = pool(n);
        let mut clock = 0u64;
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| {
                clock += TICK_NANOS;
                let now = Instant::from_nanos(clock);
                let held = submit_and_assign(&mut dispatcher, black_box(clock), now);
                success(&mut dispatcher, held, now);
            });
        });
    }
    group.finish();
}

fn full_cycle_batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("full_cycle_batch");
    group.throughput(Throughput::Elements(BATCH as u64));
    for n in SIZES {
        let mut dispatcher = pool(n);
        let mut clock = 0u64;
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| {
                clock += TICK_NANOS;
                let now = Instant::from_nanos(clock);
                let first = clock;
                let results = dispatcher.submit_batch(
                    (first..first + BATCH as u64).map(|p| TaskSpec::new(black_box(p))),
                    now,
                );
                black_box(results);
                let mut done = 0usize;
                while let Some(action) = dispatcher.poll_action() {
                    if let Action::Assign {
                        task, agent, token, ..
                    } = action
                    {
                        success(&mut dispatcher, (task, agent, token), now);
                        done += 1;
                    }
                }
                assert_eq!(done, BATCH, "every task completes");
            });
        });
    }
    group.finish();
}

/// Bare baselines: the per-priority ring buffers and the least-loaded index
/// the dispatcher is built on, with nothing else around them.
fn baselines(c: &mut Criterion) {
    let mut group = c.benchmark_group("baseline");
    group.throughput(Throughput::Elements(1));

    // Levels drawn with a fixed seed; entries shaped like a queue entry
    // (sequence number, task index).
    let mut rng = StdRng::seed_from_u64(SEED);
    let levels: Vec<usize> = (0..1024).map(|_| rng.random_range(0..4)).collect();
    let mut queues: [VecDeque<(u64, u64)>; 4] = Default::default();
    let mut seq = 0u64;
    group.bench_function("vecdeque_priority_push_pop", |b| {
        b.iter(|| {
            seq += 1;
            let level = levels[(seq as usize) & (levels.len() - 1)];
            queues[black_box(level)].push_back((seq, seq));
            black_box(queues.iter_mut().find_map(VecDeque::pop_front))
        });
    });

    // (load << 32) / capacity: the utilisation key of the real index.
    let ratio = |load: u32| (u64::from(load) << 32) / u64::from(CAPACITY);
    let mut loads: Vec<u32> = (0..INDEX_ENTRIES)
        .map(|_| rng.random_range(0..CAPACITY))
        .collect();
    let mut index: BTreeSet<(u64, u32)> = loads
        .iter()
        .enumerate()
        .map(|(id, &load)| (ratio(load), id as u32))
        .collect();
    group.bench_with_input(
        BenchmarkId::new("indexed_least_loaded_pick", INDEX_ENTRIES),
        &INDEX_ENTRIES,
        |b, _| {
            b.iter(|| {
                let (_, id) = index.pop_first().expect("non-empty index");
                let load = &mut loads[id as usize];
                *load += 1;
                index.insert((ratio(*load), id));
                black_box(id)
            });
        },
    );
    group.finish();
}

/// What a pool watched for scale hints costs: the cycle with and without
/// one, and one hint against a bare walk over the same live tasks.
fn scale(c: &mut Criterion) {
    let mut group = c.benchmark_group("scale");
    let agents = SIZES[2];
    let policy = ScalePolicy::builder().build().expect("valid policy");
    let mut plain = Pipeline::new(agents);
    let mut watched = Pipeline::new(agents);
    watched
        .dispatcher
        .watch_pool("all", Vec::<String>::new(), policy)
        .expect("a new pool");
    group.throughput(Throughput::Elements(1));
    group.bench_function(BenchmarkId::new("full_cycle_plain", agents), |b| {
        b.iter(|| plain.cycle());
    });
    group.bench_function(BenchmarkId::new("full_cycle_watched", agents), |b| {
        b.iter(|| watched.cycle());
    });
    let tasks = 10_000;
    let mut queued = Dispatcher::new(DispatcherConfig::default());
    queued
        .watch_pool("all", Vec::<String>::new(), policy)
        .expect("a new pool");
    for n in 0..tasks {
        let _ = queued
            .submit(TaskSpec::new(n), Instant::from_nanos(n))
            .expect("room");
    }
    let later = Instant::from_secs(1);
    group.throughput(Throughput::Elements(tasks));
    group.bench_function(BenchmarkId::new("walk_live_tasks", tasks), |b| {
        b.iter(|| {
            queued
                .iter_live_tasks()
                .filter(|(_, state, ..)| *state == TaskState::Queued)
                .count()
        });
    });
    group.bench_function(BenchmarkId::new("hint", tasks), |b| {
        b.iter(|| queued.scale_hint("all", later).expect("watched"));
    });
    group.finish();
}

criterion_group! {
    name = dispatch;
    config = config(50);
    targets = full_cycle, full_cycle_idle, full_cycle_batch, baselines, scale
}
criterion_main!(dispatch);
