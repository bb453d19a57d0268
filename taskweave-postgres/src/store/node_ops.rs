//! The nodes' operations: the lease, the journal, snapshots, the inbox as
//! the leader reads it, and the commit that publishes (rules 2 to 5).

use std::time::Duration;

use postgres::error::SqlState;
use serde::Serialize;
use serde::de::DeserializeOwned;
use taskweave::cluster::{
    Entry, InboxMessage, JournalRow, Lease, MessageId, NodeOp, NodeReply, NodeState, Outputs,
    StoreFailure, Verdict,
};
use taskweave::{AttemptToken, TaskId, TenantId};

use std::collections::HashMap;

use super::codec::{self, int_to_u64, lease_columns, limit, millis, u64_to_int};
use super::{Fail, PgStore, Plain, corrupt};

/// The fence (rule 2): renews the lease of `$1` for `$2` ms (keeps its
/// expiry when `$2` is NULL) if it is current and unexpired, locking the
/// row; answers the journal's next entry.
const FENCE: &str = "
UPDATE lease SET expires_at = CASE WHEN $2::float8 IS NULL THEN expires_at
        ELSE clock_timestamp() + $2::float8 * interval '1 millisecond' END
WHERE id = 1 AND epoch = $1 AND expires_at > clock_timestamp()
RETURNING GREATEST((SELECT max(seq) FROM journal), (SELECT max(seq) FROM snapshots), 0) + 1";

const CURRENT_EPOCH: &str = "SELECT epoch FROM lease WHERE id = 1";

const READ_LEASE: &str = concat!("SELECT ", lease_columns!(), " FROM lease WHERE id = 1");

/// Before a takeover: ends the session of a leader that stalls inside a
/// transaction (its process frozen or starved) while its lease has
/// lapsed. Its lock on the lease row would hold the takeover back until
/// the server's idle-in-transaction timeout; ending it rolls its
/// transaction back at once, and the stalled leader, when it runs again,
/// finds its connection gone and itself deposed. Only a session idle in a
/// transaction for half a second, holding a lock taken by an update of
/// the lease, while the lease at epoch `$1` has expired, is ended; a
/// session whose state this login cannot see (another login without
/// `pg_read_all_stats`) or may not signal (without `pg_signal_backend`) is
/// left to the idle timeout.
const END_STALLED_LEADER: &str = "
SELECT pg_terminate_backend(a.pid) FROM pg_stat_activity a
WHERE a.pid <> pg_backend_pid() AND a.datname = current_database()
  AND a.state IN ('idle in transaction', 'idle in transaction (aborted)')
  AND a.state_change < clock_timestamp() - interval '500 milliseconds'
  AND a.pid IN (SELECT l.pid FROM pg_locks l
                WHERE l.relation = 'lease'::regclass AND l.mode = 'RowExclusiveLock' AND l.granted)
  AND EXISTS (SELECT 1 FROM lease WHERE id = 1 AND epoch = $1 AND expires_at <= clock_timestamp())";

const TAKE_LEASE: &str = "
UPDATE lease SET epoch = epoch + 1, holder = $2,
    expires_at = clock_timestamp() + $3::float8 * interval '1 millisecond'
WHERE id = 1 AND epoch = $1 AND expires_at <= clock_timestamp()
RETURNING epoch";

const LATEST_SNAPSHOT: &str = "SELECT seq, state FROM snapshots ORDER BY seq DESC LIMIT 1";

const READ_JOURNAL: &str =
    "SELECT seq, epoch, format, entry FROM journal WHERE seq >= $1 ORDER BY seq LIMIT $2";

const JOURNAL_BOUNDS: &str =
    "SELECT (SELECT min(seq) FROM journal), (SELECT max(seq) FROM snapshots)";

