//! Properties every routing strategy must keep, checked against an
//! independent model of eligibility. Case counts follow `PROPTEST_CASES`.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use proptest::prelude::*;
use taskweave::agent::{AgentProfile, Registry};
use taskweave::routing::{
    self, Adaptive, Feedback, LeastLoaded, PowerOfTwoChoices, Rendezvous, RoundRobin, RoutingError,
    RoutingStrategy, WeightedRoundRobin,
};
use taskweave::{AgentId, Instant, TaskRequirements};

fn register_uniform(registry: &mut Registry, ids: impl IntoIterator<Item = u64>, capacity: u32) {
    for id in ids {
        let profile = AgentProfile::builder().capacity(capacity).build().unwrap();
        registry
            .register(AgentId::new(id), profile, Instant::ZERO)
            .unwrap();
    }
}

proptest! {
    /// Never an ineligible agent, and an error exactly when none is eligible,
    /// for every strategy, across several routing rounds that change loads.
    #[test]
    fn strategies_return_eligible_agents_or_no_agent_exactly_when_none_is_eligible(
        (pool, task) in pool_and_task(),
        seed in any::<u64>(),
    ) {
        let mut registry = build_registry(&pool);
        let mut loads: Vec<u32> = pool.iter().map(|a| a.load).collect();
        let requirements = requirements(&task);
        let mut strategies = all_strategies(seed);
        for _round in 0..4 {
            let eligible = model_eligible(&pool, &loads, &task);
            for (name, strategy) in strategies.iter_mut() {
                let routed = routing::route(&registry, strategy, &requirements);
                let preferred_wins = task.preferred_agent.is_some_and(|p| eligible.contains(&p));
                if let (Ok(agent), "least-loaded", false) = (&routed, *name, preferred_wins) {
                    // The indexed pick is a true minimum of load / capacity.
                    let ratio = |i: u64| (u64::from(loads[i as usize]), u64::from(pool[i as usize].capacity));
                    let (la, ca) = ratio(agent.get());
                    let minimal = eligible.iter().all(|&e| {
                        let (le, ce) = ratio(e);
                        la * ce <= le * ca
                    });
                    prop_assert!(minimal, "least-loaded chose {} with loads {:?}", agent, loads);
                }
                if let (Ok(agent), "priority-based", false) = (&routed, *name, preferred_wins) {
                    // Highest priority first, then the lowest load / capacity.
                    let key = |i: u64| {
                        let spec = &pool[i as usize];
                        (std::cmp::Reverse(spec.priority), u64::from(loads[i as usize]), u64::from(spec.capacity))
                    };
                    let (pa, la, ca) = key(agent.get());
                    let best = eligible.iter().all(|&e| {
                        let (pe, le, ce) = key(e);
                        pa < pe || (pa == pe && la * ce <= le * ca)
                    });
                    prop_assert!(best, "priority-based chose {} with loads {:?}", agent, loads);
                }
                match routed {
                    Ok(agent) => prop_assert!(eligible.contains(&agent.get()), "{name} chose ineligible {agent}"),
                    Err(err) => {
                        prop_assert!(eligible.is_empty(), "{name} failed ({err}) with eligible {eligible:?}");
                        let strategy_fault = matches!(err, RoutingError::Declined | RoutingError::IneligibleChoice { .. });
                        prop_assert!(!strategy_fault, "{} misbehaved: {}", name, err);
                    }
                }
            }
            // Take a slot on the first eligible agent so the next round sees new loads.
            if let Some(&first) = eligible.iter().next() {
                registry.acquire(AgentId::new(first)).unwrap();
                loads[first as usize] += 1;
            }
        }
    }

    /// A preferred agent wins whenever it is eligible.
    #[test]
    fn an_eligible_preferred_agent_always_wins((pool, task) in pool_and_task()) {
        let registry = build_registry(&pool);
        let loads: Vec<u32> = pool.iter().map(|a| a.load).collect();
        let eligible = model_eligible(&pool, &loads, &task);
        if let Some(preferred) = task.preferred_agent.filter(|p| eligible.contains(p)) {
            for (name, mut strategy) in all_strategies(1) {
                let chosen = routing::route(&registry, &mut strategy, &requirements(&task));
                prop_assert_eq!(chosen, Ok(AgentId::new(preferred)), "{}", name);
            }
        }
    }

    /// Over k·n picks among n eligible agents, round robin gives each exactly k.
    #[test]
    fn round_robin_gives_each_eligible_agent_exactly_k_of_k_times_n(
        pool in pool(),
        required in proptest::sample::subsequence(CAPABILITIES.to_vec(), 0..=1),
        k in 1usize..5,
    ) {
        let registry = build_registry(&pool);
        let task = TaskSpec { required, zone: None, excluded: vec![], avoided: vec![], pinned: None, preferred_agent: None, affinity: None };
        let loads: Vec<u32> = pool.iter().map(|a| a.load).collect();
        let eligible = model_eligible(&pool, &loads, &task);
        if eligible.is_empty() {
            // Nothing to rotate over; other cases exercise the rotation.
            return Ok(());
        }
        let mut rr = RoundRobin::new();
        let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
        for _ in 0..k * eligible.len() {
            let agent = routing::route(&registry, &mut rr, &requirements(&task)).unwrap();
            *counts.entry(agent.get()).or_default() += 1;
        }
        prop_assert_eq!(counts.keys().copied().collect::<BTreeSet<_>>(), eligible);
        prop_assert!(counts.values().all(|&c| c == k), "{:?}", counts);
    }

    /// Over every full cycle of Σ weight picks, each agent's count equals its weight.
    #[test]
    fn weighted_round_robin_matches_weights_over_every_cycle(
        weights in proptest::collection::vec(1u32..7, 1..10),
        cycles in 1usize..4,
    ) {
        let mut registry = Registry::new();
        for (i, &w) in weights.iter().enumerate() {
            let profile = AgentProfile::builder().weight(w).capacity(1000).build().unwrap();
            registry.register(AgentId::new(i as u64), profile, Instant::ZERO).unwrap();
        }
        let total: u32 = weights.iter().sum();
        let mut wrr = WeightedRoundRobin::new();
        for _ in 0..cycles {
            let mut counts = vec![0u32; weights.len()];
            for _ in 0..total {
                let agent = routing::route(&registry, &mut wrr, &TaskRequirements::new()).unwrap();
                counts[agent.get() as usize] += 1;
            }
            prop_assert_eq!(&counts, &weights);
        }
    }

    /// Rendezvous: when an agent leaves only its keys move; when one joins
    /// it takes about 1/(n+1) of the keys and every moved key goes to it.
    #[test]
    fn rendezvous_moves_only_the_keys_it_must(n in 2u64..10, leaving in any::<proptest::sample::Index>()) {
        const KEYS: usize = 2000;
        let key = |i: usize| TaskRequirements::new().affinity_key(format!("tenant-{i}"));
        let place = |registry: &Registry| -> Vec<AgentId> {
            let mut strategy = Rendezvous::new();
            (0..KEYS).map(|i| routing::route(registry, &mut strategy, &key(i)).unwrap()).collect()
        };
        let mut registry = Registry::new();
        register_uniform(&mut registry, 0..n, 1_000_000);
        let before = place(&registry);

        let gone = AgentId::new(leaving.index(n as usize) as u64);
        registry.unregister(gone).unwrap();
        let after_leave = place(&registry);
        for (b, a) in before.iter().zip(&after_leave) {
            if *b != gone {
                prop_assert_eq!(a, b, "a key of a staying agent moved");
            }
        }
        registry.register(gone, AgentProfile::builder().capacity(1_000_000).build().unwrap(), Instant::ZERO).unwrap();
        prop_assert_eq!(&place(&registry), &before, "placement depends only on the set of agents");

        let newcomer = AgentId::new(n);
        register_uniform(&mut registry, [n], 1_000_000);
        let after_join = place(&registry);
        let moved: Vec<usize> = (0..KEYS).filter(|&i| after_join[i] != before[i]).collect();
        prop_assert!(moved.iter().all(|&i| after_join[i] == newcomer), "a key moved between old agents");
        let expected = KEYS as f64 / (n + 1) as f64;
        let share = moved.len() as f64 / expected;
        prop_assert!((0.6..1.4).contains(&share), "moved {} keys, expected about {expected}", moved.len());
    }

    /// Least loaded keeps max − min load ≤ 1 for identical tasks on equal agents.
    #[test]
    fn least_loaded_keeps_the_load_spread_at_most_one(n in 1u64..40, capacity in 1u32..6) {
        let mut registry = Registry::new();
        register_uniform(&mut registry, 0..n, capacity);
        let mut strategy = LeastLoaded::new();
        for _ in 0..n * u64::from(capacity) {
            let agent = routing::route(&registry, &mut strategy, &TaskRequirements::new()).unwrap();
            registry.acquire(agent).unwrap();
            let loads: Vec<u32> = registry.iter().map(|r| r.load()).collect();
            let spread = loads.iter().max().unwrap() - loads.iter().min().unwrap();
            prop_assert!(spread <= 1, "loads {:?}", loads);
        }
        prop_assert_eq!(routing::route(&registry, &mut strategy, &TaskRequirements::new()), Err(RoutingError::NoEligibleAgent));
    }

    /// The same seed and the same inputs give the same choices.
    #[test]
    fn same_seed_same_choices((pool, task) in pool_and_task(), seed in any::<u64>()) {
        let run = || {
            let mut registry = build_registry(&pool);
            let requirements = requirements(&task);
            let mut p2c = PowerOfTwoChoices::new(seed);
            let mut adaptive = Adaptive::new();
            let mut choices = Vec::new();
            for step in 0..20u64 {
                let a = routing::route(&registry, &mut p2c, &requirements);
                let b = routing::route(&registry, &mut adaptive, &requirements);
                if let Ok(agent) = b {
                    let outcome = taskweave::agent::Outcome {
                        success: step % 3 != 0,
                        latency: std::time::Duration::from_millis(10 * step),
                    };
                    adaptive.observe(&Feedback { agent, kind: None, outcome });
                }
                if let Ok(agent) = a {
                    let _ = registry.acquire(agent);
                }
                choices.push((a, b));
            }
            choices
        };
        prop_assert_eq!(run(), run());
    }
}
