use super::{Candidates, ResolvedRequirements, RoutingError, RoutingStrategy, highest_scoring};
use crate::AgentId;
use crate::agent::AgentRecord;

/// Weights of the four factors of [`Scored`].
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ScoreWeights {
    /// Share of preferred capabilities the agent has (1 when none are preferred).
    pub skill: f64,
    /// Free share of the agent's slots: `1 − load / capacity`.
    pub availability: f64,
    /// Smoothed success rate of the agent's history (0.5 without history).
    pub performance: f64,
    /// Cheapness: `1 / (1 + cost per task)`.
    pub cost: f64,
}

impl Default for ScoreWeights {
    /// 0.4 skill, 0.3 availability, 0.2 performance, 0.1 cost.
    fn default() -> Self {
        ScoreWeights {
            skill: 0.4,
            availability: 0.3,
            performance: 0.2,
            cost: 0.1,
        }
    }
}

/// Multi-factor scoring: each eligible agent gets
/// `skill·w₁ + availability·w₂ + performance·w₃ + cost·w₄` (every factor in
/// `[0, 1]`, see [`ScoreWeights`]) and the highest score wins; ties go to the
/// agent registered first. Costs `O(n)` per pick.
///
/// ```
/// use taskweave::routing::{ScoreWeights, Scored};
///
/// let cheap_first = Scored::with_weights(ScoreWeights { cost: 1.0, ..ScoreWeights::default() })?;
/// assert!(Scored::with_weights(ScoreWeights { skill: -1.0, ..ScoreWeights::default() }).is_err());
/// # let _ = cheap_first;
/// # Ok::<(), taskweave::routing::RoutingError>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Scored {
    weights: ScoreWeights,
}

impl Scored {
    /// Scoring with the default weights (0.4 / 0.3 / 0.2 / 0.1).
    pub fn new() -> Self {
        Self::default()
    }

    /// Scoring with custom weights.
    ///
    /// # Errors
    ///
    /// [`RoutingError::InvalidParameter`] if a weight is negative or not
    /// finite, or if they sum to zero.
    pub fn with_weights(weights: ScoreWeights) -> Result<Self, RoutingError> {
        let named = [
            ("skill weight", weights.skill),
            ("availability weight", weights.availability),
            ("performance weight", weights.performance),
            ("cost weight", weights.cost),
        ];
        if let Some(&(parameter, value)) = named.iter().find(|(_, w)| !(w.is_finite() && *w >= 0.0))
        {
            return Err(RoutingError::InvalidParameter { parameter, value });
        }
        let sum: f64 = named.iter().map(|(_, w)| w).sum();
        if sum <= 0.0 {
            return Err(RoutingError::InvalidParameter {
                parameter: "sum of score weights",
                value: sum,
            });
        }
        Ok(Scored { weights })
    }

    /// The weights in use.
    pub fn weights(&self) -> ScoreWeights {
        self.weights
    }

    /// The score of `record` for a task with `requirements`.
    pub fn score(&self, requirements: &ResolvedRequirements, record: &AgentRecord) -> f64 {
        let skill = match requirements.preferred_total() {
            0 => 1.0,
            total => {
                record
                    .capabilities()
                    .intersection_len(requirements.preferred()) as f64
                    / total as f64
            }
        };
        let availability = 1.0 - record.utilization();
        let performance = record.stats().smoothed_success_rate();
        let cost = 1.0 / (1.0 + record.profile().cost_per_task());
        let w = &self.weights;
        w.skill * skill
            + w.availability * availability
            + w.performance * performance
            + w.cost * cost
    }
}

impl RoutingStrategy for Scored {
    fn select(&mut self, candidates: &Candidates<'_>) -> Option<AgentId> {
        let requirements = candidates.requirements();
        highest_scoring(candidates.iter(), |record| self.score(requirements, record))
            .map(AgentRecord::id)
    }

    fn learns(&self) -> bool {
        false
    }
}
