//! Runs hosted by the nodes of a PostgreSQL cluster (`Node::host_runs`
//! with `json_run_codec`): they outlive their leader and restarts of the
//! server, and a wait of hours outlives them too.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use taskweave::cluster::{ClientOp, ClientReply, RunCommand, Store, Verdict};
use taskweave::schedule::RunKey;
use taskweave::workflow::{RunOutcome, StepDef, TIMEOUT_LABEL, WorkflowDef};
use taskweave::{Instant, WorkflowId};

mod common;
use common::hosted::{Hosted, audit_is_clean, taskweave_pg, taskweave_pg_turning};
use common::migrated_or_skip;

/// The chain the hosted runs take, as an operator's file holds it: each
/// step adds one to what it takes.
const CHAIN: &str = r#"{
    "name": "chain", "version": 1, "output": "c",
    "tasks": [
        {"id": "a", "compensable": true},
        {"id": "b", "depends_on": ["a"]},
        {"id": "c", "depends_on": ["b"]}
    ]
}"#;

fn start(workflow: &str, id: u64, input: i64) -> RunCommand<Value> {
    RunCommand::Start {
        workflow: workflow.into(),
        version: None,
        id: Some(WorkflowId::new(id)),
        input: Some(json!(input)),
    }
}

const RUNS: u64 = 6;

#[test]
fn hosted_runs_outlive_their_leader_and_a_server_restart() {
    let test = "hosted_runs_outlive_their_leader_and_a_server_restart";
    let Some((mut cluster, _admin)) = migrated_or_skip(test) else {
        return;
    };
    let conninfo = cluster.conninfo();
    let mut hosted = Hosted::new(conninfo.clone(), 16, &["node-1", "node-2"]);
    let definition = serde_json::from_str(CHAIN).unwrap();
    let mut commands = vec![RunCommand::Register(Box::new(definition))];
    let runs: Vec<WorkflowId> = (1..=RUNS).map(WorkflowId::new).collect();
    for &run in &runs {
        commands.push(start("chain", run.get(), run.get() as i64 * 100));
    }
    let posted = hosted.post(commands);
    hosted.watched = runs.clone();

    let (mut restarted, mut killed, mut answered) = (false, false, false);
    while hosted.ends.len() < runs.len() && hosted.started.elapsed() < Duration::from_secs(90) {
        if !answered {
            // Read before a snapshot forgets them: the registration is
            // accepted, and each start names the run it asked for.
            if let Some(verdicts) = hosted.verdicts(&posted) {
                assert_eq!(verdicts[0], Verdict::Accepted);
                for (verdict, run) in verdicts[1..].iter().zip(&runs) {
                    assert_eq!(verdict, &Verdict::Run(*run));
                }
                answered = true;
            }
        }
        hosted.turn();
        let in_flight = hosted.engine().is_some_and(|e| e.active_runs() > 0);
        if !killed && in_flight {
            // The leader dies with runs in flight; a new node joins.
            hosted.kill_leader("node-3");
            killed = true;
        }
        if killed && !restarted && !hosted.ends.is_empty() {
            cluster
                .restart_immediate()
                .unwrap_or_else(|e| panic!("restart: {e}"));
            restarted = true;
        }
    }
    assert!(answered, "no verdicts");
    assert!(
        killed && restarted,
        "killed {killed}, restarted {restarted}"
    );
    assert_eq!(
        hosted.ends.len(),
        runs.len(),
        "runs ended: {:?}\nserver log:\n{}",
        hosted.ends,
        cluster.server_log()
    );
    for (run, end) in &hosted.ends {
        assert_eq!(end.outcome, RunOutcome::Succeeded, "{run}");
        assert_eq!(end.output, Some(json!(run.get() * 100 + 3)), "{run}");
    }
    // The operator lists them from a replay of the journal (trimmed
    // behind the nodes' snapshots): by name and outcome, none active.
    let list = |state: &str| taskweave_pg(&["runs", "--db", &conninfo, "--state", state]);
    let expected: Vec<String> = runs
        .iter()
        .map(|run| {
            format!(
                "{run}  chain v1  succeeded, output: {}",
                run.get() * 100 + 3
            )
        })
        .collect();
    assert_eq!(list("succeeded"), expected);
    assert_eq!(list("active"), ["no runs active"]);
    audit_is_clean(&conninfo);
    ends_outlive_their_entries(&mut hosted, &conninfo, &runs);
}

