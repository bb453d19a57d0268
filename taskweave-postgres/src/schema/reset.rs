//! [`reset`]: a drained cluster's database made ready for a new cluster.

use postgres::Client;

use crate::store::errors::PgError;

/// What [`reset`] cleared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResetReport {
    /// The lease's epoch, kept: the next leader takes a later one, so a
    /// process of the old cluster that is still about is fenced.
    pub epoch: u64,
    /// Journal entries removed.
    pub journal: u64,
    /// Inbox messages removed.
    pub inbox: u64,
    /// Of them, those no leader ever read (posted after the stop): their
    /// senders never got a verdict, and should post them again to the new
    /// cluster.
    pub unread: u64,
    /// Task outcomes removed.
    pub outcomes: u64,
}

/// How a node's sessions are named in `pg_stat_activity` (its
/// `application_name`): this, then the node's name.
pub(crate) const NODE_SESSION: &str = "taskweave node ";

/// How an agent's sessions are named: this, then the agent's id.
pub(crate) const AGENT_SESSION: &str = "taskweave agent ";

/// The sessions of nodes and agents connected to this database, but the
/// caller's: `application_name`, login and process id.
const LIVE_SESSIONS: &str =
    "SELECT application_name || ' (login ' || usename || ', pid ' || pid || ')'
FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
  AND (starts_with(application_name, $1) OR starts_with(application_name, $2))
ORDER BY application_name, pid";

/// The tables a cluster fills, emptied by a reset.
const CLUSTER_TABLES: [&str; 8] = [
    "journal",
    "snapshots",
    "final_state",
    "inbox",
    "outbox",
    "status",
    "outcomes",
    "run_ends",
];

/// Makes the database of a **drained** cluster ready to run a new one, in
/// one transaction: the journal, snapshots, final state, inbox, outbox,
/// status, outcomes and run ends are emptied and the lease is released (no longer
/// stopped). The schema, the logins and the lease's epoch stay: the next
/// leader takes a later epoch, so a process of the old cluster that is
/// still about is fenced. Run it as the database owner, after `drain`
/// (and `audit`, if the old cluster's history matters: it is gone
/// afterwards).
///
/// Every process of the old cluster must be gone: the drain stops them,
/// but one that could not act on it (a frozen node, a partitioned
/// standby) would come back with the old cluster's state. So the reset
/// refuses while a node's or an agent's session is connected (named so by
/// [`PgNode`](crate::PgNode), [`PgAgent`](crate::PgAgent) and
/// [`AsyncPgAgent`](crate::AsyncPgAgent), unless their connection strings
/// set `application_name`); a process that just heard the drain may take
/// a moment to go, and a caller may try again. Task ids start again at
/// 0: a client still waiting for an old task's outcome would read the new
/// task's.
///
/// # Errors
///
/// [`PgError::NotStopped`] if the cluster was not drained,
/// [`PgError::LiveProcesses`] while nodes or agents are connected (nothing
/// is changed either way); [`PgError::Schema`] if the schema is not this
/// build's; [`PgError::Db`] if a statement fails (nothing is changed).
pub fn reset(client: &mut Client) -> Result<ResetReport, PgError> {
    let installed = super::installed_version(client)?;
    if installed != super::SCHEMA_VERSION {
        return Err(PgError::Schema {
            found: installed,
            needed: super::SCHEMA_VERSION,
        });
    }
    let mut tx = client.transaction()?;
    tx.batch_execute("SET LOCAL search_path = taskweave")?;
    let lease = tx.query_one(
        "SELECT epoch, holder, expires_at > now(), stopped FROM lease WHERE id = 1 FOR UPDATE",
        &[],
    )?;
    let (epoch, holder, held, stopped): (i64, String, bool, bool) =
        (lease.get(0), lease.get(1), lease.get(2), lease.get(3));
    let epoch = u64::try_from(epoch).unwrap_or(0);
    if !stopped {
        return Err(PgError::NotStopped {
            epoch,
            holder,
            held,
        });
    }
    let sessions: Vec<String> = tx
        .query(LIVE_SESSIONS, &[&NODE_SESSION, &AGENT_SESSION])?
        .iter()
        .map(|row| row.get(0))
        .collect();
    if !sessions.is_empty() {
        return Err(PgError::LiveProcesses { sessions });
    }
    let count = |tx: &mut postgres::Transaction<'_>, table: &str| -> Result<u64, PgError> {
        let n: i64 = tx
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])?
            .get(0);
        Ok(u64::try_from(n).unwrap_or(0))
    };
    let report = ResetReport {
        epoch,
        journal: count(&mut tx, "journal")?,
        inbox: count(&mut tx, "inbox")?,
        unread: count(&mut tx, "inbox WHERE NOT consumed")?,
        outcomes: count(&mut tx, "outcomes")?,
    };
    for table in CLUSTER_TABLES {
        tx.batch_execute(&format!("DELETE FROM {table}"))?;
    }
    tx.execute(
        "UPDATE lease SET stopped = false, holder = '', expires_at = '-infinity' WHERE id = 1",
        &[],
    )?;
    tx.commit()?;
    Ok(report)
}
