//! Workflow runs hosted by the cluster's nodes (`Node::host_runs`): a
//! client registers a definition and starts a run with messages; the
//! leader journals each command before it acts on it, the run's steps are
//! the cluster's tasks, an agent's output completes its step and travels
//! to the next, and the run outlives the leader that started it.

#![cfg(feature = "cluster")]

use std::time::Duration;

use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use taskweave::cluster::{
    Auditor, ClientOp, ClientReply, Entry, JournalRow, MemStore, Message, Node, NodeConfig, NodeOp,
    NodeReply, NodeState, RunCommand, RunEnd, ScheduleCommand, Store, Verdict,
};
use taskweave::resilience::{Fixed, RetrySpec};
use taskweave::workflow::{RunOutcome, StepDef, WorkflowDef, WorkflowDefBuilder};
use taskweave::{Instant, WorkflowId};

mod hosted;

use hosted::*;

#[test]
fn outputs_travel_from_step_to_step_and_a_start_is_idempotent() {
    let mut cluster = Cluster::new(1);
    let registered = cluster.post(register(chain()));
    assert_eq!(cluster.verdict(registered, add_one), Verdict::Accepted);
    let started = cluster.post(start("chain", 7, 10));
    assert_eq!(
        cluster.verdict(started, add_one),
        Verdict::Run(WorkflowId::new(7))
    );
    let end = cluster.wait_end(WorkflowId::new(7), add_one);
    assert_eq!(end.outcome, RunOutcome::Succeeded);
    // 10 + 1 = 11, then 12, then 13.
    assert_eq!(end.output, Some(Job::Number(13)));
    // Starting the same id again starts nothing: it names the run.
    let again = cluster.post(start("chain", 7, 99));
    assert_eq!(
        cluster.verdict(again, add_one),
        Verdict::Run(WorkflowId::new(7))
    );
    for _ in 0..500 {
        cluster.tick(add_one);
    }
    assert_eq!(
        cluster.executed.values().sum::<u32>(),
        3,
        "{:?}",
        cluster.executed
    );
}

/// A run's end outlives the journal entry that published it for as long
/// as the engine remembers the run: the id still names the run, so its
/// result must still be readable.
#[test]
fn a_run_end_stays_readable_while_the_engine_remembers_the_run() {
    let mut cluster = Cluster::new(1);
    let registered = cluster.post(register(chain()));
    assert_eq!(cluster.verdict(registered, add_one), Verdict::Accepted);
    cluster.post(start("chain", 7, 10));
    let end = cluster.wait_end(WorkflowId::new(7), add_one);
    run_chains(&mut cluster, 8..=20);
    let now = cluster.now;
    let trimmed = cluster
        .store
        .node(NodeOp::ReadJournal { from: 1, limit: 1 }, now);
    assert!(
        matches!(trimmed, Ok(NodeReply::Trimmed)),
        "snapshots every 8 entries trimmed the journal: {trimmed:?}"
    );
    assert_eq!(
        stored_end(&mut cluster, 7),
        Some(end),
        "the end of run 7 was lost with its journal entry"
    );
    // A day later the engine forgets the run, and the next trim its end:
    // what a store keeps stays bounded by the runs' retention.
    cluster.now = cluster.now.saturating_add(Duration::from_secs(86_400));
    run_chains(&mut cluster, 21..=30);
    assert_eq!(
        stored_end(&mut cluster, 7),
        None,
        "the end of a run the engine forgot stayed"
    );
}

/// Starts a chain run for each id, one after another, each to its end.
fn run_chains(cluster: &mut Cluster, ids: std::ops::RangeInclusive<u64>) {
    for id in ids {
        cluster.post(start("chain", id, 0));
        cluster.wait_end(WorkflowId::new(id), add_one);
    }
}

/// The end the store answers for `run` now (not the harness's record).
fn stored_end(cluster: &mut Cluster, run: u64) -> Option<RunEnd<Job>> {
    let now = cluster.now;
    match cluster
        .store
        .client(ClientOp::Runs(vec![WorkflowId::new(run)]), now)
    {
        Ok(ClientReply::Runs(mut ends)) if ends.len() == 1 => ends.pop().flatten(),
        other => panic!("reading the end of {run} answered {other:?}"),
    }
}

