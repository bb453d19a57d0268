//! The `taskweave-pg` subcommands.

pub(crate) mod agent;
pub(crate) mod args;
pub(crate) mod audit;
pub(crate) mod bench;
pub(crate) mod cancel;
pub(crate) mod config;
pub(crate) mod drain;
pub(crate) mod init;
pub(crate) mod log;
pub(crate) mod metrics;
pub(crate) mod node;
pub(crate) mod outcome;
pub(crate) mod privilege;
pub(crate) mod redrive;
pub(crate) mod replay;
pub(crate) mod reset;
pub(crate) mod run;
pub(crate) mod run_show;
pub(crate) mod runs;
pub(crate) mod schedule;
pub(crate) mod status;
pub(crate) mod submit;
pub(crate) mod task_command;
pub(crate) mod ui;
pub(crate) mod workflow;

use std::time::Duration;

use taskweave::cluster::SessionConfig;
use taskweave::resilience::Fixed;
use taskweave::scheduler::DispatcherConfig;

/// The payload of a task run by the command line: any JSON value.
pub(crate) type Payload = serde_json::Value;

/// Time between an agent's heartbeats: a quarter of the 2 s of silence
/// after which the cluster counts it lost, so it may miss three.
pub(crate) const HEARTBEAT: Duration = Duration::from_millis(500);

/// The dispatcher configuration `init` stores, and a cluster's nodes run
/// with until an operator sets another (`taskweave-pg config set`):
/// heartbeats every 500 ms (an agent silent for 2 s is lost), three attempts 100 ms apart, the last 10,000 finished
/// tasks queryable, seed 13. A journal replays to the same state only
/// under the same configuration.
pub(crate) fn dispatcher_config() -> Result<DispatcherConfig, String> {
    let retry = Fixed::new(Duration::from_millis(100), 3).map_err(|e| e.to_string())?;
    DispatcherConfig::builder()
        .queue_capacity(1_000_000)
        .heartbeats(HEARTBEAT, 4)
        .retry_policy(retry)
        .terminal_history(10_000)
        .seed(13)
        .build()
        .map_err(|e| e.to_string())
}

/// The lease of `taskweave-pg node` (and the bench's nodes): it lasts
/// 1 s, so a standby takes over within about a second of the leader's
/// death, and is renewed every 333 ms: two renewals in time before it
/// would lapse (a commit renews it too, so a busy leader sends no renewal
/// of its own, and an idle one about two a second).
pub(crate) const LEASE: (Duration, Duration) = (Duration::from_secs(1), Duration::from_millis(333));

/// How long an idle node goes without reading when no notice wakes it
/// (`taskweave-pg node`, the bench's nodes): the net for a lost notice.
pub(crate) const NOTICE_POLL: Duration = Duration::from_secs(1);

/// How `taskweave-pg agent` paces its session, and the bench's agents
/// too: a heartbeat every [`HEARTBEAT`]; the leader's notice wakes the
/// agent when work is published, so the claim poll (every
/// [`NOTICE_POLL`]) only catches what a lost notice missed. A busy agent
/// learns of cancels by its checks, every 500 ms.
pub(crate) fn agent_session_config() -> Result<SessionConfig, String> {
    SessionConfig::builder()
        .heartbeat_every(HEARTBEAT)
        .claim_poll(NOTICE_POLL)
        .build()
        .map_err(|e| e.to_string())
}

/// The cluster's stored configuration, read through `store`, or
/// [`dispatcher_config`]'s defaults when none is stored yet (the first node
/// stores what it runs with).
pub(crate) fn cluster_dispatcher_config(
    store: &mut taskweave_postgres::PgStore<Payload>,
) -> Result<DispatcherConfig, String> {
    match store.stored_config().map_err(|e| e.to_string())? {
        Some(config) => Ok(config),
        None => dispatcher_config(),
    }
}

pub(crate) use log::logger;

#[cfg(test)]
mod tests {
    use super::{Duration, LEASE};

    /// Two renewals fall within a lease's life, so one lost or late
    /// renewal does not cost the leader its lease; and the lease stays
    /// short, so a standby takes over within about a second.
    #[test]
    fn the_lease_outlives_two_renewals_and_lapses_within_a_second() {
        let (ttl, renew_every) = LEASE;
        assert!(renew_every * 3 <= ttl + Duration::from_millis(1));
        assert!(renew_every * 2 < ttl);
        assert!(ttl <= Duration::from_secs(1));
    }
}
