//! [`check_replay`]: whether a definition reproduces a recorded run.

use std::fmt;
use std::sync::Arc;

use thiserror::Error;

use super::{
    JournalEntry, MigrationError, RunAction, RunError, RunInput, RunJournal, WorkflowDef,
    WorkflowRun,
};
use crate::StepId;

/// What [`check_replay`] found.
#[derive(Clone, Debug, PartialEq)]
#[must_use]
pub enum ReplayCheck {
    /// The definition gives every recorded action, in order, from every
    /// recorded input.
    Compatible {
        /// Entries replayed, the start included.
        entries: usize,
    },
    /// The first place where it does not.
    Diverged(Divergence),
}

/// The first entry of a journal whose replay under a definition differs
/// from the record. Actions are compared by step key, not by
/// [`StepId`]: a step that keeps its key (or names its old key as an
/// [alias](super::StepDef::alias)) keeps its place. `recorded`
/// carries the recorded definition's step ids, `produced` the checked
/// one's.
#[derive(Clone, Debug, PartialEq)]
pub struct Divergence {
    /// The entry: 0 is the run's start, `i` the `i`-th input.
    pub index: usize,
    /// The key of the step concerned, when one is.
    pub step: Option<String>,
    /// The action the journal holds there (`None`: the record has no more
    /// actions after that entry).
    pub recorded: Option<RunAction>,
    /// What the definition gives instead.
    pub produced: Produced,
    /// The key of the step the definition's action concerns, when it
    /// gave one about a step.
    pub produced_step: Option<String>,
}

/// What a definition gave where it diverged from a journal.
#[derive(Clone, Debug, PartialEq)]
pub enum Produced {
    /// Another action.
    Action(RunAction),
    /// No action where the journal has one.
    Nothing,
    /// The run refused the recorded input.
    Refused(RunError),
    /// The run refused the recorded migration (the definition checked is
    /// not the one the migration moved runs from, say).
    MigrationRefused(MigrationError),
    /// The journal names a step (by this key) the definition does not
    /// have.
    MissingStep(String),
}

/// A journal that cannot be checked at all.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// Written in a format this release does not read.
    #[error(
        "the journal is in format {found}, this release reads formats 1 to {supported}; replay it with the release that wrote it"
    )]
    UnsupportedFormat {
        /// The journal's format.
        found: u32,
        /// The format this release reads.
        supported: u32,
    },
    /// Recorded under a workflow of another name.
    #[error(
        "the journal records workflow `{journal}`, not `{definition}`; check it against a version of `{journal}`"
    )]
    OtherWorkflow {
        /// The journal's workflow.
        journal: String,
        /// The definition's.
        definition: String,
    },
    /// A migration moved the run to a definition the checker was not
    /// given.
    #[error(
        "journal entry {index} moves the run to version {version} (hash {hash:016x}); pass that definition to check_replay_migrated"
    )]
    MigrationTarget {
        /// The migration's entry.
        index: usize,
        /// The version it moved the run to.
        version: u32,
        /// That definition's content hash.
        hash: u64,
    },
    /// Inconsistent in itself (corrupt, or not written by a recorder).
    #[error("journal entry {index}: {what}; the journal is corrupt, record the run again")]
    Malformed {
        /// The entry.
        index: usize,
        /// What is wrong with it.
        what: &'static str,
    },
}

/// Replays `journal` under `def` and compares, entry by entry, the
/// actions the definition gives with the recorded ones: `Compatible`, or
/// the first divergent entry. The run draws the recorded random choices,
/// so retry jitter replays even under a definition with another hash.
///
/// Pure and linear in the journal (each entry costs what the run took to
/// handle it live). Use it in CI to check that a new version of a
/// definition can carry the runs recorded under the old one: a change of
/// policy that gives the same actions passes; a step inserted before
/// others, removed, or rewired is named with the entry where it shows.
///
/// ```
/// use std::sync::Arc;
/// use taskweave::workflow::{check_replay, Produced, ReplayCheck, RunAction, RunInput, RunRecorder, StepDef, StepOutput, WorkflowDef};
/// use taskweave::{Instant, WorkflowId};
///
/// let v1 = Arc::new(WorkflowDef::builder("order", 1)
///     .step(StepDef::local("reserve")).step(StepDef::local("charge"))
///     .edge("reserve", "charge").build()?);
/// let mut run = RunRecorder::<u32>::new(Arc::clone(&v1), WorkflowId::new(9), None, Instant::ZERO);
/// while let Some(RunAction::Start { token, .. }) = run.poll_action() {
///     run.apply(RunInput::Succeeded { token, output: StepOutput::new(1) }, Instant::ZERO)?;
/// }
///
/// // v2 checks fraud between the two: the run recorded under v1 diverges
/// // at its first input, where v1 started `charge`.
/// let v2 = Arc::new(WorkflowDef::builder("order", 2)
///     .step(StepDef::local("reserve")).step(StepDef::local("fraud")).step(StepDef::local("charge"))
///     .edge("reserve", "fraud").edge("fraud", "charge").build()?);
/// let ReplayCheck::Diverged(at) = check_replay(run.journal(), &v2)? else { unreachable!() };
/// assert_eq!((at.index, at.step.as_deref()), (1, Some("charge")));
/// assert!(matches!(at.produced, Produced::Action(RunAction::Start { .. })));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// A [`ReplayError`] when the journal is in another format, records
/// another workflow, or is inconsistent in itself.
pub fn check_replay<P: Clone>(
    journal: &RunJournal<P>,
    def: &Arc<WorkflowDef>,
) -> Result<ReplayCheck, ReplayError> {
    check_replay_migrated(journal, def, &[])
}