#[test]
fn a_run_outlives_its_leaders_and_the_journal_replays_to_it() {
    let mut cluster = Cluster::new(2);
    let registered = cluster.post(register(chain()));
    assert_eq!(cluster.verdict(registered, add_one), Verdict::Accepted);
    for id in 1..=20 {
        cluster.post(start("chain", id, id as i64 * 100));
        cluster.run_end(WorkflowId::new(id));
    }
    // Let some steps run, then kill the leader mid-flight.
    for _ in 0..30 {
        cluster.tick(add_one);
    }
    let ended = |cluster: &mut Cluster| {
        (1..=20)
            .filter(|&id| cluster.run_end(WorkflowId::new(id)).is_some())
            .count()
    };
    assert!(
        ended(&mut cluster) < 20,
        "every run ended before the first kill"
    );
    let first = cluster.leader().expect("a leader");
    cluster.nodes[first] = None;
    // A node that starts now restores from a snapshot holding runs; the
    // second leader dies too, and the newcomer finishes the runs.
    for _ in 0..600 {
        cluster.tick(add_one);
        if cluster.leader().is_some() && ended(&mut cluster) >= 5 {
            break;
        }
    }
    let second = cluster.leader().expect("a second leader");
    assert_ne!(first, second);
    cluster.join("node-late");
    for _ in 0..5 {
        cluster.tick(add_one);
    }
    assert!(
        ended(&mut cluster) < 20,
        "every run ended before the second kill"
    );
    cluster.nodes[second] = None;
    for id in 1..=20u64 {
        let end = cluster.wait_end(WorkflowId::new(id), add_one);
        assert_eq!(end.outcome, RunOutcome::Succeeded, "run {id}");
        assert_eq!(
            end.output,
            Some(Job::Number(id as i64 * 100 + 3)),
            "run {id}"
        );
    }
    while cluster.leader().is_none() {
        cluster.tick(add_one);
    }
    assert_eq!(cluster.leader(), Some(2), "the late node leads");
    assert!(
        cluster.restored_a_snapshot(2),
        "the late node restored no snapshot"
    );
    // Every run's three steps, each at most twice (once more only if a
    // failover cut its attempt).
    assert_eq!(cluster.executed.len(), 60, "{:?}", cluster.executed);
    assert!(
        cluster.executed.values().all(|&n| n <= 2),
        "{:?}",
        cluster.executed
    );
    // The journal behind the latest snapshot replays without a violation
    // on an auditor that hosts runs too.
    let latest = cluster.store.node(NodeOp::LatestSnapshot, cluster.now);
    let Ok(NodeReply::Snapshot(Some((seq, state)))) = latest else {
        panic!("no snapshot: {latest:?}");
    };
    assert!(state.runs.is_some(), "the snapshot holds the runs");
    let mut auditor = Auditor::from_snapshot_with_runs(dispatcher(), codec(), seq, *state).unwrap();
    for row in cluster.store.journal_from(seq + 1).collect::<Vec<_>>() {
        auditor.apply(row);
    }
    assert!(
        auditor.violations().is_empty(),
        "{:?}",
        auditor.violations()
    );
}

#[test]
fn a_step_allowed_three_attempts_runs_at_most_three() {
    let mut cluster = Cluster::new(1);
    let retry = RetrySpec::from(Fixed::new(Duration::from_millis(5), 3).unwrap());
    let def = WorkflowDef::builder("flaky", 1)
        .step(StepDef::agent("a").compensable())
        .step(StepDef::agent("b").retry(retry))
        .edge("a", "b");
    let registered = cluster.post(register(def));
    assert_eq!(cluster.verdict(registered, add_one), Verdict::Accepted);
    cluster.post(start("flaky", 1, 0));
    let fails_b: Work = |step, inputs| match step.compensation || inputs.is_empty() {
        true => Ok(0),
        false if step.step.get() == 1 => Err("b always fails".into()),
        false => Ok(1),
    };
    let end = cluster.wait_end(WorkflowId::new(1), fails_b);
    assert!(
        matches!(end.outcome, RunOutcome::Compensated(_)),
        "{:?}",
        end.outcome
    );
    // b: exactly its 3 attempts; a: once, and its compensation once.
    assert_eq!(cluster.executed.get(&(WorkflowId::new(1), 1)), Some(&3));
    assert_eq!(cluster.executed.get(&(WorkflowId::new(1), 0)), Some(&2));
}

