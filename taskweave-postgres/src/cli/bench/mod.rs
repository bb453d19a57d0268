//! `taskweave-pg bench`: the cluster's throughput, latency and recovery
//! on a scratch database, next to two bare `FOR UPDATE SKIP LOCKED`
//! queues: one job per transaction, and batched.

mod bare;
mod cluster;
mod harness;
mod idle;
mod meter;
mod workflows;

use std::process::ExitCode;
use std::time::Duration;

use postgres::{Client, NoTls};
use serde_json::{Value, json};
use taskweave_postgres::testkit::PgCluster;

use super::args::Args;

use bare::Queue;
use harness::Scratch;

const USAGE: &str = "\
usage: taskweave-pg bench (--db CONNINFO | --private) [--tasks N] [--agents N] [--capacity N] [--json]
       taskweave-pg bench --workflows (--db CONNINFO | --private) [--tasks N] [--agents N] [--json]

Measures, on a scratch database it creates (taskweave_bench_PID, dropped at
the end) and prints as JSON lines on stdout, one object per figure:
  cluster_tasks_per_second   a node, N agents (threads of this process) that
                             finish every task at once, a submitter posting
                             500 tasks per message; from the first submit to
                             the last report
  submit_to_assign_ms        p50 and p99, under that burst and at a steady
                             500 tasks/s
  journal_bytes_per_task     and WAL bytes, transactions, CPU per task
  idle_statements_per_second before any task: the statements each role sends
                             while nothing happens (the leader, a follower
                             started for it, every agent), and the
                             transactions per second the database counted
  bare_queue_jobs_per_second the same count through a bare FOR UPDATE SKIP
                             LOCKED queue: one insert per job, N workers each
                             claiming and completing one job per transaction
                             (a fixed yardstick, measured as it always was)
  bare_batched_queue_jobs_per_second
                             the same count through a batched bare queue, as
                             graphile-worker, pg-boss and Oban are tuned: 500
                             jobs per insert with a NOTIFY, N workers each
                             claiming up to --capacity jobs per transaction and
                             deleting them in one more, asleep on LISTEN when
                             idle
  ratio_cluster_to_bare, ratio_cluster_to_bare_batched
  recovery_after_leader_loss_ms      a standby takes over from a dead leader
  recovery_after_postgres_restart_ms PostgreSQL killed and restarted (--private)
  machine                    cores, CPU, PostgreSQL's version
