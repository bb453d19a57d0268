//! The clients' side of the store contract: [`ClientOp`] and
//! [`ClientReply`].

use super::contract::{Lease, Message, MessageId, Outcome, RunEnd, Verdict};
use super::run_end_cursor::RunEndCursor;
use super::status::Status;
use crate::{TaskId, WorkflowId};

/// An operation of a client (submit, cancel, drain, query).
#[derive(Clone, Debug)]
pub enum ClientOp<P> {
    /// Post messages as [`Sender::Client`](super::Sender::Client). Answers
    /// [`ClientReply::Posted`] with their ids, in order.
    Post(Vec<Message<P>>),
    /// The verdicts of these messages (`None` while pending). Answers
    /// [`ClientReply::Verdicts`].
    Verdicts(Vec<MessageId>),
    /// The lease and the latest status. Answers [`ClientReply::Status`].
    Status,
    /// How these tasks ended (`None` while live, or once forgotten, and
    /// for a task of another tenant than the connection's: a client
    /// acting for no tenant reads the tasks of none). Answers
    /// [`ClientReply::Outcomes`].
    Outcomes(Vec<TaskId>),
    /// How these hosted runs ended (`None` while active, or once
    /// forgotten: the engine no longer remembers the run and its entry was
    /// trimmed). Answers [`ClientReply::Runs`].
    Runs(Vec<WorkflowId>),
    /// The ends published after `after`, in [`RunEndCursor`] order, at
    /// most `limit` of them (at most
    /// [`MAX_RUN_ENDS_PAGE`](super::MAX_RUN_ENDS_PAGE)); forgotten ends
    /// are not answered. Answers [`ClientReply::RunEndsAfter`]. A client that
    /// waits for many runs reads their ends this way, each once, instead
    /// of asking after every open run at every poll.
    RunEndsAfter {
        /// The place of the last end read ([`RunEndCursor::START`] first).
        after: RunEndCursor,
        /// The most ends to answer.
        limit: usize,
    },
}

/// A store's answer to a [`ClientOp`].
// The status is large, and a client reads it a few times a second at most:
// not worth a box in every match of the replies.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum ClientReply<P> {
    /// The ids of the posted messages.
    Posted(Vec<MessageId>),
    /// Each message's verdict, `None` while it is pending.
    Verdicts(Vec<Option<Verdict>>),
    /// The lease and the last status a leader published.
    Status(Lease, Option<Status>),
    /// Each task's end and result, in order: `None` while it is live,
    /// for an id the cluster never gave out, and once the end was
    /// forgotten (rule 8).
    Outcomes(Vec<Option<Outcome<P>>>),
    /// Each run's end, in order: `None` while it is active, for an id no
    /// run took, and once the end was forgotten.
    Runs(Vec<Option<RunEnd<P>>>),
    /// Ends after the cursor asked, each with its own place, in order:
    /// the last one's place is where the next read starts.
    RunEndsAfter(Vec<(RunEndCursor, RunEnd<P>)>),
}

impl<P> ClientReply<P> {
    /// The reply as a log names it: its kind and what it holds, but not
    /// the status's or the outputs' contents (which need not print).
    pub fn summary(&self) -> String {
        match self {
            ClientReply::Posted(ids) => format!("Posted({ids:?})"),
            ClientReply::Verdicts(verdicts) => format!("Verdicts({verdicts:?})"),
            ClientReply::Status(lease, _) => format!("Status({lease:?}, …)"),
            ClientReply::Outcomes(outcomes) => format!("Outcomes({} tasks)", outcomes.len()),
            ClientReply::Runs(runs) => format!("Runs({} runs)", runs.len()),
            ClientReply::RunEndsAfter(ends) => match ends.last() {
                Some((last, _)) => format!("RunEndsAfter({} ends, to {last:?})", ends.len()),
                None => "RunEndsAfter(none)".to_string(),
            },
        }
    }
}
