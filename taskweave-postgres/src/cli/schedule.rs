//! `taskweave-pg schedule add|list|pause|resume|trigger|remove`: the
//! schedules the cluster's nodes host, each fire a hosted run.

use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use taskweave::Instant;
use taskweave::cluster::{RunCommand, ScheduleCommand, ScheduledStart, SchedulesSnapshot};
use taskweave::schedule::{OverlapPolicy, RunKey, ScheduleSpec, Schedules};
use taskweave_postgres::PgStore;

use super::Payload;
use super::args::Args;
use super::log::timestamp;
use super::replay::replay;
use super::run::{command, version_and_input};

const USAGE: &str = "\
usage: taskweave-pg schedule add ID WORKFLOW (--every SECONDS | --cron PATTERN)
                                  [--overlap POLICY] [--version V] [--input JSON]
       taskweave-pg schedule list
       taskweave-pg schedule pause|resume|trigger|remove ID

Schedules the cluster's nodes host: each fire starts a run of WORKFLOW (the
highest registered version when it fires, or --version) with --input, whose
id is made of the schedule's id and the fire, so a fire starts one run
across failovers and restarts. Each command is journaled by the leader
before it is acted on.

  add      adds schedule ID: every SECONDS seconds (on multiples of it since
           the Unix epoch), or at the matches of a cron PATTERN read on UTC
           (\"0 3 * * *\": 03:00 every day). --overlap says what a fire does
           while the schedule's run goes: skip (the default), buffer-one,
           buffer-all, cancel-other or allow-all. Fires missed while no node
           led start late within a minute, and are counted missed after.
  list     prints each schedule as a replay of the journal has it:
           `ID  WORKFLOW  every 60s|cron \"P\"  POLICY  active|paused`, its next
           fire, what it did with its fires, and its runs going
           (needs a node's login).
  pause    stops firing ID until resumed; its runs go on.
  resume   fires ID again from its next fire; the pause's fires are skipped.
  trigger  fires ID now, under its overlap policy (also while paused).
  remove   removes ID; its runs go on.

--wait SECONDS (default 30) bounds the wait for a command's verdict. Exits 0
when the command was accepted, 1 when refused. A submitter's login may run
every command but list.";

/// The overlap policies by the names `--overlap` takes.
const OVERLAPS: [(&str, OverlapPolicy); 5] = [
    ("skip", OverlapPolicy::Skip),
    ("buffer-one", OverlapPolicy::BufferOne),
    ("buffer-all", OverlapPolicy::BufferAll),
    ("cancel-other", OverlapPolicy::CancelOther),
    ("allow-all", OverlapPolicy::AllowAll),
];

pub(crate) fn run(raw: &[String]) -> Result<ExitCode, String> {
    let args = Args::parse(
        raw,
        USAGE,
        &[
            "--db",
            "--wait",
            "--every",
            "--cron",
            "--overlap",
            "--version",
            "--input",
        ],
    )?;
    if args.wants_help() {
        say!("{USAGE}");
        return Ok(ExitCode::SUCCESS);
    }
    let (action, words) = args.positional.split_first().ok_or_else(|| {
        args.wrong("name what to do: add, list, pause, resume, trigger or remove")
    })?;
    let (verb, made): (&str, fn(String) -> ScheduleCommand<Payload>) = match action.as_str() {
        "add" => return add(&args, words),
        "list" if words.is_empty() => return list(&args),
        "list" => return Err(args.wrong("list takes no argument")),
        "pause" => ("paused", ScheduleCommand::Pause),
        "resume" => ("resumed", ScheduleCommand::Resume),
        "trigger" => ("triggered", ScheduleCommand::Trigger),
        "remove" => ("removed", ScheduleCommand::Remove),
        other => return Err(args.wrong(&format!("unknown schedule command {other:?}"))),
    };
    let [id] = words else {
        return Err(args.wrong(&format!("{action} takes one schedule id")));
    };
    command(&args, id, RunCommand::Schedule(made(id.clone())), verb)
}

fn add(args: &Args, words: &[String]) -> Result<ExitCode, String> {
    let [id, workflow] = words else {
        return Err(args.wrong("add takes a schedule id and a workflow name"));
    };
    let builder = match (args.value("--every"), args.value("--cron")) {
        (Some(secs), None) => {
            let secs = secs.parse::<u64>().ok().filter(|&s| s > 0).ok_or_else(|| {
                args.wrong(&format!(
                    "--every {secs:?} is not a whole number of seconds above 0"
                ))
            })?;
            ScheduleSpec::every(Duration::from_secs(secs))
        }
        (None, Some(pattern)) => ScheduleSpec::cron(pattern),
        _ => return Err(args.wrong("give one of --every SECONDS and --cron PATTERN")),
    };
    let overlap = args.value("--overlap").unwrap_or("skip");
    let overlap = OVERLAPS
        .iter()
        .find(|(name, _)| *name == overlap)
        .map(|&(_, policy)| policy)
        .ok_or_else(|| {
            let names: Vec<&str> = OVERLAPS.iter().map(|(name, _)| *name).collect();
            args.wrong(&format!(
                "--overlap {overlap:?} is not one of {}",
                names.join(", ")
            ))
        })?;
    let spec = builder
        .overlap(overlap)
        .build()
        .map_err(|e| args.wrong(&e.to_string()))?;
    let (version, input) = version_and_input(args)?;
    let start = ScheduledStart {
        workflow: workflow.clone(),
        version,
        input,
    };
    let add = ScheduleCommand::Add {
        id: id.clone(),
        spec,
        start,
    };
    command(args, id, RunCommand::Schedule(add), "added")
}

fn list(args: &Args) -> Result<ExitCode, String> {
    let mut store = PgStore::<Payload>::connect(&args.db()?).map_err(|e| e.to_string())?;
    let (auditor, _) = replay(&mut store, "schedule list")?;
    let state = auditor.state();
    let Some(hosted) = state.runs.as_ref().and_then(|runs| runs.schedules()) else {
        say!("no schedules");
        return Ok(ExitCode::SUCCESS);
    };
    for id in hosted.schedules().ids() {
        for line in describe(hosted, id) {
            say!("{line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Schedule `id` in lines: what it starts and when, its next fire, its
/// counts, its runs going.
fn describe(hosted: &SchedulesSnapshot<Payload>, id: &str) -> Vec<String> {
    let schedules: &Schedules = hosted.schedules();
    let (Some(spec), Some(start), Some(counts)) =
        (schedules.spec(id), hosted.start(id), schedules.counts(id))
    else {
        return Vec::new();
    };
    let when = match (spec.period(), spec.cron_pattern()) {
        (_, Some(pattern)) => format!("cron {pattern:?}"),
        (Some(period), None) => format!("every {}s", period.as_secs()),
        (None, None) => "never".into(),
    };
    let version = start.version.map_or("latest".into(), |v| format!("v{v}"));
    let state = match schedules.is_paused(id) {
        Some(true) => "paused",
        _ => "active",
    };
    let overlap = OVERLAPS
        .iter()
        .find(|(_, policy)| *policy == spec.overlap())
        .map_or("?", |(name, _)| name);
    let mut lines = vec![format!(
        "{id}  {} {version}  {when}  {overlap}  {state}",
        start.workflow
    )];
    if let Some(next) = schedules.next_due(id) {
        lines.push(format!("  next fire: {}", wall(next)));
    }
    lines.push(format!(
        "  started {}, skipped {}, missed {}, cancelled {}",
        counts.started, counts.skipped, counts.missed, counts.cancelled
    ));
    for fire in schedules.running(id) {
        let run = RunKey {
            schedule: id.to_owned(),
            fire,
        }
        .workflow_id();
        lines.push(format!("  running: {run} (fire {})", wall(fire)));
    }
    lines
}

/// An instant of the nodes' clock (time since the Unix epoch) in UTC.
fn wall(at: Instant) -> String {
    timestamp(UNIX_EPOCH + Duration::from_nanos(at.as_nanos()))
}
