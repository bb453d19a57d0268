//! Schedules the cluster hosts: each fire of a [`Schedules`] entry
//! starts a hosted run, whose id is the fire's [`RunKey`].
//!
//! A schedule is added, paused, resumed, triggered and removed by a
//! client's [`ScheduleCommand`], journaled as every
//! [`RunCommand`](super::RunCommand); it fires through the hosted runs'
//! timers ([`Entry::RunTimers`](crate::cluster::Entry::RunTimers)). A
//! replica that applies the same journal therefore holds the same
//! schedules, and the run of a fire has the same id on every node
//! ([`RunKey::workflow_id`]): a fire handled before a failover is behind
//! the schedule's next fire in the state the new leader restores, and a
//! start of an id the engine knows starts nothing. Each slot starts one
//! run across failovers and restarts.

use std::collections::BTreeMap;

use crate::schedule::{RunKey, ScheduleAction, ScheduleSpec, Schedules};
use crate::{Instant, WorkflowId};

/// How many schedules a cluster holds at most.
pub const MAX_SCHEDULES: usize = 1_024;

/// The seed of the hosted schedules' jitter: the same on every node, so
/// every replica draws the same.
const SEED: u64 = 0x7461_736b_7765_6176;

/// What a client asks of the cluster's schedules
/// ([`RunCommand::Schedule`](super::RunCommand::Schedule)).
///
/// ```
/// use std::time::Duration;
/// use taskweave::cluster::{Message, RunCommand, ScheduleCommand, ScheduledStart};
/// use taskweave::schedule::{OverlapPolicy, ScheduleSpec};
///
/// // Every hour, a run of `report` v1 with the input "daily"; a fire
/// // while the last run still goes is skipped.
/// let spec = ScheduleSpec::every(Duration::from_secs(3_600))
///     .overlap(OverlapPolicy::Skip)
///     .build()?;
/// let add = ScheduleCommand::Add {
///     id: "hourly-report".into(),
///     spec,
///     start: ScheduledStart { workflow: "report".into(), version: Some(1), input: Some("daily") },
/// };
/// // Posted like any run command; the leader journals it, then acts.
/// let message = Message::Run(RunCommand::Schedule(add));
/// # let _ = message;
/// # Ok::<(), taskweave::schedule::ScheduleError>(())
/// ```
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum ScheduleCommand<P> {
    /// Adds schedule `id`: each fire of `spec` (the first at or after the
    /// command's instant) starts a run of `start`. The workflow must be
    /// registered.
    Add {
        /// The schedule's id.
        id: String,
        /// When it fires, and what a fire does while a run goes.
        spec: ScheduleSpec,
        /// The run each fire starts.
        start: ScheduledStart<P>,
    },
    /// Stops firing a schedule until resumed; its runs go on.
    Pause(String),
    /// Fires a paused schedule again from its next fire; the fires of the
    /// pause are not caught up.
    Resume(String),
    /// Fires a schedule now, under its overlap policy (a paused one too).
    Trigger(String),
    /// Removes a schedule; its runs go on.
    Remove(String),
}

/// The run a schedule's fire starts.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ScheduledStart<P> {
    /// The workflow's name.
    pub workflow: String,
    /// Its version, or the highest registered when the fire starts.
    pub version: Option<u32>,
    /// The run's input.
    pub input: Option<P>,
}

/// The hosted schedules in a node's snapshot: the state machine and the
/// run each schedule starts. Read back, the two must name the same
/// schedules.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SchedulesSnapshot<P> {
    pub(super) schedules: Schedules,
    pub(super) starts: BTreeMap<String, ScheduledStart<P>>,
}

impl<P> SchedulesSnapshot<P> {
    /// The schedules' state: each one's spec, whether it is paused, its
    /// runs going, its counts, its next fire.
    pub fn schedules(&self) -> &Schedules {
        &self.schedules
    }

    /// The run schedule `id` starts.
    pub fn start(&self, id: &str) -> Option<&ScheduledStart<P>> {
        self.starts.get(id)
    }
}

/// The schedules a replica hosts.
pub(super) struct HostedSchedules<P> {
    schedules: Schedules,
    starts: BTreeMap<String, ScheduledStart<P>>,
    /// The runs going, by id: derived from the schedules' runs going.
    running: BTreeMap<WorkflowId, RunKey>,
}

impl<P: Clone> HostedSchedules<P> {
    pub(super) fn new() -> Self {
        HostedSchedules {
            schedules: Schedules::new(SEED),
            starts: BTreeMap::new(),
            running: BTreeMap::new(),
        }
    }

