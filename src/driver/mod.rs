//! A ready-made host loop (feature `driver`): runs a [`WorkflowRun`] to its
//! end on a small pool of worker threads, executing in-process [`Step`]s.
//!
//! The rest of taskweave is sans-IO; this module is the one place with
//! threads. It still reads no clock — time comes from a host-provided
//! `FnMut() -> Instant` — and its only blocking is on crossbeam channels:
//! waiting for a step's result, with a timeout when the run has a timer
//! set.
//!
//! | piece | role |
//! |---|---|
//! | [`Driver::new`] | starts `N ≥ 1` worker threads sharing one job channel |
//! | [`Driver::step`], [`Driver::step_fn`], [`Driver::register`], [`Driver::default_step`] | the [`Step`] run for a step id ([`StepDef::id`](crate::workflow::StepDef::id)) |
//! | [`Driver::expander`] | the items of a multi-instance step |
//! | [`Driver::check`] | whether every step of a definition (and its sub-workflows) can be driven |
//! | [`Driver::run`] | drives a run to its end and returns its [`RunOutcome`] |
//!
//! # How each action is handled
//!
//! * [`RunAction::Start`] of a local or agent step: the attempt's owned
//!   [`StepInput`] goes to a worker, which calls [`Step::run`] and sends the
//!   result back; the run gets it through `succeed` / `fail` with the
//!   host clock's `now`. An output the run refuses (a branch the step does
//!   not have, `again` from a step that is not a loop) fails the attempt
//!   with a fatal [`StepFailure`].
//! * [`RunAction::Start`] of a [`StepKind::SubWorkflow`] step: the child
//!   run is driven to its end by a nested call on the calling thread, with
//!   the same pool and clock; while it runs, the parent's other results wait
//!   in their channel and its timers do not fire. The child's input is the
//!   attempt's instance item, else the run input (an entry step), else the
//!   first of the step's inputs. A child that succeeds completes the step
//!   with the child's [output](WorkflowRun::output); one that ends `Failed`
//!   or `Compensated` fails the attempt with a retryable failure (the
//!   step's retry policy decides, and the child undid its work), one that
//!   ends `CompensationFailed` fails it fatally.
//! * [`RunAction::Compensate`]: [`Step::compensate`] on a worker, with the
//!   compensated execution's input and output. A sub-workflow step is
//!   compensated by the step registered under its id (or the default step);
//!   with neither, its compensation fails fatally and is left for manual
//!   handling ([`RunOutcome::CompensationFailed`]) — a finished child run
//!   cannot be undone.
//! * [`RunAction::Cancel`]: the attempt keeps running on its worker (a step
//!   cannot be interrupted); its late result is dropped.
//! * [`RunAction::Expand`]: the expander registered for the step is called
//!   on the calling thread with a [`StepInput`] holding the step's inputs
//!   (or the run input, for an entry step). It has no attempt: its `token`
//!   is [`EXPAND_TOKEN`] and its `attempt` 0.
//! * Wait steps ([`StepKind::Wait`]): the driver sends no signals, so only
//!   a wait's timeout can end it. A wait step without a timeout is refused
//!   with [`DriverError::UnboundedWait`] before the run is touched.
//!
//! Steps and expanders are registered by step id and shared by every
//! workflow and sub-workflow the driver runs. A local or agent step with
//! no registered step and no default is refused with
//! [`DriverError::UnregisteredStep`] by [`Driver::check`], which
//! [`Driver::run`] calls first: a misconfigured run is refused whole rather
//! than failed half-way.
//!
//! # Timers
//!
//! When the run has a timer set ([`WorkflowRun::poll_timeout`]), the loop
//! waits for a result at most until then (measured with the host clock),
//! then calls [`WorkflowRun::handle_timeout`]: retries with a delay,
//! attempt timeouts, wait timeouts and the workflow deadline all work. The
//! clock must advance (a fake clock may jump ahead on every call).
//!
//! # Panics in steps
//!
//! Workers run each step under [`std::panic::catch_unwind`]: a panicking
//! `run` or `compensate` becomes a fatal [`StepFailure`] ("the step
//! panicked: …"), and the worker carries on. The panic message is still
//! printed by the panic hook. (With `panic = "abort"` the process aborts.)
//!
//! # Shutdown
//!
//! Dropping the [`Driver`] closes the job channel and joins every worker
//! once the jobs already queued are done.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use taskweave::driver::Driver;
//! use taskweave::workflow::{RunOutcome, StepDef, StepInput, StepOutput, WorkflowDef, WorkflowRun};
//! use taskweave::{Instant, WorkflowId};
//!
//! // fetch -> {double, square} -> sum
//! let def = Arc::new(
//!     WorkflowDef::builder("diamond", 1)
//!         .step(StepDef::local("fetch"))
//!         .step(StepDef::local("double"))
//!         .step(StepDef::local("square"))
//!         .step(StepDef::local("sum").inputs(["double", "square"]))
//!         .edge("fetch", "double")
//!         .edge("fetch", "square")
//!         .edge("double", "sum")
//!         .edge("square", "sum")
//!         .build()?,
//! );
//! let first = |input: &StepInput<u64>| input.inputs.first().map_or(0, |(_, v)| *v);
//! let driver = Driver::new(2)?
//!     .step_fn("fetch", |input| Ok(StepOutput::new(input.run_input.unwrap_or(0))))
//!     .step_fn("double", move |input| Ok(StepOutput::new(2 * first(input))))
//!     .step_fn("square", move |input| Ok(StepOutput::new(first(input) * first(input))))
//!     .step_fn("sum", |input| Ok(StepOutput::new(input.inputs.iter().map(|(_, v)| v).sum())));
//!
//! // The host's clock: here, real time since the run began.
//! let epoch = std::time::Instant::now();
//! let clock = move || Instant::from_nanos(epoch.elapsed().as_nanos() as u64);
//!
//! let mut run = WorkflowRun::new(def, WorkflowId::new(1), Some(7), Instant::ZERO);
//! assert_eq!(driver.run(&mut run, clock)?, RunOutcome::Succeeded);
//! assert_eq!(run.output(), Some(&(14 + 49)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod agents;
mod engine;
mod error;
mod pool;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::num::NonZeroUsize;
use std::sync::Arc;

