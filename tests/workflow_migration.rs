//! Moving runs between versions of a definition: the static diff, which
//! runs it admits, the migration itself (on a live run, a checkpoint and a
//! journal), and migrations read back corrupted.
//!
//! Case count: `PROPTEST_CASES` (default 256).

#![cfg(all(feature = "serde", feature = "workflow"))]

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use serde_json::Value;
use taskweave::resilience::Fixed;
use taskweave::workflow::{
    Checkpoint, DefinitionDiff, Migration, MigrationError, Produced, ReplayCheck, ReplayError,
    RunAction, RunJournal, RunOutcome, RunRecorder, StepChange, StepDef, StepOutput, StepState,
    WorkflowDef, WorkflowRun, check_replay, check_replay_migrated,
};
use taskweave::{AttemptToken, Instant, Priority, StepId, WorkflowId};

mod corrupt;

fn at(secs: u64) -> Instant {
    Instant::from_secs(secs)
}

/// `reserve -> charge -> ship`, the payment step keyed `charge`.
fn v1() -> Arc<WorkflowDef> {
    Arc::new(
        WorkflowDef::builder("order", 1)
            .step(StepDef::agent("reserve").compensable())
            .step(StepDef::agent("charge"))
            .step(StepDef::agent("ship"))
            .edge("reserve", "charge")
            .edge("charge", "ship")
            .build()
            .unwrap(),
    )
}

/// v1 with `charge` renamed `capture` and retried, and a `fraud` check
/// before `ship`.
fn v2() -> Arc<WorkflowDef> {
    Arc::new(
        WorkflowDef::builder("order", 2)
            .step(StepDef::agent("reserve").compensable())
            .step(
                StepDef::agent("capture")
                    .alias("charge")
                    .retry(Fixed::new(Duration::from_secs(1), 3).unwrap()),
            )
            .step(StepDef::local("fraud"))
            .step(StepDef::agent("ship"))
            .edge("reserve", "capture")
            .edge("capture", "fraud")
            .edge("fraud", "ship")
            .build()
            .unwrap(),
    )
}

/// Starts the run's next step and succeeds it with `output`.
fn finish_next(run: &mut WorkflowRun<u32>, output: u32, now: Instant) -> Option<StepId> {
    loop {
        match run.poll_action()? {
            RunAction::Start { step, token, .. } => {
                run.succeed(token, StepOutput::new(output), now).unwrap();
                return Some(step);
            }
            RunAction::Finished => return None,
            _ => {}
        }
    }
}

/// Every step the run starts, by key, until it finishes.
fn finish(run: &mut WorkflowRun<u32>, from: u64) -> Vec<String> {
    let mut keys = Vec::new();
    let mut now = from;
    while let Some(step) = finish_next(run, 1, at(now)) {
        keys.push(run.definition().step(step).unwrap().id.clone());
        now += 1;
    }
    keys
}

#[test]
fn the_diff_classifies_every_step() {
    let (old, new) = (v1(), v2());
    let diff = WorkflowDef::diff(&old, &new);
    let changes: Vec<_> = diff
        .steps()
        .iter()
        .map(|s| (s.key.as_str(), s.renamed_from.as_deref(), s.change))
        .collect();
    assert_eq!(
        changes,
        [
            ("reserve", None, StepChange::Unchanged),
            ("capture", Some("charge"), StepChange::EdgesChanged),
            ("fraud", None, StepChange::Added),
            ("ship", None, StepChange::EdgesChanged),
        ]
    );
    assert!(!diff.is_policy_only());

    // Policy, kind, removal.
    let v3 = Arc::new(
        WorkflowDef::builder("order", 3)
            .step(
                StepDef::agent("reserve")
                    .priority(Priority::High)
                    .compensable(),
            )
            .step(StepDef::local("charge"))
            .edge("reserve", "charge")
            .build()
            .unwrap(),
    );
    let diff = WorkflowDef::diff(&old, &v3);
    let change = |key: &str| diff.step(key).unwrap().change;
    assert_eq!(change("reserve"), StepChange::PolicyOnly);
    assert_eq!(change("charge"), StepChange::KindChanged);
    assert_eq!(change("ship"), StepChange::Removed);
    assert_eq!(diff.step("ship").unwrap().new, None);

    let same = WorkflowDef::diff(&old, &old);
    assert!(same.is_policy_only());
    assert!(
        same.steps()
            .iter()
            .all(|s| s.change == StepChange::Unchanged)
    );
}

