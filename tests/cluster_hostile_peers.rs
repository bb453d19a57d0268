//! Hostile peers on the in-memory store. The leader's authorizer: an
//! agent that registers beyond its grant is refused with a reason that
//! names the grant and claims nothing, while a granted agent runs every
//! task, and a host's closure refuses a drain. A flood: an agent that
//! posts heartbeats by the thousand is named in the status, journals one
//! heartbeat a batch, and the other agent's work goes on; an idle
//! cluster flooded by refused messages alone still names the flooder.

#![cfg(feature = "cluster")]

use std::time::Duration;

use taskweave::agent::AgentProfile;
use taskweave::cluster::{
    AgentGrants, AgentOp, AgentSession, ClientOp, ClientReply, Denied, Grant, INCARNATION_LABEL,
    MemStore, Message, Node, NodeConfig, Request, Sender, SessionConfig, SessionEvent, Store,
    Verdict,
};
use taskweave::scheduler::{AttemptOutcome, DispatcherConfig, TaskSpec};
use taskweave::{AgentId, Instant};

fn dispatcher() -> DispatcherConfig {
    DispatcherConfig::builder()
        .heartbeats(Duration::from_millis(250), 8)
        .build()
        .expect("a valid dispatcher config")
}

/// One millisecond of the host's loop: the node's and the agents' due
/// operations, then each agent's work finished at once; how many tasks
/// each agent finished.
fn turn(
    store: &mut MemStore<u32>,
    node: &mut Node<u32>,
    agents: &mut [&mut AgentSession<u32>],
    now: Instant,
) -> Vec<usize> {
    while let Some(op) = node.poll_op(now) {
        let reply = store.node(op, now);
        node.handle_reply(reply, now);
    }
    agents
        .iter_mut()
        .map(|agent| {
            while let Some(op) = agent.poll_op(now) {
                let reply = store.agent(op, now);
                agent.handle_reply(reply, now);
            }
            let mut finished = 0;
            while let Some(work) = agent.poll_work() {
                agent.finish(work.task, work.token, AttemptOutcome::Success);
                finished += 1;
            }
            finished
        })
        .collect()
}

fn guarded_node() -> Node<u32> {
    let config = NodeConfig::builder("node-1")
        .build()
        .expect("a valid node config");
    let grants = AgentGrants::new()
        .grant(AgentId::new(1), Grant::new(4).capabilities(["cpu"]))
        .grant(AgentId::new(2), Grant::new(4).capabilities(["cpu"]));
    let no_drains = |request: &Request<'_, u32>| match request.message {
        Message::Drain => Err(Denied("this cluster is never drained".into())),
        _ => Ok(()),
    };
    // Both: a grant for the agents, a closure for the clients.
    let both = move |request: &Request<'_, u32>| {
        taskweave::cluster::Authorizer::authorize(&grants, request)?;
        no_drains(request)
    };
    Node::new(config, dispatcher())
        .expect("a valid node")
        .authorize_with(both)
}

fn session(id: u64, capacity: u32) -> AgentSession<u32> {
    let profile = AgentProfile::builder()
        .capacity(capacity)
        .capability("cpu")
        .build()
        .expect("a valid profile");
    let config = SessionConfig::builder()
        .build()
        .expect("a valid session config");
    AgentSession::new(AgentId::new(id), profile, config)
}

fn verdicts(store: &mut MemStore<u32>, ids: Vec<u64>, now: Instant) -> Vec<Option<Verdict>> {
    match store.client(ClientOp::Verdicts(ids), now) {
        Ok(ClientReply::Verdicts(verdicts)) => verdicts,
        other => panic!("verdicts: {other:?}"),
    }
}

