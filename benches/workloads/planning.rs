//! Planning workloads shared by `benches/planning.rs` and
//! `examples/perf_report.rs`, so both measure exactly the same thing.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use taskweave::AgentId;
use taskweave::planning::{CapabilityMatrix, PlanAgent};
use taskweave::workflow::{StepDef, WorkflowDef};

const SEED: u64 = 0x4ef7_5eed;
/// Steps of the large HEFT workload.
pub(crate) const HEFT_STEPS: usize = 1_000;
/// Layers of its DAG.
pub(crate) const HEFT_LAYERS: usize = 20;
/// Agents it is planned on.
pub(crate) const HEFT_AGENTS: usize = 50;
/// Capabilities a step may require (one at most) and agents hold.
const CAPABILITIES: [&str; 4] = ["cpu", "gpu", "io", "net"];
/// Most predecessors of one step, all in the layer before it.
const MAX_PREDECESSORS: usize = 3;
/// Share of the steps that require a capability.
const SPECIALISED: f64 = 0.5;

/// A random layered DAG of `steps` agent steps in `layers` layers of equal
/// width: each step after the first layer depends on 1 to 3 distinct steps
/// of the layer before; estimates are 1 to 1,000 ms; half the steps require
/// one of four capabilities. Fixed seed.
pub(crate) fn layered_dag(steps: usize, layers: usize) -> WorkflowDef {
    let mut rng = StdRng::seed_from_u64(SEED);
    let width = steps.div_ceil(layers.max(1)).max(1);
    let mut builder = WorkflowDef::builder("layered_dag", 1);
    for i in 0..steps {
        let mut step = StepDef::agent(format!("s{i}"))
            .estimated_duration(Duration::from_millis(rng.random_range(1..=1_000)));
        if rng.random_bool(SPECIALISED) {
            step = step.capabilities([CAPABILITIES[rng.random_range(0..CAPABILITIES.len())]]);
        }
        builder = builder.step(step);
    }
    let mut predecessors = Vec::with_capacity(MAX_PREDECESSORS);
    for i in width..steps {
        let layer_start = (i / width - 1) * width;
        let wanted = rng.random_range(1..=MAX_PREDECESSORS).min(width);
        predecessors.clear();
        while predecessors.len() < wanted {
            let from = layer_start + rng.random_range(0..width);
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

/// `agents` agents with speeds in `[0.25, 4]`, each holding 1 to 3 of the
/// four capabilities (agent `i` always holds capability `i mod 4`, so every
/// capability is covered from four agents on). Fixed seed.
pub(crate) fn agent_pool(agents: usize) -> CapabilityMatrix {
    let mut rng = StdRng::seed_from_u64(SEED ^ 0xa6e7);
    CapabilityMatrix::new((0..agents).map(|i| {
        let mut held = vec![CAPABILITIES[i % CAPABILITIES.len()]];
        for _ in 0..rng.random_range(0..=2) {
            let extra = CAPABILITIES[rng.random_range(0..CAPABILITIES.len())];
            if !held.contains(&extra) {
                held.push(extra);
            }
        }
        PlanAgent::new(AgentId::new(i as u64), held).speed(rng.random_range(0.25..=4.0))
    }))
    .expect("valid agents")
}
