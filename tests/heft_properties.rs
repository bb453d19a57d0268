//! Properties of HEFT schedules on random DAGs and pools. Case counts
//! follow `PROPTEST_CASES`; inputs stay small (at most 30 steps, 6 agents).

#![cfg(feature = "planning")]

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::subsequence;
use taskweave::planning::{
    CapabilityMatrix, PlanAgent, PlanningError, Schedule, ScheduleOrigin, TaskTensor,
    TensorOptions, heft,
};
use taskweave::workflow::{StepDef, StepKind, WorkflowDef};
use taskweave::{AgentId, StepId, TaskId};

const CAPABILITIES: [&str; 3] = ["cpu", "gpu", "io"];
const MAX_STEPS: usize = 30;
const MAX_AGENTS: usize = 6;

/// A workflow and a pool, as plain data so that proptest shrinks it and
/// prints it readably.
#[derive(Clone, Debug)]
struct Instance {
    /// Estimate in milliseconds (`None`: missing) and required capabilities.
    steps: Vec<(Option<u64>, Vec<&'static str>)>,
    /// Whether each step runs in the host (a local step) rather than on
    /// an agent.
    host: Vec<bool>,
    /// `(from, to)`, always `from < to`.
    edges: Vec<(usize, usize)>,
    /// Speed and capabilities.
    agents: Vec<(f64, Vec<&'static str>)>,
}

impl Instance {
    fn workflow(&self) -> WorkflowDef {
        let mut builder = WorkflowDef::builder("random", 1);
        for (i, (estimate, capabilities)) in self.steps.iter().enumerate() {
            let key = format!("s{i}");
            let kind = if self.host[i] {
                StepDef::local(key)
            } else {
                StepDef::agent(key)
            };
            let mut step = kind.capabilities(capabilities.iter().copied());
            if let Some(ms) = estimate {
                step = step.estimated_duration(Duration::from_millis(*ms));
            }
            builder = builder.step(step);
        }
        for &(from, to) in &self.edges {
            builder = builder.edge(format!("s{from}"), format!("s{to}"));
        }
        builder.build().expect("a valid DAG")
    }

    fn matrix(&self) -> CapabilityMatrix {
        CapabilityMatrix::new(self.agents.iter().enumerate().map(|(i, (speed, caps))| {
            PlanAgent::new(AgentId::new(10 + i as u64), caps.iter().copied()).speed(*speed)
        }))
        .expect("valid agents")
    }
}

fn capabilities(most: usize) -> impl Strategy<Value = Vec<&'static str>> {
    subsequence(CAPABILITIES.to_vec(), 0..=most)
}

fn speed() -> impl Strategy<Value = f64> {
    prop_oneof![
        2 => 0.25f64..=4.0,
        1 => prop::sample::select(vec![0.25, 0.5, 1.0, 2.0, 4.0]),
    ]
}

fn estimate() -> impl Strategy<Value = u64> {
    prop_oneof![4 => 1u64..=10_000, 1 => Just(0u64), 1 => Just(1_000u64)]
}

/// A random DAG of 1 to [`MAX_STEPS`] steps (each with up to 3 earlier
/// steps as predecessors) and 1 to [`MAX_AGENTS`] agents, every step with an
/// estimate and a capable agent.
fn instance() -> impl Strategy<Value = Instance> {
    let steps = prop::collection::vec(
        (
            estimate(),
            capabilities(2),
            prop::collection::vec(any::<prop::sample::Index>(), 0..=3),
            prop::bool::weighted(0.15),
        ),
        1..=MAX_STEPS,
    );
    let agents = prop::collection::vec((speed(), capabilities(3)), 1..=MAX_AGENTS);
    (steps, agents).prop_map(|(steps, mut agents)| {
        let mut edges = BTreeSet::new();
        for (to, (_, _, predecessors, _)) in steps.iter().enumerate() {
            if to > 0 {
                edges.extend(predecessors.iter().map(|p| (p.index(to), to)));
            }
        }
        let host: Vec<bool> = steps.iter().map(|step| step.3).collect();
        let steps: Vec<(Option<u64>, Vec<&'static str>)> = steps
            .into_iter()
            .map(|(ms, caps, _, _)| (Some(ms), caps))
            .collect();
        // Every step gets a capable agent.
        for (i, (_, caps)) in steps.iter().enumerate() {
            let capable = agents
                .iter()
                .any(|(_, have)| caps.iter().all(|c| have.contains(c)));
            if !capable {
                let at = i % agents.len();
                for c in caps {
                    if !agents[at].1.contains(c) {
                        agents[at].1.push(c);
                    }
                }
            }
        }
        Instance {
            steps,
            host,
            edges: edges.into_iter().collect(),
            agents,
        }
    })
}

fn agent_of(matrix: &CapabilityMatrix, id: AgentId) -> &PlanAgent {
    matrix.get(id).expect("an agent of the matrix")
}

fn estimate_of(workflow: &WorkflowDef, step: StepId) -> Duration {
    workflow
        .step(step)
        .and_then(|s| s.estimated_duration)
        .expect("an estimate")
}

fn is_host(workflow: &WorkflowDef, step: StepId) -> bool {
    !matches!(workflow.step(step).expect("a step").kind, StepKind::Agent)
}

fn capable<'m>(
    workflow: &'m WorkflowDef,
    matrix: &'m CapabilityMatrix,
    step: StepId,
) -> Vec<&'m PlanAgent> {
    let caps = &workflow.step(step).expect("a step").capabilities;
    matrix.capable(caps).collect()
}

