//! Team assembly per phase: for each phase of a [`Plan`], the agents of a
//! [`CapabilityMatrix`] that together can do every step — as few of them,
//! or as cheap, as a greedy weighted set cover finds — with the phase's
//! steps spread over them.
//!
//! * **Coverage is per step.** A step needing `{python, gpu}` needs one
//!   member having both; two members having one each do not cover it. The
//!   requirement sets of a phase are the distinct capability sets of its
//!   steps.
//! * **Selection** (`cover`): greedy weighted set cover over the
//!   requirement sets, then a pruning pass that leaves the team
//!   irredundant.
//! * **Balance** (`balance`): each step goes to a capable member, the
//!   longest steps first, each onto the member that would finish its work
//!   first.

mod balance;
mod cover;
mod roster;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::planning::{CapabilityMatrix, Plan, PlanAgent, PlanningError};
use crate::workflow::StepDef;
use crate::{AgentId, StepId};

pub use roster::{Team, TeamChange};

/// What a team is chosen for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TeamObjective {
    /// As few agents as possible. Every agent counts 1 (less the
    /// continuity discount); load and performance only break ties.
    #[default]
    FewestAgents,
    /// The lowest cost: each agent counts its cost per task, raised by its
    /// load and its failure rate (see [`TeamAssembler`]), less the
    /// continuity discount.
    Cheapest,
}

/// Chooses a team per phase of a [`Plan`] from a [`CapabilityMatrix`].
///
/// # How a team is chosen
///
/// 1. **Requirement sets**: the distinct capability sets of the phase's
///    steps. A step is covered by a member having *all* of its
///    capabilities. A step no agent of the matrix can do makes
///    [`PlanningError::UncoveredCapabilities`], naming every such step.
/// 2. **Greedy cover**: repeatedly take the agent with the lowest effective
///    cost per requirement set it newly covers, until every set is
///    covered. Effective cost, with `u` the agent's utilization (capped at
///    1) and `s` its success rate:
///    * quality `q = 1 + load_weight · u + performance_weight · (1 − s)`;
///    * base cost: 1 for [`TeamObjective::FewestAgents`], `cost · q` for
///      [`TeamObjective::Cheapest`];
///    * times `1 − continuity` for a member of the previous phase's team,
///      so a team changes between phases only when that pays.
///
///    Ties go to the agent covering more new sets, then the lower `q`,
///    then the earlier agent of the matrix.
/// 3. **Saturated agents are a last resort**: an agent without a free slot
///    (`load ≥ capacity`) stays eligible — dropping it could make a
///    coverable phase uncoverable — but is taken only for steps no agent
///    with a free slot can do.
/// 4. **Pruning**: members whose every requirement set another member also
///    covers are removed — saturated ones first, then the most expensive,
///    then the later in the matrix — so removing any member of the final
///    team leaves a step uncovered.
/// 5. **Balance**: the phase's steps, longest first (estimated duration,
///    or [`default_duration`](Self::default_duration) when missing), each
///    go to the capable member whose projected busy time per slot would
///    be lowest after taking it: `(load · mean step work + assigned work)
///    / speed / max(capacity, 1)`.
///
/// A team covers capabilities; it is not sized for throughput. Greedy set
/// cover is within a factor `H(n) ≈ ln n` of the optimum for `n`
/// requirement sets, not always optimal.
///
/// Cost of one phase: `O(A · R · c)` to match `A` agents against `R`
/// requirement sets of up to `c` capabilities, plus `O(k · A · R)` for the
/// cover of `k` members and `O(S · k)` to assign `S` steps.
///
/// # Example
///
/// ```
/// use taskweave::AgentId;
/// use taskweave::planning::{
///     CapabilityMatrix, Plan, PlanAgent, PlanningError, TeamAssembler, TeamObjective,
/// };
/// use taskweave::workflow::{StepDef, WorkflowDef};
///
/// let workflow = WorkflowDef::builder("release", 1)
///     .step(StepDef::agent("spec").capabilities(["design"]))
///     .step(StepDef::agent("api").capabilities(["rust"]))
///     .step(StepDef::agent("ui").capabilities(["web"]))
///     .step(StepDef::agent("e2e").capabilities(["web", "qa"]))
///     .step(StepDef::agent("deploy").capabilities(["ops"]))
///     .chain(["spec", "api", "ui", "e2e", "deploy"])
///     .build()?;
/// let plan = Plan::new(
///     workflow,
///     [("design", vec!["spec"]), ("build", vec!["api", "ui"]), ("ship", vec!["e2e", "deploy"])],
/// )?;
/// let [ana, bo, cy, dee, eve] = [1, 2, 3, 4, 5].map(AgentId::new);
/// let matrix = CapabilityMatrix::new([
///     PlanAgent::new(ana, ["design", "web"]).cost(3.0),
///     PlanAgent::new(bo, ["rust", "web"]).cost(3.0),
///     PlanAgent::new(cy, ["rust"]).cost(1.0),
///     PlanAgent::new(dee, ["web", "qa", "ops"]).cost(2.0),
///     PlanAgent::new(eve, ["web"]).cost(1.0),
/// ])?;
///
/// // One team per phase, as few agents as possible.
/// let assembler = TeamAssembler::new();
/// let teams = assembler.assemble(&plan, &matrix)?;
/// let members: Vec<&[AgentId]> = teams.iter().map(|t| t.members()).collect();
/// assert_eq!(members, [&[ana][..], &[bo], &[dee]]);
/// let ui = plan.workflow().step_id("ui").ok_or("no ui step")?;
/// assert_eq!(teams[1].assignment(ui), Some(bo));
///
/// // The cheapest team for the build phase has two agents.
/// let cheapest = assembler.with_objective(TeamObjective::Cheapest);
/// let build = cheapest.assemble_phase(&plan, 1, &matrix, Some(&teams[0]))?;
/// assert_eq!(build.members(), [cy, eve]);
/// assert_eq!(build.cost(), 2.0);
///
/// // Bo leaves during the build: restructure that phase. Ana, already on
/// // the design team, takes the web work.
/// let without_bo = CapabilityMatrix::new(matrix.agents().iter().filter(|a| a.id != bo).cloned())?;
/// let build = assembler.assemble_phase(&plan, 1, &without_bo, Some(&teams[0]))?;
/// assert_eq!(build.members(), [ana, cy]);
/// let change = build.changes_from(&teams[1]);
/// assert_eq!((change.joined, change.left), (vec![ana, cy], vec![bo]));
///
/// // Dee leaves too: nobody can test or deploy any more.
/// let left = CapabilityMatrix::new(without_bo.agents().iter().filter(|a| a.id != dee).cloned())?;
/// let err = assembler.assemble_phase(&plan, 2, &left, Some(&build)).unwrap_err();
/// assert_eq!(
///     err,
///     PlanningError::UncoveredCapabilities {
///         phase: "ship".into(),
///         capabilities: vec!["ops".into(), "qa".into()],
///         combinations: vec![],
///         steps: vec!["e2e".into(), "deploy".into()],
///     }
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TeamAssembler {
    objective: TeamObjective,
    continuity: f64,
    load_weight: f64,
    performance_weight: f64,
    default_duration: Duration,
}

