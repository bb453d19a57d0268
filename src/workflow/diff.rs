//! [`WorkflowDef::diff`]: what changed between two versions of a
//! definition, step by step, and which runs may move from one to the other.

use std::collections::HashMap;
use std::sync::Arc;

use super::migration::{DefinitionRef, Migration, MigrationError, as_seen_from};
use super::{Checkpoint, StepDef, WorkflowDef};
use crate::StepId;

/// How a step changed from one version of a definition to the next, the
/// most telling change first when there are several.
///
/// What a run may still move past is said of the steps it has *reached*:
/// a step is reached once it has left [`StepState::Pending`](super::StepState::Pending)
/// (started, waiting, skipped, cancelled…) or one of its incoming edges is
/// resolved, that is one of its predecessors has ended. An entry step is
/// reached when the run starts. A step has *ended* once its state is
/// terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StepChange {
    /// The same step, with the same edges and options.
    Unchanged,
    /// Only its policy changed: name, capabilities, priority, retries,
    /// attempt timeout or estimated duration. A run may move at any
    /// point; attempts already started keep the timeout they started
    /// with.
    PolicyOnly,
    /// Its incoming or outgoing edges changed (another predecessor or
    /// successor, a label, an order). A run may move only before the step
    /// was reached if its incoming edges changed, and only before it
    /// ended if its outgoing ones did. A step left without predecessors
    /// is an entry step of the later version: it starts as the run moves.
    EdgesChanged,
    /// How it executes changed: kind, join, choice, loop, fan-out, input
    /// mapping or compensability. A run may move only before the step was
    /// reached.
    KindChanged,
    /// New in the later version. A run may move only while none of its
    /// predecessors has ended (their outgoing edges changed: see
    /// [`EdgesChanged`](Self::EdgesChanged)); they may be running. A new
    /// step without predecessors is an entry step: it starts as the run
    /// moves.
    Added,
    /// Gone from the later version. A run may move only before it was
    /// reached.
    Removed,
    /// In the later version, but gated out for the runs of the earlier
    /// one's origin (see [`WorkflowDef::at_version`]): those runs never
    /// see it, so it does not hold them back.
    Absent,
}

/// One step of a [`DefinitionDiff`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepDiff {
    /// Its key: in the later version, or in the earlier one if removed.
    pub key: String,
    /// Its id in the earlier version.
    pub old: Option<StepId>,
    /// Its id in the later version.
    pub new: Option<StepId>,
    /// Its key in the earlier version, when the later one gives it a new
    /// key and names the old one as an [alias](StepDef::alias).
    pub renamed_from: Option<String>,
    /// What changed.
    pub change: StepChange,
}

/// What changed between two versions of a definition: every step
/// classified, with the migration that moves a run from one to the other.
/// Made by [`WorkflowDef::diff`].
///
/// A run may move while it is running and has not reached a step that
/// was removed or whose kind or incoming edges changed, nor ended one
/// whose outgoing edges changed (a step's predecessor ending is what
/// reaches it: see [`StepChange`]). [`admits`] says so for one run,
/// [`migrate`] moves it, or refuses with the reason. An entry step of
/// the later version the run has not reached (an added one, or one whose
/// predecessors were removed) starts as the run moves.
///
/// ```
/// use std::sync::Arc;
/// use taskweave::workflow::{RunAction, StepChange, StepDef, StepOutput, WorkflowDef, WorkflowRun};
/// use taskweave::{Instant, WorkflowId};
///
/// let v1 = Arc::new(WorkflowDef::builder("order", 1)
///     .step(StepDef::agent("reserve")).step(StepDef::agent("ship"))
///     .edge("reserve", "ship").build()?);
/// // v2 checks fraud before shipping.
/// let v2 = Arc::new(WorkflowDef::builder("order", 2)
///     .step(StepDef::agent("reserve")).step(StepDef::agent("fraud")).step(StepDef::agent("ship"))
///     .edge("reserve", "fraud").edge("fraud", "ship").build()?);
/// let diff = WorkflowDef::diff(&v1, &v2);
/// assert_eq!(diff.step("fraud").unwrap().change, StepChange::Added);
/// assert_eq!(diff.step("ship").unwrap().change, StepChange::EdgesChanged);
///
/// // A run still reserving may move: `ship` was not reached, and
/// // `reserve`, whose successor changed, has not ended.
/// let mut run = WorkflowRun::<u32>::new(Arc::clone(&v1), WorkflowId::new(1), None, Instant::ZERO);
/// let Some(RunAction::Start { token, .. }) = run.poll_action() else { unreachable!() };
/// assert!(diff.admits(&run.checkpoint()));
/// let moved = diff.migrate(run.checkpoint())?;
/// let mut moved = WorkflowRun::resume(Arc::clone(&v2), moved)?;
/// moved.succeed(token, StepOutput::new(1), Instant::from_secs(1))?;
/// let Some(RunAction::Start { step, .. }) = moved.poll_action() else { unreachable!() };
/// assert_eq!(step, v2.step_id("fraud").unwrap());
///
/// // Once `reserve` completed, `ship` is reached: that run stays on v1.
/// run.succeed(token, StepOutput::new(1), Instant::from_secs(1))?;
/// assert!(!diff.admits(&run.checkpoint()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// [`admits`]: DefinitionDiff::admits
/// [`migrate`]: DefinitionDiff::migrate
#[derive(Clone, Debug)]
pub struct DefinitionDiff {
    old: Arc<WorkflowDef>,
    new: Arc<WorkflowDef>,
    steps: Vec<StepDiff>,
    /// Each earlier step's id in the later version.
    images: Vec<Option<StepId>>,
    /// Each earlier edge's index in the later version.
    edges: Vec<Option<u32>>,
    /// Earlier steps a run must not have reached to move: removed, or
    /// changed in kind or incoming edges.
    unreached: Vec<StepId>,
}

