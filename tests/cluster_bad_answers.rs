//! A store whose answers are corrupt or contradict each other cannot make
//! a role spin: fed such answers in a loop at one instant, a node or an
//! agent session sends a few operations, says why with an event, and names
//! a later instant in `poll_timeout`; the pause grows while such answers go
//! on, and once it has passed the role tries again.
//!
//! Case count: `PROPTEST_CASES` (default 64).

#![cfg(feature = "cluster")]

use std::time::Duration;

use proptest::prelude::*;
use taskweave::agent::AgentProfile;
use taskweave::cluster::{
    AgentOp, AgentReply, AgentSession, Assignment, Entry, InboxMessage, JournalRow, Lease, Message,
    Node, NodeConfig, NodeEvent, NodeOp, NodeReply, Role, Sender, SessionConfig, SessionEvent,
    StoreFailure,
};
use taskweave::scheduler::{Dispatcher, DispatcherConfig, Input, Snapshot};
use taskweave::{AgentId, AttemptToken, Instant, TaskId};

mod corrupt;

type Answer = Result<NodeReply<u32>, StoreFailure>;

/// More operations than any role sends at one instant, whatever it is told.
const SPIN: usize = 10_000;

fn dispatcher_config() -> DispatcherConfig {
    DispatcherConfig::builder()
        .heartbeats(Duration::from_millis(250), 8)
        .build()
        .unwrap()
}

fn node() -> Node<u32> {
    node_with(NodeConfig::builder("n"))
}

/// A node with `config` and a backoff from 50 to 400 ms.
fn node_with(config: taskweave::cluster::NodeConfigBuilder) -> Node<u32> {
    let config = config
        .backoff(Duration::from_millis(50), Duration::from_millis(400))
        .build()
        .unwrap();
    Node::new(config, dispatcher_config()).unwrap()
}

/// Runs `node` at `now` until it has nothing to send (or [`SPIN`]
/// operations), answering each operation with `store`; how many it sent.
fn ops_at(
    node: &mut Node<u32>,
    now: Instant,
    store: &mut impl FnMut(&NodeOp<u32>) -> Answer,
) -> usize {
    let mut sent = 0;
    while let Some(op) = node.poll_op(now) {
        let answer = store(&op);
        node.handle_reply(answer, now);
        sent += 1;
        if sent == SPIN {
            break;
        }
    }
    sent
}

/// The pauses of the bad answers the node reported since last asked.
fn bad_answers(node: &mut Node<u32>) -> Vec<(String, Duration)> {
    std::iter::from_fn(|| node.poll_event())
        .filter_map(|event| match event {
            NodeEvent::BadAnswer { why, retry_in } => Some((why, retry_in)),
            _ => None,
        })
        .collect()
}

fn lease(epoch: u64, held: bool) -> Answer {
    Ok(NodeReply::Lease(Lease {
        epoch,
        holder: "other".into(),
        held,
        left: std::time::Duration::ZERO,
        stopped: false,
    }))
}

fn row(seq: u64) -> JournalRow<u32> {
    JournalRow {
        seq,
        epoch: 1,
        entry: Entry::Input(Input::HandleTimeout {
            now: Instant::from_secs(seq),
        }),
        bytes: 0,
    }
}

/// Drives `node` through `rounds` instants of `store`, each past the
/// node's `poll_timeout`, and checks that every instant costs at most a
/// few operations, each one ends with a bad answer reported and a later
/// wake-up, and the pauses grow to the backoff's ceiling; what the node
/// said last.
fn backs_off(
    node: &mut Node<u32>,
    rounds: usize,
    mut store: impl FnMut(&NodeOp<u32>) -> Answer,
) -> String {
    let mut now = Instant::from_secs(10);
    let mut pauses = Vec::new();
    let mut last = String::new();
    for _ in 0..rounds {
        let sent = ops_at(node, now, &mut store);
        assert!(sent <= 12, "{sent} operations at one instant");
        assert_eq!(node.poll_op(now).map(|op| op.name()), None);
        let bad = bad_answers(node);
        let (why, pause) = bad.last().cloned().expect("a bad answer is reported");
        let wake = node.poll_timeout().expect("the node wakes again");
        assert!(wake > now, "it waits: {wake:?} after {now:?}");
        pauses.push(pause);
        last = why;
        now = wake;
    }
    assert!(pauses.windows(2).all(|w| w[0] <= w[1]), "{pauses:?}");
    assert_eq!(pauses.first(), Some(&Duration::from_millis(50)));
    assert_eq!(pauses.last(), Some(&Duration::from_millis(400)));
    last
}

