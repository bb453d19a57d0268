//! [`RunJournal`]: a run's history — every input with the actions it
//! produced — and [`RunRecorder`], which keeps one while a run goes on.

use std::collections::VecDeque;
use std::sync::Arc;

use super::run::run_seed;
use super::{Migration, MigrationError, RunAction, RunError, RunInput, WorkflowDef, WorkflowRun};
use crate::{Instant, WorkflowId};

/// A run's history, enough to replay it: the definition it ran under
/// (name, version, hash and step keys), how it started, and each input it
/// accepted with the actions that input produced.
///
/// Recorded by a [`RunRecorder`], stored with serde, and checked against a
/// definition with [`check_replay`](super::check_replay). A journal read
/// back is data from outside; the checker refuses a malformed one with a
/// [`ReplayError`](super::ReplayError) and never trusts its contents.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RunJournal<P> {
    pub(super) format: u32,
    pub(super) name: String,
    pub(super) version: u32,
    pub(super) hash: u64,
    /// The version the run started under, when the definition was
    /// [seen as an earlier version's runs see it](WorkflowDef::at_version).
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub(super) origin: Option<u32>,
    /// The recorded definition's step keys, by [`StepId`](crate::StepId).
    pub(super) steps: Vec<String>,
    pub(super) id: WorkflowId,
    pub(super) input: Option<P>,
    pub(super) seed: u64,
    pub(super) entries: Vec<JournalEntry<P>>,
}

/// One entry of a [`RunJournal`]: an input the run accepted at `at` (or,
/// first, its start) and the actions it produced.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct JournalEntry<P> {
    /// The run's clock when it took the input: never earlier than the
    /// entry before.
    pub at: Instant,
    /// The input; `None` for the run's start, which is the first entry and
    /// only the first, and for a migration.
    pub input: Option<RunInput<P>>,
    /// A move to another version of the definition (journal format 2).
    #[cfg_attr(
        feature = "serde",
        serde(default = "Option::default", skip_serializing_if = "Option::is_none")
    )]
    pub migration: Option<Migration<P>>,
    /// What the run asked of its host after it, in order.
    pub actions: Vec<RunAction>,
}

impl<P> RunJournal<P> {
    /// The newest format this release writes; it reads every format up to
    /// it. A journal is written in format 1 until its run
    /// [migrates](RunRecorder::migrate), and in format 2 from then on, so
    /// a release that cannot replay a migration refuses the journal.
    pub const FORMAT: u32 = 2;

    /// The journal's format: 1, or 2 once it records a migration.
    pub fn format(&self) -> u32 {
        self.format
    }

    /// The recorded definition's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The recorded definition's version.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The recorded definition's content hash.
    pub fn content_hash(&self) -> u64 {
        self.hash
    }

    /// The version the run started under: the recorded definition's,
    /// unless it was [seen as an earlier version's runs see
    /// it](WorkflowDef::at_version). A replay sees the checked definition
    /// as this version's runs do.
    pub fn origin(&self) -> u32 {
        self.origin.unwrap_or(self.version)
    }

    /// The run's id.
    pub fn id(&self) -> WorkflowId {
        self.id
    }

    /// The entries, the start first.
    pub fn entries(&self) -> &[JournalEntry<P>] {
        &self.entries
    }

    /// The number of entries, the start included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Always `false` for a recorded journal, which holds its start.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A [`WorkflowRun`] that keeps its own [`RunJournal`]: the host gives it
/// inputs and takes its actions exactly as it would the run's, and every
/// accepted input is recorded with the actions it produced. A refused
/// input changes nothing and is not recorded; a tick is recorded only
/// when a timer was due.
///
/// Memory grows by one entry per accepted input: a host that keeps
/// journals of long runs stores them (or [checkpoints](super::Checkpoint))
/// as the run goes.
///
/// ```
/// use std::sync::Arc;
/// use taskweave::workflow::{check_replay, ReplayCheck, RunAction, RunInput, RunRecorder, StepDef, StepOutput, WorkflowDef};
/// use taskweave::{Instant, WorkflowId};
///
/// let def = Arc::new(WorkflowDef::builder("greet", 1).step(StepDef::local("hello")).build()?);
/// let mut run = RunRecorder::<String>::new(Arc::clone(&def), WorkflowId::new(1), None, Instant::ZERO);
/// let Some(RunAction::Start { token, .. }) = run.poll_action() else { unreachable!() };
/// let output = StepOutput::new("hi".to_string());
/// run.apply(RunInput::Succeeded { token, output }, Instant::from_secs(1))?;
/// assert!(run.run().is_finished());
/// assert_eq!(run.journal().len(), 2); // the start and one input
/// assert!(matches!(check_replay(run.journal(), &def)?, ReplayCheck::Compatible { entries: 2 }));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct RunRecorder<P> {
    run: WorkflowRun<P>,
    journal: RunJournal<P>,
    pending: VecDeque<RunAction>,
}

