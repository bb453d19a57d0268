//! Routing strategies compared: a dozen agents, a few thousand tasks.
//!
//! Twelve agents with mixed capabilities, capacities, weights, priorities,
//! costs and zones serve 3,000 tasks arriving six per tick of virtual time.
//! A task holds its agent's slot for a few ticks and succeeds or fails
//! depending on how reliable the agent is. Each strategy routes the same
//! task stream; the table shows how many tasks each agent got, how evenly
//! the load was spread, and how many tasks succeeded.
//!
//! Run with `cargo run --release --example routing`.

use std::collections::VecDeque;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use taskweave::agent::{AgentProfile, Outcome, Registry};
use taskweave::routing::{
    self, Adaptive, CapabilityMatch, Feedback, LeastLoaded, PowerOfTwoChoices, PriorityBased,
    Rendezvous, RoundRobin, RoutingError, RoutingStrategy, Scored, WeightedRoundRobin,
};
use taskweave::{AgentId, Instant, LabelConstraint, TaskRequirements};

const TASKS: usize = 3_000;
/// Arrivals per tick: enough to keep the pool about three-quarters busy.
const PER_TICK: usize = 6;
const SEED: u64 = 2026;

/// (capabilities, capacity, weight, priority, cost, zone, reliability)
type Kind = (
    &'static [&'static str],
    u32,
    u32,
    u32,
    f64,
    &'static str,
    f64,
);

const AGENTS: [Kind; 12] = [
    (&["python"], 4, 1, 0, 0.10, "eu", 0.97),
    (&["python"], 4, 1, 0, 0.10, "eu", 0.97),
    (&["python"], 4, 1, 0, 0.10, "us", 0.70),
    (&["python"], 4, 1, 0, 0.10, "us", 0.97),
    (&["python", "gpu"], 2, 2, 1, 0.80, "eu", 0.95),
    (&["python", "gpu"], 2, 2, 1, 0.80, "us", 0.95),
    (&["python", "gpu"], 2, 2, 1, 0.80, "us", 0.60),
    (&["rust"], 3, 1, 0, 0.20, "eu", 0.99),
    (&["rust"], 3, 1, 0, 0.20, "eu", 0.99),
    (&["rust"], 3, 1, 0, 0.20, "us", 0.90),
    (&["python", "rust", "gpu"], 6, 3, 2, 1.50, "eu", 0.99),
    (&["python", "rust", "gpu"], 6, 3, 2, 1.50, "us", 0.99),
];

fn registry() -> Result<Registry, taskweave::Error> {
    let mut registry = Registry::new();
    for (i, (caps, capacity, weight, priority, cost, zone, _)) in AGENTS.iter().enumerate() {
        let profile = AgentProfile::builder()
            .capabilities(caps.iter().copied())
            .capacity(*capacity)
            .weight(*weight)
            .priority(*priority)
            .cost_per_task(*cost)
            .label("zone", *zone)
            .build()?;
        registry.register(AgentId::new(i as u64 + 1), profile, Instant::ZERO)?;
    }
    Ok(registry)
}

/// The task stream: the same for every strategy.
fn tasks() -> Vec<(TaskRequirements, u64)> {
    let mut rng = StdRng::seed_from_u64(SEED);
    (0..TASKS)
        .map(|i| {
            let roll = rng.random_range(0..100);
            let task = match roll {
                0..50 => TaskRequirements::new().require(["python"]).kind("etl"),
                50..75 => TaskRequirements::new()
                    .require(["gpu"])
                    .prefer(["rust"])
                    .kind("inference"),
                75..90 => TaskRequirements::new().require(["rust"]).kind("build"),
                _ => TaskRequirements::new()
                    .require(["python"])
                    .label(LabelConstraint::equals("zone", "eu"))
                    .kind("gdpr"),
            };
            let task = task.affinity_key(format!("tenant-{}", i % 40));
            (task, rng.random_range(2..10))
        })
        .collect()
}

struct Report {
    per_agent: Vec<usize>,
    unroutable: usize,
    succeeded: usize,
    mean_spread: f64,
}

