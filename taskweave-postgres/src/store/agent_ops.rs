//! The agents' operations: incarnations, posts, claims (rule 5), reports
//! (rule 6) and refusals. Under an agent login, row-level security lets
//! each statement see and touch only that agent's rows.

use serde::Serialize;
use serde::de::DeserializeOwned;
use taskweave::cluster::{AgentOp, AgentReply, Assignment, Finished, Sender, StoreFailure};
use taskweave::{AgentId, AttemptToken, TaskId};

use super::codec::{self, int_to_u64, limit, u64_to_int};
use super::{Fail, PgStore, corrupt};

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

impl<P: Serialize + DeserializeOwned + Clone> PgStore<P> {
    pub(super) fn agent_op(&mut self, op: AgentOp<P>) -> Result<AgentReply<P>, StoreFailure> {
        match op {
            AgentOp::Incarnate { agent: _ } => self.read(|db| {
                let next: i64 = db.query_one(INCARNATE, &[])?.get(0);
                Ok(AgentReply::Incarnation(int_to_u64(next)))
            }),
            AgentOp::Post { sender, messages } => {
                let (agent, incarnation) = sender_columns(sender);
                let (kinds, bodies) = codec::inbox_columns(&messages)?;
                self.write_one(|tx| {
                    let row = tx.query_one(POST, &[&agent, &incarnation, &kinds, &bodies])?;
                    Ok(AgentReply::Posted {
                        stopped: row.get(0),
                    })
                })
            }
            AgentOp::Claim {
                agent,
                incarnation,
                limit: most,
            } => self.write_one(|db| {
                let rows = db.query(
                    CLAIM,
                    &[
                        &u64_to_int(agent.get()),
                        &u64_to_int(incarnation),
                        &limit(most),
                    ],
                )?;
                let mut stopped = false;
                let mut claimed = Vec::with_capacity(rows.len());
                for row in &rows {
                    stopped = row.get(0);
                    let Some(task) = row.get::<_, Option<i64>>(1) else {
                        continue;
                    };
                    claimed.push(assignment(row, task)?);
                }
                claimed.sort_by_key(|a: &Assignment<P>| a.token);
                Ok(AgentReply::Claimed {
                    rows: claimed,
                    stopped,
                })
            }),
            AgentOp::Report { sender, reports } => {
                let (agent, incarnation) = sender_columns(sender);
                let attempts = |r: &Finished<P>| (r.task_report().task, r.task_report().token);
                let tasks: Vec<i64> = reports
                    .iter()
                    .map(|r| u64_to_int(attempts(r).0.get()))
                    .collect();
                let tokens: Vec<i64> = reports
                    .iter()
                    .map(|r| u64_to_int(attempts(r).1.get()))
                    .collect();
                let bodies = reports
                    .into_iter()
                    .map(codec::report_body)
                    .collect::<Result<Vec<_>, _>>()?;
                self.write_one(|tx| {
                    let row =
                        tx.query_one(REPORT, &[&agent, &incarnation, &bodies, &tasks, &tokens])?;
                    Ok(AgentReply::Posted {
                        stopped: row.get(0),
                    })
                })
            }
            AgentOp::TakeRefusals { agent } => self.write_one(|tx| {
                let rows = tx.query(TAKE_REFUSALS, &[&u64_to_int(agent.get())])?;
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
                Ok(AgentReply::Refusals(refusals))
            }),
        }
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

/// A claimed outbox row, its payload decoded. A row that does not decode
/// fails the claim's answer; the claim itself, one statement, has taken
/// effect, and the next claim answers that row again with the rows this
/// incarnation holds (as it does after any lost answer).
fn assignment<P: DeserializeOwned>(row: &postgres::Row, task: i64) -> Result<Assignment<P>, Fail> {
    let token: i64 = row.get(2);
    let attempt: i32 = row.get(4);
    let payload = codec::decode(row.get(5))
        .map_err(|problem| corrupt("outbox", format!("(task {task}, token {token})"), problem))?;
    Ok(Assignment {
        task: TaskId::new(int_to_u64(task)),
        agent: AgentId::new(int_to_u64(row.get(3))),
        token: AttemptToken::new(int_to_u64(token)),
        attempt: u32::try_from(attempt).unwrap_or(0),
        incarnation: row.get::<_, Option<i64>>(6).map_or(0, int_to_u64),
        payload,
    })
}
