//! Helpers shared by the integration tests.

#![allow(dead_code, unreachable_pub, unused_macros, unused_imports)]

use postgres::error::SqlState;
use postgres::{Client, NoTls};
use taskweave::Instant;
use taskweave::cluster::{Store, StoreFailure};

pub mod async_host;
pub mod browser;
pub mod cli;
pub mod hosted;

/// A raw connection as `login`, in the `taskweave` schema.
pub fn connect_as(conninfo: &str) -> Client {
    Client::connect(
        &format!("{conninfo} options='-c search_path=taskweave'"),
        NoTls,
    )
    .unwrap_or_else(|e| panic!("connect {conninfo}: {e}"))
}

/// Any instant: the PostgreSQL store judges leases by its own clock.
pub fn now() -> Instant {
    Instant::from_nanos(0)
}

fn code_and_message(what: &str, result: Result<u64, postgres::Error>) -> (SqlState, String) {
    match result {
        Ok(n) => panic!("{what}: the database allowed it ({n} rows)"),
        Err(e) => match e.as_db_error() {
            Some(db) => (db.code().clone(), db.message().to_string()),
            None => panic!("{what}: not a server error: {e}"),
        },
    }
}

/// A new incarnation of `agent`, asked of `store` as the agent's host
/// asks it.
pub fn incarnate(store: &mut taskweave_postgres::PgStore<String>, agent: u64) -> u64 {
    match store.agent(
        taskweave::cluster::AgentOp::Incarnate {
            agent: taskweave::AgentId::new(agent),
        },
        now(),
    ) {
        Ok(taskweave::cluster::AgentReply::Incarnation(n)) => n,
        other => panic!("incarnate {agent}: {other:?}"),
    }
}

/// The statement was refused for lack of a privilege on a table, a column,
/// a sequence or a function (SQLSTATE 42501, "permission denied").
pub fn denied(what: &str, result: Result<u64, postgres::Error>) {
    let (code, message) = code_and_message(what, result);
    assert_eq!(code, SqlState::INSUFFICIENT_PRIVILEGE, "{what}: {message}");
    assert!(
        message.starts_with("permission denied"),
        "{what}: expected a privilege refusal, got {message}"
    );
}

/// The statement was refused by a row-level security check on the rows it
/// writes (SQLSTATE 42501, "new row violates row-level security policy").
pub fn rls_refused(what: &str, result: Result<u64, postgres::Error>) {
    let (code, message) = code_and_message(what, result);
    assert_eq!(code, SqlState::INSUFFICIENT_PRIVILEGE, "{what}: {message}");
    assert!(
        message.contains("row-level security"),
        "{what}: expected a row-level security refusal, got {message}"
    );
}

/// Row-level security hid every row from the statement: it ran and
/// touched nothing.
pub fn filtered(what: &str, result: Result<u64, postgres::Error>) {
    match result {
        Ok(0) => {}
        Ok(n) => panic!("{what}: {n} rows were visible"),
        Err(e) => panic!("{what}: expected no rows, got {e}"),
    }
}

/// A store operation the database refused: `Failed` with SQLSTATE 42501.
pub fn store_denied<T: std::fmt::Debug>(what: &str, result: Result<T, StoreFailure>) {
    match result {
        Err(StoreFailure::Failed { cause }) if cause.starts_with("42501 ") => {}
        other => panic!("{what}: expected Failed with 42501, got {other:?}"),
    }
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
pub(crate) use drive;

/// A private PostgreSQL server with the schema in place, and the owner's
/// connection to it; `None` (with a loud message) where the server cannot
/// start and the test may skip.
pub fn migrated_or_skip(test: &str) -> Option<(taskweave_postgres::testkit::PgCluster, Client)> {
    let cluster = taskweave_postgres::testkit::start_or_skip(test)?;
    let mut admin =
        Client::connect(&cluster.conninfo(), NoTls).unwrap_or_else(|e| panic!("connect: {e}"));
    taskweave_postgres::migrate(&mut admin).unwrap_or_else(|e| panic!("migrate: {e}"));
    Some((cluster, admin))
}

/// Runs the node through `node_store` until the messages `ids` have
/// verdicts, read through `reader`; the node's clock counts from `epoch`.
pub fn verdicts(
    node: &mut taskweave::cluster::Node<serde_json::Value>,
    node_store: &mut taskweave_postgres::PgStore<serde_json::Value>,
    reader: &mut taskweave_postgres::PgStore<serde_json::Value>,
    ids: &[u64],
    epoch: std::time::Instant,
) -> Vec<taskweave::cluster::Verdict> {
    let started = std::time::Instant::now();
    loop {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "no verdicts"
        );
        let now = Instant::from_nanos(epoch.elapsed().as_nanos() as u64);
        for _ in 0..20 {
            let Some(op) = node.poll_op(now) else { break };
            let reply = node_store.node(op, now);
            node.handle_reply(reply, now);
        }
        if let Ok(taskweave::cluster::ClientReply::Verdicts(verdicts)) =
            reader.client(taskweave::cluster::ClientOp::Verdicts(ids.to_vec()), now)
        {
            if verdicts.iter().all(Option::is_some) {
                return verdicts.into_iter().flatten().collect();
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}
