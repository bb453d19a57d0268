//! Tokio service: a node, two agents and two clients of a PostgreSQL
//! cluster, embedded in one async (tokio) process.
//!
//! A node's loop is a state machine driven through one connection of the
//! blocking `postgres` crate, one operation at a time, and so is an
//! agent's session: an async host runs each of these roles on a blocking
//! thread of its own (`tokio::task::spawn_blocking`) and talks to it over
//! tokio channels. The clients are async: `AsyncPgClient` runs on
//! `tokio-postgres`, its connection a tokio task, so the service's code
//! awaits submissions, verdicts and outcomes without a blocking thread.
//! Never call a blocking host on an async worker thread: the `postgres`
//! crate runs a runtime of its own inside each connection and panics
//! there, and a blocked worker would stall every task it runs.
//!
//! What it does:
//!
//! * starts a private PostgreSQL server (`testkit::PgCluster`: a temporary
//!   directory, a free port, run as `nobody` under root), creates the
//!   schema and a login per role;
//! * runs the node on a blocking thread: it takes the free lease and leads;
//! * runs two agents, each on a blocking thread that claims its work and
//!   hands each assignment to an async worker over an mpsc channel; the
//!   worker runs it as a tokio task (an async sleep stands for a call to
//!   another service) and sends the output back, which the agent reports
//!   with `PgAgent::complete`;
//! * submits 200 JSON payloads as a submitter (an `AsyncPgClient`), awaits
//!   every outcome, checks every output and prints a summary;
//! * drains the cluster as the operator (an `AsyncPgClient` on the node
//!   login), checks that the node and both
//!   agents stopped and that the lease says so, and stops the server.
//!
//! It exits with status 1 if PostgreSQL's programs are missing (saying
//! how to install them), if a check fails, or if the run does not end
//! within a watchdog timeout.
//!
//! Run with `cargo run --release -p taskweave-postgres --example tokio_service`.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use taskweave::agent::AgentProfile;
use taskweave::cluster::{Assignment, NodeConfig, SessionConfig, TaskEnd, Verdict};
use taskweave::scheduler::{AttemptOutcome, DispatcherConfig, TaskSpec};
use taskweave::{AgentId, AttemptToken, TaskId};
use taskweave_postgres::testkit::PgCluster;
use taskweave_postgres::{
    AsyncPgClient, LogLine, LoginKind, NodeExit, PgAgent, PgError, PgNode, connect_admin,
    create_agent_login, create_login, migrate,
};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, spawn_blocking};
use tokio::time::{sleep, timeout};

const TASKS: usize = 200;
/// The tasks go in this many messages (`AsyncPgClient::submit_many`).
const MESSAGES: usize = 4;
/// Attempts an agent runs at once.
const CAPACITY: u32 = 8;
const HEARTBEAT: Duration = Duration::from_millis(250);
/// Heartbeats an agent may miss before it counts as lost: 5 s, generous
/// for a loaded machine (nothing here is meant to be lost).
const MISSED_HEARTBEATS: u32 = 20;
const NODE: &str = "node-a";
const AGENTS: [(u64, &str); 2] = [(1, "agent_one"), (2, "agent_two")];
/// How long a phase may take before the run fails; a healthy run takes a
/// few seconds in all.
const VERDICTS_WITHIN: Duration = Duration::from_secs(30);
const OUTCOMES_WITHIN: Duration = Duration::from_secs(60);
const STOP_WITHIN: Duration = Duration::from_secs(30);
const WATCHDOG: Duration = Duration::from_secs(180);

type BoxError = Box<dyn std::error::Error>;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let log = Log {
        started: Instant::now(),
    };
    println!("tokio_service: a node, two agents and two clients in one tokio process");
    match timeout(WATCHDOG, run(log)).await {
        Ok(Ok(())) => {
            log.say("service", "every check passed");
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("tokio_service failed: {e}");
            ExitCode::FAILURE
        }
        Err(_) => {
            // The run was dropped: its roles were told to stop and the
            // server stopped. Exit without waiting for a wedged thread.
            eprintln!("tokio_service failed: the run did not end within {WATCHDOG:?}");
            std::process::exit(1);
        }
    }
}

