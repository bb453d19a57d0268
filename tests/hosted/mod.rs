//! A cluster that hosts runs, in memory: nodes, one agent that runs each
//! step's task with a given function, and the runs' ends as a client
//! reads them. Shared by the tests of hosted runs and schedules.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use taskweave::agent::AgentProfile;
use taskweave::cluster::{
    AgentSession, Assignment, ClientOp, ClientReply, MemStore, Message, Node, NodeConfig, RunCodec,
    RunCommand, RunEnd, ScheduleCommand, ScheduledStart, SessionConfig, Store, Verdict,
};
use taskweave::schedule::ScheduleSpec;
use taskweave::scheduler::{AttemptOutcome, DispatcherConfig, TenantQuota};
use taskweave::workflow::{StepDef, StepInput, StepTask, WorkflowDef, WorkflowDefBuilder};
use taskweave::{AgentId, Instant, TaskId, TenantId, WorkflowId};

/// The cluster's payload: a step's task with the numbers it takes, or a
/// number (a run's input, a step's output, a signal's payload).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum Job {
    Step { step: StepTask, inputs: Vec<i64> },
    Number(i64),
}

pub(crate) fn number(job: &Job) -> i64 {
    match job {
        Job::Number(n) => *n,
        Job::Step { .. } => panic!("a step's task where a number belongs"),
    }
}

pub(crate) fn codec() -> RunCodec<Job> {
    RunCodec::new(
        Job::Number(0),
        |_, step: StepTask, input: StepInput<Job>| Job::Step {
            step,
            inputs: input
                .run_input
                .iter()
                .chain(input.inputs.iter().map(|(_, output)| output))
                .map(number)
                .collect(),
        },
    )
}

/// The tenant the tests of tenants' runs hold to [`ACME_LIVE_RUNS`].
pub(crate) const ACME: TenantId = TenantId::new(1);
pub(crate) const ACME_LIVE_RUNS: u32 = 2;

pub(crate) fn dispatcher() -> DispatcherConfig {
    DispatcherConfig::builder()
        .heartbeats(Duration::from_millis(250), 8)
        .seed(7)
        .build()
        .unwrap()
}

/// [`dispatcher`], with [`ACME`] held to [`ACME_LIVE_RUNS`].
pub(crate) fn quota_dispatcher() -> DispatcherConfig {
    DispatcherConfig::builder()
        .heartbeats(Duration::from_millis(250), 8)
        .tenant_quota(ACME, TenantQuota::new().live_runs(ACME_LIVE_RUNS))
        .seed(7)
        .build()
        .unwrap()
}

/// What an agent does with a step's task.
pub(crate) type Work = fn(&StepTask, &[i64]) -> Result<i64, String>;

pub(crate) struct Cluster {
    /// Every node's dispatcher configuration.
    pub(crate) dispatcher: DispatcherConfig,
    pub(crate) store: MemStore<Job>,
    /// `None`: killed.
    pub(crate) nodes: Vec<Option<Node<Job>>>,
    pub(crate) agent: AgentSession<Job>,
    pub(crate) now: Instant,
    /// Every attempt an agent ran, per (run, step id).
    pub(crate) executed: BTreeMap<(WorkflowId, u64), u32>,
    /// The runs' ends, read every tick (a store forgets an end once the
    /// engine forgot its run and a snapshot trimmed its entry).
    pub(crate) ends: BTreeMap<WorkflowId, RunEnd<Job>>,
    /// The runs whose ends are read.
    pub(crate) watched: Vec<WorkflowId>,
    /// The tenant whose client posted each message of a tenant's.
    pub(crate) posters: BTreeMap<u64, TenantId>,
    /// The tasks each run's steps ran as.
    pub(crate) step_tasks: BTreeMap<WorkflowId, Vec<TaskId>>,
}

impl Cluster {
    pub(crate) fn new(nodes: usize) -> Self {
        Self::snapshotting(nodes, 8, true)
    }

    pub(crate) fn snapshotting(nodes: usize, every: u64, trim: bool) -> Self {
        Self::configured(nodes, every, trim, dispatcher())
    }

