//! [`Auditor`]: replays a journal into a fresh dispatcher and checks the
//! cluster's invariants entry by entry: sequence numbers without holes,
//! epochs that never go back, no report accepted from an attempt that is
//! not the task's current one (fencing), and no task that ends twice.
//! The `audit` command of `taskweave-pg` and the role tests run it.
//!
//! A trimmed journal starts behind a snapshot. The audit then replays the
//! entries after it and takes the totals before it from the snapshot's
//! counters, which restore checked against the tasks the snapshot holds
//! (`submitted` equals the tasks ended plus the live ones). The report
//! says which entries it checked ([`AuditReport::first_entry`]) and gives
//! both the totals since the start ([`AuditReport::since_start`]) and the
//! counts of the checked entries; the replayed dispatcher's own counters
//! must agree with the snapshot's plus what the audit counted, or that is
//! a violation.
//!
//! On a cluster that hosts runs, the audit checks them too ([`RunTotals`]
//! counts them): each run ends once, no step of it starts after it ended,
//! only a completed step is compensated and in the saga's order, and a
//! step holds the output of the report that completed it.

mod ended;
mod runs;

use std::collections::BTreeMap;

use crate::metrics::Counters;

use crate::scheduler::{
    Action, Applied, AttemptOutcome, Dispatcher, DispatcherConfig, Input, Submitted,
};
use crate::{AgentId, AttemptToken, TaskId};

use super::contract::{Entry, JournalRow, NodeState, RunEnd};
use super::incarnation::registered_incarnation;
use super::node::{Effect, Replica};
use super::runs::RunCodec;
pub(crate) use ended::{EndSeen, Ended};
use runs::RunAudit;
pub use runs::RunTotals;

/// How many violations an audit keeps in words (it counts them all).
pub const MAX_VIOLATIONS: usize = 100;

/// What an audit found so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditReport {
    /// Journal entries replayed.
    pub entries: u64,
    /// Their stored bytes.
    pub bytes: u64,
    /// Entries per epoch.
    pub entries_by_epoch: BTreeMap<u64, u64>,
    /// Tasks submitted in the replayed part (dead letters requeued as
    /// new tasks included).
    pub tasks: u64,
    /// Of those, dead letters an operator requeued as new tasks
    /// ([`Message::Redrive`](super::Message::Redrive)).
    pub redriven: u64,
    /// Tasks completed (once each, or see `violations`).
    pub completed: u64,
    /// Tasks dead-lettered.
    pub dead_lettered: u64,
    /// Tasks expired.
    pub expired: u64,
    /// Tasks cancelled.
    pub cancelled: u64,
    /// Tasks still live at the end.
    pub live: u64,
    /// Reports the dispatcher accepted.
    pub accepted_reports: u64,
    /// Reports it refused (late, fenced or forged).
    pub refused_reports: u64,
    /// The first entry checked: 1, or the entry after the snapshot a
    /// trimmed journal starts behind.
    pub first_entry: u64,
    /// Task totals since the cluster's start: the snapshot's counters (all
    /// zero without one) plus the checked entries' counts.
    pub since_start: AuditTotals,
    /// Hosted runs in the checked entries (all zero on a cluster that
    /// hosts none).
    pub runs: RunTotals,
    /// Violations found (all counted, the first [`MAX_VIOLATIONS`] kept).
    pub violation_count: u64,
    /// The first violations, in words.
    pub violations: Vec<String>,
}

impl AuditReport {
    /// No rule was broken in the checked entries (see
    /// [`first_entry`](Self::first_entry) for where they start).
    pub fn is_clean(&self) -> bool {
        self.violation_count == 0
    }

    /// Whether the audit checked the journal from its first entry.
    pub fn is_whole(&self) -> bool {
        self.first_entry <= 1
    }
}

/// Task totals: how many were submitted, how they ended, how many live.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuditTotals {
    /// Tasks submitted (duplicates of an idempotency key not counted).
    pub submitted: u64,
    /// Tasks completed.
    pub completed: u64,
    /// Tasks dead-lettered.
    pub dead_lettered: u64,
    /// Tasks expired.
    pub expired: u64,
    /// Tasks cancelled.
    pub cancelled: u64,
    /// Tasks live at the end.
    pub live: u64,
}

