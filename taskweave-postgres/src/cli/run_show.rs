//! `taskweave-pg run show RUN`: a hosted run as the journal has it — its
//! steps, their states and outputs, and a Mermaid picture.

use std::process::ExitCode;

use taskweave::WorkflowId;
use taskweave::workflow::mermaid_run_flowchart;
use taskweave_postgres::PgStore;

use super::Payload;
use super::args::Args;
use super::replay::replay;
use super::runs::{definition_of, finished_line};

/// Prints `run` from a replay of the journal: an active run step by step
/// (with `--mermaid`, its flowchart coloured by state), a finished one the
/// leader still remembers by its end. Exits 1 for a run the journal does
/// not know.
pub(crate) fn show(args: &Args, run: WorkflowId) -> Result<ExitCode, String> {
    let mut store = PgStore::<Payload>::connect(&args.db()?).map_err(|e| e.to_string())?;
    let (auditor, _) = replay(&mut store, "run show")?;
    let Some(runs) = auditor.state().runs else {
        say!("{run}: the journal holds no hosted runs");
        return Ok(ExitCode::from(1));
    };
    let engine = runs
        .engine()
        .map_err(|e| format!("the replayed runs: {e}"))?;
    if let Some(active) = engine.run(run) {
        let def = active.definition();
        let state = match active.is_compensating() {
            true => "compensating",
            false => "running",
        };
        say!("{run}: {} v{}, {state}", def.name(), def.version());
        for (id, step) in def.steps() {
            let state = active.step_state(id).map_or_else(
                || "not reached".to_string(),
                |s| format!("{s:?}").to_lowercase(),
            );
            match active.step_output(id) {
                Some(output) => say!("  {}: {state}, output: {output}", step.id),
                None => say!("  {}: {state}", step.id),
            }
        }
        if args.switch("--mermaid") {
            say!("{}", mermaid_run_flowchart(active));
        }
        return Ok(ExitCode::SUCCESS);
    }
    match engine.finished_run(run) {
        Some(finished) => {
            say!(
                "{}",
                finished_line(finished, definition_of(&engine, finished))
            );
            Ok(ExitCode::SUCCESS)
        }
        None => {
            say!("{run}: unknown (never started, or finished and forgotten)");
            Ok(ExitCode::from(1))
        }
    }
}
