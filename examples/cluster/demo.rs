//! The `demo` role: starts a private PostgreSQL, measures the journal's
//! append rate, runs the crash scenario (leader, standby, four agent
//! processes, 10,000 tasks, `SIGKILL`s) and prints what it measured.

use std::process::Command;
use std::time::{Duration, Instant as WallInstant};

use taskweave::Priority;
use taskweave::scheduler::{Input, TaskSpec};

use crate::model::{Job, wall_now};
use crate::pg::PgCluster;
use crate::scenario::{self, Plan};
use crate::store::Store;

/// Inputs the append measurement writes, and how many go in one commit.
const BENCH_INPUTS: usize = 20_000;
const BENCH_BATCH: usize = 250;

/// Runs the demo; `role` starts a role process.
///
/// # Errors
///
/// What is missing (PostgreSQL) or what failed, in words.
pub(crate) fn run(args: &[String], role: &dyn Fn(&[String]) -> Command) -> Result<(), String> {
    let tasks: u32 = crate::cli::flag(args, "--tasks")
        .map_or(Ok(10_000), str::parse)
        .map_err(|e| format!("--tasks: {e}"))?;
    let agents: u32 = crate::cli::flag(args, "--agents")
        .map_or(Ok(4), str::parse)
        .map_err(|e| format!("--agents: {e}"))?;
    let trim = !args.iter().any(|a| a == "--keep-journal");
    let mut pg = PgCluster::start().map_err(|e| e.to_string())?;
    println!("PostgreSQL: a private cluster at {}", pg.conninfo());
    let rate = append_rate(&pg.conninfo())?;
    let plan = Plan::crash(tasks, agents, trim, Duration::from_secs(600));
    let figures = scenario::run(&plan, &pg.conninfo(), role);
    let figures = match figures {
        Ok(f) => f,
        Err(e) => {
            eprintln!(
                "{}",
                crate::pg::server_log(&pg)
                    .lines()
                    .rev()
                    .take(20)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            return Err(e);
        }
    };
    let mut store = Store::connect(&pg.conninfo()).map_err(|e| e.to_string())?;
    let matches = crate::audit::tail_matches(&mut store).map_err(|e| e.to_string())?;
    // With the whole journal kept, replay it all and check every task.
    let full = if trim {
        None
    } else {
        Some(crate::audit::audit(&mut store).map_err(|e| e.to_string())?)
    };
    let fenced = store
        .client()
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE seen OR agent = 1) FROM inbox WHERE verdict LIKE 'rejected%'",
            &[],
        )
        .map_err(|e| e.to_string())?;
    let (fenced, dropped): (i64, i64) = (fenced.get(0), fenced.get(1));
    let per_task = |n: i64| n as f64 / f64::from(tasks);
    let secs = figures.elapsed.as_secs_f64();
    println!();
    println!("machine: {}", machine());
    println!(
        "run: {tasks} tasks (P0-P3 mixed, 5 % of attempts fail, a fifth of those for good) on {agents} agent processes; \
         agent 1 and the leader killed with SIGKILL part-way, then agent 2 paused 3 s"
    );
    println!(
        "tasks: {} completed, {} dead-lettered, {} expired",
        figures.completed, figures.dead_lettered, figures.expired
    );
    println!(
        "journal appends: {rate:.0} inputs/s (fenced transactions of {BENCH_BATCH} inputs, synchronous commit)"
    );
    println!(
        "end to end: {:.0} tasks/s ({tasks} tasks in {secs:.2} s through PostgreSQL, {agents} agent processes)",
        f64::from(tasks) / secs
    );
    println!(
        "journal during the run: {} inputs ({:.0}/s), {:.0} bytes per task ({:.2} inputs per task)",
        figures.journal_rows,
        figures.journal_rows as f64 / secs,
        per_task(figures.journal_bytes),
        per_task(figures.journal_rows)
    );
    let first_assignment = figures.recovery.map_or_else(
        || "no task was left to assign".to_string(),
        |d| format!("first assignment after {} ms", d.as_millis()),
    );
    println!(
        "recovery after SIGKILL of the leader: lease taken after {} ms, {first_assignment}",
        figures.takeover.as_millis(),
    );
    println!(
        "reports fenced out by the dispatcher: {fenced} ({dropped} logged and dropped by their agent, or sent by the killed one)"
    );
    let finished = figures.completed + figures.dead_lettered + figures.expired;
    let mut checks =
        vec![
        (format!("all {tasks} tasks finished"), finished == i64::from(tasks)),
        (
            "the standby took the lease with epoch 2 after the leader was killed".to_string(),
            !figures.takeover.is_zero()),
        (
            "the new leader's final state equals its latest snapshot plus the journal behind it"
                .to_string(),
            matches == Some(true),
        ),
        (
            "every fenced-out report of a running agent was logged and dropped by it".to_string(),
            fenced == dropped,
        ),
    ];
    if let Some(audit) = full {
        println!(
            "audit of all {} journal rows ({} bytes): {} tasks, {} completed once, dead-lettered {:?}, {} expired; \
             {} reports accepted, {} fenced out; {} snapshots equal their replay",
            audit.rows,
            audit.bytes,
            audit.tasks,
            audit.completed,
            audit.dead_lettered,
            audit.expired,
            audit.accepted_reports,
            audit.rejected_reports,
            audit.snapshots_checked
        );
        for violation in &audit.violations {
            println!("audit: {violation}");
        }
        checks.push((
            "a replay of the whole journal breaks no rule".to_string(),
            audit.violations.is_empty(),
        ));
    }
    if !crate::checks::report(&checks) {
        return Err("the demo's checks failed".to_string());
    }
    pg.stop();
    Ok(())
}

/// Appends `BENCH_INPUTS` one-task submissions in fenced batches to a
/// scratch database, and returns inputs per second.
fn append_rate(conninfo: &str) -> Result<f64, String> {
    let err = |e: crate::store::StoreError| e.to_string();
    let mut admin = Store::connect(conninfo).map_err(err)?;
    admin
        .client()
        .batch_execute("CREATE DATABASE bench")
        .map_err(|e| e.to_string())?;
    let mut store =
        Store::connect(&conninfo.replace("dbname=postgres", "dbname=bench")).map_err(err)?;
    store.create_schema().map_err(err)?;
    let epoch = store
        .take_lease(0, "bench")
        .map_err(err)?
        .ok_or("the bench lease is taken")?;
    let now = wall_now();
    let inputs: Vec<(Option<i64>, String)> = (0..BENCH_INPUTS)
        .map(|n| {
            let spec = TaskSpec::new(Job { n: n as u32 }).priority(Priority::ALL[n % 4]);
            (
                None,
                serde_json::to_string(&Input::Submit { spec, now }).expect("inputs serialize"),
            )
        })
        .collect();
    let started = WallInstant::now();
    for (i, batch) in inputs.chunks(BENCH_BATCH).enumerate() {
        store
            .append(epoch, (i * BENCH_BATCH) as i64 + 1, batch, &[])
            .map_err(err)?;
    }
    Ok(BENCH_INPUTS as f64 / started.elapsed().as_secs_f64())
}

/// The machine, as the figures should name it.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "{cores} cores ({cpu}), {} {}",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}
