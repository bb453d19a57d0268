//! Properties of the task tensor, for plans and for dispatchers, in both
//! forms. Case counts follow `PROPTEST_CASES`; inputs stay small.

#![cfg(feature = "planning")]

use std::collections::BTreeSet;

use proptest::prelude::*;
use proptest::sample::subsequence;
use taskweave::agent::{AgentProfile, AgentStatus};
use taskweave::planning::{SparseTaskTensor, TaskTensor, TensorOptions, TensorTask};
use taskweave::scheduler::{Dispatcher, DispatcherConfig, TaskSpec, TaskState};
use taskweave::{AgentId, Instant, Priority, TaskId, TaskRequirements};

const TOLERANCE: f32 = 1e-5;

fn priority() -> impl Strategy<Value = Priority> {
    (0usize..4).prop_map(|i| Priority::ALL[i])
}

/// A score, often tied with others.
fn score() -> impl Strategy<Value = f64> {
    prop_oneof![3 => -50.0f64..50.0, 1 => Just(1.0), 1 => Just(-3.5)]
}

fn task(agents: usize, id: u64) -> impl Strategy<Value = TensorTask> {
    let candidates = subsequence((0..agents).collect::<Vec<_>>(), 0..=agents)
        .prop_shuffle()
        .prop_flat_map(|picked| {
            let n = picked.len();
            (Just(picked), proptest::collection::vec(score(), n))
        })
        .prop_map(|(picked, scores)| picked.into_iter().zip(scores).collect::<Vec<_>>());
    let assigned = if agents == 0 {
        Just(None).boxed()
    } else {
        proptest::option::weighted(0.3, 0..agents).boxed()
    };
    (priority(), assigned, candidates).prop_map(move |(priority, assigned, candidates)| {
        TensorTask {
            task: TaskId::new(id * 31 + 7),
            priority,
            assigned,
            candidates,
        }
    })
}

fn options() -> impl Strategy<Value = TensorOptions> {
    (0.01f64..100.0, proptest::option::of(1usize..6)).prop_map(|(temperature, top_k)| {
        let options = TensorOptions::new().with_temperature(temperature).unwrap();
        match top_k {
            Some(k) => options.with_top_k(k).unwrap(),
            None => options,
        }
    })
}

/// Agents, tasks and options of a valid plan.
fn plan() -> impl Strategy<Value = (Vec<AgentId>, Vec<TensorTask>, TensorOptions)> {
    (0usize..8, 0usize..12)
        .prop_flat_map(|(agents, tasks)| {
            let tasks: Vec<_> = (0..tasks as u64).map(|id| task(agents, id)).collect();
            (Just(agents), tasks, options())
        })
        .prop_map(|(agents, tasks, options)| {
            let agents = (0..agents as u64).map(|a| AgentId::new(100 + a)).collect();
            (agents, tasks, options)
        })
}

fn close_to_one(sum: f32) -> bool {
    (sum - 1.0).abs() <= TOLERANCE
}

