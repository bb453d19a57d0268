//! An order saga: reserve inventory, take payment and check for fraud in
//! parallel, then fulfil and notify. When the payment fails, the fraud
//! check still running is cancelled and the inventory reservation is
//! compensated.
//!
//! The host plays every service on a virtual clock (each step takes a
//! fixed time), drives one `WorkflowRun` per order, and prints the
//! definition as a Mermaid flowchart, the failed run coloured by step state,
//! and each run's timeline as a Mermaid Gantt chart. It checks the outcomes
//! and exits non-zero if they are not the expected ones.
//!
//! `cargo run --release --example order_saga`

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use taskweave::workflow::{
    RunAction, RunOutcome, StepDef, StepFailure, StepOutput, WorkflowDef, WorkflowRun,
    mermaid_flowchart, mermaid_gantt, mermaid_run_flowchart,
};
use taskweave::{AttemptToken, Instant, WorkflowId};

fn order_workflow() -> Result<WorkflowDef, taskweave::Error> {
    Ok(WorkflowDef::builder("order", 1)
        .step(
            StepDef::agent("inventory")
                .capabilities(["warehouse"])
                .compensable(),
        )
        .step(
            StepDef::agent("payment")
                .capabilities(["payments"])
                .compensable(),
        )
        .step(StepDef::agent("fraud_check").capabilities(["risk"]))
        .step(
            StepDef::agent("fulfilment")
                .capabilities(["warehouse"])
                .compensable(),
        )
        .step(StepDef::local("notification"))
        .edge("inventory", "fulfilment")
        .edge("payment", "fulfilment")
        .edge("fraud_check", "fulfilment")
        .edge("fulfilment", "notification")
        .build()?)
}

/// How long each service takes, in milliseconds.
fn duration_ms(step: &str) -> u64 {
    match step {
        "inventory" => 30,
        "payment" => 80,
        "fraud_check" => 120,
        "fulfilment" => 200,
        _ => 10,
    }
}

/// Work in progress on the virtual clock: (finish time, token, is a
/// compensation).
type Agenda = BinaryHeap<Reverse<(Instant, AttemptToken, bool)>>;

/// Runs one order to its end; `card_declined` makes the payment fail.
fn run_order(def: &Arc<WorkflowDef>, id: u64, card_declined: bool) -> WorkflowRun<String> {
    let start = Instant::from_secs(id);
    let mut run = WorkflowRun::new(Arc::clone(def), WorkflowId::new(id), None, start);
    let mut agenda = Agenda::new();
    let mut cancelled = BTreeSet::new();
    let mut now = start;
    loop {
        while let Some(action) = run.poll_action() {
            match action {
                RunAction::Start { step, token, .. } => {
                    let name = &def.step(step).expect("own step").id;
                    let done = now.saturating_add(Duration::from_millis(duration_ms(name)));
                    agenda.push(Reverse((done, token, false)));
                }
                RunAction::Compensate { token, .. } => {
                    let done = now.saturating_add(Duration::from_millis(15));
                    agenda.push(Reverse((done, token, true)));
                }
                RunAction::Cancel {
                    step,
                    token,
                    reason,
                } => {
                    println!(
                        "  order {id}: cancel {} ({reason:?})",
                        def.step(step).expect("own step").id
                    );
                    cancelled.insert(token);
                }
                RunAction::Expand { .. } => unreachable!("no multi-instance step"),
                RunAction::Finished => return run,
            }
        }
        let Some(Reverse((at, token, compensation))) = agenda.pop() else {
            return run;
        };
        now = at;
        if cancelled.contains(&token) {
            continue;
        }
        let input = run.input(token).expect("own attempt");
        let name = def.step(input.step).expect("own step").id.clone();
        let accepted = if compensation {
            println!("  order {id}: compensate {name}");
            run.compensated(token, Ok(()), now)
        } else if name == "payment" && card_declined {
            run.fail(token, StepFailure::fatal("card declined"), now)
        } else {
            run.succeed(token, StepOutput::new(format!("{name} done")), now)
        };
        accepted.expect("the run accepts its own attempts");
    }
}

fn main() -> ExitCode {
    let def = match order_workflow() {
        Ok(def) => Arc::new(def),
        Err(e) => {
            eprintln!("invalid workflow: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "The order workflow (Mermaid):\n\n{}",
        mermaid_flowchart(&def)
    );

    let paid = run_order(&def, 1, false);
    let declined = run_order(&def, 2, true);
    for run in [&paid, &declined] {
        let outcome = run.outcome().map(|o| o.describe(&def));
        let outcome = outcome.unwrap_or_else(|| "still running".into());
        println!("\norder {}: {outcome}", run.id().get());
    }
    println!(
        "\nThe declined order, coloured by step state:\n\n{}",
        mermaid_run_flowchart(&declined)
    );
    for run in [&paid, &declined] {
        let end = run
            .timeline()
            .filter_map(|e| e.end)
            .max()
            .unwrap_or(run.started_at());
        println!(
            "\nTimeline of order {}:\n\n{}",
            run.id().get(),
            mermaid_gantt(run, end)
        );
    }

    let compensated: Vec<String> = declined
        .timeline()
        .filter(|entry| entry.compensation)
        .map(|entry| def.step(entry.step).expect("own step").id.clone())
        .collect();
    let ok = paid.outcome() == Some(&RunOutcome::Succeeded)
        && matches!(declined.outcome(), Some(RunOutcome::Compensated(_)))
        && compensated == ["inventory"];
    if ok {
        println!("order 1 fulfilled; order 2 declined and its inventory released: as expected");
        ExitCode::SUCCESS
    } else {
        eprintln!("unexpected outcome; compensated: {compensated:?}");
        ExitCode::FAILURE
    }
}
