//! Behaviour of each strategy and of eligibility, case by case.

use std::time::Duration;

use taskweave::agent::{AgentProfile, AgentStatus, Outcome, Registry};
use taskweave::routing::{
    self, Adaptive, Candidates, CapabilityMatch, Feedback, LeastLoaded, PowerOfTwoChoices,
    PriorityBased, Rendezvous, ResolvedRequirements, RoundRobin, RoutingError, RoutingStrategy,
    ScoreWeights, Scored, WeightedRoundRobin,
};
use taskweave::scheduler::{
    Action, AttemptOutcome, Dispatcher, DispatcherConfig, TaskReport, TaskSpec,
};
use taskweave::{AgentId, Instant, LabelConstraint, TaskRequirements};

fn id(n: u64) -> AgentId {
    AgentId::new(n)
}

fn register(registry: &mut Registry, n: u64, profile: taskweave::agent::AgentProfileBuilder) {
    registry
        .register(id(n), profile.build().unwrap(), Instant::ZERO)
        .unwrap();
}

fn any_task() -> TaskRequirements {
    TaskRequirements::new()
}

#[test]
fn capability_match_is_first_fit_in_registration_order() {
    let mut registry = Registry::new();
    register(
        &mut registry,
        7,
        AgentProfile::builder().capabilities(["cpu"]),
    );
    register(
        &mut registry,
        3,
        AgentProfile::builder().capabilities(["cpu", "gpu"]),
    );
    register(
        &mut registry,
        5,
        AgentProfile::builder().capabilities(["cpu", "gpu"]),
    );
    let gpu = TaskRequirements::new().require(["gpu"]);
    assert_eq!(
        routing::route(&registry, &mut CapabilityMatch::new(), &gpu),
        Ok(id(3))
    );
    registry.set_status(id(3), AgentStatus::Draining).unwrap();
    assert_eq!(
        routing::route(&registry, &mut CapabilityMatch::new(), &gpu),
        Ok(id(5))
    );
    assert_eq!(
        routing::route(&registry, &mut CapabilityMatch::new(), &any_task()),
        Ok(id(7))
    );
}

#[test]
fn weighted_round_robin_is_smooth() {
    let mut registry = Registry::new();
    for (n, weight) in [(1, 5), (2, 1), (3, 1)] {
        register(
            &mut registry,
            n,
            AgentProfile::builder().weight(weight).capacity(100),
        );
    }
    let mut wrr = WeightedRoundRobin::new();
    let picks: Vec<u64> = (0..7)
        .map(|_| {
            routing::route(&registry, &mut wrr, &any_task())
                .unwrap()
                .get()
        })
        .collect();
    assert_eq!(picks, [1, 1, 2, 1, 3, 1, 1]);
}

#[test]
fn least_loaded_compares_load_relative_to_capacity() {
    let mut registry = Registry::new();
    register(&mut registry, 1, AgentProfile::builder().capacity(10));
    register(&mut registry, 2, AgentProfile::builder().capacity(2));
    registry.set_load(id(1), 4).unwrap(); // 40 %
    registry.set_load(id(2), 1).unwrap(); // 50 %
    assert_eq!(
        routing::route(&registry, &mut LeastLoaded::new(), &any_task()),
        Ok(id(1))
    );
    // 50 % each: the tie goes to agent 2, which reached that load first.
    registry.set_load(id(1), 5).unwrap();
    assert_eq!(
        routing::route(&registry, &mut LeastLoaded::new(), &any_task()),
        Ok(id(2))
    );
    registry.set_load(id(1), 6).unwrap();
    assert_eq!(
        routing::route(&registry, &mut LeastLoaded::new(), &any_task()),
        Ok(id(2))
    );
}

