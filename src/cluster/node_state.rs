//! [`NodeState`]: what a node's snapshot holds.

use crate::WorkflowId;
use crate::scheduler::Snapshot;

use super::contract::RunsSnapshot;

/// What a node's snapshot holds: the dispatcher's state and, on a
/// cluster that hosts runs, theirs. Its serde form is the dispatcher
/// snapshot's with a `runs` field beside, left out when there is none,
/// so a stored dispatcher snapshot of an earlier release reads as a
/// state without runs.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(bound(
        serialize = "P: serde::Serialize",
        deserialize = "P: serde::Deserialize<'de>"
    ))
)]
pub struct NodeState<P> {
    /// The dispatcher's state.
    #[cfg_attr(feature = "serde", serde(flatten))]
    pub dispatcher: Snapshot<P>,
    /// The hosted runs, if the node hosts any.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub runs: Option<RunsSnapshot<P>>,
}

impl<P> From<Snapshot<P>> for NodeState<P> {
    fn from(dispatcher: Snapshot<P>) -> Self {
        NodeState {
            dispatcher,
            runs: None,
        }
    }
}

impl<P> NodeState<P> {
    /// The finished runs its hosted runs' engine remembers, oldest end
    /// first (none without hosted runs): a store keeps their ends on a
    /// trim ([`NodeOp::PutSnapshot`](super::NodeOp::PutSnapshot)).
    pub fn remembered_runs(&self) -> impl Iterator<Item = WorkflowId> + '_ {
        self.runs.iter().flat_map(RunsSnapshot::remembered_runs)
    }
}
