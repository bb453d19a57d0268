//! Workflow runs hosted by the cluster's nodes, in the cluster simulator:
//! a client registers two sagas, starts runs by id, signals, cancels and
//! reads them while the nodes that hold the runs crash, the leader
//! freezes, the store restarts and the client itself stops; the simulator
//! checks every commit against the audit's replay and what the client
//! posted.

#![cfg(feature = "cluster")]

use std::time::Duration;

use taskweave::cluster::Entry;
use taskweave::cluster::sim::{
    FaultMenu, HostedSagas, HostedTask, SimConfig, UniformWork, simulate_hosted,
};

fn work() -> UniformWork {
    UniformWork {
        work: (Duration::from_millis(1), Duration::from_millis(100)),
        fail: 0.05,
    }
}

fn sagas() -> HostedSagas {
    let ms = Duration::from_millis;
    HostedSagas::new(10.0, (ms(1), ms(100)), 0.2, Duration::from_secs(3)).unwrap()
}

/// Re-encodes an entry as the PostgreSQL store keeps it (JSON text).
fn json(entry: &Entry<HostedTask<u64>>) -> Result<(Entry<HostedTask<u64>>, usize), String> {
    let text = serde_json::to_vec(entry).map_err(|e| e.to_string())?;
    let back = serde_json::from_slice(&text).map_err(|e| e.to_string())?;
    Ok((back, text.len()))
}

/// A minute of faults at 50 plain tasks and 10 hosted runs a second,
/// with nodes crashing and the client stopping more often than by
/// default, entries stored as JSON.
fn config(seed: u64) -> SimConfig<HostedTask<u64>> {
    let faults = FaultMenu {
        crash_node: 0.2,
        client_stops: 0.2,
        ..FaultMenu::default()
    };
    SimConfig::builder(seed)
        .duration(Duration::from_secs(60), Duration::from_secs(90))
        .tasks_per_second(50.0)
        .faults(faults)
        .codec(json)
        .build()
        .unwrap()
}

#[test]
fn hosted_runs_end_once_and_as_their_steps_say_under_every_fault() {
    let seeds: u64 = std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let mut crashes = 0;
    for seed in 1..=seeds {
        let report = simulate_hosted(config(seed), work(), sagas()).unwrap();
        if let Some(v) = &report.violation {
            panic!("seed {seed}: {v}");
        }
        let runs = report.runs;
        // The client starts none while it is stopped.
        assert!(runs.started > 200, "{report:?}");
        assert_eq!(
            runs.succeeded + runs.compensated + runs.failed + runs.compensation_failed,
            runs.started,
            "every run ended once: {report:?}"
        );
        assert!(runs.succeeded > 0 && runs.compensated > 0, "{report:?}");
        assert!(runs.cancelled > 0, "{report:?}");
        assert!(report.step_tasks >= 2 * runs.started, "{report:?}");
        assert!(report.journal_bytes > 0, "{report:?}");
        crashes += report.faults.get("crash_node").copied().unwrap_or(0);
        assert!(report.faults.contains_key("client_stops"), "{report:?}");
    }
    assert!(crashes > 0, "no node crashed");
}

#[test]
fn a_seed_with_hosted_runs_replays_to_the_same_trace() {
    let a = simulate_hosted(config(9), work(), sagas()).unwrap();
    let b = simulate_hosted(config(9), work(), sagas()).unwrap();
    assert!(a.violation.is_none(), "{:?}", a.violation);
    assert_eq!(a, b);
}

#[test]
fn hosted_sagas_refuse_settings_that_cannot_work() {
    let ms = Duration::from_millis;
    let second = Duration::from_secs(1);
    for (rate, fail, work, timeout) in [
        (f64::NAN, 0.1, (ms(1), ms(2)), second),
        (1e5, 0.1, (ms(1), ms(2)), second),
        (-1.0, 0.1, (ms(1), ms(2)), second),
        (10.0, 1.5, (ms(1), ms(2)), second),
        (10.0, 0.1, (ms(2), ms(1)), second),
        (10.0, 0.1, (ms(1), ms(2)), Duration::ZERO),
    ] {
        assert!(HostedSagas::new(rate, work, fail, timeout).is_err());
    }
    // Too many runs for the simulator's bound.
    let config: SimConfig<HostedTask<u64>> = SimConfig::builder(1)
        .duration(Duration::from_secs(86_400), Duration::from_secs(60))
        .tasks_per_second(1.0)
        .build()
        .unwrap();
    let refused = simulate_hosted(config, work(), sagas()).unwrap_err();
    assert!(refused.to_string().contains("MAX_RUNS"), "{refused}");
}
