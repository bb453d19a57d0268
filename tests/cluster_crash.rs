//! The crash test of `examples/cluster`: a private PostgreSQL, a leader, a
//! standby and four agent processes; 10,000 tasks with mixed priorities
//! and 5 % failing attempts; one agent and then the leader killed with
//! `SIGKILL`, and under the new leader another agent paused past its
//! heartbeat timeout while it holds work. From the journal and the final
//! state it checks that every task ended exactly once (completed, or
//! dead-lettered for a stated reason), that no report from a fenced
//! attempt was accepted, and that the new leader's state equals a replay
//! of the journal. It prints the recovery time.
//!
//! The role processes are this test binary run again, with the role's
//! arguments in `TASKWEAVE_CLUSTER_ROLE`. Without PostgreSQL's server
//! programs the test says so and passes, unless
//! `TASKWEAVE_REQUIRE_POSTGRES=1` (CI sets it) makes that a failure.

#![cfg(feature = "serde")]

#[path = "../examples/cluster/agent.rs"]
mod agent;
#[path = "../examples/cluster/audit.rs"]
mod audit;
#[path = "../examples/cluster/cli.rs"]
mod cli;
#[path = "../examples/cluster/leader.rs"]
mod leader;
#[path = "../examples/cluster/mailbox.rs"]
mod mailbox;
#[path = "../examples/cluster/model.rs"]
mod model;
#[path = "../examples/cluster/pg.rs"]
mod pg;
#[path = "../examples/cluster/replica.rs"]
mod replica;
#[path = "../examples/cluster/scenario.rs"]
mod scenario;
#[path = "../examples/cluster/standby.rs"]
mod standby;
#[path = "../examples/cluster/store.rs"]
mod store;

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use taskweave::Instant;
use taskweave::scheduler::{Dispatcher, TaskSpec};

use crate::model::Job;
use crate::pg::{PgCluster, PgError};
use crate::scenario::Plan;
use crate::store::{Store, StoreError, restore_snapshot};

const ROLE_ENV: &str = "TASKWEAVE_CLUSTER_ROLE";
const TEST_NAME: &str = "cluster_survives_sigkill_of_leader_and_agent";
const TASKS: u32 = 10_000;

