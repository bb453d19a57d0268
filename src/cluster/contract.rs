//! The store contract: the operations the roles ask of their store, the
//! answers, and the failures — the rules are in [`Store`]'s docs.

use std::time::Duration;

use crate::agent::AgentProfile;
use crate::scheduler::{TaskReport, TaskSpec};
use crate::{AgentId, AttemptToken, Instant, TaskId, TenantId, WorkflowId};

pub use super::client_op::{ClientOp, ClientReply};
pub use super::entry::Entry;
pub use super::finished::Finished;
pub use super::node_state::NodeState;
use super::redrive::Redrive;
pub use super::runs::{
    RunCommand, RunEnd, RunsSnapshot, ScheduleCommand, ScheduledStart, SchedulesSnapshot,
};
pub use super::sender::Sender;
use super::status::Status;
pub use super::task_end::{Outcome, TaskEnd};

/// A store-assigned, strictly increasing inbox message id.
pub type MessageId = u64;

/// Why an operation did not answer with its reply. See the [`Store`]
/// docs for what a role does with each.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreFailure {
    /// The operation certainly did not take effect.
    #[error("the store refused the operation (it did not take effect): {cause}")]
    Failed {
        /// The store's own words (a SQLSTATE and message, say).
        cause: String,
    },
    /// The operation may or may not have taken effect.
    #[error("the store's answer was lost (the operation may have taken effect): {cause}")]
    Unknown {
        /// The store's own words.
        cause: String,
    },
    /// The epoch was deposed or its lease expired; nothing was written.
    #[error("fenced: epoch {epoch} no longer holds the lease (now epoch {current})")]
    Fenced {
        /// The epoch the operation carried.
        epoch: u64,
        /// The lease's epoch now.
        current: u64,
    },
    /// The journal or the inbox is not as the operation expected; nothing
    /// was written.
    #[error("conflict: {what}")]
    Conflict {
        /// What did not match.
        what: String,
    },
}

/// One stored journal entry.
#[derive(Clone, Debug, PartialEq)]
pub struct JournalRow<P> {
    /// Its position: 1, 2, … without holes.
    pub seq: u64,
    /// The epoch of the leader that appended it.
    pub epoch: u64,
    /// The entry.
    pub entry: Entry<P>,
    /// Its size in the store's encoding, for the figures (0 where the
    /// store keeps values, not bytes).
    pub bytes: usize,
}

/// The lease as the store sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The current epoch: 0 before the first leader.
    pub epoch: u64,
    /// Who took it (a node's name).
    pub holder: String,
    /// Not expired by the store's clock.
    pub held: bool,
    /// How long it lasts yet by the store's clock, rounded up; zero when
    /// not held. A follower reads the lease again when it would expire,
    /// not every renewal period (one that hears zero for a held lease
    /// reads it every renewal period, as before).
    pub left: std::time::Duration,
    /// A drained cluster stopped: every role ends.
    pub stopped: bool,
}

/// What an agent or a client posts to the leader.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Message<P> {
    /// An agent starts. A new incarnation of a registered agent replaces
    /// the old one, whose attempts fail over at once.
    Register {
        /// What it can do.
        profile: AgentProfile,
    },
    /// An agent is alive.
    Heartbeat,
    /// An agent finished an attempt (a success without an output, or a
    /// failure).
    Report(TaskReport),
    /// An agent's attempt succeeded with an output: the task's result,
    /// which the leader publishes beside its end ([`Outcome::output`]).
    /// The store measures it ([`InboxMessage::bytes`]); one over the
    /// leader's [`NodeConfig::max_output_bytes`](super::NodeConfig::max_output_bytes)
    /// fails the task for good, with a reason that names the limit.
    Completed {
        /// The task.
        task: TaskId,
        /// The attempt's fencing token.
        token: AttemptToken,
        /// The result.
        output: P,
    },
    /// A client submits tasks.
    Submit(Vec<TaskSpec<P>>),
    /// A client cancels a task.
    Cancel(TaskId),
    /// A client drains the cluster: no more submissions; once the work in
    /// flight is done, every role stops.
    Drain,
    /// A client's command to the runs the cluster hosts
    /// ([`Node::host_runs`](super::Node::host_runs)).
    Run(RunCommand<P>),
    /// A client (an operator: not a tenant's) sends dead letters back to
    /// the queue as new tasks; the verdict is [`Verdict::Redriven`]. A
    /// draining cluster refuses it.
    Redrive(Redrive),
}