/// Pending messages in id order, at most `$1`, read fairly: of the
/// oldest `$4` (4 × `$1`) pending, each sender (an agent, or a client's
/// login: the poster, since schema version 8) has at most `$3` in a read,
/// and no more after the first whose bodies reach `$2` bytes; and the
/// read stops after the first message whose
/// bodies, all senders together, reach `$5` bytes. It answers at least
/// one message while any is pending, and each sender's messages in their
/// order. A sender that floods the inbox, with many messages or huge
/// ones, is read at that pace while everyone else's messages are read as
/// they come (a byte bound over all senders alone let one agent's 16 MB
/// messages hold back every other sender's, one read each). The sizes
/// are read without the bodies (`octet_length` does not detoast), which
/// are fetched only for the messages answered. One pass over the pending
/// index: a join back to the table let the planner scan the whole inbox
/// on every read.
const READ_INBOX: &str = "SELECT id, agent, incarnation, kind, body, tenant FROM (
    SELECT id, agent, incarnation, kind, body, tenant,
        sum(octet_length(body)) OVER (ORDER BY id) - octet_length(body) AS before
    FROM (
        SELECT id, agent, incarnation, kind, body, tenant,
            row_number() OVER sender AS nth,
            sum(octet_length(body)) OVER sender - octet_length(body) AS sender_before
        FROM (SELECT id, agent, incarnation, kind, body, tenant, poster FROM inbox
            WHERE NOT consumed ORDER BY id LIMIT $4) AS oldest
        WINDOW sender AS (PARTITION BY agent, poster ORDER BY id)) AS ranked
    WHERE nth <= $3 AND sender_before < $2
    ORDER BY id LIMIT $1) AS pending
WHERE before < $5 ORDER BY id";

/// The most bytes of one sender's message bodies one read of the inbox
/// answers past the sender's first message.
const INBOX_READ_SENDER_BYTES: i64 = 4 << 20;

/// The most bytes of message bodies one read of the inbox answers past its
/// first message, all senders together.
const INBOX_READ_BYTES: i64 = 32 << 20;

/// The most messages of one sender (an agent, or a client's login) a read
/// of the inbox answers (a working agent has a few pending; a client's
/// message holds many tasks).
const INBOX_READ_PER_SENDER: i64 = 64;

const READ_OUTSTANDING: &str = "SELECT task, token FROM outbox
WHERE state IN ('ready', 'claimed') ORDER BY task, token";

/// Tells every agent that the cluster stopped (sent when the stop lands),
/// so each ends at once instead of at its next heartbeat.
const NOTIFY_STOPPED: &str = "SELECT pg_notify('taskweave_cluster', 'stopped')";

/// Rule 8: the outcomes of trimmed entries go with them.
const TRIM_OUTCOMES: &str = "DELETE FROM outcomes WHERE seq <= $1";

/// Rule 8: as outcomes, but the ends of the runs the snapshot's engine
/// still remembers (`$2`) stay.
const TRIM_RUN_ENDS: &str = "DELETE FROM run_ends WHERE seq <= $1 AND run <> ALL($2)";

/// Rule 8: consumed messages up to an id are forgotten.
const FORGET: &str = "DELETE FROM inbox WHERE consumed AND id <= $1";

const PREVIOUS_SNAPSHOT: &str = "SELECT max(seq) FROM snapshots WHERE seq < $1";

const PUT_SNAPSHOT: &str = "INSERT INTO snapshots (seq, epoch, state) VALUES ($1, $2, $3)
ON CONFLICT (seq) DO NOTHING";

const TRIM_JOURNAL: &str = "DELETE FROM journal WHERE seq <= $1";

const TRIM_SNAPSHOTS: &str = "DELETE FROM snapshots WHERE seq < $1";

const STOP: &str = "UPDATE lease SET stopped = true
WHERE id = 1 AND epoch = $1 AND expires_at > clock_timestamp()";

const PUT_FINAL: &str = "INSERT INTO final_state (id, epoch, seq, state) VALUES (1, $1, $2, $3)
ON CONFLICT (id) DO UPDATE SET epoch = EXCLUDED.epoch, seq = EXCLUDED.seq, state = EXCLUDED.state";

