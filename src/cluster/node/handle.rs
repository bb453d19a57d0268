//! A node's answers from the store: what each means in each phase, and
//! what the node does after a failure or an answer it cannot use.

use super::super::contract::{JournalRow, NodeReply, StoreFailure};
use super::events::NodeEvent;
use super::intake::intake;
use super::replica::Replica;
use super::went_back::{Contradiction, first_handed_out_again};
use super::{Node, Phase, Sent, Stage};
use crate::Instant;

impl<P: Clone> Node<P> {
    /// Feeds the store's answer to the operation [`poll_op`](Self::poll_op)
    /// last returned. An answer with nothing outstanding is ignored.
    pub fn handle_reply(&mut self, reply: Result<NodeReply<P>, StoreFailure>, now: Instant) {
        let Some(sent) = self.sent.take() else {
            return;
        };
        match reply {
            Ok(reply) => self.answered(sent, reply, now),
            Err(failure) => self.failed(sent, failure, now),
        }
    }

    /// An answer of the operation's kind. The backoff is reset only by an
    /// answer that moves the node on (entries applied, a write landed, a
    /// settled follower), so answers that contradict each other keep
    /// growing it.
    fn answered(&mut self, sent: Sent, reply: NodeReply<P>, now: Instant) {
        // Any answer of the right kind reads: what could not be read
        // before is judged again by this one.
        self.failure = None;
        match (sent, reply) {
            (Sent::Snapshot, NodeReply::Snapshot(latest)) => self.restored(latest, now),
            (Sent::Journal { limit }, NodeReply::Journal(rows)) => {
                let full = rows.len() >= limit;
                let before = self.replica.next_seq;
                for row in rows {
                    if row.seq != self.replica.next_seq {
                        let expected = self.replica.next_seq;
                        let why = format!(
                            "the journal answered entry {} where entry {expected} was expected",
                            row.seq
                        );
                        return self.unreadable(sent, why, now);
                    }
                    // A follower acts on nothing; errors are part of the
                    // history it replays.
                    // A follower publishes nothing: the leader did.
                    let _ = self.replica.apply(row.entry);
                }
                if self.replica.next_seq > before {
                    self.trimmed_at = None;
                    self.config.backoff.reset();
                }
                if !full {
                    self.journal_read_up(now);
                    self.journal_exhausted(now);
                }
            }
            (Sent::Journal { .. }, NodeReply::Trimmed) => {
                // A snapshot covers that entry: the one restored next must.
                self.trimmed_at = Some(self.replica.next_seq);
                self.phase = Phase::Restore {
                    resume: self.resume(),
                };
            }
            (Sent::Lease, NodeReply::Lease(lease)) => {
                self.saw_lease(&lease, now);
                let resume = self.resume();
                if let (Some(epoch), false) = (resume, lease.stopped) {
                    if lease.held && lease.epoch == epoch {
                        return self.lead(epoch);
                    }
                    // A leader that rebuilt after a failure finds its lease
                    // gone: it was deposed, as surely as if a write of its
                    // had been fenced.
                    let cause = StoreFailure::Fenced {
                        epoch,
                        current: lease.epoch,
                    };
                    self.deposed(epoch, cause, now);
                }
                if lease.stopped {
                    self.phase = Phase::Stopped;
                } else if !lease.held {
                    self.phase = Phase::Take { seen: lease.epoch };
                } else {
                    // A follower that finds a leader has settled: the
                    // leader grants the grace of an outage, if any.
                    if resume.is_none() {
                        self.config.backoff.reset();
                        self.outage_since = None;
                    }
                    self.follow(now);
                }
            }
            (Sent::Take, NodeReply::Taken { epoch }) => {
                self.events.push_back(NodeEvent::TookLease { epoch });
                self.renewed_at = self.sent_at;
                // Apply whatever the old leader committed last, then lead.
                self.phase = Phase::CatchUp {
                    resume: Some(epoch),
                };
            }
            (Sent::Take, NodeReply::Lease(lease)) => {
                self.saw_lease(&lease, now);
                if lease.stopped {
                    self.phase = Phase::Stopped;
                } else {
                    // Another node took it first: this one has settled.
                    if lease.held {
                        self.config.backoff.reset();
                    }
                    self.follow(now);
                }
            }
            (Sent::Outstanding, NodeReply::Outstanding(rows)) => {
                if let Phase::Lead { epoch, .. } = self.phase {
                    let mut outputs = super::Outputs {
                        assign: self.replica.in_flight(),
                        ..super::Outputs::default()
                    };
                    let live: std::collections::BTreeSet<_> =
                        outputs.assign.iter().map(|a| (a.task, a.token)).collect();
                    outputs.cancel = rows.into_iter().filter(|r| !live.contains(r)).collect();
                    self.events.push_back(NodeEvent::Leading {
                        epoch,
                        seq: self.applied(),
                        in_flight: live.len(),
                    });
                    self.status.restart();
                    self.phase = Phase::Lead {
                        epoch,
                        stage: Stage::Intake,
                    };
                    let mut batch = super::intake::Batch::publishing(outputs);
                    if let Some(issued) = self.skip_issued.take() {
                        batch.journal(&mut self.replica, issued.entry(now));
                    }
                    self.queue_commit(epoch, batch, false, now);
                }
            }
            (Sent::Inbox, NodeReply::Inbox(messages)) => {
                if let Some(id) = first_handed_out_again(&self.consumed_ids, &messages) {
                    return self.contradicted(Contradiction::HandedOutAgain(id), now);
                }
                self.config.backoff.reset();
                if let Phase::Lead { epoch, .. } = self.phase {
                    // Frozen or starved past its lease, the node may lead
                    // no more, and its clock has leapt past every agent's
                    // heartbeats: it renews before it decides anything by
                    // that clock (the messages stay pending in the store).
                    if now.saturating_duration_since(self.renewed_at) >= self.config.lease_ttl {
                        return;
                    }
                    let outage = self.outage_ended(now);
                    let answered = messages.len();
                    let heartbeats = super::wake::few_heartbeats(&messages);
                    for message in &messages {
                        *self.inbox_read.entry(message.sender).or_default() += 1;
                    }
                    let batch = intake(
                        &mut self.replica,
                        messages,
                        self.authorizer.as_ref(),
                        outage,
                        self.config.max_output_bytes,
                        now,
                    );
                    let quiet = heartbeats && batch.journals_only_heartbeats();
                    let committing = !batch.is_empty() || self.owes_status(now);
                    self.inbox_read(answered, heartbeats, committing, now);
                    if committing {
                        self.queue_commit(epoch, batch, quiet, now);
                    } else {
                        self.rest();
                    }
                }
            }
            (Sent::Commit { last_seq, .. }, NodeReply::Done) => {
                self.landed();
                self.unconfirmed = None;
                debug_assert_eq!(last_seq, self.applied());
            }
            (
                Sent::Confirm {
                    first_seq,
                    conflicted,
                },
                NodeReply::Journal(rows),
            ) => match entry_at(&rows, first_seq) {
                Err(why) => self.unreadable(sent, why, now),
                Ok(row) => self.confirmed(first_seq, row.map(|row| row.epoch), conflicted, now),
            },
            (
                Sent::Confirm {
                    first_seq,
                    conflicted,
                },
                NodeReply::Trimmed,
            ) => self.confirmed(first_seq, None, conflicted, now),
            (Sent::CheckEnd { seq, what }, NodeReply::Journal(rows)) => {
                match entry_at(&rows, seq) {
                    Err(why) => self.unreadable(sent, why, now),
                    Ok(None) => self.journal_went_back(seq, what, now),
                    Ok(Some(_)) => self.journal_holds_it(what, now),
                }
            }
            (Sent::CheckEnd { what, .. }, NodeReply::Trimmed) => self.journal_holds_it(what, now),
            (Sent::Renew, NodeReply::Done) => self.landed(),
            (Sent::PutSnapshot { seq, consumed }, NodeReply::Done) => {
                self.landed();
                self.snapshot_seq = seq;
                self.forget_through = consumed;
            }
            (Sent::Stop { seq }, NodeReply::Done) => {
                self.events.push_back(NodeEvent::Stopped { seq });
                self.phase = Phase::Stopped;
            }
            (sent, reply) => {
                let why = format!(
                    "the store answered {} with an unrelated reply: {}",
                    sent_name(sent),
                    reply_name(&reply)
                );
                self.unreadable(sent, why, now);
                // Whatever the operation did is unknown.
                self.retry(sent, Missed::Unknown);
            }
        }
    }

