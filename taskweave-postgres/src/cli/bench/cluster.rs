//! The cluster's phases: a burst, a steady load, recovery after a
//! leader's loss and after a PostgreSQL restart.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use postgres::Client;
use prometheus_client::registry::Registry;
use serde_json::json;
use taskweave::cluster::Verdict;
use taskweave::scheduler::TaskSpec;
use taskweave_postgres::metrics::AgentMetrics;
use taskweave_postgres::testkit::PgCluster;
use taskweave_postgres::{PgClient, PgStore, wall_now};

use super::super::Payload;

use super::harness::{ClusterRun, NodeThread, Seen, agent_thread};
use super::meter::Meter;
use super::{BATCH, Bench, PACED_BATCH, PACED_EVERY, PACED_FOR, figure, percentile_ms, round};

impl Bench {
    /// The cluster's phases; answers its tasks per second.
    pub(super) fn cluster(
        &mut self,
        admin: &mut Client,
        private: Option<&mut PgCluster>,
    ) -> Result<f64, String> {
        let db = self.db.clone();
        let seen = Arc::new(Seen::default());
        let stop_agents = Arc::new(AtomicBool::new(false));
        let leader = NodeThread::start(&db, "bench-node-1")?;
        let metrics: Vec<_> = (1..=self.agents)
            .map(|_| AgentMetrics::register(&mut Registry::default()))
            .collect();
        let agents: Vec<_> = (1..=self.agents)
            .zip(&metrics)
            .map(|(id, metrics)| {
                agent_thread(
                    db.clone(),
                    id,
                    self.capacity,
                    Arc::clone(&stop_agents),
                    Arc::clone(&seen),
                    metrics.clone(),
                )
            })
            .collect();
        let mut run = ClusterRun {
            client: PgClient::connect(&db).map_err(|e| e.to_string())?,
            seen,
            probes: 0,
        };
        let result = self.cluster_phases(admin, &mut run, leader, &metrics, private);
        // Whatever happened: stop the agents.
        stop_agents.store(true, Ordering::Relaxed);
        for a in agents {
            match a.join() {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(format!("an agent failed: {e}")),
                Err(_) => return Err("an agent thread panicked".to_string()),
            }
        }
        result
    }

