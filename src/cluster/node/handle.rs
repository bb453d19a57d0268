//! A node's answers from the store: what each means in each phase.

use super::super::contract::{NodeReply, StoreFailure};
use super::events::NodeEvent;
use super::intake::intake;
use super::replica::Replica;
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
            Ok(reply) => {
                self.config.backoff.reset();
                self.answered(sent, reply, now);
            }
            Err(failure) => self.failed(sent, failure, now),
        }
    }

    fn answered(&mut self, sent: Sent, reply: NodeReply<P>, now: Instant) {
        match (sent, reply) {
            (Sent::Snapshot, NodeReply::Snapshot(latest)) => self.restored(latest),
            (Sent::Journal { limit }, NodeReply::Journal(rows)) => {
                let full = rows.len() >= limit;
                for row in rows {
                    if row.seq != self.replica.next_seq {
                        let expected = self.replica.next_seq;
                        return self.fail(format!(
                            "the journal answered entry {} where entry {expected} was expected",
                            row.seq
                        ));
                    }
                    // A follower acts on nothing; errors are part of the
                    // history it replays.
                    let _ = self.replica.apply(row.entry, |_| {});
                }
                if !full {
                    self.journal_exhausted();
                }
            }
            (Sent::Journal { .. }, NodeReply::Trimmed) => {
                self.phase = Phase::Restore {
                    resume: self.resume(),
                };
            }
            (Sent::Lease, NodeReply::Lease(lease)) => {
                if let (Some(epoch), false) = (self.resume(), lease.stopped) {
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
                    self.events.push_back(NodeEvent::Deposed { epoch, cause });
                }
                if lease.stopped {
                    self.phase = Phase::Stopped;
                } else if !lease.held {
                    self.phase = Phase::Take { seen: lease.epoch };
                } else {
                    self.phase = Phase::Follow;
                    self.wake_at = now.saturating_add(self.config.follow_every);
                }
            }
            (Sent::Take, NodeReply::Taken { epoch }) => {
                self.events.push_back(NodeEvent::TookLease { epoch });
                self.renewed_at = now;
                // Apply whatever the old leader committed last, then lead.
                self.phase = Phase::CatchUp {
                    resume: Some(epoch),
                };
            }
            (Sent::Take, NodeReply::Lease(lease)) => {
                self.phase = if lease.stopped {
                    Phase::Stopped
                } else {
                    Phase::Follow
                };
                self.wake_at = now.saturating_add(self.config.follow_every);
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
                    self.status_at = None;
                    self.phase = Phase::Lead {
                        epoch,
                        stage: Stage::Intake,
                    };
                    let batch = super::intake::Batch {
                        entries: Vec::new(),
                        consumed: Vec::new(),
                        outputs,
                        events: Vec::new(),
                    };
                    self.queue_commit(epoch, batch, now);
                }
            }
            (Sent::Inbox, NodeReply::Inbox(messages)) => {
                if let Phase::Lead { epoch, .. } = self.phase {
                    let batch = intake(&mut self.replica, messages, now);
                    if !batch.is_empty() || self.owes_status(now) {
                        self.queue_commit(epoch, batch, now);
                    } else {
                        self.wake_at = now.saturating_add(self.config.idle_poll);
                    }
                }
            }
            (Sent::Commit { last_seq, .. }, NodeReply::Done) => {
                self.renewed_at = now;
                self.unconfirmed = None;
                debug_assert_eq!(last_seq, self.applied());
            }
            (Sent::Confirm { first_seq }, NodeReply::Journal(rows)) => {
                self.confirmed(first_seq, rows.first().map(|row| (row.seq, row.epoch)));
            }
            (Sent::Confirm { first_seq }, NodeReply::Trimmed) => self.confirmed(first_seq, None),
            (Sent::Renew, NodeReply::Done) => self.renewed_at = now,
            (Sent::PutSnapshot { seq, consumed }, NodeReply::Done) => {
                self.renewed_at = now;
                self.snapshot_seq = seq;
                self.forget_through = consumed;
            }
            (Sent::Stop { seq }, NodeReply::Done) => {
                self.events.push_back(NodeEvent::Stopped { seq });
                self.phase = Phase::Stopped;
            }
            (sent, reply) => self.fail(format!(
                "the store answered {sent:?} with an unrelated reply: {}",
                reply_name(&reply)
            )),
        }
    }

    fn restored(&mut self, latest: Option<(u64, Box<crate::scheduler::Snapshot<P>>)>) {
        let resume = self.resume();
        let config = self.dispatcher_config.clone();
        let seq = latest.as_ref().map_or(0, |(seq, _)| *seq);
        self.replica = match latest {
            None => Replica::empty(config),
            Some((seq, snapshot)) => match Replica::restore(config, seq, *snapshot) {
                Ok(replica) => replica,
                Err(why) => return self.fail(why),
            },
        };
        self.replica.watch(&self.config.pools);
        self.snapshot_seq = seq;
        self.events.push_back(NodeEvent::Restored { seq });
        self.phase = Phase::CatchUp { resume };
    }

    /// An unconfirmed commit's first entry read back: `row` is the (seq,
    /// epoch) found at `first_seq`. Found under this epoch, the commit
    /// landed whole (this epoch sends nothing else there) and leading goes
    /// on; absent, it is sent again; under another epoch, the leader was
    /// deposed and the replica, which applied the commit, is rebuilt.
    fn confirmed(&mut self, first_seq: u64, row: Option<(u64, u64)>) {
        let Phase::Lead { epoch, .. } = self.phase else {
            return;
        };
        self.phase = match row {
            Some(found) if found == (first_seq, epoch) => {
                self.unconfirmed = None;
                Phase::Lead {
                    epoch,
                    stage: Stage::Intake,
                }
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

    /// The journal has no more entries for now.
    fn journal_exhausted(&mut self) {
        match self.phase {
            Phase::CatchUp { resume } => self.phase = Phase::CheckLease { resume },
            Phase::Follow => self.phase = Phase::CheckLease { resume: None },
            _ => {}
        }
    }

    fn lead(&mut self, epoch: u64) {
        self.phase = Phase::Lead {
            epoch,
            stage: Stage::Reconcile,
        };
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
        let op = sent_name(sent);
        if let (Phase::Lead { epoch, .. }, StoreFailure::Fenced { .. }) = (self.phase, &failure) {
            self.events.push_back(NodeEvent::Deposed {
                epoch,
                cause: failure,
            });
            self.queued = None;
            self.unconfirmed = None;
            self.phase = if matches!(sent, Sent::Commit { dirty: true, .. }) {
                Phase::Restore { resume: None }
            } else {
                Phase::Follow
            };
            return;
        }
        let refused = matches!(failure, StoreFailure::Failed { .. });
        let retry_in = self.config.backoff.next();
        self.events.push_back(NodeEvent::StoreTrouble {
            op,
            failure,
            retry_in,
        });
        self.wake_at = now.saturating_add(retry_in);
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
                let stage = if refused {
                    Stage::Resend
                } else {
                    Stage::Confirm { first_seq }
                };
                self.phase = Phase::Lead { epoch, stage };
            }
            // A read, or a renewal (fenced, so harmless twice), simply
            // runs again.
            (
                Phase::Lead { .. },
                Sent::Confirm { .. } | Sent::Inbox | Sent::Outstanding | Sent::Renew,
            ) => {}
            // Any other leader operation may have half-happened (a
            // snapshot, a stop, a takeover's publication): find out from
            // the journal and the lease, then reconcile again.
            (Phase::Lead { epoch, .. }, _) => {
                self.queued = None;
                self.phase = Phase::CatchUp {
                    resume: Some(epoch),
                };
            }
            // A follower's reads simply run again.
            _ => {}
        }
    }

    /// Ends the node: the store holds what it cannot read.
    fn fail(&mut self, why: String) {
        self.failure = Some(why);
        self.queued = None;
        self.phase = Phase::Failed;
    }
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
