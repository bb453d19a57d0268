//! Nodes woken by the store's notices ([`NodeConfigBuilder::woken_by_notices`]):
//! an idle leader or follower reads next to nothing, a notice makes it
//! read at once, a notice that came while a read was out is not lost, the
//! state's timers still fire on time, and a node backing off waits out
//! its pause whatever it hears.

#![cfg(feature = "cluster")]

use std::time::Duration;

use taskweave::agent::AgentProfile;
use taskweave::cluster::{
    AgentOp, ClientOp, MemStore, Message, Node, NodeConfig, NodeEvent, NodeOp, Notice, Role,
    Sender, Store, StoreFailure,
};
use taskweave::scheduler::{DispatcherConfig, TaskSpec};
use taskweave::{AgentId, Instant};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// An agent is lost after 150 ms without a heartbeat.
fn dispatcher() -> DispatcherConfig {
    DispatcherConfig::builder()
        .heartbeats(ms(50), 3)
        .build()
        .unwrap()
}

/// A node woken by notices, reading at least every second.
fn noticed(name: &str) -> Node<u32> {
    let config = NodeConfig::builder(name)
        .woken_by_notices(Duration::from_secs(1))
        .backoff(ms(100), ms(100))
        .build()
        .unwrap();
    Node::new(config, dispatcher()).unwrap()
}

/// What a node sent, by kind.
#[derive(Debug, Default)]
struct Sent {
    inbox: u32,
    journal: u32,
    lease: u32,
    renew: u32,
    commit: u32,
}

impl Sent {
    fn count(&mut self, op: &NodeOp<u32>) {
        match op {
            NodeOp::ReadInbox { .. } => self.inbox += 1,
            NodeOp::ReadJournal { .. } => self.journal += 1,
            NodeOp::ReadLease => self.lease += 1,
            NodeOp::Renew { .. } => self.renew += 1,
            NodeOp::Commit { .. } => self.commit += 1,
            _ => {}
        }
    }
}

/// Runs every operation `node` has due at `now` against `store`.
fn drive(node: &mut Node<u32>, store: &mut MemStore<u32>, now: Instant, sent: &mut Sent) {
    let mut ops = 0;
    while let Some(op) = node.poll_op(now) {
        ops += 1;
        assert!(ops < 100, "{} again and again at {now:?}", op.name());
        sent.count(&op);
        let reply = store.node(op, now);
        node.handle_reply(reply, now);
    }
}

/// Drives `node` every millisecond from `from` until `until`.
fn run(
    node: &mut Node<u32>,
    store: &mut MemStore<u32>,
    from: Instant,
    until: Instant,
) -> (Sent, Instant) {
    let mut sent = Sent::default();
    let mut now = from;
    while now < until {
        drive(node, store, now, &mut sent);
        now = now.saturating_add(ms(1));
    }
    (sent, now)
}

/// Drives a leader and a follower side by side every millisecond for
/// `millis` from `from`: what the follower sent, and the instant after.
fn side_by_side(
    leading: &mut Node<u32>,
    following: &mut Node<u32>,
    store: &mut MemStore<u32>,
    from: Instant,
    millis: u64,
) -> (Sent, Instant) {
    let mut sent = Sent::default();
    let mut now = from;
    let until = from.saturating_add(ms(millis));
    while now < until {
        drive(leading, store, now, &mut Sent::default());
        drive(following, store, now, &mut sent);
        now = now.saturating_add(ms(1));
    }
    (sent, now)
}

/// A leader of `store` and a follower beside it, not yet driven, and the
/// instant the leader leads from.
fn leader_and_follower(store: &mut MemStore<u32>) -> (Node<u32>, Node<u32>, Instant) {
    let (leading, now) = leader(store);
    (leading, noticed("node-b"), now)
}

/// Drives `node` every millisecond from `from` until `done` holds, and
/// answers the instant it did; fails, saying `late`, if it does not hold
/// after the drive at `deadline`.
fn drive_until(
    node: &mut Node<u32>,
    store: &mut MemStore<u32>,
    from: Instant,
    deadline: Instant,
    late: &str,
    done: impl Fn(&Node<u32>) -> bool,
) -> Instant {
    let mut at = from;
    while !done(node) {
        assert!(at <= deadline, "{late}: {:?}", node.role());
        drive(node, store, at, &mut Sent::default());
        at = at.saturating_add(ms(1));
    }
    at
}

