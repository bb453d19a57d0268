//! The cluster simulator: deterministic, clean on the roles as they are,
//! usable with a host's own workload, and strict about its configuration.

#![cfg(feature = "cluster")]

use std::time::Duration;

use taskweave::AgentId;
use taskweave::cluster::sim::{FaultMenu, SimConfig, SimRng, SimWork, UniformWork, simulate};
use taskweave::cluster::{Assignment, NodeConfig, SessionConfig};
use taskweave::scheduler::{AttemptOutcome, DispatcherConfig, TaskSpec};

fn work() -> UniformWork {
    UniformWork {
        work: (Duration::from_millis(1), Duration::from_millis(100)),
        fail: 0.05,
    }
}

fn config(seed: u64, seconds: u64) -> SimConfig<u64> {
    SimConfig::builder(seed)
        .duration(Duration::from_secs(seconds), Duration::from_secs(60))
        .build()
        .unwrap()
}

#[test]
fn a_seed_replays_to_the_same_trace_and_seeds_differ() {
    let a = simulate(config(3, 20), work());
    let b = simulate(config(3, 20), work());
    let c = simulate(config(4, 20), work());
    assert_eq!(a, b, "two runs of a seed");
    assert_ne!(a.trace_hash, c.trace_hash);
    // A run that only hashes (as `--seeds` runs do) gives the hash of one
    // that keeps its trace lines (the default, and `--seed`'s replay).
    let hashing = SimConfig::builder(3)
        .duration(Duration::from_secs(20), Duration::from_secs(60))
        .keep_trace(false)
        .build()
        .unwrap();
    assert_eq!(simulate(hashing, work()).trace_hash, a.trace_hash);
}

#[test]
fn the_roles_break_no_rule_under_every_fault() {
    let seeds: u64 = std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let mut redriven = 0;
    for seed in 1..=seeds {
        let report = simulate(config(seed, 30), work());
        redriven += report.redriven;
        if let Some(v) = &report.violation {
            panic!("seed {seed}: {v}");
        }
        assert!(
            report.completed > 0 && report.faults.values().sum::<u64>() > 0,
            "{report:?}"
        );
        // Every task ended once: each the clients submitted and the
        // queue took, and each dead letter an operator requeued.
        let ended = report.completed + report.dead_lettered + report.expired + report.cancelled;
        assert_eq!(
            ended + report.refused,
            report.submitted + report.redriven,
            "{report:?}"
        );
    }
    assert!(redriven > 0, "no seed redrove a dead letter");
}

#[test]
fn bursts_beyond_the_queue_are_refused_with_a_verdict_and_nothing_is_lost() {
    let faults = FaultMenu {
        burst: 0.5,
        ..FaultMenu::none()
    };
    let config = SimConfig::builder(5)
        .duration(Duration::from_secs(20), Duration::from_secs(60))
        .faults(faults)
        .build()
        .unwrap();
    let report = simulate(config, work());
    assert!(report.violation.is_none(), "{:?}", report.violation);
    assert!(report.faults["burst"] > 0, "{report:?}");
    // A burst is half again the queue's capacity: some of it is refused.
    assert!(report.refused > 0, "{report:?}");
    let ended = report.completed + report.dead_lettered + report.expired + report.cancelled;
    assert_eq!(ended + report.refused, report.submitted, "{report:?}");
}

#[test]
fn without_faults_every_task_completes_or_fails_by_its_work() {
    let config = SimConfig::builder(9)
        .duration(Duration::from_secs(10), Duration::from_secs(30))
        .faults(FaultMenu::none())
        .build()
        .unwrap();
    let report = simulate(
        config,
        UniformWork {
            work: (Duration::from_millis(1), Duration::from_millis(5)),
            fail: 0.0,
        },
    );
    assert!(report.violation.is_none(), "{:?}", report.violation);
    assert_eq!(report.completed, report.submitted);
    assert_eq!(report.takeovers, 1);
    assert!(report.faults.is_empty());
}

/// A host's own workload: tasks with idempotency keys and agents that
/// fail every attempt of some tasks for good.
struct Picky;

