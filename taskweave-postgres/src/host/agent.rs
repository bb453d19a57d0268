//! [`PgAgent`]: an agent session for the host's own agent code.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use taskweave::agent::AgentProfile;
use taskweave::cluster::{AgentSession, Assignment, SessionConfig, Store};
use taskweave::scheduler::AttemptOutcome;
use taskweave::{AgentId, AttemptToken, TaskId};

use super::hosted_session::HostedSession;
use super::{LogLine, agent_channels, agent_session, connect_patiently, wall_now};
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
    hosted: HostedSession<P>,
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
        store.name_session(&agent_session(agent));
        for channel in agent_channels(agent) {
            store.listen(channel);
        }
        Ok(PgAgent {
            store,
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
    pub fn step(&mut self, log: &mut dyn FnMut(LogLine<'_>)) -> Vec<Assignment<P>> {
        while let Some(op) = self.hosted.session.poll_op(wall_now()) {
            let reply = self.store.agent(op, wall_now());
            self.hosted.session.handle_reply(reply, wall_now());
        }
        let noticed = self.store.take_notices() != 0;
        let (reconnections, statements) = (self.store.reconnections(), self.store.statements());
        self.hosted
            .after_ops(noticed, reconnections, statements, log)
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
    /// output ([`AgentSession::complete`](taskweave::cluster::AgentSession::complete));
    /// `false` for one the session does not hold.
    pub fn complete(&mut self, task: TaskId, token: AttemptToken, output: P) -> bool {
        self.hosted.complete(task, token, output)
    }

    /// Sleeps until the session has something to do, at most `cap`, or
    /// until the leader publishes work for this agent or stops the cluster
    /// (it notifies the agent's channel, or every agent's, when its commit
    /// lands): then the next [`step`](Self::step) claims at once, and a
    /// claim's answer says whether the cluster stopped.
    pub fn wait(&mut self, cap: Duration) {
        let pause = self.hosted.pause(cap);
        if !pause.is_zero() && self.store.wait_notice(pause) {
            self.hosted.session.work_published();
        }
    }
}
