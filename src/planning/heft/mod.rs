//! HEFT list scheduling (Topcuoglu, Hariri and Wu, 2002) of a workflow onto
//! the agents of a [`CapabilityMatrix`], without communication costs.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::Duration;

use crate::planning::{CapabilityMatrix, PlanningError};
use crate::workflow::WorkflowDef;
use crate::{AgentId, StepId};

mod schedule;
#[cfg(test)]
mod tests;

pub use schedule::{Schedule, ScheduleOrigin, ScheduledStep};

/// Plans `workflow` on `agents` with HEFT (Heterogeneous Earliest Finish
/// Time, Topcuoglu, Hariri and Wu, 2002), without communication costs: a
/// static plan of which agent runs each step, and when, that keeps the
/// makespan short.
///
/// # The model
///
/// - Every [agent step](crate::workflow::StepKind::Agent) is planned on
///   one agent that has all of its
///   [`capabilities`](crate::workflow::StepDef::capabilities) (any agent
///   when it requires none) and a capacity above zero.
/// - Agent step `s` takes
///   [`PlanAgent::time_for`](crate::planning::PlanAgent::time_for)`(s.estimated_duration)`
///   on agent `a`: its estimate divided by the agent's speed.
/// - A step no agent runs — local, wait, sub-workflow — is a delay of its
///   estimate (zero without one) from its ready time, on no agent
///   ([`ScheduledStep::agent`] is `None`).
/// - A loop or multi-instance step is planned as one execution of its
///   estimate: give it the estimate of all its iterations or instances.
/// - Every edge is a dependency, labelled or not: a step starts no earlier
///   than every predecessor's finish, and the plan is that of the run where
///   every step runs (each decision takes every branch, joins wait for all
///   their inputs). Handing over a result costs no time.
/// - An agent runs one step at a time: beyond excluding agents of
///   capacity zero, its [`capacity`](crate::planning::PlanAgent::capacity)
///   and current [`load`](crate::planning::PlanAgent::load) are not
///   modelled.
/// - Times are offsets from the plan's start. They saturate at
///   [`Duration::MAX`] instead of overflowing.
///
/// # The algorithm
///
/// 1. **Upward rank.** `rank(s) = mean(s) + max(rank(t) for each successor
///    t)`, where `mean(s)` is the mean execution time of `s` over the agents
///    capable of it (in whole nanoseconds, so ranks compare exactly).
/// 2. **Priority list.** Steps by rank, highest first; ties keep the order
///    of a topological sort that always takes the lowest ready step index
///    (then the step index). Since a step outranks or ties each of its
///    successors, the list is itself a topological order.
/// 3. **Agent selection.** In that order, each step goes to the capable
///    agent where it finishes earliest. It may start no earlier than its
///    ready time (its predecessors' latest finish) and, *insertion-based*,
///    may fill an idle gap between two steps already planned on an agent if
///    it fits there. Ties go to the earlier agent in matrix order.
/// 4. **Safety net.** HEFT is a heuristic: on about 5 % of small random
///    instances (up to 30 steps, 6 agents) the plain list schedule —
///    steps in topological order, each appended on the capable agent
///    where it can start earliest — finishes sooner; three independent
///    steps of 5, 6 and 4 s on agents of speed 4 and 3 take 2.5 s under
///    HEFT and 2.25 s that way. Both are computed, and the shorter is
///    returned (HEFT's on a tie), so the plan is never worse than the
///    plain one; [`Schedule::origin`] tells which it is.
///
/// The same workflow and matrix give the same schedule, bit for bit.
///
/// # Complexity
///
/// With `n` steps, `e` edges, `m` agents, `r` distinct capability lists
/// among the steps (each of at most `c` capabilities) and `k` the most
/// steps planned on one agent: O(r·m·c·log C + n·(m + c·log r)) to find the
/// capable agents (`C` capabilities per agent), O(e + n·m) for
/// the ranks, O(e + n log n) for the sorts and O(e + n·m·k) for the agent
/// selection, which scans an agent's gaps from the step's ready time on.
/// At worst (every step on one agent) that last term is O(n²·m). Memory is
/// O(n·m + e).
///
/// # Errors
///
/// Every step is checked before anything is planned, in declaration order;
/// the first offending step is reported (as missing its estimate if it
/// also lacks an agent):
///
/// - [`PlanningError::MissingEstimate`] for an agent step without an
///   [`estimated_duration`](crate::workflow::StepDef::estimated_duration);
/// - [`PlanningError::NoCapableAgent`] for an agent step no agent can run
///   (every agent step, with an empty matrix).
///
/// # Example
///
/// A fork-join on a slow generalist and a fast specialist:
///
/// ```
/// use std::time::Duration;
/// use taskweave::AgentId;
/// use taskweave::planning::{CapabilityMatrix, PlanAgent, heft};
/// use taskweave::workflow::{StepDef, WorkflowDef};
///
/// let secs = Duration::from_secs;
/// let workflow = WorkflowDef::builder("report", 1)
///     .step(StepDef::agent("fetch").estimated_duration(secs(10)))
///     .step(StepDef::agent("chart").capabilities(["plot"]).estimated_duration(secs(40)))
///     .step(StepDef::agent("table").estimated_duration(secs(40)))
///     .step(StepDef::agent("merge").estimated_duration(secs(10)))
///     .edge("fetch", "chart")
///     .edge("fetch", "table")
///     .edge("chart", "merge")
///     .edge("table", "merge")
///     .build()?;
/// let slow = PlanAgent::new(AgentId::new(1), ["plot"]);
/// let fast = PlanAgent::new(AgentId::new(2), ["sql"]).speed(4.0);
/// let agents = CapabilityMatrix::new([slow, fast])?;
///
/// let schedule = heft(&workflow, &agents)?;
/// let at = |key| {
///     let slot = schedule.slot(workflow.step_id(key).unwrap()).unwrap();
///     (slot.agent.map(|a| a.get()), slot.start.as_secs_f64(), slot.finish.as_secs_f64())
/// };
/// assert_eq!(at("fetch"), (Some(2), 0.0, 2.5));
/// assert_eq!(at("chart"), (Some(1), 2.5, 42.5)); // only agent 1 can plot
/// assert_eq!(at("table"), (Some(2), 2.5, 12.5));
/// assert_eq!(at("merge"), (Some(2), 42.5, 45.0));
/// assert_eq!(schedule.makespan(), Duration::from_millis(45_000));
/// let path: Vec<_> = schedule.critical_path().iter().map(|&s| workflow.step(s).unwrap().id.as_str()).collect();
/// assert_eq!(path, ["fetch", "chart", "merge"]);
/// # Ok::<(), taskweave::Error>(())
/// ```
pub fn heft(workflow: &WorkflowDef, agents: &CapabilityMatrix) -> Result<Schedule, PlanningError> {
    let candidates = Candidates::new(workflow, agents)?;
    let topological = topological_order(workflow);
    let order = priority_list(workflow, &topological, &candidates);
    let heft = place(workflow, agents, &candidates, &order, Rule::EarliestFinish)?;
    let plain = place(
        workflow,
        agents,
        &candidates,
        &topological,
        Rule::EarliestStart,
    )?;
    let ((slots, lanes), origin) = if makespan(&plain.0) < makespan(&heft.0) {
        (plain, ScheduleOrigin::PlainList)
    } else {
        (heft, ScheduleOrigin::Heft)
    };
    Ok(Schedule::new(workflow, agents.ids(), slots, lanes, origin))
}

