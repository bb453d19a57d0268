//! Joins: when a step with several incoming edges may start. Each kind
//! keeps everything of its own in one file — its checks against the
//! step's incoming edges, its part of the definition hash, its decision as
//! edges fire or are skipped, and its line in a diagram: `all.rs`,
//! `merge.rs`, `quorum.rs`. A new kind is a variant here and a file beside
//! them.

mod all;
mod merge;
mod quorum;

use crate::hash::StableHasher;
use crate::workflow::DefinitionError;

/// When a step with several incoming edges may start.
///
/// Edges are *fired* when their source completes (and, for a labelled edge,
/// chose the label) and *skipped* when their source is skipped, cancelled or
/// did not choose the label. A step whose join can no longer be satisfied is
/// skipped, and so are its outgoing edges: skips propagate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Join {
    /// Synchronization (pattern 3): every incoming edge fired. One skipped
    /// edge skips the step.
    #[default]
    All,
    /// Synchronizing merge (pattern 7): waits until every incoming edge is
    /// decided, then starts if at least one fired.
    Merge,
    /// N-of-M partial join (patterns 30 and 32): starts as soon as `n`
    /// incoming edges fired. With `n = 1` this is the simple merge (5) and
    /// the discriminator (9). With `cancel_remaining` the branches still
    /// running are cancelled (cancelling discriminator, 29, and cancelling
    /// partial join, 32); otherwise they finish and are ignored.
    Quorum {
        /// Fired edges needed; `1..=m` for `m` incoming edges.
        n: u32,
        /// Whether the remaining branches are cancelled.
        cancel_remaining: bool,
    },
}

impl Join {
    /// The first branch to arrive wins, the others carry on (simple merge
    /// and discriminator).
    pub const fn first() -> Join {
        Join::Quorum {
            n: 1,
            cancel_remaining: false,
        }
    }

    /// The first branch to arrive wins and the others are cancelled
    /// (cancelling discriminator).
    pub const fn first_cancelling() -> Join {
        Join::Quorum {
            n: 1,
            cancel_remaining: true,
        }
    }
}

/// What a join makes of its incoming edges so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Not decided yet: more edges must fire or be skipped.
    Wait,
    /// The step starts; with `cancel_remaining`, the branches still
    /// feeding its other edges are cancelled.
    Start { cancel_remaining: bool },
    /// The join can no longer be satisfied: the step is skipped.
    Skip,
}

impl Join {
    /// Checks the join against the step's `inputs` incoming edges.
    pub(crate) fn check(&self, step: &str, inputs: usize) -> Result<(), DefinitionError> {
        match *self {
            Join::All => all::check(),
            Join::Merge => merge::check(step, inputs),
            Join::Quorum { n, .. } => quorum::check(step, inputs, n),
        }
    }

    /// Feeds the join to a definition's hash.
    pub(crate) fn hash(&self, h: &mut StableHasher) {
        match *self {
            Join::All => all::hash(h),
            Join::Merge => merge::hash(h),
            Join::Quorum {
                n,
                cancel_remaining,
            } => quorum::hash(h, n, cancel_remaining),
        }
    }

    /// The decision once `fired` and `skipped` of the step's `inputs`
    /// incoming edges are known.
    pub(crate) fn decide(&self, fired: u32, skipped: u32, inputs: u32) -> Decision {
        match *self {
            Join::All => all::decide(fired, skipped, inputs),
            Join::Merge => merge::decide(fired, skipped, inputs),
            Join::Quorum {
                n,
                cancel_remaining,
            } => quorum::decide(fired, skipped, inputs, n, cancel_remaining),
        }
    }

    /// The join's line in a diagram's label, for a step of `inputs`
    /// incoming edges; `None` for the plain synchronization.
    pub(crate) fn describe(&self, inputs: usize) -> Option<String> {
        match *self {
            Join::All => all::describe(),
            Join::Merge => merge::describe(),
            Join::Quorum {
                n,
                cancel_remaining,
            } => quorum::describe(inputs, n, cancel_remaining),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: Decision = Decision::Start {
        cancel_remaining: false,
    };

    #[test]
    fn each_kind_decides_as_its_pattern_says() {
        // (join, fired, skipped, of 3 inputs) -> decision
        let cases = [
            (Join::All, 2, 0, Decision::Wait),
            (Join::All, 3, 0, START),
            (Join::All, 2, 1, Decision::Skip),
            (Join::Merge, 1, 1, Decision::Wait),
            (Join::Merge, 1, 2, START),
            (Join::Merge, 0, 3, Decision::Skip),
            (Join::first(), 1, 0, START),
            (Join::first(), 0, 2, Decision::Wait),
            (Join::first(), 0, 3, Decision::Skip),
            (
                Join::first_cancelling(),
                1,
                0,
                Decision::Start {
                    cancel_remaining: true,
                },
            ),
            (
                Join::Quorum {
                    n: 2,
                    cancel_remaining: false,
                },
                1,
                1,
                Decision::Wait,
            ),
            (
                Join::Quorum {
                    n: 2,
                    cancel_remaining: false,
                },
                1,
                2,
                Decision::Skip,
            ),
            (
                Join::Quorum {
                    n: 2,
                    cancel_remaining: false,
                },
                2,
                1,
                START,
            ),
        ];
        for (join, fired, skipped, expected) in cases {
            assert_eq!(
                join.decide(fired, skipped, 3),
                expected,
                "{join:?} {fired}/{skipped}"
            );
        }
    }

    #[test]
    fn checks_and_descriptions_name_the_kind() {
        assert!(Join::All.check("a", 1).is_ok());
        assert!(Join::Merge.check("a", 1).is_err());
        assert!(Join::first().check("a", 1).is_err());
        assert!(
            Join::Quorum {
                n: 3,
                cancel_remaining: false
            }
            .check("a", 2)
            .is_err()
        );
        assert_eq!(Join::All.describe(3), None);
        assert_eq!(Join::Merge.describe(3).as_deref(), Some("merge"));
        assert_eq!(
            Join::first_cancelling().describe(3).as_deref(),
            Some("first, cancel others")
        );
        let two = Join::Quorum {
            n: 2,
            cancel_remaining: false,
        };
        assert_eq!(two.describe(3).as_deref(), Some("2 of 3"));
    }
}