With --workflows it measures workflow runs instead (--tasks runs, default
2000):
  workflow_runs_per_second   five-step sequential runs hosted by a node (each
                             step an agent's task whose output feeds the next),
                             started 500 per message; from the first start to
                             the last end read; with steps per second
  workflow_start_to_end_ms   p50 and p99 from a run's start posted to its end
                             read (the client reads new ends by cursor,
                             PgClient::run_ends_after, every 5 ms)
  bare_checkpoint_runs_per_second
                             the same runs as a bare checkpoint loop: N workers,
                             each run one transaction for its start, one per
                             step checkpoint and one for its end, as DBOS-style
                             libraries write a durable workflow
  ratio_workflows_to_bare_checkpoints
A short summary goes to stderr.
--db CONNINFO  a key=value connection string of a role that may create
               databases (the superuser, or the database owner)
--private      start a private PostgreSQL server (as the tests do) instead
--tasks N      tasks per phase (default 20000)
--agents N     agents, and bare-queue workers (default 4)
--capacity N   tasks each agent may hold, and jobs a batched worker claims at
               once (default 64)
--json         the JSON lines only, no summary";

/// Tasks per submitted message.
const BATCH: usize = 500;
/// The steady phase: tasks per message, and messages per second.
const PACED_BATCH: usize = 5;
const PACED_EVERY: Duration = Duration::from_millis(10);
const PACED_FOR: Duration = Duration::from_secs(3);

pub(crate) fn run(raw: &[String]) -> Result<ExitCode, String> {
    let args = Args::parse(
        raw,
        USAGE,
        &[
            "--db",
            "--private!",
            "--tasks",
            "--agents",
            "--capacity",
            "--json!",
            "--workflows!",
        ],
    )?;
    if args.wants_help() {
        say!("{USAGE}");
        return Ok(ExitCode::SUCCESS);
    }
    let workflows = args.switch("--workflows");
    let tasks: u64 = args.parsed("--tasks", if workflows { 2_000 } else { 20_000 })?;
    let agents: u64 = args.parsed("--agents", 4)?;
    let capacity: u32 = args.parsed("--capacity", 64)?;
    if !(1..=10_000_000).contains(&tasks)
        || !(1..=200).contains(&agents)
        || !(1..=100_000).contains(&capacity)
    {
        return Err(args.wrong(
            "--tasks must be within 1..=10000000, --agents within 1..=200, --capacity within 1..=100000",
        ));
    }
    let quiet = args.switch("--json");
    let mut private = if args.switch("--private") {
        if args.value("--db").is_some() {
            return Err(args.wrong("--db and --private exclude each other"));
        }
        Some(PgCluster::start().map_err(|e| e.to_string())?)
    } else {
        None
    };
    let admin = match &private {
        Some(server) => server.conninfo(),
        None => args.db()?,
    };
    let scratch = Scratch::create(&admin)?;
    let mut bench = Bench {
        db: scratch.conninfo.clone(),
        tasks,
        agents,
        capacity,
        summary: Vec::new(),
    };
    let result = match workflows {
        true => bench.only_workflows(),
        false => bench.all(private.as_mut()),
    };
    drop(scratch);
    drop(private);
    result?;
    if !quiet {
        for line in &bench.summary {
            super::log::complain(line);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints one figure as a JSON line.
fn figure(value: Value) {
    say!("{value}");
}

/// The `p`-th percentile (0..=100) of sorted nanoseconds, in ms.
fn percentile_ms(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)] as f64 / 1e6
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

struct Bench {
    db: String,
    tasks: u64,
    agents: u64,
    capacity: u32,
    summary: Vec<String>,
}

impl Bench {
    fn only_workflows(&mut self) -> Result<(), String> {
        let mut admin = Client::connect(&self.db, NoTls).map_err(|e| e.to_string())?;
        self.machine(&mut admin)?;
        self.workflows(&mut admin)
    }

    /// Prints the machine's figure.
    fn machine(&mut self, admin: &mut Client) -> Result<(), String> {
        let version: String = admin
            .query_one("SHOW server_version", &[])
            .map_err(|e| e.to_string())?
            .get(0);
        let cpu_name = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                let line = s.lines().find(|l| l.starts_with("model name"))?;
                Some(line.split_once(':')?.1.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".to_string());
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        figure(json!({"figure": "machine", "cores": cores, "cpu": cpu_name, "postgres": version}));
        self.summary.push(format!(
            "bench: {cores} cores ({cpu_name}), PostgreSQL {version}"
        ));
        Ok(())
    }

    fn all(&mut self, private: Option<&mut PgCluster>) -> Result<(), String> {
        let mut admin = Client::connect(&self.db, NoTls).map_err(|e| e.to_string())?;
        self.machine(&mut admin)?;
        let cluster_tps = self.cluster(&mut admin, private)?;
        // A fresh connection: the server may have restarted meanwhile.
        let mut admin = Client::connect(&self.db, NoTls).map_err(|e| e.to_string())?;
        let bare_jps = self.bare(&mut admin, Queue::OneByOne)?;
        let ratio = cluster_tps / bare_jps.max(f64::MIN_POSITIVE);
        figure(json!({"figure": "ratio_cluster_to_bare", "value": round(ratio, 2)}));
        let batched_jps = self.bare(&mut admin, Queue::Batched)?;
        let batched = cluster_tps / batched_jps.max(f64::MIN_POSITIVE);
        figure(json!({"figure": "ratio_cluster_to_bare_batched", "value": round(batched, 2)}));
        self.summary.push(format!(
            "bench: the cluster does {ratio:.2}× the bare queue and {batched:.2}× the batched \
             bare queue"
        ));
        Ok(())
    }
}
