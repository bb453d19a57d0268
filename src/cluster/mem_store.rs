//! [`MemStore`]: the store contract kept in memory, for tests and
//! simulations. It has no clock of its own: it judges leases by the `now`
//! each operation brings, and it never fails unless told to
//! ([`MemStore::fail_next`]).

mod clients;

use std::collections::{BTreeMap, BTreeSet};

use crate::{AgentId, AttemptToken, Instant, TaskId, TenantId, WorkflowId};

use super::contract::{
    AgentOp, AgentReply, Assignment, ClientOp, ClientReply, Entry, Finished, InboxMessage,
    JournalRow, Lease, Message, MessageId, NodeOp, NodeReply, NodeState, Outcome, Outputs, RunEnd,
    Sender, Store, StoreFailure, TaskEnd, Verdict,
};
use super::status::Status;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RowState {
    Ready,
    Claimed(u64),
    Done,
}

#[derive(Clone, Debug)]
struct InboxRow<P> {
    sender: Sender,
    body: Message<P>,
    verdict: Option<Verdict>,
}

/// How much a [`MemStore`] keeps ([`MemStore::kept`]): what rule 8 of
/// the [`Store`] contract bounds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Kept {
    /// Journal entries.
    pub journal: usize,
    /// Inbox messages, pending or consumed.
    pub inbox: usize,
    /// Outbox rows.
    pub outbox: usize,
    /// Task outcomes.
    pub outcomes: usize,
}

/// How the next operation fails, for fault tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// It does not take effect and answers [`StoreFailure::Failed`].
    Fail,
    /// It takes effect, but its answer is lost: [`StoreFailure::Unknown`].
    LoseAnswer,
}

/// [`MemStore`]: the store contract kept in memory, for tests and
/// simulations. It has no clock of its own: it judges leases by the `now`
/// each operation brings, and it never fails unless told to
/// ([`MemStore::fail_next`]).
#[derive(Clone, Debug)]
pub struct MemStore<P> {
    epoch: u64,
    holder: String,
    expires_at: Instant,
    stopped: bool,
    journal: BTreeMap<u64, (u64, Entry<P>)>,
    snapshots: BTreeMap<u64, NodeState<P>>,
    final_state: Option<(u64, NodeState<P>)>,
    inbox: BTreeMap<MessageId, InboxRow<P>>,
    pending: BTreeSet<MessageId>,
    outbox: BTreeMap<(TaskId, AttemptToken), (Assignment<P>, RowState)>,
    /// Each agent's outbox rows, so a claim reads only its own.
    rows_of: BTreeMap<AgentId, BTreeSet<(TaskId, AttemptToken)>>,
    /// Each agent's refused messages it has not read.
    refused: BTreeMap<AgentId, BTreeSet<MessageId>>,
    status: Option<Status>,
    /// How each task ended, with the journal entry that ended it and the
    /// tenant whose clients alone read it.
    outcomes: BTreeMap<TaskId, (u64, Option<TenantId>, Outcome<P>)>,
    /// How each hosted run ended, with the journal entry that ended it.
    runs: BTreeMap<WorkflowId, (u64, RunEnd<P>)>,
    next_message: MessageId,
    next_incarnation: u64,
    fault: Option<Fault>,
    /// Messages posted but heartbeats, and commits that appended entries:
    /// what PostgreSQL's triggers notify the nodes of.
    notified: (u64, u64),
}

impl<P> Default for MemStore<P> {
    fn default() -> Self {
        MemStore {
            epoch: 0,
            holder: String::new(),
            expires_at: Instant::ZERO,
            stopped: false,
            journal: BTreeMap::new(),
            snapshots: BTreeMap::new(),
            final_state: None,
            inbox: BTreeMap::new(),
            pending: BTreeSet::new(),
            outbox: BTreeMap::new(),
            rows_of: BTreeMap::new(),
            refused: BTreeMap::new(),
            status: None,
            outcomes: BTreeMap::new(),
            runs: BTreeMap::new(),
            next_message: 1,
            next_incarnation: 1,
            fault: None,
            notified: (0, 0),
        }
    }
}

impl<P: Clone> MemStore<P> {
    /// An empty store: epoch 0, no journal, no messages.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the next operation, of any role, fail as `fault` says.
    pub fn fail_next(&mut self, fault: Fault) {
        self.fault = Some(fault);
    }

