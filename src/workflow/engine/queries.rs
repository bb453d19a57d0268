//! What a [`WorkflowEngine`] answers about its tasks and runs, without
//! changing anything.

use super::{StepTask, WorkflowEngine};
use crate::workflow::{EngineError, StepInput, WorkflowRun};
use crate::{AttemptToken, TaskId, WorkflowId};

impl<P: Clone> WorkflowEngine<P> {
    /// Whether `task` is one of the engine's (a step task the pool may
    /// still speak of).
    pub fn owns(&self, task: TaskId) -> bool {
        self.tasks.contains_key(&task)
    }

    /// The step (or compensation) one of the engine's tasks runs, while
    /// the pool may still speak of it.
    pub fn step_task(&self, task: TaskId) -> Option<StepTask> {
        self.tasks.get(&task).map(|tracked| tracked.step)
    }

    /// Every task of the engine's, with the step (or compensation) it
    /// runs: what [`step_task`](Self::step_task) answers, all of them.
    pub fn step_tasks(&self) -> impl Iterator<Item = (TaskId, StepTask)> + '_ {
        self.tasks
            .iter()
            .map(|(&task, tracked)| (task, tracked.step))
    }

    /// The parent of an active sub-workflow run; `None` for a top-level
    /// run, and for a run that is not active.
    pub fn parent(&self, run: WorkflowId) -> Option<WorkflowId> {
        self.runs.get(&run)?.parent.map(|(parent, _)| parent)
    }

    /// Step tasks submitted and not yet resolved.
    pub fn live_tasks(&self) -> usize {
        self.live.len()
    }

    /// Runs that have not finished yet, sub-workflow runs included.
    pub fn active_runs(&self) -> usize {
        self.runs.len()
    }

    /// A run that has not finished yet.
    pub fn run(&self, run: WorkflowId) -> Option<&WorkflowRun<P>> {
        self.runs.get(&run).map(|entry| &entry.run)
    }

    /// Every run that has not finished yet, sub-workflow runs included.
    pub fn runs(&self) -> impl Iterator<Item = &WorkflowRun<P>> + '_ {
        self.runs.values().map(|entry| &entry.run)
    }

    /// The input of attempt `token` of `run`.
    ///
    /// # Errors
    ///
    /// [`EngineError::RunFinished`] for a run that finished,
    /// [`EngineError::UnknownRun`] for one the engine does not know, or
    /// the run's error.
    pub fn input(&self, run: WorkflowId, token: AttemptToken) -> Result<StepInput<P>, EngineError> {
        let entry = self.runs.get(&run).ok_or_else(|| self.absent(run))?;
        Ok(entry.run.input(token)?)
    }
}
