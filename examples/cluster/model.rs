//! What every role agrees on: the task payload, the dispatcher's
//! configuration, the wall clock as an `Instant`, and the messages agents
//! and clients post to the leader.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use taskweave::Instant;
use taskweave::resilience::Fixed;
use taskweave::scheduler::{DispatcherConfig, TaskReport, TaskSpec};

/// A task's payload: its number in the submission, so logs and the audit
/// can name it. The work itself is simulated by the agent.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Job {
    /// 0-based number of the task in its run.
    pub(crate) n: u32,
}

/// Expected time between an agent's heartbeats.
pub(crate) const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(250);
/// Missed heartbeats after which an agent counts as lost (2 s of silence).
pub(crate) const HEARTBEAT_TOLERANCE: u32 = 8;
/// How long a leadership lease lasts unless renewed.
pub(crate) const LEASE_TTL: Duration = Duration::from_millis(1_000);

/// The dispatcher configuration of the cluster. Leader, standby and the
/// audit build the same one: a journal replays to the same state only under
/// the same configuration and seed.
pub(crate) fn dispatcher_config() -> DispatcherConfig {
    // A fixed 20 ms retry delay, three attempts in all.
    let retry = Fixed::new(Duration::from_millis(20), 3).expect("three attempts is valid");
    DispatcherConfig::builder()
        .queue_capacity(1_000_000)
        .heartbeats(HEARTBEAT_INTERVAL, HEARTBEAT_TOLERANCE)
        .retry_policy(retry)
        .terminal_history(1_000)
        .seed(13)
        .build()
        .expect("the cluster's dispatcher configuration is valid")
}

/// The wall clock in milliseconds since the Unix epoch: the `now` a leader
/// stamps on each input, and the unit of the figures the roles record.
pub(crate) fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// [`wall_ms`] as a dispatcher instant.
pub(crate) fn wall_now() -> Instant {
    Instant::from_millis(wall_ms())
}

/// A message posted to the leader's inbox. The leader turns each into a
/// journaled input; the body is untrusted and a malformed one is refused.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) enum Message {
    /// An agent process starts with `capacity` slots.
    Register {
        /// Tasks it runs at once.
        capacity: u32,
    },
    /// An agent is alive.
    Heartbeat,
    /// An agent finished an attempt.
    Report(TaskReport),
    /// A client submits tasks.
    Submit(Vec<TaskSpec<Job>>),
    /// The driver asks the leader to write its final state and stop.
    Shutdown,
}

impl Message {
    /// The `kind` column of the inbox row.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Message::Register { .. } => "register",
            Message::Heartbeat => "heartbeat",
            Message::Report(_) => "report",
            Message::Submit(_) => "submit",
            Message::Shutdown => "shutdown",
        }
    }
}

/// A small deterministic hash (splitmix64), for the agents' simulated
/// failures and work times.
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}
