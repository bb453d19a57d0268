//! [`AsyncPgClient`] against a live cluster (a node and an agent run by
//! `taskweave-pg`), from tokio: it refuses a database without the schema,
//! submits and reads verdicts, outcomes and the status; a submitter's
//! drain is refused by the database; it outlives a PostgreSQL restart
//! (the call that meets it fails, a later one connects again); a node
//! login's client redrives and drains. Polled outside a tokio runtime, it
//! answers an error that says so instead of panicking.

mod common;

use std::time::Duration;

use common::async_host::{WAIT, block_on_outside_tokio, runtime, submit};
use common::cli::{node_agent_submitter, start, wait_until};
use serde_json::{Value, json};
use taskweave::cluster::{Redrive, StoreFailure, TaskEnd, Verdict};
use taskweave::scheduler::DeadLetterFilter;
use taskweave_postgres::testkit::start_or_skip;
use taskweave_postgres::{AsyncPgClient, PgError};

/// The client's futures may move between a runtime's threads
/// (`tokio::spawn` needs that): a compile-time check.
#[allow(dead_code)]
fn its_futures_are_send(client: &mut AsyncPgClient<Value>) {
    fn send<T: Send>(_: T) {}
    send(client.wait_verdicts(&[], WAIT));
    send(client.wait_outcomes(&[], WAIT));
    send(client.submit(Vec::new()));
    send(client.status());
}

#[test]
fn an_async_client_submits_outlives_a_restart_redrives_and_drains() {
    let Some(mut cluster) = start_or_skip("async_client") else {
        return;
    };
    let runtime = runtime();

    // No schema yet: refused, naming the remedy.
    let missing = runtime.block_on(AsyncPgClient::<Value>::connect(&cluster.conninfo()));
    assert!(
        matches!(missing, Err(PgError::Schema { found: 0, .. })),
        "{missing:?}"
    );

    let (node, agent, sub) = node_agent_submitter(&cluster);
    let _node = start(&["node", "--db", &node, "--name", "node-a"]);
    let _agent = start(&[
        "agent", "--db", &agent, "--id", "1", "--", "sh", "-c", "cat",
    ]);

    // Outside a runtime: an error naming the remedy, not tokio's panic
    // (connecting needs tokio's socket; a wait, tokio's timer).
    let outside = block_on_outside_tokio(AsyncPgClient::<Value>::connect(&sub));
    assert!(matches!(outside, Err(PgError::NoRuntime)), "{outside:?}");
    let mut client = runtime
        .block_on(AsyncPgClient::<Value>::connect(&sub))
        .unwrap();
    let never_given = taskweave::TaskId::new(u64::MAX);
    let waited = block_on_outside_tokio(client.wait_outcomes(&[never_given], WAIT));
    assert!(
        matches!(&waited, Err(StoreFailure::Failed { cause }) if cause.contains("tokio runtime")),
        "{waited:?}"
    );
    runtime.block_on(async {
        let tasks = submit(&mut client, (0..20).map(|n| json!({ "n": n })).collect()).await;
        let outcomes = client.wait_outcomes(&tasks, WAIT).await.unwrap();
        for (i, outcome) in outcomes.iter().enumerate() {
            let outcome = outcome.as_ref().expect("every task ended");
            assert_eq!(outcome.end, TaskEnd::Completed);
            assert_eq!(outcome.output, Some(json!({ "n": i })));
        }
        // The leader publishes its status every 250 ms or so.
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let (lease, status) = client.status().await.unwrap();
            assert!(lease.held && lease.holder == "node-a", "{lease:?}");
            if status.is_some_and(|s| s.completed == 20) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no status counts 20"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // A submitter may not drain: the database refuses the post.
        let drain = client.drain().await;
        assert!(
            matches!(&drain, Err(StoreFailure::Failed { cause }) if cause.contains("42501")),
            "{drain:?}"
        );
    });

    // PostgreSQL restarts under the client: a call may fail, and a later
    // one connects again.
    cluster.restart_immediate().unwrap();
    let mut failures = 0;
    wait_until("the client to reach PostgreSQL again", || {
        let read = runtime.block_on(client.status());
        failures += u32::from(read.is_err());
        read.is_ok()
    });
    assert!(failures <= 1, "{failures} calls failed after the restart");
    runtime.block_on(async {
        let tasks = submit(&mut client, (20..25).map(|n| json!({ "n": n })).collect()).await;
        let outcomes = client.wait_outcomes(&tasks, WAIT).await.unwrap();
        assert!(outcomes.iter().all(Option::is_some), "{outcomes:?}");
    });

    // The operator's client, on a node login: a redrive with no letter
    // to requeue, then the drain.
    runtime.block_on(async {
        let mut operator = AsyncPgClient::<Value>::connect(&node).await.unwrap();
        let every = Redrive::Matching(DeadLetterFilter::new());
        let message = operator.redrive(every).await.unwrap();
        let verdicts = operator.wait_verdicts(&[message], WAIT).await.unwrap();
        assert_eq!(
            verdicts,
            vec![Some(Verdict::Redriven {
                requeued: vec![],
                refused: vec![]
            })]
        );
        operator.drain().await.unwrap();
    });
    wait_until("the cluster to stop", || {
        runtime
            .block_on(client.status())
            .is_ok_and(|(lease, _)| lease.stopped)
    });
}
