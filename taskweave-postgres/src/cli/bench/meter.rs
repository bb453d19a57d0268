//! What a phase costs: CPU time of the bench and of the machine,
//! transactions and WAL written.

use std::time::{Duration, Instant};

use postgres::Client;
use serde_json::{Value, json};

use super::round;

/// CPU seconds used so far: this process, and the whole machine.
pub(super) fn cpu() -> (f64, f64) {
    let ticks = 100.0; // USER_HZ on Linux
    let own = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // The fields after the command name, which ends with ')'.
            let rest = s.rsplit_once(')')?.1.to_string();
            let f: Vec<f64> = rest
                .split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect();
            // utime and stime are fields 14 and 15 of the line, 11 and
            // 12 after the state letter (not a number, filtered out).
            Some((f.get(10)? + f.get(11)?) / ticks)
        })
        .unwrap_or(0.0);
    let machine = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            let line = s.lines().next()?.to_string();
            let f: Vec<f64> = line
                .split_whitespace()
                .skip(1)
                .filter_map(|w| w.parse().ok())
                .collect();
            // Everything but idle (3) and iowait (4).
            let busy: f64 = f
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != 3 && *i != 4 && *i < 8)
                .map(|(_, v)| v)
                .sum();
            Some(busy / ticks)
        })
        .unwrap_or(0.0);
    (own, machine)
}

/// The database's counters: transactions committed, WAL position (bytes).
pub(super) fn db_counters(client: &mut Client) -> Result<(i64, i64), String> {
    let row = client
        .query_one(
            "SELECT xact_commit, pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint
             FROM pg_stat_database WHERE datname = current_database()",
            &[],
        )
        .map_err(|e| format!("reading the database's counters: {e}"))?;
    Ok((row.get(0), row.get(1)))
}

/// Resource use over a phase.
pub(super) struct Meter {
    pub(super) started: Instant,
    pub(super) cpu: (f64, f64),
    pub(super) db: (i64, i64),
}

impl Meter {
    pub(super) fn start(client: &mut Client) -> Result<Self, String> {
        // The statistics collector lags; a fresh snapshot each read.
        let _ = client.batch_execute("CHECKPOINT");
        let _ = client.batch_execute("SELECT pg_stat_clear_snapshot()");
        Ok(Meter {
            started: Instant::now(),
            cpu: cpu(),
            db: db_counters(client)?,
        })
    }

    /// Per task: transactions, WAL bytes, CPU ms of this process and of
    /// everything else (PostgreSQL, mostly). CPU and WAL are read now; the
    /// transaction count a second later, as the statistics lag (so it
    /// includes that second's idle polling).
    pub(super) fn per_task(&self, client: &mut Client, tasks: u64) -> Result<Value, String> {
        let (own, machine) = cpu();
        let took = self.started.elapsed();
        let (_, wal) = db_counters(client)?;
        std::thread::sleep(Duration::from_millis(1_100));
        let _ = client.batch_execute("SELECT pg_stat_clear_snapshot()");
        let (xacts, _) = db_counters(client)?;
        let n = tasks.max(1) as f64;
        let own = own - self.cpu.0;
        Ok(json!({
            "transactions_per_task": round((xacts - self.db.0) as f64 / n, 2),
            "wal_bytes_per_task": round((wal - self.db.1) as f64 / n, 0),
            "cpu_ms_per_task_bench_process": round(own * 1e3 / n, 3),
            "cpu_ms_per_task_rest_of_machine": round((machine - self.cpu.1 - own) * 1e3 / n, 3),
            "measured_over_s": round(took.as_secs_f64(), 2),
        }))
    }
}
