//! The leader: turns inbox messages into inputs, appends them to the
//! journal in group-committed, fenced batches, applies them only once they
//! are durable, and publishes what the dispatcher decided (assignments to
//! the outbox, cancelled attempts, report verdicts, a status row).

use std::collections::BTreeSet;
use std::time::{Duration, Instant as WallInstant};

use taskweave::agent::AgentProfile;
use taskweave::scheduler::{Action, Input, TaskState};
use taskweave::{AgentId, AttemptToken, Instant, TaskId};

use crate::mailbox::{Assignment, Outputs, Status};
use crate::model::{Job, LEASE_TTL, Message, wall_ms, wall_now};
use crate::replica::Replica;
use crate::store::{Store, StoreError};

/// Journal rows between two snapshots.
pub(crate) const SNAPSHOT_EVERY: i64 = 4_000;
/// Most inbox messages journaled in one transaction.
const BATCH: i64 = 1_000;

/// How the leader runs.
#[derive(Debug, Clone)]
pub(crate) struct LeadOptions {
    /// Delete the journal behind the previous snapshot after each snapshot.
    pub(crate) trim: bool,
    /// The process's name, for its log lines and the lease's holder.
    pub(crate) name: String,
}

/// Why [`lead`] returned without error.
#[derive(Debug)]
pub(crate) enum LeadEnd {
    /// A `Shutdown` message arrived; the final state is stored.
    Shutdown,
}

/// Leads with `epoch` from the replica's state until shut down.
///
/// # Errors
///
/// [`StoreError::Fenced`] when another process took the lease (nothing
/// uncommitted was applied, so the replica still equals the journal and
/// can follow again); any other store error.
pub(crate) fn lead(
    store: &mut Store,
    replica: &mut Replica,
    epoch: i64,
    options: &LeadOptions,
) -> Result<LeadEnd, StoreError> {
    eprintln!(
        "{}: leading with epoch {epoch} from journal row {}",
        options.name, replica.next_seq
    );
    let mut totals = starting_totals(store)?;
    let takeover = takeover_outputs(store, replica)?;
    store.publish(epoch, &takeover)?;
    let mut first_assign = false;
    let mut last_snapshot = replica.next_seq - 1;
    let mut last_write = WallInstant::now();
    loop {
        let now = wall_now();
        let Batch {
            inputs,
            refused,
            shutdown,
        } = collect(store, replica, now)?;
        if inputs.is_empty() && refused.is_empty() {
            if last_write.elapsed() >= LEASE_TTL / 4 {
                store.renew(epoch)?;
                last_write = WallInstant::now();
            }
            std::thread::sleep(Duration::from_millis(3));
            continue;
        }
        let texts: Vec<(Option<i64>, String)> = inputs
            .iter()
            .map(|(id, input)| (*id, serde_json::to_string(input).expect("inputs serialize")))
            .collect();
        store.append(epoch, replica.next_seq, &texts, &refused)?;
        totals.journal_rows += texts.len() as i64;
        totals.journal_bytes += texts.iter().map(|(_, t)| t.len() as i64).sum::<i64>();
        // Durable now: apply, and turn what the dispatcher decided into
        // rows to publish.
        let mut out = Outputs::default();
        for (inbox_id, input) in inputs {
            let mut actions = Vec::new();
            let verdict = replica.apply(inbox_id, input, |action| actions.push(action));
            for action in actions {
                publishable(action, replica, &mut out, &options.name);
            }
            out.verdicts.extend(verdict);
        }
        if !first_assign && !out.assign.is_empty() {
            first_assign = true;
            let task = out.assign[0].task;
            out.events.push((
                "first_assign".into(),
                wall_ms() as i64,
                format!("task {task}"),
            ));
        }
        out.status = Some(status(replica, &totals));
        store.publish(epoch, &out)?;
        last_write = WallInstant::now();
        let applied = replica.next_seq - 1;
        if applied - last_snapshot >= SNAPSHOT_EVERY {
            let state =
                serde_json::to_string(&replica.dispatcher.snapshot()).expect("snapshots serialize");
            store.put_snapshot(epoch, applied, &state, options.trim)?;
            last_snapshot = applied;
        }
        if shutdown {
            let state =
                serde_json::to_string(&replica.dispatcher.snapshot()).expect("snapshots serialize");
            store.put_final_state(epoch, applied, &state)?;
            eprintln!(
                "{}: epoch {epoch} stored its final state at journal row {applied} and stops",
                options.name
            );
            return Ok(LeadEnd::Shutdown);
        }
    }
}

/// The outbox row of attempt `token` of `task` on `agent`, with the
/// task's payload.
fn assignment(
    replica: &Replica,
    task: TaskId,
    agent: AgentId,
    token: AttemptToken,
    attempt: u32,
) -> Assignment {
    Assignment {
        task: task.get() as i64,
        token: token.get() as i64,
        agent: agent.get() as i64,
        attempt: attempt as i32,
        payload: serde_json::to_string(&replica.dispatcher.payload(task))
            .expect("payloads serialize"),
    }
}

