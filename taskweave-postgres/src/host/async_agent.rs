//! [`AsyncPgAgent`]: an agent session for async (tokio) hosts, on
//! `tokio-postgres`.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use taskweave::agent::AgentProfile;
use taskweave::cluster::{
    AgentOp, AgentReply, AgentSession, Assignment, SessionConfig, StoreFailure,
};
use taskweave::scheduler::AttemptOutcome;
use taskweave::{AgentId, AttemptToken, TaskId};
use tokio::task::{AbortHandle, Id, JoinError, JoinSet};

use super::async_link::AsyncLink;
use super::hosted_session::HostedSession;
use super::{Backoff, LogLine, agent_channels, agent_session, wall_now};
use crate::PgError;
use crate::metrics::AgentMetrics;
use crate::store::agent_ops::plan;

/// The longest [`AsyncPgAgent::serve`] waits between looks while
/// nothing wakes it (the session's own timers and the leader's notices
/// wake it sooner).
const SERVE_NAP: Duration = Duration::from_millis(250);

/// What [`AsyncPgAgent::serve`]'s handler answers for an attempt: its
/// output, or why it failed (a retryable failure).
pub type Handled<P> = Result<P, String>;

/// An agent of the cluster for async hosts: what [`PgAgent`](crate::PgAgent)
/// does (a new incarnation, heartbeats, claims, reports with their
/// tokens), as `async fn`s on one `tokio-postgres` connection whose
/// notifications wake [`wait`](Self::wait), so many agents and their work
/// share a runtime with no thread of their own.
///
/// Two ways to drive it:
/// * [`serve`](Self::serve) runs an async handler per assignment as a
///   tokio task, reports each result, aborts an attempt the cluster takes
///   back, and returns when the cluster stops;
/// * or the host's own loop: [`step`](Self::step), run what it returns,
///   [`complete`](Self::complete) or [`finish`](Self::finish) each
///   attempt, [`wait`](Self::wait).
///
/// It must run inside a tokio runtime; polled outside one, connecting
/// answers [`PgError::NoRuntime`] and every operation fails saying so
/// (the session backs off) instead of panicking. A broken connection (a
/// PostgreSQL restart) fails the operation that met it, and the next one
/// connects again; the session retries as [`PgAgent`](crate::PgAgent)'s
/// does, and claims at once after a reconnection (a notice sent meanwhile
/// was lost).
///
/// An agent that answers each payload doubled, until the cluster is
/// drained:
///
/// ```no_run
/// use taskweave::AgentId;
/// use taskweave::agent::AgentProfile;
/// use taskweave::cluster::SessionConfig;
/// use taskweave_postgres::{AsyncPgAgent, LogLine};
///
/// # async fn agent() -> Result<(), Box<dyn std::error::Error>> {
/// let db = "host=127.0.0.1 port=5432 user=agent_one dbname=postgres";
/// let profile = AgentProfile::builder().capacity(4).build()?;
/// let session = SessionConfig::builder().build()?;
/// let mut log = |line: LogLine<'_>| eprintln!("agent 1: {line}");
/// // Waits for the server while it is down; `&|| true` would give up at once.
/// let agent = AsyncPgAgent::<u32>::connect(db, AgentId::new(1), profile, session, &mut log, &|| false).await?;
/// let completed = agent
///     .serve(log, |work| async move {
///         // An async call to another service would go here.
///         Ok(work.payload * 2)
///     })
///     .await;
/// println!("the cluster stopped after {completed} completions");
/// # Ok(())
/// # }
/// ```
pub struct AsyncPgAgent<P> {
    link: AsyncLink,
    hosted: HostedSession<P>,
}

impl<P: Clone> fmt::Debug for AsyncPgAgent<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncPgAgent")
            .field("link", &self.link)
            .field("agent", &self.hosted.session.agent())
            .finish_non_exhaustive()
    }
}

