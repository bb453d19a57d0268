//! Synchronizing merge (pattern 7): the step waits until every incoming
//! edge is decided, then starts if at least one fired.

use super::Decision;
use crate::hash::StableHasher;
use crate::workflow::DefinitionError;

/// A merge of fewer than two edges merges nothing.
pub(super) fn check(step: &str, inputs: usize) -> Result<(), DefinitionError> {
    if inputs < 2 {
        return Err(DefinitionError::JoinTooFewInputs {
            step: step.to_string(),
            inputs,
            join: "synchronizing merge",
        });
    }
    Ok(())
}

pub(super) fn hash(h: &mut StableHasher) {
    h.u64(1);
}

pub(super) fn decide(fired: u32, skipped: u32, inputs: u32) -> Decision {
    if fired.saturating_add(skipped) < inputs {
        Decision::Wait
    } else if fired > 0 {
        Decision::Start {
            cancel_remaining: false,
        }
    } else {
        Decision::Skip
    }
}

pub(super) fn describe() -> Option<String> {
    Some("merge".to_string())
}
