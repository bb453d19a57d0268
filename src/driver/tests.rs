use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Driver, DriverError};
use crate::resilience::{Fixed, RetrySpec};
use crate::workflow::{
    AttemptEnd, FailureCause, RunOutcome, Step, StepDef, StepFailure, StepInput, StepOutput,
    StepState, WorkflowDef, WorkflowDefBuilder, WorkflowRun,
};
use crate::{Instant, WorkflowId};

fn build(builder: WorkflowDefBuilder) -> Arc<WorkflowDef> {
    Arc::new(builder.build().expect("valid definition"))
}

/// A fake clock: every reading is `step` later than the one before.
fn fake_clock(step: Duration) -> impl FnMut() -> Instant {
    let mut now = Instant::ZERO;
    move || {
        now = now.saturating_add(step);
        now
    }
}

fn start(def: &Arc<WorkflowDef>, input: Option<u64>) -> WorkflowRun<u64> {
    WorkflowRun::new(Arc::clone(def), WorkflowId::new(1), input, Instant::ZERO)
}

fn sum(input: &StepInput<u64>) -> u64 {
    input.inputs.iter().map(|(_, v)| v).sum()
}

fn zero_delay(attempts: u32) -> RetrySpec {
    RetrySpec::Fixed(Fixed::new(Duration::ZERO, attempts).expect("valid policy"))
}

#[test]
fn a_diamond_passes_real_values() {
    let def = build(
        WorkflowDef::builder("diamond", 1)
            .step(StepDef::local("fetch"))
            .step(StepDef::local("double"))
            .step(StepDef::local("square"))
            .step(StepDef::local("join").inputs(["double", "square"]))
            .edge("fetch", "double")
            .edge("fetch", "square")
            .edge("double", "join")
            .edge("square", "join"),
    );
    let order = Arc::new(Mutex::new(Vec::new()));
    let log = |name: &'static str| {
        let order = Arc::clone(&order);
        move || order.lock().expect("not poisoned").push(name)
    };
    let (l1, l2, l3, l4) = (log("fetch"), log("double"), log("square"), log("join"));
    let driver = Driver::new(2)
        .expect("threads")
        .step_fn("fetch", move |input| {
            l1();
            Ok(StepOutput::new(input.run_input.expect("entry step")))
        })
        .step_fn("double", move |input| {
            l2();
            Ok(StepOutput::new(2 * sum(input)))
        })
        .step_fn("square", move |input| {
            l3();
            Ok(StepOutput::new(sum(input).pow(2)))
        })
        .step_fn("join", move |input| {
            l4();
            // Input-mapping order: double, then square.
            let values: Vec<u64> = input.inputs.iter().map(|(_, v)| *v).collect();
            assert_eq!(values, [10, 25]);
            Ok(StepOutput::new(values[0] * 1000 + values[1]))
        });
    let mut run = start(&def, Some(5));
    let outcome = driver.run(&mut run, fake_clock(Duration::from_micros(1)));
    assert_eq!(outcome, Ok(RunOutcome::Succeeded));
    assert_eq!(run.output(), Some(&10_025));
    let order = order.lock().expect("not poisoned").clone();
    assert_eq!(order.first(), Some(&"fetch"));
    assert_eq!(order.last(), Some(&"join"));
    assert_eq!(order.len(), 4);
}

#[test]
fn a_failing_step_is_retried_by_its_policy() {
    let def =
        build(WorkflowDef::builder("retry", 1).step(StepDef::local("flaky").retry(zero_delay(3))));
    let calls = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&calls);
    let driver = Driver::new(1)
        .expect("threads")
        .step_fn("flaky", move |input| {
            seen.fetch_add(1, Ordering::SeqCst);
            if input.attempt < 3 {
                Err(StepFailure::retryable("not yet"))
            } else {
                Ok(StepOutput::new(u64::from(input.attempt)))
            }
        });
    let mut run = start(&def, None);
    let outcome = driver.run(&mut run, fake_clock(Duration::from_micros(1)));
    assert_eq!(outcome, Ok(RunOutcome::Succeeded));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(run.output(), Some(&3));

    // One attempt more than the policy allows fails the run.
    let calls = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&calls);
    let driver = Driver::new(1).expect("threads").step_fn("flaky", move |_| {
        seen.fetch_add(1, Ordering::SeqCst);
        Err(StepFailure::retryable("never"))
    });
    let mut run = start(&def, None);
    let outcome = driver.run(&mut run, fake_clock(Duration::from_micros(1)));
    assert!(matches!(
        outcome,
        Ok(RunOutcome::Failed(FailureCause::StepFailed { reason, .. })) if reason == "never"
    ));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

