//! Scale hints: a simulated host whose pool of agents follows the desired
//! count, in virtual time, under constant and stepped Poisson load; and
//! the counts a hint reads (only the pool's work, the exact age of the
//! oldest queued task, activation, stabilisation). Case counts follow
//! `PROPTEST_CASES`.

#[path = "../examples/support/pool_host.rs"]
mod pool_host;

use std::time::Duration;

use pool_host::{Host, SLOTS, direction_changes};
use proptest::prelude::*;
use taskweave::agent::AgentProfile;
use taskweave::scheduler::{
    Dispatcher, DispatcherConfig, ScaleChange, ScaleError, ScalePolicy, TaskSpec,
};
use taskweave::{AgentId, Instant, TaskId, TaskRequirements};

fn policy() -> ScalePolicy {
    ScalePolicy::builder()
        .slots_per_agent(SLOTS)
        .agents(0, 500)
        .build()
        .unwrap()
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(6)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    /// Under constant load, from an empty pool, the desired count changes
    /// direction at most once in 10 simulated minutes: it rises to meet
    /// the load and the backlog, and may fall once the backlog is gone.
    #[test]
    fn constant_load_changes_direction_at_most_once(
        seed in any::<u64>(),
        rate in 20.0f64..150.0,
        run_ms in 200u64..2_000,
    ) {
        let mut host = Host::new(seed, Duration::from_millis(run_ms), policy());
        let hints = host.run_for(Duration::from_secs(600), rate);
        prop_assert_eq!(hints.len(), 39);
        let changes = direction_changes(&hints);
        prop_assert!(changes <= 1, "{changes} changes: {:?}",
            hints.iter().map(|h| h.desired_agents).collect::<Vec<_>>());
        // And the pool keeps up: what Little's law asks, within a margin.
        let needed = rate * run_ms as f64 / 1_000.0 / f64::from(SLOTS);
        let last = hints.last().unwrap();
        prop_assert!(f64::from(last.desired_agents) >= needed * 0.9,
            "{} agents for a need of {needed:.1}", last.desired_agents);
        prop_assert!(last.oldest_queued.is_none_or(|age| age < Duration::from_secs(5)),
            "the queue is not kept short: {:?}", last.oldest_queued);
    }

    /// A step from 50 to 200 tasks per second raises the desired count
    /// within one rate window, to what the new load needs.
    #[test]
    fn a_step_in_load_raises_the_count_within_one_window(seed in any::<u64>()) {
        let run = Duration::from_secs(1);
        let mut host = Host::new(seed, run, policy());
        // Ten minutes to settle: past the stabilisation window that holds
        // the count of the cold start's backlog.
        let before = host.run_for(Duration::from_secs(600), 50.0);
        let settled = before.last().unwrap().desired_agents;
        let window = policy().rate_window();
        let after = host.run_for(window, 200.0);
        let peak = after.iter().map(|h| h.desired_agents).max().unwrap();
        prop_assert!(peak > settled, "{settled} then {peak}");
        // 200 tasks/s of 1 s each fill 200 slots: 50 agents of 4.
        prop_assert!(f64::from(peak) >= 50.0 * 0.9, "{peak} agents after one window");
    }
}

fn dispatcher_with(pool: &[&str], policy: ScalePolicy) -> Dispatcher<u32> {
    let mut d = Dispatcher::new(DispatcherConfig::default());
    d.watch_pool("pool", pool.iter().copied(), policy).unwrap();
    d
}

fn requiring(payload: u32, needs: &[&str]) -> TaskSpec<u32> {
    TaskSpec::new(payload).requirements(TaskRequirements::new().require(needs.iter().copied()))
}

#[test]
fn a_pool_counts_only_the_work_and_agents_that_match_it() {
    let mut d = dispatcher_with(&["a", "b"], ScalePolicy::builder().build().unwrap());
    let now = Instant::from_secs(1);
    for (i, needs) in [&[][..], &["a"], &["a", "b"], &["c"], &["a", "c"]]
        .into_iter()
        .enumerate()
    {
        let _ = d.submit(requiring(i as u32, needs), now).unwrap();
    }
    let profile = |caps: &[&str]| {
        AgentProfile::builder()
            .capabilities(caps.iter().copied())
            .capacity(3)
            .build()
            .unwrap()
    };
    // Only agent 2 has both capabilities; it takes the pool's three tasks.
    d.register_agent(AgentId::new(1), profile(&["a"]), now)
        .unwrap();
    d.register_agent(AgentId::new(2), profile(&["a", "b", "c"]), now)
        .unwrap();
    while d.poll_action().is_some() {}
    let hint = d.scale_hint("pool", now).unwrap();
    assert_eq!((hint.agents, hint.capacity), (1, 3));
    let in_flight = d.in_flight(AgentId::new(2)).len() + d.in_flight(AgentId::new(1)).len();
    assert_eq!(in_flight, 5);
    // The pool's work: the three tasks that need nothing beyond {a, b}.
    assert_eq!((hint.queued, hint.in_flight), (0, 3));
    assert_eq!(hint.arrivals_per_second * 60.0, 3.0);
}

