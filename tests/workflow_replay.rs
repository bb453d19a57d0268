//! The replay checker: a run's journal against new versions of its
//! definition, a journal stored by an earlier build, and journals
//! corrupted on the way back.
//!
//! The fixture `tests/fixtures/workflow_journal.json` is a run recorded in
//! `RunJournal` format 1. After a deliberate format change (and a bump of
//! `RunJournal::FORMAT`) rewrite it with
//! `TASKWEAVE_WRITE_FIXTURES=1 cargo test --all-features --test workflow_replay`.
//!
//! Case count: `PROPTEST_CASES` (default 256).

#![cfg(all(feature = "serde", feature = "workflow"))]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use serde_json::Value;
use taskweave::resilience::{ExponentialBackoff, Fixed};
use taskweave::workflow::{
    Produced, ReplayCheck, ReplayError, RunAction, RunInput, RunJournal, RunOutcome, RunRecorder,
    StepDef, StepFailure, StepOutput, WorkflowDef, check_replay,
};
use taskweave::{AttemptToken, Instant, WorkflowId};

/// The order workflow, version `version`, with `fraud` between `charge` and
/// `approve` when asked, its steps declared in reverse when asked, and
/// `charge` retried up to `charge_attempts` times.
fn order(version: u32, fraud: bool, reversed: bool, charge_attempts: u32) -> Arc<WorkflowDef> {
    let mut steps = vec![
        StepDef::agent("reserve")
            .compensable()
            .retry(ExponentialBackoff::default()),
        StepDef::agent("charge")
            .compensable()
            .retry(Fixed::new(Duration::from_millis(200), charge_attempts).unwrap()),
        StepDef::wait("approve", ["approved"]),
        StepDef::agent("ship").multi_instance(0).compensable(),
        StepDef::local("notify"),
    ];
    let mut chain = vec!["reserve", "charge", "approve", "ship", "notify"];
    if fraud {
        steps.push(StepDef::local("fraud"));
        chain.insert(2, "fraud");
    }
    if reversed {
        steps.reverse();
    }
    let mut builder = WorkflowDef::builder("order", version);
    for step in steps {
        builder = builder.step(step);
    }
    for pair in chain.windows(2) {
        builder = builder.edge(pair[0], pair[1]);
    }
    Arc::new(builder.build().unwrap())
}

/// Runs `def` to its end: `reserve` fails once (retried after a jittered
/// delay), `approve` gets its signal, `ship` fans out over three items,
/// and `notify` fails for good, so the run compensates. Returns the
/// journal.
fn record(def: &Arc<WorkflowDef>) -> RunJournal<u32> {
    record_run(def, 42)
}

/// [`record`] for the run of this id.
fn record_run(def: &Arc<WorkflowDef>, id: u64) -> RunJournal<u32> {
    let mut run = RunRecorder::new(Arc::clone(def), WorkflowId::new(id), Some(7), Instant::ZERO);
    let mut now = Instant::ZERO;
    let mut open: BTreeSet<(AttemptToken, bool, String, u32)> = BTreeSet::new();
    for _ in 0..1_000 {
        while let Some(action) = run.poll_action() {
            let key = |step| def.step(step).unwrap().id.clone();
            match action {
                RunAction::Start {
                    step,
                    token,
                    attempt,
                    ..
                } => {
                    open.insert((token, false, key(step), attempt));
                }
                RunAction::Compensate { step, token, .. } => {
                    open.insert((token, true, key(step), 1));
                }
                RunAction::Expand { step } => {
                    now = now.saturating_add(Duration::from_millis(10));
                    let items = RunInput::Expanded {
                        step,
                        items: vec![1, 2, 3],
                    };
                    run.apply(items, now).unwrap();
                }
                RunAction::Cancel { token, .. } => open.retain(|o| o.0 != token),
                RunAction::Finished => return run.journal().clone(),
            }
        }
        now = now.saturating_add(Duration::from_millis(50));
        if let Some(next) = open.pop_first() {
            let (token, compensation, step, attempt) = next;
            let input = match (compensation, step.as_str(), attempt) {
                (true, ..) => RunInput::Compensated {
                    token,
                    result: Ok(()),
                },
                (false, "reserve", 1) => RunInput::Failed {
                    token,
                    failure: StepFailure::retryable("busy"),
                },
                (false, "notify", _) => RunInput::Failed {
                    token,
                    failure: StepFailure::fatal("mail server gone"),
                },
                _ => RunInput::Succeeded {
                    token,
                    output: StepOutput::new(attempt),
                },
            };
            run.apply(input, now).unwrap();
        } else if !run.run().waiting().is_empty() {
            let signal = RunInput::Signal {
                name: "approved".into(),
                payload: None,
            };
            run.apply(signal, now).unwrap();
        } else {
            now = now.max(
                run.run()
                    .poll_timeout()
                    .expect("a run with nothing open waits"),
            );
            run.handle_timeout(now);
        }
    }
    panic!("the run did not finish");
}

