//! The graph: edges firing or skipped, joins deciding, branches cancelled,
//! and the run succeeding when every step is settled.

use std::sync::Arc;

use super::{AttemptEnd, EdgeState, ExecState, NONE, Phase, StepState, WorkflowRun};
use crate::workflow::join::Decision;
use crate::workflow::{RunAction, RunOutcome, StepCancelReason, WorkflowEvent};
use crate::{Instant, StepId};

impl<P: Clone> WorkflowRun<P> {
    // ---- the graph -----------------------------------------------------

    /// `chosen`: the labels of the branches taken, or `None` for a step
    /// known to have no labelled outgoing edges (every edge fires).
    pub(super) fn complete_step(&mut self, step: StepId, chosen: Option<&[String]>, now: Instant) {
        self.slot_mut(step).state = StepState::Completed;
        self.state.open_steps = self.state.open_steps.saturating_sub(1);
        let run = self.state.id;
        self.emit(WorkflowEvent::StepCompleted { run, step });
        // Disjoint field borrows: no clone of the `Arc` on the hot path.
        let (def, work) = (&self.def, &mut self.work);
        for &(to, edge) in def.successor_edges(step) {
            let fire = chosen.is_none_or(|chosen| {
                def.label(edge)
                    .is_none_or(|label| chosen.iter().any(|c| c == label))
            });
            work.push_back((edge, to, fire));
        }
        self.drain_edges(now);
        self.check_succeeded();
    }

    /// Skips or cancels `step`'s outgoing edges.
    pub(super) fn skip_successors(&mut self, step: StepId) {
        for &(to, edge) in self.def.successor_edges(step) {
            self.work.push_back((edge, to, false));
        }
    }

    /// Applies queued edge resolutions until none is left, starting and
    /// skipping steps as their joins decide.
    pub(super) fn drain_edges(&mut self, now: Instant) {
        while let Some((edge, to, fire)) = self.work.pop_front() {
            self.state.edges[edge.index()] = if fire {
                EdgeState::Fired
            } else {
                EdgeState::Skipped
            };
            let slot = self.slot_mut(to);
            if slot.state != StepState::Pending {
                continue;
            }
            if fire {
                slot.fired += 1;
            } else {
                slot.skipped += 1;
            }
            let (fired, skipped) = (slot.fired, slot.skipped);
            let meta = self.def.meta(to);
            let m = meta.in_degree;
            match meta.join.decide(fired, skipped, m) {
                Decision::Wait => {}
                Decision::Skip => self.skip_step(to),
                Decision::Start { cancel_remaining } => {
                    self.make_ready(to, now);
                    if cancel_remaining {
                        self.cancel_remaining(to, now);
                    }
                }
            }
        }
    }

    /// Starts each entry step of the definition that the run has not
    /// reached, at the latest instant the run has seen: after a
    /// migration, an entry step the later version adds, or one whose
    /// predecessors it removed. A run that has just started has reached
    /// all of them.
    pub(in crate::workflow) fn start_unreached_entries(&mut self) {
        let now = self.state.latest;
        let def = Arc::clone(&self.def);
        for &entry in def.entries() {
            let slot = self.state.steps.get(entry.get() as usize);
            if slot.is_some_and(|slot| slot.is_unreached()) {
                self.make_ready(entry, now);
            }
        }
    }

    pub(super) fn skip_step(&mut self, step: StepId) {
        self.slot_mut(step).state = StepState::Skipped;
        self.state.open_steps = self.state.open_steps.saturating_sub(1);
        let run = self.state.id;
        self.emit(WorkflowEvent::StepSkipped { run, step });
        self.skip_successors(step);
    }

    /// After a cancelling join started: cancels the branches feeding its
    /// still-pending edges, walking upstream while a step is needed by no
    /// one else.
    pub(super) fn cancel_remaining(&mut self, join: StepId, now: Instant) {
        let def = Arc::clone(&self.def);
        let mut stack: Vec<StepId> = def
            .predecessor_edges(join)
            .iter()
            .filter(|&&(_, edge)| self.state.edges[edge.index()] == EdgeState::Pending)
            .map(|&(from, _)| from)
            .collect();
        while let Some(step) = stack.pop() {
            if self.state.steps[step.get() as usize].state.is_terminal() {
                continue;
            }
            let still_needed = def
                .successor_edges(step)
                .iter()
                .any(|&(to, _)| self.state.steps[to.get() as usize].state == StepState::Pending);
            if still_needed {
                continue;
            }
            self.stop_step(step, StepCancelReason::BranchCancelled, now);
            stack.extend(def.predecessor_edges(step).iter().map(|&(from, _)| from));
        }
    }

    /// Stops whatever `step` is doing and marks it cancelled; its outgoing
    /// edges are queued as skipped.
    pub(super) fn stop_step(&mut self, step: StepId, reason: StepCancelReason, now: Instant) {
        self.stop_execs(step, reason, now);
        self.state.waiting.retain(|&s| s != step);
        self.slot_mut(step).state = StepState::Cancelled;
        self.state.open_steps = self.state.open_steps.saturating_sub(1);
        let run = self.state.id;
        self.emit(WorkflowEvent::StepSkipped { run, step });
        self.skip_successors(step);
    }

    /// Cancels `step`'s running attempts and pending retries (every
    /// instance's, for a multi-instance step).
    pub(super) fn stop_execs(&mut self, step: StepId, reason: StepCancelReason, now: Instant) {
        let slot = &self.state.steps[step.get() as usize];
        let execs: Vec<u32> = if slot.instances.is_empty() {
            (slot.exec != NONE)
                .then_some(slot.exec)
                .into_iter()
                .collect()
        } else {
            slot.instances.clone()
        };
        for exec in execs {
            match self.state.execs[exec as usize].state {
                ExecState::Running(token) => {
                    self.end_attempt(token, AttemptEnd::Cancelled, now);
                    self.state.actions.push_back(RunAction::Cancel {
                        step,
                        token,
                        reason,
                    });
                    self.state.execs[exec as usize].state = ExecState::Cancelled;
                }
                ExecState::Delayed { .. } => {
                    self.state.execs[exec as usize].state = ExecState::Cancelled;
                }
                ExecState::Completed | ExecState::Failed | ExecState::Cancelled => {}
            }
        }
    }

    pub(super) fn check_succeeded(&mut self) {
        if self.state.open_steps == 0 && matches!(self.state.phase, Phase::Running) {
            let run = self.state.id;
            self.emit(WorkflowEvent::RunCompleted { run });
            self.finish(RunOutcome::Succeeded);
        }
    }

    pub(super) fn finish(&mut self, outcome: RunOutcome) {
        self.state.phase = Phase::Finished(outcome);
        self.state.timers.clear();
        self.state.actions.push_back(RunAction::Finished);
    }
}