    /// The leader reads its inbox again: whether the store failed for at
    /// least a heartbeat interval since the last read (an outage agents
    /// may have suffered too, their heartbeats lost to it), which it
    /// forgets.
    fn outage_ended(&mut self, now: Instant) -> bool {
        let interval = self.dispatcher_config.heartbeats().map(|h| h.interval);
        self.outage_since
            .take()
            .zip(interval)
            .is_some_and(|(since, interval)| now.saturating_duration_since(since) >= interval)
    }

    /// A write under the lease landed: the lease lasts a lifetime from
    /// when it was sent, and the node moved on.
    fn landed(&mut self) {
        self.renewed_at = self.sent_at;
        self.config.backoff.reset();
    }

    /// The node follows: it reads again after the follow period (or a
    /// longer pause it owes).
    fn follow(&mut self, now: Instant) {
        self.phase = Phase::Follow;
        let next = self.lease_read_at(now).min(self.journal_at.max(now));
        self.wake_at = self.wake_at.max(next);
    }

    fn restored(
        &mut self,
        latest: Option<(u64, Box<super::super::contract::NodeState<P>>)>,
        now: Instant,
    ) {
        let resume = self.resume();
        let config = self.dispatcher_config.clone();
        let seq = latest.as_ref().map_or(0, |(seq, _)| *seq);
        if let Some(trimmed) = self.trimmed_at.filter(|&trimmed| seq < trimmed) {
            let why = format!(
                "the journal said entry {trimmed} was trimmed behind a snapshot, but the latest \
                 snapshot covers entries up to {seq} only"
            );
            return self.bad_answer(why, now);
        }
        self.replica = match latest {
            None => Replica::empty(config, self.codec.clone()),
            Some((seq, snapshot)) => {
                match Replica::restore(config, self.codec.clone(), seq, *snapshot) {
                    Ok(replica) => replica,
                    Err(why) => return self.unreadable(Sent::Snapshot, why, now),
                }
            }
        };
        self.replica.watch(&self.config.pools);
        self.trimmed_at = None;
        self.consumed_ids.clear();
        self.snapshot_seq = seq;
        self.events.push_back(NodeEvent::Restored { seq });
        self.phase = Phase::CatchUp { resume };
    }

