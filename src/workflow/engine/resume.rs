//! Resuming runs from checkpoints on an engine, and what happens to a
//! checkpoint no registered definition serves: parked (with one event),
//! rejected, or failed — never retried in a loop.

use std::sync::{Arc, PoisonError};

use super::{Entry, WorkflowEngine};
use crate::workflow::{
    Checkpoint, EngineError, FailureCause, RunError, RunOutcome, TaskPool, WorkflowDef,
    WorkflowEvent, WorkflowRun,
};
use crate::{Instant, WorkflowId};

/// What [`WorkflowEngine::resume`] does with a checkpoint whose definition
/// (name, version and content hash) is not registered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum MismatchPolicy {
    /// Keep the checkpoint aside, emit one
    /// [`WorkflowEvent::RunParked`], and resume it when
    /// [`resume_parked`](WorkflowEngine::resume_parked) finds its
    /// definition registered. Nothing runs and nothing is retried
    /// meanwhile.
    #[default]
    Park,
    /// Refuse the checkpoint with [`EngineError::Unservable`]; the engine
    /// keeps nothing.
    Reject,
    /// End the run at once as failed
    /// ([`FailureCause::Unservable`], through
    /// [`EngineAction::Finished`](crate::workflow::EngineAction::Finished)), without compensating: nothing of it
    /// can run.
    Fail,
}

/// What became of a checkpoint given to [`WorkflowEngine::resume`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Resumed {
    /// The run goes on under its registered definition.
    Running(WorkflowId),
    /// No definition serves it: parked.
    Parked(WorkflowId),
    /// No definition serves it: ended as failed.
    Failed(WorkflowId),
}

impl<P: Clone> WorkflowEngine<P> {
    /// Sets what [`resume`](Self::resume) does with a checkpoint no
    /// registered definition serves (default: [`MismatchPolicy::Park`]).
    pub fn set_mismatch_policy(&mut self, policy: MismatchPolicy) {
        self.mismatch = policy;
    }

