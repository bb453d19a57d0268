//! Errors: [`PgError`] for connecting and administration, and the mapping
//! of database errors onto the contract's [`StoreFailure`].

use std::fmt;

use postgres::error::SqlState;
use taskweave::cluster::StoreFailure;

/// An error connecting to PostgreSQL or administering the schema.
#[derive(Debug)]
pub enum PgError {
    /// The connection string does not parse.
    Conninfo(postgres::Error),
    /// The server could not be reached or refused the connection.
    Connect {
        /// Where (`host=… port=…`).
        target: String,
        /// What happened.
        source: postgres::Error,
    },
    /// A statement failed, or the connection broke.
    Db(postgres::Error),
    /// The `taskweave` schema is missing or at another version than this
    /// build's.
    Schema {
        /// The version installed (0: none).
        found: i32,
        /// The version this build needs.
        needed: i32,
    },
    /// A login name that cannot be a role of the cluster.
    InvalidLogin {
        /// The name.
        login: String,
        /// Why.
        reason: &'static str,
    },
    /// The login already acts for another agent.
    LoginTaken {
        /// The login.
        login: String,
        /// The agent it acts for.
        agent: u64,
    },
    /// [`grant_agent`](crate::grant_agent): the login is not an agent's.
    NotAnAgentLogin {
        /// The login.
        login: String,
    },
    /// [`map_tenant`](crate::map_tenant): the login is not a submitter's.
    NotASubmitterLogin {
        /// The login.
        login: String,
    },
    /// [`reset`](crate::reset) refused: the cluster was not drained.
    NotStopped {
        /// The lease's epoch.
        epoch: u64,
        /// Who holds (or last held) it.
        holder: String,
        /// Whether it is held now.
        held: bool,
    },
    /// [`reset`](crate::reset) refused: nodes or agents are still
    /// connected, and one of the old cluster would come back with its
    /// state into the new one.
    LiveProcesses {
        /// Each session: its name (`taskweave node NAME`, `taskweave agent
        /// N`), login and server process id.
        sessions: Vec<String>,
    },
    /// An environment variable that libpq reads holds what it cannot be.
    Environment {
        /// The variable (`PGPORT`).
        variable: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The cluster's stored configuration is not the one this node (or
    /// audit) was built with.
    ConfigDisagrees {
        /// The first setting that differs (a path, `settings.seed`).
        setting: String,
        /// Its stored value, as JSON.
        stored: String,
        /// This node's value, as JSON.
        given: String,
    },
    /// A dispatcher configuration that is not data (a host retry policy)
    /// cannot be stored as the cluster's.
    ConfigNotData {
        /// Why it does not serialize.
        problem: String,
    },
    /// [`set_cluster_config`](crate::set_cluster_config) refused: the
    /// cluster has a journal, whose snapshots carry the configuration they
    /// were taken under.
    JournalNotEmpty {
        /// Its entries.
        entries: u64,
    },
    /// [`AsyncPgClient`](crate::AsyncPgClient) or
    /// [`AsyncPgAgent`](crate::AsyncPgAgent) was asked to connect outside
    /// a tokio runtime: its connection is a tokio task.
    NoRuntime,
    /// A stored row does not decode.
    Corrupt {
        /// Its table.
        table: &'static str,
        /// Its key.
        key: String,
        /// What is wrong with it.
        problem: String,
    },
}

impl fmt::Display for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PgError::Conninfo(e) => {
                // The error says only "invalid connection string"; the
                // cause is in its sources.
                let mut causes = Vec::new();
                let mut source = std::error::Error::source(e);
                while let Some(cause) = source {
                    causes.push(cause.to_string());
                    source = cause.source();
                }
                let why = if causes.is_empty() {
                    e.to_string()
                } else {
                    causes.join(": ")
                };
                write!(
                    f,
                    "invalid connection string: {why}; write it as libpq's key=value pairs \
                     (host=… port=… dbname=… user=…) or a postgresql:// URL"
                )
            }
            PgError::Connect { target, source } => {
                write!(
                    f,
                    "cannot connect to PostgreSQL at {target}: {}",
                    describe(source)
                )?;
                if describe(source).contains("password missing") {
                    write!(
                        f,
                        "; the server asks for a password: set PGPASSWORD, or add a line to \
                         ~/.pgpass (or the file PGPASSFILE names, readable by its owner \
                         only), rather than password=… in a string that `ps` shows"
                    )?;
                } else if source.as_db_error().is_none() {
                    write!(f, "; is PostgreSQL running at {target}?")?;
                }
                Ok(())
            }
            PgError::Db(e) => f.write_str(&describe(e)),
            PgError::Schema { found, needed } if found > needed => write!(
                f,
                "the taskweave schema is at version {found}, newer than this build's \
                 version {needed}: upgrade taskweave-pg"
            ),
            PgError::Schema { found, needed } => write!(
                f,
                "the taskweave schema is missing or at version {found}, this build needs \
                 version {needed}: run `taskweave-pg init`"
            ),
            PgError::InvalidLogin { login, reason } => {
                write!(f, "invalid login {login:?}: {reason}")
            }
            PgError::LoginTaken { login, agent } => {
                write!(f, "login {login:?} already acts for agent {agent}")
            }
            PgError::NotAnAgentLogin { login } => write!(
                f,
                "login {login:?} is not an agent login: create it first \
                 (taskweave-pg init --agent ID:{login})"
            ),
            PgError::NotASubmitterLogin { login } => write!(
                f,
                "login {login:?} is not a submitter login: create it first \
                 (taskweave-pg init --submitter {login})"
            ),
            PgError::NotStopped {
                epoch,
                holder,
                held,
            } => write!(
                f,
                "the cluster was not drained (epoch {epoch}, {} {holder:?}): a reset would \
                 lose its tasks; drain it first (taskweave-pg drain), then reset",
                if *held { "led by" } else { "last led by" }
            ),
            PgError::LiveProcesses { sessions } => write!(
                f,
                "{} node or agent session(s) are still connected ({}): a process of the old \
                 cluster would bring its state into the new one; stop them first (kill a frozen \
                 one too), or end their sessions (SELECT pg_terminate_backend(PID)), then reset",
                sessions.len(),
                sessions.join("; ")
            ),
            PgError::ConfigDisagrees {
                setting,
                stored,
                given,
            } => write!(
                f,
                "this node's dispatcher configuration disagrees with the cluster's: {setting} is \
                 {stored} in the database but {given} here; build every node with the stored \
                 configuration (taskweave-pg config show), or change it with taskweave-pg \
                 config set after a drain and a reset"
            ),
            PgError::NoRuntime => f.write_str(
                "AsyncPgClient and AsyncPgAgent need a tokio runtime (their connection is a \
                 tokio task) and were polled outside one: await them inside a runtime \
                 (#[tokio::main], Runtime::block_on), or use the blocking PgClient and PgAgent",
            ),
            PgError::ConfigNotData { problem } => write!(
                f,
                "this dispatcher configuration cannot be stored as the cluster's: {problem}"
            ),
            PgError::JournalNotEmpty { entries } => write!(
                f,
                "the cluster has a journal ({entries} entries) whose snapshots carry the \
                 configuration they ran under: drain the cluster (taskweave-pg drain) and reset \
                 it (taskweave-pg reset), then set the configuration"
            ),
            PgError::Environment {
                variable,
                value,
                problem,
            } => write!(f, "${variable} {value:?} {problem}: fix or unset it"),
            PgError::Corrupt {
                table,
                key,
                problem,
            } if *table == "cluster_config" => write!(
                f,
                "the cluster's stored configuration does not read: {problem}; store one with \
                 taskweave-pg config set (after a drain and a reset), or, with a cluster that \
                 must keep running, UPDATE taskweave.cluster_config as the owner with the \
                 configuration its nodes run with"
            ),
            PgError::Corrupt {
                table,
                key,
                problem,
            } => write!(f, "corrupt row {key} in table {table}: {problem}"),
        }
    }
}

