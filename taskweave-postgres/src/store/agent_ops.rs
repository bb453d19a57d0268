//! The agents' operations: incarnations, posts, claims (rule 5), reports
//! (rule 6) and refusals. Under an agent login, row-level security lets
//! each statement see and touch only that agent's rows. Each is planned
//! once ([`plan`]) and run by the blocking store or the async agent alike.

use postgres::Row;
use serde::Serialize;
use serde::de::DeserializeOwned;
use taskweave::cluster::{AgentOp, AgentReply, Assignment, Finished, Sender, StoreFailure};
use taskweave::scheduler::{AttemptOutcome, TaskReport};
use taskweave::{AgentId, AttemptToken, TaskId};

use super::client_ops::{Param, borrowed};
use super::codec::{self, int_to_u64, limit, u64_to_int};
use super::{PgStore, Plain};

const INCARNATE: &str = "SELECT nextval('incarnations')";

/// Posts messages as `$1`/`$2` (NULL for a client) and answers the lease's
/// `stopped`, in one statement.
const POST: &str = "WITH posted AS (
    INSERT INTO inbox (agent, incarnation, kind, body)
    SELECT $1::bigint, $2::bigint, k, b FROM unnest($3::text[], $4::text[]) AS u(k, b))
SELECT stopped FROM lease WHERE id = 1";

/// Claims up to `$3` ready rows of agent `$1` assigned to incarnation `$2`
/// (or to none: rows of a build before incarnations were stamped), and
/// answers them with those it claimed before
/// (the second branch reads the statement's snapshot, so a row is never
/// answered twice), with the lease's `stopped` on every row (one row of
/// NULLs when none).
const CLAIM: &str = "WITH claimed AS (
    UPDATE outbox SET state = 'claimed', incarnation = $2
    WHERE (task, token) IN (
        SELECT task, token FROM outbox WHERE agent = $1
          AND state = 'ready' AND (incarnation IS NULL OR incarnation = $2)
        ORDER BY token LIMIT $3 FOR UPDATE SKIP LOCKED)
    RETURNING task, token, agent, attempt, payload, incarnation),
held AS (
    SELECT task, token, agent, attempt, payload, incarnation FROM claimed
    UNION ALL
    SELECT task, token, agent, attempt, payload, incarnation FROM outbox
    WHERE agent = $1 AND state = 'claimed' AND incarnation = $2)
SELECT l.stopped, h.task, h.token, h.agent, h.attempt, h.payload, h.incarnation
FROM lease l LEFT JOIN held h ON true WHERE l.id = 1";

/// Posts reports and closes the rows they answer that this incarnation
/// holds, in one statement.
const REPORT: &str = "WITH posted AS (
    INSERT INTO inbox (agent, incarnation, kind, body)
    SELECT $1::bigint, $2::bigint, 'report', b FROM unnest($3::text[]) AS u(b)),
closed AS (
    UPDATE outbox SET state = 'done' FROM unnest($4::bigint[], $5::bigint[]) AS u(t, k)
    WHERE outbox.task = u.t AND outbox.token = u.k AND outbox.agent = $1
      AND outbox.state = 'claimed' AND outbox.incarnation = $2)
SELECT stopped FROM lease WHERE id = 1";

const TAKE_REFUSALS: &str = "UPDATE inbox SET seen = true
WHERE agent = $1 AND refused AND NOT seen RETURNING id, verdict";

/// One agent operation, ready to run: its statement, its parameters,
/// whether it writes (its answer may then be lost at its commit), and how
/// its rows read back. The blocking store ([`PgStore`]) and the async agent
/// ([`AsyncPgAgent`](crate::AsyncPgAgent)) run the same plans.
pub(crate) struct AgentPlan {
    pub(crate) sql: &'static str,
    pub(crate) params: Vec<Param>,
    pub(crate) write: bool,
    pub(crate) rows: AgentRows,
}