/// A leader of a fresh store, and the instant it leads from.
fn leader(store: &mut MemStore<u32>) -> (Node<u32>, Instant) {
    let mut node = noticed("node-a");
    let (_, now) = run(&mut node, store, Instant::ZERO, Instant::from_millis(200));
    assert!(
        matches!(node.role(), Role::Leading { .. }),
        "{:?}",
        node.role()
    );
    (node, now)
}

/// A client submits a task, the leader, told of the post, commits it,
/// and the follower is told of the append: the entry the leader reached.
fn commit_and_tell(
    leading: &mut Node<u32>,
    following: &mut Node<u32>,
    store: &mut MemStore<u32>,
    at: Instant,
) -> u64 {
    submit(store, at);
    leading.notice(Notice::InboxPost, at);
    drive(leading, store, at, &mut Sent::default());
    following.notice(Notice::JournalAppend, at);
    leading.applied()
}

fn submit(store: &mut MemStore<u32>, now: Instant) {
    store
        .client(
            ClientOp::Post(vec![Message::Submit(vec![TaskSpec::new(7)])]),
            now,
        )
        .unwrap();
}

#[test]
fn an_idle_leader_reads_its_inbox_once_a_second_and_at_once_on_a_notice() {
    let mut store = MemStore::new();
    let (mut node, now) = leader(&mut store);
    let (sent, now) = run(&mut node, &mut store, now, now.saturating_add(ms(10_000)));
    // Polling every 2 ms, it would have read 5,000 times.
    assert!(sent.inbox <= 11, "{sent:?}");
    assert!(sent.renew >= 30 && sent.renew <= 41, "{sent:?}");

    // A submit and its notice: read and committed at once, not after the
    // second's poll.
    submit(&mut store, now);
    node.notice(Notice::InboxPost, now);
    let mut sent = Sent::default();
    drive(&mut node, &mut store, now, &mut sent);
    // Read, committed, and read again in case the store held more back.
    assert_eq!((sent.inbox, sent.commit), (2, 1), "{sent:?}");
    assert_eq!(node.dispatcher().live_tasks(), 1);

    // A notice of a journal append is not the leader's business.
    let (_, now) = run(&mut node, &mut store, now, now.saturating_add(ms(300)));
    node.notice(Notice::JournalAppend, now);
    let mut sent = Sent::default();
    drive(&mut node, &mut store, now, &mut sent);
    assert_eq!(sent.inbox, 0, "{sent:?}");
}

#[test]
fn a_notice_that_comes_while_a_read_is_out_is_not_lost() {
    let mut store = MemStore::new();
    let (mut node, now) = leader(&mut store);
    let (_, now) = run(&mut node, &mut store, now, now.saturating_add(ms(2_000)));
    // The leader's read goes out, finds nothing; a post lands and its
    // notice arrives before the empty answer does.
    node.notice(Notice::InboxPost, now);
    let op = node.poll_op(now).expect("a read");
    assert!(matches!(op, NodeOp::ReadInbox { .. }), "{op:?}");
    let empty = store.node(op, now);
    let later = now.saturating_add(ms(1));
    submit(&mut store, later);
    node.notice(Notice::InboxPost, later);
    node.handle_reply(empty, later.saturating_add(ms(1)));
    let (_, _) = run(
        &mut node,
        &mut store,
        later.saturating_add(ms(1)),
        later.saturating_add(ms(5)),
    );
    assert_eq!(
        node.dispatcher().live_tasks(),
        1,
        "the task posted while the read was out waits for no poll"
    );
}