/// HEFT's priority list: the steps by upward rank, highest first; equal
/// ranks keep their order in `topological`.
fn priority_list(
    workflow: &WorkflowDef,
    topological: &[usize],
    candidates: &Candidates,
) -> Vec<usize> {
    let ranks = upward_ranks(workflow, topological, candidates);
    let mut order = topological.to_vec();
    // Stable: equal ranks keep their topological order.
    order.sort_by_key(|&step| Reverse(ranks[step]));
    order
}

/// When the last of `slots` finishes.
fn makespan(slots: &[ScheduledStep]) -> Duration {
    slots
        .iter()
        .map(|slot| slot.finish)
        .max()
        .unwrap_or(Duration::ZERO)
}

/// How [`place`] chooses a step's agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rule {
    /// HEFT: where the step finishes earliest, filling idle gaps.
    EarliestFinish,
    /// The plain list schedule: where the step starts earliest, after the
    /// agent's last step.
    EarliestStart,
}

/// The agents capable of each step, in matrix order, with the step's
/// execution time on each: a compressed list per step. A step no agent
/// runs has no agents and a host time instead.
struct Candidates {
    /// `entries[start[i]..start[i + 1]]` are step `i`'s.
    start: Vec<usize>,
    /// (agent position in the matrix, agent, execution time).
    entries: Vec<(usize, AgentId, Duration)>,
    /// By step index: how long a step no agent runs takes (its estimate,
    /// or zero), `None` for an agent step.
    host: Vec<Option<Duration>>,
}

