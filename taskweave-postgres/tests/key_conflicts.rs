//! The same idempotency key with another payload gets a conflict verdict,
//! not the first task with the second payload dropped; the same payload
//! (its object keys in any order) gets the first task; a fingerprint a
//! submitter writes into its body is ignored.

use std::time::Duration;

use serde_json::Value;
use taskweave::TaskId;
use taskweave::cluster::{Node, NodeConfig, Verdict};
use taskweave::scheduler::DispatcherConfig;
use taskweave_postgres::PgStore;

mod common;
use common::{migrated_or_skip, verdicts};

#[test]
fn the_same_key_with_another_payload_is_a_conflict() {
    let test = "the_same_key_with_another_payload_is_a_conflict";
    let Some((cluster, mut admin)) = migrated_or_skip(test) else {
        return;
    };
    // Raw bodies, as any submitter may write them.
    let bodies = [
        r#"{"Submit":[{"payload":{"a":1,"b":2},"idempotency_key":"order-7"}]}"#,
        r#"{"Submit":[{"payload":{"b":2,"a":1},"idempotency_key":"order-7","payload_fingerprint":1}]}"#,
        r#"{"Submit":[{"payload":{"a":1,"b":3},"idempotency_key":"order-7","payload_fingerprint":1}]}"#,
        r#"{"Submit":[{"payload":{"a":9},"idempotency_key":"order-8"}]}"#,
    ];
    let mut ids = Vec::new();
    for body in bodies {
        let row = admin
            .query_one(
                "INSERT INTO taskweave.inbox (kind, body) VALUES ('submit', $1) RETURNING id",
                &[&body],
            )
            .unwrap();
        ids.push(u64::try_from(row.get::<_, i64>(0)).unwrap());
    }
    let mut node_store = PgStore::<Value>::connect(&cluster.conninfo()).unwrap();
    let mut client = PgStore::<Value>::connect(&cluster.conninfo()).unwrap();
    let config = NodeConfig::builder("node-1").build().unwrap();
    let dispatcher = DispatcherConfig::builder()
        .heartbeats(Duration::from_millis(250), 8)
        .build()
        .unwrap();
    let mut node = Node::new(config, dispatcher).unwrap();
    let started = std::time::Instant::now();
    let verdicts = verdicts(&mut node, &mut node_store, &mut client, &ids, started);
    let task = |verdict: &Verdict| match verdict {
        Verdict::Submitted(tasks) if tasks.len() == 1 => tasks[0].clone(),
        other => panic!("{other:?}"),
    };
    let first = task(&verdicts[0]).unwrap();
    assert_eq!(
        task(&verdicts[1]),
        Ok(first),
        "the same payload, keys reordered"
    );
    let conflict = task(&verdicts[2]).unwrap_err();
    assert!(conflict.starts_with("conflict:"), "{conflict}");
    assert!(conflict.contains(&first.to_string()), "{conflict}");
    assert_eq!(task(&verdicts[3]), Ok(TaskId::new(1)), "another key");
}
