//! Choosing an agent for a task.
//!
//! Routing happens in two stages:
//!
//! 1. **Eligibility**, applied by the [`Registry`] before any strategy runs:
//!    an agent must be online with a free slot, have every required
//!    capability, satisfy the label constraints, be neither excluded nor
//!    under anti-affinity, and be the pinned agent if there is one. A
//!    preferred agent that is eligible wins outright.
//! 2. **Selection** by a [`RoutingStrategy`] among the eligible
//!    [`Candidates`]. Whatever a strategy answers, the registry returns an
//!    eligible agent or a typed [`RoutingError`] — never an ineligible agent.
//!
//! | strategy | picks | cost per pick |
//! |---|---|---|
//! | [`CapabilityMatch`] | first eligible in registration order | `O(c log n)` |
//! | [`RoundRobin`] | next eligible in a true rotation | `O(c log n)` |
//! | [`WeightedRoundRobin`] | smooth weighted rotation, exact per cycle | `O(n)` |
//! | [`LeastLoaded`] | lowest `load / capacity` | `O(c log k)` |
//! | [`PowerOfTwoChoices`] | less loaded of two seeded random picks | `O(c)` |
//! | [`PriorityBased`] | highest agent priority, then least loaded | `O(c log k)` |
//! | [`Rendezvous`] | weighted rendezvous hash of the affinity key, load-bounded | `O(n)` |
//! | [`Scored`] | best weighted score of skill, availability, history, cost | `O(n)` |
//! | [`Adaptive`] | UCB1 over learned success and latency per task kind | `O(n)` |
//!
//! `n` is the number of eligible agents, `c` the number of matching agent
//! classes (distinct capability/label combinations), usually far below `n`,
//! and `k` the number of distinct load levels in a class.
//!
//! ```
//! use taskweave::agent::{AgentProfile, Registry};
//! use taskweave::routing::{self, LeastLoaded, RoutingStrategy};
//! use taskweave::{AgentId, Instant, TaskRequirements};
//!
//! let mut registry = Registry::new();
//! for (id, caps) in [(1, vec!["cpu"]), (2, vec!["cpu", "gpu"]), (3, vec!["cpu", "gpu"])] {
//!     let profile = AgentProfile::builder().capabilities(caps).capacity(2).build()?;
//!     registry.register(AgentId::new(id), profile, Instant::ZERO)?;
//! }
//! registry.acquire(AgentId::new(2))?;
//!
//! let mut strategy = LeastLoaded::new();
//! let task = TaskRequirements::new().require(["gpu"]);
//! assert_eq!(routing::route(&registry, &mut strategy, &task)?, AgentId::new(3));
//!
//! // A closure is a strategy too; an ineligible answer becomes an error.
//! let mut always_one = |_: &taskweave::routing::Candidates<'_>| Some(AgentId::new(1));
//! assert!(routing::route(&registry, &mut always_one, &task).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod adaptive;
mod candidates;
mod capability_match;
mod least_loaded;
mod power_of_two;
mod priority_based;
mod rendezvous;
mod resolved;
mod round_robin;
mod route;
mod scored;
mod state;
mod weighted_round_robin;

use thiserror::Error;

pub use adaptive::{Adaptive, ArmEstimate};
pub use candidates::Candidates;
pub use capability_match::CapabilityMatch;
pub use least_loaded::LeastLoaded;
pub use power_of_two::PowerOfTwoChoices;
pub use priority_based::PriorityBased;
pub use rendezvous::Rendezvous;
pub use resolved::ResolvedRequirements;
pub use round_robin::RoundRobin;
pub(crate) use route::route_to_slot;
pub use route::{route, route_resolved};
pub use scored::{ScoreWeights, Scored};
pub use state::StrategyState;
pub use weighted_round_robin::WeightedRoundRobin;

use crate::agent::{AgentRecord, Outcome, Registry};
use crate::hash::IdMap;
use crate::{AgentId, LabelConstraint};

/// Why no agent was chosen, or a strategy could not be built.
#[derive(Clone, Debug, PartialEq, Error)]
#[non_exhaustive]
pub enum RoutingError {
    /// A required capability that no agent has ever registered with.
    #[error("no agent has capability {capability:?}")]
    UnknownCapability {
        /// The capability name.
        capability: String,
    },
    /// A label constraint that no agent's labels can satisfy.
    #[error("no agent has a label matching {constraint:?}")]
    UnknownLabel {
        /// The constraint.
        constraint: LabelConstraint,
    },
    /// The task is pinned to an agent that is not eligible for it.
    #[error("pinned agent {agent} is not eligible")]
    PinnedAgentUnavailable {
        /// The pinned agent.
        agent: AgentId,
    },
    /// No agent is eligible right now.
    #[error("no eligible agent")]
    NoEligibleAgent,
    /// The strategy answered with an agent that is not eligible.
    #[error("strategy chose agent {agent}, which is not eligible")]
    IneligibleChoice {
        /// The agent the strategy chose.
        agent: AgentId,
    },
    /// The strategy chose nobody although some agent was eligible.
    #[error("strategy declined although agents were eligible")]
    Declined,
    /// A strategy parameter is out of range.
    #[error("invalid {parameter}: {value}")]
    InvalidParameter {
        /// Which parameter.
        parameter: &'static str,
        /// The rejected value.
        value: f64,
    },
    /// A saved [`StrategyState`] the strategy cannot take: another
    /// strategy's, or not one it could have saved.
    #[error("{strategy} cannot load this state: {problem}")]
    InvalidState {
        /// The strategy loading the state.
        strategy: String,
        /// What is wrong with it.
        problem: String,
    },
}

