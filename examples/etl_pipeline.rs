//! An ETL pipeline on the workflow engine.
//!
//! Three extractions run in parallel on agents with the `extract`
//! capability; the records are then cleaned, enriched and validated in
//! sequence (in-process steps); `validate` chooses a branch: `load` on an
//! agent with the `warehouse` capability, or `quarantine`. Two batches go
//! through: a clean one that is loaded, and one with too many bad records
//! that is quarantined. The host loop plays the agents itself, on a virtual
//! clock. The example checks its own results and exits non-zero if they are
//! wrong.
//!
//! `cargo run --release --example etl_pipeline`

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use taskweave::agent::AgentProfile;
use taskweave::resilience::Fixed;
use taskweave::scheduler::{Dispatcher, DispatcherConfig};
use taskweave::workflow::{
    EngineAction, RunOutcome, StepDef, StepFailure, StepInput, StepOutput, StepTask, WorkflowDef,
    WorkflowEngine,
};
use taskweave::{AgentId, Instant, Priority, WorkflowId};

type Records = Vec<i64>;

fn pipeline() -> Result<WorkflowDef, taskweave::Error> {
    let extract = |id: &str| {
        StepDef::agent(id)
            .capabilities(["extract"])
            .retry(Fixed::new(Duration::from_millis(50), 3).expect("3 attempts"))
            .timeout(Duration::from_secs(5))
    };
    Ok(WorkflowDef::builder("etl", 1)
        .step(extract("extract_crm"))
        .step(extract("extract_billing"))
        .step(extract("extract_web"))
        .step(StepDef::local("clean"))
        .step(StepDef::local("enrich"))
        .step(StepDef::local("validate"))
        .step(
            StepDef::agent("load")
                .capabilities(["warehouse"])
                .priority(Priority::High),
        )
        .step(StepDef::local("quarantine"))
        .edge("extract_crm", "clean")
        .edge("extract_billing", "clean")
        .edge("extract_web", "clean")
        .chain(["clean", "enrich", "validate"])
        .branch("validate", "load", "valid")
        .branch("validate", "quarantine", "invalid")
        .output("load")
        .build()?)
}

/// The in-process steps.
fn run_local(id: &str, input: &StepInput<Records>) -> Result<StepOutput<Records>, StepFailure> {
    let records: Records = input
        .inputs
        .iter()
        .flat_map(|(_, r)| r.iter().copied())
        .collect();
    Ok(match id {
        // Drop malformed (negative) records, keeping a count of them.
        "clean" => {
            let bad = records.iter().filter(|&&r| r < 0).count() as i64;
            let mut good: Records = records.into_iter().filter(|&r| r >= 0).collect();
            good.push(-bad - 1); // trailer: -(bad + 1)
            StepOutput::new(good)
        }
        "enrich" => StepOutput::new(
            records
                .iter()
                .map(|&r| if r >= 0 { r * 10 } else { r })
                .collect(),
        ),
        "validate" => {
            // More than one bad record in five good ones: quarantine.
            let bad = -records.last().copied().unwrap_or(-1) - 1;
            let good = records.len() as i64 - 1;
            let label = if bad * 5 > good { "invalid" } else { "valid" };
            StepOutput::new(records).branch(label)
        }
        "quarantine" => StepOutput::new(records),
        other => return Err(StepFailure::fatal(format!("no local step {other}"))),
    })
}

/// The agents: extraction from a source (the billing source fails once),
/// and the warehouse load.
fn run_on_agent(
    id: &str,
    batch: usize,
    input: &StepInput<Records>,
) -> Result<StepOutput<Records>, StepFailure> {
    let source = |base: i64| -> Records {
        (0..5)
            .map(|i| {
                if batch == 1 && i % 2 == 0 {
                    -1
                } else {
                    base + i
                }
            })
            .collect()
    };
    match id {
        "extract_crm" => Ok(StepOutput::new(source(100))),
        "extract_billing" if input.attempt == 1 => Err(StepFailure::retryable("billing API 503")),
        "extract_billing" => Ok(StepOutput::new(source(200))),
        "extract_web" => Ok(StepOutput::new(source(300))),
        "load" => Ok(StepOutput::new(input.inputs[0].1.clone())),
        other => Err(StepFailure::fatal(format!("no agent step {other}"))),
    }
}