#[test]
fn priority_based_prefers_high_priority_then_least_loaded_and_overflows() {
    let mut registry = Registry::new();
    register(
        &mut registry,
        1,
        AgentProfile::builder().priority(1).capacity(4),
    );
    register(
        &mut registry,
        2,
        AgentProfile::builder().priority(9).capacity(1),
    );
    register(
        &mut registry,
        3,
        AgentProfile::builder().priority(9).capacity(2),
    );
    let mut strategy = PriorityBased::new();
    let mut picks = Vec::new();
    for _ in 0..4 {
        let agent = routing::route(&registry, &mut strategy, &any_task()).unwrap();
        registry.acquire(agent).unwrap();
        picks.push(agent.get());
    }
    assert_eq!(picks, [2, 3, 3, 1]);
}

#[test]
fn power_of_two_choices_balances_and_depends_only_on_the_seed() {
    let run = |seed| {
        let mut registry = Registry::new();
        for n in 0..8 {
            register(&mut registry, n, AgentProfile::builder().capacity(100));
        }
        let mut p2c = PowerOfTwoChoices::new(seed);
        let picks: Vec<AgentId> = (0..400)
            .map(|_| {
                let agent = routing::route(&registry, &mut p2c, &any_task()).unwrap();
                registry.acquire(agent).unwrap();
                agent
            })
            .collect();
        let loads: Vec<u32> = registry.iter().map(|r| r.load()).collect();
        (picks, loads)
    };
    let (a, loads) = run(42);
    assert_eq!(a, run(42).0);
    assert_ne!(a, run(43).0);
    let spread = loads.iter().max().unwrap() - loads.iter().min().unwrap();
    assert!(spread <= 6, "power of two choices left loads {loads:?}");
}

#[test]
fn rendezvous_bounded_load_spills_a_hot_key() {
    let mut registry = Registry::new();
    for n in 0..4 {
        register(&mut registry, n, AgentProfile::builder().capacity(100));
    }
    let hot = TaskRequirements::new().affinity_key("tenant-hot");
    let mut strategy = Rendezvous::new();
    let home = routing::route(&registry, &mut strategy, &hot).unwrap();
    let mut picks = Vec::new();
    for _ in 0..40 {
        let agent = routing::route(&registry, &mut strategy, &hot).unwrap();
        registry.acquire(agent).unwrap();
        picks.push(agent);
    }
    let at_home = picks.iter().filter(|a| **a == home).count();
    assert!(at_home < 40, "a hot key must spill over");
    let max_load = registry.iter().map(|r| r.load()).max().unwrap();
    // ⌈1.25 · 40 / 4⌉ = 13
    assert!(max_load <= 13, "max load {max_load}");
    assert!(Rendezvous::with_load_bound(0.5).is_err());
    assert!(Rendezvous::with_load_bound(f64::NAN).is_err());
}

#[test]
fn rendezvous_without_affinity_key_falls_back_to_least_loaded() {
    let mut registry = Registry::new();
    register(&mut registry, 1, AgentProfile::builder().capacity(4));
    register(&mut registry, 2, AgentProfile::builder().capacity(4));
    registry.acquire(id(1)).unwrap();
    assert_eq!(
        routing::route(&registry, &mut Rendezvous::new(), &any_task()),
        Ok(id(2))
    );
}