/// The stored form of journal entries.
const FORMAT: i32 = Entry::<()>::FORMAT as i32;

/// A leader's commit (rule 3), in one statement: see `schema/v14.sql`.
const COMMIT_BATCH: &str = "SELECT commit_batch($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,
    $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25)";

/// `commit_batch`'s SQLSTATE for a fenced leader; its DETAIL is the
/// lease's current epoch.
const FENCED: &str = "TWFNC";

/// `commit_batch`'s SQLSTATE for a conflict; its message says which.
const CONFLICT: &str = "TWCFL";

impl<P: Serialize + DeserializeOwned + Clone> PgStore<P> {
    pub(super) fn node_op(&mut self, op: NodeOp<P>) -> Result<NodeReply<P>, StoreFailure> {
        match op {
            NodeOp::ReadLease => self.read(|db| Ok(NodeReply::Lease(read_lease(db)?))),
            NodeOp::TakeLease { seen, holder, ttl } => self.write(|tx| {
                tx.query(END_STALLED_LEADER, &[&u64_to_int(seen)])?;
                let taken =
                    tx.query_opt(TAKE_LEASE, &[&u64_to_int(seen), &holder, &millis(ttl)])?;
                Ok(match taken {
                    Some(row) => NodeReply::Taken {
                        epoch: int_to_u64(row.get(0)),
                    },
                    None => NodeReply::Lease(read_lease(tx)?),
                })
            }),
            NodeOp::Renew { epoch, ttl } => self.write_one(|tx| {
                fence(tx, epoch, Some(ttl))?;
                Ok(NodeReply::Done)
            }),
            NodeOp::LatestSnapshot => self.read(|db| {
                let Some(row) = db.query_opt(LATEST_SNAPSHOT, &[])? else {
                    return Ok(NodeReply::Snapshot(None));
                };
                let seq: i64 = row.get(0);
                let snapshot: NodeState<P> = codec::decode(row.get(1))
                    .map_err(|problem| corrupt("snapshots", seq, problem))?;
                Ok(NodeReply::Snapshot(Some((
                    int_to_u64(seq),
                    Box::new(snapshot),
                ))))
            }),
            NodeOp::ReadJournal { from, limit } => self.read(|db| read_journal(db, from, limit)),
            NodeOp::ReadInbox { limit: most } => self.read(|db| {
                let rows = db.query(
                    READ_INBOX,
                    &[
                        &limit(most),
                        &INBOX_READ_SENDER_BYTES,
                        &INBOX_READ_PER_SENDER,
                        &limit(most).saturating_mul(4),
                        &INBOX_READ_BYTES,
                    ],
                )?;
                let messages = rows
                    .iter()
                    .map(|row| {
                        let sender = codec::sender(row.get(1), row.get(2), row.get(5));
                        let body: &str = row.get(4);
                        InboxMessage {
                            id: int_to_u64(row.get(0)),
                            sender,
                            body: codec::message(row.get(3), sender, body),
                            bytes: body.len(),
                        }
                    })
                    .collect();
                Ok(NodeReply::Inbox(messages))
            }),
            NodeOp::ReadOutstanding => self.read(|db| {
                let rows = db.query(READ_OUTSTANDING, &[])?;
                let rows = rows
                    .iter()
                    .map(|row| {
                        (
                            TaskId::new(int_to_u64(row.get(0))),
                            AttemptToken::new(int_to_u64(row.get(1))),
                        )
                    })
                    .collect();
                Ok(NodeReply::Outstanding(rows))
            }),
            NodeOp::Commit {
                epoch,
                ttl,
                first_seq,
                entries,
                consumed,
                outputs,
            } => {
                let entries = entries
                    .iter()
                    .map(|entry| codec::encode("a journal entry", entry))
                    .collect::<Result<Vec<_>, _>>()?;
                let consumed = encode_verdicts(&consumed)?;
                let outputs = EncodedOutputs::new(&outputs)?;
                let bytes: usize = entries.iter().map(String::len).sum();
                let done = self.write_one(|db| {
                    commit(db, epoch, ttl, first_seq, &entries, &consumed, &outputs)
                });
                if done.is_ok() {
                    self.journal_bytes = self.journal_bytes.saturating_add(bytes as u64);
                }
                done
            }
            NodeOp::PutSnapshot {
                epoch,
                ttl,
                seq,
                snapshot,
                trim,
                forget_through,
            } => {
                let state = codec::encode("a snapshot", &snapshot)?;
                let remembered: Vec<i64> = snapshot
                    .remembered_runs()
                    .map(|run| u64_to_int(run.get()))
                    .collect();
                self.write(|tx| {
                    fence(tx, epoch, Some(ttl))?;
                    if let Some(through) = forget_through {
                        // A bound, not an identity: saturate (ids are positive).
                        let through = i64::try_from(through).unwrap_or(i64::MAX);
                        tx.execute(FORGET, &[&through])?;
                    }
                    let seq = u64_to_int(seq);
                    let previous: Option<i64> = tx.query_one(PREVIOUS_SNAPSHOT, &[&seq])?.get(0);
                    tx.execute(PUT_SNAPSHOT, &[&seq, &u64_to_int(epoch), &state])?;
                    if let (true, Some(previous)) = (trim, previous) {
                        tx.execute(TRIM_JOURNAL, &[&previous])?;
                        tx.execute(TRIM_OUTCOMES, &[&previous])?;
                        tx.execute(TRIM_RUN_ENDS, &[&previous, &remembered])?;
                        tx.execute(TRIM_SNAPSHOTS, &[&previous])?;
                    }
                    Ok(NodeReply::Done)
                })
            }
            NodeOp::Stop {
                epoch,
                seq,
                snapshot,
            } => {
                let state = codec::encode("the final state", &snapshot)?;
                self.write(|tx| {
                    if tx.execute(STOP, &[&u64_to_int(epoch)])? == 0 {
                        return Err(fenced(tx, epoch));
                    }
                    tx.execute(PUT_FINAL, &[&u64_to_int(epoch), &u64_to_int(seq), &state])?;
                    tx.execute(NOTIFY_STOPPED, &[])?;
                    Ok(NodeReply::Done)
                })
            }
        }
    }
}

