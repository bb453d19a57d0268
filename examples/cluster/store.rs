//! The PostgreSQL side of the cluster: the schema, the leadership lease
//! with its epoch, the fenced journal append and snapshots. The inbox and
//! the outbox are in `mailbox.rs`.
//!
//! Fencing: every write a leader makes runs in a transaction whose first
//! statement renews the lease *only if* its epoch is still the current one
//! and the lease has not expired (`UPDATE lease … WHERE epoch = $mine AND
//! expires_at > clock_timestamp()`). That statement also locks the lease
//! row, so a standby's takeover (which bumps the epoch on the same row)
//! and a deposed leader's append are serialized: once the epoch moved, the
//! old leader's transaction matches no row and fails with
//! [`StoreError::Fenced`] before it writes anything.
//!
//! Everything read back (journal rows, snapshots, inbox bodies) is
//! untrusted: a row that does not decode is a [`StoreError::Corrupt`]
//! naming the table and row, never a panic or a hang.

use std::fmt;

use postgres::{Client, NoTls, Transaction};
use taskweave::scheduler::{Dispatcher, Input, Snapshot};

use crate::model::{Job, dispatcher_config};

/// The schema: created once by the process that starts the cluster.
const SCHEMA: &str = "
CREATE TABLE lease (
    id INT PRIMARY KEY CHECK (id = 1),
    epoch BIGINT NOT NULL,
    holder TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL);
INSERT INTO lease VALUES (1, 0, '', '-infinity');
CREATE TABLE journal (
    seq BIGINT PRIMARY KEY,
    epoch BIGINT NOT NULL,
    inbox_id BIGINT,
    format INT NOT NULL,
    input TEXT NOT NULL);
CREATE TABLE snapshots (
    seq BIGINT PRIMARY KEY,
    epoch BIGINT NOT NULL,
    state TEXT NOT NULL);
CREATE TABLE inbox (
    id BIGSERIAL PRIMARY KEY,
    agent BIGINT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    seq BIGINT,
    verdict TEXT,
    seen BOOLEAN NOT NULL DEFAULT false);
CREATE INDEX inbox_pending ON inbox (id) WHERE seq IS NULL;
CREATE INDEX inbox_rejected ON inbox (agent) WHERE verdict LIKE 'rejected%' AND NOT seen;
CREATE TABLE outbox (
    task BIGINT NOT NULL,
    token BIGINT NOT NULL,
    agent BIGINT NOT NULL,
    attempt INT NOT NULL,
    payload TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    state TEXT NOT NULL DEFAULT 'ready',
    PRIMARY KEY (task, token));
CREATE INDEX outbox_ready ON outbox (agent) WHERE state = 'ready';
CREATE TABLE status (
    id INT PRIMARY KEY CHECK (id = 1),
    epoch BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    live BIGINT NOT NULL,
    submitted BIGINT NOT NULL,
    completed BIGINT NOT NULL,
    dead_lettered BIGINT NOT NULL,
    expired BIGINT NOT NULL,
    journal_rows BIGINT NOT NULL,
    journal_bytes BIGINT NOT NULL);
CREATE TABLE events (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    at_ms BIGINT NOT NULL,
    detail TEXT NOT NULL);
CREATE TABLE final_state (
    epoch BIGINT PRIMARY KEY,
    seq BIGINT NOT NULL,
    state TEXT NOT NULL);
";

/// The stored form of the journal's inputs (`Input::FORMAT`), kept in
/// each row so a reader refuses a form it does not know instead of
/// misreading it.
const INPUT_FORMAT: i32 = Input::<Job>::FORMAT as i32;

/// What went wrong with the store.
#[derive(Debug)]
pub(crate) enum StoreError {
    /// The database refused or the connection failed.
    Db(postgres::Error),
    /// The lease's epoch is no longer `epoch`, or the lease expired: this
    /// process is not the leader and wrote nothing.
    Fenced {
        /// The epoch this process held.
        epoch: i64,
    },
    /// A stored row does not decode or does not restore.
    Corrupt {
        /// Which table.
        table: &'static str,
        /// The row's key.
        key: i64,
        /// What is wrong with it.
        problem: String,
    },
    /// The journal has a hole: a row expected next is missing (trimmed
    /// behind a snapshot the reader has not restored).
    Gap {
        /// The sequence number expected.
        expected: i64,
        /// The one found.
        found: i64,
    },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Db(e) => write!(f, "database: {e}"),
            StoreError::Fenced { epoch } => {
                write!(f, "fenced: epoch {epoch} is no longer the leader's")
            }
            StoreError::Corrupt {
                table,
                key,
                problem,
            } => {
                write!(f, "corrupt row {key} in table {table}: {problem}")
            }
            StoreError::Gap { expected, found } => {
                write!(f, "journal gap: expected row {expected}, found {found}")
            }
        }
    }
}

impl std::error::Error for StoreError {}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        StoreError::Db(e)
    }
}