#[test]
fn scored_uses_preferred_skills_availability_history_and_cost() {
    let mut registry = Registry::new();
    register(
        &mut registry,
        1,
        AgentProfile::builder().capabilities(["py"]).capacity(4),
    );
    register(
        &mut registry,
        2,
        AgentProfile::builder()
            .capabilities(["py", "cuda"])
            .capacity(4),
    );
    let wants_cuda = TaskRequirements::new()
        .require(["py"])
        .prefer(["cuda", "unknown-skill"]);
    assert_eq!(
        routing::route(&registry, &mut Scored::new(), &wants_cuda),
        Ok(id(2))
    );
    // Loading agent 2 to 3/4 costs 0.3·0.75 = 0.225, more than the skill edge 0.4·0.5 = 0.2.
    registry.set_load(id(2), 3).unwrap();
    assert_eq!(
        routing::route(&registry, &mut Scored::new(), &wants_cuda),
        Ok(id(1))
    );
    let cheap_only = Scored::with_weights(ScoreWeights {
        skill: 0.0,
        availability: 0.0,
        performance: 0.0,
        cost: 1.0,
    })
    .unwrap();
    register(
        &mut registry,
        3,
        AgentProfile::builder()
            .capabilities(["py"])
            .cost_per_task(5.0),
    );
    register(
        &mut registry,
        4,
        AgentProfile::builder()
            .capabilities(["py"])
            .cost_per_task(0.5),
    );
    let mut cheap_only = cheap_only;
    registry.set_load(id(1), 4).unwrap();
    registry.set_load(id(2), 4).unwrap();
    assert_eq!(
        routing::route(&registry, &mut cheap_only, &wants_cuda),
        Ok(id(4))
    );
    // History: a failing agent loses to an equal one with successes.
    let mut history = Registry::new();
    register(&mut history, 1, AgentProfile::builder());
    register(&mut history, 2, AgentProfile::builder());
    history
        .record_outcome(id(1), Outcome::failure(Duration::ZERO))
        .unwrap();
    history
        .record_outcome(id(2), Outcome::success(Duration::ZERO))
        .unwrap();
    assert_eq!(
        routing::route(&history, &mut Scored::new(), &any_task()),
        Ok(id(2))
    );
    for bad in [-0.1, f64::NAN, f64::INFINITY] {
        let weights = ScoreWeights {
            cost: bad,
            ..ScoreWeights::default()
        };
        assert!(matches!(
            Scored::with_weights(weights),
            Err(RoutingError::InvalidParameter { .. })
        ));
    }
    let zero = ScoreWeights {
        skill: 0.0,
        availability: 0.0,
        performance: 0.0,
        cost: 0.0,
    };
    assert!(Scored::with_weights(zero).is_err());
}

#[test]
fn adaptive_learns_per_task_kind() {
    let mut registry = Registry::new();
    for n in 1..=3 {
        register(&mut registry, n, AgentProfile::builder().capacity(1000));
    }
    let mut adaptive = Adaptive::new();
    // Agent 1 is fast at "sql", agent 3 at "vision"; everything else fails.
    let best = |kind: &str| if kind == "sql" { id(1) } else { id(3) };
    for round in 0..300 {
        let kind = if round % 2 == 0 { "sql" } else { "vision" };
        let task = TaskRequirements::new().kind(kind);
        let agent = routing::route(&registry, &mut adaptive, &task).unwrap();
        let outcome = Outcome {
            success: agent == best(kind),
            latency: Duration::from_millis(50),
        };
        adaptive.observe(&taskweave::routing::Feedback {
            agent,
            kind: Some(kind),
            outcome,
        });
    }
    for kind in ["sql", "vision"] {
        let task = TaskRequirements::new().kind(kind);
        assert_eq!(
            routing::route(&registry, &mut adaptive, &task),
            Ok(best(kind)),
            "{kind}"
        );
        let good = adaptive.estimate(Some(kind), best(kind)).unwrap();
        assert!(good.observations > 100 && good.success_rate == 1.0);
    }
    assert!(Adaptive::with_parameters(-1.0, Duration::from_secs(1)).is_err());
    assert!(Adaptive::with_parameters(1.0, Duration::ZERO).is_err());
}

