//! `taskweave-pg audit`: replay the journal and check every invariant.

use std::process::ExitCode;

use taskweave_postgres::PgStore;

use super::Payload;
use super::args::Args;
use super::privilege::{OPERATOR, hint};
use super::replay::replay;

const USAGE: &str = "\
usage: taskweave-pg audit --db CONNINFO

Replays the journal into a fresh dispatcher (from entry 1, or from the latest
snapshot when the journal was trimmed behind it) and checks, entry by entry:
no hole in the sequence, epochs never go back, no report accepted from an
attempt that is not the task's current one, no task that ends twice. Of the
hosted runs: each run ends once, no step of a run starts after it ended, only
a completed step is compensated, in the saga's order (latest first), and a
step holds the output of the report that completed it (a run the trimmed
part started is checked from the snapshot on: its end and its outputs). If
the cluster was drained, the replay must equal the final state its last
leader stored (the hosted runs' included). Prints which entries it checked,
the task totals since the start (a trimmed part's from the snapshot's
counters, which must agree with its tasks), the runs' totals in the checked
entries, and the findings; exits 0 when no rule is broken, 1 otherwise.
Needs a node login (or the database owner).";

pub(crate) fn run(raw: &[String]) -> Result<ExitCode, String> {
    let args = Args::parse(raw, USAGE, &["--db"])?;
    if args.wants_help() {
        say!("{USAGE}");
        return Ok(ExitCode::SUCCESS);
    }
    let mut store = PgStore::<Payload>::connect(&args.db()?).map_err(|e| e.to_string())?;
    let (auditor, from_snapshot) = replay(&mut store, "audit")?;
    let report = auditor.report();
    let last = auditor.next_seq() - 1;
    match from_snapshot {
        Some(seq) => say!(
            "checked entries {} to {last} of {last}; entries 1 to {seq} were trimmed: the totals \
             before them come from the snapshot after entry {seq}, checked against its tasks",
            seq + 1,
        ),
        None => say!("checked entries 1 to {last} of {last}"),
    }
    say!(
        "{} entries, {} bytes; by epoch {:?}",
        report.entries,
        report.bytes,
        report.entries_by_epoch
    );
    let totals = report.since_start;
    say!(
        "tasks: {} submitted, {} completed, {} dead-lettered, {} expired, {} cancelled, {} live \
         (since the start)",
        totals.submitted,
        totals.completed,
        totals.dead_lettered,
        totals.expired,
        totals.cancelled,
        totals.live
    );
    if !report.is_whole() {
        say!(
            "tasks in the checked entries: {} submitted, {} completed, {} dead-lettered, {} \
             expired, {} cancelled",
            report.tasks,
            report.completed,
            report.dead_lettered,
            report.expired,
            report.cancelled
        );
    }
    if report.redriven > 0 {
        say!(
            "dead letters redriven as new tasks in the checked entries: {}",
            report.redriven
        );
    }
    say!(
        "reports: {} accepted, {} refused (late, fenced or forged)",
        report.accepted_reports,
        report.refused_reports
    );
    let runs = report.runs;
    say!(
        "runs: {} started, {} ended; steps: {} completed, {} compensated (in the checked entries)",
        runs.started,
        runs.ended,
        runs.steps_completed,
        runs.steps_compensated
    );
    let mut clean = report.is_clean();
    for violation in &report.violations {
        say!("VIOLATION: {violation}");
    }
    if let Some((seq, state)) = store.final_state().map_err(hint("audit", OPERATOR))? {
        let replayed = serde_json::to_string(&auditor.state()).map_err(|e| e.to_string())?;
        let stored = serde_json::to_string(&state).map_err(|e| e.to_string())?;
        let same = seq + 1 == auditor.next_seq() && replayed == stored;
        say!(
            "final state after entry {seq}: {}",
            if same {
                "equals the replay"
            } else {
                "DIFFERS from the replay"
            }
        );
        clean &= same;
    }
    match (clean, from_snapshot) {
        (true, None) => say!("audit: clean"),
        (true, Some(seq)) => say!(
            "audit: clean from entry {} on (entries 1 to {seq} trimmed; their totals from the \
             snapshot)",
            seq + 1
        ),
        (false, _) => say!("audit: RULES BROKEN"),
    }
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