proptest! {
    /// Each task's slice sums to 1, or to exactly 0 when it has no agent.
    #[test]
    fn every_slice_sums_to_one_or_to_zero_without_a_capable_agent((agents, tasks, options) in plan()) {
        let dense = TaskTensor::from_plan(&agents, &tasks, &options).unwrap();
        let sparse = SparseTaskTensor::from_plan(&agents, &tasks, &options).unwrap();
        let (dense_sums, sparse_sums) = (dense.row_sums(), sparse.row_sums());
        prop_assert_eq!(dense_sums.len(), tasks.len());
        for (t, task) in tasks.iter().enumerate() {
            let capable = task.assigned.is_some() || !task.candidates.is_empty();
            for sum in [dense_sums[t], sparse_sums[t], dense.task_sum(t).unwrap(), sparse.task_sum(t).unwrap()] {
                if capable {
                    prop_assert!(close_to_one(sum), "task {} sums to {}", t, sum);
                } else {
                    prop_assert_eq!(sum, 0.0);
                }
            }
        }
    }

    /// An assigned task holds exactly one non-zero: 1 at its agent and priority.
    #[test]
    fn assigned_tasks_are_one_hot_at_their_priority((agents, tasks, options) in plan()) {
        let dense = TaskTensor::from_plan(&agents, &tasks, &options).unwrap();
        for (t, task) in tasks.iter().enumerate() {
            let Some(agent) = task.assigned else { continue };
            let slice = dense.task_slice(t).unwrap();
            let non_zeros: Vec<_> = slice
                .indexed_iter()
                .filter(|(_, v)| **v != 0.0)
                .map(|((a, l), v)| (a, l, *v))
                .collect();
            prop_assert_eq!(non_zeros, vec![(agent, task.priority.index(), 1.0)]);
        }
    }

    /// Non-zeros sit only at a task's candidates, at its own priority level,
    /// at most `k` of them with a top-k cut, and a better score never gets
    /// less probability.
    #[test]
    fn non_zeros_only_at_capable_agents_and_the_tasks_own_level((agents, tasks, options) in plan()) {
        let sparse = SparseTaskTensor::from_plan(&agents, &tasks, &options).unwrap();
        for (t, task) in tasks.iter().enumerate() {
            let entries: Vec<_> = sparse.task_entries(t).collect();
            let allowed: BTreeSet<usize> = match task.assigned {
                Some(agent) => BTreeSet::from([agent]),
                None => task.candidates.iter().map(|&(a, _)| a).collect(),
            };
            for e in &entries {
                prop_assert_eq!(e.task, t);
                prop_assert_eq!(e.priority, task.priority);
                prop_assert!(allowed.contains(&e.agent), "agent {} not capable of task {}", e.agent, t);
                prop_assert!(e.value > 0.0 && e.value <= 1.0);
            }
            prop_assert!(entries.windows(2).all(|w| w[0].agent < w[1].agent));
            if task.assigned.is_none() {
                if let Some(k) = options.top_k() {
                    prop_assert!(entries.len() <= k);
                }
                let p = |agent: usize| sparse.get(t, agent, task.priority).unwrap();
                for &(a, sa) in &task.candidates {
                    for &(b, sb) in &task.candidates {
                        if sa > sb && p(b) > 0.0 {
                            prop_assert!(p(a) >= p(b), "score {} -> {}, score {} -> {}", sa, p(a), sb, p(b));
                        }
                    }
                }
            }
        }
    }

    /// dense → sparse → dense gives back the same tensor, bit for bit, and
    /// the sparse form built directly equals the one converted from dense.
    #[test]
    fn conversions_are_exact_and_direct_sparse_equals_converted((agents, tasks, options) in plan()) {
        let dense = TaskTensor::from_plan(&agents, &tasks, &options).unwrap();
        let direct = SparseTaskTensor::from_plan(&agents, &tasks, &options).unwrap();
        let converted = dense.to_sparse();
        prop_assert_eq!(&converted, &direct);
        prop_assert_eq!(converted.nnz(), dense.nnz());
        prop_assert_eq!(&converted.to_dense().unwrap(), &dense);
        prop_assert_eq!(dense.index(), direct.index());
        // Entries in any order rebuild the same sparse tensor.
        let mut entries: Vec<_> = direct.iter().collect();
        entries.reverse();
        let rebuilt = SparseTaskTensor::from_entries(direct.index().clone(), entries).unwrap();
        prop_assert_eq!(&rebuilt, &direct);
    }
}

/// One agent of a random pool: capabilities out of "a", "b", "c".
#[derive(Clone, Debug)]
struct PoolAgent {
    capabilities: Vec<&'static str>,
    capacity: u32,
    status: AgentStatus,
}