    /// An unconfirmed commit's first entry read back: `written_by` is
    /// the epoch of the entry found in its place. Found under this
    /// epoch, the commit landed whole (this epoch sends nothing else
    /// there) and leading goes on; absent, it is sent again, unless the
    /// store refused it as out of place (`conflicted`): then the journal
    /// does not end where this leader's state does (a database restored
    /// from a backup, tables emptied by hand), and, as under another
    /// epoch, the replica, which applied the commit, is rebuilt from the
    /// store.
    fn confirmed(
        &mut self,
        first_seq: u64,
        written_by: Option<u64>,
        conflicted: bool,
        now: Instant,
    ) {
        let Phase::Lead { epoch, .. } = self.phase else {
            return;
        };
        self.phase = match written_by {
            Some(found) if found == epoch => {
                self.unconfirmed = None;
                Phase::Lead {
                    epoch,
                    stage: Stage::Intake,
                }
            }
            None if conflicted => {
                let why = format!(
                    "the store refused entries from {first_seq} on as out of place and does not \
                     hold them"
                );
                return self.rebuild_from_store(epoch, &why, now);
            }
            None => Phase::Lead {
                epoch,
                stage: Stage::Resend,
            },
            Some(_) => {
                self.unconfirmed = None;
                Phase::Restore {
                    resume: Some(epoch),
                }
            }
        };
    }

    /// The journal has no more entries for now: the node reads the lease,
    /// unless it follows a lease it knows to be held yet.
    fn journal_exhausted(&mut self, now: Instant) {
        match self.phase {
            Phase::CatchUp { resume } => self.phase = Phase::CheckLease { resume },
            Phase::Follow if self.lease_known(now) => self.follow(now),
            Phase::Follow => self.phase = Phase::CheckLease { resume: None },
            _ => {}
        }
    }