/// What a planned agent statement's rows are, for [`AgentRows::decode`].
pub(crate) enum AgentRows {
    /// A new incarnation.
    Incarnation,
    /// The lease's `stopped` after a post or a report.
    Posted,
    /// The rows this agent's incarnation claimed and holds, each with the
    /// lease's `stopped`.
    Claimed { agent: AgentId, incarnation: u64 },
    /// The refusals taken.
    Refusals,
}

/// The statement, parameters and rows of `op`. Every one is a single
/// statement, atomic by itself: no transaction around it.
pub(crate) fn plan<P: Serialize>(op: AgentOp<P>) -> Result<AgentPlan, StoreFailure> {
    let write = |sql, params, rows| AgentPlan {
        sql,
        params,
        write: true,
        rows,
    };
    Ok(match op {
        AgentOp::Incarnate { agent: _ } => AgentPlan {
            sql: INCARNATE,
            params: Vec::new(),
            write: false,
            rows: AgentRows::Incarnation,
        },
        AgentOp::Post { sender, messages } => {
            let (agent, incarnation) = sender_columns(sender);
            let (kinds, bodies) = codec::inbox_columns(&messages)?;
            let kinds: Vec<String> = kinds.into_iter().map(str::to_owned).collect();
            let params: Vec<Param> = vec![
                Box::new(agent),
                Box::new(incarnation),
                Box::new(kinds),
                Box::new(bodies),
            ];
            write(POST, params, AgentRows::Posted)
        }
        AgentOp::Claim {
            agent,
            incarnation,
            limit: most,
        } => {
            let params: Vec<Param> = vec![
                Box::new(u64_to_int(agent.get())),
                Box::new(u64_to_int(incarnation)),
                Box::new(limit(most)),
            ];
            write(CLAIM, params, AgentRows::Claimed { agent, incarnation })
        }
        AgentOp::Report { sender, reports } => {
            let (agent, incarnation) = sender_columns(sender);
            let attempts = |r: &Finished<P>| (r.task_report().task, r.task_report().token);
            let (tasks, tokens): (Vec<i64>, Vec<i64>) = reports
                .iter()
                .map(|r| {
                    let (task, token) = attempts(r);
                    (u64_to_int(task.get()), u64_to_int(token.get()))
                })
                .unzip();
            let bodies = reports
                .into_iter()
                .map(codec::report_body)
                .collect::<Result<Vec<_>, _>>()?;
            let params: Vec<Param> = vec![
                Box::new(agent),
                Box::new(incarnation),
                Box::new(bodies),
                Box::new(tasks),
                Box::new(tokens),
            ];
            write(REPORT, params, AgentRows::Posted)
        }
        AgentOp::TakeRefusals { agent } => write(
            TAKE_REFUSALS,
            vec![Box::new(u64_to_int(agent.get()))],
            AgentRows::Refusals,
        ),
    })
}

/// A decoded reply, and the report to post before answering it: claimed
/// rows whose payloads do not decode fail for good (their agent could
/// never run them), so a corrupt row neither blocks every later claim
/// nor waits for an attempt timeout.
pub(crate) struct Decoded<P> {
    pub(crate) reply: AgentReply<P>,
    pub(crate) unreadable: Option<AgentPlan>,
}

impl AgentRows {
    /// The reply `rows` make, with the report of any claimed row that
    /// does not decode.
    pub(crate) fn decode<P: Serialize + DeserializeOwned>(
        self,
        rows: &[Row],
    ) -> Result<Decoded<P>, StoreFailure> {
        let reply = match self {
            AgentRows::Incarnation => AgentReply::Incarnation(int_to_u64(
                first(rows, "the sequence incarnations")?.get(0),
            )),
            AgentRows::Posted => AgentReply::Posted {
                stopped: first(rows, "the lease")?.get(0),
            },
            AgentRows::Claimed { agent, incarnation } => {
                return claimed(rows, agent, incarnation);
            }
            AgentRows::Refusals => {
                let mut refusals: Vec<(u64, String)> = rows
                    .iter()
                    .map(|row| {
                        let verdict: Option<&str> = row.get(1);
                        (
                            int_to_u64(row.get(0)),
                            codec::refusal(verdict.unwrap_or("refused")),
                        )
                    })
                    .collect();
                refusals.sort_unstable_by_key(|(id, _)| *id);
                AgentReply::Refusals(refusals)
            }
        };
        Ok(Decoded {
            reply,
            unreadable: None,
        })
    }
}

