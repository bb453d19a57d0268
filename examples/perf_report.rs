//! Performance report: the dispatcher's full task cycle against bare
//! data-structure baselines measured in the same run, as JSON lines.
//!
//! Run with `cargo run --release --example perf_report`. Every line is one
//! JSON object with `bench`, its parameters and `ns_per_op`:
//!
//! * `memory_per_queued_task`: resident memory added by 1,000,000 queued
//!   tasks (no agents registered, so nothing is assigned), in bytes per
//!   task, from `VmRSS` in `/proc/self/status` (`"method":"rss"`; the crate
//!   forbids `unsafe`, so a counting global allocator is not possible).
//!   `vm_data_bytes_per_task` is the same from `VmData`, which also counts
//!   reserved but untouched capacity. Measured first, on a fresh heap.
//! * `vecdeque_priority_push_pop`: four `VecDeque`s, push to a level, pop
//!   from the first non-empty one.
//! * `indexed_least_loaded_pick`: a `BTreeSet<(load ratio, id)>` of `agents`
//!   entries; pop the least loaded, reinsert it one task busier.
//! * `full_cycle`: submit a task, take its `Assign`, report success for the
//!   oldest task in flight, on a pool of `agents` agents (capacity 4) kept
//!   half busy. `tasks` tasks go through in each of the five timed runs.
//!   `baseline_ns_per_op` is the sum of the two baselines above at the
//!   same number of agents.
//! * `full_cycle_ratio`: `ns_per_op` at 10,000 agents over that at 10.
//!
//! Each measurement warms up, then takes the median of five runs of at
//! least 0.3 s each. The whole report takes well under a minute.

use std::collections::{BTreeSet, VecDeque};
use std::hint::black_box;
use std::time::{Duration, Instant as Clock};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use taskweave::agent::AgentProfile;
use taskweave::scheduler::{
    Action, AttemptOutcome, Dispatcher, DispatcherConfig, TaskReport, TaskSpec,
};
use taskweave::{AgentId, AttemptToken, Instant, TaskId};

const SEED: u64 = 0x7a5c_3a7e;
const SIZES: [usize; 4] = [10, 100, 1_000, 10_000];
/// Slots per agent.
const CAPACITY: u32 = 4;
/// Tasks kept in flight per agent (half the slots).
const IN_FLIGHT_PER_AGENT: usize = 2;
/// Tasks through the full cycle per timed run (at least; more if a run
/// would otherwise last less than [`MIN_RUN`]).
const CYCLE_TASKS: u64 = 1_000_000;
/// Tasks queued for the memory measurement.
const MEMORY_TASKS: u64 = 1_000_000;
const PAYLOAD_BYTES: usize = std::mem::size_of::<u64>();
const TARGET_BYTES: usize = 128;
/// Timed runs per measurement; the median is reported.
const RUNS: usize = 5;
const MIN_RUN: Duration = Duration::from_millis(300);
const WARM_UP: Duration = Duration::from_millis(200);
/// Virtual time per task.
const TICK_NANOS: u64 = 1_000;

/// The median time per operation of `RUNS` runs of `op` repeated `iters`
/// times, where `iters` is at least `min_iters` and enough for a run to
/// last [`MIN_RUN`]. Returns (ns per op, iterations per run).
fn measure(min_iters: u64, mut op: impl FnMut()) -> (f64, u64) {
    // Warm up, and estimate the cost of one operation.
    let start = Clock::now();
    let mut warm = 0u64;
    while start.elapsed() < WARM_UP || warm < 1_000 {
        for _ in 0..1_000 {
            op();
        }
        warm += 1_000;
    }
    let estimate = start.elapsed().as_secs_f64() / warm as f64;
    let iters = min_iters.max((MIN_RUN.as_secs_f64() / estimate).ceil() as u64);
    let mut samples: Vec<f64> = (0..RUNS)
        .map(|_| {
            let start = Clock::now();
            for _ in 0..iters {
                op();
            }
            start.elapsed().as_nanos() as f64 / iters as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    (samples[RUNS / 2], iters)
}

fn pool(agents: usize, queue_capacity: usize) -> Dispatcher<u64> {
    let config = DispatcherConfig::builder()
        .seed(SEED)
        .queue_capacity(queue_capacity)
        .build()
        .expect("valid config");
    let mut dispatcher = Dispatcher::new(config);
    let profile = AgentProfile::builder()
        .capacity(CAPACITY)
        .build()
        .expect("valid profile");
    for i in 0..agents {
        dispatcher
            .register_agent(AgentId::new(i as u64), profile.clone(), Instant::ZERO)
            .expect("fresh id");
    }
    dispatcher
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
            dispatcher: pool(agents, 100_000),
            in_flight: VecDeque::with_capacity(agents * IN_FLIGHT_PER_AGENT + 1),
            clock: 0,
        };
        for _ in 0..agents * IN_FLIGHT_PER_AGENT {
            let held = pipeline.submit_and_assign();
            pipeline.in_flight.push_back(held);
        }
        pipeline
    }

    fn submit_and_assign(&mut self) -> (TaskId, AgentId, AttemptToken) {
        self.clock += TICK_NANOS;
        let now = Instant::from_nanos(self.clock);
        self.dispatcher
            .submit(TaskSpec::new(black_box(self.clock)), now)
            .expect("queue has room");
        match self.dispatcher.poll_action() {
            Some(Action::Assign {
                task, agent, token, ..
            }) => (task, agent, token),
            other => panic!("expected an assignment, got {other:?}"),
        }
    }

    /// Submit → assign → report success for the oldest attempt in flight.
    fn cycle(&mut self) {
        let held = self.submit_and_assign();
        self.in_flight.push_back(held);
        let Some((task, agent, token)) = self.in_flight.pop_front() else {
            return;
        };
        let report = TaskReport {
            task,
            agent,
            token,
            outcome: AttemptOutcome::Success,
        };
        self.dispatcher
            .report(report, Instant::from_nanos(self.clock))
            .expect("current attempt");
    }
}

