//! A tenant's hosted runs (in-memory store): a run a tenant's client
//! starts is the tenant's. Its id is taken for every other client, its
//! signals and cancels are the tenant's alone, its end and its steps'
//! outcomes are read by the tenant's clients alone, and the tenant's
//! live-run quota bounds how many it holds; all of it survives a
//! failover to a node that knows the runs from a snapshot only.

#![cfg(feature = "cluster")]

use taskweave::cluster::{
    ClientOp, ClientReply, Message, Outcome, RunCommand, RunEndCursor, TaskEnd, Verdict,
};
use taskweave::workflow::RunOutcome;
use taskweave::{TaskId, TenantId, WorkflowId};

mod hosted;

use hosted::*;

const GLOBEX: TenantId = TenantId::new(2);

fn signal(run: u64, payload: i64) -> RunCommand<Job> {
    RunCommand::Signal {
        run: WorkflowId::new(run),
        name: "approve".into(),
        payload: Some(Job::Number(payload)),
    }
}

fn refused(verdict: Verdict) -> String {
    match verdict {
        Verdict::Refused(why) => why,
        other => panic!("taken: {other:?}"),
    }
}

/// A cluster with the approval workflow registered (by a client of no
/// tenant: workflows are an operator's).
fn approvals(nodes: usize, snapshot_every: u64) -> Cluster {
    let mut cluster = Cluster::configured(nodes, snapshot_every, true, quota_dispatcher());
    let registered = cluster.post(register(approval()));
    assert_eq!(cluster.verdict(registered, add_one), Verdict::Accepted);
    cluster
}

/// Posts `command` as `tenant`'s client (or one of no tenant's) and
/// waits for its verdict.
fn ask(cluster: &mut Cluster, tenant: Option<TenantId>, command: RunCommand<Job>) -> Verdict {
    let message = cluster.post_as(tenant, command);
    cluster.verdict(message, add_one)
}

/// How `tasks` ended, as `tenant`'s client reads them.
fn outcomes_as(
    cluster: &mut Cluster,
    tenant: Option<TenantId>,
    tasks: &[TaskId],
) -> Vec<Option<Outcome<Job>>> {
    match cluster.client_as(tenant, ClientOp::Outcomes(tasks.to_vec())) {
        ClientReply::Outcomes(read) => read,
        other => panic!("the store answered {other:?}"),
    }
}

/// Ticks until `tenant`'s client reads `run`'s end.
fn wait_end_as(
    cluster: &mut Cluster,
    tenant: TenantId,
    run: u64,
) -> taskweave::cluster::RunEnd<Job> {
    for _ in 0..20_000 {
        cluster.tick(add_one);
        if let Some(end) = cluster.end_as(Some(tenant), WorkflowId::new(run)) {
            return end;
        }
    }
    panic!("{tenant}'s run {run} did not end");
}

#[test]
fn a_tenants_run_is_its_own_to_start_signal_cancel_and_read() {
    let mut cluster = approvals(1, 8);
    let (acme, globex, plain) = (Some(ACME), Some(GLOBEX), None);
    let five = WorkflowId::new(5);
    assert_eq!(
        ask(&mut cluster, acme, start("approval", 5, 0)),
        Verdict::Run(five)
    );
    // The id is ACME's: no other client attaches to it, whoever it is.
    for other in [globex, plain] {
        let why = refused(ask(&mut cluster, other, start("approval", 5, 0)));
        assert!(
            why.contains("another client's run holds the id workflow-5"),
            "{why}"
        );
    }
    // ACME's own start again names its run (an idempotency key).
    assert_eq!(
        ask(&mut cluster, acme, start("approval", 5, 0)),
        Verdict::Run(five)
    );
    // Nobody else signals or cancels it: the words of a run never started.
    for other in [globex, plain] {
        for command in [signal(5, 1), RunCommand::Cancel(five)] {
            let why = refused(ask(&mut cluster, other, command));
            assert_eq!(why, "workflow-5 is not an active run");
        }
    }
    // Nor does a tenant define workflows or schedule runs.
    let why = refused(ask(&mut cluster, acme, register(chain())));
    assert!(why.contains("tenant-1's client may"), "{why}");
    assert_eq!(ask(&mut cluster, acme, signal(5, 41)), Verdict::Accepted);
    let end = wait_end_as(&mut cluster, ACME, 5);
    assert_eq!(end.outcome, RunOutcome::Succeeded);
    assert_eq!(end.output, Some(Job::Number(42)));
    assert_eq!(end.tenant, Some(ACME));
    // The end is ACME's to read: by id or by cursor.
    assert_eq!(cluster.end_as(globex, five), None);
    assert_eq!(cluster.end_as(plain, five), None);
    for (tenant, count) in [(acme, 1), (globex, 0), (plain, 0)] {
        let after = ClientOp::RunEndsAfter {
            after: RunEndCursor::START,
            limit: 100,
        };
        let ClientReply::RunEndsAfter(ends) = cluster.client_as(tenant, after) else {
            panic!("no ends");
        };
        assert_eq!(ends.len(), count, "{tenant:?} reads {ends:?}");
    }
    // So are its step's outcome and output.
    let steps = cluster.step_tasks[&five].clone();
    assert_eq!(steps.len(), 1, "one agent step: ship");
    let shipped = Some(Outcome {
        end: TaskEnd::Completed,
        output: Some(Job::Number(42)),
    });
    assert_eq!(outcomes_as(&mut cluster, acme, &steps), vec![shipped]);
    assert_eq!(outcomes_as(&mut cluster, globex, &steps), vec![None]);
    assert_eq!(outcomes_as(&mut cluster, plain, &steps), vec![None]);
}

