//! A store that contradicts this leader's state: one that hands out a
//! message the leader consumed, or refuses its commit as out of place.
//! A store that went back in time (a database restored from a backup,
//! tables emptied by hand) does both; the leader then rebuilds from it,
//! the truth. One that breaks its contract otherwise is answered with a
//! pause, never with a message journaled twice. Before either, the leader
//! reads the last entry it applied: only a journal that no longer holds
//! it went back.

use std::collections::BTreeSet;

use super::super::contract::{Entry, InboxMessage, MessageId};
use super::{Node, Phase, Stage};
use crate::Instant;

/// The ids a leader's state handed out ([`Replica::issued`](super::Replica::issued)),
/// kept when it rebuilds from a store that went back in time and
/// journaled as [`Entry::SkipIds`] first when it leads again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Issued {
    /// Past every task id's generation.
    pub(crate) tasks: u32,
    /// Past every run id.
    pub(crate) runs: u64,
}

impl Issued {
    /// Past both `self`'s ids and `other`'s.
    fn and(self, other: Option<Issued>) -> Issued {
        other.map_or(self, |other| Issued {
            tasks: self.tasks.max(other.tasks),
            runs: self.runs.max(other.runs),
        })
    }

    /// The entry that skips these ids.
    pub(crate) fn entry<P>(self, now: Instant) -> Entry<P> {
        Entry::SkipIds {
            tasks: self.tasks,
            runs: self.runs,
            now,
        }
    }
}

/// What made a leader read the last entry it applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Contradiction {
    /// The inbox handed out this message, which the leader consumed (or
    /// twice in one answer).
    HandedOutAgain(MessageId),
    /// The store refused, in conflict, the commit of verdicts alone (no
    /// entries) that would have journaled from `first_seq` on: its
    /// messages were not pending, or the journal did not end where the
    /// leader's state does. A copy of the same commit that landed first
    /// (a request delivered twice) does the former, and is no fault.
    VerdictsRefused { first_seq: u64 },
}

impl<P: Clone> Node<P> {
    /// The store contradicted this leader's state as `what` says. A leader
    /// that applied entries reads the last of them before it calls the
    /// store broken or gone back; one that applied none has nothing the
    /// store could have lost.
    pub(super) fn contradicted(&mut self, what: Contradiction, now: Instant) {
        match self.phase {
            Phase::Lead { epoch, .. } if self.applied() > 0 => {
                self.phase = Phase::Lead {
                    epoch,
                    stage: Stage::CheckEnd {
                        seq: self.applied(),
                        what,
                    },
                };
            }
            _ => self.journal_holds_it(what, now),
        }
    }

    /// The journal holds the last entry this leader applied (or it applied
    /// none), yet the store contradicted it as `what` says. A message
    /// handed out again: the store breaks its contract. Verdicts refused:
    /// their commit may have landed as a copy, or not at all; the leader
    /// reconciles with the journal and the lease, as after a commit of
    /// verdicts whose answer was lost.
    pub(super) fn journal_holds_it(&mut self, what: Contradiction, now: Instant) {
        match (what, self.phase) {
            (Contradiction::HandedOutAgain(message), _) => self.consumed_twice(message, now),
            (Contradiction::VerdictsRefused { .. }, Phase::Lead { epoch, .. }) => {
                self.forget_consumed_in_flight();
                self.queued = None;
                self.phase = Phase::CatchUp {
                    resume: Some(epoch),
                };
            }
            (Contradiction::VerdictsRefused { .. }, _) => {}
        }
    }

    /// The journal holds the last entry this leader applied, yet the
    /// inbox handed out `message` again: the store breaks its contract,
    /// and the leader, which would journal the message twice, waits.
    pub(super) fn consumed_twice(&mut self, message: MessageId, now: Instant) {
        if let Phase::Lead { epoch, .. } = self.phase {
            self.phase = Phase::Lead {
                epoch,
                stage: Stage::Intake,
            };
        }
        let why = format!(
            "the inbox handed out message {message} twice, or again after this leader consumed it"
        );
        self.bad_answer(why, now);
    }

    /// The journal ends before entry `seq`, which this leader applied:
    /// the store went back in time, which made it contradict the leader
    /// as `what` says. The leader rebuilds from the store, the truth.
    pub(super) fn journal_went_back(&mut self, seq: u64, what: Contradiction, now: Instant) {
        if let Phase::Lead { epoch, .. } = self.phase {
            let how = match what {
                Contradiction::HandedOutAgain(message) => {
                    format!("the inbox handed out message {message} again")
                }
                Contradiction::VerdictsRefused { first_seq } => {
                    format!("the store refused a commit at entry {first_seq}")
                }
            };
            let why =
                format!("{how} and the journal ends before entry {seq}, which this leader applied");
            self.rebuild_from_store(epoch, &why, now);
        }
    }

    /// The store's journal does not end where this leader's state does,
    /// as `why` shows: the leader says so and rebuilds from the store,
    /// which is the truth (what it lost is lost), and leads on from
    /// there if its lease holds. A commit it would send again could never
    /// land.
    pub(super) fn rebuild_from_store(&mut self, epoch: u64, why: &str, now: Instant) {
        self.bad_answer(
            format!(
                "{why}: the store went back in time (was the database restored from a \
                 backup, or its tables emptied by hand?); rebuilding from the store"
            ),
            now,
        );
        // The state it throws away may have handed out ids the store's
        // never did; a rebuild before it led again keeps the earlier ones.
        self.skip_issued = Some(self.replica.issued().and(self.skip_issued));
        self.queued = None;
        self.unconfirmed = None;
        self.phase = Phase::Restore {
            resume: Some(epoch),
        };
    }
}

/// The first message of `messages` that `consumed` holds or that comes
/// twice: a store that hands a consumed message out again breaks rule 4
/// of the contract, and a leader that took it in would journal it twice.
pub(super) fn first_handed_out_again<P>(
    consumed: &BTreeSet<MessageId>,
    messages: &[InboxMessage<P>],
) -> Option<MessageId> {
    let mut seen = BTreeSet::new();
    messages
        .iter()
        .map(|m| m.id)
        .find(|&id| consumed.contains(&id) || !seen.insert(id))
}
