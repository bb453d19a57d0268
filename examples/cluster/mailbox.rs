//! The mailboxes between the leader and the other processes: the inbox
//! agents and clients post messages to (registrations, heartbeats,
//! reports, submissions), and the outbox the leader publishes assignments
//! to and agents claim them from.

use crate::model::Message;
use crate::store::{Store, StoreError, fence};

/// One assignment an agent claimed.
#[derive(Debug)]
pub(crate) struct Claim {
    /// The task.
    pub(crate) task: i64,
    /// The attempt's fencing token.
    pub(crate) token: i64,
}

/// An outbox row to write: an assignment for an agent.
#[derive(Debug)]
pub(crate) struct Assignment {
    /// The task.
    pub(crate) task: i64,
    /// The attempt's fencing token.
    pub(crate) token: i64,
    /// The agent.
    pub(crate) agent: i64,
    /// 1 for the first attempt.
    pub(crate) attempt: i32,
    /// The payload as JSON.
    pub(crate) payload: String,
}

/// The status row a leader publishes.
#[derive(Debug, Default, Clone)]
pub(crate) struct Status {
    /// Last journal row applied.
    pub(crate) seq: i64,
    /// Tasks queued, delayed or in flight.
    pub(crate) live: i64,
    /// Tasks submitted so far.
    pub(crate) submitted: i64,
    /// Tasks completed.
    pub(crate) completed: i64,
    /// Tasks dead-lettered.
    pub(crate) dead_lettered: i64,
    /// Tasks expired.
    pub(crate) expired: i64,
    /// Journal rows appended over the run (all epochs).
    pub(crate) journal_rows: i64,
    /// Their bytes.
    pub(crate) journal_bytes: i64,
}

/// What one applied batch produced, for [`Store::publish`].
#[derive(Debug, Default)]
pub(crate) struct Outputs {
    /// New assignments.
    pub(crate) assign: Vec<Assignment>,
    /// Stopped attempts (task, token).
    pub(crate) cancel: Vec<(i64, i64)>,
    /// Report verdicts (inbox id, "accepted" / "rejected: …").
    pub(crate) verdicts: Vec<(i64, String)>,
    /// The status row.
    pub(crate) status: Option<Status>,
    /// Events (name, wall ms, detail).
    pub(crate) events: Vec<(String, i64, String)>,
}

impl Store {
    // --- the inbox ---------------------------------------------------------

    /// Posts messages from `agent` (0 for a client).
    ///
    /// # Errors
    ///
    /// [`StoreError::Db`].
    pub(crate) fn post(&mut self, agent: i64, messages: &[Message]) -> Result<(), StoreError> {
        let kinds: Vec<&str> = messages.iter().map(Message::kind).collect();
        let bodies: Vec<String> = messages
            .iter()
            .map(|m| serde_json::to_string(m).expect("messages serialize"))
            .collect();
        self.client().execute(
            "INSERT INTO inbox (agent, kind, body) SELECT $1, k, b FROM unnest($2::text[], $3::text[]) AS u(k, b)",
            &[&agent, &kinds, &bodies],
        )?;
        Ok(())
    }