/// A compensable step that records what it undoes.
struct Reserve {
    undone: Arc<Mutex<Vec<Option<u64>>>>,
}

impl Step<u64> for Reserve {
    fn run(&self, _: &StepInput<u64>) -> Result<StepOutput<u64>, StepFailure> {
        Ok(StepOutput::new(42))
    }

    fn compensate(&self, input: &StepInput<u64>, output: Option<&u64>) -> Result<(), StepFailure> {
        assert_eq!(input.run_input, Some(9));
        self.undone
            .lock()
            .expect("not poisoned")
            .push(output.copied());
        Ok(())
    }
}

#[test]
fn a_failure_compensates_the_completed_steps() {
    let def = build(
        WorkflowDef::builder("saga", 1)
            .step(StepDef::local("reserve").compensable())
            .step(StepDef::local("charge"))
            .edge("reserve", "charge"),
    );
    let undone = Arc::new(Mutex::new(Vec::new()));
    let driver = Driver::new(2)
        .expect("threads")
        .step(
            "reserve",
            Reserve {
                undone: Arc::clone(&undone),
            },
        )
        .step_fn("charge", |_| Err(StepFailure::fatal("card declined")));
    let mut run = start(&def, Some(9));
    let outcome = driver
        .run(&mut run, fake_clock(Duration::from_micros(1)))
        .expect("driven");
    assert!(matches!(
        outcome,
        RunOutcome::Compensated(FailureCause::StepFailed { ref reason, .. }) if reason == "card declined"
    ));
    assert_eq!(*undone.lock().expect("not poisoned"), [Some(42)]);
}

#[test]
fn a_panicking_step_fails_the_run_and_the_pool_survives() {
    let def = build(
        WorkflowDef::builder("boom", 1)
            .step(StepDef::local("boom").retry(zero_delay(3)))
            .step(StepDef::local("after"))
            .edge("boom", "after"),
    );
    let calls = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&calls);
    let driver = Driver::new(1)
        .expect("threads")
        .step_fn("boom", move |_| {
            seen.fetch_add(1, Ordering::SeqCst);
            panic!("kaboom")
        })
        .step_fn("after", |_| Ok(StepOutput::new(1)));
    for _ in 0..2 {
        let mut run = start(&def, None);
        let outcome = driver.run(&mut run, fake_clock(Duration::from_micros(1)));
        let Ok(RunOutcome::Failed(FailureCause::StepFailed { reason, .. })) = outcome else {
            panic!("expected a failed run, got {outcome:?}");
        };
        assert_eq!(reason, "the step panicked: kaboom");
        assert_eq!(
            run.step_state(crate::StepId::new(1)),
            Some(StepState::Cancelled)
        );
    }
    // Fatal: no retry, on either run; and the single worker lived on.
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[test]
fn a_multi_instance_step_fans_out_over_its_expanders_items() {
    let def = build(
        WorkflowDef::builder("fan", 1)
            .step(StepDef::local("square").multi_instance(0))
            .step(StepDef::local("total"))
            .edge("square", "total"),
    );
    let driver = Driver::new(2)
        .expect("threads")
        .expander("square", |input: &StepInput<u64>| {
            (1..=input.run_input.unwrap_or(0)).collect()
        })
        .step_fn("square", |input| {
            let (_, item) = input.item.expect("an instance");
            Ok(StepOutput::new(item * item))
        })
        .step_fn("total", |input| {
            assert_eq!(input.inputs.len(), 4);
            Ok(StepOutput::new(sum(input)))
        });
    let mut run = start(&def, Some(4));
    let outcome = driver.run(&mut run, fake_clock(Duration::from_micros(1)));
    assert_eq!(outcome, Ok(RunOutcome::Succeeded));
    assert_eq!(run.output(), Some(&(1 + 4 + 9 + 16)));
}