impl AuditTotals {
    /// The totals a dispatcher's counters give, with `live` tasks.
    fn of(counters: &Counters, live: u64) -> Self {
        AuditTotals {
            submitted: counters.submitted,
            completed: counters.completed,
            dead_lettered: counters.dead_lettered,
            expired: counters.expired,
            cancelled: counters.cancelled,
            live,
        }
    }
}

/// What the audit knows of one task.
#[derive(Clone, Copy, Debug, Default)]
struct Track {
    /// The attempt handed out and not stopped.
    current: Option<(AgentId, AttemptToken)>,
    /// The incarnation its agent was registered with when it was handed
    /// out (0: none known).
    incarnation: u64,
    /// Times it ended.
    ends: u32,
}

/// [`Auditor`]: replays a journal into a fresh dispatcher and checks the
/// cluster's invariants entry by entry: sequence numbers without holes,
/// epochs that never go back, no report accepted from an attempt that is
/// not the task's current one (fencing), and no task that ends twice.
/// The `audit` command of `taskweave-pg` and the role tests run it.
pub struct Auditor<P> {
    replica: Replica<P>,
    last_epoch: u64,
    tasks: BTreeMap<TaskId, Track>,
    report: AuditReport,
    /// The counters of the snapshot the audit started from.
    base: Counters,
    /// Task ends not taken yet, `(task, entry, how, output)`, kept only
    /// once [`watch`](Self::watch) asked for them.
    ends: Option<Vec<EndSeen<P>>>,
    /// Attempts cancelled and not taken yet, kept like `ends`.
    cancels: Option<Vec<AttemptToken>>,
    /// Hosted runs' ends the replay produced and not taken yet, with the
    /// entry that produced each, kept like `ends`.
    run_ends: Option<Vec<(u64, RunEnd<P>)>>,
    /// The checks of hosted runs, on a cluster that hosts them.
    runs: Option<RunAudit>,
}

impl<P> std::fmt::Debug for Auditor<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auditor")
            .field("report", &self.report)
            .finish_non_exhaustive()
    }
}

impl<P: Clone + PartialEq> Auditor<P> {
    /// An audit from journal entry 1 under the cluster's dispatcher
    /// configuration.
    pub fn new(config: DispatcherConfig) -> Self {
        Auditor {
            replica: Replica::empty(config, None),
            last_epoch: 0,
            tasks: BTreeMap::new(),
            report: AuditReport {
                first_entry: 1,
                ..AuditReport::default()
            },
            base: Counters::default(),
            ends: None,
            cancels: None,
            run_ends: None,
            runs: None,
        }
    }

    /// An audit that starts from the snapshot after entry `seq` (for a
    /// trimmed journal). Tasks the snapshot holds are followed from their
    /// state in it; the totals before entry `seq + 1` are the snapshot's
    /// counters.
    ///
    /// # Errors
    ///
    /// The reason the snapshot does not restore.
    pub fn from_snapshot(
        config: DispatcherConfig,
        seq: u64,
        snapshot: NodeState<P>,
    ) -> Result<Self, String> {
        Self::from_state(config, None, seq, snapshot)
    }

    /// An audit of a cluster that hosts runs with `codec`
    /// ([`Node::host_runs`](super::Node::host_runs)), from journal entry 1.
    pub fn with_runs(config: DispatcherConfig, codec: RunCodec<P>) -> Self {
        let mut auditor = Self::new(config.clone());
        auditor.replica = Replica::empty(config, Some(codec));
        auditor.runs = auditor.replica.hosted_mut().map(RunAudit::new);
        auditor
    }

    /// [`from_snapshot`](Self::from_snapshot) of a cluster that hosts
    /// runs with `codec`.
    ///
    /// # Errors
    ///
    /// The reason the snapshot does not restore.
    pub fn from_snapshot_with_runs(
        config: DispatcherConfig,
        codec: RunCodec<P>,
        seq: u64,
        snapshot: NodeState<P>,
    ) -> Result<Self, String> {
        Self::from_state(config, Some(codec), seq, snapshot)
    }