#[test]
fn an_alias_must_not_name_another_step() {
    let refused = WorkflowDef::builder("x", 1)
        .step(StepDef::local("a"))
        .step(StepDef::local("b").alias("a"))
        .build()
        .unwrap_err();
    assert!(refused.to_string().contains("alias `a`"), "{refused}");
    let twice = WorkflowDef::builder("x", 1)
        .step(StepDef::local("a").alias("old"))
        .step(StepDef::local("b").alias("old"))
        .build();
    assert!(twice.is_err());
    // Aliases travel in the data form and change the hash only when set.
    let aliased = WorkflowDef::builder("x", 1)
        .step(StepDef::local("a").alias("old"))
        .build()
        .unwrap();
    let plain = WorkflowDef::builder("x", 1)
        .step(StepDef::local("a"))
        .build()
        .unwrap();
    assert_ne!(aliased.content_hash(), plain.content_hash());
    let back: WorkflowDef =
        serde_json::from_str(&serde_json::to_string(&aliased).unwrap()).unwrap();
    assert_eq!(back.content_hash(), aliased.content_hash());
    assert_eq!(back.step(StepId::new(0)).unwrap().aliases, ["old"]);
}

#[test]
fn the_replay_checker_reads_an_old_key_through_its_alias() {
    let old = v1();
    let mut run = RunRecorder::<u32>::new(Arc::clone(&old), WorkflowId::new(3), None, at(0));
    advance(&mut run, usize::MAX);
    let renamed = Arc::new(
        WorkflowDef::builder("order", 2)
            .step(StepDef::agent("reserve").compensable())
            .step(StepDef::agent("capture").alias("charge"))
            .step(StepDef::agent("ship"))
            .edge("reserve", "capture")
            .edge("capture", "ship")
            .build()
            .unwrap(),
    );
    assert_eq!(renamed.find_step("charge"), renamed.step_id("capture"));
    assert_eq!(
        check_replay(run.journal(), &renamed),
        Ok(ReplayCheck::Compatible {
            entries: run.journal().len()
        })
    );
    // v2 inserts `fraud` after it: named, with both steps' keys.
    let ReplayCheck::Diverged(at) = check_replay(run.journal(), &v2()).unwrap() else {
        panic!("v2 diverges")
    };
    assert_eq!(
        at.to_string(),
        "entry 2: the journal starts `ship` (attempt 1), the definition starts `fraud` (attempt 1)"
    );
}

#[test]
fn a_run_moves_while_it_has_not_reached_what_changed() {
    let (old, new) = (v1(), v2());
    let diff = WorkflowDef::diff(&old, &new);
    let mut run = WorkflowRun::<u32>::new(Arc::clone(&old), WorkflowId::new(1), None, at(0));
    let reserve = finish_next(&mut run, 10, at(1)).unwrap();
    assert_eq!(reserve, old.step_id("reserve").unwrap());
    // `charge` runs: only its successors changed, so the run may move
    // until it ends.
    assert!(diff.admits(&run.checkpoint()));
    let charge = finish_next(&mut run, 10, at(2)).unwrap();
    assert_eq!(charge, old.step_id("charge").unwrap());
    // Now `ship`, whose predecessor changed, has started.
    assert!(!diff.admits(&run.checkpoint()));
    assert_eq!(
        diff.migrate(run.checkpoint()).unwrap_err(),
        MigrationError::StepReached {
            step: "ship".into()
        }
    );

    let fresh = WorkflowRun::<u32>::new(Arc::clone(&old), WorkflowId::new(2), None, at(0));
    assert!(diff.admits(&fresh.checkpoint()));
    let mut moved =
        WorkflowRun::resume(Arc::clone(&new), diff.migrate(fresh.checkpoint()).unwrap()).unwrap();
    assert_eq!(
        finish(&mut moved, 1),
        ["reserve", "capture", "fraud", "ship"]
    );
    assert_eq!(moved.outcome(), Some(&RunOutcome::Succeeded));
}

