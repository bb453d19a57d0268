//! [`Migration`]: a run's move from one version of its definition to
//! another, as data, and [`WorkflowRun::migrate`], which applies it.

use std::sync::Arc;

use thiserror::Error;

use super::StepState;
use super::run::{EdgeState, Phase, RunState, StepSlot, Timer};
use super::{AttemptEnd, Checkpoint, RunAction, RunError, WorkflowDef, WorkflowRun};
use crate::{AttemptToken, StepId};

/// A definition as a migration names it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(super) struct DefinitionRef {
    name: String,
    version: u32,
    hash: u64,
}

impl DefinitionRef {
    pub(super) fn of(def: &WorkflowDef) -> Self {
        DefinitionRef {
            name: def.name().to_owned(),
            version: def.version(),
            hash: def.content_hash(),
        }
    }

    fn is(&self, def: &WorkflowDef) -> bool {
        *self == DefinitionRef::of(def)
    }
}

/// How a run moves from one version of its definition to another: which
/// step and edge of the earlier version each becomes, which steps the run
/// must not have reached, and, optionally, new payloads for outputs
/// already produced.
///
/// Planned by [`DefinitionDiff::migration`](super::DefinitionDiff::migration),
/// applied by [`WorkflowRun::migrate`], journaled by
/// [`RunRecorder::migrate`](super::RunRecorder::migrate) so a replay
/// moves at the same point. A migration read back is data from outside:
/// applying it checks it against both definitions and the run, and the
/// moved state is validated as a checkpoint is, before anything changes.
///
/// ```
/// use std::sync::Arc;
/// use taskweave::workflow::{RunAction, StepDef, StepOutput, WorkflowDef, WorkflowRun};
/// use taskweave::{Instant, WorkflowId};
///
/// let v1 = Arc::new(WorkflowDef::builder("quote", 1)
///     .step(StepDef::local("price")).step(StepDef::local("send")).edge("price", "send").build()?);
/// let v2 = Arc::new(WorkflowDef::builder("quote", 2)
///     .step(StepDef::local("price")).step(StepDef::local("send").priority(taskweave::Priority::High))
///     .edge("price", "send").build()?);
///
/// let mut run = WorkflowRun::<u32>::new(Arc::clone(&v1), WorkflowId::new(3), None, Instant::ZERO);
/// let Some(RunAction::Start { token, .. }) = run.poll_action() else { unreachable!() };
/// run.succeed(token, StepOutput::new(100), Instant::from_secs(1))?;
///
/// // Prices were in cents under v1 and are in tenths of a cent under v2.
/// let migration = WorkflowDef::diff(&v1, &v2).migration().replace_output(token, 1_000);
/// run.migrate(Arc::clone(&v2), &migration)?;
/// assert_eq!(run.definition().version(), 2);
/// assert_eq!(run.step_output(v2.step_id("price").unwrap()), Some(&1_000));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Migration<P> {
    format: u32,
    from: DefinitionRef,
    to: DefinitionRef,
    /// Each earlier step's id in the later version (`None`: removed).
    steps: Vec<Option<StepId>>,
    /// Earlier steps the run must not have reached.
    unreached: Vec<StepId>,
    /// Each earlier edge's index in the later version (`None`: removed).
    edges: Vec<Option<u32>>,
    /// New outputs, by the attempt that produced the old one.
    outputs: Vec<(AttemptToken, P)>,
}

/// Why a run did not move. Nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum MigrationError {
    /// Written in a format this release does not read.
    #[error(
        "the migration is in format {found}, this release reads format {supported}; plan it again with WorkflowDef::diff"
    )]
    UnsupportedFormat {
        /// The migration's format.
        found: u32,
        /// The format this release reads.
        supported: u32,
    },
    /// Planned for another pair of definitions than the run's and the
    /// target given.
    #[error(
        "the migration was planned from `{from}` to `{to}`, but the run is on `{run}` and the target is `{target}`; plan it with WorkflowDef::diff(run's definition, target)"
    )]
    OtherDefinitions {
        /// The definition the migration moves runs from (`name vN #hash`).
        from: String,
        /// The one it moves them to.
        to: String,
        /// The run's.
        run: String,
        /// The target given.
        target: String,
    },
    /// Inconsistent with its own definitions (corrupt, or not planned by
    /// a diff).
    #[error("the migration is corrupt: {what}; plan it again with WorkflowDef::diff")]
    Malformed {
        /// What is wrong with it.
        what: &'static str,
    },
    /// The run has reached a step the later version changes or removes
    /// (or ended one whose successors it changes): its past would not be
    /// a run of the later version.
    #[error(
        "the run has reached step `{step}`, which the new version changes or removes; let it finish on its version, or keep that step unchanged"
    )]
    StepReached {
        /// The step's key in the earlier version.
        step: String,
    },
    /// The run is compensating or finished: only a running run moves.
    #[error("the run is {0}; only a running run moves to another version")]
    NotRunning(&'static str),
    /// A new output names an attempt that did not succeed.
    #[error(
        "attempt {0} did not succeed, so it has no output to replace; name the attempt from the run's timeline"
    )]
    NoOutput(AttemptToken),
    /// The checkpoint is not one of the earlier version.
    #[error("the checkpoint is refused: {0}")]
    Checkpoint(#[source] RunError),
    /// The moved run would not be one the later version can continue: a
    /// migration not planned by [`WorkflowDef::diff`] for these
    /// definitions (read back corrupted), say.
    #[error(
        "the moved run is not one the new version can continue ({0}); let it finish on its version"
    )]
    Unservable(#[source] RunError),
}

