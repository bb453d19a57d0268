//! The PostgreSQL store keeps the store contract: the same checks as the
//! in-memory store, on a real server.

use std::time::Duration;

use taskweave::Instant;
use taskweave::cluster::check_store;
use taskweave_postgres::testkit::start_or_skip;
use taskweave_postgres::{PgStore, migrate};

#[test]
fn the_postgres_store_keeps_the_contract() {
    let Some(cluster) = start_or_skip("the_postgres_store_keeps_the_contract") else {
        return;
    };
    let mut admin = postgres::Client::connect(&cluster.conninfo(), postgres::NoTls)
        .unwrap_or_else(|e| panic!("connect: {e}"));
    migrate(&mut admin).unwrap_or_else(|e| panic!("migrate: {e}"));
    let mut store: PgStore<String> =
        PgStore::connect(&cluster.conninfo()).unwrap_or_else(|e| panic!("connect: {e}"));
    let start = std::time::Instant::now();
    let mut clock = |d: Duration| {
        std::thread::sleep(d);
        Instant::from_nanos(u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX))
    };
    match check_store(&mut store, &mut clock) {
        Ok(passed) => eprintln!("{passed} contract checks passed"),
        Err(failure) => panic!("{failure}\nserver log:\n{}", cluster.server_log()),
    }
}
