//! Nodes that host runs (`Node::host_runs` with `json_run_codec`), agents
//! that run each step's task with a function of the test's, and a
//! client, each role on its own connection to a private PostgreSQL, on a
//! clock the test may move ahead. Shared by the tests of hosted runs.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use taskweave::agent::AgentProfile;
use taskweave::cluster::{
    AgentSession, ClientOp, ClientReply, Message, MessageId, Node, NodeConfig, Role, RunCommand,
    RunEnd, SessionConfig, Store, Verdict,
};
use taskweave::scheduler::{AttemptOutcome, DispatcherConfig};
use taskweave::workflow::WorkflowEngine;
use taskweave::{AgentId, Instant, WorkflowId};
use taskweave_postgres::{PgStore, json_run_codec};

use super::drive;

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// What an agent does with a hosted step's task (`json_run_codec`'s
/// form): its output, or why it fails for good.
pub type Work = fn(&Value) -> Result<Value, String>;

/// The sum of the run's input and the predecessors' outputs, plus one.
pub fn add_one(payload: &Value) -> Result<Value, String> {
    let input = payload["input"].as_i64().unwrap_or(0);
    let inputs: i64 = payload["inputs"]
        .as_object()
        .map(|inputs| inputs.values().filter_map(Value::as_i64).sum())
        .unwrap_or(0);
    Ok(json!(input + inputs + 1))
}

/// An agent and its connection.
pub struct Agent {
    id: u64,
    session: AgentSession<Value>,
    store: PgStore<Value>,
}

/// Nodes, agents and a client.
pub struct Hosted {
    conninfo: String,
    dispatcher: DispatcherConfig,
    /// A node's snapshot interval, in journal entries.
    snapshot_every: u64,
    pub nodes: Vec<(Node<Value>, PgStore<Value>)>,
    pub agents: Vec<Agent>,
    pub work: Work,
    pub client: PgStore<Value>,
    pub started: std::time::Instant,
    /// How far the clock was moved ahead of the real one.
    pub ahead: Duration,
    /// The runs whose ends are read each turn (until they ended), and
    /// their ends.
    pub watched: Vec<WorkflowId>,
    pub ends: BTreeMap<WorkflowId, RunEnd<Value>>,
    /// Each step an agent ran: (run, step key, compensation).
    pub executed: Vec<(u64, String, bool)>,
}

impl Hosted {
    /// Nodes named `nodes` and one agent that runs [`add_one`].
    pub fn new(conninfo: String, snapshot_every: u64, nodes: &[&str]) -> Self {
        let dispatcher = DispatcherConfig::builder()
            .heartbeats(ms(250), 8)
            .build()
            .unwrap();
        let client = PgStore::connect(&conninfo).unwrap_or_else(|e| panic!("connect: {e}"));
        let mut hosted = Hosted {
            dispatcher,
            snapshot_every,
            nodes: Vec::new(),
            agents: Vec::new(),
            work: add_one,
            client,
            conninfo,
            started: std::time::Instant::now(),
            ahead: Duration::ZERO,
            watched: Vec::new(),
            ends: BTreeMap::new(),
            executed: Vec::new(),
        };
        for name in nodes {
            hosted.join(name);
        }
        hosted.start_agent(1);
        hosted
    }

    pub fn now(&self) -> Instant {
        Instant::from_nanos((self.started.elapsed() + self.ahead).as_nanos() as u64)
    }

    pub fn conninfo(&self) -> &str {
        &self.conninfo
    }

    /// A new node joins.
    pub fn join(&mut self, name: &str) {
        let config = NodeConfig::builder(name)
            .lease(ms(600), ms(150))
            .snapshots(self.snapshot_every, true)
            .build()
            .unwrap();
        let node = Node::new(config, self.dispatcher.clone())
            .unwrap()
            .host_runs(json_run_codec());
        self.nodes.push((node, self.connect()));
    }

    /// Agent `id` starts (a new incarnation, if it ran before).
    pub fn start_agent(&mut self, id: u64) {
        let profile = AgentProfile::builder().capacity(4).build().unwrap();
        let session = SessionConfig::builder().build().unwrap();
        self.agents.push(Agent {
            id,
            session: AgentSession::new(AgentId::new(id), profile, session),
            store: self.connect(),
        });
    }

    /// Agent `id` dies with whatever it holds, and starts again.
    pub fn restart_agent(&mut self, id: u64) {
        self.agents.retain(|agent| agent.id != id);
        self.start_agent(id);
    }

    fn connect(&self) -> PgStore<Value> {
        PgStore::connect(&self.conninfo).unwrap_or_else(|e| panic!("connect: {e}"))
    }

    pub fn leader(&self) -> Option<&Node<Value>> {
        self.nodes
            .iter()
            .map(|(node, _)| node)
            .find(|node| matches!(node.role(), Role::Leading { .. }))
    }

