//! The workflow exports' own text helpers: a step's node id and display
//! name (the escaping and lines every diagram shares are in
//! `crate::diagram`).

use std::borrow::Cow;
use std::fmt;

use crate::StepId;
use crate::diagram::is_blank;
use crate::workflow::StepDef;

/// A step's node id in both formats: `s` and its index.
#[derive(Clone, Copy)]
pub(super) struct NodeId(pub(super) StepId);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s{}", self.0.get())
    }
}

/// The step's name, or its key if the name is blank (only whitespace,
/// controls and line separators), or its node id if both are.
pub(crate) fn display_name(id: StepId, step: &StepDef) -> Cow<'_, str> {
    if !is_blank(&step.name) {
        Cow::Borrowed(&step.name)
    } else if !is_blank(&step.id) {
        Cow::Borrowed(&step.id)
    } else {
        Cow::Owned(NodeId(id).to_string())
    }
}
