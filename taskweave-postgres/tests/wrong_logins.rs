//! Every operator command run with a login that lacks the privilege it
//! needs fails with the server's refusal *and* the login it needs, as an
//! operator would type it; a long-running node or agent says so in each
//! log line while it retries.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use taskweave_postgres::testkit::start_or_skip;
use taskweave_postgres::{LoginKind, create_login, migrate};

const BIN: &str = env!("CARGO_BIN_EXE_taskweave-pg");

/// Runs the command to its end with `stdin`; answers its stderr.
fn stderr_of(args: &[&str], stdin: &str) -> String {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{BIN}: {e}"));
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin.as_bytes());
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        !out.status.success(),
        "{args:?} succeeded with a wrong login"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs a long-running role for a moment, then kills it; answers its
/// stderr.
fn log_of(args: &[&str]) -> String {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{BIN}: {e}"));
    std::thread::sleep(Duration::from_millis(2_500));
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_command_run_with_the_wrong_login_names_the_login_it_needs() {
    let test = "a_command_run_with_the_wrong_login_names_the_login_it_needs";
    let Some(cluster) = start_or_skip(test) else {
        return;
    };
    let mut admin = postgres::Client::connect(&cluster.conninfo(), postgres::NoTls)
        .unwrap_or_else(|e| panic!("connect: {e}"));
    migrate(&mut admin).unwrap();
    create_login(&mut admin, "agent_one", LoginKind::Agent(1)).unwrap();
    create_login(&mut admin, "sub", LoginKind::Submitter).unwrap();
    let (agent, sub) = (cluster.conninfo_as("agent_one"), cluster.conninfo_as("sub"));
    let cases: [(&[&str], &str, &str); 8] = [
        (
            &["submit", "--db", &agent],
            "{\"payload\": 1}\n",
            "`taskweave-pg submit` needs a submitter login",
        ),
        (
            &["cancel", "--db", &agent, "task-0"],
            "",
            "`taskweave-pg cancel` needs a submitter login",
        ),
        (
            &["outcome", "--db", &agent, "task-0"],
            "",
            "`taskweave-pg outcome` needs a submitter login",
        ),
        (
            &["status", "--db", &agent],
            "",
            "`taskweave-pg status` needs a submitter or a node login",
        ),
        (
            &["audit", "--db", &sub],
            "",
            "`taskweave-pg audit` needs a node login",
        ),
        (
            &["drain", "--db", &sub, "--wait", "1"],
            "",
            "`taskweave-pg drain` needs a node login",
        ),
        (
            &["reset", "--db", &sub],
            "",
            "`taskweave-pg reset` needs the database owner",
        ),
        (
            &["init", "--db", &sub],
            "",
            "`taskweave-pg init` needs the database owner",
        ),
    ];
    for (args, stdin, needs) in cases {
        let said = stderr_of(args, stdin);
        assert!(said.contains("42501"), "{args:?}: {said}");
        assert!(said.contains(needs), "{args:?}: {said}");
    }
    let node = log_of(&["node", "--db", &sub, "--name", "x"]);
    assert!(
        node.contains("`taskweave-pg node` needs a node login"),
        "{node}"
    );
    let wrong_agent = log_of(&["agent", "--db", &agent, "--id", "2", "--", "true"]);
    assert!(
        wrong_agent.contains("`taskweave-pg agent` needs the agent login made for its --id"),
        "{wrong_agent}"
    );
}
