//! The serde form of [`Schedules`], checked when read back: stored
//! schedules are data from outside.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::schedules::{Entry, check_id};
use super::{
    MAX_BUFFERED, MAX_RUNNING, ScheduleAction, ScheduleCounts, ScheduleError, ScheduleSpec,
    Schedules,
};
use crate::Instant;

/// The stored form's format.
const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SchedulesData {
    format: u32,
    seed: u64,
    schedules: Vec<EntryData>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    actions: Vec<ScheduleAction>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryData {
    id: String,
    spec: ScheduleSpec,
    next: Instant,
    #[serde(default)]
    paused: bool,
    /// The runs going: (fire, cancel asked), by fire.
    #[serde(default)]
    running: Vec<(Instant, bool)>,
    #[serde(default)]
    buffered: Vec<Instant>,
    #[serde(default)]
    counts: ScheduleCounts,
}

impl Serialize for Schedules {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        SchedulesData {
            format: FORMAT,
            seed: self.seed,
            schedules: self
                .entries
                .iter()
                .map(|(id, e)| EntryData {
                    id: id.clone(),
                    spec: e.spec.clone(),
                    next: e.next,
                    paused: e.paused,
                    running: e.running.iter().map(|(&f, &c)| (f, c)).collect(),
                    buffered: e.buffered.iter().copied().collect(),
                    counts: e.counts,
                })
                .collect(),
            actions: self.actions.iter().cloned().collect(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Schedules {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let data = SchedulesData::deserialize(deserializer)?;
        Schedules::try_from(data).map_err(serde::de::Error::custom)
    }
}

fn check(ok: bool, what: &'static str) -> Result<(), ScheduleError> {
    if ok {
        Ok(())
    } else {
        Err(ScheduleError::Invalid(what))
    }
}

impl TryFrom<SchedulesData> for Schedules {
    type Error = ScheduleError;

    /// Checks what the calls keep by construction: known format, valid
    /// and unique ids, a next fire that is one of the schedule's, runs
    /// and waiting fires within their bounds, a fire waiting only while a
    /// run goes, and each pending action about a run going.
    fn try_from(data: SchedulesData) -> Result<Self, Self::Error> {
        check(data.format == FORMAT, "an unknown format")?;
        let mut entries = BTreeMap::new();
        for e in data.schedules {
            check_id(&e.id)?;
            check(
                e.next.is_never() || e.spec.timetable().is_fire(e.next),
                "a next fire that is not one of the schedule's",
            )?;
            check(e.running.len() <= MAX_RUNNING, "too many runs going")?;
            check(e.buffered.len() <= MAX_BUFFERED, "too many fires waiting")?;
            check(
                e.running.windows(2).all(|w| w[0].0 < w[1].0),
                "runs going out of order or listed twice",
            )?;
            check(
                e.buffered.is_empty() || !e.running.is_empty(),
                "a fire waiting while no run goes",
            )?;
            let entry = Entry {
                spec: e.spec,
                next: e.next,
                paused: e.paused,
                running: e.running.into_iter().collect(),
                buffered: e.buffered.into_iter().collect::<VecDeque<_>>(),
                counts: e.counts,
                filed: None,
            };
            check(
                entries.insert(e.id, entry).is_none(),
                "a schedule listed twice",
            )?;
        }
        let mut seen = std::collections::HashSet::new();
        for action in &data.actions {
            let (key, cancel) = match action {
                ScheduleAction::Start { key, .. } => (key, false),
                ScheduleAction::Cancel { key } => (key, true),
            };
            let asked = entries
                .get(&key.schedule)
                .and_then(|e: &Entry| e.running.get(&key.fire));
            check(
                asked.is_some_and(|&asked| !cancel || asked) && seen.insert((cancel, key)),
                "an action about no run going, or listed twice",
            )?;
        }
        let ids: Vec<String> = entries.keys().cloned().collect();
        let mut schedules = Schedules {
            seed: data.seed,
            entries,
            actions: data.actions.into(),
            timers: std::collections::BTreeSet::new(),
        };
        for id in ids {
            schedules.refile(&id);
        }
        Ok(schedules)
    }
}