impl Candidates {
    /// Checks every agent step in declaration order: an estimate, then at
    /// least one capable agent of non-zero capacity.
    fn new(workflow: &WorkflowDef, agents: &CapabilityMatrix) -> Result<Self, PlanningError> {
        let mut start = Vec::with_capacity(workflow.len() + 1);
        let mut entries = Vec::new();
        let mut host = Vec::with_capacity(workflow.len());
        start.push(0);
        // Steps often share their requirements: each list is matched once.
        let mut capable: BTreeMap<&[String], Vec<usize>> = BTreeMap::new();
        for (_, step) in workflow.steps() {
            if !step.is_agent() {
                host.push(Some(step.estimated_duration.unwrap_or(Duration::ZERO)));
                start.push(entries.len());
                continue;
            }
            host.push(None);
            let Some(work) = step.estimated_duration else {
                return Err(PlanningError::MissingEstimate {
                    step: step.id.clone(),
                });
            };
            let positions = capable
                .entry(step.capabilities.as_slice())
                .or_insert_with(|| {
                    agents
                        .agents()
                        .iter()
                        .enumerate()
                        .filter(|(_, agent)| {
                            agent.capacity > 0 && agent.has_all(&step.capabilities)
                        })
                        .map(|(position, _)| position)
                        .collect()
                });
            let before = entries.len();
            entries.extend(positions.iter().filter_map(|&position| {
                let agent = agents.agents().get(position)?;
                Some((position, agent.id, agent.time_for(work)))
            }));
            if entries.len() == before {
                return Err(PlanningError::NoCapableAgent {
                    step: step.id.clone(),
                    capabilities: step.capabilities.clone(),
                });
            }
            start.push(entries.len());
        }
        Ok(Candidates {
            start,
            entries,
            host,
        })
    }

    /// How long `step` takes if no agent runs it.
    fn host_time(&self, step: usize) -> Option<Duration> {
        self.host.get(step).copied().flatten()
    }

    /// Step `step`'s capable agents and execution times.
    fn of(&self, step: usize) -> &[(usize, AgentId, Duration)] {
        match (self.start.get(step), self.start.get(step + 1)) {
            (Some(&from), Some(&to)) => self.entries.get(from..to).unwrap_or(&[]),
            _ => &[],
        }
    }

    /// Mean execution time of `step` over its capable agents, in
    /// nanoseconds.
    fn mean_nanos(&self, step: usize) -> u128 {
        if let Some(time) = self.host_time(step) {
            return time.as_nanos();
        }
        let times = self.of(step);
        let total = times.iter().fold(0u128, |sum, (_, _, time)| {
            sum.saturating_add(time.as_nanos())
        });
        total / (times.len().max(1) as u128)
    }
}

/// The step indices in the topological order that always takes the lowest
/// ready index (Kahn's algorithm with a min-heap).
fn topological_order(workflow: &WorkflowDef) -> Vec<usize> {
    let n = workflow.len();
    let mut waiting: Vec<usize> = workflow
        .steps()
        .map(|(id, _)| workflow.predecessors(id).len())
        .collect();
    let mut ready: BinaryHeap<Reverse<usize>> = waiting
        .iter()
        .enumerate()
        .filter(|&(_, &count)| count == 0)
        .map(|(step, _)| Reverse(step))
        .collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(step)) = ready.pop() {
        order.push(step);
        for (next, _) in workflow.successors(StepId::new(step as u64)) {
            let next = next.get() as usize;
            if let Some(count) = waiting.get_mut(next) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    ready.push(Reverse(next));
                }
            }
        }
    }
    // A definition is acyclic, so every step was reached; should one not
    // be, it still gets planned, after the others.
    if order.len() < n {
        let mut seen = vec![false; n];
        for &step in &order {
            seen[step] = true;
        }
        order.extend((0..n).filter(|&step| !seen[step]));
    }
    order
}

/// The upward rank of each step, in nanoseconds, by step index.
fn upward_ranks(
    workflow: &WorkflowDef,
    topological: &[usize],
    candidates: &Candidates,
) -> Vec<u128> {
    let mut ranks = vec![0u128; workflow.len()];
    for &step in topological.iter().rev() {
        let below = workflow
            .successors(StepId::new(step as u64))
            .map(|(next, _)| ranks.get(next.get() as usize).copied().unwrap_or(0))
            .max()
            .unwrap_or(0);
        ranks[step] = candidates.mean_nanos(step).saturating_add(below);
    }
    ranks
}

