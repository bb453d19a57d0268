//! Upgrade: two versions of a workflow live together on one engine.
//!
//! v1 of `order` reserves stock, charges the card and ships. v2 checks
//! for fraud before taking the money, and calls the charge a capture
//! (`alias("charge")`). The story, on a virtual clock:
//!
//! 1. a ramp sends a quarter of new runs to v2;
//! 2. a replay check of a run recorded under v1 points at the input where
//!    v2 would have done otherwise;
//! 3. the process restarts with three stored checkpoints: one v1 run that
//!    has not reached anything v2 changed moves to v2, one that has stays
//!    on v1, and one of a version no longer deployed is parked, with one
//!    event;
//! 4. v3 serves the runs of v1 too: its `fraud` step exists since v2 and
//!    its `notify` step since v3, and the direct edge v1 took from the
//!    reservation to the charge exists until v2 (version gates). The
//!    charged v1 run that v2 refused moves to v3, and the v1 journal
//!    replays under v3;
//! 5. everything drains, and v1 is removed once it has no runs left.
//!
//! The example checks the story and exits non-zero if it went another way.
//!
//! `cargo run --release --example upgrade`

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use taskweave::agent::AgentProfile;
use taskweave::resilience::Fixed;
use taskweave::scheduler::{Dispatcher, DispatcherConfig};
use taskweave::workflow::{
    Checkpoint, EngineAction, Gate, ReplayCheck, Resumed, RunAction, RunInput, RunOutcome,
    RunRecorder, StartPolicy, StepDef, StepOutput, StepTask, WorkflowDef, WorkflowEngine,
    WorkflowEvent, WorkflowRun, check_replay,
};
use taskweave::{AgentId, Instant, WorkflowId};

#[path = "support/checks.rs"]
mod checks;

fn v1() -> Result<Arc<WorkflowDef>, taskweave::Error> {
    let agent = |id: &str| StepDef::agent(id).capabilities(["shop"]);
    Ok(Arc::new(
        WorkflowDef::builder("order", 1)
            .step(agent("reserve").compensable())
            .step(agent("charge"))
            .step(agent("ship"))
            .edge("reserve", "charge")
            .edge("charge", "ship")
            .build()?,
    ))
}

fn v2() -> Result<Arc<WorkflowDef>, taskweave::Error> {
    let agent = |id: &str| StepDef::agent(id).capabilities(["shop"]);
    let retried = Fixed::new(Duration::from_secs(2), 3)?;
    Ok(Arc::new(
        WorkflowDef::builder("order", 2)
            .step(agent("reserve").compensable())
            .step(StepDef::local("fraud"))
            .step(agent("capture").alias("charge").retry(retried))
            .step(agent("ship"))
            .edge("reserve", "fraud")
            .edge("fraud", "capture")
            .edge("capture", "ship")
            .build()?,
    ))
}

/// v2 with a notification at the end, gated so that it also serves the
/// runs that started under v1 and v2: each sees the steps and edges its
/// version had.
fn v3() -> Result<Arc<WorkflowDef>, taskweave::Error> {
    let agent = |id: &str| StepDef::agent(id).capabilities(["shop"]);
    let retried = Fixed::new(Duration::from_secs(2), 3)?;
    Ok(Arc::new(
        WorkflowDef::builder("order", 3)
            .step(agent("reserve").compensable())
            .step(StepDef::local("fraud").since(2))
            .step(agent("capture").alias("charge").retry(retried))
            .step(agent("ship"))
            .step(StepDef::local("notify").since(3))
            .edge("reserve", "fraud")
            .edge("fraud", "capture")
            .gated_edge("reserve", "capture", Gate::until(2))
            .edge("capture", "ship")
            .edge("ship", "notify")
            .build()?,
    ))
}

/// A run of `def` checkpointed after `steps` steps succeeded, as a
/// process that stopped would have stored it.
fn stored(def: &Arc<WorkflowDef>, id: u64, steps: usize) -> Checkpoint<String> {
    let mut run = WorkflowRun::new(Arc::clone(def), WorkflowId::new(id), None, Instant::ZERO);
    for n in 0..steps {
        if let Some(RunAction::Start { token, .. }) = run.poll_action() {
            let output = StepOutput::new(format!("step {n}"));
            let _ = run.succeed(token, output, Instant::from_secs(n as u64 + 1));
        }
    }
    run.checkpoint()
}

struct Host {
    pool: Dispatcher<StepTask>,
    engine: WorkflowEngine<String>,
    now: Instant,
    /// (run, version, step) of every step that ran.
    ran: Vec<(WorkflowId, u32, String)>,
    finished: Vec<(WorkflowId, RunOutcome)>,
}

