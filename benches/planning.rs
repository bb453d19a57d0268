//! Cost of planning:
//!
//! * `heft/{steps}x{agents}`: [`heft`] on a random layered DAG (1,000 steps
//!   in 20 layers, 100 steps in 10; each step depends on 1 to 3 steps of
//!   the layer before, estimates of 1 to 1,000 ms, half the steps requiring
//!   one of four capabilities) over a pool of agents with speeds in
//!   `[0.25, 4]` holding 1 to 3 of the capabilities.
//!
//! Throughput is in steps. Inputs are drawn with a fixed seed and built
//! outside the timed loop; the workloads live in
//! `benches/workloads/planning.rs`, shared with `examples/perf_report.rs`.
//! Run with `cargo bench --bench planning`.

#[path = "workloads/config.rs"]
mod bench_config;
use bench_config::config;

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use taskweave::planning::heft;

#[path = "workloads/planning.rs"]
mod workloads;

use workloads::{HEFT_AGENTS, HEFT_LAYERS, HEFT_STEPS, agent_pool, layered_dag};

/// (steps, layers, agents).
const SIZES: [(usize, usize, usize); 2] = [(100, 10, 10), (HEFT_STEPS, HEFT_LAYERS, HEFT_AGENTS)];

fn heft_schedules(c: &mut Criterion) {
    let mut group = c.benchmark_group("heft");
    for (steps, layers, agents) in SIZES {
        let workflow = layered_dag(steps, layers);
        let pool = agent_pool(agents);
        heft(&workflow, &pool).expect("every step has an estimate and an agent");
        group.throughput(Throughput::Elements(steps as u64));
        group.bench_function(
            BenchmarkId::from_parameter(format!("{steps}x{agents}")),
            |b| {
                b.iter(|| heft(black_box(&workflow), black_box(&pool)).expect("a schedule"));
            },
        );
    }
    group.finish();
}

criterion_group! {
    name = planning;
    config = config(30);
    targets = heft_schedules
}
criterion_main!(planning);
