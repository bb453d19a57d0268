//! Team assembly per phase: for each phase of a [`Plan`], the agents of a
//! [`CapabilityMatrix`] that together can do every agent step of the
//! phase — as few of them, or as cheaply, as a greedy weighted set cover
//! finds — with those steps spread over them.
//!
//! * **Only agent steps need an agent.** Steps of kind
//!   [`StepKind::Agent`](crate::workflow::StepKind::Agent) are staffed;
//!   local steps run in the host, wait steps execute nothing and
//!   sub-workflow steps run a child workflow, so they are left out of the
//!   requirement sets and the assignments.
//! * **Coverage is per step.** A step needing `{python, gpu}` needs one
//!   member having both; two members having one each do not cover it. The
//!   requirement sets of a phase are the distinct capability sets of its
//!   agent steps.
//! * **Selection** (`cover`): greedy weighted set cover over the
//!   requirement sets, then a pruning pass that leaves the team
//!   irredundant. Each set keeps the members that may do its steps: never
//!   none, so every step gets a member by construction.
//! * **Balance** (`balance`): each step goes to one of those members, the
//!   longest steps first — the cheapest member when the team is chosen for
//!   cost, then the one that would finish its work first.

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
    /// continuity discount); load and performance only break ties, and
    /// cost plays no part.
    #[default]
    FewestAgents,
    /// The cheapest phase: every agent step costs the cost per task
    /// ([`PlanAgent::cost`]) of the member doing it, raised by the
    /// member's load and failure rate (see [`TeamAssembler`]) — the sum
    /// [`Team::cost`] reports when those weights are 0.
    Cheapest,
}