impl<P> Migration<P> {
    /// The format this release writes and reads.
    pub const FORMAT: u32 = 1;

    pub(super) fn new(
        from: DefinitionRef,
        to: DefinitionRef,
        steps: Vec<Option<StepId>>,
        unreached: Vec<StepId>,
        edges: Vec<Option<u32>>,
    ) -> Self {
        Migration {
            format: Self::FORMAT,
            from,
            to,
            steps,
            unreached,
            edges,
            outputs: Vec::new(),
        }
    }

    /// Replaces the output of the succeeded attempt `token` with `output`
    /// when the run moves: for a later version that reads its payloads
    /// differently. Run inputs and fan-out items are kept as they are.
    #[must_use]
    pub fn replace_output(mut self, token: AttemptToken, output: P) -> Self {
        self.outputs.retain(|(t, _)| *t != token);
        self.outputs.push((token, output));
        self
    }

    /// The version runs move from.
    pub fn from_version(&self) -> u32 {
        self.from.version
    }

    /// The version runs move to.
    pub fn to_version(&self) -> u32 {
        self.to.version
    }

    /// The content hash of the definition runs move to.
    pub fn to_hash(&self) -> u64 {
        self.to.hash
    }

    /// The later step each earlier step becomes, as an [`RunAction`]'s
    /// step. `None` for an action on a removed step.
    pub(super) fn move_action(&self, action: &RunAction) -> Option<RunAction> {
        let mut action = action.clone();
        match &mut action {
            RunAction::Start { step, .. }
            | RunAction::Expand { step }
            | RunAction::Cancel { step, .. }
            | RunAction::Compensate { step, .. } => *step = self.image(*step)?,
            RunAction::Finished => {}
        }
        Some(action)
    }

    pub(super) fn image(&self, step: StepId) -> Option<StepId> {
        self.steps.get(step.get() as usize).copied().flatten()
    }
}

impl<P: Clone> Migration<P> {
    /// Moves a checkpoint of `old` to `new`.
    pub(super) fn apply(
        &self,
        checkpoint: Checkpoint<P>,
        old: &Arc<WorkflowDef>,
        new: &Arc<WorkflowDef>,
    ) -> Result<Checkpoint<P>, MigrationError> {
        let mut run =
            WorkflowRun::resume(Arc::clone(old), checkpoint).map_err(MigrationError::Checkpoint)?;
        run.migrate(Arc::clone(new), self)?;
        Ok(run.checkpoint())
    }