/// A saga whose last step fails for good: the three before it are
/// compensated, latest first.
fn booking() -> WorkflowDefBuilder {
    WorkflowDef::builder("booking", 1)
        .step(StepDef::agent("hotel").compensable())
        .step(StepDef::agent("flight").compensable())
        .step(StepDef::agent("car").compensable())
        .step(StepDef::agent("charge"))
        .chain(["hotel", "flight", "car", "charge"])
}

/// The audit of a journal from entry 1 checks the runs it hosted: it
/// counts them, and finds each ended once, its compensations in the
/// saga's order and its steps holding their reports' outputs.
#[test]
fn the_audit_checks_and_counts_the_hosted_runs() {
    let mut cluster = Cluster::snapshotting(1, 10_000, false);
    for command in [register(chain()), register(booking())] {
        let posted = cluster.post(command);
        assert_eq!(cluster.verdict(posted, add_one), Verdict::Accepted);
    }
    cluster.post(start("chain", 1, 10));
    cluster.post(start("booking", 2, 0));
    let charge_fails: Work = |step, inputs| match step.step.get() {
        3 if !step.compensation => Err("the card is declined".into()),
        _ => add_one(step, inputs),
    };
    let chained = cluster.wait_end(WorkflowId::new(1), charge_fails);
    assert_eq!(chained.output, Some(Job::Number(13)));
    let booked = cluster.wait_end(WorkflowId::new(2), charge_fails);
    assert!(
        matches!(booked.outcome, RunOutcome::Compensated(_)),
        "{:?}",
        booked.outcome
    );
    let entries: Vec<_> = cluster
        .store
        .journal()
        .map(|row| (row.epoch, row.entry))
        .collect();
    let report = replay_runs(&entries).report();
    assert!(report.is_clean(), "{:?}", report.violations);
    let runs = report.runs;
    assert_eq!((runs.started, runs.ended), (2, 2), "{runs:?}");
    // chain: a, b, c; booking: hotel, flight, car, each undone.
    assert_eq!(runs.steps_completed, 6, "{runs:?}");
    assert_eq!(runs.steps_compensated, 3, "{runs:?}");
}

#[test]
fn a_signal_reaches_a_waiting_run_and_a_stray_one_is_refused() {
    let mut cluster = Cluster::new(1);
    let registered = cluster.post(register(approval()));
    assert_eq!(cluster.verdict(registered, add_one), Verdict::Accepted);
    let started = cluster.post(start("approval", 5, 0));
    assert_eq!(
        cluster.verdict(started, add_one),
        Verdict::Run(WorkflowId::new(5))
    );
    for _ in 0..200 {
        cluster.tick(add_one);
    }
    assert!(
        cluster.run_end(WorkflowId::new(5)).is_none(),
        "the run waits"
    );
    let signal = |run, payload| RunCommand::Signal {
        run: WorkflowId::new(run),
        name: "approve".into(),
        payload: Some(Job::Number(payload)),
    };
    let sent = cluster.post(signal(5, 41));
    assert_eq!(cluster.verdict(sent, add_one), Verdict::Accepted);
    let end = cluster.wait_end(WorkflowId::new(5), add_one);
    assert_eq!(end.output, Some(Job::Number(42)));
    // To a run that finished, and to one that never existed.
    let late = cluster.post(signal(5, 1));
    let Verdict::Refused(why) = cluster.verdict(late, add_one) else {
        panic!("a signal to a finished run was taken");
    };
    assert!(why.contains("finished"), "{why}");
    let stray = cluster.post(signal(404, 1));
    let Verdict::Refused(why) = cluster.verdict(stray, add_one) else {
        panic!("a signal to an unknown run was taken");
    };
    assert!(why.contains("not an active run"), "{why}");
}

#[test]
fn a_definition_that_needs_host_code_is_refused_by_name() {
    let mut cluster = Cluster::new(1);
    let local = WorkflowDef::builder("report", 1)
        .step(StepDef::agent("query"))
        .step(StepDef::local("format"))
        .edge("query", "format");
    let posted = cluster.post(register(local));
    let Verdict::Refused(why) = cluster.verdict(posted, add_one) else {
        panic!("a local step was registered");
    };
    assert!(why.contains("\"format\"") && why.contains("local"), "{why}");
    let unknown = cluster.post(start("report", 1, 0));
    let Verdict::Refused(why) = cluster.verdict(unknown, add_one) else {
        panic!("a run of an unregistered workflow started");
    };
    assert!(why.contains("no workflow \"report\""), "{why}");
}

