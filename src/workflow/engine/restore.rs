//! [`WorkflowEngine::restore`]: an engine continued from an
//! [`EngineSnapshot`], which is checked as untrusted input first.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::{EngineSnapshot, Entry, Tracked, WorkflowEngine, retention};
use crate::hash::IdMap;
use crate::workflow::{EngineError, StepKind, WorkflowDef, WorkflowRun};
use crate::{AttemptToken, TaskId, WorkflowId};

/// The definitions a restore may use, by name, version and content hash:
/// those given, and every sub-workflow nested in them.
struct Catalog(BTreeMap<(String, u32, u64), Arc<WorkflowDef>>);

impl Catalog {
    fn new(definitions: impl IntoIterator<Item = Arc<WorkflowDef>>) -> Self {
        let mut catalog = Catalog(BTreeMap::new());
        // Nesting is bounded by each definition's validated depth limit.
        let mut pending: Vec<Arc<WorkflowDef>> = definitions.into_iter().collect();
        while let Some(def) = pending.pop() {
            let key = (def.name().to_owned(), def.version(), def.content_hash());
            if catalog.0.contains_key(&key) {
                continue;
            }
            for (_, step) in def.steps() {
                if let StepKind::SubWorkflow(child) = &step.kind {
                    pending.push(Arc::clone(child));
                }
            }
            catalog.0.insert(key, def);
        }
        catalog
    }

    fn get(&self, name: &str, version: u32, hash: u64) -> Result<Arc<WorkflowDef>, EngineError> {
        self.0
            .get(&(name.to_owned(), version, hash))
            .cloned()
            .ok_or_else(|| EngineError::MissingDefinition {
                name: name.to_owned(),
                version,
                hash,
            })
    }
}

fn invalid(field: impl Into<String>, reason: &'static str) -> EngineError {
    EngineError::InvalidSnapshot {
        field: field.into(),
        reason,
    }
}