#[test]
fn a_journal_entry_out_of_place_is_read_again_after_a_pause() {
    let mut node = node();
    let why = backs_off(&mut node, 6, |op| match op {
        NodeOp::LatestSnapshot => Ok(NodeReply::Snapshot(None)),
        // Entries 1 and 2, then a corrupted one where 3 belongs.
        NodeOp::ReadJournal { from, .. } => Ok(NodeReply::Journal(
            (*from..3).map(row).chain([row(9)]).collect(),
        )),
        NodeOp::ReadLease => lease(1, true),
        other => panic!("a follower sent {other:?}"),
    });
    assert!(why.contains("entry 9 where entry 3"), "{why}");
    assert!(matches!(node.role(), Role::Failed(_)), "{:?}", node.role());
    assert_eq!(node.applied(), 2);
    // The store repaired, the node follows from entry 3.
    let later = Instant::from_secs(60);
    let mut repaired = |op: &NodeOp<u32>| match op {
        NodeOp::ReadJournal { from, .. } => Ok(NodeReply::Journal((*from..5).map(row).collect())),
        NodeOp::ReadLease => lease(1, true),
        other => panic!("a follower sent {other:?}"),
    };
    ops_at(&mut node, later, &mut repaired);
    assert_eq!(node.role(), Role::Following);
    assert_eq!(node.applied(), 4);
}

#[test]
fn a_trimmed_entry_no_snapshot_covers_is_not_read_in_a_loop() {
    let mut node = node();
    let why = backs_off(&mut node, 6, |op| match op {
        NodeOp::LatestSnapshot => Ok(NodeReply::Snapshot(None)),
        NodeOp::ReadJournal { .. } => Ok(NodeReply::Trimmed),
        other => panic!("a starting node sent {other:?}"),
    });
    assert!(why.contains("entry 1 was trimmed"), "{why}");
}

/// A snapshot of a dispatcher with an agent, its timer counter corrupted
/// (zero, below the timer it holds): it decodes, and does not restore.
fn corrupted_snapshot() -> Snapshot<u32> {
    let mut dispatcher = Dispatcher::<u32>::new(dispatcher_config());
    let profile = AgentProfile::builder().build().unwrap();
    dispatcher
        .register_agent(AgentId::new(1), profile, Instant::from_secs(1))
        .unwrap();
    let mut form = serde_json::to_value(dispatcher.snapshot()).unwrap();
    form["state"]["next_timer"] = 0.into();
    serde_json::from_value(form).unwrap()
}

#[test]
fn a_snapshot_that_does_not_restore_is_read_again_after_a_pause() {
    let mut node = node();
    let snapshot = corrupted_snapshot();
    let why = backs_off(&mut node, 6, |op| match op {
        NodeOp::LatestSnapshot => Ok(NodeReply::Snapshot(Some((
            5,
            Box::new(snapshot.clone().into()),
        )))),
        other => panic!("a restoring node sent {other:?}"),
    });
    assert!(why.contains("does not restore"), "{why}");
    assert!(matches!(node.role(), Role::Failed(_)));
}

#[test]
fn a_snapshot_older_than_the_trimmed_journal_is_not_restored_in_a_loop() {
    let mut node = node();
    let snapshot = Dispatcher::<u32>::new(dispatcher_config()).snapshot();
    let why = backs_off(&mut node, 6, |op| match op {
        NodeOp::LatestSnapshot => Ok(NodeReply::Snapshot(Some((
            5,
            Box::new(snapshot.clone().into()),
        )))),
        NodeOp::ReadJournal { .. } => Ok(NodeReply::Trimmed),
        other => panic!("a starting node sent {other:?}"),
    });
    assert!(why.contains("entry 6 was trimmed"), "{why}");
}