async fn run(log: Log) -> Result<(), BoxError> {
    // The private server. Starting it runs initdb and pg_ctl: blocking work.
    let cluster = spawn_blocking(PgCluster::start)
        .await?
        .map_err(|e| format!("a private PostgreSQL server could not start.\n{e}"))?;
    let admin = cluster.conninfo();
    let version = spawn_blocking(move || setup(&admin)).await??;
    log.say(
        "service",
        &format!(
            "PostgreSQL on 127.0.0.1:{}, schema version {version}, a login per role",
            cluster.port()
        ),
    );

    // From here on, leaving `run` for any reason tells every role to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let _stop_on_exit = StopOnDrop(Arc::clone(&stop));
    let node = {
        let (db, stop) = (cluster.conninfo_as("node_login"), Arc::clone(&stop));
        spawn_blocking(move || node_role(&db, &stop, log))
    };
    let mut agents = Vec::new();
    for (id, login) in AGENTS {
        let (work_tx, work_rx) = mpsc::channel(CAPACITY as usize);
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let worker = tokio::spawn(worker(id, work_rx, done_tx));
        let (db, stop) = (cluster.conninfo_as(login), Arc::clone(&stop));
        let role = spawn_blocking(move || agent_role(&db, id, &stop, work_tx, done_rx, log));
        agents.push((id, role, worker));
    }

    // A submitter's client, driven from async code.
    let mut submitter = AsyncPgClient::<Value>::connect(&cluster.conninfo_as("submitter")).await?;
    let specs: Vec<TaskSpec<Value>> = (0..TASKS)
        .map(|n| TaskSpec::new(json!({ "n": n })))
        .collect();
    let batches: Vec<Vec<TaskSpec<Value>>> = specs
        .chunks(TASKS.div_ceil(MESSAGES))
        .map(<[_]>::to_vec)
        .collect();
    let submitted_at = Instant::now();
    let messages = submitter.submit_many(batches).await?;
    let verdicts = submitter.wait_verdicts(&messages, VERDICTS_WITHIN).await?;
    let mut tasks: Vec<TaskId> = Vec::with_capacity(TASKS);
    for verdict in verdicts {
        match verdict {
            Some(Verdict::Submitted(ids)) => {
                for id in ids {
                    tasks.push(id.map_err(|why| format!("a task was refused: {why}"))?);
                }
            }
            Some(other) => return Err(format!("a submission's verdict: {other:?}").into()),
            None => {
                return Err(format!("no verdict within {VERDICTS_WITHIN:?}: no leader?").into());
            }
        }
    }
    log.say(
        "client",
        &format!("{} tasks submitted in {MESSAGES} messages", tasks.len()),
    );

    // Every outcome, awaited without blocking the runtime.
    let outcomes = submitter.wait_outcomes(&tasks, OUTCOMES_WITHIN).await?;
    let ended = outcomes.iter().filter(|o| o.is_some()).count();
    if ended < tasks.len() {
        return Err(format!(
            "{ended} of {} tasks ended within {OUTCOMES_WITHIN:?}",
            tasks.len()
        )
        .into());
    }
    let outcomes: Vec<_> = outcomes.into_iter().flatten().collect();
    let elapsed = submitted_at.elapsed();

    // Task i carried {"n": i}: its output must be its agent's answer to it.
    let mut ran_by = [0usize; AGENTS.len()];
    for (n, outcome) in outcomes.iter().enumerate() {
        let output = outcome.output.as_ref();
        let agent = output.and_then(|o| o["agent"].as_u64());
        let slot = agent.and_then(|a| AGENTS.iter().position(|&(id, _)| id == a));
        let square = output.and_then(|o| o["square"].as_u64());
        match (&outcome.end, slot) {
            (TaskEnd::Completed, Some(slot)) if square == Some((n * n) as u64) => {
                ran_by[slot] += 1;
            }
            _ => {
                return Err(format!("{}: {} with output {output:?}", tasks[n], outcome.end).into());
            }
        }
    }
    println!("summary");
    println!("  tasks      {TASKS}, in {MESSAGES} messages");
    println!(
        "  completed  {}, each with its output checked",
        ran_by.iter().sum::<usize>()
    );
    println!(
        "  elapsed    {:.2} s from the submission to the last outcome ({:.0} tasks/s)",
        elapsed.as_secs_f64(),
        TASKS as f64 / elapsed.as_secs_f64()
    );
    for ((id, _), ran) in AGENTS.iter().zip(ran_by) {
        println!("  agent {id}    ran {ran}");
    }

    // The operator drains: the work in flight ends, then every role stops.
    let mut operator = AsyncPgClient::<Value>::connect(&cluster.conninfo_as("node_login")).await?;
    let drain = operator.drain().await?;
    let verdict = operator.wait_verdicts(&[drain], VERDICTS_WITHIN).await?;
    if verdict.first() != Some(&Some(Verdict::Accepted)) {
        return Err(format!("the drain's verdict: {verdict:?}").into());
    }
    log.say("operator", "drain accepted");
    match within(node).await?? {
        NodeExit::Stopped => log.say("service", &format!("{NODE} stopped")),
        NodeExit::Interrupted => return Err("the node was interrupted".into()),
    }
    for (id, role, worker) in agents {
        let completed = within(role).await??;
        // The agent dropped its end of the channel: its worker ends.
        within(worker).await?;
        log.say(
            "service",
            &format!("agent {id} stopped after {completed} completions"),
        );
    }
    let (lease, _) = submitter.status().await?;
    if !lease.stopped {
        return Err(format!("every role ended but the lease is not stopped: {lease:?}").into());
    }
    log.say(
        "service",
        &format!("the lease of epoch {} says: stopped", lease.epoch),
    );

    spawn_blocking(move || drop(cluster)).await?;
    log.say("service", "PostgreSQL stopped and its directory removed");
    Ok(())
}

