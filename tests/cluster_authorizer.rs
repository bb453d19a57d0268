//! The leader's authorizer, end to end on the in-memory store: an agent
//! that registers beyond its grant is refused with a reason that names
//! the grant and claims nothing, while a granted agent runs every task;
//! a host's closure refuses a drain, and the cluster goes on.

#![cfg(feature = "cluster")]

use std::time::Duration;

use taskweave::agent::AgentProfile;
use taskweave::cluster::{
    AgentGrants, AgentSession, ClientOp, ClientReply, Denied, Grant, MemStore, Message, Node,
    NodeConfig, Request, SessionConfig, SessionEvent, Store, Verdict,
};
use taskweave::scheduler::{AttemptOutcome, DispatcherConfig, TaskSpec};
use taskweave::{AgentId, Instant};

fn node() -> Node<u32> {
    let dispatcher = DispatcherConfig::builder()
        .heartbeats(Duration::from_millis(250), 8)
        .build()
        .expect("a valid dispatcher config");
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
    Node::new(config, dispatcher)
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
    let mut node = node();
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
        while let Some(op) = node.poll_op(now) {
            let reply = store.node(op, now);
            node.handle_reply(reply, now);
        }
        for agent in [&mut granted, &mut greedy] {
            while let Some(op) = agent.poll_op(now) {
                let reply = store.agent(op, now);
                agent.handle_reply(reply, now);
            }
        }
        while let Some(work) = granted.poll_work() {
            granted.finish(work.task, work.token, AttemptOutcome::Success);
            done += 1;
        }
        while let Some(work) = greedy.poll_work() {
            greedy.finish(work.task, work.token, AttemptOutcome::Success);
            greedy_claimed += 1;
        }
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
        while let Some(op) = node.poll_op(now) {
            let reply = store.node(op, now);
            node.handle_reply(reply, now);
        }
    }
    let Ok(ClientReply::Status(_, Some(status))) = store.client(ClientOp::Status, now) else {
        panic!("no status published");
    };
    assert!(!status.draining, "a refused drain drained the cluster");
    let registered: Vec<u64> = status.agents.iter().map(|a| a.agent.get()).collect();
    assert_eq!(registered, vec![1], "only the granted agent is registered");
}