#[test]
fn the_oldest_queued_age_is_exact_and_counts_from_the_last_return_to_the_queue() {
    let mut d = dispatcher_with(&["w"], ScalePolicy::builder().build().unwrap());
    let first = d
        .submit(requiring(1, &["w"]), Instant::from_millis(1_500))
        .unwrap()
        .id();
    let _ = d
        .submit(requiring(2, &["w"]), Instant::from_secs(4))
        .unwrap();
    let hint = d.scale_hint("pool", Instant::from_millis(9_250)).unwrap();
    assert_eq!(hint.oldest_queued, Some(Duration::from_millis(7_750)));

    // The first task runs, then goes back to the queue when its agent
    // leaves at 20 s: the second, queued since 4 s, is now the oldest.
    let profile = AgentProfile::builder().capabilities(["w"]).build().unwrap();
    d.register_agent(AgentId::new(1), profile, Instant::from_secs(10))
        .unwrap();
    assert_eq!(d.in_flight(AgentId::new(1)), &[first]);
    let requeued = d
        .unregister_agent(AgentId::new(1), Instant::from_secs(20))
        .unwrap();
    assert_eq!(requeued, vec![first]);
    let hint = d.scale_hint("pool", Instant::from_secs(21)).unwrap();
    assert_eq!(hint.queued, 2);
    assert_eq!(hint.oldest_queued, Some(Duration::from_secs(17)));
}

#[test]
fn below_the_activation_threshold_a_pool_wants_no_agent() {
    let policy = ScalePolicy::builder()
        .activation(10)
        .target_utilisation_percent(100)
        .scale_up(100, 20, Duration::from_secs(15))
        .build()
        .unwrap();
    let mut d = dispatcher_with(&["w"], policy);
    let now = Instant::from_secs(1);
    for i in 0..9 {
        let _ = d.submit(requiring(i, &["w"]), now).unwrap();
    }
    let hint = d.scale_hint("pool", now).unwrap();
    assert_eq!((hint.desired_agents, hint.change), (0, ScaleChange::Hold));
    let _ = d.submit(requiring(9, &["w"]), now).unwrap();
    let hint = d.scale_hint("pool", now).unwrap();
    assert_eq!((hint.desired_agents, hint.change), (10, ScaleChange::Up));
}

#[test]
fn a_count_falls_only_after_the_stabilisation_window() {
    let policy = ScalePolicy::builder()
        .stabilisation(Duration::from_secs(120))
        .target_utilisation_percent(100)
        .scale_up(100, 20, Duration::from_secs(15))
        .build()
        .unwrap();
    let mut d = dispatcher_with(&["w"], policy);
    let tasks: Vec<TaskId> = (0..6)
        .map(|i| d.submit(requiring(i, &["w"]), Instant::ZERO).unwrap().id())
        .collect();
    assert_eq!(
        d.scale_hint("pool", Instant::ZERO).unwrap().desired_agents,
        6
    );
    for &task in &tasks[..4] {
        d.cancel(task, Instant::from_secs(1)).unwrap();
    }
    // Two tasks left: the recommendation is 2, the count stays at 6 while
    // the window still holds the recommendation of 6.
    for secs in [1, 60, 110] {
        let hint = d.scale_hint("pool", Instant::from_secs(secs)).unwrap();
        assert_eq!(
            (hint.desired_agents, hint.change),
            (6, ScaleChange::Hold),
            "at {secs} s"
        );
    }
    let hint = d.scale_hint("pool", Instant::from_secs(125)).unwrap();
    assert_eq!((hint.desired_agents, hint.change), (2, ScaleChange::Down));
}

#[test]
fn an_unknown_or_repeated_pool_is_refused_by_name() {
    let mut d = dispatcher_with(&["w"], ScalePolicy::builder().build().unwrap());
    let again = d.watch_pool("pool", ["x"], ScalePolicy::builder().build().unwrap());
    assert_eq!(again, Err(ScaleError::PoolExists("pool".into())));
    assert_eq!(
        d.scale_hint("other", Instant::ZERO),
        Err(ScaleError::UnknownPool("other".into()))
    );
    assert_eq!(d.scale_hints(Instant::ZERO).len(), 1);
    assert!(d.unwatch_pool("pool"));
    assert!(!d.unwatch_pool("pool"));
    assert!(d.scale_hints(Instant::ZERO).is_empty());
    let message = d.scale_hint("pool", Instant::ZERO).unwrap_err().to_string();
    assert!(message.contains("watch it first"), "{message}");
}

#[test]
fn a_policy_that_cannot_work_is_refused_naming_its_setting() {
    let b = ScalePolicy::builder;
    assert_eq!(b().slots_per_agent(0).build(), Err(ScaleError::ZeroSlots));
    assert_eq!(
        b().agents(3, 2).build(),
        Err(ScaleError::MinAboveMax { min: 3, max: 2 })
    );
    assert!(matches!(
        b().agents(0, u32::MAX).build(),
        Err(ScaleError::TooLarge {
            field: "max_agents",
            ..
        })
    ));
    assert_eq!(
        b().tolerance_percent(101).build(),
        Err(ScaleError::Tolerance(101))
    );
    let second = Duration::from_secs(1);
    assert_eq!(
        b().scale_up(0, 0, second).build(),
        Err(ScaleError::NoScaleUp)
    );
    assert!(matches!(
        b().scale_up(10_001, 4, second).build(),
        Err(ScaleError::TooLarge { limit: 10_000, .. })
    ));
    for target in [0, 101] {
        assert_eq!(
            b().target_utilisation_percent(target).build(),
            Err(ScaleError::TargetUtilisation(target))
        );
    }
    for (built, field) in [
        (b().rate_window(Duration::ZERO).build(), "rate_window"),
        (
            b().rate_window(Duration::from_secs(7_200)).build(),
            "rate_window",
        ),
        (b().drain(Duration::from_millis(10)).build(), "drain"),
        (b().stabilisation(Duration::MAX).build(), "stabilisation"),
        (
            b().scale_up(100, 4, Duration::ZERO).build(),
            "scale-up period",
        ),
    ] {
        assert!(
            matches!(built, Err(ScaleError::Window { field: f, .. }) if f == field),
            "{field}: {built:?}"
        );
    }
}
