//! The workflow patterns, sagas and definitions of `taskweave::workflow`,
//! driven through the sans-IO run by a small scripted host.
//!
//! The host answers every action at once, in the order the run hands them
//! out: a started attempt gets the next scripted [`Reply`] for its step (or
//! succeeds with its own label as output), an expanded step gets its
//! scripted items, a compensation gets its scripted result (or succeeds).
//! Everything it sees is logged as a short line, so a test asserts the exact
//! action sequence.

#![cfg(all(feature = "serde", feature = "workflow"))]

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use taskweave::resilience::{Fixed, RetrySpec};
use taskweave::workflow::{
    AttemptEnd, Checkpoint, Choice, DefinitionError, FailureCause, Join, PendingCompensation,
    RunAction, RunError, RunOutcome, StepDef, StepFailure, StepInput, StepKind, StepOutput,
    StepState, TIMEOUT_LABEL, WorkflowDef, WorkflowDefBuilder, WorkflowEvent, WorkflowRun,
};
use taskweave::{AttemptToken, Instant, Priority, StepId, WorkflowId};

mod harness;

use harness::Harness;

// ---- the host harness ------------------------------------------------------

/// How the host answers one attempt.
#[derive(Clone, Debug)]
enum Reply {
    Done(StepOutput<String>),
    Fail(StepFailure),
    /// Keep the attempt running; the test answers it with [`Host::answer`].
    Hold,
}

use Reply::Hold;

fn value(v: &str) -> Reply {
    Reply::Done(StepOutput::new(v.to_string()))
}

fn again(v: &str) -> Reply {
    Reply::Done(StepOutput::new(v.to_string()).again())
}

/// An output without a value that chooses these branches.
fn choosing(labels: &[&str]) -> StepOutput<String> {
    labels
        .iter()
        .fold(StepOutput::empty(), |out, label| out.branch(*label))
}

fn branches(labels: &[&str]) -> Reply {
    Reply::Done(choosing(labels))
}

fn fatal(reason: &str) -> Reply {
    Reply::Fail(StepFailure::fatal(reason))
}

