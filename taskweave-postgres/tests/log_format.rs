//! `taskweave-pg`'s logs: text lines `TIME LEVEL WHO: WHAT`, or one JSON
//! object a line with `--log-format json`; and a closed stderr costs the
//! lines, never the process. No PostgreSQL needed: a node and an agent
//! pointed at a port where none listens log their retries.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_taskweave-pg");

/// A connection string nothing answers.
const NOWHERE: &str = "host=127.0.0.1 port=1 dbname=x user=y connect_timeout=1";

/// The first lines `taskweave-pg ARGS` writes to stderr: those of its
/// first second once the first has come (within 30 s).
fn first_lines(args: &[&str]) -> String {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut said = String::new();
    let _ = stderr.read_line(&mut said);
    std::thread::sleep(Duration::from_millis(1_000));
    let _ = child.kill();
    let _ = child.wait();
    let _ = stderr.read_to_string(&mut said);
    said
}

#[test]
fn text_lines_carry_time_level_and_who() {
    let said = first_lines(&["node", "--db", NOWHERE, "--name", "n1"]);
    let line = said
        .lines()
        .next()
        .unwrap_or_else(|| panic!("no log: {said:?}"));
    let (stamp, rest) = line.split_once(' ').unwrap();
    assert!(
        stamp.len() == 24 && stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T',
        "{line}"
    );
    assert!(
        rest.starts_with("WARN n1: cannot connect to PostgreSQL"),
        "{line}"
    );
    assert!(rest.contains("trying again in"), "{line}");
}

#[test]
fn json_lines_carry_the_same_as_fields() {
    for (args, who) in [
        (
            vec![
                "node",
                "--db",
                NOWHERE,
                "--name",
                "n1",
                "--log-format",
                "json",
            ],
            "n1",
        ),
        (
            vec![
                "agent",
                "--db",
                NOWHERE,
                "--id",
                "7",
                "--log-format",
                "json",
                "--",
                "true",
            ],
            "agent 7",
        ),
    ] {
        let said = first_lines(&args);
        let lines: Vec<&str> = said.lines().collect();
        assert!(!lines.is_empty(), "{args:?}: no log");
        for line in lines {
            let json: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            assert_eq!(json["level"], "WARN", "{line}");
            assert_eq!(json["who"], who, "{line}");
            assert!(
                json["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
                "{line}"
            );
            let message = json["message"].as_str().unwrap_or_default();
            assert!(
                message.starts_with("cannot connect to PostgreSQL"),
                "{line}"
            );
        }
    }
}

#[test]
fn a_wrong_format_is_named() {
    let out = Command::new(BIN)
        .args(["node", "--db", NOWHERE, "--log-format", "xml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("--log-format \"xml\": expected text or json"),
        "{said}"
    );
}

#[test]
fn a_closed_stderr_costs_the_lines_not_the_process() {
    for format in ["text", "json"] {
        let mut child = Command::new(BIN)
            .args(["node", "--db", NOWHERE, "--log-format", format])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The log's reader dies once the first line came: every later
        // line (a retry every 100 ms to 1.6 s) meets a broken pipe.
        let mut first = String::new();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let _ = stderr.read_line(&mut first);
        assert!(first.contains("cannot connect"), "{format}: {first:?}");
        drop(stderr);
        std::thread::sleep(Duration::from_millis(1_000));
        let running = child.try_wait().unwrap();
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(
            running, None,
            "{format}: the node exited with a closed stderr"
        );
    }
}
