//! The stored forms a durable host keeps — a dispatcher snapshot and a
//! journal of inputs — read back from fixtures committed to the repository,
//! so a change that breaks stored state fails here (README,
//! "Compatibility of stored state").
//!
//! The fixtures record a dispatcher with agents, breakers, a bulkhead,
//! tasks queued, running, waiting for a retry and dead-lettered, routing
//! with `RoundRobin`; then a journal of every kind of input after that
//! snapshot, each with the outcome and the actions the recording
//! dispatcher produced. Restoring the snapshot and replaying the journal
//! must reproduce every outcome and action.
//!
//! After a deliberate format change (and a bump of `Snapshot::VERSION` or
//! `Input::FORMAT`), rewrite them with
//! `TASKWEAVE_WRITE_FIXTURES=1 cargo test --all-features --test stored_formats -- --test-threads=1`.

#![cfg(feature = "serde")]

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use taskweave::agent::{AgentProfile, AgentStatus};
use taskweave::resilience::{BreakerConfig, Bulkhead, Fixed, Quota};
use taskweave::routing::RoundRobin;
use taskweave::scheduler::{
    Action, AttemptOutcome, Dispatcher, DispatcherConfig, Input, SchedulerError, Snapshot,
    TaskReport, TaskSpec, TenantQuota,
};
use taskweave::{AgentId, Instant, Priority, TaskRequirements, TenantId};

mod harness;

type Recorded = Dispatcher<String, RoundRobin>;

/// One journal entry as the recording dispatcher saw it.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Entry {
    input: Input<String>,
    /// `ok`, or the error's message.
    outcome: String,
    actions: Vec<Action>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    format: u32,
    entries: Vec<Entry>,
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn config() -> DispatcherConfig {
    DispatcherConfig::builder()
        .retry_policy(Fixed::new(Duration::from_secs(2), 3).unwrap())
        .heartbeats(Duration::from_secs(10), 3)
        .attempt_timeout(Duration::from_secs(60))
        .circuit_breaker(
            BreakerConfig::builder()
                .consecutive_failures(2)
                .build()
                .unwrap(),
        )
        .kind_bulkhead(Bulkhead::new(2).unwrap())
        .tenant_quota(
            TENANT,
            TenantQuota::new()
                .live_tasks(3)
                .cost_rate(Quota::new(10, Duration::from_secs(60)).unwrap()),
        )
        .seed(42)
        .build()
        .unwrap()
}

/// Applies `input`, recording its outcome and the actions that follow.
fn apply(d: &mut Recorded, input: Input<String>) -> Entry {
    let outcome = match d.apply(input.clone()) {
        Ok(_) => "ok".to_string(),
        Err(error) => error.to_string(),
    };
    let actions = harness::drain(d);
    Entry {
        input,
        outcome,
        actions,
    }
}

fn assignments(entries: &[Entry]) -> Vec<TaskReport> {
    entries
        .iter()
        .flat_map(|entry| &entry.actions)
        .filter_map(|action| match *action {
            Action::Assign {
                task, agent, token, ..
            } => Some(TaskReport {
                task,
                agent,
                token,
                outcome: AttemptOutcome::Success,
            }),
            _ => None,
        })
        .collect()
}

/// The tenant of the recording's tenant tasks, with a quota.
const TENANT: TenantId = TenantId::new(7);

fn at(secs: u64) -> Instant {
    Instant::from_secs(secs)
}

fn task(name: &str, priority: Priority, kind: Option<&str>) -> TaskSpec<String> {
    let mut requirements = TaskRequirements::new().require(["text"]);
    if let Some(kind) = kind {
        requirements = requirements.kind(kind);
    }
    TaskSpec::new(name.to_string())
        .priority(priority)
        .requirements(requirements)
}

