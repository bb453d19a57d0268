//! An agent that floods the inbox with heartbeats, on the in-memory store:
//! the other agent's work goes on, the flood journals one heartbeat per
//! batch, and the status names the flooding agent.

#![cfg(feature = "cluster")]

use std::time::Duration;

use taskweave::agent::AgentProfile;
use taskweave::cluster::{
    AgentOp, AgentSession, ClientOp, ClientReply, MemStore, Message, Node, NodeConfig, Sender,
    SessionConfig, Store,
};
use taskweave::scheduler::{AttemptOutcome, DispatcherConfig, TaskSpec};
use taskweave::{AgentId, Instant};

fn session(id: u64) -> AgentSession<u32> {
    let profile = AgentProfile::builder()
        .capacity(4)
        .build()
        .expect("a profile");
    let config = SessionConfig::builder().build().expect("a session config");
    AgentSession::new(AgentId::new(id), profile, config)
}

#[test]
fn a_heartbeat_flood_is_named_in_the_status_and_the_work_goes_on() {
    let dispatcher = DispatcherConfig::builder()
        .heartbeats(Duration::from_millis(250), 8)
        .build()
        .expect("a dispatcher config");
    let config = NodeConfig::builder("node-1")
        .build()
        .expect("a node config");
    let mut node = Node::<u32>::new(config, dispatcher).expect("a node");
    let mut store = MemStore::new();
    let (mut worker, mut flooder) = (session(1), session(2));
    let mut now = Instant::from_secs(1);
    let specs = (0..40).map(TaskSpec::new).collect();
    store
        .client(ClientOp::Post(vec![Message::Submit(specs)]), now)
        .expect("a submission");

    let (mut done, mut flooded, mut named) = (0, 0, None);
    for _ in 0..3_000 {
        now = now.saturating_add(Duration::from_millis(1));
        while let Some(op) = node.poll_op(now) {
            let reply = store.node(op, now);
            node.handle_reply(reply, now);
        }
        for agent in [&mut worker, &mut flooder] {
            while let Some(op) = agent.poll_op(now) {
                let reply = store.agent(op, now);
                agent.handle_reply(reply, now);
            }
        }
        while let Some(work) = worker.poll_work() {
            worker.finish(work.task, work.token, AttemptOutcome::Success);
            done += 1;
        }
        while let Some(work) = flooder.poll_work() {
            flooder.finish(work.task, work.token, AttemptOutcome::Success);
            done += 1;
        }
        // Once registered, agent 2 posts 200 heartbeats every millisecond
        // on its own connection (as a hostile login would, past its session).
        if let Some(incarnation) = incarnation_of(&node, 2) {
            let sender = Sender::Agent {
                agent: AgentId::new(2),
                incarnation,
            };
            let messages = vec![Message::Heartbeat; 200];
            store
                .agent(AgentOp::Post { sender, messages }, now)
                .expect("the flood is posted");
            flooded += 200;
        }
        if let Ok(ClientReply::Status(_, Some(status))) = store.client(ClientOp::Status, now) {
            if let Some(inbox) = status.inbox {
                if inbox.busiest_messages >= 1_000 {
                    named = Some(inbox);
                }
            }
        }
        if done == 40 && named.is_some() {
            break;
        }
    }
    assert_eq!(done, 40, "the work went on through the flood");
    assert!(flooded >= 1_000, "only {flooded} heartbeats were posted");
    let named = named.expect("no status named a sender with 1,000 messages");
    assert!(
        matches!(named.busiest, Sender::Agent { agent, .. } if agent == AgentId::new(2)),
        "{named:?}"
    );
    // The journal holds far fewer entries than agent 2 posted heartbeats
    // (40 submissions, assignments and reports, a few heartbeats a batch).
    assert!(
        node.applied() * 5 < flooded,
        "{} entries journaled for {flooded} heartbeats posted",
        node.applied()
    );
}

/// The incarnation the leader registered for agent `id`.
fn incarnation_of(node: &Node<u32>, id: u64) -> Option<u64> {
    let record = node.dispatcher().registry().get(AgentId::new(id))?;
    record
        .profile()
        .labels()
        .get(taskweave::cluster::INCARNATION_LABEL)?
        .parse()
        .ok()
}
