//! Workflows on a PostgreSQL cluster: a `WorkflowClient`'s sagas run as
//! cluster tasks on a real server, through a restart of that server.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use taskweave::agent::AgentProfile;
use taskweave::cluster::{AgentSession, Node, NodeConfig, SessionConfig, Store, WorkflowClient};
use taskweave::scheduler::{AttemptOutcome, DispatcherConfig};
use taskweave::workflow::{EngineAction, RunOutcome, StepDef, StepTask, WorkflowDef};
use taskweave::{AgentId, Instant, WorkflowId};
use taskweave_postgres::testkit::start_or_skip;
use taskweave_postgres::{PgStore, migrate};

const RUNS: usize = 6;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A role's due operations on its own connection, at most 20 a turn.
macro_rules! drive {
    ($role:expr, $store:expr, $method:ident, $now:expr) => {
        for _ in 0..20 {
            let Some(op) = $role.poll_op($now) else { break };
            let reply = $store.$method(op, $now);
            $role.handle_reply(reply, $now);
        }
    };
}

#[test]
fn sagas_run_on_a_postgres_cluster_and_outlive_a_server_restart() {
    let test = "sagas_run_on_a_postgres_cluster_and_outlive_a_server_restart";
    let Some(mut cluster) = start_or_skip(test) else {
        return;
    };
    let mut admin = postgres::Client::connect(&cluster.conninfo(), postgres::NoTls)
        .unwrap_or_else(|e| panic!("connect: {e}"));
    migrate(&mut admin).unwrap_or_else(|e| panic!("migrate: {e}"));
    drop(admin);
    let connect = || {
        PgStore::<StepTask>::connect(&cluster.conninfo()).unwrap_or_else(|e| panic!("connect: {e}"))
    };
    let (mut node_store, mut agent_store, mut client_store) = (connect(), connect(), connect());
    let dispatcher = DispatcherConfig::builder()
        .heartbeats(ms(250), 8)
        .build()
        .unwrap();
    let mut node = Node::new(NodeConfig::builder("node-1").build().unwrap(), dispatcher).unwrap();
    let profile = AgentProfile::builder().capacity(4).build().unwrap();
    let session = SessionConfig::builder().build().unwrap();
    let mut agent = AgentSession::new(AgentId::new(1), profile, session);
    let mut client: WorkflowClient<StepTask, ()> = WorkflowClient::new("pg-test", ms(20));

    let def = Arc::new(
        WorkflowDef::builder("order", 1)
            .step(StepDef::agent("reserve").compensable())
            .step(StepDef::agent("charge"))
            .edge("reserve", "charge")
            .build()
            .unwrap(),
    );
    let charge = def.step_id("charge").unwrap();
    let started = std::time::Instant::now();
    let clock = || Instant::from_nanos(started.elapsed().as_nanos() as u64);
    let mut runs: Vec<WorkflowId> = Vec::new();
    for _ in 0..RUNS {
        let (engine, pool) = client.parts();
        runs.push(engine.start(pool, Arc::clone(&def), None, clock()));
    }
    // Every other run's charge is declined: it compensates its reservation.
    let declined = |run: WorkflowId| runs.iter().position(|&r| r == run).unwrap() % 2 == 1;

    let mut ended: BTreeMap<WorkflowId, RunOutcome> = BTreeMap::new();
    let mut restarted = false;
    while ended.len() < RUNS && started.elapsed() < Duration::from_secs(90) {
        let now = clock();
        drive!(client, client_store, client, now);
        client.handle_timeout(now);
        drive!(node, node_store, node, now);
        drive!(agent, agent_store, agent, now);
        while let Some(work) = agent.poll_work() {
            let step = work.payload;
            let outcome = if step.step == charge && !step.compensation && declined(step.run) {
                AttemptOutcome::fatal("card declined")
            } else {
                AttemptOutcome::Success
            };
            agent.finish(work.task, work.token, outcome);
        }
        while agent.poll_cancelled().is_some() {}
        while let Some(action) = client.parts().0.poll_action() {
            if let EngineAction::Finished { run, outcome, .. } = action {
                assert!(ended.insert(run, outcome).is_none(), "{run} ended twice");
            }
        }
        while client.poll_event().is_some() {}
        if !restarted && !ended.is_empty() {
            // Mid-way, the server goes down hard and comes back: every
            // role's next operation fails, then reconnects.
            cluster
                .restart_immediate()
                .unwrap_or_else(|e| panic!("restart: {e}"));
            restarted = true;
        }
        std::thread::sleep(ms(5));
    }
    assert!(restarted, "no run ended before the restart");
    assert_eq!(
        ended.len(),
        RUNS,
        "runs ended: {ended:?}\nserver log:\n{}",
        cluster.server_log()
    );
    for (run, outcome) in &ended {
        if declined(*run) {
            assert!(
                matches!(outcome, RunOutcome::Compensated(_)),
                "{run}: {outcome:?}"
            );
        } else {
            assert_eq!(outcome, &RunOutcome::Succeeded, "{run}");
        }
    }
    assert_eq!(client.pool().tracked(), 0);
}

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

