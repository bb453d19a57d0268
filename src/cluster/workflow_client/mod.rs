//! [`WorkflowClient`]: a workflow engine whose agent steps run as tasks of
//! a cluster (features `cluster` and `workflow`).

mod pool;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use super::config::Backoff;
use super::contract::{ClientOp, ClientReply, MessageId, Outcome, StoreFailure, TaskEnd};
use crate::scheduler::{Action, DeadLetterReason};
use crate::workflow::{StepFailure, StepInput, StepOutput, StepTask, WorkflowEngine};
use crate::{AgentId, AttemptToken, Instant, TaskId};
pub use pool::ClusterPool;
use pool::Posting;

/// The longest pause after failures, unless the poll period is longer.
const MAX_PAUSE: Duration = Duration::from_secs(2);

/// A sans-IO client role that runs workflows on a cluster: it owns a
/// [`WorkflowEngine`] and lends it a [`ClusterPool`], so each agent step
/// is posted as a task, and each task's end, read back from the store
/// ([`ClientOp::Outcomes`]), completes or fails its step. The engine's
/// sagas, retries, timeouts and branches work as on one process; the
/// cluster's leader, standbys and agents run the steps, with failover.
///
/// The host's loop is the same as for the other roles: execute each
/// [`poll_op`](Self::poll_op) on the store and hand the answer to
/// [`handle_reply`](Self::handle_reply) (a lost answer as
/// [`StoreFailure::Unknown`]); wake it at
/// [`poll_timeout`](Self::poll_timeout) with
/// [`handle_timeout`](Self::handle_timeout); and carry out the engine's
/// actions ([`EngineAction::RunLocal`](crate::workflow::EngineAction),
/// `Finished`, …) through [`parts`](Self::parts).
///
/// Outputs travel: with [`with_inputs`](Self::with_inputs) an agent step's
/// task carries the step's input (its predecessors' outputs), and with
/// [`with_outputs`](Self::with_outputs) the output its agent completed
/// with ([`AgentSession::complete`](super::AgentSession::complete))
/// becomes the step's; without them a step completes with `O::default()`.
/// The runs live in this client's process: a client that restarts
/// resumes them from the runs'
/// [checkpoints](crate::workflow::WorkflowRun::checkpoint) the host kept
/// ([`WorkflowEngine::resume`]). Tasks end once (the cluster's guarantee), and the store
/// forgets an end when it trims the journal, so the client must read more
/// often than the leader snapshots ([`ClientOp::Outcomes`]).
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use taskweave::agent::AgentProfile;
/// use taskweave::cluster::{AgentSession, MemStore, Node, NodeConfig, SessionConfig, Store, WorkflowClient};
/// use taskweave::scheduler::{AttemptOutcome, DispatcherConfig};
/// use taskweave::workflow::{EngineAction, RunOutcome, StepDef, StepTask, WorkflowDef};
/// use taskweave::{AgentId, Instant};
///
/// let def = Arc::new(
///     WorkflowDef::builder("order", 1)
///         .step(StepDef::agent("reserve").compensable())
///         .step(StepDef::agent("charge"))
///         .edge("reserve", "charge")
///         .build()?,
/// );
/// let mut store: MemStore<StepTask> = MemStore::new();
/// let dispatcher = DispatcherConfig::builder().heartbeats(Duration::from_millis(250), 8).build()?;
/// let mut node = Node::new(NodeConfig::builder("node-1").build()?, dispatcher)?;
/// let profile = AgentProfile::builder().capacity(4).build()?;
/// let mut agent = AgentSession::new(AgentId::new(1), profile, SessionConfig::builder().build()?);
/// let mut client: WorkflowClient<StepTask, ()> = WorkflowClient::new("shop-1", Duration::from_millis(20));
/// let mut now = Instant::from_secs(1);
/// let (engine, pool) = client.parts();
/// let run = engine.start(pool, def, None, now);
///
/// let mut outcome = None;
/// while outcome.is_none() && now < Instant::from_secs(60) {
///     now = now.saturating_add(Duration::from_millis(5));
///     while let Some(op) = client.poll_op(now) {
///         let reply = store.client(op, now);
///         client.handle_reply(reply, now);
///     }
///     client.handle_timeout(now);
///     while let Some(op) = node.poll_op(now) {
///         let reply = store.node(op, now);
///         node.handle_reply(reply, now);
///     }
///     while let Some(op) = agent.poll_op(now) {
///         let reply = store.agent(op, now);
///         agent.handle_reply(reply, now);
///     }
///     while let Some(work) = agent.poll_work() {
///         // The step's run and step are in the payload.
///         assert_eq!(work.payload.run, run);
///         agent.finish(work.task, work.token, AttemptOutcome::Success);
///     }
///     while let Some(action) = client.parts().0.poll_action() {
///         if let EngineAction::Finished { outcome: ended, .. } = action {
///             outcome = Some(ended);
///         }
///     }
/// }
/// assert_eq!(outcome, Some(RunOutcome::Succeeded));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct WorkflowClient<T, O> {
    engine: WorkflowEngine<O>,
    pool: ClusterPool<T>,
    poll_every: Duration,
    /// No reads before this instant.
    next_read: Instant,
    /// No posts before this instant (after a failed one).
    next_post: Instant,
    /// The next read of a round: verdicts first, then outcomes.
    outcomes_next: bool,
    /// The pause after a failure or an answer that breaks the contract.
    backoff: Backoff,
    sent: Option<Sent>,
    events: VecDeque<ClientEvent>,
    /// Reads a completed task's output as its step's.
    read_output: Option<fn(T) -> Result<O, String>>,
    /// Writes a step task's payload from its step and input.
    write_input: Option<fn(StepTask, StepInput<O>) -> T>,
}

