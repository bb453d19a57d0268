//! Synchronization (pattern 3): the step starts once every incoming edge
//! fired; one skipped edge skips it.

use super::Decision;
use crate::hash::StableHasher;
use crate::workflow::DefinitionError;

/// Any number of incoming edges will do.
pub(super) fn check() -> Result<(), DefinitionError> {
    Ok(())
}

pub(super) fn hash(h: &mut StableHasher) {
    h.u64(0);
}

pub(super) fn decide(fired: u32, skipped: u32, inputs: u32) -> Decision {
    if skipped > 0 {
        Decision::Skip
    } else if fired == inputs {
        Decision::Start {
            cancel_remaining: false,
        }
    } else {
        Decision::Wait
    }
}

/// The default join needs no annotation.
pub(super) fn describe() -> Option<String> {
    None
}
