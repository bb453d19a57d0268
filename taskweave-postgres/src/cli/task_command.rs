//! What `cancel` and `outcome` share: the tasks named on the command line,
//! how long to wait for them, and a client of the cluster.

use std::process::ExitCode;
use std::time::Duration;

use taskweave::TaskId;
use taskweave::cluster::Verdict;
use taskweave_postgres::PgClient;

use super::Payload;
use super::args::Args;

/// A command about tasks by id, parsed and connected.
pub(crate) struct TaskCommand {
    /// The tasks named, in order.
    pub(crate) tasks: Vec<TaskId>,
    /// How long to wait for them (`--wait`).
    pub(crate) wait: Duration,
    /// A client of the cluster (`--db`).
    pub(crate) client: PgClient<Payload>,
}

impl TaskCommand {
    /// Parses `--db`, `--wait` (default `default_wait` seconds) and the
    /// task ids, and connects; `None` once `--help` printed `usage`.
    pub(crate) fn parse(
        raw: &[String],
        usage: &'static str,
        default_wait: u64,
    ) -> Result<Option<Self>, String> {
        let args = Args::parse(raw, usage, &["--db", "--wait"])?;
        if args.wants_help() {
            say!("{usage}");
            return Ok(None);
        }
        let tasks = task_ids(&args.positional).map_err(|why| args.wrong(&why))?;
        let wait = Duration::from_secs(args.parsed("--wait", default_wait)?);
        let client = PgClient::connect(&args.db()?).map_err(|e| e.to_string())?;
        Ok(Some(TaskCommand {
            tasks,
            wait,
            client,
        }))
    }
}

/// The task ids of the command line: at least one, each `task-N` (as
/// `submit` prints them) or `N`.
pub(crate) fn task_ids(words: &[String]) -> Result<Vec<TaskId>, String> {
    if words.is_empty() {
        return Err("name at least one task id, as `submit` printed it".into());
    }
    (words.iter())
        .map(|word| word.parse::<TaskId>().map_err(|e| e.to_string()))
        .collect()
}

/// Prints what a command says of `verdict` when it is not the one it
/// hoped for, or of none within `wait`: `named: refused: WHY`, an
/// unexpected verdict, or that the `message` waits for a leader.
pub(crate) fn say_not_done(named: &str, verdict: Option<Verdict>, wait: Duration, message: &str) {
    match verdict {
        Some(Verdict::Refused(why)) => say!("{named}: refused: {why}"),
        Some(other) => say!("{named}: unexpected verdict {other:?}"),
        None => say!(
            "{named}: no verdict within {wait:?}: is a node running? (the {message} stays \
             posted and applies when a leader reads it)"
        ),
    }
}

/// 0 if everything asked was done, 1 otherwise.
pub(crate) fn exit_code(all_done: bool) -> ExitCode {
    if all_done {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
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
