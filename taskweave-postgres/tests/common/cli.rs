//! Runs `taskweave-pg` subcommands from a test, as an operator would.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_taskweave-pg");

/// Runs `taskweave-pg ARGS` with `stdin` to its end: what it printed
/// (stdout, then stderr).
pub fn run(args: &[&str], stdin: &str) -> String {
    run_status(args, stdin).1
}

/// Runs `taskweave-pg ARGS` with `stdin` to its end: whether it exited 0,
/// and what it printed (stdout, then stderr).
pub fn run_status(args: &[&str], stdin: &str) -> (bool, String) {
    use std::io::Write as _;
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    if let Some(mut input) = child.stdin.take() {
        // A command that refuses its arguments may not read its stdin.
        let _ = input.write_all(stdin.as_bytes());
    }
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

/// `taskweave-pg init --db ADMIN LOGINS...` (e.g. `["--node", "n"]`),
/// which must succeed: what it printed.
pub fn init(admin: &str, logins: &[&str]) -> String {
    let (ok, said) = run_status(&[&["init", "--db", admin][..], logins].concat(), "");
    assert!(ok, "init: {said}");
    said
}

/// The logins most tests need, made by `init` on `cluster`: a node login
/// `n`, agent 1's login `a` and a submitter `s`; their connection
/// strings, in that order.
pub fn node_agent_submitter(
    cluster: &taskweave_postgres::testkit::PgCluster,
) -> (String, String, String) {
    init(
        &cluster.conninfo(),
        &["--node", "n", "--agent", "1:a", "--submitter", "s"],
    );
    (
        cluster.conninfo_as("n"),
        cluster.conninfo_as("a"),
        cluster.conninfo_as("s"),
    )
}

/// A role left running; killed when dropped.
pub struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `taskweave-pg ARGS`, its output dropped.
pub fn start(args: &[&str]) -> Running {
    spawn(args, Stdio::null())
}

/// Starts `taskweave-pg ARGS`, its log (stderr) written to `log`.
pub fn start_logging(args: &[&str], log: &std::path::Path) -> Running {
    let file = std::fs::File::create(log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    spawn(args, file.into())
}

/// Starts agent 1 on `db`: `taskweave-pg agent` running `sh -c 'cat;
/// echo'`, so each task completes with its payload as its output.
pub fn start_echo_agent(db: &str) -> Running {
    start(&[
        "agent",
        "--db",
        db,
        "--id",
        "1",
        "--",
        "sh",
        "-c",
        "cat; echo",
    ])
}

/// Starts `taskweave-pg ARGS`, its stdout dropped and its stderr to
/// `stderr`.
fn spawn(args: &[&str], stderr: Stdio) -> Running {
    Running(
        Command::new(BIN)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("{args:?}: {e}")),
    )
}

/// Starts `taskweave-pg ARGS`, which logs `http://ADDR/` once it listens
/// (given port 0: any free one): the role, and ADDR. Its log is read to
/// its end on a thread of its own.
pub fn start_listening(args: &[&str]) -> (Running, String) {
    use std::io::BufRead as _;
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let addr = line
                .split_once("http://")
                .and_then(|(_, rest)| rest.split_once('/'))
                .map(|(addr, _)| addr.to_string());
            if let Some(addr) = addr {
                let _ = tx.send(addr);
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{args:?} logged no address within 30 s: {e}"));
    (Running(child), addr)
}

/// Waits until `done` answers `true`, at most 30 s.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{what}: not within 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
