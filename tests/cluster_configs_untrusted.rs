//! Host-supplied durations of the cluster's roles and of the simulator,
//! drawn from edge values (zero, a nanosecond, just past a limit, the
//! largest `Duration`): each configuration is refused with a reason, or a
//! short simulation with it runs to its end without a panic or a hang; the
//! same for the fault menu's rates and chances.
//!
//! Case count: `PROPTEST_CASES` (default 64).

#![cfg(feature = "cluster")]

use std::time::Duration;

use proptest::prelude::*;
use taskweave::cluster::sim::{FaultMenu, SimConfig, UniformWork, simulate};
use taskweave::cluster::{NodeConfig, SessionConfig};
use taskweave::scheduler::DispatcherConfig;

mod corrupt;

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
        (lease, follow, idle, status, node_backoff) in
            (pair(), maybe(duration()), maybe(duration()), maybe(duration()), pair()),
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
        let work = UniformWork { work: (Duration::from_millis(1), Duration::from_millis(50)), fail: 0.05 };
        let report = corrupt::watchdog(60, move || simulate(config, work));
        prop_assert!(report.events > 0);
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
        Just(2e6),
    ]
}

proptest! {
    #![proptest_config(corrupt::config(64))]

    /// Every rate and chance of the fault menu from edge values: refused
    /// with a reason, or a short simulation runs to its end without a
    /// panic or a hang.
    #[test]
    fn fault_rates_and_chances_are_refused_or_run(
        rates in proptest::collection::vec(maybe(rate()), 13),
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
            ..d
        };
        let config = SimConfig::<u64>::builder(seed)
            .cluster(2, 3, 2)
            .tasks_per_second(5.0)
            .faults(faults)
            .duration(Duration::from_secs(3), Duration::from_secs(30))
            .build();
        let Ok(config) = config else {
            return Ok(());
        };
        let work = UniformWork { work: (Duration::from_millis(1), Duration::from_millis(50)), fail: 0.05 };
        let report = corrupt::watchdog(60, move || simulate(config, work));
        prop_assert!(report.events > 0);
    }
}
