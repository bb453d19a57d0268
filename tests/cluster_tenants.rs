//! Tenants on the cluster (in-memory store): a tenant's client submits
//! tasks that are the tenant's whatever their bodies say, under the
//! tenant's keys and quota; it cancels only the tenant's tasks (and a
//! plain client only tasks of no tenant); it may not drain. A plain client's tasks have no tenant, whatever their bodies say.
//! A task's end and output are read by its tenant's clients alone, and so
//! is a redriven letter's new id.

#![cfg(feature = "cluster")]

use taskweave::agent::AgentProfile;
use taskweave::cluster::{
    AgentSession, Assignment, ClientOp, ClientReply, MemStore, Message, MessageId, Node,
    NodeConfig, Outcome, Redrive, SessionConfig, Store, TaskEnd, Verdict,
};
use taskweave::scheduler::{AttemptOutcome, DispatcherConfig, TaskSpec, TenantQuota};
use taskweave::{AgentId, Instant, TaskId, TenantId};

const ACME: TenantId = TenantId::new(1);
const GLOBEX: TenantId = TenantId::new(2);

fn node() -> Node<u32> {
    let dispatcher = DispatcherConfig::builder()
        .heartbeats(std::time::Duration::from_millis(250), 8)
        .tenant_quota(ACME, TenantQuota::new().live_tasks(3))
        .build()
        .expect("a dispatcher config");
    let config = NodeConfig::builder("node-1")
        .build()
        .expect("a node config");
    Node::new(config, dispatcher).expect("a node")
}

/// One millisecond of the node's work, and of the agent's if there is
/// one: the work the agent was handed.
fn tick(
    store: &mut MemStore<u32>,
    node: &mut Node<u32>,
    agent: Option<&mut AgentSession<u32>>,
    now: &mut Instant,
) -> Vec<Assignment<u32>> {
    *now = now.saturating_add(std::time::Duration::from_millis(1));
    while let Some(op) = node.poll_op(*now) {
        let reply = store.node(op, *now);
        node.handle_reply(reply, *now);
    }
    let mut handed = Vec::new();
    if let Some(agent) = agent {
        while let Some(op) = agent.poll_op(*now) {
            let reply = store.agent(op, *now);
            agent.handle_reply(reply, *now);
        }
        handed.extend(std::iter::from_fn(|| agent.poll_work()));
    }
    handed
}

/// Runs the node until every message in `ids` has a verdict; the
/// verdicts.
fn verdicts(
    store: &mut MemStore<u32>,
    node: &mut Node<u32>,
    ids: &[MessageId],
    now: &mut Instant,
) -> Vec<Verdict> {
    for _ in 0..2_000 {
        tick(store, node, None, now);
        let answers: Option<Vec<Verdict>> =
            ids.iter().map(|id| store.verdict(*id).cloned()).collect();
        if let Some(answers) = answers {
            return answers;
        }
    }
    panic!("no verdicts for {ids:?}");
}

/// Posts `messages` as `tenant`'s client; their ids.
fn post_as(
    store: &mut MemStore<u32>,
    tenant: TenantId,
    messages: Vec<Message<u32>>,
) -> Vec<MessageId> {
    match store.tenant_client(tenant, ClientOp::Post(messages), Instant::ZERO) {
        Ok(ClientReply::Posted(ids)) => ids,
        other => panic!("not posted: {other:?}"),
    }
}

/// How `tasks` ended, as `tenant`'s client reads them.
fn outcomes_as(
    store: &mut MemStore<u32>,
    tenant: TenantId,
    tasks: &[TaskId],
) -> Vec<Option<Outcome<u32>>> {
    match store.tenant_client(tenant, ClientOp::Outcomes(tasks.to_vec()), Instant::ZERO) {
        Ok(ClientReply::Outcomes(read)) => read,
        other => panic!("no outcomes: {other:?}"),
    }
}

fn submitted(verdict: &Verdict) -> Vec<Result<TaskId, String>> {
    match verdict {
        Verdict::Submitted(results) => results.clone(),
        other => panic!("not a submission's verdict: {other:?}"),
    }
}

fn keyed(payload: u32) -> TaskSpec<u32> {
    TaskSpec::new(payload).idempotency_key("order-7")
}