    /// The leader's hosted runs.
    pub fn engine(&self) -> Option<&WorkflowEngine<Value>> {
        self.leader().and_then(Node::runs)
    }

    /// The leader dies; `successor` joins.
    pub fn kill_leader(&mut self, successor: &str) {
        let leading = self
            .nodes
            .iter()
            .position(|(node, _)| matches!(node.role(), Role::Leading { .. }))
            .expect("a leader to kill");
        self.nodes.remove(leading);
        self.join(successor);
    }

    /// The client dies; another one connects.
    pub fn restart_client(&mut self) {
        self.client = self.connect();
    }

    pub fn post(&mut self, commands: Vec<RunCommand<Value>>) -> Vec<MessageId> {
        let messages = commands.into_iter().map(Message::Run).collect();
        match self.client.client(ClientOp::Post(messages), self.now()) {
            Ok(ClientReply::Posted(ids)) => ids,
            other => panic!("post: {other:?}"),
        }
    }

    /// The verdicts of `posted`, once all are in.
    pub fn verdicts(&mut self, posted: &[MessageId]) -> Option<Vec<Verdict>> {
        match self
            .client
            .client(ClientOp::Verdicts(posted.to_vec()), self.now())
        {
            Ok(ClientReply::Verdicts(verdicts)) => verdicts.into_iter().collect(),
            _ => None,
        }
    }

    /// One turn of every role, then the ends of the watched runs not
    /// ended yet.
    pub fn turn(&mut self) {
        let now = self.now();
        for (node, store) in &mut self.nodes {
            drive!(node, store, node, now);
        }
        for agent in &mut self.agents {
            drive!(agent.session, agent.store, agent, now);
            while let Some(work) = agent.session.poll_work() {
                let step = &work.payload["workflow_step"];
                self.executed.push((
                    step["run"].as_u64().unwrap_or(0),
                    step["step"].as_str().unwrap_or("").to_string(),
                    step["compensation"].as_bool().unwrap_or(false),
                ));
                let _ = match (self.work)(&work.payload) {
                    Ok(output) => agent.session.complete(work.task, work.token, output),
                    Err(why) => {
                        agent
                            .session
                            .finish(work.task, work.token, AttemptOutcome::fatal(why))
                    }
                };
            }
            while agent.session.poll_cancelled().is_some() {}
        }
        let open: Vec<WorkflowId> = self
            .watched
            .iter()
            .filter(|run| !self.ends.contains_key(run))
            .copied()
            .collect();
        if !open.is_empty() {
            if let Ok(ClientReply::Runs(read)) = self.client.client(ClientOp::Runs(open), now) {
                for end in read.into_iter().flatten() {
                    self.ends.insert(end.run, end);
                }
            }
        }
        std::thread::sleep(ms(5));
    }

    /// Turns until `done`, for at most `limit` of real time.
    pub fn until(&mut self, what: &str, limit: Duration, done: impl Fn(&Self) -> bool) {
        let from = std::time::Instant::now();
        while !done(self) {
            assert!(from.elapsed() < limit, "not within {limit:?}: {what}");
            self.turn();
        }
    }

    /// Whether the leader holds `n` active runs.
    pub fn holds(&self, n: usize) -> bool {
        self.engine()
            .is_some_and(|engine| engine.active_runs() == n)
    }
}

/// What `taskweave-pg ARGS` prints, line by line, once it succeeded.
pub fn taskweave_pg(args: &[&str]) -> Vec<String> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_taskweave-pg"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("taskweave-pg {}: {e}", args[0]));
    printed(args, &out)
}

/// `taskweave-pg ARGS` run while the test's roles turn (a command that
/// waits for a verdict needs a leader): what it printed, once it exited
/// with success.
pub fn taskweave_pg_turning(hosted: &mut Hosted, args: &[&str]) -> Vec<String> {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_taskweave-pg"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("taskweave-pg {}: {e}", args[0]));
    while child.try_wait().expect("the command's status").is_none() {
        hosted.turn();
    }
    let out = child.wait_with_output().expect("the command's output");
    printed(args, &out)
}

/// The lines of what a command printed, once it succeeded.
fn printed(args: &[&str], out: &std::process::Output) -> Vec<String> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "taskweave-pg {}: {}\n{stdout}{}",
        args[0],
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.lines().map(str::to_string).collect()
}

/// `taskweave-pg audit` is clean and counts the runs it checked.
pub fn audit_is_clean(conninfo: &str) {
    let audit = taskweave_pg(&["audit", "--db", conninfo]);
    assert!(
        audit.iter().any(|line| line.starts_with("runs: ")),
        "{audit:?}"
    );
    assert!(
        audit
            .last()
            .is_some_and(|line| line.starts_with("audit: clean")),
        "{audit:?}"
    );
}
