//! Routing strategies' saved state: a strategy loaded from another's saved
//! state (through JSON) picks exactly as the original from then on; a
//! corrupted or foreign state is refused or picks safely; a dispatcher
//! restored from a snapshot keeps routing as the original, with its
//! configuration checked. Case counts follow `PROPTEST_CASES`.

#![cfg(feature = "serde")]

mod common;
mod corrupt;

use std::time::Duration;

use common::all_strategies;
use corrupt::{at_path, corrupt_leaf, paths_where};
use proptest::prelude::*;
use taskweave::agent::{AgentProfile, Outcome, Registry};
use taskweave::resilience::{Fixed, RetryPolicy};
use taskweave::routing::{
    self, Adaptive, Feedback, RoundRobin, RoutingError, RoutingStrategy, StrategyState,
    WeightedRoundRobin,
};
use taskweave::scheduler::{Dispatcher, DispatcherConfig, SchedulerError, TaskSpec};
use taskweave::{AgentId, Instant, TaskRequirements};

mod harness;

/// Agents with the given weights, each with room for every pick.
fn registry(weights: &[u32]) -> Registry {
    let mut registry = Registry::new();
    for (id, &weight) in (1..).zip(weights) {
        let profile = AgentProfile::builder()
            .capacity(1_000)
            .weight(weight)
            .build()
            .unwrap();
        registry
            .register(AgentId::new(id), profile, Instant::ZERO)
            .unwrap();
    }
    registry
}

const KINDS: [Option<&str>; 3] = [None, Some("summarize"), Some("translate")];

/// `picks` routings, each followed by feedback whose success and latency
/// come from `outcomes`; the chosen agents in order.
fn run(
    strategy: &mut dyn RoutingStrategy,
    registry: &Registry,
    outcomes: &[(u8, u16)],
) -> Vec<AgentId> {
    outcomes
        .iter()
        .map(|&(draw, latency_ms)| {
            let kind = KINDS[usize::from(draw) % KINDS.len()];
            let mut task = TaskRequirements::new();
            if let Some(kind) = kind {
                task = task.kind(kind);
            }
            let agent = routing::route(registry, strategy, &task).unwrap();
            let outcome = Outcome {
                success: draw % 5 != 0,
                latency: Duration::from_millis(latency_ms.into()),
            };
            strategy.observe(&Feedback {
                agent,
                kind,
                outcome,
            });
            agent
        })
        .collect()
}

fn through_json(state: &StrategyState) -> StrategyState {
    serde_json::from_str(&serde_json::to_string(state).unwrap()).unwrap()
}

