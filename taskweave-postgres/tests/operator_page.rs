//! `taskweave-pg ui` in a real headless browser (Chromium, through
//! WebDriver) against a live cluster: the page shows what `status --json`
//! says, cancels a queued task, outlives a PostgreSQL restart, and drains
//! the cluster; and it refuses a post without its token and a request that
//! names another host.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::browser::Browser;
use common::cli::{init, run, start, start_listening, wait_until};
use serde_json::Value;
use taskweave_postgres::testkit::start_or_skip;

/// `status --json` as `login`.
fn status(db: &str) -> Value {
    let said = run(&["status", "--db", db, "--json"], "");
    serde_json::from_str(said.trim()).unwrap_or_else(|e| panic!("{e}: {said}"))
}

/// Sends `request` to the page on `port`: the answer's status line.
fn raw(port: u16, request: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.lines().next().unwrap_or_default().to_string()
}

#[test]
fn the_page_shows_the_status_cancels_a_task_and_drains_in_a_browser() {
    let Some(mut cluster) = start_or_skip("operator_page") else {
        return;
    };
    let Some(browser) = Browser::start_or_skip("operator_page") else {
        return;
    };
    init(
        &cluster.conninfo(),
        &["--node", "n", "--agent", "1:a", "--submitter", "s"],
    );
    let (node, agent, sub) = (
        cluster.conninfo_as("n"),
        cluster.conninfo_as("a"),
        cluster.conninfo_as("s"),
    );
    let _node = start(&["node", "--db", &node, "--name", "node-a"]);
    let _agent = start(&[
        "agent", "--db", &agent, "--id", "1", "--", "sh", "-c", "cat",
    ]);
    // Three tasks the agent runs, and one that needs a GPU no agent has:
    // it stays queued until the page cancels it.
    let submitted = run(
        &["submit", "--db", &sub],
        "{\"payload\": 1}\n{\"payload\": 2}\n{\"payload\": 3}\n\
         {\"payload\": 4, \"requires\": [\"gpu\"]}\n",
    );
    assert!(submitted.contains("line 4: task-3"), "{submitted}");
    let outcome = run(&["outcome", "--db", &sub, "--wait", "30", "task-2"], "");
    assert!(outcome.contains("task-2: completed"), "{outcome}");
    wait_until("the status to count three completions", || {
        status(&node)["status"]["completed"] == 3
    });

    let (_ui, listen) = start_listening(&["ui", "--db", &node, "--listen", "127.0.0.1:0"]);
    let port: u16 = listen
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap();
    let url = format!("http://{listen}/");

    // The page shows what `status` says.
    browser.goto(&url);
    let said = status(&node);
    let figure = |key: &str| said["status"][key].to_string();
    assert_eq!(browser.text("#epoch"), said["epoch"].to_string());
    assert_eq!(browser.text("#leader"), "node-a");
    assert_eq!(browser.text("#lease-state"), "lease held");
    assert_eq!(
        browser.text("#queued-P2"),
        said["status"]["queued"][2].to_string()
    );
    assert_eq!(browser.text("#queued-P2"), "1");
    for (id, key) in [
        ("#submitted", "submitted"),
        ("#completed", "completed"),
        ("#dead-letters", "dead_letters"),
        ("#in-flight", "in_flight"),
    ] {
        assert_eq!(browser.text(id), figure(key), "{id}");
    }
    assert_eq!(browser.text("#agent-count"), "1");
    assert_eq!(browser.text("#agents tr[data-agent='1'] .health"), "online");
    assert!(
        browser.text(".unroutable").contains("first task-3"),
        "the queued GPU task is flagged"
    );

    // A post that does not come from the page, or a name the page does
    // not answer to, changes nothing.
    let form = "task=task-3";
    let forged = format!(
        "POST /cancel HTTP/1.1\r\nHost: {listen}\r\nContent-Type: \
         application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    );
    assert_eq!(raw(port, &forged), "HTTP/1.1 403 Forbidden");
    let rebound = format!("GET / HTTP/1.1\r\nHost: evil.example:{port}\r\n\r\n");
    assert_eq!(raw(port, &rebound), "HTTP/1.1 421 Misdirected Request");
    assert_eq!(status(&node)["status"]["queued"][2], 1);

    // The page cancels the queued task.
    browser.type_into("#cancel-task", "task-3");
    browser.click("#cancel-submit");
    browser.text_when("#said", |said| said == "task-3: cancelled");
    let outcome = run(&["outcome", "--db", &sub, "task-3"], "");
    assert!(outcome.contains("task-3: cancelled"), "{outcome}");
    browser.type_into("#cancel-task", "not-a-task");
    browser.click("#cancel-submit");
    browser.text_when("#said", |said| {
        said.contains("\"not-a-task\" is not a task id")
    });

    // The page outlives a restart of PostgreSQL: it says why it cannot
    // read meanwhile, then shows the status again.
    cluster.restart_immediate().unwrap();
    wait_until("the page to read the status again", || {
        browser.goto(&url);
        browser.has("#epoch")
    });

    // And drains the cluster.
    browser.click("#drain-submit");
    browser.text_when("#said", |said| said.starts_with("drain posted"));
    wait_until("the cluster to stop", || status(&node)["stopped"] == true);
    browser.goto(&url);
    assert_eq!(
        browser.text("#lease-state"),
        "the cluster was drained and stopped"
    );
}
