//! [`Schedules`]: the sans-IO state machine of a host's schedules.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use super::timetable::nanos;
use super::{
    MAX_BACKFILL, MAX_BUFFERED, MAX_FIRES_PER_WAKE, MAX_ID_LEN, MAX_RUNNING, MAX_STEPS_PER_WAKE,
    OverlapPolicy, ScheduleError, ScheduleSpec,
};
use crate::hash::{fnv1a, mix};
use crate::{Instant, WorkflowId};

/// Which fire of which schedule a run is for: the run's identity. Two
/// starts of one key are one run, so a host that derives its run id from
/// the key ([`workflow_id`](Self::workflow_id)) and refuses a second start
/// of an id (as `WorkflowEngine::start_as` does while the run is on the
/// engine) starts a fire journaled twice once.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RunKey {
    /// The schedule.
    pub schedule: String,
    /// The fire: the instant the schedule was due, before jitter (the
    /// trigger's instant for [`Schedules::trigger`]).
    pub fire: Instant,
}

impl RunKey {
    /// A run id made of the schedule id and the fire, the same on every
    /// machine and in every release of this major version.
    pub fn workflow_id(&self) -> WorkflowId {
        WorkflowId::new(mix(fnv1a(self.schedule.as_bytes()), self.fire.as_nanos()))
    }
}

/// What the schedules ask of the host; pulled with
/// [`Schedules::poll_action`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[must_use = "an action must be carried out, or the schedule waits forever"]
pub enum ScheduleAction {
    /// Start the run of `key`, and report its end with
    /// [`Schedules::run_ended`].
    Start {
        /// The run's identity.
        key: RunKey,
        /// When it became due: the fire plus its jitter, or the end of the
        /// run it waited for.
        due: Instant,
    },
    /// Cancel the run of `key` ([`OverlapPolicy::CancelOther`]); report its
    /// end as usual.
    Cancel {
        /// The run's identity.
        key: RunKey,
    },
}

/// What a schedule did with its fires, cumulative.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ScheduleCounts {
    /// Runs started.
    pub started: u64,
    /// Fires skipped by the overlap policy (or by a full buffer).
    pub skipped: u64,
    /// Fires noticed later than the catch-up window allows (or beyond
    /// [`MAX_FIRES_PER_WAKE`] at one wake), as far as counted: a cron
    /// schedule counts at most [`MAX_STEPS_PER_WAKE`] of them at one wake
    /// and jumps over the rest (see [`jumps`](Self::jumps)). A schedule
    /// every period counts them all.
    pub missed: u64,
    /// Runs cancelled by a later fire.
    pub cancelled: u64,
    /// Wakes at which a cron schedule was more than
    /// [`MAX_STEPS_PER_WAKE`] fires behind and jumped over the fires
    /// beyond that without counting them in [`missed`](Self::missed)
    /// (a host down for long, or a clock that leapt ahead). While it is
    /// zero, `missed` counts every fire missed.
    #[cfg_attr(feature = "serde", serde(default, skip_serializing_if = "is_zero"))]
    pub jumps: u64,
}

#[cfg(feature = "serde")]
fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One schedule and where it stands.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Entry {
    pub(super) spec: ScheduleSpec,
    /// The next fire not handled yet.
    pub(super) next: Instant,
    pub(super) paused: bool,
    /// The runs going, by fire, and whether a cancel was asked of them.
    pub(super) running: BTreeMap<Instant, bool>,
    /// Fires waiting for the runs going to end, oldest first.
    pub(super) buffered: VecDeque<Instant>,
    pub(super) counts: ScheduleCounts,
    /// Where the entry is filed in [`Schedules::timers`]: the due instant
    /// of `next`, unless paused or never. Derived, not stored.
    pub(super) filed: Option<Instant>,
}

impl Entry {
    /// Starts the run of `fire` of schedule `id`, due at `due`.
    fn start(
        &mut self,
        id: &str,
        fire: Instant,
        due: Instant,
        actions: &mut VecDeque<ScheduleAction>,
    ) {
        self.running.insert(fire, false);
        self.counts.started = self.counts.started.saturating_add(1);
        actions.push_back(ScheduleAction::Start {
            key: key_of(id, fire),
            due,
        });
    }
}