#[test]
fn a_policy_change_moves_a_run_in_the_middle() {
    let old = v1();
    let retried = Arc::new(
        WorkflowDef::builder("order", 2)
            .step(StepDef::agent("reserve").compensable())
            .step(StepDef::agent("charge").timeout(Duration::from_secs(5)))
            .step(StepDef::agent("ship").priority(Priority::Critical))
            .edge("reserve", "charge")
            .edge("charge", "ship")
            .build()
            .unwrap(),
    );
    let diff = WorkflowDef::diff(&old, &retried);
    assert!(diff.is_policy_only());
    let mut run = WorkflowRun::<u32>::new(Arc::clone(&old), WorkflowId::new(1), None, at(0));
    finish_next(&mut run, 10, at(1));
    // `charge` is started and not yet polled: the queued action moves too.
    run.migrate(Arc::clone(&retried), &diff.migration())
        .unwrap();
    assert_eq!(finish(&mut run, 2), ["charge", "ship"]);
    let keys: Vec<_> = run.timeline().map(|e| e.step.get()).collect();
    assert_eq!(keys, [0, 1, 2]);
}

#[test]
fn a_migration_is_refused_with_its_reason() {
    let (old, new) = (v1(), v2());
    let migration = WorkflowDef::diff(&old, &new).migration::<u32>();
    let mut run = WorkflowRun::<u32>::new(Arc::clone(&old), WorkflowId::new(1), None, at(0));
    let before = run.checkpoint();

    // To another target than planned.
    let refused = run.migrate(Arc::clone(&old), &migration).unwrap_err();
    assert!(matches!(refused, MigrationError::OtherDefinitions { .. }));
    assert!(
        refused.to_string().contains("WorkflowDef::diff"),
        "{refused}"
    );

    // A new output for an attempt that did not succeed.
    let token = match run.poll_action() {
        Some(RunAction::Start { token, .. }) => token,
        other => panic!("{other:?}"),
    };
    let bad = migration.clone().replace_output(token, 5);
    assert_eq!(
        run.migrate(Arc::clone(&new), &bad),
        Err(MigrationError::NoOutput(token))
    );
    let bad = migration.clone().replace_output(AttemptToken::new(99), 5);
    assert!(run.migrate(Arc::clone(&new), &bad).is_err());

    // A finished run stays where it is.
    run.cancel(at(1)).unwrap();
    while run.poll_action().is_some() {}
    assert_eq!(
        run.migrate(Arc::clone(&new), &migration),
        Err(MigrationError::NotRunning("finished"))
    );
    // Nothing changed on refusal.
    assert_eq!(before.version(), run.checkpoint().version());
}

/// `s0 -> s1 -> s2`, local steps, under `version`; without the edge
/// `s0 -> s1` when `linked` is false (then `s1` is an entry step).
fn chain(version: u32, linked: bool) -> Arc<WorkflowDef> {
    let mut builder = WorkflowDef::builder("chain", version)
        .step(StepDef::local("s0"))
        .step(StepDef::local("s1"))
        .step(StepDef::local("s2"))
        .edge("s1", "s2");
    if linked {
        builder = builder.edge("s0", "s1");
    }
    Arc::new(builder.build().unwrap())
}

