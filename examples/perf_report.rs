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
//!   half busy. The cycle and the two baselines above are timed **in
//!   turns**: each of `rounds` rounds runs each of them for 0.1 s, so a
//!   slow spell of a shared machine hits all three alike. `ns_per_op` and
//!   `baseline_ns_per_op` (the sum of the two baselines at the same number
//!   of agents) are medians over the rounds; `ratio` is the median of the
//!   rounds' own quotients, the figure to compare between machines and runs
//!   (the `vecdeque_priority_push_pop` line is the median of the first
//!   pool's rounds, each `indexed_least_loaded_pick` line that of its own).
//!   The same line times, in the same turns, the second yardstick: the same
//!   cycle on a **tight O(1) dispatcher** (`examples/support/
//!   tight_dispatcher.rs`: a slab with generations, four FIFO queues, load
//!   buckets; no hashing, events or timers): `tight_ns_per_op`, and
//!   `ratio_to_tight`, the median of the rounds' quotients (goal: at most
//!   2 at 1,000 agents).
//! * `full_cycle_ratio`: the full cycle at 10,000 agents over that at 10,
//!   the two timed in turns; the median of the rounds' quotients.
//! * `full_cycle_keys`: the full cycle at 1,000 agents with every task
//!   carrying a fair-share key (one of 16 tenants, weights 1 to 3) and a
//!   concurrency key whose limit (all slots) it never reaches, so the keys
//!   cost their bookkeeping and nothing holds work back, timed in turns
//!   with the plain cycle at 1,000 agents (`plain_ns_per_op`);
//!   `ratio_to_plain` is the median of the rounds' quotients.
//! * `full_cycle_tenants`: `full_cycle_keys`'s cycle with every task also
//!   of one of the 16 tenants, each under a quota of live tasks and cost
//!   rate it never reaches (so the quota costs its checks and counts and
//!   refuses nothing), timed in turns with the plain cycle at 1,000 agents.
//! * `snapshot`: the snapshot of 100,000 tasks (4,000 running on 1,000
//!   agents, the rest queued at four priorities) written with serde_json
//!   straight from the dispatcher (`Dispatcher::serialize_snapshot`),
//!   against the yardstick of the same tasks as bare rows
//!   (`examples/support/snapshot_rows.rs`: a JSON array per task of id,
//!   payload, priority, order, attempts, agent, token). `ns_per_op` and
//!   `baseline_ns_per_op` are one whole serialization; `bytes` and
//!   `baseline_bytes` their lengths; `time_ratio` and `bytes_ratio` the
//!   quotients (goal: at most 2 each). `copied_ns_per_op` and
//!   `copied_time_ratio`: the same written from a copy
//!   (`serde_json::to_vec(&d.snapshot())`, this line's `ns_per_op` until
//!   `serialize_snapshot` came).
//! * `tensor_build`: building the task tensor of a plan of `tasks` tasks
//!   over `agents` agents (`levels` priority levels) in `form` `sparse` or
//!   `dense`; 30 % of the tasks assigned, the rest with 1 to 16 scored
//!   candidates. `ns_per_op` is one whole build; `memory_bytes` is the
//!   result's `memory_bytes()`. `baseline_ns_per_op` writes the same `nnz`
//!   values with no validation or softmax: pushed onto four coordinate
//!   `Vec`s (sparse), or into a freshly zeroed `Vec<f32>` of the dense size
//!   (dense).
//! * `workflow_executor`: a whole `WorkflowRun` of a 100,000-step random DAG
//!   of no-op local steps (`Join::All`; step `i` depends on 1 to 3 of the 50
//!   steps before it; fixed seed): `new`, then `poll_action` and `succeed`
//!   until `Finished`. `ns_per_op` is per step; `baseline_ns_per_op` is a
//!   bare Kahn traversal of the same petgraph graph (in-degree array and
//!   `VecDeque`), per step; `ratio` is their quotient (target: at most 2).
//! * `workflow_replay`: the journal of a whole run of a 10,000-step DAG of
//!   the same shape (the start and one `Succeeded` input per step) checked
//!   with `check_replay`. `ns_per_op` is per input; `baseline_ns_per_op`
//!   is the same run done live (`workflow_executor`'s run at that size);
//!   `ratio` is their quotient; `ms_per_journal` the whole check.
//! * `workflow_engine`: 10,000 runs of a 10-step workflow (one agent step,
//!   eight in parallel, one) started at once on one `WorkflowEngine` with
//!   100 agents of capacity 100, every assignment answered with success at
//!   once. `ns_per_op` is per step, with `steps_per_sec`.
//! * `workflow_driver` (feature `driver`; `.ci/run` runs the examples with
//!   `--all-features`): a whole run of 10,000 independent no-op local steps
//!   through the threaded `Driver` with `threads` worker threads.
//!   `ns_per_op` is per step, `ns_per_run` the whole run.
//! * `heft`: a HEFT plan of a random layered DAG of 1,000 steps (20 layers,
//!   1 to 3 predecessors in the layer before, half the steps requiring one
//!   of four capabilities) on 50 agents of speeds in `[0.25, 4]` (the
//!   `heft/1000x50` workload of `benches/planning.rs`). `ns_per_op` is per
//!   step; `makespan_ms` is the plan's makespan.
//!
//! Each measurement warms up, then takes the median of nine rounds in turns
//! (above), or of five runs of at least 0.3 s each. The whole report takes
//! about a minute. The crate's release profile builds with one
//! codegen unit (`Cargo.toml`).