/// The operation in flight.
enum Sent {
    Post(Vec<Posting>),
    Verdicts(Vec<MessageId>),
    Outcomes(Vec<TaskId>),
}

/// What a [`WorkflowClient`] reports: the store failures it rides out.
///
/// After either, the client sends the operation again after a pause: its
/// poll period at first, doubling while failures or such answers go on,
/// up to two seconds (or the poll period, if longer); an answer that
/// keeps the contract resets it.
#[derive(Clone, Debug, PartialEq)]
pub enum ClientEvent {
    /// An operation failed; the client tries again after a pause.
    StoreFailed(StoreFailure),
    /// The store answered an operation with a reply of another kind, or a
    /// post with fewer ids than messages (a store that breaks the
    /// contract); the client tries again after a pause.
    UnexpectedReply(String),
}

impl fmt::Display for ClientEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientEvent::StoreFailed(failure) => {
                write!(f, "{failure}; trying again after a pause")
            }
            ClientEvent::UnexpectedReply(what) => write!(
                f,
                "the store answered {what}, which breaks the store contract: check the store with cluster::check_store"
            ),
        }
    }
}

impl<T, O> fmt::Debug for WorkflowClient<T, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkflowClient")
            .field("engine", &self.engine)
            .field("pool", &self.pool)
            .field("poll_every", &self.poll_every)
            .finish_non_exhaustive()
    }
}