impl WorkflowDef {
    /// Compares two versions of a definition, step by step. Steps are
    /// matched by key, or by a later step's [alias](StepDef::alias) of an
    /// earlier key. The later version is compared as the runs of the
    /// earlier one's [origin](WorkflowDef::origin) see it
    /// ([`at_version`](WorkflowDef::at_version)): the runs that move keep
    /// their origin, so a step or an edge gated out for them is
    /// [`StepChange::Absent`] and changes nothing for them. Linear in the
    /// steps and edges of both.
    pub fn diff(old: &Arc<WorkflowDef>, new: &Arc<WorkflowDef>) -> DefinitionDiff {
        let new = &as_seen_from(Arc::clone(new), old.origin()).unwrap_or_else(|_| Arc::clone(new));
        let mut images = vec![None; old.len()];
        let mut unreached = Vec::new();
        let mut steps = Vec::with_capacity(new.len());
        let mut origins = Vec::with_capacity(new.len());
        for (id, step) in new.steps() {
            if !new.is_present(id) {
                origins.push(None);
                continue;
            }
            let by_key = old.step_id(&step.id).map(|found| (found, None));
            let matched = by_key.or_else(|| {
                step.aliases
                    .iter()
                    .find_map(|alias| old.step_id(alias).map(|found| (found, Some(alias.clone()))))
            });
            if let Some((found, _)) = matched {
                images[found.get() as usize] = Some(id);
            }
            origins.push(matched);
        }
        for ((id, step), matched) in new.steps().zip(origins) {
            let (old_id, renamed_from) = matched.unzip();
            let change = match old_id {
                None if !new.is_present(id) => StepChange::Absent,
                None => StepChange::Added,
                Some(was) => {
                    let (change, rewires_past) = classify(old, new, &images, was, id);
                    if rewires_past {
                        unreached.push(was);
                    }
                    change
                }
            };
            steps.push(StepDiff {
                key: step.id.clone(),
                old: old_id,
                new: Some(id),
                renamed_from: renamed_from.flatten(),
                change,
            });
        }
        for (id, step) in old.steps() {
            if images[id.get() as usize].is_none() {
                unreached.push(id);
                steps.push(StepDiff {
                    key: step.id.clone(),
                    old: Some(id),
                    new: None,
                    renamed_from: None,
                    change: StepChange::Removed,
                });
            }
        }
        let edges = edge_images(old, new, &images);
        DefinitionDiff {
            old: Arc::clone(old),
            new: Arc::clone(new),
            steps,
            images,
            edges,
            unreached,
        }
    }
}

impl DefinitionDiff {
    /// Every step: the later version's in its order, then the removed ones
    /// in the earlier version's order.
    pub fn steps(&self) -> &[StepDiff] {
        &self.steps
    }

    /// The step with this key (in the later version, or a removed one).
    pub fn step(&self, key: &str) -> Option<&StepDiff> {
        self.steps.iter().find(|step| step.key == key)
    }

    /// Whether every step is [`StepChange::Unchanged`],
    /// [`StepChange::PolicyOnly`] or [`StepChange::Absent`]: every running
    /// run may move.
    pub fn is_policy_only(&self) -> bool {
        self.steps.iter().all(|s| {
            matches!(
                s.change,
                StepChange::Unchanged | StepChange::PolicyOnly | StepChange::Absent
            )
        })
    }

    /// The earlier version.
    pub fn earlier(&self) -> &Arc<WorkflowDef> {
        &self.old
    }

    /// The later version.
    pub fn later(&self) -> &Arc<WorkflowDef> {
        &self.new
    }