#[test]
fn a_tenant_holds_at_most_its_quota_of_live_runs() {
    let mut cluster = approvals(1, 8);
    for id in 1..=u64::from(ACME_LIVE_RUNS) {
        let verdict = ask(&mut cluster, Some(ACME), start("approval", id, 0));
        assert_eq!(verdict, Verdict::Run(WorkflowId::new(id)));
    }
    let why = refused(ask(&mut cluster, Some(ACME), start("approval", 9, 0)));
    assert_eq!(
        why,
        "tenant-1 is at its quota of 2 live runs; a run of the tenant must end first"
    );
    // A start of a run it holds is no new run; another tenant and a
    // client of none are not held back by ACME's runs.
    let again = ask(&mut cluster, Some(ACME), start("approval", 1, 0));
    assert_eq!(again, Verdict::Run(WorkflowId::new(1)));
    for (tenant, id) in [
        (Some(GLOBEX), 20),
        (Some(GLOBEX), 21),
        (Some(GLOBEX), 22),
        (None, 30),
    ] {
        let verdict = ask(&mut cluster, tenant, start("approval", id, 0));
        assert_eq!(verdict, Verdict::Run(WorkflowId::new(id)));
    }
    // A run that ends makes room.
    let cancel = ask(
        &mut cluster,
        Some(ACME),
        RunCommand::Cancel(WorkflowId::new(1)),
    );
    assert_eq!(cancel, Verdict::Accepted);
    let outcome = wait_end_as(&mut cluster, ACME, 1).outcome;
    assert!(matches!(outcome, RunOutcome::Failed(_)), "{outcome:?}");
    let verdict = ask(&mut cluster, Some(ACME), start("approval", 9, 0));
    assert_eq!(verdict, Verdict::Run(WorkflowId::new(9)));
}

#[test]
fn a_tenants_runs_stay_its_own_on_a_node_that_restored_them_from_a_snapshot() {
    // Both nodes die: the node that takes over knows the runs from a
    // snapshot (and the journal after it) alone. (Step tasks live across a
    // restore are the replica's unit test: here the step may end first.)
    let mut cluster = approvals(2, 1);
    for id in [1, 2] {
        let verdict = ask(&mut cluster, Some(ACME), start("approval", id, 0));
        assert_eq!(verdict, Verdict::Run(WorkflowId::new(id)));
    }
    let signalled = cluster.post_as(Some(ACME), signal(1, 6));
    assert_eq!(cluster.verdict(signalled, add_one), Verdict::Accepted);
    cluster.nodes = vec![None, None];
    cluster.join("node-late");
    let end = wait_end_as(&mut cluster, ACME, 1);
    assert_eq!((end.output, end.tenant), (Some(Job::Number(7)), Some(ACME)));
    assert!(
        cluster.restored_a_snapshot(2),
        "the late node restored no snapshot"
    );
    let steps = cluster.step_tasks[&WorkflowId::new(1)].clone();
    assert!(outcomes_as(&mut cluster, Some(ACME), &steps)[0].is_some());
    assert_eq!(outcomes_as(&mut cluster, None, &steps), vec![None]);
    // Run 2 is still ACME's, and still counts against its quota.
    let why = refused(ask(
        &mut cluster,
        Some(GLOBEX),
        RunCommand::Cancel(WorkflowId::new(2)),
    ));
    assert_eq!(why, "workflow-2 is not an active run");
    assert_eq!(
        ask(&mut cluster, Some(ACME), start("approval", 3, 0)),
        Verdict::Run(WorkflowId::new(3))
    );
    let why = refused(ask(&mut cluster, Some(ACME), start("approval", 4, 0)));
    assert!(why.contains("quota of 2 live runs"), "{why}");
}

#[test]
fn a_tenants_client_may_not_post_messages_of_an_operator() {
    let mut cluster = approvals(1, 8);
    let drain = cluster.client_as(Some(ACME), ClientOp::Post(vec![Message::Drain]));
    let ClientReply::Posted(ids) = drain else {
        panic!("not posted: {drain:?}");
    };
    cluster.posters.insert(ids[0], ACME);
    let why = refused(cluster.verdict(ids[0], add_one));
    assert!(why.contains("not Drain"), "{why}");
    let why = refused(ask(
        &mut cluster,
        Some(ACME),
        every("nightly", 60, "approval", 0),
    ));
    assert!(why.contains("not Schedule"), "{why}");
}
