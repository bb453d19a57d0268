//! The database schema: versioned, idempotent migrations and the logins
//! of nodes, agents and submitters.
//!
//! Everything lives in the PostgreSQL schema `taskweave`, so it never
//! collides with an application's tables; [`PgStore`](crate::PgStore) sets
//! `search_path` to it. `taskweave.schema_version` records the versions
//! applied; [`migrate`] applies the missing ones, each in its own
//! transaction, under an advisory lock so two concurrent runs do not race.
//! Running it again changes nothing.
//!
//! # Least privilege
//!
//! Version 1 creates three group roles (`NOLOGIN`), and PostgreSQL itself
//! enforces what each may do:
//!
//! * `taskweave_node`: the lease, journal, snapshots, inbox, outbox and
//!   status, read and write — everything a leader or a follower needs.
//! * `taskweave_agent`: insert inbox rows in its own name (kinds
//!   `register`, `heartbeat`, `report`), read and update only the `state`
//!   and `incarnation` of its own outbox rows, read its own verdicts and
//!   mark them seen, take incarnation numbers, read the lease. Its agent
//!   id comes from `taskweave.agent_logins`, keyed by the login, never
//!   from what it sends. Since version 5 a login may hold a grant
//!   ([`grant_agent`]): a registration with more slots or other
//!   capabilities is refused by a trigger on the inbox.
//! * `taskweave_submitter`: insert client inbox rows of kind `submit` or
//!   `cancel`, read the verdicts of its own messages (since version 7;
//!   every client's before), the lease and the status. Draining is an
//!   operator's act: it takes a node login. Since version 7 a login may
//!   act for a tenant ([`map_tenant`]): its messages reach the leader as
//!   [`Sender::Tenant`](taskweave::cluster::Sender::Tenant), so its tasks
//!   are the tenant's and it cancels only those. Since version 8 it
//!   reads the outcomes of its tenant's tasks alone (a login acting for
//!   no tenant: those of tasks without one); every task's before.
//!
//! Row-level security narrows agents and submitters to their rows. It is
//! enabled, not forced: the tables' owner (whoever ran [`migrate`],
//! normally an administrator) is not a role of the cluster.

use postgres::Client;
use taskweave::TenantId;

mod reset;
pub(crate) use reset::{AGENT_SESSION, NODE_SESSION};
pub use reset::{ResetReport, reset};

use crate::store::errors::{PgError, is_undefined_object};

/// The schema version this build reads and writes.
pub const SCHEMA_VERSION: i32 = 15;

/// The migrations, in order: version `i + 1` is `MIGRATIONS[i]`. Version
/// 2 adds the task outcomes clients read; version 3 a task's output beside
/// its outcome; version 4 the hosted workflow runs' commands and ends;
/// version 5 the agent logins' grants; version 6 the limit on each
/// agent's unread inbox messages; version 7 the submitter logins' tenants
/// and each client message's poster; version 8 each outcome's tenant and
/// each submitter login's share of the inbox; version 9 each run end's
/// tenant; version 10 the cluster's stored dispatcher configuration;
/// version 11 the operator's redrive of dead letters; version 12 the
/// notifications of inbox posts and journal appends that wake the nodes;
/// version 13 drops an index a claim no longer needs; version 14 the
/// leader's commit in one statement (`commit_batch`); version 15 a
/// redriven dead letter's outcome naming its new task.
const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [
    include_str!("schema/v1.sql"),
    include_str!("schema/v2.sql"),
    include_str!("schema/v3.sql"),
    include_str!("schema/v4.sql"),
    include_str!("schema/v5.sql"),
    include_str!("schema/v6.sql"),
    include_str!("schema/v7.sql"),
    include_str!("schema/v8.sql"),
    include_str!("schema/v9.sql"),
    include_str!("schema/v10.sql"),
    include_str!("schema/v11.sql"),
    include_str!("schema/v12.sql"),
    include_str!("schema/v13.sql"),
    include_str!("schema/v14.sql"),
    include_str!("schema/v15.sql"),
];