impl<P: Clone> WorkflowEngine<P> {
    /// An engine that continues from `snapshot` (see [`EngineSnapshot`]),
    /// with the definitions its runs and registrations use (sub-workflows
    /// nested in them are found there). Restore the pool from the
    /// snapshot taken with it, and set the observer again.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use taskweave::routing::LeastLoaded;
    /// use taskweave::scheduler::{Dispatcher, DispatcherConfig};
    /// use taskweave::workflow::{EngineAction, StepDef, StepTask, WorkflowDef, WorkflowEngine};
    /// use taskweave::Instant;
    ///
    /// let def = Arc::new(WorkflowDef::builder("report", 1).step(StepDef::agent("write")).build()?);
    /// let mut pool: Dispatcher<StepTask> = Dispatcher::new(DispatcherConfig::default());
    /// let mut engine: WorkflowEngine<u32> = WorkflowEngine::new();
    /// let run = engine.start(&mut pool, Arc::clone(&def), None, Instant::ZERO);
    ///
    /// // Both halves, stored as data and read back elsewhere.
    /// let (pool_state, engine_state) = (pool.snapshot(), engine.snapshot());
    /// let json = serde_json::to_string(&engine_state)?;
    /// let pool = Dispatcher::restore(DispatcherConfig::default(), LeastLoaded::new(), pool_state)?;
    /// let engine: WorkflowEngine<u32> = WorkflowEngine::restore(serde_json::from_str(&json)?, [def])?;
    /// assert!(engine.run(run).is_some());
    /// assert_eq!((engine.live_tasks(), pool.live_tasks()), (1, 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`EngineError::UnsupportedSnapshot`] for another format;
    /// [`EngineError::MissingDefinition`] for a definition a run or a
    /// registration needs that is not given; [`EngineError::Run`] for a
    /// run checkpoint its definition refuses; [`EngineError::InvalidSnapshot`]
    /// naming the first field that contradicts the rest (an id listed
    /// twice, a task of no run, a child whose parent does not know it,
    /// more finished runs than the retention keeps...). Costs
    /// `O(n log n)` in the size of the snapshot, plus each run's checkpoint
    /// validation.
    pub fn restore(
        snapshot: EngineSnapshot<P>,
        definitions: impl IntoIterator<Item = Arc<WorkflowDef>>,
    ) -> Result<Self, EngineError> {
        if snapshot.format != EngineSnapshot::<P>::FORMAT {
            return Err(EngineError::UnsupportedSnapshot {
                found: snapshot.format,
                supported: EngineSnapshot::<P>::FORMAT,
            });
        }
        let catalog = Catalog::new(definitions);
        let mut engine = WorkflowEngine::new();
        for (name, version, hash) in &snapshot.registered {
            engine
                .register(catalog.get(name, *version, *hash)?)
                .map_err(|_| invalid("registered", "lists one name and version twice"))?;
        }
        for (checkpoint, parent) in snapshot.runs {
            let id = checkpoint.run_id();
            let def = catalog.get(
                checkpoint.name(),
                checkpoint.version(),
                checkpoint.content_hash(),
            )?;
            let run = WorkflowRun::resume(def, checkpoint)?;
            let timer = run.poll_timeout();
            if let Some(at) = timer {
                engine.timers.insert((at, id));
            }
            let entry = Entry { run, timer, parent };
            if engine.runs.insert(id, entry).is_some() {
                return Err(invalid("runs", "lists a run twice"));
            }
        }
        engine.restore_tasks(snapshot.tasks)?;
        engine.restore_children(snapshot.children)?;
        engine.check_open_attempts()?;
        for checkpoint in snapshot.parked {
            let id = checkpoint.run_id();
            if engine.runs.contains_key(&id) || engine.parked.insert(id, checkpoint).is_some() {
                return Err(invalid("parked", "lists a run twice, or an active one"));
            }
        }
        engine.restore_finished(snapshot.retention, snapshot.finished, snapshot.latest)?;
        if snapshot.next_run == 0 {
            return Err(invalid("next_run", "is 0; run ids start at 1"));
        }
        engine.next_run = snapshot.next_run;
        engine.latest = snapshot.latest;
        engine.mismatch = snapshot.mismatch;
        engine.actions = snapshot.actions.into();
        Ok(engine)
    }

    /// The pool tasks, each of an active run's attempt unless closing;
    /// the live attempts are those not closing.
    fn restore_tasks(
        &mut self,
        tasks: Vec<(TaskId, crate::workflow::StepTask, bool)>,
    ) -> Result<(), EngineError> {
        let mut live = IdMap::default();
        let mut all = IdMap::default();
        for (task, step, closing) in tasks {
            if !closing {
                let run = self
                    .runs
                    .get(&step.run)
                    .ok_or_else(|| invalid("tasks", "names a live step of no active run"))?;
                // One lookup by token, not a walk of the timeline: a
                // snapshot of many attempts restores in linear time.
                let open = run.run.attempt(step.token).is_ok_and(|attempt| {
                    let execs = &run.run.state().execs;
                    attempt.end.is_none()
                        && attempt.compensation == step.compensation
                        && execs
                            .get(attempt.exec as usize)
                            .is_some_and(|exec| exec.step == step.step)
                });
                if !open {
                    return Err(invalid("tasks", "names an attempt its run has not open"));
                }
                if live.insert((step.run, step.token), task).is_some() {
                    return Err(invalid("tasks", "gives one attempt two tasks"));
                }
            }
            if all.insert(task, Tracked { step, closing }).is_some() {
                return Err(invalid("tasks", "lists a task twice"));
            }
        }
        self.live = live;
        self.tasks = all;
        Ok(())
    }

