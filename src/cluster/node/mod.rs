//! The node role: one state machine that restores, follows, takes the
//! lease and leads, over the [store contract](super::Store).

mod build;
mod events;
mod handle;
mod intake;
#[cfg(test)]
mod intake_tests;
mod replica;
mod status_clock;
mod task_tenants;
mod wake;
mod went_back;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::Instant;
use crate::scheduler::{Dispatcher, DispatcherConfig};

use super::authorizer::{AllowRoles, Authorizer};
use super::config::{ConfigError, NodeConfig};
use super::contract::{MessageId, NodeOp, Outputs, Sender};
use super::runs::RunCodec;
use super::status::InboxLoad;
pub use events::{NodeEvent, Role};
pub(crate) use replica::{Effect, Replica};
pub use wake::Notice;
use went_back::Contradiction;

/// How many of the inbox messages it consumed last a leader remembers, to
/// recognise a store that hands one out again.
const CONSUMED_KEPT: usize = 4_096;

/// Where the node is in its cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Read the latest snapshot; then catch up.
    Restore { resume: Option<u64> },
    /// Read the journal until it is exhausted; then read the lease.
    CatchUp { resume: Option<u64> },
    /// Read the lease; lead again if `resume` still holds it.
    CheckLease { resume: Option<u64> },
    /// Tail the journal, then look at the lease.
    Follow,
    /// Try to take the lease seen at `seen`.
    Take { seen: u64 },
    /// Lead with `epoch`.
    Lead { epoch: u64, stage: Stage },
    /// The cluster stopped.
    Stopped,
}

/// What a leader does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Read the outbox's outstanding rows to reconcile them.
    Reconcile,
    /// Read the inbox.
    Intake,
    /// Find out whether the commit of entries `first_seq..` whose answer
    /// was lost (or that `conflicted`) landed: read its first entry back.
    Confirm { first_seq: u64, conflicted: bool },
    /// Send the unconfirmed commit again: it did not land.
    Resend,
    /// The store contradicted this leader as `what` says: read entry
    /// `seq`, the last it applied, to tell a store that went back in time
    /// from one that did not.
    CheckEnd { seq: u64, what: Contradiction },
}

/// The operation outstanding, and what its answer means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sent {
    Snapshot,
    Journal {
        limit: usize,
    },
    Lease,
    Take,
    Renew,
    Outstanding,
    Inbox,
    /// A commit; `dirty` when the replica applied entries it holds.
    Commit {
        dirty: bool,
        first_seq: u64,
        last_seq: u64,
    },
    /// The read of a lost (or `conflicted`) commit's first entry.
    Confirm {
        first_seq: u64,
        conflicted: bool,
    },
    /// The read of the last entry applied, after the store contradicted
    /// this leader as `what` says.
    CheckEnd {
        seq: u64,
        what: Contradiction,
    },
    PutSnapshot {
        seq: u64,
        consumed: Option<MessageId>,
    },
    Stop {
        seq: u64,
    },
}

