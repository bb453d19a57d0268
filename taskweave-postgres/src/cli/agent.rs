//! `taskweave-pg agent`: an agent that runs a command per task.

use std::io::{Read, Write};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::AtomicBool;
use std::thread::JoinHandle;
use std::time::Duration;

use taskweave::agent::AgentProfile;
use taskweave::cluster::{Assignment, SessionConfig};
use taskweave::scheduler::AttemptOutcome;
use taskweave::{AgentId, AttemptToken, TaskId};
use taskweave_postgres::PgAgent;

use super::args::Args;
use super::{HEARTBEAT, Payload, logger};

const USAGE: &str = "\
usage: taskweave-pg agent --db CONNINFO --id N [--capacity N] [--capability NAME]... -- COMMAND [ARG]...

Registers agent N (a new incarnation at every start: the attempts of a
previous run of agent N go back to the queue at once), heartbeats every
250 ms, and runs COMMAND once per task it claims, at most --capacity (default
4) at a time. The task's payload is written to the command's stdin as JSON;
TASKWEAVE_TASK, TASKWEAVE_ATTEMPT and TASKWEAVE_AGENT are set in its
environment. Exit status 0 reports success; any other status reports a
failure (retried by the cluster's policy) with the last line of its stderr;
exit status 100 reports a failure that must not be retried. A command whose
attempt the cluster cancels (a client's cancel, a failover) is killed. The agent
survives PostgreSQL restarts and exits 0 when the cluster is drained.
Connect with the agent's own login (see `taskweave-pg init --agent`).";

/// The exit status that means: do not retry.
const FATAL_EXIT: i32 = 100;

/// A command running one attempt.
struct Running {
    task: TaskId,
    token: AttemptToken,
    child: Child,
    stderr: Option<JoinHandle<String>>,
}

pub(crate) fn run(raw: &[String]) -> Result<ExitCode, String> {
    let args = Args::parse(raw, USAGE, &["--db", "--id", "--capacity", "--capability"])?;
    if args.wants_help() {
        say!("{USAGE}");
        return Ok(ExitCode::SUCCESS);
    }
    let db = args.db()?;
    let id: u64 = args.parsed("--id", 0)?;
    let capacity: u32 = args.parsed("--capacity", 4)?;
    if id == 0 || capacity == 0 {
        return Err(args.wrong("--id and --capacity must be 1 or more"));
    }
    let Some((program, program_args)) = args.rest.split_first() else {
        return Err(args.wrong("COMMAND is missing: put it after --"));
    };
    let profile = AgentProfile::builder()
        .capacity(capacity)
        .capabilities(args.values("--capability"))
        .build()
        .map_err(|e| args.wrong(&e.to_string()))?;
    // The leader's notice wakes the agent when work is published; the
    // claim poll only catches what a lost notice missed.
    let config = SessionConfig::builder()
        .heartbeat_every(HEARTBEAT)
        .claim_poll(Duration::from_millis(250))
        .build()
        .map_err(|e| e.to_string())?;
    let mut log = logger(format!("agent {id}"));
    let stop = AtomicBool::new(false);
    let give_up = || stop.load(std::sync::atomic::Ordering::Relaxed);
    let mut agent =
        PgAgent::<Payload>::connect(&db, AgentId::new(id), profile, config, &mut log, &give_up)
            .map_err(|e| e.to_string())?;
    let mut running: Vec<Running> = Vec::new();
    while !agent.is_stopped() {
        for work in agent.step(&mut log) {
            match start(program, program_args, id, &work) {
                Ok(r) => running.push(r),
                Err(why) => {
                    log(&format!("{}: {why}", work.task));
                    agent.finish(work.task, work.token, AttemptOutcome::failure(why));
                }
            }
        }
        for (task, token) in agent.cancelled() {
            if let Some(r) = running
                .iter_mut()
                .find(|r| (r.task, r.token) == (task, token))
            {
                log(&format!(
                    "{task}: cancelled by the cluster; stopping its command"
                ));
                // It may have ended meanwhile; its result is refused anyway.
                let _ = r.child.kill();
            }
        }
        running.retain_mut(|r| match r.child.try_wait() {
            Ok(None) => true,
            Ok(Some(status)) => {
                let stderr = r
                    .stderr
                    .take()
                    .and_then(|h| h.join().ok())
                    .unwrap_or_default();
                let why = stderr.lines().last().unwrap_or("").trim().to_string();
                let outcome = match status.code() {
                    Some(0) => AttemptOutcome::Success,
                    Some(FATAL_EXIT) => {
                        AttemptOutcome::fatal(format!("exit status {FATAL_EXIT}: {why}"))
                    }
                    _ => AttemptOutcome::failure(format!("{status}: {why}")),
                };
                agent.finish(r.task, r.token, outcome);
                false
            }
            Err(e) => {
                agent.finish(
                    r.task,
                    r.token,
                    AttemptOutcome::failure(format!("cannot wait for the command: {e}")),
                );
                false
            }
        });
        agent.wait(Duration::from_millis(if running.is_empty() {
            20
        } else {
            2
        }));
    }
    log("the cluster was drained and stopped; exiting");
    Ok(ExitCode::SUCCESS)
}

/// Starts the command for `work`, its payload on stdin.
fn start(
    program: &str,
    args: &[String],
    agent: u64,
    work: &Assignment<Payload>,
) -> Result<Running, String> {
    let mut child = Command::new(program)
        .args(args)
        .env("TASKWEAVE_TASK", work.task.get().to_string())
        .env("TASKWEAVE_ATTEMPT", work.attempt.to_string())
        .env("TASKWEAVE_AGENT", agent.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let payload = serde_json::to_vec(&work.payload).map_err(|e| e.to_string())?;
        // A command that does not read its stdin closes the pipe: fine.
        let _ = stdin.write_all(&payload);
    }
    let stderr = child.stderr.take().map(|mut pipe| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            let keep = text.len().saturating_sub(1_000);
            text.split_off(
                text.char_indices()
                    .map(|(i, _)| i)
                    .find(|&i| i >= keep)
                    .unwrap_or(0),
            )
        })
    });
    Ok(Running {
        task: work.task,
        token: work.token,
        child,
        stderr,
    })
}