/// A claim's rows: the assignments that decode, in token order, and a
/// fatal failure report for each that does not.
fn claimed<P: Serialize + DeserializeOwned>(
    rows: &[Row],
    agent: AgentId,
    incarnation: u64,
) -> Result<Decoded<P>, StoreFailure> {
    let mut stopped = false;
    let mut claimed = Vec::with_capacity(rows.len());
    let mut failed = Vec::new();
    for row in rows {
        stopped = row.get(0);
        let Some(task) = row.get::<_, Option<i64>>(1) else {
            continue;
        };
        match assignment(row, task) {
            Ok(assignment) => claimed.push(assignment),
            Err(problem) => failed.push(Finished::report(TaskReport {
                task: TaskId::new(int_to_u64(task)),
                agent,
                token: AttemptToken::new(int_to_u64(row.get(2))),
                outcome: AttemptOutcome::fatal(format!(
                    "agent {agent} cannot read the payload: {problem}"
                )),
            })),
        }
    }
    claimed.sort_by_key(|a: &Assignment<P>| a.token);
    let unreadable = if failed.is_empty() {
        None
    } else {
        let sender = Sender::Agent { agent, incarnation };
        Some(plan::<P>(AgentOp::Report {
            sender,
            reports: failed,
        })?)
    };
    Ok(Decoded {
        reply: AgentReply::Claimed {
            rows: claimed,
            stopped,
        },
        unreadable,
    })
}

/// The one row a statement answers, or a failure naming what it read.
fn first<'a>(rows: &'a [Row], what: &str) -> Result<&'a Row, StoreFailure> {
    rows.first().ok_or_else(|| StoreFailure::Failed {
        cause: format!(
            "{what} answered no row: is the schema intact? (`taskweave-pg init` installs it)"
        ),
    })
}

impl<P: Serialize + DeserializeOwned + Clone> PgStore<P> {
    pub(super) fn agent_op(&mut self, op: AgentOp<P>) -> Result<AgentReply<P>, StoreFailure> {
        let plan = plan(op)?;
        let (sql, params, rows) = (plan.sql, plan.params, plan.rows);
        let run = |db: &mut Plain<'_>| Ok(rows.decode(&db.query(sql, &borrowed(&params))?)?);
        let decoded: Decoded<P> = if plan.write {
            self.write_one(run)?
        } else {
            self.read(run)?
        };
        if let Some(report) = decoded.unreadable {
            // Lost, the claim's answer is lost with it: the next claim
            // answers these rows again, and reports them again.
            self.write_one(|db| Ok(db.query(report.sql, &borrowed(&report.params))?))?;
        }
        Ok(decoded.reply)
    }
}

/// The `agent` and `incarnation` columns of a sender (NULL for a client,
/// whose tenant, if any, the database takes from its login).
fn sender_columns(sender: Sender) -> (Option<i64>, Option<i64>) {
    match sender {
        Sender::Agent { agent, incarnation } => {
            (Some(u64_to_int(agent.get())), Some(u64_to_int(incarnation)))
        }
        Sender::Client | Sender::Tenant(_) => (None, None),
    }
}

/// A claimed outbox row, its payload decoded; or why the payload does
/// not decode.
fn assignment<P: DeserializeOwned>(row: &Row, task: i64) -> Result<Assignment<P>, String> {
    let token: i64 = row.get(2);
    let attempt: i32 = row.get(4);
    let payload = codec::decode(row.get(5)).map_err(|problem| problem.to_string())?;
    Ok(Assignment {
        task: TaskId::new(int_to_u64(task)),
        agent: AgentId::new(int_to_u64(row.get(3))),
        token: AttemptToken::new(int_to_u64(token)),
        attempt: u32::try_from(attempt).unwrap_or(0),
        incarnation: row.get::<_, Option<i64>>(6).map_or(0, int_to_u64),
        payload,
    })
}