/// A pending inbox message as the store hands it to the leader.
#[derive(Clone, Debug, PartialEq)]
pub struct InboxMessage<P> {
    /// Its id.
    pub id: MessageId,
    /// Who posted it.
    pub sender: Sender,
    /// The message, or why its stored body does not decode (the leader
    /// refuses it with that reason).
    pub body: Result<Message<P>, String>,
    /// The size of its stored body in the store's encoding, which the
    /// leader holds an output to ([`NodeConfig::max_output_bytes`](super::NodeConfig::max_output_bytes));
    /// 0 where the store keeps values, not bytes.
    pub bytes: usize,
}

/// What the leader answered a message.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Verdict {
    /// Applied (a registration, a heartbeat, a report, a cancel, a drain).
    Accepted,
    /// A submission: each task's id, or why it was refused, in order.
    Submitted(Vec<Result<TaskId, String>>),
    /// Not applied, and why.
    Refused(String),
    /// A run's start: the run it names (new, or the existing run with the
    /// id it asked for).
    Run(WorkflowId),
    /// A redrive ([`Message::Redrive`]): each letter requeued, as
    /// `(dead-lettered task, new task)`, and each letter the queue
    /// refused (it stays a dead letter), with why. Both empty when no
    /// letter matched.
    Redriven {
        /// Letters requeued, oldest first.
        requeued: Vec<(TaskId, TaskId)>,
        /// Letters refused, with why.
        refused: Vec<(TaskId, String)>,
    },
}

impl Verdict {
    /// Whether anything in it was refused.
    pub fn is_refusal(&self) -> bool {
        match self {
            Verdict::Accepted | Verdict::Run(_) => false,
            Verdict::Submitted(tasks) => tasks.iter().any(Result::is_err),
            Verdict::Refused(_) => true,
            Verdict::Redriven { refused, .. } => !refused.is_empty(),
        }
    }
}

/// An assignment in the outbox.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Assignment<P> {
    /// The task.
    pub task: TaskId,
    /// The agent to run it.
    pub agent: AgentId,
    /// The attempt's fencing token: the report must carry it.
    pub token: AttemptToken,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The incarnation of the agent the leader assigned it to: only that
    /// incarnation claims it (rule 5). 0 stands for any incarnation (rows
    /// written by a build before incarnations were stamped); a claimed row
    /// answers with the incarnation that claimed it.
    #[cfg_attr(feature = "serde", serde(default))]
    pub incarnation: u64,
    /// The task's payload.
    pub payload: P,
}

/// What a commit publishes beside its journal entries.
#[derive(Clone, Debug, PartialEq)]
pub struct Outputs<P> {
    /// New assignments (inserted as `ready`, idempotent on task and token).
    pub assign: Vec<Assignment<P>>,
    /// Attempts stopped: their rows are deleted, whatever their state (an
    /// agent still running one has its report refused).
    pub cancel: Vec<(TaskId, AttemptToken)>,
    /// Attempts whose report this commit journals: their rows are deleted.
    pub closed: Vec<(TaskId, AttemptToken)>,
    /// Tasks whose end this commit journals, for clients to read
    /// ([`ClientOp::Outcomes`]); kept as long as the journal entries
    /// that ended them (rule 8). A store keeps a task's first end, in
    /// this commit or an earlier one, except that [`TaskEnd::Redriven`]
    /// replaces the end its dead letter had (its output too, with none).
    /// A leader names each task once per commit.
    pub ended: Vec<(TaskId, TaskEnd)>,
    /// The outputs of tasks in `ended` that completed with one: the
    /// store keeps each beside its task's end.
    pub results: Vec<(TaskId, P)>,
    /// The tenant of each task in `ended` that belongs to one: the store
    /// shows that task's end and output to that tenant's clients alone,
    /// and a task without a tenant's to clients acting for no tenant.
    pub tenants: Vec<(TaskId, TenantId)>,
    /// Hosted runs that ended with this commit, for clients to read
    /// ([`ClientOp::Runs`]); kept as long as the journal entries that
    /// ended them, as outcomes are. A run's end replaces one an earlier
    /// commit published for the same id (a run restarted once its engine
    /// forgot the id).
    pub runs: Vec<RunEnd<P>>,
    /// The status to publish, if it changed.
    pub status: Option<Status>,
}

impl<P> Default for Outputs<P> {
    fn default() -> Self {
        Outputs {
            assign: Vec::new(),
            cancel: Vec::new(),
            closed: Vec::new(),
            ended: Vec::new(),
            results: Vec::new(),
            tenants: Vec::new(),
            runs: Vec::new(),
            status: None,
        }
    }
}

