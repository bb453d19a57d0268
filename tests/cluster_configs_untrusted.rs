//! Host-supplied durations of the cluster's roles and of the simulator,
//! drawn from edge values (zero, a nanosecond, just past a limit, the
//! largest `Duration`): each configuration is refused with a reason, or a
//! short simulation with it runs to its end without a panic, within a
//! bounded number of events and tasks; the same for the fault menu's rates
//! and chances, the rate of submissions and (with workflows) of saga runs.
//! Work over the simulator's bounds is refused with an error that names
//! the bound.
//!
//! Case count: `PROPTEST_CASES` (default 64).

#![cfg(feature = "cluster")]

use std::time::Duration;

use proptest::prelude::*;
use taskweave::cluster::sim::{
    FaultMenu, MAX_OPERATIONS, MAX_TASKS, SimConfig, SimReport, UniformWork, simulate,
};
use taskweave::cluster::{ConfigError, NodeConfig, SessionConfig};
use taskweave::scheduler::DispatcherConfig;

mod corrupt;

/// The most events an accepted configuration of these properties may
/// take: at most 35 simulated seconds of two nodes and three agents, none
/// polling faster than a millisecond once accepted (the simulator refuses
/// nanosecond periods over instant links), a few hundred thousand tasks
/// (submitted a tick's worth at a time) and a few thousand faults. A run
/// over it would mean a setting that makes work without bound.
const EVENTS: u64 = 5_000_000;

/// The work a run did is within what its configuration allowed.
fn bounded(report: &SimReport) -> Result<(), TestCaseError> {
    prop_assert!(report.events > 0);
    prop_assert!(report.events <= EVENTS, "{} events", report.events);
    prop_assert!(report.submitted <= MAX_TASKS, "{} tasks", report.submitted);
    Ok(())
}

fn work() -> UniformWork {
    UniformWork {
        work: (Duration::from_millis(1), Duration::from_millis(50)),
        fail: 0.05,
    }
}

/// Durations a host could hand over by mistake, and some sane ones.
fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::from_nanos(1)),
        Just(Duration::from_millis(1)),
        Just(Duration::from_millis(50)),
        Just(Duration::from_secs(1)),
        Just(Duration::from_secs(10)),
        Just(Duration::from_secs(3_600)),
        Just(Duration::from_secs(3_600) + Duration::from_nanos(1)),
        Just(Duration::from_secs(86_400 * 8)),
        Just(Duration::MAX),
    ]
}

/// Mostly nothing (the default stays), 15 % of the time an edge
/// value.
fn maybe<T: std::fmt::Debug>(value: impl Strategy<Value = T>) -> impl Strategy<Value = Option<T>> {
    prop::option::weighted(0.15, value)
}

fn pair() -> impl Strategy<Value = Option<(Duration, Duration)>> {
    maybe((duration(), duration()))
}

