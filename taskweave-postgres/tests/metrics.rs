//! `--metrics ADDR`: a node and an agent serve Prometheus metrics, and a
//! scrape reads what the cluster did: the tasks submitted, completed and
//! dead-lettered, the queue, the lease and its takeovers, commits and
//! journal bytes, and each agent's claims and reports.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::cli::{init, run, start_listening, wait_until};
use taskweave_postgres::testkit::start_or_skip;

/// The metrics served at `addr`; empty while nothing answers there.
fn scrape(addr: &str) -> String {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

/// The value of the sample `name` (with its labels, if any) in `text`.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// `sample`, or 0 while `text` lacks it (nothing served yet).
fn value(text: &str, name: &str) -> f64 {
    sample(text, name).unwrap_or(0.0)
}

#[test]
fn a_scrape_reads_what_the_cluster_did() {
    let Some(cluster) = start_or_skip("metrics") else {
        return;
    };
    init(
        &cluster.conninfo(),
        &[
            "--node",
            "n",
            "--agent",
            "1:a1",
            "--agent",
            "2:a2",
            "--submitter",
            "s",
        ],
    );
    let (node, sub) = (cluster.conninfo_as("n"), cluster.conninfo_as("s"));
    let any = "127.0.0.1:0";
    let (first, n1) = start_listening(&["node", "--db", &node, "--name", "n1", "--metrics", any]);
    wait_until("node n1 to lead", || {
        value(&scrape(&n1), "taskweave_leading") == 1.0
    });
    let (_second, n2) = start_listening(&["node", "--db", &node, "--name", "n2", "--metrics", any]);
    let script = "read p; case \"$p\" in *fail*) exit 100 ;; *) echo done ;; esac";
    let (_agents, agents): (Vec<_>, Vec<_>) = [(1, "a1"), (2, "a2")]
        .into_iter()
        .map(|(id, login)| {
            let (db, id) = (cluster.conninfo_as(login), id.to_string());
            start_listening(&[
                "agent",
                "--db",
                &db,
                "--id",
                &id,
                "--metrics",
                any,
                "--",
                "sh",
                "-c",
                script,
            ])
        })
        .unzip();
    let lines: String = (0..20)
        .map(|i| {
            let payload = if i == 7 { "\"fail\"" } else { "1" };
            format!("{{\"payload\": {payload}}}\n")
        })
        .collect();
    let submitted = run(&["submit", "--db", &sub], &lines);
    assert!(submitted.contains("line 20: task-19"), "{submitted}");
    let outcome = run(&["outcome", "--db", &sub, "--wait", "30", "task-19"], "");
    assert!(outcome.contains("task-19: completed"), "{outcome}");

    // The leader's figures, once every task ended.
    wait_until("the leader to count every task's end", || {
        let leader = scrape(&n1);
        value(&leader, "taskweave_tasks_completed_total") == 19.0
            && value(&leader, "taskweave_tasks_dead_lettered_total") == 1.0
    });
    let leader = scrape(&n1);
    for (name, expected) in [
        ("taskweave_tasks_submitted_total", 20.0),
        ("taskweave_tasks_dead_lettered_total", 1.0),
        ("taskweave_dead_letters", 1.0),
        ("taskweave_queue_depth{priority=\"P2\"}", 0.0),
        ("taskweave_tasks_in_flight", 0.0),
        ("taskweave_leading", 1.0),
        ("taskweave_takeovers_total", 1.0),
    ] {
        assert_eq!(sample(&leader, name), Some(expected), "{name}:\n{leader}");
    }
    let epoch = value(&leader, "taskweave_lease_epoch");
    assert!(epoch >= 1.0, "{leader}");
    assert!(
        value(&leader, "taskweave_commit_seconds_count") >= 1.0,
        "{leader}"
    );
    assert!(
        value(&leader, "taskweave_journal_bytes_total") > 0.0,
        "{leader}"
    );
    assert!(
        value(&leader, "taskweave_journal_applied") > 0.0,
        "{leader}"
    );

    // The standby replays the journal: the same totals, not leading.
    wait_until("the standby to count every task's end", || {
        let standby = scrape(&n2);
        value(&standby, "taskweave_tasks_completed_total") == 19.0
            && value(&standby, "taskweave_tasks_dead_lettered_total") == 1.0
    });
    let standby = scrape(&n2);
    assert_eq!(
        sample(&standby, "taskweave_leading"),
        Some(0.0),
        "{standby}"
    );
    assert_eq!(
        sample(&standby, "taskweave_takeovers_total"),
        Some(0.0),
        "{standby}"
    );

    // Each agent's claims and reports add up to the tasks' attempts.
    let total = |name: &str| agents.iter().map(|a| value(&scrape(a), name)).sum::<f64>();
    wait_until("the agents to count every report", || {
        total("taskweave_agent_succeeded_total") == 19.0
            && total("taskweave_agent_failed_total") == 1.0
    });
    assert_eq!(total("taskweave_agent_claimed_total"), 20.0);
    assert_eq!(total("taskweave_agent_running"), 0.0);

    // The leader dies: the standby takes over, and says so.
    drop(first);
    wait_until("the standby to lead", || {
        value(&scrape(&n2), "taskweave_leading") == 1.0
    });
    let leading = scrape(&n2);
    assert_eq!(
        sample(&leading, "taskweave_takeovers_total"),
        Some(1.0),
        "{leading}"
    );
    assert!(
        value(&leading, "taskweave_lease_epoch") > epoch,
        "{leading}"
    );
}
