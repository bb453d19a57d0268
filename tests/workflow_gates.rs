//! Version gates: one definition serving the runs of several versions.
//! A gated definition seen at a version behaves exactly as the definition
//! with the absent parts left out; a v1 run moves onto a gated v2 and
//! replays against it; gates survive the data form, checkpoints and
//! diagrams, and corrupted ones are refused.
//!
//! Case count: `PROPTEST_CASES` (default 256).

#![cfg(all(feature = "serde", feature = "workflow"))]

use std::sync::Arc;

use proptest::prelude::*;
use serde_json::Value;
use taskweave::workflow::{
    DefinitionError, Gate, Join, ReplayCheck, RunAction, RunError, RunInput, RunRecorder,
    StepChange, StepDef, StepFailure, StepOutput, WorkflowDef, WorkflowRun, check_replay,
    mermaid_flowchart,
};
use taskweave::{Instant, WorkflowId};

mod corrupt;

/// `reserve -> ship`.
fn v1() -> Arc<WorkflowDef> {
    Arc::new(
        WorkflowDef::builder("order", 1)
            .step(StepDef::agent("reserve"))
            .step(StepDef::agent("ship"))
            .edge("reserve", "ship")
            .build()
            .unwrap(),
    )
}

/// v2 checks fraud between reserve and ship, and keeps v1's direct edge
/// for the runs that started under v1.
fn v2() -> Arc<WorkflowDef> {
    Arc::new(
        WorkflowDef::builder("order", 2)
            .step(StepDef::agent("reserve"))
            .step(StepDef::agent("fraud").since(2))
            .step(StepDef::agent("ship"))
            .edge("reserve", "fraud")
            .edge("fraud", "ship")
            .gated_edge("reserve", "ship", Gate::until(2))
            .build()
            .unwrap(),
    )
}

/// Carries out one action: a started step succeeds with its key's
/// length, except `fail`, which fails for good. Returns what the trace
/// records of it (a started step's key, whether the run took its result;
/// other actions by name and step key), or `None` once the run finished.
fn act(
    run: &mut WorkflowRun<u32>,
    action: RunAction,
    fail: Option<&str>,
    now: u64,
) -> Option<String> {
    let key = |step| run.definition().step(step).unwrap().id.clone();
    let at = Instant::from_secs(now);
    Some(match action {
        RunAction::Start { step, token, .. } => {
            let key = key(step);
            let taken = if Some(key.as_str()) == fail {
                run.fail(token, StepFailure::fatal("no"), at)
            } else {
                run.succeed(token, StepOutput::new(key.len() as u32), at)
            };
            format!("{key}{}", if taken.is_ok() { "" } else { " refused" })
        }
        RunAction::Cancel { step, .. } => format!("cancel {}", key(step)),
        RunAction::Finished => return None,
        other => format!("{other:?}")
            .split([' ', '{', '('])
            .next()
            .unwrap_or_default()
            .to_string(),
    })
}

/// v2 written without gates: v1's runs would have to take `fraud`.
fn ungated_v2() -> Arc<WorkflowDef> {
    Arc::new(
        WorkflowDef::builder("order", 2)
            .step(StepDef::agent("reserve"))
            .step(StepDef::agent("fraud"))
            .step(StepDef::agent("ship"))
            .chain(["reserve", "fraud", "ship"])
            .build()
            .unwrap(),
    )
}

/// Drives a run to its end with [`act`]. The trace: each action, then how
/// the run ended and every present step's state.
fn drive(run: &mut WorkflowRun<u32>, fail: Option<&str>, mut now: u64) -> Vec<String> {
    let mut trace = Vec::new();
    while let Some(action) = run.poll_action() {
        now += 1;
        match act(run, action, fail, now) {
            Some(entry) => trace.push(entry),
            None => break,
        }
    }
    let outcome = run.outcome().map(|o| format!("{o:?}"));
    trace.push(
        outcome
            .map(|o| o.split('(').next().unwrap_or_default().to_string())
            .unwrap_or_else(|| "unfinished".into()),
    );
    let def = Arc::clone(run.definition());
    let mut states: Vec<String> = def
        .steps()
        .filter(|&(id, _)| def.is_present(id))
        .map(|(id, s)| format!("{}={:?}", s.id, run.step_state(id).unwrap()))
        .collect();
    states.sort();
    trace.extend(states);
    trace
}

