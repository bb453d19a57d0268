//! Turning a plan or a dispatcher into tensor rows: validation, capable
//! agents, the softmax. Both the dense and the sparse form are filled from
//! the same rows, through a [`Sink`].

use std::collections::HashMap;

use super::{TensorIndex, TensorOptions, TensorTask};
use crate::agent::{AgentRecord, AgentStatus, Registry};
use crate::planning::PlanningError;
use crate::routing::{Candidates, ResolvedRequirements, RoutingStrategy};
use crate::scheduler::{Dispatcher, TaskState};
use crate::{AgentId, Priority, TaskId, TaskRequirements};

/// `(agent index, probability)`: the non-zero entries of one task's slice,
/// all at the task's priority level, sorted by agent index.
pub(super) type Row = [(u32, f32)];

/// Where rows go: the dense array or the sparse coordinate lists.
pub(super) trait Sink {
    /// Records the slice of task `task`. Called once per task, in task
    /// order.
    fn row(&mut self, task: u32, priority: Priority, entries: &Row);
}

/// The index of a plan: tasks in the order given, agents in the order given.
pub(super) fn plan_index(
    agents: &[AgentId],
    tasks: &[TensorTask],
) -> Result<TensorIndex, PlanningError> {
    TensorIndex::new(tasks.iter().map(|t| t.task), agents.iter().copied())
}

/// An upper bound of the non-zeros of a plan, to reserve storage.
pub(super) fn plan_nnz_bound(tasks: &[TensorTask], options: &TensorOptions) -> usize {
    let k = options.top_k().unwrap_or(usize::MAX);
    tasks
        .iter()
        .map(|t| match t.assigned {
            Some(_) => 1,
            None => t.candidates.len().min(k),
        })
        .sum()
}

/// Validates every task of a plan and hands its row to `sink`.
pub(super) fn plan_rows(
    index: &TensorIndex,
    tasks: &[TensorTask],
    options: &TensorOptions,
    sink: &mut impl Sink,
) -> Result<(), PlanningError> {
    let agents = index.n_agents();
    let check = |task: TaskId, agent: usize| {
        u32::try_from(agent).ok().filter(|_| agent < agents).ok_or(
            PlanningError::AgentIndexOutOfRange {
                task,
                agent,
                agents,
            },
        )
    };
    let mut scored: Vec<(u32, f64)> = Vec::new();
    let mut row: Vec<(u32, f32)> = Vec::new();
    for (position, task) in (0u32..).zip(tasks) {
        scored.clear();
        for &(agent, score) in &task.candidates {
            let at = check(task.task, agent)?;
            if !score.is_finite() {
                return Err(PlanningError::NonFiniteScore {
                    task: task.task,
                    agent,
                    score,
                });
            }
            scored.push((at, score));
        }
        scored.sort_unstable_by_key(|&(agent, _)| agent);
        if let Some(pair) = scored.windows(2).find(|pair| pair[0].0 == pair[1].0) {
            return Err(PlanningError::DuplicateCandidate {
                task: task.task,
                agent: pair[0].0 as usize,
            });
        }
        match task.assigned {
            Some(agent) => {
                let at = check(task.task, agent)?;
                sink.row(position, task.priority, &[(at, 1.0)]);
            }
            None => {
                softmax(&mut scored, options, &mut row);
                sink.row(position, task.priority, &row);
            }
        }
    }
    Ok(())
}

