//! The store's failure mapping against a real server: remedies in the
//! messages, reconnection, `Unknown` at a broken commit, untrusted rows.

use std::time::Duration;

use postgres::{Client, NoTls};
use taskweave::Instant;
use taskweave::cluster::{
    AgentOp, AgentReply, ClientOp, ClientReply, Entry, Message, MessageId, NodeOp, NodeReply,
    Outcome, Outputs, Sender, Store, StoreFailure, TaskEnd, Verdict,
};
use taskweave::{AgentId, TaskId};

use super::{PgError, PgStore};
use crate::testkit::{PgCluster, start_or_skip};

pub(super) fn now() -> Instant {
    Instant::from_nanos(0)
}

fn admin(cluster: &PgCluster) -> Client {
    Client::connect(&cluster.conninfo(), NoTls).unwrap_or_else(|e| panic!("connect: {e}"))
}

/// A store on `cluster`.
fn store(cluster: &PgCluster) -> PgStore<String> {
    PgStore::connect(&cluster.conninfo()).unwrap_or_else(|e| panic!("{e}"))
}

/// A migrated cluster, an admin connection and a store holding epoch 1.
pub(super) fn leader(test: &str) -> Option<(PgCluster, Client, PgStore<String>)> {
    let cluster = start_or_skip(test)?;
    let mut admin = admin(&cluster);
    crate::schema::migrate(&mut admin).unwrap_or_else(|e| panic!("migrate: {e}"));
    let mut store = store(&cluster);
    let taken = store.node(
        NodeOp::TakeLease {
            seen: 0,
            holder: "test".into(),
            ttl: Duration::from_secs(60),
        },
        now(),
    );
    assert!(
        matches!(taken, Ok(NodeReply::Taken { epoch: 1 })),
        "{taken:?}"
    );
    Some((cluster, admin, store))
}

fn commit(first_seq: u64) -> NodeOp<String> {
    commit_with(first_seq, Outputs::default())
}

/// A commit of epoch 1 with one entry and `outputs`.
fn commit_with(first_seq: u64, outputs: Outputs<String>) -> NodeOp<String> {
    commit_of(first_seq, vec![], outputs)
}

/// A commit of epoch 1 with one entry that consumes `consumed` and
/// publishes `outputs`.
fn commit_of(
    first_seq: u64,
    consumed: Vec<(MessageId, Verdict)>,
    outputs: Outputs<String>,
) -> NodeOp<String> {
    NodeOp::Commit {
        epoch: 1,
        ttl: Duration::from_secs(60),
        first_seq,
        entries: vec![Entry::Drain { now: now() }],
        consumed,
        outputs,
    }
}

#[test]
fn a_connection_string_that_does_not_parse_names_its_cause_and_the_form() {
    for (conninfo, cause) in [
        ("host=x port=abc", "invalid value for option `port`"),
        ("host='x", "unterminated quoted connection parameter value"),
    ] {
        let refused = PgStore::<String>::connect(conninfo);
        let message = refused.map(|_| ()).unwrap_err().to_string();
        assert!(
            message.contains(cause)
                && message.contains("key=value")
                && !message.contains("invalid connection string: invalid connection string"),
            "{message}"
        );
    }
}

