//! [`Schedule`]: the plan [`heft`](super::heft) makes, and views of it.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::diagram::{gantt_head, line, mermaid_escape};
use crate::planning::TensorTask;
use crate::workflow::{WorkflowDef, display_name};
use crate::{AgentId, Priority, StepId, TaskId};

/// One step of a [`Schedule`]: the agent it is planned on and when, as
/// offsets from the plan's start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct ScheduledStep {
    /// The step.
    pub step: StepId,
    /// The agent that runs it; `None` for a step no agent runs (local,
    /// wait, sub-workflow), planned as a delay.
    pub agent: Option<AgentId>,
    /// When it starts.
    pub start: Duration,
    /// When it finishes: its start plus its execution time on the agent.
    pub finish: Duration,
}

impl ScheduledStep {
    /// How long it runs: `finish - start`.
    pub fn duration(&self) -> Duration {
        self.finish.saturating_sub(self.start)
    }
}

/// A plan made by [`heft`](super::heft): for each step of a workflow, the
/// agent that runs it and when, as [`Duration`] offsets from the plan's
/// start; the makespan; the critical path.
///
/// Each agent runs one step at a time; a step starts no earlier than its
/// predecessors' finish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// By step index.
    slots: Vec<ScheduledStep>,
    /// The matrix's agents, in its order.
    agents: Vec<AgentId>,
    /// Step indices on each agent (by position in `agents`), by start.
    lanes: Vec<Vec<usize>>,
    makespan: Duration,
    critical_path: Vec<StepId>,
    origin: ScheduleOrigin,
    /// The workflow's name, for the Gantt chart's title.
    title: String,
    /// By step index: display name and priority.
    steps: Vec<(String, Priority)>,
}

/// Which list schedule [`heft`](super::heft) returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ScheduleOrigin {
    /// HEFT's own: steps by upward rank, each where it finishes earliest.
    Heft,
    /// The plain list schedule, which finished sooner: steps in
    /// topological order, each appended on the capable agent where it can
    /// start earliest.
    PlainList,
}

impl Schedule {
    /// A schedule of `slots` (by step index, each step once) on `agents`,
    /// whose `lanes` list the step indices of each agent by start.
    pub(super) fn new(
        workflow: &WorkflowDef,
        agents: Vec<AgentId>,
        slots: Vec<ScheduledStep>,
        lanes: Vec<Vec<usize>>,
        origin: ScheduleOrigin,
    ) -> Self {
        let makespan = super::makespan(&slots);
        let critical_path = critical_path(workflow, &slots, &lanes);
        Schedule {
            slots,
            agents,
            lanes,
            makespan,
            critical_path,
            origin,
            title: workflow.name().to_string(),
            steps: workflow
                .steps()
                .map(|(id, step)| (display_name(id, step).into_owned(), step.priority))
                .collect(),
        }
    }

    /// Which list schedule this is.
    pub fn origin(&self) -> ScheduleOrigin {
        self.origin
    }

    /// Where and when `step` runs; `None` for a step the workflow lacks.
    pub fn slot(&self, step: StepId) -> Option<&ScheduledStep> {
        usize::try_from(step.get())
            .ok()
            .and_then(|index| self.slots.get(index))
    }

    /// Every step's slot, by step index.
    pub fn slots(&self) -> &[ScheduledStep] {
        &self.slots
    }

    /// When the last step finishes (zero if every step takes no time).
    pub fn makespan(&self) -> Duration {
        self.makespan
    }

    /// The chain of steps that determines the makespan, in execution order.
    ///
    /// It ends with the step that finishes last (the lowest step index among
    /// those finishing at the makespan) and walks back: before each step
    /// comes the step whose finish is that step's start, preferably one of
    /// its dependencies (the lowest step index among them), otherwise the
    /// step just before it on its agent. The walk stops at a step starting
    /// at zero, or where no step finishes at the start of the current one
    /// (HEFT never leaves such a gap: a step starts when a dependency or
    /// the previous step on its agent finishes, or at zero). Every step
    /// thus starts as the previous one finishes: shortening any of them may
    /// shorten the plan, delaying any delays it.
    pub fn critical_path(&self) -> &[StepId] {
        &self.critical_path
    }

