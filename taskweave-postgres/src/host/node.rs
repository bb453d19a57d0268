//! [`PgNode`]: a node of the cluster in the host's process.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use taskweave::cluster::{Node, NodeConfig, NodeOp, Notice, Role, RunCodec, Store};
use taskweave::scheduler::DispatcherConfig;

use super::LogLine;
use super::log_line::node_level;
use super::refusal_log::RefusalLog;
use super::{connect_patiently, until, wall_now};
use crate::metrics::NodeMetrics;
use crate::schema::NODE_SESSION;
use crate::{PgError, PgStore};

/// The notices a node listens for (schema version 12's triggers), as bits
/// of [`PgStore::wait_notices`]: an inbox post, a journal append.
const INBOX_BIT: u32 = 1;
const JOURNAL_BIT: u32 = 2;
/// The cluster stopped (the stop's own notice to every agent): a follower
/// reads the journal and then the lease at once, and ends, before an
/// operator's `reset` can clear the stop it would otherwise read late.
const STOPPED_BIT: u32 = 4;

/// Why [`PgNode::run`] returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeExit {
    /// The cluster was drained and stopped.
    Stopped,
    /// The host asked it to stop (its flag was set).
    Interrupted,
}

/// A node (leader or standby) of the cluster whose store is the database
/// at `conninfo`. Every node of a cluster must use the same dispatcher
/// configuration: the database keeps the cluster's (schema version 10,
/// [`cluster_config`](crate::cluster_config)). The first node stores its
/// own if none is; a node whose configuration disagrees with the stored
/// one is refused when it starts, naming the setting and both values
/// ([`PgError::ConfigDisagrees`](crate::PgError::ConfigDisagrees)). A
/// configuration with a host retry policy (not a built-in
/// [`RetrySpec`](taskweave::resilience::RetrySpec)) is not data: it is
/// neither stored nor checked.
///
/// [`run`](Self::run) blocks until the cluster stops: give the node a
/// thread of its own (an async host, a blocking thread: see the crate's
/// docs).
///
/// It listens for the notifications the schema's triggers send on each
/// inbox post and journal append, and hands them to the node
/// ([`Node::notice`](taskweave::cluster::Node::notice)). Build its
/// configuration with
/// [`woken_by_notices`](taskweave::cluster::NodeConfigBuilder::woken_by_notices)
/// (as `taskweave-pg node` does, with a 1 s poll) and an idle node sends
/// a few statements a second instead of hundreds; without it the node
/// polls as configured and the notices only shorten its waits.
///
/// ```no_run
/// use std::sync::atomic::AtomicBool;
/// use std::time::Duration;
///
/// use taskweave::cluster::NodeConfig;
/// use taskweave::scheduler::DispatcherConfig;
/// use taskweave_postgres::{NodeExit, PgNode};
///
/// // Setting it ends the node's loop early (a shutdown signal, say).
/// static STOP: AtomicBool = AtomicBool::new(false);
///
/// let db = "host=127.0.0.1 port=5432 user=node_login dbname=postgres";
/// let dispatcher = DispatcherConfig::builder()
///     .heartbeats(Duration::from_millis(250), 8)
///     .build()?;
/// let config = NodeConfig::builder("node-a")
///     .woken_by_notices(Duration::from_secs(1))
///     .build()?;
/// let mut node = PgNode::<u32>::new(db, config, dispatcher)?;
/// let thread = std::thread::spawn(move || node.run(&STOP, &mut |line| eprintln!("node-a: {line}")));
/// // … the host's agents and clients …
/// match thread.join().expect("the node's thread panicked")? {
///     NodeExit::Stopped => println!("the cluster was drained"),
///     NodeExit::Interrupted => println!("stopped by the host"),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct PgNode<P> {
    conninfo: String,
    node: Node<P>,
    /// The dispatcher configuration to agree with the cluster's; `None`
    /// for one with a host retry policy.
    agreed: Option<DispatcherConfig>,
    metrics: Option<NodeMetrics>,
    /// Its sessions' name in `pg_stat_activity`.
    session: String,
}

impl<P: Clone + Serialize + DeserializeOwned> PgNode<P> {
    /// A node that will connect to `conninfo`.
    ///
    /// # Errors
    ///
    /// The node's [`ConfigError`](taskweave::cluster::ConfigError), for a
    /// dispatcher without heartbeats.
    pub fn new(
        conninfo: &str,
        config: NodeConfig,
        dispatcher: DispatcherConfig,
    ) -> Result<Self, taskweave::cluster::ConfigError> {
        let agreed = serde_json::to_string(&dispatcher)
            .is_ok()
            .then(|| dispatcher.clone());
        Ok(PgNode {
            conninfo: conninfo.to_string(),
            session: format!("{NODE_SESSION}{}", config.name()),
            node: Node::new(config, dispatcher)?,
            agreed,
            metrics: None,
        })
    }

    /// Hosts workflow runs with `codec` ([`Node::host_runs`]): clients
    /// register definitions and start, signal and cancel runs
    /// ([`PgClient::run`](super::PgClient::run)), and read their ends
    /// ([`PgClient::run_ends`](super::PgClient::run_ends)). Every node of
    /// the cluster must host runs with the same codec.
    #[must_use]
    pub fn host_runs(mut self, codec: RunCodec<P>) -> Self {
        self.node = self.node.host_runs(codec);
        self
    }

    /// Asks `authorizer` about every inbox message the roles allow
    /// ([`Node::authorize_with`]): a refused message's verdict names the
    /// reason, and nothing else changes. The database's row-level security
    /// and the agent logins' grants apply first, whatever the authorizer.
    /// Every node of the cluster should be built with the same one.
    #[must_use]
    pub fn authorize_with(
        mut self,
        authorizer: impl taskweave::cluster::Authorizer<P> + Send + 'static,
    ) -> Self {
        self.node = self.node.authorize_with(authorizer);
        self
    }