impl<P: Clone> RunRecorder<P> {
    /// Starts a run of `def` at `now`, as [`WorkflowRun::new`] does, and
    /// its journal.
    pub fn new(def: Arc<WorkflowDef>, id: WorkflowId, input: Option<P>, now: Instant) -> Self {
        let seed = run_seed(id, &def);
        let journal = RunJournal {
            format: 1,
            name: def.name().to_owned(),
            version: def.version(),
            hash: def.content_hash(),
            origin: def.earlier_origin(),
            steps: def.steps().map(|(_, step)| step.id.clone()).collect(),
            id,
            input: input.clone(),
            seed,
            entries: Vec::new(),
        };
        let run = WorkflowRun::observed(def, id, input, now, seed, None);
        let mut recorder = RunRecorder {
            run,
            journal,
            pending: VecDeque::new(),
        };
        recorder.record(now, None, None);
        recorder
    }

    /// Gives the run `input` at `now`, as [`WorkflowRun::apply`] does, and
    /// records it if the run accepts it.
    ///
    /// # Errors
    ///
    /// The run's refusal; nothing is recorded then.
    pub fn apply(&mut self, input: RunInput<P>, now: Instant) -> Result<(), RunError> {
        let at = now.max(self.run.latest_now());
        self.run.apply(input.clone(), at)?;
        self.record(at, Some(input), None);
        Ok(())
    }

    /// Fires the timers due at `now`, as [`WorkflowRun::handle_timeout`]
    /// does; recorded as a [`RunInput::Tick`] when one was due.
    pub fn handle_timeout(&mut self, now: Instant) {
        let at = now.max(self.run.latest_now());
        if self.run.poll_timeout().is_some_and(|due| due <= at) && !self.run.is_finished() {
            self.run.handle_timeout(at);
            self.record(at, Some(RunInput::Tick), None);
        }
    }

    /// Moves the run to another version of its definition, as
    /// [`WorkflowRun::migrate`] does, and journals the migration, with the
    /// starts of the entry steps it starts: a replay
    /// ([`check_replay_migrated`](super::check_replay_migrated)) moves at
    /// the same entry. Actions not yet polled name the later
    /// version's steps.
    ///
    /// # Errors
    ///
    /// The run's refusal; nothing is recorded then.
    pub fn migrate(
        &mut self,
        def: Arc<WorkflowDef>,
        migration: Migration<P>,
    ) -> Result<(), MigrationError> {
        let moved = self.run.plan_move(def, &migration)?;
        let pending = self
            .pending
            .iter()
            .map(|action| migration.move_action(action))
            .collect::<Option<VecDeque<_>>>()
            .ok_or(MigrationError::Malformed {
                what: "an action waiting for the host names a removed step",
            })?;
        self.run.take_move(moved);
        self.pending = pending;
        self.journal.format = RunJournal::<P>::FORMAT;
        let at = self.run.latest_now();
        self.record(at, None, Some(migration));
        Ok(())
    }

    /// The next action, as [`WorkflowRun::poll_action`] gives it.
    #[must_use = "an action must be carried out, or the run waits forever"]
    pub fn poll_action(&mut self) -> Option<RunAction> {
        self.pending.pop_front()
    }

    /// The run, to read its state.
    pub fn run(&self) -> &WorkflowRun<P> {
        &self.run
    }

    /// The journal so far.
    pub fn journal(&self) -> &RunJournal<P> {
        &self.journal
    }

    /// The run and its journal, parted.
    pub fn into_parts(self) -> (WorkflowRun<P>, RunJournal<P>) {
        (self.run, self.journal)
    }

    fn record(&mut self, at: Instant, input: Option<RunInput<P>>, migration: Option<Migration<P>>) {
        let mut actions = Vec::new();
        while let Some(action) = self.run.poll_action() {
            self.pending.push_back(action.clone());
            actions.push(action);
        }
        self.journal.entries.push(JournalEntry {
            at,
            input,
            migration,
            actions,
        });
    }
}
