//! Starting runs: under a fresh id, or under one the host chose.

use std::sync::Arc;

use super::{Entry, WorkflowEngine};
use crate::workflow::{EngineError, TaskPool, WorkflowDef, WorkflowRun};
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

    /// Starts a run of `def` under the id `id`, one the host derives from
    /// something it may see twice — a schedule's fire (`RunKey::workflow_id`
    /// of the `schedule` feature), a request's idempotency key — so that a
    /// second start of it starts nothing while the first run is on the
    /// engine. Returns `id`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use taskweave::scheduler::{Dispatcher, DispatcherConfig};
    /// use taskweave::workflow::{EngineError, StepDef, StepTask, WorkflowDef, WorkflowEngine};
    /// use taskweave::{Instant, WorkflowId};
    ///
    /// let def = Arc::new(WorkflowDef::builder("report", 1).step(StepDef::agent("write")).build()?);
    /// let mut pool: Dispatcher<StepTask> = Dispatcher::new(DispatcherConfig::default());
    /// let mut engine: WorkflowEngine<u32> = WorkflowEngine::new();
    /// let id = WorkflowId::new(0x5eed);
    /// engine.start_as(&mut pool, Arc::clone(&def), id, None, Instant::ZERO)?;
    /// assert_eq!(
    ///     engine.start_as(&mut pool, def, id, None, Instant::ZERO),
    ///     Err(EngineError::RunExists(id))
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`EngineError::RunExists`] while a run with this id is active or
    /// parked; nothing is started then.
    pub fn start_as(
        &mut self,
        pool: &mut impl TaskPool,
        def: Arc<WorkflowDef>,
        id: WorkflowId,
        input: Option<P>,
        now: Instant,
    ) -> Result<WorkflowId, EngineError> {
        if self.runs.contains_key(&id) || self.parked.contains_key(&id) {
            return Err(EngineError::RunExists(id));
        }
        let now = self.clock(now);
        self.spawn_as(pool, def, id, input, None, now);
        Ok(id)
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

    /// The id the next run started without one takes: the next no active
    /// or parked run has. Ids count up from 1, past any a resumed run
    /// took, and wrap around at the end.
    pub(super) fn free_id(&self) -> WorkflowId {
        let mut next = self.next_run;
        loop {
            let id = WorkflowId::new(next);
            if !self.runs.contains_key(&id) && !self.parked.contains_key(&id) {
                return id;
            }
            next = next.wrapping_add(1).max(1);
        }
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
