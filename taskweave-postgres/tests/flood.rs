//! A hostile agent login floods the inbox of a working cluster on a real
//! PostgreSQL, with real processes of the built `taskweave-pg`: two nodes,
//! two agents running `true`, and `agent3`, a login whose agent never
//! registers, which posts 30 reports of 16 MB and then heartbeats 500
//! rows a statement for as long as the test runs. The other agents'
//! tasks complete during the flood, the leader keeps its lease (0 leader
//! changes), the database holds the flooder to its share of the inbox
//! and quarantines it once 1,024 of its messages were refused, `status`
//! names it, and the nodes log its refusals by the window, not one line
//! each.
//!
//! The figure (completed tasks/s during the flood against before it; the
//! issue's goal is at least 80 %) is written straight to stderr, past the
//! harness's capture; it is not asserted, as a timed figure on a shared
//! machine would make the test flaky.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use taskweave::cluster::{Sender, Status};
use taskweave::scheduler::TaskSpec;
use taskweave_postgres::PgClient;
use taskweave_postgres::testkit::start_or_skip;

const BIN: &str = env!("CARGO_BIN_EXE_taskweave-pg");
/// Tasks in each of the two waves: before the flood, and during it.
const WAVE: u64 = 2_000;
/// Each wave must end within this (it takes a few seconds).
const WAVE_BOUND: Duration = Duration::from_secs(120);
/// The flooder's agent id (its login is `agent3`).
const FLOODER: u64 = 3;
/// The big reports: 30 of 16 MB.
const BIG_REPORTS: usize = 30;
const BIG_BYTES: usize = 16_000_000;

