//! A durable taskweave cluster on PostgreSQL.
//!
//! The store ([`PgStore`]) keeps the cluster's lease, journal, snapshots,
//! inbox and outbox in a `taskweave` schema ([`migrate`]); the hosts run
//! its roles in a process: [`PgNode`] (a leader or a standby), [`PgAgent`]
//! (an agent session for the host's own agent code; [`AsyncPgAgent`] for
//! async hosts) and [`PgClient`] (submit, cancel, redrive, drain,
//! outcomes, status; [`AsyncPgClient`] for async hosts). The `taskweave-pg` command
//! runs each role from a shell, and [`testkit`] starts a private server for
//! tests and demos.
//! [`metrics`] gives a node's and an agent's figures to Prometheus
//! (`taskweave-pg node --metrics ADDR`, or [`PgNode::observe_with`] in a
//! host).
//! [`ui`] serves the operator's page (`taskweave-pg ui`): the status, and
//! forms that cancel a task, redrive dead letters and drain the cluster.
//!
//! # The operator's path
//!
//! With a PostgreSQL you administer (`$DB` a libpq connection string with a
//! superuser or the database owner), as README's "The operator's path":
//!
//! ```sh
//! cargo build --release -p taskweave-postgres            # target/release/taskweave-pg
//! PG=target/release/taskweave-pg
//! $PG init --db "$DB" --node node_login --agent 1:agent_one --agent 2:agent_two --submitter sub
//! $PG node  --db "$DB user=node_login" --name node-a --pool any:1 &   # two nodes: one leads,
//! $PG node  --db "$DB user=node_login" --name node-b --pool any:1 &   # one stands by
//! $PG agent --db "$DB user=agent_one" --id 1 -- sh -c 'cat; echo' &   # payload on stdin,
//! $PG agent --db "$DB user=agent_two" --id 2 -- sh -c 'cat; echo' &   # exit status = outcome
//! echo '{"payload": {"n": 1}, "priority": "P1"}' | $PG submit --db "$DB user=sub"   # line 1: task-0
//! $PG outcome --db "$DB user=sub" --wait 30 task-0          # task-0: completed, output: {"n":1}
//! $PG status --db "$DB"
//! $PG audit  --db "$DB user=node_login"
//! $PG drain  --db "$DB user=node_login"                   # finish the work, stop every process
//! $PG reset  --db "$DB"                                   # after a drain: ready for a new cluster
//! ```
//!
//! # A host's path
//!
//! The same roles, embedded (after `taskweave-pg init`, or [`migrate`] and
//! [`create_login`]): a node on a thread of its own, an agent on another,
//! and a client that submits, reads the outcomes and drains.
//!
//! ```no_run
//! use std::sync::atomic::AtomicBool;
//! use std::time::Duration;
//!
//! use taskweave::agent::AgentProfile;
//! use taskweave::cluster::{NodeConfig, SessionConfig, Verdict};
//! use taskweave::scheduler::{DispatcherConfig, TaskSpec};
//! use taskweave::{AgentId, TaskId};
//! use taskweave_postgres::{NodeExit, PgAgent, PgClient, PgNode};
//!
//! static STOP: AtomicBool = AtomicBool::new(false);
//! let db = "host=127.0.0.1 port=5432 user=postgres dbname=postgres";
//!
//! // A node: it leads while the lease is free, until the drain.
//! let dispatcher = DispatcherConfig::builder()
//!     .heartbeats(Duration::from_millis(250), 8)
//!     .build()?;
//! let mut node = PgNode::<u32>::new(db, NodeConfig::builder("node-a").build()?, dispatcher)?;
//! let node = std::thread::spawn(move || node.run(&STOP, &mut |line| eprintln!("node-a: {line}")));
//!
//! // An agent: it completes each task with its payload doubled.
//! let mut log = |line: taskweave_postgres::LogLine<'_>| eprintln!("agent 1: {line}");
//! let profile = AgentProfile::builder().capacity(4).build()?;
//! let session = SessionConfig::builder().build()?;
//! let mut agent = PgAgent::<u32>::connect(db, AgentId::new(1), profile, session, &mut log, &|| false)?;
//! let agent = std::thread::spawn(move || {
//!     while !agent.is_stopped() {
//!         for work in agent.step(&mut log) {
//!             agent.complete(work.task, work.token, work.payload * 2);
//!         }
//!         agent.wait(Duration::from_millis(20));
//!     }
//! });
//!
//! // A client: two tasks, their outcomes, then the drain.
//! let mut client = PgClient::<u32>::connect(db)?;
//! let message = client.submit(vec![TaskSpec::new(20), TaskSpec::new(21)])?;
//! let verdict = client.wait_verdicts(&[message], Duration::from_secs(30))?;
//! let Some(Some(Verdict::Submitted(ids))) = verdict.into_iter().next() else {
//!     return Err("no verdict within 30 s: is the node running?".into());
//! };
//! let tasks = ids.into_iter().collect::<Result<Vec<TaskId>, String>>()?;
//! for outcome in client.wait_outcomes(&tasks, Duration::from_secs(30))?.into_iter().flatten() {
//!     println!("{}: output {:?}", outcome.end, outcome.output); // completed: output Some(40)
//! }
//! client.drain()?; // the work in flight ends, then every node and agent stops
//! assert_eq!(node.join().expect("the node's thread panicked")?, NodeExit::Stopped);
//! agent.join().expect("the agent's thread panicked");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Blocking hosts, async hosts
//!
//! The choice: the roles that run the host's code come in both kinds; the
//! node, which runs none, blocks.
//!
//! * An agent runs the host's work, and an async host's work is async (a
//!   call to a model, to another service). [`AsyncPgAgent`] does what
//!   [`PgAgent`] does as `async fn`s on `tokio-postgres` (the driver
//!   `postgres` wraps), its connection a tokio task whose notifications
//!   wake it; [`AsyncPgAgent::serve`] runs an async handler per assignment
//!   as a tokio task, so many agents and their work share a runtime with
//!   no thread of their own.
//! * A client is what a service calls from its request handlers, many
//!   times a second: [`AsyncPgClient`] does what [`PgClient`] does, as
//!   `async fn`s.
//! * A node runs no host code: it is one loop that owns its connection
//!   for its whole life and does one operation at a time, a state machine
//!   driven through one connection of the blocking `postgres` crate.
//!   Nothing would run beside it while it awaits, so it would gain nothing
//!   from being a task, and a thread of its own keeps its lease renewals
//!   free of whatever else a runtime is busy with. An async host runs it
//!   on a blocking thread (tokio's `spawn_blocking`), as the example
//!   below does; most deployments run it as `taskweave-pg node`.
//!
//! The blocking [`PgAgent`] and [`PgClient`] serve blocking hosts and the
//! `taskweave-pg` command; both kinds run the same planned statements.
//! Never call a blocking host on an async worker thread: the `postgres`
//! crate panics there. The example
//! `taskweave-postgres/examples/tokio_service.rs` embeds a node on a
//! blocking thread and two async agents and two async clients in one
//! tokio service:
//! `cargo run --release -p taskweave-postgres --example tokio_service`.

// The store, its schema and the private test server.
pub mod schema;
pub mod store;
pub mod testkit;
pub use schema::{
    LoginKind, MigrateReport, ResetReport, SCHEMA_VERSION, create_agent_login, create_login,
    grant_agent, map_tenant, migrate, reset,
};
pub use store::{
    PgError, PgStore, cluster_config, connect_admin, session_options, set_cluster_config,
};

// Hosts for the roles, their metrics, and the command line.
pub mod host;
pub mod metrics;
pub mod ui;

mod http;
pub use host::{
    AsyncPgAgent, AsyncPgClient, Handled, Level, LogLine, NodeExit, PgAgent, PgClient, PgNode,
    json_run_codec, wall_now,
};