proptest! {
    #![proptest_config(corrupt::config(64))]

    #[test]
    fn role_and_simulator_durations_are_refused_or_run(
        (lease, follow, idle, status, node_backoff, notices) in
            (pair(), maybe(duration()), maybe(duration()), maybe(duration()), pair(), maybe(duration())),
        (heartbeat_every, claim, refusals, session_backoff) in
            (maybe(duration()), maybe(duration()), maybe(duration()), pair()),
        (heartbeat, skew, link, faulty_for, liveness) in
            (maybe(duration()), maybe(duration()), pair(), maybe(duration()), maybe(duration())),
        seed in any::<u64>(),
    ) {
        let mut node = NodeConfig::builder("node").idle_poll(Duration::from_millis(20));
        if let Some((ttl, renew)) = lease { node = node.lease(ttl, renew); }
        if let Some(every) = follow { node = node.follow_every(every); }
        if let Some(every) = idle { node = node.idle_poll(every); }
        if let Some(every) = status { node = node.status_every(every); }
        if let Some((min, max)) = node_backoff { node = node.backoff(min, max); }
        if let Some(every) = notices { node = node.woken_by_notices(every); }
        let mut session = SessionConfig::builder();
        if let Some(every) = heartbeat_every { session = session.heartbeat_every(every); }
        if let Some(every) = claim { session = session.claim_poll(every); }
        if let Some(every) = refusals { session = session.refusals_every(every); }
        if let Some((min, max)) = session_backoff { session = session.backoff(min, max); }
        let dispatcher = DispatcherConfig::builder()
            .heartbeats(heartbeat.unwrap_or(Duration::from_millis(250)), 4)
            .queue_capacity(1_000)
            .build();
        let (Ok(node), Ok(session), Ok(dispatcher)) = (node.build(), session.build(), dispatcher) else {
            return Ok(());
        };
        let mut config = SimConfig::<u64>::builder(seed)
            .cluster(2, 3, 2)
            .tasks_per_second(5.0)
            .roles(node, session, dispatcher)
            .faults(FaultMenu { clock_skew: skew.unwrap_or_default(), ..FaultMenu::default() });
        if let Some((from, to)) = link { config = config.link_delay(from, to); }
        // A few simulated seconds at most, whatever the drawn span.
        let faulty_for = faulty_for.unwrap_or(Duration::from_secs(5)).min(Duration::from_secs(5));
        let liveness = liveness.unwrap_or(Duration::from_secs(30)).min(Duration::from_secs(30));
        let config = config.duration(faulty_for, liveness).build();
        let Ok(config) = config else {
            return Ok(());
        };
        let report = corrupt::watchdog(120, move || simulate(config, work()));
        bounded(&report)?;
    }
}

/// Rates and chances a host could hand over by mistake, and sane ones.
fn rate() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(-1.0),
        Just(0.0),
        Just(0.002),
        Just(0.5),
        Just(1.0),
        Just(1.5),
        Just(1e4),
        Just(1e5),
        Just(2e6),
    ]
}

proptest! {
    #![proptest_config(corrupt::config(64))]

    /// Every rate and chance of the fault menu, and the rate of
    /// submissions, from edge values: refused with a reason, or a short
    /// simulation runs to its end without a panic, within bounded work.
    #[test]
    fn fault_rates_and_chances_are_refused_or_run(
        rates in proptest::collection::vec(maybe(rate()), 18),
        seed in any::<u64>(),
    ) {
        let pick = |i: usize, default: f64| rates[i].unwrap_or(default);
        let d = FaultMenu::default();
        let faults = FaultMenu {
            crash_node: pick(0, d.crash_node),
            pause_leader: pick(1, d.pause_leader),
            restart_agent: pick(2, d.restart_agent),
            kill_agent: pick(3, d.kill_agent),
            restart_store: pick(4, d.restart_store),
            lose_answer: pick(5, d.lose_answer),
            refuse: pick(6, d.refuse),
            drop_request: pick(7, d.drop_request),
            late_request: pick(8, d.late_request),
            duplicate_request: pick(9, d.duplicate_request),
            slow_agents: pick(10, d.slow_agents),
            cancel: pick(11, d.cancel),
            burst: pick(12, d.burst),
            die_agent: pick(14, d.die_agent),
            old_life: pick(15, d.old_life),
            long_attempts: pick(16, d.long_attempts),
            client_stops: pick(17, d.client_stops),
            ..d
        };
        let config = SimConfig::<u64>::builder(seed)
            .cluster(2, 3, 2)
            .tasks_per_second(pick(13, 5.0))
            .faults(faults)
            .duration(Duration::from_secs(3), Duration::from_secs(30))
            .build();
        let Ok(config) = config else {
            return Ok(());
        };
        let report = corrupt::watchdog(120, move || simulate(config, work()));
        bounded(&report)?;
    }
}

