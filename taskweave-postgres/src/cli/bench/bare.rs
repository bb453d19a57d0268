//! The bare `FOR UPDATE SKIP LOCKED` queues the cluster is measured
//! against, on the same database in the same run: the one-job-per-
//! transaction queue (a fixed yardstick, unchanged since it was first
//! measured), and a batched queue tuned as users of graphile-worker,
//! pg-boss and Oban run theirs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, NoTls};
use serde_json::{Value, json};
use taskweave_postgres::wall_now;

use super::harness::locked;
use super::meter::Meter;
use super::{BATCH, Bench, figure, percentile_ms, round};

/// The two bare queues.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Queue {
    /// One insert per job; each worker claims one job per transaction and
    /// completes it in another, polling every millisecond when idle.
    OneByOne,
    /// Jobs inserted 500 per transaction with a `NOTIFY`; each worker
    /// claims up to `--capacity` jobs per transaction, deletes them in one
    /// more, and sleeps on `LISTEN` when idle (a 100 ms poll as the net).
    Batched,
}

impl Queue {
    fn schema(self) -> &'static str {
        match self {
            Queue::OneByOne => "bare",
            Queue::Batched => "bare_batched",
        }
    }

    /// Its figures' names: jobs per second and costs per job.
    fn figures(self) -> (&'static str, &'static str) {
        match self {
            Queue::OneByOne => ("bare_queue_jobs_per_second", "bare_queue_cost_per_job"),
            Queue::Batched => (
                "bare_batched_queue_jobs_per_second",
                "bare_batched_queue_cost_per_job",
            ),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Queue::OneByOne => "bare queue",
            Queue::Batched => "batched bare queue",
        }
    }
}

/// What the workers share.
struct Progress {
    done: AtomicU64,
    last_done: AtomicU64,
    latencies: Mutex<Vec<u64>>,
}

impl Bench {
    /// Runs `queue` over `--tasks` jobs; answers its jobs per second.
    pub(super) fn bare(&mut self, admin: &mut Client, queue: Queue) -> Result<f64, String> {
        let schema = queue.schema();
        admin
            .batch_execute(&format!(
                "CREATE SCHEMA {schema};
                 CREATE TABLE {schema}.jobs (
                     id bigserial PRIMARY KEY,
                     payload jsonb NOT NULL,
                     state text NOT NULL DEFAULT 'ready',
                     attempts int NOT NULL DEFAULT 0,
                     locked_by int,
                     inserted_at timestamptz NOT NULL DEFAULT now(),
                     done_at timestamptz);
                 CREATE INDEX jobs_ready ON {schema}.jobs (id) WHERE state = 'ready';"
            ))
            .map_err(|e| format!("creating the {}: {e}", queue.name()))?;
        let n = self.tasks;
        let meter = Meter::start(admin)?;
        let progress = Arc::new(Progress {
            done: AtomicU64::new(0),
            last_done: AtomicU64::new(0),
            latencies: Mutex::new(Vec::new()),
        });
        let start_ns = wall_now().as_nanos();
        let capacity = i64::from(self.capacity);
        let workers: Vec<JoinHandle<Result<(), String>>> = (0..self.agents)
            .map(|worker| {
                let db = self.db.clone();
                let progress = Arc::clone(&progress);
                std::thread::spawn(move || match queue {
                    Queue::OneByOne => one_by_one_worker(&db, worker, n, &progress),
                    Queue::Batched => batched_worker(&db, worker, n, capacity, &progress),
                })
            })
            .collect();
        let mut failed = produce(&self.db, queue, n).err();
        if failed.is_some() {
            // The workers wait for jobs that will never come.
            progress.done.store(u64::MAX / 2, Ordering::Relaxed);
        }
        for w in workers {
            match w.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failed = failed.or(Some(e)),
                Err(_) => failed = failed.or(Some("a worker panicked".to_string())),
            }
        }
        if let Some(e) = failed {
            return Err(format!("the {}: {e}", queue.name()));
        }
        let last = progress.last_done.load(Ordering::Relaxed);
        let took = Duration::from_nanos(last.saturating_sub(start_ns));
        let jps = n as f64 / took.as_secs_f64().max(1e-9);
        let mut lat = std::mem::take(&mut *locked(&progress.latencies));
        lat.sort_unstable();
        let (rate, cost) = queue.figures();
        let mut costs = meter.per_task(admin, n)?;
        costs["figure"] = json!(cost);
        figure(json!({
            "figure": rate, "value": round(jps, 0), "jobs": n,
            "workers": self.agents, "seconds": round(took.as_secs_f64(), 3),
            "insert_to_claim_ms_p50": round(percentile_ms(&lat, 50.0), 2),
            "insert_to_claim_ms_p99": round(percentile_ms(&lat, 99.0), 2),
        }));
        figure(costs.clone());
        self.summary.push(format!(
            "bench: {}: {n} jobs in {:.2} s = {jps:.0} jobs/s ({} workers); \
             {} transactions, {} WAL bytes per job",
            queue.name(),
            took.as_secs_f64(),
            self.agents,
            costs["transactions_per_task"],
            costs["wal_bytes_per_task"],
        ));
        Ok(jps)
    }
}

