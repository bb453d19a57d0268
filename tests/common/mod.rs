//! Shared fixtures: random agent pools and tasks, and an independent,
//! string-based model of eligibility to check the indexed one against.

#![allow(dead_code)]

use std::collections::BTreeSet;

use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use taskweave::agent::{AgentProfile, AgentStatus, Registry};
use taskweave::routing::{
    Adaptive, CapabilityMatch, LeastLoaded, PowerOfTwoChoices, PriorityBased, Rendezvous,
    RoundRobin, RoutingStrategy, Scored, WeightedRoundRobin,
};
use taskweave::{AgentId, Instant, LabelConstraint, TaskRequirements};

pub(crate) const CAPABILITIES: [&str; 4] = ["a", "b", "c", "d"];

#[derive(Clone, Debug)]
pub(crate) struct AgentSpec {
    pub capabilities: Vec<&'static str>,
    pub capacity: u32,
    pub load: u32,
    pub status: AgentStatus,
    pub zone: Option<&'static str>,
    pub weight: u32,
    pub priority: u32,
}

#[derive(Clone, Debug)]
pub(crate) enum ZoneRule {
    Equals(&'static str),
    NotEquals(&'static str),
    OneOf(Vec<&'static str>),
}

#[derive(Clone, Debug)]
pub(crate) struct TaskSpec {
    pub required: Vec<&'static str>,
    pub zone: Option<ZoneRule>,
    pub excluded: Vec<u64>,
    pub avoided: Vec<u64>,
    pub pinned: Option<u64>,
    pub preferred_agent: Option<u64>,
    pub affinity: Option<u8>,
}

pub(crate) fn agent_spec() -> impl Strategy<Value = AgentSpec> {
    let status = prop_oneof![
        6 => Just(AgentStatus::Online),
        1 => Just(AgentStatus::Draining),
        1 => Just(AgentStatus::Offline),
        1 => Just(AgentStatus::Unhealthy),
    ];
    (
        subsequence(CAPABILITIES.to_vec(), 0..=4),
        1u32..4,
        0u32..4,
        status,
        proptest::option::of(select(vec!["eu", "us"])),
        1u32..5,
        0u32..3,
    )
        .prop_map(
            |(capabilities, capacity, load, status, zone, weight, priority)| AgentSpec {
                capabilities,
                capacity,
                load: load.min(capacity),
                status,
                zone,
                weight,
                priority,
            },
        )
}

/// Agent ids `0..n` plus two that never exist.
fn agent_ref(n: usize) -> impl Strategy<Value = u64> {
    0..(n as u64 + 2)
}

pub(crate) fn task_spec(n: usize) -> impl Strategy<Value = TaskSpec> {
    let zone = prop_oneof![
        Just(None),
        select(vec!["eu", "us", "mars"]).prop_map(|z| Some(ZoneRule::Equals(z))),
        select(vec!["eu", "us", "mars"]).prop_map(|z| Some(ZoneRule::NotEquals(z))),
        subsequence(vec!["eu", "us", "mars"], 0..=3).prop_map(|z| Some(ZoneRule::OneOf(z))),
    ];
    (
        subsequence(vec!["a", "b", "c", "d", "e"], 0..=2),
        zone,
        proptest::collection::vec(agent_ref(n), 0..3),
        proptest::collection::vec(agent_ref(n), 0..2),
        proptest::option::weighted(0.15, agent_ref(n)),
        proptest::option::weighted(0.15, agent_ref(n)),
        proptest::option::of(any::<u8>()),
    )
        .prop_map(
            |(required, zone, excluded, avoided, pinned, preferred_agent, affinity)| TaskSpec {
                required,
                zone,
                excluded,
                avoided,
                pinned,
                preferred_agent,
                affinity,
            },
        )
}

pub(crate) fn pool() -> impl Strategy<Value = Vec<AgentSpec>> {
    proptest::collection::vec(agent_spec(), 0..24)
}

pub(crate) fn pool_and_task() -> impl Strategy<Value = (Vec<AgentSpec>, TaskSpec)> {
    pool().prop_flat_map(|pool| {
        let n = pool.len();
        (Just(pool), task_spec(n))
    })
}

pub(crate) fn build_registry(pool: &[AgentSpec]) -> Registry {
    let mut registry = Registry::new();
    for (i, spec) in pool.iter().enumerate() {
        let mut profile = AgentProfile::builder()
            .capabilities(spec.capabilities.iter().copied())
            .capacity(spec.capacity)
            .weight(spec.weight)
            .priority(spec.priority);
        if let Some(zone) = spec.zone {
            profile = profile.label("zone", zone);
        }
        let id = AgentId::new(i as u64);
        registry
            .register(id, profile.build().expect("valid profile"), Instant::ZERO)
            .expect("fresh id");
        registry
            .set_load(id, spec.load)
            .expect("load within capacity");
        registry.set_status(id, spec.status).expect("registered");
    }
    registry
}

pub(crate) fn requirements(task: &TaskSpec) -> TaskRequirements {
    let mut req = TaskRequirements::new()
        .require(task.required.iter().copied())
        .exclude(task.excluded.iter().map(|&i| AgentId::new(i)))
        .avoid(task.avoided.iter().map(|&i| AgentId::new(i)));
    if let Some(rule) = &task.zone {
        req = req.label(match rule {
            ZoneRule::Equals(z) => LabelConstraint::equals("zone", *z),
            ZoneRule::NotEquals(z) => LabelConstraint::not_equals("zone", *z),
            ZoneRule::OneOf(zs) => LabelConstraint::one_of("zone", zs.iter().copied()),
        });
    }
    if let Some(p) = task.pinned {
        req = req.pin(AgentId::new(p));
    }
    if let Some(p) = task.preferred_agent {
        req = req.prefer_agent(AgentId::new(p));
    }
    if let Some(key) = task.affinity {
        req = req.affinity_key(format!("key-{key}"));
    }
    req
}

/// Eligibility computed straight from the specs, with strings and loops:
/// independent of interning, bitsets and indexes.
pub(crate) fn model_eligible(pool: &[AgentSpec], loads: &[u32], task: &TaskSpec) -> BTreeSet<u64> {
    (0..pool.len() as u64)
        .filter(|&i| {
            let spec = &pool[i as usize];
            let zone_ok = match &task.zone {
                None => true,
                Some(ZoneRule::Equals(z)) => spec.zone == Some(*z),
                Some(ZoneRule::NotEquals(z)) => spec.zone != Some(*z),
                Some(ZoneRule::OneOf(zs)) => spec.zone.is_some_and(|have| zs.contains(&have)),
            };
            spec.status == AgentStatus::Online
                && loads[i as usize] < spec.capacity
                && task.required.iter().all(|c| spec.capabilities.contains(c))
                && zone_ok
                && !task.excluded.contains(&i)
                && !task.avoided.contains(&i)
                && task.pinned.is_none_or(|p| p == i)
        })
        .collect()
}

/// One instance of every built-in strategy, named.
pub(crate) fn all_strategies(seed: u64) -> Vec<(&'static str, Box<dyn RoutingStrategy>)> {
    vec![
        ("capability-match", Box::new(CapabilityMatch::new())),
        ("round-robin", Box::new(RoundRobin::new())),
        ("weighted-round-robin", Box::new(WeightedRoundRobin::new())),
        ("least-loaded", Box::new(LeastLoaded::new())),
        ("power-of-two", Box::new(PowerOfTwoChoices::new(seed))),
        ("priority-based", Box::new(PriorityBased::new())),
        ("rendezvous", Box::new(Rendezvous::new())),
        ("scored", Box::new(Scored::new())),
        ("adaptive", Box::new(Adaptive::new())),
    ]
}