proptest! {
    #![proptest_config(corrupt::config(64))]

    /// Every built-in strategy, loaded into a fresh one (built with another
    /// seed) from its saved state, picks as the original from then on, and
    /// saves the same state again.
    #[test]
    fn a_loaded_strategy_continues_as_the_original(
        weights in proptest::collection::vec(1u32..6, 1..8),
        before in proptest::collection::vec((any::<u8>(), 1u16..3_000), 0..40),
        after in proptest::collection::vec((any::<u8>(), 1u16..3_000), 1..40),
        seed in any::<u64>(),
    ) {
        let registry = registry(&weights);
        let originals = all_strategies(seed);
        let fresh = all_strategies(seed.wrapping_add(1));
        for ((name, mut original), (_, mut loaded)) in originals.into_iter().zip(fresh) {
            run(original.as_mut(), &registry, &before);
            let saved = original.save_state();
            loaded.load_state(through_json(&saved)).unwrap();
            prop_assert_eq!(loaded.save_state(), saved, "{} saves what it loaded", name);
            let expected = run(original.as_mut(), &registry, &after);
            let picked = run(loaded.as_mut(), &registry, &after);
            prop_assert_eq!(picked, expected, "{} diverged after loading", name);
        }
    }

    /// A saved state with one number or flag corrupted is refused with
    /// [`RoutingError::InvalidState`], or loads into a strategy that still
    /// routes every task to a registered agent without panicking.
    #[test]
    fn a_corrupted_state_is_refused_or_routes_safely(
        weights in proptest::collection::vec(1u32..6, 1..6),
        before in proptest::collection::vec((any::<u8>(), 1u16..3_000), 1..30),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), any::<u64>()), 1..3),
        seed in any::<u64>(),
    ) {
        let registry = registry(&weights);
        for ((name, mut original), (_, mut loaded)) in all_strategies(seed).into_iter().zip(all_strategies(seed)) {
            run(original.as_mut(), &registry, &before);
            let mut value = serde_json::to_value(original.save_state()).unwrap();
            let paths = paths_where(&value, |v| v.is_number() || v.is_boolean());
            for (at, how, noise) in &edits {
                if paths.is_empty() {
                    break;
                }
                let leaf = at_path(&mut value, &paths[at.index(paths.len())]);
                *leaf = corrupt_leaf(leaf, *how, *noise);
            }
            let Ok(state) = serde_json::from_value::<StrategyState>(value) else {
                continue;
            };
            match loaded.load_state(state) {
                Ok(()) => {
                    let picked = run(loaded.as_mut(), &registry, &before);
                    prop_assert!(picked.iter().all(|agent| registry.contains(*agent)), "{}", name);
                }
                Err(RoutingError::InvalidState { .. }) => {}
                Err(other) => prop_assert!(false, "{}: unexpected error {}", name, other),
            }
        }
    }
}

#[test]
fn a_strategy_refuses_another_strategys_state_and_stays_as_it_was() {
    let registry = registry(&[1, 1, 1]);
    let mut round_robin = RoundRobin::new();
    run(&mut round_robin, &registry, &[(1, 10)]);
    let before = round_robin.save_state();
    let error = round_robin
        .load_state(WeightedRoundRobin::new().save_state())
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "RoundRobin cannot load this state: the state was saved by WeightedRoundRobin"
    );
    assert_eq!(round_robin.save_state(), before);
    assert!(
        Adaptive::new()
            .load_state(StrategyState::stateless())
            .is_err()
    );
}

#[test]
fn a_host_strategy_opts_in_with_a_named_text_state() {
    /// Sends every task to the agent after the one it sent the last to.
    #[derive(Default)]
    struct Sticky {
        last: u64,
    }
    impl RoutingStrategy for Sticky {
        fn select(&mut self, candidates: &taskweave::routing::Candidates<'_>) -> Option<AgentId> {
            let next = candidates
                .next_after(self.last)
                .or_else(|| candidates.first())?;
            self.last = next.order();
            Some(next.id())
        }
        fn save_state(&self) -> StrategyState {
            StrategyState::host("sticky", self.last.to_string())
        }
        fn load_state(&mut self, state: StrategyState) -> Result<(), RoutingError> {
            let text = state.into_host("sticky")?;
            self.last = text.parse().map_err(|_| RoutingError::InvalidState {
                strategy: "sticky".into(),
                problem: format!("{text:?} is not a position"),
            })?;
            Ok(())
        }
    }
    let registry = registry(&[1, 1, 1]);
    let mut original = Sticky::default();
    run(&mut original, &registry, &[(1, 10), (2, 10)]);
    let mut loaded = Sticky::default();
    loaded
        .load_state(through_json(&original.save_state()))
        .unwrap();
    let rest = [(1, 10); 5];
    assert_eq!(
        run(&mut loaded, &registry, &rest),
        run(&mut original, &registry, &rest)
    );
    let foreign = StrategyState::host("other", "1");
    assert!(matches!(
        loaded.load_state(foreign),
        Err(RoutingError::InvalidState { .. })
    ));
}

fn config(seed: u64) -> DispatcherConfig {
    DispatcherConfig::builder()
        .retry_policy(Fixed::new(Duration::from_secs(1), 3).unwrap())
        .queue_capacity(64)
        .seed(seed)
        .build()
        .unwrap()
}