/// The advisory lock migrations hold (`"twv1"` in ASCII).
const MIGRATION_LOCK: i64 = 0x7477_7631;

/// What [`migrate`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MigrateReport {
    /// The version found (0 for an empty database).
    pub from: i32,
    /// The version now.
    pub to: i32,
    /// The versions applied, in order (empty when it was up to date).
    pub applied: Vec<i32>,
}

/// Brings the `taskweave` schema to [`SCHEMA_VERSION`]: applies every
/// missing version in its own transaction. Run it as the database owner or
/// a superuser; running it again changes nothing.
///
/// # Errors
///
/// [`PgError::Schema`] when the database holds a newer version than this
/// build knows; [`PgError::Db`] when a statement fails (that version is
/// rolled back, earlier ones stay).
pub fn migrate(client: &mut Client) -> Result<MigrateReport, PgError> {
    let mut report = MigrateReport {
        from: 0,
        to: 0,
        applied: Vec::new(),
    };
    for (index, sql) in MIGRATIONS.iter().enumerate() {
        let version = index as i32 + 1;
        let mut tx = client.transaction()?;
        tx.batch_execute(&format!(
            "SELECT pg_advisory_xact_lock({MIGRATION_LOCK});
             CREATE SCHEMA IF NOT EXISTS taskweave;
             CREATE TABLE IF NOT EXISTS taskweave.schema_version (
                 version INT PRIMARY KEY,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now());
             SET LOCAL search_path = taskweave;"
        ))?;
        let found: i32 = tx
            .query_one(
                "SELECT COALESCE(max(version), 0) FROM taskweave.schema_version",
                &[],
            )?
            .get(0);
        if index == 0 {
            report.from = found;
        }
        if found > SCHEMA_VERSION {
            return Err(PgError::Schema {
                found,
                needed: SCHEMA_VERSION,
            });
        }
        if found < version {
            tx.batch_execute(sql)?;
            tx.execute(
                "INSERT INTO taskweave.schema_version (version) VALUES ($1)",
                &[&version],
            )?;
            report.applied.push(version);
        }
        tx.commit()?;
        report.to = found.max(version);
    }
    Ok(report)
}

/// The schema version installed: 0 when there is none.
///
/// # Errors
///
/// [`PgError::Db`] when the version cannot be read (other than because the
/// schema is missing), for example for lack of privileges.
pub fn installed_version(client: &mut Client) -> Result<i32, PgError> {
    version_of(client.query_one(INSTALLED_VERSION, &[]))
}

/// The query of [`installed_version`].
pub(crate) const INSTALLED_VERSION: &str =
    "SELECT COALESCE(max(version), 0) FROM taskweave.schema_version";

/// Refuses a schema at another version than this build's, naming both.
pub(crate) fn require_current(found: i32) -> Result<(), PgError> {
    if found == SCHEMA_VERSION {
        Ok(())
    } else {
        Err(PgError::Schema {
            found,
            needed: SCHEMA_VERSION,
        })
    }
}

/// The version [`INSTALLED_VERSION`] answered: 0 without the schema.
pub(crate) fn version_of(answer: Result<postgres::Row, postgres::Error>) -> Result<i32, PgError> {
    match answer {
        Ok(row) => Ok(row.get(0)),
        Err(e) if is_undefined_object(&e) => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// What a login may do: which group role it joins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginKind {
    /// A node (leader or follower), also the operator's drain.
    Node,
    /// The agent with this id.
    Agent(u64),
    /// A client that submits and cancels tasks.
    Submitter,
}

impl LoginKind {
    /// The most connections an agent login may hold at once: its process
    /// holds one, and the rest leave room for a restart while the old
    /// connections of a killed process are still being closed.
    pub const AGENT_CONNECTIONS: i32 = 8;
    /// The most connections a submitter login may hold at once (each
    /// command holds one while it runs).
    pub const SUBMITTER_CONNECTIONS: i32 = 32;

    fn group(self) -> &'static str {
        match self {
            LoginKind::Node => "taskweave_node",
            LoginKind::Agent(_) => "taskweave_agent",
            LoginKind::Submitter => "taskweave_submitter",
        }
    }

    /// The connection limit a login of this kind gets: none for a node
    /// (the cluster's own), a bound for the others, so that no agent or
    /// submitter login can take every connection the server has.
    fn connection_limit(self) -> Option<i32> {
        match self {
            LoginKind::Node => None,
            LoginKind::Agent(_) => Some(Self::AGENT_CONNECTIONS),
            LoginKind::Submitter => Some(Self::SUBMITTER_CONNECTIONS),
        }
    }
}

