//! [`LogLine`]: what a host tells its log, with how much it matters.

use std::fmt;

use taskweave::cluster::{NodeEvent, SessionEvent};

/// How much a [`LogLine`] matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// The cluster at work: a role taken, a snapshot restored, an agent
    /// registered.
    Info,
    /// Trouble the host rides out by itself: a refused message, a lost
    /// lease or agent, a store that does not answer (it tries again).
    Warn,
    /// Something a person must look at: state the host cannot read.
    Error,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
        })
    }
}

/// A line a host ([`PgNode`](super::PgNode), [`PgAgent`](super::PgAgent),
/// [`connect_patiently`](super::connect_patiently)) gives its `log`:
/// what happened, and its [`Level`]. It displays as its text, so
/// `&mut |line| eprintln!("node-a: {line}")` logs it; a host with a
/// structured logger (`tracing`, `log`) maps the level to its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogLine<'a> {
    /// How much it matters.
    pub level: Level,
    /// What happened, with its cause and remedy where it has them.
    pub text: &'a str,
}

impl<'a> LogLine<'a> {
    /// A line at [`Level::Info`].
    pub fn info(text: &'a str) -> Self {
        LogLine {
            level: Level::Info,
            text,
        }
    }

    /// A line at [`Level::Warn`].
    pub fn warn(text: &'a str) -> Self {
        LogLine {
            level: Level::Warn,
            text,
        }
    }

    /// A line at [`Level::Error`].
    pub fn error(text: &'a str) -> Self {
        LogLine {
            level: Level::Error,
            text,
        }
    }
}

impl fmt::Display for LogLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text)
    }
}

/// The level of a node's event.
pub(super) fn node_level(event: &NodeEvent) -> Level {
    match event {
        NodeEvent::BadAnswer { .. } => Level::Error,
        NodeEvent::Deposed { .. }
        | NodeEvent::Refused { .. }
        | NodeEvent::AgentLost { .. }
        | NodeEvent::StoreTrouble { .. } => Level::Warn,
        _ => Level::Info,
    }
}

/// The level of an agent session's event.
pub(super) fn session_level(event: &SessionEvent) -> Level {
    match event {
        SessionEvent::BadAnswer { .. } => Level::Error,
        SessionEvent::Refused { .. } | SessionEvent::StoreTrouble { .. } => Level::Warn,
        _ => Level::Info,
    }
}
