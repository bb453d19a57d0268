//! `taskweave-pg run show RUN`: a hosted run as the journal has it — its
//! steps, their states, attempts and outputs, and Mermaid pictures (a
//! flowchart, a Gantt chart).

use std::process::ExitCode;

use taskweave::WorkflowId;
use taskweave::workflow::{mermaid_gantt, mermaid_run_flowchart};
use taskweave_postgres::PgStore;

use super::Payload;
use super::args::Args;
use super::replay::replay;
use super::runs::{definition_of, finished_line};

/// Prints `run` from a replay of the journal: an active run step by step
/// (with `--mermaid`, its flowchart coloured by state; with `--gantt`, its
/// attempts on a time line), a finished one the leader still remembers by
/// its end. Exits 1 for a run the journal does
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
        let timeline: Vec<_> = active.timeline().collect();
        for (id, step) in def.steps() {
            let mut state = active.step_state(id).map_or_else(
                || "not reached".to_string(),
                |s| format!("{s:?}").to_lowercase(),
            );
            let tried = |compensation: bool| {
                timeline
                    .iter()
                    .filter(|e| e.step == id && e.compensation == compensation)
                    .count()
            };
            state.push_str(&attempts(tried(false), tried(true)));
            match active.step_output(id) {
                Some(output) => say!("  {}: {state}, output: {output}", step.id),
                None => say!("  {}: {state}", step.id),
            }
        }
        if args.switch("--mermaid") {
            say!("{}", mermaid_run_flowchart(active));
        }
        if args.switch("--gantt") {
            say!("{}", mermaid_gantt(active, engine.latest_now()));
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

/// A step's attempts in words, after its state: nothing for none.
fn attempts(tries: usize, compensations: usize) -> String {
    let count = |n: usize, what: &str| match n {
        1 => format!(", 1 {what}"),
        n => format!(", {n} {what}s"),
    };
    match (tries, compensations) {
        (0, 0) => String::new(),
        (tries, 0) => count(tries, "attempt"),
        (tries, compensations) => {
            count(tries, "attempt") + &count(compensations, "compensation attempt")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::attempts;

    #[test]
    fn attempts_are_counted_in_words() {
        assert_eq!(attempts(0, 0), "");
        assert_eq!(attempts(1, 0), ", 1 attempt");
        assert_eq!(attempts(3, 0), ", 3 attempts");
        assert_eq!(attempts(2, 1), ", 2 attempts, 1 compensation attempt");
        assert_eq!(attempts(1, 2), ", 1 attempt, 2 compensation attempts");
    }
}