    fn lead(&mut self, epoch: u64) {
        self.lease_until = Instant::ZERO;
        self.phase = Phase::Lead {
            epoch,
            stage: Stage::Reconcile,
        };
        // Whatever was posted while it did not lead (a notice a
        // rebuilding leader or a follower could not use) is read at once.
        self.inbox_at = Instant::ZERO;
    }

    /// The epoch a rebuilding leader hopes to go on with.
    fn resume(&self) -> Option<u64> {
        match self.phase {
            Phase::Restore { resume }
            | Phase::CatchUp { resume }
            | Phase::CheckLease { resume } => resume,
            Phase::Lead { epoch, .. } => Some(epoch),
            _ => None,
        }
    }

    fn failed(&mut self, sent: Sent, failure: StoreFailure, now: Instant) {
        if let (Phase::Lead { epoch, .. }, StoreFailure::Fenced { .. }) = (self.phase, &failure) {
            self.deposed(epoch, failure, now);
            self.phase = if matches!(sent, Sent::Commit { dirty: true, .. }) {
                Phase::Restore { resume: None }
            } else {
                Phase::Follow
            };
            return;
        }
        let missed = match failure {
            StoreFailure::Failed { .. } => Missed::Refused,
            StoreFailure::Conflict { .. } => Missed::Conflict,
            _ => Missed::Unknown,
        };
        self.outage_since.get_or_insert(self.sent_at);
        let retry_in = self.pause(now);
        self.events.push_back(NodeEvent::StoreTrouble {
            op: sent_name(sent),
            failure,
            retry_in,
        });
        // A commit of verdicts alone in conflict: a copy of it landed
        // first, or the journal is not where this leader's state is; the
        // last entry applied tells which, after the pause (a store that
        // refuses every such commit is not asked in a loop).
        if let (
            Phase::Lead { .. },
            Sent::Commit {
                dirty: false,
                first_seq,
                ..
            },
            Missed::Conflict,
        ) = (self.phase, sent, missed)
        {
            return self.contradicted(Contradiction::VerdictsRefused { first_seq }, now);
        }
        self.retry(sent, missed);
    }

    /// The store says this node no longer holds the lease of `epoch`. It
    /// was renewed at `renewed_at` for a lifetime; deposed before that
    /// ran out, the store contradicts its own answers (no other node
    /// takes a lease before it expires), and the node backs off before it
    /// tries again — a store that keeps doing so cannot make it take the
    /// lease in a loop.
    fn deposed(&mut self, epoch: u64, cause: StoreFailure, now: Instant) {
        self.events.push_back(NodeEvent::Deposed { epoch, cause });
        self.queued = None;
        self.unconfirmed = None;
        let expires = self.renewed_at.saturating_add(self.config.lease_ttl);
        if now < expires {
            let why = format!(
                "the store deposed epoch {epoch} {:?} before the lease it last took or renewed \
                 could expire",
                expires.saturating_duration_since(now)
            );
            self.bad_answer(why, now);
        }
    }

    /// No operation before the backoff's next pause; the pause.
    fn pause(&mut self, now: Instant) -> std::time::Duration {
        let retry_in = self.config.backoff.next();
        self.wake_at = self.wake_at.max(now.saturating_add(retry_in));
        self.hold_until = self.wake_at;
        retry_in
    }

    /// An answer the node cannot use — it contradicts what the store said
    /// before: the node says why, and asks again after a pause that grows
    /// while such answers go on.
    pub(super) fn bad_answer(&mut self, why: String, now: Instant) {
        let retry_in = self.pause(now);
        self.events
            .push_back(NodeEvent::BadAnswer { why, retry_in });
    }

    /// An answer that does not read (a snapshot that does not restore,
    /// entries out of place, a reply of another kind): the role is
    /// [`Role::Failed`](super::Role::Failed) until an answer reads again,
    /// and the node backs off as after any bad answer.
    fn unreadable(&mut self, sent: Sent, why: String, now: Instant) {
        self.failure = Some(why.clone());
        self.bad_answer(format!("{}: {why}", sent_name(sent)), now);
    }