fn start(def: WorkflowDef) -> WorkflowRun<u32> {
    WorkflowRun::new(Arc::new(def), WorkflowId::new(7), None, Instant::ZERO)
}

#[test]
fn a_gated_definition_serves_its_new_runs_and_its_old_ones() {
    let def = v2();
    assert_eq!(def.gated_versions(), [0, 2]);
    let mut new_run = start((*def).clone());
    assert_eq!(
        drive(&mut new_run, None, 0)[..3],
        ["reserve", "fraud", "ship"]
    );
    let mut old_run = start(def.at_version(1).unwrap());
    let trace = drive(&mut old_run, None, 0);
    assert_eq!(trace[..3], ["reserve", "ship", "Succeeded"]);
    let fraud = def.step_id("fraud").unwrap();
    assert_eq!(
        old_run.step_state(fraud),
        Some(taskweave::workflow::StepState::Skipped)
    );
    assert_eq!(
        def.at_version(3).unwrap_err(),
        DefinitionError::LaterVersion {
            version: 3,
            latest: 2
        }
    );
}

#[test]
fn a_v1_run_moves_onto_the_gated_v2_and_keeps_its_origin() {
    let (old, new) = (v1(), v2());
    let diff = WorkflowDef::diff(&old, &new);
    assert_eq!(diff.step("fraud").unwrap().change, StepChange::Absent);
    assert_eq!(diff.step("ship").unwrap().change, StepChange::Unchanged);
    assert!(diff.is_policy_only());

    // Even after `reserve` completed, the run may move: for it, v2 is v1.
    let mut run =
        WorkflowRun::<u32>::new(Arc::clone(&old), WorkflowId::new(1), None, Instant::ZERO);
    let Some(RunAction::Start { token, .. }) = run.poll_action() else {
        unreachable!()
    };
    run.succeed(token, StepOutput::new(1), Instant::from_secs(1))
        .unwrap();
    let moved = diff.migrate(run.checkpoint()).unwrap();
    assert_eq!((moved.version(), moved.origin()), (2, 1));
    let json = serde_json::to_string(&moved).unwrap();
    assert!(json.contains("\"origin\":1"), "{json}");
    let mut moved =
        WorkflowRun::resume(Arc::clone(&new), serde_json::from_str(&json).unwrap()).unwrap();
    assert_eq!(moved.definition().origin(), 1);
    assert_eq!(drive(&mut moved, None, 1)[..2], ["ship", "Succeeded"]);

    // Without the gates, v2 would have rewired `ship` under the run.
    let plain = ungated_v2();
    assert!(!WorkflowDef::diff(&old, &plain).admits(&run.checkpoint()));
}

#[test]
fn a_v1_journal_replays_against_the_gated_v2() {
    let mut recorder = RunRecorder::<u32>::new(v1(), WorkflowId::new(3), None, Instant::ZERO);
    let mut now = 0;
    while let Some(action) = recorder.poll_action() {
        now += 1;
        match action {
            RunAction::Start { token, .. } => {
                let output = StepOutput::new(1);
                let done = RunInput::Succeeded { token, output };
                recorder.apply(done, Instant::from_secs(now)).unwrap();
            }
            _ => break,
        }
    }
    let journal = recorder.journal();
    assert!(matches!(
        check_replay(journal, &v2()),
        Ok(ReplayCheck::Compatible { .. })
    ));
    let ungated = ungated_v2();
    assert!(matches!(
        check_replay(journal, &ungated),
        Ok(ReplayCheck::Diverged(_))
    ));
}

#[test]
fn gates_survive_the_data_form_and_show_in_diagrams() {
    let def = v2();
    let json = serde_json::to_value(&*def).unwrap();
    let tasks = json["tasks"].as_array().unwrap();
    assert_eq!(tasks[1]["since"], 2);
    assert_eq!(tasks[2]["depends_on"][1]["until"], 2);
    let back: WorkflowDef = serde_json::from_value(json).unwrap();
    assert_eq!(back.content_hash(), def.content_hash());
    assert_eq!(
        serde_json::to_value(&back).unwrap(),
        serde_json::to_value(&*def).unwrap()
    );
    // An ungated definition's hash does not depend on the gate fields.
    assert_ne!(def.content_hash(), {
        let mut json = serde_json::to_value(&*def).unwrap();
        json["tasks"][1].as_object_mut().unwrap().remove("since");
        serde_json::from_value::<WorkflowDef>(json)
            .map(|d| d.content_hash())
            .unwrap_or(0)
    });
    let chart = mermaid_flowchart(&def);
    assert!(chart.contains("since v2"), "{chart}");
    assert!(chart.contains("before v2"), "{chart}");
}

