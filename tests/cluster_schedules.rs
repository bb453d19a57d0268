//! Schedules hosted by the cluster (`RunCommand::Schedule`): each fire
//! starts a hosted run whose id is the fire's key, so a slot starts one
//! run across failovers, and every command gets a verdict.

#![cfg(feature = "cluster")]

mod hosted;

use std::collections::BTreeSet;
use std::time::Duration;

use hosted::*;
use taskweave::cluster::{
    ClientOp, ClientReply, Message, ScheduleCommand, ScheduledStart, Store, Verdict,
};
use taskweave::schedule::{OverlapPolicy, RunKey, ScheduleCounts, ScheduleSpec};
use taskweave::workflow::{RunOutcome, StepDef, TIMEOUT_LABEL, WorkflowDef};
use taskweave::{Instant, WorkflowId};

/// The counts of schedule `id` in the state of the first live node.
fn counts(cluster: &Cluster, id: &str) -> ScheduleCounts {
    let node = cluster.nodes.iter().flatten().next().expect("a live node");
    let runs = node.state().runs.expect("the node hosts runs");
    let schedules = runs.schedules().expect("the node holds schedules");
    schedules.schedules().counts(id).expect("the schedule")
}

/// The runs the agent ran a step of.
fn runs_seen(cluster: &Cluster) -> BTreeSet<WorkflowId> {
    cluster.executed.keys().map(|(run, _)| *run).collect()
}

fn key(fire_secs: u64) -> WorkflowId {
    RunKey {
        schedule: "tick".into(),
        fire: Instant::from_secs(fire_secs),
    }
    .workflow_id()
}

#[test]
fn a_schedule_starts_one_run_per_slot_across_failovers() {
    let mut cluster = Cluster::new(2);
    let registered = cluster.post(register(chain()));
    assert_eq!(cluster.verdict(registered, add_one), Verdict::Accepted);
    let added = cluster.post(every("tick", 1, "chain", 100));
    assert_eq!(cluster.verdict(added, add_one), Verdict::Accepted);
    // Ten seconds, the leader killed twice (a fresh node joins after the
    // first kill, restoring from a snapshot that holds the schedule).
    for second in 0..10 {
        for _ in 0..1_000 {
            cluster.tick(add_one);
        }
        if second == 3 || second == 6 {
            let leader = cluster.leader().expect("a leader");
            cluster.nodes[leader] = None;
            cluster.join(&format!("node-late-{second}"));
        }
    }
    let paused = cluster.post(schedule(ScheduleCommand::Pause("tick".into())));
    assert_eq!(cluster.verdict(paused, add_one), Verdict::Accepted);
    let counts = counts(&cluster, "tick");
    // The clock started at 1 s: fires at 2 s … 11 s, each slot once (a
    // fire due while no node led starts late, within the catch-up
    // window), none skipped or missed.
    assert!(counts.started >= 9, "{counts:?}");
    assert_eq!((counts.skipped, counts.missed), (0, 0), "{counts:?}");
    let slots: BTreeSet<WorkflowId> = (2..2 + counts.started).map(key).collect();
    for _ in 0..1_000 {
        cluster.tick(add_one);
    }
    // Each slot's run ended as its leader remembers (the ends a commit
    // published are trimmed with the entries behind a snapshot).
    let leader = cluster.leader().expect("a leader");
    let state = cluster.nodes[leader].as_ref().unwrap().state();
    let engine = state.runs.unwrap().engine().unwrap();
    for &run in &slots {
        let end = engine.finished_run(run).expect("the slot's run ended");
        assert_eq!(end.outcome, RunOutcome::Succeeded, "{run}");
        assert_eq!(end.output, Some(Job::Number(103)), "{run}");
    }
    // No run but the slots' ran a step, and each step ran at most twice
    // (once more only when a failover cut its attempt).
    assert_eq!(runs_seen(&cluster), slots);
    assert!(
        cluster.executed.values().all(|&n| n <= 2),
        "{:?}",
        cluster.executed
    );
    // Paused, the schedule starts nothing more.
    for _ in 0..3_000 {
        cluster.tick(add_one);
    }
    assert_eq!(runs_seen(&cluster), slots);
}