/// Creates the schema and a login per role; answers the schema version.
/// Runs on a blocking thread.
fn setup(admin: &str) -> Result<i32, PgError> {
    let mut db = connect_admin(admin)?;
    let report = migrate(&mut db)?;
    create_login(&mut db, "node_login", LoginKind::Node)?;
    for (id, login) in AGENTS {
        create_agent_login(&mut db, id, login)?;
    }
    create_login(&mut db, "submitter", LoginKind::Submitter)?;
    Ok(report.to)
}

/// The dispatcher configuration of the cluster (every node of a cluster
/// uses the same).
fn dispatcher() -> Result<DispatcherConfig, String> {
    DispatcherConfig::builder()
        .heartbeats(HEARTBEAT, MISSED_HEARTBEATS)
        .build()
        .map_err(|e| e.to_string())
}

/// The node, on its blocking thread: follows, takes the free lease and
/// leads, until the drain stops the cluster or `stop` is set.
fn node_role(db: &str, stop: &AtomicBool, log: Log) -> Result<NodeExit, String> {
    // The schema's triggers notify the node of each post: it reads its
    // inbox then, and polls only once a second as a net.
    let config = NodeConfig::builder(NODE)
        .woken_by_notices(Duration::from_secs(1))
        .build()
        .map_err(|e| e.to_string())?;
    let mut node = PgNode::<Value>::new(db, config, dispatcher()?).map_err(|e| e.to_string())?;
    node.run(stop, &mut |line| log.say(NODE, line.text))
}

/// What an agent's worker sends back: the output of an attempt.
#[derive(Debug)]
struct Done {
    task: TaskId,
    token: AttemptToken,
    output: Value,
}