impl<P> Outputs<P> {
    /// Nothing to publish.
    pub fn is_empty(&self) -> bool {
        self.assign.is_empty()
            && self.cancel.is_empty()
            && self.closed.is_empty()
            && self.ended.is_empty()
            && self.runs.is_empty()
            && self.status.is_none()
    }
}

/// An operation a node (leader or follower) asks of the store.
// One operation per round trip to the store: its size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum NodeOp<P> {
    /// Read the lease. Answers [`NodeReply::Lease`].
    ReadLease,
    /// Take the lease with epoch `seen + 1` for `ttl`, if it is still at
    /// `seen` and has expired (or was never taken). Answers
    /// [`NodeReply::Taken`] or [`NodeReply::Lease`] when it was not free.
    TakeLease {
        /// The epoch the node saw expire.
        seen: u64,
        /// The node's name.
        holder: String,
        /// How long the lease lasts unless renewed.
        ttl: Duration,
    },
    /// Renew the lease (fenced). Answers [`NodeReply::Done`].
    Renew {
        /// The leader's epoch.
        epoch: u64,
        /// How long from now.
        ttl: Duration,
    },
    /// The latest snapshot. Answers [`NodeReply::Snapshot`].
    LatestSnapshot,
    /// Journal entries from `from` on, at most `limit`, in order. Answers
    /// [`NodeReply::Journal`]; entries trimmed behind a snapshot are
    /// [`NodeReply::Trimmed`].
    ReadJournal {
        /// The first entry wanted.
        from: u64,
        /// The most to answer.
        limit: usize,
    },
    /// Pending inbox messages, oldest first, at most `limit`. A store may
    /// answer fewer to bound the bytes it hands out, or to read senders
    /// fairly (the PostgreSQL store answers at most 64 messages and 4 MiB
    /// past the first of one agent, and 32 MiB past the first in all), but
    /// at least one while any is pending, and each sender's messages in
    /// their order. Answers [`NodeReply::Inbox`].
    ReadInbox {
        /// The most to answer.
        limit: usize,
    },
    /// Outbox rows `ready` or `claimed`: what agents may be working on.
    /// Answers [`NodeReply::Outstanding`].
    ReadOutstanding,
    /// Rule 3: journal, consume, publish — one fenced transaction. Answers
    /// [`NodeReply::Done`].
    Commit {
        /// The leader's epoch.
        epoch: u64,
        /// How long the lease lasts from now.
        ttl: Duration,
        /// The sequence number of the first entry.
        first_seq: u64,
        /// The entries.
        entries: Vec<Entry<P>>,
        /// The inbox messages consumed, with their verdicts.
        consumed: Vec<(MessageId, Verdict)>,
        /// What the leader decided.
        outputs: Outputs<P>,
    },
    /// Store a snapshot of the state after entry `seq` (fenced); with
    /// `trim`, delete the journal and snapshots behind the previous
    /// snapshot, with the outcomes and run ends they published, but not
    /// the ends of the runs this snapshot's engine still remembers
    /// ([`RunsSnapshot::remembered_runs`](super::RunsSnapshot::remembered_runs));
    /// with `forget_through`, delete the consumed inbox messages
    /// with an id up to it (their verdicts can no longer be read). Answers
    /// [`NodeReply::Done`].
    PutSnapshot {
        /// The leader's epoch.
        epoch: u64,
        /// How long the lease lasts from now.
        ttl: Duration,
        /// The last entry it covers.
        seq: u64,
        /// The state.
        snapshot: Box<NodeState<P>>,
        /// Trim behind the previous snapshot.
        trim: bool,
        /// Forget consumed messages up to this id.
        forget_through: Option<MessageId>,
    },
    /// Stop the drained cluster (fenced): store the final state after
    /// entry `seq` and set the lease's `stopped`. Answers
    /// [`NodeReply::Done`].
    Stop {
        /// The leader's epoch.
        epoch: u64,
        /// The last entry applied.
        seq: u64,
        /// The final state.
        snapshot: Box<NodeState<P>>,
    },
}

impl<P> NodeOp<P> {
    /// The operation's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            NodeOp::ReadLease => "read the lease",
            NodeOp::TakeLease { .. } => "take the lease",
            NodeOp::Renew { .. } => "renew the lease",
            NodeOp::LatestSnapshot => "read the latest snapshot",
            NodeOp::ReadJournal { .. } => "read the journal",
            NodeOp::ReadInbox { .. } => "read the inbox",
            NodeOp::ReadOutstanding => "read the outbox",
            NodeOp::Commit { .. } => "commit",
            NodeOp::PutSnapshot { .. } => "store a snapshot",
            NodeOp::Stop { .. } => "stop the cluster",
        }
    }
}

