//! When a node acts next: its polling periods, the store's notices
//! ([`NodeConfigBuilder::woken_by_notices`](crate::cluster::NodeConfigBuilder::woken_by_notices)),
//! and the timers of the state a leader keeps.

use std::collections::BTreeMap;

use super::{Node, Phase};
use crate::Instant;
use crate::cluster::{InboxMessage, Message};

/// Most heartbeats of one sender a quiet read answers: an agent posts a
/// few between two polls; more is a backlog (a flood, an outage) that the
/// leader reads on at once.
const QUIET_HEARTBEATS: usize = 4;

/// Whether `messages` are all heartbeats, at most [`QUIET_HEARTBEATS`] of
/// any sender (a read of none is not quiet: it drained the inbox).
pub(super) fn few_heartbeats<P>(messages: &[InboxMessage<P>]) -> bool {
    let mut per_sender = BTreeMap::new();
    !messages.is_empty()
        && messages.iter().all(|m| {
            matches!(m.body, Ok(Message::Heartbeat)) && {
                let count = per_sender.entry(m.sender).or_insert(0usize);
                *count += 1;
                *count <= QUIET_HEARTBEATS
            }
        })
}

/// What the store tells a node of, for [`Node::notice`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Notice {
    /// A message was posted to the inbox (a heartbeat need not tell).
    InboxPost,
    /// The leader appended to the journal.
    JournalAppend,
}

impl<P: Clone> Node<P> {
    /// The store told the host of `what` (PostgreSQL: a notification on
    /// a channel the host listens on): a leader reads its inbox at once
    /// on an [`InboxPost`](Notice::InboxPost), a follower the journal on a
    /// [`JournalAppend`](Notice::JournalAppend) once its follow period
    /// since the last read has passed. A node backing off after a failure
    /// waits out its pause first; any other notice, or phase, changes
    /// nothing. A notice that never comes costs only time: the node reads
    /// anyway after its poll
    /// ([`woken_by_notices`](crate::cluster::NodeConfigBuilder::woken_by_notices)).
    pub fn notice(&mut self, what: Notice, now: Instant) {
        let at = match (self.phase, what) {
            (Phase::Lead { .. }, Notice::InboxPost) => {
                self.inbox_at = now;
                self.inbox_noticed = now;
                now
            }
            // A follower between two reads (at the lease, or trying to
            // take it) keeps the notice for its next round.
            (
                Phase::Follow | Phase::CheckLease { resume: None } | Phase::Take { .. },
                Notice::JournalAppend,
            ) => {
                let at = now.max(
                    self.journal_read_at
                        .saturating_add(self.config.follow_every),
                );
                self.journal_at = self.journal_at.min(at);
                at
            }
            _ => return,
        };
        self.wake_at = self.wake_at.min(at.max(self.hold_until));
    }

    /// How long an idle node goes without reading when nothing tells it
    /// to: the poll between notices, or the idle poll without them.
    fn poll(&self) -> std::time::Duration {
        self.config.notices.unwrap_or(self.config.idle_poll)
    }

    /// When a leader reads its inbox next: at `inbox_at`, or as soon as a
    /// timer of its state is due or it owes a status (the read is its
    /// intake, which acts on the timers and commits the status).
    pub(super) fn read_at(&self) -> Instant {
        let status = self.status.owed_at(self.config.status_every);
        [self.replica.next_timer(), status]
            .into_iter()
            .flatten()
            .fold(self.inbox_at, Instant::min)
    }

    /// A leader with nothing due sleeps until its next read or renewal.
    pub(super) fn rest(&mut self) {
        let renew = self.renewed_at.saturating_add(self.config.renew_every);
        self.wake_at = self.read_at().min(renew).max(self.hold_until);
    }

