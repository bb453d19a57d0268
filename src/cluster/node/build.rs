//! What a node is built with beyond its configuration: the authorizer it
//! asks about every message, and the workflow runs it hosts.

use super::super::authorizer::Authorizer;
use super::super::runs::RunCodec;
use super::Node;
use super::replica::Replica;

impl<P: Clone> Node<P> {
    /// Asks `authorizer` about every inbox message the roles allow
    /// ([`Action::allowed_to`](crate::cluster::Action::allowed_to)) before it
    /// changes anything; a refused message is answered with
    /// [`Verdict::Refused`](crate::cluster::Verdict::Refused), naming the
    /// [`Denied`](crate::cluster::Denied) reason, and changes nothing else. The
    /// default, [`AllowRoles`](crate::cluster::AllowRoles), allows what the roles allow.
    ///
    /// ```
    /// use taskweave::cluster::{Denied, Message, Node, NodeConfig, Request};
    /// use taskweave::scheduler::DispatcherConfig;
    ///
    /// let dispatcher = DispatcherConfig::builder()
    ///     .heartbeats(std::time::Duration::from_millis(250), 8)
    ///     .build()?;
    /// // No drains on this cluster: an operator stops it by other means.
    /// let node = Node::<String>::new(NodeConfig::builder("node-1").build()?, dispatcher)?
    ///     .authorize_with(|request: &Request<'_, String>| match request.message {
    ///         Message::Drain => Err(Denied("this cluster is never drained".into())),
    ///         _ => Ok(()),
    ///     });
    /// # drop(node);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn authorize_with(mut self, authorizer: impl Authorizer<P> + Send + 'static) -> Self {
        self.authorizer = Box::new(authorizer);
        self
    }

    /// Hosts workflow runs beside the tasks: clients register
    /// definitions and start, signal and cancel runs with
    /// [`Message::Run`](crate::cluster::Message::Run), each command journaled
    /// before it is acted on; a step's task carries the payload `codec`
    /// writes, and its agent's output completes the step. Every node of a
    /// cluster must host runs with the same codec, or none: a snapshot
    /// with runs does not restore on a node without.
    ///
    /// A drain waits for the runs too: the cluster stops once no task is
    /// live and no run is active.
    ///
    /// A run a tenant's client starts ([`Sender::Tenant`](crate::cluster::Sender::Tenant))
    /// is the tenant's: only its clients signal, cancel or read it (its
    /// end and its steps' outcomes), its id is taken for everyone else,
    /// and [`TenantQuota::live_runs`](crate::scheduler::TenantQuota::live_runs)
    /// bounds how many it holds. Workflows and schedules are defined by
    /// clients of no tenant.
    ///
    /// A host's path: define, register, start, read the result.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskweave::agent::AgentProfile;
    /// use taskweave::cluster::{
    ///     AgentSession, ClientOp, ClientReply, MemStore, Message, Node, NodeConfig, RunCodec,
    ///     RunCommand, SessionConfig, Store,
    /// };
    /// use taskweave::scheduler::DispatcherConfig;
    /// use taskweave::workflow::{RunOutcome, StepDef, WorkflowDef};
    /// use taskweave::{AgentId, Instant, WorkflowId};
    ///
    /// // The payload: a step's task names its step and carries the number
    /// // it takes (the run's input, or the step before's output); an
    /// // output or a run's input is a number.
    /// #[derive(Clone, Debug, PartialEq)]
    /// enum Job {
    ///     Step { key: String, input: i64 },
    ///     Number(i64),
    /// }
    /// let codec = RunCodec::new(Job::Number(0), |def, step, input| {
    ///     let key = def.step(step.step).map_or(String::new(), |s| s.id.clone());
    ///     let given = input.run_input.iter().chain(input.inputs.iter().map(|(_, out)| out));
    ///     let input = given.map(|job| match job { Job::Number(n) => *n, _ => 0 }).sum();
    ///     Job::Step { key, input }
    /// });
    /// let def = WorkflowDef::builder("double-then-add", 1)
    ///     .step(StepDef::agent("double"))
    ///     .step(StepDef::agent("add"))
    ///     .chain(["double", "add"])
    ///     .output("add")
    ///     .build()?;
    ///
    /// let dispatcher = DispatcherConfig::builder().heartbeats(Duration::from_millis(250), 8).build()?;
    /// let mut node = Node::new(NodeConfig::builder("node-1").build()?, dispatcher)?.host_runs(codec);
    /// let profile = AgentProfile::builder().capacity(2).build()?;
    /// let mut agent = AgentSession::new(AgentId::new(1), profile, SessionConfig::builder().build()?);
    /// let mut store: MemStore<Job> = MemStore::new();
    /// let mut now = Instant::from_secs(1);
    /// let run = WorkflowId::new(1);
    /// let start = RunCommand::Start {
    ///     workflow: "double-then-add".into(),
    ///     version: None,
    ///     id: Some(run),
    ///     input: Some(Job::Number(20)),
    /// };
    /// let register = RunCommand::Register(Box::new(def));
    /// let messages = vec![Message::Run(register), Message::Run(start)];
    /// store.client(ClientOp::Post(messages), now)?;
    ///
    /// let mut end = None;
    /// while end.is_none() && now < Instant::from_secs(60) {
    ///     now = now.saturating_add(Duration::from_millis(1));
    ///     while let Some(op) = node.poll_op(now) {
    ///         let reply = store.node(op, now);
    ///         node.handle_reply(reply, now);
    ///     }
    ///     while let Some(op) = agent.poll_op(now) {
    ///         let reply = store.agent(op, now);
    ///         agent.handle_reply(reply, now);
    ///     }
    ///     while let Some(work) = agent.poll_work() {
    ///         let output = match work.payload {
    ///             Job::Step { key, input } if key == "double" => input * 2,
    ///             Job::Step { input, .. } => input + 2,
    ///             Job::Number(_) => unreachable!("only steps run here"),
    ///         };
    ///         agent.complete(work.task, work.token, Job::Number(output));
    ///     }
    ///     if let Ok(ClientReply::Runs(ends)) = store.client(ClientOp::Runs(vec![run]), now) {
    ///         end = ends.into_iter().next().flatten();
    ///     }
    /// }
    /// let end = end.expect("the run ended");
    /// assert_eq!(end.outcome, RunOutcome::Succeeded);
    /// assert_eq!(end.output, Some(Job::Number(42)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn host_runs(mut self, codec: RunCodec<P>) -> Self {
        self.replica = Replica::empty(self.dispatcher_config.clone(), Some(codec.clone()));
        self.codec = Some(codec);
        self.replica.watch(&self.config.pools);
        self
    }
}
