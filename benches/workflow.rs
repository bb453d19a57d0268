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
//! * `driver/independent` (feature `driver`): a whole run of 10,000
//!   independent no-op local steps (no edges) through the threaded
//!   [`Driver`](taskweave::driver::Driver) with 2 worker threads, clock
//!   reads included. Throughput is per step.
//!
//! Definitions and the driver are built once, outside the measurement. Run
//! with `cargo bench --features driver --bench workflow` (without the
//! feature, only `executor_overhead` runs).

use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use petgraph::visit::EdgeRef;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use taskweave::workflow::{RunAction, StepDef, StepOutput, WorkflowDef, WorkflowRun};
use taskweave::{Instant, WorkflowId};

const SEED: u64 = 0x7a5c_3a7e;
/// Steps of the executor-overhead DAG.
const DAG_STEPS: usize = 100_000;
/// How far back a step's predecessors may be.
const WINDOW: usize = 50;
/// Most predecessors of one step.
const MAX_PREDECESSORS: usize = 3;
/// Independent steps of the driver run.
#[cfg(feature = "driver")]
const DRIVER_STEPS: usize = 10_000;
/// Worker threads of the driver.
#[cfg(feature = "driver")]
const DRIVER_THREADS: usize = 2;

/// A random DAG of `steps` local no-op steps: step `i > 0` depends on 1 to
/// [`MAX_PREDECESSORS`] distinct steps among the [`WINDOW`] before it.
fn random_dag(steps: usize) -> WorkflowDef {
    let mut rng = StdRng::seed_from_u64(SEED);
    let mut builder = WorkflowDef::builder("random_dag", 1);
    for i in 0..steps {
        builder = builder.step(StepDef::local(format!("s{i}")));
    }
    let mut predecessors = Vec::with_capacity(MAX_PREDECESSORS);
    for i in 1..steps {
        let low = i.saturating_sub(WINDOW);
        let wanted = rng.random_range(1..=MAX_PREDECESSORS).min(i - low);
        predecessors.clear();
        while predecessors.len() < wanted {
            let from = rng.random_range(low..i);
            if !predecessors.contains(&from) {
                predecessors.push(from);
            }
        }
        for &from in &predecessors {
            builder = builder.edge(format!("s{from}"), format!("s{i}"));
        }
    }
    builder.build().expect("a valid DAG")
}

/// A bare Kahn traversal; returns the number of nodes visited.
fn kahn(def: &WorkflowDef, indegree: &mut Vec<u32>, ready: &mut VecDeque<u32>) -> usize {
    let graph = def.graph();
    indegree.clear();
    indegree.resize(graph.node_count(), 0);
    for edge in graph.raw_edges() {
        indegree[edge.target().index()] += 1;
    }
    ready.clear();
    ready.extend(
        indegree
            .iter()
            .enumerate()
            .filter(|&(_, &d)| d == 0)
            .map(|(i, _)| i as u32),
    );
    let mut visited = 0;
    while let Some(node) = ready.pop_front() {
        visited += 1;
        for edge in graph.edges(petgraph::graph::NodeIndex::new(node as usize)) {
            let to = edge.target().index();
            indegree[to] -= 1;
            if indegree[to] == 0 {
                ready.push_back(to as u32);
            }
        }
    }
    visited
}

/// A whole run where every attempt succeeds at once; returns the number of
/// steps started.
fn execute(def: &Arc<WorkflowDef>) -> usize {
    let now = Instant::ZERO;
    let mut run: WorkflowRun<()> = WorkflowRun::new(Arc::clone(def), WorkflowId::new(1), None, now);
    let mut started = 0;
    while let Some(action) = run.poll_action() {
        match action {
            RunAction::Start { token, .. } => {
                started += 1;
                run.succeed(token, StepOutput::empty(), now)
                    .expect("a running attempt");
            }
            RunAction::Finished => break,
            other => panic!("unexpected action {other:?}"),
        }
    }
    started
}

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

#[cfg(feature = "driver")]
fn driver(c: &mut Criterion) {
    use taskweave::driver::Driver;
    use taskweave::workflow::{RunOutcome, StepInput};

    let mut builder = WorkflowDef::builder("independent", 1);
    for i in 0..DRIVER_STEPS {
        builder = builder.step(StepDef::local(format!("s{i}")));
    }
    let def = Arc::new(builder.build().expect("a valid definition"));
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

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
}

#[cfg(feature = "driver")]
criterion_group! {
    name = workflow;
    config = config();
    targets = executor_overhead, driver
}
#[cfg(not(feature = "driver"))]
criterion_group! {
    name = workflow;
    config = config();
    targets = executor_overhead
}
criterion_main!(workflow);