/// The naive list schedule: steps in topological order (the lowest ready
/// index first), each appended on the capable agent where it can start
/// earliest, ties to the first agent in matrix order. Returns its makespan.
fn naive_list_makespan(workflow: &WorkflowDef, matrix: &CapabilityMatrix) -> Duration {
    let n = workflow.len();
    let mut waiting: Vec<usize> = (0..n)
        .map(|i| workflow.predecessors(StepId::new(i as u64)).len())
        .collect();
    let mut ready: BinaryHeap<Reverse<usize>> =
        (0..n).filter(|&i| waiting[i] == 0).map(Reverse).collect();
    let mut free = vec![Duration::ZERO; matrix.len()];
    let mut finish = vec![Duration::ZERO; n];
    while let Some(Reverse(i)) = ready.pop() {
        let id = StepId::new(i as u64);
        let at = workflow
            .predecessors(id)
            .map(|(p, _)| finish[p.get() as usize])
            .max()
            .unwrap_or(Duration::ZERO);
        if is_host(workflow, id) {
            finish[i] = at + estimate_of(workflow, id);
        } else {
            let caps = &workflow.step(id).expect("a step").capabilities;
            let (agent, start) = matrix
                .agents()
                .iter()
                .enumerate()
                .filter(|(_, a)| a.has_all(caps))
                .map(|(position, _)| (position, at.max(free[position])))
                .min_by_key(|&(position, start)| (start, position))
                .expect("a capable agent");
            let end = start + matrix.agents()[agent].time_for(estimate_of(workflow, id));
            free[agent] = end;
            finish[i] = end;
        }
        for (next, _) in workflow.successors(id) {
            let next = next.get() as usize;
            waiting[next] -= 1;
            if waiting[next] == 0 {
                ready.push(Reverse(next));
            }
        }
    }
    finish.into_iter().max().unwrap_or(Duration::ZERO)
}

fn plan(instance: &Instance) -> (WorkflowDef, CapabilityMatrix, Schedule) {
    let workflow = instance.workflow();
    let matrix = instance.matrix();
    let schedule = heft(&workflow, &matrix).expect("every step has an estimate and an agent");
    (workflow, matrix, schedule)
}

