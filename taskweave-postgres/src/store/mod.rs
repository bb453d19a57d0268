//! [`PgStore`]: the store contract ([`taskweave::cluster::Store`]) on
//! PostgreSQL.
//!
//! Each operation is one transaction (rule 1); every fenced one starts
//! with the fence statement, which renews the lease only if the epoch is
//! current and unexpired by the server's clock and locks the lease row, so
//! a takeover and a deposed leader's write are serialized. Statements are
//! prepared once per connection; batches travel as arrays (`unnest`). A
//! leader's commit is one call of the schema's `commit_batch` (the fence,
//! the append, the consumption and every output in one statement, atomic
//! by itself): one round trip, whatever it carries.
//!
//! # Failures
//!
//! * A server error (a SQLSTATE) inside a transaction rolls it back:
//!   [`StoreFailure::Failed`], whose `cause` starts with the SQLSTATE.
//! * A broken connection before `COMMIT` was sent: `Failed` too (the server
//!   rolls back a transaction whose connection is gone); while `COMMIT` was
//!   in flight, or under a write that is one statement by itself (a
//!   commit, a renewal, an agent's post, claim or report):
//!   [`StoreFailure::Unknown`].
//! * After a broken connection the next operation reconnects once, without
//!   sleeping (backoff is the caller's); if that fails it answers `Failed`
//!   and sends nothing.
//!
//! Rows read back are untrusted: a journal row, snapshot, status or
//! verdict, task outcome or run end that does not decode (or a run end
//! stored under another run) is `Failed` naming its table and row, and
//! an inbox body that does not decode is handed to the leader as
//! [`InboxMessage::body`](taskweave::cluster::InboxMessage)`: Err(why)`.

pub(crate) mod agent_ops;
#[cfg(test)]
mod claim_tests;
pub(crate) mod client_ops;
mod cluster_config;
mod codec;
mod environment;
pub(crate) mod errors;
mod node_ops;
mod password;
#[cfg(test)]
mod read_back_tests;
#[cfg(test)]
mod server_properties;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use postgres::types::ToSql;
use postgres::{Client, Config, GenericClient, NoTls, Row, Statement, Transaction};
use serde::Serialize;
use serde::de::DeserializeOwned;
use taskweave::Instant;
use taskweave::cluster::{
    AgentOp, AgentReply, ClientOp, ClientReply, NodeOp, NodeReply, NodeState, Store, StoreFailure,
};

pub use cluster_config::{cluster_config, set_cluster_config};
pub use errors::{PgError, refused_for_want_of_privilege};
use errors::{Stage, breaks_connection, corrupt, failure};

use crate::schema::{installed_version, require_current};

/// The longest any statement may run before the server cancels it.
const STATEMENT_TIMEOUT_MS: u32 = 30_000;

/// How long the server lets a session sit in an open transaction without a
/// statement before it ends the session: a safety net. A leader frozen
/// mid-transaction (SIGSTOP, a paused VM) holds the lease row's lock; the
/// standby that takes over ends that session itself once the lease has
/// lapsed (`END_STALLED_LEADER` in `node_ops`), so a takeover stays under
/// the 1 s lease. This timeout only bounds what a stalled session holds
/// when nobody can end it (a standby of another login without the
/// privileges to see or signal it). It was 300 ms, which under CPU
/// contention ended working nodes' sessions between two statements of a
/// commit and caused leader changes no fault had caused.
const IDLE_IN_TRANSACTION_MS: u32 = 10_000;
/// How long connecting may take, unless the connection string says.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A store on PostgreSQL for payloads of type `P` (stored as JSON).
///
/// It connects as whatever login the connection string names; what that
/// login may do is PostgreSQL's to enforce (see [`crate::schema`]). It
/// survives the server going away: see the [module docs](self). The
/// hosts ([`PgNode`](crate::PgNode), [`PgAgent`](crate::PgAgent),
/// [`PgClient`](crate::PgClient)) drive it through the cluster's
/// [`Store`] contract; a host reads the
/// cluster's own tables through it too.
///
/// ```no_run
/// use taskweave_postgres::PgStore;
///
/// let db = "host=127.0.0.1 port=5432 user=node_login dbname=postgres";
/// let mut store = PgStore::<serde_json::Value>::connect(db)?;
/// // The configuration every node of the cluster runs with, if stored.
/// if let Some(config) = store.stored_config()? {
///     println!("{config:?}");
/// }
/// // The logins with the most inbox messages the leader has not read.
/// for (login, unread) in store.unread_by_login(3)? {
///     println!("{login}: {unread} unread");
/// }
/// # Ok::<(), taskweave_postgres::PgError>(())
/// ```
pub struct PgStore<P> {
    config: Config,
    target: String,
    conn: Option<Conn>,
    /// Channels this store listens on, on every connection it opens.
    listening: Vec<String>,
    /// Bytes of journal entries its commits appended.
    journal_bytes: u64,
    /// Statements sent to the server ([`PgStore::statements`]).
    statements: u64,
    /// Connections opened after the first
    /// ([`PgStore::reconnections`]).
    connections: u64,
    payload: PhantomData<fn() -> P>,
}