impl SimWork<String> for Picky {
    fn task(&mut self, n: u64, _: &mut SimRng) -> TaskSpec<String> {
        TaskSpec::new(format!("job {n}")).idempotency_key(format!("k{n}"))
    }

    fn attempt(
        &mut self,
        _: AgentId,
        work: &Assignment<String>,
        rng: &mut SimRng,
    ) -> (Duration, AttemptOutcome) {
        let took = rng.between(Duration::from_millis(2), Duration::from_millis(20));
        if work.payload.ends_with('7') {
            (took, AttemptOutcome::fatal("sevens are refused"))
        } else {
            (took, AttemptOutcome::Success)
        }
    }
}

#[test]
fn a_host_simulates_its_own_workload() {
    let config = SimConfig::<String>::builder(5)
        .duration(Duration::from_secs(15), Duration::from_secs(60))
        .build()
        .unwrap();
    let report = simulate(config, Picky);
    assert!(report.violation.is_none(), "{:?}", report.violation);
    assert!(
        report.dead_lettered > 0 && report.completed > report.dead_lettered,
        "{report:?}"
    );
}

#[test]
fn unworkable_simulations_are_refused_with_the_reason() {
    let refused = |b: taskweave::cluster::sim::SimConfigBuilder<u64>| b.build().unwrap_err().0;
    assert!(refused(SimConfig::builder(1).cluster(0, 3, 1)).contains("1..=9 nodes"));
    assert!(refused(SimConfig::builder(1).cluster(3, 3, 0)).contains("slots"));
    let skew = FaultMenu {
        clock_skew: Duration::from_secs(1),
        ..FaultMenu::default()
    };
    assert!(refused(SimConfig::builder(1).faults(skew)).contains("lease margin"));
    let chance = FaultMenu {
        lose_answer: 1.5,
        ..FaultMenu::default()
    };
    assert!(refused(SimConfig::builder(1).faults(chance)).contains("chances"));
    let refusals = FaultMenu {
        refuse: -0.1,
        ..FaultMenu::default()
    };
    assert!(refused(SimConfig::builder(1).faults(refusals)).contains("chances"));
    let rate = FaultMenu {
        crash_node: f64::NAN,
        ..FaultMenu::default()
    };
    assert!(refused(SimConfig::builder(1).faults(rate)).contains("finite"));
    let delay =
        SimConfig::builder(1).link_delay(Duration::from_millis(5), Duration::from_millis(1));
    assert!(refused(delay).contains("link delay"));
    // Bursts are sized by the queue: a huge queue would mean a huge burst.
    let (node, session) = (
        NodeConfig::builder("node").build().unwrap(),
        SessionConfig::builder().build().unwrap(),
    );
    let dispatcher = DispatcherConfig::builder()
        .heartbeats(Duration::from_millis(250), 8)
        .queue_capacity(usize::MAX)
        .build()
        .unwrap();
    let huge = SimConfig::builder(1).roles(node.clone(), session.clone(), dispatcher);
    // A heartbeat timeout of ages: the failover it implies is refused.
    let deaf = DispatcherConfig::builder()
        .heartbeats(Duration::MAX, 8)
        .build()
        .unwrap();
    let deaf = SimConfig::builder(1).roles(node, session, deaf);
    assert!(refused(deaf).contains("heartbeat timeout"));
    assert!(refused(huge.clone()).contains("with bursts on"));
    let calm = FaultMenu {
        burst: 0.0,
        ..FaultMenu::default()
    };
    assert!(huge.faults(calm).build().is_ok());
}

#[test]
fn a_violation_prints_what_when_and_its_trace_indented() {
    let v = taskweave::cluster::sim::Violation {
        at: Duration::from_millis(1500),
        what: "a write of epoch 2 landed under epoch 3".into(),
        trace: vec!["1400 ms  commit 0".into(), "1500 ms  VIOLATION".into()],
    };
    assert_eq!(
        v.to_string(),
        "a write of epoch 2 landed under epoch 3 at 1.5s of simulated time\n  1400 ms  commit 0\n  1500 ms  VIOLATION"
    );
}
