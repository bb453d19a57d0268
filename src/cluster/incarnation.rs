//! An agent's incarnation, as its registered profile carries it: how the
//! leader tells a restarted agent from the process it replaces.

use crate::AgentId;
use crate::agent::{AgentProfile, Registry};

/// The profile label that carries an agent's incarnation.
pub const INCARNATION_LABEL: &str = "taskweave.incarnation";

/// The incarnation a registered profile carries.
pub(crate) fn incarnation_of(profile: &AgentProfile) -> Option<u64> {
    profile.labels().get(INCARNATION_LABEL)?.parse().ok()
}

/// The incarnation `agent` is registered with in `registry` (0: unknown,
/// or registered without one).
pub(crate) fn registered_incarnation(registry: &Registry, agent: AgentId) -> u64 {
    registry
        .get(agent)
        .and_then(|record| incarnation_of(record.profile()))
        .unwrap_or(0)
}