    /// Keeps `metrics` up to date while it [`run`](Self::run)s: the queue
    /// and counters after every store operation, every commit's latency
    /// and journal bytes, takeovers, refusals and lost agents
    /// ([`NodeMetrics`]).
    #[must_use]
    pub fn observe_with(mut self, metrics: NodeMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The role's state machine (its role, its dispatcher).
    pub fn node(&self) -> &Node<P> {
        &self.node
    }

    /// Follows, leads when the lease is free, and survives database
    /// restarts, until the cluster stops or `stop` is set. `log` hears
    /// every event worth a line (refused messages: the first few of each
    /// sender every 10 s, then one line that counts the rest).
    ///
    /// # Errors
    ///
    /// A missing or old schema, or a bad connection string, each with its
    /// remedy. State in the store the node cannot read ([`Role::Failed`])
    /// is logged with its remedy, and the node reads again after a growing
    /// pause instead of exiting.
    pub fn run(
        &mut self,
        stop: &AtomicBool,
        log: &mut dyn FnMut(LogLine<'_>),
    ) -> Result<NodeExit, String> {
        let give_up = || stop.load(Ordering::Relaxed);
        if self.agreed.is_none() {
            log(LogLine::warn(
                "the dispatcher's retry policy is host code, not data: this node's \
                 configuration is neither stored as the cluster's nor checked against it",
            ));
        }
        let connected = connect_agreeing::<P>(&self.conninfo, self.agreed.as_ref(), log, &give_up);
        let mut store = match connected {
            Ok(store) => store,
            Err(_) if give_up() => return Ok(NodeExit::Interrupted),
            Err(e) => return Err(e.to_string()),
        };
        store.name_session(&self.session);
        // Bits INBOX_BIT, JOURNAL_BIT and STOPPED_BIT of `wait_notices`, in this order.
        store.listen("taskweave_inbox".to_string());
        store.listen("taskweave_journal".to_string());
        store.listen("taskweave_cluster".to_string());
        let mut last_role = self.node.role();
        let mut refusals = RefusalLog::default();
        let mut reconnections = store.reconnections();
        loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(NodeExit::Interrupted);
            }
            let now = wall_now();
            if let Some(op) = self.node.poll_op(now) {
                let commit = matches!(op, NodeOp::Commit { .. });
                let started = std::time::Instant::now();
                let reply = store.node(op, now);
                if let Some(metrics) = self.metrics.as_ref().filter(|_| commit && reply.is_ok()) {
                    metrics.committed(started.elapsed(), store.journal_bytes());
                }
                self.node.handle_reply(reply, wall_now());
                if let Some(metrics) = &self.metrics {
                    metrics.observe(&self.node);
                    metrics.sent(store.statements());
                }
            }
            // A busy node takes what came during its operation (the
            // connection buffers every notification until read); an idle
            // one waits for the next. After a reconnection, when some may
            // have been lost, it acts as if told of both.
            let mut heard = match self.node.poll_timeout() {
                Some(at) if at > wall_now() => {
                    store.wait_notices(until(at, Duration::from_millis(50)))
                }
                _ => store.take_notices(),
            };
            if store.reconnections() != reconnections {
                reconnections = store.reconnections();
                heard |= INBOX_BIT | JOURNAL_BIT;
            }
            for (bit, notice) in [
                (INBOX_BIT, Notice::InboxPost),
                (JOURNAL_BIT, Notice::JournalAppend),
                (STOPPED_BIT, Notice::JournalAppend),
            ] {
                if heard & bit != 0 {
                    self.node.notice(notice, wall_now());
                }
            }
            let now = wall_now();
            while let Some(event) = self.node.poll_event() {
                if let Some(metrics) = &self.metrics {
                    metrics.saw(&event);
                }
                if let Some(line) = refusals.line(&event, now) {
                    log(LogLine {
                        level: node_level(&event),
                        text: &line,
                    });
                }
            }
            for line in refusals.summaries(now) {
                log(LogLine::warn(&line));
            }
            let role = self.node.role();
            if role == Role::Stopped {
                return Ok(NodeExit::Stopped);
            }
            if role != last_role {
                match &role {
                    // The node backs off and reads again: a row fixed by
                    // hand, or a leader that writes past it, lets it go on.
                    Role::Failed(why) => log(LogLine::error(&format!(
                        "cannot read what the store holds: {why}; reading again with a growing \
                         pause. Remedy: inspect the journal with `taskweave-pg audit`, or restore \
                         the database from a backup"
                    ))),
                    _ => log(LogLine::info(&format!("role: {role:?}"))),
                }
                last_role = role;
            }
        }
    }
}

/// A connection, once the cluster's stored configuration agrees with
/// `config` (stored first if none is). A failed statement (the server
/// restarting) is tried again; a disagreement is final.
fn connect_agreeing<P>(
    conninfo: &str,
    config: Option<&DispatcherConfig>,
    log: &mut dyn FnMut(LogLine<'_>),
    give_up: &dyn Fn() -> bool,
) -> Result<PgStore<P>, PgError> {
    let mut pause = Duration::from_millis(100);
    loop {
        let mut store = connect_patiently::<P>(conninfo, log, give_up)?;
        let Some(config) = config else {
            return Ok(store);
        };
        match store.agree_config(config) {
            Ok(()) => return Ok(store),
            Err(e @ PgError::Db(_)) if !give_up() => {
                log(LogLine::warn(&format!("{e}; trying again in {pause:?}")));
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e),
        }
    }
}
