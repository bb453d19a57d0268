//! `taskweave-pg bench --workflows`: five-step runs hosted by the
//! cluster, end to end, next to a bare checkpoint loop on the same
//! database: one transaction per step checkpoint, as DBOS-style
//! libraries write a durable workflow.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use postgres::{Client, NoTls};
use prometheus_client::registry::Registry;
use serde_json::json;
use taskweave::WorkflowId;
use taskweave::cluster::{RunCommand, RunEndCursor, Verdict};
use taskweave::workflow::{RunOutcome, StepDef, WorkflowDef};
use taskweave_postgres::PgClient;
use taskweave_postgres::metrics::AgentMetrics;

use super::harness::{NodeThread, Seen, agent_thread};
use super::{BATCH, Bench, figure, percentile_ms, round};

/// Steps per run.
const STEPS: usize = 5;

impl Bench {
    /// Hosted runs, then the bare checkpoint loop; prints their figures
    /// and the ratio.
    pub(super) fn workflows(&mut self, admin: &mut Client) -> Result<(), String> {
        let hosted = self.hosted_runs()?;
        let bare = self.bare_checkpoints(admin)?;
        let ratio = hosted / bare.max(f64::MIN_POSITIVE);
        figure(json!({"figure": "ratio_workflows_to_bare_checkpoints", "value": round(ratio, 2)}));
        self.summary.push(format!(
            "bench: hosted runs go {ratio:.2}× the bare checkpoint loop"
        ));
        Ok(())
    }

    /// `self.tasks` five-step runs on a node and `self.agents` agents;
    /// answers runs per second.
    fn hosted_runs(&mut self) -> Result<f64, String> {
        let db = self.db.clone();
        let stop_agents = Arc::new(AtomicBool::new(false));
        let node = NodeThread::start(&db, "bench-workflows")?;
        let agents: Vec<_> = (1..=self.agents)
            .map(|id| {
                let seen = Arc::new(Seen::default());
                agent_thread(
                    db.clone(),
                    id,
                    self.capacity,
                    Arc::clone(&stop_agents),
                    seen,
                    AgentMetrics::register(&mut Registry::default()),
                )
            })
            .collect();
        let result = PgClient::connect(&db)
            .map_err(|e| e.to_string())
            .and_then(|mut client| self.hosted_phase(&mut client));
        stop_agents.store(true, Ordering::Relaxed);
        node.halt()?;
        for a in agents {
            match a.join() {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(format!("an agent failed: {e}")),
                Err(_) => return Err("an agent thread panicked".to_string()),
            }
        }
        result
    }

