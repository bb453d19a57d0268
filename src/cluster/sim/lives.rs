//! Agents' lives and the cluster's end: an agent that dies for good, a
//! previous life whose claim and report arrive after its restart, and the
//! drain once the faults and the workflow runs are over.

use std::time::Duration;

use crate::scheduler::{AttemptOutcome, TaskReport};
use crate::{AgentId, AttemptToken, Instant, TaskId};

use super::super::contract::{AgentOp, AgentReply, ClientOp, Finished, Message, Sender, Store};
use super::config::SimWork;
use super::driver::Driver;
use super::world::{Event, World};

impl<P: Clone + PartialEq + std::fmt::Debug, W: SimWork<P>, D: Driver<P>> World<P, W, D> {
    /// Agent `i` dies and never comes back, unless a third of the agents
    /// are dead already. Its attempts must fail over when its heartbeats
    /// stop; the liveness check at the end sees any that do not.
    pub(crate) fn die_for_good(&mut self, i: usize) {
        let dead = self
            .agents
            .iter()
            .filter(|a| a.down_until == Instant::MAX)
            .count();
        if self.agents[i].down_until == Instant::MAX || (dead + 1) * 3 > self.agents.len() {
            return;
        }
        self.restart_agent(i, Duration::MAX, "die_agent");
    }

    /// Whether agent `i` died for good.
    pub(crate) fn is_dead(&self, i: usize) -> bool {
        self.agents[i].down_until == Instant::MAX
    }

    /// Maybe sends agent `i`'s previous life's claim and report to arrive
    /// after its new life registered: a process that died with both on
    /// the wire.
    pub(crate) fn maybe_old_life(&mut self, i: usize) {
        if !self.rng.chance(self.config.faults.old_life) {
            return;
        }
        let session = &self.agents[i].session;
        let (agent, incarnation) = (session.agent(), session.incarnation());
        let attempts = self.attempts_held(agent);
        let late = self
            .rng
            .between(Duration::from_millis(20), Duration::from_millis(300));
        *self.faults.entry("old_life").or_default() += 1;
        self.queue.push(
            self.now.saturating_add(late),
            Event::OldLife {
                agent: i,
                incarnation,
                attempts,
            },
        );
    }

    /// The previous life's late claim and report reach the store. The
    /// claim may answer only attempts the leader gave that life, and
    /// the report of an
    /// attempt the leader already gave the new life is refused (the
    /// auditor checks every report it accepted).
    pub(crate) fn old_life_arrives(
        &mut self,
        i: usize,
        incarnation: u64,
        attempts: Vec<(TaskId, AttemptToken)>,
    ) {
        if self.now < self.store_down_until || incarnation == 0 {
            return;
        }
        let agent = AgentId::new(i as u64 + 1);
        let claim = AgentOp::Claim {
            agent,
            incarnation,
            limit: self.config.capacity as usize,
        };
        if let Ok(AgentReply::Claimed { rows, .. }) = self.store.agent(claim, self.now) {
            // Only attempts the leader gave that life (as the journal
            // says), never one it gave a newer life.
            let auditor = &self.auditor;
            let given = |task, token| auditor.attempt_incarnation(task, token);
            if let Some((row, other)) = rows.iter().find_map(|r| {
                given(r.task, r.token)
                    .filter(|&i| i != incarnation)
                    .map(|i| (r, i))
            }) {
                return self.violate(format!(
                    "a late claim of agent {agent}'s incarnation {incarnation} took {:?}, which the leader gave incarnation {other}",
                    (row.task, row.token)
                ));
            }
        }
        let Some(&(task, token)) = attempts.first() else {
            return;
        };
        // With an output when the task has one to give (a step's as its
        // agent computed it): a fenced attempt's output must go nowhere
        // (the outcome check sees it).
        let finished = match self.auditor.dispatcher().payload(task) {
            Some(payload) => {
                let output = self.flows.output(task, token, payload);
                Finished::completed(
                    task,
                    agent,
                    token,
                    output.unwrap_or_else(|| payload.clone()),
                )
            }
            None => Finished::report(TaskReport {
                task,
                agent,
                token,
                outcome: AttemptOutcome::Success,
            }),
        };
        let report = AgentOp::Report {
            sender: Sender::Agent { agent, incarnation },
            reports: vec![finished],
        };
        let _ = self.store.agent(report, self.now);
        self.log(format_args!(
            "FAULT old life {incarnation} of agent {agent}: late claim and report of {task}"
        ));
    }

    /// Agents cut off from the store come back as soon as the journal
    /// failed one of the attempts they held over (or when their cut ends).
    pub(crate) fn end_cuts(&mut self) {
        if self.cut_off.is_empty() {
            return;
        }
        let now = self.now;
        for cut in std::mem::take(&mut self.cut_off) {
            let i = cut.slot;
            // Back already, or restarted since (a new life is no longer
            // cut off).
            if now >= self.agents[i].down_until || cut.life != self.agents[i].life {
                continue;
            }
            let auditor = &self.auditor;
            let failed_over = cut
                .held
                .iter()
                .any(|&(task, token)| auditor.attempt_incarnation(task, token).is_none());
            if !failed_over {
                self.cut_off.push(cut);
                continue;
            }
            self.log(format_args!("agent {i} is back: its attempts failed over"));
            let slot = &mut self.agents[i];
            (slot.down_until, slot.cut_until) = (now, now);
            slot.next_wake = None;
            self.wake_agent_at(i, now);
        }
    }

    /// The faults and the runs are over: the cluster is told to drain.
    pub(crate) fn drain(&mut self) {
        let posted = self
            .store
            .client(ClientOp::Post(vec![Message::Drain]), self.now);
        if posted.is_ok() {
            self.drained = true;
            self.log(format_args!("drain"));
        }
    }

    /// A stopped cluster has no task left: a drain waits for every task to
    /// end before it stops.
    pub(crate) fn check_stopped(&mut self) {
        if !self.store.lease(self.now).stopped {
            return;
        }
        let live = self.auditor.dispatcher().live_tasks();
        if live > 0 {
            self.violate(format!(
                "the drained cluster stopped with {live} tasks live"
            ));
        }
    }
}