/// Runs the task stream through one strategy in virtual time.
fn simulate(strategy: &mut dyn RoutingStrategy) -> Result<Report, taskweave::Error> {
    let mut registry = registry()?;
    let mut rng = StdRng::seed_from_u64(SEED ^ 1);
    let mut running: VecDeque<(u64, AgentId, bool, Option<String>)> = VecDeque::new();
    let mut report = Report {
        per_agent: vec![0; AGENTS.len()],
        unroutable: 0,
        succeeded: 0,
        mean_spread: 0.0,
    };
    for (i, (task, duration)) in tasks().into_iter().enumerate() {
        let tick = (i / PER_TICK) as u64;
        // Finish the tasks whose time is up, and let the strategy learn.
        running.make_contiguous().sort_by_key(|r| r.0);
        while running.front().is_some_and(|r| r.0 <= tick) {
            let Some((_, agent, success, kind)) = running.pop_front() else {
                break;
            };
            registry.release(agent)?;
            let outcome = Outcome {
                success,
                latency: Duration::from_millis(100),
            };
            registry.record_outcome(agent, outcome)?;
            strategy.observe(&Feedback {
                agent,
                kind: kind.as_deref(),
                outcome,
            });
            report.succeeded += usize::from(success);
        }
        match routing::route(&registry, strategy, &task) {
            Ok(agent) => {
                registry.acquire(agent)?;
                let reliability = AGENTS[agent.get() as usize - 1].6;
                let success = rng.random_bool(reliability);
                running.push_back((
                    tick + duration,
                    agent,
                    success,
                    task.task_kind().map(str::to_owned),
                ));
                report.per_agent[agent.get() as usize - 1] += 1;
            }
            // Every eligible agent is busy: a scheduler would queue the task.
            Err(RoutingError::NoEligibleAgent) => report.unroutable += 1,
            Err(other) => return Err(other.into()),
        }
        let utilization = registry.iter().map(|r| r.utilization());
        let (lo, hi) = utilization.fold((f64::MAX, f64::MIN), |(lo, hi), u| (lo.min(u), hi.max(u)));
        report.mean_spread += (hi - lo) / TASKS as f64;
    }
    report.succeeded += running.iter().filter(|r| r.2).count();
    Ok(report)
}

fn main() -> Result<(), taskweave::Error> {
    let strategies: Vec<(&str, Box<dyn RoutingStrategy>)> = vec![
        ("capability match", Box::new(CapabilityMatch::new())),
        ("round robin", Box::new(RoundRobin::new())),
        ("weighted rr", Box::new(WeightedRoundRobin::new())),
        ("least loaded", Box::new(LeastLoaded::new())),
        ("power of two", Box::new(PowerOfTwoChoices::new(SEED))),
        ("priority based", Box::new(PriorityBased::new())),
        ("rendezvous", Box::new(Rendezvous::new())),
        ("scored", Box::new(Scored::new())),
        ("adaptive (ucb1)", Box::new(Adaptive::new())),
    ];
    println!(
        "taskweave routing strategies compared: {TASKS} tasks, {} agents, one task per tick\n",
        AGENTS.len()
    );
    println!("agent kinds: 1-4 python (cap 4; #3 flaky), 5-7 python+gpu (cap 2; #7 flaky),");
    println!("             8-10 rust (cap 3), 11-12 python+rust+gpu (cap 6, priority 2)\n");
    let header: String = (1..=AGENTS.len())
        .map(|i| format!("{:>5}", format!("a{i}")))
        .collect();
    println!(
        "{:<17}{header}  unroutable  spread  ok/routed  ok/all",
        "tasks per agent"
    );
    for (name, mut strategy) in strategies {
        let report = simulate(strategy.as_mut())?;
        let row: String = report.per_agent.iter().map(|n| format!("{n:>5}")).collect();
        let routed = TASKS - report.unroutable;
        println!(
            "{name:<17}{row}  {:>10}  {:>6.2}  {:>8.1}%  {:>5.1}%",
            report.unroutable,
            report.mean_spread,
            100.0 * report.succeeded as f64 / routed as f64,
            100.0 * report.succeeded as f64 / TASKS as f64,
        );
    }
    println!(
        "\nspread: mean over time of (max - min) utilization across agents;\nok/routed: tasks that succeeded, of those routed; ok/all: of every task (unroutable ones count as not done)."
    );
    Ok(())
}