fn vecdeque_push_pop() -> f64 {
    let mut rng = StdRng::seed_from_u64(SEED);
    let levels: Vec<usize> = (0..1024).map(|_| rng.random_range(0..4)).collect();
    let mut queues: [VecDeque<(u64, u64)>; 4] = Default::default();
    let mut seq = 0u64;
    let (ns, _) = measure(0, || {
        seq += 1;
        let level = levels[(seq as usize) & (levels.len() - 1)];
        queues[black_box(level)].push_back((seq, seq));
        black_box(queues.iter_mut().find_map(VecDeque::pop_front));
    });
    ns
}

fn least_loaded_pick(entries: usize) -> f64 {
    let mut rng = StdRng::seed_from_u64(SEED);
    let ratio = |load: u32| (u64::from(load) << 32) / u64::from(CAPACITY);
    let mut loads: Vec<u32> = (0..entries)
        .map(|_| rng.random_range(0..CAPACITY))
        .collect();
    let mut index: BTreeSet<(u64, u32)> = loads
        .iter()
        .enumerate()
        .map(|(id, &load)| (ratio(load), id as u32))
        .collect();
    let (ns, _) = measure(0, || {
        if let Some((_, id)) = index.pop_first() {
            let load = &mut loads[id as usize];
            *load += 1;
            index.insert((ratio(*load), id));
            black_box(id);
        }
    });
    ns
}

/// `VmRSS` and `VmData` of this process, in bytes.
fn memory_status() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().strip_suffix("kB"))
            .and_then(|kib| kib.trim().parse::<u64>().ok())
            .map(|kib| kib * 1024)
    };
    Some((field("VmRSS:")?, field("VmData:")?))
}

fn memory_per_queued_task() -> String {
    let mut dispatcher = pool(0, MEMORY_TASKS as usize);
    let before = memory_status();
    for payload in 0..MEMORY_TASKS {
        dispatcher
            .submit(TaskSpec::new(payload), Instant::ZERO)
            .expect("queue has room");
    }
    let after = memory_status();
    assert_eq!(dispatcher.waiting() as u64, MEMORY_TASKS);
    let per_task =
        |before: u64, after: u64| after.saturating_sub(before) as f64 / MEMORY_TASKS as f64;
    let line = match (before, after) {
        (Some((rss0, data0)), Some((rss1, data1))) => format!(
            "{{\"bench\":\"memory_per_queued_task\",\"method\":\"rss\",\"tasks\":{MEMORY_TASKS},\"bytes_per_task\":{:.1},\"vm_data_bytes_per_task\":{:.1},\"payload_bytes\":{PAYLOAD_BYTES},\"target_bytes\":{TARGET_BYTES}}}",
            per_task(rss0, rss1),
            per_task(data0, data1),
        ),
        _ => format!(
            "{{\"bench\":\"memory_per_queued_task\",\"method\":\"unavailable\",\"tasks\":{MEMORY_TASKS},\"bytes_per_task\":null,\"payload_bytes\":{PAYLOAD_BYTES},\"target_bytes\":{TARGET_BYTES}}}"
        ),
    };
    drop(black_box(dispatcher));
    line
}

fn main() {
    // First, on a fresh heap: freed memory from earlier measurements would
    // hide growth from the resident-set size.
    println!("{}", memory_per_queued_task());

    let push_pop = vecdeque_push_pop();
    println!(
        "{{\"bench\":\"vecdeque_priority_push_pop\",\"levels\":4,\"ns_per_op\":{push_pop:.2}}}"
    );

    let mut cycle_ns = Vec::with_capacity(SIZES.len());
    for agents in SIZES {
        let pick = least_loaded_pick(agents);
        println!(
            "{{\"bench\":\"indexed_least_loaded_pick\",\"agents\":{agents},\"ns_per_op\":{pick:.2}}}"
        );
        let mut pipeline = Pipeline::new(agents);
        let (ns, tasks) = measure(CYCLE_TASKS, || pipeline.cycle());
        black_box(pipeline.dispatcher.live_tasks());
        drop(pipeline);
        cycle_ns.push(ns);
        println!(
            "{{\"bench\":\"full_cycle\",\"agents\":{agents},\"tasks\":{tasks},\"ns_per_op\":{ns:.2},\"tasks_per_sec\":{:.0},\"baseline_ns_per_op\":{:.2}}}",
            1e9 / ns,
            push_pop + pick,
        );
    }
    let ratio = cycle_ns[SIZES.len() - 1] / cycle_ns[0];
    println!("{{\"bench\":\"full_cycle_ratio\",\"ratio_10000_vs_10\":{ratio:.3}}}");
}
