//! The chaos test of hosted runs, on a private PostgreSQL: 1,000 sagas of
//! five steps with their outputs chained (one in ten fails at its fourth
//! step and compensates, one in ten waits for a signal first) and a
//! schedule that starts a saga every second, while the client that
//! started the runs dies half-way (another posts every start again: the
//! ids are idempotency keys), the leader is killed, an agent is killed
//! with work in hand, and the server restarts the way a crash would.
//! Every run must end with the outcome and the output a fault-free run of
//! its input gives (computed below from the definitions), each slot of the
//! schedule must start one run, and the audit must be clean.
//!
//! `TASKWEAVE_WORKFLOW_CHAOS_RUNS` overrides the number of runs.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use taskweave::WorkflowId;
use taskweave::cluster::{
    ClientOp, ClientReply, RunCommand, ScheduleCommand, ScheduledStart, Store, Verdict,
};
use taskweave::schedule::{OverlapPolicy, ScheduleSpec};
use taskweave::workflow::{FailureCause, RunOutcome};

mod common;
use common::hosted::{Hosted, audit_is_clean};
use common::migrated_or_skip;

/// A saga of five agent steps, each adding one to what it takes; the
/// first three compensate.
const SAGA: &str = r#"{
    "name": "saga", "version": 1, "output": "e",
    "tasks": [
        {"id": "a", "compensable": true},
        {"id": "b", "depends_on": ["a"], "compensable": true},
        {"id": "c", "depends_on": ["b"], "compensable": true},
        {"id": "d", "depends_on": ["c"]},
        {"id": "e", "depends_on": ["d"]}
    ]
}"#;

/// A wait for the signal `approve`, whose payload the four agent steps
/// after it add to.
const APPROVAL: &str = r#"{
    "name": "approval", "version": 1, "output": "s",
    "tasks": [
        {"id": "approved", "kind": {"wait": {"signals": ["approve"]}}},
        {"id": "p", "depends_on": ["approved"], "compensable": true},
        {"id": "q", "depends_on": ["p"]},
        {"id": "r", "depends_on": ["q"]},
        {"id": "s", "depends_on": ["r"]}
    ]
}"#;

/// Runs in all, unless `TASKWEAVE_WORKFLOW_CHAOS_RUNS` says otherwise.
const RUNS: u64 = 1_000;
/// Starts per message batch.
const BATCH: u64 = 100;
const LIMIT: Duration = Duration::from_secs(240);

fn runs() -> u64 {
    std::env::var("TASKWEAVE_WORKFLOW_CHAOS_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(RUNS)
}

/// Which workflow run `i` takes: one in ten waits for a signal.
fn waits(i: u64) -> bool {
    i % 10 == 7
}

/// One saga in ten fails at `d`: the one whose `d` takes 3 + 3.
fn fails(i: u64) -> bool {
    i % 10 == 3
}

/// What an agent does: a compensation succeeds; `d` fails for good when
/// it takes a number ending in 6; every other step adds one to the sum
/// of what it takes.
fn work(payload: &Value) -> Result<Value, String> {
    let step = &payload["workflow_step"];
    if step["compensation"].as_bool() == Some(true) {
        return Ok(Value::Null);
    }
    let input = payload["input"].as_i64().unwrap_or(0);
    let inputs: i64 = payload["inputs"]
        .as_object()
        .map(|inputs| inputs.values().filter_map(Value::as_i64).sum())
        .unwrap_or(0);
    let sum = input + inputs;
    if step["step"] == "d" && sum % 10 == 6 {
        return Err("asked to fail".into());
    }
    Ok(json!(sum + 1))
}

/// How run `i` ends without any fault: its outcome, and its output.
fn fault_free(i: u64) -> (&'static str, Option<Value>) {
    if waits(i) {
        ("succeeded", Some(json!(2 * i + 4)))
    } else if fails(i) {
        ("compensated after d failed", None)
    } else {
        ("succeeded", Some(json!(i + 5)))
    }
}

fn outcome(outcome: &RunOutcome) -> &'static str {
    match outcome {
        RunOutcome::Succeeded => "succeeded",
        RunOutcome::Compensated(FailureCause::StepFailed { reason, .. })
            if reason == "asked to fail" =>
        {
            "compensated after d failed"
        }
        _ => "another outcome",
    }
}