#[test]
fn a_step_that_becomes_an_entry_step_starts_when_the_run_moves() {
    let (old, new) = (chain(1, true), chain(2, false));
    let diff = WorkflowDef::diff(&old, &new);
    assert_eq!(diff.step("s0").unwrap().change, StepChange::EdgesChanged);
    assert_eq!(diff.step("s1").unwrap().change, StepChange::EdgesChanged);
    // The run is at s0, nothing ended: s1 is not reached, and s0, whose
    // successor goes, has not ended. The rule lets it move, and so does
    // the library.
    let mut recorder = RunRecorder::<u32>::new(Arc::clone(&old), WorkflowId::new(4), None, at(0));
    let Some(RunAction::Start { token: s0, .. }) = recorder.poll_action() else {
        panic!("s0 starts");
    };
    let checkpoint = recorder.run().checkpoint();
    assert!(diff.admits(&checkpoint));
    recorder
        .migrate(Arc::clone(&new), diff.migration())
        .unwrap();
    // s1 started as the run moved, at the run's latest instant, as an
    // entry step of v2 does when a run starts.
    let s1 = new.step_id("s1").unwrap();
    assert_eq!(recorder.run().step_state(s1), Some(StepState::Active));
    let Some(RunAction::Start {
        step, token: t1, ..
    }) = recorder.poll_action()
    else {
        panic!("s1 starts");
    };
    assert_eq!(step, s1);
    // The same move from the checkpoint resumes on v2.
    let moved = WorkflowRun::resume(Arc::clone(&new), diff.migrate(checkpoint).unwrap()).unwrap();
    assert_eq!(moved.step_state(s1), Some(StepState::Active));
    // The run finishes: s0 and s1 in either order, then s2.
    let succeed = |recorder: &mut RunRecorder<u32>, token, now| {
        let output = StepOutput::new(1);
        let input = taskweave::workflow::RunInput::Succeeded { token, output };
        recorder.apply(input, at(now)).unwrap();
    };
    succeed(&mut recorder, t1, 1);
    succeed(&mut recorder, s0, 2);
    advance(&mut recorder, usize::MAX);
    assert_eq!(recorder.run().outcome(), Some(&RunOutcome::Succeeded));
    let keys: Vec<_> = recorder
        .run()
        .timeline()
        .map(|e| new.step(e.step).unwrap().id.clone())
        .collect();
    assert_eq!(keys, ["s0", "s1", "s2"]);
    let journal = recorder.journal();
    assert_eq!(
        check_replay_migrated(journal, &old, std::slice::from_ref(&new)),
        Ok(ReplayCheck::Compatible {
            entries: journal.len()
        })
    );

    // Once s0 ended, its edge to s1 has fired: s1 is reached, and the
    // version without that edge would rewrite the run's past.
    let mut run = WorkflowRun::<u32>::new(Arc::clone(&old), WorkflowId::new(5), None, at(0));
    finish_next(&mut run, 1, at(1));
    assert_eq!(
        diff.migrate(run.checkpoint()).unwrap_err(),
        MigrationError::StepReached { step: "s1".into() }
    );
}

#[test]
fn a_new_entry_step_starts_when_the_run_moves() {
    let old = v1();
    let audited = Arc::new(
        WorkflowDef::builder("order", 4)
            .step(StepDef::agent("reserve").compensable())
            .step(StepDef::agent("charge"))
            .step(StepDef::agent("ship"))
            .step(StepDef::local("audit"))
            .edge("reserve", "charge")
            .edge("charge", "ship")
            .build()
            .unwrap(),
    );
    let diff = WorkflowDef::diff(&old, &audited);
    assert_eq!(diff.step("audit").unwrap().change, StepChange::Added);
    let mut run = WorkflowRun::<u32>::new(Arc::clone(&old), WorkflowId::new(5), None, at(0));
    finish_next(&mut run, 1, at(1));
    run.migrate(Arc::clone(&audited), &diff.migration())
        .unwrap();
    let audit = audited.step_id("audit").unwrap();
    assert_eq!(run.step_state(audit), Some(StepState::Active));
    assert_eq!(finish(&mut run, 2), ["charge", "audit", "ship"]);
    assert_eq!(run.outcome(), Some(&RunOutcome::Succeeded));
}

#[test]
fn a_moved_run_checkpointed_and_resumed_gives_the_same_actions() {
    let (old, new) = (v1(), v2());
    let diff = WorkflowDef::diff(&old, &new);
    let fresh = || WorkflowRun::<u32>::new(Arc::clone(&old), WorkflowId::new(8), None, at(0));

    let mut straight = fresh();
    straight
        .migrate(Arc::clone(&new), &diff.migration())
        .unwrap();
    let mut stored = fresh();
    stored.migrate(Arc::clone(&new), &diff.migration()).unwrap();
    let json = serde_json::to_string(&stored.checkpoint()).unwrap();
    drop(stored);
    let checkpoint: Checkpoint<u32> = serde_json::from_str(&json).unwrap();
    let mut resumed = WorkflowRun::resume(Arc::clone(&new), checkpoint).unwrap();

    let actions = |run: &mut WorkflowRun<u32>| {
        let mut seen = Vec::new();
        let mut now = 1;
        while let Some(action) = run.poll_action() {
            seen.push(action.clone());
            if let RunAction::Start { token, .. } = action {
                run.succeed(token, StepOutput::new(now as u32), at(now))
                    .unwrap();
                now += 1;
            }
        }
        seen
    };
    let expected = actions(&mut straight);
    assert_eq!(actions(&mut resumed), expected);
    assert_eq!(expected.last(), Some(&RunAction::Finished));
    assert_eq!(resumed.output(), straight.output());
}