#[test]
fn a_run_replays_under_its_own_definition() {
    let def = order(1, false, false, 2);
    let journal = record(&def);
    let (run_outcome, entries) = (journal.entries(), journal.len());
    assert!(entries > 15, "{run_outcome:?}");
    assert!(
        journal
            .entries()
            .iter()
            .any(|e| e.input == Some(RunInput::Tick)),
        "the retry of `reserve` is recorded as a tick"
    );
    assert_eq!(
        check_replay(&journal, &def),
        Ok(ReplayCheck::Compatible { entries })
    );
}

#[test]
fn a_policy_change_that_gives_the_same_actions_is_compatible() {
    // More attempts for `charge`: another hash, so a new run of v2 would
    // draw other jitter for `reserve`'s retry; a replay draws the recorded
    // one, whose tick fires it. Over 32 runs, some would retry later under
    // v2's own draw.
    let v1 = order(1, false, false, 2);
    let v2 = order(2, false, false, 5);
    assert_ne!(v1.content_hash(), v2.content_hash());
    for id in 1..=32 {
        let journal = record_run(&v1, id);
        assert_eq!(
            check_replay(&journal, &v2),
            Ok(ReplayCheck::Compatible {
                entries: journal.len()
            }),
            "run {id}"
        );
    }
}

#[test]
fn steps_are_matched_by_key_not_by_position() {
    // The same graph with its steps declared in reverse: every step id
    // differs, every key matches, the `Expanded` input is mapped.
    let v1 = order(1, false, false, 2);
    let v2 = order(2, false, true, 2);
    assert_ne!(v1.step_id("ship"), v2.step_id("ship"));
    let journal = record(&v1);
    assert!(matches!(
        check_replay(&journal, &v2),
        Ok(ReplayCheck::Compatible { .. })
    ));
}

#[test]
fn an_inserted_step_is_named_where_it_shows() {
    let v1 = order(1, false, false, 2);
    let v2 = order(2, true, false, 2);
    let journal = record(&v1);
    let ReplayCheck::Diverged(at) = check_replay(&journal, &v2).unwrap() else {
        panic!("a step inserted before `approve` must diverge");
    };
    // v1 went on from `charge` to wait for `approve`; v2 starts `fraud`.
    assert_eq!(at.step.as_deref(), Some("fraud"), "{at}");
    let Produced::Action(RunAction::Start { step, .. }) = at.produced else {
        panic!("{at}");
    };
    assert_eq!(v2.step(step).unwrap().id, "fraud");
    assert!(at.recorded.is_none(), "{at}");
    assert!(at.to_string().contains("fraud"), "{at}");
}