#[test]
fn a_retry_delay_waits_on_the_host_clock() {
    let delay = Duration::from_millis(5);
    let def = build(
        WorkflowDef::builder("timer", 1)
            .step(StepDef::local("flaky").retry(Fixed::new(delay, 2).expect("valid policy"))),
    );
    let driver = Driver::new(1)
        .expect("threads")
        .step_fn("flaky", |input: &StepInput<u64>| {
            if input.attempt == 1 {
                Err(StepFailure::retryable("first try"))
            } else {
                Ok(StepOutput::new(7))
            }
        });
    let readings = Arc::new(AtomicU32::new(0));
    let counted = Arc::clone(&readings);
    let mut tick = fake_clock(Duration::from_millis(2));
    let clock = move || {
        counted.fetch_add(1, Ordering::SeqCst);
        tick()
    };
    let mut run = start(&def, None);
    assert_eq!(driver.run(&mut run, clock), Ok(RunOutcome::Succeeded));
    let attempts: Vec<_> = run.timeline().collect();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].outcome, AttemptEnd::Failed);
    let failed_at = attempts[0].end.expect("ended");
    assert!(attempts[1].start >= failed_at.saturating_add(delay));
    assert!(readings.load(Ordering::SeqCst) >= 3);
}

#[test]
fn a_timed_out_attempt_is_cancelled_and_its_late_result_dropped() {
    let def = build(
        WorkflowDef::builder("slow", 1).step(
            StepDef::local("slow")
                .timeout(Duration::from_millis(4))
                .retry(zero_delay(2)),
        ),
    );
    let driver = Driver::new(2)
        .expect("threads")
        .step_fn("slow", |input: &StepInput<u64>| {
            if input.attempt == 1 {
                std::thread::sleep(Duration::from_millis(200));
                Ok(StepOutput::new(1))
            } else {
                Ok(StepOutput::new(2))
            }
        });
    let mut run = start(&def, None);
    let outcome = driver.run(&mut run, fake_clock(Duration::from_millis(1)));
    assert_eq!(outcome, Ok(RunOutcome::Succeeded));
    assert_eq!(run.output(), Some(&2));
    let ends: Vec<_> = run.timeline().map(|entry| entry.outcome).collect();
    assert_eq!(ends, [AttemptEnd::TimedOut, AttemptEnd::Succeeded]);
}

#[test]
fn a_wait_step_ends_on_its_timeout() {
    let def = build(
        WorkflowDef::builder("wait", 1)
            .step(StepDef::wait("approval", ["approved"]).timeout(Duration::from_millis(3)))
            .step(StepDef::local("escalate"))
            .step(StepDef::local("ship"))
            .branch("approval", "escalate", "timeout")
            .branch("approval", "ship", "approved"),
    );
    let driver = Driver::new(1)
        .expect("threads")
        .step_fn("escalate", |_| Ok(StepOutput::new(1)))
        .step_fn("ship", |_| Ok(StepOutput::new(2)));
    let mut run = start(&def, None);
    let outcome = driver.run(&mut run, fake_clock(Duration::from_millis(1)));
    assert_eq!(outcome, Ok(RunOutcome::Succeeded));
    assert_eq!(
        run.step_state(crate::StepId::new(1)),
        Some(StepState::Completed)
    );
    assert_eq!(
        run.step_state(crate::StepId::new(2)),
        Some(StepState::Skipped)
    );
}

#[test]
fn a_sub_workflow_runs_nested_and_reports_its_output() {
    let child = build(
        WorkflowDef::builder("child", 1)
            .step(StepDef::local("inc"))
            .step(StepDef::local("double"))
            .edge("inc", "double"),
    );
    let parent = build(
        WorkflowDef::builder("parent", 1)
            .step(StepDef::local("seed"))
            .step(StepDef::sub_workflow("nested", child))
            .step(StepDef::local("report"))
            .chain(["seed", "nested", "report"]),
    );
    let driver = Driver::new(2)
        .expect("threads")
        .step_fn("seed", |_| Ok(StepOutput::new(20)))
        .step_fn("inc", |input| {
            Ok(StepOutput::new(input.run_input.expect("child input") + 1))
        })
        .step_fn("double", |input| Ok(StepOutput::new(2 * sum(input))))
        .step_fn("report", |input| Ok(StepOutput::new(sum(input))));
    let mut run = start(&parent, None);
    let outcome = driver.run(&mut run, fake_clock(Duration::from_micros(1)));
    assert_eq!(outcome, Ok(RunOutcome::Succeeded));
    assert_eq!(run.output(), Some(&42));
}

