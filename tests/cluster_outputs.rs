//! Outputs travel: an agent completes a task with an output, the leader
//! journals it with the report and publishes it beside the task's end, and
//! a client reads it back. An output over the cluster's limit fails its
//! task for good, naming the limit; an output from a fenced attempt goes
//! nowhere.

#![cfg(all(feature = "cluster", feature = "serde"))]

use std::time::Duration;

use taskweave::agent::AgentProfile;
use taskweave::cluster::{
    AgentOp, AgentReply, AgentSession, Auditor, ClientOp, ClientReply, Entry, MemStore, Message,
    Node, NodeConfig, NodeOp, NodeReply, Outcome, Sender, SessionConfig, Store, StoreFailure,
    TaskEnd,
};
use taskweave::scheduler::{DeadLetterReason, DispatcherConfig, TaskSpec};
use taskweave::{AgentId, Instant, TaskId};

/// The in-memory store, measuring each inbox message as the PostgreSQL
/// store does: the length of its stored JSON.
struct Measured(MemStore<String>);

impl Store<String> for Measured {
    fn node(
        &mut self,
        op: NodeOp<String>,
        now: Instant,
    ) -> Result<NodeReply<String>, StoreFailure> {
        match self.0.node(op, now)? {
            NodeReply::Inbox(mut messages) => {
                for message in &mut messages {
                    if let Ok(body) = &message.body {
                        message.bytes = serde_json::to_string(body).unwrap().len();
                    }
                }
                Ok(NodeReply::Inbox(messages))
            }
            reply => Ok(reply),
        }
    }

    fn agent(
        &mut self,
        op: AgentOp<String>,
        now: Instant,
    ) -> Result<AgentReply<String>, StoreFailure> {
        self.0.agent(op, now)
    }

    fn client(
        &mut self,
        op: ClientOp<String>,
        now: Instant,
    ) -> Result<ClientReply<String>, StoreFailure> {
        self.0.client(op, now)
    }
}

struct Cluster {
    store: Measured,
    node: Node<String>,
    agents: Vec<AgentSession<String>>,
    now: Instant,
}

impl Cluster {
    fn new(config: NodeConfig, agents: u64) -> Self {
        let dispatcher = DispatcherConfig::builder()
            .heartbeats(Duration::from_millis(250), 8)
            .build()
            .unwrap();
        let profile = AgentProfile::builder().capacity(2).build().unwrap();
        let session = SessionConfig::builder().build().unwrap();
        Cluster {
            store: Measured(MemStore::new()),
            node: Node::new(config, dispatcher).unwrap(),
            agents: (1..=agents)
                .map(|id| AgentSession::new(AgentId::new(id), profile.clone(), session.clone()))
                .collect(),
            now: Instant::from_secs(1),
        }
    }

    fn submit(&mut self, payload: &str) -> TaskId {
        let submit = Message::Submit(vec![TaskSpec::new(payload.to_string())]);
        let Ok(ClientReply::Posted(ids)) =
            self.store.client(ClientOp::Post(vec![submit]), self.now)
        else {
            panic!("the post was refused");
        };
        for _ in 0..1_000 {
            self.tick();
            let verdicts = self.store.client(ClientOp::Verdicts(ids.clone()), self.now);
            if let Ok(ClientReply::Verdicts(v)) = verdicts {
                if let Some(Some(taskweave::cluster::Verdict::Submitted(tasks))) = v.first() {
                    return *tasks[0].as_ref().unwrap();
                }
            }
        }
        panic!("no verdict in 1,000 ticks");
    }

    /// One millisecond of every role's work; the work the agents were
    /// handed, `(agent index, work)`.
    fn tick(&mut self) -> Vec<(usize, taskweave::cluster::Assignment<String>)> {
        self.now = self.now.saturating_add(Duration::from_millis(1));
        while let Some(op) = self.node.poll_op(self.now) {
            let reply = self.store.node(op, self.now);
            self.node.handle_reply(reply, self.now);
        }
        let mut handed = Vec::new();
        for (i, agent) in self.agents.iter_mut().enumerate() {
            while let Some(op) = agent.poll_op(self.now) {
                let reply = self.store.agent(op, self.now);
                agent.handle_reply(reply, self.now);
            }
            while let Some(work) = agent.poll_work() {
                handed.push((i, work));
            }
        }
        handed
    }