/// [`check_replay`] for a journal that records
/// [migrations](super::RunRecorder::migrate): `def` is checked against
/// the entries up to the first migration, which must then move it (so
/// past a migration, `def` must be the definition the run was recorded
/// under); from each migration on, the run is replayed under the
/// definition it moved to, found in `later` by content hash.
///
/// # Errors
///
/// As [`check_replay`], and [`ReplayError::MigrationTarget`] when a
/// migration moved the run to a definition `later` does not hold.
pub fn check_replay_migrated<P: Clone>(
    journal: &RunJournal<P>,
    def: &Arc<WorkflowDef>,
    later: &[Arc<WorkflowDef>],
) -> Result<ReplayCheck, ReplayError> {
    if !(1..=RunJournal::<P>::FORMAT).contains(&journal.format) {
        return Err(ReplayError::UnsupportedFormat {
            found: journal.format,
            supported: RunJournal::<P>::FORMAT,
        });
    }
    if journal.name != def.name() {
        return Err(ReplayError::OtherWorkflow {
            journal: journal.name.clone(),
            definition: def.name().to_owned(),
        });
    }
    let Some(start) = journal
        .entries
        .first()
        .filter(|e| e.input.is_none() && e.migration.is_none())
    else {
        return Err(malformed(0, "the first entry is not the run's start"));
    };
    // The run is replayed as the runs of its origin see `def`.
    let seen = super::migration::as_seen_from(Arc::clone(def), journal.origin())
        .unwrap_or_else(|_| Arc::clone(def));
    let def = &seen;
    let mut steps = Steps::new(journal, def);
    let (id, input, seed) = (journal.id, journal.input.clone(), journal.seed);
    let mut run = WorkflowRun::observed(Arc::clone(def), id, input, start.at, seed, None);
    if let Some(diverged) = steps.compare(0, &start.actions, &mut run)? {
        return Ok(ReplayCheck::Diverged(diverged));
    }
    for (index, entry) in journal.entries.iter().enumerate().skip(1) {
        let diverged = match (&entry.input, &entry.migration) {
            (Some(recorded), None) => steps.apply(index, recorded, entry, &mut run)?,
            (None, Some(migration)) => {
                if journal.format < 2 {
                    return Err(malformed(index, "a migration in a format-1 journal"));
                }
                let target = later
                    .iter()
                    .find(|d| d.content_hash() == migration.to_hash())
                    .ok_or(ReplayError::MigrationTarget {
                        index,
                        version: migration.to_version(),
                        hash: migration.to_hash(),
                    })?;
                match run.migrate(Arc::clone(target), migration) {
                    Ok(()) => {
                        steps = Steps::exact(journal, target, index);
                        None
                    }
                    Err(refused) => Some(Divergence {
                        index,
                        step: None,
                        recorded: entry.actions.first().cloned(),
                        produced: Produced::MigrationRefused(refused),
                        produced_step: None,
                    }),
                }
            }
            (None, None) => return Err(malformed(index, "a second start")),
            (Some(_), Some(_)) => return Err(malformed(index, "an input and a migration")),
        };
        if let Some(diverged) = diverged {
            return Ok(ReplayCheck::Diverged(diverged));
        }
        if let Some(diverged) = steps.compare(index, &entry.actions, &mut run)? {
            return Ok(ReplayCheck::Diverged(diverged));
        }
    }
    Ok(ReplayCheck::Compatible {
        entries: journal.entries.len(),
    })
}

