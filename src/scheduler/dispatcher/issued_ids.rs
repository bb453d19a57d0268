//! Task ids across a return to an earlier state: a dispatcher put back to
//! an earlier state of its own history (the database that held it
//! restored from a backup) would give the ids its later state handed out
//! to other tasks, and a submitter holding one would read another task's
//! outcome. Raised past them, it never hands them out again.

use super::Dispatcher;

impl<P, S> Dispatcher<P, S> {
    /// The floor past every task id this dispatcher handed out, for
    /// [`skip_issued_ids`](Self::skip_issued_ids) on an earlier state of
    /// it. `O(slots)`: the peak of live tasks plus the records kept.
    pub(crate) fn past_issued_ids(&self) -> u32 {
        self.state.tasks.past_issued()
    }

    /// Hands out no task id below `floor` (a later state's
    /// [`past_issued_ids`](Self::past_issued_ids)) from now on; the tasks
    /// it holds keep theirs. Never lowers the floor; snapshots carry it.
    pub(crate) fn skip_issued_ids(&mut self, floor: u32) {
        self.state.tasks.skip_issued(floor);
    }
}