    /// The messages the commit of verdicts alone in flight consumed, which
    /// may not have landed: forgotten, so that the store handing them out
    /// again (rightly, if it did not) is no contradiction.
    pub(super) fn forget_consumed_in_flight(&mut self) {
        for id in std::mem::take(&mut self.consumed_in_flight) {
            self.consumed_ids.remove(&id);
        }
    }

    /// After `sent` failed (as `missed` says) or was answered with
    /// something unusable: what runs again.
    fn retry(&mut self, sent: Sent, missed: Missed) {
        match (self.phase, sent) {
            // A batch the replica applied: refused, send it again; lost or
            // in conflict, read it back first.
            (
                Phase::Lead { epoch, .. },
                Sent::Commit {
                    dirty: true,
                    first_seq,
                    ..
                },
            ) => {
                self.queued = None;
                let stage = match missed {
                    Missed::Refused => Stage::Resend,
                    Missed::Unknown | Missed::Conflict => Stage::Confirm {
                        first_seq,
                        conflicted: missed == Missed::Conflict,
                    },
                };
                self.phase = Phase::Lead { epoch, stage };
            }
            // A read, or a renewal (fenced, so harmless twice), simply
            // runs again.
            (
                Phase::Lead { .. },
                Sent::Confirm { .. }
                | Sent::CheckEnd { .. }
                | Sent::Inbox
                | Sent::Outstanding
                | Sent::Renew,
            ) => {}
            // Any other leader operation may have half-happened (a
            // commit of verdicts alone, a snapshot, a stop, a takeover's
            // publication): find out from the journal and the lease, then
            // reconcile again. A commit of verdicts alone that did not
            // land leaves its messages pending: the store hands them out
            // again, rightly.
            (Phase::Lead { epoch, .. }, _) => {
                if matches!(sent, Sent::Commit { dirty: false, .. }) {
                    self.forget_consumed_in_flight();
                }
                self.queued = None;
                self.phase = Phase::CatchUp {
                    resume: Some(epoch),
                };
            }
            // A follower's reads simply run again.
            _ => {}
        }
    }
}

/// The entry a read of one entry at `seq` answered (`None`: the journal
/// holds none there), or why the answer does not read: it is another
/// entry.
fn entry_at<P>(rows: &[JournalRow<P>], seq: u64) -> Result<Option<&JournalRow<P>>, String> {
    match rows.first() {
        Some(row) if row.seq != seq => Err(format!(
            "the journal answered entry {} where entry {seq} was asked for",
            row.seq
        )),
        row => Ok(row),
    }
}

/// How an operation missed: the store refused it (it certainly did not
/// take effect), its answer was lost or unusable, or the store found it
/// in conflict with the journal or the inbox (it did not take effect).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Missed {
    Refused,
    Unknown,
    Conflict,
}

fn sent_name(sent: Sent) -> &'static str {
    match sent {
        Sent::Snapshot => "read the latest snapshot",
        Sent::Journal { .. } => "read the journal",
        Sent::Lease => "read the lease",
        Sent::Take => "take the lease",
        Sent::Renew => "renew the lease",
        Sent::Outstanding => "read the outbox",
        Sent::Inbox => "read the inbox",
        Sent::Commit { .. } => "commit",
        Sent::Confirm { .. } => "read back a commit",
        Sent::CheckEnd { .. } => "read the last entry applied",
        Sent::PutSnapshot { .. } => "store a snapshot",
        Sent::Stop { .. } => "stop the cluster",
    }
}

fn reply_name<P>(reply: &NodeReply<P>) -> &'static str {
    match reply {
        NodeReply::Done => "done",
        NodeReply::Lease(_) => "the lease",
        NodeReply::Taken { .. } => "taken",
        NodeReply::Snapshot(_) => "a snapshot",
        NodeReply::Journal(_) => "journal entries",
        NodeReply::Trimmed => "trimmed",
        NodeReply::Inbox(_) => "inbox messages",
        NodeReply::Outstanding(_) => "outbox rows",
    }
}