#[test]
fn the_states_timers_wake_an_idle_leader_before_its_poll() {
    let mut store = MemStore::new();
    let (mut node, now) = leader(&mut store);
    let profile = AgentProfile::builder().capacity(1).build().unwrap();
    let sender = Sender::Agent {
        agent: AgentId::new(1),
        incarnation: 1,
    };
    store
        .agent(
            AgentOp::Post {
                sender,
                messages: vec![Message::Register { profile }],
            },
            now,
        )
        .unwrap();
    node.notice(Notice::InboxPost, now);
    // The agent never beats: it is lost 150 ms after it registered, though
    // the leader's poll is a second.
    let mut at = now;
    let lost = loop {
        drive(&mut node, &mut store, at, &mut Sent::default());
        if std::iter::from_fn(|| node.poll_event())
            .any(|e| matches!(e, NodeEvent::AgentLost { .. }))
        {
            break at;
        }
        assert!(
            at < now.saturating_add(ms(900)),
            "no agent lost by its deadline"
        );
        at = at.saturating_add(ms(1));
    };
    assert!(
        lost.saturating_duration_since(now) <= ms(160),
        "lost after {:?}",
        lost.saturating_duration_since(now)
    );
}

#[test]
fn an_idle_follower_reads_the_lease_and_the_journal_only_when_told_of_an_append() {
    let mut store = MemStore::new();
    let (mut leading, mut following, now) = leader_and_follower(&mut store);
    // Both run side by side for ten idle seconds.
    let (sent, now_f) = side_by_side(&mut leading, &mut following, &mut store, now, 10_000);
    assert_eq!(following.role(), Role::Following);
    // The lease when it would expire (about once a lifetime, 1 s), the
    // journal every second: following every 20 ms, it would have read
    // each 500 times; reading the lease every renewal period, 40.
    assert!(sent.lease <= 12, "{sent:?}");
    assert!(sent.journal <= 12, "{sent:?}");

    // The leader commits a task; told of it, the follower reads it within
    // its follow period.
    let appended = commit_and_tell(&mut leading, &mut following, &mut store, now_f);
    drive_until(
        &mut following,
        &mut store,
        now_f,
        now_f.saturating_add(ms(25)),
        "the follower missed the append",
        |f| f.applied() >= appended,
    );
}

#[test]
fn a_node_backing_off_waits_out_its_pause_whatever_it_hears() {
    let mut store = MemStore::new();
    let (mut node, now) = leader(&mut store);
    let (_, now) = run(&mut node, &mut store, now, now.saturating_add(ms(2_000)));
    node.notice(Notice::InboxPost, now);
    let op = node.poll_op(now).expect("a read");
    node.handle_reply(
        Err(StoreFailure::Failed {
            cause: "the server is restarting".into(),
        }),
        now,
    );
    drop(op);
    // Its pause is 100 ms: a notice within it sends nothing.
    let soon = now.saturating_add(ms(10));
    node.notice(Notice::InboxPost, soon);
    assert!(node.poll_op(soon).is_none(), "sent during its pause");
    let after = now.saturating_add(ms(100));
    assert!(
        node.poll_op(after).is_some(),
        "sends once the pause is over"
    );
}

#[test]
fn a_follower_told_of_an_append_while_it_reads_the_lease_reads_the_journal_next() {
    let mut store = MemStore::new();
    let (mut leading, mut following, now) = leader_and_follower(&mut store);
    let mut at = now;
    // Until the follower, settled, next sends a lone lease read.
    let lease_read = loop {
        drive(&mut leading, &mut store, at, &mut Sent::default());
        if following.role() == Role::Following {
            if let Some(op) = following.poll_op(at) {
                if matches!(op, NodeOp::ReadLease) {
                    break op;
                }
                let reply = store.node(op, at);
                following.handle_reply(reply, at);
                continue;
            }
        } else {
            drive(&mut following, &mut store, at, &mut Sent::default());
        }
        assert!(at < now.saturating_add(ms(5_000)), "no lone lease read");
        at = at.saturating_add(ms(1));
    };
    // The leader commits, and its notice reaches the follower while the
    // lease read is out.
    let appended = commit_and_tell(&mut leading, &mut following, &mut store, at);
    let lease = store.node(lease_read, at);
    following.handle_reply(lease, at);
    drive_until(
        &mut following,
        &mut store,
        at,
        at.saturating_add(ms(25)),
        "the follower waited for its poll",
        |f| f.applied() >= appended,
    );
}

