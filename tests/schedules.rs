//! Schedules: each overlap policy, the catch-up window after downtime,
//! pause, trigger and backfill; as properties, every fire accounted for,
//! the policies' bounds kept after every call, replay of the journaled
//! calls and of a stored state, and stored states corrupted.
//!
//! Case count: `PROPTEST_CASES` (default 256).

#![cfg(all(feature = "schedule", feature = "serde"))]

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use proptest::prelude::*;
use taskweave::Instant;
use taskweave::schedule::{
    MAX_FIRES_PER_WAKE, MAX_STEPS_PER_WAKE, OverlapPolicy, RunKey, ScheduleAction, ScheduleError,
    ScheduleInput, ScheduleSpec, ScheduleSpecBuilder, Schedules,
};

mod corrupt;

fn secs(s: u64) -> Instant {
    Instant::from_secs(s)
}

fn every(s: u64, overlap: OverlapPolicy) -> ScheduleSpec {
    ScheduleSpec::every(Duration::from_secs(s))
        .overlap(overlap)
        .build()
        .unwrap()
}

/// The fires of every action, as `start@S` / `cancel@S` (seconds).
fn drain(schedules: &mut Schedules) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(action) = schedules.poll_action() {
        out.push(match action {
            ScheduleAction::Start { key, .. } => {
                format!("start@{}", key.fire.as_nanos() / 1_000_000_000)
            }
            ScheduleAction::Cancel { key } => {
                format!("cancel@{}", key.fire.as_nanos() / 1_000_000_000)
            }
        });
    }
    out
}

fn run(fire: u64) -> RunKey {
    RunKey {
        schedule: "job".into(),
        fire: secs(fire),
    }
}

/// A schedule every 10 s whose first run goes from 10 s to 35 s: the
/// fires at 20 and 30 s find it going.
fn overlapped(overlap: OverlapPolicy) -> (Schedules, Vec<String>) {
    let mut s = Schedules::new(1);
    s.add("job", every(10, overlap), secs(1)).unwrap();
    let mut log = Vec::new();
    for t in [10, 20, 30] {
        s.handle_timeout(secs(t));
        log.extend(drain(&mut s));
    }
    s.run_ended(&run(10), secs(35)).unwrap();
    log.push("ended@10".into());
    log.extend(drain(&mut s));
    (s, log)
}

#[test]
fn each_overlap_policy_does_what_it_says() {
    let (s, log) = overlapped(OverlapPolicy::Skip);
    assert_eq!(log, ["start@10", "ended@10"]);
    assert_eq!(s.counts("job").unwrap().skipped, 2);
    let (s, log) = overlapped(OverlapPolicy::BufferOne);
    assert_eq!(log, ["start@10", "ended@10", "start@20"]);
    assert_eq!(s.counts("job").unwrap().skipped, 1);
    let (s, log) = overlapped(OverlapPolicy::BufferAll);
    assert_eq!(log, ["start@10", "ended@10", "start@20"]);
    assert_eq!(s.buffered("job"), [secs(30)]);
    let (s, log) = overlapped(OverlapPolicy::CancelOther);
    assert_eq!(log, ["start@10", "cancel@10", "ended@10", "start@30"]);
    assert_eq!(s.counts("job").unwrap().cancelled, 1);
    let (s, log) = overlapped(OverlapPolicy::AllowAll);
    assert_eq!(log, ["start@10", "start@20", "start@30", "ended@10"]);
    assert_eq!(s.running("job"), [secs(20), secs(30)]);
}

#[test]
fn after_downtime_only_the_catch_up_window_starts() {
    let spec = ScheduleSpec::every(Duration::from_secs(60))
        .overlap(OverlapPolicy::AllowAll)
        .catch_up(Duration::from_secs(150))
        .build()
        .unwrap();
    let mut s = Schedules::new(1);
    s.add("job", spec, secs(0)).unwrap();
    // Down from 0 s to 600 s: fires 0..=600, of which 480, 540 and 600
    // are within 150 s.
    s.handle_timeout(secs(600));
    assert_eq!(drain(&mut s), ["start@480", "start@540", "start@600"]);
    assert_eq!(s.counts("job").unwrap().missed, 8);
    // Down for a year of one-second fires: one wake starts at most the
    // per-wake limit, the newest.
    let mut s = added_catching_up_a_year(ScheduleSpec::every(Duration::from_secs(1)));
    s.handle_timeout(secs(365 * 86_400));
    let counts = s.counts("job").unwrap();
    assert_eq!(counts.started + counts.skipped, MAX_FIRES_PER_WAKE);
    assert_eq!(counts.missed, 365 * 86_400 + 1 - MAX_FIRES_PER_WAKE);
}