    /// [`snapshotting`](Self::snapshotting), every node's dispatcher
    /// configured with `dispatcher`.
    pub(crate) fn configured(
        nodes: usize,
        every: u64,
        trim: bool,
        dispatcher: DispatcherConfig,
    ) -> Self {
        let config = |i: usize| node_config(&format!("node-{i}"), every, trim);
        let profile = AgentProfile::builder().capacity(4).build().unwrap();
        Cluster {
            store: MemStore::new(),
            nodes: (0..nodes)
                .map(|i| {
                    Some(
                        Node::new(config(i), dispatcher.clone())
                            .unwrap()
                            .host_runs(codec()),
                    )
                })
                .collect(),
            agent: AgentSession::new(
                AgentId::new(1),
                profile,
                SessionConfig::builder().build().unwrap(),
            ),
            dispatcher,
            now: Instant::from_secs(1),
            executed: BTreeMap::new(),
            ends: BTreeMap::new(),
            watched: Vec::new(),
            posters: BTreeMap::new(),
            step_tasks: BTreeMap::new(),
        }
    }

    pub(crate) fn post(&mut self, command: RunCommand<Job>) -> u64 {
        self.post_as(None, command)
    }

    /// Posts `command` as `tenant`'s client, or as a client of no tenant.
    pub(crate) fn post_as(&mut self, tenant: Option<TenantId>, command: RunCommand<Job>) -> u64 {
        let id = match self.client_as(tenant, ClientOp::Post(vec![Message::Run(command)])) {
            ClientReply::Posted(ids) => ids[0],
            other => panic!("the post was refused: {other:?}"),
        };
        if let Some(tenant) = tenant {
            self.posters.insert(id, tenant);
        }
        id
    }

    /// A client's operation as `tenant`'s client, or as one of no tenant.
    pub(crate) fn client_as(
        &mut self,
        tenant: Option<TenantId>,
        op: ClientOp<Job>,
    ) -> ClientReply<Job> {
        let reply = match tenant {
            Some(tenant) => self.store.tenant_client(tenant, op, self.now),
            None => self.store.client(op, self.now),
        };
        reply.expect("the store answers")
    }

    /// `run`'s end as `tenant`'s client reads it.
    pub(crate) fn end_as(
        &mut self,
        tenant: Option<TenantId>,
        run: WorkflowId,
    ) -> Option<RunEnd<Job>> {
        match self.client_as(tenant, ClientOp::Runs(vec![run])) {
            ClientReply::Runs(ends) => ends.into_iter().next().flatten(),
            other => panic!("the store answered {other:?}"),
        }
    }

    /// Ticks until the message has a verdict.
    pub(crate) fn verdict(&mut self, message: u64, work: Work) -> Verdict {
        for _ in 0..5_000 {
            self.tick(work);
            let poster = self.posters.get(&message).copied();
            if let ClientReply::Verdicts(v) =
                self.client_as(poster, ClientOp::Verdicts(vec![message]))
            {
                if let Some(Some(verdict)) = v.into_iter().next() {
                    return verdict;
                }
            }
        }
        panic!("no verdict in 5,000 ticks");
    }

    pub(crate) fn run_end(&mut self, run: WorkflowId) -> Option<RunEnd<Job>> {
        if !self.watched.contains(&run) {
            self.watched.push(run);
            self.read_ends();
        }
        self.ends.get(&run).cloned()
    }

    pub(crate) fn read_ends(&mut self) {
        match self
            .store
            .client(ClientOp::Runs(self.watched.clone()), self.now)
        {
            Ok(ClientReply::Runs(ends)) => {
                for end in ends.into_iter().flatten() {
                    let first = self.ends.insert(end.run, end.clone());
                    assert!(
                        first.is_none_or(|was| was == end),
                        "run {} ended twice",
                        end.run
                    );
                }
            }
            other => panic!("the store answered {other:?}"),
        }
    }

    /// Ticks until the run ended.
    pub(crate) fn wait_end(&mut self, run: WorkflowId, work: Work) -> RunEnd<Job> {
        for _ in 0..20_000 {
            self.tick(work);
            if let Some(end) = self.run_end(run) {
                return end;
            }
        }
        let roles: Vec<_> = self
            .nodes
            .iter()
            .flatten()
            .map(|n| (n.role(), n.applied()))
            .collect();
        let mut events = Vec::new();
        for node in self.nodes.iter_mut().flatten() {
            events.extend(std::iter::from_fn(|| node.poll_event()).map(|e| e.to_string()));
        }
        panic!("run {run} did not end in 20,000 ticks: {roles:?}, events {events:?}");
    }

