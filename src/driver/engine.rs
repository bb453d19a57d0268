//! [`Driver::serve`]: the in-process work of a [`WorkflowEngine`] on the
//! driver's pool.

use std::collections::HashSet;
use std::sync::Arc;

use crossbeam::channel::{self, RecvTimeoutError};

use super::pool::{Done, Job, Outcome};
use super::{Driver, DriverError, expand_input};
use crate::routing::RoutingStrategy;
use crate::scheduler::{Action, Dispatcher};
use crate::workflow::{
    EngineAction, EngineError, RunError, StepFailure, StepTask, WorkflowEngine, WorkflowRun,
};
use crate::{AttemptToken, Instant, StepId, WorkflowId};

/// What [`Driver::serve`] hands the host: an engine action it does not
/// handle itself, or an action of the host's own pool about one of its
/// plain tasks (or a lost agent).
#[derive(Clone, Debug, PartialEq)]
#[must_use = "an action must be carried out"]
pub enum Served<P> {
    /// An engine action: an agent assignment, a cancellation of an agent
    /// task, a finished run.
    Workflow(EngineAction<P>),
    /// A pool action the engine handed back.
    Task(Action),
}

impl<P: Clone + Send + 'static> Driver<P> {
    /// Runs an engine's in-process work on the pool: local steps
    /// ([`EngineAction::RunLocal`]) and their compensations
    /// ([`EngineAction::CompensateLocal`]) go to the workers, multi-instance
    /// expansions to the registered expanders, and cancelled local attempts
    /// have their late results dropped. The pool's actions are pulled and
    /// handed to the engine ([`WorkflowEngine::handle_action`]), and its
    /// timers fired as they fall due. Every other action — agent
    /// assignments, cancellations of agent tasks, finished runs
    /// ([`Served::Workflow`]), and the pool's actions about the host's plain
    /// tasks ([`Served::Task`]) — is handed to `host`, which may feed the
    /// engine or the pool right away (report an agent's result, start
    /// another run).
    ///
    /// Returns once no local attempt is in flight and the engine has no
    /// action left, after firing the timers already due: the host then
    /// waits for its agents or for [`WorkflowEngine::poll_timeout`] (and
    /// the pool's) and
    /// calls `serve` again. While local attempts run, `serve` also fires
    /// the engine's timers as they fall due. A local step with no step
    /// registered (and no default) fails its attempt for good.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use taskweave::driver::{Driver, Served};
    /// use taskweave::scheduler::{Dispatcher, DispatcherConfig};
    /// use taskweave::workflow::{EngineAction, RunOutcome, StepDef, StepInput, StepOutput, StepTask, WorkflowDef, WorkflowEngine};
    /// use taskweave::Instant;
    ///
    /// let def = Arc::new(
    ///     WorkflowDef::builder("sum", 1)
    ///         .step(StepDef::local("one"))
    ///         .step(StepDef::local("two"))
    ///         .step(StepDef::local("add"))
    ///         .edge("one", "add")
    ///         .edge("two", "add")
    ///         .build()?,
    /// );
    /// let driver = Driver::new(2)?
    ///     .step_fn("one", |_: &StepInput<u64>| Ok(StepOutput::new(1)))
    ///     .step_fn("two", |_: &StepInput<u64>| Ok(StepOutput::new(2)))
    ///     .step_fn("add", |input: &StepInput<u64>| Ok(StepOutput::new(input.inputs.iter().map(|(_, v)| v).sum())));
    /// let mut pool: Dispatcher<StepTask> = Dispatcher::new(DispatcherConfig::default());
    /// let mut engine: WorkflowEngine<u64> = WorkflowEngine::new();
    /// for _ in 0..100 {
    ///     engine.start(&mut pool, Arc::clone(&def), None, Instant::ZERO);
    /// }
    /// let mut sums = Vec::new();
    /// driver.serve(&mut engine, &mut pool, || Instant::ZERO, |_, _, action| {
    ///     if let Served::Workflow(EngineAction::Finished { outcome: RunOutcome::Succeeded, output, .. }) = action {
    ///         sums.push(output);
    ///     }
    /// })?;
    /// assert_eq!(sums, vec![Some(3); 100]);
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`DriverError::MissingExpander`] for a multi-instance step with no
    /// expander; [`DriverError::Engine`] if the engine refuses an input the
    /// driver had to give it; [`DriverError::PoolStopped`] if the workers
    /// are gone.
    ///
    /// # Panics
    ///
    /// If an expander or `host` panics: both run on the calling thread.
    pub fn serve<D, S, C, H>(
        &self,
        engine: &mut WorkflowEngine<P>,
        pool: &mut Dispatcher<D, S>,
        mut clock: C,
        mut host: H,
    ) -> Result<(), DriverError>
    where
        D: From<StepTask>,
        S: RoutingStrategy,
        C: FnMut() -> Instant,
        H: FnMut(&mut WorkflowEngine<P>, &mut Dispatcher<D, S>, Served<P>),
    {
        let (reply, results) = channel::unbounded();
        let mut in_flight = 0usize;
        let mut cancelled: HashSet<(WorkflowId, AttemptToken)> = HashSet::new();
        loop {
            while let Some(action) = pool.poll_action() {
                if let Some(action) = engine.handle_action(pool, action) {
                    host(engine, pool, Served::Task(action));
                }
            }
            while let Some(action) = engine.poll_action() {
                match action {
                    EngineAction::RunLocal { run, step, token } => {
                        self.pool.submit(Job::Run {
                            step: self.code_for(engine, run, step),
                            input: engine.input(run, token)?,
                            run,
                            reply: reply.clone(),
                        })?;
                        in_flight += 1;
                    }
                    EngineAction::CompensateLocal { run, step, token } => {
                        let input = engine.input(run, token)?;
                        let output = engine
                            .run(run)
                            .ok_or(EngineError::UnknownRun(run))?
                            .compensated_output(token)
                            .map_err(EngineError::from)?
                            .cloned();
                        self.pool.submit(Job::Compensate {
                            step: self.code_for(engine, run, step),
                            input,
                            output,
                            run,
                            reply: reply.clone(),
                        })?;
                        in_flight += 1;
                    }
                    EngineAction::CancelLocal { run, token, .. } => {
                        cancelled.insert((run, token));
                    }
                    EngineAction::Expand { run, step } => {
                        let active = engine.run(run).ok_or(EngineError::UnknownRun(run))?;
                        let items = self.expand(active, step)?;
                        engine.expand(pool, run, step, items, clock())?;
                    }
                    other => host(engine, pool, Served::Workflow(other)),
                }
            }
            let now = clock();
            let pool_due = pool.poll_timeout().is_some_and(|at| at <= now);
            if pool_due {
                pool.handle_timeout(now);
            }
            if engine.poll_timeout().is_some_and(|at| at <= now) {
                engine.handle_timeout(pool, now);
                continue;
            }
            if pool_due {
                continue;
            }
            if in_flight == 0 {
                return Ok(());
            }
            let wake = match (engine.poll_timeout(), pool.poll_timeout()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let done = match wake {
                None => results.recv().map_err(|_| DriverError::PoolStopped)?,
                Some(at) => match results.recv_timeout(at.saturating_duration_since(now)) {
                    Ok(done) => done,
                    Err(RecvTimeoutError::Timeout) => continue,
                    // `reply` is held here: the channel cannot close.
                    Err(RecvTimeoutError::Disconnected) => return Err(DriverError::PoolStopped),
                },
            };
            in_flight -= 1;
            let Done { run, token, result } = done;
            if cancelled.remove(&(run, token)) {
                continue;
            }
            let now = clock();
            tolerate(match result {
                Outcome::Ran(result) => match engine.report_local(pool, run, token, result, now) {
                    Err(EngineError::Run(err)) if refused_output(&err) => {
                        let reason = format!("the run refused the step's output: {err}");
                        engine.report_local(pool, run, token, Err(StepFailure::fatal(reason)), now)
                    }
                    answer => answer,
                },
                Outcome::Compensated(result) => engine.compensated(pool, run, token, result, now),
            })?;
        }
    }

    /// The registered code of `run`'s `step`, if any (the pool fails an
    /// attempt that has none).
    fn code_for(
        &self,
        engine: &WorkflowEngine<P>,
        run: WorkflowId,
        step: StepId,
    ) -> Option<Arc<dyn crate::workflow::Step<P>>> {
        let def = engine.run(run)?.definition();
        self.resolve(&def.step(step)?.id).cloned()
    }

    /// The items of a multi-instance step, from its expander.
    pub(super) fn expand(&self, run: &WorkflowRun<P>, step: StepId) -> Result<Vec<P>, DriverError> {
        let def = run.definition();
        let id = def.step(step).map_or("", |s| s.id.as_str());
        let Some(expander) = self.expanders.get(id) else {
            return Err(DriverError::MissingExpander {
                workflow: def.name().to_string(),
                step: id.to_string(),
            });
        };
        Ok(expander(&expand_input(run, step)))
    }
}

/// Whether the run refused a step's output (a bad branch choice, `again` on
/// a step that is not a loop): the attempt then fails for good.
pub(super) fn refused_output(err: &RunError) -> bool {
    matches!(
        err,
        RunError::InvalidBranches { .. } | RunError::NotALoop(_) | RunError::UnexpectedInput { .. }
    )
}

/// A result for an attempt that already ended, or a run that already
/// finished, is no longer wanted.
fn tolerate(answer: Result<(), EngineError>) -> Result<(), DriverError> {
    match answer {
        Ok(())
        | Err(EngineError::UnknownRun(_) | EngineError::RunFinished { .. })
        | Err(EngineError::Run(RunError::StaleAttempt(_) | RunError::Finished)) => Ok(()),
        Err(err) => Err(err.into()),
    }
}