    fn hosted_phase(&mut self, client: &mut PgClient<serde_json::Value>) -> Result<f64, String> {
        let n = self.tasks;
        let keys: Vec<String> = (1..=STEPS).map(|i| format!("s{i}")).collect();
        let def = keys
            .iter()
            .fold(WorkflowDef::builder("bench", 1), |def, key| {
                def.step(StepDef::agent(key.as_str()))
            })
            .chain(keys.iter().map(String::as_str))
            .output(keys[STEPS - 1].as_str())
            .build()
            .map_err(|e| e.to_string())?;
        let registered = client
            .run(RunCommand::Register(Box::new(def)))
            .map_err(|e| e.to_string())?;
        let verdict = client
            .wait_verdicts(&[registered], Duration::from_secs(30))
            .map_err(|e| e.to_string())?;
        if verdict.first() != Some(&Some(Verdict::Accepted)) {
            return Err(format!(
                "bench: the workflow was not registered: {verdict:?}"
            ));
        }
        let ids: Vec<WorkflowId> = (1..=n).map(WorkflowId::new).collect();
        let started = Instant::now();
        let mut posted_at: HashMap<WorkflowId, Instant> = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(BATCH) {
            let starts = chunk
                .iter()
                .map(|&id| RunCommand::Start {
                    workflow: "bench".into(),
                    version: None,
                    id: Some(id),
                    input: Some(json!(id.get())),
                })
                .collect();
            client
                .run_many(starts)
                .map_err(|e| format!("starting runs: {e}"))?;
            let now = Instant::now();
            posted_at.extend(chunk.iter().map(|&id| (id, now)));
        }
        let limit = Duration::from_secs(120.max(n / 20));
        let mut latencies = Vec::with_capacity(ids.len());
        let mut cursor = RunEndCursor::START;
        let mut last_end = started;
        while !posted_at.is_empty() {
            if started.elapsed() > limit {
                return Err(format!(
                    "bench: {} of {n} runs did not end within {limit:?}",
                    posted_at.len()
                ));
            }
            let page = client
                .run_ends_after(cursor, BATCH)
                .map_err(|e| format!("reading run ends: {e}"))?;
            let now = Instant::now();
            for (place, end) in &page {
                let expected = json!(end.run.get() + STEPS as u64);
                if end.outcome != RunOutcome::Succeeded || end.output.as_ref() != Some(&expected) {
                    return Err(format!(
                        "bench: {} ended {end:?}, not with {expected}",
                        end.run
                    ));
                }
                let Some(posted) = posted_at.remove(&end.run) else {
                    return Err(format!(
                        "bench: {} ended twice, or was never started",
                        end.run
                    ));
                };
                last_end = now;
                latencies.push((now - posted).as_nanos() as u64);
                cursor = *place;
            }
            if page.len() < BATCH {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let took = last_end.duration_since(started).as_secs_f64().max(1e-9);
        latencies.sort_unstable();
        let runs_per_second = n as f64 / took;
        figure(json!({
            "figure": "workflow_runs_per_second", "value": round(runs_per_second, 0),
            "steps_per_second": round(runs_per_second * STEPS as f64, 0),
            "runs": n, "steps_per_run": STEPS, "agents": self.agents,
            "capacity": self.capacity, "seconds": round(took, 3),
        }));
        figure(json!({
            "figure": "workflow_start_to_end_ms", "runs": n,
            "p50": round(percentile_ms(&latencies, 50.0), 1),
            "p99": round(percentile_ms(&latencies, 99.0), 1),
            "poll_ms": 5,
        }));
        self.summary.push(format!(
            "bench: hosted runs: {n} runs of {STEPS} steps in {took:.2} s = {runs_per_second:.0} \
             runs/s ({:.0} steps/s); start→end p50 {:.0} ms p99 {:.0} ms",
            runs_per_second * STEPS as f64,
            percentile_ms(&latencies, 50.0),
            percentile_ms(&latencies, 99.0)
        ));
        Ok(runs_per_second)
    }

    /// The bare checkpoint loop: `self.agents` workers, each running its
    /// share of the runs one after another, every run a transaction that
    /// records its start, one per step that checkpoints the step's output,
    /// and one that records its end; answers runs per second.
    fn bare_checkpoints(&mut self, admin: &mut Client) -> Result<f64, String> {
        admin
            .batch_execute(
                "CREATE SCHEMA bare_workflows;
                 CREATE TABLE bare_workflows.runs (
                     id bigint PRIMARY KEY, status text NOT NULL, input jsonb,
                     output jsonb, updated_at timestamptz NOT NULL DEFAULT now());
                 CREATE TABLE bare_workflows.steps (
                     run bigint NOT NULL, step int NOT NULL, output jsonb NOT NULL,
                     PRIMARY KEY (run, step));",
            )
            .map_err(|e| format!("creating the bare checkpoint tables: {e}"))?;
        let n = self.tasks;
        let workers = self.agents;
        let started = Instant::now();
        let threads: Vec<_> = (0..workers)
            .map(|worker| {
                let db = self.db.clone();
                std::thread::spawn(move || bare_worker(&db, worker, workers, n))
            })
            .collect();
        for t in threads {
            t.join()
                .map_err(|_| "a bare checkpoint worker panicked".to_string())??;
        }
        let took = started.elapsed().as_secs_f64().max(1e-9);
        let runs_per_second = n as f64 / took;
        figure(json!({
            "figure": "bare_checkpoint_runs_per_second", "value": round(runs_per_second, 0),
            "steps_per_second": round(runs_per_second * STEPS as f64, 0),
            "runs": n, "workers": workers, "transactions_per_run": STEPS + 2,
            "seconds": round(took, 3),
        }));
        self.summary.push(format!(
            "bench: bare checkpoint loop: {n} runs in {took:.2} s = {runs_per_second:.0} runs/s"
        ));
        Ok(runs_per_second)
    }
}

/// Runs `worker`'s share of the `n` runs (every `workers`-th id).
fn bare_worker(db: &str, worker: u64, workers: u64, n: u64) -> Result<(), String> {
    let mut client = Client::connect(db, NoTls).map_err(|e| e.to_string())?;
    let fail = |e: postgres::Error| format!("bare checkpoint loop: {e}");
    let start = client
        .prepare(
            "INSERT INTO bare_workflows.runs (id, status, input) \
             VALUES ($1, 'running', $2::text::jsonb)",
        )
        .map_err(fail)?;
    let checkpoint = client
        .prepare(
            "INSERT INTO bare_workflows.steps (run, step, output) VALUES ($1, $2, $3::text::jsonb)",
        )
        .map_err(fail)?;
    let end = client
        .prepare(
            "UPDATE bare_workflows.runs SET status = 'succeeded', output = $2::text::jsonb, \
             updated_at = now() WHERE id = $1",
        )
        .map_err(fail)?;
    for id in (1..=n).filter(|id| id % workers == worker) {
        let run = i64::try_from(id).unwrap_or(i64::MAX);
        // Each step's output is its input plus one, as the agents do.
        let mut value = id;
        client
            .execute(&start, &[&run, &value.to_string()])
            .map_err(fail)?;
        for step in 1..=STEPS as i32 {
            value += 1;
            client
                .execute(&checkpoint, &[&run, &step, &value.to_string()])
                .map_err(fail)?;
        }
        client
            .execute(&end, &[&run, &value.to_string()])
            .map_err(fail)?;
    }
    Ok(())
}
