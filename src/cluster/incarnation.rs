//! An agent's incarnation, as its registered profile carries it: how the
//! leader tells a restarted agent from the process it replaces.

use crate::agent::AgentProfile;

/// The profile label that carries an agent's incarnation.
pub const INCARNATION_LABEL: &str = "taskweave.incarnation";

/// The incarnation a registered profile carries.
pub(crate) fn incarnation_of(profile: &AgentProfile) -> Option<u64> {
    profile.labels().get(INCARNATION_LABEL)?.parse().ok()
}
