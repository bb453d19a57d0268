//! A peer that sends huge messages cannot stall the cluster: the database
//! holds each inbox message kind to its size (a heartbeat to 1 KiB), the
//! leader reads the inbox in batches bounded in bytes, and a report too
//! large to store becomes a failure that names the limit instead of a
//! post the agent would send again for ever.

mod common;

use common::{connect_as, incarnate, now};
use postgres::error::SqlState;
use taskweave::cluster::{
    AgentOp, AgentReply, Finished, Message, NodeOp, NodeReply, Sender, Store,
};
use taskweave::scheduler::AttemptOutcome;
use taskweave::{AgentId, AttemptToken, TaskId};
use taskweave_postgres::testkit::start_or_skip;
use taskweave_postgres::{LoginKind, PgStore, create_agent_login, create_login, migrate};

fn store(conninfo: &str) -> PgStore<String> {
    PgStore::connect(conninfo).unwrap_or_else(|e| panic!("connect {conninfo}: {e}"))
}

/// An agent login's raw insert of a `kind` message of `bytes` bytes.
fn post_raw(db: &mut postgres::Client, kind: &str, bytes: usize) -> Result<u64, postgres::Error> {
    let body = format!("\"{}\"", "x".repeat(bytes.saturating_sub(2)));
    db.execute(
        "INSERT INTO inbox (agent, incarnation, kind, body) VALUES (1, 1, $1, $2)",
        &[&kind, &body],
    )
}

fn refused_for_size(what: &str, result: Result<u64, postgres::Error>) {
    let error = result.expect_err(what);
    let db = error
        .as_db_error()
        .unwrap_or_else(|| panic!("{what}: {error}"));
    assert_eq!(db.code(), &SqlState::CHECK_VIOLATION, "{what}: {db:?}");
    // The limit by kind (schema version 3), or the 16 MiB one every
    // message had before it.
    assert!(
        matches!(
            db.constraint(),
            Some("inbox_body_fits_its_kind" | "inbox_body_check")
        ),
        "{what}: {db:?}"
    );
}

#[test]
fn huge_messages_are_refused_by_kind_read_in_bounded_batches_and_never_wedge_an_agent() {
    let Some(cluster) = start_or_skip("hostile_peers") else {
        return;
    };
    let mut admin = connect_as(&cluster.conninfo());
    migrate(&mut admin).unwrap_or_else(|e| panic!("migrate: {e}"));
    create_agent_login(&mut admin, 1, "agent_one").unwrap_or_else(|e| panic!("{e}"));
    create_login(&mut admin, "node", LoginKind::Node).unwrap_or_else(|e| panic!("{e}"));

    // The database holds each kind to its size, whoever posts it.
    let mut agent_db = connect_as(&cluster.conninfo_as("agent_one"));
    post_raw(&mut agent_db, "heartbeat", 1_000).expect("a heartbeat of 1,000 bytes");
    refused_for_size(
        "a heartbeat of 2 KiB",
        post_raw(&mut agent_db, "heartbeat", 2_048),
    );
    refused_for_size(
        "a registration of 100 KiB",
        post_raw(&mut agent_db, "register", 100 << 10),
    );
    refused_for_size(
        "a report over 16 MiB",
        post_raw(&mut agent_db, "report", (16 << 20) + 1),
    );
    refused_for_size(
        "a 16 MB heartbeat",
        post_raw(&mut agent_db, "heartbeat", 16 << 20),
    );

    // Four reports of 12 MB each: the leader's reads take them a few at a
    // time (32 MiB past the first), never all at once, and every message is
    // read in the end.
    for _ in 0..4 {
        post_raw(&mut agent_db, "report", 12 << 20).expect("a report of 12 MB");
    }
    let mut node = store(&cluster.conninfo_as("node"));
    let taken = node.node(
        NodeOp::TakeLease {
            seen: 0,
            holder: "node".into(),
            ttl: std::time::Duration::from_secs(60),
        },
        now(),
    );
    assert!(
        matches!(taken, Ok(NodeReply::Taken { epoch: 1 })),
        "{taken:?}"
    );
    let read = node.node(NodeOp::ReadInbox { limit: 1_000 }, now());
    let Ok(NodeReply::Inbox(messages)) = read else {
        panic!("reading the inbox: {read:?}");
    };
    let bytes: usize = messages.iter().map(|m| m.bytes).sum();
    assert!(
        (1..5).contains(&messages.len()) && bytes <= (32 << 20) + (12 << 20) + 16,
        "the heartbeat and some of the reports, not all five messages: {bytes} bytes in {}",
        messages.len()
    );

    // A completion too large to store is stored as a failure naming the
    // limit: posted once, not refused for ever.
    let mut agent = store(&cluster.conninfo_as("agent_one"));
    let incarnation = incarnate(&mut agent, 1);
    let huge = "\"".repeat(9 << 20); // 18 MiB once escaped
    let report = AgentOp::Report {
        sender: Sender::Agent {
            agent: AgentId::new(1),
            incarnation,
        },
        reports: vec![Finished::completed(
            TaskId::new(7),
            AgentId::new(1),
            AttemptToken::new(7),
            huge,
        )],
    };
    let posted = agent.agent(report, now());
    assert!(
        matches!(posted, Ok(AgentReply::Posted { .. })),
        "{posted:?}"
    );
    let last: String = admin
        .query_one(
            "SELECT body FROM taskweave.inbox WHERE kind = 'report' ORDER BY id DESC LIMIT 1",
            &[],
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .get(0);
    let message: Message<String> = serde_json::from_str(&last).unwrap_or_else(|e| panic!("{e}"));
    let Message::Report(report) = message else {
        panic!("a failure report: {message:?}");
    };
    let AttemptOutcome::Failure {
        reason,
        retryable: false,
    } = report.outcome
    else {
        panic!("a failure for good: {report:?}");
    };
    assert!(
        reason.contains("16777216 bytes a report may have") && reason.contains("reference"),
        "{reason}"
    );
}