    /// The migration of a run from the earlier version to the later one,
    /// as data: what [`WorkflowRun::migrate`](super::WorkflowRun::migrate)
    /// applies and a [`RunRecorder`](super::RunRecorder) journals.
    pub fn migration<P>(&self) -> Migration<P> {
        Migration::new(
            DefinitionRef::of(&self.old),
            DefinitionRef::of(&self.new),
            self.images.clone(),
            self.unreached.clone(),
            self.edges.clone(),
        )
    }

    /// Whether the run checkpointed in `checkpoint` may move to the later
    /// version: what [`migrate`](Self::migrate) would do, without doing it.
    pub fn admits<P: Clone>(&self, checkpoint: &Checkpoint<P>) -> bool {
        self.migrate(checkpoint.clone()).is_ok()
    }

    /// Moves a run checkpointed under the earlier version to the later
    /// one: a checkpoint that [`WorkflowRun::resume`](super::WorkflowRun::resume)
    /// continues under the later version.
    ///
    /// # Errors
    ///
    /// A [`MigrationError`]: the checkpoint is not one of the earlier
    /// version, the run is no longer running, it has reached a step the
    /// later version changed ([`MigrationError::StepReached`]), or the moved
    /// state is not one the later version can run.
    pub fn migrate<P: Clone>(
        &self,
        checkpoint: Checkpoint<P>,
    ) -> Result<Checkpoint<P>, MigrationError> {
        self.migration().apply(checkpoint, &self.old, &self.new)
    }
}

/// How the step `was` of `old` became the step `id` of `new`, and
/// whether a run that has reached it can no longer move (its kind or its
/// incoming edges changed).
fn classify(
    old: &WorkflowDef,
    new: &WorkflowDef,
    images: &[Option<StepId>],
    was: StepId,
    id: StepId,
) -> (StepChange, bool) {
    let (Some(before), Some(after)) = (old.step(was), new.step(id)) else {
        return (StepChange::KindChanged, true);
    };
    let image = |step: StepId| images.get(step.get() as usize).copied().flatten();
    let old_key_image = |key: &String| old.step_id(key).and_then(image);
    let inputs_before = before
        .inputs
        .as_ref()
        .map(|keys| keys.iter().map(old_key_image).collect::<Vec<_>>());
    let inputs_after = after
        .inputs
        .as_ref()
        .map(|keys| keys.iter().map(|k| new.step_id(k)).collect::<Vec<_>>());
    if before.kind != after.kind
        || before.join != after.join
        || before.choice != after.choice
        || before.max_iterations != after.max_iterations
        || before.multi_instance != after.multi_instance
        || before.compensable != after.compensable
        || inputs_before != inputs_after
    {
        return (StepChange::KindChanged, true);
    }
    let mapped = |edges: &mut dyn Iterator<Item = (StepId, Option<&str>)>| {
        edges
            .map(|(step, label)| (image(step), label.map(str::to_owned)))
            .collect::<Vec<_>>()
    };
    let same = |edges: &mut dyn Iterator<Item = (StepId, Option<&str>)>| {
        edges
            .map(|(step, label)| (Some(step), label.map(str::to_owned)))
            .collect::<Vec<_>>()
    };
    if mapped(&mut old.predecessors(was)) != same(&mut new.predecessors(id)) {
        return (StepChange::EdgesChanged, true);
    }
    if mapped(&mut old.successors(was)) != same(&mut new.successors(id)) {
        return (StepChange::EdgesChanged, false);
    }
    let change = if policy_differs(before, after) {
        StepChange::PolicyOnly
    } else {
        StepChange::Unchanged
    };
    (change, false)
}

fn policy_differs(before: &StepDef, after: &StepDef) -> bool {
    // A name left at its default follows the key: a rename alone is not
    // a change of policy.
    fn named(step: &StepDef) -> Option<&str> {
        (step.name != step.id).then_some(step.name.as_str())
    }
    named(before) != named(after)
        || before.capabilities != after.capabilities
        || before.priority != after.priority
        || before.retry != after.retry
        || before.timeout != after.timeout
        || before.estimated_duration != after.estimated_duration
}

/// Each edge of `old` in `new`: the edge joining the images of its ends,
/// with the same label.
fn edge_images(
    old: &WorkflowDef,
    new: &WorkflowDef,
    images: &[Option<StepId>],
) -> Vec<Option<u32>> {
    let index: HashMap<(StepId, StepId), (u32, Option<&str>)> = new
        .edges()
        .enumerate()
        .filter(|&(i, _)| new.is_edge_present(i))
        .map(|(i, (from, to, label))| ((from, to), (i as u32, label)))
        .collect();
    let image = |step: StepId| images.get(step.get() as usize).copied().flatten();
    old.edges()
        .map(|(from, to, label)| {
            let ends = image(from).zip(image(to))?;
            index
                .get(&ends)
                .filter(|(_, new_label)| *new_label == label)
                .map(|&(i, _)| i)
        })
        .collect()
}