impl Default for TeamAssembler {
    /// Fewest agents, continuity 0.5, load and performance weights 1, a
    /// default step duration of 1 s.
    fn default() -> Self {
        TeamAssembler {
            objective: TeamObjective::FewestAgents,
            continuity: 0.5,
            load_weight: 1.0,
            performance_weight: 1.0,
            default_duration: Duration::from_secs(1),
        }
    }
}

/// Checks a weight: finite and non-negative.
fn weight(setting: &'static str, value: f64) -> Result<f64, PlanningError> {
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(PlanningError::InvalidTeamSetting {
            setting,
            expected: "finite and >= 0",
            value,
        })
    }
}

impl TeamAssembler {
    /// Fewest agents, continuity 0.5, load and performance weights 1, a
    /// default step duration of 1 s.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets what teams are chosen for.
    pub fn with_objective(self, objective: TeamObjective) -> Self {
        TeamAssembler { objective, ..self }
    }

    /// Sets the continuity preference: the share of its cost an agent of
    /// the previous phase's team is spared. 0 ignores the previous team;
    /// 1 makes its members cost nothing, so they are preferred to any
    /// agent that costs something (saturated agents still come last).
    ///
    /// # Errors
    ///
    /// [`PlanningError::InvalidTeamSetting`] unless `continuity` is in
    /// `[0, 1]`.
    pub fn with_continuity(self, continuity: f64) -> Result<Self, PlanningError> {
        if !(0.0..=1.0).contains(&continuity) {
            return Err(PlanningError::InvalidTeamSetting {
                setting: "continuity",
                expected: "in [0, 1]",
                value: continuity,
            });
        }
        Ok(TeamAssembler { continuity, ..self })
    }