    /// Runs until the tasks ended; their outcomes.
    fn outcomes(&mut self, tasks: &[TaskId]) -> Vec<Outcome<String>> {
        for _ in 0..10_000 {
            self.tick();
            let read = self
                .store
                .client(ClientOp::Outcomes(tasks.to_vec()), self.now);
            if let Ok(ClientReply::Outcomes(outcomes)) = read {
                if outcomes.iter().all(Option::is_some) {
                    return outcomes.into_iter().flatten().collect();
                }
            }
        }
        panic!("the tasks did not end in 10 s");
    }

    /// The journal replays clean.
    fn audit(&self) {
        let mut auditor = Auditor::new(
            DispatcherConfig::builder()
                .heartbeats(Duration::from_millis(250), 8)
                .build()
                .unwrap(),
        );
        for row in self.store.0.journal() {
            auditor.apply(row);
        }
        let report = auditor.report();
        assert!(report.is_clean(), "{:?}", report.violations);
    }
}

fn node_config() -> taskweave::cluster::NodeConfigBuilder {
    NodeConfig::builder("node-1")
}

#[test]
fn a_completed_task_is_read_back_with_its_output_and_a_plain_success_without() {
    let mut cluster = Cluster::new(node_config().build().unwrap(), 1);
    let with = cluster.submit("with");
    let without = cluster.submit("without");
    let mut done = 0;
    while done < 2 {
        for (i, work) in cluster.tick() {
            let agent = &mut cluster.agents[i];
            if work.payload == "with" {
                assert!(agent.complete(work.task, work.token, "the result".into()));
            } else {
                assert!(agent.finish(
                    work.task,
                    work.token,
                    taskweave::scheduler::AttemptOutcome::Success
                ));
            }
            done += 1;
        }
    }
    let outcomes = cluster.outcomes(&[with, without]);
    assert_eq!(
        outcomes,
        [
            Outcome {
                end: TaskEnd::Completed,
                output: Some("the result".into()),
            },
            Outcome {
                end: TaskEnd::Completed,
                output: None,
            },
        ]
    );
    assert!(
        cluster
            .store
            .0
            .journal()
            .any(|row| matches!(row.entry, Entry::Completed { .. })),
        "the output is journaled with its report"
    );
    cluster.audit();
}

#[test]
fn an_output_over_the_limit_fails_its_task_for_good_naming_the_limit() {
    let config = node_config().max_output_bytes(100).build().unwrap();
    let mut cluster = Cluster::new(config, 1);
    let task = cluster.submit("big");
    let mut attempts = 0;
    let mut outcome = None;
    while outcome.is_none() {
        for (i, work) in cluster.tick() {
            attempts += 1;
            let big = "x".repeat(200);
            assert!(cluster.agents[i].complete(work.task, work.token, big));
        }
        let read = cluster
            .store
            .client(ClientOp::Outcomes(vec![task]), cluster.now);
        if let Ok(ClientReply::Outcomes(mut o)) = read {
            outcome = o.pop().flatten();
        }
    }
    assert_eq!(attempts, 1, "an output over the limit is not retried");
    let Some(Outcome {
        end: TaskEnd::DeadLettered(DeadLetterReason::NonRetryable { reason }),
        output: None,
    }) = outcome
    else {
        panic!("the task must fail for good: {outcome:?}");
    };
    assert!(
        reason.contains("over the cluster's output limit of 100 ") && reason.contains("reference"),
        "{reason}"
    );
    cluster.audit();
}

#[test]
fn an_output_from_an_attempt_that_is_not_the_current_one_goes_nowhere() {
    let mut cluster = Cluster::new(node_config().build().unwrap(), 2);
    let task = cluster.submit("contested");
    let (holder, work) = loop {
        if let Some(handed) = cluster.tick().pop() {
            break handed;
        }
    };
    // The other agent completes the holder's attempt: the report is
    // refused (not its attempt), its output is not published.
    let other = AgentId::new(if holder == 0 { 2 } else { 1 });
    let forged = AgentOp::Post {
        sender: Sender::Agent {
            agent: other,
            incarnation: 0,
        },
        messages: vec![Message::Completed {
            task,
            token: work.token,
            output: "forged".into(),
        }],
    };
    cluster.store.agent(forged, cluster.now).unwrap();
    for _ in 0..50 {
        cluster.tick();
    }
    let read = cluster
        .store
        .client(ClientOp::Outcomes(vec![task]), cluster.now);
    assert!(
        matches!(&read, Ok(ClientReply::Outcomes(o)) if o[..] == [None]),
        "a refused completion ends nothing: {read:?}"
    );
    assert!(cluster.agents[holder].complete(task, work.token, "genuine".into()));
    let outcomes = cluster.outcomes(&[task]);
    assert_eq!(outcomes[0].output.as_deref(), Some("genuine"));
    cluster.audit();
}