/// Once the journal is trimmed past every entry that ended `runs`, their
/// ends still read back: the engine remembers the runs (its retention),
/// so a client that comes back late still finds each run's result.
fn ends_outlive_their_entries(hosted: &mut Hosted, conninfo: &str, runs: &[WorkflowId]) {
    let mut admin = postgres::Client::connect(conninfo, postgres::NoTls)
        .unwrap_or_else(|e| panic!("connect: {e}"));
    let last_end: i64 = admin
        .query_one("SELECT max(seq) FROM taskweave.run_ends", &[])
        .unwrap()
        .get(0);
    let from = std::time::Instant::now();
    loop {
        let first: Option<i64> = admin
            .query_one("SELECT min(seq) FROM taskweave.journal", &[])
            .unwrap()
            .get(0);
        if first.is_some_and(|first| first > last_end) {
            break;
        }
        assert!(
            from.elapsed() < Duration::from_secs(60),
            "the journal was not trimmed past entry {last_end}"
        );
        hosted.turn();
    }
    let now = hosted.now();
    let read = hosted.client.client(ClientOp::Runs(runs.to_vec()), now);
    let Ok(ClientReply::Runs(ends)) = read else {
        panic!("reading the run ends answered {read:?}");
    };
    for (run, end) in runs.iter().zip(ends) {
        let end = end.unwrap_or_else(|| panic!("the end of {run} was lost with its entry"));
        assert_eq!(end.output, Some(json!(run.get() * 100 + 3)), "{run}");
    }
}

/// A run that waits three hours for an answer: one is answered after a
/// failover and a restart of the server, the other waits its three hours
/// through another failover and restart, then takes the timeout's branch.
#[test]
fn a_wait_of_hours_outlives_failovers_and_server_restarts() {
    let test = "a_wait_of_hours_outlives_failovers_and_server_restarts";
    let Some((mut cluster, _admin)) = migrated_or_skip(test) else {
        return;
    };
    let conninfo = cluster.conninfo();
    // Snapshots every other entry: a new leader restores the waiting
    // runs from one.
    let mut hosted = Hosted::new(conninfo.clone(), 2, &["node-1", "node-2"]);
    let hours = Duration::from_secs(3 * 3600);
    let def = WorkflowDef::builder("reminder", 1)
        .step(StepDef::wait("answered", ["answer"]).timeout(hours))
        .step(StepDef::agent("remind"))
        .step(StepDef::agent("thank"))
        .branch("answered", "remind", TIMEOUT_LABEL)
        .branch("answered", "thank", "answer")
        .build()
        .unwrap();
    let (answered, reminded) = (WorkflowId::new(1), WorkflowId::new(2));
    let posted = hosted.post(vec![
        RunCommand::Register(Box::new(def)),
        start("reminder", answered.get(), 10),
        start("reminder", reminded.get(), 20),
    ]);
    hosted.watched = vec![answered, reminded];
    let limit = Duration::from_secs(30);
    hosted.until("both runs wait", limit, |h| h.holds(2));
    let verdicts = hosted.verdicts(&posted).expect("the verdicts");
    assert_eq!(
        verdicts[1..],
        [Verdict::Run(answered), Verdict::Run(reminded)]
    );

    // The leader dies and the server restarts: a new leader holds both
    // runs, still waiting.
    hosted.kill_leader("node-3");
    cluster
        .restart_immediate()
        .unwrap_or_else(|e| panic!("restart: {e}"));
    hosted.until("a new leader holds both runs", limit, |h| h.holds(2));
    let signal = hosted.post(vec![RunCommand::Signal {
        run: answered,
        name: "answer".into(),
        payload: Some(json!(5)),
    }]);
    hosted.until("the answered run ends", limit, |h| {
        h.ends.contains_key(&answered)
    });
    assert_eq!(hosted.verdicts(&signal), Some(vec![Verdict::Accepted]));
    assert_eq!(hosted.ends[&answered].outcome, RunOutcome::Succeeded);
    assert!(!hosted.ends.contains_key(&reminded), "{:?}", hosted.ends);

    // Another failover and restart, then three hours pass.
    hosted.kill_leader("node-4");
    cluster
        .restart_immediate()
        .unwrap_or_else(|e| panic!("restart: {e}"));
    hosted.until("a new leader holds the waiting run", limit, |h| h.holds(1));
    for _ in 0..50 {
        hosted.turn();
    }
    assert!(!hosted.ends.contains_key(&reminded), "{:?}", hosted.ends);
    hosted.ahead = hours;
    hosted.until("the reminded run ends", limit, |h| {
        h.ends.contains_key(&reminded)
    });
    let end = &hosted.ends[&reminded];
    assert_eq!(end.outcome, RunOutcome::Succeeded);
    // Each run took its own branch, once.
    let mut ran: Vec<(u64, &str)> = hosted
        .executed
        .iter()
        .map(|(run, step, _)| (*run, step.as_str()))
        .collect();
    ran.sort_unstable();
    assert_eq!(ran, [(1, "thank"), (2, "remind")]);
    audit_is_clean(&conninfo);
}