    /// `state`, a run of `old`, as a run of `new`, its new entry steps
    /// not started yet (see [`WorkflowRun::plan_move`]) and not validated.
    fn move_state(
        &self,
        state: &RunState<P>,
        old: &WorkflowDef,
        new: &WorkflowDef,
    ) -> Result<RunState<P>, MigrationError> {
        self.check(old, new)?;
        match state.phase {
            Phase::Running => {}
            Phase::Compensating { .. } => return Err(MigrationError::NotRunning("compensating")),
            Phase::Finished(_) => return Err(MigrationError::NotRunning("finished")),
        }
        let reached = |step: StepId| MigrationError::StepReached {
            step: old.step(step).map(|s| s.id.clone()).unwrap_or_default(),
        };
        let mut fixed: Vec<bool> = self.steps.iter().map(Option::is_none).collect();
        for step in &self.unreached {
            fixed[step.get() as usize] = true;
        }
        for (i, slot) in state.steps.iter().enumerate() {
            if fixed[i] && !slot.is_unreached() {
                return Err(reached(StepId::new(i as u64)));
            }
        }
        self.check_new_edges(state, old, new)?;
        let mut moved = state.clone();
        moved.steps = vec![StepSlot::unreached(); new.len()];
        for (slot, image) in state.steps.iter().zip(&self.steps) {
            if let Some(image) = image {
                moved.steps[image.get() as usize] = slot.clone();
            }
        }
        // The steps absent for the run's origin in the later version: no
        // step it reached may land on one, and the others are skipped.
        for &absent in new.absent_steps() {
            let slot = &mut moved.steps[absent.get() as usize];
            if !slot.is_unreached() {
                return Err(MigrationError::StepReached {
                    step: new.key(absent).to_string(),
                });
            }
            slot.state = StepState::Skipped;
        }
        moved.edges = vec![EdgeState::Pending; new.graph().edge_count()];
        for ((e, (from, _, _)), image) in old.edges().enumerate().zip(&self.edges) {
            match image {
                Some(image) => moved.edges[*image as usize] = state.edges[e],
                None if state.edges[e] != EdgeState::Pending => return Err(reached(from)),
                None => {}
            }
        }
        let image = |step: StepId| self.image(step).ok_or_else(|| reached(step));
        for exec in &mut moved.execs {
            exec.step = image(exec.step)?;
        }
        for action in &mut moved.actions {
            *action = self.move_action(action).ok_or(MigrationError::Malformed {
                what: "an action queued for a removed step",
            })?;
        }
        moved.waiting = moved
            .waiting
            .iter()
            .map(|&s| image(s))
            .collect::<Result<_, _>>()?;
        moved.timers = state
            .timers
            .iter()
            .filter(|(_, timer)| *timer != Timer::Deadline)
            .map(|&(at, timer)| match timer {
                Timer::Wait(step) => image(step).map(|step| (at, Timer::Wait(step))),
                other => Ok((at, other)),
            })
            .collect::<Result<_, _>>()?;
        if let Some(deadline) = new.deadline() {
            let at = state.started_at.saturating_add(deadline);
            if at != crate::Instant::MAX {
                moved.timers.insert((at, Timer::Deadline));
            }
        }
        moved.open_steps = moved
            .steps
            .iter()
            .filter(|s| !s.state.is_terminal())
            .count();
        for (token, output) in &self.outputs {
            let attempt = usize::try_from(token.get())
                .ok()
                .and_then(|t| state.attempts.get(t))
                .filter(|a| a.outcome == AttemptEnd::Succeeded && !a.compensation);
            let exec = attempt.and_then(|a| moved.execs.get_mut(a.exec as usize));
            match exec.and_then(|exec| exec.output.as_mut()) {
                Some(slot) => *slot = output.clone(),
                None => return Err(MigrationError::NoOutput(*token)),
            }
        }
        Ok(moved)
    }

    /// A new edge's source must not have ended: its outgoing edges are
    /// resolved, and the new one never would be.
    fn check_new_edges(
        &self,
        state: &RunState<P>,
        old: &WorkflowDef,
        new: &WorkflowDef,
    ) -> Result<(), MigrationError> {
        let mut kept = vec![false; new.graph().edge_count()];
        for image in self.edges.iter().flatten() {
            kept[*image as usize] = true;
        }
        let mut preimages = vec![None; new.len()];
        for (i, image) in self.steps.iter().enumerate() {
            if let Some(image) = image {
                preimages[image.get() as usize] = Some(StepId::new(i as u64));
            }
        }
        for (e, ((from, _, _), kept)) in new.edges().zip(kept).enumerate() {
            let absent = !new.is_edge_present(e);
            let Some(was) = preimages[from.get() as usize].filter(|_| !kept && !absent) else {
                continue;
            };
            if state.steps[was.get() as usize].state.is_terminal() {
                return Err(MigrationError::StepReached {
                    step: old.step(was).map(|s| s.id.clone()).unwrap_or_default(),
                });
            }
        }
        Ok(())
    }