fn main() -> ExitCode {
    let def = match pipeline() {
        Ok(def) => Arc::new(def),
        Err(e) => {
            eprintln!("invalid pipeline: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The host owns the pool: agents are registered with it, and the
    // engine submits its agent steps to it.
    let mut pool: Dispatcher<StepTask> = Dispatcher::new(DispatcherConfig::default());
    let mut engine: WorkflowEngine<Records> = WorkflowEngine::new();
    let mut now = Instant::ZERO;
    let agents = [
        (1, vec!["extract"]),
        (2, vec!["extract"]),
        (3, vec!["warehouse"]),
    ];
    for (id, capabilities) in agents {
        let profile = AgentProfile::builder()
            .capabilities(capabilities)
            .capacity(2)
            .build()
            .expect("valid profile");
        pool.register_agent(AgentId::new(id), profile, now)
            .expect("fresh agent");
    }

    let batches: Vec<WorkflowId> = (0..2)
        .map(|_| engine.start(&mut pool, Arc::clone(&def), None, now))
        .collect();
    let batch_of = |run: WorkflowId| batches.iter().position(|&b| b == run).unwrap_or(0);
    let mut results = Vec::new();
    let mut retries = 0;
    loop {
        loop {
            // Every pool action goes through the engine; all are about its
            // steps here.
            while let Some(action) = pool.poll_action() {
                if let Some(other) = engine.handle_action(&mut pool, action) {
                    println!("  {other:?}");
                }
            }
            let Some(action) = engine.poll_action() else {
                break;
            };
            let step_key = |engine: &WorkflowEngine<Records>, run, step| {
                engine
                    .run(run)
                    .and_then(|r| r.definition().step(step))
                    .map(|s| s.id.clone())
                    .unwrap_or_default()
            };
            match action {
                EngineAction::Assign {
                    task,
                    agent,
                    token,
                    step,
                } => {
                    let id = step_key(&engine, step.run, step.step);
                    let input = engine.input(step.run, step.token).expect("live attempt");
                    let result = run_on_agent(&id, batch_of(step.run), &input);
                    if result.is_err() {
                        retries += 1;
                    }
                    println!(
                        "  t={:>4}ms  batch {}  {id:<16} on {agent}: {}",
                        now.as_nanos() / 1_000_000,
                        batch_of(step.run),
                        if result.is_ok() { "ok" } else { "failed" }
                    );
                    engine
                        .report(&mut pool, task, agent, token, result, now)
                        .expect("accepted");
                }
                EngineAction::RunLocal { run, step, token } => {
                    let id = step_key(&engine, run, step);
                    let input = engine.input(run, token).expect("live attempt");
                    let result = run_local(&id, &input);
                    println!(
                        "  t={:>4}ms  batch {}  {id:<16} in process",
                        now.as_nanos() / 1_000_000,
                        batch_of(run)
                    );
                    engine
                        .report_local(&mut pool, run, token, result, now)
                        .expect("accepted");
                }
                EngineAction::Finished {
                    run,
                    outcome,
                    output,
                } => results.push((batch_of(run), outcome, output)),
                other => println!("  {other:?}"),
            }
        }
        let wake = match (engine.poll_timeout(), pool.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match wake {
            Some(at) => {
                now = now.max(at);
                pool.handle_timeout(now);
                engine.handle_timeout(&mut pool, now);
            }
            None => break,
        }
    }

    results.sort_by_key(|(batch, _, _)| *batch);
    println!();
    for (batch, outcome, output) in &results {
        // The records carry a trailer, -(bad + 1): the good ones are the rest.
        let good = |records: &Records| records.iter().filter(|&&r| r >= 0).count();
        let outcome = outcome.describe(&def);
        match output {
            Some(records) => println!(
                "batch {batch}: {outcome}: loaded {} records into the warehouse",
                good(records)
            ),
            None => println!(
                "batch {batch}: {outcome}: quarantined (too many bad records), nothing loaded"
            ),
        }
    }
    let loaded = results
        .first()
        .is_some_and(|(_, o, out)| *o == RunOutcome::Succeeded && out.is_some());
    let quarantined = results.get(1).is_some_and(|(_, o, out)| {
        *o == RunOutcome::Succeeded && out.is_none() // the output step `load` was skipped
    });
    if results.len() == 2 && loaded && quarantined && retries == 2 {
        println!("batch 0 loaded, batch 1 quarantined, {retries} extraction retries: as expected");
        ExitCode::SUCCESS
    } else {
        eprintln!("unexpected results ({retries} retries)");
        ExitCode::FAILURE
    }
}
