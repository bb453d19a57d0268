//! The store contract's checks of snapshots and trimming (rule 8): a
//! snapshot is stored and read back; the one after it trims the journal
//! behind the previous snapshot, with the consumed messages, outcomes and
//! run ends of the entries it deletes, and only those; a deposed epoch
//! stores none.

use std::time::Duration;

use crate::scheduler::Expiry;
use crate::{Instant, TaskId};

use super::super::contract::{
    ClientOp, ClientReply, Message, MessageId, NodeOp, NodeReply, Store, StoreFailure, TaskEnd,
};
use super::{Checks, empty_state, ended, outcomes, run_ends};

/// Runs the snapshots' checks on a store whose lease epoch 2 holds at
/// `later` (epoch 1 deposed), whose journal ends at sequence number 5,
/// and whose message `first` its first commit consumed.
pub(super) fn check_trimming<S: Store<String>>(
    store: &mut S,
    checks: &mut Checks,
    ttl: Duration,
    first: MessageId,
    later: Instant,
) -> Result<(), String> {
    let put = |seq, trim, forget_through| NodeOp::PutSnapshot {
        epoch: 2,
        ttl,
        seq,
        snapshot: empty_state(),
        trim,
        forget_through,
    };
    let stored = store.node(put(2, true, None), later);
    checks.is("a snapshot is stored", &stored, |r| {
        matches!(r, Ok(NodeReply::Done))
    })?;
    let latest = store.node(NodeOp::LatestSnapshot, later);
    checks.is("the latest snapshot is read back", &latest, |r| {
        matches!(r, Ok(NodeReply::Snapshot(Some((2, _)))))
    })?;
    let pending = match store.client(ClientOp::Post(vec![Message::Cancel(TaskId::new(8))]), later) {
        Ok(ClientReply::Posted(ids)) => ids,
        other => return Err(format!("a client's post answered {other:?}")),
    };
    let stored = store.node(put(5, true, Some(MessageId::MAX)), later);
    checks.is("a second snapshot is stored", &stored, |r| {
        matches!(r, Ok(NodeReply::Done))
    })?;
    let forgotten = store.client(ClientOp::Verdicts(vec![first]), later);
    checks.that(
        "a snapshot forgets the consumed messages (rule 8)",
        matches!(&forgotten, Ok(ClientReply::Verdicts(v)) if v[..] == [None]),
    )?;
    checks.that(
        "a trim forgets the run ends of the entries it deletes (rule 8)",
        run_ends(store, &[7], later)?[..] == [None],
    )?;
    checks.that(
        "a trim forgets the outcomes of the entries it deletes, and only those (rule 8)",
        outcomes(store, &[7, 6, 1, 2], later)?[..]
            == [
                None,
                ended(TaskEnd::Redriven(TaskId::new(11)), None),
                ended(TaskEnd::Completed, Some("out")),
                ended(TaskEnd::Expired(Expiry::Deadline), None),
            ],
    )?;
    let kept = store.node(NodeOp::ReadInbox { limit: 10 }, later);
    checks.is(
        "a snapshot keeps the pending messages",
        &kept,
        |r| matches!(r, Ok(NodeReply::Inbox(m)) if m.len() == 1 && m[0].id == pending[0]),
    )?;
    let trimmed = store.node(NodeOp::ReadJournal { from: 1, limit: 10 }, later);
    checks.is(
        "entries behind the previous snapshot are trimmed",
        &trimmed,
        |r| matches!(r, Ok(NodeReply::Trimmed)),
    )?;
    let tail = store.node(NodeOp::ReadJournal { from: 3, limit: 10 }, later);
    checks.is(
        "entries after the previous snapshot stay",
        &tail,
        |r| matches!(r, Ok(NodeReply::Journal(rows)) if rows.len() == 3 && rows[0].seq == 3),
    )?;
    let fenced_snapshot = store.node(
        NodeOp::PutSnapshot {
            epoch: 1,
            ttl,
            seq: 5,
            snapshot: empty_state(),
            trim: false,
            forget_through: None,
        },
        later,
    );
    checks.is(
        "a deposed epoch cannot store a snapshot",
        &fenced_snapshot,
        |r| matches!(r, Err(StoreFailure::Fenced { .. })),
    )?;

    Ok(())
}
