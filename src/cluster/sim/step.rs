//! One event at a time: what each does to the world, and the invariants
//! checked after it.

use super::super::contract::{NodeOp, NodeReply, Store, StoreFailure};
use super::super::node::{Notice, Role};
use super::config::SimWork;
use super::driver::{Driver, Landed, Tick};
use super::failures::{lost_answer, refusal, refused, store_down};
use super::world::{CANCEL_BOUND, Event, LONG_ATTEMPT, LOST, TICK, World};
use crate::scheduler::AttemptOutcome;

impl<P: Clone + PartialEq + std::fmt::Debug, W: SimWork<P>, D: Driver<P>> World<P, W, D> {
    /// Handles one event at `self.now`.
    pub(crate) fn step(&mut self, event: Event<P>) {
        let (kind, who) = event.label();
        self.log_event(kind, who);
        match event {
            Event::WakeNode(i) => {
                if self.now < self.nodes[i].paused_until {
                    // A frozen process wakes when it thaws.
                    let until = self.nodes[i].paused_until;
                    self.nodes[i].next_wake = Some(until);
                    return self.queue.push(until, Event::WakeNode(i));
                }
                if self.nodes[i].next_wake == Some(self.now) {
                    self.nodes[i].next_wake = None;
                    self.drive_node(i);
                }
            }
            Event::WakeAgent(i) => {
                if self.agents[i].next_wake == Some(self.now) {
                    self.agents[i].next_wake = None;
                    self.drive_agent(i);
                }
            }
            Event::NodeArrive {
                node,
                life,
                op,
                copy,
            } => self.node_arrives(node, life, *op, copy),
            Event::AgentArrive {
                agent,
                life,
                op,
                copy,
            } => {
                let reply = if self.now < self.store_down_until {
                    Err(store_down())
                } else if self.refused() {
                    Err(refusal())
                } else {
                    self.store.agent(*op, self.now)
                };
                let reply = self.maybe_lose(reply);
                if !copy {
                    let at = self.now.saturating_add(self.delay());
                    let store = self.store_gen;
                    self.queue.push(
                        at,
                        Event::AgentAnswer {
                            agent,
                            life,
                            store,
                            reply: Box::new(reply),
                        },
                    );
                }
            }
            Event::NodeAnswer {
                node,
                life,
                store,
                reply,
            } => {
                if life != self.nodes[node].life {
                    return;
                }
                if self.now < self.nodes[node].paused_until {
                    // A frozen process reads its answer when it wakes.
                    let until = self.nodes[node].paused_until;
                    return self.queue.push(
                        until,
                        Event::NodeAnswer {
                            node,
                            life,
                            store,
                            reply,
                        },
                    );
                }
                let reply = self.across_restart(store, *reply);
                let clock = self.node_clock(node, self.now);
                self.nodes[node].busy = false;
                self.nodes[node].node.handle_reply(reply, clock);
                self.after_node(node);
            }
            Event::AgentAnswer {
                agent,
                life,
                store,
                reply,
            } => {
                if life != self.agents[agent].life {
                    return;
                }
                let reply = self.across_restart(store, *reply);
                self.agents[agent].busy = false;
                self.agents[agent].session.handle_reply(reply, self.now);
                self.after_agent(agent);
            }
            Event::Finish {
                agent,
                life,
                task,
                token,
                outcome,
                output,
            } => {
                if life == self.agents[agent].life {
                    if self.stopped.remove(&token) {
                        return;
                    }
                    if let Some((at, store)) = self.cancelled_at.remove(&token) {
                        let ran_on = self.now.saturating_duration_since(at);
                        let cut = at < self.agents[agent].cut_until;
                        if ran_on > CANCEL_BOUND && store == self.store_gen && !cut {
                            return self.violate(format!(
                                "agent {agent} ran {token} of {task} for {ran_on:?} after the leader cancelled it"
                            ));
                        }
                    }
                    let session = &mut self.agents[agent].session;
                    match output {
                        Some(output) => session.complete(task, token, output.clone()),
                        None => session.finish(task, token, *outcome.clone()),
                    };
                    self.drive_agent(agent);
                }
            }
            Event::Notice(i) => {
                if self.now >= self.agents[i].down_until {
                    self.agents[i].session.work_published();
                    self.drive_agent(i);
                }
            }
            Event::NodeNotice { node, life, what } => {
                let slot = &mut self.nodes[node];
                if life != slot.life {
                    return;
                }
                if self.now < slot.paused_until {
                    // A frozen process reads its socket when it thaws.
                    let until = slot.paused_until;
                    return self
                        .queue
                        .push(until, Event::NodeNotice { node, life, what });
                }
                let clock = self.node_clock(node, self.now);
                self.nodes[node].node.notice(what, clock);
                self.drive_node(node);
            }
            Event::OldLife {
                agent,
                incarnation,
                attempts,
            } => self.old_life_arrives(agent, incarnation, attempts),
            Event::Tick => self.tick(),
        }
    }