/// The recording: the dispatcher at the snapshot, and the journal after it.
fn record() -> (Snapshot<String>, Journal) {
    let mut d = Dispatcher::with_strategy(config(), RoundRobin::new());
    let mut before = Vec::new();
    for id in 1..=3 {
        let profile = AgentProfile::builder()
            .capabilities(["text"])
            .capacity(2)
            .label("zone", if id == 3 { "us" } else { "eu" })
            .build()
            .unwrap();
        let input = Input::RegisterAgent {
            agent: AgentId::new(id),
            profile,
            now: at(0),
        };
        before.push(apply(&mut d, input));
    }
    let specs = [
        task("summarize-1", Priority::High, Some("summarize")),
        task("summarize-2", Priority::Normal, Some("summarize")),
        task("summarize-3", Priority::Normal, Some("summarize")),
        task("translate-1", Priority::Critical, Some("translate")),
        task("plain-1", Priority::Low, None).idempotency_key("plain-1"),
        task("plain-2", Priority::Normal, None).ttl(Duration::from_secs(300)),
        // The tenant's own "plain-1": another key than the one above.
        task("tenant-1", Priority::Low, None)
            .tenant(TENANT)
            .idempotency_key("plain-1")
            .cost(4),
        task("tenant-2", Priority::Low, None).tenant(TENANT).cost(4),
    ];
    let input = Input::SubmitBatch {
        specs: specs.to_vec(),
        now: at(1),
    };
    before.push(apply(&mut d, input));
    let running = assignments(&before);
    // One success, one retryable failure, one fatal failure.
    for (report, outcome) in running.iter().zip([
        AttemptOutcome::Success,
        AttemptOutcome::failure("model overloaded"),
        AttemptOutcome::fatal("malformed prompt"),
    ]) {
        let report = TaskReport {
            outcome,
            ..report.clone()
        };
        before.push(apply(&mut d, Input::Report { report, now: at(3) }));
    }
    let snapshot = d.snapshot();

    let mut entries = Vec::new();
    let still_running = &running[3..];
    entries.push(apply(
        &mut d,
        Input::Heartbeat {
            agent: AgentId::new(1),
            now: at(4),
        },
    ));
    entries.push(apply(
        &mut d,
        Input::Submit {
            spec: task("plain-1 again", Priority::Low, None).idempotency_key("plain-1"),
            now: at(4),
        },
    ));
    entries.push(apply(
        &mut d,
        Input::Submit {
            spec: task("late", Priority::Normal, None).deadline(at(2)),
            now: at(4),
        },
    ));
    // The tenant's key again: its own task; more cost: over its rate.
    for spec in [
        task("tenant-1 again", Priority::Low, None)
            .tenant(TENANT)
            .idempotency_key("plain-1"),
        task("tenant-3", Priority::Low, None).tenant(TENANT).cost(4),
    ] {
        entries.push(apply(&mut d, Input::Submit { spec, now: at(4) }));
    }
    // The host could not hear its agents for a while: their silence up
    // to 5 s is excused.
    entries.push(apply(&mut d, Input::ExcuseSilence { now: at(5) }));
    entries.push(apply(&mut d, Input::HandleTimeout { now: at(6) }));
    for report in still_running {
        entries.push(apply(
            &mut d,
            Input::Report {
                report: report.clone(),
                now: at(7),
            },
        ));
    }
    // The same report again: fenced out.
    if let Some(report) = still_running.first() {
        entries.push(apply(
            &mut d,
            Input::Report {
                report: report.clone(),
                now: at(7),
            },
        ));
    }
    let dead = before
        .iter()
        .chain(&entries)
        .flat_map(|entry| &entry.actions)
        .find_map(|action| match action {
            Action::DeadLettered { task, .. } => Some(*task),
            _ => None,
        })
        .expect("the fatal failure dead-lettered its task");
    entries.push(apply(
        &mut d,
        Input::RequeueDeadLetter {
            task: dead,
            now: at(8),
        },
    ));
    entries.push(apply(
        &mut d,
        Input::SetAgentStatus {
            agent: AgentId::new(2),
            status: AgentStatus::Draining,
            now: at(9),
        },
    ));
    entries.push(apply(
        &mut d,
        Input::UnregisterAgent {
            agent: AgentId::new(3),
            now: at(9),
        },
    ));
    let spec = task("cancelled", Priority::Low, None);
    entries.push(apply(&mut d, Input::Submit { spec, now: at(10) }));
    let cancelled = d
        .iter_live_tasks()
        .map(|(id, ..)| id)
        .find(|&id| d.payload(id).is_some_and(|p| p == "cancelled"))
        .expect("the task just submitted is live");
    entries.push(apply(
        &mut d,
        Input::Cancel {
            task: cancelled,
            now: at(10),
        },
    ));
    // Agents 2 and 3 fall silent: agent 2 is lost to missed heartbeats.
    entries.push(apply(
        &mut d,
        Input::Heartbeat {
            agent: AgentId::new(1),
            now: at(30),
        },
    ));
    entries.push(apply(&mut d, Input::HandleTimeout { now: at(40) }));
    let journal = Journal {
        format: Input::<String>::FORMAT,
        entries,
    };
    (snapshot, journal)
}

fn read<T: serde::de::DeserializeOwned>(name: &str) -> T {
    let path = fixture(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|error| {
        panic!(
            "{} no longer reads as stored state: {error}. A format change must bump \
             Snapshot::VERSION or Input::FORMAT and rewrite the fixtures \
             (TASKWEAVE_WRITE_FIXTURES=1)",
            path.display()
        )
    })
}

