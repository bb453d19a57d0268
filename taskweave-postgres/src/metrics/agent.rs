//! [`AgentMetrics`]: what an agent session did, as Prometheus metrics.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::Mirror;
use super::node::saturating_i64;

/// An agent's metrics, for a Prometheus scrape
/// ([`MetricsEndpoint`](super::MetricsEndpoint)): what this process's
/// session claimed and reported since it started.
///
/// | metric | kind | what |
/// |---|---|---|
/// | `taskweave_agent_claimed_total` | counter | attempts claimed |
/// | `taskweave_agent_succeeded_total` | counter | attempts reported a success |
/// | `taskweave_agent_failed_total` | counter | attempts reported a failure (retryable or not) |
/// | `taskweave_agent_cancelled_total` | counter | attempts the cluster took back (a cancel, a failover) |
/// | `taskweave_agent_running` | gauge | attempts claimed and not yet finished by the host nor taken back |
/// | `taskweave_store_statements_total` | counter | statements this agent sent to PostgreSQL ([`PgStore::statements`](crate::PgStore::statements)) |
///
/// ```
/// use prometheus_client::registry::Registry;
/// use taskweave_postgres::metrics::AgentMetrics;
///
/// let mut registry = Registry::default();
/// let metrics = AgentMetrics::register(&mut registry);
/// // PgAgent::connect(...)?.observe_with(metrics); then serve `registry`
/// // with MetricsEndpoint::serve.
/// let mut text = String::new();
/// prometheus_client::encoding::text::encode(&mut text, &registry)?;
/// assert!(text.contains("taskweave_agent_running 0"));
/// # drop(metrics);
/// # Ok::<(), std::fmt::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct AgentMetrics {
    claimed: Counter,
    succeeded: Counter,
    failed: Counter,
    cancelled: Counter,
    running: Gauge,
    statements: Mirror,
}

impl AgentMetrics {
    /// Metrics registered in `registry`, all at zero.
    pub fn register(registry: &mut Registry) -> AgentMetrics {
        let metrics = AgentMetrics {
            claimed: Counter::default(),
            succeeded: Counter::default(),
            failed: Counter::default(),
            cancelled: Counter::default(),
            running: Gauge::default(),
            statements: Mirror::default(),
        };
        let m = metrics.clone();
        registry.register("taskweave_agent_claimed", "Attempts claimed", m.claimed);
        registry.register(
            "taskweave_agent_succeeded",
            "Attempts reported a success",
            m.succeeded,
        );
        registry.register(
            "taskweave_agent_failed",
            "Attempts reported a failure",
            m.failed,
        );
        registry.register(
            "taskweave_agent_cancelled",
            "Attempts the cluster took back",
            m.cancelled,
        );
        registry.register(
            "taskweave_agent_running",
            "Attempts claimed and not yet finished nor taken back",
            m.running,
        );
        super::register_statements(registry, &m.statements);
        metrics
    }

    /// Statements the agent's store sent to PostgreSQL, as of its last
    /// step: a host reads its rate while idle.
    pub fn statements(&self) -> u64 {
        self.statements.0.get()
    }

    /// The statements its store has sent in all.
    pub(crate) fn sent(&self, statements: u64) {
        self.statements.reach(statements);
    }

    /// `claims` attempts were claimed, `running` are running in all.
    pub(crate) fn claimed(&self, claims: usize, running: usize) {
        self.claimed.inc_by(claims as u64);
        self.running.set(saturating_i64(running));
    }

    /// An attempt was reported, a success or a failure; `running` are left.
    pub(crate) fn reported(&self, succeeded: bool, running: usize) {
        if succeeded {
            self.succeeded.inc();
        } else {
            self.failed.inc();
        }
        self.running.set(saturating_i64(running));
    }

    /// `taken` attempts were taken back; `running` are left.
    pub(crate) fn taken_back(&self, taken: usize, running: usize) {
        self.cancelled.inc_by(taken as u64);
        self.running.set(saturating_i64(running));
    }
}
