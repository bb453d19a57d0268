//! Least privilege, enforced by PostgreSQL: every write a role may not make
//! is refused by the database itself (not by the store's code), and every
//! path a role needs works under row-level security.
//!
//! Three ways a database refuses, asserted precisely:
//! * `denied`: SQLSTATE 42501 "permission denied" — no privilege on the
//!   table, column, sequence or role;
//! * `rls_refused`: SQLSTATE 42501 "new row violates row-level security
//!   policy" — the row written is not the writer's to write;
//! * `filtered`: the statement runs and sees no row — row-level security
//!   hides other agents' rows from reads, updates and deletes.

mod common;

use std::time::Duration;

use common::{connect_as, denied, filtered, incarnate, now, rls_refused, store_denied};
use postgres::Client;
use taskweave::cluster::{
    AgentOp, AgentReply, Assignment, ClientOp, ClientReply, Entry, Finished, Message, NodeOp,
    NodeReply, Outcome, Outputs, Redrive, Sender, Status, Store, StoreFailure, TaskEnd, Verdict,
};
use taskweave::scheduler::{
    AttemptOutcome, DeadLetterFilter, Dispatcher, DispatcherConfig, TaskReport, TaskSpec,
};
use taskweave::{AgentId, AttemptToken, TaskId};
use taskweave_postgres::testkit::start_or_skip;
use taskweave_postgres::{
    LoginKind, MigrateReport, PgError, PgStore, create_agent_login, create_login, migrate,
};

const HEARTBEAT: &str = "'\"Heartbeat\"'";

/// Statements only a node may run: every other role is refused.
const NODE_ONLY: [(&str, &str); 5] = [
    (
        "appending to the journal",
        "INSERT INTO journal VALUES (2, 1, 1, '{}')",
    ),
    ("reading the journal", "SELECT seq FROM journal"),
    ("taking the lease", "UPDATE lease SET epoch = 99"),
    (
        "storing a snapshot",
        "INSERT INTO snapshots VALUES (9, 1, '{}')",
    ),
    (
        "committing as the leader",
        "SELECT commit_batch(1, 1000, 1, 1, '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}',
            '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', NULL, NULL)",
    ),
];

/// The leader's commit was refused at the call, not by the tables it
/// touches: only the node group is granted EXECUTE on it.
fn not_granted_the_commit(result: Result<u64, postgres::Error>) {
    let refused = result.expect_err("commit_batch ran");
    assert!(
        refused
            .as_db_error()
            .is_some_and(|e| e.message() == "permission denied for function commit_batch"),
        "{refused}"
    );
}

fn store(conninfo: &str) -> PgStore<String> {
    PgStore::connect(conninfo).unwrap_or_else(|e| panic!("connect {conninfo}: {e}"))
}

fn assignment(task: u64, agent: u64) -> Assignment<String> {
    Assignment {
        task: TaskId::new(task),
        agent: AgentId::new(agent),
        token: AttemptToken::new(task),
        attempt: 1,
        incarnation: 0,
        payload: format!("payload {task}"),
    }
}

fn report(task: u64, agent: u64) -> Finished<String> {
    Finished::report(TaskReport {
        task: TaskId::new(task),
        agent: AgentId::new(agent),
        token: AttemptToken::new(task),
        outcome: AttemptOutcome::Success,
    })
}

fn outbox_state(admin: &mut Client, task: i64) -> String {
    admin
        .query_one(
            "SELECT state FROM taskweave.outbox WHERE task = $1",
            &[&task],
        )
        .map(|row| row.get(0))
        .unwrap_or_else(|e| panic!("outbox row {task}: {e}"))
}

