//! Typed identifiers.
//!
//! Every id is a `u64` newtype: `Copy`, hashable, ordered and serializable,
//! so it costs the same as the integer it wraps while keeping an [`AgentId`]
//! from being passed where a [`TaskId`] is expected. Ids are chosen by the
//! host (or by the component that creates the thing they name); the library
//! never invents an [`AgentId`].

use std::fmt;
use std::str::FromStr;

/// A word that names no id of its kind: ids read as they print
/// (`task-7`) or as their bare number (`7`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{word:?} is not {article} {kind} id: write {kind}-N or N")]
pub struct ParseIdError {
    word: String,
    kind: &'static str,
    article: &'static str,
}

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

        /// Reads an id as it prints (`
        #[doc = concat!($prefix, "7")]
        /// `) or as its bare number (`7`).
        impl FromStr for $name {
            type Err = ParseIdError;

            fn from_str(word: &str) -> Result<Self, ParseIdError> {
                let number = word.strip_prefix($prefix).unwrap_or(word);
                number.parse::<u64>().map(Self).map_err(|_| {
                    let kind = $prefix.trim_end_matches('-');
                    let article = if kind.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
                    ParseIdError { word: word.to_owned(), kind, article }
                })
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

    #[test]
    fn ids_read_as_they_print_or_as_their_number() {
        assert_eq!("task-7".parse(), Ok(TaskId::new(7)));
        assert_eq!("7".parse(), Ok(TaskId::new(7)));
        assert_eq!(
            "tenant-18446744073709551615".parse(),
            Ok(TenantId::new(u64::MAX))
        );
        for word in [
            "",
            "task-",
            "agent-7",
            "-1",
            "7 ",
            "task-18446744073709551616",
        ] {
            let error = word.parse::<TaskId>().unwrap_err();
            assert_eq!(
                error.to_string(),
                format!("{word:?} is not a task id: write task-N or N")
            );
        }
        let error = "x".parse::<AgentId>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "\"x\" is not an agent id: write agent-N or N"
        );
    }
}