/// Chooses a team per phase of a [`Plan`] from a [`CapabilityMatrix`].
///
/// # How a team is chosen
///
/// 0. **Agent steps only**: steps of a kind other than
///    [`StepKind::Agent`](crate::workflow::StepKind::Agent) (local, wait,
///    sub-workflow) need no agent and are ignored, however
///    many capabilities they list. A phase without agent steps gets an
///    empty team.
/// 1. **Requirement sets**: the distinct capability sets of the phase's
///    agent steps. A step is covered by a member having *all* of its
///    capabilities. A step no agent of the matrix can do makes
///    [`PlanningError::UncoveredCapabilities`], naming every such step.
/// 2. **Prices**: with `u` an agent's utilization (capped at 1), `s` its
///    success rate and `cost` its cost per task,
///    * quality `q = 1 + load_weight · u + performance_weight · (1 − s)`;
///    * task price `cost · q`: what one step on the agent costs under
///      [`TeamObjective::Cheapest`];
///    * discount `d = 1 − continuity` for an agent on the `previous`
///      staff of [`assemble_phase`](Self::assemble_phase), `d = 1`
///      otherwise, so a team changes only when that pays.
///
///    (Every input is finite and non-negative; a sum or product that
///    overflows is capped at `f64::MAX`.)
/// 3. **Greedy cover**: repeatedly take the agent with the lowest price per
///    unit it newly covers, until every set is covered:
///    * [`TeamObjective::FewestAgents`]: the agent's price is `d`, per
///      requirement set it newly covers;
///    * [`TeamObjective::Cheapest`]: the agent's price is `cost · q · d`
///      per step of the sets it newly covers, so per newly covered step it
///      is `cost · q · d`.
///
///    Ties go to an agent on the `previous` staff (unless continuity is
///    0), then to the agent newly covering more requirement sets, then
///    more steps, then the lower `q`, then the earlier agent of the
///    matrix.
/// 4. **Saturated agents are a last resort**: an agent without a free slot
///    (`load ≥ capacity`) stays eligible — dropping it could make a
///    coverable phase uncoverable — but is taken only for steps no agent
///    with a free slot can do, and does only such steps.
/// 5. **Pruning**: members are tried in turn — those without a free slot
///    first, then the higher price (step 3's, discount included), then
///    those not on the `previous` staff (unless continuity is 0), then the
///    higher `q`, then the later in the matrix — and a member is removed
///    when, for every requirement set it may serve, another remaining
///    member may serve it too. A member with a free slot may serve the
///    sets it covers; one without may serve only the sets no member with a
///    free slot covers. Under [`TeamObjective::Cheapest`] that other
///    member must also have a task price no higher, so removing a member
///    never raises the phase's cost. Removing any member of the final team
///    leaves a step to a saturated member, or to none, or (under
///    [`TeamObjective::Cheapest`]) to a costlier one.
/// 6. **Balance**: the phase's agent steps, longest first (estimated
///    duration, or [`default_duration`](Self::default_duration) when
///    missing; ties to the earlier step), each go to a member that may
///    serve its requirement set: under [`TeamObjective::Cheapest`] the one
///    with the lowest task price `cost · q`; then the one whose projected
///    busy time per slot would be lowest after taking it, `(load · mean
///    step work + assigned work) / speed / max(capacity, 1)`; then the
///    earlier in the matrix.
///
/// A team covers capabilities; it is not sized for throughput. Greedy set
/// cover is within a factor `H(n) ≈ ln n` of the optimum for `n`
/// requirement sets, not always optimal. Under
/// [`TeamObjective::Cheapest`] with no `previous` staff, every step goes
/// to a capable agent with the lowest task price among those with a free
/// slot (among all capable agents when none has one).
///
/// Cost of one phase: `O(A · R · c)` to match `A` agents against `R`
/// requirement sets of up to `c` capabilities, plus `O(k · A · R)` for the
/// cover of `k` members, `O(k² · R)` to prune it and `O(S · (log S + k))`
/// to assign `S` steps.
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
/// // Bo does both build steps, at 3 a task.
/// assert_eq!(teams[1].cost(), 6.0);
///
/// // The cheapest team for the build phase has two agents, at 1 a task.
/// let cheapest = assembler.with_objective(TeamObjective::Cheapest);
/// let build = cheapest.assemble_phase(&plan, 1, &matrix, teams[0].members())?;
/// assert_eq!(build.members(), [cy, eve]);
/// assert_eq!(build.cost(), 2.0);
///
/// // Bo leaves during the build: restructure that phase. Ana, already on
/// // the design team, takes the web work.
/// let without_bo = CapabilityMatrix::new(matrix.agents().iter().filter(|a| a.id != bo).cloned())?;
/// let build = assembler.assemble_phase(&plan, 1, &without_bo, teams[0].members())?;
/// assert_eq!(build.members(), [ana, cy]);
/// let change = build.changes_from(&teams[1]);
/// assert_eq!((change.joined, change.left), (vec![ana, cy], vec![bo]));
///
/// // Dee leaves too: nobody can test or deploy any more.
/// let left = CapabilityMatrix::new(without_bo.agents().iter().filter(|a| a.id != dee).cloned())?;
/// let err = assembler.assemble_phase(&plan, 2, &left, build.members()).unwrap_err();
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

    /// Sets the continuity preference: the share of its price an agent of
    /// the previous staff is spared in the cover. 0 ignores the previous
    /// staff; 1 makes its members cost nothing, so they are preferred to
    /// any agent (saturated agents still come last): when the previous
    /// staff have free slots and can do every agent step of the phase,
    /// the new team is drawn from them.
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
    /// raises its quality factor `q`, and so its price (see
    /// [`TeamAssembler`]).
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
    /// quality factor `q`, and so its price (see [`TeamAssembler`]).
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

    /// The weight of utilization in an agent's quality factor `q`.
    pub fn load_weight(&self) -> f64 {
        self.load_weight
    }

    /// The weight of the failure rate in an agent's quality factor `q`.
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
    /// [`PlanningError::UncoveredCapabilities`] for the first phase with an
    /// agent step no agent of `matrix` can do.
    pub fn assemble(
        &self,
        plan: &Plan,
        matrix: &CapabilityMatrix,
    ) -> Result<Vec<Team>, PlanningError> {
        let mut teams: Vec<Team> = Vec::with_capacity(plan.phases().len());
        for phase in 0..plan.phases().len() {
            let previous = teams.last().map_or(&[][..], Team::members);
            let team = self.assemble_phase(plan, phase, matrix, previous)?;
            teams.push(team);
        }
        Ok(teams)
    }

    /// The team of one phase, preferring the agents of `previous`: the
    /// current staff — the members of the phase before
    /// ([`Team::members`]), the phase's own members before the matrix
    /// changed, or any list a host keeps; `&[]` for none. This is how a
    /// team is restructured between phases: call it with a fresh matrix
    /// when an agent has left, joined or changed load. Ids in `previous`
    /// missing from `matrix` are ignored.
    ///
    /// # Errors
    ///
    /// [`PlanningError::PhaseOutOfRange`] if `plan` has no phase `phase`;
    /// [`PlanningError::UncoveredCapabilities`] if some agent step of the
    /// phase can be done by no agent of `matrix`.
    pub fn assemble_phase(
        &self,
        plan: &Plan,
        phase: usize,
        matrix: &CapabilityMatrix,
        previous: &[AgentId],
    ) -> Result<Team, PlanningError> {
        let phases = plan.phases();
        let def = phases.get(phase).ok_or(PlanningError::PhaseOutOfRange {
            index: phase,
            phases: phases.len(),
        })?;
        let workflow = plan.workflow();
        // The steps an agent does; the others need none.
        let steps: Vec<(StepId, &StepDef)> = def
            .steps()
            .iter()
            .filter_map(|&id| workflow.step(id).map(|step| (id, step)))
            .filter(|(_, step)| step.is_agent())
            .collect();

        // The distinct requirement sets, each with its steps.
        let mut by_set: BTreeMap<BTreeSet<&str>, Vec<balance::Work>> = BTreeMap::new();
        for &(step, def) in &steps {
            by_set
                .entry(capability_set(def))
                .or_default()
                .push(balance::Work {
                    step,
                    secs: def
                        .estimated_duration
                        .unwrap_or(self.default_duration)
                        .as_secs_f64(),
                });
        }
        let sets: Vec<cover::Set<(BTreeSet<&str>, Vec<balance::Work>)>> = by_set
            .into_iter()
            .map(|(caps, work)| cover::Set {
                steps: work.len(),
                data: (caps, work),
            })
            .collect();

        // How the cover sees each agent: the sets it covers, its prices.
        let previous: BTreeSet<AgentId> = previous.iter().copied().collect();
        let candidates: Vec<cover::Candidate<'_>> = matrix
            .agents()
            .iter()
            .enumerate()
            .map(|(index, agent)| {
                let covers = sets
                    .iter()
                    .enumerate()
                    .filter(|(_, set)| agent.has_all(&set.data.0))
                    .map(|(s, _)| s)
                    .collect();
                self.candidate(index, agent, covers, previous.contains(&agent.id))
            })
            .collect();
        let pricing = match self.objective {
            TeamObjective::FewestAgents => cover::Pricing::PerAgent,
            TeamObjective::Cheapest => cover::Pricing::PerStep,
        };
        let served = match cover::select(&candidates, sets, pricing) {
            Ok(served) => served,
            Err(uncovered) => {
                let uncovered: BTreeSet<BTreeSet<&str>> =
                    uncovered.into_iter().map(|(caps, _)| caps).collect();
                return Err(uncovered_error(
                    def.name(),
                    &steps,
                    &uncovered,
                    matrix.agents(),
                ));
            }
        };
        let served: Vec<_> = served
            .into_iter()
            .map(|(servers, (_, work))| (servers, work))
            .collect();
        let spread = balance::assign(&served, pricing);

        Ok(Team {
            phase: def.name().to_string(),
            index: phase,
            members: spread.members.iter().map(|&(id, _)| id).collect(),
            workloads: spread
                .members
                .iter()
                .map(|&(_, secs)| Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX))
                .collect(),
            cost: spread.cost,
            assignments: spread.assignments,
        })
    }

    /// How the cover sees one agent.
    fn candidate<'a>(
        &self,
        index: usize,
        agent: &'a PlanAgent,
        covers: Vec<usize>,
        on_previous_staff: bool,
    ) -> cover::Candidate<'a> {
        // Every input is finite and non-negative: the matrix checks cost
        // and success rate, the setters the weights, and the utilization
        // is capped at 1. So no term is NaN, but a sum or product may
        // overflow to +inf, and inf · 0 (a free agent, a full continuity
        // discount) would be NaN: `capped` keeps each value finite.
        let quality = capped(
            1.0 + self.load_weight * agent.utilization().min(1.0)
                + self.performance_weight * (1.0 - agent.success_rate),
        );
        let task_price = capped(agent.cost * quality);
        let kept = on_previous_staff && self.continuity > 0.0;
        let discount = if kept { 1.0 - self.continuity } else { 1.0 };
        let price = match self.objective {
            TeamObjective::FewestAgents => discount,
            TeamObjective::Cheapest => capped(task_price * discount),
        };
        cover::Candidate {
            agent,
            index,
            covers,
            saturated: agent.load >= agent.capacity,
            kept,
            price,
            task_price,
            quality,
        }
    }
}

/// `x`, a non-negative number or +inf, capped at `f64::MAX`; −0 becomes +0
/// so that equal prices compare equal under `total_cmp`.
fn capped(x: f64) -> f64 {
    x.min(f64::MAX) + 0.0
}

/// A step's capabilities, as a set.
fn capability_set(step: &StepDef) -> BTreeSet<&str> {
    step.capabilities.iter().map(String::as_str).collect()
}

/// The error for a phase whose agent steps needing one of the `uncovered`
/// capability sets no agent can do.
fn uncovered_error(
    phase: &str,
    steps: &[(StepId, &StepDef)],
    uncovered: &BTreeSet<BTreeSet<&str>>,
    agents: &[PlanAgent],
) -> PlanningError {
    let known: BTreeSet<&str> = agents
        .iter()
        .flat_map(|a| a.capabilities.iter().map(String::as_str))
        .collect();
    let mut capabilities = BTreeSet::new();
    let mut combinations = BTreeSet::new();
    let mut keys = Vec::new();
    for (_, step) in steps {
        let needed = capability_set(step);
        if !uncovered.contains(&needed) {
            continue;
        }
        keys.push(step.id.clone());
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
