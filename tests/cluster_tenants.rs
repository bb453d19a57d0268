//! Tenants on the cluster (in-memory store): a tenant's client submits
//! tasks that are the tenant's whatever their bodies say, under the
//! tenant's keys and quota; it cancels only the tenant's tasks; it may not
//! drain. A plain client's tasks have no tenant, whatever their bodies say.

#![cfg(feature = "cluster")]

use taskweave::cluster::{
    ClientOp, ClientReply, MemStore, Message, MessageId, Node, NodeConfig, Store, Verdict,
};
use taskweave::scheduler::{DispatcherConfig, TaskSpec, TenantQuota};
use taskweave::{Instant, TaskId, TenantId};

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

/// Runs the node until every message in `ids` has a verdict; the
/// verdicts.
fn verdicts(
    store: &mut MemStore<u32>,
    node: &mut Node<u32>,
    ids: &[MessageId],
    now: &mut Instant,
) -> Vec<Verdict> {
    for _ in 0..2_000 {
        *now = now.saturating_add(std::time::Duration::from_millis(1));
        while let Some(op) = node.poll_op(*now) {
            let reply = store.node(op, *now);
            node.handle_reply(reply, *now);
        }
        let answers: Option<Vec<Verdict>> =
            ids.iter().map(|id| store.verdict(*id).cloned()).collect();
        if let Some(answers) = answers {
            return answers;
        }
    }
    panic!("no verdicts for {ids:?}");
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
    let acme = store.post_as_tenant(
        ACME,
        vec![Message::Submit(vec![
            keyed(1).tenant(GLOBEX),
            TaskSpec::new(2),
            TaskSpec::new(3),
            TaskSpec::new(4),
        ])],
    );
    let globex = store.post_as_tenant(GLOBEX, vec![Message::Submit(vec![keyed(5)])]);
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
    let ids = store.post_as_tenant(
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
        matches!(&answers[1], Verdict::Refused(why) if why.contains("may only submit and cancel")),
        "{:?}",
        answers[1]
    );
    assert_eq!(answers[2], Verdict::Accepted);
    let Ok(ClientReply::Outcomes(outcomes)) =
        store.client(ClientOp::Outcomes(vec![globex_keyed, acme_keyed]), now)
    else {
        panic!("outcomes");
    };
    assert!(outcomes[0].is_none(), "GLOBEX's task is still live");
    assert!(outcomes[1].is_some(), "ACME's own cancel ended its task");
    // The cancel made room under ACME's quota.
    let ids = store.post_as_tenant(ACME, vec![Message::Submit(vec![TaskSpec::new(7)])]);
    let answers = verdicts(&mut store, &mut node, &ids, &mut now);
    assert!(submitted(&answers[0])[0].is_ok(), "{answers:?}");
}
