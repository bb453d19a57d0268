//! The clients' operations: posting as [`Sender::Client`], verdicts,
//! the status and task outcomes. Each is planned once ([`plan`]: its
//! statement, its parameters and how its rows read back), and run by the
//! blocking store ([`PgStore`]) or the async client
//! ([`AsyncPgClient`](crate::AsyncPgClient)) alike.
//!
//! [`Sender::Client`]: taskweave::cluster::Sender::Client

use std::collections::HashMap;

use postgres::Row;
use postgres::types::ToSql;
use serde::Serialize;
use serde::de::DeserializeOwned;
use taskweave::cluster::{
    ClientOp, ClientReply, MAX_RUN_ENDS_PAGE, Outcome, RunEnd, RunEndCursor, Status, StoreFailure,
    TaskEnd, Verdict,
};
use taskweave::{TaskId, WorkflowId};

use super::codec::{self, int_to_u64, lease_columns, u64_to_int};
use super::{PgStore, corrupt};

/// Posts client messages; ids are drawn in `unnest` order, so sorted ids
/// follow the messages' order.
const POST: &str = "INSERT INTO inbox (kind, body)
SELECT k, b FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(k, b, n) ORDER BY n
RETURNING id";

const VERDICTS: &str = "SELECT id, verdict FROM inbox WHERE id = ANY($1)";

const OUTCOMES: &str = "SELECT task, body, output FROM outcomes WHERE task = ANY($1)";

const RUN_ENDS: &str = "SELECT run, body FROM run_ends WHERE run = ANY($1)";