fn start(i: u64) -> RunCommand<Value> {
    RunCommand::Start {
        workflow: if waits(i) { "approval" } else { "saga" }.into(),
        version: None,
        id: Some(WorkflowId::new(i)),
        input: Some(json!(i)),
    }
}

/// Posts `commands`, again after each failure (the server may be down).
fn post(hosted: &mut Hosted, commands: &[RunCommand<Value>]) -> Vec<u64> {
    let messages: Vec<_> = commands
        .iter()
        .cloned()
        .map(taskweave::cluster::Message::Run)
        .collect();
    let from = std::time::Instant::now();
    loop {
        match hosted
            .client
            .client(ClientOp::Post(messages.clone()), hosted.now())
        {
            Ok(ClientReply::Posted(ids)) => return ids,
            other => {
                assert!(
                    from.elapsed() < LIMIT,
                    "no post within {LIMIT:?}: {other:?}"
                );
                hosted.turn();
            }
        }
    }
}

/// The verdicts of `posted`, once all are in.
fn verdicts_of(hosted: &mut Hosted, posted: &[u64], began: std::time::Instant) -> Vec<Verdict> {
    loop {
        assert!(began.elapsed() < LIMIT, "no verdicts within {LIMIT:?}");
        if let Some(verdicts) = hosted.verdicts(posted) {
            return verdicts;
        }
        hosted.turn();
    }
}