#[test]
fn the_database_enforces_least_privilege() {
    let Some(cluster) = start_or_skip("the_database_enforces_least_privilege") else {
        return;
    };
    let mut admin = connect_as(&cluster.conninfo());

    // Migrations are versioned and idempotent.
    let first = migrate(&mut admin).unwrap_or_else(|e| panic!("migrate: {e}"));
    assert_eq!(
        first,
        MigrateReport {
            from: 0,
            to: 15,
            applied: vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]
        }
    );
    let again = migrate(&mut admin).unwrap_or_else(|e| panic!("migrate again: {e}"));
    assert_eq!(
        again,
        MigrateReport {
            from: 15,
            to: 15,
            applied: vec![]
        }
    );

    // Logins: idempotent, validated, an agent login never changes agent.
    for _ in 0..2 {
        create_agent_login(&mut admin, 1, "agent_one").unwrap_or_else(|e| panic!("{e}"));
        create_agent_login(&mut admin, 2, "agent_two").unwrap_or_else(|e| panic!("{e}"));
        create_login(&mut admin, "submitter", LoginKind::Submitter)
            .unwrap_or_else(|e| panic!("{e}"));
        create_login(&mut admin, "node", LoginKind::Node).unwrap_or_else(|e| panic!("{e}"));
    }
    let taken = create_agent_login(&mut admin, 2, "agent_one");
    assert!(
        matches!(taken, Err(PgError::LoginTaken { agent: 1, .. })),
        "{taken:?}"
    );
    let injected = create_login(&mut admin, "x\"; DROP TABLE lease; --", LoginKind::Node);
    assert!(
        matches!(injected, Err(PgError::InvalidLogin { .. })),
        "{injected:?}"
    );

    // The scene, set through the store by each role under its own login.
    let mut node = store(&cluster.conninfo_as("node"));
    let mut one = store(&cluster.conninfo_as("agent_one"));
    let mut two = store(&cluster.conninfo_as("agent_two"));
    let mut client = store(&cluster.conninfo_as("submitter"));
    let taken = node.node(
        NodeOp::TakeLease {
            seen: 0,
            holder: "node".into(),
            ttl: Duration::from_secs(60),
        },
        now(),
    );
    assert!(
        matches!(taken, Ok(NodeReply::Taken { epoch: 1 })),
        "{taken:?}"
    );
    let (inc1, inc2) = (incarnate(&mut one, 1), incarnate(&mut two, 2));
    assert!(inc2 > inc1);
    let sender1 = Sender::Agent {
        agent: AgentId::new(1),
        incarnation: inc1,
    };
    let sender2 = Sender::Agent {
        agent: AgentId::new(2),
        incarnation: inc2,
    };
    for (store, sender) in [(&mut one, sender1), (&mut two, sender2)] {
        let posted = store.agent(
            AgentOp::Post {
                sender,
                messages: vec![Message::Heartbeat],
            },
            now(),
        );
        assert!(
            matches!(posted, Ok(AgentReply::Posted { stopped: false })),
            "{posted:?}"
        );
    }
    let posted = client.client(
        ClientOp::Post(vec![
            Message::Submit(vec![TaskSpec::new("job".to_string())]),
            Message::Cancel(TaskId::new(9)),
        ]),
        now(),
    );
    let Ok(ClientReply::Posted(client_ids)) = posted else {
        panic!("a submitter's post: {posted:?}");
    };
    let inbox = node.node(NodeOp::ReadInbox { limit: 10 }, now());
    let Ok(NodeReply::Inbox(inbox)) = inbox else {
        panic!("the node's inbox: {inbox:?}");
    };
    let senders: Vec<Sender> = inbox.iter().map(|m| m.sender).collect();
    assert_eq!(senders, [sender1, sender2, Sender::Client, Sender::Client]);
    assert!(inbox.iter().all(|m| m.body.is_ok()), "{inbox:?}");
    let (hb1, hb2) = (inbox[0].id, inbox[1].id);
    let committed = node.node(
        NodeOp::Commit {
            epoch: 1,
            ttl: Duration::from_secs(60),
            first_seq: 1,
            entries: vec![Entry::Drain { now: now() }],
            consumed: vec![
                (hb1, Verdict::Accepted),
                (hb2, Verdict::Refused("stale incarnation".into())),
                (client_ids[0], Verdict::Submitted(vec![Ok(TaskId::new(1))])),
                (client_ids[1], Verdict::Refused("no task 9".into())),
            ],
            outputs: Outputs {
                assign: vec![assignment(1, 1), assignment(2, 1), assignment(3, 2)],
                ended: vec![(TaskId::new(4), TaskEnd::Completed)],
                status: Some(Status::default()),
                ..Outputs::default()
            },
        },
        now(),
    );
    assert!(matches!(committed, Ok(NodeReply::Done)), "{committed:?}");

    // --- an agent, through the store ---------------------------------------
    // Its own rows: claimed, claimed again (rule 5), reported (rule 6).
    let claim = |agent: u64, incarnation: u64| AgentOp::Claim {
        agent: AgentId::new(agent),
        incarnation,
        limit: 10,
    };
    for _ in 0..2 {
        let claimed = one.agent(claim(1, inc1), now());
        let Ok(AgentReply::Claimed { rows, stopped }) = claimed else {
            panic!("agent 1 claims: {claimed:?}");
        };
        assert!(!stopped);
        // Rows assigned to any life answer as the claimer's.
        let mine = |task| Assignment {
            incarnation: inc1,
            ..assignment(task, 1)
        };
        assert_eq!(rows, vec![mine(1), mine(2)]);
    }
    let reported = one.agent(
        AgentOp::Report {
            sender: sender1,
            reports: vec![report(1, 1)],
        },
        now(),
    );
    assert!(
        matches!(reported, Ok(AgentReply::Posted { stopped: false })),
        "{reported:?}"
    );
    assert_eq!(outbox_state(&mut admin, 1), "done");

    // Another agent's rows: invisible or refused.
    let stolen = one.agent(claim(2, inc1), now());
    assert!(
        matches!(&stolen, Ok(AgentReply::Claimed { rows, .. }) if rows.is_empty()),
        "agent 1 claims agent 2's rows: {stolen:?}"
    );
    assert_eq!(outbox_state(&mut admin, 3), "ready");
    let refusals = one.agent(
        AgentOp::TakeRefusals {
            agent: AgentId::new(2),
        },
        now(),
    );
    assert!(
        matches!(&refusals, Ok(AgentReply::Refusals(r)) if r.is_empty()),
        "agent 1 takes agent 2's refusals: {refusals:?}"
    );
    for messages in [vec![Message::Heartbeat], vec![report(3, 2).into_message()]] {
        store_denied(
            "agent 1 posts as agent 2",
            one.agent(
                AgentOp::Post {
                    sender: sender2,
                    messages,
                },
                now(),
            ),
        );
    }
    store_denied(
        "agent 1 reports as agent 2",
        one.agent(
            AgentOp::Report {
                sender: sender2,
                reports: vec![report(3, 2)],
            },
            now(),
        ),
    );
    assert_eq!(outbox_state(&mut admin, 3), "ready");
    store_denied(
        "agent 1 submits",
        one.agent(
            AgentOp::Post {
                sender: sender1,
                messages: vec![Message::Submit(vec![])],
            },
            now(),
        ),
    );
    store_denied(
        "agent 1 drains",
        one.agent(
            AgentOp::Post {
                sender: sender1,
                messages: vec![Message::Drain],
            },
            now(),
        ),
    );
    store_denied(
        "agent 1 posts as a client",
        one.client(ClientOp::Post(vec![Message::Cancel(TaskId::new(1))]), now()),
    );
    store_denied(
        "agent 1 renews the lease",
        one.node(
            NodeOp::Renew {
                epoch: 1,
                ttl: Duration::from_secs(1),
            },
            now(),
        ),
    );
    store_denied(
        "agent 1 reads the journal",
        one.node(NodeOp::ReadJournal { from: 1, limit: 1 }, now()),
    );
    store_denied(
        "agent 1 reads the status",
        one.client(ClientOp::Status, now()),
    );
    // Agent 2 sees its own refusal, once.
    for expected in [vec![(hb2, "stale incarnation".to_string())], vec![]] {
        let refusals = two.agent(
            AgentOp::TakeRefusals {
                agent: AgentId::new(2),
            },
            now(),
        );
        assert!(
            matches!(&refusals, Ok(AgentReply::Refusals(r)) if *r == expected),
            "{refusals:?}"
        );
    }

    // --- an agent, in raw SQL ----------------------------------------------
    let mut agent = connect_as(&cluster.conninfo_as("agent_one"));
    let mut sql = |q: &str| agent.execute(q, &[]);
    let post = |agent: &str, kind: &str| {
        format!(
            "INSERT INTO inbox (agent, incarnation, kind, body) VALUES ({agent}, 1, '{kind}', {HEARTBEAT})"
        )
    };
    rls_refused("a heartbeat as agent 2", sql(&post("2", "heartbeat")));
    rls_refused("a registration as agent 2", sql(&post("2", "register")));
    rls_refused("a report as agent 2", sql(&post("2", "report")));
    for kind in ["submit", "cancel", "drain", "run", "redrive"] {
        rls_refused(kind, sql(&post("1", kind)));
    }
    rls_refused(
        "a client message",
        sql(&format!(
            "INSERT INTO inbox (kind, body) VALUES ('submit', {HEARTBEAT})"
        )),
    );
    denied(
        "a message posted consumed",
        sql(&format!(
            "INSERT INTO inbox (agent, incarnation, kind, body, consumed) VALUES (1, 1, 'heartbeat', {HEARTBEAT}, true)"
        )),
    );
    denied(
        "a message posted with a verdict",
        sql(&format!(
            "INSERT INTO inbox (agent, incarnation, kind, body, verdict) VALUES (1, 1, 'heartbeat', {HEARTBEAT}, '\"Accepted\"')"
        )),
    );
    assert_eq!(
        sql(&post("1", "heartbeat")).ok(),
        Some(1),
        "its own heartbeat"
    );
    filtered(
        "claiming agent 2's row",
        sql("UPDATE outbox SET state = 'claimed', incarnation = 1 WHERE agent = 2"),
    );
    filtered(
        "closing agent 2's row",
        sql("UPDATE outbox SET state = 'done' WHERE task = 3"),
    );
    filtered(
        "reading agent 2's rows",
        sql("SELECT task FROM outbox WHERE agent = 2"),
    );
    filtered(
        "reading agent 2's verdicts",
        sql("SELECT id, verdict FROM inbox WHERE agent = 2"),
    );
    filtered(
        "reading client verdicts",
        sql("SELECT id, verdict FROM inbox WHERE agent IS NULL"),
    );
    filtered(
        "marking agent 2's verdicts seen",
        sql("UPDATE inbox SET seen = true WHERE agent = 2"),
    );
    assert_eq!(outbox_state(&mut admin, 3), "ready");
    denied(
        "reassigning a row",
        sql("UPDATE outbox SET agent = 1 WHERE task = 2"),
    );
    denied(
        "rewriting a payload",
        sql("UPDATE outbox SET payload = 'x' WHERE task = 2"),
    );
    rls_refused(
        "putting its row back to ready",
        sql("UPDATE outbox SET state = 'ready' WHERE task = 2"),
    );
    rls_refused(
        "cancelling its row",
        sql("UPDATE outbox SET state = 'cancelled' WHERE task = 2"),
    );
    denied(
        "writing its own verdict",
        sql("UPDATE inbox SET verdict = '\"Accepted\"' WHERE agent = 1"),
    );
    denied(
        "consuming its own message",
        sql("UPDATE inbox SET consumed = true WHERE agent = 1"),
    );
    denied("reading bodies", sql("SELECT body FROM inbox"));
    denied("deleting inbox rows", sql("DELETE FROM inbox"));
    denied("deleting outbox rows", sql("DELETE FROM outbox"));
    denied(
        "inserting an assignment",
        sql(
            "INSERT INTO outbox (task, token, agent, attempt, payload, epoch) VALUES (9, 9, 1, 1, '\"x\"', 1)",
        ),
    );
    for (what, statement) in NODE_ONLY {
        denied(what, sql(statement));
    }
    not_granted_the_commit(sql(NODE_ONLY[4].1));
    denied("trimming the journal", sql("DELETE FROM journal"));
    denied(
        "stopping the cluster",
        sql("UPDATE lease SET stopped = true"),
    );
    denied("reading the status", sql("SELECT body FROM status"));
    denied("writing the status", sql("UPDATE status SET body = '{}'"));
    denied(
        "storing a final state",
        sql("INSERT INTO final_state VALUES (1, 1, 1, '{}')"),
    );
    denied(
        "remapping its login",
        sql("UPDATE agent_logins SET agent = 2"),
    );
    denied(
        "adding a login",
        sql("INSERT INTO agent_logins VALUES ('agent_one', 2)"),
    );
    denied(
        "resetting the incarnations",
        sql("SELECT setval('incarnations', 1)"),
    );
    denied("becoming agent 2", sql("SET ROLE agent_two"));
    denied("becoming a node", sql("SET ROLE taskweave_node"));
    assert_eq!(
        sql("SELECT agent FROM agent_logins").ok(),
        Some(1),
        "an agent sees only its own login"
    );
    assert_eq!(sql("SELECT stopped FROM lease").ok(), Some(1));

    // --- a submitter -------------------------------------------------------
    let verdicts = client.client(
        ClientOp::Verdicts(vec![client_ids[0], client_ids[1], hb1]),
        now(),
    );
    let Ok(ClientReply::Verdicts(verdicts)) = verdicts else {
        panic!("{verdicts:?}");
    };
    assert_eq!(
        verdicts,
        vec![
            Some(Verdict::Submitted(vec![Ok(TaskId::new(1))])),
            Some(Verdict::Refused("no task 9".into())),
            None, // an agent's verdict is not a submitter's to read
        ]
    );
    let outcomes = client.client(
        ClientOp::Outcomes(vec![TaskId::new(4), TaskId::new(1)]),
        now(),
    );
    assert!(
        matches!(&outcomes, Ok(ClientReply::Outcomes(ends)) if ends[..] == [Some(Outcome { end: TaskEnd::Completed, output: None }), None]),
        "a submitter reads outcomes: {outcomes:?}"
    );
    let status = client.client(ClientOp::Status, now());
    assert!(
        matches!(&status, Ok(ClientReply::Status(lease, Some(_))) if lease.epoch == 1 && lease.held),
        "{status:?}"
    );
    store_denied(
        "a submitter drains",
        client.client(ClientOp::Post(vec![Message::Drain]), now()),
    );
    store_denied(
        "a submitter redrives",
        client.client(
            ClientOp::Post(vec![Message::Redrive(Redrive::Task(TaskId::new(1)))]),
            now(),
        ),
    );
    store_denied(
        "a submitter registers",
        client.agent(
            AgentOp::Post {
                sender: sender1,
                messages: vec![Message::Heartbeat],
            },
            now(),
        ),
    );
    store_denied("a submitter claims", client.agent(claim(1, inc1), now()));
    store_denied(
        "a submitter takes an incarnation",
        client.agent(
            AgentOp::Incarnate {
                agent: AgentId::new(1),
            },
            now(),
        ),
    );
    store_denied(
        "a submitter reads the inbox",
        client.node(NodeOp::ReadInbox { limit: 1 }, now()),
    );
    let mut submitter = connect_as(&cluster.conninfo_as("submitter"));
    let mut sql = |q: &str| submitter.execute(q, &[]);
    for kind in ["register", "heartbeat", "report", "drain", "redrive"] {
        rls_refused(
            kind,
            sql(&format!(
                "INSERT INTO inbox (kind, body) VALUES ('{kind}', {HEARTBEAT})"
            )),
        );
    }
    denied(
        "posting as an agent",
        sql(&format!(
            "INSERT INTO inbox (agent, incarnation, kind, body) VALUES (1, 1, 'submit', {HEARTBEAT})"
        )),
    );
    denied(
        "posting a verdict",
        sql(&format!(
            "INSERT INTO inbox (kind, body, verdict) VALUES ('submit', {HEARTBEAT}, '\"Accepted\"')"
        )),
    );
    denied(
        "rewriting a verdict",
        sql("UPDATE inbox SET verdict = '\"Accepted\"'"),
    );
    denied("marking seen", sql("UPDATE inbox SET seen = true"));
    denied("deleting messages", sql("DELETE FROM inbox"));
    denied("reading bodies", sql("SELECT body FROM inbox"));
    filtered(
        "reading agents' verdicts",
        sql("SELECT id, verdict FROM inbox WHERE agent IS NOT NULL"),
    );
    denied("reading the outbox", sql("SELECT task FROM outbox"));
    denied(
        "writing an outcome",
        sql("INSERT INTO outcomes (task, seq, body) VALUES (9, 1, '\"Completed\"')"),
    );
    denied("deleting outcomes", sql("DELETE FROM outcomes"));
    denied(
        "writing a run's end",
        sql("INSERT INTO run_ends (run, seq, body) VALUES (9, 1, '{}')"),
    );
    denied("deleting run ends", sql("DELETE FROM run_ends"));
    denied(
        "writing the outbox",
        sql(
            "INSERT INTO outbox (task, token, agent, attempt, payload, epoch) VALUES (9, 9, 1, 1, '\"x\"', 1)",
        ),
    );
    denied("closing a row", sql("UPDATE outbox SET state = 'done'"));
    denied("deleting rows", sql("DELETE FROM outbox"));
    for (what, statement) in NODE_ONLY {
        denied(what, sql(statement));
    }
    not_granted_the_commit(sql(NODE_ONLY[4].1));
    denied("writing the status", sql("UPDATE status SET body = '{}'"));
    denied(
        "inserting a status",
        sql("INSERT INTO status VALUES (2, 1, '{}')"),
    );
    denied(
        "taking an incarnation",
        sql("SELECT nextval('incarnations')"),
    );
    denied("reading the logins", sql("SELECT login FROM agent_logins"));
    assert_eq!(
        sql(&format!(
            "INSERT INTO inbox (kind, body) VALUES ('cancel', {HEARTBEAT})"
        ))
        .ok(),
        Some(1)
    );
    assert_eq!(
        sql(&format!(
            "INSERT INTO inbox (kind, body) VALUES ('run', {HEARTBEAT})"
        ))
        .ok(),
        Some(1),
        "a submitter posts run commands"
    );
    assert!(
        sql("SELECT run FROM run_ends").is_ok(),
        "a submitter reads how runs ended"
    );

    // --- a node --------------------------------------------------------------
    let mut node_sql = connect_as(&cluster.conninfo_as("node"));
    let mut sql = |q: &str| node_sql.execute(q, &[]);
    denied(
        "a node reads the logins",
        sql("SELECT login FROM agent_logins"),
    );
    denied(
        "a node maps a login",
        sql("INSERT INTO agent_logins VALUES ('x', 1)"),
    );
    denied("a node becomes an agent", sql("SET ROLE agent_one"));
    let redriven = node.client(
        ClientOp::Post(vec![Message::Redrive(Redrive::Matching(
            DeadLetterFilter::new(),
        ))]),
        now(),
    );
    assert!(
        matches!(&redriven, Ok(ClientReply::Posted(ids)) if ids.len() == 1),
        "an operator redrives with a node login: {redriven:?}"
    );
    let drained = node.client(ClientOp::Post(vec![Message::Drain]), now());
    assert!(
        matches!(&drained, Ok(ClientReply::Posted(ids)) if ids.len() == 1),
        "an operator drains with a node login: {drained:?}"
    );
    let outstanding = node.node(NodeOp::ReadOutstanding, now());
    assert!(
        matches!(&outstanding, Ok(NodeReply::Outstanding(rows)) if rows.len() == 2),
        "{outstanding:?}"
    );
    let journal = node.node(NodeOp::ReadJournal { from: 1, limit: 10 }, now());
    assert!(
        matches!(&journal, Ok(NodeReply::Journal(rows)) if rows.len() == 1),
        "{journal:?}"
    );
    let stats = node.journal_stats().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stats.0, 1);
    assert!(stats.1 > 0);
    let fenced = node.node(
        NodeOp::Renew {
            epoch: 2,
            ttl: Duration::from_secs(1),
        },
        now(),
    );
    assert!(
        matches!(
            fenced,
            Err(StoreFailure::Fenced {
                epoch: 2,
                current: 1
            })
        ),
        "{fenced:?}"
    );

    // The node stops the drained cluster; agents and clients see it.
    assert!(matches!(node.final_state(), Ok(None)));
    let state = Dispatcher::<String>::new(DispatcherConfig::default()).snapshot();
    let stopped = node.node(
        NodeOp::Stop {
            epoch: 1,
            seq: 1,
            snapshot: Box::new(state.into()),
        },
        now(),
    );
    assert!(matches!(stopped, Ok(NodeReply::Done)), "{stopped:?}");
    let final_state = node.final_state().map(|s| s.map(|(seq, _)| seq));
    assert!(matches!(final_state, Ok(Some(1))), "{final_state:?}");
    let claimed = one.agent(claim(1, inc1), now());
    assert!(
        matches!(&claimed, Ok(AgentReply::Claimed { rows, stopped: true }) if rows.len() == 1),
        "{claimed:?}"
    );
    let status = client.client(ClientOp::Status, now());
    assert!(
        matches!(&status, Ok(ClientReply::Status(lease, _)) if lease.stopped),
        "{status:?}"
    );
}