/// The run of [`a_journaled_migration_replays`]: v1, moved to v2 at once,
/// every step succeeding.
fn migrated_journal(old: &Arc<WorkflowDef>, new: &Arc<WorkflowDef>) -> RunJournal<u32> {
    let diff = WorkflowDef::diff(old, new);
    let mut run = RunRecorder::<u32>::new(Arc::clone(old), WorkflowId::new(4), None, at(0));
    assert_eq!(run.journal().format(), 1);
    run.migrate(Arc::clone(new), diff.migration()).unwrap();
    assert_eq!(run.journal().format(), 2);
    let mut now = 1;
    while let Some(action) = run.poll_action() {
        if let RunAction::Start { token, .. } = action {
            let output = StepOutput::new(now as u32);
            run.apply(
                taskweave::workflow::RunInput::Succeeded { token, output },
                at(now),
            )
            .unwrap();
            now += 1;
        }
    }
    assert_eq!(run.run().outcome(), Some(&RunOutcome::Succeeded));
    run.journal().clone()
}

#[test]
fn a_journaled_migration_replays() {
    let (old, new) = (v1(), v2());
    let journal = migrated_journal(&old, &new);
    let json = serde_json::to_string(&journal).unwrap();
    let journal: RunJournal<u32> = serde_json::from_str(&json).unwrap();

    assert_eq!(
        check_replay_migrated(&journal, &old, std::slice::from_ref(&new)),
        Ok(ReplayCheck::Compatible {
            entries: journal.len()
        })
    );
    assert_eq!(
        check_replay(&journal, &old),
        Err(ReplayError::MigrationTarget {
            index: 1,
            version: 2,
            hash: new.content_hash()
        })
    );
    // Another candidate for the first part cannot carry the migration.
    let other = Arc::new(
        WorkflowDef::builder("order", 9)
            .step(StepDef::agent("reserve").compensable())
            .step(StepDef::agent("charge"))
            .step(StepDef::agent("ship"))
            .edge("reserve", "charge")
            .edge("charge", "ship")
            .build()
            .unwrap(),
    );
    let Ok(ReplayCheck::Diverged(diverged)) =
        check_replay_migrated(&journal, &other, std::slice::from_ref(&new))
    else {
        panic!("a candidate the migration was not planned from diverges")
    };
    assert_eq!(diverged.index, 1);
    assert!(matches!(
        diverged.produced,
        Produced::MigrationRefused(MigrationError::OtherDefinitions { .. })
    ));
}

/// A migrated run's journal stored by an earlier build (format 2) still
/// replays. After a deliberate format change, rewrite it with
/// `TASKWEAVE_WRITE_FIXTURES=1 cargo test --all-features --test workflow_migration`.
#[test]
fn a_migrated_journal_stored_by_an_earlier_build_replays() {
    let (old, new) = (v1(), v2());
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/workflow_journal_migrated.json");
    let fresh = serde_json::to_string_pretty(&migrated_journal(&old, &new)).unwrap() + "\n";
    if std::env::var_os("TASKWEAVE_WRITE_FIXTURES").is_some() {
        std::fs::write(&path, &fresh).unwrap();
    }
    let stored = std::fs::read_to_string(&path).unwrap();
    let journal: RunJournal<u32> = serde_json::from_str(&stored).unwrap_or_else(|e| {
        panic!(
            "{} no longer reads as a RunJournal: {e}. A format change must bump \
             RunJournal::FORMAT or Migration::FORMAT and rewrite the fixture \
             (TASKWEAVE_WRITE_FIXTURES=1)",
            path.display()
        )
    });
    assert_eq!(journal.format(), 2);
    assert_eq!(
        check_replay_migrated(&journal, &old, std::slice::from_ref(&new)),
        Ok(ReplayCheck::Compatible {
            entries: journal.len()
        })
    );
    assert_eq!(stored, fresh, "this build records the run differently");
}

// ---- properties ------------------------------------------------------

/// Corrupts one leaf of `value`: a `null` becomes a small number, other
/// leaves as [`corrupt::corrupt_leaf`] does.
fn corrupt_leaf(value: &mut Value, pick: prop::sample::Index, how: u8, noise: u64) {
    let leaves = corrupt::paths_where(value, |v| !v.is_array() && !v.is_object());
    if leaves.is_empty() {
        return;
    }
    let leaf = corrupt::at_path(value, &leaves[pick.index(leaves.len())]);
    *leaf = match &*leaf {
        Value::Null => Value::from(noise % 16),
        other => corrupt::corrupt_leaf(other, how, noise),
    };
}

