//! A leader whose commit answer was lost (`StoreFailure::Unknown`) reads
//! the commit's first entry back: found under its epoch, it leads on
//! without rebuilding; not found, it sends the same commit again; found
//! under another epoch, it rebuilds. A refused commit is sent again after
//! a backoff.

#![cfg(feature = "cluster")]

use std::time::Duration;

use taskweave::cluster::{
    AgentOp, ClientOp, ClientReply, MemStore, Message, MessageId, Node, NodeConfig, NodeEvent,
    NodeOp, NodeReply, Role, Sender, Store, StoreFailure, Verdict,
};
use taskweave::scheduler::{DispatcherConfig, TaskSpec};
use taskweave::{Instant, TaskId};

fn lost() -> StoreFailure {
    StoreFailure::Unknown {
        cause: "test: the answer was lost".into(),
    }
}

struct Host {
    store: MemStore<u32>,
    node: Node<u32>,
    now: Instant,
}

impl Host {
    fn new() -> Self {
        let dispatcher = DispatcherConfig::builder()
            .heartbeats(Duration::from_millis(250), 8)
            .build()
            .unwrap();
        let config = NodeConfig::builder("a").build().unwrap();
        Host {
            store: MemStore::new(),
            node: Node::new(config, dispatcher).unwrap(),
            now: Instant::from_secs(1),
        }
    }

    fn submit(&mut self, n: u32) {
        let _ = self.post(n);
    }

    /// Posts `n` tasks in one message: its id.
    fn post(&mut self, n: u32) -> MessageId {
        let specs = (0..n).map(TaskSpec::new).collect();
        let posted = self
            .store
            .client(ClientOp::Post(vec![Message::Submit(specs)]), self.now);
        match posted {
            Ok(ClientReply::Posted(ids)) if ids.len() == 1 => ids[0],
            other => panic!("{other:?}"),
        }
    }

