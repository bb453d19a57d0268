//! Workflow workloads shared by `benches/workflow.rs` and
//! `examples/perf_report.rs`, so both measure exactly the same thing.

use std::collections::VecDeque;
use std::sync::Arc;

use petgraph::visit::EdgeRef;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use taskweave::agent::AgentProfile;
use taskweave::scheduler::{Dispatcher, DispatcherConfig};
use taskweave::workflow::{
    EngineAction, RunAction, RunInput, RunJournal, RunOutcome, RunRecorder, StepDef, StepOutput,
    StepTask, WorkflowDef, WorkflowEngine, WorkflowRun,
};
use taskweave::{AgentId, Instant, WorkflowId};

const SEED: u64 = 0x7a5c_3a7e;
/// Steps of the executor-overhead DAG.
pub(crate) const DAG_STEPS: usize = 100_000;
/// How far back a step's predecessors may be.
const WINDOW: usize = 50;
/// Most predecessors of one step.
const MAX_PREDECESSORS: usize = 3;
/// Steps of the replayed DAG: its journal holds one input per step.
pub(crate) const REPLAY_STEPS: usize = 10_000;
/// Independent steps of the driver run.
#[cfg_attr(not(feature = "driver"), allow(dead_code))]
pub(crate) const DRIVER_STEPS: usize = 10_000;
/// Worker threads of the driver.
#[cfg_attr(not(feature = "driver"), allow(dead_code))]
pub(crate) const DRIVER_THREADS: usize = 2;
/// Runs active at once in the engine workload.
pub(crate) const ENGINE_RUNS: usize = 10_000;
/// Steps of each engine run: one, eight in parallel, one.
pub(crate) const ENGINE_STEPS: usize = 10;
/// Agents serving the engine workload, and the capacity of each: together
/// one slot per run.
const ENGINE_AGENTS: u64 = 100;
const ENGINE_CAPACITY: u32 = 100;

/// A random DAG of `steps` local no-op steps: step `i > 0` depends on 1 to
/// [`MAX_PREDECESSORS`] distinct steps among the [`WINDOW`] before it,
/// drawn with a fixed seed.
pub(crate) fn random_dag(steps: usize) -> WorkflowDef {
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

/// A bare Kahn traversal of the definition's graph (in-degree array,
/// `VecDeque` ready queue); returns the number of nodes visited.
pub(crate) fn kahn(def: &WorkflowDef, indegree: &mut Vec<u32>, ready: &mut VecDeque<u32>) -> usize {
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
pub(crate) fn execute(def: &Arc<WorkflowDef>) -> usize {
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

/// The journal of [`execute`]'s run of `def`, recorded by a
/// [`RunRecorder`]: the start and one `Succeeded` input per step.
pub(crate) fn record(def: &Arc<WorkflowDef>) -> RunJournal<()> {
    let now = Instant::ZERO;
    let mut run = RunRecorder::new(Arc::clone(def), WorkflowId::new(1), None, now);
    while let Some(action) = run.poll_action() {
        match action {
            RunAction::Start { token, .. } => {
                let output = StepOutput::empty();
                run.apply(RunInput::Succeeded { token, output }, now)
                    .expect("a running attempt");
            }
            RunAction::Finished => break,
            other => panic!("unexpected action {other:?}"),
        }
    }
    run.into_parts().1
}

/// [`DRIVER_STEPS`] independent local no-op steps.
#[cfg_attr(not(feature = "driver"), allow(dead_code))]
pub(crate) fn independent_steps() -> WorkflowDef {
    let mut builder = WorkflowDef::builder("independent", 1);
    for i in 0..DRIVER_STEPS {
        builder = builder.step(StepDef::local(format!("s{i}")));
    }
    builder.build().expect("a valid definition")
}

/// The engine workload's definition: agent steps `first`, eight parallel
/// `work_i`, then `last`.
pub(crate) fn engine_workflow() -> WorkflowDef {
    let mut builder = WorkflowDef::builder("fan_out", 1)
        .step(StepDef::agent("first").capabilities(["work"]))
        .step(StepDef::agent("last").capabilities(["work"]));
    for i in 0..ENGINE_STEPS - 2 {
        let id = format!("work_{i}");
        builder = builder
            .step(StepDef::agent(id.as_str()).capabilities(["work"]))
            .edge("first", id.as_str())
            .edge(id.as_str(), "last");
    }
    builder.build().expect("a valid definition")
}

/// [`ENGINE_RUNS`] runs of `def` started at once on one engine, every agent
/// step answered with success as soon as it is assigned; returns the steps
/// executed.
pub(crate) fn run_engine(def: &Arc<WorkflowDef>) -> usize {
    let now = Instant::ZERO;
    let mut pool: Dispatcher<StepTask> = Dispatcher::new(DispatcherConfig::default());
    let mut engine: WorkflowEngine<()> = WorkflowEngine::new();
    let profile = AgentProfile::builder()
        .capabilities(["work"])
        .capacity(ENGINE_CAPACITY)
        .build()
        .expect("a valid profile");
    for agent in 1..=ENGINE_AGENTS {
        pool.register_agent(AgentId::new(agent), profile.clone(), now)
            .expect("a new agent");
    }
    for _ in 0..ENGINE_RUNS {
        engine.start(&mut pool, Arc::clone(def), None, now);
    }
    let (mut steps, mut finished) = (0, 0);
    loop {
        // The pool's actions are all the engine's here.
        while let Some(action) = pool.poll_action() {
            if let Some(other) = engine.handle_action(&mut pool, action) {
                panic!("unexpected pool action {other:?}");
            }
        }
        let Some(action) = engine.poll_action() else {
            break;
        };
        match action {
            EngineAction::Assign {
                task, agent, token, ..
            } => {
                steps += 1;
                engine
                    .report(&mut pool, task, agent, token, Ok(StepOutput::empty()), now)
                    .expect("a live task");
            }
            EngineAction::Finished { outcome, .. } => {
                assert_eq!(outcome, RunOutcome::Succeeded);
                finished += 1;
            }
            other => panic!("unexpected action {other:?}"),
        }
    }
    assert_eq!(finished, ENGINE_RUNS);
    steps
}
