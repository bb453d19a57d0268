use std::collections::HashMap;
use std::time::Duration;

use super::state::{ArmRecord, KindRecord, Repr, invalid, mismatch, strictly_sorted};
use super::{
    Candidates, Feedback, RoutingError, RoutingStrategy, StrategyState, highest_scoring,
    prune_departed,
};
use crate::AgentId;
use crate::agent::{AgentRecord, COUNTER_LIMIT};
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
/// use taskweave::routing::{self, Adaptive, Feedback, RoutingStrategy};
/// use taskweave::{AgentId, Instant, TaskRequirements};
///
/// let mut registry = Registry::new();
/// for id in 1..=2 {
///     registry.register(AgentId::new(id), AgentProfile::builder().capacity(8).build()?, Instant::ZERO)?;
/// }
/// let mut adaptive = Adaptive::new();
/// let task = TaskRequirements::new().kind("summarize");
/// for _ in 0..50 {
///     let agent = routing::route(&registry, &mut adaptive, &task)?;
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
        stats.observations = stats.observations.saturating_add(1);
        let arm = stats.arms.entry(feedback.agent).or_default();
        arm.observations = arm.observations.saturating_add(1);
        arm.latency_secs += latency;
        if feedback.outcome.success {
            arm.successes = arm.successes.saturating_add(1);
            arm.reward += target / (target + latency);
        }
    }

    /// The learned tallies; the exploration and latency target are the
    /// strategy's settings, given again when it is built.
    fn save_state(&self) -> StrategyState {
        let unkinded = (None, &self.unkinded);
        let kinded = self.kinds.iter().map(|(k, s)| (Some(k.clone()), s));
        let mut kinds: Vec<KindRecord> = std::iter::once(unkinded)
            .chain(kinded)
            .map(|(kind, stats)| stats.record(kind))
            .collect();
        kinds.sort_unstable_by(|a, b| a.kind.cmp(&b.kind));
        StrategyState(Repr::Adaptive { kinds })
    }

    fn load_state(&mut self, state: StrategyState) -> Result<(), RoutingError> {
        let Repr::Adaptive { kinds } = state.0 else {
            return Err(mismatch("Adaptive", &state.0));
        };
        strictly_sorted("Adaptive", &kinds, |k| k.kind.clone())?;
        let mut unkinded = KindStats::default();
        let mut by_kind = HashMap::with_capacity(kinds.len());
        for record in kinds {
            let stats = KindStats::from_record(&record)?;
            match record.kind {
                None => unkinded = stats,
                Some(kind) => {
                    by_kind.insert(kind, stats);
                }
            }
        }
        self.unkinded = unkinded;
        self.kinds = by_kind;
        Ok(())
    }
}

impl KindStats {
    fn record(&self, kind: Option<String>) -> KindRecord {
        let mut arms: Vec<ArmRecord> = self
            .arms
            .iter()
            .map(|(&agent, arm)| ArmRecord {
                agent,
                observations: arm.observations,
                successes: arm.successes,
                latency_secs_bits: arm.latency_secs.to_bits(),
                reward_bits: arm.reward.to_bits(),
            })
            .collect();
        arms.sort_unstable_by_key(|arm| arm.agent);
        KindRecord {
            kind,
            observations: self.observations,
            arms,
        }
    }

    /// Tallies an [`Adaptive`] could have kept: every arm observed at least
    /// once and at most as often as its kind, successes within
    /// observations, latency sums finite and non-negative, each success
    /// worth at most a reward of 1.
    fn from_record(record: &KindRecord) -> Result<Self, RoutingError> {
        let refuse = |problem: &str| Err(invalid("Adaptive", problem));
        if record.observations > COUNTER_LIMIT {
            return refuse("a kind's observation count is out of range");
        }
        strictly_sorted("Adaptive", &record.arms, |arm| arm.agent)?;
        let mut arms = IdMap::default();
        for stored in &record.arms {
            let latency_secs = f64::from_bits(stored.latency_secs_bits);
            let reward = f64::from_bits(stored.reward_bits);
            if stored.observations == 0 || stored.observations > record.observations {
                return refuse("an arm's observations are not within its kind's");
            }
            if stored.successes > stored.observations {
                return refuse("an arm has more successes than observations");
            }
            if !(latency_secs.is_finite() && latency_secs >= 0.0) {
                return refuse("an arm's latency sum is not a finite, non-negative number");
            }
            if !(reward.is_finite() && (0.0..=stored.successes as f64).contains(&reward)) {
                return refuse("an arm's reward sum is not within [0, successes]");
            }
            let arm = Arm {
                observations: stored.observations,
                successes: stored.successes,
                latency_secs,
                reward,
            };
            arms.insert(stored.agent, arm);
        }
        Ok(KindStats {
            observations: record.observations,
            arms,
        })
    }
}
