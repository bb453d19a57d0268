//! A store that contradicts this leader's state: one that hands out a
//! message the leader consumed, or refuses its commit as out of place.
//! A store that went back in time (a database restored from a backup,
//! tables emptied by hand) does both; the leader then rebuilds from it,
//! the truth. One that breaks its contract otherwise is answered with a
//! pause, never with a message journaled twice.

use std::collections::BTreeSet;

use super::super::contract::{InboxMessage, MessageId};
use super::{Node, Phase, Stage};
use crate::Instant;

impl<P: Clone> Node<P> {
    /// The inbox handed out `message`, which this leader consumed (or
    /// twice in one answer). Before a leader that applied entries calls
    /// it a broken store, it reads the last entry it applied: a store
    /// restored from a backup hands out again what it no longer knows
    /// was consumed.
    pub(super) fn handed_out_again(&mut self, message: MessageId, now: Instant) {
        match self.phase {
            Phase::Lead { epoch, .. } if self.applied() > 0 => {
                self.phase = Phase::Lead {
                    epoch,
                    stage: Stage::CheckEnd {
                        seq: self.applied(),
                        message,
                    },
                };
            }
            _ => self.consumed_twice(message, now),
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
    /// the store went back in time, and handed out `message` again for
    /// it. The leader rebuilds from the store, which is the truth.
    pub(super) fn journal_went_back(&mut self, seq: u64, message: MessageId, now: Instant) {
        if let Phase::Lead { epoch, .. } = self.phase {
            let why = format!(
                "the inbox handed out message {message} again and the journal ends before \
                 entry {seq}, which this leader applied"
            );
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