/// One journal row.
#[derive(Debug)]
pub(crate) struct JournalRow {
    /// Its position: 1, 2, … without holes.
    pub(crate) seq: i64,
    /// The epoch of the leader that appended it.
    pub(crate) epoch: i64,
    /// The inbox message it came from, if any.
    pub(crate) inbox_id: Option<i64>,
    /// The input.
    pub(crate) input: Input<Job>,
    /// Its stored size.
    pub(crate) bytes: usize,
}

/// A connection to the cluster's database.
pub(crate) struct Store {
    client: Client,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

fn ttl_ms() -> i64 {
    i64::try_from(crate::model::LEASE_TTL.as_millis()).unwrap_or(i64::MAX)
}

/// Decodes a stored snapshot and restores a dispatcher from it, treating
/// the text as untrusted.
///
/// # Errors
///
/// [`StoreError::Corrupt`] when the JSON does not parse or the state is
/// refused by `Dispatcher::restore`.
pub(crate) fn restore_snapshot(seq: i64, text: &str) -> Result<Dispatcher<Job>, StoreError> {
    let corrupt = |problem: String| StoreError::Corrupt {
        table: "snapshots",
        key: seq,
        problem,
    };
    let snapshot: Snapshot<Job> = serde_json::from_str(text).map_err(|e| corrupt(e.to_string()))?;
    let strategy: Box<dyn taskweave::routing::RoutingStrategy + Send> =
        Box::new(taskweave::routing::LeastLoaded::new());
    Dispatcher::restore(dispatcher_config(), strategy, snapshot).map_err(|e| corrupt(e.to_string()))
}

impl Store {
    /// Connects, with a statement timeout so no query can hang a role.
    ///
    /// # Errors
    ///
    /// [`StoreError::Db`] when the server cannot be reached.
    pub(crate) fn connect(conninfo: &str) -> Result<Self, StoreError> {
        let conninfo = format!("{conninfo} options='-c statement_timeout=30000'");
        Ok(Store {
            client: Client::connect(&conninfo, NoTls)?,
        })
    }

    /// Creates the tables (once, before any role starts).
    ///
    /// # Errors
    ///
    /// [`StoreError::Db`].
    pub(crate) fn create_schema(&mut self) -> Result<(), StoreError> {
        Ok(self.client.batch_execute(SCHEMA)?)
    }

    /// The raw client, for the audit's and the demo's own queries.
    pub(crate) fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    // --- the lease ---------------------------------------------------------

    /// The current epoch and whether the lease is held (not expired).
    ///
    /// # Errors
    ///
    /// [`StoreError::Db`].
    pub(crate) fn lease(&mut self) -> Result<(i64, bool), StoreError> {
        let row = self.client.query_one(
            "SELECT epoch, expires_at > clock_timestamp() FROM lease WHERE id = 1",
            &[],
        )?;
        Ok((row.get(0), row.get(1)))
    }

