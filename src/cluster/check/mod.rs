//! [`check_store`]: the store contract as executable checks. Every store
//! must pass them: [`MemStore`](super::MemStore) in this crate's tests,
//! the PostgreSQL store in its own.

use std::time::Duration;

use crate::scheduler::{
    AttemptOutcome, Dispatcher, DispatcherConfig, Expiry, Input, TaskReport, TaskSpec,
};
use crate::workflow::RunOutcome;
use crate::{AgentId, AttemptToken, Instant, TaskId, WorkflowId};

use super::contract::{
    AgentOp, AgentReply, Assignment, ClientOp, ClientReply, Entry, Finished, Message, NodeOp,
    NodeReply, NodeState, Outcome, Outputs, RunEnd, Sender, Store, StoreFailure, TaskEnd, Verdict,
};
use super::status::Status;

type Op = Result<NodeReply<String>, StoreFailure>;

mod run_end_cursor;
mod stopping;
mod tally;
mod trimming;
use tally::Checks;

/// Runs the contract's checks on a fresh, empty store that every role may
/// use. `clock(d)` lets `d` pass (a store with its own clock sleeps; a
/// [`MemStore`](super::MemStore) test advances a counter) and answers the
/// current instant. Answers how many checks passed.
///
/// # Errors
///
/// The first check that failed, in words, with what the store answered.
pub fn check_store<S: Store<String>>(
    store: &mut S,
    clock: &mut dyn FnMut(Duration) -> Instant,
) -> Result<usize, String> {
    let mut checks = Checks { passed: 0 };
    let ttl = Duration::from_millis(800);
    let now = clock(Duration::ZERO);

    // An empty store.
    let lease = store.node(NodeOp::ReadLease, now);
    checks.is(
        "a fresh lease is epoch 0, free",
        &lease,
        |r| matches!(r, Ok(NodeReply::Lease(l)) if l.epoch == 0 && !l.held && !l.stopped && l.left.is_zero()),
    )?;
    let empty = store.node(NodeOp::ReadJournal { from: 1, limit: 10 }, now);
    checks.is(
        "a fresh journal is empty",
        &empty,
        |r| matches!(r, Ok(NodeReply::Journal(rows)) if rows.is_empty()),
    )?;
    let none = store.node(NodeOp::LatestSnapshot, now);
    checks.is("a fresh store has no snapshot", &none, |r| {
        matches!(r, Ok(NodeReply::Snapshot(None)))
    })?;

    // The lease.
    let take = |seen| NodeOp::TakeLease {
        seen,
        holder: "checker".into(),
        ttl,
    };
    let taken = store.node(take(0), now);
    checks.is("the first lease is epoch 1", &taken, |r| {
        matches!(r, Ok(NodeReply::Taken { epoch: 1 }))
    })?;
    let again = store.node(take(0), now);
    checks.is(
        "a held lease is not taken again",
        &again,
        |r| matches!(r, Ok(NodeReply::Lease(l)) if l.epoch == 1 && l.held),
    )?;
    let read = store.node(NodeOp::ReadLease, now);
    checks.is(
        "a held lease says how long it lasts yet, at most its lifetime",
        &read,
        |r| matches!(r, Ok(NodeReply::Lease(l)) if l.held && !l.left.is_zero() && l.left <= ttl),
    )?;
    let early = store.node(take(1), now);
    checks.is(
        "a live lease is not taken before it expires",
        &early,
        |r| matches!(r, Ok(NodeReply::Lease(l)) if l.epoch == 1 && l.held),
    )?;

    // Messages and commits.
    let spec = |n: u32| TaskSpec::new(format!("task {n}"));
    let posted = store.client(
        ClientOp::Post(vec![
            Message::Submit(vec![spec(1)]),
            Message::Cancel(TaskId::new(9)),
        ]),
        now,
    );
    let Ok(ClientReply::Posted(ids)) = posted else {
        return Err(format!("a client's post answered {posted:?}"));
    };
    checks.that(
        "posted messages get increasing ids",
        ids.len() == 2 && ids[0] < ids[1],
    )?;
    let (first, second) = (ids[0], ids[1]);
    let inbox = store.node(NodeOp::ReadInbox { limit: 10 }, now);
    checks.is("the inbox answers pending messages in order", &inbox, |r| {
        matches!(r, Ok(NodeReply::Inbox(m)) if m.len() == 2 && m[0].id == first
            && m[0].sender == Sender::Client && m[1].body == Ok(Message::Cancel(TaskId::new(9))))
    })?;
    let agent = AgentId::new(5);
    // Two lives of the agent; the leader assigns its rows to the newer.
    let incarnate = |store: &mut S| match store.agent(AgentOp::Incarnate { agent }, now) {
        Ok(AgentReply::Incarnation(n)) => Ok(n),
        other => Err(format!(
            "an incarnation was asked for and the store answered {other:?}"
        )),
    };
    let (old, new) = (incarnate(store)?, incarnate(store)?);
    checks.that("incarnations grow", new > old)?;
    let assignment = |task: u64, token: u64| Assignment {
        task: TaskId::new(task),
        agent,
        token: AttemptToken::new(token),
        attempt: 1,
        incarnation: new,
        payload: format!("payload {task}"),
    };
    let entry = |secs| {
        Entry::Input(Input::HandleTimeout {
            now: Instant::from_secs(secs),
        })
    };
    let commit = |epoch, first_seq, entries, consumed, outputs| NodeOp::Commit {
        epoch,
        ttl,
        first_seq,
        entries,
        consumed,
        outputs,
    };
    let status = Status {
        epoch: 1,
        seq: 2,
        ..Status::default()
    };
    let run_end = RunEnd {
        run: WorkflowId::new(7),
        outcome: RunOutcome::Succeeded,
        output: Some("done".to_string()),
        tenant: None,
    };
    let outputs = Outputs {
        assign: vec![assignment(1, 1)],
        ended: vec![
            (TaskId::new(7), TaskEnd::Cancelled),
            (TaskId::new(6), TaskEnd::Expired(Expiry::Ttl)),
        ],
        runs: vec![run_end.clone()],
        status: Some(status.clone()),
        ..Outputs::default()
    };
    let fenced = store.node(
        commit(7, 1, vec![entry(1)], vec![], Outputs::default()),
        now,
    );
    checks.is("a commit under another epoch is fenced", &fenced, |r| {
        matches!(
            r,
            Err(StoreFailure::Fenced {
                epoch: 7,
                current: 1
            })
        )
    })?;
    let consumed = vec![(first, Verdict::Accepted)];
    let done = store.node(
        commit(1, 1, vec![entry(1), entry(2)], consumed, outputs),
        now,
    );
    checks.is("a commit under the lease is done", &done, |r| {
        matches!(r, Ok(NodeReply::Done))
    })?;
    let rows = store.node(NodeOp::ReadJournal { from: 1, limit: 10 }, now);
    checks.is(
        "the journal holds the committed entries with their epoch",
        &rows,
        |r| {
            matches!(r, Ok(NodeReply::Journal(rows)) if rows.len() == 2 && rows[0].seq == 1
            && rows[1].seq == 2 && rows[1].epoch == 1 && rows[1].entry == entry(2))
        },
    )?;
    let page = store.node(NodeOp::ReadJournal { from: 2, limit: 1 }, now);
    checks.is(
        "a journal read starts at `from` and stops at `limit`",
        &page,
        |r| matches!(r, Ok(NodeReply::Journal(rows)) if rows.len() == 1 && rows[0].seq == 2),
    )?;
    let pending = store.node(NodeOp::ReadInbox { limit: 10 }, now);
    checks.is(
        "a consumed message is no longer pending",
        &pending,
        |r| matches!(r, Ok(NodeReply::Inbox(m)) if m.len() == 1 && m[0].id == second),
    )?;
    let verdicts = store.client(ClientOp::Verdicts(vec![first, second]), now);
    checks.that(
        "a client reads the verdict of a consumed message, none for a pending one",
        matches!(&verdicts, Ok(ClientReply::Verdicts(v)) if v[..] == [Some(Verdict::Accepted), None]),
    )?;
    let seen = store.client(ClientOp::Status, now);
    checks.that(
        "the status a commit published is read back with the lease",
        matches!(&seen, Ok(ClientReply::Status(l, Some(s))) if l.epoch == 1 && l.held && *s == status),
    )?;
    let ends = outcomes(store, &[7, 1], now)?;
    checks.that(
        "a client reads the outcome a commit published, none for a live task",
        ends[..] == [ended(TaskEnd::Cancelled, None), None],
    )?;
    checks.that(
        "a client reads the run end a commit published, none for an active run",
        run_ends(store, &[7, 8], now)?[..] == [Some(run_end.clone()), None],
    )?;
    let taken_seq = store.node(
        commit(1, 2, vec![entry(3)], vec![], Outputs::default()),
        now,
    );
    checks.is(
        "a commit at a taken sequence number conflicts",
        &taken_seq,
        |r| matches!(r, Err(StoreFailure::Conflict { .. })),
    )?;
    let twice = store.node(
        commit(
            1,
            3,
            vec![entry(3)],
            vec![(first, Verdict::Accepted)],
            Outputs {
                ended: vec![(TaskId::new(9), TaskEnd::Completed)],
                ..Outputs::default()
            },
        ),
        now,
    );
    checks.is(
        "a commit consuming a consumed message conflicts",
        &twice,
        |r| matches!(r, Err(StoreFailure::Conflict { .. })),
    )?;
    let unchanged = store.node(NodeOp::ReadJournal { from: 3, limit: 10 }, now);
    checks.is(
        "a refused commit wrote nothing",
        &unchanged,
        |r| matches!(r, Ok(NodeReply::Journal(rows)) if rows.is_empty()),
    )?;
    checks.that(
        "a refused commit published no outcome",
        outcomes(store, &[9], now)?[..] == [None],
    )?;

    // Agents: claims, reports, refusals.
    let claim = |agent, incarnation| AgentOp::Claim {
        agent,
        incarnation,
        limit: 10,
    };
    let early = store.agent(claim(agent, old), now);
    checks.that(
        "an incarnation never claims a row assigned to another (rule 5)",
        matches!(&early, Ok(AgentReply::Claimed { rows, stopped: false }) if rows.is_empty()),
    )?;
    let claimed = store.agent(claim(agent, new), now);
    checks.that(
        "an agent claims the ready rows assigned to its incarnation (rule 5)",
        matches!(&claimed, Ok(AgentReply::Claimed { rows, stopped: false }) if rows[..] == [assignment(1, 1)]),
    )?;
    let repeated = store.agent(claim(agent, new), now);
    checks.that(
        "a repeated claim answers the rows the incarnation holds (rule 5)",
        matches!(&repeated, Ok(AgentReply::Claimed { rows, .. }) if rows[..] == [assignment(1, 1)]),
    )?;
    let other = store.agent(claim(AgentId::new(6), 1), now);
    checks.that(
        "an agent never claims another agent's rows",
        matches!(&other, Ok(AgentReply::Claimed { rows, .. }) if rows.is_empty()),
    )?;
    let stale = store.agent(claim(agent, old), now);
    checks.that(
        "an older incarnation does not get back the rows a newer one claimed",
        matches!(&stale, Ok(AgentReply::Claimed { rows, .. }) if rows.is_empty()),
    )?;
    let outstanding = store.node(NodeOp::ReadOutstanding, now);
    checks.is("a claimed row is outstanding", &outstanding, |r| {
        matches!(r, Ok(NodeReply::Outstanding(rows)) if rows[..] == [(TaskId::new(1), AttemptToken::new(1))])
    })?;
    let sender = Sender::Agent {
        agent,
        incarnation: new,
    };
    let report = Finished::completed(TaskId::new(1), agent, AttemptToken::new(1), "out".into());
    let reported = store.agent(
        AgentOp::Report {
            sender,
            reports: vec![report.clone()],
        },
        now,
    );
    checks.that(
        "a report is posted",
        matches!(reported, Ok(AgentReply::Posted { stopped: false })),
    )?;
    let closed = store.node(NodeOp::ReadOutstanding, now);
    checks.is(
        "a reported row is no longer outstanding (rule 6)",
        &closed,
        |r| matches!(r, Ok(NodeReply::Outstanding(rows)) if rows.is_empty()),
    )?;
    let inbox = store.node(NodeOp::ReadInbox { limit: 10 }, now);
    let Ok(NodeReply::Inbox(messages)) = &inbox else {
        return Err(format!("reading the inbox answered {inbox:?}"));
    };
    let report_id = messages.last().map_or(0, |m| m.id);
    checks.that(
        "a report reaches the inbox with its sender and its output",
        messages.len() == 2
            && messages[1].sender == sender
            && messages[1].body == Ok(report.into_message()),
    )?;
    // A leader that takes over inserts again the assignments its journal
    // holds in flight; the report it has not journaled yet must keep the
    // reported attempt from running again.
    let republished = Outputs {
        assign: vec![assignment(1, 1)],
        ..Outputs::default()
    };
    let done = store.node(commit(1, 3, vec![], vec![], republished), now);
    checks.is("a commit of outputs alone is done", &done, |r| {
        matches!(r, Ok(NodeReply::Done))
    })?;
    let rerun = store.agent(claim(agent, new), now);
    checks.that(
        "a reported row inserted again is not claimed again (rules 5 and 6)",
        matches!(&rerun, Ok(AgentReply::Claimed { rows, .. }) if rows.is_empty()),
    )?;
    let cancel = Outputs {
        assign: vec![assignment(2, 2)],
        cancel: vec![(TaskId::new(2), AttemptToken::new(2))],
        closed: vec![(TaskId::new(1), AttemptToken::new(1))],
        ended: vec![(TaskId::new(1), TaskEnd::Completed)],
        results: vec![(TaskId::new(1), "out".into())],
        tenants: Vec::new(),
        runs: Vec::new(),
        status: None,
    };
    let refusal = Verdict::Refused("fenced".into());
    let consumed = vec![(second, Verdict::Accepted), (report_id, refusal)];
    let done = store.node(commit(1, 3, vec![entry(3)], consumed, cancel), now);
    checks.is(
        "a commit can insert, cancel and close rows at once",
        &done,
        |r| matches!(r, Ok(NodeReply::Done)),
    )?;
    let cancelled = store.agent(claim(agent, new), now);
    checks.that(
        "a cancelled row is never claimed",
        matches!(&cancelled, Ok(AgentReply::Claimed { rows, .. }) if rows.is_empty()),
    )?;
    // Rule 8: a closed or cancelled row is deleted, which only a new
    // insertion of the same attempt can show: it comes back ready.
    let reinsert = Outputs {
        assign: vec![assignment(1, 1), assignment(2, 2)],
        cancel: vec![(TaskId::new(2), AttemptToken::new(2))],
        ended: vec![(TaskId::new(1), TaskEnd::Cancelled)],
        ..Outputs::default()
    };
    let done = store.node(commit(1, 4, vec![entry(4)], vec![], reinsert), now);
    checks.is("inserting a row again is accepted", &done, |r| {
        matches!(r, Ok(NodeReply::Done))
    })?;
    let again = store.agent(claim(agent, new), now);
    checks.that(
        "a closed row was deleted (rule 8)",
        matches!(&again, Ok(AgentReply::Claimed { rows, .. }) if rows[..] == [assignment(1, 1)]),
    )?;
    let stale_report = store.agent(
        AgentOp::Report {
            sender: Sender::Agent {
                agent,
                incarnation: old,
            },
            reports: vec![Finished::report(TaskReport {
                task: TaskId::new(1),
                agent,
                token: AttemptToken::new(1),
                outcome: AttemptOutcome::Success,
            })],
        },
        now,
    );
    checks.that(
        "an older incarnation's report is posted",
        matches!(stale_report, Ok(AgentReply::Posted { stopped: false })),
    )?;
    let held = store.agent(claim(agent, new), now);
    checks.that(
        "a report leaves a row the reporting incarnation does not hold (rule 6)",
        matches!(&held, Ok(AgentReply::Claimed { rows, .. }) if rows[..] == [assignment(1, 1)]),
    )?;
    let stale_id = match store.node(NodeOp::ReadInbox { limit: 10 }, now) {
        Ok(NodeReply::Inbox(messages)) if messages.len() == 1 => messages[0].id,
        other => {
            return Err(format!(
                "reading an inbox holding one report answered {other:?}"
            ));
        }
    };
    checks.that(
        "a task's first published outcome stays, with its output (outcomes are idempotent)",
        outcomes(store, &[1], now)?[..] == [ended(TaskEnd::Completed, Some("out"))],
    )?;
    let closing = Outputs {
        closed: vec![(TaskId::new(1), AttemptToken::new(1))],
        ended: vec![
            (TaskId::new(2), TaskEnd::Expired(Expiry::Deadline)),
            (TaskId::new(6), TaskEnd::Redriven(TaskId::new(11))),
            (TaskId::new(12), TaskEnd::Expired(Expiry::Ttl)),
            (TaskId::new(12), TaskEnd::Redriven(TaskId::new(13))),
        ],
        ..Outputs::default()
    };
    let consumed = vec![(stale_id, Verdict::Accepted)];
    let done = store.node(commit(1, 5, vec![entry(5)], consumed, closing), now);
    checks.is("a commit closes a claimed row", &done, |r| {
        matches!(r, Ok(NodeReply::Done))
    })?;
    checks.that(
        "a redriven letter's end replaces the end it had, in an earlier commit or the same (the one exception to the first staying)",
        outcomes(store, &[6, 12], now)?[..]
            == [
                ended(TaskEnd::Redriven(TaskId::new(11)), None),
                ended(TaskEnd::Redriven(TaskId::new(13)), None),
            ],
    )?;
    let outstanding = store.node(NodeOp::ReadOutstanding, now);
    checks.is(
        "no row is outstanding once closed or cancelled",
        &outstanding,
        |r| matches!(r, Ok(NodeReply::Outstanding(rows)) if rows.is_empty()),
    )?;
    let refusals = store.agent(AgentOp::TakeRefusals { agent }, now);
    checks.that(
        "an agent reads the refusals of its messages",
        matches!(&refusals, Ok(AgentReply::Refusals(r)) if r[..] == [(report_id, "fenced".to_string())]),
    )?;
    let refusals = store.agent(AgentOp::TakeRefusals { agent }, now);
    checks.that(
        "a refusal is read once",
        matches!(&refusals, Ok(AgentReply::Refusals(r)) if r.is_empty()),
    )?;

    // Expiry, takeover and fencing of the deposed epoch.
    let later = clock(ttl + Duration::from_millis(400));
    let expired = store.node(NodeOp::ReadLease, later);
    checks.is(
        "a lease not renewed expires",
        &expired,
        |r| matches!(r, Ok(NodeReply::Lease(l)) if l.epoch == 1 && !l.held),
    )?;
    let late = store.node(
        commit(1, 5, vec![entry(5)], vec![], Outputs::default()),
        later,
    );
    checks.is("an expired epoch is fenced", &late, |r| {
        matches!(r, Err(StoreFailure::Fenced { epoch: 1, .. }))
    })?;
    let next = store.node(take(1), later);
    checks.is(
        "an expired lease is taken with the next epoch",
        &next,
        |r| matches!(r, Ok(NodeReply::Taken { epoch: 2 })),
    )?;
    let renewed = store.node(NodeOp::Renew { epoch: 2, ttl }, later);
    checks.is("the leader renews its lease", &renewed, |r| {
        matches!(r, Ok(NodeReply::Done))
    })?;
    let deposed = store.node(NodeOp::Renew { epoch: 1, ttl }, later);
    checks.is("a deposed epoch cannot renew", &deposed, |r| {
        matches!(
            r,
            Err(StoreFailure::Fenced {
                epoch: 1,
                current: 2
            })
        )
    })?;

    trimming::check_trimming(store, &mut checks, ttl, first, later)?;
    run_end_cursor::check_run_end_cursor(store, &mut checks, ttl, later)?;
    stopping::check_stopping(store, &mut checks, sender, later)?;
    Ok(checks.passed)
}