#[test]
fn a_thousand_sagas_end_as_without_faults_through_every_kill_and_a_server_restart() {
    let test = "a_thousand_sagas_end_as_without_faults_through_every_kill_and_a_server_restart";
    let Some((mut cluster, _admin)) = migrated_or_skip(test) else {
        return;
    };
    let n = runs();
    let began = std::time::Instant::now();
    let mut hosted = Hosted::new(cluster.conninfo(), 64, &["node-1", "node-2"]);
    hosted.work = work;
    hosted.start_agent(2);
    hosted.start_agent(3);
    let definitions = [SAGA, APPROVAL]
        .map(|text| RunCommand::Register(Box::new(serde_json::from_str(text).unwrap())));
    let every_second = ScheduleSpec::every(Duration::from_secs(1))
        .overlap(OverlapPolicy::AllowAll)
        .build()
        .unwrap();
    let schedule = RunCommand::Schedule(ScheduleCommand::Add {
        id: "tick".into(),
        spec: every_second,
        start: ScheduledStart {
            workflow: "saga".into(),
            version: None,
            input: Some(json!(0)),
        },
    });
    let mut setup = definitions.to_vec();
    setup.push(schedule);
    let posted = post(&mut hosted, &setup);
    let verdicts = verdicts_of(&mut hosted, &posted, began);
    assert!(
        verdicts.iter().all(|v| *v == Verdict::Accepted),
        "{verdicts:?}"
    );

    // The first client posts six tenths of the starts, then dies; the
    // next posts every start again.
    let ids: Vec<u64> = (1..=n).collect();
    for batch in ids[..(n * 6 / 10) as usize].chunks(BATCH as usize) {
        let starts: Vec<_> = batch.iter().map(|&i| start(i)).collect();
        post(&mut hosted, &starts);
        hosted.turn();
    }
    hosted.restart_client();
    let mut posted = Vec::new();
    for batch in ids.chunks(BATCH as usize) {
        let starts: Vec<_> = batch.iter().map(|&i| start(i)).collect();
        posted.extend(post(&mut hosted, &starts));
        hosted.turn();
    }
    hosted.watched = ids.iter().map(|&i| WorkflowId::new(i)).collect();
    let mut verdicts = None;
    let ended = |h: &Hosted| h.ends.len() as u64;

    // The faults, each once enough runs ended.
    let mut faults = vec![
        (n / 5, "the leader is killed"),
        (n * 2 / 5, "an agent is killed with work in hand"),
        (n * 3 / 5, "the server restarts"),
    ];
    let mut signalled = false;
    while ended(&hosted) < n {
        assert!(
            began.elapsed() < LIMIT,
            "{} of {n} runs ended within {LIMIT:?}; faults left {faults:?}",
            ended(&hosted)
        );
        hosted.turn();
        if verdicts.is_none() {
            verdicts = hosted.verdicts(&posted);
        }
        if !signalled && verdicts.is_some() {
            // Every start was applied: the waiting runs wait.
            let signals: Vec<_> = ids
                .iter()
                .filter(|&&i| waits(i))
                .map(|&i| RunCommand::Signal {
                    run: WorkflowId::new(i),
                    name: "approve".into(),
                    payload: Some(json!(2 * i)),
                })
                .collect();
            post(&mut hosted, &signals);
            signalled = true;
        }
        if let Some(&(at, fault)) = faults.first() {
            if ended(&hosted) >= at {
                eprintln!("{fault} after {} runs ended", ended(&hosted));
                match faults.len() {
                    3 => hosted.kill_leader("node-3"),
                    2 => hosted.restart_agent(2),
                    _ => cluster
                        .restart_immediate()
                        .unwrap_or_else(|e| panic!("restart: {e}")),
                }
                faults.remove(0);
            }
        }
    }
    assert!(faults.is_empty(), "faults left: {faults:?}");
    let verdicts = verdicts.expect("the starts' verdicts");
    for (verdict, &i) in verdicts.iter().zip(&ids) {
        assert_eq!(verdict, &Verdict::Run(WorkflowId::new(i)), "start {i}");
    }
    let elapsed = began.elapsed();

    // Every run ends as a fault-free run of its input does.
    for &i in &ids {
        let end = &hosted.ends[&WorkflowId::new(i)];
        let expected = fault_free(i);
        assert_eq!(
            (outcome(&end.outcome), end.output.clone()),
            expected,
            "run {i}: {end:?}"
        );
    }

    // The schedule stops; each of its slots started one saga, which
    // ended with the output of input 0.
    let pause = RunCommand::Schedule(ScheduleCommand::Pause("tick".into()));
    let paused = post(&mut hosted, &[pause]);
    assert_eq!(
        verdicts_of(&mut hosted, &paused, began),
        [Verdict::Accepted]
    );
    hosted.until("the scheduled runs ended", LIMIT, |h| h.holds(0));
    let state = hosted.leader().expect("a leader").state();
    let runs = state.runs.expect("the leader hosts runs");
    let counts = runs
        .schedules()
        .and_then(|s| s.schedules().counts("tick"))
        .expect("the schedule");
    let engine = runs.clone().engine().unwrap();
    let scheduled: Vec<_> = engine
        .remembered_ends()
        .filter(|end| !(1..=n).contains(&end.run.get()))
        .collect();
    assert_eq!(scheduled.len() as u64, counts.started, "{counts:?}");
    assert!(counts.started >= 2, "{counts:?}");
    assert_eq!(counts.missed, 0, "{counts:?}");
    for end in &scheduled {
        assert_eq!(end.outcome, RunOutcome::Succeeded, "{}", end.run);
        assert_eq!(end.output, Some(json!(5)), "{}", end.run);
    }

    // Each agent step ran at least once, and again only where a fault
    // cut its attempt.
    let mut attempts: BTreeMap<(u64, &str, bool), u32> = BTreeMap::new();
    for (run, step, compensation) in &hosted.executed {
        *attempts
            .entry((*run, step.as_str(), *compensation))
            .or_default() += 1;
    }
    let again = attempts.values().filter(|&&k| k > 1).count();
    assert!(attempts.values().all(|&k| k <= 3), "{attempts:?}");
    eprintln!(
        "{n} runs and {} scheduled ended in {:.1} s ({:.0} runs/s) through the faults; \
         {} step attempts, {again} steps ran more than once",
        counts.started,
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        hosted.executed.len(),
    );
    audit_is_clean(hosted.conninfo());
}