#[test]
fn an_output_limit_of_zero_or_over_sixteen_mib_is_refused() {
    for bytes in [0, NodeConfig::MAX_OUTPUT_LIMIT + 1, usize::MAX] {
        let error = node_config().max_output_bytes(bytes).build().unwrap_err();
        assert!(error.to_string().contains("output limit"), "{error}");
    }
    let most = node_config()
        .max_output_bytes(NodeConfig::MAX_OUTPUT_LIMIT)
        .build()
        .unwrap();
    assert_eq!(most.max_output_bytes(), NodeConfig::MAX_OUTPUT_LIMIT);
    assert_eq!(node_config().build().unwrap().max_output_bytes(), 1 << 20);
}

/// A cluster's payload for workflow steps: the step to run (with the sum
/// of its predecessors' outputs, once the client wrote it), or a step's
/// result.
#[cfg(feature = "workflow")]
#[derive(Clone, Debug, PartialEq)]
enum StepPayload {
    Run(taskweave::workflow::StepTask),
    RunWith(taskweave::workflow::StepTask, u32),
    Result(u32),
}

#[cfg(feature = "workflow")]
impl From<taskweave::workflow::StepTask> for StepPayload {
    fn from(step: taskweave::workflow::StepTask) -> Self {
        StepPayload::Run(step)
    }
}

/// How a run on the cluster ended: its outcome and output, the step
/// outputs seen while it ran, and how many times each step ran.
#[cfg(feature = "workflow")]
type RunEnd = (
    taskweave::workflow::RunOutcome,
    Option<u32>,
    Vec<(String, u32)>,
    std::collections::BTreeMap<String, u32>,
);

/// Runs a two-step workflow (`reserve` then `charge`, the output step,
/// each allowed `attempts` by its own policy) on a cluster whose
/// dispatcher would try every task five times, and whose agent answers
/// each step with `answer(step, the sum of its inputs)` (a result, or a
/// failure); the run's end, the outputs seen while it ran, and how many
/// times each step ran.
#[cfg(feature = "workflow")]
fn run_on_cluster(attempts: u32, answer: fn(&str, u32) -> Result<StepPayload, String>) -> RunEnd {
    use std::sync::Arc;
    use taskweave::cluster::WorkflowClient;
    use taskweave::resilience::Fixed;
    use taskweave::scheduler::AttemptOutcome;
    use taskweave::workflow::{EngineAction, StepDef, WorkflowDef};

    let retry = Fixed::new(Duration::from_millis(1), attempts).unwrap();
    let step = |key: &str| StepDef::agent(key).retry(retry);
    let def = Arc::new(
        WorkflowDef::builder("order", 1)
            .step(step("reserve"))
            .step(step("charge"))
            .edge("reserve", "charge")
            .output("charge")
            .build()
            .unwrap(),
    );
    let dispatcher = DispatcherConfig::builder()
        .heartbeats(Duration::from_millis(250), 8)
        .retry_policy(Fixed::new(Duration::ZERO, 5).unwrap())
        .build()
        .unwrap();
    let mut store: MemStore<StepPayload> = MemStore::new();
    let mut node = Node::new(node_config().build().unwrap(), dispatcher).unwrap();
    let profile = AgentProfile::builder().capacity(4).build().unwrap();
    let config = SessionConfig::builder().build().unwrap();
    let mut agent = AgentSession::new(AgentId::new(1), profile, config);
    let mut client: WorkflowClient<StepPayload, u32> =
        WorkflowClient::new("shop-1", Duration::from_millis(5))
            .with_outputs(|payload| match payload {
                StepPayload::Result(n) => Ok(n),
                _ => Err("a step task is not a result".into()),
            })
            .with_inputs(|step, input| {
                StepPayload::RunWith(step, input.inputs.iter().map(|(_, n)| n).sum())
            });
    let mut now = Instant::from_secs(1);
    let (engine, pool) = client.parts();
    let run = engine.start(pool, Arc::clone(&def), None, now);
    let (mut outputs, mut runs) = (Vec::new(), std::collections::BTreeMap::new());
    for _ in 0..20_000 {
        now = now.saturating_add(Duration::from_millis(1));
        while let Some(op) = client.poll_op(now) {
            let reply = store.client(op, now);
            client.handle_reply(reply, now);
        }
        client.handle_timeout(now);
        while let Some(op) = node.poll_op(now) {
            let reply = store.node(op, now);
            node.handle_reply(reply, now);
        }
        while let Some(op) = agent.poll_op(now) {
            let reply = store.agent(op, now);
            agent.handle_reply(reply, now);
        }
        while let Some(work) = agent.poll_work() {
            let StepPayload::RunWith(step, input) = &work.payload else {
                panic!("a step's task carries its step and its input");
            };
            let name = def.step(step.step).unwrap().id.clone();
            *runs.entry(name.clone()).or_default() += 1;
            match answer(&name, *input) {
                Ok(output) => agent.complete(work.task, work.token, output),
                Err(why) => agent.finish(work.task, work.token, AttemptOutcome::failure(why)),
            };
        }
        let (engine, _) = client.parts();
        for key in ["reserve", "charge"] {
            let step = def.step_id(key).unwrap();
            if let Some(&n) = engine.run(run).and_then(|r| r.step_output(step)) {
                if !outputs.contains(&(key.to_string(), n)) {
                    outputs.push((key.to_string(), n));
                }
            }
        }
        while let Some(action) = engine.poll_action() {
            if let EngineAction::Finished {
                outcome, output, ..
            } = action
            {
                return (outcome, output, outputs, runs);
            }
        }
    }
    panic!("the run did not end in 20 s");
}