/// Step ids of the journal's definition and of the checked one, matched
/// by key.
struct Steps<'a, P> {
    journal: &'a RunJournal<P>,
    /// The entry the current definition took over at: 0, or a migration.
    since: usize,
    /// The recorded step keys, by recorded [`StepId`].
    keys: Vec<String>,
    def: &'a WorkflowDef,
    /// The checked definition's id of each recorded step, if it has its
    /// key: one lookup per step, so mapping an action is an index.
    ids: Vec<Option<StepId>>,
}

impl<'a, P: Clone> Steps<'a, P> {
    fn new(journal: &'a RunJournal<P>, def: &'a WorkflowDef) -> Self {
        let ids = journal.steps.iter().map(|key| def.find_step(key)).collect();
        Steps {
            journal,
            since: 0,
            keys: journal.steps.clone(),
            def,
            ids,
        }
    }

    /// From the migration at entry `since` on, the journal records the
    /// steps of `def` itself.
    fn exact(journal: &'a RunJournal<P>, def: &'a WorkflowDef, since: usize) -> Self {
        Steps {
            journal,
            since,
            keys: def.steps().map(|(_, step)| step.id.clone()).collect(),
            def,
            ids: def.steps().map(|(id, _)| Some(id)).collect(),
        }
    }

    /// Gives `run` the recorded input of entry `index`; where it diverges
    /// if it cannot.
    fn apply(
        &self,
        index: usize,
        recorded: &RunInput<P>,
        entry: &JournalEntry<P>,
        run: &mut WorkflowRun<P>,
    ) -> Result<Option<Divergence>, ReplayError> {
        let input = match self.input(index, recorded)? {
            Ok(input) => input,
            Err(diverged) => return Ok(Some(diverged)),
        };
        let Err(refused) = run.apply(input.clone(), entry.at) else {
            return Ok(None);
        };
        let step = self.input_step(index, &input);
        Ok(Some(Divergence {
            index,
            step: step.map(|s| self.key(s)),
            recorded: entry.actions.first().cloned(),
            produced: Produced::Refused(refused),
            produced_step: None,
        }))
    }

    /// The position of the recorded `step` among the recorded steps.
    fn position(&self, index: usize, step: StepId) -> Result<usize, ReplayError> {
        usize::try_from(step.get())
            .ok()
            .filter(|&i| i < self.keys.len())
            .ok_or_else(|| malformed(index, "a step id outside the recorded definition"))
    }

    /// The recorded key of `step`.
    fn recorded_key(&self, index: usize, step: StepId) -> Result<String, ReplayError> {
        Ok(self.keys[self.position(index, step)?].clone())
    }

    /// The checked definition's id of the recorded `step`; `Err(key)` if
    /// it has no step of that key.
    fn map(&self, index: usize, step: StepId) -> Result<Result<StepId, String>, ReplayError> {
        let position = self.position(index, step)?;
        Ok(self.ids[position].ok_or_else(|| self.keys[position].clone()))
    }

    /// The checked definition's key of `step`.
    fn key(&self, step: StepId) -> String {
        self.def
            .step(step)
            .map_or_else(|| step.to_string(), |s| s.id.clone())
    }

    /// The step a mapped input concerns: the one it names, or the one
    /// whose attempt its token is (found in the entries before `index`).
    fn input_step(&self, index: usize, input: &RunInput<P>) -> Option<StepId> {
        let token = match *input {
            RunInput::Expanded { step, .. } | RunInput::CancelStep { step } => return Some(step),
            RunInput::Succeeded { token, .. }
            | RunInput::Failed { token, .. }
            | RunInput::Compensated { token, .. } => token,
            RunInput::Signal { .. } | RunInput::Cancel | RunInput::Tick => return None,
        };
        let mut recorded = self.journal.entries[self.since..index]
            .iter()
            .rev()
            .flat_map(|e| &e.actions);
        let step = recorded.find_map(|action| match *action {
            RunAction::Start { step, token: t, .. }
            | RunAction::Compensate { step, token: t, .. }
                if t == token =>
            {
                Some(step)
            }
            _ => None,
        })?;
        self.map(index, step).ok()?.ok()
    }

    /// The recorded `input` with its step ids mapped, or where it
    /// diverges.
    fn input(
        &self,
        index: usize,
        input: &RunInput<P>,
    ) -> Result<Result<RunInput<P>, Divergence>, ReplayError> {
        let mut input = input.clone();
        if let RunInput::Expanded { step, .. } | RunInput::CancelStep { step } = &mut input {
            match self.map(index, *step)? {
                Ok(mapped) => *step = mapped,
                Err(key) => return Ok(Err(missing(index, key, None))),
            }
        }
        Ok(Ok(input))
    }

