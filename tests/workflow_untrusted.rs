//! Workflows under untrusted input: definitions read from JSON,
//! corrupted checkpoints, and host clocks that jump, step back or reach
//! `Instant::MAX`. Unit tests for each fix; the properties are in
//! `workflow_untrusted_props.rs`.

#![cfg(all(feature = "serde", feature = "workflow"))]

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use taskweave::resilience::{Fixed, RetrySpec};
use taskweave::workflow::{
    Checkpoint, DefinitionError, MAX_ATTEMPTS, MAX_DEPTH_LIMIT, MAX_INSTANCES, MAX_ITERATIONS,
    MAX_TIMEOUT, RunAction, RunError, RunOutcome, StepDef, StepFailure, StepOutput, WorkflowDef,
    WorkflowRun,
};
use taskweave::{Instant, WorkflowId};

mod harness;

use harness::drain;

fn parse(value: Value) -> Result<WorkflowDef, String> {
    serde_json::from_value::<WorkflowDef>(value).map_err(|e| e.to_string())
}

fn retry(delay: Duration, attempts: u32) -> RetrySpec {
    RetrySpec::from(Fixed::new(delay, attempts).unwrap())
}

fn start_token(actions: &[RunAction]) -> taskweave::AttemptToken {
    actions
        .iter()
        .find_map(|a| match a {
            RunAction::Start { token, .. } => Some(*token),
            _ => None,
        })
        .expect("a start")
}

// ---- definitions --------------------------------------------------------

#[test]
fn duplicate_entries_in_data_are_refused_naming_the_step() {
    let err = parse(json!({
        "name": "dup", "version": 1, "entries": ["s0", "s0"],
        "tasks": [{ "id": "s0", "kind": "local" }]
    }))
    .unwrap_err();
    let expected = DefinitionError::DuplicateName {
        context: "the entry list".into(),
        name: "s0".into(),
    };
    assert!(err.starts_with(&expected.to_string()), "{err}");
    let built = WorkflowDef::builder("dup", 1)
        .step(StepDef::local("s0"))
        .entries(["s0", "s0"])
        .build()
        .unwrap_err();
    assert_eq!(built, expected);
}

#[test]
fn other_duplicate_lists_are_refused() {
    let cases = [
        (
            StepDef::local("a").capabilities(["x", "x"]),
            "the capabilities of step `a`",
        ),
        (StepDef::wait("a", ["go", "go"]), "the signals of step `a`"),
    ];
    for (step, context) in cases {
        let err = WorkflowDef::builder("d", 1).step(step).build().unwrap_err();
        assert_eq!(
            err,
            DefinitionError::DuplicateName {
                context: context.into(),
                name: err_name(&err),
            }
        );
    }
    let inputs = WorkflowDef::builder("d", 1)
        .step(StepDef::local("a"))
        .step(StepDef::local("b").inputs(["a", "a"]))
        .edge("a", "b")
        .build()
        .unwrap_err();
    assert_eq!(
        inputs,
        DefinitionError::DuplicateName {
            context: "the inputs of step `b`".into(),
            name: "a".into()
        }
    );
}