impl std::error::Error for PgError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PgError::Conninfo(e) | PgError::Db(e) | PgError::Connect { source: e, .. } => Some(e),
            _ => None,
        }
    }
}

impl From<postgres::Error> for PgError {
    fn from(e: postgres::Error) -> Self {
        PgError::Db(e)
    }
}

impl PgError {
    /// The SQLSTATE code of a server error, if this is one.
    pub fn code(&self) -> Option<&SqlState> {
        match self {
            PgError::Db(e) | PgError::Connect { source: e, .. } => e.code(),
            _ => None,
        }
    }
}

/// A database error in words: `SQLSTATE message` (with the detail and a
/// remedy where there is one) for a server error, the client's words
/// otherwise.
pub(crate) fn describe(e: &postgres::Error) -> String {
    let Some(db) = e.as_db_error() else {
        // "error connecting to server" alone hides the cause: add the
        // chain (connection refused, timed out, …).
        let mut out = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(cause) = source {
            out.push_str(": ");
            out.push_str(&cause.to_string());
            source = cause.source();
        }
        return out;
    };
    let mut out = format!("{} {}", db.code().code(), db.message());
    if let Some(detail) = db.detail() {
        out.push_str(": ");
        out.push_str(detail);
    }
    if is_undefined_object(e) {
        out.push_str(" (is the taskweave schema installed? run `taskweave-pg init`)");
    }
    if *db.code() == SqlState::TOO_MANY_CONNECTIONS {
        out.push_str(
            " (this login holds as many connections as its CONNECTION LIMIT allows: stop its \
             other processes, or raise it with ALTER ROLE … CONNECTION LIMIT)",
        );
    }
    out
}