#[test]
fn a_removed_step_is_named_where_the_journal_needs_it() {
    let v1 = order(1, true, false, 2);
    let v2 = order(2, false, false, 2);
    let journal = record(&v1);
    let ReplayCheck::Diverged(at) = check_replay(&journal, &v2).unwrap() else {
        panic!("a removed step must diverge");
    };
    // Where v1 started `fraud`, v2 (without it) waits for `approve`, which
    // gives no action: the record holds the start of a step v2 lacks.
    assert_eq!(at.produced, Produced::MissingStep("fraud".into()), "{at}");
    assert_eq!(at.step.as_deref(), Some("fraud"));
}

#[test]
fn a_journal_of_another_workflow_or_format_is_refused() {
    let def = order(1, false, false, 2);
    let journal = record(&def);
    let other = Arc::new(
        WorkflowDef::builder("refund", 1)
            .step(StepDef::local("a"))
            .build()
            .unwrap(),
    );
    assert!(matches!(
        check_replay(&journal, &other),
        Err(ReplayError::OtherWorkflow { .. })
    ));
    let mut value = serde_json::to_value(&journal).unwrap();
    value["format"] = 99.into();
    let future: RunJournal<u32> = serde_json::from_value(value).unwrap();
    let refused = check_replay(&future, &def).unwrap_err();
    assert_eq!(
        refused,
        ReplayError::UnsupportedFormat {
            found: 99,
            supported: RunJournal::<u32>::FORMAT
        }
    );
    assert!(refused.to_string().contains("format 99"), "{refused}");
}

#[test]
fn a_journal_out_of_order_is_malformed_or_diverges() {
    let def = order(1, false, false, 2);
    let mut value = serde_json::to_value(record(&def)).unwrap();
    let entries = value["entries"].as_array_mut().unwrap();
    entries.swap(0, 1);
    let swapped: RunJournal<u32> = serde_json::from_value(value.clone()).unwrap();
    assert_eq!(
        check_replay(&swapped, &def),
        Err(ReplayError::Malformed {
            index: 0,
            what: "the first entry is not the run's start"
        })
    );
    let entries = value["entries"].as_array_mut().unwrap();
    entries.swap(0, 1);
    entries[3]["input"] = Value::Null;
    let restarted: RunJournal<u32> = serde_json::from_value(value).unwrap();
    assert_eq!(
        check_replay(&restarted, &def),
        Err(ReplayError::Malformed {
            index: 3,
            what: "a second start"
        })
    );
}

#[test]
fn a_journal_stored_by_an_earlier_build_replays() {
    let def = order(1, false, false, 2);
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/workflow_journal.json");
    let fresh = serde_json::to_string_pretty(&record(&def)).unwrap() + "\n";
    if std::env::var_os("TASKWEAVE_WRITE_FIXTURES").is_some() {
        std::fs::write(&path, &fresh).unwrap();
    }
    let stored = std::fs::read_to_string(&path).unwrap();
    let journal: RunJournal<u32> = serde_json::from_str(&stored).unwrap_or_else(|e| {
        panic!(
            "{} no longer reads as a RunJournal: {e}. A format change must bump \
             RunJournal::FORMAT and rewrite the fixture (TASKWEAVE_WRITE_FIXTURES=1)",
            path.display()
        )
    });
    assert_eq!(journal.version(), 1);
    assert_eq!(
        check_replay(&journal, &def),
        Ok(ReplayCheck::Compatible {
            entries: journal.len()
        })
    );
    assert_eq!(
        stored, fresh,
        "this build records the run differently from the stored journal"
    );
    let last = &journal.entries()[journal.len() - 1];
    assert_eq!(last.actions.last(), Some(&RunAction::Finished));
}