    /// One millisecond of every live role's work.
    pub(crate) fn tick(&mut self, work: Work) {
        self.now = self.now.saturating_add(Duration::from_millis(1));
        for node in self.nodes.iter_mut().flatten() {
            while let Some(op) = node.poll_op(self.now) {
                let reply = self.store.node(op, self.now);
                node.handle_reply(reply, self.now);
            }
        }
        while let Some(op) = self.agent.poll_op(self.now) {
            let reply = self.store.agent(op, self.now);
            self.agent.handle_reply(reply, self.now);
        }
        self.read_ends();
        let handed: Vec<Assignment<Job>> = std::iter::from_fn(|| self.agent.poll_work()).collect();
        for assignment in handed {
            let Job::Step { step, inputs } = &assignment.payload else {
                panic!("a plain task on a cluster that runs only steps");
            };
            *self
                .executed
                .entry((step.run, step.step.get()))
                .or_default() += 1;
            let tasks = self.step_tasks.entry(step.run).or_default();
            if !tasks.contains(&assignment.task) {
                tasks.push(assignment.task);
            }
            match work(step, inputs) {
                Ok(output) => {
                    let _ =
                        self.agent
                            .complete(assignment.task, assignment.token, Job::Number(output));
                }
                Err(why) => {
                    let _ = self.agent.finish(
                        assignment.task,
                        assignment.token,
                        AttemptOutcome::failure(why),
                    );
                }
            }
        }
    }

    /// A new node named `name` joins, snapshotting every 8 entries; it
    /// restores from the latest snapshot.
    pub(crate) fn join(&mut self, name: &str) {
        let node = Node::new(node_config(name, 8, true), self.dispatcher.clone()).unwrap();
        self.nodes.push(Some(node.host_runs(codec())));
    }

    /// Whether node `i` says it restored a snapshot (its events since
    /// the last read).
    pub(crate) fn restored_a_snapshot(&mut self, i: usize) -> bool {
        let node = self.nodes[i].as_mut().expect("a live node");
        let events: Vec<String> = std::iter::from_fn(|| node.poll_event())
            .map(|event| event.to_string())
            .collect();
        events
            .iter()
            .any(|event| event.starts_with("restored the snapshot"))
    }

    pub(crate) fn leader(&self) -> Option<usize> {
        self.nodes.iter().position(|n| {
            n.as_ref()
                .is_some_and(|n| matches!(n.role(), taskweave::cluster::Role::Leading { .. }))
        })
    }
}

fn node_config(name: &str, every: u64, trim: bool) -> NodeConfig {
    NodeConfig::builder(name)
        .lease(Duration::from_millis(300), Duration::from_millis(100))
        .snapshots(every, trim)
        .build()
        .unwrap()
}

pub(crate) fn register(builder: WorkflowDefBuilder) -> RunCommand<Job> {
    RunCommand::Register(Box::new(builder.build().unwrap()))
}

pub(crate) fn start(workflow: &str, id: u64, input: i64) -> RunCommand<Job> {
    RunCommand::Start {
        workflow: workflow.into(),
        version: None,
        id: Some(WorkflowId::new(id)),
        input: Some(Job::Number(input)),
    }
}

pub(crate) fn schedule(command: ScheduleCommand<Job>) -> RunCommand<Job> {
    RunCommand::Schedule(command)
}

/// Adds schedule `id`, every `secs` seconds, skipping a fire while its
/// run goes: each fire starts `workflow` with `input`.
pub(crate) fn every(id: &str, secs: u64, workflow: &str, input: i64) -> RunCommand<Job> {
    let spec = ScheduleSpec::every(Duration::from_secs(secs))
        .build()
        .unwrap();
    schedule(ScheduleCommand::Add {
        id: id.into(),
        spec,
        start: ScheduledStart {
            workflow: workflow.into(),
            version: None,
            input: Some(Job::Number(input)),
        },
    })
}

/// Each step adds one to the sum of what it takes.
pub(crate) fn add_one(_: &StepTask, inputs: &[i64]) -> Result<i64, String> {
    Ok(inputs.iter().sum::<i64>() + 1)
}

pub(crate) fn chain() -> WorkflowDefBuilder {
    WorkflowDef::builder("chain", 1)
        .step(StepDef::agent("a").compensable())
        .step(StepDef::agent("b"))
        .step(StepDef::agent("c"))
        .chain(["a", "b", "c"])
        .output("c")
}

/// A run that waits for the signal `approve`, then ships.
pub(crate) fn approval() -> WorkflowDefBuilder {
    WorkflowDef::builder("approval", 1)
        .step(StepDef::wait("approved", ["approve"]))
        .step(StepDef::agent("ship"))
        .edge("approved", "ship")
        .output("ship")
}