    /// A node's operation reaches the store.
    fn node_arrives(&mut self, node: usize, life: u64, op: NodeOp<P>, copy: bool) {
        if self.now < self.store_down_until {
            if !copy {
                self.answer_node(node, life, Err(store_down()));
            }
            return;
        }
        if self.refused() {
            if !copy {
                self.answer_node(node, life, Err(refusal()));
            }
            return;
        }
        let op = match self.encoded(op) {
            Ok(op) => op,
            Err(why) => {
                return self.violate(format!("an entry does not survive its encoding: {why}"));
            }
        };
        let fenced_epoch = match &op {
            NodeOp::Commit { epoch, .. }
            | NodeOp::PutSnapshot { epoch, .. }
            | NodeOp::Stop { epoch, .. }
            | NodeOp::Renew { epoch, .. } => Some(*epoch),
            _ => None,
        };
        if let NodeOp::Commit { first_seq, .. } = &op {
            // A leader sends an unconfirmed commit again until it lands, so
            // it never commits past the journal's end: a gap means its
            // replica applied entries the journal does not hold.
            let next = self.auditor.next_seq();
            if *first_seq > next {
                return self.violate(format!(
                    "node {node} commits from entry {first_seq}, past the journal's end ({next})"
                ));
            }
        }
        let noticed = notice_list(&op, self.agents.len());
        let snapshot = match &op {
            NodeOp::PutSnapshot { seq, snapshot, .. } => Some((*seq, snapshot.clone())),
            _ => None,
        };
        let commit = matches!(op, NodeOp::Commit { .. });
        if commit {
            self.flows.stage(&op);
        }
        let reply = self.store.node(op, self.now);
        if reply.is_ok() {
            if let Some((seq, snapshot)) = snapshot {
                self.check_snapshot_restores(seq, *snapshot);
            }
            self.send_notices(noticed);
            if let Some(epoch) = fenced_epoch {
                // No write lands under an epoch that is not the lease's.
                let lease = self.store.lease(self.now);
                if lease.epoch != epoch {
                    self.violate(format!(
                        "a write of epoch {epoch} landed under epoch {}",
                        lease.epoch
                    ));
                }
                self.audit_new_entries(commit);
                self.check_stopped();
            }
        }
        let reply = self.maybe_lose(reply);
        if !copy {
            self.answer_node(node, life, reply);
        }
    }

    /// The store's notices of the posts and appends since the last event,
    /// one of each kind per node, each over the link (and lost like a
    /// request).
    pub(crate) fn notify_nodes(&mut self) {
        let (posted, appended) = self.store.notified();
        let mut told = Vec::new();
        if posted > self.noticed.0 {
            told.push(Notice::InboxPost);
        }
        if appended > self.noticed.1 {
            told.push(Notice::JournalAppend);
        }
        self.noticed = (posted, appended);
        for what in told {
            for node in 0..self.nodes.len() {
                if self.rng.chance(self.config.faults.drop_request) {
                    *self.faults.entry("drop_node_notice").or_default() += 1;
                    continue;
                }
                let life = self.nodes[node].life;
                let at = self.now.saturating_add(self.delay());
                self.queue.push(at, Event::NodeNotice { node, life, what });
            }
        }
    }

    /// The store's notices that work was published, one per agent, each
    /// over the link (and lost like a request).
    fn send_notices(&mut self, agents: Vec<usize>) {
        for i in agents {
            if self.rng.chance(self.config.faults.drop_request) {
                *self.faults.entry("drop_notice").or_default() += 1;
                continue;
            }
            let at = self.now.saturating_add(self.delay());
            self.queue.push(at, Event::Notice(i));
        }
    }