#[test]
fn the_recorded_run_compensates_in_reverse() {
    // The scenario the fixture holds, read from its journal.
    let def = order(1, false, false, 2);
    let journal = record(&def);
    let compensated: Vec<String> = journal
        .entries()
        .iter()
        .flat_map(|e| &e.actions)
        .filter_map(|a| match a {
            RunAction::Compensate { step, .. } => Some(def.step(*step).unwrap().id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(compensated.first().map(String::as_str), Some("ship"));
    assert_eq!(compensated.last().map(String::as_str), Some("reserve"));
    let (mut run, _) = (
        RunRecorder::new(
            Arc::clone(&def),
            WorkflowId::new(42),
            Some(7),
            Instant::ZERO,
        ),
        (),
    );
    for entry in &journal.entries()[1..] {
        run.apply(entry.input.clone().unwrap(), entry.at).unwrap();
    }
    assert!(matches!(
        run.run().outcome(),
        Some(RunOutcome::Compensated(_))
    ));
}

/// Every number and string in `value`, as JSON pointers.
fn leaves(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                leaves(item, format!("{at}/{i}"), out);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                leaves(item, format!("{at}/{key}"), out);
            }
        }
        Value::Number(_) | Value::String(_) => out.push(at),
        _ => {}
    }
}

/// One corruption of a stored journal.
#[derive(Clone, Debug)]
enum Corruption {
    /// A number or string leaf set to another value.
    Leaf(prop::sample::Index, u64),
    DropEntry(prop::sample::Index),
    DuplicateEntry(prop::sample::Index),
    SwapEntries(prop::sample::Index, prop::sample::Index),
    DropAction(prop::sample::Index),
}

fn corruption() -> impl Strategy<Value = Corruption> {
    prop_oneof![
        4 => (any::<prop::sample::Index>(), prop_oneof![0u64..64, any::<u64>()])
            .prop_map(|(i, v)| Corruption::Leaf(i, v)),
        1 => any::<prop::sample::Index>().prop_map(Corruption::DropEntry),
        1 => any::<prop::sample::Index>().prop_map(Corruption::DuplicateEntry),
        1 => (any::<prop::sample::Index>(), any::<prop::sample::Index>())
            .prop_map(|(a, b)| Corruption::SwapEntries(a, b)),
        1 => any::<prop::sample::Index>().prop_map(Corruption::DropAction),
    ]
}

fn corrupt(value: &mut Value, corruption: &Corruption) {
    let entries = value["entries"].as_array_mut().unwrap();
    let n = entries.len();
    match corruption {
        Corruption::Leaf(i, v) => {
            let mut at = Vec::new();
            leaves(value, String::new(), &mut at);
            let leaf = value.pointer_mut(&at[i.index(at.len())]).unwrap();
            *leaf = match leaf {
                Value::String(_) => Value::String(format!("s{v}")),
                _ => Value::from(*v),
            };
        }
        Corruption::DropEntry(i) => {
            entries.remove(i.index(n));
        }
        Corruption::DuplicateEntry(i) => {
            let entry = entries[i.index(n)].clone();
            entries.insert(i.index(n), entry);
        }
        Corruption::SwapEntries(a, b) => entries.swap(a.index(n), b.index(n)),
        Corruption::DropAction(i) => {
            let entry = &mut entries[i.index(n)];
            if let Some(actions) = entry["actions"].as_array_mut().filter(|a| !a.is_empty()) {
                actions.pop();
            }
        }
    }
}

proptest! {
    /// A corrupted journal that still parses is checked without a panic:
    /// refused as malformed, diverged, or (when the corruption changed
    /// nothing that matters) compatible — never a crash or a hang.
    #[test]
    fn a_corrupted_journal_is_refused_or_diverges_but_never_panics(
        corruptions in proptest::collection::vec(corruption(), 1..4),
    ) {
        let def = order(1, false, false, 2);
        let journal = record(&def);
        let mut value = serde_json::to_value(&journal).unwrap();
        for c in &corruptions {
            corrupt(&mut value, c);
        }
        let Ok(corrupted) = serde_json::from_value::<RunJournal<u32>>(value) else {
            return Ok(());
        };
        let checked = check_replay(&corrupted, &def);
        if corrupted == journal {
            prop_assert_eq!(checked, Ok(ReplayCheck::Compatible { entries: journal.len() }));
        }
    }
}