#[test]
fn a_node_without_runs_refuses_run_commands() {
    let mut store: MemStore<Job> = MemStore::new();
    let mut node = Node::new(NodeConfig::builder("plain").build().unwrap(), dispatcher()).unwrap();
    let mut now = Instant::from_secs(1);
    let Ok(ClientReply::Posted(ids)) =
        store.client(ClientOp::Post(vec![Message::Run(register(chain()))]), now)
    else {
        panic!("the post was refused");
    };
    let mut verdict = None;
    for _ in 0..1_000 {
        now = now.saturating_add(Duration::from_millis(1));
        while let Some(op) = node.poll_op(now) {
            let reply = store.node(op, now);
            node.handle_reply(reply, now);
        }
        if let Ok(ClientReply::Verdicts(v)) = store.client(ClientOp::Verdicts(ids.clone()), now) {
            verdict = v.into_iter().next().flatten();
            if verdict.is_some() {
                break;
            }
        }
    }
    let Some(Verdict::Refused(why)) = verdict else {
        panic!("{verdict:?}");
    };
    assert!(why.contains("Node::host_runs"), "{why}");
}

/// The stored forms of hosted runs: the journal of two runs (one waits
/// for a signal) and the state they leave, recorded under
/// `tests/fixtures/cluster_runs.json`. The journal must replay to that
/// state, and read back and write again to the same bytes. After a
/// deliberate change of a form, rewrite it with
/// `TASKWEAVE_WRITE_FIXTURES=1 cargo test --all-features --test cluster_hosted_runs`
/// and keep the old one beside it, read by a test of its own
/// (`cluster_runs_v1.json`: finished runs without their definition's
/// name; `cluster_runs_f5.json`: entries of form 5, before schedules;
/// `cluster_runs_f6.json`: entries of form 6, before a run's tenant).
#[derive(Debug, Serialize, Deserialize)]
struct RecordedRuns {
    format: u32,
    entries: Vec<(u64, Entry<Job>)>,
    ends: Vec<RunEnd<Job>>,
    state: NodeState<Job>,
}

fn record_runs() -> RecordedRuns {
    let mut cluster = Cluster::snapshotting(1, 10_000, false);
    for command in [
        register(chain()),
        register(approval()),
        start("chain", 1, 10),
        start("approval", 2, 0),
    ] {
        let posted = cluster.post(command);
        cluster.verdict(posted, add_one);
    }
    // A tenant's run, which waits for ever: its tenant is in the journal
    // and in the state.
    let tenants = cluster.post_as(Some(ACME), start("approval", 3, 0));
    cluster.verdict(tenants, add_one);
    cluster.wait_end(WorkflowId::new(1), add_one);
    let signal = cluster.post(RunCommand::Signal {
        run: WorkflowId::new(2),
        name: "approve".into(),
        payload: Some(Job::Number(5)),
    });
    cluster.verdict(signal, add_one);
    cluster.wait_end(WorkflowId::new(2), add_one);
    // A schedule every two seconds: it fires once, then pauses.
    let scheduled = cluster.post(every("tick", 2, "chain", 1));
    cluster.verdict(scheduled, add_one);
    for _ in 0..2_500 {
        cluster.tick(add_one);
    }
    let paused = cluster.post(schedule(ScheduleCommand::Pause("tick".into())));
    cluster.verdict(paused, add_one);
    let state = cluster.nodes[0].as_ref().unwrap().state();
    RecordedRuns {
        format: Entry::<Job>::FORMAT,
        entries: cluster
            .store
            .journal()
            .map(|row| (row.epoch, row.entry))
            .collect(),
        ends: cluster.ends.into_values().collect(),
        state,
    }
}

/// `tests/fixtures/NAME`, read, and its text.
fn read_runs_fixture(name: &str) -> (RecordedRuns, String) {
    let fixture = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let text = std::fs::read_to_string(&fixture).expect("the fixture exists");
    let stored = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} no longer reads: {e}", fixture.display()));
    (stored, text)
}

/// An auditor that hosts runs, having replayed `entries` from entry 1.
fn replay_runs(entries: &[(u64, Entry<Job>)]) -> Auditor<Job> {
    let mut auditor = Auditor::with_runs(dispatcher(), codec());
    for (seq, (epoch, entry)) in (1..).zip(entries) {
        auditor.apply(JournalRow {
            seq,
            epoch: *epoch,
            entry: entry.clone(),
            bytes: 0,
        });
    }
    auditor
}