/// The node role: one state machine that restores, follows, takes the
/// lease and leads, over the [store contract](super::Store).
///
/// ```text
///            ┌─────────── failure while leading (state rebuilt) ───────────┐
///            ▼                                                             │
/// Restore ─▶ CatchUp ─▶ Follow ──lease expired──▶ TakeLease ─▶ CatchUp ─▶ Lead
///   ▲  latest snapshot,   read journal,                        the old       │ reconcile the outbox,
///   │  then the journal   read lease                           leader's tail │ then intake → commit
///   └──── journal trimmed behind a snapshot          fenced ◀────────────────┘
/// ```
///
/// The host calls [`Node::poll_op`] for the next operation, executes it on
/// its store (however long it takes: the node waits), feeds the answer to
/// [`Node::handle_reply`], and sleeps until [`Node::poll_timeout`] when
/// there is nothing to do. One operation is outstanding at a time.
///
/// **Leading.** The leader reads up to a batch of inbox messages, turns
/// them into journal entries, applies them to its replica, and commits the
/// entries, the messages' verdicts and the outbox rows the dispatcher
/// decided in one fenced transaction: nothing it decided is visible before
/// the entries that explain it are durable. The replica already applied
/// the batch, so a commit that fails is never dropped: refused
/// ([`StoreFailure::Failed`]), it is sent again, the very same, after a
/// backoff; its answer lost or in conflict, the leader reads the
/// commit's first entry back: there under its epoch, the commit landed (a
/// commit lands whole or not at all) and leading goes on; absent, the
/// same commit is sent again; under another epoch, the leader was deposed
/// and rebuilds. Every commit of one epoch at one place therefore holds
/// the same entries, and an entry found there proves the replica's state.
///
/// [`StoreFailure::Failed`]: super::StoreFailure::Failed
///
/// **Taking over.** A follower takes an expired lease with the next
/// epoch, applies whatever its predecessor committed last, then publishes
/// every attempt its state holds in flight and cancels every outbox row
/// that is no longer in flight.
///
/// `P` is the task payload; the store encodes it as it likes.
pub struct Node<P> {
    config: NodeConfig,
    dispatcher_config: DispatcherConfig,
    /// How hosted runs meet the payload, on a node that hosts them.
    codec: Option<RunCodec<P>>,
    /// Asked about every inbox message the roles allow.
    authorizer: Box<dyn Authorizer<P> + Send>,
    replica: Replica<P>,
    phase: Phase,
    sent: Option<Sent>,
    /// A commit built from an answer, sent by the next `poll_op`.
    queued: Option<(Sent, NodeOp<P>)>,
    /// No operation before this instant (backoff, polling periods).
    wake_at: Instant,
    /// No operation before this instant, whatever a notice says: the
    /// backoff after a failure.
    hold_until: Instant,
    /// A leader reads its inbox from this instant on (set back to the
    /// present by a notice), or when a timer of its state is due.
    inbox_at: Instant,
    /// When the last notice of an inbox post came: a read sent before it
    /// may have missed the post.
    inbox_noticed: Instant,
    /// A follower reads the journal from this instant on (set back by a
    /// notice); until then its rounds read only the lease.
    journal_at: Instant,
    /// When a follower last read the journal.
    journal_read_at: Instant,
    /// When the outstanding operation was sent.
    sent_at: Instant,
    /// When the leader last sent a write that renewed its lease, and
    /// landed (commits renew it too): the lease lasts at least a
    /// lifetime from then.
    renewed_at: Instant,
    /// When the lease a follower last read expires, by the time the store
    /// said it had left (zero when not held, or not known): with notices
    /// the follower reads it again then, not every renewal period.
    lease_until: Instant,
    /// When the leader publishes its status next.
    status: status_clock::StatusClock,
    /// The inbox messages read since the last published status, by sender.
    inbox_read: BTreeMap<Sender, u64>,
    snapshot_seq: u64,
    /// The highest inbox message this node consumed as leader.
    consumed_max: Option<MessageId>,
    /// What was consumed when the last snapshot was stored: the next
    /// snapshot forgets the messages up to it.
    forget_through: Option<MessageId>,
    /// Inbox messages this replica consumed (the latest
    /// [`CONSUMED_KEPT`]): the store must not hand them out again.
    consumed_ids: BTreeSet<MessageId>,
    /// The messages the commit in flight consumes, when it journals no
    /// entry (only verdicts): if it fails, nothing shows whether it
    /// landed, and the store may rightly hand them out again.
    consumed_in_flight: Vec<MessageId>,
    /// The journal said this entry was trimmed: the snapshot restored
    /// next must cover it.
    trimmed_at: Option<u64>,
    /// When the operation that first failed since the last inbox read
    /// (or settled follow) was sent: an outage that lasts a heartbeat
    /// interval makes the next intake excuse the agents' silence.
    outage_since: Option<Instant>,
    /// What the store holds that this node could not read, until an
    /// answer reads well again.
    failure: Option<String>,
    /// The commit with entries last sent, kept until the store confirms
    /// it: one the leader cannot prove landed is sent again as it was.
    unconfirmed: Option<(Sent, NodeOp<P>)>,
    /// The ids a state this leader threw away when its store went back
    /// in time had handed out: journaled first when it leads again.
    skip_issued: Option<went_back::Issued>,
    events: VecDeque<NodeEvent>,
}

