//! `taskweave-pg agent`: an agent that runs a command per task.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::AtomicBool;
use std::thread::JoinHandle;
use std::time::Duration;

use taskweave::agent::AgentProfile;
use taskweave::cluster::{Assignment, NodeConfig};
use taskweave::scheduler::AttemptOutcome;
use taskweave::{AgentId, AttemptToken, TaskId};
use taskweave_postgres::metrics::AgentMetrics;
use taskweave_postgres::{LogLine, PgAgent};

use super::args::Args;
use super::{Payload, logger};
use super::{log, metrics, privilege};

const USAGE: &str = "\
usage: taskweave-pg agent --db CONNINFO --id N [--capacity N] [--capability NAME]... [--metrics ADDR] [--log-format text|json] -- COMMAND [ARG]...

Registers agent N (a new incarnation at every start: the attempts of a
previous run of agent N go back to the queue at once), heartbeats every
500 ms, and runs COMMAND once per task it claims, at most --capacity (default
4) at a time. The task's payload is written to the command's stdin as JSON;
TASKWEAVE_TASK, TASKWEAVE_ATTEMPT and TASKWEAVE_AGENT are set in its
environment. Exit status 0 reports success, with what the command wrote to
its stdout as the task's output (JSON if it parses as JSON, else a JSON
string; none if it wrote nothing), which `outcome` prints. The leader holds
an output to the cluster's limit (1 MiB unless the nodes say otherwise;
over it, the task fails for good): return a reference to a large result,
not the result. Any other status reports a failure (retried by the
cluster's policy) with the last line of its stderr; exit status 100 reports
a failure that must not be retried. A command whose
attempt the cluster cancels (a client's cancel, a failover) is killed, with
every process it started (it runs in a process group of its own). The agent
survives PostgreSQL restarts and exits 0 when the cluster is drained.
Connect with the agent's own login (see `taskweave-pg init --agent`).
With --metrics ADDR it serves Prometheus metrics on http://ADDR/metrics, e.g.
127.0.0.1:9465 (port 0: any free one; the address is logged). Its log is text
(`TIME LEVEL WHO: WHAT`), or with --log-format json one JSON object a line.";

/// The exit status that means: do not retry.
const FATAL_EXIT: i32 = 100;

/// The most a command's stdout is read (16 MiB, the largest output limit
/// a node takes); the rest is read and dropped, so the command never
/// blocks on a full pipe.
const MAX_STDOUT: u64 = NodeConfig::MAX_OUTPUT_LIMIT as u64;

/// A command running one attempt.
struct Running {
    task: TaskId,
    token: AttemptToken,
    child: Child,
    stdout: Option<JoinHandle<Stdout>>,
    stderr: Option<JoinHandle<String>>,
}

/// What a command wrote to its stdout: the first [`MAX_STDOUT`] bytes, and
/// how many it wrote in all.
struct Stdout {
    kept: Vec<u8>,
    written: u64,
}

impl Stdout {
    /// Reads `pipe` to its end.
    fn read(pipe: impl Read) -> Stdout {
        let mut pipe = pipe;
        let mut kept = Vec::new();
        let _ = (&mut pipe).take(MAX_STDOUT).read_to_end(&mut kept);
        let rest = std::io::copy(&mut pipe, &mut std::io::sink()).unwrap_or(0);
        Stdout {
            written: kept.len() as u64 + rest,
            kept,
        }
    }

    /// The output it makes: none if the command wrote nothing; JSON if
    /// it parses as JSON, else the text as a JSON string.
    fn output(self) -> Result<Option<Payload>, String> {
        if self.written > MAX_STDOUT {
            return Err(format!(
                "the command wrote {} bytes to its stdout, over the {MAX_STDOUT} an output may \
                 have: write a reference to a large result, not the result",
                self.written
            ));
        }
        if self.kept.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        Ok(Some(serde_json::from_slice(&self.kept).unwrap_or_else(
            |_| Payload::String(String::from_utf8_lossy(&self.kept).trim_end().to_owned()),
        )))
    }
}

pub(crate) fn run(raw: &[String]) -> Result<ExitCode, String> {
    let args = Args::parse(
        raw,
        USAGE,
        &[
            "--db",
            "--id",
            "--capacity",
            "--capability",
            "--metrics",
            "--log-format",
        ],
    )?;
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
    let config = super::agent_session_config()?;
    log::install(&args)?;
    // A privilege refusal repeats until an operator grants it: each line
    // names the login this command needs.
    let mut log = privilege::naming_login("agent", privilege::AGENT, logger(format!("agent {id}")));
    let stop = AtomicBool::new(false);
    let give_up = || stop.load(std::sync::atomic::Ordering::Relaxed);
    let served = metrics::serve(&args, &mut log, AgentMetrics::register, |_| true)?;
    let mut agent =
        PgAgent::<Payload>::connect(&db, AgentId::new(id), profile, config, &mut log, &give_up)
            .map_err(|e| e.to_string())?;
    if let Some((_, metrics)) = &served {
        agent = agent.observe_with(metrics.clone());
    }
    let mut running: Vec<Running> = Vec::new();
    while !agent.is_stopped() {
        for work in agent.step(&mut log) {
            match start(program, program_args, id, &work) {
                Ok(r) => running.push(r),
                Err(why) => {
                    log(LogLine::warn(&format!("{}: {why}", work.task)));
                    agent.finish(work.task, work.token, AttemptOutcome::failure(why));
                }
            }
        }
        for (task, token) in agent.cancelled() {
            if let Some(r) = running
                .iter_mut()
                .find(|r| (r.task, r.token) == (task, token))
            {
                log(LogLine::info(&format!(
                    "{task}: cancelled by the cluster; stopping its command"
                )));
                // It may have ended meanwhile; its result is refused anyway.
                kill_group(&mut r.child);
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
                let stdout = r.stdout.take().and_then(|h| h.join().ok());
                let outcome = match status.code() {
                    Some(0) => match stdout.map_or(Ok(None), Stdout::output) {
                        Ok(Some(output)) => {
                            agent.complete(r.task, r.token, output);
                            return false;
                        }
                        Ok(None) => AttemptOutcome::Success,
                        Err(why) => AttemptOutcome::fatal(why),
                    },
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
    log(LogLine::info(
        "the cluster was drained and stopped; exiting",
    ));
    Ok(ExitCode::SUCCESS)
}

/// Kills `child` and every process in its group (what it started, such as
/// a shell's commands), by `kill -KILL -- -PGID`; the child alone if that
/// fails.
fn kill_group(child: &mut Child) {
    let group = format!("-{}", child.id());
    let killed = Command::new("kill")
        .args(["-KILL", "--", &group])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !killed {
        let _ = child.kill();
    }
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
        .stdout(Stdio::piped())
        // Its own process group, so a cancel stops what it started too.
        .process_group(0)
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let payload = serde_json::to_vec(&work.payload).map_err(|e| e.to_string())?;
        // A command that does not read its stdin closes the pipe: fine.
        let _ = stdin.write_all(&payload);
    }
    let stdout = child
        .stdout
        .take()
        .map(|pipe| std::thread::spawn(move || Stdout::read(pipe)));
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
        stdout,
        stderr,
    })
}
