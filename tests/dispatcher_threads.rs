//! Many threads submitting, working and reporting through one shared
//! dispatcher: nothing lost, nothing completed twice.

#![cfg(feature = "sync")]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use taskweave::agent::AgentProfile;
use taskweave::scheduler::{
    Action, AttemptOutcome, Dispatcher, DispatcherConfig, SharedDispatcher, TaskReport, TaskSpec,
    TaskState,
};
use taskweave::{AgentId, Instant, TaskId};

#[test]
fn the_dispatcher_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<Dispatcher<String>>();
    assert_send::<SharedDispatcher<Vec<u8>>>();
}

#[test]
fn producers_and_workers_on_many_threads_lose_nothing() {
    const PRODUCERS: u64 = 4;
    const PER_PRODUCER: u64 = 2_000;
    const WORKERS: usize = 3;
    let config = DispatcherConfig::builder()
        .queue_capacity(1_000_000)
        .build()
        .unwrap();
    let shared: SharedDispatcher<u64> = SharedDispatcher::new(config);
    for agent in 0..8 {
        let profile = AgentProfile::builder().capacity(16).build().unwrap();
        shared
            .lock()
            .register_agent(AgentId::new(agent), profile, Instant::ZERO)
            .unwrap();
    }
    let start = Arc::new(Barrier::new(PRODUCERS as usize + WORKERS));
    let producing = Arc::new(AtomicBool::new(true));
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let (handle, start) = (shared.clone(), Arc::clone(&start));
            thread::spawn(move || {
                start.wait();
                (0..PER_PRODUCER)
                    .map(|n| {
                        handle
                            .submit(TaskSpec::new(p * PER_PRODUCER + n), Instant::ZERO)
                            .unwrap()
                            .id()
                    })
                    .collect::<Vec<TaskId>>()
            })
        })
        .collect();
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (handle, start, producing) =
                (shared.clone(), Arc::clone(&start), Arc::clone(&producing));
            thread::spawn(move || {
                start.wait();
                let mut completed: Vec<TaskId> = Vec::new();
                loop {
                    match handle.poll_action() {
                        Some(Action::Assign {
                            task, agent, token, ..
                        }) => {
                            // Every third report is first sent with a forged token.
                            if (completed.len() + w) % 3 == 0 {
                                let forged =
                                    taskweave::AttemptToken::new(token.get() + 1_000_000_000);
                                let report = TaskReport {
                                    task,
                                    agent,
                                    token: forged,
                                    outcome: AttemptOutcome::Success,
                                };
                                assert!(handle.report(report, Instant::ZERO).is_err());
                            }
                            let report = TaskReport {
                                task,
                                agent,
                                token,
                                outcome: AttemptOutcome::Success,
                            };
                            handle.report(report, Instant::ZERO).unwrap();
                            completed.push(task);
                        }
                        Some(other) => panic!("unexpected action {other:?}"),
                        None if producing.load(Ordering::Acquire) => thread::yield_now(),
                        None => {
                            let idle = {
                                let d = handle.lock();
                                d.waiting() == 0
                                    && (0..8).all(|a| d.in_flight(AgentId::new(a)).is_empty())
                            };
                            if idle {
                                return completed;
                            }
                            thread::yield_now();
                        }
                    }
                }
            })
        })
        .collect();
    let submitted: Vec<TaskId> = producers
        .into_iter()
        .flat_map(|p| p.join().unwrap())
        .collect();
    producing.store(false, Ordering::Release);
    let completed: Vec<TaskId> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();

    assert_eq!(submitted.len() as u64, PRODUCERS * PER_PRODUCER);
    let mut times: HashMap<TaskId, u32> = HashMap::new();
    for task in completed {
        *times.entry(task).or_default() += 1;
    }
    let d = shared.lock();
    for task in &submitted {
        assert_eq!(
            times.get(task),
            Some(&1),
            "task {task} completed {:?} times",
            times.get(task)
        );
        assert_eq!(d.task_state(*task), Some(TaskState::Completed));
    }
    let counters = d.metrics().counters;
    assert_eq!(counters.completed, PRODUCERS * PER_PRODUCER);
    assert!(counters.rejected_reports > 0);
}
