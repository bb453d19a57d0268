//! The bench's moving parts: the scratch database, a node and agents in
//! threads, and its view of the running cluster.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use postgres::{Client, NoTls};
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use taskweave::AgentId;
use taskweave::agent::AgentProfile;
use taskweave::cluster::NodeConfig;
use taskweave::scheduler::{AttemptOutcome, TaskSpec};
use taskweave_postgres::metrics::{AgentMetrics, NodeMetrics};
use taskweave_postgres::{
    LogLine, NodeExit, PgAgent, PgClient, PgNode, PgStore, json_run_codec, migrate, wall_now,
};

use super::super::{LEASE, NOTICE_POLL, Payload, agent_session_config, cluster_dispatcher_config};

/// The scratch database; dropped (its connections cut) when this is.
pub(super) struct Scratch {
    pub(super) admin: String,
    pub(super) name: String,
    pub(super) conninfo: String,
}

impl Scratch {
    pub(super) fn create(admin: &str) -> Result<Self, String> {
        if admin.contains("://") {
            return Err(
                "bench: give --db as key=value pairs (host=… user=…), not as a URL".to_string(),
            );
        }
        let name = format!("taskweave_bench_{}", std::process::id());
        let mut client = Client::connect(admin, NoTls)
            .map_err(|e| format!("cannot connect to PostgreSQL with {admin:?}: {e}"))?;
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .map_err(|e| format!("cannot create the scratch database {name}: {e}"))?;
        let scratch = Scratch {
            admin: admin.to_string(),
            conninfo: format!("{admin} dbname={name}"),
            name,
        };
        let mut client = Client::connect(&scratch.conninfo, NoTls)
            .map_err(|e| format!("cannot connect to {}: {e}", scratch.name))?;
        migrate(&mut client).map_err(|e| e.to_string())?;
        Ok(scratch)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let dropped = Client::connect(&self.admin, NoTls).and_then(|mut c| {
            c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
        });
        if let Err(e) = dropped {
            super::super::log::complain(&format!(
                "bench: could not drop the scratch database {}: {e}",
                self.name
            ));
        }
    }
}

/// What the agents saw, shared with the bench's thread.
#[derive(Default)]
pub(super) struct Seen {
    /// Submit-to-assign latencies in ns, by phase (the payload's "k").
    pub(super) latencies: Mutex<HashMap<u64, Vec<u64>>>,
    /// When each probe task (the payload's "probe") was received.
    pub(super) probes: Mutex<HashMap<u64, Instant>>,
    /// Wall ns after the latest step that sent reports.
    pub(super) last_report: AtomicU64,
}

pub(super) fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A node running in a thread; its log lines arrive on `log`.
pub(super) struct NodeThread {
    pub(super) stop: Arc<AtomicBool>,
    pub(super) handle: JoinHandle<Result<NodeExit, String>>,
    pub(super) log: Receiver<String>,
    /// Its figures; the bench reads the statements it sent.
    pub(super) metrics: NodeMetrics,
}

impl NodeThread {
    /// A node that hosts workflow runs (as `taskweave-pg node` does).
    pub(super) fn start(db: &str, name: &str) -> Result<Self, String> {
        let config = NodeConfig::builder(name)
            .woken_by_notices(NOTICE_POLL)
            .lease(LEASE.0, LEASE.1)
            .snapshots(4_000, false)
            .build()
            .map_err(|e| e.to_string())?;
        let mut store = PgStore::connect(db).map_err(|e| e.to_string())?;
        let dispatcher = cluster_dispatcher_config(&mut store)?;
        let metrics = NodeMetrics::register(&mut Registry::default());
        let mut node = PgNode::<Payload>::new(db, config, dispatcher)
            .map_err(|e| e.to_string())?
            .host_runs(json_run_codec())
            .observe_with(metrics.clone());
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, log): (Sender<String>, _) = channel();
        let flag = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            node.run(&flag, &mut |line: LogLine<'_>| {
                let _ = tx.send(line.text.to_string());
            })
        });
        Ok(NodeThread {
            stop,
            handle,
            log,
            metrics,
        })
    }

    /// Waits until the node logs a line containing `needle`.
    pub(super) fn wait_log(&self, needle: &str, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Ok(()),
                Ok(_) => {}
                Err(_) => return Err(format!("no node said {needle:?} within {limit:?}")),
            }
        }
    }

    /// Stops the node where it is: it does not release its lease.
    pub(super) fn halt(self) -> Result<(), String> {
        self.stop.store(true, Ordering::Relaxed);
        self.join()
    }

    pub(super) fn join(self) -> Result<(), String> {
        match self.handle.join() {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("a node failed: {e}")),
            Err(_) => Err("a node thread panicked".to_string()),
        }
    }
}

