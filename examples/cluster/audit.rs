//! Checking a run from what it left in the database: replays the whole
//! journal into a fresh dispatcher, following every task with a model of
//! its own (which attempt is current, how it ended), and compares the
//! replayed state with the final state the last leader stored and with
//! every snapshot still stored.

use std::collections::{BTreeMap, HashMap};

use taskweave::scheduler::{Action, Applied, Dispatcher, Input};

use crate::model::{Job, dispatcher_config};
use crate::store::{Store, StoreError, restore_snapshot};

/// What the audit found.
#[derive(Debug, Default)]
pub(crate) struct Audit {
    /// Journal rows replayed.
    pub(crate) rows: i64,
    /// Their stored bytes.
    pub(crate) bytes: usize,
    /// Rows per epoch.
    pub(crate) rows_by_epoch: BTreeMap<i64, i64>,
    /// Tasks created by submissions.
    pub(crate) tasks: usize,
    /// Tasks that completed (exactly once each, or see `violations`).
    pub(crate) completed: usize,
    /// Dead-lettered tasks by reason.
    pub(crate) dead_lettered: BTreeMap<String, usize>,
    /// Expired tasks.
    pub(crate) expired: usize,
    /// Reports the dispatcher accepted.
    pub(crate) accepted_reports: usize,
    /// Reports it rejected (fenced out or late).
    pub(crate) rejected_reports: usize,
    /// Snapshots checked against a replay to their row.
    pub(crate) snapshots_checked: usize,
    /// The replayed state equals the final state the leader stored.
    pub(crate) final_state_matches: bool,
    /// Everything that broke a rule, in words.
    pub(crate) violations: Vec<String>,
}

/// How one task ended in the model.
#[derive(Default)]
struct Track {
    /// The attempt the dispatcher last handed out and has not stopped.
    current: Option<(u64, u64)>,
    /// Terminal outcomes seen.
    ends: Vec<String>,
}