    /// The migration against its definitions: format, names, and maps
    /// that are in range, one-to-one, and agree with the edges' ends and
    /// labels.
    fn check(&self, old: &WorkflowDef, new: &WorkflowDef) -> Result<(), MigrationError> {
        if self.format != Self::FORMAT {
            return Err(MigrationError::UnsupportedFormat {
                found: self.format,
                supported: Self::FORMAT,
            });
        }
        if !self.from.is(old) || !self.to.is(new) {
            let name = |d: &DefinitionRef| format!("{} v{} #{:016x}", d.name, d.version, d.hash);
            return Err(MigrationError::OtherDefinitions {
                from: name(&self.from),
                to: name(&self.to),
                run: name(&DefinitionRef::of(old)),
                target: name(&DefinitionRef::of(new)),
            });
        }
        let malformed = |what| Err(MigrationError::Malformed { what });
        if self.steps.len() != old.len() || self.edges.len() != old.graph().edge_count() {
            return malformed("its maps do not cover the earlier version");
        }
        if !one_to_one(self.steps.iter().map(|s| s.map(StepId::get)), new.len()) {
            return malformed("a step map that is out of range or not one-to-one");
        }
        if !one_to_one(
            self.edges.iter().map(|e| e.map(u64::from)),
            new.graph().edge_count(),
        ) {
            return malformed("an edge map that is out of range or not one-to-one");
        }
        if self.unreached.iter().any(|s| s.get() >= old.len() as u64) {
            return malformed("an unreached step out of range");
        }
        let new_edges: Vec<_> = new.edges().collect();
        for ((from, to, label), image) in old.edges().zip(&self.edges) {
            let Some(image) = image else { continue };
            let (new_from, new_to, new_label) = new_edges[*image as usize];
            if self.image(from) != Some(new_from)
                || self.image(to) != Some(new_to)
                || label != new_label
            {
                return malformed("an edge mapped to one with other ends or another label");
            }
        }
        Ok(())
    }
}

/// Whether the `Some` values are below `limit` and distinct.
fn one_to_one(values: impl Iterator<Item = Option<u64>>, limit: usize) -> bool {
    let mut seen = vec![false; limit];
    values.flatten().all(|v| {
        usize::try_from(v)
            .ok()
            .and_then(|i| seen.get_mut(i))
            .is_some_and(|seen| !std::mem::replace(seen, true))
    })
}

/// A run's move to another version, checked: the later version as the
/// run sees it, and the moved state, its new entry steps not started yet.
pub(super) struct Move<P> {
    def: Arc<WorkflowDef>,
    state: RunState<P>,
}

impl<P: Clone> WorkflowRun<P> {
    /// Moves the run to another version of its definition, by a
    /// [`Migration`] planned with [`WorkflowDef::diff`]. Tokens of
    /// attempts already handed out stay valid; actions not yet polled name
    /// the later version's steps. An entry step of the later version that
    /// the run has not reached — one it adds, or one whose predecessors
    /// it removed — starts as the run moves, at the latest instant the
    /// run has seen ([`latest_now`](Self::latest_now)), as it would have
    /// when the run started. The run's deadline is recomputed from
    /// its start under the later version. When the later version is
    /// gated, the run keeps its [origin](WorkflowDef::origin): it runs the
    /// later version [as the runs of its origin see
    /// it](WorkflowDef::at_version) (as its own runs do, when it is
    /// earlier than the origin). Otherwise it becomes a run of the later
    /// version.
    ///
    /// # Errors
    ///
    /// A [`MigrationError`]; the run is unchanged then.
    pub fn migrate(
        &mut self,
        def: Arc<WorkflowDef>,
        migration: &Migration<P>,
    ) -> Result<(), MigrationError> {
        let moved = self.plan_move(def, migration)?;
        self.take_move(moved);
        Ok(())
    }

    /// The move [`migrate`](Self::migrate) makes, checked without making
    /// it: the moved state is validated with its new entry steps started,
    /// on a copy, so a refused move changes nothing and the observer hears
    /// only of a move that happens.
    pub(super) fn plan_move(
        &self,
        def: Arc<WorkflowDef>,
        migration: &Migration<P>,
    ) -> Result<Move<P>, MigrationError> {
        let def = as_seen_from(def, self.definition().origin())?;
        let state = migration.move_state(self.state(), self.definition(), &def)?;
        let mut trial = WorkflowRun::from_state(Arc::clone(&def), state.clone());
        trial.start_unreached_entries();
        trial
            .state()
            .validate(&def)
            .map_err(MigrationError::Unservable)?;
        Ok(Move { def, state })
    }

    /// Makes a move [`plan_move`](Self::plan_move) checked.
    pub(super) fn take_move(&mut self, moved: Move<P>) {
        self.replace(moved.def, moved.state);
        self.start_unreached_entries();
    }
}

/// `def` as the runs that started under `origin` see it, when it is
/// gated; as its own runs do when it is not (they all see the same), or
/// when `origin` is later than its version.
pub(super) fn as_seen_from(
    def: Arc<WorkflowDef>,
    origin: u32,
) -> Result<Arc<WorkflowDef>, MigrationError> {
    let origin = origin.min(def.version());
    if def.origin() == origin || def.gated_versions().is_empty() {
        return Ok(def);
    }
    def.at_version(origin)
        .map(Arc::new)
        .map_err(|_| MigrationError::Malformed {
            what: "a later version that cannot serve the run's origin",
        })
}