/// What an agent does with a hosted step's task (`json_run_codec`'s
/// form): the sum of the run's input and the predecessors' outputs, plus
/// one.
fn add_one(payload: &serde_json::Value) -> serde_json::Value {
    let input = payload["input"].as_i64().unwrap_or(0);
    let inputs: i64 = payload["inputs"]
        .as_object()
        .map(|inputs| inputs.values().filter_map(serde_json::Value::as_i64).sum())
        .unwrap_or(0);
    serde_json::json!(input + inputs + 1)
}

#[test]
fn hosted_runs_outlive_their_leader_and_a_server_restart() {
    use serde_json::Value;
    use taskweave::cluster::{ClientOp, ClientReply, Message, RunCommand, RunEnd, Verdict};
    use taskweave_postgres::json_run_codec;

    let test = "hosted_runs_outlive_their_leader_and_a_server_restart";
    let Some(mut cluster) = start_or_skip(test) else {
        return;
    };
    let mut admin = postgres::Client::connect(&cluster.conninfo(), postgres::NoTls)
        .unwrap_or_else(|e| panic!("connect: {e}"));
    migrate(&mut admin).unwrap_or_else(|e| panic!("migrate: {e}"));
    drop(admin);
    let conninfo = cluster.conninfo();
    let connect =
        || PgStore::<Value>::connect(&conninfo).unwrap_or_else(|e| panic!("connect: {e}"));
    let dispatcher = DispatcherConfig::builder()
        .heartbeats(ms(250), 8)
        .build()
        .unwrap();
    let node = |name: &str| {
        let config = NodeConfig::builder(name)
            .lease(ms(600), ms(150))
            .snapshots(16, true)
            .build()
            .unwrap();
        Node::new(config, dispatcher.clone())
            .unwrap()
            .host_runs(json_run_codec())
    };
    let mut nodes = vec![(node("node-1"), connect()), (node("node-2"), connect())];
    let (mut agent_store, mut client_store) = (connect(), connect());
    let profile = AgentProfile::builder().capacity(4).build().unwrap();
    let session = SessionConfig::builder().build().unwrap();
    let mut agent = AgentSession::new(AgentId::new(1), profile, session);
    let started = std::time::Instant::now();
    let clock = || Instant::from_nanos(started.elapsed().as_nanos() as u64);

    let definition = serde_json::from_str(CHAIN).unwrap();
    let mut commands = vec![Message::Run(RunCommand::Register(Box::new(definition)))];
    let runs: Vec<WorkflowId> = (1..=RUNS as u64).map(WorkflowId::new).collect();
    for &run in &runs {
        commands.push(Message::Run(RunCommand::Start {
            workflow: "chain".into(),
            version: None,
            id: Some(run),
            input: Some(serde_json::json!(run.get() * 100)),
        }));
    }
    let posted = match client_store.client(ClientOp::Post(commands), clock()) {
        Ok(ClientReply::Posted(ids)) => ids,
        other => panic!("post: {other:?}"),
    };

    let mut ends: BTreeMap<WorkflowId, RunEnd<Value>> = BTreeMap::new();
    let (mut restarted, mut killed, mut answered) = (false, false, false);
    while ends.len() < RUNS && started.elapsed() < Duration::from_secs(90) {
        let now = clock();
        if !answered {
            // Read before a snapshot forgets them: the registration is
            // accepted, and each start names the run it asked for.
            if let Ok(ClientReply::Verdicts(verdicts)) =
                client_store.client(ClientOp::Verdicts(posted.clone()), now)
            {
                if verdicts.iter().all(Option::is_some) {
                    assert_eq!(verdicts[0], Some(Verdict::Accepted));
                    for (verdict, run) in verdicts[1..].iter().zip(&runs) {
                        assert_eq!(verdict, &Some(Verdict::Run(*run)));
                    }
                    answered = true;
                }
            }
        }
        for (node, store) in &mut nodes {
            drive!(node, store, node, now);
        }
        drive!(agent, agent_store, agent, now);
        while let Some(work) = agent.poll_work() {
            let output = add_one(&work.payload);
            agent.complete(work.task, work.token, output);
        }
        while agent.poll_cancelled().is_some() {}
        if let Ok(ClientReply::Runs(read)) = client_store.client(ClientOp::Runs(runs.clone()), now)
        {
            for end in read.into_iter().flatten() {
                let before = ends.insert(end.run, end.clone());
                assert!(before.is_none_or(|b| b == end), "{} ended twice", end.run);
            }
        }
        let leading = nodes
            .iter()
            .position(|(n, _)| matches!(n.role(), taskweave::cluster::Role::Leading { .. }));
        if let (false, Some(leader)) = (killed, leading) {
            if nodes[leader].0.runs().is_some_and(|e| e.active_runs() > 0) {
                // The leader dies with runs in flight; a new node joins.
                nodes.remove(leader);
                nodes.push((node("node-3"), connect()));
                killed = true;
            }
        }
        if killed && !restarted && !ends.is_empty() {
            cluster
                .restart_immediate()
                .unwrap_or_else(|e| panic!("restart: {e}"));
            restarted = true;
        }
        std::thread::sleep(ms(5));
    }
    assert!(answered, "no verdicts");
    assert!(
        killed && restarted,
        "killed {killed}, restarted {restarted}"
    );
    assert_eq!(
        ends.len(),
        RUNS,
        "runs ended: {ends:?}\nserver log:\n{}",
        cluster.server_log()
    );
    for (run, end) in &ends {
        assert_eq!(end.outcome, RunOutcome::Succeeded, "{run}");
        assert_eq!(
            end.output,
            Some(serde_json::json!(run.get() * 100 + 3)),
            "{run}"
        );
    }
    // The operator lists them from a replay of the journal (trimmed
    // behind the nodes' snapshots): by name and outcome, none active.
    let succeeded = list_runs(&conninfo, "succeeded");
    let expected: Vec<String> = runs
        .iter()
        .map(|run| {
            format!(
                "{run}  chain v1  succeeded, output: {}",
                run.get() * 100 + 3
            )
        })
        .collect();
    assert_eq!(succeeded, expected);
    assert_eq!(list_runs(&conninfo, "active"), ["no runs active"]);
    // The audit checks the runs in the journal behind the snapshot.
    let audit = taskweave_pg(&["audit", "--db", &conninfo]);
    assert!(
        audit.iter().any(|line| line.starts_with("runs: ")),
        "{audit:?}"
    );
    assert!(
        audit
            .last()
            .is_some_and(|line| line.starts_with("audit: clean")),
        "{audit:?}"
    );
}

/// `taskweave-pg runs --state STATE`, line by line.
fn list_runs(conninfo: &str, state: &str) -> Vec<String> {
    taskweave_pg(&["runs", "--db", conninfo, "--state", state])
}

/// What `taskweave-pg ARGS` prints, line by line, once it succeeded.
fn taskweave_pg(args: &[&str]) -> Vec<String> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_taskweave-pg"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("taskweave-pg {}: {e}", args[0]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "taskweave-pg {}: {}\n{stdout}{}",
        args[0],
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.lines().map(str::to_string).collect()
}
