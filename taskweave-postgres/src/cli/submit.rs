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
use super::privilege::{SUBMITTER, hint};

const USAGE: &str = "\
usage: taskweave-pg submit --db CONNINFO [--wait SECONDS] [FILE]

Reads one task per line from FILE (or stdin), as JSON:
  {\"payload\": ANY, \"priority\": \"P0\"|\"P1\"|\"P2\"|\"P3\", \"requires\": [\"gpu\"],
   \"idempotency_key\": \"…\", \"ttl_ms\": N, \"attempt_timeout_ms\": N}
Only \"payload\" is required. Each line is checked on its own: a line that does
not parse (or is not UTF-8, or is over the 16 MiB a message may hold) is
reported with its reason and not sent. The others are submitted, up to 500
and 8 MiB of JSON to a message, and the command waits up to --wait seconds (default 30) for
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

/// The most bytes one inbox message may hold (the database's limit for a
/// submission).
pub(crate) const MAX_MESSAGE_BYTES: usize = 16 << 20;
/// The most tasks, and bytes of their JSON, posted in one message.
const CHUNK_TASKS: usize = 500;
const CHUNK_BYTES: usize = 8 << 20;

/// The size of `spec` as JSON, if it fits in a message of its own.
fn fits_a_message(spec: &TaskSpec<Payload>) -> Result<usize, String> {
    let size = serde_json::to_vec(spec).map_err(|e| e.to_string())?.len();
    if size > MAX_MESSAGE_BYTES - 64 {
        return Err(format!(
            "the task is {size} bytes as JSON, over the {MAX_MESSAGE_BYTES} a message may \
             hold: keep a large payload elsewhere and submit a reference to it"
        ));
    }
    Ok(size)
}

/// `good` cut into messages of at most [`CHUNK_TASKS`] tasks and, but for
/// a single large task, [`CHUNK_BYTES`] of JSON, in order.
fn chunked<T>(good: Vec<(usize, T, usize)>) -> Vec<Vec<(usize, T, usize)>> {
    let mut chunks: Vec<Vec<(usize, T, usize)>> = Vec::new();
    let mut bytes = 0;
    for line in good {
        let size = line.2;
        match chunks.last_mut() {
            Some(chunk) if chunk.len() < CHUNK_TASKS && bytes + size <= CHUNK_BYTES => {
                chunk.push(line);
                bytes += size;
            }
            _ => {
                chunks.push(vec![line]);
                bytes = size;
            }
        }
    }
    chunks
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
    let mut good: Vec<(usize, TaskSpec<Payload>, usize)> = Vec::new();
    for (n, bytes) in reader.split(b'\n').enumerate() {
        let number = n + 1;
        let bytes = bytes.map_err(|e| format!("line {number}: cannot read: {e}"))?;
        let checked = String::from_utf8(bytes)
            .map_err(|e| format!("not UTF-8 (byte {})", e.utf8_error().valid_up_to()))
            .and_then(|text| {
                if text.trim().is_empty() {
                    return Ok(None);
                }
                let spec = spec(&text)?;
                let size = fits_a_message(&spec)?;
                Ok(Some((spec, size)))
            });
        match checked {
            Ok(None) => {}
            Ok(Some((spec, size))) => good.push((number, spec, size)),
            Err(why) => {
                refused += 1;
                say!("line {number}: refused: {why}");
            }
        }
    }
    let mut client = PgClient::<Payload>::connect(&args.db()?).map_err(|e| e.to_string())?;
    let chunks = chunked(good);
    let batches = chunks
        .iter()
        .map(|c| c.iter().map(|(_, s, _)| s.clone()).collect())
        .collect();
    let ids = if chunks.is_empty() {
        Vec::new()
    } else {
        client
            .submit_many(batches)
            .map_err(hint("submit", SUBMITTER))?
    };
    let verdicts = client
        .wait_verdicts(&ids, wait)
        .map_err(hint("submit", SUBMITTER))?;
    for (chunk, verdict) in chunks.iter().zip(verdicts) {
        for (i, (number, ..)) in chunk.iter().enumerate() {
            let answer = match &verdict {
                None => Err(format!("no verdict within {wait:?}: is a node running?")),
                Some(Verdict::Submitted(tasks)) => tasks
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| Err("the verdict names fewer tasks than were sent".into())),
                Some(Verdict::Refused(why)) => Err(why.clone()),
                Some(Verdict::Accepted | Verdict::Run(_) | Verdict::Redriven { .. }) => {
                    Err("the verdict names no task".into())
                }
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
    use super::{CHUNK_BYTES, chunked, fits_a_message, spec};

    #[test]
    fn messages_hold_at_most_500_tasks_and_8_mib_but_for_one_large_task() {
        let sizes = |lines: Vec<usize>| -> Vec<(usize, usize)> {
            let good = lines
                .into_iter()
                .enumerate()
                .map(|(n, s)| (n + 1, (), s))
                .collect();
            chunked(good)
                .iter()
                .map(|c| (c.len(), c.iter().map(|l| l.2).sum()))
                .collect()
        };
        assert_eq!(
            sizes(vec![100; 1_200]),
            [(500, 50_000), (500, 50_000), (200, 20_000)]
        );
        // 500 lines of 40 KB: 20 MB, over a message's 16 MiB in one.
        let chunks = sizes(vec![40_000; 500]);
        assert!(
            chunks.iter().all(|&(_, bytes)| bytes <= CHUNK_BYTES),
            "{chunks:?}"
        );
        assert_eq!(chunks.iter().map(|c| c.0).sum::<usize>(), 500);
        assert_eq!(
            sizes(vec![10, 12 << 20, 10]),
            [(1, 10), (1, 12 << 20), (1, 10)]
        );
        assert!(sizes(vec![]).is_empty());
    }

    #[test]
    fn a_task_too_large_for_a_message_is_refused_with_the_limit() {
        let big = spec(&format!(r#"{{"payload": "{}"}}"#, "x".repeat(17 << 20))).unwrap();
        let why = fits_a_message(&big).unwrap_err();
        assert!(
            why.contains("16777216") && why.contains("reference"),
            "{why}"
        );
        let small = spec(r#"{"payload": 1}"#).unwrap();
        assert!(fits_a_message(&small).is_ok());
    }

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
