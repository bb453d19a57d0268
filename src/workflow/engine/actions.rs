//! What the engine hands the host, and what its pool tasks carry.

use crate::workflow::RunOutcome;
use crate::{AgentId, AttemptToken, StepId, TaskId, WorkflowId};
#[cfg(doc)]
use crate::{scheduler::Action, workflow::WorkflowEngine};

/// What a pool task of the engine carries: which attempt of which run.
/// The host's payload type wraps it (`From<StepTask>`, see
/// [`TaskPool`](crate::workflow::TaskPool)); [`StepTask`] alone serves a
/// pool that runs nothing but steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct StepTask {
    /// The run.
    pub run: WorkflowId,
    /// The step.
    pub step: StepId,
    /// The run's attempt token (not the dispatcher's).
    pub token: AttemptToken,
    /// Whether the task compensates the step instead of running it.
    pub compensation: bool,
}

/// What the host should do next; pulled with
/// [`WorkflowEngine::poll_action`].
#[derive(Clone, Debug, PartialEq)]
#[must_use = "an action must be carried out, or its run waits forever"]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum EngineAction<P> {
    /// Run (or compensate) an agent step on `agent`; its input is
    /// [`WorkflowEngine::input`]`(step.run, step.token)`. Report with
    /// [`WorkflowEngine::report`] and this `task` and `token`.
    Assign {
        /// The dispatcher task.
        task: TaskId,
        /// The agent chosen.
        agent: AgentId,
        /// The dispatcher's fencing token.
        token: AttemptToken,
        /// The run attempt it carries.
        step: StepTask,
    },
    /// Stop the pool's attempt `token` of `task` on `agent`: the run
    /// cancelled the step, or the pool stopped the attempt itself (its
    /// [`Action::Cancel`], handed to [`WorkflowEngine::handle_action`]).
    CancelAssigned {
        /// The dispatcher task.
        task: TaskId,
        /// The agent running it.
        agent: AgentId,
        /// The dispatcher's token.
        token: AttemptToken,
    },
    /// Run an in-process step; report with [`WorkflowEngine::report_local`].
    RunLocal {
        /// The run.
        run: WorkflowId,
        /// The step.
        step: StepId,
        /// The run's attempt token.
        token: AttemptToken,
    },
    /// Compensate an in-process or sub-workflow step; report with
    /// [`WorkflowEngine::compensated`].
    CompensateLocal {
        /// The run.
        run: WorkflowId,
        /// The step.
        step: StepId,
        /// The compensation attempt's token.
        token: AttemptToken,
    },
    /// Stop an in-process attempt.
    CancelLocal {
        /// The run.
        run: WorkflowId,
        /// The step.
        step: StepId,
        /// The attempt.
        token: AttemptToken,
    },
    /// A multi-instance step needs its items: [`WorkflowEngine::expand`].
    Expand {
        /// The run.
        run: WorkflowId,
        /// The step.
        step: StepId,
    },
    /// A top-level run ended (sub-workflow runs report to their parent
    /// step instead). The run is removed from the engine.
    Finished {
        /// The run.
        run: WorkflowId,
        /// How it ended.
        outcome: RunOutcome,
        /// Its output.
        output: Option<P>,
    },
}