#[test]
fn an_agent_beyond_its_grant_is_refused_and_claims_nothing_while_the_granted_one_runs_every_task() {
    let mut store = MemStore::new();
    let mut node = guarded_node();
    let mut granted = session(1, 4);
    let mut greedy = session(2, 1_000_000);
    let mut now = Instant::from_secs(1);
    let specs = (0..20).map(TaskSpec::new).collect();
    let posted = store.client(
        ClientOp::Post(vec![Message::Submit(specs), Message::Drain]),
        now,
    );
    let Ok(ClientReply::Posted(ids)) = posted else {
        panic!("post: {posted:?}");
    };

    let (mut done, mut greedy_claimed, mut greedy_refusals) = (0, 0, Vec::new());
    for _ in 0..5_000 {
        now = now.saturating_add(Duration::from_millis(1));
        let finished = turn(&mut store, &mut node, &mut [&mut granted, &mut greedy], now);
        done += finished[0];
        greedy_claimed += finished[1];
        while let Some(event) = greedy.poll_event() {
            if let SessionEvent::Refused { reason, .. } = event {
                greedy_refusals.push(reason);
            }
        }
        if done == 20 && !greedy_refusals.is_empty() {
            break;
        }
    }
    assert_eq!(done, 20, "the granted agent ran every task");
    assert_eq!(greedy_claimed, 0, "the agent beyond its grant claimed work");
    assert!(
        greedy_refusals
            .first()
            .is_some_and(|reason| reason.contains("not authorized")
                && reason.contains("1000000 slots")
                && reason.contains("allows 4")),
        "{greedy_refusals:?}"
    );
    let answers = verdicts(&mut store, ids, now);
    assert!(
        matches!(&answers[..], [Some(Verdict::Submitted(tasks)), Some(Verdict::Refused(drain))]
            if tasks.iter().all(Result::is_ok)
                && drain == "not authorized: this cluster is never drained"),
        "{answers:?}"
    );
    // A status that says whether the cluster drains, and who registered.
    for _ in 0..2_000 {
        now = now.saturating_add(Duration::from_millis(1));
        turn(&mut store, &mut node, &mut [], now);
    }
    let Ok(ClientReply::Status(_, Some(status))) = store.client(ClientOp::Status, now) else {
        panic!("no status published");
    };
    assert!(!status.draining, "a refused drain drained the cluster");
    let registered: Vec<u64> = status.agents.iter().map(|a| a.agent.get()).collect();
    assert_eq!(registered, vec![1], "only the granted agent is registered");
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
    let (mut worker, mut flooder) = (session(1, 4), session(2, 4));
    let mut now = Instant::from_secs(1);
    let specs = (0..40).map(TaskSpec::new).collect();
    store
        .client(ClientOp::Post(vec![Message::Submit(specs)]), now)
        .expect("a submission");

    let (mut done, mut flooded, mut named) = (0, 0, None);
    for _ in 0..3_000 {
        now = now.saturating_add(Duration::from_millis(1));
        let finished = turn(&mut store, &mut node, &mut [&mut worker, &mut flooder], now);
        done += finished.iter().sum::<usize>();
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
        .get(INCARNATION_LABEL)?
        .parse()
        .ok()
}

/// An idle cluster (no tasks, no agent) that one burst of heartbeats
/// from an agent that never registered reaches just after a status: every
/// heartbeat is refused and journals nothing, yet the leader publishes
/// the status it owes, which names the sender, though nothing else
/// happens after the burst (a status used to be owed only for commits
/// with journal entries).
#[test]
fn refused_messages_alone_still_publish_a_status_that_names_their_sender() {
    let config = NodeConfig::builder("node-1")
        .build()
        .expect("a node config");
    let mut node = Node::<u32>::new(config, dispatcher()).expect("a node");
    let mut store = MemStore::new();
    let mut now = Instant::from_secs(1);
    let sender = Sender::Agent {
        agent: AgentId::new(9),
        incarnation: 1,
    };
    let status = |store: &mut MemStore<u32>, now| match store.client(ClientOp::Status, now) {
        Ok(ClientReply::Status(_, status)) => status,
        other => panic!("status: {other:?}"),
    };
    // The leader takes over and publishes a status, then the burst.
    while status(&mut store, now).is_none() {
        now = now.saturating_add(Duration::from_millis(1));
        turn(&mut store, &mut node, &mut [], now);
    }
    let post = AgentOp::Post {
        sender,
        messages: vec![Message::Heartbeat; 10],
    };
    store.agent(post, now).expect("the burst is posted");
    let mut named = None;
    for _ in 0..3_000 {
        now = now.saturating_add(Duration::from_millis(1));
        turn(&mut store, &mut node, &mut [], now);
        named = status(&mut store, now)
            .and_then(|s| s.inbox)
            .filter(|inbox| inbox.busiest == sender);
        if named.is_some() {
            break;
        }
    }
    let named = named.expect("no status named the sender of the refused burst");
    assert_eq!(named.busiest_messages, 10, "{named:?}");
    assert_eq!(node.applied(), 0, "refused heartbeats were journaled");
}