#[test]
fn stored_run_forms_read_back_and_replay_as_recorded() {
    let fixture = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cluster_runs.json");
    if std::env::var_os("TASKWEAVE_WRITE_FIXTURES").is_some() {
        let text = serde_json::to_string_pretty(&record_runs()).unwrap();
        std::fs::write(&fixture, text + "\n").unwrap();
    }
    let (stored, text) = read_runs_fixture("cluster_runs.json");
    assert_eq!(stored.format, Entry::<Job>::FORMAT);
    assert_eq!(serde_json::to_string_pretty(&stored).unwrap() + "\n", text);
    assert!(stored.entries.iter().any(|(_, e)| matches!(
        e,
        Entry::Run {
            tenant: Some(ACME),
            ..
        }
    )));
    let schedules = stored.state.runs.as_ref().and_then(|r| r.schedules());
    let counts = schedules.and_then(|s| s.schedules().counts("tick"));
    assert_eq!(counts.map(|c| c.started), Some(1), "{schedules:?}");
    assert_eq!(stored.ends.len(), 2);
    assert_eq!(stored.ends[0].output, Some(Job::Number(13)));
    assert_eq!(stored.ends[1].output, Some(Job::Number(6)));
    // The journal replays to the recorded state.
    let auditor = replay_runs(&stored.entries);
    assert!(
        auditor.violations().is_empty(),
        "{:?}",
        auditor.violations()
    );
    let replayed = serde_json::to_value(auditor.state()).unwrap();
    assert_eq!(
        replayed,
        serde_json::to_value(&stored.state).unwrap(),
        "the stored journal no longer replays to its recorded state"
    );
    // Today's code records the same history.
    let now = serde_json::to_value(record_runs().state).unwrap();
    assert_eq!(now, replayed, "the same messages lead elsewhere today");
}

/// Runs stored in form 5, before schedules (`cluster_runs_f5.json`), in
/// form 6, before a run's tenant (`cluster_runs_f6.json`), and in form 7
/// with a version-6 snapshot, before its rows (`cluster_runs_f7_v6.json`),
/// and in form 7, before `Entry::SkipIds` (`cluster_runs_f7.json`), read
/// back, and their journals replay today to the recorded states.
#[test]
fn runs_stored_in_older_forms_read_back_and_replay_as_recorded() {
    for (name, format) in [
        ("cluster_runs_f5.json", 5),
        ("cluster_runs_f6.json", 6),
        ("cluster_runs_f7_v6.json", 7),
        ("cluster_runs_f7.json", 7),
    ] {
        replays_as_recorded(name, format);
    }
}

fn replays_as_recorded(name: &str, format: u32) {
    let (stored, _) = read_runs_fixture(name);
    assert_eq!(stored.format, format);
    assert!(Entry::<Job>::READABLE.contains(&stored.format));
    let auditor = replay_runs(&stored.entries);
    assert!(auditor.violations().is_empty());
    assert_eq!(
        serde_json::to_value(auditor.state()).unwrap(),
        at_todays_version(&stored.state)
    );
}

/// A stored state as JSON, naming the snapshot version this build writes:
/// an older fixture's state and its replay differ in that alone.
fn at_todays_version(state: &impl serde::Serialize) -> serde_json::Value {
    let mut value = serde_json::to_value(state).unwrap();
    value["version"] = taskweave::scheduler::Snapshot::<Job>::VERSION.into();
    value
}

/// The finished runs of a state, as JSON, without what a form added
/// since (`keys`).
fn finished_without(state: &serde_json::Value, keys: &[&str]) -> serde_json::Value {
    let mut finished = state["runs"]["engine"]["finished"].clone();
    for end in finished.as_array_mut().expect("a list of finished runs") {
        for key in keys {
            end.as_object_mut().expect("a finished run").remove(*key);
        }
    }
    finished
}