#[test]
fn schedule_commands_get_verdicts_and_a_trigger_starts_a_run_now() {
    let mut cluster = Cluster::new(1);
    let verdict = |cluster: &mut Cluster, command| {
        let posted = cluster.post(schedule(command));
        cluster.verdict(posted, add_one)
    };
    let refused = |verdict: Verdict, why: &str| match verdict {
        Verdict::Refused(reason) => assert!(reason.contains(why), "{reason}"),
        other => panic!("{other:?} where a refusal naming {why:?} belongs"),
    };
    // A workflow not registered: refused, naming it.
    let posted = cluster.post(every("tick", 60, "chain", 1));
    refused(
        cluster.verdict(posted, add_one),
        "no workflow \"chain\" is registered",
    );
    let registered = cluster.post(register(chain()));
    assert_eq!(cluster.verdict(registered, add_one), Verdict::Accepted);
    let posted = cluster.post(every("tick", 60, "chain", 1));
    assert_eq!(cluster.verdict(posted, add_one), Verdict::Accepted);
    let posted = cluster.post(every("tick", 60, "chain", 1));
    refused(cluster.verdict(posted, add_one), "tick");
    for command in [
        ScheduleCommand::Pause("nope".into()),
        ScheduleCommand::Resume("nope".into()),
        ScheduleCommand::Trigger("nope".into()),
        ScheduleCommand::Remove("nope".into()),
    ] {
        refused(verdict(&mut cluster, command), "nope");
    }
    // Paused, a trigger still starts a run, keyed by its instant.
    let pause = ScheduleCommand::Pause("tick".into());
    assert_eq!(verdict(&mut cluster, pause), Verdict::Accepted);
    let trigger = ScheduleCommand::Trigger("tick".into());
    assert_eq!(verdict(&mut cluster, trigger), Verdict::Accepted);
    for _ in 0..500 {
        cluster.tick(add_one);
    }
    assert_eq!(counts(&cluster, "tick").started, 1);
    let [run] = runs_seen(&cluster).into_iter().collect::<Vec<_>>()[..] else {
        panic!("one run: {:?}", cluster.executed);
    };
    let end = cluster.wait_end(run, add_one);
    assert_eq!(end.output, Some(Job::Number(4)));
    // Removed, the schedule is gone; its run ended already.
    let remove = ScheduleCommand::Remove("tick".into());
    assert_eq!(verdict(&mut cluster, remove), Verdict::Accepted);
    let node = cluster.nodes[0].as_ref().unwrap();
    let runs = node.state().runs.unwrap();
    assert!(runs.schedules().is_none(), "{:?}", runs.schedules());
}

#[test]
fn a_drain_stops_the_schedules_firing_and_ends_once_their_runs_ended() {
    let mut cluster = Cluster::new(1);
    // Each run lasts a second and a half: the runs of a schedule every
    // second overlap, and only a drain that stops the fires ends.
    let slow = WorkflowDef::builder("chain", 1)
        .step(StepDef::wait("pause", ["never"]).timeout(Duration::from_millis(1_500)))
        .step(StepDef::agent("after"))
        .branch("pause", "after", TIMEOUT_LABEL);
    let registered = cluster.post(register(slow));
    assert_eq!(cluster.verdict(registered, add_one), Verdict::Accepted);
    // Every second, each fire a run however many go.
    let posted = cluster.post(schedule(ScheduleCommand::Add {
        id: "tick".into(),
        spec: ScheduleSpec::every(Duration::from_secs(1))
            .overlap(OverlapPolicy::AllowAll)
            .build()
            .unwrap(),
        start: ScheduledStart {
            workflow: "chain".into(),
            version: None,
            input: Some(Job::Number(1)),
        },
    }));
    assert_eq!(cluster.verdict(posted, add_one), Verdict::Accepted);
    for _ in 0..3_000 {
        cluster.tick(add_one);
    }
    let started = counts(&cluster, "tick").started;
    assert!(started >= 2, "{started}");
    let drain = match cluster
        .store
        .client(ClientOp::Post(vec![Message::Drain]), cluster.now)
    {
        Ok(ClientReply::Posted(ids)) => ids[0],
        other => panic!("{other:?}"),
    };
    assert_eq!(cluster.verdict(drain, add_one), Verdict::Accepted);
    // A trigger is refused like a start; the node stops within seconds,
    // the schedule's fires starting no run meanwhile.
    let trigger = cluster.post(schedule(ScheduleCommand::Trigger("tick".into())));
    match cluster.verdict(trigger, add_one) {
        Verdict::Refused(why) => assert!(why.contains("draining"), "{why}"),
        other => panic!("{other:?}"),
    }
    for _ in 0..5_000 {
        cluster.tick(add_one);
    }
    let node = cluster.nodes[0].as_mut().unwrap();
    let events: Vec<String> = std::iter::from_fn(|| node.poll_event())
        .map(|e| e.to_string())
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("stopped the drained cluster")),
        "{events:?}"
    );
    assert!(counts(&cluster, "tick").started <= started + 1);
}
