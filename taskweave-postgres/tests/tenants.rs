//! Submitter logins mapped to tenants (schema version 7), on a real
//! server, from outside the library's code: the same idempotency key from
//! two tenants makes two tasks; a tenant's cancel of another tenant's
//! task is refused and the task lives on; a body that names another
//! tenant is overridden; a submitter reads the verdicts of its own
//! messages only, and cannot write the poster or the tenant of a row; a
//! login that is not a submitter's cannot be mapped. A submitter reads
//! the outcomes of its tenant's tasks alone (schema version 8), and one
//! acting for no tenant cancels no tenant's task.

use std::time::Duration;

use postgres::Client;
use serde_json::Value;
use taskweave::cluster::{ClientOp, ClientReply, Node, NodeConfig, Store, Verdict};
use taskweave::scheduler::{DispatcherConfig, TenantQuota};
use taskweave::{TaskId, TenantId};
use taskweave_postgres::{LoginKind, PgError, PgStore, create_login, map_tenant};

mod common;
use common::{connect_as, denied, migrated_or_skip, verdicts};

/// Posts `body` of `kind` as the connection's login; the message id.
fn post(client: &mut Client, kind: &str, body: &str) -> u64 {
    let row = client
        .query_one(
            "INSERT INTO taskweave.inbox (kind, body) VALUES ($1, $2) RETURNING id",
            &[&kind, &body],
        )
        .unwrap_or_else(|e| panic!("post {body}: {e}"));
    u64::try_from(row.get::<_, i64>(0)).unwrap()
}

