//! `taskweave-pg cancel`: cancel tasks by id.

use super::privilege::{SUBMITTER, hint};
use std::process::ExitCode;

use taskweave::cluster::Verdict;

use super::task_command::{TaskCommand, exit_code, say_not_done};

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
    let Some(TaskCommand {
        tasks,
        wait,
        mut client,
    }) = TaskCommand::parse(raw, USAGE, 30)?
    else {
        return Ok(ExitCode::SUCCESS);
    };
    let mut ids = Vec::with_capacity(tasks.len());
    for &task in &tasks {
        ids.push(client.cancel(task).map_err(hint("cancel", SUBMITTER))?);
    }
    let verdicts = client
        .wait_verdicts(&ids, wait)
        .map_err(hint("cancel", SUBMITTER))?;
    let mut all = true;
    for (task, verdict) in tasks.iter().zip(verdicts) {
        if verdict == Some(Verdict::Accepted) {
            say!("{task}: cancelled");
        } else {
            all = false;
            say_not_done(&task.to_string(), verdict, wait, "cancel");
        }
    }
    Ok(exit_code(all))
}