/// Replays the journal from row 1 and checks the run.
///
/// # Errors
///
/// A store error, including [`StoreError::Gap`] when the journal was
/// trimmed (the audit needs every row).
pub(crate) fn audit(store: &mut Store) -> Result<Audit, StoreError> {
    let snapshots: BTreeMap<i64, String> = store
        .client()
        .query("SELECT seq, state FROM snapshots", &[])?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let final_state = latest_final_state(store)?;
    let mut audit = Audit::default();
    let mut dispatcher: Dispatcher<Job> = Dispatcher::new(dispatcher_config());
    let mut tasks: HashMap<u64, Track> = HashMap::new();
    let mut next = 1;
    let mut last_epoch = 0;
    loop {
        let rows = store.read_journal(next, 5_000)?;
        if rows.is_empty() {
            break;
        }
        for row in rows {
            next = row.seq + 1;
            audit.rows += 1;
            audit.bytes += row.bytes;
            *audit.rows_by_epoch.entry(row.epoch).or_default() += 1;
            if row.epoch < last_epoch {
                audit.violations.push(format!(
                    "row {} has epoch {} after epoch {last_epoch}",
                    row.seq, row.epoch
                ));
            }
            last_epoch = row.epoch;
            let report = match &row.input {
                Input::Report { report, .. } => Some(report.clone()),
                _ => None,
            };
            let result = dispatcher.apply(row.input);
            match (&result, report) {
                (Ok(Applied::Batch(results)), _) => {
                    for id in results.iter().flatten() {
                        tasks.entry(id.id().get()).or_default();
                    }
                }
                (Ok(_), Some(report)) => {
                    audit.accepted_reports += 1;
                    let track = tasks.entry(report.task.get()).or_default();
                    let attempt = (report.agent.get(), report.token.get());
                    if track.current != Some(attempt) {
                        audit.violations.push(format!(
                            "row {}: accepted a report of task {} from attempt {attempt:?}, current {:?}",
                            row.seq,
                            report.task.get(),
                            track.current
                        ));
                    }
                    track.current = None;
                    if report.outcome == taskweave::scheduler::AttemptOutcome::Success {
                        track.ends.push("completed".into());
                    }
                }
                (Err(_), Some(_)) => audit.rejected_reports += 1,
                _ => {}
            }
            while let Some(action) = dispatcher.poll_action() {
                match action {
                    Action::Assign {
                        task, agent, token, ..
                    } => {
                        tasks.entry(task.get()).or_default().current =
                            Some((agent.get(), token.get()));
                    }
                    Action::Cancel { task, token, .. } => {
                        let track = tasks.entry(task.get()).or_default();
                        if track.current.is_some_and(|(_, t)| t == token.get()) {
                            track.current = None;
                        }
                    }
                    Action::DeadLettered { task, reason } => {
                        let reason = format!("{reason:?}");
                        let kind = reason
                            .split([' ', '{', '('])
                            .next()
                            .unwrap_or("")
                            .to_string();
                        *audit.dead_lettered.entry(kind).or_default() += 1;
                        tasks
                            .entry(task.get())
                            .or_default()
                            .ends
                            .push(format!("dead-lettered: {reason}"));
                    }
                    Action::Expired { task, limit } => {
                        audit.expired += 1;
                        tasks
                            .entry(task.get())
                            .or_default()
                            .ends
                            .push(format!("expired: {limit:?}"));
                    }
                    Action::AgentLost { .. } => {}
                }
            }
            let seq = next - 1;
            if let Some(text) = snapshots.get(&seq) {
                audit.snapshots_checked += 1;
                restore_snapshot(seq, text)?;
                if *text != to_json(&dispatcher.snapshot()) {
                    audit.violations.push(format!(
                        "snapshot {seq} differs from the replay to row {seq}"
                    ));
                }
            }
            if let Some((final_seq, text)) = &final_state {
                if *final_seq == seq {
                    audit.final_state_matches = *text == to_json(&dispatcher.snapshot());
                }
            }
        }
    }
    audit.tasks = tasks.len();
    for (task, track) in &tasks {
        match track.ends.as_slice() {
            [only] if only == "completed" => audit.completed += 1,
            [_] => {}
            [] => audit.violations.push(format!("task {task} never ended")),
            many => audit
                .violations
                .push(format!("task {task} ended {} times: {many:?}", many.len())),
        }
    }
    if final_state.is_none() {
        audit.violations.push("no final state was stored".into());
    } else if !audit.final_state_matches {
        audit
            .violations
            .push("the last leader's final state differs from a replay of the journal".into());
    }
    Ok(audit)
}

fn to_json(snapshot: &taskweave::scheduler::Snapshot<Job>) -> String {
    serde_json::to_string(snapshot).expect("snapshots serialize")
}

/// Restores the latest stored snapshot, replays the journal behind it and
/// compares the result with the final state the last leader stored: the
/// check a trimmed journal still allows. `Ok(None)` without a final state.
///
/// # Errors
///
/// A store error, or a corrupt snapshot or row.
pub(crate) fn tail_matches(store: &mut Store) -> Result<Option<bool>, StoreError> {
    let final_state = latest_final_state(store)?;
    let Some((seq, text)) = final_state else {
        return Ok(None);
    };
    let mut replica = crate::replica::Replica::restore(store)?;
    replica.catch_up(store)?;
    Ok(Some(
        replica.next_seq - 1 == seq && to_json(&replica.dispatcher.snapshot()) == text,
    ))
}

/// The journal row and state the latest leader stored when it stopped.
fn latest_final_state(store: &mut Store) -> Result<Option<(i64, String)>, StoreError> {
    Ok(store
        .client()
        .query_opt(
            "SELECT seq, state FROM final_state ORDER BY epoch DESC LIMIT 1",
            &[],
        )?
        .map(|r| (r.get(0), r.get(1))))
}
