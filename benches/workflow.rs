//! Cost of executing workflows, against the bare graph traversal it is
//! judged by, measured in the same run:
//!
//! * `executor_overhead/kahn_baseline`: a bare Kahn traversal of the
//!   definition's petgraph graph — an in-degree array filled from the edge
//!   list, a `VecDeque` ready queue, every node visited and every edge
//!   relaxed once.
//! * `executor_overhead/workflow_run`: a whole [`WorkflowRun`] of the same
//!   definition: `new`, then `poll_action` and `succeed(token,
//!   StepOutput::empty(), now)` for every `Start` until `Finished`.
//!
//!   Both run over one 100,000-step DAG of local no-op steps (`Join::All`):
//!   step `i > 0` depends on 1 to 3 distinct steps among the 50 before it,
//!   drawn with a fixed seed. Throughput is per step; the target is
//!   `workflow_run` at most twice `kahn_baseline` per step.
//! * `replay/live_run` and `replay/check_replay`: the journal of a whole
//!   run of a 10,000-step DAG of the same shape (the start and 10,000
//!   `Succeeded` inputs) checked with
//!   [`check_replay`](taskweave::workflow::check_replay), against the
//!   same run done live (`workflow_run` above, at that size): the
//!   checker's cost beyond the run's own. Throughput is per input.
//! * `engine/10k_runs`: 10,000 runs of a 10-step workflow (one step, eight
//!   in parallel, one) started at once on one [`WorkflowEngine`] with 100
//!   agents of capacity 100, every assignment answered with success at once.
//!   Throughput is per step.
//! * `driver/independent` (feature `driver`): a whole run of 10,000
//!   independent no-op local steps (no edges) through the threaded
//!   [`Driver`](taskweave::driver::Driver) with 2 worker threads, clock
//!   reads included. Throughput is per step.
//!
//! The workloads live in `benches/workloads/workflow.rs`, shared with
//! `examples/perf_report.rs`. Definitions and the driver are built once, outside the measurement. Run
//! with `cargo bench --features driver --bench workflow` (without the
//! feature, only `executor_overhead` runs).

#[path = "workloads/config.rs"]
mod bench_config;
use bench_config::config;

use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

#[path = "workloads/workflow.rs"]
mod workloads;

use taskweave::workflow::{ReplayCheck, check_replay};
use workloads::{
    DAG_STEPS, ENGINE_RUNS, ENGINE_STEPS, REPLAY_STEPS, engine_workflow, execute, kahn, random_dag,
    record, run_engine,
};

fn executor_overhead(c: &mut Criterion) {
    let def = Arc::new(random_dag(DAG_STEPS));
    let mut group = c.benchmark_group("executor_overhead");
    group.throughput(Throughput::Elements(DAG_STEPS as u64));

    let mut indegree = Vec::with_capacity(DAG_STEPS);
    let mut ready = VecDeque::with_capacity(DAG_STEPS);
    assert_eq!(kahn(&def, &mut indegree, &mut ready), DAG_STEPS);
    group.bench_function("kahn_baseline", |b| {
        b.iter(|| kahn(black_box(&def), &mut indegree, &mut ready));
    });

    assert_eq!(execute(&def), DAG_STEPS);
    group.bench_function("workflow_run", |b| {
        b.iter(|| execute(black_box(&def)));
    });
    group.finish();
}

fn replay(c: &mut Criterion) {
    let def = Arc::new(random_dag(REPLAY_STEPS));
    let journal = record(&def);
    assert_eq!(journal.len(), REPLAY_STEPS + 1);
    let compatible = ReplayCheck::Compatible {
        entries: REPLAY_STEPS + 1,
    };
    assert_eq!(check_replay(&journal, &def), Ok(compatible));
    let mut group = c.benchmark_group("replay");
    group.throughput(Throughput::Elements(REPLAY_STEPS as u64));
    group.bench_function("live_run", |b| b.iter(|| execute(black_box(&def))));
    group.bench_function("check_replay", |b| {
        b.iter(|| check_replay(black_box(&journal), &def));
    });
    group.finish();
}

fn engine(c: &mut Criterion) {
    let def = Arc::new(engine_workflow());
    assert_eq!(run_engine(&def), ENGINE_RUNS * ENGINE_STEPS);
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements((ENGINE_RUNS * ENGINE_STEPS) as u64));
    group.sample_size(10);
    group.bench_function("10k_runs", |b| b.iter(|| run_engine(black_box(&def))));
    group.finish();
}

#[cfg(feature = "driver")]
fn driver(c: &mut Criterion) {
    use taskweave::driver::Driver;
    use taskweave::workflow::{RunOutcome, StepInput, StepOutput, WorkflowRun};
    use taskweave::{Instant, WorkflowId};
    use workloads::{DRIVER_STEPS, DRIVER_THREADS, independent_steps};

    let def = Arc::new(independent_steps());
    let driver = Driver::new(DRIVER_THREADS)
        .expect("worker threads")
        .default_step(|_: &StepInput<()>| Ok(StepOutput::empty()));
    let epoch = std::time::Instant::now();
    let mut id = 0;
    let mut run_once = || {
        id += 1;
        let mut run = WorkflowRun::new(Arc::clone(&def), WorkflowId::new(id), None, Instant::ZERO);
        let clock = || Instant::from_nanos(epoch.elapsed().as_nanos() as u64);
        driver.run(&mut run, clock).expect("a configured driver")
    };
    assert_eq!(run_once(), RunOutcome::Succeeded);

    let mut group = c.benchmark_group("driver");
    group.throughput(Throughput::Elements(DRIVER_STEPS as u64));
    group.bench_function("independent", |b| b.iter(&mut run_once));
    group.finish();
}

#[cfg(feature = "driver")]
criterion_group! {
    name = workflow;
    config = config(20);
    targets = executor_overhead, replay, engine, driver
}
#[cfg(not(feature = "driver"))]
criterion_group! {
    name = workflow;
    config = config(20);
    targets = executor_overhead, replay, engine
}
criterion_main!(workflow);