/// A dispatcher routing with `RoundRobin` over three agents, with `tasks`
/// submitted and assigned.
fn round_robin_dispatcher(tasks: u32) -> Dispatcher<u32, RoundRobin> {
    let mut d = Dispatcher::with_strategy(config(7), RoundRobin::new());
    for id in 1..=3 {
        let profile = AgentProfile::builder().capacity(100).build().unwrap();
        d.register_agent(AgentId::new(id), profile, Instant::ZERO)
            .unwrap();
    }
    submit_and_assign(&mut d, 0..tasks);
    d
}

fn submit_and_assign(
    d: &mut Dispatcher<u32, RoundRobin>,
    tasks: std::ops::Range<u32>,
) -> Vec<AgentId> {
    for n in tasks {
        let _ = d.submit(TaskSpec::new(n), Instant::from_secs(1)).unwrap();
    }
    harness::drain(d)
        .into_iter()
        .filter_map(|action| match action {
            taskweave::scheduler::Action::Assign { agent, .. } => Some(agent),
            _ => None,
        })
        .collect()
}

#[test]
fn a_restored_dispatcher_continues_the_rotation_with_the_stored_configuration() {
    let mut original = round_robin_dispatcher(4);
    let json = serde_json::to_string(&original.snapshot()).unwrap();
    let snapshot: taskweave::scheduler::Snapshot<u32> = serde_json::from_str(&json).unwrap();
    let config = snapshot.config().unwrap();
    let mut restored = Dispatcher::restore(config, RoundRobin::new(), snapshot).unwrap();
    let expected = submit_and_assign(&mut original, 4..10);
    assert_eq!(submit_and_assign(&mut restored, 4..10), expected);
    // Task 4 goes to agent 2: the rotation went on, it did not restart.
    assert_eq!(expected[0], AgentId::new(2));
}

#[test]
fn a_restore_with_another_configuration_names_the_setting() {
    let snapshot = round_robin_dispatcher(2).snapshot();
    let error = Dispatcher::restore(config(8), RoundRobin::new(), snapshot.clone()).unwrap_err();
    assert_eq!(error, SchedulerError::ConfigMismatch { setting: "seed" });
    let other_retry = DispatcherConfig::builder()
        .retry_policy(Fixed::new(Duration::from_secs(2), 3).unwrap())
        .queue_capacity(64)
        .seed(7)
        .build()
        .unwrap();
    let error = Dispatcher::restore(other_retry, RoundRobin::new(), snapshot).unwrap_err();
    assert_eq!(
        error,
        SchedulerError::ConfigMismatch {
            setting: "retry policy"
        }
    );
}

#[test]
fn a_host_retry_policy_is_trusted_on_restore_but_not_stored() {
    let host_policy = |failures: u32, _: Option<Duration>, _: &mut dyn rand::Rng| {
        (failures < 2).then_some(Duration::from_secs(1))
    };
    assert_eq!(host_policy.spec(), None);
    let host = || {
        DispatcherConfig::builder()
            .retry_policy(host_policy)
            .build()
            .unwrap()
    };
    let d: Dispatcher<u32> = Dispatcher::new(host());
    let snapshot = d.snapshot();
    assert!(matches!(
        snapshot.config(),
        Err(SchedulerError::InvalidConfig {
            setting: "retry policy",
            ..
        })
    ));
    let strategy: Box<dyn RoutingStrategy + Send> =
        Box::new(taskweave::routing::LeastLoaded::new());
    assert!(Dispatcher::restore(host(), strategy, snapshot.clone()).is_ok());
    let strategy: Box<dyn RoutingStrategy + Send> =
        Box::new(taskweave::routing::LeastLoaded::new());
    assert!(matches!(
        Dispatcher::restore(DispatcherConfig::default(), strategy, snapshot),
        Err(SchedulerError::ConfigMismatch {
            setting: "retry policy"
        })
    ));
}