    fn from_state(
        config: DispatcherConfig,
        codec: Option<RunCodec<P>>,
        seq: u64,
        snapshot: NodeState<P>,
    ) -> Result<Self, String> {
        let mut replica = Replica::restore(config, codec, seq, snapshot)?;
        let runs = replica.hosted_mut().map(RunAudit::new);
        let mut tasks = BTreeMap::new();
        for (task, state, _, _) in replica.dispatcher.iter_live_tasks() {
            let current = match state {
                crate::scheduler::TaskState::InFlight { agent, token, .. } => Some((agent, token)),
                _ => None,
            };
            let incarnation = current.map_or(0, |(agent, _)| {
                registered_incarnation(replica.dispatcher.registry(), agent)
            });
            tasks.insert(
                task,
                Track {
                    current,
                    incarnation,
                    ends: 0,
                },
            );
        }
        let base = replica.dispatcher.counters();
        Ok(Auditor {
            replica,
            last_epoch: 0,
            tasks,
            report: AuditReport {
                first_entry: seq.saturating_add(1),
                ..AuditReport::default()
            },
            base,
            ends: None,
            cancels: None,
            run_ends: None,
            runs,
        })
    }

    /// The next entry the audit expects.
    pub fn next_seq(&self) -> u64 {
        self.replica.next_seq
    }

    /// The replayed dispatcher: compare its snapshot with a stored one.
    pub fn dispatcher(&self) -> &Dispatcher<P> {
        &self.replica.dispatcher
    }

    /// The state the entries applied so far lead to, hosted runs
    /// included, as a node's snapshot holds it.
    pub fn state(&self) -> NodeState<P> {
        self.replica.state()
    }

    /// Replays one row and checks it.
    pub fn apply(&mut self, row: JournalRow<P>) {
        let expected = self.replica.next_seq;
        if row.seq != expected {
            self.violation(format!("entry {} follows entry {}", row.seq, expected - 1));
        }
        if row.epoch < self.last_epoch {
            let last = self.last_epoch;
            self.violation(format!(
                "entry {} has epoch {} after epoch {last}",
                row.seq, row.epoch
            ));
        }
        self.last_epoch = self.last_epoch.max(row.epoch);
        self.report.entries += 1;
        self.report.bytes += row.bytes as u64;
        *self.report.entries_by_epoch.entry(row.epoch).or_default() += 1;
        let (report, output) = match &row.entry {
            Entry::Input(Input::Report { report, .. }) => (Some(report.clone()), None),
            Entry::Completed { report, output, .. } => (Some(report.clone()), Some(output.clone())),
            _ => (None, None),
        };
        let completion = self.completion(&row.entry);
        let cancel = match &row.entry {
            Entry::Input(Input::Cancel { task, .. }) => Some(*task),
            _ => None,
        };
        let letter = match row.entry {
            Entry::Input(Input::RequeueDeadLetter { task, .. }) => Some(task),
            _ => None,
        };
        let counted = (self.report.tasks, self.report.cancelled);
        let before = self.replica.dispatcher.counters();
        let step = self.replica.apply(row.entry);
        let actions = step.actions;
        let ended = step.ended;
        let accepted = step.result.is_ok();
        match (step.result, report) {
            (Ok(Effect::Applied(Applied::Batch(results))), _) => {
                for submitted in results.iter().flatten() {
                    self.submitted(*submitted);
                }
            }
            (Ok(Effect::Applied(Applied::Submitted(submitted))), None) => {
                if let Some(letter) = letter {
                    self.redriven(letter, submitted.id(), row.seq);
                }
                self.submitted(submitted);
            }
            (Ok(Effect::Applied(Applied::Redriven(redriven))), _) => {
                for (letter, task) in redriven.requeued {
                    self.redriven(letter, task, row.seq);
                    self.submitted(Submitted::New(task));
                }
            }
            (Ok(Effect::Applied(Applied::Cancelled(_))), _) => {
                if let Some(task) = cancel {
                    self.report.cancelled += 1;
                    self.ended(task, row.seq, Ended::Cancelled, None);
                }
            }
            (Ok(_), Some(report)) => {
                self.report.accepted_reports += 1;
                let track = self.tasks.entry(report.task).or_default();
                let attempt = (report.agent, report.token);
                let current = track.current.take();
                if current != Some(attempt) {
                    self.violation(format!(
                        "entry {}: a report of task {} from attempt {attempt:?} was accepted, the current one is {current:?}",
                        row.seq, report.task
                    ));
                }
                if report.outcome == AttemptOutcome::Success {
                    self.report.completed += 1;
                    self.ended(report.task, row.seq, Ended::Completed, output);
                }
            }
            (Err(_), Some(_)) => self.report.refused_reports += 1,
            _ => {}
        }
        for action in actions {
            self.follow(action, row.seq);
        }
        if let (Some(runs), Some(engine)) = (&mut self.runs, self.replica.engine()) {
            let mut violations = Vec::new();
            let completion = completion.filter(|_| accepted);
            runs.entry(row.seq, engine, &ended, completion, &mut violations);
            for violation in violations {
                self.violation(violation);
            }
        }
        if let Some(run_ends) = &mut self.run_ends {
            run_ends.extend(ended.into_iter().map(|end| (row.seq, end)));
        }
        // The tasks a node submits and cancels itself while it applies an
        // entry (a hosted run's steps, and their cancels once the run no
        // longer needs them) show in no effect: the counters say how many.
        let after = self.replica.dispatcher.counters();
        let unseen =
            |before: u64, after: u64, seen: u64| after.saturating_sub(before).saturating_sub(seen);
        self.report.tasks += unseen(
            before.submitted,
            after.submitted,
            self.report.tasks - counted.0,
        );
        self.report.cancelled += unseen(
            before.cancelled,
            after.cancelled,
            self.report.cancelled - counted.1,
        );
    }