/// Work past the simulator's bounds is refused, and the error names the
/// bound: a rate of submissions kept up for a day, bursts of a queue of a
/// million kept up for seconds, and nanosecond polls over instant links.
#[test]
fn work_past_the_bounds_is_refused_naming_the_bound() {
    let day = Duration::from_secs(86_400);
    let refused = |config: Result<SimConfig<u64>, ConfigError>, bound: &str| {
        let error = config.expect_err("refused").to_string();
        assert!(error.contains(bound), "{error}");
    };
    let tasks = SimConfig::builder(1)
        .tasks_per_second(1e5)
        .duration(day, Duration::from_secs(60))
        .build();
    refused(tasks, &format!("{MAX_TASKS} (MAX_TASKS)"));
    let queue = DispatcherConfig::builder()
        .heartbeats(Duration::from_millis(250), 8)
        .queue_capacity(1_000_000)
        .build()
        .unwrap();
    let node = NodeConfig::builder("node").build().unwrap();
    let session = SessionConfig::builder().build().unwrap();
    let bursts = SimConfig::builder(1)
        .roles(node.clone(), session.clone(), queue)
        .faults(FaultMenu {
            burst: 1e3,
            ..FaultMenu::default()
        })
        .duration(Duration::from_secs(10), Duration::from_secs(60))
        .build();
    refused(bursts, "(MAX_TASKS)");
    let ns = Duration::from_nanos(1);
    let fast = NodeConfig::builder("node")
        .idle_poll(ns)
        .follow_every(ns)
        .build()
        .unwrap();
    let dispatcher = DispatcherConfig::builder()
        .heartbeats(Duration::from_millis(250), 8)
        .build()
        .unwrap();
    let polls = SimConfig::builder(1)
        .roles(fast.clone(), session.clone(), dispatcher.clone())
        .link_delay(Duration::ZERO, Duration::ZERO)
        .duration(Duration::from_secs(5), Duration::from_secs(30))
        .build();
    refused(polls, &format!("{MAX_OPERATIONS} (MAX_OPERATIONS)"));
    // The same polls over a link that takes time: each node waits for
    // its answer, and the run is bounded.
    let linked = SimConfig::<u64>::builder(1)
        .roles(fast, session, dispatcher)
        .duration(Duration::from_secs(5), Duration::from_secs(30))
        .build();
    assert!(linked.is_ok(), "{linked:?}");
}

#[cfg(feature = "workflow")]
mod workflows {
    use std::time::Duration;

    use proptest::prelude::*;
    use taskweave::cluster::sim::{
        FaultMenu, MAX_RUNS, SagaFlows, SimConfig, SimTask, simulate_workflows,
    };

    use super::{bounded, corrupt, rate, work};

    fn config(seed: u64, faulty_for: Duration) -> SimConfig<SimTask<u64>> {
        SimConfig::builder(seed)
            .cluster(2, 3, 2)
            .tasks_per_second(5.0)
            .faults(FaultMenu::default())
            .duration(faulty_for, Duration::from_secs(30))
            .build()
            .unwrap()
    }

    fn sagas(runs_per_second: f64) -> Result<SagaFlows, taskweave::cluster::ConfigError> {
        let attempt = (Duration::from_millis(1), Duration::from_millis(50));
        SagaFlows::new(runs_per_second, attempt, 0.1, Duration::from_secs(2))
    }

    /// The rates that exhausted memory (1e5 and 1e6 runs a second for two
    /// seconds: 525 MB after 40 s, 4.4 GB) are refused, naming the bound.
    #[test]
    fn saga_rates_past_the_bound_are_refused_naming_it() {
        for rate in [1e5, 1e6] {
            let flows = sagas(rate).unwrap();
            let refused = simulate_workflows(config(1, Duration::from_secs(2)), work(), flows);
            let error = refused.expect_err("refused").to_string();
            assert!(error.contains(&format!("{MAX_RUNS} (MAX_RUNS)")), "{error}");
        }
    }

    proptest! {
        #![proptest_config(corrupt::config(16))]

        /// A saga rate from edge values: refused with a reason (by the
        /// flows or by the simulation), or a short simulation runs to its
        /// end within bounded work.
        #[test]
        fn saga_rates_are_refused_or_run(runs in rate(), seed in any::<u64>()) {
            let Ok(flows) = sagas(runs) else {
                return Ok(());
            };
            let config = config(seed, Duration::from_secs(2));
            let Ok(report) = corrupt::watchdog(120, move || simulate_workflows(config, work(), flows)) else {
                return Ok(());
            };
            bounded(&report)?;
            prop_assert!(report.runs.started <= MAX_RUNS);
        }
    }
}