/// Hosted runs stored before a finished run kept its definition's name
/// (`cluster_runs_v1.json`) still read, with an empty name and version
/// 0, and their journal replays today to the same state, with the names.
#[test]
fn runs_stored_before_finished_runs_kept_their_names_still_read() {
    let (stored, _) = read_runs_fixture("cluster_runs_v1.json");
    let engine = stored.state.runs.clone().unwrap().engine().unwrap();
    let ends: Vec<(u64, &str, u32)> = engine
        .remembered_ends()
        .map(|end| (end.run.get(), end.workflow.as_str(), end.version))
        .collect();
    assert_eq!(ends, [(1, "", 0), (2, "", 0)]);
    let auditor = replay_runs(&stored.entries);
    assert!(auditor.violations().is_empty());
    let replayed = auditor.state();
    let engine = replayed.runs.clone().unwrap().engine().unwrap();
    let names: Vec<(&str, u32)> = engine
        .remembered_ends()
        .map(|end| (end.workflow.as_str(), end.version))
        .collect();
    assert_eq!(names, [("chain", 1), ("approval", 1)]);
    let (replayed, stored) = (
        serde_json::to_value(&replayed).unwrap(),
        at_todays_version(&stored.state),
    );
    let added = ["workflow", "version"];
    assert_eq!(
        finished_without(&replayed, &added),
        finished_without(&stored, &added)
    );
    let without_ends = |mut state: serde_json::Value| {
        state["runs"]["engine"]["finished"] = serde_json::Value::Null;
        state
    };
    assert_eq!(without_ends(replayed), without_ends(stored));
}

#[test]
fn a_wait_times_out_across_a_failover() {
    let mut cluster = Cluster::new(2);
    let def = WorkflowDef::builder("reminder", 1)
        .step(StepDef::wait("answered", ["answer"]).timeout(Duration::from_secs(3)))
        .step(StepDef::agent("remind"))
        .step(StepDef::agent("thank"))
        .branch("answered", "remind", taskweave::workflow::TIMEOUT_LABEL)
        .branch("answered", "thank", "answer");
    let registered = cluster.post(register(def));
    assert_eq!(cluster.verdict(registered, add_one), Verdict::Accepted);
    let started = cluster.post(start("reminder", 9, 40));
    assert_eq!(
        cluster.verdict(started, add_one),
        Verdict::Run(WorkflowId::new(9))
    );
    let from = cluster.now;
    // The leader that set the timer dies a second in; the one that takes
    // over fires it, from the journal.
    for _ in 0..1_000 {
        cluster.tick(add_one);
    }
    let first = cluster.leader().expect("a leader");
    cluster.nodes[first] = None;
    let end = cluster.wait_end(WorkflowId::new(9), add_one);
    assert_ne!(cluster.leader(), Some(first));
    assert_eq!(end.outcome, RunOutcome::Succeeded);
    let waited = cluster.now.saturating_duration_since(from);
    assert!(waited >= Duration::from_secs(3), "ended after {waited:?}");
    // Only the timeout's branch ran, once.
    assert_eq!(cluster.executed.len(), 1, "{:?}", cluster.executed);
    assert_eq!(cluster.executed.values().sum::<u32>(), 1);
}

/// A client's run command, hostile or not: definitions valid, conflicting
/// or hosting no host code, starts of known and unknown workflows and
/// versions under ids that may repeat, signals and cancels of runs that
/// may not exist, schedules of known and unknown workflows added,
/// paused, resumed, triggered and removed in any order.
fn any_run_command() -> impl Strategy<Value = RunCommand<Job>> {
    let run = (0u64..6).prop_map(WorkflowId::new);
    let number = proptest::option::of((-5i64..5).prop_map(Job::Number));
    let definitions = prop_oneof![
        Just(chain()),
        Just(approval()),
        // Another definition under chain v1: a conflict.
        Just(chain().step(StepDef::agent("d")).edge("c", "d")),
        // Host code: refused.
        Just(WorkflowDef::builder("local", 1).step(StepDef::local("x"))),
    ];
    let version = prop_oneof![Just(None), Just(Some(1)), (0u32..3).prop_map(Some)];
    prop_oneof![
        1 => definitions.prop_map(register),
        4 => (
            prop_oneof![Just("chain"), Just("approval"), Just("nope")],
            version,
            proptest::option::of(0u64..6),
            number.clone(),
        )
            .prop_map(|(workflow, version, id, input)| RunCommand::Start {
                workflow: workflow.into(),
                version,
                id: id.map(WorkflowId::new),
                input,
            }),
        2 => (run.clone(), prop_oneof![Just("approve"), Just("other")], number).prop_map(
            |(run, name, payload)| RunCommand::Signal {
                run,
                name: name.into(),
                payload,
            }
        ),
        1 => run.prop_map(RunCommand::Cancel),
        2 => (
            prop_oneof![Just("tick"), Just("tock")],
            prop_oneof![Just("chain"), Just("approval"), Just("nope")],
            0u8..5,
        )
            .prop_map(|(id, workflow, op)| match op {
                0 => every(id, 1, workflow, 1),
                1 => schedule(ScheduleCommand::Pause(id.into())),
                2 => schedule(ScheduleCommand::Resume(id.into())),
                3 => schedule(ScheduleCommand::Trigger(id.into())),
                _ => schedule(ScheduleCommand::Remove(id.into())),
            }),
    ]
}

