//! Routing one task: eligibility by the registry, then the strategy's
//! choice, checked.

use std::cell::Cell;

use super::{Candidates, ResolvedRequirements, RoutingError, RoutingStrategy};
use crate::agent::{Registry, Slot};
use crate::{AgentId, TaskRequirements};

/// Resolves `requirements` against `registry` and routes the task with
/// `strategy`.
///
/// ```
/// use taskweave::agent::{AgentProfile, Registry};
/// use taskweave::routing::{self, LeastLoaded};
/// use taskweave::{AgentId, Instant, TaskRequirements};
///
/// let mut registry = Registry::new();
/// let profile = AgentProfile::builder().capabilities(["gpu"]).build()?;
/// registry.register(AgentId::new(7), profile, Instant::ZERO)?;
/// let task = TaskRequirements::new().require(["gpu"]);
/// assert_eq!(routing::route(&registry, &mut LeastLoaded::new(), &task)?, AgentId::new(7));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// Those of [`ResolvedRequirements::new`] and [`route_resolved`].
pub fn route<S>(
    registry: &Registry,
    strategy: &mut S,
    requirements: &TaskRequirements,
) -> Result<AgentId, RoutingError>
where
    S: RoutingStrategy + ?Sized,
{
    let resolved = ResolvedRequirements::new(registry, requirements)?;
    route_resolved(registry, strategy, &resolved)
}

/// Routes a task whose requirements are already resolved: an eligible
/// preferred agent wins, otherwise `strategy` chooses.
///
/// Never returns an ineligible agent, and returns
/// [`RoutingError::NoEligibleAgent`] (or
/// [`RoutingError::PinnedAgentUnavailable`] for a pinned task) exactly
/// when no agent is eligible.
///
/// # Errors
///
/// [`RoutingError::PinnedAgentUnavailable`], [`RoutingError::NoEligibleAgent`],
/// or, for a misbehaving strategy, [`RoutingError::IneligibleChoice`] or
/// [`RoutingError::Declined`].
pub fn route_resolved<S>(
    registry: &Registry,
    strategy: &mut S,
    requirements: &ResolvedRequirements,
) -> Result<AgentId, RoutingError>
where
    S: RoutingStrategy + ?Sized,
{
    route_to_slot(registry, strategy, requirements).map(|(agent, _)| agent)
}

/// [`route_resolved`], with the chosen agent's slot: what the dispatcher
/// acquires, without looking the id up again.
#[inline]
pub(crate) fn route_to_slot<S>(
    registry: &Registry,
    strategy: &mut S,
    requirements: &ResolvedRequirements,
) -> Result<(AgentId, Slot), RoutingError>
where
    S: RoutingStrategy + ?Sized,
{
    let vouched = Cell::new(None);
    let candidates = Candidates::vouching(registry, requirements, &vouched);
    // An agent a query of the candidates returned last is eligible, and
    // its slot is noted; any other is checked (which notes its slot).
    let eligible = |agent: AgentId| match vouched.get() {
        Some((id, slot)) if id == agent => Some(slot),
        _ => candidates
            .get(agent)
            .and(vouched.get())
            .map(|(_, slot)| slot),
    };
    if let Some(agent) = requirements.pinned() {
        // A match, not `ok_or`: an error built and dropped costs a call.
        return match eligible(agent) {
            Some(slot) => Ok((agent, slot)),
            None => Err(RoutingError::PinnedAgentUnavailable { agent }),
        };
    }
    if let Some(preferred) = requirements.preferred_agent() {
        if let Some(slot) = eligible(preferred) {
            return Ok((preferred, slot));
        }
    }
    match strategy.select(&candidates) {
        Some(agent) => match eligible(agent) {
            Some(slot) => Ok((agent, slot)),
            None => Err(RoutingError::IneligibleChoice { agent }),
        },
        None if candidates.is_empty() => Err(RoutingError::NoEligibleAgent),
        None => Err(RoutingError::Declined),
    }
}
