//! The PostgreSQL store keeps the store contract: the same checks as the
//! in-memory store, on a real server.

use std::time::Duration;

use taskweave::Instant;
use taskweave::cluster::{StoreAnswer, StoreCall, check_store, check_store_races};
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

/// The contract under concurrency: four connections race on the same
/// rows (the lease, a commit and its copies, one agent's claims), each
/// race started at once on its own thread, twenty rounds.
#[test]
fn the_postgres_store_keeps_the_contract_when_connections_race() {
    const CONNECTIONS: usize = 4;
    let Some(cluster) =
        start_or_skip("the_postgres_store_keeps_the_contract_when_connections_race")
    else {
        return;
    };
    let mut admin = postgres::Client::connect(&cluster.conninfo(), postgres::NoTls)
        .unwrap_or_else(|e| panic!("connect: {e}"));
    migrate(&mut admin).unwrap_or_else(|e| panic!("migrate: {e}"));
    let connect = || -> PgStore<String> {
        PgStore::connect(&cluster.conninfo()).unwrap_or_else(|e| panic!("connect: {e}"))
    };
    let mut store = connect();
    let mut racers: Vec<PgStore<String>> = (0..CONNECTIONS).map(|_| connect()).collect();
    let start = std::time::Instant::now();
    let mut clock = |d: Duration| {
        std::thread::sleep(d);
        Instant::from_nanos(u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX))
    };
    let mut race = |calls: Vec<StoreCall>, now: Instant| -> Vec<StoreAnswer> {
        let barrier = std::sync::Barrier::new(calls.len());
        std::thread::scope(|scope| {
            let handles: Vec<_> = racers
                .iter_mut()
                .zip(calls)
                .map(|(racer, call)| {
                    let barrier = &barrier;
                    scope.spawn(move || {
                        barrier.wait();
                        call.send(racer, now)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| panic!("a racer panicked")))
                .collect()
        })
    };
    match check_store_races(&mut store, CONNECTIONS, 20, &mut clock, &mut race) {
        Ok(passed) => eprintln!("{passed} racing contract checks passed"),
        Err(failure) => panic!("{failure}\nserver log:\n{}", cluster.server_log()),
    }
}
