//! A peer that sends huge messages cannot stall the cluster: the database
//! holds each inbox message kind to its size (a heartbeat to 1 KiB), the
//! leader reads the inbox in batches bounded in bytes, and a report too
//! large to store becomes a failure that names the limit instead of a
//! post the agent would send again for ever.

mod common;

use common::{connect_as, incarnate, migrated_or_skip, now};
use postgres::error::SqlState;
use taskweave::cluster::{
    AgentOp, AgentReply, Finished, InboxMessage, Message, NodeOp, NodeReply, Outputs, Sender,
    Store, Verdict,
};
use taskweave::scheduler::AttemptOutcome;
use taskweave::{AgentId, AttemptToken, TaskId};
use taskweave_postgres::{LoginKind, PgStore, create_agent_login, create_login};

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

/// The leader's read of the inbox (at most 1,000 messages).
fn read(node: &mut PgStore<String>) -> Vec<InboxMessage<String>> {
    match node.node(NodeOp::ReadInbox { limit: 1_000 }, now()) {
        Ok(NodeReply::Inbox(messages)) => messages,
        other => panic!("reading the inbox: {other:?}"),
    }
}

/// The leader's commit of `messages` consumed, with the lease of epoch 1.
fn consume(node: &mut PgStore<String>, messages: &[InboxMessage<String>]) {
    let commit = NodeOp::Commit {
        epoch: 1,
        ttl: std::time::Duration::from_secs(60),
        first_seq: 1,
        entries: Vec::new(),
        consumed: messages.iter().map(|m| (m.id, Verdict::Accepted)).collect(),
        outputs: Outputs::default(),
    };
    let committed = node.node(commit, now());
    assert!(committed.is_ok(), "{committed:?}");
}