#[test]
fn a_stored_snapshot_restores_and_a_stored_journal_replays_as_recorded() {
    if std::env::var_os("TASKWEAVE_WRITE_FIXTURES").is_some() {
        let (snapshot, journal) = record();
        let write = |name: &str, text: String| std::fs::write(fixture(name), text + "\n").unwrap();
        write(
            "dispatcher_snapshot.json",
            serde_json::to_string_pretty(&snapshot).unwrap(),
        );
        write(
            "dispatcher_journal.json",
            serde_json::to_string_pretty(&journal).unwrap(),
        );
    }
    restores_and_replays(
        ("dispatcher_snapshot.json", Snapshot::<String>::VERSION),
        ("dispatcher_journal.json", Input::<String>::FORMAT),
    );
}

/// The forms before the current ones (snapshot version 4, journal format
/// 1: a task spec's fields all written out; journal format 2, without
/// `ExcuseSilence`; snapshot version 5, before tenants, and the journal
/// recorded after it; snapshot version 6, tasks and queue entries as
/// objects before rows) restore and replay the same. (Version 7, a queued
/// task's state by name, differs from 8 in no task of this recording:
/// `tests/cluster_forms.rs` and `tests/cluster_hosted_runs.rs` read it
/// back.)
#[test]
fn the_forms_before_restore_and_replay_as_recorded() {
    assert!(Snapshot::<String>::READABLE.contains(&4));
    assert!(Input::<String>::READABLE.contains(&1));
    assert!(Input::<String>::READABLE.contains(&2));
    restores_and_replays(
        ("dispatcher_snapshot_v4.json", 4),
        ("dispatcher_journal_f1.json", 1),
    );
    restores_and_replays(
        ("dispatcher_snapshot_v5.json", 5),
        ("dispatcher_journal_f2.json", 2),
    );
    restores_and_replays(
        ("dispatcher_snapshot_v5.json", 5),
        ("dispatcher_journal_after_v5.json", Input::<String>::FORMAT),
    );
    restores_and_replays(
        ("dispatcher_snapshot_v6.json", 6),
        ("dispatcher_journal.json", Input::<String>::FORMAT),
    );
}

/// Restores the stored snapshot `(file, version)` and replays the stored
/// journal `(file, format)` after it, entry by entry as recorded.
fn restores_and_replays(snapshot: (&str, u32), journal: (&str, u32)) {
    let (name, version) = snapshot;
    let snapshot: Snapshot<String> = read(name);
    assert_eq!(snapshot.version(), version);
    let config = snapshot
        .config()
        .expect("the stored configuration is complete");
    let mut d = Dispatcher::restore(config, RoundRobin::new(), snapshot).unwrap();

    let (name, format) = journal;
    let journal: Journal = read(name);
    assert_eq!(journal.format, format);
    assert!(journal.entries.len() >= 10, "the fixture covers the inputs");
    for (n, recorded) in journal.entries.iter().enumerate() {
        let replayed = apply(&mut d, recorded.input.clone());
        assert_eq!(&replayed, recorded, "journal entry {n} replays differently");
    }
}

#[test]
fn the_recording_covers_every_kind_of_input_and_outcome() {
    let (_, journal) = record();
    let kinds: std::collections::BTreeSet<_> = journal
        .entries
        .iter()
        .map(|entry| {
            format!("{:?}", entry.input)
                .split([' ', '{'])
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    for kind in [
        "Submit",
        "Cancel",
        "Report",
        "UnregisterAgent",
        "SetAgentStatus",
        "Heartbeat",
        "HandleTimeout",
        "ExcuseSilence",
        "RequeueDeadLetter",
    ] {
        assert!(
            kinds.contains(kind),
            "no {kind} input in the journal: {kinds:?}"
        );
    }
    let outcomes: Vec<_> = journal.entries.iter().map(|e| e.outcome.as_str()).collect();
    assert!(
        outcomes
            .iter()
            .any(|o| o.contains("stale") || o.contains("not in flight")),
        "{outcomes:?}"
    );
    assert!(
        outcomes.iter().any(|o| o.contains("deadline")),
        "{outcomes:?}"
    );
    let actions = journal.entries.iter().flat_map(|e| &e.actions);
    assert!(
        actions
            .clone()
            .any(|a| matches!(a, Action::AgentLost { .. }))
    );
    assert!(actions.clone().any(|a| matches!(a, Action::Assign { .. })));
}

#[test]
fn a_snapshot_of_another_format_is_refused_by_version() {
    let mut value: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("dispatcher_snapshot.json")).unwrap(),
    )
    .unwrap();
    value["version"] = 2.into();
    let snapshot: Snapshot<String> = serde_json::from_value(value).unwrap();
    let error = Dispatcher::restore(config(), RoundRobin::new(), snapshot).unwrap_err();
    assert_eq!(
        error,
        SchedulerError::SnapshotVersion {
            found: 2,
            supported: Snapshot::<String>::VERSION
        }
    );
}