#[test]
fn gates_that_no_run_could_see_are_refused() {
    let build = |gate: Gate| {
        WorkflowDef::builder("g", 3)
            .step(StepDef::local("a"))
            .step(StepDef::local("b"))
            .gated_edge("a", "b", gate)
            .build()
    };
    for gate in [Gate::between(2, 2), Gate::until(0), Gate::since(4)] {
        assert!(
            matches!(build(gate), Err(DefinitionError::BadGate { .. })),
            "{gate:?}"
        );
    }
    // Before version 2, `b` has no input left: it is an entry then, and
    // the definition is valid. A declared output gated out is not.
    assert!(build(Gate::since(2)).is_ok());
    let err = WorkflowDef::builder("g", 3)
        .step(StepDef::local("a"))
        .step(StepDef::local("b").since(2))
        .edge("a", "b")
        .output("b")
        .build()
        .unwrap_err();
    assert!(
        matches!(err, DefinitionError::AtVersion { version: 0, .. }),
        "{err}"
    );
    // A join that needs two inputs, where version 1 gives it one.
    let err = WorkflowDef::builder("g", 3)
        .step(StepDef::local("a"))
        .step(StepDef::local("b"))
        .step(StepDef::local("c").join(Join::Merge))
        .edge("a", "c")
        .gated_edge("b", "c", Gate::since(2))
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "for the runs of version 0: {}",
            WorkflowDef::builder("g", 3)
                .step(StepDef::local("a"))
                .step(StepDef::local("c").join(Join::Merge))
                .edge("a", "c")
                .build()
                .unwrap_err()
        )
    );
}

#[test]
fn a_checkpoint_whose_origin_was_changed_is_refused() {
    let def = v2();
    let mut run = start(def.at_version(1).unwrap());
    let Some(RunAction::Start { token, .. }) = run.poll_action() else {
        unreachable!()
    };
    run.succeed(token, StepOutput::new(1), Instant::from_secs(1))
        .unwrap();
    let mut json = serde_json::to_value(run.checkpoint()).unwrap();
    // An absent step (`fraud`) with edge counts (here ones that would add
    // up to zero in wrapping arithmetic) is refused, not read as untouched.
    let fraud = def.step_id("fraud").unwrap().get() as usize;
    let mut wrapped = json.clone();
    wrapped["state"]["steps"][fraud]["fired"] = Value::from(u32::MAX);
    wrapped["state"]["steps"][fraud]["skipped"] = Value::from(1);
    assert!(matches!(
        WorkflowRun::<u32>::resume(Arc::clone(&def), serde_json::from_value(wrapped).unwrap()),
        Err(RunError::InvalidCheckpoint { .. })
    ));
    json["origin"] = Value::from(9);
    let later = serde_json::from_value(json.clone()).unwrap();
    assert!(matches!(
        WorkflowRun::<u32>::resume(Arc::clone(&def), later),
        Err(RunError::InvalidCheckpoint { ref field, .. }) if field == "origin"
    ));
    // As a v2 run, `reserve` completed but `fraud` never started: the
    // state names what disagrees.
    json.as_object_mut().unwrap().remove("origin");
    let as_v2 = serde_json::from_value(json).unwrap();
    assert!(matches!(
        WorkflowRun::<u32>::resume(def, as_v2),
        Err(RunError::InvalidCheckpoint { .. })
    ));
}

// ---- properties ------------------------------------------------------

/// The version the random definitions are built at.
const VERSION: u32 = 3;

fn gate() -> impl Strategy<Value = Gate> {
    prop_oneof![
        4 => Just(Gate::ALWAYS),
        1 => (1..=VERSION).prop_map(Gate::since),
        1 => (1..=VERSION + 1).prop_map(Gate::until),
        1 => (0..VERSION, 1..=VERSION + 1)
            .prop_filter_map("empty", |(a, b)| (a < b).then(|| Gate::between(a, b))),
    ]
}

/// A random gated DAG: per step its gate and whether it asks to wait for
/// its first input only; per edge (earlier, later) its gate.
#[derive(Clone, Debug)]
struct Gated {
    steps: Vec<(Gate, bool)>,
    edges: Vec<(usize, usize, Gate)>,
    fail: Option<usize>,
}

