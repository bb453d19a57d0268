//! A leader's session that sits inside a transaction is ended only when
//! its lease has lapsed (issue 40, finding 3): a working leader that the
//! machine starves between two statements of a commit keeps its session,
//! and a standby that takes the expired lease ends a stalled leader's
//! session itself, well inside the lease time, instead of waiting for the
//! server's idle timeout.

use std::time::{Duration, Instant as WallInstant};

use postgres::{Client, NoTls};
use taskweave::cluster::{NodeOp, NodeReply, Store};
use taskweave_postgres::testkit::{PgCluster, start_or_skip};
use taskweave_postgres::{PgStore, migrate, session_options, wall_now};

fn ready(cluster: &PgCluster) -> PgStore<String> {
    let mut admin =
        Client::connect(&cluster.conninfo(), NoTls).unwrap_or_else(|e| panic!("connect: {e}"));
    migrate(&mut admin).unwrap_or_else(|e| panic!("migrate: {e}"));
    PgStore::connect(&cluster.conninfo()).unwrap_or_else(|e| panic!("connect: {e}"))
}

/// A session with the store's own settings, for statements a store
/// operation would send.
fn session_like_the_store(cluster: &PgCluster) -> Client {
    let conninfo = format!("{} options='{}'", cluster.conninfo(), session_options());
    Client::connect(&conninfo, NoTls).unwrap_or_else(|e| panic!("connect: {e}"))
}

fn take(store: &mut PgStore<String>, seen: u64, ttl: Duration) -> NodeReply<String> {
    let op = NodeOp::TakeLease {
        seen,
        holder: "test".into(),
        ttl,
    };
    store
        .node(op, wall_now())
        .unwrap_or_else(|e| panic!("take: {e}"))
}

/// Starved for a second between two statements of a transaction that
/// renewed its lease, a leader's session lives on (the idle timeout was
/// 300 ms, which ended such sessions under CPU contention).
#[test]
fn a_leader_starved_inside_a_commit_keeps_its_session() {
    let Some(cluster) = start_or_skip("a_leader_starved_inside_a_commit_keeps_its_session") else {
        return;
    };
    let mut store = ready(&cluster);
    let NodeReply::Taken { epoch } = take(&mut store, 0, Duration::from_secs(30)) else {
        panic!("the lease of a fresh store was not taken");
    };
    let mut leader = session_like_the_store(&cluster);
    let mut commit = leader
        .transaction()
        .unwrap_or_else(|e| panic!("begin: {e}"));
    let renewed = commit
        .execute(
            "UPDATE lease SET expires_at = clock_timestamp() + interval '30 seconds' \
             WHERE id = 1 AND epoch = $1",
            &[&(epoch as i64)],
        )
        .unwrap_or_else(|e| panic!("renew: {e}"));
    assert_eq!(renewed, 1);
    std::thread::sleep(Duration::from_millis(1_000));
    let next = commit.query_one("SELECT 1", &[]);
    assert!(
        next.is_ok(),
        "the starved leader's session was ended: {next:?}"
    );
    commit.commit().unwrap_or_else(|e| panic!("commit: {e}"));
}

/// A leader stalled inside a transaction that holds the lease row: once
/// its lease lapses, a standby's takeover ends the stalled session and
/// takes the lease within about a second, not after the 10 s idle timeout.
#[test]
fn a_standby_ends_a_stalled_leaders_session_once_its_lease_lapsed() {
    let Some(cluster) =
        start_or_skip("a_standby_ends_a_stalled_leaders_session_once_its_lease_lapsed")
    else {
        return;
    };
    let mut store = ready(&cluster);
    let NodeReply::Taken { epoch } = take(&mut store, 0, Duration::from_millis(300)) else {
        panic!("the lease of a fresh store was not taken");
    };
    let mut leader = session_like_the_store(&cluster);
    let mut stalled = leader
        .transaction()
        .unwrap_or_else(|e| panic!("begin: {e}"));
    // The fence of a commit: the lease row is locked until the
    // transaction ends, and the leader then stalls (frozen).
    stalled
        .execute(
            "UPDATE lease SET expires_at = expires_at WHERE id = 1 AND epoch = $1",
            &[&(epoch as i64)],
        )
        .unwrap_or_else(|e| panic!("fence: {e}"));
    std::thread::sleep(Duration::from_millis(800));
    let start = WallInstant::now();
    let taken = take(&mut store, epoch, Duration::from_secs(1));
    let took = start.elapsed();
    assert!(
        matches!(taken, NodeReply::Taken { epoch: e } if e == epoch + 1),
        "the standby did not take the lapsed lease: {taken:?}"
    );
    assert!(
        took < Duration::from_secs(3),
        "the takeover waited {took:?} for the stalled session"
    );
    assert!(
        stalled.query_one("SELECT 1", &[]).is_err(),
        "the stalled leader's session lives on"
    );
}