    pub(super) fn cluster_phases(
        &mut self,
        admin: &mut Client,
        run: &mut ClusterRun,
        leader: NodeThread,
        agents: &[AgentMetrics],
        private: Option<&mut PgCluster>,
    ) -> Result<f64, String> {
        let n = self.tasks;
        run.wait("a leader to take the lease", Duration::from_secs(30), |c| {
            let (lease, status) = c.client.status().ok()?;
            let agents = status.map_or(0, |s| s.agents.len()) as u64;
            (lease.held && agents == self.agents).then_some(())
        })?;

        // 0. What the quiet cluster costs.
        self.idle(admin, &leader.metrics, agents)?;

        // 1. Throughput, with the latency under that burst.
        let meter = Meter::start(admin)?;
        let base = run.completed()?;
        let started = Instant::now();
        let start_ns = wall_now().as_nanos();
        let mut ids = Vec::new();
        let mut sent = 0u64;
        while sent < n {
            let count = (n - sent).min(BATCH as u64);
            let t = wall_now().as_nanos();
            let specs = (0..count)
                .map(|_| TaskSpec::new(json!({"k": 0, "t": t})))
                .collect();
            ids.extend(
                run.client
                    .submit_many(vec![specs])
                    .map_err(|e| format!("submitting: {e}"))?,
            );
            sent += count;
        }
        let submitted_in = started.elapsed();
        let limit = Duration::from_secs(120.max(n / 100));
        let status_at = run.wait("every task to complete", limit, |c| {
            let s = c.client.status().ok()?.1?;
            (s.completed >= base + n).then_some(s.at.as_nanos())
        })?;
        let mut costs = meter.per_task(admin, n)?;
        costs["figure"] = json!("cost_per_task");
        let end_ns = run.seen.last_report.load(Ordering::Relaxed);
        let took = Duration::from_nanos(end_ns.saturating_sub(start_ns));
        let upper = Duration::from_nanos(status_at.saturating_sub(start_ns));
        let tps = n as f64 / took.as_secs_f64().max(1e-9);
        let verdicts = run
            .client
            .verdicts(&ids)
            .map_err(|e| format!("reading verdicts: {e}"))?;
        if let Some(bad) = verdicts
            .iter()
            .find(|v| !matches!(v, Some(Verdict::Submitted(_))))
        {
            return Err(format!("a submission was not accepted: {bad:?}"));
        }
        figure(json!({
            "figure": "cluster_tasks_per_second", "value": round(tps, 0), "tasks": n,
            "agents": self.agents, "capacity": self.capacity, "batch": BATCH,
            "seconds": round(took.as_secs_f64(), 3),
            "seconds_by_published_status": round(upper.as_secs_f64(), 3),
            "submit_seconds": round(submitted_in.as_secs_f64(), 3),
        }));
        let burst = run.latencies(0);
        figure(json!({
            "figure": "submit_to_assign_ms", "load": "burst", "tasks": burst.len(),
            "p50": round(percentile_ms(&burst, 50.0), 2),
            "p99": round(percentile_ms(&burst, 99.0), 2),
        }));
        let mut journal = PgStore::<Payload>::connect(&self.db).map_err(|e| e.to_string())?;
        let (rows, bytes) = journal.journal_stats().map_err(|e| e.to_string())?;
        figure(json!({
            "figure": "journal_bytes_per_task", "value": round(bytes as f64 / n as f64, 0),
            "journal_entries": rows, "journal_bytes": bytes, "tasks": n,
        }));
        figure(costs.clone());
        self.summary.push(format!(
            "bench: cluster: {n} tasks in {:.2} s = {tps:.0} tasks/s ({} agents × {}); \
             submit→assign p50 {:.1} ms p99 {:.1} ms under the burst; {:.0} journal bytes, \
             {} transactions, {} WAL bytes per task",
            took.as_secs_f64(),
            self.agents,
            self.capacity,
            percentile_ms(&burst, 50.0),
            percentile_ms(&burst, 99.0),
            bytes as f64 / n as f64,
            costs["transactions_per_task"],
            costs["wal_bytes_per_task"],
        ));

        // 2. Latency at a steady 500 tasks/s.
        let paced_start = Instant::now();
        let mut paced = 0u64;
        while paced_start.elapsed() < PACED_FOR {
            let t = wall_now().as_nanos();
            let specs = (0..PACED_BATCH)
                .map(|_| TaskSpec::new(json!({"k": 1, "t": t})))
                .collect();
            run.client
                .submit(specs)
                .map_err(|e| format!("submitting: {e}"))?;
            paced += PACED_BATCH as u64;
            let next = PACED_EVERY * u32::try_from(paced / PACED_BATCH as u64).unwrap_or(u32::MAX);
            std::thread::sleep(next.saturating_sub(paced_start.elapsed()));
        }
        run.wait(
            "the steady tasks to be assigned",
            Duration::from_secs(60),
            |c| (c.latencies(1).len() as u64 >= paced).then_some(()),
        )?;
        let steady = run.latencies(1);
        let rate = paced as f64 / PACED_FOR.as_secs_f64();
        figure(json!({
            "figure": "submit_to_assign_ms", "load": "steady", "tasks_per_second": round(rate, 0),
            "tasks": steady.len(),
            "p50": round(percentile_ms(&steady, 50.0), 2),
            "p99": round(percentile_ms(&steady, 99.0), 2),
        }));
        self.summary.push(format!(
            "bench: submit→assign at a steady {rate:.0} tasks/s: p50 {:.1} ms, p99 {:.1} ms",
            percentile_ms(&steady, 50.0),
            percentile_ms(&steady, 99.0)
        ));

        // 3. PostgreSQL killed and restarted.
        if let Some(server) = private {
            let seq = run
                .client
                .status()
                .ok()
                .and_then(|(_, s)| s)
                .map_or(0, |s| s.seq);
            let began = Instant::now();
            server.restart_immediate().map_err(|e| e.to_string())?;
            let up = began.elapsed();
            let back = wall_now();
            let probe = run.probe(Duration::from_secs(60))?;
            let assigned = run.wait_probe(probe, Duration::from_secs(60))?;
            let advanced = run.wait("the status to advance", Duration::from_secs(60), |c| {
                let s = c.client.status().ok()?.1?;
                (s.seq > seq && s.at > back).then(Instant::now)
            })?;
            let ms = |at: Instant| round(at.duration_since(began).as_secs_f64() * 1e3, 0);
            figure(json!({
                "figure": "recovery_after_postgres_restart_ms", "value": ms(assigned),
                "what": "from `pg_ctl stop -m immediate` until a task submitted after the restart is assigned",
                "server_back_ms": round(up.as_secs_f64() * 1e3, 0),
                "status_advanced_ms": ms(advanced),
            }));
            self.summary.push(format!(
                "bench: PostgreSQL restart: server back after {:.0} ms, a new task assigned after {} ms",
                up.as_secs_f64() * 1e3,
                ms(assigned)
            ));
        }

        // 4. The leader dies; a standby takes over.
        let standby = NodeThread::start(&self.db, "bench-node-2")?;
        standby.wait_log("role: Following", Duration::from_secs(60))?;
        let (lease, _) = run.client.status().map_err(|e| e.to_string())?;
        leader.halt()?;
        let died = Instant::now();
        let probe = run.probe(Duration::from_secs(10))?;
        let taken = run.wait(
            "the standby to take the lease",
            Duration::from_secs(30),
            |c| {
                let (l, _) = c.client.status().ok()?;
                (l.held && l.epoch > lease.epoch).then(Instant::now)
            },
        )?;
        let assigned = run.wait_probe(probe, Duration::from_secs(30))?;
        let ms = |at: Instant| round(at.duration_since(died).as_secs_f64() * 1e3, 0);
        figure(json!({
            "figure": "recovery_after_leader_loss_ms", "value": ms(assigned),
            "what": "from the leader's death (its lease left to expire) until a task submitted then is assigned",
            "lease_taken_ms": ms(taken), "lease_ttl_ms": 1000,
        }));
        self.summary.push(format!(
            "bench: leader lost: the standby holds the lease after {} ms, a new task assigned after {} ms (1 s lease)",
            ms(taken),
            ms(assigned)
        ));

        // The end: a drain stops the standby and the agents.
        run.client.drain().map_err(|e| format!("draining: {e}"))?;
        run.wait(
            "the drain to stop the cluster",
            Duration::from_secs(60),
            |c| c.client.status().ok()?.0.stopped.then_some(()),
        )?;
        standby.join()?;
        Ok(tps)
    }
}
