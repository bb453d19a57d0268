use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;

fn drain<K: Ord + Clone>(saga: &mut Saga<K, u32>, fail: impl Fn(u32) -> bool) -> Vec<u32> {
    saga.compensate();
    let mut handed = Vec::new();
    while let Some(c) = saga.poll_compensation() {
        let (id, value) = (c.id, *c.value);
        handed.push(value);
        if fail(value) {
            saga.failed(id, format!("undo {value} failed")).unwrap();
        } else {
            saga.compensated(id).unwrap();
        }
    }
    handed
}

#[test]
fn hands_out_in_reverse_completion_order() {
    let mut saga = Saga::new();
    for i in 0u32..4 {
        saga.record(i, i * 10, i.checked_sub(1)).unwrap();
    }
    assert_eq!(drain(&mut saga, |_| false), [30, 20, 10, 0]);
    assert!(saga.is_done() && saga.is_complete());
    assert_eq!(saga.undone().count(), 0);
}

#[test]
fn nothing_is_handed_out_while_recording_or_in_progress() {
    let mut saga: Saga<&str, ()> = Saga::new();
    saga.record("a", (), []).unwrap();
    saga.record("b", (), []).unwrap();
    assert!(saga.poll_compensation().is_none());
    assert!(!saga.is_done());
    saga.compensate();
    let id = saga.poll_compensation().unwrap().id;
    assert_eq!(saga.in_progress(), Some(id));
    assert!(saga.poll_compensation().is_none());
    assert_eq!(saga.record("c", (), []), Err(SagaError::Compensating));
    assert_eq!(saga.depend("c", ["a"]), Err(SagaError::Compensating));
    let other = CompensationId::new(0);
    assert_eq!(
        saga.compensated(other),
        Err(SagaError::NotInProgress(other))
    );
    assert_eq!(
        saga.failed(other, "x"),
        Err(SagaError::NotInProgress(other))
    );
    saga.compensated(id).unwrap();
    assert_eq!(saga.compensated(id), Err(SagaError::NotInProgress(id)));
    assert_eq!(
        saga.get(id),
        Some((&"b", &(), CompensationStatus::Compensated))
    );
}

#[test]
fn an_empty_saga_is_done_at_once() {
    let mut saga: Saga<u8, ()> = Saga::new();
    assert!(saga.is_empty() && !saga.is_compensating());
    saga.compensate();
    assert!(saga.poll_compensation().is_none());
    assert!(saga.is_done() && saga.is_complete());
}

#[test]
fn a_failure_blocks_what_it_depends_on_transitively() {
    // hotel <- flight <- card; car is independent.
    let mut saga: Saga<&str, u32> = Saga::new();
    saga.record("car", 0, []).unwrap();
    saga.record("hotel", 1, []).unwrap();
    saga.record("flight", 2, ["hotel"]).unwrap();
    saga.record("card", 3, ["flight"]).unwrap();
    saga.compensate();
    let mut handed = Vec::new();
    while let Some(c) = saga.poll_compensation() {
        let (id, key) = (c.id, *c.key);
        handed.push(key);
        if key == "card" {
            saga.failed(id, "refund refused").unwrap();
        } else {
            saga.compensated(id).unwrap();
        }
    }
    assert_eq!(handed, ["card", "car"]);
    assert!(saga.is_done() && !saga.is_complete());
    let undone: Vec<(&str, Option<&str>)> = saga.undone().map(|u| (*u.key, u.failure)).collect();
    assert_eq!(
        undone,
        [
            ("card", Some("refund refused")),
            ("flight", None),
            ("hotel", None)
        ]
    );
}