fn err_name(err: &DefinitionError) -> String {
    match err {
        DefinitionError::DuplicateName { name, .. } => name.clone(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_zero_timeout_is_refused_in_code_and_in_data() {
    let err = WorkflowDef::builder("z", 1)
        .step(StepDef::local("s0").timeout(Duration::ZERO))
        .build()
        .unwrap_err();
    assert_eq!(err, DefinitionError::ZeroTimeout("s0".into()));
    let err = WorkflowDef::builder("z", 1)
        .step(StepDef::wait("w", ["go"]).timeout(Duration::ZERO))
        .build()
        .unwrap_err();
    assert_eq!(err, DefinitionError::ZeroTimeout("w".into()));
    let err = parse(json!({
        "name": "z", "version": 1,
        "tasks": [{ "id": "s0", "kind": "local", "timeout": { "secs": 0, "nanos": 0 },
                    "retry": { "fixed": { "delay": { "secs": 0, "nanos": 0 }, "max_attempts": 1000 } } }]
    }))
    .unwrap_err();
    assert!(err.starts_with("step `s0` has a zero timeout"), "{err}");
}

#[test]
fn a_wait_that_nothing_could_end_is_refused() {
    let err = WorkflowDef::builder("w", 1)
        .step(StepDef::wait("w", Vec::<String>::new()))
        .build()
        .unwrap_err();
    assert_eq!(err, DefinitionError::WaitNeverEnds("w".into()));
    // A signal or a timeout is enough.
    for wait in [
        StepDef::wait("w", ["go"]),
        StepDef::wait("w", Vec::<String>::new()).timeout(Duration::from_secs(1)),
    ] {
        assert!(WorkflowDef::builder("w", 1).step(wait).build().is_ok());
    }
}

#[test]
fn a_timeout_that_saturates_to_never_is_refused() {
    let build = |timeout| {
        WorkflowDef::builder("w", 1)
            .step(StepDef::wait("w", Vec::<String>::new()).timeout(timeout))
            .build()
    };
    for timeout in [Duration::MAX, MAX_TIMEOUT + Duration::from_nanos(1)] {
        let err = build(timeout).unwrap_err();
        assert!(
            matches!(err, DefinitionError::TimeoutTooLong { ref step, .. } if step == "w"),
            "{err:?}"
        );
        assert!(err.to_string().contains("could never fire"), "{err}");
    }
    assert!(build(MAX_TIMEOUT).is_ok());
    // From JSON, on a task step's own timeout as well.
    let err = parse(json!({
        "name": "z", "version": 1,
        "tasks": [{ "id": "s0", "kind": "local",
                    "timeout": { "secs": u64::MAX, "nanos": 999_999_999 } }]
    }))
    .unwrap_err();
    assert!(err.contains("could never fire"), "{err}");
}

#[test]
fn counts_above_the_limits_are_refused() {
    let too_large = |step: StepDef, field: &str| {
        let err = WorkflowDef::builder("big", 1)
            .step(step)
            .build()
            .unwrap_err();
        assert!(
            matches!(&err, DefinitionError::TooLarge { context, field: f, .. }
                if context == "step `s`" && *f == field),
            "{err:?}"
        );
    };
    too_large(
        StepDef::local("s").retry(retry(Duration::ZERO, MAX_ATTEMPTS + 1)),
        "retry max_attempts",
    );
    too_large(StepDef::local("s").repeat(u32::MAX), "max_iterations");
    too_large(
        StepDef::local("s").multi_instance(MAX_INSTANCES + 1),
        "multi_instance tolerated_failures",
    );
    // The limits themselves are accepted.
    for step in [
        StepDef::local("s").retry(retry(Duration::ZERO, MAX_ATTEMPTS)),
        StepDef::local("s").repeat(MAX_ITERATIONS),
    ] {
        WorkflowDef::builder("ok", 1).step(step).build().unwrap();
    }
    let err = WorkflowDef::builder("deep", 1)
        .max_depth(MAX_DEPTH_LIMIT + 1)
        .step(StepDef::local("s"))
        .build()
        .unwrap_err();
    assert_eq!(
        err,
        DefinitionError::TooLarge {
            context: "the workflow".into(),
            field: "max_depth",
            value: u64::from(MAX_DEPTH_LIMIT) + 1,
            limit: MAX_DEPTH_LIMIT.into(),
        }
    );
    let err = parse(json!({
        "name": "big", "version": 1,
        "tasks": [{ "id": "s", "kind": "local", "max_iterations": u32::MAX }]
    }))
    .unwrap_err();
    assert!(err.contains("max_iterations is 4294967295"), "{err}");
}

#[test]
fn shared_sub_workflows_nest_in_linear_time() {
    // Each level holds two steps running the level below: the depth was
    // recomputed through both, 2^depth times.
    let mut def = Arc::new(
        WorkflowDef::builder("leaf", 1)
            .step(StepDef::local("s"))
            .build()
            .unwrap(),
    );
    for level in 0..MAX_DEPTH_LIMIT {
        def = Arc::new(
            WorkflowDef::builder(format!("l{level}"), 1)
                .max_depth(MAX_DEPTH_LIMIT)
                .step(StepDef::sub_workflow("a", Arc::clone(&def)))
                .step(StepDef::sub_workflow("b", Arc::clone(&def)))
                .build()
                .unwrap(),
        );
    }
    let err = WorkflowDef::builder("top", 1)
        .max_depth(MAX_DEPTH_LIMIT)
        .step(StepDef::sub_workflow("x", def))
        .build()
        .unwrap_err();
    assert!(matches!(err, DefinitionError::TooDeep { depth, .. } if depth == MAX_DEPTH_LIMIT + 1));
}

#[test]
fn too_many_items_are_refused() {
    let def = Arc::new(
        WorkflowDef::builder("m", 1)
            .step(StepDef::local("m").multi_instance(0))
            .build()
            .unwrap(),
    );
    let mut run: WorkflowRun<u32> = WorkflowRun::new(def, WorkflowId::new(1), None, Instant::ZERO);
    let Some(RunAction::Expand { step }) = run.poll_action() else {
        panic!("expected an expansion")
    };
    let items = vec![0; MAX_INSTANCES as usize + 1];
    let err = run.expand(step, items, Instant::ZERO).unwrap_err();
    assert!(matches!(err, RunError::TooManyItems { .. }), "{err:?}");
    assert!(run.expand(step, vec![1, 2], Instant::ZERO).is_ok());
}

// ---- timers and clocks ----------------------------------------------------

/// One step timing out after 1 ns, retried at once up to the limit.
fn flaky(deadline: Option<Duration>) -> Arc<WorkflowDef> {
    let mut builder = WorkflowDef::builder("flaky", 1).step(
        StepDef::local("s")
            .timeout(Duration::from_nanos(1))
            .retry(retry(Duration::ZERO, MAX_ATTEMPTS)),
    );
    if let Some(deadline) = deadline {
        builder = builder.deadline(deadline);
    }
    Arc::new(builder.build().unwrap())
}

#[test]
fn handle_timeout_at_instant_max_with_many_retries_returns_promptly() {
    let mut run: WorkflowRun<u32> =
        WorkflowRun::new(flaky(None), WorkflowId::new(1), None, Instant::ZERO);
    drain(&mut run);
    // The attempt times out; its retry would fall at Instant::MAX, which is
    // never: the step fails for good instead of retrying thousands of times
    // within the call.
    run.handle_timeout(Instant::MAX);
    let actions = drain(&mut run);
    assert!(actions.len() <= 3, "{actions:?}");
    assert!(matches!(run.outcome(), Some(RunOutcome::Failed(_))));
    assert_eq!(run.timeline().count(), 1);
}

#[test]
fn a_run_started_at_instant_max_sets_no_timer() {
    let mut run: WorkflowRun<u32> = WorkflowRun::new(
        flaky(Some(Duration::from_secs(1))),
        WorkflowId::new(1),
        None,
        Instant::MAX,
    );
    drain(&mut run);
    // The attempt timeout and the deadline both land at "never".
    assert_eq!(run.poll_timeout(), None);
    for _ in 0..3 {
        run.handle_timeout(Instant::MAX);
        assert!(drain(&mut run).is_empty());
    }
    assert!(run.is_waiting_for_host());
    assert_eq!(run.outcome(), None);
}

#[test]
fn one_call_fires_only_the_timers_due_when_it_began() {
    let mut run: WorkflowRun<u32> =
        WorkflowRun::new(flaky(None), WorkflowId::new(1), None, Instant::ZERO);
    drain(&mut run);
    let now = Instant::from_secs(1);
    // Each call: the attempt times out and its immediate retry is left for
    // the next call, due already.
    run.handle_timeout(now);
    let actions = drain(&mut run);
    assert_eq!(actions.len(), 1, "{actions:?}");
    assert!(run.poll_timeout().is_some_and(|at| at <= now));
    run.handle_timeout(now);
    let actions = drain(&mut run);
    assert!(
        matches!(actions[..], [RunAction::Start { attempt: 2, .. }]),
        "{actions:?}"
    );
    // A host waking the run whenever it asks ends after the retry limit:
    // one call times an attempt out, the next starts its retry.
    let mut now = now;
    let mut calls = 0;
    while let Some(at) = run.poll_timeout() {
        now = now.max(at);
        run.handle_timeout(now);
        assert!(drain(&mut run).len() <= 2);
        calls += 1;
        assert!(calls <= 2 * MAX_ATTEMPTS + 4, "no end in sight");
    }
    assert!(matches!(run.outcome(), Some(RunOutcome::Failed(_))));
    assert_eq!(run.timeline().count(), MAX_ATTEMPTS as usize);
}

#[test]
fn a_clock_stepping_back_counts_as_no_time_passing() {
    let def = Arc::new(
        WorkflowDef::builder("w", 1)
            .step(StepDef::wait("w", ["go"]).timeout(Duration::from_secs(10)))
            .build()
            .unwrap(),
    );
    let mut run: WorkflowRun<u32> = WorkflowRun::new(def, WorkflowId::new(1), None, Instant::ZERO);
    run.handle_timeout(Instant::from_secs(5));
    assert_eq!(run.latest_now(), Instant::from_secs(5));
    run.handle_timeout(Instant::from_secs(1));
    assert_eq!(run.latest_now(), Instant::from_secs(5));
    assert!(drain(&mut run).is_empty());
    assert!(run.is_waiting_for_signal());
    // A signal "sent at" an earlier instant is applied at the latest one.
    run.signal("go", None, Instant::from_secs(2)).unwrap();
    assert_eq!(run.outcome(), Some(&RunOutcome::Succeeded));
}

#[test]
fn an_attempt_reported_with_an_earlier_clock_ends_at_the_latest_now() {
    let def = Arc::new(
        WorkflowDef::builder("one", 1)
            .step(StepDef::local("s"))
            .build()
            .unwrap(),
    );
    let mut run: WorkflowRun<u32> =
        WorkflowRun::new(def, WorkflowId::new(1), None, Instant::from_secs(10));
    let token = start_token(&drain(&mut run));
    run.succeed(token, StepOutput::new(1), Instant::from_secs(3))
        .unwrap();
    let entry = run.timeline().next().unwrap();
    assert_eq!(entry.end, Some(Instant::from_secs(10)));
    assert!(entry.start <= entry.end.unwrap());
}

// ---- checkpoints ------------------------------------------------------------

/// A run with a running retried step, a wait, a pending join and a
/// completed compensable step.
fn busy() -> (Arc<WorkflowDef>, WorkflowRun<u32>) {
    let def = Arc::new(
        WorkflowDef::builder("busy", 1)
            .step(StepDef::local("a").compensable())
            .step(
                StepDef::local("b")
                    .retry(retry(Duration::from_millis(5), 4))
                    .timeout(Duration::from_secs(1)),
            )
            .step(StepDef::wait("w", ["go"]).timeout(Duration::from_secs(60)))
            .step(StepDef::local("z"))
            .edge("a", "b")
            .edge("a", "w")
            .edge("b", "z")
            .edge("w", "z")
            .deadline(Duration::from_secs(600))
            .build()
            .unwrap(),
    );
    let mut run = WorkflowRun::new(Arc::clone(&def), WorkflowId::new(3), Some(7), Instant::ZERO);
    let a = start_token(&drain(&mut run));
    run.succeed(a, StepOutput::new(1), Instant::from_millis(1))
        .unwrap();
    let b = start_token(&drain(&mut run));
    run.fail(b, StepFailure::retryable("flaky"), Instant::from_millis(2))
        .unwrap();
    run.handle_timeout(Instant::from_millis(10));
    drain(&mut run);
    (def, run)
}

fn checkpoint_json(run: &WorkflowRun<u32>) -> Value {
    serde_json::to_value(run.checkpoint()).unwrap()
}

fn resume(def: &Arc<WorkflowDef>, value: Value) -> Result<WorkflowRun<u32>, RunError> {
    let checkpoint: Checkpoint<u32> = serde_json::from_value(value).unwrap();
    WorkflowRun::resume(Arc::clone(def), checkpoint)
}

fn refused_field(def: &Arc<WorkflowDef>, value: Value) -> String {
    match resume(def, value) {
        Err(RunError::InvalidCheckpoint { field, .. }) => field,
        other => panic!(
            "expected an invalid checkpoint, got {:?}",
            other.map(|_| ())
        ),
    }
}

#[test]
fn a_checkpoint_round_trip_is_exact_and_canonical() {
    let (def, run) = busy();
    let checkpoint = run.checkpoint();
    assert_eq!(checkpoint.format(), Checkpoint::<u32>::FORMAT);
    let text = serde_json::to_string(&checkpoint).unwrap();
    let back: Checkpoint<u32> = serde_json::from_str(&text).unwrap();
    assert_eq!(back, checkpoint);
    assert_eq!(serde_json::to_string(&back).unwrap(), text);
    // The same history gives the same bytes.
    let (_, again) = busy();
    assert_eq!(serde_json::to_string(&again.checkpoint()).unwrap(), text);
    let resumed = WorkflowRun::resume(def, back).unwrap();
    assert_eq!(serde_json::to_string(&resumed.checkpoint()).unwrap(), text);
}

#[test]
fn corrupted_checkpoints_are_refused_naming_the_field() {
    let (def, run) = busy();
    let good = checkpoint_json(&run);
    assert!(resume(&def, good.clone()).is_ok());

    let mut v = good.clone();
    v["state"]["open_steps"] = json!(v["state"]["open_steps"].as_u64().unwrap() + 1);
    assert_eq!(refused_field(&def, v), "open_steps");

    let mut v = good.clone();
    v["state"]["steps"].as_array_mut().unwrap().pop();
    assert_eq!(refused_field(&def, v), "steps");

    let mut v = good.clone();
    v["state"]["attempts"][0]["exec"] = json!(999);
    assert_eq!(refused_field(&def, v), "attempts[0].exec");

    let mut v = good.clone();
    let waiting = v["state"]["waiting"].as_array_mut().unwrap();
    waiting.push(waiting[0].clone());
    assert_eq!(refused_field(&def, v), "waiting[1]");

    let mut v = good.clone();
    v["state"]["completions"][0] = json!(u32::MAX);
    assert_eq!(refused_field(&def, v), "execs[0].seq");

    let mut v = good.clone();
    v["state"]["edges"][0] = json!("Pending");
    assert_eq!(refused_field(&def, v), "edges[0]");

    let mut v = good.clone();
    v["state"]["latest"] = json!(0);
    v["state"]["started_at"] = json!(5);
    assert_eq!(refused_field(&def, v), "latest");

    // Another format, or none (format 1 had no such field).
    let mut v = good.clone();
    v["format"] = json!(1);
    assert_eq!(
        resume(&def, v).map(|_| ()),
        Err(RunError::UnsupportedCheckpoint {
            found: 1,
            supported: Checkpoint::<u32>::FORMAT
        })
    );
    let mut v = good;
    v.as_object_mut().unwrap().remove("format");
    assert!(matches!(
        resume(&def, v).map(|_| ()),
        Err(RunError::UnsupportedCheckpoint { found: 0, .. })
    ));
}

#[test]
fn duplicate_entries_cannot_sneak_in_through_a_checkpoint() {
    // The reproduction of the double-start bug: a step started twice
    // decremented the open-step count twice. A checkpoint claiming so is
    // refused.
    let def = Arc::new(
        WorkflowDef::builder("one", 1)
            .step(StepDef::local("s0"))
            .step(StepDef::local("s1"))
            .build()
            .unwrap(),
    );
    let run: WorkflowRun<u32> =
        WorkflowRun::new(Arc::clone(&def), WorkflowId::new(1), None, Instant::ZERO);
    let mut v = checkpoint_json(&run);
    v["state"]["open_steps"] = json!(1);
    assert_eq!(refused_field(&def, v), "open_steps");
}

// ---- the engine ---------------------------------------------------------------

#[test]
fn engine_handle_timeout_at_instant_max_returns_promptly() {
    use taskweave::scheduler::{Dispatcher, DispatcherConfig};
    use taskweave::workflow::{EngineAction, StepTask, WorkflowEngine};

    let mut pool: Dispatcher<StepTask> = Dispatcher::new(DispatcherConfig::default());
    let mut engine: WorkflowEngine<u32> = WorkflowEngine::new();
    let def = flaky(Some(Duration::from_secs(1)));
    for _ in 0..4 {
        engine.start(&mut pool, Arc::clone(&def), None, Instant::ZERO);
    }
    while engine.poll_action().is_some() {}
    engine.handle_timeout(&mut pool, Instant::MAX);
    let mut finished = 0;
    let mut actions = 0;
    while let Some(action) = engine.poll_action() {
        actions += 1;
        if matches!(action, EngineAction::Finished { .. }) {
            finished += 1;
        }
    }
    assert!(actions <= 4 * 4, "{actions} actions from one call");
    assert_eq!(finished, 4);
    assert_eq!(engine.active_runs(), 0);
    // Back in time: nothing happens, the engine keeps its latest now.
    engine.handle_timeout(&mut pool, Instant::ZERO);
    assert_eq!(engine.latest_now(), Instant::MAX);
    assert!(engine.poll_action().is_none());
}