#[cfg(feature = "workflow")]
#[test]
fn step_outputs_travel_to_the_next_steps_agent_and_to_the_runs_output() {
    use taskweave::workflow::RunOutcome;
    // `charge` adds 2 to what it receives: `reserve`'s output, carried to
    // its agent in the task's payload.
    let answer = |step: &str, input: u32| {
        Ok(StepPayload::Result(if step == "reserve" {
            5
        } else {
            input + 2
        }))
    };
    let (outcome, output, outputs, _) = run_on_cluster(1, answer);
    assert_eq!(outcome, RunOutcome::Succeeded);
    assert_eq!(output, Some(7), "the run's output is its output step's");
    // The run ends in the tick its last step completes: `reserve`'s output
    // was seen while it ran, `charge`'s is the run's output.
    assert_eq!(outputs, [("reserve".to_string(), 5)]);
}

#[cfg(feature = "workflow")]
#[test]
fn an_output_the_client_cannot_read_fails_its_step_with_the_reason() {
    use taskweave::workflow::{FailureCause, RunOutcome, StepTask};
    let answer = |_: &str, _: u32| {
        Ok(StepPayload::Run(StepTask {
            run: taskweave::WorkflowId::new(0),
            step: taskweave::StepId::new(0),
            token: taskweave::AttemptToken::new(0),
            compensation: false,
        }))
    };
    let (outcome, output, outputs, _) = run_on_cluster(1, answer);
    let RunOutcome::Failed(FailureCause::StepFailed { reason, .. }) = outcome else {
        panic!("the run must fail: {outcome:?}");
    };
    assert!(reason.contains("a step task is not a result"), "{reason}");
    assert_eq!((output, outputs), (None, vec![]));
}

/// One retry policy: a step allowed 3 attempts by its own policy runs at
/// most 3 times, on a cluster whose dispatcher would try each task 5 times
/// (before, each of the step's attempts was a task the cluster retried:
/// up to 15 runs).
#[cfg(feature = "workflow")]
#[test]
fn a_step_allowed_three_attempts_runs_at_most_three_times() {
    use taskweave::workflow::{FailureCause, RunOutcome};
    let answer = |_: &str, _: u32| Err("the card was declined".to_string());
    let (outcome, _, _, runs) = run_on_cluster(3, answer);
    assert!(
        matches!(&outcome, RunOutcome::Failed(FailureCause::StepFailed { reason, .. })
            if reason.contains("declined")),
        "{outcome:?}"
    );
    assert_eq!(runs.get("reserve"), Some(&3), "{runs:?}");
    assert_eq!(runs.get("charge"), None, "{runs:?}");
}