/// A store's answer to a [`NodeOp`].
#[derive(Clone, Debug)]
pub enum NodeReply<P> {
    /// Written.
    Done,
    /// The lease.
    Lease(Lease),
    /// The lease was taken with this epoch.
    Taken {
        /// The new epoch.
        epoch: u64,
    },
    /// The latest snapshot with the last entry it covers, if any.
    Snapshot(Option<(u64, Box<NodeState<P>>)>),
    /// Journal entries, in order, without holes, starting at `from`.
    Journal(Vec<JournalRow<P>>),
    /// Entry `from` was trimmed behind a snapshot.
    Trimmed,
    /// Pending messages, oldest first.
    Inbox(Vec<InboxMessage<P>>),
    /// Outbox rows `ready` or `claimed`.
    Outstanding(Vec<(TaskId, AttemptToken)>),
}

/// An operation an agent session asks of the store. The store takes the
/// agent's identity from the connection (with PostgreSQL, its role and
/// row-level security), so an agent can act only in its own name.
#[derive(Clone, Debug)]
pub enum AgentOp<P> {
    /// A new incarnation number for an agent that starts (strictly greater
    /// than every one issued before). Answers [`AgentReply::Incarnation`].
    Incarnate {
        /// The agent.
        agent: AgentId,
    },
    /// Post messages (a registration, a heartbeat) as `sender`. Answers
    /// [`AgentReply::Posted`].
    Post {
        /// The agent and its incarnation.
        sender: Sender,
        /// The messages.
        messages: Vec<Message<P>>,
    },
    /// Claim up to `limit` of the `ready` rows assigned to the agent's
    /// `incarnation`. Answers [`AgentReply::Claimed`] with those and every
    /// row this incarnation claimed before and has not reported (rule 5).
    Claim {
        /// The agent.
        agent: AgentId,
        /// Its incarnation.
        incarnation: u64,
        /// The most new rows.
        limit: usize,
    },
    /// Post reports and mark their rows done (rule 6). Answers
    /// [`AgentReply::Posted`].
    Report {
        /// The agent and its incarnation.
        sender: Sender,
        /// The reports, with the outputs of successes that have one.
        reports: Vec<Finished<P>>,
    },
    /// The agent's refused messages it has not seen, marked seen. Answers
    /// [`AgentReply::Refusals`].
    TakeRefusals {
        /// The agent.
        agent: AgentId,
    },
}

/// A store's answer to an [`AgentOp`].
#[derive(Clone, Debug)]
pub enum AgentReply<P> {
    /// An incarnation number.
    Incarnation(u64),
    /// Posted; `stopped` when the cluster has stopped.
    Posted {
        /// The cluster stopped: the agent ends.
        stopped: bool,
    },
    /// Claimed rows.
    Claimed {
        /// The rows.
        rows: Vec<Assignment<P>>,
        /// The cluster stopped: the agent ends.
        stopped: bool,
    },
    /// Refused messages: (id, reason).
    Refusals(Vec<(MessageId, String)>),
}