/// The schedules of a host, as a sans-IO state machine: time comes in as
/// `now`, and the runs to start or cancel come out as
/// [`ScheduleAction`]s. Every choice (the jitter) is drawn from the seed
/// given at creation and the fire, so a replay of the same calls gives
/// the same actions.
///
/// ```
/// use std::time::Duration;
/// use taskweave::Instant;
/// use taskweave::schedule::{OverlapPolicy, ScheduleAction, ScheduleSpec, Schedules};
///
/// let mut schedules = Schedules::new(7);
/// let every_minute = ScheduleSpec::every(Duration::from_secs(60)).overlap(OverlapPolicy::Skip).build()?;
/// schedules.add("report", every_minute, Instant::from_secs(1))?;
/// assert_eq!(schedules.poll_timeout(), Some(Instant::from_secs(60)));
///
/// schedules.handle_timeout(Instant::from_secs(60));
/// let Some(ScheduleAction::Start { key, .. }) = schedules.poll_action() else { unreachable!() };
/// assert_eq!(key.fire, Instant::from_secs(60));
///
/// // The run takes 90 s: the fire at 120 s finds it going and is skipped.
/// schedules.handle_timeout(Instant::from_secs(120));
/// assert_eq!(schedules.poll_action(), None);
/// schedules.run_ended(&key, Instant::from_secs(150))?;
/// assert_eq!(schedules.counts("report").unwrap().skipped, 1);
/// # Ok::<(), taskweave::schedule::ScheduleError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Schedules {
    pub(super) seed: u64,
    pub(super) entries: BTreeMap<String, Entry>,
    pub(super) actions: VecDeque<ScheduleAction>,
    /// Every schedule not paused, by the instant its next fire is due.
    pub(super) timers: BTreeSet<(Instant, String)>,
}

impl Schedules {
    /// No schedules; jitter draws from `seed`.
    pub fn new(seed: u64) -> Self {
        Schedules {
            seed,
            entries: BTreeMap::new(),
            actions: VecDeque::new(),
            timers: BTreeSet::new(),
        }
    }

    /// Adds a schedule; its first fire is the first at or after `now`.
    ///
    /// # Errors
    ///
    /// [`ScheduleError::BadId`] or [`ScheduleError::Exists`].
    pub fn add(
        &mut self,
        id: impl Into<String>,
        spec: ScheduleSpec,
        now: Instant,
    ) -> Result<(), ScheduleError> {
        let id = id.into();
        check_id(&id)?;
        if self.entries.contains_key(&id) {
            return Err(ScheduleError::Exists(id));
        }
        let entry = Entry {
            next: spec.fire_at_or_after(now),
            spec,
            paused: false,
            running: BTreeMap::new(),
            buffered: VecDeque::new(),
            counts: ScheduleCounts::default(),
            filed: None,
        };
        self.entries.insert(id.clone(), entry);
        self.refile(&id);
        Ok(())
    }

    /// Removes a schedule and returns its spec. Its runs going are the
    /// host's; reporting their end later is refused.
    ///
    /// # Errors
    ///
    /// [`ScheduleError::Unknown`].
    pub fn remove(&mut self, id: &str) -> Result<ScheduleSpec, ScheduleError> {
        let entry = self
            .entries
            .remove(id)
            .ok_or_else(|| ScheduleError::Unknown(id.to_owned()))?;
        if let Some(at) = entry.filed {
            self.timers.remove(&(at, id.to_owned()));
        }
        Ok(entry.spec)
    }