#[test]
fn huge_messages_are_refused_by_kind_read_in_bounded_batches_and_never_wedge_an_agent() {
    let Some((cluster, mut admin)) = migrated_or_skip("hostile_peers") else {
        return;
    };
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
    // time (4 MiB of one sender past its first), never all at once, and
    // every message is read in the end.
    for _ in 0..4 {
        post_raw(&mut agent_db, "report", 12 << 20).expect("a report of 12 MB");
    }
    // Then another agent's heartbeat, and 100 more of agent 1's: each read
    // is fair to every sender, so agent 2's heartbeat is in the first
    // read, not behind agent 1's big reports or its count.
    admin
        .execute(
            "INSERT INTO taskweave.inbox (agent, incarnation, kind, body) \
             VALUES (2, 1, 'heartbeat', '\"Heartbeat\"')",
            &[],
        )
        .unwrap_or_else(|e| panic!("{e}"));
    for _ in 0..100 {
        post_raw(&mut agent_db, "heartbeat", 10).expect("a heartbeat");
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
    let messages = read(&mut node);
    let of_agent = |agent: u64| {
        messages
            .iter()
            .filter(|m| matches!(m.sender, Sender::Agent { agent: a, .. } if a.get() == agent))
            .collect::<Vec<_>>()
    };
    let (first, second) = (of_agent(1), of_agent(2));
    let bytes: usize = first.iter().map(|m| m.bytes).sum();
    assert!(
        first.len() == 2 && bytes <= (4 << 20) + (12 << 20) + 16,
        "agent 1's heartbeat and one report, not all its messages: {bytes} bytes in {}",
        first.len()
    );
    assert_eq!(second.len(), 1, "agent 2's heartbeat waited behind agent 1");
    // Agent 1's other reports come one a read, then its heartbeats 64 a
    // read.
    consume(&mut node, &messages);
    let mut reads = Vec::new();
    loop {
        let messages = read(&mut node);
        reads.push(messages.len());
        assert!(reads.len() < 10, "{reads:?}");
        consume(&mut node, &messages);
        if messages.iter().all(|m| m.bytes < 100) {
            break;
        }
    }
    assert_eq!(reads, [1, 1, 1, 64]);

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

/// Posts `rows` heartbeats of `agent` in one statement.
fn heartbeats(db: &mut postgres::Client, agent: i64, rows: i32) -> Result<u64, postgres::Error> {
    db.execute(
        "INSERT INTO inbox (agent, incarnation, kind, body) \
         SELECT $1, 1, 'heartbeat', '\"Heartbeat\"' FROM generate_series(1, $2)",
        &[&agent, &rows],
    )
}

/// A login that floods the inbox fills its agent's share of it and no
/// more (schema version 6): 1,024 unread messages, then every post is
/// refused, whole, with a message that names the agent and the remedy,
/// until the leader reads them; and an agent with 1,024 refusals it has
/// not read is quarantined until it reads them. Another agent posts as
/// before, and nodes are not limited.
#[test]
fn an_agent_may_not_leave_more_than_its_share_of_the_inbox_unread() {
    let Some((cluster, mut admin)) = migrated_or_skip("inbox_share") else {
        return;
    };
    create_agent_login(&mut admin, 1, "agent_one").unwrap_or_else(|e| panic!("{e}"));
    create_agent_login(&mut admin, 2, "agent_two").unwrap_or_else(|e| panic!("{e}"));
    create_login(&mut admin, "node", LoginKind::Node).unwrap_or_else(|e| panic!("{e}"));
    let mut flooder = connect_as(&cluster.conninfo_as("agent_one"));
    let mut other = connect_as(&cluster.conninfo_as("agent_two"));
    let mut node = connect_as(&cluster.conninfo_as("node"));
    let pending = |admin: &mut postgres::Client, agent: i64| -> i64 {
        admin
            .query_one(
                "SELECT count(*) FROM taskweave.inbox WHERE agent = $1 AND NOT consumed",
                &[&agent],
            )
            .unwrap_or_else(|e| panic!("{e}"))
            .get(0)
    };

    // A statement past the limit is refused whole.
    let flood = heartbeats(&mut flooder, 1, 2_000).expect_err("2,000 rows in one statement");
    let db = flood.as_db_error().unwrap_or_else(|| panic!("{flood}"));
    assert_eq!(db.code(), &SqlState::CONFIGURATION_LIMIT_EXCEEDED, "{db:?}");
    assert!(db.message().contains("agent 1 has 1024 messages"), "{db:?}");
    let detail = db.detail().unwrap_or_default();
    assert!(
        detail.contains("REVOKE taskweave_agent FROM agent_one"),
        "{db:?}"
    );
    assert_eq!(pending(&mut admin, 1), 0);

    // Up to the limit, in any number of statements; then nothing more.
    assert_eq!(
        heartbeats(&mut flooder, 1, 1_000).expect("1,000 rows"),
        1_000
    );
    assert_eq!(heartbeats(&mut flooder, 1, 24).expect("24 more"), 24);
    for rows in [1, 500] {
        let refused = heartbeats(&mut flooder, 1, rows).expect_err("past the limit");
        assert_eq!(
            refused.code(),
            Some(&SqlState::CONFIGURATION_LIMIT_EXCEEDED),
            "{refused}"
        );
    }
    assert_eq!(pending(&mut admin, 1), 1_024);

    // Another agent's posts, and a node's, go in as before.
    assert_eq!(heartbeats(&mut other, 2, 10).expect("another agent"), 10);
    assert_eq!(heartbeats(&mut node, 1, 5).expect("a node"), 5);

    // Once the leader has read some, the agent may post again, that many.
    node.execute(
        "UPDATE inbox SET consumed = true WHERE id IN \
         (SELECT id FROM inbox WHERE agent = 1 AND NOT consumed ORDER BY id LIMIT 105)",
        &[],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(heartbeats(&mut flooder, 1, 100).expect("room again"), 100);
    heartbeats(&mut flooder, 1, 1).expect_err("full again");

    // The leader refuses all 1,024: the agent is quarantined until it
    // reads its refusals, whatever room the inbox has.
    node.execute(
        "UPDATE inbox SET consumed = true, refused = true WHERE agent = 1 AND NOT consumed",
        &[],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let quarantined = heartbeats(&mut flooder, 1, 1).expect_err("quarantined");
    let db = quarantined
        .as_db_error()
        .unwrap_or_else(|| panic!("{quarantined}"));
    assert_eq!(db.code(), &SqlState::CONFIGURATION_LIMIT_EXCEEDED, "{db:?}");
    assert!(
        db.message()
            .contains("agent 1 has 1024 refused messages it has not read"),
        "{db:?}"
    );
    assert_eq!(heartbeats(&mut other, 2, 1).expect("another agent"), 1);
    flooder
        .execute(
            "UPDATE inbox SET seen = true WHERE refused AND NOT seen",
            &[],
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        heartbeats(&mut flooder, 1, 1).expect("read its refusals"),
        1
    );
}

/// Posts `rows` cancels of task 1 as a client, in one statement.
fn cancels(db: &mut postgres::Client, rows: i32) -> Result<u64, postgres::Error> {
    db.execute(
        "INSERT INTO inbox (kind, body) SELECT 'cancel', '{\"Cancel\":1}' \
         FROM generate_series(1, $1)",
        &[&rows],
    )
}

/// A submitter login that floods the inbox fills its own share of it and
/// no more (schema version 8): 1,024 unread messages, then every post is
/// refused, whole, naming the login and the remedy, until the leader reads
/// them. Another submitter posts as before, and the leader's read takes at
/// most 64 of the flooder's messages at a time, so the other's message,
/// posted last, is read in the first read.
#[test]
fn a_submitter_may_not_leave_more_than_its_share_of_the_inbox_unread() {
    let Some((cluster, mut admin)) = migrated_or_skip("submitter_share") else {
        return;
    };
    for login in ["flooder", "other"] {
        create_login(&mut admin, login, LoginKind::Submitter).unwrap_or_else(|e| panic!("{e}"));
    }
    create_login(&mut admin, "node", LoginKind::Node).unwrap_or_else(|e| panic!("{e}"));
    let mut flooder = connect_as(&cluster.conninfo_as("flooder"));
    let mut other = connect_as(&cluster.conninfo_as("other"));

    let flood = cancels(&mut flooder, 2_000).expect_err("2,000 rows in one statement");
    let db = flood.as_db_error().unwrap_or_else(|| panic!("{flood}"));
    assert_eq!(db.code(), &SqlState::CONFIGURATION_LIMIT_EXCEEDED, "{db:?}");
    assert!(
        db.message()
            .contains("login flooder has 1024 messages the leader has not read"),
        "{db:?}"
    );
    assert!(
        (db.detail().unwrap_or_default()).contains("REVOKE taskweave_submitter FROM flooder"),
        "{db:?}"
    );
    assert_eq!(cancels(&mut flooder, 1_000).expect("1,000 rows"), 1_000);
    assert_eq!(cancels(&mut flooder, 24).expect("24 more"), 24);
    cancels(&mut flooder, 1).expect_err("past the limit");
    assert_eq!(cancels(&mut other, 1).expect("another submitter"), 1);
    // `status` names the flooder, and says it is at its limit.
    let said = common::hosted::taskweave_pg(&["status", "--db", &cluster.conninfo()]);
    assert!(
        said.iter().any(|line| line
            == "inbox unread by login: flooder 1024 (AT ITS LIMIT: its posts are refused), other 1"),
        "{said:?}"
    );

    let mut node = store(&cluster.conninfo_as("node"));
    let first = read(&mut node);
    assert_eq!(first.len(), 65, "64 of the flooder's, and the other's");
    assert_eq!(first.last().map(|m| m.sender), Some(Sender::Client));
    let read_ids: Vec<i64> = first.iter().map(|m| m.id as i64).collect();
    connect_as(&cluster.conninfo_as("node"))
        .execute(
            "UPDATE inbox SET consumed = true WHERE id = ANY($1)",
            &[&read_ids],
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cancels(&mut flooder, 64).expect("room again"), 64);
    cancels(&mut flooder, 1).expect_err("full again");
}
