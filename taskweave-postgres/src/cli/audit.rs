//! `taskweave-pg audit`: replay the journal and check every invariant.

use std::process::ExitCode;

use taskweave::cluster::{Auditor, NodeOp, NodeReply, Store};
use taskweave_postgres::{PgStore, wall_now};

use super::args::Args;
use super::privilege::{OPERATOR, hint};
use super::{Payload, dispatcher_config};

const USAGE: &str = "\
usage: taskweave-pg audit --db CONNINFO

Replays the journal into a fresh dispatcher (from entry 1, or from the latest
snapshot when the journal was trimmed behind it) and checks, entry by entry:
no hole in the sequence, epochs never go back, no report accepted from an
attempt that is not the task's current one, no task that ends twice. If the
cluster was drained, the replay must equal the final state its last leader
stored. Prints which entries it checked, the task totals since the start (a
trimmed part's from the snapshot's counters, which must agree with its tasks)
and the findings; exits 0 when no rule is broken, 1 otherwise.
Needs a node login (or the database owner).";

const PAGE: usize = 5_000;

pub(crate) fn run(raw: &[String]) -> Result<ExitCode, String> {
    let args = Args::parse(raw, USAGE, &["--db"])?;
    if args.wants_help() {
        say!("{USAGE}");
        return Ok(ExitCode::SUCCESS);
    }
    let mut store = PgStore::<Payload>::connect(&args.db()?).map_err(|e| e.to_string())?;
    let config = dispatcher_config()?;
    let mut auditor = Auditor::new(config.clone());
    let mut from_snapshot = None;
    loop {
        let op = NodeOp::ReadJournal {
            from: auditor.next_seq(),
            limit: PAGE,
        };
        match store
            .node(op, wall_now())
            .map_err(hint("audit", OPERATOR))?
        {
            NodeReply::Journal(rows) => {
                let full = rows.len() >= PAGE;
                rows.into_iter().for_each(|row| auditor.apply(row));
                if !full {
                    break;
                }
            }
            NodeReply::Trimmed if from_snapshot.is_none() => {
                let latest = store
                    .node(NodeOp::LatestSnapshot, wall_now())
                    .map_err(hint("audit", OPERATOR))?;
                let NodeReply::Snapshot(Some((seq, snapshot))) = latest else {
                    return Err("the journal was trimmed but no snapshot covers it".into());
                };
                auditor = Auditor::from_snapshot(config.clone(), seq, *snapshot)?;
                from_snapshot = Some(seq);
            }
            other => return Err(format!("reading the journal answered {other:?}")),
        }
    }
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
    say!(
        "reports: {} accepted, {} refused (late, fenced or forged)",
        report.accepted_reports,
        report.refused_reports
    );
    let mut clean = report.is_clean();
    for violation in &report.violations {
        say!("VIOLATION: {violation}");
    }
    if let Some((seq, state)) = store.final_state().map_err(hint("audit", OPERATOR))? {
        let replayed =
            serde_json::to_string(&auditor.dispatcher().snapshot()).map_err(|e| e.to_string())?;
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
