//! [`NodeMetrics`]: what a node knows, as Prometheus metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use taskweave::Priority;
use taskweave::cluster::{Node, NodeEvent, Role};

use super::Mirror;

/// The label of each priority, `P0` (critical) to `P3` (low).
const PRIORITIES: [&str; Priority::LEVELS] = ["P0", "P1", "P2", "P3"];

/// A label set: one `priority`.
type PriorityLabel = [(&'static str, &'static str); 1];

/// A node's metrics, for a Prometheus scrape ([`MetricsEndpoint`](super::MetricsEndpoint)).
///
/// The task figures are the dispatcher's as this node knows it: a leader's
/// state, or a standby's replica of it (a standby follows the journal, so
/// both give the same totals). The counters are the cluster's since it was
/// initialised, not this process's: a node that starts restores them from
/// the latest snapshot. The lease, commit and journal figures are this
/// process's own.
///
/// | metric | kind | what |
/// |---|---|---|
/// | `taskweave_queue_depth{priority}` | gauge | tasks queued at `P0`..`P3` |
/// | `taskweave_tasks_delayed` | gauge | tasks waiting for a retry's backoff or a start time |
/// | `taskweave_tasks_in_flight` | gauge | attempts running on agents |
/// | `taskweave_dead_letters` | gauge | tasks in the dead-letter queue |
/// | `taskweave_tasks_{submitted,completed,retried,dead_lettered,expired,cancelled}_total` | counter | tasks, by what happened |
/// | `taskweave_attempts_failed_total` | counter | attempts that failed (each retried or dead-lettered) |
/// | `taskweave_leading` | gauge | 1 while this node holds the lease |
/// | `taskweave_lease_epoch` | gauge | the epoch of the lease it holds, or held last (0: never) |
/// | `taskweave_takeovers_total` | counter | times it took the lease |
/// | `taskweave_depositions_total` | counter | times it lost the lease while leading |
/// | `taskweave_journal_applied` | gauge | the last journal entry in its state |
/// | `taskweave_journal_bytes_total` | counter | bytes of journal entries it appended as leader |
/// | `taskweave_commit_seconds` | histogram | a leader's commit: one fenced transaction |
/// | `taskweave_messages_refused_total` | counter | inbox messages it refused as leader |
/// | `taskweave_agents_lost_total` | counter | agents it declared lost as leader |
/// | `taskweave_store_troubles_total` | counter | store operations that failed and were retried |
/// | `taskweave_store_statements_total` | counter | statements this node sent to PostgreSQL ([`PgStore::statements`](crate::PgStore::statements)) |
///
/// ```
/// use prometheus_client::registry::Registry;
/// use taskweave_postgres::metrics::NodeMetrics;
///
/// let mut registry = Registry::default();
/// let metrics = NodeMetrics::register(&mut registry);
/// // PgNode::new(...)?.observe_with(metrics.clone()); then serve
/// // `registry` with MetricsEndpoint::serve_when(addr, registry,
/// // move || metrics.is_restored()).
/// let mut text = String::new();
/// prometheus_client::encoding::text::encode(&mut text, &registry)?;
/// assert!(text.contains("taskweave_queue_depth"));
/// # drop(metrics);
/// # Ok::<(), std::fmt::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct NodeMetrics {
    /// Whether the node has restored the cluster's state.
    restored: Arc<AtomicBool>,
    queue_depth: Family<PriorityLabel, Gauge>,
    delayed: Gauge,
    in_flight: Gauge,
    dead_letters: Gauge,
    submitted: Mirror,
    completed: Mirror,
    failed: Mirror,
    retried: Mirror,
    dead_lettered: Mirror,
    expired: Mirror,
    cancelled: Mirror,
    leading: Gauge,
    lease_epoch: Gauge,
    takeovers: Counter,
    depositions: Counter,
    applied: Gauge,
    journal_bytes: Mirror,
    commit_seconds: Histogram,
    refused: Counter,
    agents_lost: Counter,
    store_troubles: Counter,
    statements: Mirror,
}