/// The lease as it stands.
fn read_lease<C: postgres::GenericClient>(db: &mut super::Db<'_, C>) -> Result<Lease, Fail> {
    Ok(codec::lease(&db.query_one(READ_LEASE, &[])?))
}

/// Rule 2: renews the lease of `epoch` (for `ttl`, or keeping its expiry)
/// and locks it, or answers [`StoreFailure::Fenced`]. Answers the
/// journal's next entry.
fn fence<C: postgres::GenericClient>(
    tx: &mut super::Db<'_, C>,
    epoch: u64,
    ttl: Option<Duration>,
) -> Result<u64, Fail> {
    match tx.query_opt(FENCE, &[&u64_to_int(epoch), &ttl.map(millis)])? {
        Some(row) => Ok(int_to_u64(row.get(0))),
        None => Err(fenced(tx, epoch)),
    }
}

/// The fenced answer, with the lease's epoch read in the same transaction.
fn fenced<C: postgres::GenericClient>(tx: &mut super::Db<'_, C>, epoch: u64) -> Fail {
    match tx.query_one(CURRENT_EPOCH, &[]) {
        Ok(row) => Fail::Store(StoreFailure::Fenced {
            epoch,
            current: int_to_u64(row.get(0)),
        }),
        Err(e) => Fail::Db(e),
    }
}