    /// The schedules a snapshot holds.
    ///
    /// # Errors
    ///
    /// Why the snapshot does not restore.
    pub(super) fn restore(snapshot: SchedulesSnapshot<P>) -> Result<Self, String> {
        let SchedulesSnapshot { schedules, starts } = snapshot;
        let named = schedules.ids().eq(starts.keys().map(String::as_str));
        if !named {
            return Err("the hosted schedules and the runs they start name other schedules".into());
        }
        if starts.len() > MAX_SCHEDULES {
            return Err(format!(
                "the snapshot holds {} schedules, more than {MAX_SCHEDULES}",
                starts.len()
            ));
        }
        let running = keys_going(&schedules)
            .map(|key| (key.workflow_id(), key))
            .collect();
        Ok(HostedSchedules {
            schedules,
            starts,
            running,
        })
    }

    /// Checks a restored state against the engine's: every run a
    /// schedule waits for is active (`active`), and every schedule starts
    /// a registered workflow (`registered`). A snapshot that breaks
    /// either would leave a schedule waiting for ever.
    ///
    /// # Errors
    ///
    /// The first schedule that breaks one.
    pub(super) fn check(
        &self,
        active: impl Fn(WorkflowId) -> bool,
        registered: impl Fn(&str, Option<u32>) -> bool,
    ) -> Result<(), String> {
        if let Some((run, key)) = self.running.iter().find(|(run, _)| !active(**run)) {
            return Err(format!(
                "schedule {:?} waits for the end of run {run}, which is not active",
                key.schedule
            ));
        }
        match self
            .starts
            .iter()
            .find(|(_, start)| !registered(&start.workflow, start.version))
        {
            Some((id, start)) => Err(format!(
                "schedule {id:?} starts workflow {:?}, which is not registered",
                start.workflow
            )),
            None => Ok(()),
        }
    }

    /// The snapshot, or `None` when there is no schedule (so a state
    /// without any reads as before schedules existed).
    pub(super) fn snapshot(&self) -> Option<SchedulesSnapshot<P>> {
        (!self.starts.is_empty()).then(|| SchedulesSnapshot {
            schedules: self.schedules.clone(),
            starts: self.starts.clone(),
        })
    }

    /// When the next fire is due.
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.schedules.poll_timeout()
    }

    pub(super) fn handle_timeout(&mut self, now: Instant) {
        self.schedules.handle_timeout(now);
    }

    /// Applies a client's command. `registered` says whether a workflow
    /// and version can be started.
    pub(super) fn command(
        &mut self,
        command: ScheduleCommand<P>,
        registered: impl FnOnce(&str, Option<u32>) -> Result<(), String>,
        now: Instant,
    ) -> Result<(), String> {
        let result = match command {
            ScheduleCommand::Add { id, spec, start } => {
                registered(&start.workflow, start.version)?;
                if self.starts.len() >= MAX_SCHEDULES {
                    return Err(format!(
                        "the cluster holds {MAX_SCHEDULES} schedules, its limit: remove one first"
                    ));
                }
                let added = self.schedules.add(id.clone(), spec, now);
                if added.is_ok() {
                    self.starts.insert(id, start);
                }
                added
            }
            ScheduleCommand::Pause(id) => self.schedules.pause(&id),
            ScheduleCommand::Resume(id) => self.schedules.unpause(&id, now),
            ScheduleCommand::Trigger(id) => self.schedules.trigger(&id, now),
            ScheduleCommand::Remove(id) => {
                let removed = self.schedules.remove(&id);
                if removed.is_ok() {
                    self.starts.remove(&id);
                    self.running.retain(|_, key| key.schedule != id);
                }
                removed.map(|_| ())
            }
        };
        result.map_err(|e| e.to_string())
    }

    /// The next fire to start or run to cancel, with the run a start
    /// starts.
    pub(super) fn poll_action(&mut self) -> Option<(ScheduleAction, Option<ScheduledStart<P>>)> {
        let action = self.schedules.poll_action()?;
        let start = match &action {
            ScheduleAction::Start { key, .. } => self.starts.get(&key.schedule).cloned(),
            ScheduleAction::Cancel { .. } => None,
        };
        Some((action, start))
    }

    /// The run of `key` started as `run`: its end is the schedule's.
    pub(super) fn started(&mut self, run: WorkflowId, key: RunKey) {
        self.running.insert(run, key);
    }

    /// A fire started no run (its id was taken, or its workflow is
    /// gone): the schedule goes on as if it ended at once.
    pub(super) fn not_started(&mut self, key: &RunKey, now: Instant) {
        // Only a removed schedule refuses, and it fires no more.
        let _ = self.schedules.run_ended(key, now);
    }

    /// Run `run` ended; if a schedule started it, the schedule hears so.
    pub(super) fn run_ended(&mut self, run: WorkflowId, now: Instant) {
        if let Some(key) = self.running.remove(&run) {
            // Only a removed schedule refuses, and it fires no more.
            let _ = self.schedules.run_ended(&key, now);
        }
    }
}

/// The key of every run the schedules have going.
fn keys_going(schedules: &Schedules) -> impl Iterator<Item = RunKey> + '_ {
    schedules.ids().flat_map(move |id| {
        schedules.running(id).into_iter().map(move |fire| RunKey {
            schedule: id.to_owned(),
            fire,
        })
    })
}