    /// The steps planned on `agent`, by start (nothing for an agent not in
    /// the matrix the schedule was made for).
    pub fn on_agent(&self, agent: AgentId) -> impl Iterator<Item = &ScheduledStep> + '_ {
        let lane = self
            .agents
            .iter()
            .position(|&a| a == agent)
            .and_then(|position| self.lanes.get(position))
            .map_or(&[][..], Vec::as_slice);
        lane.iter().filter_map(|&step| self.slots.get(step))
    }

    /// The schedule as the rows of a task tensor: one [`TensorTask`] per
    /// agent step, by step index, one-hot on its agent — the axes of
    /// [`TaskTensor::from_plan`](crate::planning::TaskTensor::from_plan)
    /// with the matrix's [`ids`](crate::planning::CapabilityMatrix::ids). The task id is
    /// `TaskId::new(step index)`, the priority the step's
    /// [`priority`](crate::workflow::StepDef::priority), the agent its
    /// position in the matrix the schedule was made with. Steps no agent
    /// runs are not tasks and have no row.
    ///
    /// O(n log m) for `n` steps and `m` agents.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskweave::planning::{CapabilityMatrix, PlanAgent, TaskTensor, TensorOptions, heft};
    /// use taskweave::workflow::{StepDef, WorkflowDef};
    /// use taskweave::{AgentId, Priority};
    ///
    /// let workflow = WorkflowDef::builder("pair", 1)
    ///     .step(StepDef::agent("train").capabilities(["gpu"]).estimated_duration(Duration::from_secs(60)))
    ///     .step(StepDef::agent("report").priority(Priority::Low).estimated_duration(Duration::from_secs(5)))
    ///     .edge("train", "report")
    ///     .build()?;
    /// let agents = CapabilityMatrix::new([
    ///     PlanAgent::new(AgentId::new(10), ["cpu"]),
    ///     PlanAgent::new(AgentId::new(20), ["gpu"]).speed(0.5),
    /// ])?;
    /// let schedule = heft(&workflow, &agents)?;
    ///
    /// let tensor = TaskTensor::from_plan(
    ///     &agents.ids(),
    ///     &schedule.tensor_tasks(),
    ///     &TensorOptions::new(),
    /// )?;
    /// assert_eq!(tensor.shape(), [2, 2, 4]);
    /// // train on agent 20 (position 1), report on agent 10 (position 0).
    /// assert_eq!(tensor.get(0, 1, Priority::Normal), Some(1.0));
    /// assert_eq!(tensor.get(1, 0, Priority::Low), Some(1.0));
    /// assert_eq!(tensor.nnz(), 2);
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    pub fn tensor_tasks(&self) -> Vec<TensorTask> {
        let positions: BTreeMap<AgentId, usize> = self
            .agents
            .iter()
            .enumerate()
            .map(|(position, &agent)| (agent, position))
            .collect();
        self.slots
            .iter()
            .filter_map(|slot| {
                let position = *positions.get(&slot.agent?)?;
                let priority = self.priority(slot.step);
                Some(TensorTask::assigned_to(
                    TaskId::new(slot.step.get()),
                    priority,
                    position,
                ))
            })
            .collect()
    }

    fn priority(&self, step: StepId) -> Priority {
        usize::try_from(step.get())
            .ok()
            .and_then(|index| self.steps.get(index))
            .map_or(Priority::Normal, |&(_, priority)| priority)
    }

    fn label(&self, step: StepId) -> String {
        usize::try_from(step.get())
            .ok()
            .and_then(|index| self.steps.get(index))
            .map_or_else(
                || format!("s{}", step.get()),
                |(name, _)| mermaid_gantt_task(name, &format!("s{}", step.get())),
            )
    }

    /// A Mermaid Gantt chart of the schedule, in the style of
    /// [`workflow::mermaid_gantt`](crate::workflow::mermaid_gantt):
    ///
    /// - title `<workflow name> (HEFT)`; times in milliseconds from the
    ///   plan's start (a `%%` comment says so; `dateFormat x`, `axisFormat %s.%L`, `todayMarker
    ///   off`), a start rounded down and a finish up, so no step that takes
    ///   time is drawn empty;
    /// - one section per agent that has steps, named by its id
    ///   (`agent-7`), in matrix order, then a `host` section for the steps
    ///   no agent runs;
    /// - one bar per step on it, by start, named after the step (its name,
    ///   or its key if the name is blank) with Mermaid's entity codes for
    ///   the characters that would break the line (and for the first
    ///   character of a name that starts with a Gantt keyword such as
    ///   `section`), control characters and line separators as spaces,
    ///   and tagged `crit` when
    ///   it is on the [critical path](Self::critical_path).
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskweave::planning::{CapabilityMatrix, PlanAgent, heft};
    /// use taskweave::workflow::{StepDef, WorkflowDef};
    /// use taskweave::AgentId;
    ///
    /// let ms = Duration::from_millis;
    /// let workflow = WorkflowDef::builder("build", 1)
    ///     .step(StepDef::agent("compile").name("Compile: core").estimated_duration(ms(1_000)))
    ///     .step(StepDef::agent("docs").estimated_duration(ms(300)))
    ///     .step(StepDef::agent("test").estimated_duration(ms(500)))
    ///     .edge("compile", "test")
    ///     .build()?;
    /// let agents = CapabilityMatrix::new([
    ///     PlanAgent::new(AgentId::new(1), ["any"]),
    ///     PlanAgent::new(AgentId::new(2), ["any"]),
    /// ])?;
    /// let schedule = heft(&workflow, &agents)?;
    /// assert_eq!(
    ///     schedule.mermaid_gantt(),
    ///     "gantt\n\
    ///      \x20   title build (HEFT)\n\
    ///      \x20   %% times: milliseconds since the start\n\
    ///      \x20   dateFormat x\n\
    ///      \x20   axisFormat %s.%L\n\
    ///      \x20   todayMarker off\n\
    ///      \x20   section agent-1\n\
    ///      \x20       Compile#58; core :crit, 0, 1000\n\
    ///      \x20       test :crit, 1000, 1500\n\
    ///      \x20   section agent-2\n\
    ///      \x20       docs :0, 300\n"
    /// );
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    pub fn mermaid_gantt(&self) -> String {
        self.mermaid_gantt_named(|agent| agent.to_string())
    }

    /// [`mermaid_gantt`](Self::mermaid_gantt) with each agent's section
    /// named by `agent_name` (escaped like every other text), so the chart
    /// uses the names the host's other views use.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskweave::AgentId;
    /// use taskweave::planning::{heft, CapabilityMatrix, PlanAgent};
    /// use taskweave::workflow::{StepDef, WorkflowDef};
    ///
    /// let workflow = WorkflowDef::builder("essay", 1)
    ///     .step(StepDef::agent("write").estimated_duration(Duration::from_secs(60)))
    ///     .build()?;
    /// let agents = CapabilityMatrix::new([PlanAgent::new(AgentId::new(1), ["any"])])?;
    /// let chart = heft(&workflow, &agents)?.mermaid_gantt_named(|_| "ada".to_string());
    /// assert!(chart.contains("section ada\n"));
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    pub fn mermaid_gantt_named(&self, agent_name: impl Fn(AgentId) -> String) -> String {
        let mut critical = vec![false; self.slots.len()];
        for step in &self.critical_path {
            if let Some(flag) = usize::try_from(step.get())
                .ok()
                .and_then(|index| critical.get_mut(index))
            {
                *flag = true;
            }
        }
        let mut out = gantt_head(&format!("{} (HEFT)", self.title));
        let mut host: Vec<&ScheduledStep> =
            self.slots.iter().filter(|s| s.agent.is_none()).collect();
        host.sort_by_key(|slot| (slot.start, slot.step));
        let sections = self
            .agents
            .iter()
            .map(|&agent| (agent_name(agent), self.on_agent(agent).collect::<Vec<_>>()))
            .chain(std::iter::once(("host".to_string(), host)));
        for (section, bars) in sections {
            if bars.is_empty() {
                continue;
            }
            line(
                &mut out,
                1,
                format_args!("section {}", mermaid_escape(&section)),
            );
            for slot in bars {
                let start = millis(slot.start, false);
                let end = millis(slot.finish, true).max(start);
                let on_path = usize::try_from(slot.step.get())
                    .ok()
                    .and_then(|index| critical.get(index))
                    .is_some_and(|&flag| flag);
                let tag = if on_path { "crit, " } else { "" };
                let name = self.label(slot.step);
                line(&mut out, 2, format_args!("{name} :{tag}{start}, {end}"));
            }
        }
        out
    }
}