impl<P> fmt::Debug for PgStore<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("target", &self.target)
            .field("connected", &self.conn.is_some())
            .finish_non_exhaustive()
    }
}

/// One connection and its prepared statements.
struct Conn {
    client: Client,
    cache: HashMap<&'static str, Statement>,
}

/// Why an operation stopped: a database error (mapped by where it
/// happened) or a contract answer decided on the way (fenced, conflict,
/// a corrupt row).
enum Fail {
    Db(postgres::Error),
    Store(StoreFailure),
}

impl From<postgres::Error> for Fail {
    fn from(e: postgres::Error) -> Self {
        Fail::Db(e)
    }
}

impl From<StoreFailure> for Fail {
    fn from(f: StoreFailure) -> Self {
        Fail::Store(f)
    }
}

/// A client or transaction with the connection's statement cache.
struct Db<'a, C> {
    client: &'a mut C,
    cache: &'a mut HashMap<&'static str, Statement>,
    /// The store's count of statements sent ([`PgStore::statements`]).
    sent: &'a mut u64,
}

impl<C: GenericClient> Db<'_, C> {
    fn statement(&mut self, sql: &'static str) -> Result<Statement, postgres::Error> {
        if let Some(statement) = self.cache.get(sql) {
            return Ok(statement.clone());
        }
        *self.sent += 1;
        let statement = self.client.prepare(sql)?;
        self.cache.insert(sql, statement.clone());
        Ok(statement)
    }

    fn execute(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, postgres::Error> {
        let statement = self.statement(sql)?;
        *self.sent += 1;
        self.client.execute(&statement, params)
    }

    fn query(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, postgres::Error> {
        let statement = self.statement(sql)?;
        *self.sent += 1;
        self.client.query(&statement, params)
    }

    fn query_one(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, postgres::Error> {
        let statement = self.statement(sql)?;
        *self.sent += 1;
        self.client.query_one(&statement, params)
    }

    fn query_opt(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, postgres::Error> {
        let statement = self.statement(sql)?;
        *self.sent += 1;
        self.client.query_opt(&statement, params)
    }
}

type Tx<'a, 'b> = Db<'a, Transaction<'b>>;
type Plain<'a> = Db<'a, Client>;

/// The settings every session of a [`PgStore`] runs with, as libpq
/// `options`: the `taskweave` schema first on the search path, a 30 s
/// statement timeout, and a 10 s idle-in-transaction timeout (a safety
/// net: a standby ends a stalled leader's session itself once its lease
/// has lapsed). A host that opens sessions of its own beside the store's
/// can run them alike.
pub fn session_options() -> String {
    format!(
        "-c search_path=taskweave -c statement_timeout={STATEMENT_TIMEOUT_MS} \
         -c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_MS}"
    )
}

/// The configuration of a store's session with the database `conninfo`
/// names: libpq's environment for what the string leaves out (the
/// password included), [`session_options`], and a 10 s connect timeout
/// unless the string sets one.
pub(crate) fn session_config(conninfo: &str) -> Result<tokio_postgres::Config, PgError> {
    let mut config: tokio_postgres::Config = conninfo.parse().map_err(PgError::Conninfo)?;
    environment::defaults(&mut config)?;
    password::from_environment(&mut config);
    let options = format!(
        "{} {}",
        config.get_options().unwrap_or_default(),
        session_options()
    );
    config.options(options.trim_start());
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    Ok(config)
}

impl<P> PgStore<P> {
    /// Connects to the database `conninfo` names (a libpq-style string such
    /// as `host=… port=… user=… dbname=…`), with `search_path` set to the
    /// `taskweave` schema, a 30 s statement timeout and, unless the string
    /// sets one, a 10 s connect timeout; then checks the schema version.
    /// A string without a password takes libpq's: `PGPASSWORD`, else the
    /// matching line of the password file (`PGPASSFILE`, else
    /// `~/.pgpass`, ignored unless only its owner may read it).
    ///
    /// # Errors
    ///
    /// [`PgError::Conninfo`] for a string that does not parse,
    /// [`PgError::Connect`] when the server cannot be reached or refuses
    /// the login, [`PgError::Schema`] when the schema is missing or at
    /// another version than [`SCHEMA_VERSION`](crate::SCHEMA_VERSION).
    pub fn connect(conninfo: &str) -> Result<Self, PgError> {
        let config = session_config(conninfo)?;
        let target = target(&config);
        let config = Config::from(config);
        let mut store = PgStore {
            config,
            target,
            conn: None,
            listening: Vec::new(),
            journal_bytes: 0,
            statements: 0,
            connections: 0,
            payload: PhantomData,
        };
        store.conn = Some(store.open()?);
        Ok(store)
    }

    /// Bytes of journal entries (as stored: encoded, before PostgreSQL's
    /// own overhead) that this store's commits appended since it was
    /// opened.
    pub fn journal_bytes(&self) -> u64 {
        self.journal_bytes
    }

    /// Times the store connected again after losing its connection (a
    /// server restart, a broken socket). A notification sent while it
    /// was away is lost: a host that waits on them acts as if told of
    /// everything when this changes.
    pub(crate) fn reconnections(&self) -> u64 {
        self.connections
    }

    /// Statements this store sent to the server through the cluster's
    /// operations since it was opened: each query, each statement
    /// prepared, and a transaction's `BEGIN` and `COMMIT`. An idle role's
    /// rate of these is what it costs the database while nothing happens.
    pub fn statements(&self) -> u64 {
        self.statements
    }

    /// Opens a connection and checks the schema version.
    fn open(&self) -> Result<Conn, PgError> {
        let mut client = self
            .config
            .connect(NoTls)
            .map_err(|source| PgError::Connect {
                target: self.target.clone(),
                source,
            })?;
        require_current(installed_version(&mut client)?)?;
        for channel in &self.listening {
            client
                .batch_execute(&format!("LISTEN {channel}"))
                .map_err(|source| PgError::Connect {
                    target: self.target.clone(),
                    source,
                })?;
        }
        Ok(Conn {
            client,
            cache: HashMap::new(),
        })
    }

    /// Listens on `channel` (a PostgreSQL `LISTEN`) now and on every
    /// connection the store reconnects with, for
    /// [`wait_notice`](Self::wait_notice). `channel` is lowercase ASCII
    /// letters, digits and `_`.
    pub(crate) fn listen(&mut self, channel: String) {
        debug_assert!(
            channel
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        );
        let listen = format!("LISTEN {channel}");
        self.listening.push(channel);
        if let Some(conn) = &mut self.conn {
            if conn.client.batch_execute(&listen).is_err() {
                // The next operation reconnects, and listens then.
                self.conn = None;
            }
        }
    }

    /// Names this store's sessions `name` (PostgreSQL's `application_name`,
    /// which `pg_stat_activity` shows) on this connection and every one it
    /// reconnects with, unless the connection string names them: a node's
    /// and an agent's sessions are named so, and [`reset`](crate::reset)
    /// refuses while any is connected.
    pub(crate) fn name_session(&mut self, name: &str) {
        if self.config.get_application_name().is_some() {
            return;
        }
        self.config.application_name(name);
        if let Some(conn) = &mut self.conn {
            let named = conn
                .client
                .execute("SELECT set_config('application_name', $1, false)", &[&name]);
            if named.is_err() {
                // The next operation reconnects, named then.
                self.conn = None;
            }
        }
    }

    /// Waits up to `timeout` for a notification on a channel the store
    /// listens on: `true` when at least one came (every one already here
    /// is taken). Without a working connection it sleeps out the timeout
    /// (the next operation reconnects).
    pub(crate) fn wait_notice(&mut self, timeout: Duration) -> bool {
        self.wait_notices(timeout) != 0
    }

    /// As [`wait_notice`](Self::wait_notice), answering the channels that
    /// had one: bit `i` for the `i`th channel [`listen`](Self::listen)ed
    /// on (the first 32).
    pub(crate) fn wait_notices(&mut self, timeout: Duration) -> u32 {
        self.notices(Some(timeout))
    }

    /// The notifications already received (during the last operations),
    /// taken without waiting, as bits as [`wait_notices`](Self::wait_notices)
    /// answers them. A host that is never idle calls it after each
    /// operation: the connection buffers every notification until read.
    pub(crate) fn take_notices(&mut self) -> u32 {
        self.notices(None)
    }

    /// Takes the notifications received, waiting up to `timeout` for the
    /// first (none: not at all).
    fn notices(&mut self, timeout: Option<Duration>) -> u32 {
        use postgres::fallible_iterator::FallibleIterator as _;
        let Some(conn) = self.conn.as_mut().filter(|c| !c.client.is_closed()) else {
            if let Some(timeout) = timeout {
                std::thread::sleep(timeout);
            }
            return 0;
        };
        let listening = &self.listening;
        let bit = |channel: &str| {
            listening
                .iter()
                .position(|c| c == channel)
                .filter(|&i| i < 32)
                .map_or(0, |i| 1u32 << i)
        };
        let came = {
            let mut notices = conn.client.notifications();
            let first = match timeout {
                Some(timeout) => notices.timeout_iter(timeout).next(),
                None => notices.iter().next(),
            };
            first.map(|first| {
                let mut seen = 0;
                if let Some(n) = first {
                    seen |= bit(n.channel());
                    while let Ok(Some(n)) = notices.iter().next() {
                        seen |= bit(n.channel());
                    }
                }
                seen
            })
        };
        match came {
            Ok(seen) => seen,
            Err(_) => {
                self.conn = None;
                0
            }
        }
    }

    /// The live connection, reconnecting once if it broke.
    fn conn(&mut self) -> Result<&mut Conn, PgError> {
        let conn = match self.conn.take() {
            Some(conn) if !conn.client.is_closed() => conn,
            _ => {
                let conn = self.open()?;
                self.connections += 1;
                conn
            }
        };
        Ok(self.conn.insert(conn))
    }

    /// Runs `f` outside a transaction: for reads, whose failure never has
    /// an effect.
    fn read<T>(
        &mut self,
        f: impl FnOnce(&mut Plain<'_>) -> Result<T, Fail>,
    ) -> Result<T, StoreFailure> {
        self.outside_transaction(Stage::BeforeCommit, f)
    }

    /// Runs `f`, whose one write is atomic by itself (a single statement,
    /// and nothing after it that may fail), without `BEGIN` and `COMMIT`:
    /// one round trip instead of three. Its failure is a commit's: a
    /// server error means it took no effect, a broken connection that
    /// nobody knows whether it did.
    fn write_one<T>(
        &mut self,
        f: impl FnOnce(&mut Plain<'_>) -> Result<T, Fail>,
    ) -> Result<T, StoreFailure> {
        self.outside_transaction(Stage::Commit, f)
    }

    /// Runs `f` on the connection, each statement its own transaction;
    /// a database error counts as failing at `stage`.
    fn outside_transaction<T>(
        &mut self,
        stage: Stage,
        f: impl FnOnce(&mut Plain<'_>) -> Result<T, Fail>,
    ) -> Result<T, StoreFailure> {
        let conn = self.conn().map_err(unreachable_store)?;
        let mut sent = 0;
        let mut db = Db {
            client: &mut conn.client,
            cache: &mut conn.cache,
            sent: &mut sent,
        };
        let result = f(&mut db).map_err(|fail| (fail, stage));
        self.statements += sent;
        self.settle(result)
    }

    /// Runs `f` in a transaction and commits it (rule 1).
    fn write<T>(
        &mut self,
        f: impl FnOnce(&mut Tx<'_, '_>) -> Result<T, Fail>,
    ) -> Result<T, StoreFailure> {
        let conn = self.conn().map_err(unreachable_store)?;
        let mut sent = 0;
        let result = (|| {
            sent += 1;
            let mut tx = conn
                .client
                .transaction()
                .map_err(|e| (Fail::Db(e), Stage::BeforeCommit))?;
            let value = f(&mut Db {
                client: &mut tx,
                cache: &mut conn.cache,
                sent: &mut sent,
            })
            .map_err(|fail| (fail, Stage::BeforeCommit))?;
            sent += 1;
            tx.commit().map_err(|e| (Fail::Db(e), Stage::Commit))?;
            Ok(value)
        })();
        self.statements += sent;
        self.settle(result)
    }

    /// Maps a failure onto the contract, dropping a broken connection.
    fn settle<T>(&mut self, result: Result<T, (Fail, Stage)>) -> Result<T, StoreFailure> {
        result.map_err(|(fail, stage)| match fail {
            Fail::Store(failure) => failure,
            Fail::Db(e) => {
                if breaks_connection(&e) {
                    self.conn = None;
                }
                failure(&e, stage)
            }
        })
    }
}

impl<P: DeserializeOwned> PgStore<P> {
    /// The final state the last leader stored when it stopped the drained
    /// cluster ([`NodeOp::Stop`]), with the last entry it covers: the
    /// dispatcher's state and the hosted runs'.
    ///
    /// # Errors
    ///
    /// [`PgError::Db`] when the query fails, [`PgError::Corrupt`] when the
    /// stored state does not decode, or a reconnection error.
    pub fn final_state(&mut self) -> Result<Option<(u64, NodeState<P>)>, PgError> {
        let conn = self.conn()?;
        let Some(row) = conn
            .client
            .query_opt("SELECT seq, state FROM final_state WHERE id = 1", &[])?
        else {
            return Ok(None);
        };
        let seq = codec::int_to_u64(row.get(0));
        let snapshot = codec::decode(row.get(1)).map_err(|problem| PgError::Corrupt {
            table: "final_state",
            key: seq.to_string(),
            problem,
        })?;
        Ok(Some((seq, snapshot)))
    }

    /// The logins with the most inbox messages the leader has not read
    /// yet, most first, at most `limit` of them: who floods the inbox. A
    /// login reads what row security lets it (a node or the owner every
    /// row, a submitter its own).
    ///
    /// # Errors
    ///
    /// [`PgError::Db`] when the query fails, or a reconnection error.
    pub fn unread_by_login(&mut self, limit: u32) -> Result<Vec<(String, u64)>, PgError> {
        let conn = self.conn()?;
        let rows = conn.client.query(
            "SELECT poster, count(*) FROM inbox WHERE NOT consumed
             GROUP BY poster ORDER BY count(*) DESC, poster LIMIT $1",
            &[&i64::from(limit)],
        )?;
        Ok(rows
            .iter()
            .map(|row| (row.get(0), codec::int_to_u64(row.get(1))))
            .collect())
    }

    /// The journal's size now: rows and bytes of their stored text.
    ///
    /// # Errors
    ///
    /// [`PgError::Db`] when the query fails, or a reconnection error.
    pub fn journal_stats(&mut self) -> Result<(u64, u64), PgError> {
        let conn = self.conn()?;
        let row = conn.client.query_one(
            "SELECT count(*), COALESCE(sum(octet_length(entry)), 0)::bigint FROM journal",
            &[],
        )?;
        Ok((codec::int_to_u64(row.get(0)), codec::int_to_u64(row.get(1))))
    }
}

/// A failed (re)connection: nothing was sent.
pub(crate) fn unreachable_store(e: PgError) -> StoreFailure {
    StoreFailure::Failed {
        cause: e.to_string(),
    }
}

/// `host=… port=…` for messages.
/// A plain connection to the database `conninfo` names (for `init` and
/// other administration), with the password libpq would take from the
/// environment when the string names none (`PGPASSWORD`, the password
/// file).
///
/// # Errors
///
/// [`PgError::Conninfo`] for a string that does not parse,
/// [`PgError::Connect`] when the server cannot be reached or refuses the
/// login.
pub fn connect_admin(conninfo: &str) -> Result<postgres::Client, PgError> {
    let mut config: tokio_postgres::Config = conninfo.parse().map_err(PgError::Conninfo)?;
    environment::defaults(&mut config)?;
    password::from_environment(&mut config);
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    let target = target(&config);
    Config::from(config)
        .connect(NoTls)
        .map_err(|source| PgError::Connect { target, source })
}

pub(crate) fn target(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("host={host} port={port}")
}

impl<P> Store<P> for PgStore<P>
where
    P: Serialize + DeserializeOwned + Clone,
{
    fn node(&mut self, op: NodeOp<P>, _now: Instant) -> Result<NodeReply<P>, StoreFailure> {
        self.node_op(op)
    }

    fn agent(&mut self, op: AgentOp<P>, _now: Instant) -> Result<AgentReply<P>, StoreFailure> {
        self.agent_op(op)
    }

    fn client(&mut self, op: ClientOp<P>, _now: Instant) -> Result<ClientReply<P>, StoreFailure> {
        self.client_op(op)
    }
}
