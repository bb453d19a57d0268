//! `taskweave-pg cancel`: cancel tasks by id.

use std::process::ExitCode;
use std::time::Duration;

use taskweave::TaskId;
use taskweave::cluster::Verdict;
use taskweave_postgres::PgClient;

use super::Payload;
use super::args::Args;

const USAGE: &str = "\
usage: taskweave-pg cancel --db CONNINFO [--wait SECONDS] TASK...

Cancels each task by the id `submit` printed for it (`task-N`, or just N). A
queued or delayed task ends at once; a running one is stopped on its agent (the
agent kills its command), and its late result is refused. Waits up to --wait
seconds (default 30) for the leader's verdict on each, printing `task-N:
cancelled` or `task-N: refused: WHY` (an unknown or already finished task).
Exits 0 only if every task was cancelled, 1 otherwise. A submitter's login may
cancel.";

pub(crate) fn run(raw: &[String]) -> Result<ExitCode, String> {
    let args = Args::parse(raw, USAGE, &["--db", "--wait"])?;
    if args.wants_help() {
        say!("{USAGE}");
        return Ok(ExitCode::SUCCESS);
    }
    let tasks = task_ids(&args.positional).map_err(|why| args.wrong(&why))?;
    let wait = Duration::from_secs(args.parsed("--wait", 30u64)?);
    let mut client = PgClient::<Payload>::connect(&args.db()?).map_err(|e| e.to_string())?;
    let mut ids = Vec::with_capacity(tasks.len());
    for &task in &tasks {
        ids.push(client.cancel(task).map_err(|e| e.to_string())?);
    }
    let verdicts = client
        .wait_verdicts(&ids, wait)
        .map_err(|e| e.to_string())?;
    let mut all = true;
    for (task, verdict) in tasks.iter().zip(verdicts) {
        match verdict {
            Some(Verdict::Accepted) => say!("{task}: cancelled"),
            Some(Verdict::Refused(why)) => {
                all = false;
                say!("{task}: refused: {why}");
            }
            Some(other) => {
                all = false;
                say!("{task}: unexpected verdict {other:?}");
            }
            None => {
                all = false;
                say!(
                    "{task}: no verdict within {wait:?}: is a node running? (the cancel \
                     stays posted and applies when a leader reads it)"
                );
            }
        }
    }
    Ok(if all {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The task ids of the command line: at least one, each `task-N` (as
/// `submit` prints them) or `N`.
pub(crate) fn task_ids(words: &[String]) -> Result<Vec<TaskId>, String> {
    if words.is_empty() {
        return Err("name at least one task id, as `submit` printed it".into());
    }
    words
        .iter()
        .map(|word| {
            let number = word.strip_prefix("task-").unwrap_or(word);
            number.parse::<u64>().map(TaskId::new).map_err(|_| {
                format!("{word:?} is not a task id (task-N, as `submit` printed it, or N)")
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ids_are_numbers_and_at_least_one() {
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            task_ids(&words(&["7", "task-4294967301"])),
            Ok(vec![TaskId::new(7), TaskId::new(4_294_967_301)])
        );
        assert!(task_ids(&[]).unwrap_err().contains("at least one"));
        for wrong in ["x", "task-", "task-x", "-1"] {
            let why = task_ids(&words(&["7", wrong])).unwrap_err();
            assert!(
                why.contains(&format!("{wrong:?} is not a task id")),
                "{why}"
            );
        }
    }
}