#[test]
fn a_tenants_client_submits_under_its_tenant_and_cancels_only_its_own_tasks() {
    let (mut store, mut node) = (MemStore::new(), node());
    let mut now = Instant::from_secs(1);
    // ACME's body claims GLOBEX for its first task: the leader overrides it.
    let acme = post_as(
        &mut store,
        ACME,
        vec![Message::Submit(vec![
            keyed(1).tenant(GLOBEX),
            TaskSpec::new(2),
            TaskSpec::new(3),
            TaskSpec::new(4),
        ])],
    );
    let globex = post_as(&mut store, GLOBEX, vec![Message::Submit(vec![keyed(5)])]);
    // A plain client's body names GLOBEX too: its task has no tenant.
    let forged = Message::Submit(vec![keyed(6).tenant(GLOBEX)]);
    let Ok(ClientReply::Posted(plain)) = store.client(ClientOp::Post(vec![forged]), now) else {
        panic!("a plain client's post");
    };
    let ids: Vec<MessageId> = [acme, globex, plain].concat();
    let answers = verdicts(&mut store, &mut node, &ids, &mut now);
    let acme = submitted(&answers[0]);
    assert!(acme[..3].iter().all(Result::is_ok), "{acme:?}");
    assert!(
        acme[3]
            .as_ref()
            .is_err_and(|why| why.contains("tenant-1 is at its quota of 3 live tasks")),
        "{acme:?}"
    );
    // One key, three scopes: three tasks.
    let (acme_keyed, globex_keyed, plain_keyed) = (
        acme[0].clone().unwrap(),
        submitted(&answers[1])[0].clone().unwrap(),
        submitted(&answers[2])[0].clone().unwrap(),
    );
    assert_ne!(acme_keyed, globex_keyed);
    assert_ne!(plain_keyed, globex_keyed);
    assert_ne!(plain_keyed, acme_keyed);

    // ACME cancels GLOBEX's task and drains: both refused. Its own cancel
    // goes through.
    let ids = post_as(
        &mut store,
        ACME,
        vec![
            Message::Cancel(globex_keyed),
            Message::Drain,
            Message::Cancel(acme_keyed),
        ],
    );
    let answers = verdicts(&mut store, &mut node, &ids, &mut now);
    assert_eq!(
        answers[0],
        Verdict::Refused(format!("tenant-1 has no live task {globex_keyed}"))
    );
    assert!(
        matches!(&answers[1], Verdict::Refused(why) if why.contains("not Drain")),
        "{:?}",
        answers[1]
    );
    assert_eq!(answers[2], Verdict::Accepted);
    // A plain client cancels no tenant's task, in the words of a task
    // that never was.
    let plain = Message::Cancel(globex_keyed);
    let never = Message::Cancel(TaskId::new(9_999));
    let Ok(ClientReply::Posted(ids)) = store.client(ClientOp::Post(vec![plain, never]), now) else {
        panic!("a plain client's post");
    };
    let answers = verdicts(&mut store, &mut node, &ids, &mut now);
    assert!(
        matches!(&answers[0], Verdict::Refused(why)
            if *why == format!("unknown task {globex_keyed}")),
        "{answers:?}"
    );
    assert_eq!(
        answers[1],
        Verdict::Refused("unknown task task-9999".into())
    );
    let outcomes = outcomes_as(&mut store, ACME, &[globex_keyed, acme_keyed]);
    assert!(outcomes[0].is_none(), "GLOBEX's task is not ACME's");
    assert!(outcomes[1].is_some(), "ACME's own cancel ended its task");
    // The cancel made room under ACME's quota.
    let ids = post_as(
        &mut store,
        ACME,
        vec![Message::Submit(vec![TaskSpec::new(7)])],
    );
    let answers = verdicts(&mut store, &mut node, &ids, &mut now);
    assert!(submitted(&answers[0])[0].is_ok(), "{answers:?}");
}