#[test]
fn a_refused_output_fails_the_attempt() {
    let def = build(WorkflowDef::builder("again", 1).step(StepDef::local("once")));
    let driver = Driver::new(1)
        .expect("threads")
        .step_fn("once", |_| Ok(StepOutput::new(1).again()));
    let mut run = start(&def, None);
    let outcome = driver.run(&mut run, fake_clock(Duration::from_micros(1)));
    let Ok(RunOutcome::Failed(FailureCause::StepFailed { reason, .. })) = outcome else {
        panic!("expected a failed run, got {outcome:?}");
    };
    assert!(
        reason.starts_with("the run refused the step's output"),
        "{reason}"
    );
}

#[test]
fn misconfigurations_are_typed_errors_before_anything_runs() {
    assert_eq!(
        Driver::<u64>::new(0).map(|_| ()),
        Err(DriverError::NoThreads)
    );

    let def = build(
        WorkflowDef::builder("config", 1)
            .step(StepDef::local("known"))
            .step(StepDef::agent("unknown"))
            .edge("known", "unknown"),
    );
    let driver = Driver::new(1)
        .expect("threads")
        .step_fn("known", |_: &StepInput<u64>| Ok(StepOutput::empty()));
    let mut run = start(&def, None);
    let outcome = driver.run(&mut run, fake_clock(Duration::from_micros(1)));
    assert_eq!(
        outcome,
        Err(DriverError::UnregisteredStep {
            workflow: "config".into(),
            step: "unknown".into()
        })
    );
    // Untouched: the first step was never handed out.
    assert!(run.poll_action().is_some());

    // A default step covers every unregistered id.
    let driver = driver.default_step(|_: &StepInput<u64>| Ok(StepOutput::new(3)));
    let mut run = start(&def, None);
    let outcome = driver.run(&mut run, fake_clock(Duration::from_micros(1)));
    assert_eq!(outcome, Ok(RunOutcome::Succeeded));

    let fan = build(WorkflowDef::builder("fan", 1).step(StepDef::local("each").multi_instance(0)));
    assert_eq!(
        driver.check(&fan),
        Err(DriverError::MissingExpander {
            workflow: "fan".into(),
            step: "each".into()
        })
    );

    let wait = build(WorkflowDef::builder("wait", 1).step(StepDef::wait("forever", ["go"])));
    let nested = build(WorkflowDef::builder("outer", 1).step(StepDef::sub_workflow("inner", wait)));
    assert_eq!(
        driver.check(&nested),
        Err(DriverError::UnboundedWait {
            workflow: "wait".into(),
            step: "forever".into()
        })
    );
}

#[test]
fn a_run_whose_actions_were_taken_is_reported_stalled() {
    let def = build(WorkflowDef::builder("taken", 1).step(StepDef::local("only")));
    let driver = Driver::new(1)
        .expect("threads")
        .step_fn("only", |_: &StepInput<u64>| Ok(StepOutput::empty()));
    let mut run = start(&def, None);
    assert!(run.poll_action().is_some());
    let outcome = driver.run(&mut run, fake_clock(Duration::from_micros(1)));
    assert_eq!(outcome, Err(DriverError::Stalled));
}