/// A schedule added with `taskweave-pg schedule add` fires every second
/// while the leader dies and the server restarts: each slot starts one
/// run, none twice and none lost, each with the schedule's input.
#[test]
fn a_schedule_starts_each_slot_once_across_a_failover_and_a_server_restart() {
    let test = "a_schedule_starts_each_slot_once_across_a_failover_and_a_server_restart";
    let Some((mut cluster, _admin)) = migrated_or_skip(test) else {
        return;
    };
    let conninfo = cluster.conninfo();
    let mut hosted = Hosted::new(conninfo.clone(), 8, &["node-1", "node-2"]);
    let definition = serde_json::from_str(CHAIN).unwrap();
    hosted.post(vec![RunCommand::Register(Box::new(definition))]);
    let limit = Duration::from_secs(30);
    hosted.until("a leader", limit, |h| h.leader().is_some());
    // Every slot starts, even while the run before still goes.
    let add = [
        "schedule",
        "add",
        "--db",
        &conninfo,
        "tick",
        "chain",
        "--every",
        "1",
        "--overlap",
        "allow-all",
        "--input",
        "100",
    ];
    assert_eq!(taskweave_pg_turning(&mut hosted, &add), ["tick: added"]);
    let turn_for = |hosted: &mut Hosted, secs: u64| {
        let from = std::time::Instant::now();
        while from.elapsed() < Duration::from_secs(secs) {
            hosted.turn();
        }
    };
    turn_for(&mut hosted, 3);
    hosted.kill_leader("node-3");
    cluster
        .restart_immediate()
        .unwrap_or_else(|e| panic!("restart: {e}"));
    turn_for(&mut hosted, 3);
    let pause = ["schedule", "pause", "--db", &conninfo, "tick"];
    assert_eq!(taskweave_pg_turning(&mut hosted, &pause), ["tick: paused"]);
    hosted.until("the scheduled runs ended", limit, |h| h.holds(0));

    let state = hosted.leader().expect("a leader").state();
    let runs = state.runs.expect("the leader hosts runs");
    let schedules = runs.schedules().expect("the leader holds the schedule");
    let counts = schedules.schedules().counts("tick").expect("tick");
    assert!(counts.started >= 4, "{counts:?}");
    assert_eq!(counts.missed, 0, "{counts:?}");
    let engine = runs.clone().engine().unwrap();
    let ended: Vec<_> = engine.remembered_ends().collect();
    let key = |secs: u64| {
        RunKey {
            schedule: "tick".into(),
            fire: Instant::from_secs(secs),
        }
        .workflow_id()
    };
    // The fires are whole seconds of the nodes' clock: the first is the
    // earliest whose run ended, and the rest follow it, one run each.
    let first = (0..600)
        .find(|&s| ended.iter().any(|end| end.run == key(s)))
        .expect("a run of a fire ended");
    let slots: Vec<WorkflowId> = (first..first + counts.started).map(key).collect();
    let mut ran: Vec<WorkflowId> = ended.iter().map(|end| end.run).collect();
    ran.sort_unstable();
    let mut expected = slots.clone();
    expected.sort_unstable();
    assert_eq!(ran, expected, "one run per slot");
    for end in &ended {
        assert_eq!(end.outcome, RunOutcome::Succeeded, "{}", end.run);
        assert_eq!(end.output, Some(json!(103)), "{}", end.run);
    }
    // Each slot's three steps, each at most twice (once more only where
    // the failover cut its attempt).
    let mut attempts: BTreeMap<(u64, &str), u32> = BTreeMap::new();
    for (run, step, _) in &hosted.executed {
        *attempts.entry((*run, step.as_str())).or_default() += 1;
    }
    assert_eq!(attempts.len() as u64, 3 * counts.started, "{attempts:?}");
    assert!(attempts.values().all(|&n| n <= 2), "{attempts:?}");

    // The operator's list, from a replay of the trimmed journal.
    let list = taskweave_pg(&["schedule", "list", "--db", &conninfo]);
    assert_eq!(list[0], "tick  chain latest  every 1s  allow-all  paused");
    assert_eq!(
        list[1],
        format!(
            "  started {}, skipped 0, missed 0, cancelled 0",
            counts.started
        )
    );
    audit_is_clean(&conninfo);
}
