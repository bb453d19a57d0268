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
use std::sync::Arc;

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
///
/// Asking nothing (the default, and most tasks) costs nothing: the
/// constraints live behind one pointer that stays empty until the first
/// builder call, so an empty `TaskRequirements` is a single word that is
/// moved, compared and dropped without touching the heap. Constraints are
/// shared between clones (a builder call on a shared value copies them
/// first), so cloning one set for every task that asks it — what the
/// workflow engine does for each agent step — allocates nothing, and
/// comparing two clones looks no further than the pointer.
#[derive(Clone, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(from = "Constraints", into = "Constraints")
)]
pub struct TaskRequirements {
    constraints: Option<Arc<Constraints>>,
}

/// The constraints of a [`TaskRequirements`] that asks something; also its
/// serialized form.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename = "TaskRequirements")
)]
struct Constraints {
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

/// The constraints of a task that asks nothing.
static NOTHING: Constraints = Constraints {
    required: BTreeSet::new(),
    preferred: BTreeSet::new(),
    affinity_key: None,
    pinned: None,
    preferred_agent: None,
    avoided: BTreeSet::new(),
    excluded: BTreeSet::new(),
    labels: Vec::new(),
    kind: None,
};

impl Constraints {
    fn is_empty(&self) -> bool {
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
}

impl From<Constraints> for TaskRequirements {
    fn from(constraints: Constraints) -> Self {
        TaskRequirements {
            constraints: (!constraints.is_empty()).then(|| Arc::new(constraints)),
        }
    }
}

impl From<TaskRequirements> for Constraints {
    fn from(requirements: TaskRequirements) -> Self {
        requirements
            .constraints
            .map(Arc::unwrap_or_clone)
            .unwrap_or_default()
    }
}

impl PartialEq for TaskRequirements {
    fn eq(&self, other: &Self) -> bool {
        self.is_identical(other) || self.constraints() == other.constraints()
    }
}

impl Eq for TaskRequirements {}

impl std::hash::Hash for TaskRequirements {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.constraints().hash(state);
    }
}

impl std::fmt::Debug for TaskRequirements {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = self.constraints();
        f.debug_struct("TaskRequirements")
            .field("required", &c.required)
            .field("preferred", &c.preferred)
            .field("affinity_key", &c.affinity_key)
            .field("pinned", &c.pinned)
            .field("preferred_agent", &c.preferred_agent)
            .field("avoided", &c.avoided)
            .field("excluded", &c.excluded)
            .field("labels", &c.labels)
            .field("kind", &c.kind)
            .finish()
    }
}

impl TaskRequirements {
    /// No constraints: any available agent will do.
    pub fn new() -> Self {
        Self::default()
    }

    fn constraints(&self) -> &Constraints {
        self.constraints.as_deref().unwrap_or(&NOTHING)
    }

    fn constraints_mut(&mut self) -> &mut Constraints {
        Arc::make_mut(self.constraints.get_or_insert_default())
    }

    /// Adds hard capability requirements.
    pub fn require<I, S>(mut self, capabilities: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.constraints_mut()
            .required
            .extend(capabilities.into_iter().map(Into::into));
        self
    }

    /// Adds soft capability preferences.
    pub fn prefer<I, S>(mut self, capabilities: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.constraints_mut()
            .preferred
            .extend(capabilities.into_iter().map(Into::into));
        self
    }

    /// Sets the affinity key (for example a session or tenant id).
    pub fn affinity_key(mut self, key: impl Into<String>) -> Self {
        self.constraints_mut().affinity_key = Some(key.into());
        self
    }

    /// Pins the task to one agent (hard).
    pub fn pin(mut self, agent: AgentId) -> Self {
        self.constraints_mut().pinned = Some(agent);
        self
    }

    /// Prefers one agent (soft): it is chosen whenever it is eligible.
    pub fn prefer_agent(mut self, agent: AgentId) -> Self {
        self.constraints_mut().preferred_agent = Some(agent);
        self
    }