/// Adds what `action` means for the outbox to `out`.
fn publishable(action: Action, replica: &Replica, out: &mut Outputs, name: &str) {
    match action {
        Action::Assign {
            task,
            agent,
            token,
            attempt,
        } => out
            .assign
            .push(assignment(replica, task, agent, token, attempt)),
        Action::Cancel { task, token, .. } => {
            out.cancel.push((task.get() as i64, token.get() as i64))
        }
        Action::AgentLost { agent } => {
            eprintln!(
                "{name}: agent {} lost (missed heartbeats); its tasks are requeued",
                agent.get()
            );
            out.events.push((
                "agent_lost".into(),
                wall_ms() as i64,
                format!("agent {}", agent.get()),
            ));
        }
        // Dead letters and expiries end tasks; the status row counts them.
        Action::DeadLettered { .. } | Action::Expired { .. } => {}
    }
}

/// One group commit's worth of inbox messages.
#[derive(Debug, Default)]
struct Batch {
    /// Inputs stamped with the leader's `now`, with the message each came
    /// from (none for a timer input).
    inputs: Vec<(Option<i64>, Input<Job>)>,
    /// Messages that make no input, with why.
    refused: Vec<(i64, String)>,
    /// A shutdown was asked for.
    shutdown: bool,
}

/// The inbox's pending messages as inputs stamped `now`, plus a timer
/// input when one is due.
fn collect(store: &mut Store, replica: &Replica, now: Instant) -> Result<Batch, StoreError> {
    let mut batch = Batch::default();
    for (id, agent_raw, body) in store.pending(BATCH)? {
        let agent = AgentId::new(agent_raw as u64);
        let input = match serde_json::from_str::<Message>(&body) {
            Err(e) => Err(format!("refused: malformed message: {e}")),
            Ok(Message::Register { capacity }) => AgentProfile::builder()
                .capacity(capacity)
                .build()
                .map(|profile| Input::RegisterAgent {
                    agent,
                    profile,
                    now,
                })
                .map_err(|e| format!("refused: {e}")),
            Ok(Message::Heartbeat) => Ok(Input::Heartbeat { agent, now }),
            Ok(Message::Report(report)) if report.agent == agent => {
                Ok(Input::Report { report, now })
            }
            Ok(Message::Report(_)) => Err("rejected: the report names another agent".to_string()),
            Ok(Message::Submit(specs)) => Ok(Input::SubmitBatch { specs, now }),
            Ok(Message::Shutdown) => {
                batch.shutdown = true;
                Err("done: shutdown".to_string())
            }
        };
        match input {
            Ok(input) => batch.inputs.push((Some(id), input)),
            Err(why) => batch.refused.push((id, why)),
        }
    }
    if replica
        .dispatcher
        .poll_timeout()
        .is_some_and(|at| at <= now)
    {
        batch.inputs.push((None, Input::HandleTimeout { now }));
    }
    Ok(batch)
}

/// What a new leader publishes first: every attempt in flight in its state
/// (the outbox may lack those its predecessor applied but did not get to
/// publish; rows it has stay as they are), a cancel for every ready row no
/// longer in flight, the verdicts it saw while following, and an event.
fn takeover_outputs(store: &mut Store, replica: &Replica) -> Result<Outputs, StoreError> {
    let mut out = Outputs::default();
    let mut in_flight = BTreeSet::new();
    for (task, state, _, _) in replica.dispatcher.iter_live_tasks() {
        if let TaskState::InFlight {
            agent,
            token,
            attempt,
        } = state
        {
            in_flight.insert((task.get() as i64, token.get() as i64));
            out.assign
                .push(assignment(replica, task, agent, token, attempt));
        }
    }
    out.cancel = store
        .ready_assignments()?
        .into_iter()
        .filter(|row| !in_flight.contains(row))
        .collect();
    out.verdicts = replica.verdicts.iter().cloned().collect();
    out.events.push((
        "takeover".into(),
        wall_ms() as i64,
        format!(
            "journal row {}, {} attempts in flight",
            replica.next_seq,
            in_flight.len()
        ),
    ));
    Ok(out)
}

/// The journal totals published so far (a new leader continues them).
fn starting_totals(store: &mut Store) -> Result<Status, StoreError> {
    let row = store.client().query_opt(
        "SELECT journal_rows, journal_bytes FROM status WHERE id = 1",
        &[],
    )?;
    Ok(row.map_or_else(Status::default, |r| Status {
        journal_rows: r.get(0),
        journal_bytes: r.get(1),
        ..Status::default()
    }))
}

fn status(replica: &Replica, totals: &Status) -> Status {
    let counters = replica.dispatcher.metrics().counters;
    Status {
        seq: replica.next_seq - 1,
        live: replica.dispatcher.live_tasks() as i64,
        submitted: counters.submitted as i64,
        completed: counters.completed as i64,
        dead_lettered: counters.dead_lettered as i64,
        expired: counters.expired as i64,
        journal_rows: totals.journal_rows,
        journal_bytes: totals.journal_bytes,
    }
}