#[test]
fn unknown_capability_and_label_are_answers_not_panics() {
    let mut registry = Registry::new();
    register(
        &mut registry,
        1,
        AgentProfile::builder()
            .capabilities(["cpu"])
            .label("zone", "eu"),
    );
    let tpu = TaskRequirements::new().require(["tpu"]);
    assert_eq!(
        routing::route(&registry, &mut LeastLoaded::new(), &tpu),
        Err(RoutingError::UnknownCapability {
            capability: "tpu".into()
        })
    );
    let mars = TaskRequirements::new().label(LabelConstraint::equals("zone", "mars"));
    assert!(matches!(
        routing::route(&registry, &mut LeastLoaded::new(), &mars),
        Err(RoutingError::UnknownLabel { .. })
    ));
    let nowhere =
        TaskRequirements::new().label(LabelConstraint::one_of("zone", Vec::<String>::new()));
    assert!(routing::route(&registry, &mut LeastLoaded::new(), &nowhere).is_err());
    let not_eu = TaskRequirements::new().label(LabelConstraint::not_equals("zone", "eu"));
    assert_eq!(
        routing::route(&registry, &mut LeastLoaded::new(), &not_eu),
        Err(RoutingError::NoEligibleAgent)
    );
    let not_mars = TaskRequirements::new().label(LabelConstraint::not_equals("zone", "mars"));
    assert_eq!(
        routing::route(&registry, &mut LeastLoaded::new(), &not_mars),
        Ok(id(1))
    );
}

#[test]
fn pinned_excluded_and_avoided_agents_are_hard_constraints() {
    let mut registry = Registry::new();
    for n in 1..=3 {
        register(&mut registry, n, AgentProfile::builder());
    }
    let pinned = TaskRequirements::new().pin(id(2));
    assert_eq!(
        routing::route(&registry, &mut CapabilityMatch::new(), &pinned),
        Ok(id(2))
    );
    registry.acquire(id(2)).unwrap();
    assert_eq!(
        routing::route(&registry, &mut CapabilityMatch::new(), &pinned),
        Err(RoutingError::PinnedAgentUnavailable { agent: id(2) })
    );
    let avoid = TaskRequirements::new().exclude([id(1)]).avoid([id(3)]);
    assert_eq!(
        routing::route(&registry, &mut CapabilityMatch::new(), &avoid),
        Err(RoutingError::NoEligibleAgent)
    );
    let soft = TaskRequirements::new().prefer_agent(id(3));
    assert_eq!(
        routing::route(&registry, &mut CapabilityMatch::new(), &soft),
        Ok(id(3))
    );
    let soft_busy = TaskRequirements::new().prefer_agent(id(2));
    assert_eq!(
        routing::route(&registry, &mut CapabilityMatch::new(), &soft_busy),
        Ok(id(1))
    );
}

#[test]
fn misbehaving_strategies_are_caught() {
    let mut registry = Registry::new();
    register(
        &mut registry,
        1,
        AgentProfile::builder().capabilities(["cpu"]),
    );
    register(
        &mut registry,
        2,
        AgentProfile::builder().capabilities(["gpu"]),
    );
    let gpu = TaskRequirements::new().require(["gpu"]);
    let mut wrong = |_: &Candidates<'_>| Some(id(1));
    assert_eq!(
        routing::route(&registry, &mut wrong, &gpu),
        Err(RoutingError::IneligibleChoice { agent: id(1) })
    );
    // Querying the candidates vouches only for the agent they returned.
    let mut asks_then_strays = |candidates: &Candidates<'_>| {
        assert_eq!(candidates.least_loaded().map(|r| r.id()), Some(id(2)));
        Some(id(1))
    };
    assert_eq!(
        routing::route(&registry, &mut asks_then_strays, &gpu),
        Err(RoutingError::IneligibleChoice { agent: id(1) })
    );
    let mut lazy = |_: &Candidates<'_>| None;
    assert_eq!(
        routing::route(&registry, &mut lazy, &gpu),
        Err(RoutingError::Declined)
    );
    registry.set_status(id(2), AgentStatus::Offline).unwrap();
    assert_eq!(
        routing::route(&registry, &mut lazy, &gpu),
        Err(RoutingError::NoEligibleAgent)
    );
}