    /// Anti-affinity: never route to these agents.
    pub fn avoid(mut self, agents: impl IntoIterator<Item = AgentId>) -> Self {
        self.constraints_mut().avoided.extend(agents);
        self
    }

    /// Excludes agents (failover adds the agent that just failed the task).
    pub fn exclude(mut self, agents: impl IntoIterator<Item = AgentId>) -> Self {
        self.constraints_mut().excluded.extend(agents);
        self
    }

    /// Adds a label constraint.
    pub fn label(mut self, constraint: LabelConstraint) -> Self {
        self.constraints_mut().labels.push(constraint);
        self
    }

    /// Sets the task kind, the key under which adaptive strategies learn.
    pub fn kind(mut self, kind: impl Into<String>) -> Self {
        self.constraints_mut().kind = Some(kind.into());
        self
    }

    /// Whether `self` and `other` are known equal without comparing them:
    /// both ask nothing, or they share their constraints. `false` says
    /// nothing (they may still be equal).
    #[inline]
    pub(crate) fn is_identical(&self, other: &TaskRequirements) -> bool {
        match (&self.constraints, &other.constraints) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// Whether nothing at all is asked (the default): any available agent
    /// will do. Cheaper than comparing with `TaskRequirements::new()`.
    pub fn is_empty(&self) -> bool {
        self.constraints
            .as_deref()
            .is_none_or(Constraints::is_empty)
    }

    /// Required capability names.
    pub fn required(&self) -> &BTreeSet<String> {
        &self.constraints().required
    }

    /// Preferred capability names.
    pub fn preferred(&self) -> &BTreeSet<String> {
        &self.constraints().preferred
    }

    /// The affinity key, if any.
    pub fn affinity(&self) -> Option<&str> {
        self.constraints().affinity_key.as_deref()
    }

    /// The pinned agent, if any.
    pub fn pinned(&self) -> Option<AgentId> {
        self.constraints().pinned
    }

    /// The preferred agent, if any.
    pub fn preferred_agent(&self) -> Option<AgentId> {
        self.constraints().preferred_agent
    }

    /// Agents under anti-affinity.
    pub fn avoided(&self) -> &BTreeSet<AgentId> {
        &self.constraints().avoided
    }

    /// Excluded agents.
    pub fn excluded(&self) -> &BTreeSet<AgentId> {
        &self.constraints().excluded
    }

    /// Label constraints.
    pub fn labels(&self) -> &[LabelConstraint] {
        &self.constraints().labels
    }

    /// The task kind, if any.
    pub fn task_kind(&self) -> Option<&str> {
        self.constraints().kind.as_deref()
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

    #[test]
    fn asking_for_nothing_explicitly_equals_the_default() {
        use std::hash::{BuildHasher, RandomState};
        let none: [&str; 0] = [];
        let explicit = TaskRequirements::new().require(none).avoid([]);
        assert!(explicit.is_empty());
        assert_eq!(explicit, TaskRequirements::new());
        let state = RandomState::new();
        assert_eq!(
            state.hash_one(&explicit),
            state.hash_one(TaskRequirements::new())
        );
        assert_eq!(
            std::mem::size_of::<TaskRequirements>(),
            std::mem::size_of::<usize>()
        );
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serializes_as_its_constraints_whether_empty_or_not() {
        let empty = serde_json::to_string(&TaskRequirements::new()).unwrap();
        assert!(empty.starts_with("{\"required\":[]"), "{empty}");
        let back: TaskRequirements = serde_json::from_str(&empty).unwrap();
        assert!(back.is_empty() && back.constraints.is_none());
        let gpu = TaskRequirements::new().require(["gpu"]).kind("train");
        let json = serde_json::to_string(&gpu).unwrap();
        assert_eq!(
            serde_json::from_str::<TaskRequirements>(&json).unwrap(),
            gpu
        );
    }
}
