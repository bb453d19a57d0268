//! What an agent can do and how much of it.

use std::collections::{BTreeMap, BTreeSet};

use thiserror::Error;

/// Why an [`AgentProfileBuilder`] refused to build.
#[derive(Clone, Debug, PartialEq, Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// Capacity must allow at least one concurrent task.
    #[error("capacity must be at least 1, got {0}")]
    ZeroCapacity(u32),
    /// Weight must be at least 1 (weighted strategies divide by it).
    #[error("weight must be at least 1, got {0}")]
    ZeroWeight(u32),
    /// Cost per task must be finite and non-negative.
    #[error("cost per task must be finite and non-negative, got {0}")]
    InvalidCost(f64),
    /// A capability name was empty.
    #[error("capability names must not be empty")]
    EmptyCapability,
    /// A label key was empty.
    #[error("label keys must not be empty")]
    EmptyLabelKey,
    /// The same label key was given two different values.
    #[error("label {key:?} given twice: {first:?} and {second:?}")]
    ConflictingLabel {
        /// The label key.
        key: String,
        /// The value given first.
        first: String,
        /// The value given later.
        second: String,
    },
}

/// An agent's static description: capabilities, capacity, weight, priority,
/// cost and labels. Built and validated by [`AgentProfile::builder`].
///
/// ```
/// use taskweave::agent::{AgentProfile, ProfileError};
///
/// let profile = AgentProfile::builder()
///     .capabilities(["gpu", "python"])
///     .capacity(4)
///     .weight(2)
///     .priority(10)
///     .cost_per_task(0.25)
///     .label("zone", "eu")
///     .build()?;
/// assert_eq!(profile.capacity(), 4);
///
/// let err = AgentProfile::builder().capacity(0).build().unwrap_err();
/// assert_eq!(err, ProfileError::ZeroCapacity(0));
/// # Ok::<(), ProfileError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "AgentProfileBuilder"))]
pub struct AgentProfile {
    capabilities: BTreeSet<String>,
    capacity: u32,
    weight: u32,
    priority: u32,
    cost_per_task: f64,
    labels: BTreeMap<String, String>,
}

impl AgentProfile {
    /// A builder with capacity 1, weight 1, priority 0, cost 0 and nothing else.
    pub fn builder() -> AgentProfileBuilder {
        AgentProfileBuilder::default()
    }

    /// Capability names.
    pub fn capabilities(&self) -> &BTreeSet<String> {
        &self.capabilities
    }

    /// Maximum number of concurrent tasks (at least 1).
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Relative share for weighted strategies (at least 1).
    pub fn weight(&self) -> u32 {
        self.weight
    }

    /// Preference among agents: `PriorityBased` routing picks the highest.
    pub fn priority(&self) -> u32 {
        self.priority
    }

    /// Cost of one task on this agent, in host units (finite, ≥ 0).
    pub fn cost_per_task(&self) -> f64 {
        self.cost_per_task
    }

    /// Labels, such as `zone = eu`.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.labels
    }
}

impl TryFrom<AgentProfileBuilder> for AgentProfile {
    type Error = ProfileError;

    fn try_from(builder: AgentProfileBuilder) -> Result<Self, ProfileError> {
        builder.build()
    }
}

/// Builder of [`AgentProfile`]; [`build`](Self::build) validates.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default))]
pub struct AgentProfileBuilder {
    capabilities: Vec<String>,
    capacity: u32,
    weight: u32,
    priority: u32,
    cost_per_task: f64,
    #[cfg_attr(feature = "serde", serde(skip))]
    label_list: Vec<(String, String)>,
    labels: BTreeMap<String, String>,
}

impl Default for AgentProfileBuilder {
    fn default() -> Self {
        AgentProfileBuilder {
            capabilities: Vec::new(),
            capacity: 1,
            weight: 1,
            priority: 0,
            cost_per_task: 0.0,
            label_list: Vec::new(),
            labels: BTreeMap::new(),
        }
    }
}

impl AgentProfileBuilder {
    /// Adds one capability.
    pub fn capability(mut self, name: impl Into<String>) -> Self {
        self.capabilities.push(name.into());
        self
    }

