//! `perf_report`'s snapshot line and its fixed yardstick: a dispatcher
//! holding 100,000 tasks (4,000 running on 1,000 agents, the rest queued)
//! taken with `Dispatcher::snapshot` and written with serde_json, against
//! a bare serde_json serialization of the same tasks as plain rows.
//!
//! A row is what a hand-written store would keep of a task to continue
//! it: its id, payload, priority, submission order, attempts, and, when it
//! runs, its agent and attempt token, written as a JSON array. The rows
//! are built once, outside the timing. The snapshot is written straight
//! from the dispatcher (`serialize_snapshot`); `copied_ns_per_op` also
//! times the other way, taking a copy (`snapshot`) and writing it.

use std::hint::black_box;

use serde::Serialize;
use taskweave::scheduler::{Action, Dispatcher, TaskSpec};
use taskweave::{Instant, Priority};

/// Tasks in the snapshot.
pub(crate) const SNAPSHOT_TASKS: u64 = 100_000;
/// Agents of the snapshot's pool; their slots run that many tasks at once.
pub(crate) const SNAPSHOT_AGENTS: usize = 1_000;

/// One task as plain data, written as a JSON array (no field names): id,
/// payload, priority, submission order, attempts, agent, token.
#[derive(Serialize)]
struct Row(u64, u64, u8, u64, u32, Option<u64>, Option<u64>);

/// The `snapshot` line. `dispatcher`: a pool of [`SNAPSHOT_AGENTS`] agents
/// and room for [`SNAPSHOT_TASKS`] tasks; `measure`: the time of one call,
/// in nanoseconds.
pub(crate) fn snapshot_line(
    mut dispatcher: Dispatcher<u64>,
    measure: impl Fn(&mut dyn FnMut()) -> f64,
) -> String {
    let mut rows = Vec::with_capacity(SNAPSHOT_TASKS as usize);
    for seq in 0..SNAPSHOT_TASKS {
        let priority = Priority::ALL[(seq % 4) as usize];
        let spec = TaskSpec::new(seq).priority(priority);
        let id = dispatcher
            .submit(spec, Instant::from_nanos(seq))
            .expect("queue has room")
            .id();
        rows.push(Row(
            id.get(),
            seq,
            priority.index() as u8,
            seq,
            0,
            None,
            None,
        ));
    }
    while let Some(action) = dispatcher.poll_action() {
        if let Action::Assign {
            task, agent, token, ..
        } = action
        {
            let seq = *dispatcher.payload(task).expect("a live task");
            let row = &mut rows[seq as usize];
            (row.4, row.5, row.6) = (1, Some(agent.get()), Some(token.get()));
        }
    }
    let snapshot_bytes = serde_json::to_vec(&dispatcher.snapshot())
        .expect("serializable")
        .len();
    let rows_bytes = serde_json::to_vec(&rows).expect("serializable").len();
    let snapshot_ns = measure(&mut || {
        let mut bytes = Vec::new();
        let mut json = serde_json::Serializer::new(&mut bytes);
        black_box(&dispatcher)
            .serialize_snapshot(&mut json)
            .expect("serializable");
        black_box(bytes);
    });
    let copied_ns = measure(&mut || {
        let bytes = serde_json::to_vec(&black_box(&dispatcher).snapshot());
        black_box(bytes.expect("serializable"));
    });
    let rows_ns = measure(&mut || {
        black_box(serde_json::to_vec(black_box(&rows)).expect("serializable"));
    });
    let running = rows.iter().filter(|row| row.5.is_some()).count();
    format!(
        "{{\"bench\":\"snapshot\",\"tasks\":{SNAPSHOT_TASKS},\"running\":{running},\"agents\":{SNAPSHOT_AGENTS},\"ns_per_op\":{snapshot_ns:.0},\"bytes\":{snapshot_bytes},\"bytes_per_task\":{:.1},\"baseline_ns_per_op\":{rows_ns:.0},\"baseline_bytes\":{rows_bytes},\"time_ratio\":{:.3},\"bytes_ratio\":{:.3},\"copied_ns_per_op\":{copied_ns:.0},\"copied_time_ratio\":{:.3}}}",
        snapshot_bytes as f64 / SNAPSHOT_TASKS as f64,
        snapshot_ns / rows_ns,
        snapshot_bytes as f64 / rows_bytes as f64,
        copied_ns / rows_ns,
    )
}
