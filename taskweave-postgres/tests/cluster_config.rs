//! The cluster's dispatcher configuration in the database (schema version
//! 10), on a real server: the first node stores its own; a node built with
//! another is refused when it starts, naming the setting and both values;
//! an operator replaces it only while the cluster has no journal; a
//! stored configuration that does not read is named as corrupt; and only
//! the owner changes it.

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde_json::Value;
use taskweave::TenantId;
use taskweave::cluster::NodeConfig;
use taskweave::resilience::Fixed;
use taskweave::scheduler::{DispatcherConfig, TenantQuota};
use taskweave_postgres::{
    LoginKind, PgError, PgNode, PgStore, cluster_config, create_login, set_cluster_config,
};

mod common;
use common::{connect_as, denied, migrated_or_skip};

fn dispatcher(seed: u64) -> DispatcherConfig {
    DispatcherConfig::builder()
        .heartbeats(Duration::from_millis(250), 8)
        .retry_policy(Fixed::new(Duration::from_millis(100), 3).unwrap())
        .tenant_quota(TenantId::new(1), TenantQuota::new().live_runs(4))
        .seed(seed)
        .build()
        .unwrap()
}

fn json(config: &DispatcherConfig) -> String {
    serde_json::to_string(config).unwrap()
}

#[test]
fn every_node_runs_with_the_clusters_stored_configuration() {
    let Some((cluster, mut admin)) = migrated_or_skip("stored_configuration") else {
        return;
    };
    create_login(&mut admin, "node", LoginKind::Node).unwrap();
    create_login(&mut admin, "sub", LoginKind::Submitter).unwrap();
    assert!(
        cluster_config(&mut admin).unwrap().is_none(),
        "nothing stored yet"
    );

    // The first node's configuration becomes the cluster's; the same again
    // agrees.
    let mut store = PgStore::<Value>::connect(&cluster.conninfo_as("node")).unwrap();
    store.agree_config(&dispatcher(13)).unwrap();
    store.agree_config(&dispatcher(13)).unwrap();
    let stored = cluster_config(&mut admin).unwrap().expect("stored");
    assert_eq!(json(&stored), json(&dispatcher(13)));
    // Another is refused, naming the setting and both values.
    let other = store.agree_config(&dispatcher(14));
    assert!(
        matches!(&other, Err(PgError::ConfigDisagrees { setting, stored, given })
            if setting == "settings.seed" && stored == "13" && given == "14"),
        "{other:?}"
    );
    let said = other.unwrap_err().to_string();
    assert!(
        said.contains("settings.seed is 13 in the database but 14 here"),
        "{said}"
    );
    // So is a node built with it, when it starts: it never leads.
    let config = NodeConfig::builder("node-b").build().unwrap();
    let mut node =
        PgNode::<Value>::new(&cluster.conninfo_as("node"), config, dispatcher(14)).unwrap();
    let stop = AtomicBool::new(false);
    let ran = node.run(&stop, &mut |_| {});
    assert!(
        ran.as_ref()
            .is_err_and(|why| why.contains("settings.seed is 13 in the database")),
        "{ran:?}"
    );

    // The owner replaces it while the cluster has no journal; neither a
    // node nor a submitter may write it over.
    set_cluster_config(&mut admin, &dispatcher(15)).unwrap();
    store.agree_config(&dispatcher(15)).unwrap();
    let mut node_sql = connect_as(&cluster.conninfo_as("node"));
    denied(
        "a node rewriting the configuration",
        node_sql.execute("UPDATE cluster_config SET body = '{}'", &[]),
    );
    let mut sub_sql = connect_as(&cluster.conninfo_as("sub"));
    denied(
        "a submitter writing the configuration",
        sub_sql.execute("DELETE FROM cluster_config", &[]),
    );
    denied(
        "a submitter reading every tenant's quotas",
        sub_sql.execute("SELECT body FROM cluster_config", &[]),
    );
    // Once the cluster has a journal, it is refused.
    admin
        .batch_execute(
            "INSERT INTO taskweave.journal (seq, epoch, entry, format)
             SELECT 1, 1, '{}', 7",
        )
        .unwrap_or_else(|e| panic!("a journal row: {e}"));
    let late = set_cluster_config(&mut admin, &dispatcher(16));
    assert!(
        matches!(late, Err(PgError::JournalNotEmpty { entries: 1 })),
        "{late:?}"
    );
    // A stored configuration no builder would accept is named, not run.
    admin
        .batch_execute(
            "UPDATE taskweave.cluster_config SET body = replace(body, '\"live_runs\":4', '\"live_runs\":0')",
        )
        .unwrap();
    let corrupt = cluster_config(&mut admin);
    assert!(
        matches!(&corrupt, Err(PgError::Corrupt { table: "cluster_config", problem, .. })
            if problem.contains("0 live runs")),
        "{corrupt:?}"
    );
    let said = corrupt.unwrap_err().to_string();
    assert!(said.contains("taskweave-pg config set"), "{said}");
    // A host retry policy is code, not data: it cannot be stored.
    let host_policy = DispatcherConfig::builder()
        .heartbeats(Duration::from_millis(250), 8)
        .retry_policy(
            |failures: u32, _: Option<Duration>, _: &mut dyn rand::Rng| {
                (failures < 2).then_some(Duration::from_millis(10))
            },
        )
        .build()
        .unwrap();
    let refused = store.agree_config(&host_policy);
    assert!(
        matches!(&refused, Err(PgError::ConfigNotData { problem }) if problem.contains("host retry policy")),
        "{refused:?}"
    );
}