use crossbeam::channel::{self, Receiver, RecvTimeoutError, Sender};

pub use agents::AgentRunner;
pub use engine::Served;
pub use error::DriverError;
use pool::{Done, Job, Outcome, Pool};

use crate::hash::mix;
use crate::workflow::{
    FailureCause, RunAction, RunError, RunOutcome, Step, StepFailure, StepInput, StepKind,
    StepOutput, WorkflowDef, WorkflowRun,
};
use crate::{AttemptToken, Instant, StepId, WorkflowId};

/// The items of a multi-instance step, computed from the step's input.
pub type Expander<P> = dyn Fn(&StepInput<P>) -> Vec<P> + Send + Sync;

/// The `token` of the [`StepInput`] an [`Expander`] receives: expanding a
/// step is not an attempt.
pub const EXPAND_TOKEN: AttemptToken = AttemptToken::new(u64::MAX);

/// Runs workflow runs to their end on a pool of worker threads; see the
/// [module documentation](self).
///
/// A driver is `Send` and `Sync` (for `P: Send`): several threads may each
/// drive their own run through one driver at the same time, sharing its
/// workers; each run's results come back on a channel of its own.
pub struct Driver<P> {
    pool: Pool<P>,
    steps: HashMap<String, Arc<dyn Step<P>>>,
    default: Option<Arc<dyn Step<P>>>,
    expanders: HashMap<String, Arc<Expander<P>>>,
}

impl<P> fmt::Debug for Driver<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut steps: Vec<&str> = self.steps.keys().map(String::as_str).collect();
        steps.sort_unstable();
        let mut expanders: Vec<&str> = self.expanders.keys().map(String::as_str).collect();
        expanders.sort_unstable();
        f.debug_struct("Driver")
            .field("threads", &self.pool.threads())
            .field("steps", &steps)
            .field("default_step", &self.default.is_some())
            .field("expanders", &expanders)
            .finish()
    }
}

/// Where one (possibly nested) run stands: the channel its results come
/// back on, how many are still due, and which attempts were cancelled.
struct Drive<P> {
    reply: Sender<Done<P>>,
    results: Receiver<Done<P>>,
    in_flight: usize,
    cancelled: HashSet<AttemptToken>,
}