/// A step planned on an agent's timeline.
#[derive(Clone, Copy, Debug)]
struct Busy {
    start: Duration,
    finish: Duration,
    step: usize,
}

/// The earliest start of a step of `length` ready at `ready` on an agent
/// busy with `lane` (sorted by start, not overlapping, so also by finish),
/// and the position to insert it at: the first idle gap from `ready` on
/// that holds it, or after the last step.
fn earliest_start(lane: &[Busy], ready: Duration, length: Duration) -> (Duration, usize) {
    // Most often the agent is idle by then.
    if lane.last().is_none_or(|last| last.finish <= ready) {
        return (ready, lane.len());
    }
    // Gaps that close by `ready` cannot hold the step.
    let first = lane.partition_point(|busy| busy.finish <= ready);
    let mut start = ready;
    for (offset, busy) in lane.iter().enumerate().skip(first) {
        if start
            .checked_add(length)
            .is_some_and(|end| end <= busy.start)
        {
            return (start, offset);
        }
        start = start.max(busy.finish);
    }
    (start, lane.len())
}

/// Agent selection: each step of `order` on the capable agent `rule`
/// prefers (ties to the earlier agent). Returns the slots by step index,
/// and the step indices on each agent by start.
fn place(
    workflow: &WorkflowDef,
    agents: &CapabilityMatrix,
    candidates: &Candidates,
    order: &[usize],
    rule: Rule,
) -> Result<(Vec<ScheduledStep>, Vec<Vec<usize>>), PlanningError> {
    let mut lanes: Vec<Vec<Busy>> = vec![Vec::new(); agents.len()];
    // Each placeholder is overwritten: `order` holds every step.
    let mut slots: Vec<ScheduledStep> = workflow
        .steps()
        .map(|(step, _)| ScheduledStep {
            step,
            agent: None,
            start: Duration::ZERO,
            finish: Duration::ZERO,
        })
        .collect();
    for &step in order {
        let id = StepId::new(step as u64);
        // `order` is topological: every predecessor is placed.
        let ready = workflow
            .predecessors(id)
            .map(|(before, _)| {
                slots
                    .get(before.get() as usize)
                    .map_or(Duration::ZERO, |s| s.finish)
            })
            .max()
            .unwrap_or(Duration::ZERO);
        if let Some(time) = candidates.host_time(step) {
            slots[step] = ScheduledStep {
                step: id,
                agent: None,
                start: ready,
                finish: ready.saturating_add(time),
            };
            continue;
        }
        // (finish, start, agent position, agent, insertion point)
        let mut best: Option<(Duration, Duration, usize, AgentId, usize)> = None;
        for &(position, agent, length) in candidates.of(step) {
            let Some(lane) = lanes.get(position) else {
                continue;
            };
            let (start, at) = match rule {
                Rule::EarliestFinish => earliest_start(lane, ready, length),
                Rule::EarliestStart => (
                    lane.last().map_or(ready, |last| last.finish.max(ready)),
                    lane.len(),
                ),
            };
            let finish = start.saturating_add(length);
            let better =
                |(best_finish, best_start, ..): (Duration, Duration, usize, AgentId, usize)| {
                    match rule {
                        Rule::EarliestFinish => finish < best_finish,
                        Rule::EarliestStart => start < best_start,
                    }
                };
            if best.is_none_or(better) {
                best = Some((finish, start, position, agent, at));
            }
        }
        // Unreachable: `Candidates::new` found a capable agent for each step.
        let Some((finish, start, position, agent, at)) = best else {
            let def = workflow.step(id);
            return Err(PlanningError::NoCapableAgent {
                step: def.map(|d| d.id.clone()).unwrap_or_default(),
                capabilities: def.map(|d| d.capabilities.clone()).unwrap_or_default(),
            });
        };
        if let Some(lane) = lanes.get_mut(position) {
            lane.insert(
                at,
                Busy {
                    start,
                    finish,
                    step,
                },
            );
        }
        slots[step] = ScheduledStep {
            step: id,
            agent: Some(agent),
            start,
            finish,
        };
    }
    let lanes = lanes
        .into_iter()
        .map(|lane| lane.into_iter().map(|busy| busy.step).collect())
        .collect();
    Ok((slots, lanes))
}
