//! A tenant's hosted runs on a real server (schema version 9), posted in
//! raw SQL as each login: a run a tenant's submitter starts is the
//! tenant's. Another tenant's or a plain submitter's start under its id,
//! signal and cancel are refused in the words of a run that never was;
//! its end is read by its tenant's logins alone (row security on
//! `run_ends`); the tenant's live-run quota refuses a start beyond it;
//! and a tenant defines no workflow.

use std::time::Duration;

use postgres::Client;
use serde_json::{Value, json};
use taskweave::cluster::{ClientOp, ClientReply, Node, NodeConfig, Store, Verdict};
use taskweave::scheduler::{DispatcherConfig, TenantQuota};
use taskweave::workflow::{StepDef, WorkflowDef};
use taskweave::{TenantId, WorkflowId};
use taskweave_postgres::{LoginKind, PgStore, create_login, json_run_codec, map_tenant};

mod common;
use common::{connect_as, migrated_or_skip, verdicts};

const ACME: TenantId = TenantId::new(1);

/// Posts a run command as the connection's login, in raw SQL; the
/// message id.
fn post(client: &mut Client, command: Value) -> u64 {
    let body = json!({ "Run": command }).to_string();
    let row = client
        .query_one(
            "INSERT INTO taskweave.inbox (kind, body) VALUES ('run', $1) RETURNING id",
            &[&body],
        )
        .unwrap_or_else(|e| panic!("post {body}: {e}"));
    u64::try_from(row.get::<_, i64>(0)).unwrap()
}

fn start(id: u64) -> Value {
    json!({ "Start": { "workflow": "approval", "version": null, "id": id, "input": null } })
}

fn signal(run: u64) -> Value {
    json!({ "Signal": { "run": run, "name": "approve", "payload": 42 } })
}

fn cancel(run: u64) -> Value {
    json!({ "Cancel": run })
}

/// The runs whose ends the connection's login reads.
fn ends_seen(client: &mut Client) -> Vec<i64> {
    client
        .query("SELECT run FROM taskweave.run_ends ORDER BY run", &[])
        .unwrap_or_else(|e| panic!("read run_ends: {e}"))
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// Version `version` of the workflow `approval`: a run waits for the
/// signal `approve`, whose payload is its output.
fn approval(version: u32) -> WorkflowDef {
    WorkflowDef::builder("approval", version)
        .step(StepDef::wait("approved", ["approve"]))
        .output("approved")
        .build()
        .unwrap()
}

/// The command that registers [`approval`] at `version`.
fn register(version: u32) -> Value {
    json!({ "Register": approval(version) })
}

fn refused(verdict: &Verdict) -> &str {
    match verdict {
        Verdict::Refused(why) => why,
        other => panic!("taken: {other:?}"),
    }
}

#[test]
fn a_tenants_runs_are_its_own_on_a_real_server() {
    let test = "a_tenants_runs_are_its_own_on_a_real_server";
    let Some((cluster, mut admin)) = migrated_or_skip(test) else {
        return;
    };
    for login in ["acme", "globex", "plain"] {
        create_login(&mut admin, login, LoginKind::Submitter).unwrap();
    }
    create_login(&mut admin, "node", LoginKind::Node).unwrap();
    map_tenant(&mut admin, "acme", ACME).unwrap();
    map_tenant(&mut admin, "globex", TenantId::new(2)).unwrap();
    let (mut acme, mut globex, mut plain) = (
        connect_as(&cluster.conninfo_as("acme")),
        connect_as(&cluster.conninfo_as("globex")),
        connect_as(&cluster.conninfo_as("plain")),
    );
    let mut node_store = PgStore::<Value>::connect(&cluster.conninfo_as("node")).unwrap();
    let mut reader = PgStore::<Value>::connect(&cluster.conninfo()).unwrap();
    let dispatcher = DispatcherConfig::builder()
        .heartbeats(Duration::from_millis(250), 8)
        .tenant_quota(ACME, TenantQuota::new().live_runs(1))
        .build()
        .unwrap();
    let config = NodeConfig::builder("node-1").build().unwrap();
    let mut node = Node::new(config, dispatcher)
        .unwrap()
        .host_runs(json_run_codec());
    let epoch = std::time::Instant::now();
    let mut ask = |ids: &[u64]| verdicts(&mut node, &mut node_store, &mut reader, ids, epoch);

    // The plain submitter (an operator's login) defines the workflow.
    let defined = post(&mut plain, register(1));
    assert_eq!(ask(&[defined]), [Verdict::Accepted]);

    let five = post(&mut acme, start(5));
    assert_eq!(ask(&[five]), [Verdict::Run(WorkflowId::new(5))]);
    // ACME's run: nobody else starts under its id, signals or cancels it.
    let others = [
        post(&mut globex, start(5)),
        post(&mut plain, start(5)),
        post(&mut globex, signal(5)),
        post(&mut plain, signal(5)),
        post(&mut globex, cancel(5)),
        post(&mut plain, cancel(5)),
    ];
    let answers = ask(&others);
    for verdict in &answers[..2] {
        assert!(
            refused(verdict).contains("another client's run holds the id"),
            "{verdict:?}"
        );
    }
    for verdict in &answers[2..] {
        assert_eq!(refused(verdict), "workflow-5 is not an active run");
    }
    // ACME holds one live run, its quota; nor does it define workflows.
    let answers = ask(&[post(&mut acme, start(6)), post(&mut acme, register(2))]);
    assert!(
        refused(&answers[0]).contains("tenant-1 is at its quota of 1 live runs"),
        "{answers:?}"
    );
    assert!(refused(&answers[1]).contains("not Define"), "{answers:?}");

    // ACME's signal ends the run; its end is ACME's to read alone.
    let approve = post(&mut acme, signal(5));
    assert_eq!(ask(&[approve]), [Verdict::Accepted]);
    let published = std::time::Instant::now();
    while ends_seen(&mut acme).is_empty() {
        assert!(
            published.elapsed() < Duration::from_secs(30),
            "no end for ACME"
        );
        let _ = ask(&[approve]);
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(ends_seen(&mut acme), [5]);
    assert_eq!(ends_seen(&mut globex), Vec::<i64>::new());
    assert_eq!(ends_seen(&mut plain), Vec::<i64>::new());
    // Through the library too: a client reads the ends its login may.
    let runs = || ClientOp::Runs(vec![WorkflowId::new(5)]);
    let mut acme_store = PgStore::<Value>::connect(&cluster.conninfo_as("acme")).unwrap();
    let mut plain_store = PgStore::<Value>::connect(&cluster.conninfo_as("plain")).unwrap();
    let read = acme_store.client(runs(), common::now());
    assert!(
        matches!(&read, Ok(ClientReply::Runs(ends))
            if ends[0].as_ref().is_some_and(|end| end.output == Some(json!(42)) && end.tenant == Some(ACME))),
        "{read:?}"
    );
    let read = plain_store.client(runs(), common::now());
    assert!(
        matches!(&read, Ok(ClientReply::Runs(ends)) if ends[0].is_none()),
        "{read:?}"
    );
    // The run ended: ACME has room again.
    let six = post(&mut acme, start(6));
    assert_eq!(ask(&[six]), [Verdict::Run(WorkflowId::new(6))]);
}