impl<P: Clone + Send + 'static> Driver<P> {
    /// Starts `threads` worker threads, with no step registered.
    ///
    /// # Errors
    ///
    /// [`DriverError::NoThreads`] for 0; [`DriverError::Spawn`] if the
    /// operating system refuses a thread (the ones already started are
    /// joined).
    pub fn new(threads: usize) -> Result<Self, DriverError> {
        let threads = NonZeroUsize::new(threads).ok_or(DriverError::NoThreads)?;
        Ok(Driver {
            pool: Pool::new(threads)?,
            steps: HashMap::new(),
            default: None,
            expanders: HashMap::new(),
        })
    }

    /// The number of worker threads.
    pub fn threads(&self) -> usize {
        self.pool.threads()
    }

    /// Registers `step` for the step id `id`, replacing any earlier one.
    pub fn step(mut self, id: impl Into<String>, step: impl Step<P> + 'static) -> Self {
        self.register(id, Arc::new(step));
        self
    }

    /// Registers a closure as the step for `id` (a step without
    /// compensation); the closure's types are inferred.
    pub fn step_fn<F>(self, id: impl Into<String>, run: F) -> Self
    where
        F: Fn(&StepInput<P>) -> Result<StepOutput<P>, StepFailure> + Send + Sync + 'static,
    {
        self.step(id, run)
    }

    /// Registers a shared step for `id`; returns the one it replaces.
    pub fn register(
        &mut self,
        id: impl Into<String>,
        step: Arc<dyn Step<P>>,
    ) -> Option<Arc<dyn Step<P>>> {
        self.steps.insert(id.into(), step)
    }

    /// Sets the step run for local and agent steps registered under no id.
    pub fn default_step(mut self, step: impl Step<P> + 'static) -> Self {
        self.default = Some(Arc::new(step));
        self
    }

    /// Registers the expander of the multi-instance step `id`, replacing
    /// any earlier one. It runs on the thread that called
    /// [`run`](Self::run).
    pub fn expander<F>(mut self, id: impl Into<String>, expander: F) -> Self
    where
        F: Fn(&StepInput<P>) -> Vec<P> + Send + Sync + 'static,
    {
        self.expanders.insert(id.into(), Arc::new(expander));
        self
    }

    /// Checks that the driver can run every step of `def` and of its
    /// sub-workflows: a step (or the default) for every local and agent
    /// step, an expander for every multi-instance step, a timeout on every
    /// wait step. `O(steps)`.
    ///
    /// # Errors
    ///
    /// The first problem found, in declaration order (a definition's own
    /// steps before its sub-workflows'): [`DriverError::UnregisteredStep`],
    /// [`DriverError::MissingExpander`] or [`DriverError::UnboundedWait`].
    pub fn check(&self, def: &WorkflowDef) -> Result<(), DriverError> {
        let mut stack = vec![def];
        let mut seen = HashSet::new();
        while let Some(def) = stack.pop() {
            if !seen.insert(def.content_hash()) {
                continue;
            }
            let mut children = Vec::new();
            for (_, step) in def.steps() {
                let names = || (def.name().to_string(), step.id.clone());
                match &step.kind {
                    StepKind::Local | StepKind::Agent => {
                        if self.resolve(&step.id).is_none() {
                            let (workflow, step) = names();
                            return Err(DriverError::UnregisteredStep { workflow, step });
                        }
                    }
                    StepKind::Wait { timeout: None, .. } => {
                        let (workflow, step) = names();
                        return Err(DriverError::UnboundedWait { workflow, step });
                    }
                    StepKind::Wait { .. } => {}
                    StepKind::SubWorkflow(child) => children.push(&**child),
                }
                if step.multi_instance.is_some() && !self.expanders.contains_key(&step.id) {
                    let (workflow, step) = names();
                    return Err(DriverError::MissingExpander { workflow, step });
                }
            }
            stack.extend(children.into_iter().rev());
        }
        Ok(())
    }

    /// Drives `run` to its end and returns its outcome. `clock` gives the
    /// current time, as the run knows it, each time the driver needs it.
    ///
    /// Hand over a run whose actions have not been taken yet (a fresh run,
    /// or one resumed from a checkpoint): the driver only knows the work it
    /// handed out itself.
    ///
    /// # Errors
    ///
    /// A configuration error from [`check`](Self::check), before anything
    /// runs; [`DriverError::Stalled`] if the run can make no progress (its
    /// actions were taken by someone else); [`DriverError::Run`] if the run
    /// refuses an expander's items; [`DriverError::PoolStopped`] if the
    /// workers are gone. The run is left as it is, and can be driven on by
    /// hand.
    ///
    /// # Panics
    ///
    /// If an expander panics: expanders run on the calling thread. (A
    /// panicking step does not panic here; it fails its attempt.)
    pub fn run<C>(&self, run: &mut WorkflowRun<P>, mut clock: C) -> Result<RunOutcome, DriverError>
    where
        C: FnMut() -> Instant,
    {
        self.check(run.definition())?;
        self.drive(run, &mut clock)
    }

    fn resolve(&self, id: &str) -> Option<&Arc<dyn Step<P>>> {
        self.steps.get(id).or(self.default.as_ref())
    }

    /// The loop: hand out actions, then wait for a result or the next
    /// timer, until the run ends.
    fn drive(
        &self,
        run: &mut WorkflowRun<P>,
        clock: &mut dyn FnMut() -> Instant,
    ) -> Result<RunOutcome, DriverError> {
        let (reply, results) = channel::unbounded();
        let mut drive = Drive {
            reply,
            results,
            in_flight: 0,
            cancelled: HashSet::new(),
        };
        loop {
            while let Some(action) = run.poll_action() {
                self.act(run, action, &mut drive, clock)?;
            }
            if let Some(outcome) = run.outcome() {
                return Ok(outcome.clone());
            }
            let timeout = match run.poll_timeout() {
                None if drive.in_flight == 0 => return Err(DriverError::Stalled),
                None => None,
                Some(at) => {
                    let now = clock();
                    if at <= now {
                        run.handle_timeout(now);
                        continue;
                    }
                    Some(at.saturating_duration_since(now))
                }
            };
            let first = match timeout {
                None => Some(drive.results.recv().map_err(|_| DriverError::PoolStopped)?),
                Some(timeout) => match drive.results.recv_timeout(timeout) {
                    Ok(done) => Some(done),
                    Err(RecvTimeoutError::Timeout) => None,
                    // `drive` holds a sender: the channel cannot close.
                    Err(RecvTimeoutError::Disconnected) => return Err(DriverError::PoolStopped),
                },
            };
            let now = clock();
            if let Some(done) = first {
                drive.in_flight -= 1;
                report(run, &mut drive.cancelled, done, now)?;
                while let Ok(done) = drive.results.try_recv() {
                    drive.in_flight -= 1;
                    report(run, &mut drive.cancelled, done, now)?;
                }
            }
            if run.poll_timeout().is_some_and(|at| at <= now) {
                run.handle_timeout(now);
            }
        }
    }

    fn act(
        &self,
        run: &mut WorkflowRun<P>,
        action: RunAction,
        drive: &mut Drive<P>,
        clock: &mut dyn FnMut() -> Instant,
    ) -> Result<(), DriverError> {
        match action {
            RunAction::Start { step, token, .. } => self.start(run, step, token, drive, clock),
            RunAction::Compensate { step, token, .. } => {
                let input = run.input(token)?;
                let output = run.compensated_output(token)?.cloned();
                let code = run
                    .definition()
                    .step(step)
                    .and_then(|s| self.resolve(&s.id))
                    .cloned();
                self.pool.submit(Job::Compensate {
                    step: code,
                    input,
                    output,
                    run: run.id(),
                    reply: drive.reply.clone(),
                })?;
                drive.in_flight += 1;
                Ok(())
            }
            RunAction::Cancel { token, .. } => {
                drive.cancelled.insert(token);
                Ok(())
            }
            RunAction::Expand { step } => {
                let items = self.expand(run, step)?;
                run.expand(step, items, clock())?;
                Ok(())
            }
            RunAction::Finished => Ok(()),
        }
    }

    fn start(
        &self,
        run: &mut WorkflowRun<P>,
        step: StepId,
        token: AttemptToken,
        drive: &mut Drive<P>,
        clock: &mut dyn FnMut() -> Instant,
    ) -> Result<(), DriverError> {
        let input = run.input(token)?;
        let def = Arc::clone(run.definition());
        let Some(step_def) = def.step(step) else {
            return Err(RunError::UnknownStep(step).into());
        };
        if let StepKind::SubWorkflow(child) = &step_def.kind {
            let child_input = input
                .item
                .map(|(_, item)| item)
                .or(input.run_input)
                .or_else(|| input.inputs.into_iter().next().map(|(_, value)| value));
            let id = WorkflowId::new(mix(run.id().get(), token.get()));
            let mut child_run = WorkflowRun::new(Arc::clone(child), id, child_input, clock());
            let outcome = self.drive(&mut child_run, clock)?;
            let result = match outcome {
                RunOutcome::Succeeded => Ok(child_run
                    .output()
                    .cloned()
                    .map_or_else(StepOutput::empty, StepOutput::new)),
                RunOutcome::Failed(cause) | RunOutcome::Compensated(cause) => {
                    let reason = format!("sub-workflow `{}`: {}", child.name(), describe(&cause));
                    Err(StepFailure::retryable(reason))
                }
                RunOutcome::CompensationFailed { cause, .. } => {
                    let reason = format!(
                        "sub-workflow `{}`: {}; its compensation is incomplete",
                        child.name(),
                        describe(&cause)
                    );
                    Err(StepFailure::fatal(reason))
                }
            };
            let done = Done {
                run: run.id(),
                token,
                result: Outcome::Ran(result),
            };
            return report(run, &mut drive.cancelled, done, clock());
        }
        // `check` refuses an unregistered step before the run starts; the
        // pool would still fail it rather than panic.
        self.pool.submit(Job::Run {
            step: self.resolve(&step_def.id).cloned(),
            input,
            run: run.id(),
            reply: drive.reply.clone(),
        })?;
        drive.in_flight += 1;
        Ok(())
    }
}

