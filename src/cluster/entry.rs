//! [`Entry`]: what the leader journals, the cluster's history.

use crate::scheduler::{Input, TaskReport};
use crate::{Instant, TenantId};

use super::contract::RunCommand;

/// One journal entry: a dispatcher input, or a decision of the cluster's
/// own that must survive a failover.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Entry<P> {
    /// An input applied to the dispatcher.
    Input(Input<P>),
    /// The cluster drains from here on: submissions are refused, and once
    /// no task is live the leader stops the cluster.
    Drain {
        /// When.
        now: Instant,
    },
    /// An agent's success with its output ([`Message::Completed`](super::Message::Completed)): the
    /// report is applied as [`Input::Report`], and only if the dispatcher
    /// accepts it (the attempt is the task's current one) is the output
    /// published as the task's result. An output from a fenced attempt is
    /// journaled with its refused report and goes nowhere.
    Completed {
        /// The success report (its outcome is always
        /// [`AttemptOutcome::Success`](crate::scheduler::AttemptOutcome::Success)).
        report: TaskReport,
        /// The task's result.
        output: P,
        /// When.
        now: Instant,
    },
    /// A client's command to the hosted runs ([`Message::Run`](super::Message::Run)), applied
    /// to the replica's workflow engine.
    Run {
        /// The command.
        command: RunCommand<P>,
        /// The tenant whose client sent it ([`Sender::Tenant`](super::Sender::Tenant)):
        /// the run it starts is the tenant's, and it signals or cancels
        /// only the tenant's runs. `None` for a client acting for no
        /// tenant (absent in entries of form 6 and earlier).
        #[cfg_attr(
            feature = "serde",
            serde(default, skip_serializing_if = "Option::is_none")
        )]
        tenant: Option<TenantId>,
        /// When.
        now: Instant,
    },
    /// The hosted runs' timers due at `now` fire.
    RunTimers {
        /// When.
        now: Instant,
    },
    /// A leader rebuilt its state from a store that went back in time (a
    /// database restored from a backup): the ids its state had handed out
    /// before are handed out no more, so a submitter holding one never
    /// reads another task's outcome under it. Journaled first when it
    /// leads again.
    SkipIds {
        /// New tasks' ids are of this generation or later (the high 32
        /// bits of a [`TaskId`](crate::TaskId)).
        tasks: u32,
        /// Hosted runs started without an id take ids from this one on.
        runs: u64,
        /// When.
        now: Instant,
    },
}

impl<P> Entry<P> {
    /// The instant the entry was made at.
    pub fn now(&self) -> Instant {
        match self {
            Entry::Input(input) => input.now(),
            Entry::Drain { now }
            | Entry::Completed { now, .. }
            | Entry::Run { now, .. }
            | Entry::RunTimers { now }
            | Entry::SkipIds { now, .. } => *now,
        }
    }

    /// The stored form of an entry: a store keeps it beside each entry
    /// and refuses a form it does not read. Forms 1–3 followed
    /// [`Input::FORMAT`]; form 4 added [`Entry::Completed`]; form 5
    /// [`Entry::Run`] and [`Entry::RunTimers`]; form 6
    /// [`RunCommand::Schedule`]; form 7 the tenant of an [`Entry::Run`];
    /// form 8 [`Entry::SkipIds`].
    pub const FORMAT: u32 = 8;

    /// The stored forms of an entry this library reads.
    pub const READABLE: std::ops::RangeInclusive<u32> = 1..=Self::FORMAT;
}
