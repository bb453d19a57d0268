//! Tokio service: a node, two agents and two clients of a PostgreSQL
//! cluster, embedded in one async (tokio) process.
//!
//! The agents and the clients are async, on `tokio-postgres`, their
//! connections tokio tasks: `AsyncPgAgent::serve` runs an async handler
//! per assignment as a tokio task, and `AsyncPgClient` awaits
//! submissions, verdicts and outcomes, with no thread of their own. The
//! node runs no host code: its loop, a state machine driven through one
//! connection of the blocking `postgres` crate, runs on a blocking thread
//! (`tokio::task::spawn_blocking`). Never call a blocking host on an
//! async worker thread: the `postgres` crate runs a runtime of its own
//! inside each connection and panics there, and a blocked worker would
//! stall every task it runs.
//!
//! What it does:
//!
//! * starts a private PostgreSQL server (`testkit::PgCluster`: a temporary
//!   directory, a free port, run as `nobody` under root), creates the
//!   schema and a login per role;
//! * runs the node on a blocking thread: it takes the free lease and leads;
//! * runs two agents as tokio tasks (`AsyncPgAgent::serve`): each runs its
//!   handler on every assignment as a tokio task of its own (an async
//!   sleep stands for a call to another service) and reports the output;
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
use taskweave::scheduler::{DispatcherConfig, TaskSpec};
use taskweave::{AgentId, TaskId};
use taskweave_postgres::testkit::PgCluster;
use taskweave_postgres::{
    AsyncPgAgent, AsyncPgClient, Handled, LogLine, LoginKind, NodeExit, PgError, PgNode,
    connect_admin, create_agent_login, create_login, migrate,
};
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
        let (db, stop) = (cluster.conninfo_as(login), Arc::clone(&stop));
        agents.push((id, tokio::spawn(agent_role(db, id, stop, log))));
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
    for (id, role) in agents {
        let completed = within(role).await??;
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

/// An agent, as a tokio task: serves the cluster until the drain stops
/// it, running [`handle`] on each assignment as a tokio task of its own.
/// Answers how many attempts it completed.
async fn agent_role(db: String, id: u64, stop: Arc<AtomicBool>, log: Log) -> Result<u64, String> {
    let who = format!("agent {id}");
    let profile = AgentProfile::builder()
        .capacity(CAPACITY)
        .build()
        .map_err(|e| e.to_string())?;
    // The leader's notice wakes the agent when work is published; the
    // claim poll only catches a lost notice.
    let session = SessionConfig::builder()
        .heartbeat_every(HEARTBEAT)
        .claim_poll(Duration::from_millis(250))
        .build()
        .map_err(|e| e.to_string())?;
    let mut say = |line: LogLine<'_>| log.say(&who, line.text);
    let give_up = || stop.load(Ordering::Relaxed);
    let agent =
        AsyncPgAgent::<Value>::connect(&db, AgentId::new(id), profile, session, &mut say, &give_up)
            .await
            .map_err(|e| e.to_string())?;
    let say = move |line: LogLine<'_>| log.say(&format!("agent {id}"), line.text);
    Ok(agent
        .serve(say, move |work: Assignment<Value>| handle(id, work.payload))
        .await)
}

/// The work: what the service does with a payload. The sleep stands for
/// an async call to another service.
async fn handle(agent: u64, payload: Value) -> Handled<Value> {
    let n = payload["n"]
        .as_u64()
        .ok_or("a payload without a number n")?;
    sleep(Duration::from_millis(1 + n % 5)).await;
    Ok(json!({ "n": n, "square": n * n, "agent": agent }))
}

/// Sets the roles' stop flag when `run` ends, however it ends.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A role's result, once it ends within [`STOP_WITHIN`].
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
