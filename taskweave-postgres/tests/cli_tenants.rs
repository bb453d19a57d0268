//! Tenants through the command line, as an operator runs them: `init`
//! maps two submitter logins to two tenants, a real `node` and `agent`
//! run, and `submit`, `cancel` and `outcome` as each login show that one
//! idempotency key makes a task per tenant, that a login cancels no task
//! but its own tenant's, and that it reads no outcome but its own
//! tenant's; and `run start`, `signal`, `run cancel` and `run result`
//! show the same of runs. The node runs with the configuration stored by
//! `config set` (a tenant quota), and refuses past it.

mod common;

use std::time::Duration;

use common::cli::{run_status, start, start_echo_agent};
use taskweave::TenantId;
use taskweave::resilience::Fixed;
use taskweave::scheduler::{DispatcherConfig, TenantQuota};
use taskweave_postgres::testkit::start_or_skip;

/// The task ids `submit` printed, one a line, in order.
fn submitted(db: &str, lines: &str) -> Vec<String> {
    let (ok, said) = run_status(&["submit", "--db", db], lines);
    assert!(ok, "submit: {said}");
    said.lines()
        .filter_map(|line| line.split_once(": ").map(|(_, task)| task.to_string()))
        .collect()
}

/// `taskweave-pg config set` of `config`, through a file of its own:
/// whether it exited 0, and what it printed.
fn config_set(admin: &str, config: &DispatcherConfig) -> (bool, String) {
    let file = std::env::temp_dir().join(format!("taskweave-config-{}.json", std::process::id()));
    std::fs::write(&file, serde_json::to_string(config).unwrap()).unwrap();
    let said = run_status(
        &["config", "set", "--db", admin, file.to_str().unwrap()],
        "",
    );
    let _ = std::fs::remove_file(&file);
    said
}