/// A store that keeps the contract. `now` is the caller's clock; a store
/// with a clock of its own (PostgreSQL's) ignores it, and [`MemStore`]
/// (which has none) judges leases by it. [`MemStore`] and the PostgreSQL
/// store of the `taskweave-postgres` crate both implement it, and both
/// pass the same checks ([`check_store`](super::check_store)).
///
///
/// # What the store holds
///
/// | collection | written by | what it is |
/// |---|---|---|
/// | lease | nodes | one row: `epoch`, `holder`, `expires_at` (the store's own clock), `stopped` |
/// | journal | the leader | entries `1, 2, 3, …` without holes, each with the epoch that wrote it |
/// | snapshots | the leader | the dispatcher's state after journal entry `seq` |
/// | inbox | agents and clients | messages in id order, each consumed once, with a verdict (a store may delete an agent's accepted message as it consumes it: nobody asks for that verdict) |
/// | outbox | the leader | assignments: `ready → claimed → done`, deleted once journaled or cancelled |
/// | status | the leader | the latest [`Status`](super::Status) |
/// | outcomes | the leader | how each task ended ([`TaskEnd`]) and its output, with the journal entry that ended it and the task's tenant: a client reads only the outcomes of its own tenant's tasks (of tasks with no tenant, for a client acting for none); the first end published stays, but a redrive's ([`TaskEnd::Redriven`]) replaces its letter's |
///
/// # The rules
///
/// 1. **One operation is one transaction.** Each [`NodeOp`], [`AgentOp`]
///    and [`ClientOp`] is applied entirely or not at all.
/// 2. **Fencing.** Every operation that carries an `epoch` first checks
///    that the lease is at that epoch and has not expired by the store's
///    clock, renews it for `ttl`, and only then writes. Otherwise it
///    writes nothing and answers [`StoreFailure::Fenced`]. A deposed or
///    paused leader can therefore never write, whatever its own clock says.
/// 3. **A commit is the unit of durability.** [`NodeOp::Commit`] appends
///    journal entries at `first_seq, first_seq + 1, …`, marks the inbox
///    messages they came from consumed with their verdicts, and writes the
///    outbox rows, outcomes and status the leader derived from them, all
///    in one transaction. A leader releases nothing it decided before the commit
///    that journals why; if the commit fails, nothing it decided exists.
///    A `first_seq` that is not the journal's next entry is
///    [`StoreFailure::Conflict`].
/// 4. **The inbox is consumed once.** A message is pending until a commit
///    consumes it; a commit that names a message already consumed is a
///    [`StoreFailure::Conflict`] and writes nothing.
/// 5. **Outbox rows are idempotent.** Inserting an assignment that exists
///    (same task and token) changes nothing; deleting a row that is gone
///    changes nothing. A row is claimed only by the agent it names, and
///    only by the incarnation it was assigned to
///    ([`Assignment::incarnation`]; 0: any); a claim answers every row
///    that incarnation claimed and has not reported, so a claim whose
///    answer was lost is simply asked again. A restarted agent therefore
///    never claims its previous life's attempts behind the leader's back
///    (the leader fails them over when it reads the new registration), and
///    a late claim of the previous life cannot take the rows of the new
///    one.
/// 6. **Reports close their rows.** [`AgentOp::Report`] posts the reports
///    and marks done the rows they answer that the reporting incarnation
///    claimed, in one transaction. A row marked done stays until the
///    leader deletes it (rule 8): a leader that takes over re-inserts the
///    assignments its journal holds in flight, and the done row keeps a
///    reported attempt from being claimed and run again (rule 5).
/// 7. **Reads are consistent.** A read sees every transaction that was
///    answered before it was sent.
/// 8. **Storage is bounded.** A commit deletes the outbox rows of the
///    attempts it cancels or whose reports it journals, and a snapshot
///    deletes the journal behind the previous snapshot (`trim`) and the
///    inbox messages consumed before it (`forget_through`); the outcomes
///    of tasks ended by a trimmed entry go with it, and so do the ends of
///    hosted runs, except those of the runs the snapshot's engine still
///    remembers (its bounded retention: a run id is an idempotency key,
///    and its end stays readable as long). What the store keeps grows
///    with the work in flight, one snapshot's worth of history and the
///    runs' retention, not with the work ever done. A client that reads
///    task outcomes less often than the leader snapshots can miss one, and
///    finds out by its own timeout.
///
/// # Failures
///
/// Every operation answers `Result<reply, StoreFailure>`:
///
/// * [`StoreFailure::Failed`]: the operation certainly did not take effect
///   (refused before it was sent, or rolled back). Retry after a backoff.
/// * [`StoreFailure::Unknown`]: it may or may not have taken effect (the
///   connection broke after the request left). A role finds out by reading:
///   a node re-reads the journal, an agent claims again; posts that may be
///   doubled (heartbeats, registrations of the same incarnation, reports)
///   are harmless twice, because the node dedupes or fences them.
/// * [`StoreFailure::Fenced`]: the epoch is not the lease's any more, or
///   the lease expired; nothing was written. A leader goes back to
///   following.
/// * [`StoreFailure::Conflict`]: the journal or inbox is not as the
///   operation expected (another writer, or an earlier copy of the same
///   commit, got there first); nothing was written. A leader reads its
///   commit back, as after a lost answer.
///
/// [`MemStore`]: super::MemStore
pub trait Store<P> {
    /// Executes a node's operation.
    ///
    /// # Errors
    ///
    /// A [`StoreFailure`], meaning what the [`Store`] docs say.
    fn node(&mut self, op: NodeOp<P>, now: Instant) -> Result<NodeReply<P>, StoreFailure>;

    /// Executes an agent's operation.
    ///
    /// # Errors
    ///
    /// A [`StoreFailure`].
    fn agent(&mut self, op: AgentOp<P>, now: Instant) -> Result<AgentReply<P>, StoreFailure>;

    /// Executes a client's operation.
    ///
    /// # Errors
    ///
    /// A [`StoreFailure`].
    fn client(&mut self, op: ClientOp<P>, now: Instant) -> Result<ClientReply<P>, StoreFailure>;
}