fn read_journal<P: DeserializeOwned>(
    db: &mut Plain<'_>,
    from: u64,
    most: usize,
) -> Result<NodeReply<P>, Fail> {
    let rows = db.query(READ_JOURNAL, &[&u64_to_int(from), &limit(most)])?;
    let starts_at_from = rows
        .first()
        .is_some_and(|row| row.get::<_, i64>(0) == u64_to_int(from));
    if !starts_at_from && most > 0 {
        let bounds = db.query_one(JOURNAL_BOUNDS, &[])?;
        let oldest: Option<i64> = bounds.get(0);
        let snapshot: Option<i64> = bounds.get(1);
        if snapshot.is_some_and(|seq| from <= int_to_u64(seq)) {
            return Ok(NodeReply::Trimmed);
        }
        if let Some(oldest) = oldest.filter(|_| !rows.is_empty()) {
            return Err(Fail::Store(StoreFailure::Failed {
                cause: format!(
                    "journal hole: entry {from} is missing, the journal holds entries from {oldest} \
                     and no snapshot covers {from}"
                ),
            }));
        }
    }
    let mut out = Vec::with_capacity(rows.len());
    for (expected, row) in (from..).zip(&rows) {
        let seq = int_to_u64(row.get(0));
        if seq != expected {
            return Err(Fail::Store(StoreFailure::Failed {
                cause: format!("journal hole: entry {expected} is missing (next is {seq})"),
            }));
        }
        let format: i32 = row.get(2);
        let readable = Entry::<()>::READABLE;
        if !u32::try_from(format).is_ok_and(|f| readable.contains(&f)) {
            return Err(Fail::Store(corrupt(
                "journal",
                seq,
                format!(
                    "entry format {format}, this build reads formats {} to {}",
                    readable.start(),
                    readable.end()
                ),
            )));
        }
        let text: &str = row.get(3);
        let entry = codec::decode(text).map_err(|problem| corrupt("journal", seq, problem))?;
        out.push(JournalRow {
            seq,
            epoch: int_to_u64(row.get(1)),
            entry,
            bytes: text.len(),
        });
    }
    Ok(NodeReply::Journal(out))
}

/// Consumed messages as columns: ids, verdict texts, refused flags.
type Verdicts = (Vec<i64>, Vec<String>, Vec<bool>);

fn encode_verdicts(consumed: &[(MessageId, Verdict)]) -> Result<Verdicts, StoreFailure> {
    let mut columns: Verdicts = Default::default();
    for (id, verdict) in consumed {
        columns.0.push(u64_to_int(*id));
        columns.1.push(codec::encode("a verdict", verdict)?);
        columns.2.push(verdict.is_refusal());
    }
    Ok(columns)
}

/// A commit's outputs as the columns its statements take.
#[derive(Default)]
struct EncodedOutputs {
    tasks: Vec<i64>,
    tokens: Vec<i64>,
    agents: Vec<i64>,
    attempts: Vec<i32>,
    payloads: Vec<String>,
    incarnations: Vec<i64>,
    /// The rows to delete: cancelled or reported attempts.
    release_tasks: Vec<i64>,
    release_tokens: Vec<i64>,
    /// Tasks ended, their encoded ends and outputs, and their tenants.
    ended_tasks: Vec<i64>,
    ended_bodies: Vec<String>,
    ended_outputs: Vec<Option<String>>,
    ended_tenants: Vec<Option<i64>>,
    /// Runs ended, their encoded ends, and their tenants.
    run_ids: Vec<i64>,
    run_ends: Vec<String>,
    run_tenants: Vec<Option<i64>>,
    status: Option<(u64, String)>,
}

