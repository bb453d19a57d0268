//! N-of-M partial join (patterns 30 and 32; with `n = 1` the simple merge,
//! 5, and the discriminator, 9): the step starts as soon as `n` incoming
//! edges fired, and is skipped once too many were skipped for `n` to fire.
//! With `cancel_remaining` the branches still running are cancelled
//! (cancelling discriminator, 29, and cancelling partial join, 32).

use super::Decision;
use crate::hash::StableHasher;
use crate::workflow::DefinitionError;

/// A quorum needs two or more edges and `1 ≤ n ≤ inputs`.
pub(super) fn check(step: &str, inputs: usize, n: u32) -> Result<(), DefinitionError> {
    if inputs < 2 {
        return Err(DefinitionError::JoinTooFewInputs {
            step: step.to_string(),
            inputs,
            join: "partial",
        });
    }
    if n == 0 || n as usize > inputs {
        return Err(DefinitionError::ImpossibleQuorum {
            step: step.to_string(),
            n,
            m: inputs,
        });
    }
    Ok(())
}

pub(super) fn hash(h: &mut StableHasher, n: u32, cancel_remaining: bool) {
    h.u64(2);
    h.u64(n.into());
    h.u64(cancel_remaining.into());
}

pub(super) fn decide(
    fired: u32,
    skipped: u32,
    inputs: u32,
    n: u32,
    cancel_remaining: bool,
) -> Decision {
    if fired >= n {
        Decision::Start { cancel_remaining }
    } else if skipped > inputs.saturating_sub(n) {
        Decision::Skip
    } else {
        Decision::Wait
    }
}

/// `first`, or `n of m`, with `, cancel others` when it cancels.
pub(super) fn describe(inputs: usize, n: u32, cancel_remaining: bool) -> Option<String> {
    let quorum = if n == 1 {
        "first".to_string()
    } else {
        format!("{n} of {inputs}")
    };
    let cancel = if cancel_remaining {
        ", cancel others"
    } else {
        ""
    };
    Some(format!("{quorum}{cancel}"))
}
