//! Typed identifiers.
//!
//! Every id is a `u64` newtype: `Copy`, hashable, ordered and serializable,
//! so it costs the same as the integer it wraps while keeping an [`AgentId`]
//! from being passed where a [`TaskId`] is expected. Ids are chosen by the
//! host (or by the component that creates the thing they name); the library
//! never invents an [`AgentId`].

use std::fmt;

macro_rules! define_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
        #[cfg_attr(feature = "serde", serde(transparent))]
        pub struct $name(u64);

        impl $name {
            /// Wraps a raw value.
            pub const fn new(raw: u64) -> Self {
                Self(raw)
            }

            /// The raw value.
            pub const fn get(self) -> u64 {
                self.0
            }
        }

        impl From<u64> for $name {
            fn from(raw: u64) -> Self {
                Self(raw)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}

define_id!(
    /// Names one agent. Chosen by the host when it registers the agent.
    AgentId,
    "agent-"
);
define_id!(
    /// Names one task.
    TaskId,
    "task-"
);
define_id!(
    /// Names one workflow run.
    WorkflowId,
    "workflow-"
);
define_id!(
    /// Names one step of a workflow definition.
    StepId,
    "step-"
);
define_id!(
    /// Names one tenant: the owner of tasks (and, on a cluster, of a
    /// submitter's messages). A task's idempotency key is scoped to its
    /// tenant, and a tenant may have quotas
    /// ([`TenantQuota`](crate::scheduler::TenantQuota)). Chosen by the host.
    TenantId,
    "tenant-"
);
define_id!(
    /// Fencing token of one attempt of a task: a result is accepted only with
    /// the token of the task's current attempt.
    AttemptToken,
    "attempt-"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_display_with_their_kind() {
        assert_eq!(AgentId::new(7).to_string(), "agent-7");
        assert_eq!(TaskId::from(3).to_string(), "task-3");
        assert_eq!(AttemptToken::new(9).get(), 9);
    }
}