    /// Sets how much an agent's utilization (load / capacity, capped at 1)
    /// raises its effective cost.
    ///
    /// # Errors
    ///
    /// [`PlanningError::InvalidTeamSetting`] unless `weight` is finite and
    /// non-negative.
    pub fn with_load_weight(self, load_weight: f64) -> Result<Self, PlanningError> {
        let load_weight = weight("load_weight", load_weight)?;
        Ok(TeamAssembler {
            load_weight,
            ..self
        })
    }

    /// Sets how much an agent's failure rate (1 − success rate) raises its
    /// effective cost.
    ///
    /// # Errors
    ///
    /// [`PlanningError::InvalidTeamSetting`] unless `weight` is finite and
    /// non-negative.
    pub fn with_performance_weight(self, performance_weight: f64) -> Result<Self, PlanningError> {
        let performance_weight = weight("performance_weight", performance_weight)?;
        Ok(TeamAssembler {
            performance_weight,
            ..self
        })
    }

    /// Sets the work assumed for a step without an estimated duration when
    /// steps are spread over the members.
    pub fn with_default_duration(self, default_duration: Duration) -> Self {
        TeamAssembler {
            default_duration,
            ..self
        }
    }

    /// What teams are chosen for.
    pub fn objective(&self) -> TeamObjective {
        self.objective
    }

    /// The continuity preference, in `[0, 1]`.
    pub fn continuity(&self) -> f64 {
        self.continuity
    }

    /// The weight of utilization in an agent's effective cost.
    pub fn load_weight(&self) -> f64 {
        self.load_weight
    }

    /// The weight of the failure rate in an agent's effective cost.
    pub fn performance_weight(&self) -> f64 {
        self.performance_weight
    }

    /// The work assumed for a step without an estimated duration.
    pub fn default_duration(&self) -> Duration {
        self.default_duration
    }

    /// One team per phase of `plan`, in order, each preferring the members
    /// of the team before it (see [`with_continuity`](Self::with_continuity)).
    ///
    /// # Errors
    ///
    /// [`PlanningError::UncoveredCapabilities`] for the first phase with a
    /// step no agent of `matrix` can do.
    pub fn assemble(
        &self,
        plan: &Plan,
        matrix: &CapabilityMatrix,
    ) -> Result<Vec<Team>, PlanningError> {
        let mut teams: Vec<Team> = Vec::with_capacity(plan.phases().len());
        for phase in 0..plan.phases().len() {
            let team = self.assemble_phase(plan, phase, matrix, teams.last())?;
            teams.push(team);
        }
        Ok(teams)
    }