/// A random DAG: each step's predecessors among the earlier steps.
fn dag() -> impl Strategy<Value = Vec<Vec<usize>>> {
    (2usize..8).prop_flat_map(|n| {
        (0..n)
            .map(|i| proptest::sample::subsequence((0..i).collect::<Vec<_>>(), 0..=i.min(2)))
            .collect::<Vec<_>>()
    })
}

/// One edit of a definition, applied to step `at % n`.
#[derive(Clone, Debug)]
enum Edit {
    /// A new step after it.
    Append,
    /// A new step between it and its successors.
    Insert,
    /// Removed with its edges (refused by the builder if that strands a
    /// step; then the edit is a no-op).
    Remove,
    /// A new key, the old one as an alias.
    Rename,
    /// Another priority and retry policy.
    Policy,
    /// Compensable now.
    Kind,
    /// Without the edge from its first predecessor (an entry step, when
    /// that was its only one).
    Unlink,
}

fn edits() -> impl Strategy<Value = Vec<(Edit, usize)>> {
    let edit = prop_oneof![
        Just(Edit::Append),
        Just(Edit::Insert),
        Just(Edit::Remove),
        Just(Edit::Rename),
        Just(Edit::Policy),
        Just(Edit::Kind),
        Just(Edit::Unlink),
    ];
    proptest::collection::vec((edit, 0usize..8), 1..3)
}

/// A step as the builder takes it: key, predecessors by key, options.
#[derive(Clone, Debug)]
struct Plan {
    key: String,
    preds: Vec<String>,
    alias: Option<String>,
    high: bool,
    compensable: bool,
}

fn plans(preds: &[Vec<usize>]) -> Vec<Plan> {
    preds
        .iter()
        .enumerate()
        .map(|(i, p)| Plan {
            key: format!("s{i}"),
            preds: p.iter().map(|j| format!("s{j}")).collect(),
            alias: None,
            high: false,
            compensable: false,
        })
        .collect()
}

fn edit(mut plans: Vec<Plan>, edits: &[(Edit, usize)]) -> Vec<Plan> {
    for (n, (edit, at)) in edits.iter().enumerate() {
        let i = at % plans.len();
        let key = plans[i].key.clone();
        let added = |preds| Plan {
            key: format!("new{n}"),
            preds,
            alias: None,
            high: false,
            compensable: false,
        };
        match edit {
            Edit::Append => plans.push(added(vec![key])),
            Edit::Insert => {
                for p in &mut plans {
                    for pred in &mut p.preds {
                        if *pred == key {
                            *pred = format!("new{n}");
                        }
                    }
                }
                plans.insert(i + 1, added(vec![key]));
            }
            Edit::Remove if plans.len() > 1 => {
                plans.remove(i);
                for p in &mut plans {
                    p.preds.retain(|pred| *pred != key);
                }
            }
            Edit::Remove => {}
            Edit::Rename if plans[i].alias.is_none() => {
                let renamed = format!("{key}r{n}");
                for p in &mut plans {
                    for pred in &mut p.preds {
                        if *pred == key {
                            pred.clone_from(&renamed);
                        }
                    }
                }
                plans[i].alias = Some(key);
                plans[i].key = renamed;
            }
            Edit::Rename => {}
            Edit::Policy => plans[i].high = !plans[i].high,
            Edit::Kind => plans[i].compensable = !plans[i].compensable,
            Edit::Unlink if !plans[i].preds.is_empty() => {
                plans[i].preds.remove(0);
            }
            Edit::Unlink => {}
        }
    }
    plans
}

fn build(plans: &[Plan], version: u32) -> Option<Arc<WorkflowDef>> {
    let mut builder = WorkflowDef::builder("random", version);
    for plan in plans {
        let mut step = StepDef::local(plan.key.as_str());
        if let Some(alias) = &plan.alias {
            step = step.alias(alias.as_str());
        }
        if plan.high {
            step = step
                .priority(Priority::High)
                .retry(Fixed::new(Duration::from_millis(5), 2).unwrap());
        }
        if plan.compensable {
            step = step.compensable();
        }
        builder = builder.step(step);
        for pred in &plan.preds {
            builder = builder.edge(pred.as_str(), plan.key.as_str());
        }
    }
    builder.build().ok().map(Arc::new)
}

