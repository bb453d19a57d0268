//! [`StrategyState`]: what a routing strategy remembers between picks, as
//! data a dispatcher snapshot stores.

use super::RoutingError;
use crate::AgentId;
use crate::rng::SplitMix64;

/// What a [`RoutingStrategy`](super::RoutingStrategy) remembers between
/// picks — a rotation's position, weighted credits, a random source, learned
/// estimates — as a value that a [`Snapshot`](crate::scheduler::Snapshot)
/// stores, so that a dispatcher restored on another machine routes exactly
/// as the one the snapshot came from.
///
/// Built-in strategies save and load their own state. A host strategy opts
/// in by implementing [`save_state`](super::RoutingStrategy::save_state)
/// and [`load_state`](super::RoutingStrategy::load_state) with
/// [`StrategyState::host`]; one that does not (a closure, say) counts as
/// stateless. The stored form is canonical: equal states serialize to
/// equal bytes.
///
/// ```
/// use taskweave::routing::{RoundRobin, RoutingStrategy, StrategyState};
///
/// let saved = RoundRobin::new().save_state();
/// assert_ne!(saved, StrategyState::stateless());
/// let mut restored = RoundRobin::new();
/// restored.load_state(saved)?;
/// // Another strategy's state is refused, not misread.
/// assert!(taskweave::routing::LeastLoaded::new().load_state(RoundRobin::new().save_state()).is_err());
/// # Ok::<(), taskweave::routing::RoutingError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct StrategyState(pub(super) Repr);

/// The state of each built-in strategy, and a host's as text.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub(super) enum Repr {
    Stateless,
    RoundRobin {
        last: Option<u64>,
    },
    WeightedRoundRobin {
        /// Sorted by agent, each agent once.
        credit: Vec<(AgentId, i64)>,
    },
    PowerOfTwoChoices {
        rng: SplitMix64,
    },
    Adaptive {
        /// Sorted by kind (`None`, for tasks without a kind, first).
        kinds: Vec<KindRecord>,
    },
    Host {
        name: String,
        data: String,
    },
}

/// What [`Adaptive`](super::Adaptive) learned about one task kind.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(super) struct KindRecord {
    pub(super) kind: Option<String>,
    pub(super) observations: u64,
    /// Sorted by agent, each agent once.
    pub(super) arms: Vec<ArmRecord>,
}

/// One agent's tallies for a kind; the sums travel as `f64` bit patterns
/// so they come back exactly.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(super) struct ArmRecord {
    pub(super) agent: AgentId,
    pub(super) observations: u64,
    pub(super) successes: u64,
    pub(super) latency_secs_bits: u64,
    pub(super) reward_bits: u64,
}

impl StrategyState {
    /// The state of a strategy that remembers nothing.
    pub fn stateless() -> Self {
        StrategyState(Repr::Stateless)
    }

    /// A host strategy's state: its `name` (checked when loading, so one
    /// strategy never reads another's) and its own encoding as text.
    pub fn host(name: impl Into<String>, data: impl Into<String>) -> Self {
        StrategyState(Repr::Host {
            name: name.into(),
            data: data.into(),
        })
    }

    /// The text a host strategy called `name` saved.
    ///
    /// # Errors
    ///
    /// [`RoutingError::InvalidState`] if this is another strategy's state.
    pub fn into_host(self, name: &str) -> Result<String, RoutingError> {
        match self.0 {
            Repr::Host { name: saved, data } if saved == name => Ok(data),
            other => Err(mismatch(name, &other)),
        }
    }

    /// Succeeds for the state of a stateless strategy: the default
    /// [`load_state`](super::RoutingStrategy::load_state).
    ///
    /// # Errors
    ///
    /// [`RoutingError::InvalidState`] for any other state.
    pub fn expect_stateless(self) -> Result<(), RoutingError> {
        match self.0 {
            Repr::Stateless => Ok(()),
            other => Err(mismatch("a stateless strategy", &other)),
        }
    }
}

impl Repr {
    fn name(&self) -> &str {
        match self {
            Repr::Stateless => "a stateless strategy",
            Repr::RoundRobin { .. } => "RoundRobin",
            Repr::WeightedRoundRobin { .. } => "WeightedRoundRobin",
            Repr::PowerOfTwoChoices { .. } => "PowerOfTwoChoices",
            Repr::Adaptive { .. } => "Adaptive",
            Repr::Host { name, .. } => name,
        }
    }
}

/// The error for a state saved by another strategy than `expected`.
pub(super) fn mismatch(expected: &str, found: &Repr) -> RoutingError {
    invalid(expected, format!("the state was saved by {}", found.name()))
}

/// The error for a state `strategy` cannot take.
pub(super) fn invalid(strategy: &str, problem: impl Into<String>) -> RoutingError {
    RoutingError::InvalidState {
        strategy: strategy.to_string(),
        problem: problem.into(),
    }
}

/// Ensures `items` are strictly increasing by `key`: sorted, each key once.
pub(super) fn strictly_sorted<T, K: Ord>(
    strategy: &str,
    items: &[T],
    key: impl Fn(&T) -> K,
) -> Result<(), RoutingError> {
    if items.windows(2).all(|pair| key(&pair[0]) < key(&pair[1])) {
        Ok(())
    } else {
        Err(invalid(strategy, "entries are not sorted or repeat a key"))
    }
}