/// An agent, on its blocking thread: claims its work, hands each
/// assignment to its async worker, and completes each attempt with the
/// output the worker sends back, until the cluster stops (or `stop` is
/// set). Answers how many completions the session took.
fn agent_role(
    db: &str,
    id: u64,
    stop: &AtomicBool,
    work: mpsc::Sender<Assignment<Value>>,
    mut done: mpsc::UnboundedReceiver<Done>,
    log: Log,
) -> Result<u64, String> {
    let who = format!("agent {id}");
    let mut say = |line: LogLine<'_>| log.say(&who, line.text);
    let profile = AgentProfile::builder()
        .capacity(CAPACITY)
        .build()
        .map_err(|e| e.to_string())?;
    // The leader's notice wakes `wait` when work is published; the claim
    // poll only catches a lost notice.
    let session = SessionConfig::builder()
        .heartbeat_every(HEARTBEAT)
        .claim_poll(Duration::from_millis(250))
        .build()
        .map_err(|e| e.to_string())?;
    let give_up = || stop.load(Ordering::Relaxed);
    let mut agent =
        PgAgent::<Value>::connect(db, AgentId::new(id), profile, session, &mut say, &give_up)
            .map_err(|e| e.to_string())?;
    let (mut running, mut completed) = (0usize, 0u64);
    while !agent.is_stopped() {
        if give_up() {
            return Err(format!("{who} was told to stop before the cluster stopped"));
        }
        for assignment in agent.step(&mut say) {
            let (task, token) = (assignment.task, assignment.token);
            // The session holds at most CAPACITY attempts, so the channel
            // has room; `blocking_send` is the call for a blocking thread.
            if work.blocking_send(assignment).is_ok() {
                running += 1;
            } else {
                agent.finish(task, token, AttemptOutcome::failure("the worker is gone"));
            }
        }
        for (task, token) in agent.cancelled() {
            say(LogLine::info(&format!(
                "{token} of {task} was cancelled; its result will be refused"
            )));
        }
        while let Ok(result) = done.try_recv() {
            running -= 1;
            if agent.complete(result.task, result.token, result.output) {
                completed += 1;
            }
        }
        // Short naps while the worker holds attempts, so each result is
        // reported soon after it is sent.
        agent.wait(Duration::from_millis(if running > 0 { 2 } else { 20 }));
    }
    Ok(completed)
}

/// An agent's async worker: runs each assignment it is handed as a tokio
/// task of its own and sends the output back. It ends when the agent drops
/// its sender.
async fn worker(
    agent: u64,
    mut work: mpsc::Receiver<Assignment<Value>>,
    done: mpsc::UnboundedSender<Done>,
) {
    while let Some(assignment) = work.recv().await {
        let done = done.clone();
        tokio::spawn(async move {
            let output = handle(agent, &assignment.payload).await;
            // An agent that stopped meanwhile no longer listens: fine.
            let _ = done.send(Done {
                task: assignment.task,
                token: assignment.token,
                output,
            });
        });
    }
}

/// The work: what the service does with a payload. The sleep stands for
/// an async call to another service.
async fn handle(agent: u64, payload: &Value) -> Value {
    let n = payload["n"].as_u64().unwrap_or(0);
    sleep(Duration::from_millis(1 + n % 5)).await;
    json!({ "n": n, "square": n * n, "agent": agent })
}

/// Sets the roles' stop flag when `run` ends, however it ends.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A role's or worker's result, once it ends within [`STOP_WITHIN`].
async fn within<T>(handle: JoinHandle<T>) -> Result<T, BoxError> {
    match timeout(STOP_WITHIN, handle).await {
        Ok(joined) => Ok(joined?),
        Err(_) => Err(format!("a role did not stop within {STOP_WITHIN:?} of the drain").into()),
    }
}

/// Prints a line with the time since the start and who says it.
#[derive(Clone, Copy, Debug)]
struct Log {
    started: Instant,
}

impl Log {
    fn say(&self, who: &str, line: &str) {
        println!(
            "[{:6.2}s] {who}: {line}",
            self.started.elapsed().as_secs_f64()
        );
    }
}