    /// Sends a node its answer back over the link.
    fn answer_node(&mut self, node: usize, life: u64, reply: Result<NodeReply<P>, StoreFailure>) {
        let at = self.now.saturating_add(self.delay());
        let store = self.store_gen;
        let reply = Box::new(reply);
        self.queue.push(
            at,
            Event::NodeAnswer {
                node,
                life,
                store,
                reply,
            },
        );
    }

    /// Re-encodes a commit's entries as the real store would.
    fn encoded(&mut self, mut op: NodeOp<P>) -> Result<NodeOp<P>, String> {
        if let (Some(codec), NodeOp::Commit { entries, .. }) = (self.config.codec, &mut op) {
            for entry in entries.iter_mut() {
                let (again, bytes) = codec(entry)?;
                self.journal_bytes += bytes as u64;
                *entry = again;
            }
        }
        Ok(op)
    }

    /// Feeds the entries committed since the last audit to the auditor;
    /// after a `commit`, hands what it journaled to the workflows' checks.
    fn audit_new_entries(&mut self, commit: bool) {
        let from = self.auditor.next_seq();
        let rows: Vec<_> = self.store.journal_from(from).collect();
        let before = self.auditor.violation_count();
        for row in rows {
            self.auditor.apply(row);
        }
        let ends = self.auditor.take_ends();
        self.check_outcomes_published(&ends);
        self.end_cuts();
        if commit {
            let run_ends = self.auditor.take_run_ends();
            let landed = Landed {
                task_ends: &ends,
                run_ends,
            };
            if let Err(what) = self.flows.landed(landed) {
                self.violate(what);
            }
        }
        for token in self.auditor.take_cancels() {
            if self.executed.contains(&token) {
                self.cancelled_at.insert(token, (self.now, self.store_gen));
            }
        }
        if self.auditor.violation_count() > before {
            let what = self
                .auditor
                .violations()
                .last()
                .cloned()
                .unwrap_or_default();
            self.violate(what);
        }
    }

    /// The answer to an operation the store executed, maybe lost.
    /// Whether the store refuses the operation arriving now (no effect).
    fn refused(&mut self) -> bool {
        refused(&mut self.rng, self.config.faults.refuse, &mut self.faults)
    }

    fn maybe_lose<R>(&mut self, reply: Result<R, StoreFailure>) -> Result<R, StoreFailure> {
        if reply.is_ok() && self.rng.chance(self.config.faults.lose_answer) {
            *self.faults.entry("lose_answer").or_default() += 1;
            return Err(lost_answer());
        }
        reply
    }

    /// An answer sent before the store restarted never arrives: its sender
    /// learns nothing.
    fn across_restart<R>(
        &self,
        store: u64,
        reply: Result<R, StoreFailure>,
    ) -> Result<R, StoreFailure> {
        if store != LOST && store != self.store_gen && reply.is_ok() {
            return Err(StoreFailure::Unknown {
                cause: "simulated: the store restarted".into(),
            });
        }
        reply
    }

    /// After a node took an answer: its events, a takeover's check, its
    /// next operation.
    fn after_node(&mut self, i: usize) {
        while let Some(event) = self.nodes[i].node.poll_event() {
            self.log(format_args!("node {i}: {event}"));
        }
        let role = self.nodes[i].node.role();
        if let Role::Failed(why) = &role {
            self.violate(format!("node {i} failed: {why}"));
        }
        if matches!(role, Role::Leading { .. }) && self.nodes[i].role != role {
            self.takeovers += 1;
            self.check_takeover(i);
        }
        self.nodes[i].role = role;
        self.drive_node(i);
    }

