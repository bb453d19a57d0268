//! How many tasks wait, by priority: derived from the tasks' states, kept
//! in step as states change, and rebuilt from the tasks on restore.

use crate::Priority;
use crate::scheduler::task::TaskState;

/// Tasks queued at each priority, and tasks waiting (queued or delayed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(in crate::scheduler) struct WaitingCounts {
    queued: [usize; Priority::LEVELS],
    waiting: usize,
}

impl WaitingCounts {
    /// Counts a task entering (`delta` 1) or leaving (-1) `state`.
    #[inline]
    pub(in crate::scheduler) fn count(
        &mut self,
        state: TaskState,
        priority: Priority,
        delta: isize,
    ) {
        let apply = |n: &mut usize| *n = n.saturating_add_signed(delta);
        match state {
            TaskState::Queued => {
                apply(&mut self.queued[priority.index()]);
                apply(&mut self.waiting);
            }
            TaskState::Delayed { .. } => apply(&mut self.waiting),
            _ => {}
        }
    }

    /// Tasks queued (not delayed, not running) at `priority`.
    #[inline]
    pub(in crate::scheduler) fn queued(&self, priority: Priority) -> usize {
        self.queued[priority.index()]
    }

    /// Tasks queued at any priority.
    pub(in crate::scheduler) fn queued_total(&self) -> usize {
        self.queued.iter().sum()
    }

    /// Whether some task is queued. Checked after every input, so without
    /// a call.
    #[inline(always)]
    pub(in crate::scheduler) fn any_queued(&self) -> bool {
        self.waiting != 0 && self.queued.iter().any(|&n| n != 0)
    }

    /// Tasks waiting: queued or delayed.
    #[inline]
    pub(in crate::scheduler) fn waiting(&self) -> usize {
        self.waiting
    }
}
