//! Deterministic simulation of a whole taskweave cluster: the same node and
//! agent-session code the PostgreSQL host runs, in virtual time, under the
//! full fault menu, with workflow runs (an order saga on the engine, its
//! steps cluster tasks) beside the plain tasks. Each seed runs twice and must give the same trace
//! hash; a failing seed prints the command that replays it and the trace
//! around the violation. Journal entries are round-tripped through JSON,
//! as the PostgreSQL store keeps them.
//!
//! ```text
//! cargo run --release --features cluster --example simulate -- --seeds 100
//! cargo run --release --features cluster --example simulate -- --seed 42 --minutes 10
//! cargo run --release --features cluster --example simulate -- --seeds 20 --rate 50 --jobs 1
//! cargo run --release --features cluster --example simulate -- --seeds 20 --runs 0
//! cargo run --release --features cluster --example simulate -- --seeds 100 --hosted 10
//! SIM_SEEDS=10000 cargo run --release --features cluster --example simulate
//! ```
//!
//! Options (`--help` prints them): `--seeds N` (or `SIM_SEEDS`, default
//! 100), `--seed S` (one seed, with its trace kept), `--minutes M` of faults
//! (default 10), `--rate R` tasks per second (default 200), `--runs W`
//! workflow runs per second on a workflow client (default 10; 0: plain
//! tasks only), `--hosted H` runs per second that the nodes host instead
//! (default 0: none; any other value replaces `--runs`), `--jobs J` seeds
//! at once (default: one per core; each seed runs on one thread).
//!
//! Prints one JSON line per seed, as seeds finish, and a summary line with
//! the figures: simulated seconds per real second (in all and per thread),
//! seeds per minute, events per second, faults injected per kind,
//! violations.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant as WallInstant};

use taskweave::cluster::Entry;
use taskweave::cluster::sim::{
    FaultMenu, HostedSagas, SagaFlows, SimConfig, SimReport, UniformWork, simulate,
    simulate_hosted, simulate_workflows,
};

