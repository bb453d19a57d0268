//! [`AgentRunner`]: a ready-made host loop that runs a dispatcher's plain
//! tasks on in-process [`Agent`]s.

use crossbeam::channel::{self, RecvTimeoutError};
use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroUsize;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use super::DriverError;
use crate::agent::Agent;
use crate::routing::RoutingStrategy;
use crate::scheduler::{Action, AttemptOutcome, Dispatcher, TaskReport};
use crate::{AgentId, AttemptToken, Instant, TaskId};

/// Runs the tasks a [`Dispatcher`] assigns on the [`Agent`]s it holds, on a
/// pool of worker threads, until the dispatcher has no live task left.
///
/// The dispatcher stays the one that decides; the runner is only a host
/// loop: it registers its agents, hands each [`Action::Assign`] to a worker
/// that calls [`Agent::execute`] with a copy of the task's payload, and
/// reports the result with the attempt's token — so a late result after a
/// timeout or failover is fenced out like any other. A failed `execute`
/// (or a panic in it) is reported as a retryable failure carrying the
/// error's text; the dispatcher's retry policy decides what follows. Like
/// the rest of the driver it reads no clock: time comes from the host's
/// `FnMut() -> Instant`, and the loop wakes at
/// [`poll_timeout`](Dispatcher::poll_timeout) to fire retries, attempt
/// timeouts and TTLs.
///
/// ```
/// use taskweave::agent::{AgentProfile, FnAgent};
/// use taskweave::driver::AgentRunner;
/// use taskweave::scheduler::{Dispatcher, DispatcherConfig, TaskSpec};
/// use taskweave::{AgentId, Instant, TaskRequirements};
///
/// let double = |x: u64| Ok::<u64, String>(2 * x);
/// let profile = AgentProfile::builder().capability("math").capacity(2).build()?;
/// let runner = AgentRunner::new(2)?
///     .agent(FnAgent::new(AgentId::new(1), profile.clone(), double))
///     .agent(FnAgent::new(AgentId::new(2), profile, double));
///
/// let mut dispatcher = Dispatcher::new(DispatcherConfig::default());
/// runner.register(&mut dispatcher, Instant::ZERO)?;
/// let needs = TaskRequirements::new().require(["math"]);
/// for x in 1..=5 {
///     dispatcher.submit(TaskSpec::new(x).requirements(needs.clone()), Instant::ZERO)?;
/// }
/// let epoch = std::time::Instant::now();
/// let clock = move || Instant::from_nanos(epoch.elapsed().as_nanos() as u64);
/// let mut outputs: Vec<u64> = runner.run(&mut dispatcher, clock)?.into_iter().map(|(_, y)| y).collect();
/// outputs.sort_unstable();
/// assert_eq!(outputs, [2, 4, 6, 8, 10]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct AgentRunner<A> {
    agents: BTreeMap<AgentId, Arc<A>>,
    threads: NonZeroUsize,
}

impl<A> fmt::Debug for AgentRunner<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentRunner")
            .field("agents", &self.agents.keys().collect::<Vec<_>>())
            .field("threads", &self.threads)
            .finish()
    }
}

/// One attempt handed to a worker.
struct Job<A: Agent> {
    task: TaskId,
    agent: AgentId,
    token: AttemptToken,
    runs_on: Arc<A>,
    input: A::Input,
}

/// What a worker sends back: the attempt and `execute`'s result.
type Finished<O> = (TaskId, AgentId, AttemptToken, Result<O, String>);

