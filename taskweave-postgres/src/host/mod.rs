//! Hosts for the cluster's sans-IO roles on PostgreSQL: [`PgNode`] runs a
//! node in a thread of the host's process, [`PgAgent`] drives an agent
//! session for the host's own agent code, and [`PgClient`] submits,
//! cancels, drains and reads the status; [`AsyncPgAgent`] and
//! [`AsyncPgClient`] do the same for async (tokio) hosts.
//!
//! Each keeps one connection ([`PgStore`], or an async link), which
//! reconnects by itself after PostgreSQL restarts; the role backs off and
//! resumes from the journal, so a host process outlives a restart of its
//! database.

mod agent;
mod async_agent;
mod async_client;
mod async_link;
mod client;
mod hosted_session;
mod json_runs;
mod log_line;
mod node;
mod refusal_log;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use taskweave::{AgentId, Instant};

pub use agent::PgAgent;
pub use async_agent::{AsyncPgAgent, Handled};
pub use async_client::AsyncPgClient;
pub use client::PgClient;
pub use json_runs::json_run_codec;
pub use log_line::{Level, LogLine};
pub use node::{NodeExit, PgNode};

use crate::schema::AGENT_SESSION;
use crate::{PgError, PgStore};

/// The wall clock as an [`Instant`]: nanoseconds since the Unix epoch.
/// Every role of a cluster stamps its inputs with it, so a new leader's
/// clock continues its predecessor's (within the hosts' clock skew; time
/// that steps back counts as no time passing).
pub fn wall_now() -> Instant {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    Instant::from_nanos(u64::try_from(since.as_nanos()).unwrap_or(u64::MAX))
}

/// The channels an agent listens on: its own (the leader notifies it when
/// it publishes work for it) and the cluster's (the stop).
fn agent_channels(agent: AgentId) -> [String; 2] {
    [
        format!("taskweave_work_{}", agent.get()),
        "taskweave_cluster".to_string(),
    ]
}

/// The name of an agent's sessions in `pg_stat_activity`.
fn agent_session(agent: AgentId) -> String {
    format!("{AGENT_SESSION}{}", agent.get())
}

/// How long to sleep until `at`, at most `cap`.
fn until(at: Instant, cap: Duration) -> Duration {
    at.saturating_duration_since(wall_now()).min(cap)
}

/// Connects, retrying with backoff while the server cannot be reached;
/// `log` hears each failure with its cause. A missing or old schema or a
/// bad connection string ends the attempt: waiting would not fix them.
///
/// # Errors
///
/// [`PgError::Schema`], [`PgError::Conninfo`], or any error once `give_up`
/// answers `true`.
pub fn connect_patiently<P>(
    conninfo: &str,
    log: &mut dyn FnMut(LogLine<'_>),
    give_up: &dyn Fn() -> bool,
) -> Result<PgStore<P>, PgError> {
    let mut backoff = Backoff::default();
    loop {
        match PgStore::connect(conninfo) {
            Ok(store) => return Ok(store),
            Err(e) => std::thread::sleep(backoff.after(e, log, give_up)?),
        }
    }
}

/// The pauses between attempts to connect: 100 ms, doubling up to 5 s.
#[derive(Debug)]
struct Backoff {
    pause: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            pause: Duration::from_millis(100),
        }
    }
}

impl Backoff {
    /// After a failed attempt: how long to pause before the next, which
    /// `log` hears with the cause; or the error itself when waiting would
    /// not fix it (a missing or old schema, a bad connection string, no
    /// tokio runtime) or `give_up` answers `true`.
    fn after(
        &mut self,
        e: PgError,
        log: &mut dyn FnMut(LogLine<'_>),
        give_up: &dyn Fn() -> bool,
    ) -> Result<Duration, PgError> {
        if matches!(
            e,
            PgError::Schema { .. } | PgError::Conninfo(_) | PgError::NoRuntime
        ) || give_up()
        {
            return Err(e);
        }
        let pause = self.pause;
        log(LogLine::warn(&format!("{e}; trying again in {pause:?}")));
        self.pause = (pause * 2).min(Duration::from_secs(5));
        Ok(pause)
    }
}