impl<P> std::fmt::Debug for Node<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.config.name)
            .field("phase", &self.phase)
            .field("next_seq", &self.replica.next_seq)
            .finish_non_exhaustive()
    }
}

impl<P: Clone> Node<P> {
    /// A node that will restore from the store and follow. Every node of
    /// a cluster must be built with the same `dispatcher` configuration:
    /// a journal replays to the same state only under it.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when the dispatcher has no heartbeats: without
    /// them the attempts of an agent that dies would never fail over.
    pub fn new(config: NodeConfig, dispatcher: DispatcherConfig) -> Result<Self, ConfigError> {
        if dispatcher.heartbeats().is_none() {
            return Err(ConfigError(
                "a cluster's dispatcher needs heartbeats (DispatcherConfigBuilder::heartbeats): \
                 without them a dead agent's attempts never fail over"
                    .into(),
            ));
        }
        let mut node = Node {
            replica: Replica::empty(dispatcher.clone(), None),
            dispatcher_config: dispatcher,
            codec: None,
            authorizer: Box::new(AllowRoles),
            config,
            phase: Phase::Restore { resume: None },
            sent: None,
            queued: None,
            wake_at: Instant::ZERO,
            hold_until: Instant::ZERO,
            inbox_at: Instant::ZERO,
            inbox_noticed: Instant::ZERO,
            journal_at: Instant::ZERO,
            journal_read_at: Instant::ZERO,
            sent_at: Instant::ZERO,
            renewed_at: Instant::ZERO,
            lease_until: Instant::ZERO,
            status: status_clock::StatusClock::default(),
            inbox_read: BTreeMap::new(),
            snapshot_seq: 0,
            consumed_max: None,
            forget_through: None,
            consumed_ids: BTreeSet::new(),
            consumed_in_flight: Vec::new(),
            trimmed_at: None,
            outage_since: None,
            failure: None,
            unconfirmed: None,
            skip_issued: None,
            events: VecDeque::new(),
        };
        node.replica.watch(&node.config.pools);
        Ok(node)
    }

    /// The hosted runs' engine, on a node that hosts runs: the state after
    /// [`applied`](Self::applied) journal entries. Read-only.
    pub fn runs(&self) -> Option<&crate::workflow::WorkflowEngine<P>> {
        self.replica.engine()
    }

    /// The state after [`applied`](Self::applied) journal entries, as the
    /// node's next snapshot would hold it.
    pub fn state(&self) -> super::contract::NodeState<P> {
        self.replica.state()
    }

    /// What the node is doing.
    pub fn role(&self) -> Role {
        if let (Some(why), false) = (&self.failure, self.phase == Phase::Stopped) {
            return Role::Failed(why.clone());
        }
        match self.phase {
            Phase::Lead { epoch, .. } => Role::Leading { epoch },
            Phase::Follow | Phase::Take { .. } | Phase::CheckLease { resume: None } => {
                Role::Following
            }
            Phase::Restore { .. } | Phase::CatchUp { .. } | Phase::CheckLease { .. } => {
                Role::Starting
            }
            Phase::Stopped => Role::Stopped,
        }
    }

    /// The replica's dispatcher: the state after [`applied`](Self::applied)
    /// journal entries. Read-only.
    pub fn dispatcher(&self) -> &Dispatcher<P> {
        &self.replica.dispatcher
    }

    /// The last journal entry applied.
    pub fn applied(&self) -> u64 {
        self.replica.next_seq.saturating_sub(1)
    }

