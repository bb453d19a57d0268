//! `taskweave-pg ui` in a real headless browser (Chromium, through
//! WebDriver) against a live cluster: the page shows what `status --json`
//! says, cancels a queued task, redrives a dead letter once its agent is
//! mended, outlives a PostgreSQL restart, and drains the cluster; and it
//! refuses a post without its token and a request that names another host
//! (and `redrive` with a submitter's login).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::browser::Browser;
use common::cli::{node_agent_submitter, run, run_status, start, start_listening, wait_until};
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
fn the_page_shows_the_status_cancels_redrives_and_drains_in_a_browser() {
    let Some(mut cluster) = start_or_skip("operator_page") else {
        return;
    };
    let Some(browser) = Browser::start_or_skip("operator_page") else {
        return;
    };
    let (node, agent, sub) = node_agent_submitter(&cluster);
    let _node = start(&["node", "--db", &node, "--name", "node-a"]);
    // The agent fails payload 5 for good until the file `mended` exists.
    let mended = std::env::temp_dir().join(format!("taskweave-page-mended-{}", std::process::id()));
    let _ = std::fs::remove_file(&mended);
    let script = format!(
        "p=$(cat); if [ \"$p\" = 5 ] && [ ! -e '{}' ]; then echo broken >&2; exit 100; fi; \
         echo \"$p\"",
        mended.display()
    );
    let _agent = start(&[
        "agent", "--db", &agent, "--id", "1", "--", "sh", "-c", &script,
    ]);
    // Three tasks the agent runs, one that needs a GPU no agent has (it
    // stays queued until the page cancels it), and one the agent fails.
    let submitted = run(
        &["submit", "--db", &sub],
        "{\"payload\": 1}\n{\"payload\": 2}\n{\"payload\": 3}\n\
         {\"payload\": 4, \"requires\": [\"gpu\"]}\n{\"payload\": 5}\n",
    );
    assert!(submitted.contains("line 4: task-3"), "{submitted}");
    assert!(submitted.contains("line 5: task-4"), "{submitted}");
    let outcome = run(
        &["outcome", "--db", &sub, "--wait", "30", "task-2", "task-4"],
        "",
    );
    assert!(outcome.contains("task-2: completed"), "{outcome}");
    assert!(outcome.contains("task-4: dead-lettered"), "{outcome}");
    wait_until("the status to count three completions and a letter", || {
        let s = status(&node);
        s["status"]["completed"] == 3 && s["status"]["dead_letters"] == 1
    });
    // A submitter may not redrive, and is told which login may.
    let (ok, said) = run_status(&["redrive", "--db", &sub, "task-4"], "");
    assert!(!ok, "{said}");
    assert!(said.contains("node login"), "{said}");

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

    // The page redrives the letter once the agent is mended: it runs
    // again as a new task and completes; a second redrive finds none.
    std::fs::write(&mended, "").unwrap();
    browser.type_into("#redrive-task", "task-4");
    browser.click("#redrive-submit");
    browser.text_when("#said", |said| said == "task-4: requeued as task-5");
    let outcome = run(&["outcome", "--db", &sub, "--wait", "30", "task-5"], "");
    assert!(outcome.contains("task-5: completed"), "{outcome}");
    // The letter's own id now tells where its work went.
    let outcome = run(&["outcome", "--db", &sub, "task-4"], "");
    assert!(
        outcome.contains("task-4: dead-lettered, then requeued as task-5: read its outcome"),
        "{outcome}"
    );
    browser.click("#redrive-submit");
    browser.text_when("#said", |said| said == "no dead letter matched");
    let _ = std::fs::remove_file(&mended);

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
