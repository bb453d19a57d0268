//! A dispatcher rebuilt from the store: the latest snapshot, then every
//! journal row after it, applied in order. Leader and standby are both a
//! replica; only the leader appends.

use std::collections::VecDeque;

use taskweave::scheduler::{Action, Dispatcher, Input};

use crate::model::{Job, dispatcher_config};
use crate::store::{JournalRow, Store, StoreError, restore_snapshot};

/// How many report verdicts a replica remembers for a takeover: a new
/// leader publishes the verdicts of reports its predecessor journaled but
/// did not get to mark.
const VERDICT_MEMORY: usize = 50_000;

/// The journal applied so far.
#[derive(Debug)]
pub(crate) struct Replica {
    /// The state machine.
    pub(crate) dispatcher: Dispatcher<Job>,
    /// The next journal row to apply.
    pub(crate) next_seq: i64,
    /// Recent report verdicts (inbox id, verdict).
    pub(crate) verdicts: VecDeque<(i64, String)>,
}

impl Replica {
    /// Restores the latest snapshot (or starts fresh when there is none).
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] for a snapshot that does not restore.
    pub(crate) fn restore(store: &mut Store) -> Result<Self, StoreError> {
        let (dispatcher, next_seq) = match store.latest_snapshot()? {
            Some((seq, text)) => (restore_snapshot(seq, &text)?, seq + 1),
            None => (Dispatcher::new(dispatcher_config()), 1),
        };
        Ok(Replica {
            dispatcher,
            next_seq,
            verdicts: VecDeque::new(),
        })
    }

    /// Applies every journal row not applied yet; the number applied.
    /// Behind a trimmed journal it restores the newer snapshot first.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`], [`StoreError::Db`], or [`StoreError::Gap`]
    /// when rows are missing and no snapshot covers them.
    pub(crate) fn catch_up(&mut self, store: &mut Store) -> Result<usize, StoreError> {
        let mut applied = 0;
        loop {
            let rows = match store.read_journal(self.next_seq, 2_000) {
                Err(StoreError::Gap { expected, found }) => {
                    let fresher = Replica::restore(store)?;
                    if fresher.next_seq <= expected {
                        return Err(StoreError::Gap { expected, found });
                    }
                    *self = fresher;
                    continue;
                }
                other => other?,
            };
            if rows.is_empty() {
                return Ok(applied);
            }
            for row in rows {
                self.apply_row(row);
                applied += 1;
            }
        }
    }

    /// Applies one stored row, discarding the actions (a follower acts on
    /// nothing).
    fn apply_row(&mut self, row: JournalRow) {
        self.apply(row.inbox_id, row.input, |_| {});
    }

    /// Applies one input, hands every action it produced to `on_action`,
    /// and returns the report verdict if the input was a report.
    pub(crate) fn apply(
        &mut self,
        inbox_id: Option<i64>,
        input: Input<Job>,
        mut on_action: impl FnMut(Action),
    ) -> Option<(i64, String)> {
        let is_report = matches!(input, Input::Report { .. });
        let result = self.dispatcher.apply(input);
        self.next_seq += 1;
        while let Some(action) = self.dispatcher.poll_action() {
            on_action(action);
        }
        let verdict = match (inbox_id, is_report) {
            (Some(id), true) => Some((
                id,
                match result {
                    Ok(_) => "accepted".to_string(),
                    Err(e) => format!("rejected: {e}"),
                },
            )),
            _ => None,
        };
        if let Some(v) = &verdict {
            if self.verdicts.len() == VERDICT_MEMORY {
                self.verdicts.pop_front();
            }
            self.verdicts.push_back(v.clone());
        }
        verdict
    }
}