fn flaky(reason: &str) -> Reply {
    Reply::Fail(StepFailure::retryable(reason))
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn fixed(delay: u64, attempts: u32) -> RetrySpec {
    RetrySpec::from(Fixed::new(secs(delay), attempts).unwrap())
}

fn build(builder: WorkflowDefBuilder) -> Arc<WorkflowDef> {
    Arc::new(builder.build().expect("a valid definition"))
}

/// A scripted host around one run.
struct Host {
    /// The run in the shared harness, with the host's clock.
    sim: Harness<WorkflowRun<String>>,
    /// Replies by label (`m[1]`, `l@2`) or step id, consumed in order.
    replies: HashMap<String, VecDeque<Reply>>,
    /// Compensation results by label or step id, consumed in order.
    undo_results: HashMap<String, VecDeque<Result<(), StepFailure>>>,
    items: HashMap<String, Vec<String>>,
    log: Vec<String>,
    held: Vec<(String, AttemptToken)>,
    /// Every started attempt's input, by label.
    inputs: Vec<(String, StepInput<String>)>,
    /// Every compensation with the output it undoes, by label.
    undone: Vec<(String, Option<String>)>,
}

impl Host {
    fn new(builder: WorkflowDefBuilder) -> Self {
        Self::with_input(build(builder), None)
    }

    fn with_input(def: Arc<WorkflowDef>, input: Option<&str>) -> Self {
        let input = input.map(str::to_string);
        Self::from_run(WorkflowRun::new(
            def,
            WorkflowId::new(1),
            input,
            Instant::ZERO,
        ))
    }

    fn from_run(run: WorkflowRun<String>) -> Self {
        Host {
            sim: Harness::new(run, Instant::ZERO),
            replies: HashMap::new(),
            undo_results: HashMap::new(),
            items: HashMap::new(),
            log: Vec::new(),
            held: Vec::new(),
            inputs: Vec::new(),
            undone: Vec::new(),
        }
    }

    fn reply(mut self, label: &str, replies: impl IntoIterator<Item = Reply>) -> Self {
        self.replies
            .entry(label.to_string())
            .or_default()
            .extend(replies);
        self
    }

    /// Holds the first attempt of each of these labels (or step ids).
    fn hold(self, labels: &[&str]) -> Self {
        labels
            .iter()
            .fold(self, |host, label| host.reply(label, [Hold]))
    }

    fn undo(mut self, label: &str, results: impl IntoIterator<Item = Reply>) -> Self {
        let results = results.into_iter().map(|reply| match reply {
            Reply::Done(_) => Ok(()),
            Reply::Fail(failure) => Err(failure),
            Hold => panic!("compensations are answered at once"),
        });
        self.undo_results
            .entry(label.to_string())
            .or_default()
            .extend(results);
        self
    }

    fn items(mut self, step: &str, items: &[&str]) -> Self {
        let items = items.iter().map(ToString::to_string).collect();
        self.items.insert(step.to_string(), items);
        self
    }

    /// Answers every action the run has, until it has none.
    fn drive(&mut self) {
        loop {
            let actions = self.sim.drain();
            if actions.is_empty() {
                return;
            }
            for action in actions {
                self.answer_action(action);
            }
        }
    }

    /// Answers one action as the host's replies say.
    fn answer_action(&mut self, action: RunAction) {
        match action {
            RunAction::Start {
                step,
                token,
                attempt,
                instance,
                iteration,
            } => {
                let label = self.label(step, instance, iteration);
                self.log.push(format!("start {label}{}", retry(attempt)));
                let input = self
                    .sim
                    .machine
                    .input(token)
                    .expect("the input of an attempt");
                assert_eq!(
                    (input.step, input.token, input.attempt, input.iteration),
                    (step, token, attempt, iteration)
                );
                assert_eq!(input.item.as_ref().map(|(i, _)| *i), instance);
                self.inputs.push((label.clone(), input));
                let key = self.key(step);
                let reply = pop(&mut self.replies, [&label, &key]);
                self.respond(label.clone(), token, reply.unwrap_or_else(|| value(&label)));
            }
            RunAction::Expand { step } => {
                let key = self.key(step);
                self.log.push(format!("expand {key}"));
                if let Some(items) = self.items.remove(&key) {
                    self.sim.machine.expand(step, items, self.sim.now).unwrap();
                }
            }
            RunAction::Cancel {
                step,
                token,
                reason,
            } => {
                let entry = self
                    .sim
                    .machine
                    .timeline()
                    .find(|e| e.token == token)
                    .unwrap();
                assert_eq!(entry.step, step);
                let label = self.label(step, entry.instance, entry.iteration);
                self.log
                    .push(format!("cancel {label}{} {reason:?}", retry(entry.attempt)));
            }
            RunAction::Compensate {
                step,
                token,
                attempt,
                instance,
                iteration,
            } => {
                let label = self.label(step, instance, iteration);
                self.log.push(format!("undo {label}{}", retry(attempt)));
                let output = self.sim.machine.compensated_output(token).unwrap().cloned();
                self.undone.push((label.clone(), output));
                let key = self.key(step);
                let result = pop(&mut self.undo_results, [&label, &key]);
                self.sim
                    .machine
                    .compensated(token, result.unwrap_or(Ok(())), self.sim.now)
                    .unwrap_or_else(|e| panic!("undo {label}: {e}"));
            }
            RunAction::Finished => self.log.push("finished".to_string()),
        }
    }

    /// Drives the run and hands back (and clears) what the host saw.
    fn go(&mut self) -> Vec<String> {
        self.drive();
        std::mem::take(&mut self.log)
    }

    /// Reports an attempt's result, or holds it.
    fn respond(&mut self, label: String, token: AttemptToken, reply: Reply) {
        match reply {
            Reply::Done(output) => self.sim.machine.succeed(token, output, self.sim.now),
            Reply::Fail(failure) => self.sim.machine.fail(token, failure, self.sim.now),
            Hold => {
                self.held.push((label, token));
                return;
            }
        }
        .unwrap_or_else(|e| panic!("{label}: {e}"));
    }

    /// Answers a held attempt, then drives the run.
    fn answer(&mut self, label: &str, reply: Reply) -> Vec<String> {
        let token = self.token(label);
        self.held.retain(|&(_, t)| t != token);
        self.respond(label.to_string(), token, reply);
        self.go()
    }

    /// Moves the clock to `s` seconds, fires due timers and drives the run.
    fn at(&mut self, s: u64) -> Vec<String> {
        self.sim.at(Instant::from_secs(s));
        self.go()
    }

    /// The token of a held attempt.
    fn token(&self, label: &str) -> AttemptToken {
        self.held
            .iter()
            .find(|(l, _)| l == label)
            .map(|&(_, token)| token)
            .unwrap_or_else(|| panic!("no held attempt of {label}"))
    }

    /// Applies an input the run must refuse, and checks it changed nothing.
    fn refused(
        &mut self,
        input: impl FnOnce(&mut WorkflowRun<String>, Instant) -> Result<(), RunError>,
    ) -> RunError {
        let before = snapshot(&self.sim.machine);
        let err =
            input(&mut self.sim.machine, self.sim.now).expect_err("the input must be refused");
        assert_eq!(
            snapshot(&self.sim.machine),
            before,
            "a refused input changed the run"
        );
        err
    }

    fn id(&self, key: &str) -> StepId {
        self.sim.machine.definition().step_id(key).unwrap()
    }

    fn key(&self, step: StepId) -> String {
        self.sim.machine.definition().step(step).unwrap().id.clone()
    }

    fn label(&self, step: StepId, instance: Option<u32>, iteration: u32) -> String {
        let instance = instance.map(|i| format!("[{i}]")).unwrap_or_default();
        let iteration = if iteration > 1 {
            format!("@{iteration}")
        } else {
            String::new()
        };
        format!("{}{instance}{iteration}", self.key(step))
    }

    fn state(&self, key: &str) -> StepState {
        self.sim.machine.step_state(self.id(key)).unwrap()
    }

    fn states(&self, keys: &[&str]) -> Vec<StepState> {
        keys.iter().map(|k| self.state(k)).collect()
    }

    /// The input of the last attempt started with this label.
    fn input(&self, label: &str) -> &StepInput<String> {
        self.inputs
            .iter()
            .rev()
            .find(|(l, _)| l == label)
            .map(|(_, input)| input)
            .unwrap_or_else(|| panic!("{label} never started"))
    }

    /// The predecessor outputs in that input, as (step id, value).
    fn inputs_of(&self, label: &str) -> Vec<(String, String)> {
        self.input(label)
            .inputs
            .iter()
            .map(|(step, v)| (self.key(*step), v.clone()))
            .collect()
    }

    fn outcome(&self) -> RunOutcome {
        self.sim
            .machine
            .outcome()
            .cloned()
            .expect("the run has ended")
    }

    fn step_failed(&self, key: &str, reason: &str) -> FailureCause {
        FailureCause::StepFailed {
            step: self.id(key),
            reason: reason.to_string(),
        }
    }
}

/// The next scripted answer for the first key that has one (an attempt's
/// label, then its step id).
fn pop<T>(script: &mut HashMap<String, VecDeque<T>>, keys: [&str; 2]) -> Option<T> {
    keys.into_iter()
        .find_map(|key| script.get_mut(key).and_then(VecDeque::pop_front))
}

fn retry(attempt: u32) -> String {
    if attempt > 1 {
        format!("#{attempt}")
    } else {
        String::new()
    }
}

/// The whole state of a run, as text.
fn snapshot(run: &WorkflowRun<String>) -> String {
    serde_json::to_string(&run.checkpoint()).unwrap()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

use StepState::{Active, Cancelled, Completed, Skipped};

/// No action at all.
const NOTHING: [&str; 0] = [];

// ---- sequence, parallel split, synchronization ----------------------------

#[test]
fn sequence_runs_steps_one_after_another() {
    let def = build(
        WorkflowDef::builder("seq", 1)
            .step(StepDef::local("a"))
            .step(StepDef::local("b"))
            .step(StepDef::local("c"))
            .chain(["a", "b", "c"]),
    );
    let mut h = Host::with_input(def, Some("go"));
    assert_eq!(h.go(), ["start a", "start b", "start c", "finished"]);
    assert_eq!(h.input("a").run_input.as_deref(), Some("go"));
    assert!(h.input("a").inputs.is_empty());
    assert_eq!(h.input("b").run_input, None);
    assert_eq!(h.inputs_of("b"), pairs(&[("a", "a")]));
    assert_eq!(h.inputs_of("c"), pairs(&[("b", "b")]));
    assert_eq!(h.outcome(), RunOutcome::Succeeded);
    assert_eq!(h.sim.machine.output().map(String::as_str), Some("c"));
}

#[test]
fn parallel_split_starts_every_branch_at_once() {
    let mut h = Host::new(
        WorkflowDef::builder("split", 1)
            .step(StepDef::local("s"))
            .step(StepDef::agent("a"))
            .step(StepDef::agent("b"))
            .step(StepDef::agent("c"))
            .edge("s", "a")
            .edge("s", "b")
            .edge("s", "c"),
    )
    .hold(&["a", "b", "c"]);
    assert_eq!(h.go(), ["start s", "start a", "start b", "start c"]);
    assert_eq!(h.states(&["a", "b", "c"]), [Active; 3]);
    assert_eq!(h.answer("b", value("b")), NOTHING);
    assert_eq!(h.answer("a", value("a")), NOTHING);
    assert_eq!(h.answer("c", value("c")), ["finished"]);
    assert_eq!(h.outcome(), RunOutcome::Succeeded);
    // Three sinks: no run output.
    assert_eq!(h.sim.machine.output(), None);
}

#[test]
fn synchronization_waits_for_every_branch_and_gathers_inputs_in_edge_order() {
    let mut h = Host::new(
        WorkflowDef::builder("sync", 1)
            .step(StepDef::agent("a"))
            .step(StepDef::agent("b"))
            .step(StepDef::local("j"))
            .edge("a", "j")
            .edge("b", "j"),
    )
    .hold(&["a", "b"]);
    assert_eq!(h.go(), ["start a", "start b"]);
    assert_eq!(h.answer("b", value("B")), NOTHING);
    assert_eq!(h.state("j"), StepState::Pending);
    assert_eq!(h.answer("a", value("A")), ["start j", "finished"]);
    // Edge order, not completion order.
    assert_eq!(h.inputs_of("j"), pairs(&[("a", "A"), ("b", "B")]));
    assert_eq!(h.input("j").run_input, None);
    assert_eq!(h.sim.machine.output().map(String::as_str), Some("j"));
}

#[test]
fn input_mapping_selects_and_orders_the_predecessors() {
    let def = build(
        WorkflowDef::builder("mapped", 1)
            .step(StepDef::agent("a"))
            .step(StepDef::agent("b"))
            .step(StepDef::agent("c"))
            .step(StepDef::local("j").inputs(["c", "a"]))
            .edge("a", "j")
            .edge("b", "j")
            .edge("c", "j"),
    );
    assert_eq!(def.input_steps(def.step_id("j").unwrap()).len(), 2);
    let mut h = Host::with_input(def, Some("in"));
    assert_eq!(
        h.go(),
        ["start a", "start b", "start c", "start j", "finished"]
    );
    assert_eq!(h.inputs_of("j"), pairs(&[("c", "c"), ("a", "a")]));
    assert_eq!(h.input("c").run_input.as_deref(), Some("in"));
    assert_eq!(h.input("j").run_input, None);
}

// ---- exclusive choice, multi-choice ---------------------------------------

fn two_chains() -> WorkflowDefBuilder {
    WorkflowDef::builder("choice", 1)
        .step(StepDef::local("d"))
        .step(StepDef::agent("y1"))
        .step(StepDef::agent("y2"))
        .step(StepDef::agent("n1"))
        .step(StepDef::agent("n2"))
        .branch("d", "y1", "yes")
        .branch("d", "n1", "no")
        .edge("y1", "y2")
        .edge("n1", "n2")
}

#[test]
fn exclusive_choice_skips_the_untaken_branch_down_its_chain() {
    let mut h = Host::new(two_chains()).reply("d", [branches(&["no"])]);
    assert_eq!(h.go(), ["start d", "start n1", "start n2", "finished"]);
    assert_eq!(
        h.states(&["d", "y1", "y2", "n1", "n2"]),
        [Completed, Skipped, Skipped, Completed, Completed]
    );
    assert_eq!(h.outcome(), RunOutcome::Succeeded);
}

#[test]
fn multi_choice_takes_every_chosen_branch() {
    let mut h = Host::new(
        WorkflowDef::builder("multi", 1)
            .step(StepDef::local("d").choice(Choice::Multi))
            .step(StepDef::agent("a"))
            .step(StepDef::agent("b"))
            .step(StepDef::agent("c"))
            .branch("d", "a", "a")
            .branch("d", "b", "b")
            .branch("d", "c", "c"),
    )
    .reply("d", [branches(&["c", "a"])]);
    assert_eq!(h.go(), ["start d", "start a", "start c", "finished"]);
    assert_eq!(h.states(&["a", "b", "c"]), [Completed, Skipped, Completed]);
}

#[test]
fn invalid_branch_choices_are_refused_and_change_nothing() {
    let mut h = Host::new(two_chains().step(StepDef::local("plain"))).hold(&["d", "plain"]);
    assert_eq!(h.go(), ["start d", "start plain"]);
    let (d, plain) = (h.token("d"), h.token("plain"));
    let cases: [(AttemptToken, &[&str], &str); 5] = [
        (
            d,
            &["yes", "no"],
            "an exclusive choice takes exactly one branch",
        ),
        (
            d,
            &["yes", "yes"],
            "an exclusive choice takes exactly one branch",
        ),
        (d, &["maybe"], "a chosen label has no branch"),
        (d, &[], "a decision step must choose a branch"),
        (plain, &["yes"], "the step has no labelled branches"),
    ];
    for (token, labels, reason) in cases {
        let err = h.refused(|run, now| run.succeed(token, choosing(labels), now));
        let step = if token == d { h.id("d") } else { h.id("plain") };
        let chosen = labels.iter().map(ToString::to_string).collect();
        assert_eq!(
            err,
            RunError::InvalidBranches {
                step,
                chosen,
                reason
            }
        );
    }
    assert_eq!(h.states(&["d", "plain"]), [Active, Active]);
    // The same tokens then succeed correctly.
    assert_eq!(h.answer("d", branches(&["yes"])), ["start y1", "start y2"]);
    assert_eq!(h.answer("plain", value("p")), ["finished"]);
    assert_eq!(h.states(&["n1", "n2"]), [Skipped, Skipped]);
}

// ---- merges and partial joins ----------------------------------------------

fn three_into(join: Join) -> Host {
    Host::new(
        WorkflowDef::builder("join", 1)
            .step(StepDef::agent("a"))
            .step(StepDef::agent("b"))
            .step(StepDef::agent("c"))
            .step(StepDef::local("j").join(join))
            .edge("a", "j")
            .edge("b", "j")
            .edge("c", "j"),
    )
    .hold(&["a", "b", "c"])
}

#[test]
fn simple_merge_and_discriminator_start_once_and_wait_for_late_branches() {
    let mut h = three_into(Join::first());
    assert_eq!(h.go(), ["start a", "start b", "start c"]);
    assert_eq!(h.answer("b", value("B")), ["start j"]);
    assert_eq!(h.inputs_of("j"), pairs(&[("b", "B")]));
    assert_eq!(h.state("j"), Completed);
    assert!(!h.sim.machine.is_finished());
    // Later branches finish and are ignored; the run ends with the last.
    assert_eq!(h.answer("a", value("A")), NOTHING);
    assert!(!h.sim.machine.is_finished());
    assert_eq!(h.answer("c", value("C")), ["finished"]);
    assert_eq!(h.inputs.iter().filter(|(l, _)| l == "j").count(), 1);
    assert_eq!(h.outcome(), RunOutcome::Succeeded);
    assert_eq!(h.sim.machine.output().map(String::as_str), Some("j"));
}

#[test]
fn a_discriminator_input_holds_only_what_had_arrived_when_it_started() {
    let mut h = three_into(Join::first()).hold(&["j"]);
    assert_eq!(h.go(), ["start a", "start b", "start c"]);
    assert_eq!(h.answer("b", value("B")), ["start j"]);
    assert_eq!(h.answer("a", value("A")), NOTHING);
    let input = h.sim.machine.input(h.token("j")).unwrap();
    let b = h.id("b");
    assert_eq!(input.inputs, [(b, "B".to_string())]);
}

#[test]
fn a_looping_decision_chooses_its_branch_on_the_last_iteration() {
    let mut h = Host::new(
        WorkflowDef::builder("poll", 1)
            .step(StepDef::local("check").repeat(3))
            .step(StepDef::local("ready"))
            .step(StepDef::local("gave_up"))
            .branch("check", "ready", "ready")
            .branch("check", "gave_up", "timeout"),
    )
    .reply(
        "check",
        [
            again("not yet"),
            Reply::Done(StepOutput::new("ok".to_string()).branch("ready")),
        ],
    );
    h.go();
    assert_eq!(h.states(&["ready", "gave_up"]), [Completed, Skipped]);
    assert_eq!(h.outcome(), RunOutcome::Succeeded);
    // Choosing a branch while asking for another iteration is refused.
    let mut h = Host::new(
        WorkflowDef::builder("poll", 1)
            .step(StepDef::local("check").repeat(3))
            .step(StepDef::local("ready"))
            .branch("check", "ready", "ready"),
    )
    .hold(&["check"]);
    h.go();
    let token = h.token("check");
    let err = h.refused(|run, now| {
        run.succeed(
            token,
            StepOutput::new("x".into()).branch("ready").again(),
            now,
        )
    });
    assert!(matches!(err, RunError::InvalidBranches { .. }), "{err:?}");
}

#[test]
fn cancelling_discriminator_cancels_the_remaining_branches() {
    let mut h = Host::new(
        WorkflowDef::builder("race", 1)
            .step(StepDef::agent("a"))
            .step(StepDef::agent("x"))
            .step(StepDef::agent("y"))
            .step(StepDef::local("j").join(Join::first_cancelling()))
            .edge("a", "j")
            .chain(["x", "y", "j"]),
    )
    .hold(&["a", "x", "j"]);
    assert_eq!(h.go(), ["start a", "start x"]);
    assert_eq!(
        h.answer("a", value("A")),
        ["start j", "cancel x BranchCancelled"]
    );
    // The whole remaining branch is cancelled, the pending step too.
    assert_eq!(h.states(&["x", "y", "j"]), [Cancelled, Cancelled, Active]);
    let late = h.token("x");
    let err = h.refused(|run, now| run.succeed(late, StepOutput::new("X".into()), now));
    assert_eq!(err, RunError::StaleAttempt(late));
    assert_eq!(h.answer("j", value("J")), ["finished"]);
    assert_eq!(h.outcome(), RunOutcome::Succeeded);
}

#[test]
fn synchronizing_merge_waits_for_every_chosen_branch() {
    let mut h = Host::new(
        WorkflowDef::builder("merge", 1)
            .step(StepDef::local("d").choice(Choice::Multi))
            .step(StepDef::agent("a"))
            .step(StepDef::agent("b"))
            .step(StepDef::agent("c"))
            .step(StepDef::local("m").join(Join::Merge))
            .branch("d", "a", "a")
            .branch("d", "b", "b")
            .branch("d", "c", "c")
            .edge("a", "m")
            .edge("b", "m")
            .edge("c", "m"),
    )
    .reply("d", [branches(&["a", "b"])])
    .hold(&["a", "b"]);
    assert_eq!(h.go(), ["start d", "start a", "start b"]);
    assert_eq!(h.state("c"), Skipped);
    assert_eq!(h.answer("a", value("A")), NOTHING);
    assert_eq!(h.answer("b", value("B")), ["start m", "finished"]);
    assert_eq!(h.inputs_of("m"), pairs(&[("a", "A"), ("b", "B")]));
}

#[test]
fn synchronizing_merge_without_a_fired_branch_is_skipped() {
    let mut h = Host::new(
        WorkflowDef::builder("merge", 1)
            .step(StepDef::local("d"))
            .step(StepDef::agent("p"))
            .step(StepDef::agent("a"))
            .step(StepDef::agent("b"))
            .step(StepDef::local("m").join(Join::Merge))
            .step(StepDef::agent("q"))
            .branch("d", "p", "go")
            .branch("d", "q", "stop")
            .edge("p", "a")
            .edge("p", "b")
            .edge("a", "m")
            .edge("b", "m"),
    )
    .reply("d", [branches(&["stop"])]);
    assert_eq!(h.go(), ["start d", "start q", "finished"]);
    assert_eq!(h.states(&["p", "a", "b", "m"]), [Skipped; 4]);
}

#[test]
fn partial_join_starts_after_n_of_m_branches() {
    let mut h = three_into(Join::Quorum {
        n: 2,
        cancel_remaining: false,
    });
    assert_eq!(h.go(), ["start a", "start b", "start c"]);
    assert_eq!(h.answer("c", value("C")), NOTHING);
    assert_eq!(h.answer("a", value("A")), ["start j"]);
    assert_eq!(h.inputs_of("j"), pairs(&[("a", "A"), ("c", "C")]));
    assert_eq!(h.answer("b", value("B")), ["finished"]);
    assert_eq!(h.outcome(), RunOutcome::Succeeded);
}

#[test]
fn partial_join_that_can_no_longer_be_satisfied_is_skipped() {
    let mut h = Host::new(
        WorkflowDef::builder("quorum", 1)
            .step(StepDef::local("d"))
            .step(StepDef::agent("a"))
            .step(StepDef::agent("b"))
            .step(StepDef::agent("c"))
            .step(StepDef::local("j").join(Join::Quorum {
                n: 2,
                cancel_remaining: false,
            }))
            .step(StepDef::agent("k"))
            .branch("d", "a", "a")
            .branch("d", "b", "b")
            .branch("d", "c", "c")
            .edge("a", "j")
            .edge("b", "j")
            .edge("c", "j")
            .edge("j", "k"),
    )
    .reply("d", [branches(&["a"])]);
    assert_eq!(h.go(), ["start d", "start a", "finished"]);
    assert_eq!(
        h.states(&["a", "b", "c", "j", "k"]),
        [Completed, Skipped, Skipped, Skipped, Skipped]
    );
    assert_eq!(h.outcome(), RunOutcome::Succeeded);
}

// ---- structured loop ---------------------------------------------------------

fn looping(max: u32) -> Host {
    Host::new(
        WorkflowDef::builder("loop", 1)
            .step(StepDef::local("l").repeat(max))
            .step(StepDef::local("k"))
            .edge("l", "k"),
    )
}

#[test]
fn structured_loop_repeats_with_iteration_numbers_and_the_previous_output() {
    let mut h = looping(3).reply("l", [again("1"), again("2"), value("3")]);
    assert_eq!(
        h.go(),
        ["start l", "start l@2", "start l@3", "start k", "finished"]
    );
    let previous: Vec<_> = ["l", "l@2", "l@3"]
        .iter()
        .map(|l| (h.input(l).iteration, h.input(l).previous.clone()))
        .collect();
    assert_eq!(
        previous,
        [(1, None), (2, Some("1".into())), (3, Some("2".into()))]
    );
    assert_eq!(h.inputs_of("k"), pairs(&[("l", "3")]));
    assert_eq!(
        h.sim.machine.step_output(h.id("l")).map(String::as_str),
        Some("3")
    );
}

#[test]
fn loop_reaching_its_cap_fails_the_run() {
    let mut h = looping(2).reply("l", [again("1"), again("2")]);
    assert_eq!(h.go(), ["start l", "start l@2", "finished"]);
    assert_eq!(
        h.outcome(),
        RunOutcome::Failed(h.step_failed("l", "the loop reached its cap of 2 iterations"))
    );
    assert_eq!(h.states(&["l", "k"]), [StepState::Failed, Cancelled]);
}

#[test]
fn again_on_a_step_that_is_not_a_loop_is_refused() {
    let mut h = Host::new(WorkflowDef::builder("once", 1).step(StepDef::local("a"))).hold(&["a"]);
    assert_eq!(h.go(), ["start a"]);
    let token = h.token("a");
    let err = h.refused(|run, now| run.succeed(token, StepOutput::new("x".into()).again(), now));
    assert_eq!(err, RunError::NotALoop(h.id("a")));
    assert_eq!(h.answer("a", value("x")), ["finished"]);
}

// ---- multi-instance ------------------------------------------------------------

/// `s -> m -> k`, `m` fanning out; `s` is compensable, and a failed
/// compensation of `s` is retried once after a second.
fn fan_out(tolerated: u32) -> Host {
    Host::new(
        WorkflowDef::builder("fan", 1)
            .step(StepDef::local("s").compensable().retry(fixed(1, 2)))
            .step(StepDef::agent("m").multi_instance(tolerated))
            .step(StepDef::local("k"))
            .chain(["s", "m", "k"]),
    )
}

#[test]
fn multi_instance_runs_one_instance_per_item() {
    let mut h = fan_out(0).items("m", &["x", "y"]).reply("m", [Hold, Hold]);
    assert_eq!(h.go(), ["start s", "expand m", "start m[0]", "start m[1]"]);
    assert_eq!(h.input("m[0]").item, Some((0, "x".into())));
    assert_eq!(h.input("m[1]").item, Some((1, "y".into())));
    assert_eq!(h.inputs_of("m[1]"), pairs(&[("s", "s")]));
    // Completion order does not matter: one input per instance, in order.
    assert_eq!(h.answer("m[1]", value("Y")), NOTHING);
    assert_eq!(h.answer("m[0]", value("X")), ["start k", "finished"]);
    assert_eq!(h.inputs_of("k"), pairs(&[("m", "X"), ("m", "Y")]));
    assert_eq!(h.sim.machine.step_output(h.id("m")), None);
    assert_eq!(h.sim.machine.outputs(h.id("m")), ["X", "Y"]);
}

#[test]
fn multi_instance_tolerates_failures_up_to_its_threshold() {
    let mut h = fan_out(1)
        .items("m", &["x", "y", "z"])
        .reply("m[1]", [fatal("bad item")]);
    assert_eq!(
        h.go(),
        [
            "start s",
            "expand m",
            "start m[0]",
            "start m[1]",
            "start m[2]",
            "start k",
            "finished"
        ]
    );
    assert_eq!(h.inputs_of("k"), pairs(&[("m", "m[0]"), ("m", "m[2]")]));
    assert_eq!(h.outcome(), RunOutcome::Succeeded);
}

#[test]
fn multi_instance_with_too_many_failures_fails_and_cancels_the_rest() {
    let mut h = fan_out(1)
        .items("m", &["w", "x", "y", "z"])
        .reply("m", [Hold, Hold, Hold, Hold])
        .undo("s", [flaky("locked")]);
    assert_eq!(
        h.go(),
        [
            "start s",
            "expand m",
            "start m[0]",
            "start m[1]",
            "start m[2]",
            "start m[3]"
        ]
    );
    assert_eq!(h.answer("m[0]", fatal("boom")), NOTHING);
    assert_eq!(
        h.answer("m[2]", fatal("boom")),
        ["cancel m[1] RunAborted", "cancel m[3] RunAborted", "undo s"]
    );
    // While the run compensates, a cancelled instance's result is stale.
    let late = h.token("m[1]");
    let err = h.refused(|run, now| run.succeed(late, StepOutput::new("late".into()), now));
    assert_eq!(err, RunError::StaleAttempt(late));
    assert_eq!(h.at(1), ["undo s#2", "finished"]);
    assert_eq!(
        h.outcome(),
        RunOutcome::Compensated(h.step_failed("m", "2 instances failed, 1 tolerated; last: boom"))
    );
    let ends: Vec<_> = h
        .sim
        .machine
        .timeline()
        .filter(|e| e.instance.is_some())
        .map(|e| e.outcome)
        .collect();
    assert_eq!(
        ends,
        [
            AttemptEnd::Failed,
            AttemptEnd::Cancelled,
            AttemptEnd::Failed,
            AttemptEnd::Cancelled
        ]
    );
    assert_eq!(h.states(&["m", "k"]), [StepState::Failed, Cancelled]);
}

#[test]
fn multi_instance_with_no_items_completes_at_once() {
    let mut h = fan_out(0).items("m", &[]);
    assert_eq!(h.go(), ["start s", "expand m", "start k", "finished"]);
    assert_eq!(h.state("m"), Completed);
    assert!(h.input("k").inputs.is_empty());
}

// ---- sub-workflow --------------------------------------------------------------

#[test]
fn sub_workflow_step_is_started_like_any_step_and_the_host_runs_the_child() {
    let child = build(
        WorkflowDef::builder("child", 1)
            .step(StepDef::local("x"))
            .step(StepDef::local("y"))
            .edge("x", "y"),
    );
    let mut parent = Host::new(
        WorkflowDef::builder("parent", 1)
            .step(StepDef::local("prep"))
            .step(StepDef::sub_workflow("sub", Arc::clone(&child)))
            .step(StepDef::local("post"))
            .chain(["prep", "sub", "post"]),
    )
    .hold(&["sub"]);
    assert_eq!(parent.go(), ["start prep", "start sub"]);
    let sub = parent
        .sim
        .machine
        .definition()
        .step(parent.id("sub"))
        .unwrap();
    assert_eq!(sub.kind, StepKind::SubWorkflow(Arc::clone(&child)));

    let handed_down = parent.inputs_of("sub")[0].1.clone();
    let mut child_run = Host::with_input(child, Some(&handed_down));
    assert_eq!(child_run.go(), ["start x", "start y", "finished"]);
    assert_eq!(child_run.input("x").run_input.as_deref(), Some("prep"));
    let result = child_run.sim.machine.output().unwrap().clone();

    assert_eq!(
        parent.answer("sub", value(&result)),
        ["start post", "finished"]
    );
    assert_eq!(parent.inputs_of("post"), pairs(&[("sub", "y")]));
}

// ---- deferred choice -------------------------------------------------------------

fn approval() -> Host {
    Host::new(
        WorkflowDef::builder("approval", 1)
            .step(StepDef::wait("w", ["approve", "reject"]).timeout(secs(10)))
            .step(StepDef::agent("ship"))
            .step(StepDef::agent("refund"))
            .step(StepDef::agent("escalate"))
            .branch("w", "ship", "approve")
            .branch("w", "refund", "reject")
            .branch("w", "escalate", TIMEOUT_LABEL),
    )
}

#[test]
fn signal_ends_a_wait_with_its_payload_and_takes_its_branch() {
    let mut h = approval();
    assert_eq!(h.go(), NOTHING);
    assert_eq!(h.state("w"), StepState::Waiting);
    assert_eq!(h.sim.machine.waiting(), [h.id("w")]);
    h.sim
        .machine
        .signal("approve", Some("ok".into()), h.sim.now)
        .unwrap();
    assert_eq!(h.go(), ["start ship", "finished"]);
    assert_eq!(h.inputs_of("ship"), pairs(&[("w", "ok")]));
    assert_eq!(
        h.sim.machine.step_output(h.id("w")).map(String::as_str),
        Some("ok")
    );
    assert_eq!(
        h.states(&["w", "refund", "escalate"]),
        [Completed, Skipped, Skipped]
    );
    assert!(h.sim.machine.waiting().is_empty());
}

#[test]
fn wait_timer_takes_the_timeout_branch() {
    let mut h = approval();
    assert_eq!(h.go(), NOTHING);
    assert_eq!(h.sim.machine.poll_timeout(), Some(Instant::from_secs(10)));
    assert_eq!(h.at(9), NOTHING);
    assert_eq!(h.at(10), ["start escalate", "finished"]);
    assert_eq!(h.states(&["ship", "refund"]), [Skipped, Skipped]);
    assert_eq!(h.sim.machine.step_output(h.id("w")), None);
}

#[test]
fn signal_nobody_waits_for_is_refused() {
    let mut h = Host::new(
        WorkflowDef::builder("late", 1)
            .step(StepDef::agent("a"))
            .step(StepDef::wait("w", ["go"]))
            .step(StepDef::agent("b"))
            .chain(["a", "w", "b"]),
    )
    .hold(&["a"]);
    assert_eq!(h.go(), ["start a"]);
    // The wait step is not reached yet.
    let err = h.refused(|run, now| run.signal("go", None, now));
    assert_eq!(err, RunError::NoWaiter("go".into()));
    assert_eq!(h.answer("a", value("A")), NOTHING);
    let err = h.refused(|run, now| run.signal("stop", None, now));
    assert_eq!(err, RunError::NoWaiter("stop".into()));
    h.sim
        .machine
        .signal("go", Some("G".into()), h.sim.now)
        .unwrap();
    assert_eq!(h.go(), ["start b", "finished"]);
}

// ---- cancellation ------------------------------------------------------------------

#[test]
fn cancelling_a_step_skips_its_branch() {
    let mut h = Host::new(
        WorkflowDef::builder("cancel", 1)
            .step(StepDef::local("s"))
            .step(StepDef::agent("a"))
            .step(StepDef::agent("a2"))
            .step(StepDef::agent("b"))
            .step(StepDef::local("j").join(Join::Merge))
            .chain(["s", "a", "a2", "j"])
            .edge("s", "b")
            .edge("b", "j"),
    )
    .hold(&["a", "j"]);
    assert_eq!(h.go(), ["start s", "start a", "start b"]);
    h.sim.machine.cancel_step(h.id("a"), h.sim.now).unwrap();
    assert_eq!(h.go(), ["cancel a StepCancelled", "start j"]);
    assert_eq!(h.states(&["a", "a2"]), [Cancelled, Skipped]);
    assert_eq!(h.inputs_of("j"), pairs(&[("b", "b")]));
    let late = h.token("a");
    let err = h.refused(|run, now| run.succeed(late, StepOutput::empty(), now));
    assert_eq!(err, RunError::StaleAttempt(late));
    let b = h.id("b");
    let err = h.refused(|run, now| run.cancel_step(b, now));
    assert_eq!(
        err,
        RunError::UnexpectedInput {
            step: b,
            expected: "still open"
        }
    );
    assert_eq!(h.answer("j", value("J")), ["finished"]);
    assert_eq!(h.outcome(), RunOutcome::Succeeded);
}

#[test]
fn cancelling_the_run_stops_running_steps_and_compensates() {
    let mut h = Host::new(
        WorkflowDef::builder("abort", 1)
            .step(StepDef::local("a").compensable())
            .step(StepDef::agent("b").compensable())
            .step(StepDef::agent("c"))
            .step(StepDef::agent("d"))
            .edge("a", "b")
            .edge("a", "c")
            .edge("c", "d"),
    )
    .hold(&["b", "c"]);
    assert_eq!(h.go(), ["start a", "start b", "start c"]);
    h.sim.machine.cancel(h.sim.now).unwrap();
    assert_eq!(
        h.go(),
        [
            "cancel b RunAborted",
            "cancel c RunAborted",
            "undo a",
            "finished"
        ]
    );
    assert_eq!(
        h.outcome(),
        RunOutcome::Compensated(FailureCause::Cancelled)
    );
    assert_eq!(h.states(&["b", "c", "d"]), [Cancelled; 3]);
    assert_eq!(h.refused(WorkflowRun::cancel), RunError::Finished);
}

// ---- retries, timeouts, deadline -----------------------------------------------------

#[test]
fn failed_attempts_are_retried_after_the_policy_delay() {
    let mut h =
        Host::new(WorkflowDef::builder("retry", 1).step(StepDef::agent("a").retry(fixed(5, 3))))
            .reply("a", [flaky("busy"), flaky("busy"), value("ok")]);
    assert_eq!(h.go(), ["start a"]);
    assert_eq!(h.sim.machine.poll_timeout(), Some(Instant::from_secs(5)));
    assert_eq!(h.at(4), NOTHING);
    assert_eq!(h.at(5), ["start a#2"]);
    assert_eq!(h.sim.machine.poll_timeout(), Some(Instant::from_secs(10)));
    assert_eq!(h.at(10), ["start a#3", "finished"]);
    assert_eq!(h.input("a").attempt, 3);
    assert_eq!(h.sim.machine.output().map(String::as_str), Some("ok"));
}

#[test]
fn retries_run_out_and_fatal_failures_are_not_retried() {
    let host = |replies: Vec<Reply>| {
        Host::new(WorkflowDef::builder("retry", 1).step(StepDef::agent("a").retry(fixed(5, 2))))
            .reply("a", replies)
    };
    let mut h = host(vec![flaky("busy"), flaky("busy")]);
    assert_eq!(h.go(), ["start a"]);
    assert_eq!(h.at(5), ["start a#2", "finished"]);
    assert_eq!(h.outcome(), RunOutcome::Failed(h.step_failed("a", "busy")));

    let mut h = host(vec![fatal("broken")]);
    assert_eq!(h.go(), ["start a", "finished"]);
    assert_eq!(
        h.outcome(),
        RunOutcome::Failed(h.step_failed("a", "broken"))
    );
}

#[test]
fn attempt_timeout_cancels_the_attempt_and_retries() {
    let mut h = Host::new(
        WorkflowDef::builder("slow", 1)
            .step(StepDef::agent("a").timeout(secs(2)).retry(fixed(1, 2))),
    )
    .reply("a", [Hold, value("fast")]);
    assert_eq!(h.go(), ["start a"]);
    assert_eq!(h.sim.machine.poll_timeout(), Some(Instant::from_secs(2)));
    assert_eq!(h.at(2), ["cancel a TimedOut"]);
    let late = h.token("a");
    let err = h.refused(|run, now| run.succeed(late, StepOutput::new("late".into()), now));
    assert_eq!(err, RunError::StaleAttempt(late));
    assert_eq!(h.sim.machine.poll_timeout(), Some(Instant::from_secs(3)));
    assert_eq!(h.at(3), ["start a#2", "finished"]);
    assert_eq!(h.sim.machine.output().map(String::as_str), Some("fast"));
    let first = h.sim.machine.timeline().next().unwrap();
    assert_eq!(
        (first.outcome, first.end),
        (AttemptEnd::TimedOut, Some(Instant::from_secs(2)))
    );
}

#[test]
fn workflow_deadline_fails_the_run() {
    let mut h = Host::new(
        WorkflowDef::builder("deadline", 1)
            .deadline(secs(30))
            .step(StepDef::agent("a"))
            .step(StepDef::agent("b"))
            .edge("a", "b"),
    )
    .hold(&["a"]);
    assert_eq!(h.go(), ["start a"]);
    assert_eq!(h.sim.machine.poll_timeout(), Some(Instant::from_secs(30)));
    assert_eq!(h.at(29), NOTHING);
    assert_eq!(h.at(30), ["cancel a RunAborted", "finished"]);
    assert_eq!(
        h.outcome(),
        RunOutcome::Failed(FailureCause::DeadlineExceeded)
    );
    assert_eq!(h.states(&["a", "b"]), [Cancelled, Cancelled]);
}

// ---- sagas --------------------------------------------------------------------------

#[test]
fn saga_compensates_in_reverse_completion_order_skipping_non_compensable_steps() {
    let mut h = Host::new(
        WorkflowDef::builder("saga", 1)
            .step(StepDef::local("a").compensable())
            .step(StepDef::agent("b").compensable())
            .step(StepDef::agent("c").compensable())
            .step(StepDef::agent("x"))
            .step(StepDef::agent("d"))
            .edge("a", "b")
            .edge("a", "c")
            .edge("a", "x")
            .edge("b", "d")
            .edge("c", "d")
            .edge("x", "d"),
    )
    .hold(&["b", "c"])
    .reply("d", [fatal("declined")]);
    assert_eq!(h.go(), ["start a", "start b", "start c", "start x"]);
    assert_eq!(h.answer("c", value("C")), NOTHING);
    assert_eq!(
        h.answer("b", value("B")),
        ["start d", "undo b", "undo c", "undo a", "finished"]
    );
    let undone: Vec<_> = h
        .undone
        .iter()
        .map(|(l, o)| (l.as_str(), o.as_deref()))
        .collect();
    assert_eq!(
        undone,
        [("b", Some("B")), ("c", Some("C")), ("a", Some("a"))]
    );
    assert_eq!(
        h.outcome(),
        RunOutcome::Compensated(h.step_failed("d", "declined"))
    );
}

#[test]
fn compensation_is_retried_by_the_step_policy() {
    let mut h = Host::new(
        WorkflowDef::builder("saga", 1)
            .step(StepDef::local("a").compensable().retry(fixed(1, 2)))
            .step(StepDef::agent("f"))
            .edge("a", "f"),
    )
    .reply("f", [fatal("no")])
    .undo("a", [flaky("locked")]);
    assert_eq!(h.go(), ["start a", "start f", "undo a"]);
    assert!(h.sim.machine.is_compensating());
    assert_eq!(h.refused(WorkflowRun::cancel), RunError::Compensating);
    assert_eq!(h.sim.machine.poll_timeout(), Some(Instant::from_secs(1)));
    assert_eq!(h.at(1), ["undo a#2", "finished"]);
    assert_eq!(
        h.outcome(),
        RunOutcome::Compensated(h.step_failed("f", "no"))
    );
}

#[test]
fn failed_compensation_blocks_what_it_depends_on_but_not_independent_steps() {
    let mut h = Host::new(
        WorkflowDef::builder("saga", 1)
            .step(StepDef::local("a").compensable())
            .step(StepDef::local("b").compensable())
            .step(StepDef::local("i").compensable())
            .step(StepDef::agent("f"))
            .edge("a", "b")
            .edge("b", "f")
            .edge("i", "f"),
    )
    .reply("f", [fatal("declined")])
    .undo("b", [fatal("stuck")]);
    assert_eq!(
        h.go(),
        [
            "start a", "start i", "start b", "start f", "undo b", "undo i", "finished"
        ]
    );
    assert_eq!(
        h.outcome(),
        RunOutcome::CompensationFailed {
            cause: h.step_failed("f", "declined"),
            pending: vec![
                PendingCompensation {
                    step: h.id("b"),
                    instance: None,
                    iteration: 1,
                    failure: Some("stuck".into()),
                },
                PendingCompensation {
                    step: h.id("a"),
                    instance: None,
                    iteration: 1,
                    failure: None,
                },
            ],
        }
    );
}

#[test]
fn run_without_compensable_work_just_fails() {
    let mut h = Host::new(
        WorkflowDef::builder("plain", 1)
            .step(StepDef::local("a"))
            .step(StepDef::agent("f"))
            .edge("a", "f"),
    )
    .reply("f", [fatal("declined")]);
    assert_eq!(h.go(), ["start a", "start f", "finished"]);
    assert_eq!(
        h.outcome(),
        RunOutcome::Failed(h.step_failed("f", "declined"))
    );
}

#[test]
fn observer_sees_the_lifecycle_of_a_failing_run() {
    let def = build(
        WorkflowDef::builder("observed", 1)
            .step(StepDef::local("a").compensable())
            .step(StepDef::agent("b").retry(fixed(2, 2)))
            .edge("a", "b"),
    );
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    let run = WorkflowRun::with_observer(
        def,
        WorkflowId::new(9),
        None,
        Instant::ZERO,
        move |event: &WorkflowEvent| sink.lock().unwrap().push(event.clone()),
    );
    let mut h = Host::from_run(run).reply("b", [flaky("busy"), flaky("busy")]);
    h.go();
    h.at(2);
    let (run, a, b) = (WorkflowId::new(9), h.id("a"), h.id("b"));
    use WorkflowEvent as E;
    assert_eq!(
        *events.lock().unwrap(),
        [
            E::RunStarted { run },
            E::StepStarted {
                run,
                step: a,
                attempt: 1
            },
            E::StepCompleted { run, step: a },
            E::StepStarted {
                run,
                step: b,
                attempt: 1
            },
            E::StepRetried {
                run,
                step: b,
                attempt: 1,
                at: Instant::from_secs(2)
            },
            E::StepStarted {
                run,
                step: b,
                attempt: 2
            },
            E::StepFailed { run, step: b },
            E::RunFailed {
                run,
                cause: h.step_failed("b", "busy")
            },
            E::StepCompensated { run, step: a },
            E::RunCompensated {
                run,
                complete: true
            },
        ]
    );
}

// ---- definitions ----------------------------------------------------------------------

fn refused(builder: WorkflowDefBuilder) -> DefinitionError {
    builder.build().expect_err("the definition must be refused")
}

fn ab() -> WorkflowDefBuilder {
    WorkflowDef::builder("ab", 1)
        .step(StepDef::local("a"))
        .step(StepDef::local("b"))
}

#[test]
fn definition_needs_steps_with_unique_non_empty_ids_and_edges() {
    assert_eq!(
        refused(WorkflowDef::builder("none", 1)),
        DefinitionError::Empty("none".into())
    );
    assert_eq!(
        refused(ab().step(StepDef::local(""))),
        DefinitionError::EmptyId
    );
    assert_eq!(
        refused(ab().step(StepDef::agent("a"))),
        DefinitionError::DuplicateStep("a".into())
    );
    assert_eq!(
        refused(ab().edge("a", "b").branch("a", "b", "x")),
        DefinitionError::DuplicateEdge {
            from: "a".into(),
            to: "b".into()
        }
    );
}

#[test]
fn definition_refuses_unknown_steps_wherever_they_are_named() {
    let unknown = |context: &str| DefinitionError::UnknownStep {
        context: context.into(),
        step: "zz".into(),
    };
    assert_eq!(refused(ab().edge("a", "zz")), unknown("edge `a` -> `zz`"));
    assert_eq!(
        refused(ab().step(StepDef::local("c").inputs(["zz"])).edge("a", "c")),
        unknown("the inputs of `c`")
    );
    assert_eq!(
        refused(ab().entries(["a", "zz"])),
        unknown("the entry list")
    );
    assert_eq!(refused(ab().output("zz")), unknown("the output"));
}

#[test]
fn definition_refuses_a_cycle_with_its_path() {
    let err = refused(
        ab().step(StepDef::local("c"))
            .edge("a", "b")
            .edge("b", "c")
            .edge("c", "b"),
    );
    assert_eq!(
        err,
        DefinitionError::Cycle {
            path: vec!["b".into(), "c".into(), "b".into()]
        }
    );
    assert_eq!(err.to_string(), "cycle: b -> c -> b");
}

#[test]
fn definition_refuses_steps_unreachable_from_explicit_entries() {
    let base = ab().step(StepDef::local("c")).edge("b", "c");
    assert!(base.clone().build().is_ok());
    assert_eq!(
        refused(base.entries(["a"])),
        DefinitionError::Unreachable {
            steps: vec!["b".into(), "c".into()]
        }
    );
}

#[test]
fn definition_refuses_unsatisfiable_joins() {
    let into_c = |join| {
        ab().step(StepDef::local("c").join(join))
            .edge("a", "c")
            .edge("b", "c")
    };
    assert_eq!(
        refused(
            ab().step(StepDef::local("c").join(Join::Merge))
                .edge("a", "c")
        ),
        DefinitionError::JoinTooFewInputs {
            step: "c".into(),
            inputs: 1,
            join: "synchronizing merge"
        }
    );
    assert_eq!(
        refused(ab().step(StepDef::local("c").join(Join::first()))),
        DefinitionError::JoinTooFewInputs {
            step: "c".into(),
            inputs: 0,
            join: "partial"
        }
    );
    for n in [0, 3] {
        assert_eq!(
            refused(into_c(Join::Quorum {
                n,
                cancel_remaining: true
            })),
            DefinitionError::ImpossibleQuorum {
                step: "c".into(),
                n,
                m: 2
            }
        );
    }
    assert!(
        into_c(Join::Quorum {
            n: 2,
            cancel_remaining: true
        })
        .build()
        .is_ok()
    );
}

#[test]
fn definition_refuses_an_input_that_is_not_a_predecessor() {
    assert_eq!(
        refused(
            ab().step(StepDef::local("c").inputs(["a"]))
                .chain(["a", "b", "c"])
        ),
        DefinitionError::InputNotPredecessor {
            step: "c".into(),
            input: "a".into()
        }
    );
}

#[test]
fn definition_refuses_conflicting_options() {
    let wait = || StepDef::wait("w", ["go"]);
    for step in [
        StepDef::local("w").repeat(0),
        StepDef::local("w").repeat(2).multi_instance(0),
        wait().repeat(2),
        wait().multi_instance(1),
        wait().compensable(),
    ] {
        let err = refused(WorkflowDef::builder("x", 1).step(step.clone()));
        assert!(
            matches!(&err, DefinitionError::ConflictingOptions { step, .. } if step == "w"),
            "{step:?}: {err:?}"
        );
    }
    // A multi-instance step completes once for all its instances: it cannot
    // choose branches.
    let fan_out_decision = WorkflowDef::builder("x", 1)
        .step(StepDef::local("w").multi_instance(0))
        .step(StepDef::local("y"))
        .branch("w", "y", "yes");
    assert!(matches!(
        refused(fan_out_decision),
        DefinitionError::ConflictingOptions { step, .. } if step == "w"
    ));
}

#[test]
fn definition_refuses_a_wait_label_it_can_never_choose() {
    let waiting = |wait: StepDef, label: &str| {
        WorkflowDef::builder("w", 1)
            .step(wait)
            .step(StepDef::local("x"))
            .branch("w", "x", label)
    };
    let unknown = |label: &str| DefinitionError::UnknownLabel {
        from: "w".into(),
        to: "x".into(),
        label: label.into(),
    };
    let wait = || StepDef::wait("w", ["go"]);
    assert_eq!(refused(waiting(wait(), "nope")), unknown("nope"));
    // The timeout branch needs a timeout.
    assert_eq!(
        refused(waiting(wait(), TIMEOUT_LABEL)),
        unknown(TIMEOUT_LABEL)
    );
    assert!(
        waiting(wait().timeout(secs(1)), TIMEOUT_LABEL)
            .build()
            .is_ok()
    );
    assert!(waiting(wait(), "go").build().is_ok());
}

#[test]
fn definition_refuses_sub_workflows_nested_too_deep() {
    let leaf = build(WorkflowDef::builder("leaf", 1).step(StepDef::local("x")));
    let middle = build(WorkflowDef::builder("middle", 1).step(StepDef::sub_workflow("m", leaf)));
    let top =
        || WorkflowDef::builder("top", 1).step(StepDef::sub_workflow("t", Arc::clone(&middle)));
    assert_eq!(top().build().unwrap().max_depth(), 8);
    assert!(top().max_depth(2).build().is_ok());
    assert_eq!(
        refused(top().max_depth(1)),
        DefinitionError::TooDeep {
            step: "t".into(),
            depth: 2,
            limit: 1
        }
    );
}

// ---- definitions as data ------------------------------------------------------------------

const REVIEW_JSON: &str = r#"{
    "name": "review",
    "version": 3,
    "tasks": [
        { "id": "fetch", "capabilities": ["http", "json"] },
        { "id": "d", "kind": "local", "depends_on": ["fetch"] },
        { "id": "yes", "capabilities": ["write"], "priority": "High",
          "depends_on": [{ "step": "d", "label": "yes" }] },
        { "id": "no", "depends_on": [{ "step": "d", "label": "no" }] },
        { "id": "done", "kind": "local", "join": "merge", "depends_on": ["yes", "no"] }
    ]
}"#;

#[test]
fn data_form_parses_into_the_expected_definition() {
    let parsed: WorkflowDef = serde_json::from_str(REVIEW_JSON).unwrap();
    let expected = WorkflowDef::builder("review", 3)
        .step(StepDef::agent("fetch").capabilities(["http", "json"]))
        .step(StepDef::local("d"))
        .step(
            StepDef::agent("yes")
                .capabilities(["write"])
                .priority(Priority::High),
        )
        .step(StepDef::agent("no"))
        .step(StepDef::local("done").join(Join::Merge))
        .edge("fetch", "d")
        .branch("d", "yes", "yes")
        .branch("d", "no", "no")
        .edge("yes", "done")
        .edge("no", "done")
        .build()
        .unwrap();
    assert_eq!(parsed.content_hash(), expected.content_hash());
    let steps =
        |def: &WorkflowDef| -> Vec<StepDef> { def.steps().map(|(_, s)| s.clone()).collect() };
    assert_eq!(steps(&parsed), steps(&expected));
    let edges = |def: &WorkflowDef| -> Vec<(StepId, StepId, Option<String>)> {
        def.edges()
            .map(|(a, b, l)| (a, b, l.map(str::to_string)))
            .collect()
    };
    assert_eq!(edges(&parsed), edges(&expected));
    assert!(parsed.is_decision(parsed.step_id("d").unwrap()));
    assert_eq!(parsed.output(), parsed.step_id("done"));
}

fn rich_definition() -> WorkflowDef {
    let child = build(WorkflowDef::builder("child", 2).step(StepDef::local("x")));
    WorkflowDef::builder("rich", 7)
        .deadline(secs(3600))
        .max_depth(3)
        .step(StepDef::local("start").name("Start here"))
        .step(StepDef::wait("w", ["approve", "reject"]).timeout(secs(60)))
        .step(
            StepDef::agent("work")
                .capabilities(["gpu"])
                .priority(Priority::Critical)
                .retry(fixed(2, 4))
                .timeout(secs(30))
                .compensable()
                .estimated_duration(secs(12)),
        )
        .step(StepDef::agent("fan").multi_instance(2))
        .step(StepDef::local("again").repeat(5))
        .step(StepDef::sub_workflow("child", child))
        .step(StepDef::local("pick").choice(Choice::Multi))
        .step(
            StepDef::local("join")
                .join(Join::Quorum {
                    n: 2,
                    cancel_remaining: true,
                })
                .inputs(["child", "again"]),
        )
        .step(StepDef::local("unused_entry"))
        // Not in target order: the data form groups edges by target.
        .edge("start", "pick")
        .edge("start", "w")
        .branch("w", "work", "approve")
        .branch("w", "fan", TIMEOUT_LABEL)
        .edge("work", "again")
        .edge("fan", "child")
        .branch("pick", "join", "go")
        .edge("again", "join")
        .edge("child", "join")
        .entries(["start", "unused_entry"])
        .output("join")
        .build()
        .unwrap()
}

#[test]
fn data_form_round_trip_keeps_the_content_hash() {
    let def = rich_definition();
    let json = serde_json::to_string(&def).unwrap();
    let back: WorkflowDef = serde_json::from_str(&json).unwrap();
    assert_eq!(back.content_hash(), def.content_hash());
    assert_eq!(serde_json::to_string(&back).unwrap(), json);
    let w = back.step(back.step_id("w").unwrap()).unwrap();
    assert_eq!(
        w.kind,
        StepKind::Wait {
            signals: vec!["approve".into(), "reject".into()],
            timeout: Some(secs(60))
        }
    );
    assert_eq!(w.timeout, None);
    assert_eq!(back.deadline(), Some(secs(3600)));
}

#[test]
fn invalid_data_gives_the_builders_error() {
    let cyclic = r#"{ "name": "bad", "version": 1, "tasks": [
        { "id": "a", "depends_on": ["b"] },
        { "id": "b", "depends_on": ["a"] } ] }"#;
    let built = refused(ab().edge("b", "a").edge("a", "b"));
    let err = serde_json::from_str::<WorkflowDef>(cyclic).unwrap_err();
    assert_eq!(built.to_string(), "cycle: a -> b -> a");
    assert!(err.to_string().starts_with(&built.to_string()), "{err}");

    let unknown = r#"{ "name": "bad", "version": 1, "tasks": [
        { "id": "a", "depends_on": [{ "step": "ghost", "label": "x" }] } ] }"#;
    let err = serde_json::from_str::<WorkflowDef>(unknown).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("edge `ghost` -> `a` names unknown step `ghost`"),
        "{err}"
    );
}

