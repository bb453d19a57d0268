//! The idle phase: what a quiet cluster costs the database.

use std::time::{Duration, Instant};

use postgres::Client;
use serde_json::json;
use taskweave_postgres::metrics::{AgentMetrics, NodeMetrics};

use super::harness::NodeThread;
use super::meter::db_counters;
use super::{Bench, figure, round};

/// How long the roles are left alone before the count starts (the
/// follower's catch-up, the agents' first claims), and how long it runs.
const SETTLE: Duration = Duration::from_secs(1);
const IDLE_FOR: Duration = Duration::from_secs(10);

impl Bench {
    /// With nothing submitted: the statements per second each role sends
    /// (the leader, a follower started for the count, every agent), from
    /// the roles' own counts, and the transactions per second the database
    /// counted for all of them (`pg_stat_database`, which its backends
    /// update about once a second).
    pub(super) fn idle(
        &mut self,
        admin: &mut Client,
        leader: &NodeMetrics,
        agents: &[AgentMetrics],
    ) -> Result<(), String> {
        let follower = NodeThread::start(&self.db, "bench-node-idle")?;
        follower.wait_log("role: Following", Duration::from_secs(60))?;
        std::thread::sleep(SETTLE);
        let count = || {
            let agents: Vec<u64> = agents.iter().map(AgentMetrics::statements).collect();
            (leader.statements(), follower.metrics.statements(), agents)
        };
        let before = count();
        let (xacts, _) = db_counters(admin)?;
        let started = Instant::now();
        std::thread::sleep(IDLE_FOR);
        let after = count();
        let (xacts_after, _) = db_counters(admin)?;
        let seconds = started.elapsed().as_secs_f64();
        follower.halt()?;
        let rate = |from: u64, to: u64| round(to.saturating_sub(from) as f64 / seconds, 1);
        let agent_rates: Vec<f64> = before
            .2
            .iter()
            .zip(&after.2)
            .map(|(&from, &to)| rate(from, to))
            .collect();
        let agent_max = agent_rates.iter().copied().fold(0.0, f64::max);
        let leader_rate = rate(before.0, after.0);
        let follower_rate = rate(before.1, after.1);
        // One less: the bench's own read of the counters.
        let database = round((xacts_after - xacts - 1).max(0) as f64 / seconds, 1);
        figure(json!({
            "figure": "idle_statements_per_second",
            "leader": leader_rate, "follower": follower_rate,
            "agent_max": agent_max, "agents": agent_rates,
            "database_transactions_per_second": database,
            "seconds": round(seconds, 1),
        }));
        self.summary.push(format!(
            "bench: idle, statements per second: leader {leader_rate}, follower \
             {follower_rate}, busiest agent {agent_max} ({} agents); the database counted \
             {database} transactions per second",
            agent_rates.len()
        ));
        Ok(())
    }
}
