//! The bare `FOR UPDATE SKIP LOCKED` queue the cluster is measured
//! against, on the same database in the same run.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use postgres::{Client, NoTls};
use serde_json::{Value, json};
use taskweave_postgres::wall_now;

use super::harness::locked;
use super::meter::Meter;
use super::{Bench, figure, percentile_ms, round};

impl Bench {
    /// The bare queue; answers its jobs per second.
    pub(super) fn bare(&mut self, admin: &mut Client) -> Result<f64, String> {
        admin
            .batch_execute(
                "CREATE SCHEMA bare;
                 CREATE TABLE bare.jobs (
                     id bigserial PRIMARY KEY,
                     payload jsonb NOT NULL,
                     state text NOT NULL DEFAULT 'ready',
                     attempts int NOT NULL DEFAULT 0,
                     locked_by int,
                     inserted_at timestamptz NOT NULL DEFAULT now(),
                     done_at timestamptz);
                 CREATE INDEX jobs_ready ON bare.jobs (id) WHERE state = 'ready';",
            )
            .map_err(|e| format!("creating the bare queue: {e}"))?;
        let n = self.tasks;
        let meter = Meter::start(admin)?;
        let done = Arc::new(AtomicU64::new(0));
        let last_done = Arc::new(AtomicU64::new(0));
        let latencies = Arc::new(Mutex::new(Vec::<u64>::new()));
        let start_ns = wall_now().as_nanos();
        let workers: Vec<JoinHandle<Result<(), String>>> = (0..self.agents)
            .map(|worker| {
                let db = self.db.clone();
                let (done, last_done, latencies) = (
                    Arc::clone(&done),
                    Arc::clone(&last_done),
                    Arc::clone(&latencies),
                );
                std::thread::spawn(move || {
                    bare_worker(&db, worker, n, &done, &last_done, &latencies)
                })
            })
            .collect();
        let produced = (|| {
            let mut producer = Client::connect(&self.db, NoTls).map_err(|e| e.to_string())?;
            let insert = producer
                .prepare("INSERT INTO bare.jobs (payload) VALUES ($1::text::jsonb)")
                .map_err(|e| e.to_string())?;
            for _ in 0..n {
                let payload = json!({"t": wall_now().as_nanos()}).to_string();
                producer
                    .execute(&insert, &[&payload])
                    .map_err(|e| format!("inserting a job: {e}"))?;
            }
            Ok::<_, String>(())
        })();
        let mut failed = produced.err();
        if failed.is_some() {
            // The workers wait for jobs that will never come.
            done.store(u64::MAX / 2, Ordering::Relaxed);
        }
        for w in workers {
            match w.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failed = failed.or(Some(e)),
                Err(_) => failed = failed.or(Some("a worker panicked".to_string())),
            }
        }
        if let Some(e) = failed {
            return Err(format!("the bare queue: {e}"));
        }
        let took = Duration::from_nanos(last_done.load(Ordering::Relaxed).saturating_sub(start_ns));
        let jps = n as f64 / took.as_secs_f64().max(1e-9);
        let mut lat = std::mem::take(&mut *locked(&latencies));
        lat.sort_unstable();
        let mut costs = meter.per_task(admin, n)?;
        costs["figure"] = json!("bare_queue_cost_per_job");
        figure(json!({
            "figure": "bare_queue_jobs_per_second", "value": round(jps, 0), "jobs": n,
            "workers": self.agents, "seconds": round(took.as_secs_f64(), 3),
            "insert_to_claim_ms_p50": round(percentile_ms(&lat, 50.0), 2),
            "insert_to_claim_ms_p99": round(percentile_ms(&lat, 99.0), 2),
        }));
        figure(costs.clone());
        self.summary.push(format!(
            "bench: bare queue: {n} jobs in {:.2} s = {jps:.0} jobs/s ({} workers); \
             {} transactions, {} WAL bytes per job",
            took.as_secs_f64(),
            self.agents,
            costs["transactions_per_task"],
            costs["wal_bytes_per_task"],
        ));
        Ok(jps)
    }
}

/// A bare-queue worker: claims one job per transaction and completes it
/// in another, until `n` jobs are done.
pub(super) fn bare_worker(
    db: &str,
    worker: u64,
    n: u64,
    done: &AtomicU64,
    last_done: &AtomicU64,
    latencies: &Mutex<Vec<u64>>,
) -> Result<(), String> {
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
    while done.load(Ordering::Relaxed) < n {
        let row = client
            .query_opt(&claim, &[&me])
            .map_err(|e| format!("claiming: {e}"))?;
        let Some(row) = row else {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        };
        let now = wall_now().as_nanos();
        let id: i64 = row.get(0);
        let payload: &str = row.get(1);
        let sent = serde_json::from_str::<Value>(payload).ok();
        if let Some(t) = sent
            .as_ref()
            .and_then(|p| p.get("t"))
            .and_then(Value::as_u64)
        {
            mine.push(now.saturating_sub(t));
        }
        client
            .execute(&complete, &[&id])
            .map_err(|e| format!("completing: {e}"))?;
        done.fetch_add(1, Ordering::Relaxed);
        last_done.fetch_max(wall_now().as_nanos(), Ordering::Relaxed);
    }
    locked(latencies).extend(mine);
    Ok(())
}
