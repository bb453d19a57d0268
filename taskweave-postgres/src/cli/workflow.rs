//! `taskweave-pg workflow register`: a workflow definition for the runs
//! the cluster's nodes host.

use std::process::ExitCode;
use std::time::Duration;

use taskweave::cluster::{RunCommand, Verdict};
use taskweave::workflow::WorkflowDef;
use taskweave_postgres::PgClient;

use super::Payload;
use super::args::Args;
use super::privilege::{SUBMITTER, hint};

const USAGE: &str = "\
usage: taskweave-pg workflow register FILE.json [--wait SECONDS]

Registers the workflow definition in FILE.json (`-` reads stdin) with the
cluster: a name, a version, and its steps as data, e.g.

  {\"name\": \"order\", \"version\": 1,
   \"tasks\": [{\"id\": \"reserve\", \"compensable\": true},
             {\"id\": \"charge\", \"depends_on\": [\"reserve\"]}]}

The definition is checked here first (a cycle, an unknown step, … is named);
the leader then journals it. The same definition again changes nothing;
another one under a registered name and version is refused: register a new
version. A hosted run executes no host code, so a local, multi-instance or
compensable sub-workflow step is refused, by name. Waits up to --wait seconds
(default 30) for the leader's verdict. A submitter's login may register.";

pub(crate) fn run(raw: &[String]) -> Result<ExitCode, String> {
    let args = Args::parse(raw, USAGE, &["--db", "--wait"])?;
    if args.wants_help() {
        say!("{USAGE}");
        return Ok(ExitCode::SUCCESS);
    }
    let [action, file] = &args.positional[..] else {
        return Err(args.wrong("usage: workflow register FILE.json"));
    };
    if action != "register" {
        return Err(args.wrong(&format!("unknown workflow command {action:?}")));
    }
    let text = match file.as_str() {
        "-" => std::io::read_to_string(std::io::stdin()),
        path => std::fs::read_to_string(path),
    }
    .map_err(|e| format!("cannot read {file}: {e}"))?;
    let def: WorkflowDef = serde_json::from_str(&text)
        .map_err(|e| format!("{file} is not a workflow definition: {e}"))?;
    let named = format!("{} v{}", def.name(), def.version());
    let wait = Duration::from_secs(args.parsed("--wait", 30)?);
    let mut client: PgClient<Payload> =
        PgClient::connect(&args.db()?).map_err(|e| e.to_string())?;
    let posted = client
        .run(RunCommand::Register(Box::new(def)))
        .map_err(hint("workflow register", SUBMITTER))?;
    let verdict = client
        .wait_verdicts(&[posted], wait)
        .map_err(hint("workflow register", SUBMITTER))?;
    match verdict.into_iter().next().flatten() {
        Some(Verdict::Accepted) => {
            say!("{named}: registered");
            Ok(ExitCode::SUCCESS)
        }
        Some(Verdict::Refused(why)) => {
            say!("{named}: refused: {why}");
            Ok(ExitCode::from(1))
        }
        Some(other) => {
            say!("{named}: unexpected verdict {other:?}");
            Ok(ExitCode::from(1))
        }
        None => {
            say!(
                "{named}: no verdict within {wait:?}: is a node running? (the registration \
                 stays posted and applies when a leader reads it)"
            );
            Ok(ExitCode::from(1))
        }
    }
}