impl EncodedOutputs {
    fn new<P: Serialize>(outputs: &Outputs<P>) -> Result<Self, StoreFailure> {
        let mut out = EncodedOutputs::default();
        for end in &outputs.runs {
            out.run_ids.push(u64_to_int(end.run.get()));
            out.run_ends.push(codec::encode("a run's end", end)?);
            out.run_tenants
                .push(end.tenant.map(|t| u64_to_int(t.get())));
        }
        for a in &outputs.assign {
            out.tasks.push(u64_to_int(a.task.get()));
            out.tokens.push(u64_to_int(a.token.get()));
            out.agents.push(u64_to_int(a.agent.get()));
            out.attempts
                .push(i32::try_from(a.attempt).unwrap_or(i32::MAX));
            out.payloads.push(codec::encode("a payload", &a.payload)?);
            out.incarnations.push(u64_to_int(a.incarnation));
        }
        for (task, token) in outputs.cancel.iter().chain(&outputs.closed) {
            out.release_tasks.push(u64_to_int(task.get()));
            out.release_tokens.push(u64_to_int(token.get()));
        }
        let mut results: HashMap<TaskId, &P> =
            outputs.results.iter().map(|(t, o)| (*t, o)).collect();
        let tenants: HashMap<TaskId, TenantId> = outputs.tenants.iter().copied().collect();
        for (task, end) in &outputs.ended {
            (out.ended_tenants).push(tenants.get(task).map(|t| u64_to_int(t.get())));
            out.ended_tasks.push(u64_to_int(task.get()));
            out.ended_bodies.push(codec::encode("an outcome", end)?);
            let output = results.remove(task);
            out.ended_outputs
                .push(output.map(|o| codec::encode("an output", o)).transpose()?);
        }
        if let Some(status) = &outputs.status {
            out.status = Some((status.epoch, codec::encode("the status", status)?));
        }
        Ok(out)
    }
}

/// Rule 3: fence, append, consume, publish, in one call of the schema's
/// `commit_batch` (one statement, atomic by itself). Its refusals come
/// back as the contract's answers: fenced, or a conflict.
fn commit<P>(
    db: &mut Plain<'_>,
    epoch: u64,
    ttl: Duration,
    first_seq: u64,
    entries: &[String],
    consumed: &Verdicts,
    outputs: &EncodedOutputs,
) -> Result<NodeReply<P>, Fail> {
    let (ids, verdicts, refused) = consumed;
    let status_epoch = outputs.status.as_ref().map(|(e, _)| u64_to_int(*e));
    let status = outputs.status.as_ref().map(|(_, body)| body);
    let called = db.execute(
        COMMIT_BATCH,
        &[
            &u64_to_int(epoch),
            &millis(ttl),
            &u64_to_int(first_seq),
            &FORMAT,
            &entries,
            ids,
            verdicts,
            refused,
            &outputs.tasks,
            &outputs.tokens,
            &outputs.agents,
            &outputs.attempts,
            &outputs.payloads,
            &outputs.incarnations,
            &outputs.release_tasks,
            &outputs.release_tokens,
            &outputs.ended_tasks,
            &outputs.ended_bodies,
            &outputs.ended_outputs,
            &outputs.ended_tenants,
            &outputs.run_ids,
            &outputs.run_ends,
            &outputs.run_tenants,
            &status_epoch,
            &status,
        ],
    );
    match called {
        Ok(_) => Ok(NodeReply::Done),
        Err(e) => Err(refusal(e, epoch, first_seq)),
    }
}

/// What a refused `commit_batch` answers: its own SQLSTATEs (see
/// `schema/v14.sql`) as the contract's answers, any other error as is.
fn refusal(e: postgres::Error, epoch: u64, first_seq: u64) -> Fail {
    let Some(db) = e.as_db_error() else {
        return Fail::Db(e);
    };
    match db.code().code() {
        FENCED => Fail::Store(StoreFailure::Fenced {
            epoch,
            current: db
                .detail()
                .and_then(|d| d.parse::<i64>().ok())
                .map_or(0, int_to_u64),
        }),
        CONFLICT => Fail::Store(StoreFailure::Conflict {
            what: db.message().to_string(),
        }),
        _ if db.code() == &SqlState::UNIQUE_VIOLATION => Fail::Store(StoreFailure::Conflict {
            what: format!("journal entry {first_seq} or after was already written"),
        }),
        _ => Fail::Db(e),
    }
}