/// Creates the login role `login` (if missing) in the group of `kind`;
/// for an agent, also maps the login to its agent id. An agent or a
/// submitter login without a connection limit gets one
/// ([`AGENT_CONNECTIONS`](LoginKind::AGENT_CONNECTIONS),
/// [`SUBMITTER_CONNECTIONS`](LoginKind::SUBMITTER_CONNECTIONS)): no such
/// login can take every connection of the server (`ALTER ROLE …
/// CONNECTION LIMIT` changes it, and `init` keeps a limit set). Authentication is
/// the server's (`pg_hba.conf`): set a password with `ALTER ROLE … PASSWORD`
/// or use certificates. Run it as a role that may create roles, after
/// [`migrate`]. Running it again with the same arguments changes nothing.
///
/// # Errors
///
/// [`PgError::InvalidLogin`] when `login` is not 1 to 63 characters of
/// `[a-z0-9_]` starting with a letter or `_` (or starts with `pg_`),
/// [`PgError::LoginTaken`] when the login already acts for another agent,
/// [`PgError::Db`] when a statement fails.
pub fn create_login(client: &mut Client, login: &str, kind: LoginKind) -> Result<(), PgError> {
    validate_login(login)?;
    let mut tx = client.transaction()?;
    let exists = tx
        .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&login])?
        .is_some();
    // The name is validated above, so quoting it is enough.
    let group = kind.group();
    if exists {
        tx.batch_execute(&format!("GRANT {group} TO \"{login}\""))?;
    } else {
        tx.batch_execute(&format!("CREATE ROLE \"{login}\" LOGIN IN ROLE {group}"))?;
    }
    // A login without a limit gets its kind's; one an operator set stays.
    if let Some(limit) = kind.connection_limit() {
        let unlimited = tx
            .query_opt(
                "SELECT 1 FROM pg_roles WHERE rolname = $1 AND rolconnlimit = -1",
                &[&login],
            )?
            .is_some();
        if unlimited {
            tx.batch_execute(&format!("ALTER ROLE \"{login}\" CONNECTION LIMIT {limit}"))?;
        }
    }
    if let LoginKind::Agent(agent) = kind {
        let agent = i64::try_from(agent).map_err(|_| PgError::InvalidLogin {
            login: login.to_string(),
            reason: "the agent id does not fit a BIGINT",
        })?;
        let mapped: i64 = tx
            .query_one(
                "INSERT INTO taskweave.agent_logins (login, agent) VALUES ($1, $2)
                 ON CONFLICT (login) DO UPDATE SET login = EXCLUDED.login
                 RETURNING agent",
                &[&login, &agent],
            )?
            .get(0);
        if mapped != agent {
            return Err(PgError::LoginTaken {
                login: login.to_string(),
                agent: mapped as u64,
            });
        }
    }
    tx.commit()?;
    Ok(())
}

/// Creates the login role `login` for agent `agent`: shorthand for
/// [`create_login`] with [`LoginKind::Agent`].
///
/// # Errors
///
/// As [`create_login`].
pub fn create_agent_login(client: &mut Client, agent: u64, login: &str) -> Result<(), PgError> {
    create_login(client, login, LoginKind::Agent(agent))
}