    /// What to check once `entry` applied, if it reports a hosted run's
    /// step task done.
    fn completion(&self, entry: &Entry<P>) -> Option<runs::Completion<P>> {
        let hosted = self.replica.hosted().filter(|_| self.runs.is_some())?;
        match entry {
            Entry::Completed { report, output, .. } => {
                RunAudit::completion(hosted, report.task, Some(output))
            }
            Entry::Input(Input::Report { report, .. })
                if report.outcome == AttemptOutcome::Success =>
            {
                RunAudit::completion(hosted, report.task, None)
            }
            _ => None,
        }
    }

    fn follow(&mut self, action: Action, seq: u64) {
        match action {
            Action::Assign {
                task, agent, token, ..
            } => {
                let incarnation = registered_incarnation(self.replica.dispatcher.registry(), agent);
                let track = self.tasks.entry(task).or_default();
                track.current = Some((agent, token));
                track.incarnation = incarnation;
            }
            Action::Cancel { task, token, .. } => {
                if let Some(cancels) = &mut self.cancels {
                    cancels.push(token);
                }
                let track = self.tasks.entry(task).or_default();
                if track.current.is_some_and(|(_, t)| t == token) {
                    track.current = None;
                }
            }
            Action::DeadLettered { task, .. } => {
                self.report.dead_lettered += 1;
                self.ended(task, seq, Ended::DeadLettered, None);
            }
            Action::Expired { task, .. } => {
                self.report.expired += 1;
                self.ended(task, seq, Ended::Expired, None);
            }
            Action::AgentLost { .. } => {}
        }
    }

    /// A submission the journal applied: a new task is tracked; a
    /// duplicate (an idempotency key seen before) names a task tracked
    /// already, whose attempt it must not reset.
    fn submitted(&mut self, submitted: Submitted) {
        if let Submitted::New(task) = submitted {
            self.report.tasks += 1;
            self.tasks.insert(task, Track::default());
        }
    }

    /// Dead letter `letter` requeued as `new` by entry `seq`: not an end
    /// (the letter ended once already), but its outcome is replaced.
    fn redriven(&mut self, letter: TaskId, new: TaskId, seq: u64) {
        self.report.redriven += 1;
        if let Some(ends) = &mut self.ends {
            ends.push((letter, seq, Ended::Redriven(new), None));
        }
    }