    /// Every journal entry still stored, in order.
    pub fn journal(&self) -> impl Iterator<Item = JournalRow<P>> + '_ {
        self.journal_from(0)
    }

    /// The journal entries from `from` on, in order.
    pub fn journal_from(&self, from: u64) -> impl Iterator<Item = JournalRow<P>> + '_ {
        self.journal
            .range(from..)
            .map(|(&seq, (epoch, entry))| JournalRow {
                seq,
                epoch: *epoch,
                entry: entry.clone(),
                bytes: 0,
            })
    }

    /// The final state a leader stored when it stopped the cluster.
    pub fn final_state(&self) -> Option<&(u64, NodeState<P>)> {
        self.final_state.as_ref()
    }

    /// The lease as of `now`.
    pub fn lease(&self, now: Instant) -> Lease {
        Lease {
            epoch: self.epoch,
            holder: self.holder.clone(),
            held: self.epoch > 0 && now < self.expires_at,
            left: if self.epoch > 0 {
                self.expires_at.saturating_duration_since(now)
            } else {
                std::time::Duration::ZERO
            },
            stopped: self.stopped,
        }
    }

    /// How much the store keeps: what rule 8 bounds.
    pub fn kept(&self) -> Kept {
        Kept {
            journal: self.journal.len(),
            inbox: self.inbox.len(),
            outbox: self.outbox.len(),
            outcomes: self.outcomes.len(),
        }
    }

    /// Runs `op` unless a fault is armed; a lost answer runs it and then
    /// fails.
    fn guarded<R>(
        &mut self,
        op: impl FnOnce(&mut Self) -> Result<R, StoreFailure>,
    ) -> Result<R, StoreFailure> {
        match self.fault.take() {
            Some(Fault::Fail) => Err(StoreFailure::Failed {
                cause: "injected failure".into(),
            }),
            Some(Fault::LoseAnswer) => {
                let _ = op(self);
                Err(StoreFailure::Unknown {
                    cause: "injected lost answer".into(),
                })
            }
            None => op(self),
        }
    }

    /// Rule 2: the lease is at `epoch` and alive; renews it.
    fn fence(
        &mut self,
        epoch: u64,
        ttl: std::time::Duration,
        now: Instant,
    ) -> Result<(), StoreFailure> {
        if self.epoch != epoch || now >= self.expires_at {
            return Err(StoreFailure::Fenced {
                epoch,
                current: self.epoch,
            });
        }
        self.expires_at = now.saturating_add(ttl);
        Ok(())
    }

    fn next_seq(&self) -> u64 {
        let after_snapshot = self.snapshots.keys().next_back().map_or(1, |s| s + 1);
        self.journal
            .keys()
            .next_back()
            .map_or(after_snapshot, |s| s + 1)
            .max(after_snapshot)
    }

    fn commit(
        &mut self,
        first_seq: u64,
        entries: Vec<Entry<P>>,
        consumed: Vec<(MessageId, Verdict)>,
        outputs: Outputs<P>,
        epoch: u64,
    ) -> Result<(), StoreFailure> {
        if first_seq != self.next_seq() {
            return Err(StoreFailure::Conflict {
                what: format!(
                    "entry {first_seq} is not the journal's next ({})",
                    self.next_seq()
                ),
            });
        }
        if let Some((id, _)) = consumed.iter().find(|(id, _)| !self.pending.contains(id)) {
            return Err(StoreFailure::Conflict {
                what: format!("message {id} is not pending"),
            });
        }
        let last_seq = (first_seq + entries.len() as u64).saturating_sub(1);
        for (seq, entry) in (first_seq..).zip(entries) {
            self.journal.insert(seq, (epoch, entry));
        }
        let mut results: BTreeMap<TaskId, P> = outputs.results.into_iter().collect();
        let tenants: BTreeMap<TaskId, TenantId> = outputs.tenants.into_iter().collect();
        for (task, end) in outputs.ended {
            let output = results.remove(&task);
            let tenant = tenants.get(&task).copied();
            let outcome = (last_seq, tenant, Outcome { end, output });
            // A task ends once, but a dead letter redriven ends anew as
            // its new task's pointer.
            if matches!(outcome.2.end, TaskEnd::Redriven(_)) {
                self.outcomes.insert(task, outcome);
            } else {
                self.outcomes.entry(task).or_insert(outcome);
            }
        }
        for end in outputs.runs {
            // A later end replaces an earlier one: the run was restarted
            // under an id its engine had forgotten.
            self.runs.insert(end.run, (last_seq, end));
        }
        for (id, verdict) in consumed {
            self.pending.remove(&id);
            if let Some(row) = self.inbox.get_mut(&id) {
                if let (Sender::Agent { agent, .. }, Verdict::Refused(_)) = (row.sender, &verdict) {
                    self.refused.entry(agent).or_default().insert(id);
                }
                row.verdict = Some(verdict);
            }
        }
        for assignment in outputs.assign {
            let key = (assignment.task, assignment.token);
            self.rows_of
                .entry(assignment.agent)
                .or_default()
                .insert(key);
            self.outbox
                .entry(key)
                .or_insert((assignment, RowState::Ready));
        }
        for key in outputs.cancel.iter().chain(&outputs.closed) {
            if let Some((row, _)) = self.outbox.remove(key) {
                if let Some(keys) = self.rows_of.get_mut(&row.agent) {
                    keys.remove(key);
                }
            }
        }
        if let Some(status) = outputs.status {
            self.status = Some(status);
        }
        Ok(())
    }

    fn run_node(&mut self, op: NodeOp<P>, now: Instant) -> Result<NodeReply<P>, StoreFailure> {
        Ok(match op {
            NodeOp::ReadLease => NodeReply::Lease(self.lease(now)),
            NodeOp::TakeLease { seen, holder, ttl } => {
                if self.epoch == seen && now >= self.expires_at && !self.stopped {
                    self.epoch += 1;
                    self.holder = holder;
                    self.expires_at = now.saturating_add(ttl);
                    NodeReply::Taken { epoch: self.epoch }
                } else {
                    NodeReply::Lease(self.lease(now))
                }
            }
            NodeOp::Renew { epoch, ttl } => {
                self.fence(epoch, ttl, now)?;
                NodeReply::Done
            }
            NodeOp::LatestSnapshot => NodeReply::Snapshot(
                self.snapshots
                    .iter()
                    .next_back()
                    .map(|(&seq, s)| (seq, Box::new(s.clone()))),
            ),
            NodeOp::ReadJournal { from, limit } => {
                let oldest = self
                    .journal
                    .keys()
                    .next()
                    .copied()
                    .unwrap_or(self.next_seq());
                if from < oldest {
                    NodeReply::Trimmed
                } else {
                    NodeReply::Journal(
                        self.journal
                            .range(from..)
                            .take(limit)
                            .map(|(&seq, (epoch, entry))| JournalRow {
                                seq,
                                epoch: *epoch,
                                entry: entry.clone(),
                                bytes: 0,
                            })
                            .collect(),
                    )
                }
            }
            NodeOp::ReadInbox { limit } => NodeReply::Inbox(
                self.pending
                    .iter()
                    .take(limit)
                    .filter_map(|id| {
                        let row = self.inbox.get(id)?;
                        Some(InboxMessage {
                            id: *id,
                            sender: row.sender,
                            body: Ok(row.body.clone()),
                            bytes: 0,
                        })
                    })
                    .collect(),
            ),
            NodeOp::ReadOutstanding => NodeReply::Outstanding(
                self.outbox
                    .iter()
                    .filter(|(_, (_, s))| matches!(s, RowState::Ready | RowState::Claimed(_)))
                    .map(|(&key, _)| key)
                    .collect(),
            ),
            NodeOp::Commit {
                epoch,
                ttl,
                first_seq,
                entries,
                consumed,
                outputs,
            } => {
                let saved = (self.expires_at, self.epoch);
                self.fence(epoch, ttl, now)?;
                let appends = !entries.is_empty();
                if let Err(e) = self.commit(first_seq, entries, consumed, outputs, epoch) {
                    (self.expires_at, self.epoch) = saved;
                    return Err(e);
                }
                self.notified.1 += u64::from(appends);
                NodeReply::Done
            }
            NodeOp::PutSnapshot {
                epoch,
                ttl,
                seq,
                snapshot,
                trim,
                forget_through,
            } => {
                self.fence(epoch, ttl, now)?;
                if let Some(through) = forget_through {
                    let pending = &self.pending;
                    self.inbox
                        .retain(|id, _| *id > through || pending.contains(id));
                }
                let previous = self.snapshots.range(..seq).next_back().map(|(&s, _)| s);
                let remembered: BTreeSet<WorkflowId> = snapshot.remembered_runs().collect();
                self.snapshots.entry(seq).or_insert(*snapshot);
                if let (true, Some(previous)) = (trim, previous) {
                    self.journal = self.journal.split_off(&(previous + 1));
                    self.outcomes
                        .retain(|_, (ended_at, ..)| *ended_at > previous);
                    self.runs.retain(|run, (ended_at, _)| {
                        *ended_at > previous || remembered.contains(run)
                    });
                    self.snapshots = self.snapshots.split_off(&previous);
                }
                NodeReply::Done
            }
            NodeOp::Stop {
                epoch,
                seq,
                snapshot,
            } => {
                let ttl = self.expires_at.saturating_duration_since(now);
                self.fence(epoch, ttl, now)?;
                self.final_state = Some((seq, *snapshot));
                self.stopped = true;
                NodeReply::Done
            }
        })
    }

    /// How many messages but heartbeats were posted, and how many commits
    /// appended to the journal, since the store was made: a host of nodes
    /// tells them of each ([`Node::notice`](super::Node::notice)), as
    /// PostgreSQL's triggers do.
    pub fn notified(&self) -> (u64, u64) {
        self.notified
    }

    fn post(&mut self, sender: Sender, messages: Vec<Message<P>>) -> Vec<MessageId> {
        messages
            .into_iter()
            .map(|body| {
                if !matches!(body, Message::Heartbeat) {
                    self.notified.0 += 1;
                }
                let id = self.next_message;
                self.next_message += 1;
                self.inbox.insert(
                    id,
                    InboxRow {
                        sender,
                        body,
                        verdict: None,
                    },
                );
                self.pending.insert(id);
                id
            })
            .collect()
    }

    fn claim(&mut self, agent: AgentId, incarnation: u64, limit: usize) -> Vec<Assignment<P>> {
        let mut fresh = 0;
        let mut rows = Vec::new();
        for key in self.rows_of.get(&agent).into_iter().flatten() {
            let Some((assignment, state)) = self.outbox.get_mut(key) else {
                continue;
            };
            let ours = assignment.incarnation == incarnation || assignment.incarnation == 0;
            match *state {
                RowState::Claimed(by) if by == incarnation => rows.push(assignment.clone()),
                // Only the life it was assigned to claims a row (rule 5).
                RowState::Ready if ours && fresh < limit => {
                    fresh += 1;
                    *state = RowState::Claimed(incarnation);
                    // A row assigned to any life answers as its claimer's.
                    assignment.incarnation = incarnation;
                    rows.push(assignment.clone());
                }
                _ => {}
            }
        }
        rows
    }

    fn run_agent(&mut self, op: AgentOp<P>) -> AgentReply<P> {
        let stopped = self.stopped;
        match op {
            AgentOp::Incarnate { .. } => {
                let incarnation = self.next_incarnation;
                self.next_incarnation += 1;
                AgentReply::Incarnation(incarnation)
            }
            AgentOp::Post { sender, messages } => {
                self.post(sender, messages);
                AgentReply::Posted { stopped }
            }
            AgentOp::Claim {
                agent,
                incarnation,
                limit,
            } => AgentReply::Claimed {
                rows: self.claim(agent, incarnation, limit),
                stopped,
            },
            AgentOp::Report { sender, reports } => {
                for finished in &reports {
                    let report = finished.task_report();
                    if let Some((row, state)) = self.outbox.get_mut(&(report.task, report.token)) {
                        let holder = matches!(sender, Sender::Agent { agent, incarnation }
                            if agent == row.agent && *state == RowState::Claimed(incarnation));
                        if holder {
                            *state = RowState::Done;
                        }
                    }
                }
                self.post(
                    sender,
                    reports.into_iter().map(Finished::into_message).collect(),
                );
                AgentReply::Posted { stopped }
            }
            AgentOp::TakeRefusals { agent } => {
                let ids = self.refused.remove(&agent).unwrap_or_default();
                let refusals = ids
                    .into_iter()
                    .filter_map(|id| match &self.inbox.get(&id)?.verdict {
                        Some(Verdict::Refused(why)) => Some((id, why.clone())),
                        _ => None,
                    })
                    .collect();
                AgentReply::Refusals(refusals)
            }
        }
    }
}

impl<P: Clone> Store<P> for MemStore<P> {
    fn node(&mut self, op: NodeOp<P>, now: Instant) -> Result<NodeReply<P>, StoreFailure> {
        self.guarded(|store| store.run_node(op, now))
    }

    fn agent(&mut self, op: AgentOp<P>, _now: Instant) -> Result<AgentReply<P>, StoreFailure> {
        self.guarded(|store| Ok(store.run_agent(op)))
    }

    fn client(&mut self, op: ClientOp<P>, now: Instant) -> Result<ClientReply<P>, StoreFailure> {
        self.guarded(|store| Ok(store.run_client(Sender::Client, op, now)))
    }
}