/// No agent or submitter login can take every connection of the server:
/// `create_login` gives each a connection limit (a limit an operator set
/// stays), the server refuses the connection past it, and the error names
/// the limit and the remedy; a node login is not limited.
#[test]
fn no_agent_or_submitter_login_takes_every_connection() {
    let Some(cluster) = start_or_skip("no_agent_or_submitter_login_takes_every_connection") else {
        return;
    };
    let mut admin = connect_as(&cluster.conninfo());
    migrate(&mut admin).unwrap_or_else(|e| panic!("migrate: {e}"));
    admin
        .batch_execute("CREATE ROLE set_by_hand LOGIN CONNECTION LIMIT 3")
        .unwrap_or_else(|e| panic!("{e}"));
    create_agent_login(&mut admin, 1, "agent_one").unwrap_or_else(|e| panic!("{e}"));
    for login in ["submitter", "set_by_hand"] {
        create_login(&mut admin, login, LoginKind::Submitter).unwrap_or_else(|e| panic!("{e}"));
    }
    create_login(&mut admin, "node", LoginKind::Node).unwrap_or_else(|e| panic!("{e}"));
    let limit = |admin: &mut postgres::Client, login: &str| -> i32 {
        admin
            .query_one(
                "SELECT rolconnlimit FROM pg_roles WHERE rolname = $1",
                &[&login],
            )
            .unwrap_or_else(|e| panic!("{e}"))
            .get(0)
    };
    assert_eq!(limit(&mut admin, "agent_one"), LoginKind::AGENT_CONNECTIONS);
    assert_eq!(
        limit(&mut admin, "submitter"),
        LoginKind::SUBMITTER_CONNECTIONS
    );
    assert_eq!(limit(&mut admin, "set_by_hand"), 3);
    assert_eq!(limit(&mut admin, "node"), -1);

    let held: Vec<postgres::Client> = (0..LoginKind::AGENT_CONNECTIONS)
        .map(|_| connect_as(&cluster.conninfo_as("agent_one")))
        .collect();
    let refused = PgStore::<String>::connect(&cluster.conninfo_as("agent_one"))
        .map(|_| ())
        .expect_err("a connection past the limit");
    let said = refused.to_string();
    assert!(
        said.contains("53300") && said.contains("ALTER ROLE … CONNECTION LIMIT"),
        "{said}"
    );
    // The other logins connect as before.
    store(&cluster.conninfo_as("node"));
    store(&cluster.conninfo_as("submitter"));
    drop(held);
}