fn gated() -> impl Strategy<Value = Gated> {
    (2usize..8).prop_flat_map(|n| {
        let pairs: Vec<(usize, usize)> = (0..n).flat_map(|j| (0..j).map(move |i| (i, j))).collect();
        (
            prop::collection::vec((gate(), prop::bool::weighted(0.4)), n),
            prop::sample::subsequence(pairs.clone(), 0..=pairs.len().min(10)),
            prop::collection::vec(gate(), 10),
            prop::option::of(0..n),
        )
            .prop_map(|(steps, pairs, gates, fail)| Gated {
                steps,
                edges: pairs
                    .into_iter()
                    .zip(gates)
                    .map(|((i, j), g)| (i, j, g))
                    .collect(),
                fail,
            })
    })
}

fn key(i: usize) -> String {
    format!("s{i}")
}

fn step(i: usize, first: bool) -> StepDef {
    let step = StepDef::local(key(i));
    if first {
        step.join(Join::first())
    } else {
        step
    }
}

impl Gated {
    /// The definition with its gates.
    fn build(&self) -> Result<WorkflowDef, DefinitionError> {
        let mut b = WorkflowDef::builder("gated", VERSION);
        for (i, &(gate, _)) in self.steps.iter().enumerate() {
            let mut step = step(i, self.first(i));
            step.gate = gate;
            b = b.step(step);
        }
        for &(i, j, gate) in &self.edges {
            b = b.gated_edge(key(i), key(j), gate);
        }
        b.build()
    }

    /// The definition as written for `version` alone (and numbered so):
    /// absent parts left out, no gates.
    fn stripped(&self, version: u32) -> Result<WorkflowDef, DefinitionError> {
        let present = |i: usize| self.steps[i].0.admits(version);
        let mut b = WorkflowDef::builder("gated", version);
        for i in 0..self.steps.len() {
            if present(i) {
                b = b.step(step(i, self.first(i)));
            }
        }
        for &(i, j, gate) in &self.edges {
            if gate.admits(version) && present(i) && present(j) {
                b = b.edge(key(i), key(j));
            }
        }
        b.build()
    }

    /// Whether step `i` waits for its first input only: asked for, and
    /// with two inputs or more when nothing is gated.
    fn first(&self, i: usize) -> bool {
        self.steps[i].1 && self.edges.iter().filter(|e| e.1 == i).count() >= 2
    }

    fn fail(&self) -> Option<String> {
        self.fail.map(key)
    }
}