#[test]
fn strategies_are_object_safe_and_boxable() {
    let mut registry = Registry::new();
    register(&mut registry, 1, AgentProfile::builder().capacity(2));
    let mut chosen_at_runtime: Vec<Box<dyn RoutingStrategy + Send>> = vec![
        Box::new(RoundRobin::new()),
        Box::new(PowerOfTwoChoices::new(7)),
        Box::new(|c: &Candidates<'_>| c.first().map(|r| r.id())),
    ];
    for strategy in &mut chosen_at_runtime {
        assert_eq!(routing::route(&registry, strategy, &any_task()), Ok(id(1)));
        assert_eq!(
            routing::route(&registry, strategy.as_mut(), &any_task()),
            Ok(id(1))
        );
    }
    let mut plain: Box<dyn RoutingStrategy> = Box::new(LeastLoaded::new());
    assert_eq!(
        routing::route(&registry, &mut plain, &any_task()),
        Ok(id(1))
    );
}

#[test]
fn capabilities_beyond_sixty_four_route_correctly() {
    let mut registry = Registry::new();
    let many: Vec<String> = (0..150).map(|i| format!("skill-{i}")).collect();
    register(
        &mut registry,
        1,
        AgentProfile::builder().capabilities(many[..100].to_vec()),
    );
    register(
        &mut registry,
        2,
        AgentProfile::builder().capabilities(many.clone()),
    );
    let rare = TaskRequirements::new().require(["skill-3", "skill-140"]);
    assert_eq!(
        routing::route(&registry, &mut CapabilityMatch::new(), &rare),
        Ok(id(2))
    );
    assert_eq!(registry.capabilities().len(), 150);
}

/// A host runs every built-in strategy over a candidate set of its own: a
/// shortlist of another registry's agents, rebuilt with
/// `Registry::from_records`, queried through `Candidates::new`. Each picks
/// an eligible agent of the shortlist, never one outside it.
#[test]
fn every_strategy_runs_over_a_host_built_candidate_set() {
    let mut pool = Registry::new();
    for n in 1..=8 {
        let caps: &[&str] = if n % 2 == 0 {
            &["gpu", "cpu"]
        } else {
            &["cpu"]
        };
        register(
            &mut pool,
            n,
            AgentProfile::builder()
                .capabilities(caps.iter().copied())
                .capacity(2)
                .weight(n as u32),
        );
    }
    pool.acquire(id(4)).unwrap();
    pool.set_status(id(6), AgentStatus::Draining).unwrap();
    let shortlist = [3, 4, 6, 8].map(|n| pool.get(id(n)).cloned().unwrap());
    let own = Registry::from_records(shortlist).unwrap();
    assert_eq!(own.get(id(4)).map(|r| r.load()), Some(1));
    assert_eq!(
        own.get(id(6)).map(|r| r.status()),
        Some(AgentStatus::Draining)
    );
    let gpu = ResolvedRequirements::new(&own, &TaskRequirements::new().require(["gpu"])).unwrap();
    let strategies: Vec<Box<dyn RoutingStrategy>> = vec![
        Box::new(CapabilityMatch::new()),
        Box::new(RoundRobin::new()),
        Box::new(WeightedRoundRobin::new()),
        Box::new(LeastLoaded::new()),
        Box::new(PowerOfTwoChoices::new(7)),
        Box::new(PriorityBased::new()),
        Box::new(Rendezvous::new()),
        Box::new(Scored::new()),
        Box::new(Adaptive::new()),
    ];
    for mut strategy in strategies {
        let candidates = Candidates::new(&own, &gpu);
        let pick = strategy.select(&candidates);
        // Eligible: a gpu agent of the shortlist that is online with a free slot.
        assert!(
            matches!(pick, Some(a) if a == id(4) || a == id(8)),
            "{pick:?}"
        );
    }
    assert!(matches!(
        Registry::from_records([
            pool.get(id(1)).cloned().unwrap(),
            pool.get(id(1)).cloned().unwrap()
        ]),
        Err(taskweave::agent::RegistryError::DuplicateAgent(_))
    ));
}

/// Counts the feedback it gets, and keeps the default `learns`.
#[derive(Default)]
struct Listening {
    observed: usize,
}

impl RoutingStrategy for Listening {
    fn select(&mut self, candidates: &Candidates<'_>) -> Option<AgentId> {
        candidates.least_loaded().map(|record| record.id())
    }

    fn observe(&mut self, _: &Feedback<'_>) {
        self.observed += 1;
    }
}

/// Counts the feedback it gets, and says it learns nothing.
#[derive(Default)]
struct Deaf(Listening);

impl RoutingStrategy for Deaf {
    fn select(&mut self, candidates: &Candidates<'_>) -> Option<AgentId> {
        self.0.select(candidates)
    }

    fn observe(&mut self, feedback: &Feedback<'_>) {
        self.0.observe(feedback);
    }

    fn learns(&self) -> bool {
        false
    }
}

/// Runs two successes and a failure (retried, then a success) through a
/// dispatcher with `strategy`; returns the strategy.
fn after_four_outcomes<S: RoutingStrategy>(strategy: S) -> Dispatcher<&'static str, S> {
    let mut d = Dispatcher::with_strategy(DispatcherConfig::default(), strategy);
    let profile = AgentProfile::builder().capacity(4).build().unwrap();
    d.register_agent(id(1), profile, Instant::ZERO).unwrap();
    let outcomes = [
        AttemptOutcome::Success,
        AttemptOutcome::Success,
        AttemptOutcome::failure("flaky"),
        AttemptOutcome::Success,
    ];
    for (n, outcome) in outcomes.into_iter().enumerate() {
        // A minute apart: the retry's backoff has run out by the next step.
        let now = Instant::from_secs(60 * n as u64);
        if n < 3 {
            let _ = d.submit(TaskSpec::new("work"), now).unwrap();
        }
        d.handle_timeout(now);
        let Some(Action::Assign {
            task, agent, token, ..
        }) = d.poll_action()
        else {
            panic!("expected an assignment at step {n}");
        };
        let report = TaskReport {
            task,
            agent,
            token,
            outcome,
        };
        d.report(report, now).unwrap();
    }
    d
}

