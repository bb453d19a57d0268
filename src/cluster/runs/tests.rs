use super::*;
use crate::scheduler::DispatcherConfig;
use crate::workflow::StepDef;

fn runs() -> (HostedRuns<u32>, Dispatcher<u32>) {
    let codec = RunCodec::new(0, |_, _, _| 1);
    (
        HostedRuns::new(codec),
        Dispatcher::new(DispatcherConfig::default()),
    )
}

fn waiting(version: u32) -> Box<WorkflowDef> {
    let def = WorkflowDef::builder("wait", version)
        .step(StepDef::wait("approved", ["approve"]))
        .build()
        .unwrap();
    Box::new(def)
}

fn start(id: u64) -> RunCommand<u32> {
    RunCommand::Start {
        workflow: "wait".into(),
        version: None,
        id: Some(WorkflowId::new(id)),
        input: None,
    }
}

#[test]
fn starts_beyond_the_active_limit_are_refused_but_a_known_id_is_named() {
    let (mut runs, mut pool) = runs();
    let now = Instant::from_secs(1);
    runs.command(&mut pool, RunCommand::Register(waiting(1)), None, now)
        .unwrap();
    for id in 0..MAX_ACTIVE_RUNS as u64 {
        runs.command(&mut pool, start(id), None, now).unwrap();
    }
    let refused = runs
        .command(&mut pool, start(u64::MAX), None, now)
        .unwrap_err();
    assert!(refused.contains("100000 active runs"), "{refused}");
    // A start posted again with a known id still names its run.
    let again = runs.command(&mut pool, start(7), None, now);
    assert_eq!(again, Ok(Some(WorkflowId::new(7))));
    assert_eq!(runs.active(), MAX_ACTIVE_RUNS);
}

#[test]
fn registrations_beyond_the_limit_and_host_code_are_refused() {
    let (mut runs, mut pool) = runs();
    let now = Instant::from_secs(1);
    for version in 1..=MAX_DEFINITIONS as u32 {
        runs.command(&mut pool, RunCommand::Register(waiting(version)), None, now)
            .unwrap();
    }
    // The same definition again changes nothing, even at the limit.
    assert_eq!(
        runs.command(&mut pool, RunCommand::Register(waiting(1)), None, now),
        Ok(None)
    );
    let more = RunCommand::Register(waiting(MAX_DEFINITIONS as u32 + 1));
    let refused = runs.command(&mut pool, more, None, now).unwrap_err();
    assert!(refused.contains("at most 1024"), "{refused}");

    let (mut runs, mut pool) = self::runs();
    let child = Arc::new(
        WorkflowDef::builder("child", 1)
            .step(StepDef::local("format"))
            .build()
            .unwrap(),
    );
    let nested = WorkflowDef::builder("parent", 1)
        .step(StepDef::sub_workflow("child", child))
        .build()
        .unwrap();
    let refused = runs
        .command(&mut pool, RunCommand::Register(Box::new(nested)), None, now)
        .unwrap_err();
    assert!(
        refused.contains("\"format\" of workflow \"child\""),
        "{refused}"
    );
    let fan_out = WorkflowDef::builder("fan", 1)
        .step(StepDef::agent("each").multi_instance(0))
        .build()
        .unwrap();
    let refused = runs
        .command(
            &mut pool,
            RunCommand::Register(Box::new(fan_out)),
            None,
            now,
        )
        .unwrap_err();
    assert!(refused.contains("multi-instance"), "{refused}");
}

#[test]
fn a_snapshot_whose_schedule_waits_for_a_run_not_held_is_refused() {
    let (mut runs, mut pool) = runs();
    let now = Instant::from_secs(1);
    runs.command(&mut pool, RunCommand::Register(waiting(1)), None, now)
        .unwrap();
    let every_minute = crate::schedule::ScheduleSpec::every(std::time::Duration::from_secs(60))
        .build()
        .unwrap();
    let add = ScheduleCommand::Add {
        id: "minute".into(),
        spec: every_minute,
        start: ScheduledStart {
            workflow: "wait".into(),
            version: None,
            input: None,
        },
    };
    runs.command(&mut pool, RunCommand::Schedule(add), None, now)
        .unwrap();
    let fire = Instant::from_secs(60);
    assert!(runs.due(fire));
    runs.timers(&mut pool, fire);
    let _ = runs.settle(&mut pool, fire);
    assert_eq!(runs.active(), 1, "the fire started a run that waits");
    let snapshot = runs.snapshot();
    let codec = || RunCodec::new(0, |_, _, _| 1);
    assert!(HostedRuns::restore(codec(), snapshot.clone()).is_ok());
    // The same schedules beside an engine that holds no run.
    let mut forged = snapshot.clone();
    forged.engine = WorkflowEngine::<u32>::new().snapshot();
    let refused = HostedRuns::restore(codec(), forged).err().unwrap();
    assert!(refused.contains("waits for the end of run"), "{refused}");
    // A run to start named for a schedule that is not there.
    let mut forged = snapshot;
    let schedules = forged.schedules.as_mut().unwrap();
    schedules.schedules = crate::schedule::Schedules::new(0);
    let refused = HostedRuns::restore(codec(), forged).err().unwrap();
    assert!(refused.contains("other schedules"), "{refused}");
}