/// A workflow checkpoint, stored with its definition, resumes and finishes
/// as the recording run did.
#[cfg(feature = "workflow")]
mod checkpoint {
    use std::sync::Arc;
    use std::time::Duration;

    use serde::{Deserialize, Serialize};
    use taskweave::resilience::Fixed;
    use taskweave::workflow::{
        Checkpoint, RunAction, RunOutcome, StepDef, StepFailure, StepOutput, WorkflowDef,
        WorkflowRun,
    };
    use taskweave::{Instant, WorkflowId};

    use super::{fixture, read};

    #[derive(Debug, Serialize, Deserialize)]
    struct Stored {
        definition: WorkflowDef,
        checkpoint: Checkpoint<u32>,
        /// What the recording run handed out after the checkpoint.
        actions: Vec<RunAction>,
        outcome: RunOutcome,
    }

    fn definition() -> WorkflowDef {
        let retry = Fixed::new(Duration::from_secs(1), 3).unwrap();
        WorkflowDef::builder("ingest", 3)
            .step(StepDef::agent("fetch").retry(retry))
            .step(StepDef::agent("parse").retry(retry))
            .step(StepDef::agent("index"))
            .step(StepDef::local("report"))
            .edge("fetch", "parse")
            .edge("fetch", "index")
            .edge("parse", "report")
            .edge("index", "report")
            .build()
            .unwrap()
    }

    /// Answers every start: the first attempt of `parse` fails and is
    /// retried; the rest succeed. Returns what was handed out.
    fn drive(run: &mut WorkflowRun<u32>, from: u64, steps: usize) -> Vec<RunAction> {
        let mut actions = Vec::new();
        let mut failed_once = false;
        for tick in from..from + 50 {
            let now = Instant::from_secs(tick);
            run.handle_timeout(now);
            while let Some(action) = run.poll_action() {
                actions.push(action.clone());
                if let RunAction::Start { step, token, .. } = action {
                    let name = run.definition().step(step).map(|s| s.id.to_string());
                    if name.as_deref() == Some("parse") && !failed_once {
                        failed_once = true;
                        run.fail(token, StepFailure::retryable("flaky parser"), now)
                            .unwrap();
                    } else {
                        run.succeed(token, StepOutput::new(7), now).unwrap();
                    }
                }
                if actions.len() >= steps {
                    return actions;
                }
            }
            if run.is_finished() {
                break;
            }
        }
        actions
    }

    fn record() -> Stored {
        let definition = definition();
        let def = Arc::new(definition.clone());
        let mut run = WorkflowRun::new(def, WorkflowId::new(11), None, Instant::ZERO);
        drive(&mut run, 0, 2);
        let checkpoint = run.checkpoint();
        let actions = drive(&mut run, 2, usize::MAX);
        let outcome = run.outcome().cloned().expect("the run finishes");
        Stored {
            definition,
            checkpoint,
            actions,
            outcome,
        }
    }

    #[test]
    fn a_stored_checkpoint_resumes_and_finishes_as_recorded() {
        if std::env::var_os("TASKWEAVE_WRITE_FIXTURES").is_some() {
            let text = serde_json::to_string_pretty(&record()).unwrap() + "\n";
            std::fs::write(fixture("workflow_checkpoint.json"), text).unwrap();
        }
        let stored: Stored = read("workflow_checkpoint.json");
        assert_eq!(stored.checkpoint.format(), Checkpoint::<u32>::FORMAT);
        let mut run = WorkflowRun::resume(Arc::new(stored.definition), stored.checkpoint).unwrap();
        assert_eq!(drive(&mut run, 2, usize::MAX), stored.actions);
        assert_eq!(run.outcome(), Some(&stored.outcome));
        assert!(
            stored.actions.len() >= 3,
            "the fixture covers a retry and the rest"
        );
    }
}

/// A workflow engine's snapshot, stored beside its pool's with the
/// definition, restores and goes on as the recording engine did.
#[cfg(feature = "workflow")]
mod engine_snapshot {
    use std::sync::Arc;

