//! An operator restores the cluster's schema from a backup (`pg_dump`,
//! then `pg_restore --clean`) under a running cluster: the leader, whose
//! state is ahead of the restored journal, says the store went back in
//! time and rebuilds from it (it used to retry one commit for ever), and
//! the cluster runs on: a task submitted after the restore completes, and
//! `audit` finds the journal clean. What the backup did not hold is lost,
//! and the ids of the tasks it lost are not handed out again.

mod common;

use std::process::Command;

use common::cli::{node_agent_submitter, run, run_status, start_echo_agent, start_logging};
use taskweave_postgres::testkit::{find_binaries, start_or_skip};

/// Submits one task of payload `{"n": N}`: its id, as `submit` printed it.
fn submit(db: &str, n: u32) -> String {
    let said = run(
        &["submit", "--db", db],
        &format!("{{\"payload\": {{\"n\": {n}}}}}\n"),
    );
    said.split_whitespace()
        .find(|word| word.starts_with("task-"))
        .unwrap_or_else(|| panic!("submit printed no task id: {said}"))
        .to_string()
}

/// Waits for `task` to complete with output `{"n": N}`.
fn completes(db: &str, task: &str, n: u32) {
    let said = run(&["outcome", "--db", db, "--wait", "30", task], "");
    assert!(
        said.contains(&format!("{task}: completed, output: {{\"n\":{n}}}")),
        "{said}"
    );
}

/// Runs a PostgreSQL client program (the server's own, where it has
/// one; else the one on `PATH`), which must succeed.
fn client(program: &str, args: &[&str]) {
    let beside_server = find_binaries()
        .map(|dir| dir.join(program))
        .ok()
        .filter(|path| path.is_file());
    let out = Command::new(beside_server.as_deref().unwrap_or(program.as_ref()))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e} (PostgreSQL's client programs are needed)"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_database_restored_from_a_backup_under_a_running_cluster_is_rebuilt_from() {
    let Some(cluster) = start_or_skip("backup_restore") else {
        return;
    };
    let (node_db, agent_db, sub_db) = node_agent_submitter(&cluster);
    let scratch = std::env::temp_dir().join(format!("taskweave-backup-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let (log, dump) = (scratch.join("node.log"), scratch.join("taskweave.dump"));
    let _node = start_logging(&["node", "--db", &node_db, "--name", "node-a"], &log);
    let _agent = start_echo_agent(&agent_db);
    for n in 1..=3 {
        let task = submit(&sub_db, n);
        completes(&sub_db, &task, n);
    }
    let admin = cluster.conninfo();
    let dump_path = dump.to_str().unwrap();
    client(
        "pg_dump",
        &["-d", &admin, "-n", "taskweave", "-Fc", "-f", dump_path],
    );
    // Work the backup will not hold.
    let mut lost = Vec::new();
    for n in 4..=5 {
        let task = submit(&sub_db, n);
        completes(&sub_db, &task, n);
        lost.push(task);
    }
    client("pg_restore", &["-d", &admin, "--clean", dump_path]);
    let task = submit(&sub_db, 6);
    completes(&sub_db, &task, 6);
    // The lost tasks' ids name no other task: a submitter holding one
    // never reads task 6's outcome under it.
    assert!(
        !lost.contains(&task),
        "{task} was handed out before: {lost:?}"
    );
    for gone in &lost {
        let (_, said) = run_status(&["outcome", "--db", &sub_db, gone], "");
        assert!(!said.contains("{\"n\":6}"), "{gone}: {said}");
    }
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(
        said.contains("the store went back in time") && said.contains("rebuilding from the store"),
        "the leader did not say why it rebuilt:\n{said}"
    );
    let (clean, audit) = run_status(&["audit", "--db", &node_db], "");
    assert!(clean && audit.contains("audit: clean"), "{audit}");
    let _ = std::fs::remove_dir_all(&scratch);
}