/// Runs `run` for `steps` completions, the outputs counting up.
fn advance(run: &mut RunRecorder<u32>, steps: usize) {
    for n in 0..steps {
        let Some(RunAction::Start { token, .. }) = next_start(run) else {
            return;
        };
        let output = StepOutput::new(n as u32);
        let input = taskweave::workflow::RunInput::Succeeded { token, output };
        run.apply(input, at(n as u64 + 1)).unwrap();
    }
}

/// README's rule: a running run may move as long as it has not reached
/// a step that was removed or whose kind or incoming edges changed, nor
/// ended one whose outgoing edges changed. A step is reached once it has
/// left `Pending` or one of its predecessors has ended.
fn rule_admits(diff: &DefinitionDiff, run: &WorkflowRun<u32>) -> bool {
    if run.is_finished() || run.is_compensating() {
        return false;
    }
    let (old, new) = (diff.earlier(), diff.later());
    let state = |step| run.step_state(step).unwrap();
    let ended = |step| state(step).is_terminal();
    let reached =
        |step| state(step) != StepState::Pending || old.predecessors(step).any(|(p, _)| ended(p));
    let image = |step: StepId| diff.steps().iter().find(|s| s.old == Some(step))?.new;
    // A step's edges as the later version names them.
    let edges = |steps: Vec<(StepId, Option<&str>)>| -> Vec<_> {
        steps
            .into_iter()
            .map(|(s, label)| (image(s), label.map(str::to_owned)))
            .collect()
    };
    let same = |steps: Vec<(StepId, Option<&str>)>| -> Vec<_> {
        steps
            .into_iter()
            .map(|(s, label)| (Some(s), label.map(str::to_owned)))
            .collect()
    };
    diff.steps().iter().all(|step| {
        let Some(was) = step.old else {
            return true; // Added: its predecessors' outgoing edges changed.
        };
        let Some(now) = step.new else {
            return !reached(was); // Removed.
        };
        if step.change == StepChange::KindChanged {
            return !reached(was);
        }
        let incoming =
            edges(old.predecessors(was).collect()) != same(new.predecessors(now).collect());
        let outgoing = edges(old.successors(was).collect()) != same(new.successors(now).collect());
        !(incoming && reached(was) || outgoing && ended(was))
    })
}

fn next_start(run: &mut RunRecorder<u32>) -> Option<RunAction> {
    loop {
        match run.poll_action()? {
            start @ RunAction::Start { .. } => return Some(start),
            RunAction::Finished => return None,
            _ => {}
        }
    }
}

