//! `taskweave-pg outcome`: how tasks ended.

use super::privilege::{SUBMITTER, hint};
use std::process::ExitCode;

use taskweave::cluster::Outcome;

use super::task_command::TaskCommand;

const USAGE: &str = "\
usage: taskweave-pg outcome --db CONNINFO [--wait SECONDS] TASK...

Prints how each task ended, by the id `submit` printed for it (`task-N`, or
just N): `task-N: completed`, followed by `, output: JSON` for a task that
completed with an output, `task-N: dead-lettered: WHY`, `task-N: expired:
WHY`, `task-N: cancelled`, `task-N: dead-lettered, then requeued as task-M:
read its outcome` once an operator redrove it (since schema version 15), or
`task-N: not ended` while it is queued or running
(also for an id the cluster never gave out, and for an end the leader forgot
when it trimmed its journal behind a snapshot: read outcomes within a snapshot
interval). Waits up to --wait seconds (default 0) for every task to end. Exits
0 only if every task ended, 1 otherwise. A submitter's login may read
outcomes.";

pub(crate) fn run(raw: &[String]) -> Result<ExitCode, String> {
    let Some(TaskCommand {
        tasks,
        wait,
        mut client,
    }) = TaskCommand::parse(raw, USAGE, 0)?
    else {
        return Ok(ExitCode::SUCCESS);
    };
    let ends = client
        .wait_outcomes(&tasks, wait)
        .map_err(hint("outcome", SUBMITTER))?;
    let mut all = true;
    for (task, end) in tasks.iter().zip(ends) {
        match end {
            Some(Outcome {
                end,
                output: Some(output),
            }) => say!("{task}: {end}, output: {output}"),
            Some(Outcome { end, output: None }) => say!("{task}: {end}"),
            None => {
                all = false;
                say!("{task}: not ended");
            }
        }
    }
    Ok(if all {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