proptest! {
    /// Every step is planned once, on an agent that has its capabilities,
    /// for exactly that agent's time for it, after all its dependencies.
    #[test]
    fn steps_are_planned_once_on_capable_agents_after_their_dependencies(instance in instance()) {
        let (workflow, matrix, schedule) = plan(&instance);
        prop_assert_eq!(schedule.slots().len(), workflow.len());
        for (i, slot) in schedule.slots().iter().enumerate() {
            prop_assert_eq!(slot.step, StepId::new(i as u64));
            prop_assert_eq!(schedule.slot(slot.step), Some(slot));
            let work = estimate_of(&workflow, slot.step);
            let ready = workflow
                .predecessors(slot.step)
                .map(|(before, _)| schedule.slot(before).unwrap().finish)
                .max()
                .unwrap_or(Duration::ZERO);
            prop_assert!(slot.start >= ready, "{:?} starts before its dependencies finish", slot);
            if is_host(&workflow, slot.step) {
                // No agent: a delay of its estimate from its ready time.
                prop_assert_eq!(slot.agent, None);
                prop_assert_eq!((slot.start, slot.finish - slot.start), (ready, work));
            } else {
                let agent = agent_of(&matrix, slot.agent.expect("an agent step has an agent"));
                let caps = &workflow.step(slot.step).unwrap().capabilities;
                prop_assert!(agent.has_all(caps), "{:?} on {} lacking {:?}", slot.step, agent.id, caps);
                prop_assert_eq!(slot.finish - slot.start, agent.time_for(work));
            }
        }
        prop_assert_eq!(schedule.slot(StepId::new(workflow.len() as u64)), None);
    }

    /// An agent runs one step at a time; `on_agent` lists its steps by
    /// start, and together the agents list every step once.
    #[test]
    fn no_two_steps_overlap_on_an_agent(instance in instance()) {
        let (workflow, matrix, schedule) = plan(&instance);
        let mut seen = BTreeSet::new();
        for agent in matrix.agents() {
            let lane: Vec<_> = schedule.on_agent(agent.id).collect();
            for pair in lane.windows(2) {
                prop_assert!(pair[0].finish <= pair[1].start, "{:?} overlaps {:?}", pair[0], pair[1]);
            }
            for slot in lane {
                prop_assert_eq!(slot.agent, Some(agent.id));
                prop_assert!(seen.insert(slot.step));
            }
        }
        let agent_steps = workflow.steps().filter(|&(id, _)| !is_host(&workflow, id)).count();
        prop_assert_eq!(seen.len(), agent_steps);
        prop_assert_eq!(schedule.on_agent(AgentId::new(u64::MAX)).count(), 0);
    }

    /// The makespan is the latest finish, and the critical path is a tight
    /// chain from zero to it: each step starts as the one before it (a
    /// dependency, or the previous step on the same agent) finishes.
    #[test]
    fn the_critical_path_is_a_tight_chain_ending_at_the_makespan(instance in instance()) {
        let (workflow, _, schedule) = plan(&instance);
        let latest = schedule.slots().iter().map(|s| s.finish).max().unwrap();
        prop_assert_eq!(schedule.makespan(), latest);
        let path: Vec<_> = schedule.critical_path().iter().map(|&s| *schedule.slot(s).unwrap()).collect();
        prop_assert!(!path.is_empty());
        prop_assert_eq!(path[0].start, Duration::ZERO);
        let last = path[path.len() - 1];
        prop_assert_eq!(last.finish, schedule.makespan());
        let first_to_finish_last = schedule.slots().iter().find(|s| s.finish == latest).unwrap();
        prop_assert_eq!(last.step, first_to_finish_last.step);
        for pair in path.windows(2) {
            let (before, after) = (pair[0], pair[1]);
            prop_assert_eq!(before.finish, after.start);
            let dependency = workflow.predecessors(after.step).any(|(p, _)| p == before.step);
            let previous_on_agent = after.agent.is_some_and(|agent| {
                let lane: Vec<_> = schedule.on_agent(agent).map(|s| s.step).collect();
                let at = lane.iter().position(|&s| s == after.step).unwrap();
                at > 0 && lane[at - 1] == before.step
            });
            prop_assert!(dependency || previous_on_agent, "{:?} does not lead to {:?}", before, after);
        }
        let distinct: BTreeSet<_> = schedule.critical_path().iter().collect();
        prop_assert_eq!(distinct.len(), path.len());
    }

    /// HEFT never takes longer than running every step one after the other
    /// on its fastest capable agent.
    #[test]
    fn the_makespan_is_at_most_the_sum_of_fastest_times(instance in instance()) {
        let (workflow, matrix, schedule) = plan(&instance);
        let bound: Duration = workflow
            .steps()
            .map(|(id, _)| {
                let work = estimate_of(&workflow, id);
                if is_host(&workflow, id) {
                    return work;
                }
                capable(&workflow, &matrix, id).iter().map(|a| a.time_for(work)).min().unwrap()
            })
            .sum();
        prop_assert!(schedule.makespan() <= bound, "makespan {:?} > bound {:?}", schedule.makespan(), bound);
    }

    /// The plan is never worse than the naive list schedule (topological
    /// order, earliest start, appending only), computed here independently.
    /// HEFT alone loses to it on about 5 % of these instances (the smallest
    /// found: steps of 5, 6 and 4 s on agents of speed 4 and 3; see the
    /// unit test `the_plain_list_schedule_is_kept_when_it_is_shorter`), so
    /// `heft` keeps the shorter of the two; this checks that it does, and
    /// that its plain schedule is the naive one.
    #[test]
    fn heft_is_never_worse_than_a_naive_list_schedule(instance in instance()) {
        let (workflow, matrix, schedule) = plan(&instance);
        let naive = naive_list_makespan(&workflow, &matrix);
        prop_assert!(schedule.makespan() <= naive, "plan {:?} > naive {:?}", schedule.makespan(), naive);
        if schedule.origin() == ScheduleOrigin::PlainList {
            prop_assert_eq!(schedule.makespan(), naive);
        }
    }

    /// The same inputs give the same schedule, and its tensor is one-hot on
    /// each step's agent; the Gantt chart has one bar per step.
    #[test]
    fn schedules_are_deterministic_and_export_consistently(instance in instance()) {
        let (workflow, matrix, schedule) = plan(&instance);
        prop_assert_eq!(&heft(&workflow, &matrix).unwrap(), &schedule);
        let tasks = schedule.tensor_tasks();
        let tensor = TaskTensor::from_plan(&matrix.ids(), &tasks, &TensorOptions::new()).unwrap();
        let on_agents: Vec<_> = schedule.slots().iter().filter(|s| s.agent.is_some()).collect();
        prop_assert_eq!(tensor.nnz(), on_agents.len());
        for (row, slot) in on_agents.into_iter().enumerate() {
            prop_assert_eq!(tensor.index().task_id(row), Some(TaskId::new(slot.step.get())));
            let agent = matrix.position(slot.agent.unwrap()).unwrap();
            let priority = workflow.step(slot.step).unwrap().priority;
            prop_assert_eq!(tensor.get(row, agent, priority), Some(1.0));
        }
        let gantt = schedule.mermaid_gantt();
        let bars = gantt.lines().filter(|l| l.starts_with("        ")).count();
        prop_assert_eq!(bars, workflow.len());
        let critical = gantt.lines().filter(|l| l.contains(" :crit, ")).count();
        prop_assert_eq!(critical, schedule.critical_path().len());
    }

    /// A step without an estimate or without a capable agent is refused,
    /// naming the first such step in declaration order (its estimate is
    /// checked before its capabilities).
    #[test]
    fn the_first_unplannable_step_is_reported(
        instance in instance(),
        missing in prop::collection::vec(any::<bool>(), MAX_STEPS),
        exotic in prop::collection::vec(any::<bool>(), MAX_STEPS),
        at in any::<prop::sample::Index>(),
    ) {
        let mut instance = instance;
        let n = instance.steps.len();
        instance.host = vec![false; n];
        let mut missing = missing[..n].to_vec();
        let mut exotic = exotic[..n].to_vec();
        // At least one offending step.
        let forced = at.index(n);
        if !missing[forced] && !exotic[forced] {
            if at.index(2) == 0 { missing[forced] = true } else { exotic[forced] = true }
        }
        for (i, (estimate, caps)) in instance.steps.iter_mut().enumerate() {
            if missing[i] {
                *estimate = None;
            }
            if exotic[i] {
                caps.push("quantum");
            }
        }
        let workflow = instance.workflow();
        let first = (0..n).find(|&i| missing[i] || exotic[i]).unwrap();
        let step = format!("s{first}");
        let expected = if missing[first] {
            PlanningError::MissingEstimate { step }
        } else {
            PlanningError::NoCapableAgent { step, capabilities: instance.steps[first].1.iter().map(|c| c.to_string()).collect() }
        };
        prop_assert_eq!(heft(&workflow, &instance.matrix()), Err(expected));
    }
}