/// Inserts `n` jobs stamped with their insertion time: one per
/// transaction, or [`BATCH`] per transaction with a notice to the workers.
fn produce(db: &str, queue: Queue, n: u64) -> Result<(), String> {
    let mut producer = Client::connect(db, NoTls).map_err(|e| e.to_string())?;
    let stamp = || json!({"t": wall_now().as_nanos()}).to_string();
    if queue == Queue::OneByOne {
        let insert = producer
            .prepare("INSERT INTO bare.jobs (payload) VALUES ($1::text::jsonb)")
            .map_err(|e| e.to_string())?;
        for _ in 0..n {
            producer
                .execute(&insert, &[&stamp()])
                .map_err(|e| format!("inserting a job: {e}"))?;
        }
        return Ok(());
    }
    let insert = producer
        .prepare(
            "WITH added AS (INSERT INTO bare_batched.jobs (payload)
                 SELECT p::jsonb FROM unnest($1::text[]) AS u(p) RETURNING 1)
             SELECT pg_notify('bare_batched', count(*)::text) FROM added",
        )
        .map_err(|e| e.to_string())?;
    let mut left = n;
    while left > 0 {
        let take = left.min(BATCH as u64);
        let payloads: Vec<String> = (0..take).map(|_| stamp()).collect();
        producer
            .query(&insert, &[&payloads])
            .map_err(|e| format!("inserting jobs: {e}"))?;
        left -= take;
    }
    Ok(())
}

/// Records the claim latencies of `payloads` (each stamped at insertion).
fn claimed(payloads: impl Iterator<Item = String>, mine: &mut Vec<u64>) {
    let now = wall_now().as_nanos();
    for payload in payloads {
        let sent = serde_json::from_str::<Value>(&payload).ok();
        if let Some(t) = sent
            .as_ref()
            .and_then(|p| p.get("t"))
            .and_then(Value::as_u64)
        {
            mine.push(now.saturating_sub(t));
        }
    }
}

/// A one-by-one worker: claims one job per transaction and completes it
/// in another, until `n` jobs are done.
fn one_by_one_worker(db: &str, worker: u64, n: u64, progress: &Progress) -> Result<(), String> {
    let mut client = Client::connect(db, NoTls).map_err(|e| e.to_string())?;
    let claim = client
        .prepare(
            "UPDATE bare.jobs SET state = 'running', attempts = attempts + 1, locked_by = $1
             WHERE id = (SELECT id FROM bare.jobs WHERE state = 'ready'
                         ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
             RETURNING id, payload::text",
        )
        .map_err(|e| e.to_string())?;
    let complete = client
        .prepare("UPDATE bare.jobs SET state = 'done', done_at = now() WHERE id = $1")
        .map_err(|e| e.to_string())?;
    let me = i32::try_from(worker).unwrap_or(i32::MAX);
    let mut mine = Vec::new();
    while progress.done.load(Ordering::Relaxed) < n {
        let row = client
            .query_opt(&claim, &[&me])
            .map_err(|e| format!("claiming: {e}"))?;
        let Some(row) = row else {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        };
        let id: i64 = row.get(0);
        claimed(std::iter::once(row.get(1)), &mut mine);
        client
            .execute(&complete, &[&id])
            .map_err(|e| format!("completing: {e}"))?;
        progress.done.fetch_add(1, Ordering::Relaxed);
        progress
            .last_done
            .fetch_max(wall_now().as_nanos(), Ordering::Relaxed);
    }
    locked(&progress.latencies).extend(mine);
    Ok(())
}

/// A batched worker: claims up to `capacity` jobs per transaction,
/// deletes them (done) in one more, and waits on `LISTEN` while the queue
/// is empty, until `n` jobs are done.
fn batched_worker(
    db: &str,
    worker: u64,
    n: u64,
    capacity: i64,
    progress: &Progress,
) -> Result<(), String> {
    let mut client = Client::connect(db, NoTls).map_err(|e| e.to_string())?;
    client
        .batch_execute("LISTEN bare_batched")
        .map_err(|e| format!("listening: {e}"))?;
    let claim = client
        .prepare(
            "UPDATE bare_batched.jobs SET state = 'running', attempts = attempts + 1,
                 locked_by = $1
             WHERE id IN (SELECT id FROM bare_batched.jobs WHERE state = 'ready'
                          ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)
             RETURNING id, payload::text",
        )
        .map_err(|e| e.to_string())?;
    let complete = client
        .prepare("DELETE FROM bare_batched.jobs WHERE id = ANY($1)")
        .map_err(|e| e.to_string())?;
    let me = i32::try_from(worker).unwrap_or(i32::MAX);
    let mut mine = Vec::new();
    while progress.done.load(Ordering::Relaxed) < n {
        let rows = client
            .query(&claim, &[&me, &capacity])
            .map_err(|e| format!("claiming: {e}"))?;
        if rows.is_empty() {
            // Sleep until a producer's notice, or the safety poll.
            let mut notices = client.notifications();
            let mut wait = notices.timeout_iter(Duration::from_millis(100));
            wait.next()
                .map_err(|e| format!("waiting for a notice: {e}"))?;
            continue;
        }
        let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
        claimed(rows.iter().map(|r| r.get(1)), &mut mine);
        client
            .execute(&complete, &[&ids])
            .map_err(|e| format!("completing: {e}"))?;
        progress.done.fetch_add(ids.len() as u64, Ordering::Relaxed);
        progress
            .last_done
            .fetch_max(wall_now().as_nanos(), Ordering::Relaxed);
    }
    locked(&progress.latencies).extend(mine);
    Ok(())
}