    fn ended(&mut self, task: TaskId, seq: u64, how: Ended, output: Option<P>) {
        if let Some(ends) = &mut self.ends {
            ends.push((task, seq, how, output));
        }
        let track = self.tasks.entry(task).or_default();
        track.ends += 1;
        track.current = None;
        if track.ends > 1 {
            let ends = track.ends;
            self.violation(format!("entry {seq}: task {task} ended a {ends}th time"));
        }
    }

    fn violation(&mut self, what: String) {
        self.report.violation_count += 1;
        if self.report.violations.len() < MAX_VIOLATIONS {
            self.report.violations.push(what);
        }
    }

    /// The incarnation of the agent that `task`'s current attempt `token`
    /// was handed to, as registered then; `None` when `token` is not the
    /// current attempt.
    pub(crate) fn attempt_incarnation(&self, task: TaskId, token: AttemptToken) -> Option<u64> {
        let track = self.tasks.get(&task)?;
        (track.current?.1 == token).then_some(track.incarnation)
    }

    /// Keeps every task end, every attempt cancelled and every hosted
    /// run's end from now on, for [`take_ends`](Self::take_ends),
    /// [`take_cancels`](Self::take_cancels) and
    /// [`take_run_ends`](Self::take_run_ends) (the simulator checks each
    /// end against what the store published, and that cancelled work
    /// stops).
    pub(crate) fn watch(&mut self) {
        self.ends.get_or_insert_with(Vec::new);
        self.cancels.get_or_insert_with(Vec::new);
        self.run_ends.get_or_insert_with(Vec::new);
    }

    /// The hosted runs' ends the replay produced since the last call,
    /// each with the entry that produced it, in order.
    pub(crate) fn take_run_ends(&mut self) -> Vec<(u64, RunEnd<P>)> {
        self.run_ends
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// The attempts cancelled since the last call.
    pub(crate) fn take_cancels(&mut self) -> Vec<AttemptToken> {
        self.cancels
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// The task ends since the last call, `(task, entry, how, output)`:
    /// the output of the accepted completion that ended a task with one.
    pub(crate) fn take_ends(&mut self) -> Vec<EndSeen<P>> {
        self.ends.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Violations found so far (all counted), without copying the report.
    pub fn violation_count(&self) -> u64 {
        self.report.violation_count
    }

    /// The first violations found, in words.
    pub fn violations(&self) -> &[String] {
        &self.report.violations
    }

    /// The findings so far; `live` counts the tasks not ended. The
    /// replayed dispatcher's counters must equal the snapshot's (if the
    /// audit started from one) plus what the audit counted in the checked
    /// entries; a difference is one more violation.
    pub fn report(&self) -> AuditReport {
        let mut report = self.report.clone();
        report.live = self.replica.dispatcher.live_tasks() as u64;
        let base = &self.base;
        let counted = AuditTotals {
            submitted: base.submitted.saturating_add(report.tasks),
            completed: base.completed.saturating_add(report.completed),
            dead_lettered: base.dead_lettered.saturating_add(report.dead_lettered),
            expired: base.expired.saturating_add(report.expired),
            cancelled: base.cancelled.saturating_add(report.cancelled),
            live: report.live,
        };
        let own = AuditTotals::of(&self.replica.dispatcher.counters(), report.live);
        // A cancel the dispatcher made itself (a superseded task) is no
        // journal entry the audit sees: compare the rest.
        let comparable = |t: &AuditTotals| (t.submitted, t.completed, t.dead_lettered, t.expired);
        if comparable(&counted) != comparable(&own) {
            report.violation_count += 1;
            if report.violations.len() < MAX_VIOLATIONS {
                report.violations.push(format!(
                    "the totals disagree: the audit counts {counted:?}, the replayed dispatcher {own:?}"
                ));
            }
        }
        report.since_start = own;
        report.runs = self.runs.as_ref().map(RunAudit::totals).unwrap_or_default();
        report
    }
}