/// What a learning strategy is told about a finished task.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Feedback<'a> {
    /// The agent that ran the task.
    pub agent: AgentId,
    /// The task kind, if the task had one.
    pub kind: Option<&'a str>,
    /// How it went.
    pub outcome: Outcome,
}

/// A policy that chooses one agent among the eligible candidates.
///
/// Implementations only choose; eligibility is enforced around them. The
/// trait is object-safe (`Box<dyn RoutingStrategy>` works), and any
/// `FnMut(&Candidates) -> Option<AgentId>` closure implements it (as a
/// stateless strategy: a closure's captured state is not saved).
pub trait RoutingStrategy {
    /// Chooses an agent among `candidates`, or `None` if there are none.
    fn select(&mut self, candidates: &Candidates<'_>) -> Option<AgentId>;

    /// Learns from a finished task. The default ignores it.
    fn observe(&mut self, feedback: &Feedback<'_>) {
        let _ = feedback;
    }

    /// Whether [`observe`](Self::observe) learns anything. A strategy that
    /// ignores feedback answers `false`, and a dispatcher, which asks once
    /// when it takes the strategy, then builds no feedback for it. The
    /// default is `true`, so a strategy that overrides `observe` is fed
    /// without saying so.
    fn learns(&self) -> bool {
        true
    }

    /// What the strategy remembers between picks, for a dispatcher
    /// snapshot. The default is [`StrategyState::stateless`]; a host
    /// strategy with state opts in with [`StrategyState::host`].
    fn save_state(&self) -> StrategyState {
        StrategyState::stateless()
    }

    /// Continues from a state [`save_state`](Self::save_state) returned,
    /// possibly in another process: afterwards the strategy picks as the
    /// one that saved it would. The state is untrusted input.
    ///
    /// # Errors
    ///
    /// [`RoutingError::InvalidState`] for another strategy's state or one
    /// this strategy could not have saved; the strategy is then unchanged.
    fn load_state(&mut self, state: StrategyState) -> Result<(), RoutingError> {
        state.expect_stateless()
    }
}

impl<F> RoutingStrategy for F
where
    F: FnMut(&Candidates<'_>) -> Option<AgentId>,
{
    fn select(&mut self, candidates: &Candidates<'_>) -> Option<AgentId> {
        self(candidates)
    }

    fn learns(&self) -> bool {
        false
    }
}

impl RoutingStrategy for Box<dyn RoutingStrategy + '_> {
    fn select(&mut self, candidates: &Candidates<'_>) -> Option<AgentId> {
        (**self).select(candidates)
    }

    fn observe(&mut self, feedback: &Feedback<'_>) {
        (**self).observe(feedback);
    }

    fn learns(&self) -> bool {
        (**self).learns()
    }

    fn save_state(&self) -> StrategyState {
        (**self).save_state()
    }

    fn load_state(&mut self, state: StrategyState) -> Result<(), RoutingError> {
        (**self).load_state(state)
    }
}

impl RoutingStrategy for Box<dyn RoutingStrategy + Send + '_> {
    fn select(&mut self, candidates: &Candidates<'_>) -> Option<AgentId> {
        (**self).select(candidates)
    }

    fn observe(&mut self, feedback: &Feedback<'_>) {
        (**self).observe(feedback);
    }

    fn learns(&self) -> bool {
        (**self).learns()
    }

    fn save_state(&self) -> StrategyState {
        (**self).save_state()
    }

    fn load_state(&mut self, state: StrategyState) -> Result<(), RoutingError> {
        (**self).load_state(state)
    }
}

/// The agent with the highest `score`; ties go to the agent registered
/// first. Shared by the strategies that rank every candidate.
pub(crate) fn highest_scoring<'a>(
    agents: impl Iterator<Item = &'a AgentRecord>,
    mut score: impl FnMut(&AgentRecord) -> f64,
) -> Option<&'a AgentRecord> {
    agents
        .map(|record| (score(record), record))
        .max_by(|(sa, a), (sb, b)| sa.total_cmp(sb).then(b.order().cmp(&a.order())))
        .map(|(_, record)| record)
}

/// Drops per-agent learning state of agents that left the registry, once
/// the map has grown well past the registry's size (amortised `O(1)`).
pub(crate) fn prune_departed<V>(state: &mut IdMap<AgentId, V>, registry: &Registry) {
    if state.len() > 2 * registry.len() + 16 {
        state.retain(|id, _| registry.contains(*id));
    }
}