    /// Takes the lease with epoch `seen + 1` if it is still at `seen` and
    /// has expired; `Some(new epoch)` on success.
    ///
    /// # Errors
    ///
    /// [`StoreError::Db`].
    pub(crate) fn take_lease(
        &mut self,
        seen: i64,
        holder: &str,
    ) -> Result<Option<i64>, StoreError> {
        let row = self.client.query_opt(
            "UPDATE lease SET epoch = epoch + 1, holder = $2,
                 expires_at = clock_timestamp() + $3::float8 * interval '1 millisecond'
             WHERE id = 1 AND epoch = $1 AND expires_at <= clock_timestamp()
             RETURNING epoch",
            &[&seen, &holder, &(ttl_ms() as f64)],
        )?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Renews the lease of `epoch` (its own transaction).
    ///
    /// # Errors
    ///
    /// [`StoreError::Fenced`] when the epoch moved on or the lease expired.
    pub(crate) fn renew(&mut self, epoch: i64) -> Result<(), StoreError> {
        let mut tx = self.client.transaction()?;
        fence(&mut tx, epoch)?;
        Ok(tx.commit()?)
    }

    // --- the journal -------------------------------------------------------

    /// Appends `inputs` as rows `first_seq, first_seq + 1, …` and marks the
    /// inbox messages they came from (and the `refused` ones, with their
    /// verdict) consumed — one fenced transaction, one commit.
    ///
    /// # Errors
    ///
    /// [`StoreError::Fenced`] when `epoch` is not the leader's any more;
    /// [`StoreError::Db`] otherwise. Nothing is written on error.
    pub(crate) fn append(
        &mut self,
        epoch: i64,
        first_seq: i64,
        inputs: &[(Option<i64>, String)],
        refused: &[(i64, String)],
    ) -> Result<(), StoreError> {
        let mut tx = self.client.transaction()?;
        fence(&mut tx, epoch)?;
        let seqs: Vec<i64> = (first_seq..).take(inputs.len()).collect();
        let inbox: Vec<Option<i64>> = inputs.iter().map(|(id, _)| *id).collect();
        let texts: Vec<&str> = inputs.iter().map(|(_, text)| text.as_str()).collect();
        tx.execute(
            "INSERT INTO journal (seq, epoch, inbox_id, format, input)
             SELECT s, $2, i, $5, t FROM unnest($1::bigint[], $3::bigint[], $4::text[]) AS u(s, i, t)",
            &[&seqs, &epoch, &inbox, &texts, &INPUT_FORMAT],
        )?;
        let (ids, id_seqs): (Vec<i64>, Vec<i64>) = inbox
            .iter()
            .zip(&seqs)
            .filter_map(|(id, seq)| id.map(|id| (id, *seq)))
            .unzip();
        let marked = tx.execute(
            "UPDATE inbox SET seq = u.s FROM unnest($1::bigint[], $2::bigint[]) AS u(i, s)
             WHERE inbox.id = u.i AND inbox.seq IS NULL",
            &[&ids, &id_seqs],
        )?;
        if marked != ids.len() as u64 {
            // Another writer consumed them: impossible under the lease,
            // so refuse rather than journal an input twice.
            return Err(StoreError::Fenced { epoch });
        }
        let (bad, why): (Vec<i64>, Vec<&str>) =
            refused.iter().map(|(id, v)| (*id, v.as_str())).unzip();
        tx.execute(
            "UPDATE inbox SET seq = 0, verdict = u.v FROM unnest($1::bigint[], $2::text[]) AS u(i, v)
             WHERE inbox.id = u.i AND inbox.seq IS NULL",
            &[&bad, &why],
        )?;
        Ok(tx.commit()?)
    }

    /// Up to `limit` journal rows from `from` on, in order, decoded.
    ///
    /// # Errors
    ///
    /// [`StoreError::Gap`] when row `from` is missing but later ones exist
    /// (trimmed: restore a newer snapshot); [`StoreError::Corrupt`] for a
    /// row that does not decode.
    pub(crate) fn read_journal(
        &mut self,
        from: i64,
        limit: i64,
    ) -> Result<Vec<JournalRow>, StoreError> {
        let rows = self.client.query(
            "SELECT seq, epoch, inbox_id, format, input FROM journal WHERE seq >= $1 ORDER BY seq LIMIT $2",
            &[&from, &limit],
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for (expected, row) in (from..).zip(&rows) {
            let seq: i64 = row.get(0);
            if seq != expected {
                return Err(StoreError::Gap {
                    expected,
                    found: seq,
                });
            }
            let format: i32 = row.get(3);
            if format != INPUT_FORMAT {
                return Err(StoreError::Corrupt {
                    table: "journal",
                    key: seq,
                    problem: format!("input format {format}, this build reads {INPUT_FORMAT}"),
                });
            }
            let text: &str = row.get(4);
            let input = serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
                table: "journal",
                key: seq,
                problem: e.to_string(),
            })?;
            out.push(JournalRow {
                seq,
                epoch: row.get(1),
                inbox_id: row.get(2),
                input,
                bytes: text.len(),
            });
        }
        Ok(out)
    }

    // --- snapshots ---------------------------------------------------------

    /// Stores a snapshot covering the journal up to `seq`; with `trim`,
    /// deletes the journal rows and snapshots behind the previous snapshot
    /// (one snapshot of slack for a standby restoring it right now).
    ///
    /// # Errors
    ///
    /// [`StoreError::Fenced`], [`StoreError::Db`].
    pub(crate) fn put_snapshot(
        &mut self,
        epoch: i64,
        seq: i64,
        state: &str,
        trim: bool,
    ) -> Result<(), StoreError> {
        let mut tx = self.client.transaction()?;
        fence(&mut tx, epoch)?;
        let previous: Option<i64> = tx
            .query_one("SELECT max(seq) FROM snapshots WHERE seq < $1", &[&seq])?
            .get(0);
        tx.execute(
            "INSERT INTO snapshots (seq, epoch, state) VALUES ($1, $2, $3) ON CONFLICT (seq) DO NOTHING",
            &[&seq, &epoch, &state],
        )?;
        if let (true, Some(previous)) = (trim, previous) {
            tx.execute("DELETE FROM journal WHERE seq <= $1", &[&previous])?;
            tx.execute("DELETE FROM snapshots WHERE seq < $1", &[&previous])?;
        }
        Ok(tx.commit()?)
    }

    /// The latest snapshot as (seq, text), if any.
    ///
    /// # Errors
    ///
    /// [`StoreError::Db`].
    pub(crate) fn latest_snapshot(&mut self) -> Result<Option<(i64, String)>, StoreError> {
        let row = self.client.query_opt(
            "SELECT seq, state FROM snapshots ORDER BY seq DESC LIMIT 1",
            &[],
        )?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }
}

/// The fence: renews the lease for `epoch` and locks its row, or fails.
pub(crate) fn fence(tx: &mut Transaction<'_>, epoch: i64) -> Result<(), StoreError> {
    let renewed = tx.execute(
        "UPDATE lease SET expires_at = clock_timestamp() + $2::float8 * interval '1 millisecond'
         WHERE id = 1 AND epoch = $1 AND expires_at > clock_timestamp()",
        &[&epoch, &(ttl_ms() as f64)],
    )?;
    if renewed == 1 {
        Ok(())
    } else {
        Err(StoreError::Fenced { epoch })
    }
}
