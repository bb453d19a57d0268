//! [`Checks`]: the tally of a contract check, and how a failed one is
//! worded.

use super::Op;

/// The checks passed so far; the first that fails ends the check.
pub(super) struct Checks {
    pub(super) passed: usize,
}

impl Checks {
    pub(super) fn that(&mut self, what: &str, holds: bool) -> Result<(), String> {
        if holds {
            self.passed += 1;
            Ok(())
        } else {
            Err(format!("store contract: {what}: it does not hold"))
        }
    }

    pub(super) fn is(
        &mut self,
        what: &str,
        answer: &Op,
        expected: impl Fn(&Op) -> bool,
    ) -> Result<(), String> {
        if expected(answer) {
            self.passed += 1;
            Ok(())
        } else {
            Err(format!(
                "store contract: {what}: the store answered {answer:?}"
            ))
        }
    }
}