impl<T, O> WorkflowClient<T, O>
where
    T: Clone + From<StepTask>,
    O: Clone + Default,
{
    /// A client named `name` — unique among the clients of one cluster:
    /// it prefixes the idempotency keys of its steps — that reads the
    /// verdicts and ends of its tasks every `poll_every` (a zero period
    /// counts as one millisecond). After a failure it waits the poll
    /// period, doubling while failures go on, up to two seconds (or the
    /// poll period, if longer).
    pub fn new(name: impl Into<String>, poll_every: Duration) -> Self {
        let poll_every = poll_every.max(Duration::from_millis(1));
        WorkflowClient {
            engine: WorkflowEngine::new(),
            pool: ClusterPool::new(name.into()),
            poll_every,
            next_read: Instant::ZERO,
            next_post: Instant::ZERO,
            outcomes_next: false,
            backoff: Backoff::new(poll_every, poll_every.max(MAX_PAUSE)),
            sent: None,
            events: VecDeque::new(),
            read_output: None,
            write_input: None,
        }
    }

    /// Writes each agent step's task payload with `write(step, input)`,
    /// the input the engine gives the step
    /// ([`WorkflowEngine::input`]: the run's input for an entry step, its
    /// predecessors' outputs for the others), so an agent on the cluster
    /// receives what the steps before it produced. Without it (or when the
    /// engine has no input for the step), a payload is `T::from(step)`.
    pub fn with_inputs(mut self, write: fn(StepTask, StepInput<O>) -> T) -> Self {
        self.write_input = Some(write);
        self.pool.keep_to_fill();
        self
    }

    /// Completes each agent step with the output its task completed with
    /// ([`AgentSession::complete`](super::AgentSession::complete)), read
    /// by `read`; an output that does not read fails its step for good,
    /// with `read`'s reason. Without it, or for a task that completed
    /// without an output, a step completes with `O::default()`.
    pub fn with_outputs(mut self, read: fn(T) -> Result<O, String>) -> Self {
        self.read_output = Some(read);
        self
    }

    /// The engine and the pool it needs: start runs, report local steps,
    /// signal, cancel, and pull the engine's actions with them.
    pub fn parts(&mut self) -> (&mut WorkflowEngine<O>, &mut ClusterPool<T>) {
        (&mut self.engine, &mut self.pool)
    }

    /// The engine, to read.
    pub fn engine(&self) -> &WorkflowEngine<O> {
        &self.engine
    }

    /// The pool, to read.
    pub fn pool(&self) -> &ClusterPool<T> {
        &self.pool
    }

    /// The next operation to execute on the store, if one is due; one at a
    /// time: posts first, then a read of the verdicts, then of the ends.
    #[must_use = "an operation must be executed and its reply handed back"]
    pub fn poll_op(&mut self, now: Instant) -> Option<ClientOp<T>> {
        if self.sent.is_some() {
            return None;
        }
        if now >= self.next_post && self.pool.has_posts() {
            if let Some(write) = self.write_input {
                let engine = &self.engine;
                self.pool.fill(|step| {
                    let input = engine.input(step.run, step.token).ok()?;
                    Some(write(step, input))
                });
            }
            let (messages, postings) = self.pool.take_posts();
            self.sent = Some(Sent::Post(postings));
            return Some(ClientOp::Post(messages));
        }
        if now < self.next_read {
            return None;
        }
        if !self.outcomes_next {
            self.outcomes_next = true;
            let ids = self.pool.awaiting_verdicts();
            if !ids.is_empty() {
                self.sent = Some(Sent::Verdicts(ids.clone()));
                return Some(ClientOp::Verdicts(ids));
            }
        }
        let remotes = self.pool.running();
        if remotes.is_empty() {
            // The round ends with its verdicts: the next is a period away.
            self.outcomes_next = false;
            self.next_read = now.saturating_add(self.poll_every);
            return None;
        }
        self.sent = Some(Sent::Outcomes(remotes.clone()));
        Some(ClientOp::Outcomes(remotes))
    }

    /// Takes the store's answer to the operation in flight.
    pub fn handle_reply(&mut self, reply: Result<ClientReply<T>, StoreFailure>, now: Instant) {
        let Some(sent) = self.sent.take() else {
            let what = match &reply {
                Ok(reply) => reply.summary(),
                Err(failure) => format!("Err({failure:?})"),
            };
            return self
                .events
                .push_back(ClientEvent::UnexpectedReply(format!("{what} unasked")));
        };
        match (sent, reply) {
            (Sent::Post(postings), Ok(ClientReply::Posted(ids))) => {
                let (messages, named) = (postings.len(), ids.len());
                if self.pool.posted(postings, ids) > 0 {
                    let what = format!("{named} message ids for a post of {messages} messages");
                    self.unusable(true, ClientEvent::UnexpectedReply(what), now);
                } else {
                    self.backoff.reset();
                }
            }
            (Sent::Verdicts(ids), Ok(ClientReply::Verdicts(verdicts))) => {
                self.backoff.reset();
                for local in self.pool.verdicts(ids, verdicts, now) {
                    let reason = DeadLetterReason::NonRetryable {
                        reason: "refused by the cluster".into(),
                    };
                    let refused = Action::DeadLettered {
                        task: local,
                        reason,
                    };
                    let _ = self.engine.handle_action(&mut self.pool, refused);
                }
            }
            (Sent::Outcomes(remotes), Ok(ClientReply::Outcomes(ends))) => {
                self.backoff.reset();
                self.outcomes_next = false;
                self.next_read = now.saturating_add(self.poll_every);
                for (local, outcome) in self.pool.ended(remotes, ends, now) {
                    self.step_ended(local, outcome, now);
                }
            }
            (sent, Err(failure)) => self.again(sent, ClientEvent::StoreFailed(failure), now),
            (sent, Ok(other)) => {
                // A post not known to be posted is posted again.
                self.again(sent, ClientEvent::UnexpectedReply(other.summary()), now);
            }
        }
    }

    /// `sent` failed or was answered with something unusable: it runs
    /// again after a pause; `event` says why.
    fn again(&mut self, sent: Sent, event: ClientEvent, now: Instant) {
        let post = matches!(sent, Sent::Post(_));
        if let Sent::Post(postings) = sent {
            self.pool.post_failed(postings);
        }
        self.unusable(post, event, now);
    }

    /// No post (`post`) or read before the backoff's next pause; `event`
    /// says why.
    fn unusable(&mut self, post: bool, event: ClientEvent, now: Instant) {
        let retry = now.saturating_add(self.backoff.next());
        self.outcomes_next = false;
        if post {
            self.next_post = retry;
        } else {
            self.next_read = retry;
        }
        self.events.push_back(event);
    }

    /// A step task ended on the cluster: its step completes (with the
    /// task's output, read by [`with_outputs`](Self::with_outputs)) or
    /// fails.
    fn step_ended(&mut self, local: TaskId, outcome: Outcome<T>, now: Instant) {
        let action = match outcome.end {
            TaskEnd::Completed => {
                // The agent's report was checked by the cluster; the
                // engine's check is against this pool, which knows the
                // task completed.
                let output = match (outcome.output, self.read_output) {
                    (Some(output), Some(read)) => {
                        read(output).map(StepOutput::new).map_err(|why| {
                            StepFailure::fatal(format!("the step's output does not read: {why}"))
                        })
                    }
                    _ => Ok(StepOutput::new(O::default())),
                };
                let placeholder = (AgentId::new(0), AttemptToken::new(0));
                let reported = self.engine.report(
                    &mut self.pool,
                    local,
                    placeholder.0,
                    placeholder.1,
                    output,
                    now,
                );
                if reported.is_err() {
                    // The run is gone (cancelled meanwhile): nothing waits.
                    self.pool.forget(local);
                }
                return;
            }
            TaskEnd::Expired(limit) => Action::Expired { task: local, limit },
            TaskEnd::DeadLettered(reason) => Action::DeadLettered {
                task: local,
                reason,
            },
            TaskEnd::Cancelled => Action::DeadLettered {
                task: local,
                reason: DeadLetterReason::NonRetryable {
                    reason: "cancelled by another client of the cluster".into(),
                },
            },
            // The step failed as a dead letter, whoever requeued it since:
            // the run's own policy decides what follows, not the redrive.
            TaskEnd::Redriven(new) => Action::DeadLettered {
                task: local,
                reason: DeadLetterReason::NonRetryable {
                    reason: format!(
                        "it was dead-lettered, then requeued as {new} outside this run"
                    ),
                },
            },
        };
        let _ = self.engine.handle_action(&mut self.pool, action);
    }

    /// When the client next needs a call: its engine's timers, a post, or
    /// a read that is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut at = self.engine.poll_timeout();
        if self.sent.is_none() {
            let post = self.pool.has_posts().then_some(self.next_post);
            let read = self.pool.has_reads().then_some(self.next_read);
            for due in [post, read].into_iter().flatten() {
                at = Some(at.map_or(due, |a| a.min(due)));
            }
        }
        at
    }

    /// Fires the engine's timers due at `now` (step timeouts, retries).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.engine.handle_timeout(&mut self.pool, now);
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }
}