/// The keywords a line of a Mermaid Gantt chart may start with (matched
/// case-insensitively by Mermaid's lexer). A task named after one of them
/// would turn its bar into a statement.
const GANTT_KEYWORDS: [&str; 18] = [
    "gantt",
    "dateformat",
    "inclusiveenddates",
    "topaxis",
    "axisformat",
    "tickinterval",
    "includes",
    "excludes",
    "todaymarker",
    "weekday",
    "weekend",
    "title",
    "acctitle",
    "accdescr",
    "section",
    "click",
    "call",
    "href",
];

/// Text for the task name at the start of a Mermaid Gantt bar line:
/// `mermaid_escape`d (controls and line separators become spaces), never
/// blank (`fallback` stands in), and with its
/// first character written as an entity code if the line would otherwise
/// start with a Gantt keyword (`section`, `title`, `click`…).
fn mermaid_gantt_task(text: &str, fallback: &str) -> String {
    let escaped = mermaid_escape(text);
    let escaped = escaped.trim_start();
    if escaped.is_empty() {
        return mermaid_escape(fallback);
    }
    let lower = escaped.to_ascii_lowercase();
    match escaped.chars().next() {
        Some(first) if GANTT_KEYWORDS.iter().any(|k| lower.starts_with(k)) => {
            format!("#{};{}", u32::from(first), &escaped[first.len_utf8()..])
        }
        _ => escaped.to_string(),
    }
}

