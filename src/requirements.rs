//! What a task asks of the agent that runs it.
//!
//! [`TaskRequirements`] is the host-facing description, with capability and
//! label names as strings so it can travel in protocol messages and journals.
//! A [`Registry`](crate::agent::Registry) resolves it once into a
//! [`ResolvedRequirements`](crate::routing::ResolvedRequirements) of bitsets
//! before routing.
//!
//! | constraint | kind | meaning |
//! |---|---|---|
//! | [`require`](TaskRequirements::require) | hard | the agent has every one of these capabilities |
//! | [`prefer`](TaskRequirements::prefer) | soft | strategies that score skills favour agents with more of these |
//! | [`affinity_key`](TaskRequirements::affinity_key) | soft | `Rendezvous` sends equal keys to the same agent |
//! | [`pin`](TaskRequirements::pin) | hard | only this agent may run the task |
//! | [`prefer_agent`](TaskRequirements::prefer_agent) | soft | this agent wins whenever it is eligible |
//! | [`avoid`](TaskRequirements::avoid) | hard | anti-affinity: never these agents |
//! | [`exclude`](TaskRequirements::exclude) | hard | never these agents (failover uses it for the agent that just failed) |
//! | [`label`](TaskRequirements::label) | hard | label constraints such as `zone = eu` |
//!
//! ```
//! use taskweave::{AgentId, LabelConstraint, TaskRequirements};
//!
//! let needs = TaskRequirements::new()
//!     .require(["gpu", "python"])
//!     .prefer(["cuda-12"])
//!     .label(LabelConstraint::equals("zone", "eu"))
//!     .exclude([AgentId::new(3)])
//!     .kind("train");
//! assert_eq!(needs.required().len(), 2);
//! ```

use std::collections::BTreeSet;

use crate::AgentId;

/// A constraint on an agent's labels (its `key = value` pairs).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum LabelConstraint {
    /// The agent has label `key` with exactly this value.
    Equals {
        /// Label key.
        key: String,
        /// Required value.
        value: String,
    },
    /// The agent does not have label `key` with this value (a missing key passes).
    NotEquals {
        /// Label key.
        key: String,
        /// Forbidden value.
        value: String,
    },
    /// The agent has label `key` with one of these values.
    OneOf {
        /// Label key.
        key: String,
        /// Accepted values; an empty list accepts no agent.
        values: Vec<String>,
    },
}

impl LabelConstraint {
    /// `key = value`.
    pub fn equals(key: impl Into<String>, value: impl Into<String>) -> Self {
        LabelConstraint::Equals {
            key: key.into(),
            value: value.into(),
        }
    }

    /// `key != value`.
    pub fn not_equals(key: impl Into<String>, value: impl Into<String>) -> Self {
        LabelConstraint::NotEquals {
            key: key.into(),
            value: value.into(),
        }
    }

    /// `key in values`.
    pub fn one_of<I, S>(key: impl Into<String>, values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        LabelConstraint::OneOf {
            key: key.into(),
            values: values.into_iter().map(Into::into).collect(),
        }
    }
}

/// Everything a task asks of its agent; see the [module docs](self).
///
/// Built with chained calls. Capability names and agent lists are sets
/// (sorted, without duplicates); label constraints keep their order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TaskRequirements {
    required: BTreeSet<String>,
    preferred: BTreeSet<String>,
    affinity_key: Option<String>,
    pinned: Option<AgentId>,
    preferred_agent: Option<AgentId>,
    avoided: BTreeSet<AgentId>,
    excluded: BTreeSet<AgentId>,
    labels: Vec<LabelConstraint>,
    kind: Option<String>,
}

impl TaskRequirements {
    /// No constraints: any available agent will do.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds hard capability requirements.
    pub fn require<I, S>(mut self, capabilities: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.required
            .extend(capabilities.into_iter().map(Into::into));
        self
    }

    /// Adds soft capability preferences.
    pub fn prefer<I, S>(mut self, capabilities: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.preferred
            .extend(capabilities.into_iter().map(Into::into));
        self
    }

    /// Sets the affinity key (for example a session or tenant id).
    pub fn affinity_key(mut self, key: impl Into<String>) -> Self {
        self.affinity_key = Some(key.into());
        self
    }

    /// Pins the task to one agent (hard).
    pub fn pin(mut self, agent: AgentId) -> Self {
        self.pinned = Some(agent);
        self
    }

    /// Prefers one agent (soft): it is chosen whenever it is eligible.
    pub fn prefer_agent(mut self, agent: AgentId) -> Self {
        self.preferred_agent = Some(agent);
        self
    }

    /// Anti-affinity: never route to these agents.
    pub fn avoid(mut self, agents: impl IntoIterator<Item = AgentId>) -> Self {
        self.avoided.extend(agents);
        self
    }

    /// Excludes agents (failover adds the agent that just failed the task).
    pub fn exclude(mut self, agents: impl IntoIterator<Item = AgentId>) -> Self {
        self.excluded.extend(agents);
        self
    }

    /// Adds a label constraint.
    pub fn label(mut self, constraint: LabelConstraint) -> Self {
        self.labels.push(constraint);
        self
    }

    /// Sets the task kind, the key under which adaptive strategies learn.
    pub fn kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = Some(kind.into());
        self
    }

    /// Whether nothing at all is asked (the default): any available agent
    /// will do. Cheaper than comparing with `TaskRequirements::new()`.
    pub fn is_empty(&self) -> bool {
        self.required.is_empty()
            && self.preferred.is_empty()
            && self.affinity_key.is_none()
            && self.pinned.is_none()
            && self.preferred_agent.is_none()
            && self.avoided.is_empty()
            && self.excluded.is_empty()
            && self.labels.is_empty()
            && self.kind.is_none()
    }

    /// Required capability names.
    pub fn required(&self) -> &BTreeSet<String> {
        &self.required
    }

    /// Preferred capability names.
    pub fn preferred(&self) -> &BTreeSet<String> {
        &self.preferred
    }

    /// The affinity key, if any.
    pub fn affinity(&self) -> Option<&str> {
        self.affinity_key.as_deref()
    }

    /// The pinned agent, if any.
    pub fn pinned(&self) -> Option<AgentId> {
        self.pinned
    }

    /// The preferred agent, if any.
    pub fn preferred_agent(&self) -> Option<AgentId> {
        self.preferred_agent
    }

    /// Agents under anti-affinity.
    pub fn avoided(&self) -> &BTreeSet<AgentId> {
        &self.avoided
    }

    /// Excluded agents.
    pub fn excluded(&self) -> &BTreeSet<AgentId> {
        &self.excluded
    }

    /// Label constraints.
    pub fn labels(&self) -> &[LabelConstraint] {
        &self.labels
    }

    /// The task kind, if any.
    pub fn task_kind(&self) -> Option<&str> {
        self.kind.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_default_is_empty() {
        assert!(TaskRequirements::new().is_empty());
        let asks = [
            TaskRequirements::new().require(["a"]),
            TaskRequirements::new().prefer(["a"]),
            TaskRequirements::new().affinity_key("k"),
            TaskRequirements::new().pin(AgentId::new(1)),
            TaskRequirements::new().prefer_agent(AgentId::new(1)),
            TaskRequirements::new().avoid([AgentId::new(1)]),
            TaskRequirements::new().exclude([AgentId::new(1)]),
            TaskRequirements::new().label(LabelConstraint::equals("zone", "eu")),
            TaskRequirements::new().kind("k"),
        ];
        for ask in asks {
            assert!(!ask.is_empty(), "{ask:?}");
        }
    }
}
