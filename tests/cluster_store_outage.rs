//! A database outage is nobody's fault: while the store is down, neither
//! the leader nor the agents reach it, and heartbeats missed in that
//! window must not make live agents lost once it is back. The leader
//! journals the excuse (`Input::ExcuseSilence`), so a replay — a standby,
//! the auditor — decides the same.

#![cfg(feature = "cluster")]

use std::collections::BTreeMap;
use std::time::Duration;

use taskweave::agent::AgentProfile;
use taskweave::cluster::{
    AgentSession, Auditor, ClientOp, Entry, MemStore, Message, Node, NodeConfig, NodeEvent, Role,
    SessionConfig, Store, StoreFailure,
};
use taskweave::scheduler::{AttemptOutcome, DispatcherConfig, Input, TaskSpec};
use taskweave::{AgentId, AttemptToken, Instant, TaskId};

fn dispatcher_config() -> DispatcherConfig {
    // Lost after 2 s of silence.
    DispatcherConfig::builder()
        .heartbeats(Duration::from_millis(250), 8)
        .build()
        .unwrap()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// What the store answers while it is down.
fn down<T>() -> Result<T, StoreFailure> {
    Err(StoreFailure::Failed {
        cause: "the server is restarting".into(),
    })
}

#[test]
fn agents_silent_through_a_store_outage_are_not_lost_and_nothing_runs_twice() {
    // One node, which leads again after the outage; and two, the leader
    // cut off from the store a second longer, so that the standby, whose
    // reads failed through the outage too, takes over.
    for nodes in [1, 2] {
        outage_with(nodes);
    }
}

fn outage_with(count: usize) {
    let mut store = MemStore::new();
    // The nodes are back within 20 ms of the store; the agents, whose
    // backoff is longer, heartbeat within 200 ms: after the leader's first
    // read of its inbox, well inside a heartbeat timeout.
    let mut nodes: Vec<Node<u32>> = (0..count)
        .map(|i| {
            let config = NodeConfig::builder(format!("node-{i}"))
                .backoff(ms(10), ms(20))
                .build()
                .unwrap();
            Node::new(config, dispatcher_config()).unwrap()
        })
        .collect();
    let session = SessionConfig::builder()
        .backoff(ms(50), ms(200))
        .build()
        .unwrap();
    let profile = AgentProfile::builder().capacity(2).build().unwrap();
    let mut agents: Vec<AgentSession<u32>> = (1..=2)
        .map(|id| AgentSession::new(AgentId::new(id), profile.clone(), session.clone()))
        .collect();
    let start = Instant::from_secs(1);
    let tasks = (0..4).map(TaskSpec::new).collect();
    store
        .client(ClientOp::Post(vec![Message::Submit(tasks)]), start)
        .unwrap();

    // The store is down from 4 s to 7 s, longer than the heartbeat
    // timeout; the agents hold their attempts until 9 s.
    let (outage, back, finish) = (
        Instant::from_secs(4),
        Instant::from_secs(7),
        Instant::from_secs(9),
    );
    let is_down = |now: Instant| now >= outage && now < back;
    let cut_off = |node: usize, now: Instant| {
        let longer = node == 0 && count > 1;
        is_down(now) || (longer && now >= outage && now < back.saturating_add(ms(1_000)))
    };
    let mut runs: BTreeMap<TaskId, Vec<(AttemptToken, u32)>> = BTreeMap::new();
    let mut held: Vec<(usize, TaskId, AttemptToken)> = Vec::new();
    let mut events = Vec::new();
    let mut now = start;
    while now < Instant::from_secs(14) {
        now = now.saturating_add(ms(5));
        for (i, node) in nodes.iter_mut().enumerate() {
            while let Some(op) = node.poll_op(now) {
                let reply = if cut_off(i, now) {
                    down()
                } else {
                    store.node(op, now)
                };
                node.handle_reply(reply, now);
            }
            events.extend(std::iter::from_fn(|| node.poll_event()));
        }
        for (i, agent) in agents.iter_mut().enumerate() {
            while let Some(op) = agent.poll_op(now) {
                let reply = if is_down(now) {
                    down()
                } else {
                    store.agent(op, now)
                };
                agent.handle_reply(reply, now);
            }
            while let Some(work) = agent.poll_work() {
                runs.entry(work.task)
                    .or_default()
                    .push((work.token, work.attempt));
                held.push((i, work.task, work.token));
            }
        }
        if now >= finish {
            for (i, task, token) in held.drain(..) {
                agents[i].finish(task, token, AttemptOutcome::Success);
            }
        }
    }

    let leader = nodes
        .iter()
        .position(|n| matches!(n.role(), Role::Leading { .. }))
        .expect("a node leads");
    assert_eq!(leader, count - 1, "the standby took over");
    let node = &nodes[leader];
    let lost: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, NodeEvent::AgentLost { .. }))
        .collect();
    assert!(lost.is_empty(), "live agents lost: {lost:?} in {events:?}");
    assert_eq!(runs.len(), 4, "{runs:?}");
    for (task, attempts) in &runs {
        assert_eq!(attempts.len(), 1, "{task} ran again: {attempts:?}");
        assert_eq!(attempts[0].1, 1, "{task}: {attempts:?}");
    }
    assert_eq!(node.dispatcher().live_tasks(), 0, "every task completed");
    // The leader journaled the excuse, and the journal replays to its
    // state: a standby decides the same.
    let journal: Vec<_> = store.journal().collect();
    assert!(
        journal
            .iter()
            .any(|row| matches!(row.entry, Entry::Input(Input::ExcuseSilence { .. }))),
        "no excuse in the journal"
    );
    let mut auditor = Auditor::new(dispatcher_config());
    for row in journal {
        auditor.apply(row);
    }
    let report = auditor.report();
    assert!(report.is_clean(), "{:?}", report.violations);
    assert_eq!(report.completed, 4);
    assert_eq!(
        serde_json::to_value(auditor.dispatcher().snapshot()).unwrap(),
        serde_json::to_value(node.dispatcher().snapshot()).unwrap(),
        "the journal replays to the leader's state"
    );
}

/// A blip shorter than a heartbeat interval is no outage: the leader
/// journals no excuse for it, so a dead agent is not kept alive by a
/// store that fails now and then.
#[test]
fn a_failure_shorter_than_a_heartbeat_interval_excuses_nothing() {
    let mut store = MemStore::new();
    let config = NodeConfig::builder("node").build().unwrap();
    let mut node: Node<u32> = Node::new(config, dispatcher_config()).unwrap();
    let mut now = Instant::from_secs(1);
    for step in 0..400 {
        now = now.saturating_add(ms(5));
        while let Some(op) = node.poll_op(now) {
            // One failed operation every half second.
            let reply = if step % 100 == 50 {
                down()
            } else {
                store.node(op, now)
            };
            node.handle_reply(reply, now);
        }
    }
    assert!(matches!(node.role(), Role::Leading { .. }));
    assert!(
        !store
            .journal()
            .any(|row| matches!(row.entry, Entry::Input(Input::ExcuseSilence { .. })))
    );
}
