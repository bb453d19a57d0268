//! Requirements resolved against a registry's interners.

use crate::agent::{Registry, label_token};
use crate::capability::CapabilitySet;
use crate::hash::fnv1a;
use crate::{AgentId, LabelConstraint, TaskRequirements};

use super::RoutingError;

/// [`TaskRequirements`] compiled into bitsets for one [`Registry`].
///
/// Resolve once per task with [`ResolvedRequirements::new`], route as often
/// as needed with [`route_resolved`](super::route_resolved). The interners only grow, so a resolved
/// value stays valid for the registry's lifetime; resolving again is needed
/// only after an error about a capability or label nobody had.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ResolvedRequirements {
    required: CapabilitySet,
    preferred: CapabilitySet,
    preferred_total: usize,
    labels_required: CapabilitySet,
    labels_forbidden: CapabilitySet,
    labels_any_of: Vec<CapabilitySet>,
    affinity: Option<u64>,
    pinned: Option<AgentId>,
    preferred_agent: Option<AgentId>,
    avoided: Vec<AgentId>,
    kind: Option<String>,
    /// Whether a name was left out because the registry did not know it
    /// (see [`is_partial`](Self::is_partial)). Derived when resolved.
    #[cfg_attr(feature = "serde", serde(skip))]
    partial: bool,
}

impl ResolvedRequirements {
    /// Whether resolving left out a name the registry did not know: a
    /// preferred capability, or a label value under `NotEquals` or
    /// `OneOf`. Such a resolution describes the task only while no agent
    /// brings that name; resolve again after the registry learns names.
    /// A resolution that is not partial stays valid for the registry's
    /// lifetime (its interners only grow).
    pub fn is_partial(&self) -> bool {
        self.partial
    }

    /// Required capabilities.
    pub fn required(&self) -> &CapabilitySet {
        &self.required
    }

    /// Preferred capabilities that some agent has.
    pub fn preferred(&self) -> &CapabilitySet {
        &self.preferred
    }

    /// Number of preferred capability names, known or not.
    pub fn preferred_total(&self) -> usize {
        self.preferred_total
    }

    /// Stable 64-bit hash of the affinity key, if any.
    pub fn affinity_hash(&self) -> Option<u64> {
        self.affinity
    }

    /// The pinned agent, if any.
    pub fn pinned(&self) -> Option<AgentId> {
        self.pinned
    }

    /// The preferred agent, if any.
    pub fn preferred_agent(&self) -> Option<AgentId> {
        self.preferred_agent
    }

    /// The task kind, if any.
    pub fn kind(&self) -> Option<&str> {
        self.kind.as_deref()
    }

    /// Whether the agent is excluded or under anti-affinity.
    pub fn avoids(&self, agent: AgentId) -> bool {
        self.avoided.binary_search(&agent).is_ok()
    }

    /// A copy that also avoids `agent` (failover prefers another agent).
    pub(crate) fn also_avoiding(&self, agent: AgentId) -> Self {
        let mut copy = self.clone();
        if let Err(at) = copy.avoided.binary_search(&agent) {
            copy.avoided.insert(at, agent);
        }
        copy
    }

    /// Whether an agent with these capabilities and label tokens satisfies
    /// the capability and label constraints.
    #[inline]
    pub(crate) fn matches(&self, capabilities: &CapabilitySet, labels: &CapabilitySet) -> bool {
        // Most requirements name no label: skip the label sets then.
        capabilities.is_superset(&self.required)
            && (self.labels_unconstrained() || self.labels_match(labels))
    }

    /// Whether no label constraint applies.
    #[inline]
    fn labels_unconstrained(&self) -> bool {
        self.labels_required.is_empty()
            && self.labels_forbidden.is_empty()
            && self.labels_any_of.is_empty()
    }

    /// The label part of [`matches`](Self::matches).
    fn labels_match(&self, labels: &CapabilitySet) -> bool {
        labels.is_superset(&self.labels_required)
            && !labels.intersects(&self.labels_forbidden)
            && self.labels_any_of.iter().all(|any| labels.intersects(any))
    }
}