    use serde::{Deserialize, Serialize};
    use taskweave::agent::AgentProfile;
    use taskweave::routing::LeastLoaded;
    use taskweave::scheduler::{Dispatcher, DispatcherConfig, Snapshot};
    use taskweave::workflow::{
        EngineAction, EngineSnapshot, StepDef, StepOutput, StepTask, WorkflowDef, WorkflowEngine,
    };
    use taskweave::{AgentId, Instant, WorkflowId};

    use super::{fixture, read};

    type Pool = Dispatcher<StepTask>;

    #[derive(Debug, Serialize, Deserialize)]
    struct Stored {
        definition: WorkflowDef,
        pool: Snapshot<StepTask>,
        engine: EngineSnapshot<u32>,
        /// What the recording engine handed out after the snapshot.
        actions: Vec<EngineAction<u32>>,
    }

    fn definition() -> WorkflowDef {
        WorkflowDef::builder("order", 1)
            .step(StepDef::agent("reserve").compensable())
            .step(StepDef::local("confirm"))
            .edge("reserve", "confirm")
            .build()
            .unwrap()
    }

    /// Carries out every action: agent steps succeed with the task's id,
    /// local ones with 1. Stops after `limit` engine actions.
    fn drive(
        engine: &mut WorkflowEngine<u32>,
        pool: &mut Pool,
        limit: usize,
    ) -> Vec<EngineAction<u32>> {
        let now = Instant::from_secs(1);
        let mut actions = Vec::new();
        while actions.len() < limit {
            if let Some(action) = pool.poll_action() {
                assert!(engine.handle_action(pool, action).is_none());
                continue;
            }
            let Some(action) = engine.poll_action() else {
                break;
            };
            actions.push(action.clone());
            match action {
                EngineAction::Assign {
                    task, agent, token, ..
                } => {
                    let output = Ok(StepOutput::new(task.get() as u32));
                    engine
                        .report(pool, task, agent, token, output, now)
                        .unwrap();
                }
                EngineAction::RunLocal { run, token, .. } => {
                    engine
                        .report_local(pool, run, token, Ok(StepOutput::new(1)), now)
                        .unwrap();
                }
                _ => {}
            }
        }
        actions
    }

    fn record() -> Stored {
        let definition = definition();
        let def = Arc::new(definition.clone());
        let mut pool: Pool = Dispatcher::new(DispatcherConfig::default());
        let profile = AgentProfile::builder().build().unwrap();
        pool.register_agent(AgentId::new(1), profile, Instant::ZERO)
            .unwrap();
        let mut engine = WorkflowEngine::new();
        // One run finished (remembered), one halfway: its agent step
        // assigned, the assignment not yet pulled.
        let _ = engine.start_as(
            &mut pool,
            Arc::clone(&def),
            WorkflowId::new(5),
            None,
            Instant::ZERO,
        );
        drive(&mut engine, &mut pool, usize::MAX);
        let _ = engine.start_as(&mut pool, def, WorkflowId::new(6), Some(2), Instant::ZERO);
        while let Some(action) = pool.poll_action() {
            assert!(engine.handle_action(&mut pool, action).is_none());
        }
        let (pool_state, engine_state) = (pool.snapshot(), engine.snapshot());
        let actions = drive(&mut engine, &mut pool, usize::MAX);
        Stored {
            definition,
            pool: pool_state,
            engine: engine_state,
            actions,
        }
    }

    #[test]
    fn a_stored_engine_snapshot_restores_and_goes_on_as_recorded() {
        if std::env::var_os("TASKWEAVE_WRITE_FIXTURES").is_some() {
            let text = serde_json::to_string_pretty(&record()).unwrap() + "\n";
            std::fs::write(fixture("workflow_engine_snapshot.json"), text).unwrap();
        }
        let stored: Stored = read("workflow_engine_snapshot.json");
        assert_eq!(stored.engine.format(), EngineSnapshot::<u32>::FORMAT);
        let mut pool: Pool = Dispatcher::restore(
            DispatcherConfig::default(),
            Box::new(LeastLoaded::new()) as Box<_>,
            stored.pool,
        )
        .unwrap();
        let mut engine =
            WorkflowEngine::restore(stored.engine, [Arc::new(stored.definition)]).unwrap();
        assert!(engine.finished_run(WorkflowId::new(5)).is_some());
        assert_eq!(drive(&mut engine, &mut pool, usize::MAX), stored.actions);
        assert!(
            matches!(stored.actions.first(), Some(EngineAction::Assign { .. }))
                && matches!(stored.actions.last(), Some(EngineAction::Finished { .. })),
            "the fixture covers a pending assignment and the run's end"
        );
    }
}
