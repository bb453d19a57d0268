//! [`PgAgent`]: an agent session for the host's own agent code.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use taskweave::agent::AgentProfile;
use taskweave::cluster::{AgentSession, Assignment, SessionConfig, Store};
use taskweave::scheduler::AttemptOutcome;
use taskweave::{AgentId, AttemptToken, TaskId};

use super::log_line::session_level;
use super::{LogLine, connect_patiently, until, wall_now};
use crate::metrics::AgentMetrics;
use crate::{PgError, PgStore};

/// An agent of the cluster: it registers a new incarnation (so a
/// restarted agent's old attempts fail over at once), heartbeats, claims
/// its assignments and reports results with their tokens. The host runs
/// the work however it likes: call [`step`](Self::step) in a loop, run
/// what it returns, and hand each result to [`finish`](Self::finish).
///
/// It connects as the login the connection string names; with the roles
/// `taskweave-pg init` creates, PostgreSQL lets it act only as its own
/// agent.
///
/// An agent that completes each task with its payload doubled, until the
/// cluster is drained:
///
/// ```no_run
/// use std::time::Duration;
///
/// use taskweave::AgentId;
/// use taskweave::agent::AgentProfile;
/// use taskweave::cluster::SessionConfig;
/// use taskweave_postgres::{LogLine, PgAgent};
///
/// let db = "host=127.0.0.1 port=5432 user=agent_one dbname=postgres";
/// let profile = AgentProfile::builder().capacity(4).build()?;
/// let session = SessionConfig::builder().build()?;
/// let mut log = |line: LogLine<'_>| eprintln!("agent 1: {line}");
/// // Waits for the server while it is down; `|| true` would give up at once.
/// let mut agent = PgAgent::<u32>::connect(db, AgentId::new(1), profile, session, &mut log, &|| false)?;
/// while !agent.is_stopped() {
///     for work in agent.step(&mut log) {
///         agent.complete(work.task, work.token, work.payload * 2);
///     }
///     agent.wait(Duration::from_millis(20));
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct PgAgent<P> {
    store: PgStore<P>,
    session: AgentSession<P>,
    metrics: Option<AgentMetrics>,
    /// The store's reconnections when last looked at.
    reconnections: u64,
}

impl<P: Clone + Serialize + DeserializeOwned> PgAgent<P> {
    /// Connects (waiting for the server while `give_up` answers `false`)
    /// and starts a session for `agent`.
    ///
    /// # Errors
    ///
    /// A missing or old schema, a bad connection string, or the last
    /// connection error once `give_up` answers `true`.
    pub fn connect(
        conninfo: &str,
        agent: AgentId,
        profile: AgentProfile,
        config: SessionConfig,
        log: &mut dyn FnMut(LogLine<'_>),
        give_up: &dyn Fn() -> bool,
    ) -> Result<Self, PgError> {
        let mut store = connect_patiently(conninfo, log, give_up)?;
        store.listen(format!("taskweave_work_{}", agent.get()));
        store.listen("taskweave_cluster".to_string());
        Ok(PgAgent {
            store,
            session: AgentSession::new(agent, profile, config),
            metrics: None,
            reconnections: 0,
        })
    }

    /// Counts what the session claims, reports and gives back in
    /// `metrics` ([`AgentMetrics`]).
    #[must_use]
    pub fn observe_with(mut self, metrics: AgentMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The session's state machine.
    pub fn session(&self) -> &AgentSession<P> {
        &self.session
    }

    /// The cluster stopped: the host ends the agent.
    pub fn is_stopped(&self) -> bool {
        self.session.is_stopped()
    }

    /// Runs every operation due now (reports first) and answers the work
    /// newly claimed. `log` hears every event.
    pub fn step(&mut self, log: &mut dyn FnMut(LogLine<'_>)) -> Vec<Assignment<P>> {
        while let Some(op) = self.session.poll_op(wall_now()) {
            let reply = self.store.agent(op, wall_now());
            self.session.handle_reply(reply, wall_now());
        }
        // Notices that came during the operations (the connection buffers
        // them until read), or, after a reconnection, any that may have
        // been lost: claim at the next step.
        let reconnections = self.store.reconnections();
        if self.store.take_notices() != 0 || reconnections != self.reconnections {
            self.reconnections = reconnections;
            self.session.work_published();
        }
        while let Some(event) = self.session.poll_event() {
            log(LogLine {
                level: session_level(&event),
                text: &event.to_string(),
            });
        }
        let work: Vec<_> = std::iter::from_fn(|| self.session.poll_work()).collect();
        if let Some(metrics) = &self.metrics {
            metrics.claimed(work.len(), self.session.held());
            metrics.sent(self.store.statements());
        }
        work
    }

    /// Attempts handed out that the cluster cancelled since the last call
    /// (failed over, cancelled by a client, timed out): stop them; their
    /// results would be refused.
    pub fn cancelled(&mut self) -> Vec<(TaskId, AttemptToken)> {
        let taken: Vec<_> = std::iter::from_fn(|| self.session.poll_cancelled()).collect();
        if let Some(metrics) = self.metrics.as_ref().filter(|_| !taken.is_empty()) {
            metrics.taken_back(taken.len(), self.session.held());
        }
        taken
    }

    /// The result of an attempt [`step`](Self::step) handed out; `false`
    /// for one the session does not hold.
    pub fn finish(&mut self, task: TaskId, token: AttemptToken, outcome: AttemptOutcome) -> bool {
        let succeeded = matches!(outcome, AttemptOutcome::Success);
        let held = self.session.finish(task, token, outcome);
        if let (Some(metrics), true) = (&self.metrics, held) {
            metrics.reported(succeeded, self.session.held());
        }
        held
    }

    /// A success of an attempt [`step`](Self::step) handed out, with its
    /// output ([`AgentSession::complete`](taskweave::cluster::AgentSession::complete));
    /// `false` for one the session does not hold.
    pub fn complete(&mut self, task: TaskId, token: AttemptToken, output: P) -> bool {
        let held = self.session.complete(task, token, output);
        if let (Some(metrics), true) = (&self.metrics, held) {
            metrics.reported(true, self.session.held());
        }
        held
    }

    /// Sleeps until the session has something to do, at most `cap`, or
    /// until the leader publishes work for this agent or stops the cluster
    /// (it notifies the agent's channel, or every agent's, when its commit
    /// lands): then the next [`step`](Self::step) claims at once, and a
    /// claim's answer says whether the cluster stopped.
    pub fn wait(&mut self, cap: Duration) {
        let pause = self.session.poll_timeout().map_or(cap, |at| until(at, cap));
        if !pause.is_zero() && self.store.wait_notice(pause) {
            self.session.work_published();
        }
    }
}