impl NodeMetrics {
    /// Metrics registered in `registry`, all at zero.
    pub fn register(registry: &mut Registry) -> NodeMetrics {
        let metrics = NodeMetrics {
            restored: Arc::new(AtomicBool::new(false)),
            queue_depth: Family::default(),
            delayed: Gauge::default(),
            in_flight: Gauge::default(),
            dead_letters: Gauge::default(),
            submitted: Mirror::default(),
            completed: Mirror::default(),
            failed: Mirror::default(),
            retried: Mirror::default(),
            dead_lettered: Mirror::default(),
            expired: Mirror::default(),
            cancelled: Mirror::default(),
            leading: Gauge::default(),
            lease_epoch: Gauge::default(),
            takeovers: Counter::default(),
            depositions: Counter::default(),
            applied: Gauge::default(),
            journal_bytes: Mirror::default(),
            // 0.5 ms to about 8 s.
            commit_seconds: Histogram::new(exponential_buckets(0.000_5, 2.0, 15)),
            refused: Counter::default(),
            agents_lost: Counter::default(),
            store_troubles: Counter::default(),
            statements: Mirror::default(),
        };
        for label in PRIORITIES {
            // Every level shows, at zero too.
            metrics
                .queue_depth
                .get_or_create(&[("priority", label)])
                .set(0);
        }
        let m = metrics.clone();
        let r = registry;
        r.register(
            "taskweave_queue_depth",
            "Tasks queued, by priority",
            m.queue_depth,
        );
        r.register(
            "taskweave_tasks_delayed",
            "Tasks waiting for a backoff or a start time",
            m.delayed,
        );
        r.register(
            "taskweave_tasks_in_flight",
            "Attempts running on agents",
            m.in_flight,
        );
        r.register(
            "taskweave_dead_letters",
            "Tasks in the dead-letter queue",
            m.dead_letters,
        );
        r.register(
            "taskweave_tasks_submitted",
            "Tasks submitted",
            m.submitted.0,
        );
        r.register(
            "taskweave_tasks_completed",
            "Tasks completed",
            m.completed.0,
        );
        r.register(
            "taskweave_attempts_failed",
            "Attempts that failed",
            m.failed.0,
        );
        r.register(
            "taskweave_tasks_retried",
            "Failed attempts retried",
            m.retried.0,
        );
        r.register(
            "taskweave_tasks_dead_lettered",
            "Tasks dead-lettered",
            m.dead_lettered.0,
        );
        r.register(
            "taskweave_tasks_expired",
            "Tasks past their deadline",
            m.expired.0,
        );
        r.register(
            "taskweave_tasks_cancelled",
            "Tasks cancelled",
            m.cancelled.0,
        );
        r.register(
            "taskweave_leading",
            "1 while this node holds the lease",
            m.leading,
        );
        r.register(
            "taskweave_lease_epoch",
            "The epoch of the lease this node holds or held last",
            m.lease_epoch,
        );
        r.register(
            "taskweave_takeovers",
            "Times this node took the lease",
            m.takeovers,
        );
        r.register(
            "taskweave_depositions",
            "Times this node lost the lease while leading",
            m.depositions,
        );
        r.register(
            "taskweave_journal_applied",
            "The last journal entry in this node's state",
            m.applied,
        );
        r.register_with_unit(
            "taskweave_journal",
            "Bytes of journal entries this node appended as leader",
            Unit::Bytes,
            m.journal_bytes.0,
        );
        r.register_with_unit(
            "taskweave_commit",
            "A leader's commit: one fenced transaction",
            Unit::Seconds,
            m.commit_seconds,
        );
        r.register(
            "taskweave_messages_refused",
            "Inbox messages refused",
            m.refused,
        );
        r.register(
            "taskweave_agents_lost",
            "Agents declared lost",
            m.agents_lost,
        );
        r.register(
            "taskweave_store_troubles",
            "Store operations that failed and were retried",
            m.store_troubles,
        );
        super::register_statements(r, &m.statements);
        metrics
    }