/// Re-encodes an entry as the PostgreSQL store keeps it (JSON text), in a
/// buffer each thread reuses.
fn json<P>(entry: &Entry<P>) -> Result<(Entry<P>, usize), String>
where
    P: serde::Serialize + serde::de::DeserializeOwned,
{
    thread_local! {
        static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUFFER.with_borrow_mut(|text| {
        text.clear();
        serde_json::to_writer(&mut *text, entry).map_err(|e| e.to_string())?;
        let back = serde_json::from_slice(text).map_err(|e| e.to_string())?;
        Ok((back, text.len()))
    })
}

/// What `--help` prints.
const USAGE: &str = "\
Simulates a whole taskweave cluster in virtual time under a menu of faults,
each seed twice (the two runs must give the same trace hash).

usage: simulate [--seeds N | --seed S] [--minutes M] [--rate R] [--runs W | --hosted H] [--jobs J]

  --seeds N    seeds 1..=N (or SIM_SEEDS; default 100)
  --seed S     one seed, with its trace kept for a violation's context
  --minutes M  simulated minutes of faults (default 10), then up to 60 s
               for everything to end
  --rate R     plain tasks submitted per second (default 200)
  --runs W     order sagas per second on a workflow client whose steps are
               cluster tasks (default 10; 0: plain tasks only)
  --hosted H   saga runs per second that the nodes host instead (default 0:
               none; any other value replaces --runs): a client registers two
               sagas with the cluster, starts their runs by id, signals the
               runs that wait, cancels some and reads their ends, and stops
               now and then like the nodes that hold the runs; every commit
               is checked against the audit's replay
  --jobs J     seeds at once (default: one per core)

Prints a JSON line per seed and a summary line; exits 1 on any violation.";

fn arg(args: &[String], name: &str) -> Option<u64> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

/// What the command line asked for.
struct Plan {
    seeds: std::ops::Range<u64>,
    one_seed: bool,
    minutes: u64,
    rate: u64,
    runs: u64,
    hosted: u64,
    jobs: u64,
}

/// One seed, run twice.
struct Outcome {
    report: SimReport,
    again_hash: u64,
    real: Duration,
}

/// A seed's configuration, for a payload `P` that JSON round-trips.
fn config<P>(plan: &Plan, seed: u64) -> Result<SimConfig<P>, String>
where
    P: serde::Serialize + serde::de::DeserializeOwned,
{
    SimConfig::builder(seed)
        .duration(
            Duration::from_secs(plan.minutes.saturating_mul(60)),
            Duration::from_secs(60),
        )
        .faults(FaultMenu::default())
        .tasks_per_second(plan.rate as f64)
        .keep_trace(plan.one_seed)
        .codec(json)
        .build()
        .map_err(|e| e.to_string())
}

fn run_seed(plan: &Plan, seed: u64) -> Result<Outcome, String> {
    let attempt = (Duration::from_millis(1), Duration::from_millis(200));
    let work = UniformWork {
        work: attempt,
        fail: 0.05,
    };
    let started = WallInstant::now();
    let (report, again) = if plan.hosted > 0 {
        let config = config(plan, seed)?;
        let sagas = HostedSagas::new(plan.hosted as f64, attempt, 0.15, Duration::from_secs(3))
            .map_err(|e| e.to_string())?;
        let report = simulate_hosted(config.clone(), work.clone(), sagas.clone())
            .map_err(|e| e.to_string())?;
        let again = simulate_hosted(config, work, sagas).map_err(|e| e.to_string())?;
        (report, again)
    } else if plan.runs == 0 {
        let config = config(plan, seed)?;
        let report = simulate(config.clone(), work.clone());
        (report, simulate(config, work))
    } else {
        let config = config(plan, seed)?;
        let flows = SagaFlows::new(plan.runs as f64, attempt, 0.1, Duration::from_secs(5))
            .map_err(|e| e.to_string())?;
        let report = simulate_workflows(config.clone(), work.clone(), flows.clone())
            .map_err(|e| e.to_string())?;
        let again = simulate_workflows(config, work, flows).map_err(|e| e.to_string())?;
        (report, again)
    };
    Ok(Outcome {
        report,
        again_hash: again.trace_hash,
        real: started.elapsed(),
    })
}

/// Prints a seed's line (and, when it failed, why and how to replay it);
/// true when it passed.
fn print_seed(plan: &Plan, seed: u64, outcome: &Outcome) -> bool {
    let report = &outcome.report;
    let deterministic = report.trace_hash == outcome.again_hash;
    let verdict = match (&report.violation, deterministic) {
        (None, true) => "ok",
        (Some(_), _) => "VIOLATION",
        (None, false) => "NONDETERMINISTIC",
    };
    println!(
        "{{\"seed\":{seed},\"verdict\":\"{verdict}\",\"simulated_s\":{:.1},\"events\":{},\"submitted\":{},\"step_tasks\":{},\"refused\":{},\"completed\":{},\"dead_lettered\":{},\"redriven\":{},\"cancelled\":{},\"takeovers\":{},\"runs\":{{\"started\":{},\"succeeded\":{},\"compensated\":{},\"failed\":{},\"compensation_failed\":{},\"cancelled\":{}}},\"journal_entries\":{},\"journal_bytes\":{},\"trace_hash\":\"{:016x}\",\"real_s\":{:.3}}}",
        report.simulated.as_secs_f64(),
        report.events,
        report.submitted,
        report.step_tasks,
        report.refused,
        report.completed,
        report.dead_lettered,
        report.redriven,
        report.cancelled,
        report.takeovers,
        report.runs.started,
        report.runs.succeeded,
        report.runs.compensated,
        report.runs.failed,
        report.runs.compensation_failed,
        report.runs.cancelled,
        report.journal_entries,
        report.journal_bytes,
        report.trace_hash,
        outcome.real.as_secs_f64() / 2.0
    );
    if verdict == "ok" {
        return true;
    }
    if let Some(v) = &report.violation {
        eprintln!("seed {seed}: {v}");
    } else {
        eprintln!(
            "seed {seed}: two runs gave trace hashes {:016x} and {:016x}",
            report.trace_hash, outcome.again_hash
        );
    }
    eprintln!(
        "replay: cargo run --release --features cluster --example simulate -- --seed {seed} --minutes {} --rate {} --runs {} --hosted {}",
        plan.minutes, plan.rate, plan.runs, plan.hosted
    );
    false
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let env_seeds = std::env::var("SIM_SEEDS").ok().and_then(|v| v.parse().ok());
    let seeds = arg(&args, "--seeds").or(env_seeds).unwrap_or(100);
    let first = arg(&args, "--seed");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    let plan = Plan {
        seeds: match first {
            Some(seed) => seed..seed.saturating_add(1),
            None => 1..seeds.saturating_add(1),
        },
        one_seed: first.is_some(),
        minutes: arg(&args, "--minutes").unwrap_or(10),
        rate: arg(&args, "--rate").unwrap_or(200),
        runs: arg(&args, "--runs").unwrap_or(10),
        hosted: arg(&args, "--hosted").unwrap_or(0),
        jobs: arg(&args, "--jobs").unwrap_or(cores).max(1),
    };
    let started = WallInstant::now();
    let next = AtomicU64::new(plan.seeds.start);
    let (sender, results) = mpsc::channel();
    let (mut simulated, mut events, mut violations, mut busy) =
        (Duration::ZERO, 0u64, 0u64, Duration::ZERO);
    let mut faults: BTreeMap<&'static str, u64> = BTreeMap::new();
    std::thread::scope(|scope| {
        for _ in 0..plan.jobs.min(plan.seeds.end - plan.seeds.start) {
            let (plan, next, sender) = (&plan, &next, sender.clone());
            scope.spawn(move || {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= plan.seeds.end || sender.send((seed, run_seed(plan, seed))).is_err()
                    {
                        return;
                    }
                }
            });
        }
        drop(sender);
        for (seed, outcome) in results {
            match outcome {
                Ok(outcome) => {
                    simulated += outcome.report.simulated * 2;
                    events += outcome.report.events * 2;
                    busy += outcome.real;
                    for (kind, n) in &outcome.report.faults {
                        *faults.entry(kind).or_default() += n;
                    }
                    if !print_seed(&plan, seed, &outcome) {
                        violations += 1;
                    }
                }
                Err(why) => {
                    eprintln!("seed {seed}: the simulation was refused: {why}");
                    violations += 1;
                }
            }
        }
    });
    let real = started.elapsed().as_secs_f64();
    let count = plan.seeds.end - plan.seeds.start;
    let faults: Vec<String> = faults.iter().map(|(k, n)| format!("\"{k}\":{n}")).collect();
    println!(
        "{{\"figure\":\"summary\",\"seeds\":{count},\"runs\":{},\"jobs\":{},\"rate\":{},\"workflow_runs_per_s\":{},\"hosted_runs_per_s\":{},\"violations\":{violations},\"simulated_s_per_real_s\":{:.0},\"simulated_s_per_thread_s\":{:.0},\"seeds_per_minute\":{:.1},\"events_per_second\":{:.0},\"real_s\":{real:.2},\"faults\":{{{}}}}}",
        count * 2,
        plan.jobs,
        plan.rate,
        if plan.hosted > 0 { 0 } else { plan.runs },
        plan.hosted,
        simulated.as_secs_f64() / real,
        simulated.as_secs_f64() / busy.as_secs_f64().max(f64::MIN_POSITIVE),
        count as f64 * 60.0 / real,
        events as f64 / real,
        faults.join(",")
    );
    if violations == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