/// Ends after the place `($1, $2)`, in that order; `seq >= $1` lets the
/// index on `seq` find them (an incremental sort orders a commit's runs).
/// A run id is a `u64` stored with its bits unchanged, so one with the top
/// bit set is negative: `run # $4` (`$4` = `i64::MIN`, the sign bit
/// flipped) orders the ids as unsigned numbers, as [`RunEndCursor`] does.
const RUN_ENDS_AFTER: &str = "SELECT seq, run, body FROM run_ends
WHERE seq >= $1 AND (seq, run # $4) > ($1, $2) ORDER BY seq, run # $4 LIMIT $3";

/// The lease's columns ([`lease_columns!`]), then the status's body.
const LEASE_AND_STATUS: &str = concat!(
    "SELECT l.*, s.body FROM (SELECT ",
    lease_columns!(),
    " FROM lease WHERE id = 1) AS l LEFT JOIN status s ON s.id = 1"
);

/// A parameter of a planned statement.
pub(crate) type Param = Box<dyn ToSql + Sync + Send>;

/// One client operation, ready to run.
pub(crate) enum Plan<P> {
    /// Answered without the database.
    Answered(Box<ClientReply<P>>),
    /// One statement: a post (`write`, whose answer may be lost at its
    /// commit) or a read, and how its rows read back.
    Query {
        sql: &'static str,
        params: Vec<Param>,
        write: bool,
        rows: Rows,
    },
}

/// What a planned statement's rows are, for [`Rows::decode`].
pub(crate) enum Rows {
    /// The ids of posted messages.
    Posted,
    /// The verdicts of these messages.
    Verdicts(Vec<u64>),
    /// The outcomes of these tasks.
    Outcomes(Vec<TaskId>),
    /// The ends of these runs.
    Runs(Vec<WorkflowId>),
    /// A page of run ends.
    RunEndsAfter,
    /// The lease and the status.
    Status,
}

/// The parameters as the drivers take them.
pub(crate) fn borrowed(params: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

/// The statement, parameters and rows of `op`.
pub(crate) fn plan<P: Serialize>(op: ClientOp<P>) -> Result<Plan<P>, StoreFailure> {
    let ids = |ids: Vec<i64>| -> Vec<Param> { vec![Box::new(ids)] };
    let read = |sql, params, rows| Plan::Query {
        sql,
        params,
        write: false,
        rows,
    };
    Ok(match op {
        ClientOp::Post(messages) => {
            let (kinds, bodies) = codec::inbox_columns(&messages)?;
            let kinds: Vec<String> = kinds.into_iter().map(str::to_owned).collect();
            Plan::Query {
                sql: POST,
                params: vec![Box::new(kinds), Box::new(bodies)],
                write: true,
                rows: Rows::Posted,
            }
        }
        ClientOp::Verdicts(wanted) => {
            let params = ids(wanted.iter().map(|id| u64_to_int(*id)).collect());
            read(VERDICTS, params, Rows::Verdicts(wanted))
        }
        ClientOp::Outcomes(tasks) => {
            let params = ids(tasks.iter().map(|t| u64_to_int(t.get())).collect());
            read(OUTCOMES, params, Rows::Outcomes(tasks))
        }
        ClientOp::Runs(runs) => {
            let params = ids(runs.iter().map(|r| u64_to_int(r.get())).collect());
            read(RUN_ENDS, params, Rows::Runs(runs))
        }
        ClientOp::RunEndsAfter { after, limit } => {
            let limit = limit.min(MAX_RUN_ENDS_PAGE) as i64;
            // No journal position reaches the top bit: nothing is after
            // such a cursor (and as a BIGINT it would read negative).
            let Ok(seq) = i64::try_from(after.seq()) else {
                return Ok(Plan::Answered(Box::new(ClientReply::RunEndsAfter(
                    Vec::new(),
                ))));
            };
            let run = u64_to_int(after.run().get()) ^ i64::MIN;
            let params: Vec<Param> = vec![
                Box::new(seq),
                Box::new(run),
                Box::new(limit),
                Box::new(i64::MIN),
            ];
            read(RUN_ENDS_AFTER, params, Rows::RunEndsAfter)
        }
        ClientOp::Status => read(LEASE_AND_STATUS, Vec::new(), Rows::Status),
    })
}

impl Rows {
    /// The reply `rows` make; a row that does not decode is a failure
    /// naming its table and key.
    pub(crate) fn decode<P: DeserializeOwned + Clone>(
        self,
        rows: &[Row],
    ) -> Result<ClientReply<P>, StoreFailure> {
        match self {
            Rows::Posted => {
                let mut ids: Vec<u64> = rows.iter().map(|r| int_to_u64(r.get(0))).collect();
                ids.sort_unstable();
                Ok(ClientReply::Posted(ids))
            }
            Rows::Verdicts(ids) => verdicts(rows, &ids),
            Rows::Outcomes(tasks) => outcomes(rows, &tasks),
            Rows::Runs(runs) => {
                let mut found = HashMap::with_capacity(runs.len());
                for row in rows {
                    let end = decode_run_end(row.get(0), row.get(1))?;
                    found.insert(end.run, end);
                }
                Ok(ClientReply::Runs(
                    runs.iter().map(|run| found.get(run).cloned()).collect(),
                ))
            }
            Rows::RunEndsAfter => {
                let mut ends = Vec::with_capacity(rows.len());
                for row in rows {
                    let run: i64 = row.get(1);
                    let end = decode_run_end(run, row.get(2))?;
                    ends.push((RunEndCursor::new(int_to_u64(row.get(0)), end.run), end));
                }
                Ok(ClientReply::RunEndsAfter(ends))
            }
            Rows::Status => status(rows),
        }
    }
}

impl<P: Serialize + DeserializeOwned + Clone> PgStore<P> {
    pub(super) fn client_op(&mut self, op: ClientOp<P>) -> Result<ClientReply<P>, StoreFailure> {
        match plan(op)? {
            Plan::Answered(reply) => Ok(*reply),
            Plan::Query {
                sql,
                params,
                write: true,
                rows,
            } => self.write(|tx| Ok(rows.decode(&tx.query(sql, &borrowed(&params))?)?)),
            Plan::Query {
                sql, params, rows, ..
            } => self.read(|db| Ok(rows.decode(&db.query(sql, &borrowed(&params))?)?)),
        }
    }
}

fn verdicts<P>(rows: &[Row], ids: &[u64]) -> Result<ClientReply<P>, StoreFailure> {
    let mut found = HashMap::with_capacity(ids.len());
    for row in rows {
        let id: i64 = row.get(0);
        if let Some(text) = row.get::<_, Option<&str>>(1) {
            let verdict: Verdict =
                codec::decode(text).map_err(|problem| corrupt("inbox", id, problem))?;
            found.insert(int_to_u64(id), verdict);
        }
    }
    Ok(ClientReply::Verdicts(
        ids.iter().map(|id| found.get(id).cloned()).collect(),
    ))
}

fn outcomes<P: DeserializeOwned + Clone>(
    rows: &[Row],
    tasks: &[TaskId],
) -> Result<ClientReply<P>, StoreFailure> {
    let mut found = HashMap::with_capacity(tasks.len());
    for row in rows {
        let task: i64 = row.get(0);
        let end: TaskEnd =
            codec::decode(row.get(1)).map_err(|problem| corrupt("outcomes", task, problem))?;
        let output: Option<P> = row
            .get::<_, Option<&str>>(2)
            .map(codec::decode)
            .transpose()
            .map_err(|problem| corrupt("outcomes", task, problem))?;
        found.insert(TaskId::new(int_to_u64(task)), Outcome { end, output });
    }
    Ok(ClientReply::Outcomes(
        tasks.iter().map(|task| found.get(task).cloned()).collect(),
    ))
}

fn status<P>(rows: &[Row]) -> Result<ClientReply<P>, StoreFailure> {
    let Some(row) = rows.first() else {
        return Err(corrupt("lease", 1, "the lease row is missing"));
    };
    let lease = codec::lease(row);
    let status: Option<Status> = row
        .get::<_, Option<&str>>(5)
        .map(codec::decode)
        .transpose()
        .map_err(|problem| corrupt("status", 1, problem))?;
    Ok(ClientReply::Status(lease, status))
}

/// A row of `run_ends`: the end it holds must be its run's.
fn decode_run_end<P: DeserializeOwned>(run: i64, body: &str) -> Result<RunEnd<P>, StoreFailure> {
    let end: RunEnd<P> =
        codec::decode(body).map_err(|problem| corrupt("run_ends", run, problem))?;
    if end.run.get() != int_to_u64(run) {
        let problem = format!("the row of run {run} holds the end of {}", end.run);
        return Err(corrupt("run_ends", run, problem));
    }
    Ok(end)
}
