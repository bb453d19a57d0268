//! `taskweave-pg submit`: JSON lines of tasks, each checked.

use std::io::BufRead;
use std::process::ExitCode;
use std::time::Duration;

use serde::Deserialize;
use taskweave::cluster::Verdict;
use taskweave::scheduler::TaskSpec;
use taskweave::{Priority, TaskRequirements};
use taskweave_postgres::PgClient;

use super::Payload;
use super::args::Args;

const USAGE: &str = "\
usage: taskweave-pg submit --db CONNINFO [--wait SECONDS] [FILE]

Reads one task per line from FILE (or stdin), as JSON:
  {\"payload\": ANY, \"priority\": \"P0\"|\"P1\"|\"P2\"|\"P3\", \"requires\": [\"gpu\"],
   \"idempotency_key\": \"…\", \"ttl_ms\": N, \"attempt_timeout_ms\": N}
Only \"payload\" is required. Each line is checked on its own: a line that does
not parse is reported with its reason and not sent. The others are submitted,
500 to a message, and the command waits up to --wait seconds (default 30) for
the leader's verdict on each, printing `line N: task ID` or `line N: refused:
WHY`. It exits 0 only if every line was accepted, 1 otherwise.";

/// One line of input.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    payload: Payload,
    #[serde(default)]
    priority: Option<String>,
    #[serde(default)]
    requires: Vec<String>,
    #[serde(default)]
    idempotency_key: Option<String>,
    #[serde(default)]
    ttl_ms: Option<u64>,
    #[serde(default)]
    attempt_timeout_ms: Option<u64>,
}

/// The task a line stands for, or why it cannot be one.
fn spec(text: &str) -> Result<TaskSpec<Payload>, String> {
    let line: Line = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let priority = match line.priority.as_deref() {
        None | Some("P2") => Priority::P2,
        Some("P0") => Priority::P0,
        Some("P1") => Priority::P1,
        Some("P3") => Priority::P3,
        Some(other) => return Err(format!("priority {other:?} is not one of P0, P1, P2, P3")),
    };
    let mut spec = TaskSpec::new(line.payload)
        .priority(priority)
        .requirements(TaskRequirements::new().require(line.requires));
    if let Some(key) = line.idempotency_key {
        spec = spec.idempotency_key(key);
    }
    if let Some(ms) = line.ttl_ms {
        spec = spec.ttl(Duration::from_millis(ms));
    }
    if let Some(ms) = line.attempt_timeout_ms {
        spec = spec.attempt_timeout(Duration::from_millis(ms));
    }
    Ok(spec)
}

pub(crate) fn run(raw: &[String]) -> Result<ExitCode, String> {
    let args = Args::parse(raw, USAGE, &["--db", "--wait"])?;
    if args.wants_help() {
        say!("{USAGE}");
        return Ok(ExitCode::SUCCESS);
    }
    let wait = Duration::from_secs(args.parsed("--wait", 30u64)?);
    let reader: Box<dyn BufRead> = match args.positional.as_slice() {
        [] => Box::new(std::io::stdin().lock()),
        [file] => Box::new(std::io::BufReader::new(
            std::fs::File::open(file).map_err(|e| format!("cannot read {file}: {e}"))?,
        )),
        _ => return Err(args.wrong("at most one FILE")),
    };
    let mut refused = 0usize;
    let mut good: Vec<(usize, TaskSpec<Payload>)> = Vec::new();
    for (n, text) in reader.lines().enumerate() {
        let number = n + 1;
        let text = text.map_err(|e| format!("line {number}: cannot read: {e}"))?;
        if text.trim().is_empty() {
            continue;
        }
        match spec(&text) {
            Ok(spec) => good.push((number, spec)),
            Err(why) => {
                refused += 1;
                say!("line {number}: refused: {why}");
            }
        }
    }
    let mut client = PgClient::<Payload>::connect(&args.db()?).map_err(|e| e.to_string())?;
    let chunks: Vec<Vec<(usize, TaskSpec<Payload>)>> =
        good.chunks(500).map(<[_]>::to_vec).collect();
    let batches = chunks
        .iter()
        .map(|c| c.iter().map(|(_, s)| s.clone()).collect())
        .collect();
    let ids = if chunks.is_empty() {
        Vec::new()
    } else {
        client.submit_many(batches).map_err(|e| e.to_string())?
    };
    let verdicts = client
        .wait_verdicts(&ids, wait)
        .map_err(|e| e.to_string())?;
    for (chunk, verdict) in chunks.iter().zip(verdicts) {
        for (i, (number, _)) in chunk.iter().enumerate() {
            let answer = match &verdict {
                None => Err(format!("no verdict within {wait:?}: is a node running?")),
                Some(Verdict::Submitted(tasks)) => tasks
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| Err("the verdict names fewer tasks than were sent".into())),
                Some(Verdict::Refused(why)) => Err(why.clone()),
                Some(Verdict::Accepted) => Err("the verdict names no task".into()),
            };
            match answer {
                Ok(task) => say!("line {number}: {task}"),
                Err(why) => {
                    refused += 1;
                    say!("line {number}: refused: {why}");
                }
            }
        }
    }
    Ok(if refused == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[cfg(test)]
mod tests {
    use super::spec;

    #[test]
    fn a_line_is_checked_on_its_own() {
        assert!(spec(r#"{"payload": {"n": 1}, "priority": "P0", "requires": ["gpu"]}"#).is_ok());
        assert!(spec(r#"{"payload": 1}"#).is_ok());
        assert!(
            spec(r#"{"priority": "P1"}"#)
                .unwrap_err()
                .contains("payload")
        );
        assert!(
            spec(r#"{"payload": 1, "priority": "urgent"}"#)
                .unwrap_err()
                .contains("P0, P1")
        );
        assert!(
            spec(r#"{"payload": 1, "colour": "red"}"#)
                .unwrap_err()
                .contains("colour")
        );
        assert!(spec("not json").is_err());
    }
}