    /// The child run of each sub-workflow attempt: both ends must agree.
    fn restore_children(
        &mut self,
        children: Vec<(WorkflowId, AttemptToken, WorkflowId)>,
    ) -> Result<(), EngineError> {
        for (parent, token, child) in children {
            let known = self.runs.get(&child).and_then(|entry| entry.parent);
            if known != Some((parent, token)) || !self.runs.contains_key(&parent) {
                return Err(invalid(
                    "children",
                    "names a child its parent does not know",
                ));
            }
            if self.children.insert((parent, token), child).is_some() {
                return Err(invalid("children", "gives one attempt two children"));
            }
        }
        let with_parent = self.runs.values().filter(|e| e.parent.is_some()).count();
        if with_parent != self.children.len() {
            return Err(invalid(
                "runs",
                "holds a child run its parent does not list",
            ));
        }
        Ok(())
    }

    /// Every run at rest: no action of its own left unpumped, each open
    /// agent attempt carried by a live task and each open sub-workflow
    /// attempt by a child run (and nothing else by either), and no run
    /// its own ancestor. What this cannot check is the pool: the pair of
    /// snapshots must have been taken together.
    fn check_open_attempts(&self) -> Result<(), EngineError> {
        for (&id, entry) in self.runs.iter() {
            if !entry.run.state().actions.is_empty() {
                return Err(invalid("runs", "holds a run with actions never handed out"));
            }
            let def = entry.run.definition();
            for attempt in entry.run.timeline().filter(|t| t.end.is_none()) {
                let kind = def.step(attempt.step).map(|step| &step.kind);
                let key = (id, attempt.token);
                let (task, child) = (
                    self.live.contains_key(&key),
                    self.children.contains_key(&key),
                );
                let expected = match kind {
                    Some(StepKind::Agent) => (true, false),
                    Some(StepKind::SubWorkflow(_)) if !attempt.compensation => (false, true),
                    _ => (false, false),
                };
                if (task, child) != expected {
                    return Err(invalid(
                        "tasks",
                        "does not match the open attempts of a run (a step task or a child run missing or extra)",
                    ));
                }
            }
        }
        // Each run has at most one parent: a walk up from a run ends at a
        // top-level run, at a run a walk already cleared, or comes back to
        // a run of its own path. Each run is cleared once: `O(runs)`.
        let mut cleared: BTreeSet<WorkflowId> = BTreeSet::new();
        for &start in self.runs.keys() {
            let mut path = BTreeSet::new();
            let mut at = start;
            while !cleared.contains(&at) {
                if !path.insert(at) {
                    return Err(invalid("runs", "holds a run that is its own ancestor"));
                }
                match self.runs.get(&at).and_then(|entry| entry.parent) {
                    Some((parent, _)) => at = parent,
                    None => break,
                }
            }
            cleared.extend(path);
        }
        Ok(())
    }

    /// The finished runs: unique, none active or parked, oldest end
    /// first, none after the clock, as many as the retention keeps.
    fn restore_finished(
        &mut self,
        retention: super::RunRetention,
        finished: Vec<super::FinishedRun<P>>,
        latest: crate::Instant,
    ) -> Result<(), EngineError> {
        let retention = super::RunRetention::new(retention.max_runs(), retention.max_age())?;
        if finished.len() > retention.max_runs() {
            return Err(invalid(
                "finished",
                "holds more runs than the retention keeps",
            ));
        }
        let mut record = retention::Finished::default();
        record.retention = retention;
        let mut seen = BTreeSet::new();
        let mut previous = crate::Instant::ZERO;
        for end in finished {
            let id = end.run;
            if !seen.insert(id) || self.runs.contains_key(&id) || self.parked.contains_key(&id) {
                return Err(invalid("finished", "lists a run twice, or an active one"));
            }
            if end.at < previous || end.at > latest {
                return Err(invalid(
                    "finished",
                    "is not in order of end, up to the clock",
                ));
            }
            previous = end.at;
            record.insert(end);
        }
        self.finished = record;
        Ok(())
    }
}
