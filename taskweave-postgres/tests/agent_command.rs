//! `taskweave-pg agent` runs a command per task: a cancelled task's
//! command is killed with everything it started, and what a command
//! writes to its stdout is the task's output, which `outcome` prints.

mod common;

use std::process::Command;

use common::cli::{node_agent_submitter, run, start, wait_until};
use taskweave_postgres::testkit::start_or_skip;

/// Kills the processes whose command line contains its pattern when
/// dropped: a failed test leaves no sleep behind.
struct Sweep(String);

impl Drop for Sweep {
    fn drop(&mut self) {
        let _ = Command::new("pkill").args(["-f", &self.0]).status();
    }
}

/// The processes whose command line contains `needle`.
fn processes(needle: &str) -> Vec<String> {
    let out = Command::new("pgrep")
        .args(["-af", needle])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.contains("pgrep"))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_cancel_kills_what_the_command_started_and_stdout_is_the_output() {
    let Some(cluster) = start_or_skip("agent_command") else {
        return;
    };
    let (node, agent, sub) = node_agent_submitter(&cluster);
    // A number unique to this test, in the sleeps' command lines only (the
    // script computes it, so neither the agent's nor the shell's command
    // line holds it).
    let marker = 3_000_000 + std::process::id();
    let _sweep = Sweep(format!("sleep {marker}"));
    let script = format!(
        "read p; case \"$p\" in *sleep*) sleep $(({marker} + 0)) & sleep $(({marker} + 0)); \
         wait ;; *) echo '{{\"seen\": '\"$p\"'}}' ;; esac"
    );
    let _node = start(&["node", "--db", &node, "--name", "n1"]);
    let _agent = start(&[
        "agent", "--db", &agent, "--id", "1", "--", "sh", "-c", &script,
    ]);
    let submitted = run(
        &["submit", "--db", &sub],
        "{\"payload\": \"sleep\"}\n{\"payload\": 7}\n",
    );
    assert!(
        submitted.contains("line 1: task-0") && submitted.contains("line 2: task-1"),
        "{submitted}"
    );
    let outcome = run(&["outcome", "--db", &sub, "--wait", "30", "task-1"], "");
    assert!(
        outcome.contains("task-1: completed, output: {\"seen\":7}"),
        "{outcome}"
    );
    // Their sessions are named, so `reset` knows a node or agent is about.
    let mut admin = postgres::Client::connect(&cluster.conninfo(), postgres::NoTls).unwrap();
    let names: Vec<String> = admin
        .query(
            "SELECT DISTINCT application_name FROM pg_stat_activity
             WHERE starts_with(application_name, 'taskweave ') ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(names, ["taskweave agent 1", "taskweave node n1"]);
    wait_until("the command and its two sleeps to start", || {
        processes(&format!("sleep {marker}")).len() >= 2
    });
    let cancelled = run(&["cancel", "--db", &sub, "task-0"], "");
    assert!(cancelled.contains("task-0: cancelled"), "{cancelled}");
    wait_until("every process the command started to be killed", || {
        processes(&format!("sleep {marker}")).is_empty()
    });
}