    /// Files schedule `id` in the timers at the instant its next fire is
    /// due, or takes it out if it is paused or fires never again.
    pub(super) fn refile(&mut self, id: &str) {
        let Some(entry) = self.entries.get(id) else {
            return;
        };
        let want = (!entry.paused && !entry.next.is_never())
            .then(|| self.due(id, &entry.spec, entry.next));
        if want == entry.filed {
            return;
        }
        if let Some(at) = entry.filed {
            self.timers.remove(&(at, id.to_owned()));
        }
        if let Some(at) = want {
            self.timers.insert((at, id.to_owned()));
        }
        if let Some(entry) = self.entries.get_mut(id) {
            entry.filed = want;
        }
    }

    /// The next action, if any.
    pub fn poll_action(&mut self) -> Option<ScheduleAction> {
        self.actions.pop_front()
    }

    /// When the next fire is due (jitter included), among the schedules
    /// not paused. `O(1)`: the schedules are kept ordered by it.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|&(at, _)| at)
    }

    /// When the fire `fire` of schedule `id` is due: the fire plus its
    /// jitter.
    pub fn due_at(&self, id: &str, fire: Instant) -> Option<Instant> {
        let entry = self.entries.get(id)?;
        Some(self.due(id, &entry.spec, fire))
    }

    fn due(&self, id: &str, spec: &ScheduleSpec, fire: Instant) -> Instant {
        if fire.is_never() {
            return fire;
        }
        let jitter = spec.jitter_below(fire);
        if jitter == 0 {
            return fire;
        }
        let draw = mix(mix(self.seed, fnv1a(id.as_bytes())), fire.as_nanos()) % jitter;
        Instant::from_nanos(fire.as_nanos().saturating_add(draw))
    }

    /// Handles every fire due at `now`: each starts, waits, cancels or is
    /// skipped by its schedule's [`OverlapPolicy`]; a fire older than the
    /// catch-up window is missed. At most [`MAX_FIRES_PER_WAKE`] fires per
    /// schedule are handled at one wake, the newest; older ones are missed.
    /// Afterwards no schedule is due at `now`, however far the clock
    /// leapt: one call is enough.
    ///
    /// `O(k log n)` for k schedules due among n, plus the fires handled
    /// (at most the window's and [`MAX_FIRES_PER_WAKE`]); a schedule every
    /// period counts the fires it missed in `O(1)`. A cron schedule takes
    /// a croner search per fire handled, at most [`MAX_STEPS_PER_WAKE`]
    /// counting missed fires (it jumps over the rest, see
    /// [`ScheduleCounts::jumps`]), and the search for the newest
    /// [`MAX_FIRES_PER_WAKE`] when it can be that far behind.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<String> = self
            .timers
            .iter()
            .take_while(|(at, _)| at.fires_at(now))
            .map(|(_, id)| id.clone())
            .collect();
        for id in due {
            self.catch_up(&id, now);
            self.refile(&id);
        }
    }

    fn catch_up(&mut self, id: &str, now: Instant) {
        let Some(entry) = self.entries.get(id) else {
            return;
        };
        let spec = entry.spec.clone();
        let timetable = spec.timetable();
        // In bulk: the fires due before the window for certain (their
        // jitter cannot bring them in), then those older than the newest
        // the per-wake limit handles. A cron schedule counts them one
        // search each, within a budget, and jumps over the rest.
        let late = spec.catch_up().saturating_add(spec.jitter());
        let horizon = Instant::from_nanos(now.as_nanos().saturating_sub(nanos(late)));
        let (mut missed, mut next, mut jumped) =
            timetable.skip_before(entry.next, horizon, MAX_STEPS_PER_WAKE);
        let end = now.saturating_add(Duration::from_nanos(1));
        // More than the per-wake limit can be due only over a span that
        // long; a cron schedule counts them by searching, so only then.
        let span = timetable
            .least_gap()
            .saturating_mul(MAX_FIRES_PER_WAKE as u32);
        let ahead = |next| timetable.count_before(next, end, MAX_FIRES_PER_WAKE + 1).0;
        if now.saturating_duration_since(next) >= span && ahead(next) > MAX_FIRES_PER_WAKE {
            let cutoff = timetable.newest(now, MAX_FIRES_PER_WAKE);
            let budget = MAX_STEPS_PER_WAKE.saturating_sub(missed);
            let (more, reached, over) = timetable.skip_before(next, cutoff, budget);
            missed += more;
            next = reached;
            jumped |= over;
        }
        // One by one: the rest that came due, no more than the window's
        // fires and the per-wake limit.
        while !next.is_never() {
            let due = self.due(id, &spec, next);
            if !due.fires_at(now) {
                break;
            }
            if now.saturating_duration_since(due) > spec.catch_up() {
                missed = missed.saturating_add(1);
            } else {
                self.fire(id, next, due, spec.overlap());
            }
            next = timetable.after(next);
        }
        if let Some(entry) = self.entries.get_mut(id) {
            entry.counts.missed = entry.counts.missed.saturating_add(missed);
            entry.counts.jumps = entry.counts.jumps.saturating_add(u64::from(jumped));
            entry.next = next;
        }
    }

    /// One fire of schedule `id`, under `overlap`.
    fn fire(&mut self, id: &str, fire: Instant, due: Instant, overlap: OverlapPolicy) {
        let Some(entry) = self.entries.get_mut(id) else {
            return;
        };
        let going = !entry.running.is_empty();
        let start = match overlap {
            _ if entry.running.contains_key(&fire) => false,
            OverlapPolicy::Skip => !going,
            OverlapPolicy::BufferOne | OverlapPolicy::BufferAll
                if !going && entry.buffered.is_empty() =>
            {
                true
            }
            OverlapPolicy::BufferOne => {
                if entry.buffered.is_empty() {
                    entry.buffered.push_back(fire);
                    return;
                }
                false
            }
            OverlapPolicy::BufferAll => {
                if entry.buffered.len() < MAX_BUFFERED {
                    entry.buffered.push_back(fire);
                    return;
                }
                false
            }
            OverlapPolicy::CancelOther if going => {
                for (&going, asked) in entry.running.iter_mut().filter(|(_, asked)| !**asked) {
                    *asked = true;
                    entry.counts.cancelled = entry.counts.cancelled.saturating_add(1);
                    self.actions.push_back(ScheduleAction::Cancel {
                        key: key_of(id, going),
                    });
                }
                entry.counts.skipped = entry
                    .counts
                    .skipped
                    .saturating_add(entry.buffered.len() as u64);
                entry.buffered.clear();
                entry.buffered.push_back(fire);
                return;
            }
            OverlapPolicy::CancelOther => true,
            OverlapPolicy::AllowAll => entry.running.len() < MAX_RUNNING,
        };
        if start {
            entry.start(id, fire, due, &mut self.actions);
        } else {
            entry.counts.skipped = entry.counts.skipped.saturating_add(1);
        }
    }

    /// The run of `key` ended (however it ended). A fire waiting for it
    /// starts now.
    ///
    /// # Errors
    ///
    /// [`ScheduleError::Unknown`] or [`ScheduleError::NotRunning`].
    pub fn run_ended(&mut self, key: &RunKey, now: Instant) -> Result<(), ScheduleError> {
        let entry = self
            .entries
            .get_mut(&key.schedule)
            .ok_or_else(|| ScheduleError::Unknown(key.schedule.clone()))?;
        if entry.running.remove(&key.fire).is_none() {
            return Err(ScheduleError::NotRunning {
                schedule: key.schedule.clone(),
                fire: key.fire,
            });
        }
        if entry.running.is_empty() {
            if let Some(fire) = entry.buffered.pop_front() {
                entry.start(&key.schedule, fire, now, &mut self.actions);
            }
        }
        Ok(())
    }

    /// Stops firing `id` until [`unpause`](Self::unpause). Runs going and
    /// fires waiting are kept.
    ///
    /// # Errors
    ///
    /// [`ScheduleError::Unknown`].
    pub fn pause(&mut self, id: &str) -> Result<(), ScheduleError> {
        self.entry(id)?.paused = true;
        self.refile(id);
        Ok(())
    }

    /// Fires `id` again from the first fire at or after `now`; the fires
    /// of the pause are not caught up.
    ///
    /// # Errors
    ///
    /// [`ScheduleError::Unknown`].
    pub fn unpause(&mut self, id: &str, now: Instant) -> Result<(), ScheduleError> {
        let entry = self.entry(id)?;
        if entry.paused {
            entry.paused = false;
            entry.next = entry.next.max(entry.spec.fire_at_or_after(now));
        }
        self.refile(id);
        Ok(())
    }

    /// Fires `id` at `now`, outside its timetable, under its overlap
    /// policy (a paused schedule too). The run's key has `now` as its
    /// fire.
    ///
    /// # Errors
    ///
    /// [`ScheduleError::Unknown`].
    pub fn trigger(&mut self, id: &str, now: Instant) -> Result<(), ScheduleError> {
        let overlap = self.entry(id)?.spec.overlap();
        self.fire(id, now, now, overlap);
        Ok(())
    }

    /// Fires `id` at each of its fires in `[from, to)`, oldest first,
    /// under `overlap` (Temporal's backfill): for runs the schedule missed,
    /// or for a range before it existed. Returns how many fires there
    /// were.
    ///
    /// # Errors
    ///
    /// [`ScheduleError::Unknown`], or
    /// [`ScheduleError::BackfillTooLarge`] beyond [`MAX_BACKFILL`] fires.
    pub fn backfill(
        &mut self,
        id: &str,
        from: Instant,
        to: Instant,
        overlap: OverlapPolicy,
    ) -> Result<u64, ScheduleError> {
        let timetable = self.entry(id)?.spec.timetable().clone();
        let first = timetable.fire_at_or_after(from);
        let (fires, _) = timetable.count_before(first, to, MAX_BACKFILL + 1);
        if fires > MAX_BACKFILL {
            return Err(ScheduleError::BackfillTooLarge { fires });
        }
        let mut fire = first;
        for _ in 0..fires {
            self.fire(id, fire, fire, overlap);
            fire = timetable.after(fire);
        }
        Ok(fires)
    }

    fn entry(&mut self, id: &str) -> Result<&mut Entry, ScheduleError> {
        self.entries
            .get_mut(id)
            .ok_or_else(|| ScheduleError::Unknown(id.to_owned()))
    }

    /// What `id` did with its fires so far.
    pub fn counts(&self, id: &str) -> Option<ScheduleCounts> {
        self.entries.get(id).map(|e| e.counts)
    }

    /// The spec of `id`.
    pub fn spec(&self, id: &str) -> Option<ScheduleSpec> {
        self.entries.get(id).map(|e| e.spec.clone())
    }

    /// The runs of `id` going, by fire, oldest first.
    pub fn running(&self, id: &str) -> Vec<Instant> {
        self.entries
            .get(id)
            .map(|e| e.running.keys().copied().collect())
            .unwrap_or_default()
    }

    /// The fires of `id` waiting for its runs to end, oldest first.
    pub fn buffered(&self, id: &str) -> Vec<Instant> {
        self.entries
            .get(id)
            .map(|e| e.buffered.iter().copied().collect())
            .unwrap_or_default()
    }

    /// When `id` fires next (its jitter included): `None` while it is
    /// paused, once it fires never again, or for an unknown id.
    pub fn next_due(&self, id: &str) -> Option<Instant> {
        self.entries.get(id).and_then(|e| e.filed)
    }

    /// Whether `id` is paused.
    pub fn is_paused(&self, id: &str) -> Option<bool> {
        self.entries.get(id).map(|e| e.paused)
    }

    /// Every schedule's id, in order.
    pub fn ids(&self) -> impl Iterator<Item = &str> + '_ {
        self.entries.keys().map(String::as_str)
    }
}

fn key_of(schedule: &str, fire: Instant) -> RunKey {
    RunKey {
        schedule: schedule.to_owned(),
        fire,
    }
}

/// Refuses an empty id or one longer than [`MAX_ID_LEN`] bytes.
pub(super) fn check_id(id: &str) -> Result<(), ScheduleError> {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(ScheduleError::BadId);
    }
    Ok(())
}
