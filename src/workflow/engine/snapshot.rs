//! [`EngineSnapshot`]: an engine's whole state as a value, taken beside its
//! pool's [`Snapshot`](crate::scheduler::Snapshot) and restored with it
//! (`restore.rs`).

use super::{FinishedRun, MismatchPolicy, StepTask, WorkflowEngine};
use crate::workflow::{Checkpoint, EngineAction};
use crate::{AttemptToken, Instant, TaskId, WorkflowId};

/// The parent run and attempt a sub-workflow run completes.
type SubWorkflowAttempt = (WorkflowId, AttemptToken);

/// Everything a [`WorkflowEngine`] knows — each active run's
/// [`Checkpoint`] and parent, the pool tasks of its steps, the child runs
/// of sub-workflow steps, the actions not yet pulled, the parked
/// checkpoints, the finished runs it remembers, its clock and its
/// settings — as a value that serde can store. The observer is not part
/// of it, nor are the definitions: [`WorkflowEngine::restore`] is given
/// them again.
///
/// Take it together with the pool's snapshot, with no call in between:
/// the engine's step tasks are the pool's tasks. The pair continues as
/// the pair that was snapshotted would have, action for action.
///
/// Its serde form is canonical (every collection in id order) and carries
/// a format number ([`EngineSnapshot::FORMAT`]).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct EngineSnapshot<P> {
    pub(super) format: u32,
    /// Active runs in id order, with the sub-workflow attempt each child
    /// completes.
    pub(super) runs: Vec<(Checkpoint<P>, Option<SubWorkflowAttempt>)>,
    /// Pool tasks of the engine's, in task order: the step attempt each
    /// carries, and whether it is closing (resolved for its run, with
    /// one action still owed by the pool).
    pub(super) tasks: Vec<(TaskId, StepTask, bool)>,
    /// The child run of each sub-workflow attempt, in order.
    pub(super) children: Vec<(WorkflowId, AttemptToken, WorkflowId)>,
    /// Actions not yet pulled, in order.
    pub(super) actions: Vec<EngineAction<P>>,
    pub(super) next_run: u64,
    pub(super) latest: Instant,
    /// Registered definitions: name, version, content hash.
    pub(super) registered: Vec<(String, u32, u64)>,
    /// Parked checkpoints, in id order.
    pub(super) parked: Vec<Checkpoint<P>>,
    pub(super) mismatch: MismatchPolicy,
    pub(super) retention: super::RunRetention,
    /// Finished runs remembered, oldest end first.
    pub(super) finished: Vec<FinishedRun<P>>,
}

impl<P> EngineSnapshot<P> {
    /// The format this release writes and reads.
    pub const FORMAT: u32 = 1;

    /// The snapshot's format.
    pub fn format(&self) -> u32 {
        self.format
    }

    /// Active runs it holds, sub-workflow runs included.
    pub fn active_runs(&self) -> usize {
        self.runs.len()
    }

    /// The finished runs it remembers (its [`RunRetention`](super::RunRetention)),
    /// oldest end first.
    pub fn remembered(&self) -> &[FinishedRun<P>] {
        &self.finished
    }
}

impl<P: Clone> WorkflowEngine<P> {
    /// The engine's whole state as a value; see [`EngineSnapshot`].
    /// `O(n log n)` in the runs, tasks and remembered ends.
    #[must_use]
    pub fn snapshot(&self) -> EngineSnapshot<P> {
        let mut runs: Vec<_> = self
            .runs
            .values()
            .map(|entry| (entry.run.checkpoint(), entry.parent))
            .collect();
        runs.sort_by_key(|(checkpoint, _)| checkpoint.run_id());
        // Every live attempt's task is tracked, so `live` is rebuilt from
        // the tracked tasks that are not closing.
        let mut tasks: Vec<_> = self
            .tasks
            .iter()
            .map(|(&task, tracked)| (task, tracked.step, tracked.closing))
            .collect();
        tasks.sort_by_key(|&(task, ..)| task);
        let mut children: Vec<_> = self
            .children
            .iter()
            .map(|(&(run, token), &child)| (run, token, child))
            .collect();
        children.sort_unstable();
        EngineSnapshot {
            format: EngineSnapshot::<P>::FORMAT,
            runs,
            tasks,
            children,
            actions: self.actions.iter().cloned().collect(),
            next_run: self.next_run,
            latest: self.latest,
            registered: self
                .versions
                .iter()
                .map(|def| (def.name().to_owned(), def.version(), def.content_hash()))
                .collect(),
            parked: self.parked.values().cloned().collect(),
            mismatch: self.mismatch,
            retention: self.finished.retention,
            finished: self.finished.iter().cloned().collect(),
        }
    }
}