proptest! {
    /// When the diff admits a run, moving it and finishing gives a history
    /// whose prefix is the old run's, step for step, and the journal of
    /// the whole replays; when it does not, the migration is refused with
    /// a typed error and the run is unchanged.
    #[test]
    fn an_admitted_run_keeps_its_past_and_a_refused_one_is_untouched(
        preds in dag(),
        edits in edits(),
        progress in any::<usize>(),
        id in any::<u64>(),
    ) {
        let old_plans = plans(&preds);
        let old = build(&old_plans, 1).expect("random DAGs are valid");
        let Some(new) = build(&edit(old_plans, &edits), 2) else {
            return Ok(());
        };
        let diff = WorkflowDef::diff(&old, &new);
        let mut run = RunRecorder::<u32>::new(Arc::clone(&old), WorkflowId::new(id), None, at(0));
        advance(&mut run, progress % (old.len() + 1));
        let checkpoint = run.run().checkpoint();
        let admits = diff.admits(&checkpoint);
        // README's rule and the library agree.
        prop_assert_eq!(rule_admits(&diff, run.run()), admits);
        let past: Vec<_> = run.run().timeline().collect();
        match run.migrate(Arc::clone(&new), diff.migration()) {
            Ok(()) => {
                prop_assert!(admits);
                // The same move from the checkpoint: the entry steps it
                // started are those the recorder journaled with it.
                let moved = diff.migrate(checkpoint).unwrap();
                let mut moved = WorkflowRun::resume(Arc::clone(&new), moved).unwrap();
                let started: Vec<_> = std::iter::from_fn(|| moved.poll_action()).collect();
                prop_assert_eq!(&started, &run.journal().entries().last().unwrap().actions);
                prop_assert_eq!(&moved.checkpoint(), &run.run().checkpoint());
                advance(&mut run, usize::MAX);
                prop_assert_eq!(run.run().outcome(), Some(&RunOutcome::Succeeded));
                let history: Vec<_> = run.run().timeline().collect();
                prop_assert!(history.len() >= past.len());
                for (before, after) in past.iter().zip(&history) {
                    let key = |def: &WorkflowDef, step| def.step(step).unwrap().id.clone();
                    let renamed = diff.steps().iter().find(|s| s.new == Some(after.step)).unwrap();
                    prop_assert_eq!(renamed.old, Some(before.step));
                    prop_assert_eq!(
                        renamed.renamed_from.clone().unwrap_or_else(|| key(&new, after.step)),
                        key(&old, before.step)
                    );
                    prop_assert_eq!((before.token, before.start), (after.token, after.start));
                    if before.end.is_some() {
                        prop_assert_eq!((before.outcome, before.end), (after.outcome, after.end));
                    }
                }
                let journal = run.journal();
                prop_assert_eq!(
                    check_replay_migrated(journal, &old, std::slice::from_ref(&new)),
                    Ok(ReplayCheck::Compatible { entries: journal.len() })
                );
            }
            Err(refused) => {
                prop_assert!(!admits);
                prop_assert!(
                    matches!(
                        refused,
                        MigrationError::StepReached { .. }
                            | MigrationError::Unservable(_)
                            | MigrationError::NotRunning(_)
                    ),
                    "{}", refused
                );
                prop_assert_eq!(diff.migrate(checkpoint.clone()).unwrap_err(), refused);
                prop_assert_eq!(run.run().checkpoint(), checkpoint);
            }
        }
    }

    /// A migration read back corrupted is refused or moves the run to a
    /// state the new version validates; it never panics.
    #[test]
    fn a_corrupted_migration_is_refused_or_valid(
        preds in dag(),
        edits in edits(),
        progress in 0usize..4,
        corruptions in proptest::collection::vec(
            (any::<prop::sample::Index>(), any::<u8>(), prop_oneof![0u64..16, any::<u64>()]),
            1..4,
        ),
    ) {
        let old_plans = plans(&preds);
        let old = build(&old_plans, 1).expect("random DAGs are valid");
        let Some(new) = build(&edit(old_plans, &edits), 2) else {
            return Ok(());
        };
        let mut run = RunRecorder::<u32>::new(Arc::clone(&old), WorkflowId::new(1), None, at(0));
        advance(&mut run, progress);
        let mut migration = WorkflowDef::diff(&old, &new).migration::<u32>();
        if let Some(done) = run.run().timeline().next() {
            migration = migration.replace_output(done.token, 77);
        }
        let mut value: Value = serde_json::to_value(&migration).unwrap();
        for &(pick, how, noise) in &corruptions {
            corrupt_leaf(&mut value, pick, how, noise);
        }
        let Ok(read) = serde_json::from_value::<Migration<u32>>(value) else {
            return Ok(());
        };
        let (mut live, _) = run.into_parts();
        let before = live.checkpoint();
        match live.migrate(Arc::clone(&new), &read) {
            Ok(()) => {
                // What it produced resumes as a checkpoint of the new version.
                prop_assert!(WorkflowRun::resume(Arc::clone(&new), live.checkpoint()).is_ok());
            }
            Err(_) => prop_assert_eq!(live.checkpoint(), before),
        }
    }

    /// A migrated run's journal read back corrupted is checked without a
    /// panic; unchanged, it replays.
    #[test]
    fn a_corrupted_migrated_journal_is_refused_or_checked(
        corruptions in proptest::collection::vec(
            (any::<prop::sample::Index>(), any::<u8>(), prop_oneof![0u64..16, any::<u64>()]),
            1..4,
        ),
    ) {
        let (old, new) = (v1(), v2());
        let journal = migrated_journal(&old, &new);
        let mut value = serde_json::to_value(&journal).unwrap();
        for &(pick, how, noise) in &corruptions {
            corrupt_leaf(&mut value, pick, how, noise);
        }
        let Ok(read) = serde_json::from_value::<RunJournal<u32>>(value) else {
            return Ok(());
        };
        let checked = check_replay_migrated(&read, &old, std::slice::from_ref(&new));
        if read == journal {
            prop_assert_eq!(checked, Ok(ReplayCheck::Compatible { entries: journal.len() }));
        }
    }
}