#[test]
fn a_strategy_is_fed_only_when_it_learns() {
    // The default `learns` is true: a strategy that overrides `observe`
    // hears of every attempt with an outcome, failures included.
    assert_eq!(
        after_four_outcomes(Listening::default())
            .strategy()
            .observed,
        4
    );
    // One that says it learns nothing gets no feedback at all.
    assert_eq!(
        after_four_outcomes(Deaf::default()).strategy().0.observed,
        0
    );
    // Boxed, the answer passes through.
    let boxed: Box<dyn RoutingStrategy> = Box::new(Deaf::default());
    assert!(!boxed.learns());

    // Of the built-ins, only the one that learns says so; a closure is
    // stateless and learns nothing.
    let learning: Vec<(&str, bool)> = vec![
        ("CapabilityMatch", CapabilityMatch::new().learns()),
        ("RoundRobin", RoundRobin::new().learns()),
        ("WeightedRoundRobin", WeightedRoundRobin::new().learns()),
        ("LeastLoaded", LeastLoaded::new().learns()),
        ("PowerOfTwoChoices", PowerOfTwoChoices::new(7).learns()),
        ("PriorityBased", PriorityBased::new().learns()),
        ("Rendezvous", Rendezvous::new().learns()),
        ("Scored", Scored::new().learns()),
        ("Adaptive", Adaptive::new().learns()),
    ];
    let learners: Vec<&str> = learning
        .iter()
        .filter(|(_, learns)| *learns)
        .map(|(name, _)| *name)
        .collect();
    assert_eq!(learners, ["Adaptive"]);
    let closure = |c: &Candidates<'_>| c.first().map(|r| r.id());
    assert!(!closure.learns());
}