#[test]
fn a_leader_that_rebuilds_reads_what_was_posted_meanwhile_at_once() {
    let mut store = MemStore::new();
    // A poll of 5 s: longer than the lease.
    let config = NodeConfig::builder("node-a")
        .woken_by_notices(Duration::from_secs(5))
        .backoff(ms(10), ms(10))
        .build()
        .unwrap();
    let mut node: Node<u32> = Node::new(config, dispatcher()).unwrap();
    let (_, now) = run(
        &mut node,
        &mut store,
        Instant::ZERO,
        Instant::from_millis(200),
    );
    assert!(matches!(node.role(), Role::Leading { epoch: 1 }));
    let (_, now) = run(&mut node, &mut store, now, now.saturating_add(ms(300)));
    // Frozen past its lease: its next renewal is fenced and it rebuilds.
    let thawed = now.saturating_add(ms(1_500));
    let op = node.poll_op(thawed).expect("a renewal");
    assert!(matches!(op, NodeOp::Renew { .. }), "{op:?}");
    let fenced = store.node(op, thawed);
    node.handle_reply(fenced, thawed);
    assert!(!matches!(node.role(), Role::Leading { .. }));
    // A submit lands, its notice reaches the node while it does not lead.
    submit(&mut store, thawed);
    node.notice(Notice::InboxPost, thawed);
    let mut at = thawed;
    while node.dispatcher().live_tasks() == 0 {
        assert!(
            at < thawed.saturating_add(ms(200)),
            "the post waited for the poll after the node led again"
        );
        at = at.saturating_add(ms(1));
        drive(&mut node, &mut store, at, &mut Sent::default());
    }
    assert!(matches!(node.role(), Role::Leading { epoch: 2 }));
}

/// A follower that knows how long the lease lasts reads it when it would
/// expire: a live leader costs it about one read a lifetime, and a dead
/// one is replaced as soon as its lease ends, not a renewal period later.
#[test]
fn a_follower_reads_the_lease_as_it_would_expire_and_takes_it_then() {
    let mut store = MemStore::new();
    let (mut leading, mut following, now) = leader_and_follower(&mut store);
    let (sent, at) = side_by_side(&mut leading, &mut following, &mut store, now, 5_000);
    assert_eq!(following.role(), Role::Following);
    assert!(sent.lease <= 7, "{sent:?}");
    // The leader dies: its lease ends a lifetime after its last renewal.
    let lease = store.lease(at);
    assert!(lease.held && lease.left <= ms(1_000), "{lease:?}");
    let expires = at.saturating_add(lease.left);
    drive_until(
        &mut following,
        &mut store,
        at,
        expires.saturating_add(ms(5)),
        "the follower took the lease more than 5 ms after it expired",
        |f| matches!(f.role(), Role::Leading { .. }),
    );
}

/// A leader whose agents only heartbeat (every 500 ms, lost after 2 s):
/// it reads its inbox about once a poll, its commits carry the status
/// about once a second, and it never reads again at once after a read of
/// nothing but heartbeats; a report still gets its follow-up read.
#[test]
fn a_leader_that_only_hears_heartbeats_commits_about_once_a_poll() {
    let (sent, statuses) = only_heartbeats(Duration::ZERO);
    // A read a poll (a heartbeat timer due with it rides on it), a commit
    // a second (the run is deterministic: 10 reads, 9 commits; reading
    // again after every read of heartbeats made it 19 reads).
    assert!(sent.inbox <= 11, "{sent:?}");
    assert!(sent.commit <= 10, "{sent:?}");
    assert!(
        (8..=12).contains(&statuses),
        "{statuses} statuses: {sent:?}"
    );
}

/// The same leader with a store that answers 3 ms after it is asked, as
/// a server does: each poll then comes due a few milliseconds after the
/// heartbeat timer that a read a poll earlier armed, and the timer's read
/// counts as the poll (reading again at the poll, a few milliseconds
/// later, made it 15 reads and a leader over 5 statements a second on
/// PostgreSQL).
#[test]
fn a_read_a_timer_brings_forward_counts_as_the_poll() {
    let (sent, statuses) = only_heartbeats(ms(3));
    assert!(sent.inbox <= 11, "{sent:?}");
    assert!(sent.commit <= 10, "{sent:?}");
    assert!(
        (8..=12).contains(&statuses),
        "{statuses} statuses: {sent:?}"
    );
}