impl<A> AgentRunner<A>
where
    A: Agent + Send + Sync + 'static,
    A::Input: Clone + Send,
    A::Output: Send,
    A::Error: fmt::Display,
{
    /// A runner with `threads` workers and no agent.
    ///
    /// # Errors
    ///
    /// [`DriverError::NoThreads`] for 0.
    pub fn new(threads: usize) -> Result<Self, DriverError> {
        Ok(AgentRunner {
            agents: BTreeMap::new(),
            threads: NonZeroUsize::new(threads).ok_or(DriverError::NoThreads)?,
        })
    }

    /// Adds an agent (one with the same id replaces it).
    #[must_use]
    pub fn agent(mut self, agent: A) -> Self {
        self.agents.insert(agent.id(), Arc::new(agent));
        self
    }

    /// Registers every agent with `dispatcher`, with its profile, at `now`.
    ///
    /// # Errors
    ///
    /// [`DriverError::Scheduler`] if the dispatcher refuses one (an id it
    /// already knows); the agents before it stay registered.
    pub fn register<S: RoutingStrategy>(
        &self,
        dispatcher: &mut Dispatcher<A::Input, S>,
        now: Instant,
    ) -> Result<(), DriverError> {
        for (&id, agent) in &self.agents {
            dispatcher.register_agent(id, agent.profile().clone(), now)?;
        }
        Ok(())
    }

    /// Runs until `dispatcher` has no live task, and returns the output of
    /// every task completed meanwhile, in completion order. Tasks assigned
    /// to an agent this runner does not hold fail (retryably) at once.
    ///
    /// # Errors
    ///
    /// [`DriverError::TasksStalled`] if live tasks remain while nothing is
    /// running and no timer is set (no agent could ever take them);
    /// [`DriverError::PoolStopped`] if a worker thread died.
    pub fn run<S, C>(
        &self,
        dispatcher: &mut Dispatcher<A::Input, S>,
        mut clock: C,
    ) -> Result<Vec<(TaskId, A::Output)>, DriverError>
    where
        S: RoutingStrategy,
        C: FnMut() -> Instant,
    {
        let (jobs, queue) = channel::unbounded::<Job<A>>();
        let (finished, results) = channel::unbounded::<Finished<A::Output>>();
        std::thread::scope(|scope| {
            for _ in 0..self.threads.get() {
                let (queue, finished) = (queue.clone(), finished.clone());
                scope.spawn(move || {
                    for job in queue.iter() {
                        let result =
                            catch_unwind(AssertUnwindSafe(|| job.runs_on.execute(job.input)))
                                .map_err(|_| "the agent panicked".to_string())
                                .and_then(|result| result.map_err(|e| e.to_string()));
                        let _ = finished.send((job.task, job.agent, job.token, result));
                    }
                });
            }
            drop(finished);
            let mut outputs = Vec::new();
            let mut running = 0usize;
            let outcome = loop {
                while let Some(action) = dispatcher.poll_action() {
                    if let Action::Assign {
                        task, agent, token, ..
                    } = action
                    {
                        let (Some(runs_on), Some(input)) =
                            (self.agents.get(&agent), dispatcher.payload(task).cloned())
                        else {
                            let outcome = AttemptOutcome::Failure {
                                reason: "the runner holds no such agent".into(),
                                retryable: true,
                            };
                            let report = TaskReport {
                                task,
                                agent,
                                token,
                                outcome,
                            };
                            let _ = dispatcher.report(report, clock());
                            continue;
                        };
                        let job = Job {
                            task,
                            agent,
                            token,
                            runs_on: Arc::clone(runs_on),
                            input,
                        };
                        if jobs.send(job).is_err() {
                            break;
                        }
                        running += 1;
                    }
                }
                if dispatcher.live_tasks() == 0 {
                    break Ok(outputs);
                }
                let timeout = dispatcher.poll_timeout();
                if running == 0 && timeout.is_none() {
                    break Err(DriverError::TasksStalled {
                        live: dispatcher.live_tasks(),
                    });
                }
                let wait = timeout.map(|at| at.saturating_duration_since(clock()));
                let received = match wait {
                    Some(wait) => results.recv_timeout(wait),
                    None => results.recv().map_err(|_| RecvTimeoutError::Disconnected),
                };
                match received {
                    Ok((task, agent, token, result)) => {
                        running -= 1;
                        let (outcome, output) = match result {
                            Ok(output) => (AttemptOutcome::Success, Some(output)),
                            Err(reason) => (
                                AttemptOutcome::Failure {
                                    reason,
                                    retryable: true,
                                },
                                None,
                            ),
                        };
                        let accepted = dispatcher
                            .report(
                                TaskReport {
                                    task,
                                    agent,
                                    token,
                                    outcome,
                                },
                                clock(),
                            )
                            .is_ok();
                        // A fenced-out result (late, after a timeout or a
                        // failover) is dropped.
                        if let (true, Some(output)) = (accepted, output) {
                            outputs.push((task, output));
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => dispatcher.handle_timeout(clock()),
                    Err(RecvTimeoutError::Disconnected) => break Err(DriverError::PoolStopped),
                }
            };
            // Closing the queue ends the workers once they finish what they
            // hold; the scope joins them.
            drop(jobs);
            outcome
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::agent::{AgentProfile, FnAgent};
    use crate::resilience::Fixed;
    use crate::scheduler::{DispatcherConfig, TaskSpec, TaskState};

    fn clock() -> impl FnMut() -> Instant {
        let epoch = std::time::Instant::now();
        move || Instant::from_nanos(epoch.elapsed().as_nanos() as u64)
    }

    #[test]
    fn failures_are_retried_and_every_task_ends_once() {
        let calls = Arc::new(AtomicU32::new(0));
        let seen = Arc::clone(&calls);
        // Every third call fails; the retry policy brings the task back.
        let flaky = move |x: u32| {
            if seen.fetch_add(1, Ordering::SeqCst) % 3 == 2 {
                Err(format!("flaky on {x}"))
            } else {
                Ok(x + 100)
            }
        };
        let profile = AgentProfile::builder().capacity(2).build().unwrap();
        let runner = AgentRunner::new(3)
            .unwrap()
            .agent(FnAgent::new(
                AgentId::new(1),
                profile.clone(),
                flaky.clone(),
            ))
            .agent(FnAgent::new(AgentId::new(2), profile, flaky));
        let config = DispatcherConfig::builder()
            .retry_policy(Fixed::new(Duration::from_millis(1), 10).unwrap())
            .build()
            .unwrap();
        let mut dispatcher = Dispatcher::new(config);
        runner.register(&mut dispatcher, Instant::ZERO).unwrap();
        let tasks: Vec<TaskId> = (0..30)
            .map(|x| {
                dispatcher
                    .submit(TaskSpec::new(x), Instant::ZERO)
                    .unwrap()
                    .id()
            })
            .collect();
        let outputs = runner.run(&mut dispatcher, clock()).unwrap();
        let mut done: Vec<TaskId> = outputs.iter().map(|&(task, _)| task).collect();
        done.sort_unstable();
        let mut expected = tasks.clone();
        expected.sort_unstable();
        assert_eq!(done, expected, "each task completes exactly once");
        assert!(
            tasks
                .iter()
                .all(|&t| dispatcher.task_state(t) == Some(TaskState::Completed))
        );
        assert!(
            calls.load(Ordering::SeqCst) > 30,
            "some attempts failed and were retried"
        );
    }

    #[test]
    fn tasks_no_agent_can_take_are_reported_stalled() {
        let profile = AgentProfile::builder().capability("cpu").build().unwrap();
        let runner =
            AgentRunner::new(1)
                .unwrap()
                .agent(FnAgent::new(AgentId::new(1), profile, |x: u8| {
                    Ok::<u8, String>(x)
                }));
        let mut dispatcher = Dispatcher::new(DispatcherConfig::default());
        runner.register(&mut dispatcher, Instant::ZERO).unwrap();
        let gpu = crate::TaskRequirements::new().require(["gpu"]);
        let _ = dispatcher
            .submit(TaskSpec::new(1).requirements(gpu), Instant::ZERO)
            .unwrap();
        let stalled = runner.run(&mut dispatcher, clock());
        assert_eq!(stalled.unwrap_err(), DriverError::TasksStalled { live: 1 });
        assert!(matches!(
            AgentRunner::<FnAgent<fn(u8) -> Result<u8, String>, u8, u8, String>>::new(0),
            Err(DriverError::NoThreads)
        ));
    }
}