/// Whole milliseconds in `offset`, rounded down or up.
fn millis(offset: Duration, round_up: bool) -> u128 {
    let nanos = offset.as_nanos();
    if round_up {
        nanos.div_ceil(1_000_000)
    } else {
        nanos / 1_000_000
    }
}

/// See [`Schedule::critical_path`].
fn critical_path(
    workflow: &WorkflowDef,
    slots: &[ScheduledStep],
    lanes: &[Vec<usize>],
) -> Vec<StepId> {
    // The step finishing last; the lowest index among ties.
    let Some(mut current) = slots
        .iter()
        .enumerate()
        .fold(
            None,
            |best: Option<(usize, Duration)>, (index, slot)| match best {
                Some((_, finish)) if finish >= slot.finish => best,
                _ => Some((index, slot.finish)),
            },
        )
        .map(|(index, _)| index)
    else {
        return Vec::new();
    };
    // The step before each one on its agent.
    let mut before_on_agent: Vec<Option<usize>> = vec![None; slots.len()];
    for lane in lanes {
        for pair in lane.windows(2) {
            if let [previous, next] = *pair {
                if let Some(entry) = before_on_agent.get_mut(next) {
                    *entry = Some(previous);
                }
            }
        }
    }
    let mut on_path = vec![false; slots.len()];
    let mut path = Vec::new();
    while let Some(slot) = slots.get(current) {
        path.push(slot.step);
        if let Some(flag) = on_path.get_mut(current) {
            *flag = true;
        }
        if slot.start == Duration::ZERO {
            break;
        }
        let tight = |index: usize| {
            !on_path.get(index).copied().unwrap_or(true)
                && slots.get(index).is_some_and(|s| s.finish == slot.start)
        };
        let dependency = workflow
            .predecessors(slot.step)
            .map(|(step, _)| step.get() as usize)
            .filter(|&index| tight(index))
            .min();
        let agent = before_on_agent
            .get(current)
            .copied()
            .flatten()
            .filter(|&index| tight(index));
        match dependency.or(agent) {
            Some(next) => current = next,
            None => break,
        }
    }
    path.reverse();
    path
}