impl ResolvedRequirements {
    /// Compiles `requirements` against `registry`'s capability and label
    /// names.
    ///
    /// ```
    /// use taskweave::agent::{AgentProfile, Registry};
    /// use taskweave::routing::{ResolvedRequirements, RoutingError};
    /// use taskweave::{AgentId, Instant, TaskRequirements};
    ///
    /// let mut registry = Registry::new();
    /// let profile = AgentProfile::builder().capabilities(["gpu"]).build()?;
    /// registry.register(AgentId::new(1), profile, Instant::ZERO)?;
    /// let gpu = ResolvedRequirements::new(&registry, &TaskRequirements::new().require(["gpu"]))?;
    /// assert!(gpu.servable_by(&registry));
    /// assert!(matches!(
    ///     ResolvedRequirements::new(&registry, &TaskRequirements::new().require(["tpu"])),
    ///     Err(RoutingError::UnknownCapability { .. })
    /// ));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// * [`RoutingError::UnknownCapability`]: a required capability no agent
    ///   ever registered with — the task is unroutable until one does;
    /// * [`RoutingError::UnknownLabel`]: an `Equals` or `OneOf` label
    ///   constraint that no agent's labels could ever satisfy.
    pub fn new(
        registry: &Registry,
        requirements: &TaskRequirements,
    ) -> Result<ResolvedRequirements, RoutingError> {
        let required = registry
            .capabilities()
            .lookup_all(requirements.required())
            .map_err(|name| RoutingError::UnknownCapability {
                capability: name.clone(),
            })?;
        let preferred: CapabilitySet = requirements
            .preferred()
            .iter()
            .filter_map(|name| registry.capabilities().lookup(name))
            .collect();
        let labels = registry.label_interner();
        let lookup = |key: &str, value: &str| labels.lookup(&label_token(key, value));
        let mut labels_required = CapabilitySet::new();
        let mut labels_forbidden = CapabilitySet::new();
        let mut labels_any_of = Vec::new();
        let mut partial = preferred.len() < requirements.preferred().len();
        for constraint in requirements.labels() {
            let unknown = || RoutingError::UnknownLabel {
                constraint: constraint.clone(),
            };
            match constraint {
                LabelConstraint::Equals { key, value } => {
                    labels_required.insert(lookup(key, value).ok_or_else(unknown)?);
                }
                LabelConstraint::NotEquals { key, value } => match lookup(key, value) {
                    Some(id) => {
                        labels_forbidden.insert(id);
                    }
                    None => partial = true,
                },
                LabelConstraint::OneOf { key, values } => {
                    let any: CapabilitySet = values.iter().filter_map(|v| lookup(key, v)).collect();
                    if any.is_empty() {
                        return Err(unknown());
                    }
                    partial |= any.len() < values.len();
                    labels_any_of.push(any);
                }
            }
        }
        // The union of two sorted sets is sorted and duplicate-free.
        let avoided: Vec<AgentId> = requirements
            .avoided()
            .union(requirements.excluded())
            .copied()
            .collect();
        Ok(ResolvedRequirements {
            required,
            preferred,
            preferred_total: requirements.preferred().len(),
            labels_required,
            labels_forbidden,
            labels_any_of,
            affinity: requirements.affinity().map(|key| fnv1a(key.as_bytes())),
            pinned: requirements.pinned(),
            preferred_agent: requirements.preferred_agent(),
            avoided,
            kind: requirements.task_kind().map(str::to_owned),
            partial,
        })
    }

    /// Whether some online agent of `registry` satisfies the capability,
    /// label and pinning constraints, free slot or not: `false` means the
    /// task is unroutable, not merely waiting for a busy agent. Exclusions
    /// are not considered. Costs `O(c)` for `c` agent classes.
    pub fn servable_by(&self, registry: &Registry) -> bool {
        match self.pinned() {
            Some(agent) => registry.get(agent).is_some_and(|record| {
                record.status() == crate::agent::AgentStatus::Online
                    && self.matches(record.capabilities(), record.labels())
            }),
            None => registry.availability().classes().any(|class| {
                class.has_online() && self.matches(class.capabilities(), class.labels())
            }),
        }
    }
}