#[test]
fn two_tenants_keep_their_keys_cancels_and_outcomes_apart_through_the_cli() {
    let test = "two_tenants_keep_their_keys_cancels_and_outcomes_apart_through_the_cli";
    let Some(cluster) = start_or_skip(test) else {
        return;
    };
    let admin = cluster.conninfo();
    let logins = [
        "--node",
        "node_login",
        "--agent",
        "1:agent_one",
        "--submitter",
        "acme",
        "--submitter",
        "globex",
        "--submitter",
        "plain",
    ];
    let (ok, said) = run_status(&[&["init", "--db", &admin][..], &logins].concat(), "");
    assert!(ok, "init: {said}");
    let tenants = ["--tenant", "acme:1", "--tenant", "globex:2"];
    let (ok, said) = run_status(&[&["init", "--db", &admin][..], &tenants].concat(), "");
    assert!(ok, "init --tenant: {said}");
    let [node, agent, acme, globex, plain] =
        ["node_login", "agent_one", "acme", "globex", "plain"].map(|l| cluster.conninfo_as(l));
    // The cluster's configuration, stored before the node starts: ACME
    // holds at most two live tasks. `init` stored the defaults.
    let (ok, said) = run_status(&["config", "show", "--db", &admin], "");
    assert!(ok && said.contains("\"seed\": 13"), "config show: {said}");
    // A heartbeat timeout the command's agents cannot meet is refused,
    // naming both values, and nothing is stored.
    let hasty = DispatcherConfig::builder()
        .heartbeats(Duration::from_millis(100), 3)
        .build()
        .unwrap();
    let (ok, said) = config_set(&admin, &hasty);
    assert!(!ok, "config set took a 300 ms timeout: {said}");
    for named in ["300ms", "100ms × 3", "every 500ms", "at least 1s"] {
        assert!(said.contains(named), "{named}: {said}");
    }
    let (ok, said) = run_status(&["config", "show", "--db", &admin], "");
    assert!(ok && said.contains("\"seed\": 13"), "config show: {said}");

    let quota = DispatcherConfig::builder()
        .heartbeats(Duration::from_millis(250), 8)
        .retry_policy(Fixed::new(Duration::from_millis(100), 3).unwrap())
        .tenant_quota(TenantId::new(1), TenantQuota::new().live_tasks(2))
        .build()
        .unwrap();
    let (ok, said) = config_set(&admin, &quota);
    assert!(ok, "config set: {said}");
    let _running = [
        start(&["node", "--db", &node, "--name", "node-a"]),
        start_echo_agent(&agent),
    ];

    // One key, three logins: three tasks. ACME's second task needs a
    // capability no agent has, so it stays queued.
    let keyed =
        |n: u32| format!("{{\"payload\": {{\"n\": {n}}}, \"idempotency_key\": \"order-7\"}}\n");
    let acme_tasks = submitted(
        &acme,
        &format!("{}{{\"payload\": 2, \"requires\": [\"gpu\"]}}\n", keyed(1)),
    );
    let globex_tasks = submitted(&globex, &keyed(3));
    let plain_tasks = submitted(&plain, &keyed(4));
    let (done, queued) = (&acme_tasks[0], &acme_tasks[1]);
    assert_eq!(acme_tasks.len(), 2, "{acme_tasks:?}");
    assert_ne!(done, &globex_tasks[0]);
    assert_ne!(done, &plain_tasks[0]);
    assert_ne!(globex_tasks[0], plain_tasks[0]);

    // Each reads its own outcome; another login reads it as not ended.
    let (ok, said) = run_status(&["outcome", "--db", &acme, "--wait", "30", done], "");
    assert!(ok, "{said}");
    assert_eq!(
        said.trim(),
        format!("{done}: completed, output: {{\"n\":1}}")
    );
    let (ok, said) = run_status(
        &["outcome", "--db", &globex, "--wait", "30", &globex_tasks[0]],
        "",
    );
    assert!(ok, "{said}");
    for login in [&globex, &plain] {
        let (ok, said) = run_status(&["outcome", "--db", login, done], "");
        assert!(!ok, "another login read ACME's outcome: {said}");
        assert_eq!(said.trim(), format!("{done}: not ended"));
    }

    // The stored quota holds: ACME's queued task and one more are live,
    // a third is refused, naming the quota.
    let (ok, said) = run_status(
        &["submit", "--db", &acme],
        "{\"payload\": 5, \"requires\": [\"gpu\"]}\n{\"payload\": 6}\n",
    );
    assert!(!ok, "{said}");
    assert!(
        said.contains("tenant-1 is at its quota of 2 live tasks"),
        "{said}"
    );
    let extra = said
        .lines()
        .find_map(|line| line.strip_prefix("line 1: "))
        .unwrap_or_else(|| panic!("no task for line 1: {said}"))
        .to_string();
    let (ok, said) = run_status(&["cancel", "--db", &acme, &extra], "");
    assert!(ok, "{said}");

    // Another login's cancel of ACME's queued task is refused in the words
    // of a task that never was; ACME's own goes through.
    let (ok, said) = run_status(&["cancel", "--db", &globex, queued], "");
    assert!(!ok, "{said}");
    assert_eq!(
        said.trim(),
        format!("{queued}: refused: tenant-2 has no live task {queued}")
    );
    let (ok, said) = run_status(&["cancel", "--db", &plain, queued], "");
    assert!(!ok, "{said}");
    assert_eq!(
        said.trim(),
        format!("{queued}: refused: unknown task {queued}")
    );
    let (ok, said) = run_status(&["cancel", "--db", &acme, queued], "");
    assert!(ok, "{said}");
    let (ok, said) = run_status(&["outcome", "--db", &acme, "--wait", "30", queued], "");
    assert!(ok, "{said}");
    assert_eq!(said.trim(), format!("{queued}: cancelled"));

    // Runs: the plain login (an operator's) defines the workflow; ACME's
    // run is ACME's to signal and read, and nobody else's to start under
    // its id, signal or cancel.
    let order = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/order.workflow.json"
    );
    let (ok, said) = run_status(&["workflow", "register", "--db", &plain, order], "");
    assert!(ok, "register: {said}");
    let (ok, said) = run_status(&["workflow", "register", "--db", &acme, order], "");
    assert!(
        !ok && said.contains("not Define"),
        "a tenant defined: {said}"
    );
    let start =
        |login: &str| run_status(&["run", "start", "--db", login, "order", "--id", "1"], "");
    let (ok, said) = start(&acme);
    assert!(ok, "{said}");
    assert_eq!(said.trim(), "workflow-1");
    for login in [&globex, &plain] {
        let (ok, said) = start(login);
        assert!(
            !ok && said.contains("another client's run holds the id"),
            "{said}"
        );
        let (ok, said) = run_status(&["signal", "--db", login, "workflow-1", "approve"], "");
        assert!(
            !ok && said.contains("workflow-1 is not an active run"),
            "{said}"
        );
        let (ok, said) = run_status(&["run", "cancel", "--db", login, "workflow-1"], "");
        assert!(
            !ok && said.contains("workflow-1 is not an active run"),
            "{said}"
        );
    }
    let (ok, said) = run_status(&["signal", "--db", &acme, "workflow-1", "approve"], "");
    assert!(ok, "{said}");
    let (ok, said) = run_status(
        &["run", "result", "--db", &acme, "--wait", "30", "workflow-1"],
        "",
    );
    assert!(ok && said.starts_with("workflow-1: succeeded"), "{said}");
    for login in [&globex, &plain] {
        let (ok, said) = run_status(&["run", "result", "--db", login, "workflow-1"], "");
        assert!(!ok, "another login read ACME's run: {said}");
        assert_eq!(said.trim(), "workflow-1: not ended");
    }

    let (ok, said) = run_status(&["drain", "--db", &node, "--wait", "60"], "");
    assert!(ok, "drain: {said}");
}
