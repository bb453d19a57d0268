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
    Running(
        Command::new(BIN)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{args:?}: {e}")),
    )
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
