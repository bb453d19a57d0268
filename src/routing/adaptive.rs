use std::collections::HashMap;
use std::time::Duration;

use super::{Candidates, Feedback, RoutingError, RoutingStrategy, highest_scoring, prune_departed};
use crate::AgentId;
use crate::agent::AgentRecord;
use crate::hash::IdMap;

/// What [`Adaptive`] has learned about one agent for one task kind.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ArmEstimate {
    /// Outcomes observed.
    pub observations: u64,
    /// Successful share of them.
    pub success_rate: f64,
    /// Mean latency.
    pub mean_latency: Duration,
    /// Mean reward in `[0, 1]` (see [`Adaptive`]).
    pub mean_reward: f64,
}

#[derive(Clone, Copy, Debug, Default)]
struct Arm {
    observations: u64,
    successes: u64,
    latency_secs: f64,
    reward: f64,
}

#[derive(Clone, Debug, Default)]
struct KindStats {
    observations: u64,
    arms: IdMap<AgentId, Arm>,
}

/// Learns which agents do best at each task kind, with the UCB1 bandit rule.
///
/// Every outcome fed to [`observe`](RoutingStrategy::observe) becomes a
/// reward in `[0, 1]`: 0 for a failure, `target / (target + latency)` for a
/// success (1 when instant, ½ at the target latency). Per task kind (see
/// [`TaskRequirements::kind`](crate::TaskRequirements::kind)) an agent's
/// score is `mean reward + c · √(ln N / nᵢ)`, where `N` counts the kind's
/// outcomes and `nᵢ` the agent's; agents never tried for the kind go first
/// (in registration order). The exploration term shrinks as evidence grows,
/// so the strategy settles on the best agents while still probing the rest
/// now and then. Deterministic: no randomness. Costs `O(n)` per pick.
///
/// ```
/// use std::time::Duration;
/// use taskweave::agent::{AgentProfile, Outcome, Registry};
/// use taskweave::routing::{Adaptive, Feedback, RoutingStrategy};
/// use taskweave::{AgentId, Instant, TaskRequirements};
///
/// let mut registry = Registry::new();
/// for id in 1..=2 {
///     registry.register(AgentId::new(id), AgentProfile::builder().capacity(8).build()?, Instant::ZERO)?;
/// }
/// let mut adaptive = Adaptive::new();
/// let task = TaskRequirements::new().kind("summarize");
/// for _ in 0..50 {
///     let agent = registry.route(&mut adaptive, &task)?;
///     // Agent 2 always fails at summaries.
///     let success = agent == AgentId::new(1);
///     let outcome = Outcome { success, latency: Duration::from_millis(100) };
///     adaptive.observe(&Feedback { agent, kind: Some("summarize"), outcome });
/// }
/// let good = adaptive.estimate(Some("summarize"), AgentId::new(1)).unwrap();
/// let bad = adaptive.estimate(Some("summarize"), AgentId::new(2)).unwrap();
/// assert!(good.observations > 4 * bad.observations);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Adaptive {
    exploration: f64,
    latency_target: Duration,
    unkinded: KindStats,
    kinds: HashMap<String, KindStats>,
}

impl Adaptive {
    /// Default exploration constant `c` (√2, the classic UCB1 value).
    pub const DEFAULT_EXPLORATION: f64 = std::f64::consts::SQRT_2;
    /// Default latency at which a success is worth half a perfect one.
    pub const DEFAULT_LATENCY_TARGET: Duration = Duration::from_secs(1);

    /// UCB1 with the default exploration and latency target.
    pub fn new() -> Self {
        Adaptive {
            exploration: Self::DEFAULT_EXPLORATION,
            latency_target: Self::DEFAULT_LATENCY_TARGET,
            unkinded: KindStats::default(),
            kinds: HashMap::new(),
        }
    }

    /// UCB1 with exploration constant `c` and a latency target.
    ///
    /// # Errors
    ///
    /// [`RoutingError::InvalidParameter`] if `c` is negative or not finite,
    /// or the latency target is zero.
    pub fn with_parameters(
        exploration: f64,
        latency_target: Duration,
    ) -> Result<Self, RoutingError> {
        if !(exploration.is_finite() && exploration >= 0.0) {
            return Err(RoutingError::InvalidParameter {
                parameter: "adaptive exploration",
                value: exploration,
            });
        }
        if latency_target.is_zero() {
            return Err(RoutingError::InvalidParameter {
                parameter: "adaptive latency target (seconds)",
                value: 0.0,
            });
        }
        Ok(Adaptive {
            exploration,
            latency_target,
            ..Self::new()
        })
    }

    /// What has been learned about `agent` for `kind`, if it was observed.
    pub fn estimate(&self, kind: Option<&str>, agent: AgentId) -> Option<ArmEstimate> {
        let arm = self.stats(kind)?.arms.get(&agent)?;
        let n = arm.observations as f64;
        Some(ArmEstimate {
            observations: arm.observations,
            success_rate: arm.successes as f64 / n,
            mean_latency: Duration::from_secs_f64(arm.latency_secs / n),
            mean_reward: arm.reward / n,
        })
    }

    fn stats(&self, kind: Option<&str>) -> Option<&KindStats> {
        match kind {
            None => Some(&self.unkinded),
            Some(kind) => self.kinds.get(kind),
        }
    }

    fn upper_confidence_bound(&self, stats: Option<&KindStats>, agent: AgentId) -> f64 {
        let Some((total, arm)) = stats.and_then(|s| Some((s.observations, s.arms.get(&agent)?)))
        else {
            return f64::INFINITY;
        };
        let n = arm.observations as f64;
        arm.reward / n + self.exploration * ((total as f64).ln() / n).sqrt()
    }
}

impl Default for Adaptive {
    fn default() -> Self {
        Self::new()
    }
}

impl RoutingStrategy for Adaptive {
    fn select(&mut self, candidates: &Candidates<'_>) -> Option<AgentId> {
        let registry = candidates.registry();
        let stats = self.stats(candidates.requirements().kind());
        let chosen = highest_scoring(candidates.iter(), |record| {
            self.upper_confidence_bound(stats, record.id())
        })
        .map(AgentRecord::id);
        prune_departed(&mut self.unkinded.arms, registry);
        if let Some(stats) = candidates
            .requirements()
            .kind()
            .and_then(|k| self.kinds.get_mut(k))
        {
            prune_departed(&mut stats.arms, registry);
        }
        chosen
    }

    fn observe(&mut self, feedback: &Feedback<'_>) {
        let target = self.latency_target.as_secs_f64();
        let latency = feedback.outcome.latency.as_secs_f64();
        let stats = match feedback.kind {
            None => &mut self.unkinded,
            Some(kind) => self.kinds.entry(kind.to_owned()).or_default(),
        };
        stats.observations += 1;
        let arm = stats.arms.entry(feedback.agent).or_default();
        arm.observations += 1;
        arm.latency_secs += latency;
        if feedback.outcome.success {
            arm.successes += 1;
            arm.reward += target / (target + latency);
        }
    }
}