/// An agent in a thread that finishes every task at once: a plain task
/// with a success, a hosted run's step with an output, [`step_output`].
/// It paces itself as `taskweave-pg agent` does, and counts what it
/// sends in `metrics`.
pub(super) fn agent_thread(
    db: String,
    id: u64,
    capacity: u32,
    stop: Arc<AtomicBool>,
    seen: Arc<Seen>,
    metrics: AgentMetrics,
) -> JoinHandle<Result<u64, String>> {
    std::thread::spawn(move || {
        let profile = AgentProfile::builder()
            .capacity(capacity)
            .build()
            .map_err(|e| e.to_string())?;
        let config = agent_session_config()?;
        let give_up = || stop.load(Ordering::Relaxed);
        let mut quiet = |_: LogLine<'_>| {};
        let mut agent = PgAgent::<Payload>::connect(
            &db,
            AgentId::new(id),
            profile,
            config,
            &mut quiet,
            &give_up,
        )
        .map_err(|e| e.to_string())?
        .observe_with(metrics);
        let mut done = 0u64;
        let mut reporting = false;
        while !agent.is_stopped() && !give_up() {
            let work = agent.step(&mut quiet);
            let now = wall_now().as_nanos();
            if reporting {
                // That step sent the reports of the tasks finished before.
                seen.last_report
                    .fetch_max(wall_now().as_nanos(), Ordering::Relaxed);
            }
            reporting = !work.is_empty();
            for w in work {
                if let Some(probe) = w.payload.get("probe").and_then(Value::as_u64) {
                    locked(&seen.probes).insert(probe, Instant::now());
                }
                if let (Some(k), Some(t)) = (
                    w.payload.get("k").and_then(Value::as_u64),
                    w.payload.get("t").and_then(Value::as_u64),
                ) {
                    locked(&seen.latencies)
                        .entry(k)
                        .or_default()
                        .push(now.saturating_sub(t));
                }
                if w.payload.get("workflow_step").is_some() {
                    agent.complete(w.task, w.token, step_output(&w.payload));
                } else {
                    agent.finish(w.task, w.token, AttemptOutcome::Success);
                }
                done += 1;
            }
            if !reporting {
                agent.wait(Duration::from_millis(2));
            }
        }
        Ok(done)
    })
}

/// A hosted step's output in the bench: one more than the run's input
/// and its predecessors' outputs.
pub(super) fn step_output(payload: &Value) -> Value {
    let input = payload["input"].as_i64().unwrap_or(0);
    let inputs: i64 = payload["inputs"]
        .as_object()
        .map_or(0, |inputs| inputs.values().filter_map(Value::as_i64).sum());
    json!(input + inputs + 1)
}

/// The bench's view of the running cluster.
pub(super) struct ClusterRun {
    pub(super) client: PgClient<Payload>,
    pub(super) seen: Arc<Seen>,
    pub(super) probes: u64,
}

impl ClusterRun {
    /// Polls `probe` every 10 ms until it answers `Some`, at most `limit`.
    pub(super) fn wait<T>(
        &mut self,
        what: &str,
        limit: Duration,
        mut probe: impl FnMut(&mut Self) -> Option<T>,
    ) -> Result<T, String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(v) = probe(self) {
                return Ok(v);
            }
            if Instant::now() >= deadline {
                return Err(format!("bench: waited {limit:?} for {what}, in vain"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub(super) fn completed(&mut self) -> Result<u64, String> {
        let (_, status) = self.client.status().map_err(|e| e.to_string())?;
        Ok(status.map_or(0, |s| s.completed))
    }

    /// The sorted latencies (ns) of phase `k`.
    pub(super) fn latencies(&self, k: u64) -> Vec<u64> {
        let mut v = locked(&self.seen.latencies)
            .get(&k)
            .cloned()
            .unwrap_or_default();
        v.sort_unstable();
        v
    }

    /// Submits a probe task, retrying while the server is away.
    pub(super) fn probe(&mut self, limit: Duration) -> Result<u64, String> {
        self.probes += 1;
        let probe = self.probes;
        self.wait("the probe to be submitted", limit, |c| {
            c.client
                .submit(vec![TaskSpec::new(json!({"probe": probe}))])
                .ok()
        })?;
        Ok(probe)
    }

    /// When an agent received probe `probe`.
    pub(super) fn wait_probe(&mut self, probe: u64, limit: Duration) -> Result<Instant, String> {
        self.wait("the probe to be assigned", limit, |c| {
            locked(&c.seen.probes).get(&probe).copied()
        })
    }
}