/// Every byte of `value`'s JSON may be the one that `at` picks and
/// `byte` replaces.
fn corrupt<T: Serialize + for<'de> Deserialize<'de>>(
    value: &T,
    at: proptest::sample::Index,
    byte: u8,
) -> Option<T> {
    let mut text = serde_json::to_vec(value).unwrap();
    let i = at.index(text.len());
    text[i] = byte;
    serde_json::from_slice(&text).ok()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(48)
    ))]

    /// Whatever run commands clients post (of two tenants and of none),
    /// each gets a verdict, no node fails, no run ends twice, and the
    /// journal replays clean to the state of the node that wrote it.
    #[test]
    fn hostile_run_commands_get_verdicts_and_replay_to_the_leaders_state(
        commands in proptest::collection::vec(
            (any_run_command(), proptest::option::of(1u64..=2)),
            1..24,
        )
    ) {
        let mut cluster = Cluster::snapshotting(1, 1_000, false);
        // Both sagas registered first, so that most starts start a run.
        let registered = [register(chain()), register(approval())];
        let posted: Vec<u64> = registered
            .into_iter()
            .map(|c| (c, None))
            .chain(commands)
            .map(|(c, tenant)| cluster.post_as(tenant.map(taskweave::TenantId::new), c))
            .collect();
        // Ends are read for every id a command may name.
        cluster.watched = (0..6).map(WorkflowId::new).collect();
        for _ in 0..400 {
            cluster.tick(add_one);
        }
        let node = cluster.nodes[0].as_ref().unwrap();
        prop_assert!(
            matches!(node.role(), taskweave::cluster::Role::Leading { .. }),
            "{:?}",
            node.role()
        );
        let verdicts: Vec<_> = posted.iter().map(|&id| cluster.store.verdict(id)).collect();
        prop_assert!(verdicts.iter().all(Option::is_some), "{verdicts:?}");
        let entries: Vec<(u64, Entry<Job>)> =
            cluster.store.journal().map(|row| (row.epoch, row.entry)).collect();
        let auditor = replay_runs(&entries);
        prop_assert!(auditor.violations().is_empty(), "{:?}", auditor.violations());
        prop_assert_eq!(
            serde_json::to_value(auditor.state()).unwrap(),
            serde_json::to_value(node.state()).unwrap()
        );
    }

    /// A stored entry of hosted runs with one byte changed either does not
    /// decode or replays without a panic.
    #[test]
    fn corrupted_run_entries_are_refused_or_replay_safely(
        index in any::<proptest::sample::Index>(),
        at in any::<proptest::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let (stored, _) = read_runs_fixture("cluster_runs.json");
        let position = index.index(stored.entries.len());
        let (epoch, entry) = &stored.entries[position];
        if let Some(corrupted) = corrupt(entry, at, byte) {
            let mut entries = stored.entries.clone();
            entries[position] = (*epoch, corrupted);
            let _ = replay_runs(&entries).report();
        }
    }

    /// A node's stored state with one byte changed either does not decode,
    /// or is refused with a reason, or restores (a standby would take it):
    /// never a panic. One that restores takes the rest of the history.
    #[test]
    fn corrupted_node_states_are_refused_or_restore_safely(
        at in any::<proptest::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let (stored, _) = read_runs_fixture("cluster_runs.json");
        if let Some(corrupted) = corrupt(&stored.state, at, byte) {
            let seq = stored.entries.len() as u64;
            match Auditor::from_snapshot_with_runs(dispatcher(), codec(), seq, corrupted) {
                Ok(mut auditor) => {
                    let (epoch, _) = stored.entries[stored.entries.len() - 1];
                    auditor.apply(JournalRow {
                        seq: seq + 1,
                        epoch,
                        entry: Entry::RunTimers { now: Instant::from_secs(3_600) },
                        bytes: 0,
                    });
                    let _ = auditor.report();
                }
                Err(why) => prop_assert!(!why.is_empty()),
            }
        }
    }
}
