//! A drained cluster's database runs a new cluster after `reset`: refused
//! before the drain and while a node of the old cluster is connected
//! (nothing changed), accepted after it, and the new
//! cluster's tasks — numbered from 0 again — end with their own outcomes,
//! under a later epoch.

use std::time::Duration;

use taskweave::agent::AgentProfile;
use taskweave::cluster::{
    AgentSession, ClientOp, ClientReply, Message, Node, NodeConfig, Outcome, Role, SessionConfig,
    Store, TaskEnd,
};
use taskweave::scheduler::{DispatcherConfig, TaskSpec};
use taskweave::{AgentId, Instant, TaskId};
use taskweave_postgres::{PgError, PgStore, reset};

mod common;
use common::{drive, migrated_or_skip};

/// One cluster's life on the database: a node and an agent run `tasks`
/// (each completes with its payload doubled), then a drain stops them.
/// Answers each task's outcome and the epoch that led.
fn one_cluster(conninfo: &str, tasks: &[u32]) -> (Vec<Outcome<u32>>, u64) {
    let connect = || PgStore::<u32>::connect(conninfo).unwrap_or_else(|e| panic!("connect: {e}"));
    let (mut node_store, mut agent_store, mut client) = (connect(), connect(), connect());
    let dispatcher = DispatcherConfig::builder()
        .heartbeats(Duration::from_millis(250), 8)
        .build()
        .unwrap();
    let mut node = Node::new(NodeConfig::builder("node-1").build().unwrap(), dispatcher).unwrap();
    let profile = AgentProfile::builder().capacity(4).build().unwrap();
    let mut agent = AgentSession::new(
        AgentId::new(1),
        profile,
        SessionConfig::builder().build().unwrap(),
    );
    let started = std::time::Instant::now();
    let clock = || Instant::from_nanos(started.elapsed().as_nanos() as u64);
    let specs = tasks.iter().map(|&n| TaskSpec::new(n)).collect();
    let posted = client.client(ClientOp::Post(vec![Message::Submit(specs)]), clock());
    assert!(matches!(posted, Ok(ClientReply::Posted(_))), "{posted:?}");
    let ids: Vec<TaskId> = (0..tasks.len() as u64).map(TaskId::new).collect();
    let mut outcomes = Vec::new();
    let mut drained = false;
    while node.role() != Role::Stopped {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the cluster did not finish and stop"
        );
        let now = clock();
        drive!(node, node_store, node, now);
        drive!(agent, agent_store, agent, now);
        while let Some(work) = agent.poll_work() {
            agent.complete(work.task, work.token, work.payload * 2);
        }
        if !drained {
            if let Ok(ClientReply::Outcomes(ends)) =
                client.client(ClientOp::Outcomes(ids.clone()), now)
            {
                if ends.iter().all(Option::is_some) {
                    outcomes = ends.into_iter().flatten().collect();
                    let drain = client.client(ClientOp::Post(vec![Message::Drain]), now);
                    assert!(matches!(drain, Ok(ClientReply::Posted(_))), "{drain:?}");
                    drained = true;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let epoch = match client.client(ClientOp::Status, clock()) {
        Ok(ClientReply::Status(lease, _)) => {
            assert!(lease.stopped, "{lease:?}");
            lease.epoch
        }
        other => panic!("{other:?}"),
    };
    (outcomes, epoch)
}

#[test]
fn a_drained_cluster_starts_again_after_a_reset() {
    let test = "a_drained_cluster_starts_again_after_a_reset";
    let Some((cluster, mut admin)) = migrated_or_skip(test) else {
        return;
    };

    // Before any drain, a reset is refused and changes nothing.
    admin
        .execute(
            "INSERT INTO taskweave.journal (seq, epoch, format, entry) VALUES (1, 1, 4, 'x')",
            &[],
        )
        .unwrap();
    match reset(&mut admin) {
        Err(refused @ PgError::NotStopped { .. }) => {
            assert!(refused.to_string().contains("drain it first"), "{refused}");
        }
        other => panic!("a reset before the drain: {other:?}"),
    }
    let kept: i64 = admin
        .query_one("SELECT count(*) FROM taskweave.journal", &[])
        .unwrap()
        .get(0);
    assert_eq!(kept, 1, "a refused reset removed journal entries");
    admin.execute("DELETE FROM taskweave.journal", &[]).unwrap();

    let (first, first_epoch) = one_cluster(&cluster.conninfo(), &[1, 2, 3]);
    let outputs: Vec<_> = first.iter().map(|o| o.output).collect();
    assert_eq!(outputs, [Some(2), Some(4), Some(6)]);
    assert!(first.iter().all(|o| o.end == TaskEnd::Completed));

    // A submission posted after the stop is never read: the reset says so.
    let mut late = PgStore::<u32>::connect(&cluster.conninfo()).unwrap();
    let posted = late.client(
        ClientOp::Post(vec![Message::Submit(vec![TaskSpec::new(7)])]),
        Instant::ZERO,
    );
    assert!(matches!(posted, Ok(ClientReply::Posted(_))), "{posted:?}");
    // A node of the old cluster still connected (frozen, say): refused,
    // naming its session, and nothing changes; gone, the reset goes on.
    let stale = postgres::Client::connect(
        &format!(
            "{} application_name='taskweave node stale'",
            cluster.conninfo()
        ),
        postgres::NoTls,
    )
    .unwrap();
    match reset(&mut admin) {
        Err(refused @ PgError::LiveProcesses { .. }) => {
            let said = refused.to_string();
            assert!(said.contains("taskweave node stale (login "), "{said}");
            assert!(said.contains("pg_terminate_backend"), "{said}");
        }
        other => panic!("a reset under a live node: {other:?}"),
    }
    drop(stale);
    // The server ends the session a moment after the client goes.
    let mut report = reset(&mut admin);
    for _ in 0..500 {
        if !matches!(report, Err(PgError::LiveProcesses { .. })) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        report = reset(&mut admin);
    }
    let report = report.unwrap_or_else(|e| panic!("reset after the drain: {e}"));
    assert_eq!(report.unread, 1, "{report:?}");
    assert_eq!(
        (report.epoch, report.outcomes),
        (first_epoch, 3),
        "{report:?}"
    );
    assert!(report.journal > 0 && report.inbox > 0, "{report:?}");

    // A new cluster on the same database: task-0 again, its own outcome.
    let (second, second_epoch) = one_cluster(&cluster.conninfo(), &[10]);
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].output, Some(20), "an outcome of the old cluster");
    assert!(
        second_epoch > first_epoch,
        "{second_epoch} after {first_epoch}"
    );
}