    /// The next event to log, if any.
    pub fn poll_event(&mut self) -> Option<NodeEvent> {
        self.events.pop_front()
    }

    /// When the node wants [`poll_op`](Self::poll_op) called again: `None`
    /// while an operation is outstanding or the node has stopped.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.sent.is_some() || self.phase == Phase::Stopped {
            return None;
        }
        if self.queued.is_some() {
            return Some(Instant::ZERO);
        }
        Some(self.wake_at)
    }

    /// The next operation for the store, if one is due at `now`. Call
    /// [`handle_reply`](Self::handle_reply) with its answer before asking
    /// again: while it is outstanding this answers `None`.
    pub fn poll_op(&mut self, now: Instant) -> Option<NodeOp<P>> {
        if self.sent.is_some() {
            return None;
        }
        if let Some((sent, op)) = self.queued.take() {
            if matches!(sent, Sent::Commit { dirty: true, .. }) {
                self.unconfirmed = Some((sent, op.clone()));
            }
            self.sent = Some(sent);
            self.sent_at = now;
            return Some(op);
        }
        if now < self.wake_at {
            return None;
        }
        let ttl = self.config.lease_ttl;
        let (sent, op) = match self.phase {
            Phase::Stopped => return None,
            Phase::Restore { .. } => (Sent::Snapshot, NodeOp::LatestSnapshot),
            Phase::Follow if now < self.journal_at => {
                // Nothing noticed: only the lease, to see the leader live.
                self.phase = Phase::CheckLease { resume: None };
                (Sent::Lease, NodeOp::ReadLease)
            }
            Phase::CatchUp { .. } | Phase::Follow => {
                let limit = self.config.journal_page;
                let from = self.replica.next_seq;
                self.journal_read_at = now;
                (Sent::Journal { limit }, NodeOp::ReadJournal { from, limit })
            }
            Phase::CheckLease { .. } => (Sent::Lease, NodeOp::ReadLease),
            Phase::Take { seen } => (
                Sent::Take,
                NodeOp::TakeLease {
                    seen,
                    holder: self.config.name.clone(),
                    ttl,
                },
            ),
            Phase::Lead {
                stage: Stage::Reconcile,
                ..
            } => (Sent::Outstanding, NodeOp::ReadOutstanding),
            Phase::Lead {
                epoch,
                stage: Stage::Intake,
            } => match self.leader_op(epoch, now) {
                Some(op) => op,
                None => {
                    self.rest();
                    return None;
                }
            },
            Phase::Lead {
                stage:
                    Stage::Confirm {
                        first_seq,
                        conflicted,
                    },
                ..
            } => (
                Sent::Confirm {
                    first_seq,
                    conflicted,
                },
                NodeOp::ReadJournal {
                    from: first_seq,
                    limit: 1,
                },
            ),
            Phase::Lead {
                stage: Stage::CheckEnd { seq, what },
                ..
            } => (
                Sent::CheckEnd { seq, what },
                NodeOp::ReadJournal {
                    from: seq,
                    limit: 1,
                },
            ),
            Phase::Lead {
                epoch,
                stage: Stage::Resend,
            } => {
                // Its answer decides what comes next, as the first time.
                self.phase = Phase::Lead {
                    epoch,
                    stage: Stage::Intake,
                };
                if let Some((sent, op)) = &self.unconfirmed {
                    (*sent, op.clone())
                } else if let Some(op) = self.leader_op(epoch, now) {
                    op
                } else {
                    self.rest();
                    return None;
                }
            }
        };
        self.sent = Some(sent);
        self.sent_at = now;
        Some(op)
    }

    /// Entries from one snapshot to the next, for the state held now.
    fn snapshot_interval(&self) -> u64 {
        let items = self.replica.dispatcher.live_tasks() + self.replica.active_runs();
        self.config.snapshot_interval(items as u64)
    }

    /// What an idle-or-busy leader sends next: stop a drained cluster,
    /// store a due snapshot, renew a lease about to lapse, or read the
    /// inbox when that is due; `None` while nothing is.
    fn leader_op(&mut self, epoch: u64, now: Instant) -> Option<(Sent, NodeOp<P>)> {
        let ttl = self.config.lease_ttl;
        let seq = self.applied();
        if self.replica.draining
            && self.replica.dispatcher.live_tasks() == 0
            && self.replica.active_runs() == 0
        {
            let snapshot = Box::new(self.replica.state());
            return Some((
                Sent::Stop { seq },
                NodeOp::Stop {
                    epoch,
                    seq,
                    snapshot,
                },
            ));
        }
        if !self.replica.draining && seq >= self.snapshot_seq + self.snapshot_interval() {
            let snapshot = Box::new(self.replica.state());
            let trim = self.config.trim;
            let op = NodeOp::PutSnapshot {
                epoch,
                ttl,
                seq,
                snapshot,
                trim,
                forget_through: self.forget_through.filter(|_| trim),
            };
            let consumed = self.consumed_max;
            return Some((Sent::PutSnapshot { seq, consumed }, op));
        }
        if now.saturating_duration_since(self.renewed_at) >= self.config.renew_every {
            return Some((Sent::Renew, NodeOp::Renew { epoch, ttl }));
        }
        if now < self.read_at() {
            return None;
        }
        let limit = self.config.batch;
        Some((Sent::Inbox, NodeOp::ReadInbox { limit }))
    }

    /// The commit of `batch` (already applied), sent by the next
    /// [`poll_op`](Self::poll_op); `quiet` when it only takes heartbeats.
    fn queue_commit(&mut self, epoch: u64, batch: intake::Batch<P>, quiet: bool, now: Instant) {
        let intake::Batch {
            entries,
            consumed,
            mut outputs,
            events,
            ..
        } = batch;
        self.events.extend(events);
        if !entries.is_empty() || !consumed.is_empty() {
            self.status.changed(quiet);
        }
        self.consumed_max = consumed
            .iter()
            .map(|(id, _)| *id)
            .max()
            .max(self.consumed_max);
        self.consumed_ids.extend(consumed.iter().map(|(id, _)| *id));
        self.consumed_in_flight = match entries.is_empty() {
            true => consumed.iter().map(|(id, _)| *id).collect(),
            false => Vec::new(),
        };
        while self.consumed_ids.len() > CONSUMED_KEPT {
            self.consumed_ids.pop_first();
        }
        self.add_status(epoch, &mut outputs, now);
        let last_seq = self.applied();
        let first_seq = last_seq + 1 - entries.len() as u64;
        let sent = Sent::Commit {
            dirty: !entries.is_empty(),
            first_seq,
            last_seq,
        };
        let op = NodeOp::Commit {
            epoch,
            ttl: self.config.lease_ttl,
            first_seq,
            entries,
            consumed,
            outputs,
        };
        self.queued = Some((sent, op));
    }

    /// An idle leader still owes the status of its last commits.
    fn owes_status(&self, now: Instant) -> bool {
        self.status.owes(now, self.config.status_every)
    }

    /// Adds the status to `outputs`: this leader's first, or one owed.
    fn add_status(&mut self, epoch: u64, outputs: &mut Outputs<P>, now: Instant) {
        if self.status.publishes(now, self.config.status_every) {
            let oldest = self.replica.oldest_queued();
            let mut status = super::status::read(&self.replica.dispatcher, oldest, now);
            status.epoch = epoch;
            status.leader = self.config.name.clone();
            status.seq = self.applied();
            status.draining = self.replica.draining;
            status.pools = self.replica.dispatcher.scale_hints(now);
            status.runs = self.replica.runs_status();
            status.inbox = InboxLoad::of(&std::mem::take(&mut self.inbox_read));
            outputs.status = Some(status);
            self.status.published(now);
        }
    }
}
