//! The capability matrix: what each agent can do, how fast, at what cost and
//! how reliably — the planners' view of a pool.

use std::collections::BTreeSet;

use crate::AgentId;
use crate::agent::{AgentStatus, Registry};
use crate::planning::PlanningError;

/// One agent as the planners see it: skills, speed, capacity, load, cost and
/// performance history.
///
/// Build it with [`PlanAgent::new`] and the setters; a
/// [`CapabilityMatrix`] checks every number when it takes the agent.
///
/// ```
/// use taskweave::AgentId;
/// use taskweave::planning::PlanAgent;
///
/// let analyst = PlanAgent::new(AgentId::new(7), ["research", "writing"])
///     .speed(2.0)
///     .capacity(3)
///     .cost(1.5)
///     .success_rate(0.9);
/// assert!(analyst.has_all(["research"]));
/// assert!(!analyst.has_all(["research", "statistics"]));
/// ```
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct PlanAgent {
    /// The agent.
    pub id: AgentId,
    /// Capabilities it has.
    pub capabilities: BTreeSet<String>,
    /// Work done per unit of time, relative to a reference agent of speed
    /// 1: a step estimated at 10 s takes 5 s on an agent of speed 2.
    pub speed: f64,
    /// Tasks it can hold at once.
    pub capacity: u32,
    /// Tasks it holds now.
    pub load: u32,
    /// Cost of one task on it.
    pub cost: f64,
    /// Share of its past tasks that succeeded, in `[0, 1]`.
    pub success_rate: f64,
}

impl PlanAgent {
    /// An agent with the given capabilities, speed 1, capacity 1, no load,
    /// cost 1 and a success rate of 1.
    pub fn new<I, S>(id: AgentId, capabilities: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        PlanAgent {
            id,
            capabilities: capabilities.into_iter().map(Into::into).collect(),
            speed: 1.0,
            capacity: 1,
            load: 0,
            cost: 1.0,
            success_rate: 1.0,
        }
    }

    /// Sets the speed.
    pub fn speed(mut self, speed: f64) -> Self {
        self.speed = speed;
        self
    }

    /// Sets the capacity.
    pub fn capacity(mut self, capacity: u32) -> Self {
        self.capacity = capacity;
        self
    }

    /// Sets the current load.
    pub fn load(mut self, load: u32) -> Self {
        self.load = load;
        self
    }

    /// Sets the cost of one task.
    pub fn cost(mut self, cost: f64) -> Self {
        self.cost = cost;
        self
    }

    /// Sets the success rate.
    pub fn success_rate(mut self, rate: f64) -> Self {
        self.success_rate = rate;
        self
    }

    /// Whether the agent has every one of `capabilities`.
    pub fn has_all<I, S>(&self, capabilities: I) -> bool
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        capabilities
            .into_iter()
            .all(|c| self.capabilities.contains(c.as_ref()))
    }

    /// Load as a share of capacity; 1 for an agent of capacity 0.
    pub fn utilization(&self) -> f64 {
        if self.capacity == 0 {
            1.0
        } else {
            f64::from(self.load) / f64::from(self.capacity)
        }
    }

    /// Time this agent needs for `work` estimated at speed 1: `work /
    /// speed`, saturating at [`Duration::MAX`](std::time::Duration::MAX)
    /// (a huge estimate on a very slow agent).
    pub fn time_for(&self, work: std::time::Duration) -> std::time::Duration {
        if self.speed == 1.0 {
            // Exact: the f64 detour would round long estimates.
            return work;
        }
        std::time::Duration::try_from_secs_f64(work.as_secs_f64() / self.speed)
            .unwrap_or(std::time::Duration::MAX)
    }

    fn check(&self) -> Result<(), PlanningError> {
        let invalid = |field: &'static str, value: f64| PlanningError::InvalidAgent {
            agent: self.id,
            field,
            value,
        };
        if !(self.speed.is_finite() && self.speed > 0.0) {
            return Err(invalid("speed", self.speed));
        }
        if !(self.cost.is_finite() && self.cost >= 0.0) {
            return Err(invalid("cost", self.cost));
        }
        if !(0.0..=1.0).contains(&self.success_rate) {
            return Err(invalid("success_rate", self.success_rate));
        }
        Ok(())
    }
}

/// The agents a plan is made for, each checked: a positive finite speed, a
/// finite non-negative cost, a success rate in `[0, 1]`, no id twice.
///
/// Order matters: it is the agent axis of a tensor built from a plan, and
/// planners break ties on it.
///
/// ```
/// use taskweave::AgentId;
/// use taskweave::planning::{CapabilityMatrix, PlanAgent, PlanningError};
///
/// let matrix = CapabilityMatrix::new([
///     PlanAgent::new(AgentId::new(1), ["design"]),
///     PlanAgent::new(AgentId::new(2), ["code", "test"]).speed(1.5),
/// ])?;
/// assert_eq!(matrix.len(), 2);
/// assert_eq!(matrix.capable(&["code"]).map(|a| a.id).collect::<Vec<_>>(), [AgentId::new(2)]);
///
/// let slow = CapabilityMatrix::new([PlanAgent::new(AgentId::new(3), ["x"]).speed(0.0)]);
/// assert!(matches!(slow, Err(PlanningError::InvalidAgent { field: "speed", .. })));
/// # Ok::<(), PlanningError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CapabilityMatrix {
    agents: Vec<PlanAgent>,
}