/// The schema, a table or a function is missing.
pub(crate) fn is_undefined_object(e: &postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::UNDEFINED_TABLE
            || *c == SqlState::INVALID_SCHEMA_NAME
            || *c == SqlState::UNDEFINED_FUNCTION
            || *c == SqlState::UNDEFINED_COLUMN
    )
}

/// The connection is gone or unusable: it must be replaced before the next
/// operation. Server errors other than class 08 (connection exception)
/// and 57P0x (shutdown) leave it usable.
pub(crate) fn breaks_connection(e: &postgres::Error) -> bool {
    match e.as_db_error() {
        None => true,
        Some(db) => {
            let code = db.code().code();
            code.starts_with("08") || code.starts_with("57P")
        }
    }
}

/// How a failed operation answers, by where it failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Before the request left, or inside a transaction that did not
    /// commit: nothing took effect.
    BeforeCommit,
    /// At `COMMIT`: a server error means it rolled back; a broken
    /// connection means nobody knows.
    Commit,
}

/// The contract's failure for a database error at `stage`.
pub(crate) fn failure(e: &postgres::Error, stage: Stage) -> StoreFailure {
    let cause = describe(e);
    if stage == Stage::Commit && breaks_connection(e) {
        StoreFailure::Unknown { cause }
    } else {
        StoreFailure::Failed { cause }
    }
}

/// A failure naming a stored row that does not decode.
pub(crate) fn corrupt(
    table: &str,
    key: impl fmt::Display,
    problem: impl fmt::Display,
) -> StoreFailure {
    StoreFailure::Failed {
        cause: format!("corrupt row {key} in table {table}: {problem}"),
    }
}

/// Whether `error` (the text of a [`PgError`] or of a store's failure)
/// is the server's refusal for want of a privilege: SQLSTATE 42501 as the
/// store words it, a code of its own before a space or a colon
/// (`42501 permission denied for table journal`). Text that merely holds
/// the digits (`task-42501`, a port) is not.
pub fn refused_for_want_of_privilege(error: &str) -> bool {
    const CODE: &str = "42501";
    error.match_indices(CODE).any(|(at, _)| {
        let before = error[..at].chars().next_back();
        let after = error[at + CODE.len()..].chars().next();
        before.is_none_or(|c| c.is_whitespace() || c == ':') && matches!(after, Some(' ' | ':'))
    })
}

#[cfg(test)]
mod tests {
    use super::refused_for_want_of_privilege as refused;

    #[test]
    fn a_privilege_refusal_is_its_code_and_not_its_digits() {
        assert!(refused("42501 permission denied for table journal"));
        assert!(refused(
            "the store refused the operation: 42501 permission denied"
        ));
        assert!(refused("failed:42501: permission denied"));
        assert!(!refused("task-42501 is not a live task"));
        assert!(!refused("connection to port 425013 refused"));
        assert!(!refused("42501"));
        assert!(!refused("connection refused"));
    }
}