/// Undoes versions 3 to 15 (version 11's inbox checks are dropped or
/// replaced by version 3's and 4's again), but for version 3's `outcomes.output`, which
/// each caller drops itself (with the whole table, for version 1).
const UNDO_VERSIONS_3_TO_15: &str = "DROP FUNCTION taskweave.commit_batch;
    CREATE INDEX outbox_ready ON taskweave.outbox (agent, token)
        WHERE state = 'ready';
    DROP TRIGGER journal_appended ON taskweave.journal;
    DROP TRIGGER inbox_posted ON taskweave.inbox;
    DROP FUNCTION taskweave.notify_nodes();
    DROP TABLE taskweave.cluster_config;
    DROP POLICY own_tenant ON taskweave.run_ends;
    DROP POLICY node_all ON taskweave.run_ends;
    DROP INDEX taskweave.inbox_pending_by_poster;
    DROP POLICY own_tenant ON taskweave.outcomes;
    DROP POLICY node_all ON taskweave.outcomes;
    ALTER TABLE taskweave.outcomes DISABLE ROW LEVEL SECURITY;
    ALTER TABLE taskweave.outcomes DROP COLUMN tenant;
    DROP TRIGGER inbox_tenant ON taskweave.inbox;
    DROP FUNCTION taskweave.inbox_tenant();
    DROP POLICY submitter_read ON taskweave.inbox;
    CREATE POLICY submitter_read ON taskweave.inbox FOR SELECT TO taskweave_submitter
        USING (agent IS NULL);
    ALTER TABLE taskweave.inbox DROP COLUMN poster, DROP COLUMN tenant;
    DROP TABLE taskweave.submitter_tenants;
    ALTER TABLE taskweave.inbox DROP CONSTRAINT inbox_body_fits_its_kind;
    DROP TABLE taskweave.run_ends;
    DROP TRIGGER registration_within_grant ON taskweave.inbox;
    DROP FUNCTION taskweave.registration_within_grant();
    ALTER TABLE taskweave.agent_logins DROP COLUMN max_capacity, DROP COLUMN capabilities;
    DROP TRIGGER inbox_room ON taskweave.inbox;
    DROP TRIGGER inbox_takes_room ON taskweave.inbox;
    DROP FUNCTION taskweave.inbox_room();
    DROP FUNCTION taskweave.inbox_takes_room();
    DROP INDEX taskweave.inbox_pending_by_agent;";