    /// Adds several capabilities.
    pub fn capabilities<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.capabilities.extend(names.into_iter().map(Into::into));
        self
    }

    /// Maximum concurrent tasks; must be at least 1.
    pub fn capacity(mut self, capacity: u32) -> Self {
        self.capacity = capacity;
        self
    }

    /// Relative weight; must be at least 1.
    pub fn weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }

    /// Agent priority; higher is preferred by `PriorityBased` routing.
    pub fn priority(mut self, priority: u32) -> Self {
        self.priority = priority;
        self
    }

    /// Cost of one task; must be finite and non-negative.
    pub fn cost_per_task(mut self, cost: f64) -> Self {
        self.cost_per_task = cost;
        self
    }

    /// Adds a label; giving one key two different values is an error.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.label_list.push((key.into(), value.into()));
        self
    }

    /// Validates and builds the profile.
    ///
    /// # Errors
    ///
    /// [`ProfileError`] names the first invalid field: zero capacity or
    /// weight, a negative or non-finite cost, an empty capability name or
    /// label key, or one label key with two values.
    pub fn build(self) -> Result<AgentProfile, ProfileError> {
        if self.capacity == 0 {
            return Err(ProfileError::ZeroCapacity(self.capacity));
        }
        if self.weight == 0 {
            return Err(ProfileError::ZeroWeight(self.weight));
        }
        if !self.cost_per_task.is_finite() || self.cost_per_task < 0.0 {
            return Err(ProfileError::InvalidCost(self.cost_per_task));
        }
        if self.capabilities.iter().any(String::is_empty) {
            return Err(ProfileError::EmptyCapability);
        }
        let mut labels = self.labels;
        for (key, value) in self.label_list {
            if key.is_empty() {
                return Err(ProfileError::EmptyLabelKey);
            }
            match labels.get(&key) {
                Some(first) if *first != value => {
                    return Err(ProfileError::ConflictingLabel {
                        first: first.clone(),
                        key,
                        second: value,
                    });
                }
                _ => {
                    labels.insert(key, value);
                }
            }
        }
        if labels.contains_key("") {
            return Err(ProfileError::EmptyLabelKey);
        }
        Ok(AgentProfile {
            capabilities: self.capabilities.into_iter().collect(),
            capacity: self.capacity,
            weight: self.weight,
            priority: self.priority,
            cost_per_task: self.cost_per_task,
            labels,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let p = AgentProfile::builder().build().unwrap();
        assert_eq!((p.capacity(), p.weight(), p.priority()), (1, 1, 0));
        assert_eq!(p.cost_per_task(), 0.0);
        assert!(p.capabilities().is_empty() && p.labels().is_empty());
    }

    #[test]
    fn every_invalid_field_has_its_error() {
        let b = AgentProfile::builder;
        assert_eq!(b().capacity(0).build(), Err(ProfileError::ZeroCapacity(0)));
        assert_eq!(b().weight(0).build(), Err(ProfileError::ZeroWeight(0)));
        assert_eq!(
            b().cost_per_task(-1.0).build(),
            Err(ProfileError::InvalidCost(-1.0))
        );
        assert!(matches!(
            b().cost_per_task(f64::NAN).build(),
            Err(ProfileError::InvalidCost(c)) if c.is_nan()
        ));
        assert_eq!(
            b().cost_per_task(f64::INFINITY).build(),
            Err(ProfileError::InvalidCost(f64::INFINITY))
        );
        assert_eq!(
            b().capability("").build(),
            Err(ProfileError::EmptyCapability)
        );
        assert_eq!(b().label("", "x").build(), Err(ProfileError::EmptyLabelKey));
        assert_eq!(
            b().label("zone", "eu").label("zone", "us").build(),
            Err(ProfileError::ConflictingLabel {
                key: "zone".into(),
                first: "eu".into(),
                second: "us".into()
            })
        );
    }

    #[test]
    fn repeated_identical_label_and_capability_are_merged() {
        let p = AgentProfile::builder()
            .capabilities(["a", "b", "a"])
            .label("zone", "eu")
            .label("zone", "eu")
            .build()
            .unwrap();
        assert_eq!(p.capabilities().len(), 2);
        assert_eq!(p.labels().get("zone").map(String::as_str), Some("eu"));
    }

    #[test]
    fn error_messages_are_lowercase_and_carry_data() {
        let msg = ProfileError::ZeroCapacity(0).to_string();
        assert!(msg.starts_with("capacity") && msg.contains('0'));
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serde_round_trip_validates() {
        let p = AgentProfile::builder()
            .capabilities(["gpu"])
            .capacity(3)
            .label("zone", "eu")
            .build()
            .unwrap();
        let json = serde_json::to_string(&p).unwrap();
        let back: AgentProfile = serde_json::from_str(&json).unwrap();
        assert_eq!(back, p);
        let bad = json.replace("\"capacity\":3", "\"capacity\":0");
        let err = serde_json::from_str::<AgentProfile>(&bad).unwrap_err();
        assert!(
            err.to_string().contains("capacity must be at least 1"),
            "{err}"
        );
    }
}
