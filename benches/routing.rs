//! Cost of one routing decision for every strategy at 10, 100, 1,000 and
//! 10,000 agents, plus bare baselines measured in the same run: a linear
//! least-loaded scan over a plain `Vec` and a `BTreeSet` minimum.
//!
//! Agents are drawn from eight fixed profiles (agent kinds), as in a real
//! pool; loads are random with a fixed seed. The task requires one capability
//! that half of the kinds have. Run with `cargo bench --bench routing`.

#[path = "workloads/config.rs"]
mod bench_config;
use bench_config::config;

use std::collections::BTreeSet;
use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use taskweave::agent::{AgentProfile, Outcome, Registry};
use taskweave::routing::{
    self, Adaptive, CapabilityMatch, Feedback, LeastLoaded, PowerOfTwoChoices, PriorityBased,
    Rendezvous, ResolvedRequirements, RoundRobin, RoutingStrategy, Scored, WeightedRoundRobin,
};
use taskweave::{AgentId, Instant, TaskRequirements};

const SIZES: [usize; 4] = [10, 100, 1_000, 10_000];
const SEED: u64 = 0x7a5c_3a7e;

/// Eight agent kinds: capabilities, capacity, weight, priority.
fn kinds() -> Vec<AgentProfile> {
    let caps: [&[&str]; 8] = [
        &["python", "gpu"],
        &["python"],
        &["rust", "gpu"],
        &["rust"],
        &["python", "rust", "gpu"],
        &["sql"],
        &["sql", "python"],
        &["vision", "gpu"],
    ];
    caps.iter()
        .enumerate()
        .map(|(i, c)| {
            AgentProfile::builder()
                .capabilities(c.iter().copied())
                .capacity(4 + i as u32)
                .weight(1 + (i as u32 % 3))
                .priority(i as u32 % 4)
                .cost_per_task(i as f64 * 0.1)
                .build()
                .expect("valid profile")
        })
        .collect()
}

fn pool(n: usize) -> Registry {
    let mut rng = StdRng::seed_from_u64(SEED);
    let kinds = kinds();
    let mut registry = Registry::new();
    for i in 0..n {
        let profile = kinds[i % kinds.len()].clone();
        let load = rng.random_range(0..profile.capacity());
        let id = AgentId::new(i as u64);
        registry
            .register(id, profile, Instant::ZERO)
            .expect("fresh id");
        registry.set_load(id, load).expect("load below capacity");
        let outcome = Outcome {
            success: rng.random_bool(0.9),
            latency: Duration::from_millis(rng.random_range(10..500)),
        };
        registry.record_outcome(id, outcome).expect("registered");
    }
    registry
}

fn gpu_tasks(registry: &Registry, keys: usize) -> Vec<ResolvedRequirements> {
    (0..keys)
        .map(|k| {
            let task = TaskRequirements::new()
                .require(["gpu"])
                .prefer(["python"])
                .affinity_key(format!("session-{k}"))
                .kind("inference");
            ResolvedRequirements::new(registry, &task).expect("gpu is known")
        })
        .collect()
}

fn bench_strategy<S: RoutingStrategy>(
    c: &mut Criterion,
    name: &str,
    mut make: impl FnMut(&Registry) -> S,
) {
    let mut group = c.benchmark_group(format!("route/{name}"));
    group.throughput(Throughput::Elements(1));
    for n in SIZES {
        let registry = pool(n);
        let tasks = gpu_tasks(&registry, 64);
        let mut strategy = make(&registry);
        let mut next = 0usize;
        group.bench_with_input(BenchmarkId::from_parameter(n), &registry, |b, registry| {
            b.iter(|| {
                next = (next + 1) % tasks.len();
                black_box(routing::route_resolved(
                    registry,
                    &mut strategy,
                    &tasks[next],
                ))
            });
        });
    }
    group.finish();
}

fn trained_adaptive(registry: &Registry) -> Adaptive {
    let mut adaptive = Adaptive::new();
    let mut rng = StdRng::seed_from_u64(SEED);
    for record in registry.iter() {
        for _ in 0..3 {
            let outcome = Outcome {
                success: rng.random_bool(0.8),
                latency: Duration::from_millis(rng.random_range(10..500)),
            };
            adaptive.observe(&Feedback {
                agent: record.id(),
                kind: Some("inference"),
                outcome,
            });
        }
    }
    adaptive
}

fn strategies(c: &mut Criterion) {
    bench_strategy(c, "capability_match", |_| CapabilityMatch::new());
    bench_strategy(c, "round_robin", |_| RoundRobin::new());
    bench_strategy(c, "weighted_round_robin", |_| WeightedRoundRobin::new());
    bench_strategy(c, "least_loaded", |_| LeastLoaded::new());
    bench_strategy(c, "power_of_two_choices", |_| PowerOfTwoChoices::new(SEED));
    bench_strategy(c, "priority_based", |_| PriorityBased::new());
    bench_strategy(c, "rendezvous", |_| Rendezvous::new());
    bench_strategy(c, "scored", |_| Scored::new());
    bench_strategy(c, "adaptive", trained_adaptive);
}

/// Route, take the slot, give it back: the index maintenance a dispatcher pays.
fn least_loaded_assign_release(c: &mut Criterion) {
    let mut group = c.benchmark_group("assign_release/least_loaded");
    group.throughput(Throughput::Elements(1));
    for n in SIZES {
        let mut registry = pool(n);
        let tasks = gpu_tasks(&registry, 1);
        let mut strategy = LeastLoaded::new();
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| {
                let agent = routing::route_resolved(&registry, &mut strategy, &tasks[0])
                    .expect("eligible agent");
                registry.acquire(agent).expect("free slot");
                registry.release(agent).expect("slot held");
                black_box(agent)
            });
        });
    }
    group.finish();
}

/// Bare data-structure baselines for the same pools.
fn baselines(c: &mut Criterion) {
    let mut group = c.benchmark_group("baseline");
    group.throughput(Throughput::Elements(1));
    for n in SIZES {
        let registry = pool(n);
        let gpu = registry.capabilities().lookup("gpu").expect("gpu is known");
        // (load, capacity, has gpu) in a flat vector: the linear scan.
        let flat: Vec<(u32, u32, bool)> = registry
            .iter()
            .map(|r| (r.load(), r.capacity(), r.capabilities().contains(gpu)))
            .collect();
        group.bench_with_input(
            BenchmarkId::new("linear_scan_least_loaded", n),
            &flat,
            |b, flat| {
                b.iter(|| {
                    black_box(flat)
                        .iter()
                        .enumerate()
                        .filter(|(_, (load, cap, gpu))| *gpu && load < cap)
                        .min_by(|(_, a), (_, b)| {
                            (u64::from(a.0) * u64::from(b.1))
                                .cmp(&(u64::from(b.0) * u64::from(a.1)))
                        })
                        .map(|(i, _)| i)
                });
            },
        );
        // A single ordered set keyed by utilisation: the cheapest possible index.
        let ordered: BTreeSet<(u64, usize)> = flat
            .iter()
            .enumerate()
            .filter(|(_, (load, cap, gpu))| *gpu && load < cap)
            .map(|(i, (load, cap, _))| ((u64::from(*load) << 32) / u64::from(*cap), i))
            .collect();
        group.bench_with_input(
            BenchmarkId::new("btreeset_first", n),
            &ordered,
            |b, ordered| {
                b.iter(|| black_box(ordered).first().copied());
            },
        );
    }
    group.finish();
}

criterion_group! {
    name = routing;
    config = config(50);
    targets = strategies, least_loaded_assign_release, baselines
}
criterion_main!(routing);
