//! The failures the simulated store and its links answer with, shared by
//! the roles' events and the workflow client's ticks.

use std::collections::BTreeMap;

use super::super::contract::StoreFailure;
use super::config::SimRng;

/// The store is restarting: the operation fails without effect.
pub(crate) fn store_down() -> StoreFailure {
    StoreFailure::Failed {
        cause: "simulated: the store is restarting".into(),
    }
}

/// The store refused the operation, without effect.
pub(crate) fn refusal() -> StoreFailure {
    StoreFailure::Failed {
        cause: "simulated: the store refused the transaction".into(),
    }
}

/// The answer was lost on its way back: the operation took effect.
pub(crate) fn lost_answer() -> StoreFailure {
    StoreFailure::Unknown {
        cause: "simulated: the answer was lost".into(),
    }
}

/// Whether the store refuses the operation arriving now (at `chance`),
/// counted among `faults`.
pub(crate) fn refused(
    rng: &mut SimRng,
    chance: f64,
    faults: &mut BTreeMap<&'static str, u64>,
) -> bool {
    let refused = rng.chance(chance);
    if refused {
        *faults.entry("refuse").or_default() += 1;
    }
    refused
}
