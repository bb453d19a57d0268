//! Workflows in the cluster simulator: a host's own saga, its steps run by
//! the cluster's agents under every fault, checked by the simulator.

#![cfg(all(feature = "cluster", feature = "workflow"))]

use std::sync::Arc;
use std::time::Duration;

use taskweave::cluster::sim::{
    FaultMenu, SagaFlows, SimConfig, SimRng, SimTask, SimWorkflows, UniformWork, simulate_workflows,
};
use taskweave::scheduler::AttemptOutcome;
use taskweave::workflow::{StepDef, StepFailure, StepOutput, StepTask, WorkflowDef};
use taskweave::{AgentId, StepId, WorkflowId};

/// A host's trip saga: a local quote, then a flight and a hotel booked in
/// parallel (both compensable), then a payment that fails with
/// probability `declined`.
#[derive(Clone)]
struct Trips {
    def: Arc<WorkflowDef>,
    declined: f64,
}

impl Trips {
    fn new(declined: f64) -> Self {
        let def = WorkflowDef::builder("trip", 1)
            .step(StepDef::local("quote"))
            .step(StepDef::agent("flight").compensable())
            .step(StepDef::agent("hotel").compensable())
            .step(StepDef::agent("pay"))
            .edge("quote", "flight")
            .edge("quote", "hotel")
            .edge("flight", "pay")
            .edge("hotel", "pay")
            .build()
            .unwrap();
        Trips {
            def: Arc::new(def),
            declined,
        }
    }
}

impl SimWorkflows for Trips {
    type Output = ();

    fn start(&mut self, started: u64, _: &mut SimRng) -> Vec<(Arc<WorkflowDef>, Option<()>)> {
        // Two trips a tick, at most 200 in all.
        let count = 2.min(200u64.saturating_sub(started));
        (0..count).map(|_| (Arc::clone(&self.def), None)).collect()
    }

    fn attempt(
        &mut self,
        _: AgentId,
        step: &StepTask,
        rng: &mut SimRng,
    ) -> (Duration, AttemptOutcome) {
        let took = rng.between(Duration::from_millis(5), Duration::from_millis(80));
        let paying = self.def.step(step.step).is_some_and(|s| s.id == "pay");
        if paying && rng.chance(self.declined) {
            return (took, AttemptOutcome::fatal("card declined"));
        }
        (took, AttemptOutcome::Success)
    }

    fn local(
        &mut self,
        _: WorkflowId,
        _: StepId,
        _: &mut SimRng,
    ) -> Result<StepOutput<()>, StepFailure> {
        Ok(StepOutput::new(()))
    }
}

fn work() -> UniformWork {
    UniformWork {
        work: (Duration::from_millis(1), Duration::from_millis(100)),
        fail: 0.05,
    }
}

fn config(seed: u64, faults: FaultMenu) -> SimConfig<SimTask<u64>> {
    SimConfig::builder(seed)
        .duration(Duration::from_secs(30), Duration::from_secs(90))
        .tasks_per_second(50.0)
        .faults(faults)
        .build()
        .unwrap()
}

#[test]
fn a_hosts_saga_pays_or_compensates_under_every_fault() {
    let seeds: u64 = std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    for seed in 1..=seeds {
        let report =
            simulate_workflows(config(seed, FaultMenu::default()), work(), Trips::new(0.3))
                .unwrap();
        if let Some(v) = &report.violation {
            panic!("seed {seed}: {v}");
        }
        let runs = report.runs;
        assert_eq!(runs.started, 200, "{report:?}");
        assert_eq!(
            runs.succeeded + runs.compensated + runs.failed + runs.compensation_failed,
            runs.started,
            "every run ended once: {report:?}"
        );
        assert!(runs.succeeded > 0 && runs.compensated > 0, "{report:?}");
        assert!(report.faults.values().sum::<u64>() > 0);
    }
}

#[test]
fn without_faults_a_declined_payment_compensates_every_trip() {
    let report = simulate_workflows(config(2, FaultMenu::none()), work(), Trips::new(1.0)).unwrap();
    assert!(report.violation.is_none(), "{:?}", report.violation);
    let runs = report.runs;
    assert_eq!(runs.started, 200);
    assert_eq!(runs.compensated, 200, "{report:?}");
    // Each trip: two bookings, a payment, two compensations, as tasks.
    let report = simulate_workflows(config(2, FaultMenu::none()), work(), Trips::new(0.0)).unwrap();
    assert!(report.violation.is_none(), "{:?}", report.violation);
    assert_eq!(report.runs.succeeded, 200, "{report:?}");
}

#[test]
fn a_seed_with_workflows_replays_to_the_same_trace() {
    let flows = || {
        SagaFlows::new(
            10.0,
            (Duration::from_millis(1), Duration::from_millis(100)),
            0.2,
            Duration::from_secs(3),
        )
        .unwrap()
    };
    let a = simulate_workflows(config(9, FaultMenu::default()), work(), flows()).unwrap();
    let b = simulate_workflows(config(9, FaultMenu::default()), work(), flows()).unwrap();
    assert!(a.violation.is_none(), "{:?}", a.violation);
    assert_eq!(a, b);
    assert!(a.runs.started > 0);
    let c = simulate_workflows(config(10, FaultMenu::default()), work(), flows()).unwrap();
    assert_ne!(a.trace_hash, c.trace_hash);
}

#[test]
fn saga_flows_refuse_a_zero_step_timeout() {
    let refused = SagaFlows::new(1.0, (Duration::ZERO, Duration::ZERO), 0.0, Duration::ZERO);
    assert!(refused.is_err());
}

#[test]
fn saga_flows_refuse_rates_shares_and_ranges_that_cannot_work() {
    let ms = Duration::from_millis;
    let second = Duration::from_secs(1);
    for (rate, fail, work) in [
        (f64::NAN, 0.1, (ms(1), ms(2))),
        (f64::INFINITY, 0.1, (ms(1), ms(2))),
        (1e18, 0.1, (ms(1), ms(2))),
        (-1.0, 0.1, (ms(1), ms(2))),
        (10.0, 1.5, (ms(1), ms(2))),
        (10.0, f64::NAN, (ms(1), ms(2))),
        (10.0, 0.1, (ms(2), ms(1))),
    ] {
        let refused = SagaFlows::new(rate, work, fail, second).unwrap_err();
        assert!(refused.to_string().contains("saga flows need"), "{refused}");
    }
    assert!(SagaFlows::new(1e6, (ms(1), ms(2)), 1.0, second).is_ok());
}
