//! The store contract's checks of reading run ends by cursor
//! ([`ClientOp::RunEndsAfter`]): journal order, pages that may end inside
//! a commit, nothing twice, nothing trimmed; a run's later end in place of
//! its earlier one.

use std::time::Duration;

use crate::scheduler::Input;
use crate::workflow::RunOutcome;
use crate::{Instant, WorkflowId};

use super::super::contract::{
    ClientOp, ClientReply, Entry, NodeOp, NodeReply, Outputs, RunEnd, Store,
};
use super::super::run_end_cursor::RunEndCursor;
use super::Checks;

/// A run id a client chose with the top bit set: ordered after every
/// smaller id, whatever the store's integer type.
const HIGH_RUN: u64 = (1 << 63) + 5;

/// Runs the cursor's checks on a store whose lease epoch 2 holds at
/// `later`, whose journal ends at sequence number 5, and which trimmed
/// the end of run 7.
pub(super) fn check_run_end_cursor<S: Store<String>>(
    store: &mut S,
    checks: &mut Checks,
    ttl: Duration,
    later: Instant,
) -> Result<(), String> {
    let end = |run| RunEnd {
        run: WorkflowId::new(run),
        outcome: RunOutcome::Succeeded,
        output: Some(format!("out {run}")),
        tenant: None,
    };
    let commit = |first_seq, count: u64, runs| NodeOp::Commit {
        epoch: 2,
        ttl,
        first_seq,
        entries: (first_seq..first_seq + count)
            .map(|secs| {
                Entry::Input(Input::HandleTimeout {
                    now: Instant::from_secs(secs),
                })
            })
            .collect(),
        consumed: Vec::new(),
        outputs: Outputs {
            runs,
            ..Outputs::default()
        },
    };
    let done = store.node(commit(6, 2, vec![end(21), end(20)]), later);
    checks.is("a commit publishing two run ends is done", &done, |r| {
        matches!(r, Ok(NodeReply::Done))
    })?;
    let done = store.node(commit(8, 1, vec![end(HIGH_RUN), end(22)]), later);
    checks.is(
        "another commit publishing two run ends is done",
        &done,
        |r| matches!(r, Ok(NodeReply::Done)),
    )?;
    let page = |store: &mut S, after, limit| match store
        .client(ClientOp::RunEndsAfter { after, limit }, later)
    {
        Ok(ClientReply::RunEndsAfter(ends)) => Ok(ends),
        other => Err(format!(
            "reading run ends after {after:?} answered {other:?}"
        )),
    };
    let at = |seq, run| RunEndCursor::new(seq, WorkflowId::new(run));
    checks.that(
        "run ends are read in journal order, a commit's by run id (as an unsigned number), \
         trimmed ones not at all",
        page(store, RunEndCursor::START, 10)?[..]
            == [
                (at(7, 20), end(20)),
                (at(7, 21), end(21)),
                (at(8, 22), end(22)),
                (at(8, HIGH_RUN), end(HIGH_RUN)),
            ],
    )?;
    checks.that(
        "a page of run ends stops at its limit, inside a commit if need be",
        page(store, RunEndCursor::START, 1)?[..] == [(at(7, 20), end(20))],
    )?;
    checks.that(
        "the next page starts after the last end read",
        page(store, at(7, 20), 2)?[..] == [(at(7, 21), end(21)), (at(8, 22), end(22))],
    )?;
    checks.that(
        "a run id with the top bit set comes after the smaller ids of its commit",
        page(store, at(8, 22), 10)?[..] == [(at(8, HIGH_RUN), end(HIGH_RUN))],
    )?;
    checks.that(
        "after the last end no end is read, nor with a limit of 0",
        page(store, at(8, HIGH_RUN), 10)?.is_empty()
            && page(store, RunEndCursor::START, 0)?.is_empty(),
    )?;
    checks.that(
        "a cursor past any journal position a store can hold reads nothing",
        page(store, at(u64::MAX, 0), 10)?.is_empty()
            && page(store, at((1 << 63) + 1, 0), 10)?.is_empty(),
    )?;
    // A run restarted under an id its engine had forgotten ends anew: the
    // later end replaces the earlier one, at its own place.
    let anew = RunEnd {
        outcome: RunOutcome::Failed(crate::workflow::FailureCause::Cancelled),
        output: None,
        ..end(20)
    };
    let done = store.node(commit(9, 1, vec![anew.clone()]), later);
    checks.is(
        "a commit publishing a run's second end is done",
        &done,
        |r| matches!(r, Ok(NodeReply::Done)),
    )?;
    let read = store.client(ClientOp::Runs(vec![WorkflowId::new(20)]), later);
    checks.that(
        "a run's later end replaces its earlier one (an id restarted once forgotten)",
        matches!(&read, Ok(ClientReply::Runs(ends)) if ends[..] == [Some(anew.clone())]),
    )?;
    checks.that(
        "a run's later end is read at its own place, and the earlier one no more",
        page(store, RunEndCursor::START, 10)?.first() == Some(&(at(7, 21), end(21)))
            && page(store, at(8, HIGH_RUN), 10)?[..] == [(at(9, 20), anew)],
    )?;
    Ok(())
}