/// Schedules with `job` added at 0 s: runs going at once allowed, a
/// catch-up window of a year.
fn added_catching_up_a_year(spec: ScheduleSpecBuilder) -> Schedules {
    let spec = spec
        .overlap(OverlapPolicy::AllowAll)
        .catch_up(Duration::from_secs(365 * 86_400))
        .build()
        .unwrap();
    let mut s = Schedules::new(1);
    s.add("job", spec, secs(0)).unwrap();
    s
}

#[test]
fn a_cron_schedule_far_behind_jumps_to_its_newest_fires_in_one_wake() {
    let mut s = added_catching_up_a_year(ScheduleSpec::cron("* * * * * *"));
    // Down for two days of one-second fires: one wake counts
    // MAX_STEPS_PER_WAKE missed fires, jumps over the rest to the newest
    // MAX_FIRES_PER_WAKE and starts them; the schedule is not due again.
    let now = secs(2 * 86_400);
    s.handle_timeout(now);
    let counts = s.counts("job").unwrap();
    assert_eq!(counts.started, MAX_FIRES_PER_WAKE);
    assert_eq!(counts.missed, MAX_STEPS_PER_WAKE);
    assert_eq!(counts.jumps, 1);
    assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(1)));
}

#[test]
fn a_cron_fire_s_jitter_stays_below_the_next_fire() {
    // Fires at :00 and :01 of each minute, a jitter up to 30 s.
    let spec = ScheduleSpec::cron("0,1 * * * * *")
        .jitter(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut s = Schedules::new(9);
    s.add("job", spec, secs(0)).unwrap();
    let mut long = 0;
    for minute in 0..50 {
        let (first, second) = (secs(60 * minute), secs(60 * minute + 1));
        let (a, b) = (
            s.due_at("job", first).unwrap(),
            s.due_at("job", second).unwrap(),
        );
        assert!(a >= first && a < second, "{a:?}");
        assert!(b >= second && b < second + Duration::from_secs(30), "{b:?}");
        long += usize::from(b >= second + Duration::from_secs(1));
    }
    assert!(long > 40, "the second fire's jitter is not capped: {long}");
}

#[test]
fn pause_trigger_and_backfill() {
    let mut s = Schedules::new(1);
    s.add("job", every(10, OverlapPolicy::Skip), secs(0))
        .unwrap();
    s.pause("job").unwrap();
    assert_eq!(s.poll_timeout(), None);
    s.handle_timeout(secs(45));
    assert!(drain(&mut s).is_empty());
    // Triggered while paused: under the policy, keyed by its instant.
    s.trigger("job", secs(47)).unwrap();
    assert_eq!(drain(&mut s), ["start@47"]);
    s.run_ended(&run(47), secs(48)).unwrap();
    // Unpaused: the fires of the pause are not caught up.
    s.unpause("job", secs(52)).unwrap();
    assert_eq!(s.poll_timeout(), Some(secs(60)));
    // A backfill of the paused range, all allowed at once.
    assert_eq!(
        s.backfill("job", secs(0), secs(50), OverlapPolicy::AllowAll),
        Ok(5)
    );
    assert_eq!(
        drain(&mut s),
        ["start@0", "start@10", "start@20", "start@30", "start@40"]
    );
    assert!(matches!(
        s.backfill("job", secs(0), secs(1_000_000), OverlapPolicy::AllowAll),
        Err(ScheduleError::BackfillTooLarge { fires: 100_000 })
    ));
    assert_eq!(
        s.run_ended(&run(47), secs(60)),
        Err(ScheduleError::NotRunning {
            schedule: "job".into(),
            fire: secs(47)
        })
    );
    assert_eq!(
        s.add("job", every(10, OverlapPolicy::Skip), secs(0)),
        Err(ScheduleError::Exists("job".into()))
    );
    assert_eq!(
        s.add("", every(10, OverlapPolicy::Skip), secs(0)),
        Err(ScheduleError::BadId)
    );
    // The run id is the schedule and the fire, the same every time.
    assert_eq!(run(10).workflow_id(), run(10).workflow_id());
    assert_ne!(run(10).workflow_id(), run(20).workflow_id());
}

#[test]
fn jitter_delays_each_start_alike_on_replay_and_keeps_the_order() {
    let spec = ScheduleSpec::every(Duration::from_secs(60))
        .jitter(Duration::from_secs(30))
        .build()
        .unwrap();
    let dues = |seed| {
        let mut s = Schedules::new(seed);
        s.add("job", spec.clone(), secs(0)).unwrap();
        (0..20)
            .map(|k| s.due_at("job", secs(60 * k)).unwrap())
            .collect::<Vec<_>>()
    };
    let (a, b) = (dues(3), dues(3));
    assert_eq!(a, b);
    assert_ne!(a, dues(4));
    for (k, due) in a.iter().enumerate() {
        let fire = secs(60 * k as u64);
        assert!(
            *due >= fire && *due < fire + Duration::from_secs(30),
            "{due:?}"
        );
    }
    assert!(a.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn ten_thousand_schedules_wake_one_at_a_time() {
    let mut s = Schedules::new(9);
    for i in 0..10_000u64 {
        let spec = ScheduleSpec::every(Duration::from_secs(10_000))
            .phase(Duration::from_secs(i))
            .build()
            .unwrap();
        s.add(format!("s{i:05}"), spec, secs(0)).unwrap();
    }
    s.pause("s00003").unwrap();
    for t in 0..6 {
        assert_eq!(s.poll_timeout(), Some(secs(if t == 3 { 4 } else { t })));
        s.handle_timeout(secs(t));
        let started: Vec<String> = std::iter::from_fn(|| s.poll_action())
            .map(|a| match a {
                ScheduleAction::Start { key, .. } => key.schedule,
                ScheduleAction::Cancel { key } => key.schedule,
            })
            .collect();
        let expected: Vec<String> = if t == 3 {
            vec![]
        } else {
            vec![format!("s{t:05}")]
        };
        assert_eq!(started, expected, "at {t} s");
    }
    s.unpause("s00003", secs(6)).unwrap();
    assert_eq!(s.poll_timeout(), Some(secs(6)));
    s.remove("s00006").unwrap();
    assert_eq!(s.poll_timeout(), Some(secs(7)));
}

// ---- properties ------------------------------------------------------

fn overlap() -> impl Strategy<Value = OverlapPolicy> {
    prop_oneof![
        Just(OverlapPolicy::Skip),
        Just(OverlapPolicy::BufferOne),
        Just(OverlapPolicy::BufferAll),
        Just(OverlapPolicy::CancelOther),
        Just(OverlapPolicy::AllowAll),
    ]
}

fn spec() -> impl Strategy<Value = ScheduleSpec> {
    let every = (1u64..60, 0u64..100).prop_map(|(period, phase)| {
        ScheduleSpec::every(Duration::from_secs(period)).phase(Duration::from_secs(phase % period))
    });
    // Every k seconds, or at some seconds of each minute: a cron pattern
    // read on the UTC wall clock from the Unix epoch.
    let cron = prop_oneof![
        (5u64..60).prop_map(|k| format!("*/{k} * * * * *")),
        prop::collection::btree_set(0u64..60, 1..6).prop_map(|seconds| {
            let list: Vec<String> = seconds.iter().map(u64::to_string).collect();
            format!("{} * * * * *", list.join(","))
        }),
    ]
    .prop_map(ScheduleSpec::cron);
    (prop_oneof![every, cron], 0u64..200, overlap(), 0u64..100).prop_map(
        |(builder, catch_up, overlap, jitter)| {
            let period = builder
                .clone()
                .build()
                .unwrap()
                .period()
                .map_or(5, |p| p.as_secs());
            builder
                .catch_up(Duration::from_secs(catch_up))
                .jitter(Duration::from_millis(jitter * 10 * period))
                .overlap(overlap)
                .build()
                .unwrap()
        },
    )
}

/// A host's day: per wake, the seconds to the next one (sometimes a long
/// downtime) and the run times drawn for the runs started.
fn host() -> impl Strategy<Value = (Vec<u64>, Vec<u64>)> {
    (
        prop::collection::vec(prop_oneof![8 => 1u64..30, 1 => 100u64..2_000], 1..60),
        prop::collection::vec(0u64..120, 64),
    )
}

/// Drives `schedules` (one schedule, `job`) through the wakes, carrying
/// out its actions: a run ends after its drawn time, a cancelled one at
/// once. Every call goes through `apply` and is journaled; after every
/// call, `check` sees the state. Returns the journal and the actions.
fn drive(
    schedules: &mut Schedules,
    wakes: &[u64],
    run_times: &[u64],
    mut check: impl FnMut(&Schedules, Instant),
) -> (Vec<ScheduleInput>, Vec<ScheduleAction>) {
    let (mut journal, mut actions) = (Vec::new(), Vec::new());
    let mut ends: BTreeMap<(Instant, Instant), RunKey> = BTreeMap::new();
    // The fires handled are those due at the last wake: a check after a
    // run's end sees the state as of that wake.
    let mut now = secs(0);
    let mut woke = secs(0);
    let mut drawn = run_times.iter().cycle();
    let apply = |s: &mut Schedules, input: ScheduleInput, journal: &mut Vec<ScheduleInput>| {
        s.apply(input.clone()).unwrap();
        journal.push(input);
    };
    for &wait in wakes {
        now += Duration::from_secs(wait);
        while let Some((&(at, fire), _)) = ends.iter().next() {
            if at > now {
                break;
            }
            let key = ends.remove(&(at, fire)).unwrap();
            apply(
                schedules,
                ScheduleInput::RunEnded { key, now: at },
                &mut journal,
            );
            check(schedules, woke);
        }
        // One wake handles every fire due: the check below sees them all.
        apply(schedules, ScheduleInput::Timeout { now }, &mut journal);
        woke = now;
        check(schedules, now);
        while let Some(action) = schedules.poll_action() {
            match &action {
                ScheduleAction::Start { key, .. } => {
                    let took = Duration::from_secs(*drawn.next().unwrap());
                    ends.insert((now + took, key.fire), key.clone());
                }
                ScheduleAction::Cancel { key } => {
                    ends.retain(|_, k| k != key);
                    ends.insert((now, key.fire), key.clone());
                }
            }
            actions.push(action);
        }
    }
    (journal, actions)
}

/// Counts the fires of `job` handled by each `now` (never going back):
/// from the first at or after the instant it was added, every one whose
/// due instant (jitter included) has come.
struct DueFires {
    next: Option<Instant>,
    count: u64,
}

impl DueFires {
    fn new() -> Self {
        DueFires {
            next: None,
            count: 0,
        }
    }

    fn at(&mut self, s: &Schedules, added: Instant, now: Instant) -> u64 {
        let spec = s.spec("job").unwrap();
        let mut fire = self.next.unwrap_or_else(|| spec.fire_at_or_after(added));
        while !fire.is_never() && s.due_at("job", fire).unwrap() <= now {
            self.count += 1;
            fire = spec.fire_at_or_after(fire + Duration::from_nanos(1));
        }
        self.next = Some(fire);
        self.count
    }
}

proptest! {
    #![proptest_config(corrupt::config(256))]

    /// After every call, every fire that came due is accounted for —
    /// started, skipped, missed or waiting — and the policy's bounds hold:
    /// one run at a time but under `AllowAll`, at most one fire waiting but
    /// under `BufferAll`; no fire starts twice.
    #[test]
    fn every_fire_is_accounted_for_and_the_policy_holds(
        spec in spec(), seed in any::<u64>(), (wakes, run_times) in host(),
    ) {
        let mut s = Schedules::new(seed);
        s.add("job", spec.clone(), secs(0)).unwrap();
        let mut broken = None;
        let mut due_fires = DueFires::new();
        let (_, actions) = drive(&mut s, &wakes, &run_times, |s, now| {
            let counts = s.counts("job").unwrap();
            let accounted = counts.started + counts.skipped + counts.missed + s.buffered("job").len() as u64;
            let due = due_fires.at(s, secs(0), now);
            let running = s.running("job").len();
            let waiting = s.buffered("job").len();
            let bounded = match spec.overlap() {
                OverlapPolicy::AllowAll => waiting == 0,
                OverlapPolicy::BufferAll => running <= 1,
                OverlapPolicy::CancelOther => waiting <= 1,
                OverlapPolicy::Skip => running <= 1 && waiting == 0,
                OverlapPolicy::BufferOne => running <= 1 && waiting <= 1,
            };
            if broken.is_none() && (accounted != due || !bounded) {
                broken = Some(format!("at {now:?}: {counts:?}, {waiting} waiting, {running} going, {due} due"));
            }
        });
        prop_assert!(broken.is_none(), "{}", broken.unwrap());
        let mut started = HashSet::new();
        for action in &actions {
            if let ScheduleAction::Start { key, .. } = action {
                prop_assert!(started.insert(key.clone()), "{key:?} started twice");
            }
        }
    }

    /// The journaled calls replayed on fresh schedules of the same seed
    /// give the same actions and state; so does a state stored halfway
    /// and read back.
    #[test]
    fn a_journal_and_a_stored_state_replay_exactly(
        spec in spec(), seed in any::<u64>(), (wakes, run_times) in host(), half in 0usize..60,
    ) {
        let mut s = Schedules::new(seed);
        s.add("job", spec.clone(), secs(0)).unwrap();
        let (journal, actions) = drive(&mut s, &wakes, &run_times, |_, _| {});
        let mut replayed = Schedules::new(seed);
        replayed.add("job", spec, secs(0)).unwrap();
        let mut again = Vec::new();
        for (i, input) in journal.iter().enumerate() {
            if i == half.min(journal.len()) {
                let stored = serde_json::to_string(&replayed).unwrap();
                replayed = serde_json::from_str(&stored).unwrap();
            }
            replayed.apply(input.clone()).unwrap();
            again.extend(std::iter::from_fn(|| replayed.poll_action()));
        }
        prop_assert_eq!(again, actions);
        prop_assert_eq!(replayed, s);
    }

    /// A stored state with one value corrupted is refused or read; read,
    /// it takes more calls without a panic or a hang.
    #[test]
    fn a_corrupted_stored_state_is_refused_or_works(
        spec in spec(), seed in any::<u64>(), (wakes, run_times) in host(),
        pick in any::<prop::sample::Index>(), how in any::<u8>(), noise in any::<u64>(),
    ) {
        let mut s = Schedules::new(seed);
        s.add("job", spec.clone(), secs(0)).unwrap();
        s.add("other", spec, secs(5)).unwrap();
        drive(&mut s, &wakes[..wakes.len() / 2], &run_times, |_, _| {});
        let mut value = serde_json::to_value(&s).unwrap();
        let leaves = corrupt::paths_where(&value, |v| !v.is_array() && !v.is_object());
        let leaf = corrupt::at_path(&mut value, &leaves[pick.index(leaves.len())]);
        *leaf = corrupt::corrupt_leaf(leaf, how, noise);
        if let Ok(mut read) = serde_json::from_value::<Schedules>(value) {
            corrupt::watchdog(10, move || {
                let mut now = secs(0);
                for _ in 0..50 {
                    now += Duration::from_secs(37);
                    read.handle_timeout(now);
                    while let Some(action) = read.poll_action() {
                        let (ScheduleAction::Start { key, .. } | ScheduleAction::Cancel { key }) = action;
                        let _ = read.run_ended(&key, now);
                    }
                    let _ = read.trigger("job", now);
                    let _ = read.backfill("other", secs(0), now, OverlapPolicy::BufferAll);
                }
            });
        }
    }

    /// Journaled calls with one value corrupted are refused when read, or
    /// applied with a typed refusal or a change, never a panic or a hang;
    /// a backfill stays within its bound whatever range it names.
    #[test]
    fn corrupted_journal_inputs_are_refused_or_applied(
        spec in spec(), seed in any::<u64>(), (wakes, run_times) in host(),
        pick in any::<prop::sample::Index>(), how in any::<u8>(), noise in any::<u64>(),
    ) {
        let mut s = Schedules::new(seed);
        s.add("job", spec.clone(), secs(0)).unwrap();
        let (mut journal, _) = drive(&mut s, &wakes, &run_times, |_, _| {});
        journal.push(ScheduleInput::Add { id: "other".into(), spec: spec.clone(), now: secs(1) });
        journal.push(ScheduleInput::Backfill {
            id: "job".into(),
            from: secs(0),
            to: secs(600),
            overlap: OverlapPolicy::BufferAll,
        });
        journal.push(ScheduleInput::Pause { id: "job".into() });
        journal.push(ScheduleInput::Trigger { id: "job".into(), now: secs(700) });
        let mut value = serde_json::to_value(&journal).unwrap();
        let leaves = corrupt::paths_where(&value, |v| !v.is_array() && !v.is_object());
        let leaf = corrupt::at_path(&mut value, &leaves[pick.index(leaves.len())]);
        *leaf = corrupt::corrupt_leaf(leaf, how, noise);
        if let Ok(inputs) = serde_json::from_value::<Vec<ScheduleInput>>(value) {
            corrupt::watchdog(10, move || {
                let mut replayed = Schedules::new(seed);
                replayed.add("job", spec, secs(0)).unwrap();
                for input in inputs {
                    let _ = replayed.apply(input);
                    while replayed.poll_action().is_some() {}
                }
            });
        }
    }
}