impl CapabilityMatrix {
    /// A matrix of `agents`, in the order given.
    ///
    /// # Errors
    ///
    /// [`PlanningError::InvalidAgent`] for a speed, cost or success rate out
    /// of range; [`PlanningError::DuplicateAgent`] for an id given twice.
    pub fn new(agents: impl IntoIterator<Item = PlanAgent>) -> Result<Self, PlanningError> {
        let agents: Vec<PlanAgent> = agents.into_iter().collect();
        let mut seen = BTreeSet::new();
        for agent in &agents {
            agent.check()?;
            if !seen.insert(agent.id) {
                return Err(PlanningError::DuplicateAgent(agent.id));
            }
        }
        Ok(CapabilityMatrix { agents })
    }

    /// The online agents of a registry, in registration order: their
    /// capabilities, capacity, load, cost per task and smoothed success
    /// rate, at speed 1 (the registry knows no speeds; set them with
    /// [`set_speed`](Self::set_speed)).
    pub fn from_registry(registry: &Registry) -> Self {
        let agents = registry
            .iter()
            .filter(|record| record.status() == AgentStatus::Online)
            .map(|record| {
                let profile = record.profile();
                PlanAgent::new(record.id(), profile.capabilities().iter().cloned())
                    .capacity(record.capacity())
                    .load(record.load())
                    .cost(profile.cost_per_task())
                    .success_rate(record.stats().smoothed_success_rate())
            })
            .collect();
        CapabilityMatrix { agents }
    }

    /// Sets the speed of one agent.
    ///
    /// # Errors
    ///
    /// [`PlanningError::UnknownPlanAgent`] if the agent is not in the
    /// matrix; [`PlanningError::InvalidAgent`] for a speed that is not
    /// finite and positive (the matrix is then unchanged).
    pub fn set_speed(&mut self, agent: AgentId, speed: f64) -> Result<(), PlanningError> {
        let entry = self
            .agents
            .iter_mut()
            .find(|a| a.id == agent)
            .ok_or(PlanningError::UnknownPlanAgent(agent))?;
        let updated = entry.clone().speed(speed);
        updated.check()?;
        *entry = updated;
        Ok(())
    }

    /// The agents, in order.
    pub fn agents(&self) -> &[PlanAgent] {
        &self.agents
    }

    /// The agent with this id.
    pub fn get(&self, agent: AgentId) -> Option<&PlanAgent> {
        self.agents.iter().find(|a| a.id == agent)
    }

    /// The position of an agent on the agent axis.
    pub fn position(&self, agent: AgentId) -> Option<usize> {
        self.agents.iter().position(|a| a.id == agent)
    }

    /// The agents having every one of `capabilities`, in order.
    pub fn capable<'a, S: AsRef<str>>(
        &'a self,
        capabilities: &'a [S],
    ) -> impl Iterator<Item = &'a PlanAgent> + 'a {
        self.agents
            .iter()
            .filter(move |a| a.has_all(capabilities.iter()))
    }

    /// The ids, in order: the agent axis of a tensor.
    pub fn ids(&self) -> Vec<AgentId> {
        self.agents.iter().map(|a| a.id).collect()
    }

    /// Number of agents.
    pub fn len(&self) -> usize {
        self.agents.len()
    }

    /// Whether there are no agents.
    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Instant;
    use crate::agent::AgentProfile;

    #[test]
    fn rejects_bad_numbers_and_duplicates() {
        let a = |id| PlanAgent::new(AgentId::new(id), ["x"]);
        let field = |agent: PlanAgent| match CapabilityMatrix::new([agent]) {
            Err(PlanningError::InvalidAgent { field, .. }) => field,
            other => panic!("expected InvalidAgent, got {other:?}"),
        };
        assert_eq!(field(a(1).speed(f64::NAN)), "speed");
        assert_eq!(field(a(1).speed(-1.0)), "speed");
        assert_eq!(field(a(1).cost(f64::INFINITY)), "cost");
        assert_eq!(field(a(1).success_rate(1.5)), "success_rate");
        assert_eq!(
            CapabilityMatrix::new([a(1), a(2), a(1)]),
            Err(PlanningError::DuplicateAgent(AgentId::new(1)))
        );
    }

    #[test]
    fn reads_a_registry_and_updates_speed() -> Result<(), crate::Error> {
        let mut registry = Registry::new();
        let profile = AgentProfile::builder()
            .capabilities(["a", "b"])
            .capacity(4)
            .cost_per_task(2.5)
            .build()?;
        registry.register(AgentId::new(9), profile.clone(), Instant::ZERO)?;
        registry.register(AgentId::new(3), profile, Instant::ZERO)?;
        registry.set_status(AgentId::new(3), AgentStatus::Draining)?;
        registry.set_load(AgentId::new(9), 1)?;
        let mut matrix = CapabilityMatrix::from_registry(&registry);
        assert_eq!(matrix.ids(), [AgentId::new(9)]);
        let agent = &matrix.agents()[0];
        assert_eq!((agent.capacity, agent.load, agent.cost), (4, 1, 2.5));
        assert_eq!(agent.success_rate, 0.5);
        assert_eq!(agent.utilization(), 0.25);
        matrix.set_speed(AgentId::new(9), 4.0)?;
        assert_eq!(
            matrix.agents()[0].time_for(std::time::Duration::from_secs(8)),
            std::time::Duration::from_secs(2)
        );
        assert!(matrix.set_speed(AgentId::new(9), 0.0).is_err());
        let long =
            std::time::Duration::from_secs(200 * 86_400) + std::time::Duration::from_nanos(1);
        assert_eq!(PlanAgent::new(AgentId::new(1), ["x"]).time_for(long), long);
        assert_eq!(matrix.agents()[0].speed, 4.0);
        assert_eq!(
            matrix.set_speed(AgentId::new(1), 1.0),
            Err(PlanningError::UnknownPlanAgent(AgentId::new(1)))
        );
        Ok(())
    }
}