#[test]
fn cluster_survives_sigkill_of_leader_and_agent() {
    if let Ok(role) = std::env::var(ROLE_ENV) {
        // This process is a role of the cluster, not the test.
        let args: Vec<String> = serde_json::from_str(&role).expect("role arguments are JSON");
        let code = match cli::run_role(&args) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("{e}");
                1
            }
        };
        std::process::exit(code);
    }
    let required = std::env::var("TASKWEAVE_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
    let mut pg = match PgCluster::start() {
        Ok(pg) => pg,
        Err(PgError::Missing(missing)) if !required => {
            eprintln!("SKIPPED {TEST_NAME}: {missing}");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let plan = Plan::crash(TASKS, 4, false, Duration::from_secs(240));
    let exe = std::env::current_exe().expect("the test binary has a path");
    let role = |args: &[String]| {
        let mut command = Command::new(&exe);
        command
            .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
            .env(
                ROLE_ENV,
                serde_json::to_string(args).expect("strings serialize"),
            )
            // The harness's own lines; the role logs to stderr.
            .stdout(std::process::Stdio::null());
        command
    };
    let figures = match scenario::run(&plan, &pg.conninfo(), &role) {
        Ok(figures) => figures,
        Err(e) => panic!("{e}\n--- server log ---\n{}", pg::server_log(&pg)),
    };
    let mut store = Store::connect(&pg.conninfo()).expect("the database is up");
    let audit = audit::audit(&mut store).expect("the journal replays");
    let recovery = figures
        .recovery
        .expect("the new leader assigned tasks: 60 % were left when the leader was killed");
    let secs = figures.elapsed.as_secs_f64();
    // The table with its primary key and PostgreSQL's row overhead.
    let on_disk: i64 = store
        .client()
        .query_one("SELECT pg_total_relation_size('journal')", &[])
        .expect("the journal table exists")
        .get(0);
    // Straight to stderr, past the test harness's capture, so the figures
    // show in a passing CI run.
    let mut out = std::io::stderr();
    writeln!(
        out,
        "cluster_crash: {TASKS} tasks in {secs:.2} s ({:.0} tasks/s); journal {} rows, {:.0} bytes per task \
         ({:.0} on disk); recovery after SIGKILL: lease after {} ms, first assignment after {} ms",
        f64::from(TASKS) / secs,
        audit.rows,
        audit.bytes as f64 / f64::from(TASKS),
        on_disk as f64 / f64::from(TASKS),
        figures.takeover.as_millis(),
        recovery.as_millis(),
    )
    .expect("stderr takes the figures");
    writeln!(
        out,
        "cluster_crash: rows by epoch {:?}; {} completed, dead-lettered {:?}, {} expired; \
         {} reports accepted, {} fenced out; {} snapshots equal their replay",
        audit.rows_by_epoch,
        audit.completed,
        audit.dead_lettered,
        audit.expired,
        audit.accepted_reports,
        audit.rejected_reports,
        audit.snapshots_checked
    )
    .expect("stderr takes the figures");
    assert!(audit.violations.is_empty(), "{:#?}", audit.violations);
    assert_eq!(
        audit.tasks, TASKS as usize,
        "every submitted task is accounted for"
    );
    let dead: usize = audit.dead_lettered.values().sum();
    assert_eq!(
        audit.completed + dead + audit.expired,
        TASKS as usize,
        "each task ended once"
    );
    for reason in audit.dead_lettered.keys() {
        assert!(
            reason == "NonRetryable" || reason == "RetriesExhausted",
            "dead-lettered for an unexpected reason: {reason}"
        );
    }
    assert!(
        dead > 0,
        "5 % failing attempts, a fifth of them fatal, dead-letter some tasks"
    );
    assert!(
        audit.final_state_matches,
        "the new leader's state equals a replay of the journal"
    );
    let restored = audit::tail_matches(&mut store).expect("the latest snapshot restores");
    assert_eq!(
        restored,
        Some(true),
        "a standby restoring the latest snapshot and the journal behind it gets the final state"
    );
    assert!(
        audit.snapshots_checked >= 1,
        "snapshots were written and checked"
    );
    let epochs: Vec<i64> = audit.rows_by_epoch.keys().copied().collect();
    assert_eq!(epochs, [1, 2], "the standby took over with the next epoch");
    assert!(
        audit.rejected_reports > 0,
        "the paused agent's late reports were fenced out"
    );
    let status = (figures.completed, figures.dead_lettered, figures.expired);
    let replayed = (audit.completed as i64, dead as i64, audit.expired as i64);
    assert_eq!(status, replayed, "the status row agrees with the replay");
    // The leaders count what they appended; a batch the killed leader
    // committed but did not count yet is the only difference allowed.
    assert!(figures.journal_rows <= audit.rows && figures.journal_bytes as usize <= audit.bytes);
    // The deposed leader cannot write: appending with its epoch fails now.
    let fenced = store.append(1, audit.rows + 1, &[(None, "{}".into())], &[]);
    assert!(
        matches!(fenced, Err(StoreError::Fenced { epoch: 1 })),
        "{fenced:?}"
    );
    assert!(
        recovery < Duration::from_secs(10),
        "recovered in {:?}",
        recovery
    );
    corrupt_rows_are_clear_errors(&mut store, audit.rows);
    pg.stop();
}

/// Rows a reader cannot trust, written behind the run's back: a journal
/// row that is not JSON, one in an unknown format, and a snapshot that is
/// not one. Each is an error naming its table and row.
fn corrupt_rows_are_clear_errors(store: &mut Store, rows: i64) {
    let (garbage, unknown) = (rows + 1, rows + 2);
    store
        .client()
        .execute(
            "INSERT INTO journal (seq, epoch, inbox_id, format, input)
             VALUES ($1, 2, NULL, 1, '{\"Submit\":'), ($2, 2, NULL, 99, '{}')",
            &[&garbage, &unknown],
        )
        .expect("the rows insert");
    for seq in [garbage, unknown] {
        match store.read_journal(seq, 10) {
            Err(StoreError::Corrupt {
                table: "journal",
                key,
                ..
            }) => assert_eq!(key, seq),
            other => panic!("journal row {seq} read as {other:?}"),
        }
    }
    store
        .client()
        .execute(
            "INSERT INTO snapshots (seq, epoch, state) VALUES ($1, 2, '{\"version\": 3, \"state\": []}')",
            &[&unknown],
        )
        .expect("the row inserts");
    match replica::Replica::restore(store) {
        Err(StoreError::Corrupt {
            table: "snapshots",
            key,
            ..
        }) => assert_eq!(key, unknown),
        other => panic!("a corrupt snapshot restored: {other:?}"),
    }
}

#[test]
fn corrupt_snapshot_rows_are_clear_errors() {
    let mut dispatcher: Dispatcher<Job> = Dispatcher::new(model::dispatcher_config());
    let _ = dispatcher
        .submit(TaskSpec::new(Job { n: 1 }), Instant::ZERO)
        .expect("room");
    let good = serde_json::to_string(&dispatcher.snapshot()).expect("snapshots serialize");
    assert!(restore_snapshot(7, &good).is_ok());
    let tampered = good.replacen("\"version\":", "\"version\":9", 1);
    let cases = ["", "not json", &good[..good.len() / 2], &tampered];
    for text in cases {
        match restore_snapshot(7, text) {
            Err(StoreError::Corrupt {
                table: "snapshots",
                key: 7,
                problem,
            }) => assert!(!problem.is_empty()),
            other => panic!("{text:.40?} restored: {other:?}"),
        }
    }
}
