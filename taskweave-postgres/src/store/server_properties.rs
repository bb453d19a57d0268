//! What the store's properties against a real server share: one server
//! for all of a property's cases, and keys at the edges of `BIGINT`.

use postgres::Client;
use proptest::prelude::*;

use super::PgStore;
use super::tests::leader;

/// Keys at and near the edges of a `BIGINT`, and some ordinary ones.
pub(super) fn extreme_i64() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(i64::MIN),
        Just(-1i64),
        Just(0),
        Just(i64::MAX),
        1i64..1_000
    ]
}

/// Runs `check` for each case of `strategy` against one migrated server
/// whose store holds the lease (skipped, loudly, without PostgreSQL).
/// Case counts default low (each case is a few round trips);
/// `PROPTEST_CASES` raises them.
pub(super) fn on_a_server<T: std::fmt::Debug>(
    test: &str,
    strategy: impl Strategy<Value = T>,
    check: fn(&mut Client, &mut PgStore<String>, &T) -> Result<(), String>,
) {
    let Some((_cluster, mut admin, mut store)) = leader(test) else {
        return;
    };
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(48);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let both = std::cell::RefCell::new((&mut admin, &mut store));
    let result = runner.run(&strategy, |value| {
        let (admin, store) = &mut *both.borrow_mut();
        check(admin, store, &value).map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