    /// A leader's inbox read answered `answered` messages (`quiet`: a few
    /// heartbeats per sender and nothing else; a timer that fired with
    /// them changes nothing here, its effects are not in the inbox), and
    /// the leader commits (`committing`) or rests. A read that answered
    /// none drained the inbox: the leader reads again after its poll,
    /// unless a notice came after the read was sent (the post it told of
    /// may have missed the read; one heard by then was in it). So does a
    /// quiet read with notices: a heartbeat posted since waits for the
    /// poll or a timer (a due heartbeat timer is acted on by a read,
    /// which takes the heartbeats first, so no agent is lost for it).
    /// A drained read is the poll, whatever brought it on (a timer due a
    /// moment before the poll would be, say): the next comes a poll later.
    /// Any other read
    /// that answered some is followed by another once its commit lands:
    /// a store may answer fewer than a batch while more wait (a byte
    /// budget, each sender's share). Without notices, a commit is
    /// followed by a read at once, as before notices.
    pub(super) fn inbox_read(
        &mut self,
        answered: usize,
        quiet: bool,
        committing: bool,
        now: Instant,
    ) {
        let noticed = self.config.notices.is_some();
        let drained = (answered == 0 || quiet && noticed) && (noticed || !committing);
        if drained && self.inbox_noticed <= self.sent_at {
            self.inbox_at = now.saturating_add(self.poll());
        }
    }

    /// A follower read the journal to its end: it reads it again after
    /// its poll (the follow period without notices), or on a notice that
    /// came after the read was sent.
    pub(super) fn journal_read_up(&mut self, now: Instant) {
        if self.journal_at <= self.sent_at {
            let poll = self.config.notices.unwrap_or(self.config.follow_every);
            self.journal_at = now.saturating_add(poll);
        }
    }

    /// A lease was read at `now`: held, it lasts `left` more (at most a
    /// lifetime, whatever a store says).
    pub(super) fn saw_lease(&mut self, lease: &crate::cluster::Lease, now: Instant) {
        self.lease_until = if lease.held {
            now.saturating_add(lease.left.min(self.config.lease_ttl))
        } else {
            Instant::ZERO
        };
    }

    /// Whether a follower knows the lease to be held at `now` (with
    /// notices, which tell it of the journal; without them it reads the
    /// lease with the journal every follow period). Never while the
    /// cluster drains: the leader's stop comes as a lease that says so
    /// (with a notice that makes the follower read the journal), and the
    /// follower must read it, and end, before an operator's `reset`
    /// clears it, so it reads the lease after every journal read and
    /// every renewal period, as it did before it knew.
    pub(super) fn lease_known(&self, now: Instant) -> bool {
        self.config.notices.is_some() && !self.replica.draining && self.lease_until > now
    }

    /// When a follower reads the lease next: when the lease it last read
    /// expires, if it knows, so a live leader costs it about one read a
    /// lifetime and a dead one is seen as soon as its lease ends; else
    /// after [`lease_every`](Self::lease_every).
    pub(super) fn lease_read_at(&self, now: Instant) -> Instant {
        if self.lease_known(now) {
            self.lease_until
        } else {
            now.saturating_add(self.lease_every())
        }
    }

    /// How often a follower reads the lease: every renewal period with
    /// notices (the journal is read when they tell of a commit), every
    /// follow period without them.
    pub(super) fn lease_every(&self) -> std::time::Duration {
        match self.config.notices {
            Some(_) => self.config.renew_every,
            None => self.config.follow_every,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Sender;
    use crate::{AgentId, TaskId};

    fn from(agent: u64, id: u64, body: Result<Message<u32>, String>) -> InboxMessage<u32> {
        InboxMessage {
            id,
            sender: Sender::Agent {
                agent: AgentId::new(agent),
                incarnation: 1,
            },
            body,
            bytes: 0,
        }
    }

    #[test]
    fn a_few_heartbeats_of_each_sender_and_nothing_else_are_quiet() {
        let beat = |agent, id| from(agent, id, Ok(Message::Heartbeat));
        let few: Vec<_> = (0..4).flat_map(|n| [beat(1, n), beat(2, 10 + n)]).collect();
        assert!(few_heartbeats(&few));
        assert!(!few_heartbeats::<u32>(&[]), "a read of none drained");
        let flood: Vec<_> = (0..5).map(|n| beat(1, n)).collect();
        assert!(!few_heartbeats(&flood), "five of one sender is a backlog");
        let cancel = from(2, 9, Ok(Message::Cancel(TaskId::new(1))));
        assert!(!few_heartbeats(&[beat(1, 1), cancel]));
        let garbled = from(2, 9, Err("not JSON".into()));
        assert!(!few_heartbeats(&[beat(1, 1), garbled]));
    }
}