    /// The team of one phase, preferring the members of `previous` (the
    /// team of the phase before, or the phase's own team before the matrix
    /// changed). This is how a team is restructured between phases: call
    /// it with a fresh matrix when an agent has left, joined or changed
    /// load. Members of `previous` missing from `matrix` are ignored.
    ///
    /// # Errors
    ///
    /// [`PlanningError::PhaseOutOfRange`] if `plan` has no phase `phase`;
    /// [`PlanningError::UncoveredCapabilities`] if some step of the phase
    /// can be done by no agent of `matrix`.
    pub fn assemble_phase(
        &self,
        plan: &Plan,
        phase: usize,
        matrix: &CapabilityMatrix,
        previous: Option<&Team>,
    ) -> Result<Team, PlanningError> {
        let phases = plan.phases();
        let def = phases.get(phase).ok_or(PlanningError::PhaseOutOfRange {
            index: phase,
            phases: phases.len(),
        })?;
        let workflow = plan.workflow();
        let steps: Vec<(StepId, &StepDef)> = def
            .steps()
            .iter()
            .filter_map(|&id| workflow.step(id).map(|step| (id, step)))
            .collect();

        // The distinct requirement sets, and the set of each step.
        let mut index: BTreeMap<BTreeSet<&str>, usize> = BTreeMap::new();
        let mut sets: Vec<BTreeSet<&str>> = Vec::new();
        let step_set: Vec<usize> = steps
            .iter()
            .map(|(_, step)| {
                let caps: BTreeSet<&str> = step.capabilities.iter().map(String::as_str).collect();
                *index.entry(caps).or_insert_with_key(|caps| {
                    sets.push(caps.clone());
                    sets.len() - 1
                })
            })
            .collect();

        // The requirement sets each agent covers, ascending.
        let agents = matrix.agents();
        let covers: Vec<Vec<usize>> = agents
            .iter()
            .map(|agent| {
                (0..sets.len())
                    .filter(|&i| {
                        sets.get(i)
                            .is_some_and(|set| set.iter().all(|c| agent.capabilities.contains(*c)))
                    })
                    .collect()
            })
            .collect();
        let mut coverable = vec![false; sets.len()];
        for &set in covers.iter().flatten() {
            if let Some(slot) = coverable.get_mut(set) {
                *slot = true;
            }
        }
        if coverable.contains(&false) {
            return Err(uncovered(def.name(), &steps, &step_set, &coverable, agents));
        }

        let kept: BTreeSet<AgentId> = previous
            .map(|team| team.members.iter().copied().collect())
            .unwrap_or_default();
        let candidates: Vec<cover::Candidate> = agents
            .iter()
            .zip(covers)
            .map(|(agent, covers)| self.candidate(agent, covers, kept.contains(&agent.id)))
            .collect();
        let chosen = cover::select(&candidates, sets.len());

        let members: Vec<balance::Member<'_>> = chosen
            .iter()
            .filter_map(|&i| {
                let agent = agents.get(i)?;
                let covers = candidates.get(i)?.covers.as_slice();
                Some(balance::Member { agent, covers })
            })
            .collect();
        let work: Vec<balance::Work> = steps
            .iter()
            .zip(&step_set)
            .map(|(&(step, def), &set)| balance::Work {
                step,
                set,
                secs: def
                    .estimated_duration
                    .unwrap_or(self.default_duration)
                    .as_secs_f64(),
            })
            .collect();
        let (assignments, busy) = balance::assign(&work, &members);

        Ok(Team {
            phase: def.name().to_string(),
            index: phase,
            members: members.iter().map(|m| m.agent.id).collect(),
            workloads: busy
                .into_iter()
                .map(|secs| Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX))
                .collect(),
            cost: members.iter().map(|m| m.agent.cost).sum(),
            assignments,
        })
    }

    /// How the cover sees one agent.
    fn candidate(&self, agent: &PlanAgent, covers: Vec<usize>, kept: bool) -> cover::Candidate {
        let quality = 1.0
            + self.load_weight * agent.utilization().min(1.0)
            + self.performance_weight * (1.0 - agent.success_rate);
        let base = match self.objective {
            TeamObjective::FewestAgents => 1.0,
            TeamObjective::Cheapest => agent.cost * quality,
        };
        let discount = if kept { 1.0 - self.continuity } else { 1.0 };
        let not_nan = |x: f64| if x.is_nan() { f64::INFINITY } else { x };
        cover::Candidate {
            covers,
            saturated: agent.load >= agent.capacity,
            cost: not_nan(base * discount),
            quality: not_nan(quality),
        }
    }
}

/// The error for a phase some of whose requirement sets no agent covers.
fn uncovered(
    phase: &str,
    steps: &[(StepId, &StepDef)],
    step_set: &[usize],
    coverable: &[bool],
    agents: &[PlanAgent],
) -> PlanningError {
    let known: BTreeSet<&str> = agents
        .iter()
        .flat_map(|a| a.capabilities.iter().map(String::as_str))
        .collect();
    let mut capabilities = BTreeSet::new();
    let mut combinations = BTreeSet::new();
    let mut keys = Vec::new();
    for ((_, step), &set) in steps.iter().zip(step_set) {
        if coverable.get(set).copied().unwrap_or(false) {
            continue;
        }
        keys.push(step.id.clone());
        let needed: BTreeSet<&str> = step.capabilities.iter().map(String::as_str).collect();
        let absent: Vec<&str> = needed
            .iter()
            .filter(|c| !known.contains(*c))
            .copied()
            .collect();
        if absent.is_empty() {
            combinations.insert(needed);
        } else {
            capabilities.extend(absent);
        }
    }
    PlanningError::UncoveredCapabilities {
        phase: phase.to_string(),
        capabilities: capabilities.into_iter().map(str::to_string).collect(),
        combinations: combinations
            .into_iter()
            .map(|set| set.into_iter().map(str::to_string).collect())
            .collect(),
        steps: keys,
    }
}