fn one_task(verdict: &Verdict) -> TaskId {
    match verdict {
        Verdict::Submitted(tasks) if tasks.len() == 1 => tasks[0].clone().unwrap(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn submitters_of_two_tenants_keep_their_keys_tasks_and_verdicts_apart() {
    let test = "submitters_of_two_tenants_keep_their_keys_tasks_and_verdicts_apart";
    let Some((cluster, mut admin)) = migrated_or_skip(test) else {
        return;
    };
    for login in ["acme", "globex", "plain"] {
        create_login(&mut admin, login, LoginKind::Submitter).unwrap();
    }
    create_login(&mut admin, "node", LoginKind::Node).unwrap();
    map_tenant(&mut admin, "acme", TenantId::new(1)).unwrap();
    map_tenant(&mut admin, "globex", TenantId::new(2)).unwrap();
    let not_a_submitter = map_tenant(&mut admin, "node", TenantId::new(3));
    assert!(
        matches!(&not_a_submitter, Err(PgError::NotASubmitterLogin { login }) if login == "node"),
        "{not_a_submitter:?}"
    );

    let (mut acme, mut globex, mut plain) = (
        connect_as(&cluster.conninfo_as("acme")),
        connect_as(&cluster.conninfo_as("globex")),
        connect_as(&cluster.conninfo_as("plain")),
    );
    // ACME's body names GLOBEX as its tenant: the leader overrides it.
    let keyed = r#"{"Submit":[{"payload":"invoice","idempotency_key":"order-7","tenant":2}]}"#;
    let ids = [
        post(&mut acme, "submit", keyed),
        post(&mut globex, "submit", keyed),
        post(&mut plain, "submit", keyed),
        post(&mut acme, "submit", r#"{"Submit":[{"payload":"second"}]}"#),
    ];
    let mut node_store = PgStore::<Value>::connect(&cluster.conninfo_as("node")).unwrap();
    let mut reader = PgStore::<Value>::connect(&cluster.conninfo()).unwrap();
    let dispatcher = DispatcherConfig::builder()
        .heartbeats(Duration::from_millis(250), 8)
        .tenant_quota(TenantId::new(1), TenantQuota::new().live_tasks(1))
        .build()
        .unwrap();
    let config = NodeConfig::builder("node-1").build().unwrap();
    let mut node = Node::new(config, dispatcher).unwrap();
    let epoch = std::time::Instant::now();
    let answers = verdicts(&mut node, &mut node_store, &mut reader, &ids, epoch);
    let (acme_task, globex_task, plain_task) = (
        one_task(&answers[0]),
        one_task(&answers[1]),
        one_task(&answers[2]),
    );
    assert_ne!(acme_task, globex_task, "one key, two tenants: two tasks");
    assert_ne!(plain_task, acme_task);
    assert_ne!(plain_task, globex_task);
    // ACME's quota of one live task counted the first task as ACME's.
    assert!(
        matches!(&answers[3], Verdict::Submitted(tasks)
            if tasks[0].as_ref().is_err_and(|why| why.contains("tenant-1 is at its quota"))),
        "{:?}",
        answers[3]
    );

    // Each submitter reads its own verdicts: ACME sees two, not GLOBEX's
    // or the plain submitter's.
    let visible: Vec<i64> = acme
        .query("SELECT id FROM taskweave.inbox ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(visible, [ids[0] as i64, ids[3] as i64]);
    let seen = |client: &mut Client| -> i64 {
        client
            .query_one("SELECT count(*) FROM taskweave.inbox", &[])
            .unwrap()
            .get(0)
    };
    assert_eq!(seen(&mut globex), 1);
    assert_eq!(seen(&mut plain), 1);
    // Nor may a submitter write the poster or the tenant.
    denied(
        "a submitter writing the poster",
        acme.execute(
            "INSERT INTO taskweave.inbox (kind, body, poster) VALUES ('submit', '{}', 'globex')",
            &[],
        ),
    );
    denied(
        "a submitter writing the tenant",
        acme.execute(
            "INSERT INTO taskweave.inbox (kind, body, tenant) VALUES ('submit', '{}', 2)",
            &[],
        ),
    );

    // ACME cancels GLOBEX's task: refused, and the task lives on; its own
    // cancel goes through.
    let cancels = [
        post(
            &mut acme,
            "cancel",
            &format!(r#"{{"Cancel":{}}}"#, globex_task.get()),
        ),
        post(
            &mut acme,
            "cancel",
            &format!(r#"{{"Cancel":{}}}"#, acme_task.get()),
        ),
    ];
    let answers = verdicts(&mut node, &mut node_store, &mut reader, &cancels, epoch);
    assert_eq!(
        answers[0],
        Verdict::Refused(format!("tenant-1 has no live task {globex_task}"))
    );
    assert_eq!(answers[1], Verdict::Accepted);
    let now = common::now();
    let Ok(ClientReply::Outcomes(outcomes)) =
        reader.client(ClientOp::Outcomes(vec![globex_task, acme_task]), now)
    else {
        panic!("outcomes");
    };
    assert!(outcomes[0].is_none(), "GLOBEX's task was cancelled by ACME");
    assert!(outcomes[1].is_some(), "ACME's own cancel ended its task");

    // The plain submitter cancels GLOBEX's task: refused in the words of a
    // task that never was. Its own cancel goes through.
    let cancels = [
        post(
            &mut plain,
            "cancel",
            &format!(r#"{{"Cancel":{}}}"#, globex_task.get()),
        ),
        post(
            &mut plain,
            "cancel",
            &format!(r#"{{"Cancel":{}}}"#, plain_task.get()),
        ),
    ];
    let answers = verdicts(&mut node, &mut node_store, &mut reader, &cancels, epoch);
    assert_eq!(
        answers,
        [
            Verdict::Refused(format!("unknown task {globex_task}")),
            Verdict::Accepted
        ]
    );

    // Each login reads the outcomes of its own tenant's tasks alone, through
    // the store and in raw SQL.
    let every = vec![acme_task, globex_task, plain_task];
    let read_as = |login: &str| -> Vec<bool> {
        let mut store = PgStore::<Value>::connect(&cluster.conninfo_as(login)).unwrap();
        match store.client(ClientOp::Outcomes(every.clone()), common::now()) {
            Ok(ClientReply::Outcomes(outcomes)) => outcomes.iter().map(Option::is_some).collect(),
            other => panic!("{login} reading outcomes: {other:?}"),
        }
    };
    assert_eq!(read_as("acme"), [true, false, false]);
    assert_eq!(read_as("globex"), [false, false, false], "its task lives");
    assert_eq!(read_as("plain"), [false, false, true]);
    let tasks_seen = |client: &mut Client| -> Vec<i64> {
        client
            .query("SELECT task FROM taskweave.outcomes ORDER BY task", &[])
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect()
    };
    assert_eq!(tasks_seen(&mut acme), [acme_task.get() as i64]);
    assert_eq!(tasks_seen(&mut globex), [0i64; 0]);
    assert_eq!(tasks_seen(&mut plain), [plain_task.get() as i64]);
    // Nor may a submitter write an outcome.
    denied(
        "a submitter writing an outcome",
        acme.execute(
            "INSERT INTO taskweave.outcomes (task, seq, body, tenant) \
             VALUES (999, 1, '\"Cancelled\"', 1)",
            &[],
        ),
    );
}