/// Turns `(agent index, score)` pairs, sorted by agent index with finite
/// scores, into the non-zero probabilities of a softmax, sorted by agent
/// index. Overwrites `scored`.
pub(super) fn softmax(
    scored: &mut Vec<(u32, f64)>,
    options: &TensorOptions,
    out: &mut Vec<(u32, f32)>,
) {
    out.clear();
    if let Some(k) = options.top_k().filter(|&k| k > 0 && scored.len() > k) {
        // The k best: higher score first, then lower agent index. The order
        // is total over distinct agents, so the cut is deterministic.
        scored.select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored.truncate(k);
        scored.sort_unstable_by_key(|&(agent, _)| agent);
    }
    let Some(max) = scored.iter().map(|&(_, s)| s).reduce(f64::max) else {
        return;
    };
    let temperature = options.temperature();
    let mut sum = 0.0;
    for (_, s) in scored.iter_mut() {
        // `s − max ≤ 0`, so the exponential lies in [0, 1]; the maximum
        // contributes exactly 1, so the sum is at least 1.
        *s = ((*s - max) / temperature).exp();
        sum += *s;
    }
    out.extend(
        scored
            .iter()
            .map(|&(agent, weight)| (agent, (weight / sum) as f32))
            .filter(|&(_, p)| p != 0.0),
    );
}

/// The live tasks of a dispatcher, read once.
pub(super) struct Live<'a> {
    registry: &'a Registry,
    tasks: Vec<(TaskState, Priority, &'a TaskRequirements)>,
}

/// Reads the live tasks of `dispatcher`: the task axis in the dispatcher's
/// live-task order, the agent axis in registration order.
pub(super) fn live<P, S: RoutingStrategy>(
    dispatcher: &Dispatcher<P, S>,
) -> Result<(TensorIndex, Live<'_>), PlanningError> {
    let mut ids = Vec::with_capacity(dispatcher.live_tasks());
    let mut tasks = Vec::with_capacity(dispatcher.live_tasks());
    for (id, state, priority, requirements) in dispatcher.iter_live_tasks() {
        ids.push(id);
        tasks.push((state, priority, requirements));
    }
    let registry = dispatcher.registry();
    let index = TensorIndex::new(ids, registry.iter().map(AgentRecord::id))?;
    Ok((index, Live { registry, tasks }))
}