/// Ten seconds of a leader whose three agents only heartbeat, its store
/// answering `latency` after each operation is sent: what the leader sent
/// and how many statuses it published.
fn only_heartbeats(latency: Duration) -> (Sent, u32) {
    let dispatcher = DispatcherConfig::builder()
        .heartbeats(ms(500), 4)
        .build()
        .unwrap();
    let config = NodeConfig::builder("node-a")
        .woken_by_notices(Duration::from_secs(1))
        .build()
        .unwrap();
    let mut store = MemStore::new();
    let mut node = Node::new(config, dispatcher).unwrap();
    let (_, mut now) = run(
        &mut node,
        &mut store,
        Instant::ZERO,
        Instant::from_millis(200),
    );
    let agents = [1, 2, 3].map(|n| Sender::Agent {
        agent: AgentId::new(n),
        incarnation: 1,
    });
    let post = |store: &mut MemStore<u32>, sender, message, now| {
        store
            .agent(
                AgentOp::Post {
                    sender,
                    messages: vec![message],
                },
                now,
            )
            .unwrap();
    };
    for sender in agents {
        let profile = AgentProfile::builder().capacity(2).build().unwrap();
        post(&mut store, sender, Message::Register { profile }, now);
    }
    node.notice(Notice::InboxPost, now);
    let (_, later) = run(&mut node, &mut store, now, now.saturating_add(ms(1_000)));
    now = later;
    let mut sent = Sent::default();
    let until = now.saturating_add(ms(10_000));
    let mut statuses = 0;
    let mut last_status = None;
    // An answer on its way, and when it arrives.
    let mut answer = None;
    while now < until {
        // Nearly in phase, as agents started together are: every 500 ms,
        // agent n at n × 3 ms.
        for (n, sender) in agents.into_iter().enumerate() {
            if now.as_nanos() % 500_000_000 == 3_000_000 * n as u64 {
                post(&mut store, sender, Message::Heartbeat, now);
            }
        }
        loop {
            match answer.take() {
                Some((reply, at)) if at <= now => node.handle_reply(reply, now),
                Some(waiting) => {
                    answer = Some(waiting);
                    break;
                }
                None => {}
            }
            let Some(op) = node.poll_op(now) else { break };
            sent.count(&op);
            answer = Some((store.node(op, now), now.saturating_add(latency)));
        }
        if let Ok(taskweave::cluster::ClientReply::Status(_, Some(status))) =
            store.client(ClientOp::Status, now)
        {
            if last_status != Some(status.at) {
                statuses += 1;
                last_status = Some(status.at);
            }
        }
        now = now.saturating_add(ms(1));
    }
    // Every agent registered and is online still: none was lost for a
    // heartbeat the leader took at its poll.
    for n in 1..=3 {
        let record = node.dispatcher().registry().get(AgentId::new(n));
        assert_eq!(
            record.map(|r| r.status()),
            Some(taskweave::agent::AgentStatus::Online),
            "agent {n}"
        );
    }
    (sent, statuses)
}

/// A follower of a draining cluster reads the lease after each journal
/// read, as it did before it knew how long a lease lasts: told of the
/// leader's stop (the stop's notice makes it read the journal), it ends
/// at once, before an operator's `reset` could clear the stop.
#[test]
fn a_follower_told_of_the_stop_of_a_drained_cluster_ends_at_once() {
    let mut store = MemStore::new();
    let (mut leading, mut following, now) = leader_and_follower(&mut store);
    let (_, now) = side_by_side(&mut leading, &mut following, &mut store, now, 2_000);
    store
        .client(ClientOp::Post(vec![Message::Drain]), now)
        .unwrap();
    leading.notice(Notice::InboxPost, now);
    let mut at = now;
    // The leader drains and stops; each commit's notice reaches the
    // follower.
    while !store.lease(at).stopped {
        let before = leading.applied();
        drive(&mut leading, &mut store, at, &mut Sent::default());
        if leading.applied() != before || store.lease(at).stopped {
            following.notice(Notice::JournalAppend, at);
        }
        drive(&mut following, &mut store, at, &mut Sent::default());
        assert!(
            at < now.saturating_add(ms(2_000)),
            "the leader never stopped"
        );
        at = at.saturating_add(ms(1));
    }
    drive_until(
        &mut following,
        &mut store,
        at,
        at.saturating_add(ms(25)),
        "the follower read the stop late",
        |f| f.role() == Role::Stopped,
    );
}