    /// The ids of the tasks `message` submitted, by its verdict.
    fn submitted(&mut self, message: MessageId) -> Vec<TaskId> {
        match self
            .store
            .client(ClientOp::Verdicts(vec![message]), self.now)
        {
            Ok(ClientReply::Verdicts(verdicts)) => match verdicts.as_slice() {
                [Some(Verdict::Submitted(ids))] => {
                    ids.iter().map(|id| *id.as_ref().expect("a task")).collect()
                }
                other => panic!("message {message}: {other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }

    /// The node's next operation, moving time on until it has one.
    fn next_op(&mut self) -> NodeOp<u32> {
        for _ in 0..10_000 {
            if let Some(op) = self.node.poll_op(self.now) {
                return op;
            }
            self.now = self.now.saturating_add(Duration::from_millis(1));
        }
        panic!("the node sent nothing for 10 s");
    }

    /// Runs operations on the store until the node sends a commit with
    /// entries, which it returns unexecuted.
    fn until_dirty_commit(&mut self) -> NodeOp<u32> {
        for _ in 0..1_000 {
            let op = self.next_op();
            if matches!(&op, NodeOp::Commit { entries, .. } if !entries.is_empty()) {
                return op;
            }
            let reply = self.store.node(op, self.now);
            self.node.handle_reply(reply, self.now);
        }
        panic!("no commit with entries in 1,000 operations");
    }

    /// The journal's last entry.
    fn journal_end(&mut self) -> u64 {
        match self.store.node(
            NodeOp::ReadJournal {
                from: 1,
                limit: 1_000,
            },
            self.now,
        ) {
            Ok(NodeReply::Journal(rows)) => rows.last().map_or(0, |r| r.seq),
            other => panic!("{other:?}"),
        }
    }
}

fn first_seq(op: &NodeOp<u32>) -> u64 {
    match op {
        NodeOp::Commit { first_seq, .. } => *first_seq,
        other => panic!("not a commit: {other:?}"),
    }
}

/// The node answers the read-back of the commit at `seq` and says what it
/// sent next.
fn read_back(host: &mut Host, seq: u64) -> NodeOp<u32> {
    let op = host.next_op();
    assert!(
        matches!(op, NodeOp::ReadJournal { from, limit: 1 } if from == seq),
        "expected the read-back of entry {seq}, got {op:?}"
    );
    let reply = host.store.node(op, host.now);
    host.node.handle_reply(reply, host.now);
    host.next_op()
}

#[test]
fn a_commit_that_landed_is_confirmed_without_rebuilding() {
    let mut host = Host::new();
    host.submit(3);
    let commit = host.until_dirty_commit();
    let seq = first_seq(&commit);
    let landed = host.store.node(commit, host.now);
    assert!(matches!(landed, Ok(NodeReply::Done)), "{landed:?}");
    host.node.handle_reply(Err(lost()), host.now);
    let next = read_back(&mut host, seq);
    assert!(
        !matches!(next, NodeOp::LatestSnapshot),
        "the leader rebuilt although its commit landed"
    );
    assert!(matches!(host.node.role(), Role::Leading { epoch: 1 }));
    assert_eq!(host.node.applied(), host.journal_end());
}

/// Runs `op` on the store and hands the answer to the node.
fn execute(host: &mut Host, op: NodeOp<u32>) {
    let reply = host.store.node(op, host.now);
    host.node.handle_reply(reply, host.now);
}

/// A leader's first commit, lost without landing and read back: the
/// commit, and what the node sent next.
fn lost_unlanded(host: &mut Host) -> (NodeOp<u32>, NodeOp<u32>) {
    host.submit(3);
    let commit = host.until_dirty_commit();
    let seq = first_seq(&commit);
    host.node.handle_reply(Err(lost()), host.now);
    let next = read_back(host, seq);
    (commit, next)
}

#[test]
fn a_commit_that_did_not_land_is_sent_again_as_it_was() {
    let mut host = Host::new();
    let (commit, again) = lost_unlanded(&mut host);
    assert_eq!(format!("{again:?}"), format!("{commit:?}"));
    execute(&mut host, again);
    assert!(matches!(host.node.role(), Role::Leading { epoch: 1 }));
    assert_eq!(host.node.applied(), host.journal_end());
}

#[test]
fn a_refused_commit_is_sent_again_after_a_backoff() {
    let mut host = Host::new();
    host.submit(3);
    let commit = host.until_dirty_commit();
    let refused = StoreFailure::Failed {
        cause: "test: the store is restarting".into(),
    };
    let failed_at = host.now;
    host.node.handle_reply(Err(refused), host.now);
    let again = host.next_op();
    assert!(host.now > failed_at, "sent again without a backoff");
    assert_eq!(format!("{again:?}"), format!("{commit:?}"));
    execute(&mut host, again);
    assert!(matches!(host.node.role(), Role::Leading { epoch: 1 }));
    assert_eq!(host.node.applied(), host.journal_end());
}

/// A commit lost without landing may land later (a server still finishing
/// it) while its copy is on its way. Whichever lands, the other
/// conflicts: the leader reads the entry back, finds its epoch, and leads
/// on from a state the journal holds, without rebuilding.
#[test]
fn a_late_original_and_its_copy_land_once() {
    let mut host = Host::new();
    let (old, again) = lost_unlanded(&mut host);
    let seq = first_seq(&old);
    let landed = host.store.node(old, host.now);
    assert!(matches!(landed, Ok(NodeReply::Done)), "{landed:?}");
    let conflict = host.store.node(again, host.now);
    assert!(
        matches!(conflict, Err(StoreFailure::Conflict { .. })),
        "{conflict:?}"
    );
    host.node.handle_reply(conflict, host.now);
    let next = read_back(&mut host, seq);
    assert!(
        !matches!(next, NodeOp::LatestSnapshot | NodeOp::Commit { .. }),
        "the leader rebuilt or committed again: {next:?}"
    );
    assert!(matches!(host.node.role(), Role::Leading { epoch: 1 }));
    assert_eq!(host.node.applied(), host.journal_end());
    execute(&mut host, next);
    host.submit(1);
    let after = host.until_dirty_commit();
    assert_eq!(first_seq(&after), host.journal_end() + 1);
}

/// A commit refused because another leader wrote its place: deposed, the
/// node rebuilds and follows.
#[test]
fn a_commit_whose_place_another_epoch_took_is_rebuilt() {
    let mut host = Host::new();
    host.submit(3);
    let commit = host.until_dirty_commit();
    let seq = first_seq(&commit);
    // A rival takes the expired lease and writes the same place.
    host.now = host.now.saturating_add(Duration::from_secs(60));
    let taken = host.store.node(
        NodeOp::TakeLease {
            seen: 1,
            holder: "rival".into(),
            ttl: Duration::from_secs(10),
        },
        host.now,
    );
    assert!(
        matches!(taken, Ok(NodeReply::Taken { epoch: 2 })),
        "{taken:?}"
    );
    let NodeOp::Commit {
        entries,
        consumed,
        outputs,
        ..
    } = commit
    else {
        unreachable!()
    };
    let rival = host.store.node(
        NodeOp::Commit {
            epoch: 2,
            ttl: Duration::from_secs(10),
            first_seq: seq,
            entries,
            consumed,
            outputs,
        },
        host.now,
    );
    assert!(matches!(rival, Ok(NodeReply::Done)), "{rival:?}");
    host.node.handle_reply(Err(lost()), host.now);
    let next = read_back(&mut host, seq);
    assert!(matches!(next, NodeOp::LatestSnapshot), "{next:?}");
    execute(&mut host, next);
    for _ in 0..20 {
        let op = host.next_op();
        execute(&mut host, op);
    }
    assert_eq!(host.node.role(), Role::Following);
    assert_eq!(host.node.applied(), host.journal_end());
}

/// A leader that committed a task is posted a heartbeat from an agent
/// nobody registered: refused, a commit of verdicts alone (no entry). The
/// first such commit is answered by `answer` (which may run it on the
/// store, or not); every event after it must pass `fine`. Returns once
/// the heartbeat's verdict is stored.
fn verdicts_alone_answered_by(
    host: &mut Host,
    answer: impl FnOnce(&mut Host, NodeOp<u32>) -> Result<NodeReply<u32>, StoreFailure>,
    fine: impl Fn(&NodeEvent) -> bool,
) {
    host.submit(1);
    let first = host.until_dirty_commit();
    execute(host, first);
    // The start's restore of the empty store, said before what is tested.
    while host.node.poll_event().is_some() {}
    let sender = Sender::Agent {
        agent: taskweave::AgentId::new(9),
        incarnation: 1,
    };
    let posted = host.store.agent(
        AgentOp::Post {
            sender,
            messages: vec![Message::Heartbeat],
        },
        host.now,
    );
    assert!(posted.is_ok(), "{posted:?}");
    let mut answer = Some(answer);
    for _ in 0..2_000 {
        let op = host.next_op();
        let verdicts_alone = matches!(&op, NodeOp::Commit { entries, consumed, .. } if entries.is_empty() && !consumed.is_empty());
        match answer.take_if(|_| verdicts_alone) {
            Some(answer) => {
                let reply = answer(host, op);
                host.node.handle_reply(reply, host.now);
            }
            None => execute(host, op),
        }
        while let Some(event) = host.node.poll_event() {
            assert!(fine(&event), "unexpected: {event}");
        }
        // The agent's message: its verdict is not a client's to read.
        if answer.is_none() && matches!(host.store.verdict(2), Some(Verdict::Refused(_))) {
            return;
        }
    }
    panic!(
        "the refused heartbeat never got its verdict (answered: {})",
        answer.is_none()
    );
}

/// A commit of verdicts alone whose request was lost leaves its message
/// pending: the store hands it out again, and the leader takes it in
/// again instead of calling the store broken and backing off for good
/// (seen in the simulator: a leader stuck for seconds on "the inbox
/// handed out message … twice").
#[test]
fn a_lost_commit_of_verdicts_alone_takes_its_messages_in_again() {
    let mut host = Host::new();
    verdicts_alone_answered_by(
        &mut host,
        |_, _| Err(lost()),
        |event| !matches!(event, NodeEvent::BadAnswer { .. }),
    );
}

/// A commit of verdicts alone delivered twice (a network that duplicates
/// a request): the copy lands first and the original is refused, its
/// message no longer pending. The store did not go back in time: the
/// leader reads the last entry it applied, finds it, and leads on without
/// saying the database was restored from a backup or rebuilding.
#[test]
fn a_commit_of_verdicts_alone_refused_after_its_copy_landed_is_no_rebuild() {
    let mut host = Host::new();
    verdicts_alone_answered_by(
        &mut host,
        |host, op| {
            let copy = host.store.node(op.clone(), host.now);
            assert!(matches!(copy, Ok(NodeReply::Done)), "{copy:?}");
            let answer = host.store.node(op, host.now);
            assert!(
                matches!(answer, Err(StoreFailure::Conflict { .. })),
                "{answer:?}"
            );
            answer
        },
        |event| {
            !matches!(event, NodeEvent::Restored { .. })
                && !event.to_string().contains("went back in time")
        },
    );
    host.submit(1);
    let commit = host.until_dirty_commit();
    execute(&mut host, commit);
    leads_from_the_store(&mut host, 2);
}

/// A leader frozen past its lease (a `SIGSTOP`, a paused VM) gets the
/// answer to its inbox read when it wakes: it renews before it takes the
/// messages in, instead of finding every agent silent by its leapt clock
/// and declaring them lost (seen in the chaos test: a deposed leader
/// logged all five agents lost before it learned it was deposed).
#[test]
fn a_leader_frozen_past_its_lease_renews_before_it_takes_messages_in() {
    use taskweave::cluster::{AgentOp, NodeEvent, Sender};
    let mut host = Host::new();
    host.submit(1);
    let first = host.until_dirty_commit();
    execute(&mut host, first);
    let register = host.store.agent(
        AgentOp::Post {
            sender: Sender::Agent {
                agent: taskweave::AgentId::new(1),
                incarnation: 1,
            },
            messages: vec![Message::Register {
                profile: taskweave::agent::AgentProfile::builder().build().unwrap(),
            }],
        },
        host.now,
    );
    assert!(register.is_ok(), "{register:?}");
    let registered = host.until_dirty_commit();
    execute(&mut host, registered);
    // The next inbox read: answered, but the node is frozen for 3 s (the
    // lease lasts 1 s, heartbeats 2 s) before it reads the answer.
    let read = loop {
        let op = host.next_op();
        if matches!(op, NodeOp::ReadInbox { .. }) {
            break op;
        }
        execute(&mut host, op);
    };
    host.submit(1);
    let answer = host.store.node(read, host.now);
    host.now = host.now.saturating_add(Duration::from_secs(3));
    host.node.handle_reply(answer, host.now);
    while let Some(event) = host.node.poll_event() {
        assert!(
            !matches!(event, NodeEvent::AgentLost { .. }),
            "a leader that woke past its lease decided by its clock: {event}"
        );
    }
    let next = host.next_op();
    assert!(
        matches!(next, NodeOp::Renew { .. }),
        "a leader that woke past its lease sent {next:?} before renewing"
    );
}

/// A leader commits three tasks; the store is copied (a backup); `more`
/// commits more work; the copy replaces the store (the database restored
/// from the backup, tables emptied by hand). Answers the copy's last
/// entry.
fn restored_from_backup(host: &mut Host, more: impl FnOnce(&mut Host)) -> u64 {
    host.submit(3);
    let commit = host.until_dirty_commit();
    execute(host, commit);
    let backup = host.store.clone();
    let kept = host.journal_end();
    more(host);
    let commit = host.until_dirty_commit();
    execute(host, commit);
    assert!(host.journal_end() > kept);
    host.store = backup;
    kept
}

/// Drives the node for `span`: whether it said the store went back in
/// time, and whether it rebuilt from it. A node that sends 100,000
/// operations in that span spins, and fails the test.
fn rebuilds(host: &mut Host, span: Duration) -> (bool, bool) {
    let until = host.now.saturating_add(span);
    let (mut said, mut rebuilt) = (false, false);
    let mut sent = 0;
    while host.now < until {
        sent += 1;
        assert!(
            sent < 100_000,
            "the node spins: {sent} operations by {:?}",
            host.now
        );
        let op = host.next_op();
        execute(host, op);
        while let Some(event) = host.node.poll_event() {
            match event {
                NodeEvent::BadAnswer { why, .. } => {
                    said |= why.contains("went back in time (was the database restored");
                }
                NodeEvent::Restored { .. } => rebuilt = true,
                _ => {}
            }
        }
    }
    (said, rebuilt)
}

/// The node leads from the store: `live` tasks, its state at the
/// journal's end.
fn leads_from_the_store(host: &mut Host, live: usize) {
    assert!(
        matches!(host.node.role(), Role::Leading { .. }),
        "{:?}",
        host.node.role()
    );
    assert_eq!(host.node.dispatcher().live_tasks(), live);
    assert_eq!(host.node.applied(), host.journal_end());
}

/// A leader whose store went back in time is handed out a message it
/// consumed; it reads the last entry it applied, finds the journal ends
/// before it, says why, rebuilds from the store and commits where the
/// journal ends, where it used to wait on the inbox for ever. The store
/// is the truth: what it lost is lost.
#[test]
fn a_leader_ahead_of_its_store_rebuilds_from_it() {
    let mut host = Host::new();
    let kept = restored_from_backup(&mut host, |host| host.submit(2));
    host.submit(1);
    let (said, rebuilt) = rebuilds(&mut host, Duration::from_secs(5));
    assert!(said && rebuilt, "said why: {said}; rebuilt: {rebuilt}");
    assert!(host.journal_end() > kept, "nothing committed after it");
    // The copy's 3 tasks and the new one; the 2 after the copy are lost.
    leads_from_the_store(&mut host, 4);
}

/// The tasks a leader's state gave ids to after the backup are lost with
/// it; their ids are not handed out again to other tasks (a submitter
/// holding one would read another task's outcome under it): the leader
/// journals that it skips them first when it leads again.
#[test]
fn a_leader_rebuilt_from_a_backup_hands_out_no_id_it_handed_out_before() {
    let mut host = Host::new();
    let kept = host.post(3);
    let commit = host.until_dirty_commit();
    execute(&mut host, commit);
    let kept = host.submitted(kept);
    let backup = host.store.clone();
    let lost = host.post(2);
    let commit = host.until_dirty_commit();
    execute(&mut host, commit);
    let lost = host.submitted(lost);
    host.store = backup;
    let after = host.post(3);
    let (said, rebuilt) = rebuilds(&mut host, Duration::from_secs(5));
    assert!(said && rebuilt, "said why: {said}; rebuilt: {rebuilt}");
    let after = host.submitted(after);
    assert_eq!(after.len(), 3);
    let reused: Vec<_> = (after.iter())
        .filter(|id| lost.contains(id) || kept.contains(id))
        .collect();
    assert!(
        reused.is_empty(),
        "handed out again: {reused:?} (lost {lost:?})"
    );
    leads_from_the_store(&mut host, 6);
}

/// A commit of entries the store refuses as out of place, read back and
/// not found: no earlier copy landed in its place, so sending it again
/// could never land either; the leader rebuilds from the store.
#[test]
fn a_commit_refused_as_out_of_place_and_not_found_is_rebuilt_not_resent() {
    let mut host = Host::new();
    host.submit(3);
    let commit = host.until_dirty_commit();
    let seq = first_seq(&commit);
    let conflict = StoreFailure::Conflict {
        what: format!("test: entry {seq} is not the journal's next"),
    };
    host.node.handle_reply(Err(conflict), host.now);
    let next = read_back(&mut host, seq);
    assert!(
        matches!(next, NodeOp::LatestSnapshot),
        "the leader sent {next:?}, not a rebuild's first read"
    );
}

/// The same store gone back in time, found by a commit of a timer's
/// entries (no message in it): the store refuses it as out of place and
/// does not hold it, so sending it again can never land; the leader
/// rebuilds from the store instead.
#[test]
fn a_leader_whose_commit_the_store_refuses_as_out_of_place_rebuilds() {
    let mut host = Host::new();
    let later = host.now.saturating_add(Duration::from_secs(2));
    let kept = restored_from_backup(&mut host, |host| {
        let delayed = Message::Submit(vec![TaskSpec::new(9).not_before(later)]);
        let posted = host.store.client(ClientOp::Post(vec![delayed]), host.now);
        assert!(matches!(posted, Ok(ClientReply::Posted(_))), "{posted:?}");
    });
    let (said, rebuilt) = rebuilds(&mut host, Duration::from_secs(4));
    assert!(said && rebuilt, "said why: {said}; rebuilt: {rebuilt}");
    assert!(host.journal_end() >= kept);
    leads_from_the_store(&mut host, 3);
}