impl Host {
    /// Plays the agents and the local steps until nothing is left to do.
    fn drain(&mut self) {
        loop {
            if let Some(action) = self.pool.poll_action() {
                let _plain = self.engine.handle_action(&mut self.pool, action);
                continue;
            }
            let Some(action) = self.engine.poll_action() else {
                return;
            };
            self.now += Duration::from_millis(100);
            let now = self.now;
            match action {
                EngineAction::Assign {
                    task,
                    agent,
                    token,
                    step,
                } => {
                    self.note(step.run, step.step);
                    let output = Ok(StepOutput::new("done".to_string()));
                    let reported =
                        self.engine
                            .report(&mut self.pool, task, agent, token, output, now);
                    reported.expect("the engine takes its own step's report");
                }
                EngineAction::RunLocal { run, step, token } => {
                    self.note(run, step);
                    let output = Ok(StepOutput::new("clean".to_string()));
                    let reported =
                        self.engine
                            .report_local(&mut self.pool, run, token, output, now);
                    reported.expect("the engine takes its own local step's report");
                }
                EngineAction::Finished { run, outcome, .. } => {
                    self.finished.push((run, outcome));
                }
                _ => {}
            }
        }
    }

    fn note(&mut self, run: WorkflowId, step: taskweave::StepId) {
        if let Some(def) = self.engine.run(run).map(|r| Arc::clone(r.definition())) {
            let key = def.step(step).map_or("?", |s| s.id.as_str()).to_owned();
            self.ran.push((run, def.version(), key));
        }
    }

    fn steps_of(&self, run: WorkflowId) -> Vec<String> {
        self.ran
            .iter()
            .filter(|(r, ..)| *r == run)
            .map(|(_, v, key)| format!("v{v}:{key}"))
            .collect()
    }
}

fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let (v1, v2) = (v1()?, v2()?);
    let mut checks = Vec::new();

    // 1. Both versions live; a ramp sends 25 % of new runs to v2.
    let mut pool: Dispatcher<StepTask> = Dispatcher::new(DispatcherConfig::default());
    let profile = AgentProfile::builder()
        .capabilities(["shop"])
        .capacity(8)
        .build()?;
    pool.register_agent(AgentId::new(1), profile, Instant::ZERO)?;
    let mut engine = WorkflowEngine::new();
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    engine.set_observer(move |event: &WorkflowEvent| {
        if matches!(event, WorkflowEvent::RunParked { .. }) {
            sink.lock().expect("not poisoned").push(event.clone());
        }
    });
    engine.register(Arc::clone(&v1))?;
    engine.register(Arc::clone(&v2))?;
    let mut host = Host {
        pool,
        engine,
        now: Instant::ZERO,
        ran: Vec::new(),
        finished: Vec::new(),
    };
    let ramp = StartPolicy::Ramp { to: 2, percent: 25 };
    for _ in 0..40 {
        host.engine
            .start_version(&mut host.pool, "order", ramp, None, host.now)?;
    }
    let live = host.engine.live_runs("order");
    let count = |v: u32| -> usize {
        live.iter()
            .filter(|((version, _), _)| *version == v)
            .map(|(_, n)| n)
            .sum()
    };
    println!(
        "1. ramp to v2 at 25 %: {} runs on v1, {} on v2",
        count(1),
        count(2)
    );
    checks.push((
        "the ramp sends some runs to each version".to_string(),
        count(1) > 0 && count(2) > 0 && count(1) + count(2) == 40,
    ));

    // 2. A run recorded under v1, replayed under v2.
    let mut recorded =
        RunRecorder::<String>::new(Arc::clone(&v1), WorkflowId::new(900), None, Instant::ZERO);
    let mut at = 0;
    while let Some(RunAction::Start { token, .. }) = recorded.poll_action() {
        at += 1;
        let output = StepOutput::new(format!("output {at}"));
        recorded.apply(
            RunInput::Succeeded { token, output },
            Instant::from_secs(at),
        )?;
    }
    let check = check_replay(recorded.journal(), &v2)?;
    match &check {
        ReplayCheck::Diverged(at) => println!("2. replay of a v1 run under v2: {at}"),
        ReplayCheck::Compatible { .. } => println!("2. replay of a v1 run under v2: compatible"),
    }
    checks.push((
        "the replay check names the input where v2 diverges (the reservation's result, which v2 follows with `fraud`)".to_string(),
        matches!(&check, ReplayCheck::Diverged(at) if at.index == 1 && at.step.as_deref() == Some("charge")),
    ));

    // 3. A restart: three stored checkpoints come back.
    let diff = WorkflowDef::diff(&v1, &v2);
    let early = stored(&v1, 1_001, 0); // reserving: nothing v2 changed is reached
    let late = stored(&v1, 1_002, 2); // charged: `ship` is reached
    let v0 = Arc::new(
        WorkflowDef::builder("order", 0)
            .step(StepDef::agent("reserve").capabilities(["shop"]))
            .build()?,
    );
    let retired = stored(&v0, 1_003, 0); // a version no longer deployed
    println!(
        "3. restart: diff v1 -> v2: {}",
        diff.steps()
            .iter()
            .map(|s| format!("{} {:?}", s.key, s.change))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let admits_early = diff.admits(&early);
    let admits_late = diff.admits(&late);
    let moved = diff.migrate(early)?;
    let moved = host.engine.resume(&mut host.pool, moved, host.now)?;
    let kept = host.engine.resume(&mut host.pool, late, host.now)?;
    let parked = host.engine.resume(&mut host.pool, retired, host.now)?;
    println!("   run 1001 (reserving): admitted {admits_early}, moved to v2 -> {moved:?}");
    if let Err(refused) = diff.migrate(stored(&v1, 1_002, 2)) {
        println!(
            "   run 1002 (charged): admitted {admits_late}: {refused}; stays on v1 -> {kept:?}"
        );
    }
    println!(
        "   run 1003 (v0): {parked:?}; unservable: {:?}",
        host.engine.unservable_runs()
    );
    checks.push((
        "the early run is admitted and the late one is not".to_string(),
        admits_early && !admits_late,
    ));
    checks.push((
        "the v0 run is parked".to_string(),
        parked == Resumed::Parked(WorkflowId::new(1_003)) && host.engine.parked_runs() == 1,
    ));

    // 4. One gated definition serves the runs of v1 and its own.
    let v3 = v3()?;
    host.engine.register(Arc::clone(&v3))?;
    let gated = WorkflowDef::diff(&v1, &v3);
    let charged = stored(&v1, 1_004, 2); // charged, like run 1002
    let admits_charged = gated.admits(&charged);
    let moved_gated = host
        .engine
        .resume(&mut host.pool, gated.migrate(charged)?, host.now)?;
    let replay_v3 = check_replay(recorded.journal(), &v3)?;
    let fresh = host.engine.start_version(
        &mut host.pool,
        "order",
        StartPolicy::Pinned(3),
        None,
        host.now,
    )?;
    println!(
        "4. v3 gates fraud ({}) and notify ({}); diff v1 -> v3: {}",
        v3.step(v3.step_id("fraud").ok_or("fraud")?)
            .ok_or("fraud")?
            .gate,
        v3.step(v3.step_id("notify").ok_or("notify")?)
            .ok_or("notify")?
            .gate,
        gated
            .steps()
            .iter()
            .map(|s| format!("{} {:?}", s.key, s.change))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "   run 1004 (charged): admitted {admits_charged} -> {moved_gated:?}; replay of the v1 run under v3: {}",
        match &replay_v3 {
            ReplayCheck::Compatible { entries } => format!("compatible ({entries} entries)"),
            ReplayCheck::Diverged(at) => at.to_string(),
        }
    );
    checks.push((
        "v3 admits the charged v1 run that v2 refused, and replays the v1 journal".to_string(),
        admits_charged && matches!(replay_v3, ReplayCheck::Compatible { .. }),
    ));

    // 5. Everything drains; v1 goes once it has no runs.
    host.drain();
    println!(
        "5. drained: {} runs finished; run 1001 ran {:?}; run 1002 ran {:?}",
        host.finished.len(),
        host.steps_of(WorkflowId::new(1_001)),
        host.steps_of(WorkflowId::new(1_002))
    );
    let unregistered = host.engine.unregister("order", 1).is_ok();
    println!(
        "   v1 removed: {unregistered}; versions left: {:?}; parked: {}",
        host.engine
            .versions("order")
            .map(|d| d.version())
            .collect::<Vec<_>>(),
        host.engine.parked_runs()
    );
    checks.push((
        "every started and resumed run succeeds".to_string(),
        host.finished.len() == 44
            && host
                .finished
                .iter()
                .all(|(_, outcome)| *outcome == RunOutcome::Succeeded),
    ));
    checks.push((
        "the moved run checks for fraud before it captures".to_string(),
        host.steps_of(WorkflowId::new(1_001))
            == ["v2:reserve", "v2:fraud", "v2:capture", "v2:ship"],
    ));
    checks.push((
        "the run that stayed on v1 ships under v1".to_string(),
        host.steps_of(WorkflowId::new(1_002)) == ["v1:ship"],
    ));
    println!(
        "   run 1004 ran {:?}; a new v3 run ran {:?}",
        host.steps_of(WorkflowId::new(1_004)),
        host.steps_of(fresh)
    );
    checks.push((
        "the v1 run on v3 ships as v1 would, and a new v3 run checks fraud and notifies"
            .to_string(),
        host.steps_of(WorkflowId::new(1_004)) == ["v3:ship"]
            && host.steps_of(fresh)
                == [
                    "v3:reserve",
                    "v3:fraud",
                    "v3:capture",
                    "v3:ship",
                    "v3:notify",
                ],
    ));
    checks.push((
        "one event for the parked run, and v1 removed once drained".to_string(),
        events.lock().expect("not poisoned").len() == 1 && unregistered,
    ));
    Ok(if checks::report(&checks) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