    /// Up to `limit` messages not consumed yet, oldest first, as (id,
    /// agent, body).
    ///
    /// # Errors
    ///
    /// [`StoreError::Db`].
    pub(crate) fn pending(&mut self, limit: i64) -> Result<Vec<(i64, i64, String)>, StoreError> {
        let rows = self.client().query(
            "SELECT id, agent, body FROM inbox WHERE seq IS NULL ORDER BY id LIMIT $1",
            &[&limit],
        )?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    /// Posts `agent`'s reports and marks the assignments they answer done,
    /// in one transaction: an outbox row is `claimed` exactly while the
    /// agent holds the attempt.
    ///
    /// # Errors
    ///
    /// [`StoreError::Db`].
    pub(crate) fn post_reports(
        &mut self,
        agent: i64,
        reports: &[Message],
        done: &[(i64, i64)],
    ) -> Result<(), StoreError> {
        let mut tx = self.client().transaction()?;
        let kinds: Vec<&str> = reports.iter().map(Message::kind).collect();
        let bodies: Vec<String> = reports
            .iter()
            .map(|m| serde_json::to_string(m).expect("messages serialize"))
            .collect();
        tx.execute(
            "INSERT INTO inbox (agent, kind, body) SELECT $1, k, b FROM unnest($2::text[], $3::text[]) AS u(k, b)",
            &[&agent, &kinds, &bodies],
        )?;
        let (tasks, tokens): (Vec<i64>, Vec<i64>) = done.iter().copied().unzip();
        tx.execute(
            "UPDATE outbox SET state = 'done' FROM unnest($1::bigint[], $2::bigint[]) AS u(t, k)
             WHERE outbox.task = u.t AND outbox.token = u.k",
            &[&tasks, &tokens],
        )?;
        Ok(tx.commit()?)
    }

    /// Reports of `agent` the dispatcher rejected and the agent has not
    /// seen, marked seen, as (inbox id, verdict).
    ///
    /// # Errors
    ///
    /// [`StoreError::Db`].
    pub(crate) fn take_rejections(&mut self, agent: i64) -> Result<Vec<(i64, String)>, StoreError> {
        let rows = self.client().query(
            "UPDATE inbox SET seen = true WHERE agent = $1 AND verdict LIKE 'rejected%' AND NOT seen
             RETURNING id, verdict",
            &[&agent],
        )?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    // --- the leader's outputs ------------------------------------------------

    /// Writes what applying a batch decided, fenced: new assignments
    /// (idempotent on task and token), cancelled attempts, report verdicts,
    /// and the status row.
    ///
    /// # Errors
    ///
    /// [`StoreError::Fenced`], [`StoreError::Db`].
    pub(crate) fn publish(&mut self, epoch: i64, out: &Outputs) -> Result<(), StoreError> {
        let mut tx = self.client().transaction()?;
        fence(&mut tx, epoch)?;
        if !out.assign.is_empty() {
            let col = |f: fn(&Assignment) -> i64| out.assign.iter().map(f).collect::<Vec<i64>>();
            let attempts: Vec<i32> = out.assign.iter().map(|a| a.attempt).collect();
            let payloads: Vec<&str> = out.assign.iter().map(|a| a.payload.as_str()).collect();
            tx.execute(
                "INSERT INTO outbox (task, token, agent, attempt, payload, epoch)
                 SELECT t, k, a, n, p, $6 FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::int[], $5::text[])
                     AS u(t, k, a, n, p)
                 ON CONFLICT (task, token) DO NOTHING",
                &[&col(|a| a.task), &col(|a| a.token), &col(|a| a.agent), &attempts, &payloads, &epoch],
            )?;
        }
        if !out.cancel.is_empty() {
            let (tasks, tokens): (Vec<i64>, Vec<i64>) = out.cancel.iter().copied().unzip();
            tx.execute(
                "UPDATE outbox SET state = 'cancelled' FROM unnest($1::bigint[], $2::bigint[]) AS u(t, k)
                 WHERE outbox.task = u.t AND outbox.token = u.k AND outbox.state = 'ready'",
                &[&tasks, &tokens],
            )?;
        }
        if !out.verdicts.is_empty() {
            let (ids, verdicts): (Vec<i64>, Vec<&str>) =
                out.verdicts.iter().map(|(id, v)| (*id, v.as_str())).unzip();
            tx.execute(
                "UPDATE inbox SET verdict = u.v FROM unnest($1::bigint[], $2::text[]) AS u(i, v)
                 WHERE inbox.id = u.i AND inbox.verdict IS NULL",
                &[&ids, &verdicts],
            )?;
        }
        if let Some(s) = &out.status {
            tx.execute(
                "INSERT INTO status VALUES (1, $1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (id) DO UPDATE SET epoch = $1, seq = $2, live = $3, submitted = $4,
                     completed = $5, dead_lettered = $6, expired = $7, journal_rows = $8, journal_bytes = $9",
                &[&epoch, &s.seq, &s.live, &s.submitted, &s.completed, &s.dead_lettered, &s.expired, &s.journal_rows, &s.journal_bytes],
            )?;
        }
        for (name, at_ms, detail) in &out.events {
            tx.execute(
                "INSERT INTO events (name, epoch, at_ms, detail) VALUES ($1, $2, $3, $4)",
                &[name, &epoch, at_ms, detail],
            )?;
        }
        Ok(tx.commit()?)
    }

    /// Outbox rows still `ready`, as (task, token): a new leader cancels
    /// those its state no longer holds in flight.
    ///
    /// # Errors
    ///
    /// [`StoreError::Db`].
    pub(crate) fn ready_assignments(&mut self) -> Result<Vec<(i64, i64)>, StoreError> {
        let rows = self
            .client()
            .query("SELECT task, token FROM outbox WHERE state = 'ready'", &[])?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Claims up to `limit` of `agent`'s ready assignments (`FOR UPDATE
    /// SKIP LOCKED`: two processes claiming for one agent never share one).
    ///
    /// # Errors
    ///
    /// [`StoreError::Db`].
    pub(crate) fn claim(&mut self, agent: i64, limit: i64) -> Result<Vec<Claim>, StoreError> {
        let rows = self.client().query(
            "UPDATE outbox SET state = 'claimed' WHERE (task, token) IN (
                 SELECT task, token FROM outbox WHERE agent = $1 AND state = 'ready'
                 ORDER BY token LIMIT $2 FOR UPDATE SKIP LOCKED)
             RETURNING task, token",
            &[&agent, &limit],
        )?;
        Ok(rows
            .iter()
            .map(|r| Claim {
                task: r.get(0),
                token: r.get(1),
            })
            .collect())
    }

    /// Stores the leader's final state (the driver asked it to stop).
    ///
    /// # Errors
    ///
    /// [`StoreError::Fenced`], [`StoreError::Db`].
    pub(crate) fn put_final_state(
        &mut self,
        epoch: i64,
        seq: i64,
        state: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.client().transaction()?;
        fence(&mut tx, epoch)?;
        tx.execute(
            "INSERT INTO final_state (epoch, seq, state) VALUES ($1, $2, $3)",
            &[&epoch, &seq, &state],
        )?;
        Ok(tx.commit()?)
    }
}