    /// The actions `run` gives now against the `recorded` ones.
    fn compare(
        &self,
        index: usize,
        recorded: &[RunAction],
        run: &mut WorkflowRun<P>,
    ) -> Result<Option<Divergence>, ReplayError> {
        let mut recorded = recorded.iter();
        loop {
            let (expected, produced) = (recorded.next(), run.poll_action());
            let (expected, mapped) = match expected {
                None => match produced {
                    None => return Ok(None),
                    Some(action) => return Ok(Some(self.produced(index, None, action))),
                },
                Some(expected) => (expected, self.mapped(index, expected)?),
            };
            let mapped = match mapped {
                Ok(mapped) => mapped,
                Err(key) => return Ok(Some(missing(index, key, Some(expected.clone())))),
            };
            match produced {
                Some(action) if action == mapped => {}
                Some(action) => return Ok(Some(self.produced(index, Some(expected), action))),
                None => {
                    return Ok(Some(Divergence {
                        index,
                        step: step_of(expected)
                            .map(|s| self.recorded_key(index, s))
                            .transpose()?,
                        recorded: Some(expected.clone()),
                        produced: Produced::Nothing,
                        produced_step: None,
                    }));
                }
            }
        }
    }

    /// `action` with its step id mapped to the checked definition.
    fn mapped(
        &self,
        index: usize,
        action: &RunAction,
    ) -> Result<Result<RunAction, String>, ReplayError> {
        let mut action = action.clone();
        if let RunAction::Start { step, .. }
        | RunAction::Expand { step }
        | RunAction::Cancel { step, .. }
        | RunAction::Compensate { step, .. } = &mut action
        {
            match self.map(index, *step)? {
                Ok(mapped) => *step = mapped,
                Err(key) => return Ok(Err(key)),
            }
        }
        Ok(Ok(action))
    }

    /// A divergence where the definition gave `action` instead of
    /// `recorded`.
    fn produced(
        &self,
        index: usize,
        recorded: Option<&RunAction>,
        action: RunAction,
    ) -> Divergence {
        let step = match recorded.and_then(step_of) {
            Some(step) => self.recorded_key(index, step).ok(),
            None => step_of(&action).map(|step| self.key(step)),
        };
        Divergence {
            index,
            step,
            recorded: recorded.cloned(),
            produced_step: step_of(&action).map(|step| self.key(step)),
            produced: Produced::Action(action),
        }
    }
}

fn step_of(action: &RunAction) -> Option<StepId> {
    match *action {
        RunAction::Start { step, .. }
        | RunAction::Expand { step }
        | RunAction::Cancel { step, .. }
        | RunAction::Compensate { step, .. } => Some(step),
        RunAction::Finished => None,
    }
}

fn missing(index: usize, key: String, recorded: Option<RunAction>) -> Divergence {
    Divergence {
        index,
        step: Some(key.clone()),
        recorded,
        produced: Produced::MissingStep(key),
        produced_step: None,
    }
}

fn malformed(index: usize, what: &'static str) -> ReplayError {
    ReplayError::Malformed { index, what }
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "entry {}: the journal ", self.index)?;
        match &self.recorded {
            Some(action) => describe(f, action, self.step.as_deref())?,
            None => write!(f, "has no more actions")?,
        }
        write!(f, ", the definition ")?;
        match &self.produced {
            Produced::Action(action) => describe(f, action, self.produced_step.as_deref()),
            Produced::Nothing => write!(f, "does nothing"),
            Produced::Refused(why) => write!(f, "refuses the input: {why}"),
            Produced::MissingStep(key) => write!(f, "has no step `{key}`"),
            Produced::MigrationRefused(why) => write!(f, "refuses the migration: {why}"),
        }
    }
}

/// What `action` does, naming its step by `key`.
fn describe(f: &mut fmt::Formatter<'_>, action: &RunAction, key: Option<&str>) -> fmt::Result {
    let key = key.unwrap_or("?");
    match action {
        RunAction::Start {
            attempt, instance, ..
        } => {
            write!(f, "starts `{key}` (attempt {attempt}")?;
            if let Some(instance) = instance {
                write!(f, ", instance {instance}")?;
            }
            write!(f, ")")
        }
        RunAction::Expand { .. } => write!(f, "asks for the items of `{key}`"),
        RunAction::Cancel { reason, .. } => write!(f, "cancels `{key}` ({reason:?})"),
        RunAction::Compensate { attempt, .. } => {
            write!(f, "compensates `{key}` (attempt {attempt})")
        }
        RunAction::Finished => write!(f, "finishes the run"),
    }
}