/// The input an expander sees: the step's inputs (or the run input, for an
/// entry step), with no attempt.
fn expand_input<P: Clone>(run: &WorkflowRun<P>, step: StepId) -> StepInput<P> {
    let def = run.definition();
    let run_input = if def.predecessors(step).len() == 0 {
        run.run_input().cloned()
    } else {
        None
    };
    let mut inputs = Vec::new();
    for from in def.input_steps(step) {
        inputs.extend(run.outputs(from).into_iter().map(|v| (from, v.clone())));
    }
    StepInput {
        step,
        token: EXPAND_TOKEN,
        attempt: 0,
        iteration: 1,
        run_input,
        inputs,
        item: None,
        previous: None,
    }
}

/// Why a child run failed, in words.
fn describe(cause: &FailureCause) -> String {
    match cause {
        FailureCause::StepFailed { step, reason } => format!("{step} failed: {reason}"),
        FailureCause::Cancelled => "cancelled".to_string(),
        FailureCause::DeadlineExceeded => "deadline exceeded".to_string(),
        FailureCause::Unservable { name, version, .. } => {
            format!("no definition of {name} v{version} to serve it")
        }
    }
}

/// Gives a result to the run. A result for a cancelled or ended attempt is
/// dropped; a step output the run refuses fails the attempt fatally.
fn report<P: Clone>(
    run: &mut WorkflowRun<P>,
    cancelled: &mut HashSet<AttemptToken>,
    done: Done<P>,
    now: Instant,
) -> Result<(), DriverError> {
    let token = done.token;
    if cancelled.remove(&token) {
        return Ok(());
    }
    let answer = match done.result {
        Outcome::Ran(Ok(output)) => match run.succeed(token, output, now) {
            Err(err) if engine::refused_output(&err) => {
                let reason = format!("the run refused the step's output: {err}");
                run.fail(token, StepFailure::fatal(reason), now)
            }
            answer => answer,
        },
        Outcome::Ran(Err(failure)) => run.fail(token, failure, now),
        Outcome::Compensated(result) => run.compensated(token, result, now),
    };
    match answer {
        Ok(()) | Err(RunError::StaleAttempt(_) | RunError::Finished) => Ok(()),
        Err(err) => Err(err.into()),
    }
}
