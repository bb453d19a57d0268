//! `taskweave-pg run` (start, signal, cancel, result) and
//! `taskweave-pg signal`: the runs the cluster's nodes host.

use std::process::ExitCode;
use std::time::Duration;

use taskweave::WorkflowId;
use taskweave::cluster::{RunCommand, RunEnd, Verdict};
use taskweave::workflow::{FailureCause, RunOutcome};
use taskweave_postgres::PgClient;

use super::Payload;
use super::args::Args;
use super::privilege::{SUBMITTER, hint};

const USAGE: &str = "\
usage: taskweave-pg run start WORKFLOW [--version V] [--id N] [--input JSON] [--wait SECONDS]
       taskweave-pg run signal RUN NAME [JSON] [--wait SECONDS]
       taskweave-pg run cancel RUN [--wait SECONDS]
       taskweave-pg run result RUN... [--wait SECONDS]
       taskweave-pg run show RUN [--mermaid] [--gantt]

The workflow runs the cluster's nodes host (register a definition first with
`taskweave-pg workflow register`). Each command is journaled by the leader
before it is acted on; a run outlives every node and client.

  start   starts a run of WORKFLOW (the highest registered version, or --version)
          with --input as its input; prints `workflow-N` (the run's id). With
          --id N the id is an idempotency key: a run with it, active or
          finished lately, is named instead of starting another. With --wait,
          waits up to SECONDS for the run's end, printed as by `result`.
  signal  sends the signal NAME, carrying JSON if given, to the run's
          waiting steps; a finished or unknown run is refused, saying so.
  cancel  cancels the run: it compensates what it completed, then ends.
  result  prints how each run ended: `workflow-N: succeeded, output: JSON`,
          `workflow-N: failed: WHY`, `workflow-N: compensated after WHY`, or
          `workflow-N: not ended` (also for an unknown id, and for an end the
          leader forgot behind a snapshot: read results within a snapshot
          interval). Waits up to --wait seconds (default 0) for every run.

  show    prints the run as a replay of the journal has it: each step's state,
          attempts and output while it runs (with --mermaid, a flowchart
          coloured by state; with --gantt, a Mermaid Gantt chart of its
          attempts), or its end once it finished; needs a node login.

RUN is `workflow-N`, as start printed it, or N. --wait defaults to 30 seconds
for a verdict. Exits 0 when every command was accepted (or every run ended),
1 otherwise. A submitter's login may run these.";

pub(crate) fn run(raw: &[String]) -> Result<ExitCode, String> {
    let args = Args::parse(
        raw,
        USAGE,
        &[
            "--db",
            "--wait",
            "--version",
            "--id",
            "--input",
            "--mermaid!",
            "--gantt!",
        ],
    )?;
    if args.wants_help() {
        say!("{USAGE}");
        return Ok(ExitCode::SUCCESS);
    }
    let (action, words) = args
        .positional
        .split_first()
        .ok_or_else(|| args.wrong("name what to do: start, signal, cancel, result or show"))?;
    match action.as_str() {
        "start" => start(&args, words),
        "signal" => signal_run(&args, words),
        "cancel" => {
            let [run] = words else {
                return Err(args.wrong("cancel takes one run"));
            };
            let run = run_id(run).map_err(|why| args.wrong(&why))?;
            command(
                &args,
                &run.to_string(),
                RunCommand::Cancel(run),
                "cancelled",
            )
        }
        "result" => result(&args, words),
        "show" => {
            let [run] = words else {
                return Err(args.wrong("show takes one run"));
            };
            let run = run_id(run).map_err(|why| args.wrong(&why))?;
            super::run_show::show(&args, run)
        }
        other => Err(args.wrong(&format!("unknown run command {other:?}"))),
    }
}

/// `taskweave-pg signal RUN NAME [JSON]`: `run signal`, shorter.
pub(crate) fn signal(raw: &[String]) -> Result<ExitCode, String> {
    let args = Args::parse(raw, USAGE, &["--db", "--wait"])?;
    if args.wants_help() {
        say!("{USAGE}");
        return Ok(ExitCode::SUCCESS);
    }
    signal_run(&args, &args.positional)
}

fn start(args: &Args, words: &[String]) -> Result<ExitCode, String> {
    let [workflow] = words else {
        return Err(args.wrong("start takes one workflow name"));
    };
    let (version, input) = version_and_input(args)?;
    let id = args
        .value("--id")
        .map(|id| run_id(id).map_err(|why| args.wrong(&why)))
        .transpose()?;
    let mut client = connect(args)?;
    let posted = client
        .run(RunCommand::Start {
            workflow: workflow.clone(),
            version,
            id,
            input,
        })
        .map_err(hint("run start", SUBMITTER))?;
    let run = match verdict(&mut client, args, posted)? {
        Some(Verdict::Run(run)) => run,
        other => return Ok(refused(workflow, other)),
    };
    match args.value("--wait") {
        None => {
            say!("{run}");
            Ok(ExitCode::SUCCESS)
        }
        Some(_) => print_ends(&mut client, args, &[run]),
    }
}

fn signal_run(args: &Args, words: &[String]) -> Result<ExitCode, String> {
    let (run, name, payload) = match words {
        [run, name] => (run, name, None),
        [run, name, payload] => (run, name, Some(json(args, payload)?)),
        _ => return Err(args.wrong("signal takes a run, a signal's name and maybe its JSON")),
    };
    let run = run_id(run).map_err(|why| args.wrong(&why))?;
    let signal = RunCommand::Signal {
        run,
        name: name.clone(),
        payload,
    };
    command(args, &run.to_string(), signal, &format!("signalled {name}"))
}

fn result(args: &Args, words: &[String]) -> Result<ExitCode, String> {
    if words.is_empty() {
        return Err(args.wrong("name at least one run"));
    }
    let runs = words
        .iter()
        .map(|word| run_id(word).map_err(|why| args.wrong(&why)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut client = connect(args)?;
    print_ends(&mut client, args, &runs)
}

/// Posts `command` about `what`, waits for its verdict, and prints
/// `what: accepted` or why it was refused.
pub(crate) fn command(
    args: &Args,
    what: &str,
    command: RunCommand<Payload>,
    accepted: &str,
) -> Result<ExitCode, String> {
    let mut client = connect(args)?;
    let posted = client.run(command).map_err(hint("run", SUBMITTER))?;
    match verdict(&mut client, args, posted)? {
        Some(Verdict::Accepted) => {
            say!("{what}: {accepted}");
            Ok(ExitCode::SUCCESS)
        }
        other => Ok(refused(what, other)),
    }
}

fn verdict(
    client: &mut PgClient<Payload>,
    args: &Args,
    posted: u64,
) -> Result<Option<Verdict>, String> {
    let wait = Duration::from_secs(args.parsed("--wait", 30)?);
    let verdicts = client
        .wait_verdicts(&[posted], wait)
        .map_err(hint("run", SUBMITTER))?;
    Ok(verdicts.into_iter().next().flatten())
}

/// Prints why a command got no acceptance; exit status 1.
fn refused(what: &str, verdict: Option<Verdict>) -> ExitCode {
    match verdict {
        Some(Verdict::Refused(why)) => say!("{what}: refused: {why}"),
        Some(other) => say!("{what}: unexpected verdict {other:?}"),
        None => say!(
            "{what}: no verdict in time: is a node running? (the command stays posted and \
             applies when a leader reads it)"
        ),
    }
    ExitCode::from(1)
}

fn print_ends(
    client: &mut PgClient<Payload>,
    args: &Args,
    runs: &[WorkflowId],
) -> Result<ExitCode, String> {
    let wait = Duration::from_secs(args.parsed("--wait", 0)?);
    let ends = client
        .wait_run_ends(runs, wait)
        .map_err(hint("run result", SUBMITTER))?;
    let mut all = true;
    for (run, end) in runs.iter().zip(ends) {
        match end {
            Some(end) => say!("{run}: {}", describe(&end)),
            None => {
                all = false;
                say!("{run}: not ended");
            }
        }
    }
    Ok(if all {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// A run's end in words (steps by their ids: the end carries no
/// definition).
pub(crate) fn describe(end: &RunEnd<Payload>) -> String {
    let cause = |cause: &FailureCause| match cause {
        FailureCause::StepFailed { step, reason } => format!("step {step} failed: {reason}"),
        FailureCause::Cancelled => "cancelled".into(),
        FailureCause::DeadlineExceeded => "its deadline passed".into(),
        FailureCause::Unservable { name, version, .. } => {
            format!("no registered definition serves {name} v{version}")
        }
    };
    let outcome = match &end.outcome {
        RunOutcome::Succeeded => "succeeded".to_string(),
        RunOutcome::Failed(why) => format!("failed: {}", cause(why)),
        RunOutcome::Compensated(why) => format!("compensated after {}", cause(why)),
        RunOutcome::CompensationFailed {
            cause: why,
            pending,
        } => format!(
            "failed: {}; {} compensations could not be done and need a hand",
            cause(why),
            pending.len()
        ),
    };
    match &end.output {
        Some(output) => format!("{outcome}, output: {output}"),
        None => outcome,
    }
}

fn connect(args: &Args) -> Result<PgClient<Payload>, String> {
    PgClient::connect(&args.db()?).map_err(|e| e.to_string())
}

/// A start's `--version` (the highest registered when absent) and
/// `--input`.
pub(crate) fn version_and_input(args: &Args) -> Result<(Option<u32>, Option<Payload>), String> {
    let version = args
        .value("--version")
        .map(|v| {
            v.parse::<u32>()
                .map_err(|_| args.wrong(&format!("--version {v:?} is not a version")))
        })
        .transpose()?;
    let input = args
        .value("--input")
        .map(|text| json(args, text))
        .transpose()?;
    Ok((version, input))
}

fn json(args: &Args, text: &str) -> Result<Payload, String> {
    serde_json::from_str(text).map_err(|e| args.wrong(&format!("{text:?} is not JSON: {e}")))
}

/// A run id as `start` printed it (`workflow-N`) or `N`.
fn run_id(word: &str) -> Result<WorkflowId, String> {
    let number = word.strip_prefix("workflow-").unwrap_or(word);
    number.parse::<u64>().map(WorkflowId::new).map_err(|_| {
        format!("{word:?} is not a run id (workflow-N, as `run start` printed it, or N)")
    })
}