fn pool_agent() -> impl Strategy<Value = PoolAgent> {
    let status = prop_oneof![
        4 => Just(AgentStatus::Online),
        1 => Just(AgentStatus::Draining),
        1 => Just(AgentStatus::Offline),
    ];
    (subsequence(vec!["a", "b", "c"], 0..=3), 1u32..3, status).prop_map(
        |(capabilities, capacity, status)| PoolAgent {
            capabilities,
            capacity,
            status,
        },
    )
}

/// A task's required capabilities; "z" is one no agent has.
fn required() -> impl Strategy<Value = Vec<&'static str>> {
    subsequence(vec!["a", "b", "c", "z"], 0..=2)
}

proptest! {
    /// From a dispatcher: in-flight tasks are one-hot on their agent, waiting
    /// tasks spread over the online agents with every required capability
    /// (summing to 1, or to 0 when there is none), and both forms agree.
    #[test]
    fn dispatcher_tensors_follow_task_states_and_capabilities(
        pool in proptest::collection::vec(pool_agent(), 0..6),
        tasks in proptest::collection::vec((required(), priority()), 0..15),
        temperature in 0.05f64..5.0,
    ) {
        let mut dispatcher: Dispatcher<()> = Dispatcher::new(DispatcherConfig::default());
        for (i, agent) in pool.iter().enumerate() {
            let profile = AgentProfile::builder()
                .capabilities(agent.capabilities.iter().copied())
                .capacity(agent.capacity)
                .build()
                .unwrap();
            dispatcher.register_agent(AgentId::new(i as u64), profile, Instant::ZERO).unwrap();
            dispatcher.set_agent_status(AgentId::new(i as u64), agent.status, Instant::ZERO).unwrap();
        }
        let mut required_of = std::collections::BTreeMap::new();
        for (required, priority) in &tasks {
            let spec = TaskSpec::new(())
                .priority(*priority)
                .requirements(TaskRequirements::new().require(required.iter().copied()));
            let id = dispatcher.submit(spec, Instant::ZERO).unwrap().id();
            required_of.insert(id, (required.clone(), *priority));
        }
        let options = TensorOptions::new().with_temperature(temperature).unwrap();
        let dense = TaskTensor::from_dispatcher(&dispatcher, &options).unwrap();
        let sparse = SparseTaskTensor::from_dispatcher(&dispatcher, &options).unwrap();
        prop_assert_eq!(&dense.to_sparse(), &sparse);
        prop_assert_eq!(dense.shape(), [tasks.len(), pool.len(), 4]);
        let index = sparse.index();
        let sums = sparse.row_sums();
        for (t, &task) in index.tasks().iter().enumerate() {
            let (required, priority) = &required_of[&task];
            let entries: Vec<_> = sparse.task_entries(t).collect();
            prop_assert!(entries.iter().all(|e| e.priority == *priority));
            match dispatcher.task_state(task) {
                Some(TaskState::InFlight { agent, .. }) => {
                    let at = index.agent_index(agent).unwrap();
                    prop_assert_eq!(entries.iter().map(|e| (e.agent, e.value)).collect::<Vec<_>>(), vec![(at, 1.0)]);
                }
                state => {
                    let waiting = matches!(state, Some(TaskState::Queued | TaskState::Delayed { .. }));
                    prop_assert!(waiting, "unexpected state {:?}", state);
                    let capable: BTreeSet<usize> = pool
                        .iter()
                        .enumerate()
                        .filter(|(_, a)| {
                            a.status == AgentStatus::Online
                                && required.iter().all(|r| a.capabilities.contains(r))
                        })
                        .map(|(i, _)| index.agent_index(AgentId::new(i as u64)).unwrap())
                        .collect();
                    let got: BTreeSet<usize> = entries.iter().map(|e| e.agent).collect();
                    prop_assert!(got.is_subset(&capable), "{:?} not within {:?}", got, capable);
                    if capable.is_empty() {
                        prop_assert_eq!(sums[t], 0.0);
                    } else {
                        prop_assert!(close_to_one(sums[t]), "task {} sums to {}", t, sums[t]);
                    }
                }
            }
        }
    }
}
