//! `taskweave-pg redrive`: send dead letters back to the queue.

use std::process::ExitCode;
use std::time::Duration;

use taskweave::TaskId;
use taskweave::cluster::{Redrive, Verdict};
use taskweave::scheduler::{DeadLetterFilter, SubmitErrorKind};
use taskweave_postgres::PgClient;

use super::Payload;
use super::args::Args;
use super::privilege::{OPERATOR, hint};
use super::task_command::{exit_code, say_not_done, task_ids};

const USAGE: &str = "\
usage: taskweave-pg redrive --db CONNINFO [--wait SECONDS] TASK...
       taskweave-pg redrive --db CONNINFO [--wait SECONDS] --all
                            [--kind KIND] [--cause CAUSE] [--key KEY]

Sends dead letters back to the queue, each as a new task (a new id; the old
letter kept as its history; no deadline): the letters of the tasks named (by
the id `submit` printed, `task-N` or N), or with --all every letter that
matches the filter: a task kind, a cause (retries-exhausted, non-retryable,
unroutable, expired) and a fair-share or concurrency key, each optional.
Prints `task-N: requeued as task-M` for each letter requeued, `task-N: refused:
WHY` for each refused (no such letter, the queue is full, or a workflow
client's step, which its run retries), and `no dead letter matched` for a
filter that matched none; waits up to --wait seconds (default 30) for the
leader's verdicts. Exits 0 only if every letter named was requeued (with
--all, also when none matched; a workflow step's letter --all lists does not
count). `status` counts the dead
letters; `outcome TASK` says why one ended. Needs a node login (or the
database owner); a submitter may not redrive. A draining cluster refuses.";

pub(crate) fn run(raw: &[String]) -> Result<ExitCode, String> {
    let args = Args::parse(
        raw,
        USAGE,
        &["--db", "--wait", "--all!", "--kind", "--cause", "--key"],
    )?;
    if args.wants_help() {
        say!("{USAGE}");
        return Ok(ExitCode::SUCCESS);
    }
    let asked = redrives(&args)?;
    let wait = Duration::from_secs(args.parsed("--wait", 30u64)?);
    let mut client = PgClient::<Payload>::connect(&args.db()?).map_err(|e| e.to_string())?;
    let mut ids = Vec::with_capacity(asked.len());
    for which in &asked {
        ids.push(
            client
                .redrive(which.clone())
                .map_err(hint("redrive", OPERATOR))?,
        );
    }
    let verdicts = client
        .wait_verdicts(&ids, wait)
        .map_err(hint("redrive", OPERATOR))?;
    let mut all = true;
    for (which, verdict) in asked.iter().zip(verdicts) {
        let named = match which {
            Redrive::Task(task) => task.to_string(),
            Redrive::Matching(_) => "the redrive".to_string(),
        };
        let Some(Verdict::Redriven { requeued, refused }) = verdict else {
            all = false;
            say_not_done(&named, verdict, wait, "redrive");
            continue;
        };
        if requeued.is_empty() && refused.is_empty() {
            say!("no dead letter matched");
        }
        for (old, new) in requeued {
            say!("{old}: requeued as {new}");
        }
        for (old, why) in &refused {
            say!("{old}: refused: {why}");
        }
        all &= done(which, &refused);
    }
    Ok(exit_code(all))
}

/// Whether a redrive answered with `refused` letters did what was asked:
/// none refused, or, for a redrive of every letter a filter matches, only
/// letters no redrive may requeue (a workflow client's steps, which their
/// runs retry), which it lists and does not count.
fn done(which: &Redrive, refused: &[(TaskId, String)]) -> bool {
    let held = SubmitErrorKind::NotRedrivable.to_string();
    let bulk = matches!(which, Redrive::Matching(_));
    refused.iter().all(|(_, why)| bulk && *why == held)
}

/// The redrives the command line asks: one per task named, or one filter
/// with `--all`.
fn redrives(args: &Args) -> Result<Vec<Redrive>, String> {
    let filtered = ["--kind", "--cause", "--key"]
        .into_iter()
        .any(|flag| args.value(flag).is_some());
    if !args.switch("--all") {
        if filtered {
            return Err(args.wrong("--kind, --cause and --key filter --all: add --all"));
        }
        let tasks = task_ids(&args.positional).map_err(|why| args.wrong(&why))?;
        return Ok(tasks.into_iter().map(Redrive::Task).collect());
    }
    if !args.positional.is_empty() {
        return Err(args.wrong("name tasks or say --all, not both"));
    }
    let filter = DeadLetterFilter::from_words(
        args.value("--kind"),
        args.value("--cause"),
        args.value("--key"),
    )
    .map_err(|e| args.wrong(&e.to_string()))?;
    Ok(vec![Redrive::Matching(filter)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskweave::scheduler::DeadLetterCause;

    fn asked(words: &[&str]) -> Result<Vec<Redrive>, String> {
        let raw: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        redrives(&Args::parse(
            &raw,
            USAGE,
            &["--all!", "--kind", "--cause", "--key"],
        )?)
    }

    #[test]
    fn a_step_letter_fails_a_redrive_by_id_but_not_one_of_every_letter() {
        let task = TaskId::new(3);
        let every = Redrive::Matching(DeadLetterFilter::new());
        let held = vec![(task, SubmitErrorKind::NotRedrivable.to_string())];
        let full = (SubmitErrorKind::QueueFull { capacity: 1 }).to_string();
        assert!(done(&every, &[]) && done(&Redrive::Task(task), &[]));
        assert!(done(&every, &held));
        assert!(!done(&Redrive::Task(task), &held));
        assert!(!done(&every, &[(task, full)]));
    }

    #[test]
    fn tasks_or_a_filter_but_not_both_and_only_known_causes() {
        assert_eq!(
            asked(&["task-3", "4"]),
            Ok(vec![
                Redrive::Task(TaskId::new(3)),
                Redrive::Task(TaskId::new(4))
            ])
        );
        let filter = DeadLetterFilter::new()
            .kind("gpu")
            .cause(DeadLetterCause::Expired);
        assert_eq!(
            asked(&["--all", "--kind", "gpu", "--cause", "expired"]),
            Ok(vec![Redrive::Matching(filter)])
        );
        assert_eq!(
            asked(&["--all"]),
            Ok(vec![Redrive::Matching(DeadLetterFilter::new())])
        );
        for (words, says) in [
            (&["--all", "3"][..], "not both"),
            (&["--kind", "gpu"][..], "add --all"),
            (
                &["--all", "--cause", "lost"][..],
                "\"lost\" is not a dead letter's cause",
            ),
            (&[][..], "at least one"),
        ] {
            let why = asked(words).unwrap_err();
            assert!(why.contains(says), "{words:?}: {why}");
        }
    }
}
