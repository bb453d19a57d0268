//! The result of team assembly: a phase's team, and how it changed.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::{AgentId, StepId};

/// The agents staffing one phase and the step each one does.
///
/// Made by [`TeamAssembler`](super::TeamAssembler). Members are in matrix
/// order; every member does at least one step, and every agent step of the
/// phase ([`StepKind::Agent`](crate::workflow::StepKind::Agent)) has
/// exactly one member assigned, having all its capabilities — what a host
/// needs to route the phase's tasks within the team or put them to
/// auction. Steps of other kinds need no agent and have none; a phase with
/// no agent steps has an empty team.
#[derive(Clone, Debug, PartialEq)]
pub struct Team {
    pub(super) phase: String,
    pub(super) index: usize,
    pub(super) members: Vec<AgentId>,
    /// Assigned work per member, at the member's speed; parallel to
    /// `members`.
    pub(super) workloads: Vec<Duration>,
    /// The agent steps with their members, by step, ascending.
    pub(super) assignments: Vec<(StepId, AgentId)>,
    /// See [`Team::cost`].
    pub(super) cost: f64,
}

impl Team {
    /// The phase's name.
    pub fn phase(&self) -> &str {
        &self.phase
    }

    /// The phase's index in the plan.
    pub fn phase_index(&self) -> usize {
        self.index
    }

    /// The members, in matrix order.
    pub fn members(&self) -> &[AgentId] {
        &self.members
    }

    /// Whether `agent` is a member.
    pub fn contains(&self, agent: AgentId) -> bool {
        self.members.contains(&agent)
    }

    /// The member assigned `step`, if it is an agent step of this phase.
    pub fn assignment(&self, step: StepId) -> Option<AgentId> {
        self.assignments
            .binary_search_by_key(&step, |&(s, _)| s)
            .ok()
            .and_then(|i| self.assignments.get(i))
            .map(|&(_, agent)| agent)
    }

    /// Every agent step of the phase with its member, by step.
    pub fn assignments(&self) -> &[(StepId, AgentId)] {
        &self.assignments
    }

    /// The steps assigned to `agent`, by step.
    pub fn steps_of(&self, agent: AgentId) -> impl Iterator<Item = StepId> + '_ {
        self.assignments
            .iter()
            .filter(move |&&(_, a)| a == agent)
            .map(|&(step, _)| step)
    }

    /// The work assigned to a member, at its speed (saturating at
    /// [`Duration::MAX`]); `None` for an agent not in the team.
    pub fn workload(&self, agent: AgentId) -> Option<Duration> {
        let i = self.members.iter().position(|&m| m == agent)?;
        self.workloads.get(i).copied()
    }

    /// What the phase costs: for each agent step, the cost per task
    /// ([`PlanAgent::cost`](crate::planning::PlanAgent::cost)) of the
    /// member assigned to it, summed (saturating at `f64::MAX`). 0 for an
    /// empty team.
    pub fn cost(&self) -> f64 {
        self.cost
    }

    /// Who joined, left and stayed since `previous`. (To restructure a
    /// phase from a team, pass its [`members`](Self::members) to
    /// [`TeamAssembler::assemble_phase`](super::TeamAssembler::assemble_phase).)
    pub fn changes_from(&self, previous: &Team) -> TeamChange {
        let now: BTreeSet<AgentId> = self.members.iter().copied().collect();
        let before: BTreeSet<AgentId> = previous.members.iter().copied().collect();
        TeamChange {
            joined: now.difference(&before).copied().collect(),
            left: before.difference(&now).copied().collect(),
            kept: now.intersection(&before).copied().collect(),
        }
    }
}

/// How a team changed from one phase (or one restructuring) to the next:
/// each list sorted by id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TeamChange {
    /// Members now that were not before.
    pub joined: Vec<AgentId>,
    /// Members before that are not now.
    pub left: Vec<AgentId>,
    /// Members both before and now.
    pub kept: Vec<AgentId>,
}

impl TeamChange {
    /// Whether nobody joined or left.
    pub fn is_unchanged(&self) -> bool {
        self.joined.is_empty() && self.left.is_empty()
    }
}
