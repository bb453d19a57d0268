//! Tensor shapes sized by untrusted input are refused with a typed error,
//! quickly and before the dense array is allocated.

#![cfg(all(feature = "serde", feature = "planning"))]

use std::time::{Duration, Instant as WallClock};

use taskweave::planning::{
    MAX_DENSE_CELLS, PlanningError, SparseTaskTensor, TaskTensor, TensorIndex, TensorOptions,
    TensorTask,
};
use taskweave::{AgentId, Priority, TaskId};

const QUICK: Duration = Duration::from_secs(20);

#[test]
fn a_plan_of_100k_tasks_by_100k_agents_is_refused_not_allocated() {
    let agents: Vec<AgentId> = (0..100_000).map(AgentId::new).collect();
    let tasks: Vec<TensorTask> = (0..100_000)
        .map(|t| TensorTask::assigned_to(TaskId::new(t), Priority::Normal, 0))
        .collect();
    let started = WallClock::now();
    let result = TaskTensor::from_plan(&agents, &tasks, &TensorOptions::new());
    assert_eq!(
        result,
        Err(PlanningError::TooLarge {
            tasks: 100_000,
            agents: 100_000
        })
    );
    assert!(started.elapsed() < QUICK);
    // The sparse form of the same plan is fine: it never touches n × m.
    let sparse = SparseTaskTensor::from_plan(&agents, &tasks, &TensorOptions::new()).unwrap();
    assert_eq!(sparse.nnz(), 100_000);
}

#[test]
fn a_small_sparse_json_naming_a_huge_shape_is_refused_by_to_dense() {
    let index = TensorIndex::new(
        (0..100_000).map(TaskId::new),
        (0..100_000).map(AgentId::new),
    )
    .unwrap();
    let sparse = SparseTaskTensor::from_entries(index, []).unwrap();
    let json = serde_json::to_string(&sparse).unwrap();
    assert!(json.len() < 2_000_000, "{} bytes", json.len());
    let restored: SparseTaskTensor = serde_json::from_str(&json).unwrap();
    let started = WallClock::now();
    assert_eq!(
        restored.to_dense(),
        Err(PlanningError::TooLarge {
            tasks: 100_000,
            agents: 100_000
        })
    );
    assert!(TaskTensor::try_from(&restored).is_err());
    assert!(started.elapsed() < QUICK);
}

#[test]
fn the_limit_is_exact_and_overflow_is_checked() {
    // Exactly at the limit is allowed in principle; one task more is not.
    let agents = MAX_DENSE_CELLS / 4 / 1024;
    let at_limit = TensorIndex::new(
        (0..1024).map(TaskId::new),
        (0..agents as u64).map(AgentId::new),
    )
    .unwrap();
    assert_eq!(1024 * agents * 4, MAX_DENSE_CELLS);
    let over = TensorIndex::new(
        (0..1025).map(TaskId::new),
        (0..agents as u64).map(AgentId::new),
    )
    .unwrap();
    let over = SparseTaskTensor::from_entries(over, []).unwrap();
    assert!(matches!(
        over.to_dense(),
        Err(PlanningError::TooLarge { .. })
    ));
    drop(at_limit);
}