impl Live<'_> {
    /// The number of live tasks: a lower bound of the non-zeros when every
    /// task can be served.
    pub(super) fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Hands every live task's row to `sink`: one-hot on its agent when in
    /// flight, a softmax over the capable agents otherwise. Tasks with equal
    /// requirements share one distribution, computed once.
    pub(super) fn rows<F>(
        &self,
        index: &TensorIndex,
        options: &TensorOptions,
        mut score: F,
        sink: &mut impl Sink,
    ) -> Result<(), PlanningError>
    where
        F: FnMut(&ResolvedRequirements, &AgentRecord) -> f64,
    {
        let records: Vec<&AgentRecord> = self.registry.iter().collect();
        let mut cache: HashMap<&TaskRequirements, usize> = HashMap::new();
        let mut rows: Vec<Vec<(u32, f32)>> = Vec::new();
        let mut last: Option<(&TaskRequirements, usize)> = None;
        let mut scored = Vec::new();
        for ((position, &(state, priority, requirements)), &task) in
            (0u32..).zip(&self.tasks).zip(index.tasks())
        {
            if let TaskState::InFlight { agent, .. } = state {
                let at = index
                    .agent_index(agent)
                    .and_then(|at| u32::try_from(at).ok())
                    .ok_or(PlanningError::UnknownAgent { task, agent })?;
                sink.row(position, priority, &[(at, 1.0)]);
                continue;
            }
            let cached = match last {
                // Runs of tasks share their interned requirements.
                Some((previous, at)) if std::ptr::eq(previous, requirements) => Some(at),
                _ => cache.get(requirements).copied(),
            };
            let at = match cached {
                Some(at) => at,
                None => {
                    let row = self.candidate_row(
                        &records,
                        requirements,
                        task,
                        options,
                        &mut score,
                        &mut scored,
                    )?;
                    rows.push(row);
                    cache.insert(requirements, rows.len() - 1);
                    rows.len() - 1
                }
            };
            last = Some((requirements, at));
            sink.row(position, priority, rows.get(at).map_or(&[], Vec::as_slice));
        }
        Ok(())
    }

    /// The softmax over the agents capable of `requirements`: online, with
    /// the required capabilities and labels, not excluded or avoided, the
    /// pinned agent if pinned — free slot or not. Requirements that name a
    /// capability or label no agent has give an empty row.
    fn candidate_row<F>(
        &self,
        records: &[&AgentRecord],
        requirements: &TaskRequirements,
        task: TaskId,
        options: &TensorOptions,
        score: &mut F,
        scored: &mut Vec<(u32, f64)>,
    ) -> Result<Vec<(u32, f32)>, PlanningError>
    where
        F: FnMut(&ResolvedRequirements, &AgentRecord) -> f64,
    {
        scored.clear();
        let mut row = Vec::new();
        let Ok(resolved) = ResolvedRequirements::new(self.registry, requirements) else {
            return Ok(row);
        };
        let candidates = Candidates::new(self.registry, &resolved);
        for (at, record) in (0u32..).zip(records) {
            if record.status() != AgentStatus::Online || !candidates.admits_ignoring_load(record) {
                continue;
            }
            let value = score(&resolved, record);
            if !value.is_finite() {
                return Err(PlanningError::NonFiniteScore {
                    task,
                    agent: at as usize,
                    score: value,
                });
            }
            scored.push((at, value));
        }
        softmax(scored, options, &mut row);
        Ok(row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::AgentProfile;
    use crate::planning::{SparseTaskTensor, TaskTensor};
    use crate::scheduler::{Action, AttemptOutcome, DispatcherConfig, TaskReport, TaskSpec};
    use crate::{Instant, TaskId};

    fn register(dispatcher: &mut Dispatcher<&'static str>, id: u64, caps: &[&str], capacity: u32) {
        let profile = AgentProfile::builder()
            .capabilities(caps.iter().copied())
            .capacity(capacity)
            .build()
            .unwrap();
        dispatcher
            .register_agent(AgentId::new(id), profile, Instant::ZERO)
            .unwrap();
    }

    fn submit(
        dispatcher: &mut Dispatcher<&'static str>,
        priority: Priority,
        requirements: TaskRequirements,
    ) -> TaskId {
        let spec = TaskSpec::new("t")
            .priority(priority)
            .requirements(requirements);
        dispatcher.submit(spec, Instant::ZERO).unwrap().id()
    }

    fn assignments(dispatcher: &mut Dispatcher<&'static str>) -> Vec<(TaskId, AgentId)> {
        std::iter::from_fn(|| dispatcher.poll_action())
            .filter_map(|action| match action {
                Action::Assign { task, agent, .. } => Some((task, agent)),
                _ => None,
            })
            .collect()
    }

    /// Agents 1 and 2 have a GPU (one slot each), 3 only a CPU, 4 has a GPU
    /// but is offline.
    fn pool() -> Dispatcher<&'static str> {
        let mut dispatcher = Dispatcher::new(DispatcherConfig::default());
        register(&mut dispatcher, 1, &["gpu"], 1);
        register(&mut dispatcher, 2, &["gpu"], 1);
        register(&mut dispatcher, 3, &["cpu"], 2);
        register(&mut dispatcher, 4, &["gpu"], 1);
        dispatcher
            .set_agent_status(AgentId::new(4), AgentStatus::Offline, Instant::ZERO)
            .unwrap();
        dispatcher
    }

    #[test]
    fn in_flight_tasks_are_one_hot_and_waiting_ones_spread_over_capable_agents() {
        let mut dispatcher = pool();
        let gpu = TaskRequirements::new().require(["gpu"]);
        let running = [
            submit(&mut dispatcher, Priority::High, gpu.clone()),
            submit(&mut dispatcher, Priority::Critical, gpu.clone()),
        ];
        let waiting = submit(&mut dispatcher, Priority::Low, gpu.clone());
        let unknown = submit(
            &mut dispatcher,
            Priority::Normal,
            TaskRequirements::new().require(["tpu"]),
        );
        let pinned = submit(
            &mut dispatcher,
            Priority::Normal,
            gpu.clone().pin(AgentId::new(2)),
        );
        let placed = assignments(&mut dispatcher);
        assert_eq!(placed.len(), 2);

        let options = TensorOptions::new();
        let dense = TaskTensor::from_dispatcher(&dispatcher, &options).unwrap();
        let sparse = SparseTaskTensor::from_dispatcher(&dispatcher, &options).unwrap();
        assert_eq!(dense.to_sparse(), sparse);
        assert_eq!(dense.shape(), [5, 4, 4]);
        let index = dense.index();
        assert_eq!(index.agents(), [1, 2, 3, 4].map(AgentId::new));
        for (task, agent) in placed {
            assert!(running.contains(&task));
            let t = index.task_index(task).unwrap();
            let priority = if task == running[0] {
                Priority::High
            } else {
                Priority::Critical
            };
            assert_eq!(
                dense.get(t, index.agent_index(agent).unwrap(), priority),
                Some(1.0)
            );
            assert_eq!(dense.task_sum(t), Some(1.0));
        }
        // Busy GPU agents still count; the CPU agent and the offline one do not.
        let t = index.task_index(waiting).unwrap();
        let entries: Vec<_> = sparse
            .task_entries(t)
            .map(|e| (e.agent, e.priority))
            .collect();
        assert_eq!(entries, [(0, Priority::Low), (1, Priority::Low)]);
        assert!((sparse.task_sum(t).unwrap() - 1.0).abs() < 1e-6);
        assert_eq!(
            sparse.task_sum(index.task_index(unknown).unwrap()),
            Some(0.0)
        );
        let t = index.task_index(pinned).unwrap();
        assert_eq!(sparse.get(t, 1, Priority::Normal), Some(1.0));
    }

    #[test]
    fn delayed_tasks_wait_too_and_the_closure_chooses_the_scores() {
        let mut dispatcher = pool();
        let gpu = TaskRequirements::new().require(["gpu"]);
        let task = submit(&mut dispatcher, Priority::High, gpu.clone());
        let Some(Action::Assign { agent, token, .. }) = dispatcher.poll_action() else {
            panic!("assigned");
        };
        let report = TaskReport {
            task,
            agent,
            token,
            outcome: AttemptOutcome::failure("flaky"),
        };
        dispatcher.report(report, Instant::ZERO).unwrap();
        assert!(matches!(
            dispatcher.task_state(task),
            Some(TaskState::Delayed { .. })
        ));
        // Scores 1 and 2 at temperature 1 / ln 2: agent 2 twice as likely.
        let options = TensorOptions::new()
            .with_temperature(1.0 / 2f64.ln())
            .unwrap();
        let tensor = SparseTaskTensor::from_dispatcher_with(&dispatcher, &options, |_, a| {
            a.id().get() as f64
        })
        .unwrap();
        let values: Vec<f32> = tensor.task_entries(0).map(|e| e.value).collect();
        assert_eq!(values.len(), 2);
        assert!((values[1] / values[0] - 2.0).abs() < 1e-5, "{values:?}");

        let mut calls = 0;
        let error = TaskTensor::from_dispatcher_with(&dispatcher, &options, |_, _| {
            calls += 1;
            f64::NAN
        });
        assert!(matches!(
            error,
            Err(PlanningError::NonFiniteScore { task: t, agent: 0, .. }) if t == task
        ));
        assert_eq!(calls, 1);
    }

    #[test]
    fn tasks_with_equal_requirements_are_scored_once() {
        let mut dispatcher = Dispatcher::new(DispatcherConfig::default());
        register(&mut dispatcher, 1, &["gpu"], 1);
        register(&mut dispatcher, 2, &["gpu"], 1);
        register(&mut dispatcher, 3, &["cpu"], 1);
        dispatcher
            .drain_agent(AgentId::new(1), Instant::ZERO)
            .unwrap();
        dispatcher
            .drain_agent(AgentId::new(2), Instant::ZERO)
            .unwrap();
        dispatcher
            .drain_agent(AgentId::new(3), Instant::ZERO)
            .unwrap();
        for _ in 0..5 {
            submit(
                &mut dispatcher,
                Priority::Normal,
                TaskRequirements::new().require(["gpu"]),
            );
            submit(
                &mut dispatcher,
                Priority::Low,
                TaskRequirements::new().require(["cpu"]),
            );
        }
        // Draining agents take nothing new: no capable agent, zero slices.
        let none = TaskTensor::from_dispatcher(&dispatcher, &TensorOptions::new()).unwrap();
        assert_eq!(none.nnz(), 0);
        for id in 1..=3 {
            dispatcher
                .set_agent_status(AgentId::new(id), AgentStatus::Online, Instant::ZERO)
                .unwrap();
        }
        // Back online, they took three tasks; seven wait.
        assert_eq!(assignments(&mut dispatcher).len(), 3);
        let mut calls = 0;
        let tensor =
            SparseTaskTensor::from_dispatcher_with(&dispatcher, &TensorOptions::new(), |_, _| {
                calls += 1;
                0.0
            })
            .unwrap();
        // Two requirement sets: two GPU agents and one CPU agent scored.
        assert_eq!(calls, 3);
        assert_eq!(tensor.shape(), [10, 3, 4]);
        assert!(tensor.row_sums().iter().all(|&s| (s - 1.0).abs() < 1e-6));
        let top1 = TensorOptions::new().with_top_k(1).unwrap();
        let cut = SparseTaskTensor::from_dispatcher(&dispatcher, &top1).unwrap();
        assert_eq!(cut.nnz(), 10);
    }

    #[test]
    fn planning_errors_convert_into_the_crate_error() {
        let error: crate::Error = PlanningError::InvalidTopK { k: 0 }.into();
        assert_eq!(
            error.to_string(),
            "top-k must keep at least one candidate, got 0"
        );
        assert!(matches!(error, crate::Error::Planning(_)));
    }

    fn probabilities(scores: &[(u32, f64)], options: &TensorOptions) -> Vec<(u32, f32)> {
        let mut scored = scores.to_vec();
        let mut out = Vec::new();
        softmax(&mut scored, options, &mut out);
        out
    }

    #[test]
    fn softmax_sums_to_one_and_orders_by_score() {
        let out = probabilities(&[(0, 1.0), (3, 2.0), (5, 0.0)], &TensorOptions::new());
        let sum: f32 = out.iter().map(|&(_, p)| p).sum();
        assert!((sum - 1.0).abs() < 1e-6);
        assert_eq!(out.iter().map(|&(a, _)| a).collect::<Vec<_>>(), [0, 3, 5]);
        assert!(out[1].1 > out[0].1 && out[0].1 > out[2].1);
        // e^1 / (e^0 + e^1 + e^2)
        let expected = (1f64.exp() / (1.0 + 1f64.exp() + 2f64.exp())) as f32;
        assert_eq!(out[0].1, expected);
    }

    #[test]
    fn softmax_is_stable_for_huge_scores_and_sharp_temperatures() {
        let out = probabilities(
            &[(0, 1e300), (1, -1e300), (2, 1e300)],
            &TensorOptions::new(),
        );
        assert_eq!(out, [(0, 0.5), (2, 0.5)]);
        let sharp = TensorOptions::new().with_temperature(1e-6).unwrap();
        assert_eq!(probabilities(&[(0, 0.5), (1, 0.6)], &sharp), [(1, 1.0)]);
        let flat = TensorOptions::new().with_temperature(1e12).unwrap();
        assert_eq!(
            probabilities(&[(0, 0.0), (1, 10.0)], &flat),
            [(0, 0.5), (1, 0.5)]
        );
        assert!(probabilities(&[], &TensorOptions::new()).is_empty());
    }

    #[test]
    fn top_k_keeps_the_best_with_ties_to_the_lower_index() {
        let top2 = TensorOptions::new().with_top_k(2).unwrap();
        let out = probabilities(&[(0, 1.0), (1, 3.0), (2, 3.0), (3, 3.0)], &top2);
        assert_eq!(out, [(1, 0.5), (2, 0.5)]);
        let top9 = TensorOptions::new().with_top_k(9).unwrap();
        assert_eq!(probabilities(&[(4, 1.0)], &top9), [(4, 1.0)]);
    }
}