#[test]
fn blocking_passes_through_declared_keys_and_self_dependencies() {
    let mut saga: Saga<&str, u32> = Saga::new();
    saga.record("base", 0, []).unwrap();
    // "link" has nothing to undo but depends on "base".
    saga.depend("link", ["base"]).unwrap();
    // A loop: each iteration fed the next.
    saga.record("loop", 1, ["link", "loop"]).unwrap();
    saga.record("loop", 2, ["loop"]).unwrap();
    saga.record("loop", 3, []).unwrap();
    assert_eq!(saga.depends_on(&"loop"), ["link", "loop"]);
    let handed = drain(&mut saga, |v| v == 2);
    assert_eq!(handed, [3, 2]);
    let undone: Vec<u32> = saga.undone().map(|u| *u.value).collect();
    assert_eq!(undone, [2, 1, 0]);
}

#[test]
fn compensate_twice_changes_nothing() {
    let mut saga: Saga<u8, u8> = Saga::new();
    saga.record(1, 1, []).unwrap();
    saga.compensate();
    let id = saga.poll_compensation().unwrap().id;
    saga.compensate();
    saga.compensated(id).unwrap();
    assert!(saga.poll_compensation().is_none());
    assert!(saga.is_complete());
}

proptest! {
    /// Random dependency graphs (each action on earlier ones) and random
    /// failures: each action is handed out at most once, in strictly
    /// reverse completion order; every action ends compensated, failed or
    /// blocked; an action is handed out only after every completed action
    /// depending on it; and exactly the dependencies (transitive) of failed
    /// actions are blocked.
    #[test]
    fn reverse_order_respecting_dependencies(
        deps in prop::collection::vec(prop::collection::vec(any::<prop::sample::Index>(), 0..3), 0..24),
        failing in prop::collection::btree_set(0u32..24, 0..4),
    ) {
        let mut saga: Saga<u32, u32> = Saga::new();
        let mut graph: Vec<Vec<u32>> = Vec::new();
        for (i, d) in deps.iter().enumerate() {
            let d: Vec<u32> = if i == 0 {
                Vec::new()
            } else {
                d.iter().map(|ix| ix.index(i) as u32).collect()
            };
            let id = saga.record(i as u32, i as u32, d.clone()).unwrap();
            prop_assert_eq!(id.get(), i as u32);
            graph.push(d);
        }
        let handed = drain(&mut saga, |v| failing.contains(&v));
        prop_assert!(saga.is_done());
        // Strictly decreasing: reverse completion order, each once.
        prop_assert!(handed.windows(2).all(|w| w[0] > w[1]));
        // Expected blocked set: transitive dependencies of failed actions
        // handed out.
        let mut blocked = BTreeSet::new();
        let mut expected_handed = Vec::new();
        for i in (0..graph.len() as u32).rev() {
            if blocked.contains(&i) {
                continue;
            }
            expected_handed.push(i);
            if failing.contains(&i) {
                let mut stack = graph[i as usize].clone();
                while let Some(at) = stack.pop() {
                    if blocked.insert(at) {
                        stack.extend(graph[at as usize].iter().copied());
                    }
                }
            }
        }
        prop_assert_eq!(&handed, &expected_handed);
        for (id, _, &value, status) in saga.iter() {
            let expected = if blocked.contains(&value) {
                CompensationStatus::Blocked
            } else if failing.contains(&value) {
                CompensationStatus::Failed
            } else {
                CompensationStatus::Compensated
            };
            prop_assert_eq!(status, expected, "{:?}", id);
            // Dependents were handed out (or given up) before.
            for (j, d) in graph.iter().enumerate() {
                if d.contains(&value) && status != CompensationStatus::Blocked {
                    let pos_j = handed.iter().position(|&h| h == j as u32);
                    let pos_i = handed.iter().position(|&h| h == value);
                    if let (Some(pj), Some(pi)) = (pos_j, pos_i) {
                        prop_assert!(pj < pi);
                    }
                }
            }
        }
        let undone = saga.undone().count();
        prop_assert_eq!(undone, blocked.len() + handed.iter().filter(|h| failing.contains(h)).count());
        prop_assert_eq!(saga.is_complete(), undone == 0);
    }
}
