//! A dispatcher rebuilt from the store: the latest snapshot, then every
//! journal entry after it, in order. Followers and the leader are both a
//! replica; the leader applies its batch before committing it and throws
//! the replica away if the commit fails.

use std::collections::{BTreeMap, BTreeSet};

use crate::scheduler::{
    Action, Applied, ApplyError, Dispatcher, DispatcherConfig, Input, ScalePolicy, Snapshot,
    TaskState,
};
use crate::{AgentId, Instant, Priority, TaskId};

use super::super::contract::{Assignment, Entry, Outputs, TaskEnd};
use super::super::incarnation::registered_incarnation;

/// The journal applied so far.
pub(crate) struct Replica<P> {
    /// The state machine.
    pub(crate) dispatcher: Dispatcher<P>,
    /// The next journal entry to apply.
    pub(crate) next_seq: u64,
    /// A drain was journaled.
    pub(crate) draining: bool,
    /// When each task applied since the restore was submitted, for the
    /// status's oldest queued task; pruned when the status is read.
    submitted_at: BTreeMap<TaskId, Instant>,
    /// The clock of the restored snapshot: the submission time assumed
    /// for tasks it held.
    restored_at: Instant,
}

impl<P: Clone> Replica<P> {
    /// A replica with an empty journal.
    pub(crate) fn empty(config: DispatcherConfig) -> Self {
        Replica {
            dispatcher: Dispatcher::new(config),
            next_seq: 1,
            draining: false,
            submitted_at: BTreeMap::new(),
            restored_at: Instant::ZERO,
        }
    }

    /// A replica at the snapshot taken after entry `seq`.
    ///
    /// # Errors
    ///
    /// The reason the snapshot does not restore.
    pub(crate) fn restore(
        config: DispatcherConfig,
        seq: u64,
        snapshot: Snapshot<P>,
    ) -> Result<Self, String> {
        let strategy: Box<dyn crate::routing::RoutingStrategy + Send> =
            Box::new(crate::routing::LeastLoaded::new());
        let dispatcher = Dispatcher::restore(config, strategy, snapshot)
            .map_err(|e| format!("the snapshot after entry {seq} does not restore: {e}"))?;
        let restored_at = dispatcher.clock();
        Ok(Replica {
            dispatcher,
            next_seq: seq.saturating_add(1),
            // A leader takes no snapshot once draining, so the drain is
            // always in the journal behind the latest snapshot.
            draining: false,
            submitted_at: BTreeMap::new(),
            restored_at,
        })
    }

    /// Applies one entry and hands every action it produced to `on_action`.
    pub(crate) fn apply(
        &mut self,
        entry: Entry<P>,
        mut on_action: impl FnMut(Action),
    ) -> Result<Applied<P>, ApplyError<P>> {
        self.next_seq = self.next_seq.saturating_add(1);
        let result = match entry {
            Entry::Drain { .. } => {
                self.draining = true;
                Ok(Applied::Done)
            }
            // The output is the leader's to publish (intake), and a
            // follower's to forget: the dispatcher keeps ends, not results.
            Entry::Completed { report, now, .. } => {
                self.dispatcher.apply(Input::Report { report, now })
            }
            Entry::Input(input) => {
                let now = input.now();
                let single = matches!(input, Input::Submit { .. });
                let result = self.dispatcher.apply(input);
                match &result {
                    Ok(Applied::Batch(results)) => {
                        for submitted in results.iter().flatten() {
                            self.submitted_at.insert(submitted.id(), now);
                        }
                    }
                    Ok(Applied::Submitted(submitted)) if single => {
                        self.submitted_at.insert(submitted.id(), now);
                    }
                    _ => {}
                }
                result
            }
        };
        while let Some(action) = self.dispatcher.poll_action() {
            on_action(action);
        }
        result
    }

    /// Watches the scale pools a status carries hints for.
    pub(crate) fn watch(&mut self, pools: &[(String, BTreeSet<String>, ScalePolicy)]) {
        for (name, capabilities, policy) in pools {
            // The names are unique (NodeConfig checks them) and the
            // replica new: no pool is watched yet, so none is refused.
            let _ = self
                .dispatcher
                .watch_pool(name.clone(), capabilities.iter().cloned(), *policy);
        }
    }

    /// The submission instant of the oldest queued task; forgets tasks
    /// that are no longer live. One pass over the tasks it remembers,
    /// `O(n)` for `n` live tasks; a queued task it never saw submitted
    /// (restored from a snapshot) counts from the restore.
    pub(crate) fn oldest_queued(&mut self) -> Option<Instant> {
        let dispatcher = &self.dispatcher;
        let (mut oldest, mut seen) = (None::<Instant>, 0usize);
        self.submitted_at
            .retain(|&task, &mut at| match dispatcher.task_state(task) {
                Some(TaskState::Queued) => {
                    seen += 1;
                    oldest = Some(oldest.map_or(at, |o| o.min(at)));
                    true
                }
                Some(state) => is_live(&state),
                None => false,
            });
        let queued: usize = Priority::ALL
            .iter()
            .map(|&p| dispatcher.queue_depth(p))
            .sum();
        if seen < queued {
            oldest = Some(oldest.map_or(self.restored_at, |o| o.min(self.restored_at)));
        }
        oldest
    }

    /// What `action` means for the outbox, added to `out`.
    pub(crate) fn publish(&self, action: &Action, out: &mut Outputs<P>) {
        match *action {
            Action::Assign {
                task,
                agent,
                token,
                attempt,
            } => {
                // An attempt just handed out always has its payload.
                if let Some(payload) = self.dispatcher.payload(task) {
                    out.assign.push(Assignment {
                        task,
                        agent,
                        token,
                        attempt,
                        incarnation: self.incarnation(agent),
                        payload: payload.clone(),
                    });
                }
            }
            Action::Cancel { task, token, .. } => out.cancel.push((task, token)),
            Action::DeadLettered { task, ref reason } => {
                out.ended
                    .push((task, TaskEnd::DeadLettered(reason.clone())));
            }
            Action::Expired { task, limit } => out.ended.push((task, TaskEnd::Expired(limit))),
            Action::AgentLost { .. } => {}
        }
    }

    /// The incarnation `agent` registered with (0, any, for an agent that
    /// registered without one).
    fn incarnation(&self, agent: AgentId) -> u64 {
        registered_incarnation(self.dispatcher.registry(), agent)
    }

    /// Every attempt in flight, as outbox rows.
    pub(crate) fn in_flight(&self) -> Vec<Assignment<P>> {
        self.dispatcher
            .iter_live_tasks()
            .filter_map(|(task, state, _, _)| match state {
                TaskState::InFlight {
                    agent,
                    token,
                    attempt,
                } => Some(Assignment {
                    task,
                    agent,
                    token,
                    attempt,
                    incarnation: self.incarnation(agent),
                    payload: self.dispatcher.payload(task)?.clone(),
                }),
                _ => None,
            })
            .collect()
    }
}

fn is_live(state: &TaskState) -> bool {
    matches!(
        state,
        TaskState::Queued | TaskState::Delayed { .. } | TaskState::InFlight { .. }
    )
}
