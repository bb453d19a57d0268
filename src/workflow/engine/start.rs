//! Starting runs under a fresh id (one the host chose: `retention.rs`).

use std::sync::Arc;

use super::{Entry, WorkflowEngine};
use crate::workflow::{TaskPool, WorkflowDef, WorkflowRun};
use crate::{AttemptToken, Instant, WorkflowId};

impl<P: Clone> WorkflowEngine<P> {
    /// Starts a run of `def` with `input`; returns its id. Its ready
    /// agent steps are submitted to `pool`.
    pub fn start(
        &mut self,
        pool: &mut impl TaskPool,
        def: Arc<WorkflowDef>,
        input: Option<P>,
        now: Instant,
    ) -> WorkflowId {
        let now = self.clock(now);
        self.spawn(pool, def, input, None, now)
    }

    pub(super) fn spawn(
        &mut self,
        pool: &mut impl TaskPool,
        def: Arc<WorkflowDef>,
        input: Option<P>,
        parent: Option<(WorkflowId, AttemptToken)>,
        now: Instant,
    ) -> WorkflowId {
        let id = self.fresh_id();
        self.spawn_as(pool, def, id, input, parent, now);
        id
    }

    /// The id the next run started without one takes: the next no active,
    /// parked or remembered finished run has. Ids count up from 1, past any a resumed run
    /// took, and wrap around at the end.
    pub(super) fn free_id(&self) -> WorkflowId {
        let mut next = self.next_run;
        loop {
            let id = WorkflowId::new(next);
            if !self.runs.contains_key(&id)
                && !self.parked.contains_key(&id)
                && !self.finished.holds(id)
            {
                return id;
            }
            next = next.wrapping_add(1).max(1);
        }
    }

    /// The least run id past every id this engine took or holds (its
    /// active, parked and remembered finished runs), for
    /// [`skip_issued_runs`](Self::skip_issued_runs) on an earlier state of
    /// it. `O(runs held)`.
    #[cfg(feature = "cluster")]
    pub(crate) fn past_issued_runs(&self) -> u64 {
        let held = (self.runs.keys().chain(self.parked.keys()))
            .chain(self.finished.iter().map(|end| &end.run))
            .map(|id| id.get().saturating_add(1))
            .max();
        held.map_or(self.next_run, |past| past.max(self.next_run))
    }

    /// Starts the runs started without an id from `next` on (a later
    /// state's [`past_issued_runs`](Self::past_issued_runs)): an engine put
    /// back to an earlier state of its history gives no new run an id its
    /// later state gave another. Never counts back.
    #[cfg(feature = "cluster")]
    pub(crate) fn skip_issued_runs(&mut self, next: u64) {
        self.next_run = self.next_run.max(next);
    }

    /// Takes [`free_id`](Self::free_id): the next run counts on from it.
    fn fresh_id(&mut self) -> WorkflowId {
        let id = self.free_id();
        self.next_run = id.get().wrapping_add(1).max(1);
        id
    }

    /// Starts a run of `def` under `id`, free.
    pub(super) fn spawn_as(
        &mut self,
        pool: &mut impl TaskPool,
        def: Arc<WorkflowDef>,
        id: WorkflowId,
        input: Option<P>,
        parent: Option<(WorkflowId, AttemptToken)>,
        now: Instant,
    ) {
        let run = match self.run_observer() {
            Some(observer) => WorkflowRun::with_observer(def, id, input, now, observer),
            None => WorkflowRun::new(def, id, input, now),
        };
        self.runs.insert(
            id,
            Entry {
                run,
                timer: None,
                parent,
            },
        );
        self.pump(pool, id, now);
    }
}