#[test]
fn checkpoint_resumes_only_under_the_same_definition() {
    let two = |version, priority| {
        build(
            WorkflowDef::builder("two", version)
                .step(StepDef::local("a"))
                .step(StepDef::local("b").priority(priority))
                .edge("a", "b"),
        )
    };
    let (v1, v2) = (two(1, Priority::Normal), two(2, Priority::Normal));
    let mut h = Host::with_input(Arc::clone(&v1), None).hold(&["b"]);
    assert_eq!(h.go(), ["start a", "start b"]);
    let json = snapshot(&h.sim.machine);
    let checkpoint = || serde_json::from_str::<Checkpoint<String>>(&json).unwrap();

    let err = WorkflowRun::resume(Arc::clone(&v2), checkpoint()).unwrap_err();
    assert_eq!(
        err,
        RunError::DefinitionMismatch {
            expected_name: "two".into(),
            expected_version: 2,
            expected_hash: v2.content_hash(),
            found_name: "two".into(),
            found_version: 1,
            found_hash: v1.content_hash(),
        }
    );

    // Same name and version, other content.
    let edited = two(1, Priority::High);
    assert_ne!(edited.content_hash(), v1.content_hash());
    let err = WorkflowRun::resume(edited, checkpoint()).unwrap_err();
    assert!(matches!(
        err,
        RunError::DefinitionMismatch {
            found_version: 1,
            expected_version: 1,
            ..
        }
    ));

    let mut resumed = Host::from_run(WorkflowRun::resume(v1, checkpoint()).unwrap());
    let token = h.token("b");
    resumed
        .sim
        .machine
        .succeed(token, StepOutput::new("B".into()), resumed.sim.now)
        .unwrap();
    assert_eq!(resumed.go(), ["finished"]);
    assert_eq!(resumed.sim.machine.output().map(String::as_str), Some("B"));
}
