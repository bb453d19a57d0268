//! The worker pool: `N` threads taking jobs from one crossbeam channel and
//! sending each result back on the channel the job names.

use std::any::Any;
use std::num::NonZeroUsize;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam::channel::{self, Receiver, Sender};

use super::DriverError;
use crate::workflow::{Step, StepFailure, StepInput, StepOutput};
use crate::{AttemptToken, WorkflowId};

/// One unit of work for a worker. `step` is `None` when no code is
/// registered for the step: the attempt then fails for good, answered like
/// any other.
pub(super) enum Job<P> {
    /// `Step::run` for one attempt.
    Run {
        step: Option<Arc<dyn Step<P>>>,
        input: StepInput<P>,
        run: WorkflowId,
        reply: Sender<Done<P>>,
    },
    /// `Step::compensate` for one compensation attempt.
    Compensate {
        step: Option<Arc<dyn Step<P>>>,
        input: StepInput<P>,
        output: Option<P>,
        run: WorkflowId,
        reply: Sender<Done<P>>,
    },
}

/// A finished job: the run, the attempt and what came of it.
pub(super) struct Done<P> {
    pub(super) run: WorkflowId,
    pub(super) token: AttemptToken,
    pub(super) result: Outcome<P>,
}

/// What a job produced.
pub(super) enum Outcome<P> {
    /// The result of `Step::run`.
    Ran(Result<StepOutput<P>, StepFailure>),
    /// The result of `Step::compensate`.
    Compensated(Result<(), StepFailure>),
}

/// `threads` workers sharing one job channel. Dropping the pool closes the
/// channel and joins every worker.
pub(super) struct Pool<P> {
    jobs: Option<Sender<Job<P>>>,
    workers: Vec<JoinHandle<()>>,
}

impl<P: Send + 'static> Pool<P> {
    pub(super) fn new(threads: NonZeroUsize) -> Result<Self, DriverError> {
        let (jobs, receiver) = channel::unbounded::<Job<P>>();
        let mut pool = Pool {
            jobs: Some(jobs),
            workers: Vec::with_capacity(threads.get()),
        };
        for i in 0..threads.get() {
            let receiver = receiver.clone();
            let worker = std::thread::Builder::new()
                .name(format!("taskweave-driver-{i}"))
                .spawn(move || work(&receiver))
                // Dropping `pool` joins the workers already started.
                .map_err(|err| DriverError::Spawn(err.to_string()))?;
            pool.workers.push(worker);
        }
        Ok(pool)
    }

    pub(super) fn submit(&self, job: Job<P>) -> Result<(), DriverError> {
        self.jobs
            .as_ref()
            .ok_or(DriverError::PoolStopped)?
            .send(job)
            .map_err(|_| DriverError::PoolStopped)
    }
}

impl<P> Pool<P> {
    pub(super) fn threads(&self) -> usize {
        self.workers.len()
    }
}

impl<P> Drop for Pool<P> {
    fn drop(&mut self) {
        // Closing the channel ends each worker's loop once the jobs already
        // queued are done.
        self.jobs = None;
        for worker in self.workers.drain(..) {
            // A worker cannot panic (steps run under `catch_unwind`); if one
            // somehow did, there is nothing left to clean up.
            let _ = worker.join();
        }
    }
}

/// A worker's loop: run jobs until the channel closes. A panicking step
/// becomes a fatal failure, so the worker survives it.
fn work<P>(jobs: &Receiver<Job<P>>) {
    for job in jobs.iter() {
        let (reply, done) = match job {
            Job::Run {
                step,
                input,
                run,
                reply,
            } => {
                let result = match step {
                    Some(step) => catch_unwind(AssertUnwindSafe(|| step.run(&input)))
                        .unwrap_or_else(|payload| Err(panicked(payload.as_ref()))),
                    None => Err(StepFailure::fatal("no step is registered for it")),
                };
                let done = Done {
                    run,
                    token: input.token,
                    result: Outcome::Ran(result),
                };
                (reply, done)
            }
            Job::Compensate {
                step,
                input,
                output,
                run,
                reply,
            } => {
                let result = match step {
                    Some(step) => catch_unwind(AssertUnwindSafe(|| {
                        step.compensate(&input, output.as_ref())
                    }))
                    .unwrap_or_else(|payload| Err(panicked(payload.as_ref()))),
                    None => Err(StepFailure::fatal("no step is registered to compensate it")),
                };
                let done = Done {
                    run,
                    token: input.token,
                    result: Outcome::Compensated(result),
                };
                (reply, done)
            }
        };
        // The run that asked may have ended (its receiver is gone): the
        // result is no longer wanted.
        let _ = reply.send(done);
    }
}

/// The fatal failure standing for a panic, with the panic's message.
fn panicked(payload: &(dyn Any + Send)) -> StepFailure {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string payload".to_string());
    StepFailure::fatal(format!("the step panicked: {message}"))
}
