//! Cost of building the task tensor `T[tasks, agents, 4]`, dense and
//! sparse, at 1,000 × 100 and 10,000 × 1,000:
//!
//! * `tensor_sparse_from_plan/{tasks}x{agents}` and
//!   `tensor_dense_from_plan/{tasks}x{agents}`: a plan where 30 % of the
//!   tasks are assigned (one-hot) and the rest have 1 to 16 candidates with
//!   random scores (softmax at temperature 1). The dense build includes
//!   zeroing its `16 · tasks · agents` bytes.
//! * `tensor_sparse_from_dispatcher/{tasks}x{agents}`: the live tasks of a
//!   dispatcher whose agents (capacity 4) fall into 8 capability groups,
//!   every task requiring one group, with a top-16 cut: `4 · agents` tasks
//!   (40 %) are in flight, one-hot, the rest queued, spread over the 16
//!   best of their group by the default `Scored` weights.
//! * `tensor_to_dense/{tasks}x{agents}` and `tensor_to_sparse/...`: the
//!   conversions of the plan's tensor.
//!
//! Throughput is in tasks. Inputs are drawn with a fixed seed and built
//! outside the timed loop. Run with `cargo bench --bench tensor`.

#[path = "workloads/config.rs"]
mod bench_config;
use bench_config::config;

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use taskweave::agent::AgentProfile;
use taskweave::planning::{SparseTaskTensor, TaskTensor, TensorOptions, TensorTask};
use taskweave::scheduler::{Dispatcher, DispatcherConfig, TaskSpec};
use taskweave::{AgentId, Instant, Priority, TaskId, TaskRequirements};

const SIZES: [(usize, usize); 2] = [(1_000, 100), (10_000, 1_000)];
const SEED: u64 = 0x7e45_0a11;
/// Share of the plan's tasks that are assigned.
const ASSIGNED: f64 = 0.3;
/// Most candidates of an unassigned task.
const MAX_CANDIDATES: usize = 16;
/// Capability groups of the dispatcher's agents.
const GROUPS: usize = 8;
/// Slots per agent of the dispatcher.
const CAPACITY: u32 = 4;

/// A plan of `tasks` tasks over `agents` agents.
fn plan(tasks: usize, agents: usize) -> (Vec<AgentId>, Vec<TensorTask>) {
    let mut rng = StdRng::seed_from_u64(SEED);
    let ids = (0..agents as u64).map(AgentId::new).collect();
    let plan = (0..tasks as u64)
        .map(|t| {
            let priority = Priority::ALL[rng.random_range(0..4)];
            if rng.random_bool(ASSIGNED) {
                return TensorTask::assigned_to(
                    TaskId::new(t),
                    priority,
                    rng.random_range(0..agents),
                );
            }
            let n = rng.random_range(1..=MAX_CANDIDATES.min(agents));
            let first = rng.random_range(0..agents);
            // Distinct agents (7 is prime to both agent counts): a strided
            // run from a random start.
            let candidates = (0..n).map(|i| ((first + i * 7) % agents, rng.random_range(0.0..1.0)));
            TensorTask::with_candidates(TaskId::new(t), priority, candidates)
        })
        .collect();
    (ids, plan)
}

/// A dispatcher with `agents` agents in [`GROUPS`] capability groups and
/// `tasks` live tasks, each requiring one group.
fn dispatcher(tasks: usize, agents: usize) -> Dispatcher<u64> {
    let config = DispatcherConfig::builder()
        .seed(SEED)
        .queue_capacity(tasks)
        .build()
        .expect("valid config");
    let mut dispatcher = Dispatcher::new(config);
    let group = |i: usize| format!("group-{}", i % GROUPS);
    for i in 0..agents {
        let profile = AgentProfile::builder()
            .capabilities([group(i)])
            .capacity(CAPACITY)
            .build()
            .expect("valid profile");
        dispatcher
            .register_agent(AgentId::new(i as u64), profile, Instant::ZERO)
            .expect("fresh id");
    }
    let mut rng = StdRng::seed_from_u64(SEED);
    let specs = (0..tasks as u64).map(|t| {
        TaskSpec::new(t)
            .priority(Priority::ALL[rng.random_range(0..4)])
            .requirements(TaskRequirements::new().require([group(rng.random_range(0..GROUPS))]))
    });
    for result in dispatcher.submit_batch(specs, Instant::ZERO) {
        let _ = result.expect("queue has room");
    }
    while dispatcher.poll_action().is_some() {}
    dispatcher
}

fn label((tasks, agents): (usize, usize)) -> String {
    format!("{tasks}x{agents}")
}

fn from_plan(c: &mut Criterion) {
    let options = TensorOptions::new();
    let mut sparse = c.benchmark_group("tensor_sparse_from_plan");
    for size in SIZES {
        let (agents, tasks) = plan(size.0, size.1);
        sparse.throughput(Throughput::Elements(size.0 as u64));
        sparse.bench_function(BenchmarkId::from_parameter(label(size)), |b| {
            b.iter(|| {
                SparseTaskTensor::from_plan(black_box(&agents), &tasks, &options)
                    .expect("valid plan")
            });
        });
    }
    sparse.finish();

    let mut dense = c.benchmark_group("tensor_dense_from_plan");
    dense.sample_size(10);
    for size in SIZES {
        let (agents, tasks) = plan(size.0, size.1);
        dense.throughput(Throughput::Elements(size.0 as u64));
        dense.bench_function(BenchmarkId::from_parameter(label(size)), |b| {
            b.iter(|| {
                TaskTensor::from_plan(black_box(&agents), &tasks, &options).expect("valid plan")
            });
        });
    }
    dense.finish();
}

fn from_dispatcher(c: &mut Criterion) {
    let options = TensorOptions::new()
        .with_top_k(MAX_CANDIDATES)
        .expect("k > 0");
    let mut group = c.benchmark_group("tensor_sparse_from_dispatcher");
    for size in SIZES {
        let dispatcher = dispatcher(size.0, size.1);
        group.throughput(Throughput::Elements(size.0 as u64));
        group.bench_function(BenchmarkId::from_parameter(label(size)), |b| {
            b.iter(|| {
                SparseTaskTensor::from_dispatcher(black_box(&dispatcher), &options)
                    .expect("finite scores")
            });
        });
    }
    group.finish();
}

fn conversions(c: &mut Criterion) {
    let options = TensorOptions::new();
    let mut to_dense = c.benchmark_group("tensor_to_dense");
    to_dense.sample_size(10);
    for size in SIZES {
        let (agents, tasks) = plan(size.0, size.1);
        let sparse = SparseTaskTensor::from_plan(&agents, &tasks, &options).expect("valid plan");
        to_dense.throughput(Throughput::Elements(size.0 as u64));
        to_dense.bench_function(BenchmarkId::from_parameter(label(size)), |b| {
            b.iter(|| black_box(&sparse).to_dense().expect("fits"));
        });
    }
    to_dense.finish();

    let mut to_sparse = c.benchmark_group("tensor_to_sparse");
    to_sparse.sample_size(10);
    for size in SIZES {
        let (agents, tasks) = plan(size.0, size.1);
        let dense = TaskTensor::from_plan(&agents, &tasks, &options).expect("valid plan");
        to_sparse.throughput(Throughput::Elements(size.0 as u64));
        to_sparse.bench_function(BenchmarkId::from_parameter(label(size)), |b| {
            b.iter(|| black_box(&dense).to_sparse());
        });
    }
    to_sparse.finish();
}

criterion_group! {
    name = tensor;
    config = config(30);
    targets = from_plan, from_dispatcher, conversions
}
criterion_main!(tensor);