/// Grants agent login `login` at most `max_capacity` slots and the
/// `capabilities` listed (none but those): from now on the database
/// refuses the login's registration beyond them, whatever the agent's
/// code, with SQLSTATE 42501 and a message that names the grant. An agent
/// registered before keeps its registration until it registers again.
/// Running it again replaces the grant. Run it as the database owner,
/// after [`create_login`].
///
/// # Errors
///
/// [`PgError::NotAnAgentLogin`] when no agent acts as `login`,
/// [`PgError::InvalidLogin`] when `max_capacity` is 0, [`PgError::Db`]
/// when the statement fails.
pub fn grant_agent(
    client: &mut Client,
    login: &str,
    max_capacity: u32,
    capabilities: &[String],
) -> Result<(), PgError> {
    if max_capacity == 0 {
        return Err(PgError::InvalidLogin {
            login: login.to_string(),
            reason: "a grant allows at least 1 slot",
        });
    }
    let granted = client.execute(
        "UPDATE taskweave.agent_logins SET max_capacity = $2, capabilities = $3 WHERE login = $1",
        &[&login, &i64::from(max_capacity), &capabilities],
    )?;
    if granted == 0 {
        return Err(PgError::NotAnAgentLogin {
            login: login.to_string(),
        });
    }
    Ok(())
}

/// Maps submitter login `login` to `tenant`: from now on the database
/// marks each message the login posts with the tenant, and the leader
/// takes them as [`Sender::Tenant`](taskweave::cluster::Sender::Tenant)
/// (the login's tasks are the tenant's, its idempotency keys the tenant's,
/// and it cancels only the tenant's tasks). Running it again moves the
/// login to another tenant; messages posted before keep theirs. Run it
/// as the database owner, after [`create_login`].
///
/// # Errors
///
/// [`PgError::NotASubmitterLogin`] when `login` is not a submitter's
/// login, [`PgError::InvalidLogin`] when the tenant is above
/// `i64::MAX`, [`PgError::Db`] when the statement fails.
pub fn map_tenant(client: &mut Client, login: &str, tenant: TenantId) -> Result<(), PgError> {
    let stored = i64::try_from(tenant.get()).map_err(|_| PgError::InvalidLogin {
        login: login.to_string(),
        reason: "a tenant id is at most 9223372036854775807",
    })?;
    let mapped = client.execute(
        "INSERT INTO taskweave.submitter_tenants (login, tenant)
         SELECT rolname, $2 FROM pg_roles
         WHERE rolname = $1::text AND pg_has_role(oid, 'taskweave_submitter', 'MEMBER')
         ON CONFLICT (login) DO UPDATE SET tenant = EXCLUDED.tenant",
        &[&login, &stored],
    )?;
    if mapped == 0 {
        return Err(PgError::NotASubmitterLogin {
            login: login.to_string(),
        });
    }
    Ok(())
}

fn validate_login(login: &str) -> Result<(), PgError> {
    let reason = if login.is_empty() || login.len() > 63 {
        Some("a login is 1 to 63 characters")
    } else if !login
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        Some("a login is made of a-z, 0-9 and _")
    } else if login.as_bytes()[0].is_ascii_digit() {
        Some("a login starts with a letter or _")
    } else if login.starts_with("pg_") || login.starts_with("taskweave_") {
        Some("pg_ and taskweave_ are reserved prefixes")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(PgError::InvalidLogin {
            login: login.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_are_validated() {
        for good in ["agent_1", "a", "_x", "submitter"] {
            assert!(validate_login(good).is_ok(), "{good}");
        }
        let long = "a".repeat(64);
        for bad in [
            "",
            long.as_str(),
            "Agent",
            "a-b",
            "a\"b",
            "1a",
            "pg_x",
            "taskweave_node",
            "a b",
        ] {
            let err = validate_login(bad).map(|()| bad).unwrap_err();
            assert!(matches!(err, PgError::InvalidLogin { .. }), "{bad}: {err}");
        }
    }
}
