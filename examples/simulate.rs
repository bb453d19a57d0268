//! Deterministic simulation of a whole taskweave cluster: the same node and
//! agent-session code the PostgreSQL host runs, in virtual time, under the
//! full fault menu. Each seed runs twice and must give the same trace
//! hash; a failing seed prints the command that replays it and the trace
//! around the violation. Journal entries are round-tripped through JSON,
//! as the PostgreSQL store keeps them.
//!
//! ```text
//! cargo run --release --features cluster --example simulate -- --seeds 100
//! cargo run --release --features cluster --example simulate -- --seed 42 --minutes 10
//! SIM_SEEDS=10000 cargo run --release --features cluster --example simulate
//! ```
//!
//! Prints one JSON line per seed and a summary line with the figures:
//! simulated seconds per real second, seeds per minute, events per second,
//! faults injected per kind, violations.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant as WallInstant};

use taskweave::cluster::Entry;
use taskweave::cluster::sim::{FaultMenu, SimConfig, UniformWork, simulate};

/// Re-encodes an entry as the PostgreSQL store keeps it (JSON text).
fn json(entry: &Entry<u64>) -> Result<(Entry<u64>, usize), String> {
    let text = serde_json::to_string(entry).map_err(|e| e.to_string())?;
    let back = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    Ok((back, text.len()))
}

fn arg(args: &[String], name: &str) -> Option<u64> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let env_seeds = std::env::var("SIM_SEEDS").ok().and_then(|v| v.parse().ok());
    let seeds = arg(&args, "--seeds").or(env_seeds).unwrap_or(100);
    let first = arg(&args, "--seed");
    let minutes = arg(&args, "--minutes").unwrap_or(10);
    let range = match first {
        Some(seed) => seed..seed + 1,
        None => 1..seeds + 1,
    };
    let work = UniformWork {
        work: (Duration::from_millis(1), Duration::from_millis(200)),
        fail: 0.05,
    };
    let started = WallInstant::now();
    let (mut simulated, mut events, mut violations) = (Duration::ZERO, 0u64, 0u64);
    let mut faults: BTreeMap<&'static str, u64> = BTreeMap::new();
    for seed in range.clone() {
        let config = SimConfig::builder(seed)
            .duration(Duration::from_secs(60 * minutes), Duration::from_secs(60))
            .faults(FaultMenu::default())
            .codec(json)
            .keep_trace(first.is_some())
            .build();
        let config = match config {
            Ok(config) => config,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        };
        let one = WallInstant::now();
        let report = simulate(config.clone(), work.clone());
        let again = simulate(config, work.clone());
        let real = one.elapsed();
        simulated += report.simulated * 2;
        events += report.events * 2;
        for (kind, n) in &report.faults {
            *faults.entry(kind).or_default() += n;
        }
        let deterministic = report.trace_hash == again.trace_hash;
        let verdict = match (&report.violation, deterministic) {
            (None, true) => "ok",
            (Some(_), _) => "VIOLATION",
            (None, false) => "NONDETERMINISTIC",
        };
        println!(
            "{{\"seed\":{seed},\"verdict\":\"{verdict}\",\"simulated_s\":{:.1},\"events\":{},\"submitted\":{},\"completed\":{},\"dead_lettered\":{},\"cancelled\":{},\"takeovers\":{},\"journal_entries\":{},\"journal_bytes\":{},\"trace_hash\":\"{:016x}\",\"real_s\":{:.3}}}",
            report.simulated.as_secs_f64(),
            report.events,
            report.submitted,
            report.completed,
            report.dead_lettered,
            report.cancelled,
            report.takeovers,
            report.journal_entries,
            report.journal_bytes,
            report.trace_hash,
            real.as_secs_f64() / 2.0
        );
        if verdict != "ok" {
            violations += 1;
            if report.violation.is_some() && first.is_none() {
                eprintln!("seed {seed}: a violation; replay the seed (below) for its trace");
            }
            if let Some(v) = &report.violation {
                eprintln!("seed {seed}: {} at {:?} of simulated time", v.what, v.at);
                for line in &v.trace {
                    eprintln!("  {line}");
                }
            } else {
                eprintln!(
                    "seed {seed}: two runs gave trace hashes {:016x} and {:016x}",
                    report.trace_hash, again.trace_hash
                );
            }
            eprintln!(
                "replay: cargo run --release --features cluster --example simulate -- --seed {seed} --minutes {minutes}"
            );
        }
    }
    let real = started.elapsed().as_secs_f64();
    let runs = (range.end - range.start) * 2;
    let faults: Vec<String> = faults.iter().map(|(k, n)| format!("\"{k}\":{n}")).collect();
    println!(
        "{{\"figure\":\"summary\",\"seeds\":{},\"runs\":{runs},\"violations\":{violations},\"simulated_s_per_real_s\":{:.0},\"seeds_per_minute\":{:.1},\"events_per_second\":{:.0},\"real_s\":{real:.2},\"faults\":{{{}}}}}",
        range.end - range.start,
        simulated.as_secs_f64() / real,
        (range.end - range.start) as f64 * 60.0 / real,
        events as f64 / real,
        faults.join(",")
    );
    if violations == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