#[test]
fn unreachable_servers_and_missing_schemas_name_the_remedy() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"));
    let refused = PgStore::<String>::connect(&format!("host=127.0.0.1 port={port} user=x"));
    let message = refused.map(|_| ()).unwrap_err().to_string();
    assert!(
        message.contains(&format!(
            "is PostgreSQL running at host=127.0.0.1 port={port}?"
        )),
        "{message}"
    );

    let Some(cluster) = start_or_skip("missing_schema") else {
        return;
    };
    let missing = PgStore::<String>::connect(&cluster.conninfo());
    let Err(error) = missing else {
        panic!("connected without a schema");
    };
    assert!(
        matches!(
            error,
            PgError::Schema {
                found: 0,
                needed: crate::SCHEMA_VERSION
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!(
            "the taskweave schema is missing or at version 0, this build needs version {}: \
             run `taskweave-pg init`",
            crate::SCHEMA_VERSION
        )
    );
    let mut admin = admin(&cluster);
    crate::schema::migrate(&mut admin).unwrap_or_else(|e| panic!("{e}"));
    // A database an earlier release left at version 1 (no outcomes) is
    // refused until it is migrated, and then versions 2 to 14 are applied.
    admin
        .batch_execute(&format!(
            "{UNDO_VERSIONS_3_TO_15}
                 DROP TABLE taskweave.outcomes;
                 DELETE FROM taskweave.schema_version WHERE version IN (2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)"
        ))
        .unwrap_or_else(|e| panic!("{e}"));
    let old = PgStore::<String>::connect(&cluster.conninfo()).map(|_| ());
    assert!(
        old.is_err_and(|e| e
            .to_string()
            .contains("at version 1, this build needs version 15")),
        "an older schema"
    );
    let upgraded = crate::schema::migrate(&mut admin).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        upgraded.applied,
        vec![2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
        "{upgraded:?}"
    );
    store(&cluster);
    // Version 2 (outcomes without outputs, one size limit for every
    // message) gains versions 3 to 14 alone, and its outcomes read back.
    admin
        .batch_execute(&format!(
            "ALTER TABLE taskweave.outcomes DROP COLUMN output;
                 {UNDO_VERSIONS_3_TO_15}
                 DELETE FROM taskweave.schema_version WHERE version IN (3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
                 INSERT INTO taskweave.outcomes (task, seq, body) VALUES (41, 1, '\"Completed\"')"
        ))
        .unwrap_or_else(|e| panic!("{e}"));
    let upgraded = crate::schema::migrate(&mut admin).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        upgraded.applied,
        vec![3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
        "{upgraded:?}"
    );
    let mut store = store(&cluster);
    let read = store.client(ClientOp::Outcomes(vec![TaskId::new(41)]), Instant::ZERO);
    assert!(
        matches!(&read, Ok(ClientReply::Outcomes(o))
            if o[..] == [Some(Outcome { end: TaskEnd::Completed, output: None })]),
        "an outcome of version 2 reads back: {read:?}"
    );
    admin
        .batch_execute("INSERT INTO taskweave.schema_version (version) VALUES (16)")
        .unwrap_or_else(|e| panic!("{e}"));
    let newer = PgStore::<String>::connect(&cluster.conninfo()).map(|_| ());
    assert!(
        newer.is_err_and(|e| e.to_string().contains("newer than this build's version 15")),
        "a newer schema"
    );
    let migrated = crate::schema::migrate(&mut admin);
    assert!(
        matches!(
            migrated,
            Err(PgError::Schema {
                found: 16,
                needed: 15
            })
        ),
        "{migrated:?}"
    );
}

#[test]
fn database_errors_carry_their_sqlstate() {
    let Some((_cluster, mut admin, mut store)) = leader("sqlstate") else {
        return;
    };
    admin
        .batch_execute("DROP TABLE taskweave.journal")
        .unwrap_or_else(|e| panic!("{e}"));
    let read = store.node(NodeOp::ReadJournal { from: 1, limit: 1 }, now());
    let Err(StoreFailure::Failed { cause }) = read else {
        panic!("{read:?}");
    };
    assert!(
        cause.starts_with("42P01 relation \"journal\" does not exist"),
        "{cause}"
    );
    assert!(cause.contains("run `taskweave-pg init`"), "{cause}");
    // A server error leaves the connection usable.
    let lease = store.node(NodeOp::ReadLease, now());
    assert!(matches!(lease, Ok(NodeReply::Lease(_))), "{lease:?}");
}

#[test]
fn the_store_reconnects_after_the_server_comes_back() {
    let Some((mut cluster, _admin, mut store)) = leader("reconnects") else {
        return;
    };
    cluster.stop();
    for _ in 0..2 {
        let down = store.node(NodeOp::ReadLease, now());
        assert!(matches!(down, Err(StoreFailure::Failed { .. })), "{down:?}");
    }
    let down = store.node(commit(1), now());
    let Err(StoreFailure::Failed { cause }) = down else {
        panic!("{down:?}");
    };
    assert!(cause.contains("is PostgreSQL running at"), "{cause}");
    cluster
        .restart_immediate()
        .unwrap_or_else(|e| panic!("{e}"));
    let back = store.node(commit(1), now());
    assert!(matches!(back, Ok(NodeReply::Done)), "{back:?}");
    // A crash under an open connection: at most one failed operation,
    // whose answer is lost (the commit is one statement: a connection
    // that broke under it leaves unknown whether it landed).
    cluster
        .restart_immediate()
        .unwrap_or_else(|e| panic!("{e}"));
    let first = store.node(commit(2), now());
    if !matches!(first, Ok(NodeReply::Done)) {
        assert!(
            matches!(
                first,
                Err(StoreFailure::Failed { .. } | StoreFailure::Unknown { .. })
            ),
            "{first:?}"
        );
        let second = store.node(commit(2), now());
        assert!(matches!(second, Ok(NodeReply::Done)), "{second:?}");
    }
    let journal = store.node(NodeOp::ReadJournal { from: 1, limit: 9 }, now());
    assert!(
        matches!(&journal, Ok(NodeReply::Journal(rows)) if rows.len() == 2),
        "{journal:?}"
    );
}

#[test]
fn a_connection_lost_at_commit_is_unknown() {
    let Some((cluster, mut admin, mut store)) = leader("unknown_at_commit") else {
        return;
    };
    // A deferred trigger holds the commit (the end of the one-statement
    // commit_batch call) for seconds; meanwhile the backend is
    // terminated, so the call's answer is lost.
    admin
        .batch_execute(
            "CREATE FUNCTION taskweave.slow() RETURNS trigger LANGUAGE plpgsql
                 AS $$ BEGIN PERFORM pg_sleep(5); RETURN NULL; END $$;
             CREATE CONSTRAINT TRIGGER slow AFTER INSERT ON taskweave.journal
                 DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION taskweave.slow();",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let killer = std::thread::spawn(move || {
        for _ in 0..100 {
            std::thread::sleep(Duration::from_millis(50));
            let killed = admin.query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE query LIKE 'SELECT commit_batch%' AND pid <> pg_backend_pid()",
                &[],
            );
            if killed.is_ok_and(|rows| !rows.is_empty()) {
                return admin;
            }
        }
        panic!("the commit never started");
    });
    let lost = store.node(commit(1), now());
    assert!(
        matches!(lost, Err(StoreFailure::Unknown { .. })),
        "{lost:?}"
    );
    let mut admin = killer
        .join()
        .unwrap_or_else(|_| panic!("the killer panicked"));
    admin
        .batch_execute("DROP TRIGGER slow ON taskweave.journal")
        .unwrap_or_else(|e| panic!("{e}"));
    // The next operation reconnects; reading tells what happened.
    let journal = store.node(NodeOp::ReadJournal { from: 1, limit: 9 }, now());
    assert!(
        matches!(&journal, Ok(NodeReply::Journal(rows)) if rows.is_empty()),
        "{journal:?}\n{}",
        cluster.server_log()
    );
}