proptest! {
    /// A gated definition seen at a version is the definition written for
    /// that version alone: it builds exactly when each stretch's stripped
    /// definition does, and a run of it takes the same steps, ends the
    /// same way and leaves every step in the same state.
    #[test]
    fn a_gated_definition_at_a_version_is_the_stripped_one(case in gated()) {
        let built = case.build();
        if let Err(DefinitionError::AtVersion { version, .. }) = &built {
            prop_assert!(case.stripped(*version).is_err(), "{version} builds stripped");
        }
        let Ok(def) = built else { return Ok(()) };
        for version in 0..=VERSION {
            let stripped = case.stripped(version);
            prop_assert!(stripped.is_ok(), "v{version}: {:?}", stripped.err());
            let seen = def.at_version(version).unwrap();
            prop_assert_eq!(seen.origin(), version);
            let fail = case.fail();
            let gated_trace = drive(&mut start(seen), fail.as_deref(), 0);
            let plain_trace = drive(&mut start(stripped.unwrap()), fail.as_deref(), 0);
            prop_assert_eq!(gated_trace, plain_trace, "at v{}", version);
        }
    }

    /// A run checkpointed at any point, stored, and resumed on the
    /// definition as built (not as seen at its origin) continues exactly
    /// as it would have; a corrupted checkpoint of it is refused or
    /// resumed, never a panic.
    #[test]
    fn a_gated_run_resumes_at_its_origin(
        case in gated(),
        version in 0..=VERSION,
        stop in 0usize..6,
        pick in any::<prop::sample::Index>(),
        how in any::<u8>(),
        noise in any::<u64>(),
    ) {
        let Ok(def) = case.build() else { return Ok(()) };
        let def = Arc::new(def);
        let fail = case.fail();
        let mut whole = start(def.at_version(version).unwrap());
        let expected = drive(&mut whole, fail.as_deref(), 0);
        let mut run = start(def.at_version(version).unwrap());
        let mut done = Vec::new();
        for _ in 0..stop {
            let Some(action) = run.poll_action() else { break };
            match act(&mut run, action, fail.as_deref(), done.len() as u64 + 1) {
                Some(entry) => done.push(entry),
                None => break,
            }
        }
        let json = serde_json::to_value(run.checkpoint()).unwrap();
        let mut resumed =
            WorkflowRun::resume(Arc::clone(&def), serde_json::from_value(json.clone()).unwrap())
                .unwrap();
        prop_assert_eq!(resumed.definition().origin(), version);
        done.extend(drive(&mut resumed, fail.as_deref(), done.len() as u64));
        prop_assert_eq!(done, expected);

        let mut corrupted = json;
        let leaves = corrupt::paths_where(&corrupted, |v| !v.is_array() && !v.is_object());
        let leaf = corrupt::at_path(&mut corrupted, &leaves[pick.index(leaves.len())]);
        *leaf = corrupt::corrupt_leaf(leaf, how, noise);
        if let Ok(checkpoint) = serde_json::from_value(corrupted) {
            if let Ok(mut run) = WorkflowRun::<u32>::resume(Arc::clone(&def), checkpoint) {
                drive(&mut run, None, 100);
            }
        }
    }

    /// A run of the definition written for version 1 moves onto the
    /// gated definition at any point — the diff admits it, since the gated
    /// one keeps version 1's shape for it — and goes on exactly as it
    /// would have without moving.
    #[test]
    fn a_run_of_an_old_version_moves_onto_the_gated_one_at_any_point(
        case in gated(),
        stop in 0usize..8,
    ) {
        let Ok(def) = case.build() else { return Ok(()) };
        let new = Arc::new(def);
        let old = Arc::new(case.stripped(1).unwrap());
        let diff = WorkflowDef::diff(&old, &new);
        prop_assert!(
            diff.steps()
                .iter()
                .all(|s| matches!(s.change, StepChange::Unchanged | StepChange::Absent)),
            "{:?}",
            diff.steps()
        );
        let fail = case.fail();
        let mut run = start((*old).clone());
        for _ in 0..stop {
            let Some(action) = run.poll_action() else { break };
            if act(&mut run, action, fail.as_deref(), 1).is_none() {
                break;
            }
        }
        let checkpoint = run.checkpoint();
        if run.is_finished() {
            prop_assert!(!diff.admits(&checkpoint));
            return Ok(());
        }
        let moved = diff.migrate(checkpoint);
        prop_assert!(moved.is_ok(), "{:?}", moved.err());
        let mut moved = WorkflowRun::resume(Arc::clone(&new), moved.unwrap()).unwrap();
        // Onto an ungated definition, it becomes a run of its version.
        let origin = if new.gated_versions().is_empty() { VERSION } else { 1 };
        prop_assert_eq!(moved.definition().origin(), origin);
        prop_assert_eq!(
            drive(&mut moved, fail.as_deref(), 10),
            drive(&mut run, fail.as_deref(), 10)
        );
    }

    /// A gated definition's data form, corrupted, is refused or read as a
    /// valid definition, never a panic; read back uncorrupted, it has the
    /// same hash and the same shape at every version.
    #[test]
    fn a_gated_definition_read_back_is_the_same(
        case in gated(),
        pick in any::<prop::sample::Index>(),
        how in any::<u8>(),
        noise in any::<u64>(),
    ) {
        let Ok(def) = case.build() else { return Ok(()) };
        let json = serde_json::to_value(&def).unwrap();
        let back: WorkflowDef = serde_json::from_value(json.clone()).unwrap();
        prop_assert_eq!(back.content_hash(), def.content_hash());
        prop_assert_eq!(back.gated_versions(), def.gated_versions());
        for version in 0..=VERSION {
            let (a, b) = (def.at_version(version).unwrap(), back.at_version(version).unwrap());
            prop_assert_eq!(a.absent_steps(), b.absent_steps());
            prop_assert_eq!(a.entries(), b.entries());
        }
        let mut corrupted = json;
        let leaves = corrupt::paths_where(&corrupted, |v| !v.is_array() && !v.is_object());
        let leaf = corrupt::at_path(&mut corrupted, &leaves[pick.index(leaves.len())]);
        *leaf = corrupt::corrupt_leaf(leaf, how, noise);
        if let Ok(read) = serde_json::from_value::<WorkflowDef>(corrupted) {
            for &version in read.gated_versions() {
                prop_assert!(read.at_version(version).is_ok());
            }
        }
    }
}
