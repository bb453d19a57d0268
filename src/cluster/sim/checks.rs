//! The checks a world makes of the cluster's state, beside the ones it
//! makes of every event: outcomes published with their ends, snapshots
//! that restore, a takeover from the journal's state, and the accounts
//! once the cluster settled.

use super::super::audit::{Auditor, EndSeen};
use super::super::contract::NodeState;
use super::config::SimWork;
use super::driver::Driver;
use super::world::World;
use crate::routing::{LeastLoaded, RoutingStrategy};
use crate::scheduler::Dispatcher;

impl<P: Clone + PartialEq + std::fmt::Debug, W: SimWork<P>, D: Driver<P>> World<P, W, D> {
    /// Every task end a commit journaled has its outcome published by the
    /// same commit, saying the same, with the output of the completion the
    /// leader accepted: a client waiting for it reads it.
    /// A dead letter's end is replaced by its redrive's
    /// ([`TaskEnd::Redriven`](super::super::TaskEnd::Redriven)), so only a
    /// task's last end in `ends` is the one to read.
    pub(crate) fn check_outcomes_published(&mut self, ends: &[EndSeen<P>]) {
        let last: std::collections::HashMap<_, _> = (ends.iter().enumerate())
            .map(|(at, (task, ..))| (*task, at))
            .collect();
        for (at, (task, seq, how, output)) in ends.iter().enumerate() {
            if last.get(task) != Some(&at) {
                continue;
            }
            let published = self.store.outcome(*task);
            let agrees = published.is_some_and(|(_, _, outcome)| {
                how.agrees_with(&outcome.end) && outcome.output == *output
            });
            if !agrees {
                return self.violate(format!(
                    "task {task} ended {how:?} with output {output:?} in entry {seq}, but the outcome published is {published:?}"
                ));
            }
        }
    }

    /// Every snapshot a leader stores restores, as a follower would
    /// restore it (its hosted runs too).
    pub(crate) fn check_snapshot_restores(&mut self, seq: u64, snapshot: NodeState<P>) {
        let config = self.config.dispatcher.clone();
        let restored = match self.codec.clone() {
            Some(codec) => Auditor::from_snapshot_with_runs(config, codec, seq, snapshot).map(drop),
            None => {
                let strategy: Box<dyn RoutingStrategy + Send> = Box::new(LeastLoaded::new());
                Dispatcher::restore(config, strategy, snapshot.dispatcher)
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
        };
        if let Err(error) = restored {
            self.violate(format!(
                "the snapshot stored after entry {seq} does not restore: {error}"
            ));
        }
    }

    /// A new leader's state equals a replay of the journal.
    pub(crate) fn check_takeover(&mut self, i: usize) {
        let applied = self.nodes[i].node.applied();
        let audited = self.auditor.next_seq().saturating_sub(1);
        if applied != audited {
            return self.violate(format!(
                "node {i} leads from entry {applied}, the journal holds {audited}"
            ));
        }
        let leader = fingerprint(self.nodes[i].node.dispatcher());
        let replay = fingerprint(self.auditor.dispatcher());
        if leader != replay {
            return self.violate(format!(
                "node {i} leads from a state that is not the journal's:\n  leader {leader}\n  replay {replay}"
            ));
        }
        if self.codec.is_some() && self.nodes[i].node.state().runs != self.auditor.state().runs {
            self.violate(format!(
                "node {i} leads with hosted runs that are not the journal's (entry {applied})"
            ));
        }
    }

    /// Once settled, every task the clients submitted was either refused
    /// at once (with a verdict) or accepted, and every accepted one (and
    /// every dead letter an operator requeued as a new task) ended
    /// exactly one way: nothing lost, nothing made up; and the audit's
    /// totals agree with the replayed dispatcher's own counters. (With
    /// hosted runs the nodes submit the steps' tasks themselves, and
    /// the workflows count those they saw assigned: some are cancelled
    /// before any agent gets them, so the steps must be at least that
    /// many.)
    pub(crate) fn check_accounts(&mut self) {
        let report = self.auditor.report();
        if report.violation_count > self.auditor.violation_count() {
            let what = report.violations.last().cloned().unwrap_or_default();
            return self.violate(format!("the audit's totals: {what}"));
        }
        let ended = report.completed + report.dead_lettered + report.expired + report.cancelled;
        let steps = self.flows.tasks();
        // A redriven letter is a new task no client submitted.
        let accepted_steps =
            (report.tasks + self.refused).checked_sub(self.submitted + report.redriven);
        let steps_add_up = match (accepted_steps, self.codec.is_some()) {
            (Some(accepted), true) => accepted >= steps,
            (Some(accepted), false) => accepted == steps,
            (None, _) => false,
        };
        if !steps_add_up || ended != report.tasks {
            return self.violate(format!(
                "tasks do not add up: {} submitted, {} refused, {steps} workflow steps, {} accepted \
                 ({} of them redriven letters), {ended} ended",
                self.submitted, self.refused, report.tasks, report.redriven
            ));
        }
        if let Err(what) = self.flows.check_stopped(&self.auditor.state()) {
            return self.violate(what);
        }
        self.check_kept();
    }

    /// What the stopped store keeps is bounded by the work in flight (none)
    /// and a snapshot's worth of history (rule 8): no outbox row, and a
    /// journal trimmed behind the snapshot before the last, plus the
    /// batches that overshoot each.
    fn check_kept(&mut self) {
        let kept = self.store.kept();
        let node = &self.config.node;
        let bound = 2 * (node.snapshot_every + node.batch as u64);
        if kept.outbox != 0 || (node.trim && kept.journal as u64 > bound) {
            self.violate(format!(
                "the stopped store keeps {} outbox rows and {} journal entries (at most 0 and {bound})",
                kept.outbox, kept.journal
            ));
        }
    }
}

/// What can be observed of a dispatcher's state, in a fixed order: its
/// clock, every live task with its state and priority, every agent with
/// its status, load and labels, the counters, the dead letters.
fn fingerprint<P>(d: &crate::scheduler::Dispatcher<P>) -> String {
    use std::fmt::Write as _;
    let mut tasks: Vec<_> = d
        .iter_live_tasks()
        .map(|(task, state, priority, _)| (task, state, priority))
        .collect();
    tasks.sort_by_key(|t| t.0);
    let mut out = format!("clock {:?} tasks {tasks:?} agents [", d.clock());
    for record in d.registry().iter() {
        let _ = write!(
            out,
            "({} {:?} {} {:?})",
            record.id(),
            record.status(),
            record.load(),
            record.profile().labels()
        );
    }
    let _ = write!(
        out,
        "] counters {:?} dead letters {}",
        d.metrics().counters,
        d.dead_letters().len()
    );
    out
}