    /// Continues a run from its checkpoint under the registered definition
    /// it was taken under (same name, version and content hash; see
    /// [`register`](Self::register)), keeping its id. Attempts that were
    /// running are handed out again with their tokens — as pool tasks, or
    /// local actions — since whatever ran them before is presumed lost; a
    /// running sub-workflow step starts its child run afresh. The run is
    /// resumed as a top-level run.
    ///
    /// Without such a definition, the [`MismatchPolicy`] decides.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use taskweave::scheduler::{Dispatcher, DispatcherConfig};
    /// use taskweave::workflow::{Resumed, StepDef, StepTask, WorkflowDef, WorkflowEngine, WorkflowRun};
    /// use taskweave::{Instant, WorkflowId};
    ///
    /// let v1 = Arc::new(WorkflowDef::builder("order", 1).step(StepDef::agent("ship")).build()?);
    /// let checkpoint = WorkflowRun::<u32>::new(Arc::clone(&v1), WorkflowId::new(7), None, Instant::ZERO).checkpoint();
    ///
    /// let mut pool: Dispatcher<StepTask> = Dispatcher::new(DispatcherConfig::default());
    /// let mut engine: WorkflowEngine<u32> = WorkflowEngine::new();
    /// // v1 is not registered: the run is parked, once.
    /// assert_eq!(engine.resume(&mut pool, checkpoint, Instant::ZERO)?, Resumed::Parked(WorkflowId::new(7)));
    /// assert_eq!(engine.unservable_runs(), [WorkflowId::new(7)]);
    ///
    /// engine.register(v1)?;
    /// assert_eq!(engine.resume_parked(&mut pool, Instant::ZERO), [WorkflowId::new(7)]);
    /// assert_eq!(engine.parked_runs(), 0);
    /// assert_eq!(engine.live_tasks(), 1); // `ship` is submitted again
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`EngineError::RunExists`] if a run with its id is active, parked,
    /// or remembered as finished ([`RunRetention`](super::RunRetention)):
    /// a run is never resumed after its end; [`EngineError::Run`] if the checkpoint is refused
    /// (another format, or a state its definition cannot be in);
    /// [`EngineError::Unservable`] under [`MismatchPolicy::Reject`].
    pub fn resume(
        &mut self,
        pool: &mut impl TaskPool,
        checkpoint: Checkpoint<P>,
        now: Instant,
    ) -> Result<Resumed, EngineError> {
        let now = self.clock(now);
        let id = checkpoint.run_id();
        if self.runs.contains_key(&id) || self.parked.contains_key(&id) || self.finished.holds(id) {
            return Err(EngineError::RunExists(id));
        }
        if checkpoint.format() != Checkpoint::<P>::FORMAT {
            return Err(RunError::UnsupportedCheckpoint {
                found: checkpoint.format(),
                supported: Checkpoint::<P>::FORMAT,
            }
            .into());
        }
        if let Some(def) = self.serving(&checkpoint) {
            let run = WorkflowRun::resume(def, checkpoint)?;
            self.revive(pool, run, now);
            return Ok(Resumed::Running(id));
        }
        let (name, version, hash) = (
            checkpoint.name().to_owned(),
            checkpoint.version(),
            checkpoint.content_hash(),
        );
        match self.mismatch {
            MismatchPolicy::Park => {
                self.emit(&WorkflowEvent::RunParked {
                    run: id,
                    name,
                    version,
                    hash,
                });
                self.parked.insert(id, checkpoint);
                Ok(Resumed::Parked(id))
            }
            MismatchPolicy::Reject => Err(EngineError::Unservable {
                run: id,
                name,
                version,
                hash,
            }),
            MismatchPolicy::Fail => {
                let workflow = (name.clone(), version);
                let cause = FailureCause::Unservable {
                    name,
                    version,
                    hash,
                };
                self.emit(&WorkflowEvent::RunFailed {
                    run: id,
                    cause: cause.clone(),
                });
                self.top_level_finished(id, workflow, RunOutcome::Failed(cause), None, now);
                Ok(Resumed::Failed(id))
            }
        }
    }

    /// Runs parked because no registered definition served them.
    pub fn parked_runs(&self) -> usize {
        self.parked.len()
    }

    /// The parked runs that no registered definition can serve now, in id
    /// order: their definition is not registered, or it refuses their
    /// checkpoint. `O(parked runs)`, plus a checkpoint validation for
    /// each whose definition is registered.
    pub fn unservable_runs(&self) -> Vec<WorkflowId> {
        self.parked
            .iter()
            .filter(|(_, checkpoint)| {
                self.serving(checkpoint)
                    .is_none_or(|def| WorkflowRun::resume(def, (*checkpoint).clone()).is_err())
            })
            .map(|(&id, _)| id)
            .collect()
    }

    /// Resumes every parked run whose definition is registered now (call
    /// it after [`register`](Self::register)); returns them in id order.
    /// A parked run whose definition refuses its checkpoint stays parked
    /// (and listed by [`unservable_runs`](Self::unservable_runs)). Nothing
    /// is emitted for runs that stay parked, so calling it often costs
    /// `O(parked runs)` and nothing else.
    pub fn resume_parked(&mut self, pool: &mut impl TaskPool, now: Instant) -> Vec<WorkflowId> {
        let now = self.clock(now);
        let servable: Vec<_> = self
            .parked
            .iter()
            .filter_map(|(&id, checkpoint)| self.serving(checkpoint).map(|def| (id, def)))
            .collect();
        let mut resumed = Vec::new();
        for (id, def) in servable {
            let Some(checkpoint) = self.parked.remove(&id) else {
                continue;
            };
            match WorkflowRun::resume(def, checkpoint.clone()) {
                Ok(run) => {
                    self.revive(pool, run, now);
                    resumed.push(id);
                }
                Err(_) => {
                    self.parked.insert(id, checkpoint);
                }
            }
        }
        resumed
    }

    /// Gives a parked run's checkpoint back (to migrate it with
    /// [`WorkflowDef::diff`] and resume it, or to store it elsewhere).
    pub fn take_parked(&mut self, run: WorkflowId) -> Option<Checkpoint<P>> {
        self.parked.remove(&run)
    }

    /// The registered definition the checkpoint was taken under.
    fn serving(&self, checkpoint: &Checkpoint<P>) -> Option<Arc<WorkflowDef>> {
        self.versions
            .get(checkpoint.name(), checkpoint.version())
            .filter(|def| def.content_hash() == checkpoint.content_hash())
            .cloned()
    }

    /// Puts a resumed run on the engine and hands out its work.
    fn revive(&mut self, pool: &mut impl TaskPool, mut run: WorkflowRun<P>, now: Instant) {
        let id = run.id();
        if let Some(observer) = self.run_observer() {
            run.set_observer(observer);
        }
        run.reissue_running();
        self.next_run = self.next_run.max(id.get().saturating_add(1));
        self.runs.insert(
            id,
            Entry {
                run,
                timer: None,
                parent: None,
            },
        );
        self.pump(pool, id, now);
    }

    /// The engine's observer, for one run.
    pub(super) fn run_observer(&self) -> Option<impl FnMut(&WorkflowEvent) + Send + 'static> {
        let shared = Arc::clone(self.observer.as_ref()?);
        Some(move |event: &WorkflowEvent| {
            // Runs share the observer; one that panicked still hears the
            // next event.
            let mut observer = shared.lock().unwrap_or_else(PoisonError::into_inner);
            observer.on_event(event);
        })
    }

    fn emit(&self, event: &WorkflowEvent) {
        if let Some(shared) = &self.observer {
            let mut observer = shared.lock().unwrap_or_else(PoisonError::into_inner);
            observer.on_event(event);
        }
    }
}