    /// Whether the node has restored the cluster's state (it follows or
    /// leads): until then its task figures read zero, not the cluster's.
    /// Serve the metrics with [`MetricsEndpoint::serve_when`](super::MetricsEndpoint::serve_when)
    /// and this as the gate, so that no scrape sees a counter jump from
    /// zero to the cluster's totals.
    pub fn is_restored(&self) -> bool {
        self.restored.load(Ordering::Relaxed)
    }

    /// Reads `node`'s state: its role, the queue, the counters. `O(1)`.
    /// The task figures are read once the node follows or leads.
    pub fn observe<P: Clone>(&self, node: &Node<P>) {
        match node.role() {
            Role::Leading { epoch } => {
                self.leading.set(1);
                self.lease_epoch.set(saturating_i64(epoch));
                self.restored.store(true, Ordering::Relaxed);
            }
            Role::Following => {
                self.leading.set(0);
                self.restored.store(true, Ordering::Relaxed);
            }
            _ => {
                self.leading.set(0);
            }
        }
        if !self.is_restored() {
            return;
        }
        self.applied.set(saturating_i64(node.applied()));
        let dispatcher = node.dispatcher();
        let mut queued = 0;
        for (priority, label) in Priority::ALL.into_iter().zip(PRIORITIES) {
            let depth = dispatcher.queue_depth(priority);
            queued += depth;
            self.queue_depth
                .get_or_create(&[("priority", label)])
                .set(saturating_i64(depth));
        }
        let waiting = dispatcher.waiting();
        self.delayed
            .set(saturating_i64(waiting.saturating_sub(queued)));
        self.in_flight.set(saturating_i64(
            dispatcher.live_tasks().saturating_sub(waiting),
        ));
        self.dead_letters
            .set(saturating_i64(dispatcher.dead_letters().len()));
        let counters = dispatcher.counters();
        self.submitted.reach(counters.submitted);
        self.completed.reach(counters.completed);
        self.failed.reach(counters.failed);
        self.retried.reach(counters.retried);
        self.dead_lettered.reach(counters.dead_lettered);
        self.expired.reach(counters.expired);
        self.cancelled.reach(counters.cancelled);
    }

    /// Counts what `event` tells: a takeover, a deposition, a refusal, a
    /// lost agent, a store operation tried again.
    pub fn saw(&self, event: &NodeEvent) {
        match event {
            NodeEvent::TookLease { epoch } => {
                self.takeovers.inc();
                self.lease_epoch.set(saturating_i64(*epoch));
            }
            NodeEvent::Deposed { .. } => {
                self.depositions.inc();
            }
            NodeEvent::Refused { .. } => {
                self.refused.inc();
            }
            NodeEvent::AgentLost { .. } => {
                self.agents_lost.inc();
            }
            NodeEvent::StoreTrouble { .. } => {
                self.store_troubles.inc();
            }
            _ => {}
        }
    }

    /// The statements its store has sent in all
    /// ([`PgStore::statements`](crate::PgStore::statements)).
    pub fn sent(&self, statements: u64) {
        self.statements.reach(statements);
    }

    /// Statements the node's store sent to PostgreSQL, as last shown
    /// to [`sent`](Self::sent): a host reads its rate while idle.
    pub fn statements(&self) -> u64 {
        self.statements.0.get()
    }

    /// A commit that took `took`, and the journal bytes its store has
    /// appended in all ([`PgStore::journal_bytes`](crate::PgStore::journal_bytes)).
    pub fn committed(&self, took: Duration, journal_bytes: u64) {
        self.commit_seconds.observe(took.as_secs_f64());
        self.journal_bytes.reach(journal_bytes);
    }
}

/// `value` as a gauge's `i64`, `i64::MAX` past it.
pub(super) fn saturating_i64(value: impl TryInto<i64>) -> i64 {
    value.try_into().unwrap_or(i64::MAX)
}