#[test]
fn a_tasks_end_and_output_are_read_by_its_tenants_clients_alone() {
    let (mut store, mut node) = (MemStore::new(), node());
    let profile = AgentProfile::builder().capacity(8).build().unwrap();
    let session = SessionConfig::builder().build().unwrap();
    let mut agent = AgentSession::new(AgentId::new(1), profile, session);
    let mut now = Instant::from_secs(1);
    // ACME's tasks end each way a leader publishes an end: completed on a
    // report, dead-lettered by the dispatcher, cancelled by its client.
    let acme = post_as(
        &mut store,
        ACME,
        vec![Message::Submit(vec![
            TaskSpec::new(10),
            TaskSpec::new(20),
            TaskSpec::new(30),
        ])],
    );
    let plain = Message::Submit(vec![TaskSpec::new(40)]);
    let Ok(ClientReply::Posted(plain)) = store.client(ClientOp::Post(vec![plain]), now) else {
        panic!("a plain client's post");
    };
    let answers = verdicts(&mut store, &mut node, &[acme, plain].concat(), &mut now);
    let acme: Vec<TaskId> = submitted(&answers[0]).into_iter().flatten().collect();
    let plain = submitted(&answers[1])[0].clone().unwrap();
    let mut handed = 0;
    for _ in 0..2_000 {
        for work in tick(&mut store, &mut node, Some(&mut agent), &mut now) {
            handed += 1;
            match work.payload {
                20 => assert!(agent.finish(work.task, work.token, AttemptOutcome::fatal("bad"))),
                30 => {}
                output => assert!(agent.complete(work.task, work.token, output + 1)),
            }
        }
        if handed == 4 {
            break;
        }
    }
    assert_eq!(handed, 4, "every task reached the agent");
    let cancel = post_as(&mut store, ACME, vec![Message::Cancel(acme[2])]);
    assert_eq!(
        verdicts(&mut store, &mut node, &cancel, &mut now),
        [Verdict::Accepted]
    );
    let every = [acme[0], acme[1], acme[2], plain];
    let mut read = Vec::new();
    for _ in 0..2_000 {
        tick(&mut store, &mut node, Some(&mut agent), &mut now);
        read = outcomes_as(&mut store, ACME, &every);
        if read[..3].iter().all(Option::is_some) {
            break;
        }
    }
    assert_eq!(
        read[0],
        Some(Outcome {
            end: TaskEnd::Completed,
            output: Some(11)
        })
    );
    assert!(
        matches!(
            read[1],
            Some(Outcome {
                end: TaskEnd::DeadLettered(_),
                ..
            })
        ),
        "{read:?}"
    );
    assert_eq!(read[2].as_ref().map(|o| &o.end), Some(&TaskEnd::Cancelled));
    assert_eq!(read[3], None, "the plain client's task is not ACME's");
    // GLOBEX reads none of them; a plain client only its own.
    assert!(
        outcomes_as(&mut store, GLOBEX, &every)
            .iter()
            .all(Option::is_none)
    );
    let Ok(ClientReply::Outcomes(read)) = store.client(ClientOp::Outcomes(every.to_vec()), now)
    else {
        panic!("outcomes");
    };
    assert_eq!(
        read[..3],
        [None, None, None],
        "ACME's tasks are not a plain client's"
    );
    assert_eq!(
        read[3],
        Some(Outcome {
            end: TaskEnd::Completed,
            output: Some(41)
        })
    );
    // The operator redrives ACME's letter: the letter's id now names the
    // new task, for ACME's clients alone.
    let redrive = Message::Redrive(Redrive::Task(acme[1]));
    let Ok(ClientReply::Posted(redrive)) = store.client(ClientOp::Post(vec![redrive]), now) else {
        panic!("the operator's post");
    };
    let [Verdict::Redriven { requeued, .. }] =
        &verdicts(&mut store, &mut node, &redrive, &mut now)[..]
    else {
        panic!("not redriven");
    };
    let [(letter, new)] = requeued[..] else {
        panic!("{requeued:?}");
    };
    assert_eq!(letter, acme[1]);
    assert_eq!(
        outcomes_as(&mut store, ACME, &[letter]),
        [Some(Outcome {
            end: TaskEnd::Redriven(new),
            output: None
        })]
    );
    assert_eq!(outcomes_as(&mut store, GLOBEX, &[letter]), [None]);
}

#[test]
fn a_leader_restored_from_a_snapshot_still_confines_the_ends_of_tasks_the_snapshot_held() {
    let build = |name: &str| {
        let config = NodeConfig::builder(name)
            .lease(
                std::time::Duration::from_millis(200),
                std::time::Duration::from_millis(50),
            )
            .snapshots(1, true)
            .snapshot_scale(0)
            .build()
            .expect("a node config");
        let dispatcher = DispatcherConfig::builder()
            .heartbeats(std::time::Duration::from_millis(250), 8)
            .build()
            .expect("a dispatcher config");
        Node::<u32>::new(config, dispatcher).expect("a node")
    };
    let (mut store, mut first) = (MemStore::new(), build("node-1"));
    let mut now = Instant::from_secs(1);
    let ids = post_as(
        &mut store,
        ACME,
        vec![Message::Submit(vec![TaskSpec::new(1)])],
    );
    let task = submitted(&verdicts(&mut store, &mut first, &ids, &mut now)[0])[0]
        .clone()
        .unwrap();
    let is_submit = |row: &taskweave::cluster::JournalRow<u32>| {
        matches!(
            row.entry,
            taskweave::cluster::Entry::Input(
                taskweave::scheduler::Input::Submit { .. }
                    | taskweave::scheduler::Input::SubmitBatch { .. }
            )
        )
    };
    let submit_seq = store.journal().find(is_submit).expect("the submit").seq;
    // A second entry, and a snapshot after it: the journal behind the
    // previous snapshot (the submit) is trimmed, so the next leader knows
    // the task from a snapshot alone.
    let plain = store.client(
        ClientOp::Post(vec![Message::Submit(vec![TaskSpec::new(2)])]),
        now,
    );
    let Ok(ClientReply::Posted(plain)) = plain else {
        panic!("a plain client's post: {plain:?}");
    };
    verdicts(&mut store, &mut first, &plain, &mut now);
    for _ in 0..100 {
        tick(&mut store, &mut first, None, &mut now);
    }
    assert!(
        store.journal().all(|row| row.seq > submit_seq),
        "the submit is trimmed behind a snapshot"
    );
    drop(first);
    let mut second = build("node-2");
    let cancel = post_as(&mut store, ACME, vec![Message::Cancel(task)]);
    assert_eq!(
        verdicts(&mut store, &mut second, &cancel, &mut now),
        [Verdict::Accepted]
    );
    let read = outcomes_as(&mut store, ACME, &[task]);
    assert_eq!(read[0].as_ref().map(|o| &o.end), Some(&TaskEnd::Cancelled));
}