/// A line of figures straight to stderr, so a passing run shows it.
macro_rules! figure {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// The processes the test started; dropping it kills them.
struct Processes {
    children: Vec<Child>,
    logs: Vec<PathBuf>,
}

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Processes {
    fn spawn(&mut self, dir: &Path, name: &str, args: &[&str]) {
        let log = dir.join(format!("{name}.log"));
        let out = File::create(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let err = out.try_clone().unwrap_or_else(|e| panic!("{e}"));
        let child = Command::new(BIN)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {BIN} for {name}: {e}"));
        self.children.push(child);
        self.logs.push(log);
    }

    /// Lines of the logs of processes whose name starts with `prefix`
    /// that contain `needle`.
    fn lines(&self, prefix: &str, needle: &str) -> Vec<String> {
        self.logs
            .iter()
            .filter(|log| {
                log.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(prefix))
            })
            .flat_map(|log| {
                std::fs::read_to_string(log)
                    .unwrap_or_default()
                    .lines()
                    .filter(|line| line.contains(needle))
                    .map(String::from)
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

/// Polls the status until `done(status)`, at most `limit`; answers the
/// last status and whether any status on the way named the flooder.
fn wait_status(
    client: &mut PgClient<Value>,
    limit: Duration,
    done: impl Fn(&Status) -> bool,
) -> (Option<Status>, bool) {
    let deadline = Instant::now() + limit;
    let (mut last, mut named) = (None, false);
    while Instant::now() < deadline {
        if let Ok((_, Some(status))) = client.status() {
            named |= status.inbox.as_ref().is_some_and(|inbox| {
                matches!(inbox.busiest, Sender::Agent { agent, .. } if agent.get() == FLOODER)
            });
            let finished = done(&status);
            last = Some(status);
            if finished {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (last, named)
}

/// Submits a wave of tasks and waits for all `expected` completions;
/// answers the wave's tasks/s and whether a status named the flooder.
fn wave(client: &mut PgClient<Value>, first: u64, expected: u64) -> (f64, bool) {
    let began = Instant::now();
    let batches = (first..first + WAVE)
        .collect::<Vec<_>>()
        .chunks(500)
        .map(|chunk| {
            chunk
                .iter()
                .map(|n| TaskSpec::new(serde_json::json!({ "n": n })))
                .collect()
        })
        .collect();
    client
        .submit_many(batches)
        .unwrap_or_else(|e| panic!("submit: {e}"));
    let (last, named) = wait_status(client, WAVE_BOUND, |s| s.completed >= expected);
    let completed = last.as_ref().map_or(0, |s| s.completed);
    assert!(
        completed >= expected,
        "only {completed} of {expected} tasks completed within {WAVE_BOUND:?}: {last:?}"
    );
    (WAVE as f64 / began.elapsed().as_secs_f64(), named)
}

/// The flood, as `agent3` in raw SQL: the big reports, then heartbeats
/// 500 rows a statement until `stop`. Counts rows the database took and
/// statements it refused.
fn flood(conninfo: String, stop: Arc<AtomicBool>, taken: Arc<AtomicU64>, refused: Arc<AtomicU64>) {
    let connect = || {
        postgres::Client::connect(
            &format!("{conninfo} options='-c search_path=taskweave'"),
            postgres::NoTls,
        )
        .unwrap_or_else(|e| panic!("the flooder's connection: {e}"))
    };
    let mut db = connect();
    let big = format!("\"{}\"", "0123456789abcdef".repeat(BIG_BYTES / 16));
    let count = |result: Result<u64, postgres::Error>| match result {
        Ok(rows) => {
            taken.fetch_add(rows, Ordering::Relaxed);
        }
        Err(_) => {
            refused.fetch_add(1, Ordering::Relaxed);
        }
    };
    for _ in 0..BIG_REPORTS {
        count(db.execute(
            "INSERT INTO inbox (agent, incarnation, kind, body) VALUES ($1, 1, 'report', $2)",
            &[&(FLOODER as i64), &big],
        ));
    }
    while !stop.load(Ordering::Relaxed) {
        count(db.execute(
            "INSERT INTO inbox (agent, incarnation, kind, body) \
             SELECT $1, 1, 'heartbeat', '\"Heartbeat\"' FROM generate_series(1, 500)",
            &[&(FLOODER as i64)],
        ));
    }
}

#[test]
fn a_flooding_agent_login_neither_stalls_the_work_nor_moves_the_lease() {
    let Some(cluster) = start_or_skip("flood") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("taskweave-flood-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut procs = Processes {
        children: Vec::new(),
        logs: Vec::new(),
    };
    let init = Command::new(BIN)
        .args(["init", "--db", &cluster.conninfo()])
        .args(["--node", "node", "--submitter", "submitter"])
        .args([
            "--agent", "1:agent1", "--agent", "2:agent2", "--agent", "3:agent3",
        ])
        .output()
        .unwrap_or_else(|e| panic!("init: {e}"));
    assert!(init.status.success(), "init: {init:?}");
    for name in ["node-a", "node-b"] {
        let db = cluster.conninfo_as("node");
        procs.spawn(&dir, name, &["node", "--db", &db, "--name", name]);
    }
    for id in ["1", "2"] {
        let db = cluster.conninfo_as(&format!("agent{id}"));
        let args = [
            "agent",
            "--db",
            &db,
            "--id",
            id,
            "--capacity",
            "16",
            "--",
            "true",
        ];
        procs.spawn(&dir, &format!("agent-{id}"), &args);
    }
    let mut client = PgClient::<Value>::connect(&cluster.conninfo_as("submitter"))
        .unwrap_or_else(|e| panic!("the test's client: {e}"));
    let (status, _) = wait_status(&mut client, Duration::from_secs(60), |s| {
        s.agents.len() == 2
    });
    let epoch = status
        .filter(|s| s.agents.len() == 2)
        .unwrap_or_else(|| panic!("no leader with both agents within 60 s"))
        .epoch;

    let (before, _) = wave(&mut client, 0, WAVE);

    let stop = Arc::new(AtomicBool::new(false));
    let (taken, refused) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let flooder = {
        let (db, stop) = (cluster.conninfo_as("agent3"), Arc::clone(&stop));
        let (taken, refused) = (Arc::clone(&taken), Arc::clone(&refused));
        std::thread::spawn(move || flood(db, stop, taken, refused))
    };
    let flood_began = Instant::now();
    // The big reports are posted, and the count flood has begun.
    while taken.load(Ordering::Relaxed) < BIG_REPORTS as u64 + 500 {
        assert!(!flooder.is_finished(), "the flooder ended early");
        assert!(
            flood_began.elapsed() < WAVE_BOUND,
            "the flood did not begin"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (during, named) = wave(&mut client, WAVE, 2 * WAVE);
    // A window of the nodes' refusal log passes before the flood ends.
    let (_, named_later) = wait_status(&mut client, Duration::from_secs(12), |_| false);
    stop.store(true, Ordering::Relaxed);
    flooder
        .join()
        .unwrap_or_else(|_| panic!("the flooder panicked"));
    let flooded = flood_began.elapsed();

    let (lease, _) = client.status().unwrap_or_else(|e| panic!("status: {e}"));
    let (taken, refused) = (
        taken.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
    );
    figure!(
        "flood: {before:.0} tasks/s before, {during:.0} during = {:.0} % (goal: at least 80 %); \
         the flooder's rows taken: {taken}, statements refused: {refused} in {flooded:.1?}; \
         leader changes: {}",
        100.0 * during / before,
        lease.epoch - epoch
    );
    assert_eq!(
        lease.epoch, epoch,
        "the leader lost its lease during the flood"
    );
    assert!(named || named_later, "no status named the flooder");
    assert!(refused > 0, "the database never refused the flooder");
    // Quarantined once 1,024 of its messages were refused: the big
    // reports, about 2,048 heartbeats (its refusals and its share of the
    // inbox), a statement's worth more.
    assert!(
        taken <= BIG_REPORTS as u64 + 2_048 + 500,
        "the flooder was not quarantined: {taken} of its rows were taken"
    );
    let pending: i64 = {
        let mut admin = postgres::Client::connect(&cluster.conninfo(), postgres::NoTls)
            .unwrap_or_else(|e| panic!("{e}"));
        admin
            .query_one(
                "SELECT count(*) FROM taskweave.inbox WHERE agent = $1 AND NOT consumed",
                &[&(FLOODER as i64)],
            )
            .unwrap_or_else(|e| panic!("{e}"))
            .get(0)
    };
    assert!(pending <= 1_024, "{pending} of the flooder's messages wait");
    let one_by_one = procs.lines("node-", "refused message");
    let counted = procs.lines("node-", "more messages from agent-3");
    assert!(
        one_by_one.len() <= 30 && !counted.is_empty(),
        "{} refusals logged one by one, {} summaries",
        one_by_one.len(),
        counted.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
