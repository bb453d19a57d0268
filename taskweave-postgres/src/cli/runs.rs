//! `taskweave-pg runs [--state S]`: the hosted runs a replay of the
//! journal holds, active ones and the ends the leader still remembers.

use std::process::ExitCode;

use taskweave::cluster::RunEnd;
use taskweave::workflow::{
    FailureCause, FinishedRun, RunOutcome, WorkflowDef, WorkflowEngine, WorkflowRun,
};
use taskweave_postgres::PgStore;

use super::Payload;
use super::args::Args;
use super::replay::replay;
use super::run::describe;

const USAGE: &str = "\
usage: taskweave-pg runs [--state STATE]

Lists the runs the cluster's nodes host, as a replay of the journal has them:
one line per run, `workflow-N  NAME vV  STATE` (a finished run's line ends
as `run result` prints it). Active runs come first, by id, then the finished
runs the leader still remembers (the last 10,000 of a day), oldest end first.

--state keeps one kind:
  running, compensating      active runs (active: both)
  succeeded, failed, compensated, compensation-failed
                             finished runs by outcome (finished: all four)
  cancelled                  finished runs ended by a cancel

Needs a node's login (it reads the journal). Exits 0, also when no run is
listed.";

/// The kinds `--state` takes.
const STATES: [&str; 9] = [
    "running",
    "compensating",
    "active",
    "succeeded",
    "failed",
    "compensated",
    "compensation-failed",
    "finished",
    "cancelled",
];

pub(crate) fn run(raw: &[String]) -> Result<ExitCode, String> {
    let args = Args::parse(raw, USAGE, &["--db", "--state"])?;
    if args.wants_help() {
        say!("{USAGE}");
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(word) = args.positional.first() {
        return Err(args.wrong(&format!("runs takes no {word:?}: filter with --state")));
    }
    let state = args.value("--state");
    if let Some(state) = state.filter(|s| !STATES.contains(s)) {
        return Err(args.wrong(&format!(
            "--state {state:?} is not one of {}",
            STATES.join(", ")
        )));
    }
    let keep = |kinds: &[&str]| state.is_none_or(|s| kinds.contains(&s));
    let mut store = PgStore::<Payload>::connect(&args.db()?).map_err(|e| e.to_string())?;
    let (auditor, _) = replay(&mut store, "runs")?;
    let Some(runs) = auditor.state().runs else {
        say!("no runs: the journal holds no hosted runs");
        return Ok(ExitCode::SUCCESS);
    };
    let engine = runs
        .engine()
        .map_err(|e| format!("the replayed runs: {e}"))?;
    let mut active: Vec<&WorkflowRun<Payload>> = engine.runs().collect();
    active.sort_by_key(|run| run.id());
    let mut listed = 0;
    for run in active {
        let kind = active_kind(run);
        if keep(&[kind, "active"]) {
            let def = run.definition();
            say!("{}  {} v{}  {kind}", run.id(), def.name(), def.version());
            listed += 1;
        }
    }
    for end in engine.remembered_ends() {
        let (kind, cancelled) = finished_kind(end);
        let mut kinds = vec![kind, "finished"];
        if cancelled {
            kinds.push("cancelled");
        }
        if keep(&kinds) {
            say!("{}", finished_line(end, definition_of(&engine, end)));
            listed += 1;
        }
    }
    if listed == 0 {
        say!(
            "no runs{}",
            state.map_or(String::new(), |s| format!(" {s}"))
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn active_kind(run: &WorkflowRun<Payload>) -> &'static str {
    match run.is_compensating() {
        true => "compensating",
        false => "running",
    }
}

/// A finished run's kind, and whether a cancel ended it.
fn finished_kind(end: &FinishedRun<Payload>) -> (&'static str, bool) {
    let (kind, cause) = match &end.outcome {
        RunOutcome::Succeeded => ("succeeded", None),
        RunOutcome::Failed(cause) => ("failed", Some(cause)),
        RunOutcome::Compensated(cause) => ("compensated", Some(cause)),
        RunOutcome::CompensationFailed { cause, .. } => ("compensation-failed", Some(cause)),
    };
    (kind, matches!(cause, Some(FailureCause::Cancelled)))
}

/// `workflow-N  NAME vV  END`: the end with its steps named by their
/// keys in `def` (the definition it ran, when still registered), else as
/// `run result` prints it; the name left out for an end remembered from
/// before names were kept.
pub(crate) fn finished_line(end: &FinishedRun<Payload>, def: Option<&WorkflowDef>) -> String {
    let outcome = match def {
        Some(def) => {
            let outcome = end.outcome.describe(def);
            match &end.output {
                Some(output) => format!("{outcome}, output: {output}"),
                None => outcome,
            }
        }
        None => describe(&RunEnd {
            run: end.run,
            outcome: end.outcome.clone(),
            output: end.output.clone(),
            tenant: None,
        }),
    };
    match end.workflow.as_str() {
        "" => format!("{}  {outcome}", end.run),
        name => format!("{}  {name} v{}  {outcome}", end.run, end.version),
    }
}

/// The registered definition a finished run ran, if the engine still
/// holds it.
pub(crate) fn definition_of<'e>(
    engine: &'e WorkflowEngine<Payload>,
    end: &FinishedRun<Payload>,
) -> Option<&'e WorkflowDef> {
    engine
        .versions(&end.workflow)
        .find(|def| def.version() == end.version)
        .map(|def| &**def)
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskweave::{Instant, StepId, WorkflowId};

    fn end(workflow: &str, outcome: RunOutcome) -> FinishedRun<Payload> {
        FinishedRun {
            run: WorkflowId::new(7),
            workflow: workflow.into(),
            version: 2,
            outcome,
            output: None,
            at: Instant::ZERO,
        }
    }

    #[test]
    fn a_finished_run_is_named_and_classed_by_its_outcome() {
        let cancelled = end("order", RunOutcome::Compensated(FailureCause::Cancelled));
        assert_eq!(finished_kind(&cancelled), ("compensated", true));
        assert_eq!(
            finished_line(&cancelled, None),
            "workflow-7  order v2  compensated after cancelled"
        );
        let failed = FailureCause::StepFailed {
            step: StepId::new(1),
            reason: "no stock".into(),
        };
        let pending = RunOutcome::CompensationFailed {
            cause: failed.clone(),
            pending: Vec::new(),
        };
        assert_eq!(
            finished_kind(&end("order", pending)),
            ("compensation-failed", false)
        );
        // An end remembered from an older snapshot has no name.
        let old = end("", RunOutcome::Failed(failed.clone()));
        assert_eq!(finished_kind(&old), ("failed", false));
        assert_eq!(
            finished_line(&old, None),
            "workflow-7  failed: step step-1 failed: no stock"
        );
        // With its definition, a step is named by its key.
        let def = WorkflowDef::builder("order", 2)
            .step(taskweave::workflow::StepDef::agent("reserve"))
            .step(taskweave::workflow::StepDef::agent("charge"))
            .build()
            .unwrap();
        let charge = def.step_id("charge").unwrap();
        let failed = FailureCause::StepFailed {
            step: charge,
            reason: "no stock".into(),
        };
        let mut named = end("order", RunOutcome::Failed(failed));
        named.output = Some(serde_json::json!({"n": 1}));
        assert_eq!(
            finished_line(&named, Some(&def)),
            "workflow-7  order v2  failed: step `charge` failed: no stock, output: {\"n\":1}"
        );
    }
}
