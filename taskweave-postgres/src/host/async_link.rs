//! [`AsyncLink`]: the one `tokio-postgres` connection of an async host
//! ([`AsyncPgClient`](crate::AsyncPgClient), [`AsyncPgAgent`](crate::AsyncPgAgent)),
//! opened again after it breaks, with its prepared statements and the
//! notifications on the channels it listens on.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use postgres::Row;
use taskweave::cluster::StoreFailure;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TryRecvError;
use tokio_postgres::{AsyncMessage, Client, Config, NoTls, Statement};

use crate::PgError;
use crate::schema::{INSTALLED_VERSION, require_current, version_of};
use crate::store::client_ops::{Param, borrowed};
use crate::store::errors::{Stage, breaks_connection, failure};
use crate::store::{session_config, target, unreachable_store};

/// A connection to the cluster's database for an async host: each query
/// on the live connection, or on a new one when it broke (a server
/// restart); the failure of the query that met the break says whether a
/// write may have landed.
pub(super) struct AsyncLink {
    config: Config,
    target: String,
    /// Channels every connection listens on.
    listening: Vec<String>,
    conn: Option<AsyncConn>,
    /// Connections opened, the first included.
    opened: u64,
    /// Statements sent: each prepared, each query.
    statements: u64,
}

/// One connection, its statements, and a signal of its notifications.
struct AsyncConn {
    client: Client,
    cache: HashMap<&'static str, Statement>,
    /// Holds one `()` while notifications came that nobody took: the
    /// connection's task coalesces them.
    notices: mpsc::Receiver<()>,
}

impl fmt::Debug for AsyncLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncLink")
            .field("target", &self.target)
            .field("connected", &self.conn.is_some())
            .field("listening", &self.listening)
            .finish_non_exhaustive()
    }
}

impl AsyncLink {
    /// Connects as the login `conninfo` names, as
    /// [`PgStore::connect`](crate::PgStore::connect) does, checks the
    /// schema version and listens on `listening`; its sessions are named
    /// `session` in `pg_stat_activity` unless the string names them.
    pub(super) async fn connect(
        conninfo: &str,
        listening: Vec<String>,
        session: Option<String>,
    ) -> Result<Self, PgError> {
        let mut config = session_config(conninfo)?;
        if let (Some(name), None) = (session, config.get_application_name()) {
            config.application_name(name);
        }
        let mut link = AsyncLink {
            target: target(&config),
            config,
            listening,
            conn: None,
            opened: 0,
            statements: 0,
        };
        link.conn = Some(link.open().await?);
        Ok(link)
    }

    /// `host=… port=…` of the server.
    pub(super) fn target(&self) -> &str {
        &self.target
    }

    /// Whether a connection is open (it may have broken unnoticed).
    pub(super) fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// Connections opened after the first: a notification sent while the
    /// link was away is lost.
    pub(super) fn reconnections(&self) -> u64 {
        self.opened.saturating_sub(1)
    }

    /// Statements sent since the link was made.
    pub(super) fn statements(&self) -> u64 {
        self.statements
    }

    /// Opens a connection, its driver a tokio task that passes each
    /// notification on, checks the schema version and listens. Outside a
    /// runtime, [`PgError::NoRuntime`] rather than tokio's panic.
    async fn open(&mut self) -> Result<AsyncConn, PgError> {
        // Checked before tokio's socket, which would panic.
        in_runtime()?;
        let connect_error = |source| PgError::Connect {
            target: self.target.clone(),
            source,
        };
        let (client, mut connection) = self.config.connect(NoTls).await.map_err(connect_error)?;
        let (noticed, notices) = mpsc::channel(1);
        // It ends when the client is dropped or the server goes away; a
        // query then fails, and the next one connects again.
        tokio::spawn(async move {
            while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                match message {
                    // Full: one is already waiting to be taken.
                    Ok(AsyncMessage::Notification(_)) => drop(noticed.try_send(())),
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        });
        require_current(version_of(client.query_one(INSTALLED_VERSION, &[]).await)?)?;
        if !self.listening.is_empty() {
            let listen: String = self
                .listening
                .iter()
                .map(|channel| format!("LISTEN {channel};"))
                .collect();
            client.batch_execute(&listen).await.map_err(connect_error)?;
        }
        self.opened += 1;
        Ok(AsyncConn {
            client,
            cache: HashMap::new(),
            notices,
        })
    }

    /// Runs `sql`, one statement and so its own transaction: a `write`
    /// whose connection broke after it was sent may have committed
    /// ([`StoreFailure::Unknown`]).
    pub(super) async fn query(
        &mut self,
        sql: &'static str,
        params: &[Param],
        write: bool,
    ) -> Result<Vec<Row>, StoreFailure> {
        in_runtime().map_err(unreachable_store)?;
        let conn = match self.conn.take() {
            Some(conn) if !conn.client.is_closed() => conn,
            _ => self.open().await.map_err(unreachable_store)?,
        };
        let conn = self.conn.insert(conn);
        let stage = if write {
            Stage::Commit
        } else {
            Stage::BeforeCommit
        };
        match conn.query(sql, params, &mut self.statements).await {
            Ok(rows) => Ok(rows),
            Err(e) => {
                if breaks_connection(&e) {
                    self.conn = None;
                }
                Err(failure(&e, stage))
            }
        }
    }

    /// Whether notifications came since the last look, without waiting.
    pub(super) fn take_notices(&mut self) -> bool {
        let Some(conn) = &mut self.conn else {
            return false;
        };
        match conn.notices.try_recv() {
            Ok(()) => true,
            Err(TryRecvError::Empty) => false,
            Err(TryRecvError::Disconnected) => {
                self.conn = None;
                false
            }
        }
    }

    /// Waits up to `timeout` for a notification: `true` when one came.
    /// Without a live connection it sleeps the timeout out (the next
    /// query connects again); outside a tokio runtime, with no timer to
    /// await, it sleeps the thread.
    pub(super) async fn wait_notice(&mut self, timeout: Duration) -> bool {
        if in_runtime().is_err() {
            std::thread::sleep(timeout);
            return false;
        }
        let Some(conn) = self.conn.as_mut().filter(|c| !c.client.is_closed()) else {
            tokio::time::sleep(timeout).await;
            return false;
        };
        match tokio::time::timeout(timeout, conn.notices.recv()).await {
            Ok(Some(())) => true,
            // The connection's task ended: it broke.
            Ok(None) => {
                self.conn = None;
                false
            }
            Err(_elapsed) => false,
        }
    }
}

impl AsyncConn {
    /// Runs `sql` as a statement prepared once per connection; counts
    /// what it sends in `sent`.
    async fn query(
        &mut self,
        sql: &'static str,
        params: &[Param],
        sent: &mut u64,
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        let statement = match self.cache.get(sql) {
            Some(statement) => statement.clone(),
            None => {
                *sent += 1;
                let statement = self.client.prepare(sql).await?;
                self.cache.insert(sql, statement.clone());
                statement
            }
        };
        *sent += 1;
        self.client.query(&statement, &borrowed(params)).await
    }
}

/// [`PgError::NoRuntime`] unless called inside a tokio runtime, where
/// tokio's socket and timer would panic.
pub(super) fn in_runtime() -> Result<(), PgError> {
    match tokio::runtime::Handle::try_current() {
        Ok(_) => Ok(()),
        Err(_) => Err(PgError::NoRuntime),
    }
}
