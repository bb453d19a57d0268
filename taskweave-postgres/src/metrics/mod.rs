//! Prometheus metrics for the cluster's roles: [`NodeMetrics`] (a node's
//! queue, counters, lease, commits and journal), [`AgentMetrics`] (what an
//! agent session claimed and reported), and [`MetricsEndpoint`], which
//! serves a registry over HTTP. `taskweave-pg node` and `agent` serve
//! theirs with `--metrics ADDR`.
//!
//! The registry is `prometheus-client`'s (the Prometheus project's own Rust
//! client, OpenMetrics text): a host may register these metrics beside its
//! own and serve them its own way.

mod agent;
mod endpoint;
mod node;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

pub use agent::AgentMetrics;
pub use endpoint::MetricsEndpoint;
pub use node::NodeMetrics;

/// A Prometheus counter that follows a total counted elsewhere (the
/// dispatcher's counters, a store's bytes): it rises to each total it is
/// shown and never falls, so a total read from an older snapshot cannot
/// make the counter look reset.
#[derive(Clone, Debug, Default)]
struct Mirror(Counter);

impl Mirror {
    /// Rises to `total` if it is below it.
    fn reach(&self, total: u64) {
        let now = self.0.get();
        if total > now {
            self.0.inc_by(total - now);
        }
    }
}

/// Registers a role's count of statements sent to PostgreSQL.
fn register_statements(registry: &mut Registry, statements: &Mirror) {
    registry.register(
        "taskweave_store_statements",
        "Statements this role's store sent to PostgreSQL",
        statements.0.clone(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mirror_rises_to_each_total_and_never_falls() {
        let mirror = Mirror::default();
        for (total, shown) in [(5, 5), (3, 5), (9, 9), (9, 9), (u64::MAX, u64::MAX)] {
            mirror.reach(total);
            assert_eq!(mirror.0.get(), shown);
        }
    }
}
