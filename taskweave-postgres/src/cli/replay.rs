//! The journal replayed, as `audit` and `run show` read the cluster: from
//! entry 1, or from the latest snapshot when the journal was trimmed
//! behind it.

use taskweave::cluster::{Auditor, NodeOp, NodeReply, Store};
use taskweave_postgres::{PgStore, json_run_codec, wall_now};

use super::privilege::{OPERATOR, hint};
use super::{Payload, cluster_dispatcher_config};

/// Journal entries read per round trip.
const PAGE: usize = 5_000;

/// The journal replayed by an auditor that hosts runs as the nodes do;
/// with the entry of the snapshot it started from, if the journal was
/// trimmed (then under the dispatcher configuration the snapshot holds;
/// from entry 1, under the cluster's stored one, as its nodes run). `command` names the subcommand in a privilege hint.
pub(crate) fn replay(
    store: &mut PgStore<Payload>,
    command: &'static str,
) -> Result<(Auditor<Payload>, Option<u64>), String> {
    let config = cluster_dispatcher_config(store).map_err(hint(command, OPERATOR))?;
    let mut auditor = Auditor::with_runs(config.clone(), json_run_codec());
    let mut from_snapshot = None;
    loop {
        let op = NodeOp::ReadJournal {
            from: auditor.next_seq(),
            limit: PAGE,
        };
        match store
            .node(op, wall_now())
            .map_err(hint(command, OPERATOR))?
        {
            NodeReply::Journal(rows) => {
                let full = rows.len() >= PAGE;
                rows.into_iter().for_each(|row| auditor.apply(row));
                if !full {
                    return Ok((auditor, from_snapshot));
                }
            }
            NodeReply::Trimmed if from_snapshot.is_none() => {
                let latest = store
                    .node(NodeOp::LatestSnapshot, wall_now())
                    .map_err(hint(command, OPERATOR))?;
                let NodeReply::Snapshot(Some((seq, snapshot))) = latest else {
                    return Err("the journal was trimmed but no snapshot covers it".into());
                };
                // The nodes' own configuration, which the snapshot holds
                // (unless they ran a host retry policy): a host that
                // embeds its nodes may build another one than ours.
                let config = snapshot.dispatcher.config().unwrap_or(config.clone());
                auditor =
                    Auditor::from_snapshot_with_runs(config, json_run_codec(), seq, *snapshot)?;
                from_snapshot = Some(seq);
            }
            other => return Err(format!("reading the journal answered {other:?}")),
        }
    }
}