#[test]
fn several_threads_share_one_driver() {
    let def = build(
        WorkflowDef::builder("pair", 1)
            .step(StepDef::local("a"))
            .step(StepDef::local("b"))
            .edge("a", "b"),
    );
    let driver = Driver::new(3)
        .expect("threads")
        .step_fn("a", |input| {
            Ok(StepOutput::new(input.run_input.unwrap_or(0)))
        })
        .step_fn("b", |input| Ok(StepOutput::new(sum(input) + 1)));
    assert_eq!(driver.threads(), 3);
    fn send_sync<T: Send + Sync>(_: &T) {}
    send_sync(&driver);
    std::thread::scope(|scope| {
        for i in 0..4u64 {
            let (driver, def) = (&driver, &def);
            scope.spawn(move || {
                let mut run = start(def, Some(i * 10));
                let outcome = driver.run(&mut run, fake_clock(Duration::from_micros(1)));
                assert_eq!(outcome, Ok(RunOutcome::Succeeded));
                assert_eq!(run.output(), Some(&(i * 10 + 1)));
            });
        }
    });
    let debug = format!("{driver:?}");
    assert!(debug.contains("threads: 3"), "{debug}");
    drop(driver);
}

#[test]
fn serve_runs_an_engines_local_steps_while_the_host_plays_the_agents() {
    use crate::AgentId;
    use crate::agent::AgentProfile;
    use crate::driver::Served;
    use crate::scheduler::{Dispatcher, DispatcherConfig};
    use crate::workflow::{EngineAction, StepTask, WorkflowEngine};

    // fetch (agent) -> double (local, compensable) -> store (agent, fails
    // for odd inputs): odd runs compensate `double` on the pool.
    let def = build(
        WorkflowDef::builder("mixed", 1)
            .step(StepDef::agent("fetch").capabilities(["io"]))
            .step(StepDef::local("double").compensable())
            .step(StepDef::agent("store").capabilities(["io"]))
            .chain(["fetch", "double", "store"]),
    );
    let undone = Arc::new(AtomicU32::new(0));
    struct Double(Arc<AtomicU32>);
    impl Step<u64> for Double {
        fn run(&self, input: &StepInput<u64>) -> Result<StepOutput<u64>, StepFailure> {
            Ok(StepOutput::new(2 * sum(input)))
        }
        fn compensate(&self, _: &StepInput<u64>, _: Option<&u64>) -> Result<(), StepFailure> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }
    let driver = Driver::new(2)
        .unwrap()
        .step("double", Double(Arc::clone(&undone)));
    let mut pool: Dispatcher<StepTask> = Dispatcher::new(DispatcherConfig::default());
    let mut engine: WorkflowEngine<u64> = WorkflowEngine::new();
    let profile = AgentProfile::builder()
        .capabilities(["io"])
        .capacity(8)
        .build()
        .unwrap();
    pool.register_agent(AgentId::new(1), profile, Instant::ZERO)
        .unwrap();
    for i in 0..20 {
        engine.start(&mut pool, Arc::clone(&def), Some(i), Instant::ZERO);
    }
    let mut outcomes = Vec::new();
    driver
        .serve(
            &mut engine,
            &mut pool,
            || Instant::ZERO,
            |engine, pool, action| match action {
                Served::Workflow(EngineAction::Assign {
                    task,
                    agent,
                    token,
                    step,
                }) => {
                    let input = engine.input(step.run, step.token).unwrap();
                    let result = match input.run_input {
                        Some(n) => Ok(StepOutput::new(n)),
                        None if step.compensation => Ok(StepOutput::empty()),
                        None if sum(&input) % 4 == 2 => Err(StepFailure::fatal("odd")),
                        None => Ok(StepOutput::new(sum(&input))),
                    };
                    engine
                        .report(pool, task, agent, token, result, Instant::ZERO)
                        .unwrap();
                }
                Served::Workflow(EngineAction::Finished {
                    outcome, output, ..
                }) => outcomes.push((outcome, output)),
                other => panic!("unexpected {other:?}"),
            },
        )
        .unwrap();
    assert_eq!(outcomes.len(), 20);
    let succeeded = outcomes
        .iter()
        .filter(|(o, _)| *o == RunOutcome::Succeeded)
        .count();
    assert_eq!(succeeded, 10);
    assert!(outcomes.iter().all(|(o, out)| *o == RunOutcome::Succeeded
        || matches!(o, RunOutcome::Compensated(_)) && out.is_none()));
    assert_eq!(undone.load(Ordering::SeqCst), 10);
    assert_eq!(engine.active_runs(), 0);
    assert_eq!(pool.live_tasks(), 0);
    assert!(pool.dead_letters().is_empty());
}