#[test]
fn untrusted_rows_fail_without_panicking() {
    let Some((_cluster, mut admin, mut store)) = leader("untrusted_rows") else {
        return;
    };
    admin
        .batch_execute(
            "INSERT INTO taskweave.journal VALUES (1, 1, 1, 'not json'), (2, 1, 99, '{}');
             INSERT INTO taskweave.inbox (agent, incarnation, kind, body) VALUES
                 (NULL, NULL, 'submit', '{'),
                 (NULL, NULL, 'submit', '\"Heartbeat\"'),
                 (1, 1, 'report', '{\"Report\":{\"task\":1,\"agent\":2,\"token\":1,\"outcome\":\"Success\"}}');
             INSERT INTO taskweave.snapshots VALUES (5, 1, '[]');",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let read = store.node(NodeOp::ReadJournal { from: 1, limit: 9 }, now());
    assert!(
        matches!(&read, Err(StoreFailure::Failed { cause })
            if cause.starts_with("corrupt row 1 in table journal")),
        "{read:?}"
    );
    let read = store.node(NodeOp::ReadJournal { from: 2, limit: 9 }, now());
    assert!(
        matches!(&read, Err(StoreFailure::Failed { cause })
            if cause.contains("entry format 99")),
        "{read:?}"
    );
    let snapshot = store.node(NodeOp::LatestSnapshot, now());
    assert!(
        matches!(&snapshot, Err(StoreFailure::Failed { cause })
            if cause.starts_with("corrupt row 5 in table snapshots")),
        "{snapshot:?}"
    );
    let inbox = store.node(NodeOp::ReadInbox { limit: 9 }, now());
    let Ok(NodeReply::Inbox(messages)) = inbox else {
        panic!("{inbox:?}");
    };
    let bodies: Vec<_> = messages.iter().map(|m| m.body.clone()).collect();
    assert!(
        matches!(&bodies[..], [Err(_), Err(kind), Err(agent)]
            if kind.contains("heartbeat but was posted as a submit")
                && agent.contains("names agent-2 but was posted by agent-1")),
        "{bodies:?}"
    );
    assert_eq!(
        messages[2].sender,
        Sender::Agent {
            agent: AgentId::new(1),
            incarnation: 1
        }
    );
    // A commit at the wrong entry, and one consuming a message twice.
    let conflict = store.node(commit(9), now());
    assert!(
        matches!(conflict, Err(StoreFailure::Conflict { .. })),
        "{conflict:?}"
    );
    let consume = |first_seq| NodeOp::Commit {
        epoch: 1,
        ttl: Duration::from_secs(60),
        first_seq,
        entries: vec![],
        consumed: vec![(messages[0].id, taskweave::cluster::Verdict::Accepted)],
        outputs: Outputs {
            cancel: vec![(TaskId::new(1), taskweave::AttemptToken::new(1))],
            ..Outputs::default()
        },
    };
    let once = store.node(consume(6), now());
    assert!(matches!(once, Ok(NodeReply::Done)), "{once:?}");
    let twice = store.node(consume(6), now());
    assert!(
        matches!(twice, Err(StoreFailure::Conflict { .. })),
        "{twice:?}"
    );
}

/// A commit of one assignment for `agent` at `first_seq`.
fn assign(first_seq: u64, agent: u64) -> NodeOp<String> {
    let assignment = taskweave::cluster::Assignment {
        task: TaskId::new(first_seq),
        agent: AgentId::new(agent),
        token: taskweave::AttemptToken::new(first_seq),
        attempt: 1,
        incarnation: 0,
        payload: "work".to_string(),
    };
    let outputs = Outputs {
        assign: vec![assignment],
        ..Outputs::default()
    };
    commit_with(first_seq, outputs)
}

#[test]
fn an_agent_hears_of_its_work_and_listens_again_after_a_restart() {
    let Some((mut cluster, _admin, mut leader)) = leader("notices") else {
        return;
    };
    let (mut seven, mut eight) = (store(&cluster), store(&cluster));
    seven.listen("taskweave_work_7".into());
    eight.listen("taskweave_work_8".into());
    let done = leader.node(assign(1, 7), now());
    assert!(matches!(done, Ok(NodeReply::Done)), "{done:?}");
    assert!(
        seven.wait_notice(Duration::from_secs(10)),
        "agent 7 heard nothing"
    );
    assert!(
        !seven.wait_notice(Duration::from_millis(50)),
        "one notice per commit"
    );
    assert!(
        !eight.wait_notice(Duration::from_millis(50)),
        "agent 8 has no work"
    );

    cluster
        .restart_immediate()
        .unwrap_or_else(|e| panic!("{e}"));
    // The broken connection is noticed, and the next operation reconnects
    // and listens again.
    let _ = seven.wait_notice(Duration::from_millis(50));
    let back = (0..3).any(|_| seven.node(NodeOp::ReadLease, now()).is_ok());
    assert!(back, "the listener did not reconnect");
    assert_eq!(
        seven.reconnections(),
        1,
        "a host is told it may have missed notices"
    );
    let mut done = leader.node(assign(2, 7), now());
    if done.is_err() {
        done = leader.node(assign(2, 7), now());
    }
    assert!(matches!(done, Ok(NodeReply::Done)), "{done:?}");
    assert!(
        seven.wait_notice(Duration::from_secs(10)),
        "agent 7 heard nothing after the restart"
    );

    // Stopping the cluster tells every agent listening on the cluster's
    // channel.
    eight.listen("taskweave_cluster".into());
    let _ = eight.wait_notice(Duration::from_millis(50));
    assert!((0..3).any(|_| eight.node(NodeOp::ReadLease, now()).is_ok()));
    let snapshot = taskweave::scheduler::Dispatcher::<String>::new(
        taskweave::scheduler::DispatcherConfig::builder()
            .build()
            .unwrap_or_else(|e| panic!("{e}")),
    )
    .snapshot();
    let stop = NodeOp::Stop {
        epoch: 1,
        seq: 2,
        snapshot: Box::new(snapshot.into()),
    };
    let stopped = leader.node(stop, now());
    assert!(matches!(stopped, Ok(NodeReply::Done)), "{stopped:?}");
    assert!(
        eight.wait_notice(Duration::from_secs(10)),
        "no agent heard that the cluster stopped"
    );
}

#[test]
fn a_node_hears_of_every_post_but_a_heartbeat_and_of_every_journal_append() {
    let Some((cluster, _admin, mut leader)) = leader("node_notices") else {
        return;
    };
    let (mut node, mut poster) = (store(&cluster), store(&cluster));
    // Bit 1: an inbox post; bit 2: a journal append.
    node.listen("taskweave_inbox".into());
    node.listen("taskweave_journal".into());
    let agent = Sender::Agent {
        agent: AgentId::new(7),
        incarnation: 1,
    };
    let heartbeat = AgentOp::Post {
        sender: agent,
        messages: vec![Message::Heartbeat],
    };
    let posted = poster.agent(heartbeat, now());
    assert!(
        matches!(posted, Ok(AgentReply::Posted { .. })),
        "{posted:?}"
    );
    assert_eq!(
        node.wait_notices(Duration::from_millis(200)),
        0,
        "a heartbeat woke the node"
    );
    let submit = ClientOp::Post(vec![Message::Submit(vec![
        taskweave::scheduler::TaskSpec::new("a".to_string()),
        taskweave::scheduler::TaskSpec::new("b".to_string()),
    ])]);
    let posted = poster.client(submit, now());
    assert!(posted.is_ok(), "{posted:?}");
    assert_eq!(
        node.wait_notices(Duration::from_secs(10)),
        1,
        "no post heard"
    );
    let done = leader.node(commit(1), now());
    assert!(matches!(done, Ok(NodeReply::Done)), "{done:?}");
    assert_eq!(
        node.wait_notices(Duration::from_secs(10)),
        2,
        "no append heard"
    );
    assert_eq!(
        node.wait_notices(Duration::from_millis(50)),
        0,
        "one notice per commit"
    );
    // A busy node takes what came during its operations without waiting.
    let done = leader.node(commit(2), now());
    assert!(matches!(done, Ok(NodeReply::Done)), "{done:?}");
    let mut heard = 0;
    for _ in 0..500 {
        let read = node.node(NodeOp::ReadLease, now());
        assert!(read.is_ok(), "{read:?}");
        heard = node.take_notices();
        if heard != 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(heard, 2, "the append came with an operation's answer");
    assert_eq!(node.take_notices(), 0, "taken once");
}

#[test]
fn consuming_keeps_the_verdicts_someone_reads_and_deletes_an_agents_accepted_message() {
    let Some((cluster, mut admin, mut leader)) = leader("consume_verdicts") else {
        return;
    };
    let mut poster = store(&cluster);
    let agent = Sender::Agent {
        agent: AgentId::new(7),
        incarnation: 1,
    };
    let posted = poster.agent(
        AgentOp::Post {
            sender: agent,
            messages: vec![Message::Heartbeat, Message::Heartbeat],
        },
        now(),
    );
    assert!(
        matches!(posted, Ok(AgentReply::Posted { .. })),
        "{posted:?}"
    );
    let client = poster.client(ClientOp::Post(vec![Message::Drain]), now());
    let Ok(ClientReply::Posted(client_ids)) = client else {
        panic!("{client:?}");
    };
    let Ok(NodeReply::Inbox(messages)) = leader.node(NodeOp::ReadInbox { limit: 10 }, now()) else {
        panic!("the inbox");
    };
    let ids: Vec<_> = messages.iter().map(|m| m.id).collect();
    assert_eq!(ids.len(), 3);
    let (accepted, refused, drain) = (ids[0], ids[1], ids[2]);
    assert_eq!(drain, client_ids[0]);
    let consumed = vec![
        (accepted, Verdict::Accepted),
        (refused, Verdict::Refused("stale incarnation".into())),
        (drain, Verdict::Accepted),
    ];
    let done = leader.node(commit_of(1, consumed, Outputs::default()), now());
    assert!(matches!(done, Ok(NodeReply::Done)), "{done:?}");
    let rows: Vec<(i64, bool, bool)> = admin
        .query(
            "SELECT id, consumed, refused FROM taskweave.inbox ORDER BY id",
            &[],
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
    let id = |m: MessageId| m as i64;
    assert_eq!(
        rows,
        [(id(refused), true, true), (id(drain), true, false)],
        "the agent's accepted message is deleted, the refused and the client's kept"
    );
    let verdicts = poster.client(ClientOp::Verdicts(vec![drain]), now());
    assert!(
        matches!(&verdicts, Ok(ClientReply::Verdicts(v)) if v[..] == [Some(Verdict::Accepted)]),
        "{verdicts:?}"
    );
    let refusals = poster.agent(
        AgentOp::TakeRefusals {
            agent: AgentId::new(7),
        },
        now(),
    );
    assert!(
        matches!(&refusals, Ok(AgentReply::Refusals(r)) if r[..] == [(refused, "stale incarnation".to_string())]),
        "{refusals:?}"
    );
    // Rule 4 holds for a deleted message: consuming it again is a conflict.
    let consumed_again = vec![(accepted, Verdict::Accepted)];
    let again = leader.node(commit_of(2, consumed_again, Outputs::default()), now());
    assert!(
        matches!(again, Err(StoreFailure::Conflict { .. })),
        "{again:?}"
    );
}

#[test]
fn an_assignment_or_outcome_that_exists_is_kept_within_a_commit_and_across_commits() {
    let Some((_cluster, mut admin, mut leader)) = leader("kept_rows") else {
        return;
    };
    let row = |payload: &str| taskweave::cluster::Assignment {
        task: TaskId::new(1),
        agent: AgentId::new(1),
        token: taskweave::AttemptToken::new(1),
        attempt: 1,
        incarnation: 0,
        payload: payload.to_string(),
    };
    let outputs = |payloads: &[&str], ends: &[TaskEnd]| Outputs {
        assign: payloads.iter().map(|p| row(p)).collect(),
        ended: ends.iter().map(|e| (TaskId::new(2), e.clone())).collect(),
        ..Outputs::default()
    };
    let first = outputs(
        &["first", "second"],
        &[TaskEnd::Completed, TaskEnd::Cancelled],
    );
    let done = leader.node(commit_with(1, first), now());
    assert!(matches!(done, Ok(NodeReply::Done)), "{done:?}");
    let again = outputs(&["third"], &[TaskEnd::Cancelled]);
    let done = leader.node(commit_with(2, again), now());
    assert!(matches!(done, Ok(NodeReply::Done)), "{done:?}");
    let payloads: Vec<String> = admin
        .query("SELECT payload FROM taskweave.outbox", &[])
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(payloads, ["\"first\""], "the first assignment stays");
    let outcome = leader.client(ClientOp::Outcomes(vec![TaskId::new(2)]), now());
    assert!(
        matches!(&outcome, Ok(ClientReply::Outcomes(o))
            if o[..] == [Some(Outcome { end: TaskEnd::Completed, output: None })]),
        "the first outcome stays: {outcome:?}"
    );
}

#[test]
fn a_claimed_row_whose_payload_does_not_decode_fails_for_good_and_blocks_nothing() {
    let Some((_cluster, mut admin, mut store)) = leader("unreadable_payload") else {
        return;
    };
    let done = store.node(assign(1, 7), now());
    assert!(matches!(done, Ok(NodeReply::Done)), "{done:?}");
    admin
        .batch_execute(
            "INSERT INTO taskweave.outbox (task, token, agent, attempt, payload, epoch)
             VALUES (2, 2, 7, 1, 'not json', 1)",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let claim = AgentOp::Claim {
        agent: AgentId::new(7),
        incarnation: 1,
        limit: 10,
    };
    let tasks_of = |reply: Result<AgentReply<String>, StoreFailure>| match reply {
        Ok(AgentReply::Claimed { rows, .. }) => {
            rows.iter().map(|a| a.task.get()).collect::<Vec<_>>()
        }
        other => panic!("{other:?}"),
    };
    // The readable row is answered; the other is reported failed for good.
    assert_eq!(tasks_of(store.agent(claim.clone(), now())), vec![1]);
    let reports = |admin: &mut Client| {
        admin
            .query(
                "SELECT body FROM taskweave.inbox WHERE kind = 'report' AND agent = 7",
                &[],
            )
            .unwrap_or_else(|e| panic!("{e}"))
            .iter()
            .map(|row| row.get::<_, String>(0))
            .collect::<Vec<_>>()
    };
    let posted = reports(&mut admin);
    assert_eq!(posted.len(), 1, "{posted:?}");
    let report: Message<String> =
        serde_json::from_str(&posted[0]).unwrap_or_else(|e| panic!("{e}"));
    let Message::Report(report) = report else {
        panic!("{report:?}");
    };
    assert_eq!((report.task.get(), report.token.get()), (2, 2));
    assert!(
        matches!(&report.outcome, taskweave::scheduler::AttemptOutcome::Failure { reason, retryable: false }
            if reason.contains("cannot read the payload")),
        "{report:?}"
    );
    let state: String = admin
        .query_one("SELECT state FROM taskweave.outbox WHERE task = 2", &[])
        .unwrap_or_else(|e| panic!("{e}"))
        .get(0);
    assert_eq!(state, "done", "the report closed the row");
    // The next claim answers what the agent holds, and reports nothing
    // again.
    assert_eq!(tasks_of(store.agent(claim, now())), vec![1]);
    assert_eq!(reports(&mut admin).len(), 1);
}
