//! `--metrics ADDR`: a node and an agent serve Prometheus metrics, and a
//! scrape reads what the cluster did: the tasks submitted, completed and
//! dead-lettered, the queue, the lease and its takeovers, commits and
//! journal bytes, and each agent's claims and reports.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

use common::cli::{init, run, start, wait_until};
use taskweave_postgres::testkit::start_or_skip;

/// A port free now (the test binds it a moment later).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The metrics served on `port`; empty while nothing answers there.
fn scrape(port: u16) -> String {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
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
    let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
    let addr = |i: usize| format!("127.0.0.1:{}", ports[i]);
    let first = start(&["node", "--db", &node, "--name", "n1", "--metrics", &addr(0)]);
    wait_until("node n1 to lead", || {
        value(&scrape(ports[0]), "taskweave_leading") == 1.0
    });
    let _second = start(&["node", "--db", &node, "--name", "n2", "--metrics", &addr(1)]);
    let script = "read p; case \"$p\" in *fail*) exit 100 ;; *) echo done ;; esac";
    let _agents: Vec<_> = [(1, "a1"), (2, "a2")]
        .into_iter()
        .map(|(id, login)| {
            let metrics = addr(1 + id);
            let (db, id) = (cluster.conninfo_as(login), id.to_string());
            start(&[
                "agent",
                "--db",
                &db,
                "--id",
                &id,
                "--metrics",
                &metrics,
                "--",
                "sh",
                "-c",
                script,
            ])
        })
        .collect();
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
    wait_until("the leader to count 19 completions", || {
        value(&scrape(ports[0]), "taskweave_tasks_completed_total") == 19.0
    });
    let leader = scrape(ports[0]);
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
    wait_until("the standby to count 19 completions", || {
        value(&scrape(ports[1]), "taskweave_tasks_completed_total") == 19.0
    });
    let standby = scrape(ports[1]);
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
    let agents = [scrape(ports[2]), scrape(ports[3])];
    let total = |name: &str| agents.iter().map(|text| value(text, name)).sum::<f64>();
    assert_eq!(total("taskweave_agent_claimed_total"), 20.0, "{agents:?}");
    assert_eq!(total("taskweave_agent_succeeded_total"), 19.0, "{agents:?}");
    assert_eq!(total("taskweave_agent_failed_total"), 1.0, "{agents:?}");
    assert_eq!(total("taskweave_agent_running"), 0.0, "{agents:?}");

    // The leader dies: the standby takes over, and says so.
    drop(first);
    wait_until("the standby to lead", || {
        value(&scrape(ports[1]), "taskweave_leading") == 1.0
    });
    let leading = scrape(ports[1]);
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