/// The ends of `runs`, as a client reads them at `at`.
fn run_ends<S: Store<String>>(
    store: &mut S,
    runs: &[u64],
    at: Instant,
) -> Result<Vec<Option<RunEnd<String>>>, String> {
    let runs = runs.iter().map(|&r| WorkflowId::new(r)).collect();
    match store.client(ClientOp::Runs(runs), at) {
        Ok(ClientReply::Runs(ends)) => Ok(ends),
        other => Err(format!("reading run ends answered {other:?}")),
    }
}

/// The outcomes of `tasks`, as a client reads them at `at`.
fn outcomes<S: Store<String>>(
    store: &mut S,
    tasks: &[u64],
    at: Instant,
) -> Result<Vec<Option<Outcome<String>>>, String> {
    let tasks = tasks.iter().map(|&t| TaskId::new(t)).collect();
    match store.client(ClientOp::Outcomes(tasks), at) {
        Ok(ClientReply::Outcomes(ends)) => Ok(ends),
        other => Err(format!("reading outcomes answered {other:?}")),
    }
}

/// The state of a node with no task and no run.
fn empty_state() -> Box<NodeState<String>> {
    Box::new(NodeState::from(
        Dispatcher::<String>::new(DispatcherConfig::default()).snapshot(),
    ))
}

/// An outcome as a client reads it.
fn ended(end: TaskEnd, output: Option<&str>) -> Option<Outcome<String>> {
    let output = output.map(str::to_owned);
    Some(Outcome { end, output })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::MemStore;

    #[test]
    fn the_memory_store_keeps_the_contract() {
        let mut store = MemStore::new();
        let mut at = Instant::from_secs(1);
        let mut clock = |d: Duration| {
            at = at.saturating_add(d);
            at
        };
        let passed = check_store(&mut store, &mut clock).unwrap();
        assert!(passed >= 50, "{passed} checks");
    }
}
