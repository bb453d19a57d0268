//! Moving an active run to another registered version of its workflow, in
//! place: its pool tasks and queued actions follow it.

use std::sync::Arc;

use super::WorkflowEngine;
use crate::workflow::{
    DefinitionDiff, EngineAction, EngineError, Migration, TaskPool, WorkflowDef,
};
use crate::{Instant, StepId, WorkflowId};

impl<P: Clone> WorkflowEngine<P> {
    /// Moves the active run `run` to the registered `version` of its
    /// workflow, by the [`Migration`] [`WorkflowDef::diff`] plans, as
    /// [`WorkflowRun::migrate`](crate::workflow::WorkflowRun::migrate)
    /// does: attempts already handed out keep their tokens, and the pool
    /// tasks running them, the actions not yet polled and the engine's own
    /// bookkeeping name the later version's steps from then on. Returns
    /// the diff, which says what changed for the run.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use taskweave::scheduler::{Dispatcher, DispatcherConfig};
    /// use taskweave::workflow::{EngineAction, StartPolicy, StepDef, StepTask, WorkflowDef, WorkflowEngine};
    /// use taskweave::Instant;
    ///
    /// let v1 = Arc::new(WorkflowDef::builder("order", 1)
    ///     .step(StepDef::local("reserve")).step(StepDef::local("ship"))
    ///     .edge("reserve", "ship").build()?);
    /// let v2 = Arc::new(WorkflowDef::builder("order", 2)
    ///     .step(StepDef::local("reserve")).step(StepDef::local("fraud")).step(StepDef::local("ship"))
    ///     .chain(["reserve", "fraud", "ship"]).build()?);
    /// let mut pool: Dispatcher<StepTask> = Dispatcher::new(DispatcherConfig::default());
    /// let mut engine: WorkflowEngine<u32> = WorkflowEngine::new();
    /// engine.register(Arc::clone(&v1))?;
    /// engine.register(Arc::clone(&v2))?;
    /// let run = engine.start_version(&mut pool, "order", StartPolicy::Pinned(1), None, Instant::ZERO)?;
    ///
    /// // `reserve` is running: `ship` is not reached, so the run may move.
    /// engine.migrate(&mut pool, run, 2, Instant::ZERO)?;
    /// assert_eq!(engine.live_runs("order").keys().map(|(v, _)| *v).collect::<Vec<_>>(), [2]);
    /// let Some(EngineAction::RunLocal { token, .. }) = engine.poll_action() else { unreachable!() };
    /// engine.report_local(&mut pool, run, token, Ok(taskweave::workflow::StepOutput::new(1)), Instant::ZERO)?;
    /// let Some(EngineAction::RunLocal { step, .. }) = engine.poll_action() else { unreachable!() };
    /// assert_eq!(step, v2.step_id("fraud").unwrap());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownRun`] if `run` is not active;
    /// [`EngineError::UnknownVersion`] if `version` of its workflow is not
    /// registered; [`EngineError::Migration`] if the run may not move (it
    /// reached a step the version changes, say). The run is unchanged then.
    pub fn migrate(
        &mut self,
        pool: &mut impl TaskPool,
        run: WorkflowId,
        version: u32,
        now: Instant,
    ) -> Result<DefinitionDiff, EngineError> {
        let now = self.clock(now);
        let entry = self
            .runs
            .get_mut(&run)
            .ok_or(EngineError::UnknownRun(run))?;
        let name = entry.run.definition().name().to_owned();
        let target: Arc<WorkflowDef> = self
            .versions
            .get(&name, version)
            .cloned()
            .ok_or(EngineError::UnknownVersion { name, version })?;
        let diff = WorkflowDef::diff(entry.run.definition(), &target);
        let migration: Migration<P> = diff.migration();
        entry.run.migrate(target, &migration)?;
        let image = |step: StepId| migration.image(step).unwrap_or(step);
        for tracked in self.tasks.values_mut() {
            if tracked.step.run == run {
                tracked.step.step = image(tracked.step.step);
            }
        }
        for action in &mut self.actions {
            match action {
                EngineAction::Assign { step: task, .. } if task.run == run => {
                    task.step = image(task.step);
                }
                EngineAction::RunLocal { run: r, step, .. }
                | EngineAction::CompensateLocal { run: r, step, .. }
                | EngineAction::CancelLocal { run: r, step, .. }
                | EngineAction::Expand { run: r, step }
                    if *r == run =>
                {
                    *step = image(*step);
                }
                _ => {}
            }
        }
        self.pump(pool, run, now);
        Ok(diff)
    }
}