/// A store whose lease is free whenever read, is taken with a higher
/// epoch each time, and is lost again at once: a lease read after the
/// take says so (`fence_writes` false), or it is held until the leader's
/// first write, which is fenced.
fn contradicting_lease(fence_writes: bool) -> impl FnMut(&NodeOp<u32>) -> Answer {
    let (mut epoch, mut taken) = (0, false);
    move |op| match op {
        NodeOp::LatestSnapshot => Ok(NodeReply::Snapshot(None)),
        NodeOp::ReadJournal { .. } => Ok(NodeReply::Journal(Vec::new())),
        NodeOp::ReadLease => lease(epoch, taken && fence_writes),
        NodeOp::TakeLease { seen, .. } => {
            (epoch, taken) = (seen + 1, true);
            Ok(NodeReply::Taken { epoch })
        }
        NodeOp::ReadOutstanding => Ok(NodeReply::Outstanding(Vec::new())),
        NodeOp::Commit { epoch: mine, .. } => {
            (epoch, taken) = (epoch + 1, false);
            Err(StoreFailure::Fenced {
                epoch: *mine,
                current: epoch,
            })
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn a_lease_read_lost_as_soon_as_taken_is_not_taken_again_in_a_loop() {
    let mut node = node();
    let why = backs_off(&mut node, 6, contradicting_lease(false));
    assert!(why.contains("deposed epoch"), "{why}");
}

#[test]
fn a_write_fenced_as_soon_as_the_lease_is_taken_is_not_retaken_in_a_loop() {
    let mut node = node();
    let why = backs_off(&mut node, 6, contradicting_lease(true));
    assert!(why.contains("deposed epoch"), "{why}");
}

#[test]
fn a_consumed_message_handed_out_again_is_not_taken_in_again() {
    // A lease long enough that no renewal lands (and resets the backoff)
    // while the inbox misbehaves.
    let long = NodeConfig::builder("n").lease(Duration::from_secs(60), Duration::from_secs(20));
    let mut node = node_with(long);
    let message = InboxMessage {
        id: 7,
        sender: Sender::Client,
        body: Ok(Message::Cancel(TaskId::new(1))),
        bytes: 0,
    };
    let mut taken = false;
    // Once the leader commits, its journal holds the entry: the store did
    // not go back in time, it breaks its contract.
    let why = backs_off(&mut node, 5, move |op| match op {
        NodeOp::LatestSnapshot => Ok(NodeReply::Snapshot(None)),
        NodeOp::ReadJournal { from, .. } if taken => Ok(NodeReply::Journal(vec![row(*from)])),
        NodeOp::ReadJournal { .. } => Ok(NodeReply::Journal(Vec::new())),
        NodeOp::ReadLease => lease(1, taken),
        NodeOp::TakeLease { .. } => {
            taken = true;
            Ok(NodeReply::Taken { epoch: 1 })
        }
        NodeOp::ReadOutstanding => Ok(NodeReply::Outstanding(Vec::new())),
        NodeOp::ReadInbox { .. } => Ok(NodeReply::Inbox(vec![message.clone()])),
        NodeOp::Commit { .. } => Ok(NodeReply::Done),
        other => panic!("unexpected {other:?}"),
    });
    assert!(why.contains("message 7 twice, or again"), "{why}");
    assert_eq!(node.role(), Role::Leading { epoch: 1 });
}

/// An answer of any kind, with contents from small ranges: any sequence
/// of them can only move a node a bounded way at one instant.
fn any_node_answer() -> impl Strategy<Value = Answer> {
    // The time left may be anything a broken store says, up to never.
    let left = prop_oneof![
        (0u64..3_000).prop_map(std::time::Duration::from_millis),
        Just(std::time::Duration::MAX),
    ];
    let lease = (0u64..4, any::<bool>(), prop::bool::weighted(0.05), left).prop_map(
        |(epoch, held, stopped, left)| {
            Ok(NodeReply::Lease(Lease {
                epoch,
                holder: "x".into(),
                held,
                left,
                stopped,
            }))
        },
    );
    let snapshot = Dispatcher::<u32>::new(dispatcher_config()).snapshot();
    let snapshots = prop::option::of(0u64..6).prop_map(move |seq| {
        Ok(NodeReply::Snapshot(
            seq.map(|s| (s, Box::new(snapshot.clone().into()))),
        ))
    });
    let rows = prop::collection::vec(1u64..8, 0..4)
        .prop_map(|seqs| Ok(NodeReply::Journal(seqs.into_iter().map(row).collect())));
    let message = (0u64..6, 0u64..3).prop_map(|(id, task)| InboxMessage {
        id,
        sender: Sender::Client,
        body: Ok(Message::Cancel(TaskId::new(task))),
        bytes: 0,
    });
    let inbox = prop::collection::vec(message, 0..3).prop_map(|m| Ok(NodeReply::Inbox(m)));
    let outstanding = prop::collection::vec((0u64..3, 0u64..3), 0..3).prop_map(|rows| {
        Ok(NodeReply::Outstanding(
            rows.into_iter()
                .map(|(t, k)| (TaskId::new(t), AttemptToken::new(k)))
                .collect(),
        ))
    });
    let failure = prop_oneof![
        Just(StoreFailure::Failed { cause: "x".into() }),
        Just(StoreFailure::Unknown { cause: "x".into() }),
        Just(StoreFailure::Conflict { what: "x".into() }),
        (0u64..4, 0u64..4).prop_map(|(epoch, current)| StoreFailure::Fenced { epoch, current }),
    ];
    prop_oneof![
        4 => Just(Ok(NodeReply::Done)),
        4 => lease,
        2 => (0u64..5).prop_map(|epoch| Ok(NodeReply::Taken { epoch })),
        2 => snapshots,
        4 => rows,
        1 => Just(Ok(NodeReply::Trimmed)),
        3 => inbox,
        1 => outstanding,
        1 => failure.prop_map(Err),
    ]
}

proptest! {
    #![proptest_config(corrupt::config(64))]

    /// Whatever the store answers, of whatever kind, a node sends a
    /// bounded number of operations at one instant, then names a later
    /// one, and at that one it asks again.
    #[test]
    fn any_answers_cost_a_node_a_bounded_number_of_operations_per_instant(
        answers in prop::collection::vec(any_node_answer(), 1..64),
    ) {
        let mut node = node();
        let now = Instant::from_secs(10);
        let mut next = answers.iter().cycle();
        let sent = ops_at(&mut node, now, &mut |_| next.next().cloned().unwrap_or(Ok(NodeReply::Done)));
        prop_assert!(sent <= 200, "{sent} operations at one instant");
        if node.role() != Role::Stopped {
            let wake = node.poll_timeout().expect("the node wakes again");
            prop_assert!(wake > now);
            prop_assert!(node.poll_op(wake).is_some(), "the node asks again at {wake:?}");
        }
    }
}

fn session() -> AgentSession<u32> {
    let profile = AgentProfile::builder().capacity(2).build().unwrap();
    let config = SessionConfig::builder()
        .backoff(Duration::from_millis(50), Duration::from_millis(400))
        .build()
        .unwrap();
    AgentSession::new(AgentId::new(1), profile, config)
}

#[test]
fn an_agent_session_backs_off_more_while_the_store_answers_another_kind() {
    let mut session = session();
    let mut now = Instant::from_secs(10);
    let mut pauses = Vec::new();
    for _ in 0..6 {
        let mut sent = 0;
        while let Some(op) = session.poll_op(now) {
            let answer = match op {
                AgentOp::Incarnate { .. } => Ok(AgentReply::Incarnation(1)),
                AgentOp::Post { messages, .. }
                    if matches!(messages[..], [Message::Register { .. }]) =>
                {
                    Ok(AgentReply::Posted { stopped: false })
                }
                // Registered, every operation is answered with an
                // incarnation.
                _ => Ok(AgentReply::Incarnation(2)),
            };
            session.handle_reply(answer, now);
            sent += 1;
            assert!(sent < 8, "{sent} operations at one instant");
        }
        let bad = std::iter::from_fn(|| session.poll_event()).find_map(|event| match event {
            SessionEvent::BadAnswer { why, retry_in } => Some((why, retry_in)),
            _ => None,
        });
        let (why, pause) = bad.expect("a bad answer is reported");
        assert!(why.contains("unrelated reply"), "{why}");
        pauses.push(pause);
        now = session.poll_timeout().expect("the session wakes again");
    }
    let ms = Duration::from_millis;
    assert_eq!(
        pauses,
        [ms(50), ms(100), ms(200), ms(400), ms(400), ms(400)]
    );
}

fn any_agent_answer() -> impl Strategy<Value = Result<AgentReply<u32>, StoreFailure>> {
    let assignment =
        (0u64..4, 0u64..3, 0u64..3, 0u64..3).prop_map(|(task, agent, token, incarnation)| {
            Assignment {
                task: TaskId::new(task),
                agent: AgentId::new(agent),
                token: AttemptToken::new(token),
                attempt: 1,
                incarnation,
                payload: 0,
            }
        });
    prop_oneof![
        (0u64..3).prop_map(|i| Ok(AgentReply::Incarnation(i))),
        prop::bool::weighted(0.05).prop_map(|stopped| Ok(AgentReply::Posted { stopped })),
        prop::collection::vec(assignment, 0..4).prop_map(|rows| Ok(AgentReply::Claimed {
            rows,
            stopped: false
        })),
        Just(Ok(AgentReply::Refusals(vec![(1, "no".into())]))),
        Just(Err(StoreFailure::Unknown { cause: "x".into() })),
    ]
}

proptest! {
    #![proptest_config(corrupt::config(64))]

    /// Whatever the store answers, an agent session that runs no work
    /// sends a bounded number of operations at one instant.
    #[test]
    fn any_answers_cost_a_session_a_bounded_number_of_operations_per_instant(
        answers in prop::collection::vec(any_agent_answer(), 1..32),
    ) {
        let mut session = session();
        let now = Instant::from_secs(10);
        let mut next = answers.iter().cycle();
        let mut sent = 0;
        while let Some(_op) = session.poll_op(now) {
            let answer = next.next().cloned().unwrap_or(Ok(AgentReply::Posted { stopped: false }));
            session.handle_reply(answer, now);
            sent += 1;
            if sent == SPIN {
                break;
            }
        }
        prop_assert!(sent <= 20, "{sent} operations at one instant");
    }
}