impl<P: Clone + Serialize + DeserializeOwned + Send> AsyncPgAgent<P> {
    /// Connects (waiting for the server, with backoff, while `give_up`
    /// answers `false`; `log` hears each failure with its cause) and
    /// starts a session for `agent`.
    ///
    /// # Errors
    ///
    /// A missing or old schema ([`PgError::Schema`]), a bad connection
    /// string ([`PgError::Conninfo`]), no tokio runtime
    /// ([`PgError::NoRuntime`]), or the last connection error once
    /// `give_up` answers `true`.
    pub async fn connect(
        conninfo: &str,
        agent: AgentId,
        profile: AgentProfile,
        config: SessionConfig,
        log: &mut (dyn FnMut(LogLine<'_>) + Send),
        give_up: &(dyn Fn() -> bool + Sync),
    ) -> Result<Self, PgError> {
        let mut backoff = Backoff::default();
        let link = loop {
            let (channels, session) = (agent_channels(agent).to_vec(), agent_session(agent));
            match AsyncLink::connect(conninfo, channels, Some(session)).await {
                Ok(link) => break link,
                Err(e) => tokio::time::sleep(backoff.after(e, log, give_up)?).await,
            }
        };
        Ok(AsyncPgAgent {
            link,
            hosted: HostedSession::new(AgentSession::new(agent, profile, config)),
        })
    }

    /// Counts what the session claims, reports and gives back in
    /// `metrics` ([`AgentMetrics`]).
    #[must_use]
    pub fn observe_with(mut self, metrics: AgentMetrics) -> Self {
        self.hosted.metrics = Some(metrics);
        self
    }

    /// The session's state machine.
    pub fn session(&self) -> &AgentSession<P> {
        &self.hosted.session
    }

    /// The cluster stopped: the host ends the agent.
    pub fn is_stopped(&self) -> bool {
        self.hosted.session.is_stopped()
    }

    /// Runs every operation due now (reports first) and answers the work
    /// newly claimed. `log` hears every event.
    pub async fn step(&mut self, log: &mut (dyn FnMut(LogLine<'_>) + Send)) -> Vec<Assignment<P>> {
        while let Some(op) = self.hosted.session.poll_op(wall_now()) {
            let reply = self.op(op).await;
            self.hosted.session.handle_reply(reply, wall_now());
        }
        let noticed = self.link.take_notices();
        let (reconnections, statements) = (self.link.reconnections(), self.link.statements());
        self.hosted
            .after_ops(noticed, reconnections, statements, log)
    }

    /// Runs one agent operation of the store contract.
    async fn op(&mut self, op: AgentOp<P>) -> Result<AgentReply<P>, StoreFailure> {
        let plan = plan(op)?;
        let rows = self.link.query(plan.sql, &plan.params, plan.write).await?;
        let decoded = plan.rows.decode(&rows)?;
        if let Some(report) = decoded.unreadable {
            // As the blocking store: lost, the next claim reports again.
            self.link.query(report.sql, &report.params, true).await?;
        }
        Ok(decoded.reply)
    }

    /// Attempts handed out that the cluster cancelled since the last call
    /// (failed over, cancelled by a client, timed out): stop them; their
    /// results would be refused.
    pub fn cancelled(&mut self) -> Vec<(TaskId, AttemptToken)> {
        self.hosted.cancelled()
    }

    /// The result of an attempt [`step`](Self::step) handed out; `false`
    /// for one the session does not hold.
    pub fn finish(&mut self, task: TaskId, token: AttemptToken, outcome: AttemptOutcome) -> bool {
        self.hosted.finish(task, token, outcome)
    }

    /// A success of an attempt [`step`](Self::step) handed out, with its
    /// output; `false` for one the session does not hold.
    pub fn complete(&mut self, task: TaskId, token: AttemptToken, output: P) -> bool {
        self.hosted.complete(task, token, output)
    }

    /// Waits until the session has something to do, at most `cap`, or
    /// until the leader publishes work for this agent or stops the
    /// cluster (a notification on the agent's connection): then the next
    /// [`step`](Self::step) claims at once. Cancel-safe: a host may race
    /// it against its own work finishing (`tokio::select!`).
    pub async fn wait(&mut self, cap: Duration) {
        let pause = self.hosted.pause(cap);
        if !pause.is_zero() && self.link.wait_notice(pause).await {
            self.hosted.session.work_published();
        }
    }
}

impl<P: Clone + Serialize + DeserializeOwned + Send + 'static> AsyncPgAgent<P> {
    /// Serves the cluster until it stops: runs `handler` on each
    /// assignment as a tokio task of its own (at most the profile's
    /// capacity at once: the session claims no more), completes the
    /// attempt with the output it answers or fails it (retryable) with
    /// the reason it gives, and aborts the task of an attempt the cluster
    /// takes back (its result would be refused). A handler that panics
    /// (in its future, or in the call that makes the future) fails its
    /// attempt, saying so, and `serve` goes on. `log` hears every event of the
    /// session. Answers how many attempts it completed.
    ///
    /// Dropping the future (a host shutting down) aborts the attempts in
    /// flight; the cluster fails them over once the agent's heartbeats
    /// stop.
    pub async fn serve<F, Fut>(mut self, mut log: impl FnMut(LogLine<'_>) + Send, handler: F) -> u64
    where
        F: Fn(Assignment<P>) -> Fut,
        Fut: Future<Output = Handled<P>> + Send + 'static,
    {
        let mut running = Running::default();
        let mut completed = 0;
        loop {
            for work in self.step(&mut log).await {
                let attempt = (work.task, work.token);
                // The handler's own call, not only its future, may panic.
                match catch_unwind(AssertUnwindSafe(|| handler(work))) {
                    Ok(future) => running.spawn(attempt, future),
                    Err(panic) => {
                        self.report(attempt, Err(panicked(panic.as_ref())));
                    }
                }
            }
            if self.is_stopped() {
                // The drain ended every attempt before the stop.
                return completed;
            }
            for attempt in self.cancelled() {
                running.abort(attempt);
            }
            let joined = running.first_of(self.wait(SERVE_NAP)).await;
            // Every result ready now goes into the next step's report.
            let mut next = joined;
            while let Some(joined) = next {
                if let Some((attempt, handled)) = running.settle(joined) {
                    completed += u64::from(self.report(attempt, handled));
                }
                next = running.set.try_join_next_with_id();
            }
        }
    }

    /// Hands an attempt's result to the session: `true` for a completion
    /// it took.
    fn report(&mut self, (task, token): (TaskId, AttemptToken), handled: Handled<P>) -> bool {
        match handled {
            Ok(output) => self.complete(task, token, output),
            Err(reason) => {
                self.finish(task, token, AttemptOutcome::failure(reason));
                false
            }
        }
    }
}

/// An attempt and what its handler answered.
type Ran<P> = ((TaskId, AttemptToken), Handled<P>);

/// The failure a handler's panic stands for, with the panic's message.
fn panicked(payload: &(dyn Any + Send)) -> String {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a payload that is not a string".to_string());
    format!("the handler panicked: {message}")
}

/// The attempts [`AsyncPgAgent::serve`] runs: their tasks, and which
/// attempt each task runs.
struct Running<P> {
    set: JoinSet<Ran<P>>,
    aborts: HashMap<(TaskId, AttemptToken), AbortHandle>,
    attempts: HashMap<Id, (TaskId, AttemptToken)>,
}

impl<P> Default for Running<P> {
    fn default() -> Self {
        Running {
            set: JoinSet::new(),
            aborts: HashMap::new(),
            attempts: HashMap::new(),
        }
    }
}

impl<P: Send + 'static> Running<P> {
    fn spawn(
        &mut self,
        attempt: (TaskId, AttemptToken),
        work: impl Future<Output = Handled<P>> + Send + 'static,
    ) {
        let task = self.set.spawn(async move { (attempt, work.await) });
        self.attempts.insert(task.id(), attempt);
        self.aborts.insert(attempt, task);
    }

    /// The first task to end, or `None` once `wait` ends first (it is
    /// dropped then, which [`AsyncPgAgent::wait`] allows).
    async fn first_of(
        &mut self,
        wait: impl Future<Output = ()>,
    ) -> Option<Result<(Id, Ran<P>), JoinError>> {
        let mut wait = pin!(wait);
        poll_fn(|cx| {
            if !self.set.is_empty() {
                if let Poll::Ready(joined) = self.set.poll_join_next_with_id(cx) {
                    return Poll::Ready(joined);
                }
            }
            wait.as_mut().poll(cx).map(|()| None)
        })
        .await
    }

    /// Aborts the task of an attempt taken back, if it still runs.
    fn abort(&mut self, attempt: (TaskId, AttemptToken)) {
        if let Some(task) = self.aborts.remove(&attempt) {
            task.abort();
        }
    }

    /// The attempt a joined task ran and its result: a panic is a
    /// failure that says so; an aborted task, nothing to report.
    fn settle(&mut self, joined: Result<(Id, Ran<P>), JoinError>) -> Option<Ran<P>> {
        let (attempt, handled) = match joined {
            Ok((id, (attempt, handled))) => {
                self.attempts.remove(&id);
                (attempt, handled)
            }
            Err(e) => {
                let attempt = self.attempts.remove(&e.id())?;
                if e.is_cancelled() {
                    return None;
                }
                let message = match e.try_into_panic() {
                    Ok(panic) => panicked(panic.as_ref()),
                    Err(e) => format!("the handler's task failed: {e}"),
                };
                (attempt, Err(message))
            }
        };
        self.aborts.remove(&attempt);
        Some((attempt, handled))
    }
}