    /// After an agent took an answer: its work, cancels, next operation.
    fn after_agent(&mut self, i: usize) {
        while let Some(event) = self.agents[i].session.poll_event() {
            self.log(format_args!("agent {i}: {event}"));
        }
        while let Some((_, token)) = self.agents[i].session.poll_cancelled() {
            // The host stops the work: it ends without a report.
            self.cancelled_at.remove(&token);
            self.stopped.insert(token);
        }
        let life = self.agents[i].life;
        let agent = self.agents[i].session.agent();
        while let Some(work) = self.agents[i].session.poll_work() {
            if !self.executed.insert(work.token) {
                return self.violate(format!(
                    "attempt {} of task {} (token {}) was started a second time, by agent {i}",
                    work.attempt, work.task, work.token
                ));
            }
            let (mut took, outcome, output) = match self.flows.attempt(agent, &work, &mut self.rng)
            {
                Some(step) => (step.took, step.outcome, step.output),
                None => {
                    let (took, outcome) = self.work.attempt(agent, &work, &mut self.rng);
                    (took, outcome, None)
                }
            };
            if self.agents[i].slow {
                took = took.saturating_mul(10);
            }
            if self.rng.chance(self.config.faults.long_attempts) {
                *self.faults.entry("long_attempt").or_default() += 1;
                took = took.max(LONG_ATTEMPT);
            }
            let at = self.now.saturating_add(took);
            let (task, token) = (work.task, work.token);
            let output = output.or_else(|| {
                (outcome == AttemptOutcome::Success && task.get() % 2 == 1)
                    .then(|| work.payload.clone())
            });
            self.queue.push(
                at,
                Event::Finish {
                    agent: i,
                    life,
                    task,
                    token,
                    outcome: Box::new(outcome),
                    output,
                },
            );
        }
        self.drive_agent(i);
    }

    /// Every [`TICK`]: the client submits (and cancels), the fault menu is
    /// drawn; after the faults, liveness is watched.
    fn tick(&mut self) {
        self.check_failovers();
        let calm_from = self.start.saturating_add(self.config.faulty_for);
        let faulty = self.now < calm_from;
        if faulty {
            self.client();
        }
        self.drive_flows(faulty);
        if faulty {
            self.draw_faults();
        } else if !self.drained && self.flows.live() == 0 {
            self.drain();
        } else if self.settled() {
            self.finished = true;
            return self.check_accounts();
        } else if self.now >= calm_from.saturating_add(self.config.liveness_bound) {
            let live = self.auditor.dispatcher().live_tasks();
            let pending = self.recent.len();
            let runs = self.flows.live();
            return self.violate(format!(
                "{live} tasks still live, {pending} submissions without a verdict and {runs} workflow runs or steps unfinished {:?} after the last fault",
                self.config.liveness_bound
            ));
        }
        let next = self.now.saturating_add(TICK);
        self.queue.push(next, Event::Tick);
    }

    /// The workflow client's share of a tick (new runs only during the
    /// faults); a broken saga invariant is a violation.
    fn drive_flows(&mut self, starting: bool) {
        let mut log = Vec::new();
        let tick = Tick {
            store: &mut self.store,
            rng: &mut self.rng,
            now: self.now,
            store_down: self.now < self.store_down_until,
            lose_answer: self.config.faults.lose_answer,
            refuse: self.config.faults.refuse,
            cancel: self.config.faults.cancel,
            starting,
            client_down: self.now < self.client_down_until,
            faults: &mut self.faults,
            log: &mut log,
        };
        let checked = self.flows.tick(tick);
        for line in log {
            self.log(format_args!("{line}"));
        }
        if let Err(what) = checked {
            self.violate(what);
        }
    }

    /// Every task submitted has ended and no submission is pending (the
    /// verdicts that came in are taken, their refusals counted).
    fn settled(&mut self) -> bool {
        // The accounts read the verdicts a stopped client never heard.
        self.recent.append(&mut self.orphaned);
        let _accepted = self.take_verdicts();
        self.drained
            && self.store.lease(self.now).stopped
            && self.recent.is_empty()
            && self.flows.live() == 0
            && self.auditor.dispatcher().live_tasks() == 0
            && self.auditor.next_seq() > 1
    }
}

/// The agents (by slot) a commit publishes work for, each once.
fn notice_list<P>(op: &NodeOp<P>, agents: usize) -> Vec<usize> {
    let NodeOp::Commit { outputs, .. } = op else {
        return Vec::new();
    };
    let mut slots: Vec<usize> = outputs
        .assign
        .iter()
        .filter_map(|a| usize::try_from(a.agent.get().checked_sub(1)?).ok())
        .filter(|&i| i < agents)
        .collect();
    slots.sort_unstable();
    slots.dedup();
    slots
}