use std::collections::VecDeque;
use std::hint::black_box;
use std::time::{Duration, Instant as Clock};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use taskweave::planning::{SparseTaskTensor, TaskTensor, TensorOptions, TensorTask, heft};
use taskweave::scheduler::TaskSpec;
use taskweave::{AgentId, Instant, Priority, TaskId};

const SEED: u64 = 0x7a5c_3a7e;
const SIZES: [usize; 4] = [10, 100, 1_000, 10_000];
/// Slots per agent.
const CAPACITY: u32 = 4;
/// Tasks kept in flight per agent (half the slots).
const IN_FLIGHT_PER_AGENT: usize = 2;
/// Tasks queued for the memory measurement.
const MEMORY_TASKS: u64 = 1_000_000;
const PAYLOAD_BYTES: usize = std::mem::size_of::<u64>();
const TARGET_BYTES: usize = 128;
/// Timed runs per measurement; the median is reported.
const RUNS: usize = 5;
/// Rounds of the full cycle and its baselines, timed in turns.
const ROUNDS: usize = 9;
/// How long each of them runs in one round.
const ROUND: Duration = Duration::from_millis(100);
const MIN_RUN: Duration = Duration::from_millis(300);
const WARM_UP: Duration = Duration::from_millis(200);
/// Virtual time per task.
const TICK_NANOS: u64 = 1_000;
/// Task tensor shape: tasks × agents (× 4 priority levels).
const TENSOR_TASKS: usize = 10_000;
const TENSOR_AGENTS: usize = 1_000;
/// Most candidates of an unassigned task in the tensor's plan.
const TENSOR_CANDIDATES: usize = 16;

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
    let mut dispatcher = pool(0, MEMORY_TASKS as usize, PLAIN);
    let before = memory_status();
    for payload in 0..MEMORY_TASKS {
        let _ = dispatcher
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

/// Like [`measure`], for operations that take milliseconds: two warm-up
/// runs, then the median of `RUNS` runs of at least [`MIN_RUN`].
fn measure_heavy(mut op: impl FnMut()) -> f64 {
    let start = Clock::now();
    op();
    op();
    let estimate = start.elapsed().as_secs_f64() / 2.0;
    let iters = ((MIN_RUN.as_secs_f64() / estimate).ceil() as u64).max(1);
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
    samples[RUNS / 2]
}

/// The plan of the tensor lines: 30 % of the tasks assigned, the others
/// with 1 to [`TENSOR_CANDIDATES`] distinct candidates and random scores.
fn tensor_plan() -> (Vec<AgentId>, Vec<TensorTask>) {
    let mut rng = StdRng::seed_from_u64(SEED);
    let agents = (0..TENSOR_AGENTS as u64).map(AgentId::new).collect();
    let tasks = (0..TENSOR_TASKS as u64)
        .map(|t| {
            let priority = Priority::ALL[rng.random_range(0..4)];
            if rng.random_bool(0.3) {
                let agent = rng.random_range(0..TENSOR_AGENTS);
                return TensorTask::assigned_to(TaskId::new(t), priority, agent);
            }
            let n = rng.random_range(1..=TENSOR_CANDIDATES);
            let first = rng.random_range(0..TENSOR_AGENTS);
            let candidates = (0..n).map(|i| {
                let agent = (first + i * 7) % TENSOR_AGENTS;
                (agent, rng.random_range(0.0..1.0))
            });
            TensorTask::with_candidates(TaskId::new(t), priority, candidates)
        })
        .collect();
    (agents, tasks)
}

/// `tensor_build` lines for the sparse and the dense form.
fn tensor_build() -> [String; 2] {
    let (agents, tasks) = tensor_plan();
    let options = TensorOptions::new();
    let sparse = SparseTaskTensor::from_plan(&agents, &tasks, &options).expect("valid plan");
    let entries: Vec<_> = sparse.iter().collect();
    let nnz = entries.len();
    let line = |form: &str, ns: f64, baseline: f64, memory: usize| {
        format!(
            "{{\"bench\":\"tensor_build\",\"form\":\"{form}\",\"tasks\":{TENSOR_TASKS},\"agents\":{TENSOR_AGENTS},\"levels\":4,\"nnz\":{nnz},\"ns_per_op\":{ns:.0},\"ns_per_task\":{:.2},\"memory_bytes\":{memory},\"baseline_ns_per_op\":{baseline:.0}}}",
            ns / TENSOR_TASKS as f64,
        )
    };

    let sparse_ns = measure_heavy(|| {
        black_box(SparseTaskTensor::from_plan(black_box(&agents), &tasks, &options).ok());
    });
    let coo_fill = measure_heavy(|| {
        let mut coords: (Vec<u32>, Vec<u32>, Vec<u8>, Vec<f32>) = (
            Vec::with_capacity(nnz),
            Vec::with_capacity(nnz),
            Vec::with_capacity(nnz),
            Vec::with_capacity(nnz),
        );
        for e in black_box(&entries) {
            coords.0.push(e.task as u32);
            coords.1.push(e.agent as u32);
            coords.2.push(e.priority.index() as u8);
            coords.3.push(e.value);
        }
        black_box(coords);
    });
    let sparse_line = line("sparse", sparse_ns, coo_fill, sparse.memory_bytes());
    drop(sparse);

    let dense_ns = measure_heavy(|| {
        black_box(TaskTensor::from_plan(black_box(&agents), &tasks, &options).ok());
    });
    let stride = TENSOR_AGENTS * 4;
    let offsets: Vec<(usize, f32)> = entries
        .iter()
        .map(|e| (e.task * stride + e.agent * 4 + e.priority.index(), e.value))
        .collect();
    let zero_fill = measure_heavy(|| {
        let mut values = vec![0.0f32; TENSOR_TASKS * stride];
        for &(at, value) in black_box(&offsets) {
            values[at] = value;
        }
        black_box(values);
    });
    let dense = TaskTensor::from_plan(&agents, &tasks, &options).expect("valid plan");
    let dense_line = line("dense", dense_ns, zero_fill, dense.memory_bytes());
    [sparse_line, dense_line]
}

#[path = "../benches/workloads/workflow.rs"]
mod workloads;

#[path = "support/turns.rs"]
mod turns;

#[path = "support/bare_cycle.rs"]
mod bare_cycle;
use bare_cycle::{Pick, PushPop};

#[path = "support/pipeline.rs"]
mod pipeline;
use pipeline::{PLAIN, Pipeline, full_cycle_keys, full_cycle_ratio, full_cycle_tenants, pool};

#[path = "support/tight_dispatcher.rs"]
mod tight_dispatcher;
use tight_dispatcher::TightCycle;

#[path = "support/snapshot_rows.rs"]
mod snapshot_rows;
use snapshot_rows::{SNAPSHOT_AGENTS, SNAPSHOT_TASKS, snapshot_line};

#[path = "../benches/workloads/planning.rs"]
mod planning_workloads;

/// The `heft` line: planning a 1,000-step layered DAG on 50 agents.
fn heft_plan() -> String {
    use planning_workloads::{HEFT_AGENTS, HEFT_LAYERS, HEFT_STEPS, agent_pool, layered_dag};

    let workflow = layered_dag(HEFT_STEPS, HEFT_LAYERS);
    let agents = agent_pool(HEFT_AGENTS);
    let schedule = heft(&workflow, &agents).expect("a schedule");
    let ns = measure_heavy(|| {
        black_box(heft(black_box(&workflow), &agents).ok());
    });
    format!(
        "{{\"bench\":\"heft\",\"steps\":{HEFT_STEPS},\"agents\":{HEFT_AGENTS},\"ns_per_op\":{:.2},\"makespan_ms\":{:.3}}}",
        ns / HEFT_STEPS as f64,
        schedule.makespan().as_secs_f64() * 1e3,
    )
}

/// The `workflow_executor` line: a whole run against a bare Kahn traversal
/// of the same 100,000-step DAG.
fn workflow_executor() -> String {
    use std::sync::Arc;
    use workloads::{DAG_STEPS, execute, kahn, random_dag};

    let def = Arc::new(random_dag(DAG_STEPS));
    let mut indegree = Vec::with_capacity(DAG_STEPS);
    let mut ready = VecDeque::with_capacity(DAG_STEPS);
    let baseline = measure_heavy(|| {
        assert_eq!(black_box(kahn(&def, &mut indegree, &mut ready)), DAG_STEPS);
    });
    let run = measure_heavy(|| assert_eq!(black_box(execute(&def)), DAG_STEPS));
    let (per_step, baseline) = (run / DAG_STEPS as f64, baseline / DAG_STEPS as f64);
    format!(
        "{{\"bench\":\"workflow_executor\",\"steps\":{DAG_STEPS},\"edges\":{},\"ns_per_op\":{per_step:.2},\"baseline_ns_per_op\":{baseline:.2},\"ratio\":{:.3}}}",
        def.graph().edge_count(),
        per_step / baseline,
    )
}

/// The `workflow_replay` line: the journal of a whole run of a
/// 10,000-step DAG checked with `check_replay`, against the same run done
/// live.
fn workflow_replay() -> String {
    use std::sync::Arc;
    use taskweave::workflow::{ReplayCheck, check_replay};
    use workloads::{REPLAY_STEPS, execute, random_dag, record};

    let def = Arc::new(random_dag(REPLAY_STEPS));
    let journal = record(&def);
    let entries = journal.len();
    let baseline = measure_heavy(|| assert_eq!(black_box(execute(&def)), REPLAY_STEPS));
    let check = measure_heavy(|| {
        let checked = check_replay(black_box(&journal), &def);
        assert_eq!(checked, Ok(ReplayCheck::Compatible { entries }));
    });
    format!(
        "{{\"bench\":\"workflow_replay\",\"inputs\":{REPLAY_STEPS},\"ns_per_op\":{:.2},\"baseline_ns_per_op\":{:.2},\"ratio\":{:.3},\"ms_per_journal\":{:.3}}}",
        check / REPLAY_STEPS as f64,
        baseline / REPLAY_STEPS as f64,
        check / baseline,
        check / 1e6,
    )
}

/// The `workflow_engine` line: 10,000 runs of 10 agent steps active at once
/// on one engine.
fn workflow_engine() -> String {
    use std::sync::Arc;
    use workloads::{ENGINE_RUNS, ENGINE_STEPS, engine_workflow, run_engine};

    let def = Arc::new(engine_workflow());
    let steps = ENGINE_RUNS * ENGINE_STEPS;
    let ns = measure_heavy(|| assert_eq!(black_box(run_engine(&def)), steps));
    let per_step = ns / steps as f64;
    format!(
        "{{\"bench\":\"workflow_engine\",\"runs\":{ENGINE_RUNS},\"steps_per_run\":{ENGINE_STEPS},\"ns_per_op\":{per_step:.2},\"steps_per_sec\":{:.0}}}",
        1e9 / per_step,
    )
}

/// The `workflow_driver` line: independent no-op steps through the
/// threaded driver.
#[cfg(feature = "driver")]
fn workflow_driver() -> String {
    use std::sync::Arc;
    use taskweave::WorkflowId;
    use taskweave::driver::Driver;
    use taskweave::workflow::{RunOutcome, StepInput, StepOutput, WorkflowRun};
    use workloads::{DRIVER_STEPS, DRIVER_THREADS, independent_steps};

    let def = Arc::new(independent_steps());
    let driver = Driver::new(DRIVER_THREADS)
        .expect("worker threads")
        .default_step(|_: &StepInput<()>| Ok(StepOutput::empty()));
    let epoch = Clock::now();
    let mut id = 0;
    let ns = measure_heavy(|| {
        id += 1;
        let mut run = WorkflowRun::new(Arc::clone(&def), WorkflowId::new(id), None, Instant::ZERO);
        let clock = || Instant::from_nanos(epoch.elapsed().as_nanos() as u64);
        let outcome = driver.run(&mut run, clock).expect("a configured driver");
        assert_eq!(outcome, RunOutcome::Succeeded);
    });
    format!(
        "{{\"bench\":\"workflow_driver\",\"steps\":{DRIVER_STEPS},\"threads\":{DRIVER_THREADS},\"ns_per_op\":{:.2},\"ns_per_run\":{ns:.0}}}",
        ns / DRIVER_STEPS as f64,
    )
}

fn main() {
    // First, on a fresh heap: freed memory from earlier measurements would
    // hide growth from the resident-set size.
    println!("{}", memory_per_queued_task());

    let mut queues = PushPop::new(SEED);
    for agents in SIZES {
        let mut pick = Pick::new(agents, CAPACITY, SEED);
        let mut tight = TightCycle::new(agents, CAPACITY, IN_FLIGHT_PER_AGENT);
        let mut pipeline = Pipeline::<PLAIN>::new(agents);
        let rounds = turns::in_turns(
            &mut [
                &mut || queues.step(),
                &mut || pick.step(),
                &mut || pipeline.cycle(),
                &mut || tight.cycle(),
            ],
            ROUNDS,
            ROUND,
            WARM_UP,
        );
        black_box(pipeline.dispatcher.live_tasks());
        drop((pipeline, tight));
        if agents == SIZES[0] {
            let push_pop = turns::median(rounds.iter().map(|r| r[0]));
            println!(
                "{{\"bench\":\"vecdeque_priority_push_pop\",\"levels\":4,\"ns_per_op\":{push_pop:.2}}}"
            );
        }
        let pick = turns::median(rounds.iter().map(|r| r[1]));
        let ns = turns::median(rounds.iter().map(|r| r[2]));
        let baseline = turns::median(rounds.iter().map(|r| r[0] + r[1]));
        let ratio = turns::median(rounds.iter().map(|r| r[2] / (r[0] + r[1])));
        let tight = turns::median(rounds.iter().map(|r| r[3]));
        let to_tight = turns::median(rounds.iter().map(|r| r[2] / r[3]));
        println!(
            "{{\"bench\":\"indexed_least_loaded_pick\",\"agents\":{agents},\"ns_per_op\":{pick:.2}}}"
        );
        println!(
            "{{\"bench\":\"full_cycle\",\"agents\":{agents},\"rounds\":{ROUNDS},\"ns_per_op\":{ns:.2},\"tasks_per_sec\":{:.0},\"baseline_ns_per_op\":{baseline:.2},\"ratio\":{ratio:.3},\"tight_ns_per_op\":{tight:.2},\"ratio_to_tight\":{to_tight:.3}}}",
            1e9 / ns,
        );
    }
    println!("{}", full_cycle_ratio());
    println!("{}", full_cycle_keys());
    println!("{}", full_cycle_tenants());
    let dispatcher = pool(SNAPSHOT_AGENTS, SNAPSHOT_TASKS as usize, PLAIN);
    println!("{}", snapshot_line(dispatcher, |op| measure_heavy(op)));

    for line in tensor_build() {
        println!("{line}");
    }

    println!("{}", workflow_executor());
    println!("{}", workflow_replay());
    println!("{}", workflow_engine());
    println!("{}", heft_plan());
    #[cfg(feature = "driver")]
    println!("{}", workflow_driver());
    #[cfg(not(feature = "driver"))]
    eprintln!("workflow_driver skipped: run with --features driver");
}
