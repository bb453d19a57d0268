//! The client's submissions and cancels, and the fault menu drawn every
//! tick; the failovers a fast agent restart must bring.

use std::time::Duration;

use super::super::contract::{ClientOp, ClientReply, Message, Store, Verdict};
use super::super::node::Role;
use super::super::redrive::Redrive;
use super::config::{SimWork, burst_size};
use super::driver::Driver;
use super::world::{CutOff, TICK, World};
use crate::scheduler::DeadLetterFilter;

impl<P: Clone + PartialEq + std::fmt::Debug, W: SimWork<P>, D: Driver<P>> World<P, W, D> {
    /// The client's share of a tick: submissions at the configured rate,
    /// a burst now and then, and cancels of recent tasks.
    pub(crate) fn client(&mut self) {
        self.account_orphans();
        if self.now < self.client_down_until {
            return;
        }
        self.backlog += self.config.tasks_per_second * TICK.as_secs_f64();
        let mut count = self.backlog as u64;
        self.backlog -= count as f64;
        let per_tick = self.config.faults.burst * TICK.as_secs_f64();
        if self.rng.chance(per_tick) {
            *self.faults.entry("burst").or_default() += 1;
            count += burst_size(self.config.dispatcher.queue_capacity());
        }
        if count > 0 {
            let specs = (0..count)
                .map(|k| self.work.task(self.submitted + k, &mut self.rng))
                .collect();
            self.submitted += count;
            self.post(Message::Submit(specs));
        }
        let accepted = self.take_verdicts();
        for task in accepted {
            if self.rng.chance(self.config.faults.cancel) {
                *self.faults.entry("cancel").or_default() += 1;
                self.post(Message::Cancel(task));
            }
        }
    }

    /// The accounts (not the client, which forgot them) read the verdicts
    /// of a stopped client's submissions, before the leader forgets them.
    fn account_orphans(&mut self) {
        if self.orphaned.is_empty() {
            return;
        }
        let pending = std::mem::replace(&mut self.recent, std::mem::take(&mut self.orphaned));
        let _forgotten_by_the_client = self.take_verdicts();
        self.orphaned = std::mem::replace(&mut self.recent, pending);
    }

    /// Takes in the verdicts of the submissions waiting for one: counts
    /// the refused tasks, keeps the submissions not answered yet (all of
    /// them if the store cannot say), and returns the accepted tasks.
    pub(crate) fn take_verdicts(&mut self) -> Vec<crate::TaskId> {
        let ids = std::mem::take(&mut self.recent);
        let Ok(ClientReply::Verdicts(verdicts)) =
            self.store.client(ClientOp::Verdicts(ids.clone()), self.now)
        else {
            self.recent = ids;
            return Vec::new();
        };
        let mut tasks = Vec::new();
        for (id, verdict) in ids.into_iter().zip(verdicts) {
            match verdict {
                None => self.recent.push(id),
                Some(Verdict::Submitted(results)) => {
                    let accepted = results.iter().filter(|r| r.is_ok()).count();
                    self.refused += (results.len() - accepted) as u64;
                    tasks.extend(results.into_iter().flatten());
                }
                Some(_) => {}
            }
        }
        tasks
    }

    fn post(&mut self, message: Message<P>) {
        let is_submit = matches!(message, Message::Submit(_));
        if let Ok(ClientReply::Posted(ids)) =
            self.store.client(ClientOp::Post(vec![message]), self.now)
        {
            if is_submit {
                self.recent.extend(ids);
            }
        }
    }

    /// One draw of every fault in the menu, each at its rate per tick.
    pub(crate) fn draw_faults(&mut self) {
        let f = self.config.faults.clone();
        let per = |rate: f64| rate * TICK.as_secs_f64();
        let lease = self.config.node.lease_ttl();
        if self.rng.chance(per(f.crash_node)) {
            let i = (self.rng.next_u64() % self.nodes.len() as u64) as usize;
            self.crash_node(i);
        }
        if self.rng.chance(per(f.pause_leader)) {
            let leader = self
                .nodes
                .iter()
                .position(|n| matches!(n.role, Role::Leading { .. }));
            if let Some(i) = leader {
                *self.faults.entry("pause_leader").or_default() += 1;
                self.nodes[i].paused_until = self.now.saturating_add(lease * 3 / 2);
                self.log(format_args!("FAULT pause node {i}"));
            }
        }
        if self.rng.chance(per(f.restart_agent)) {
            let i = (self.rng.next_u64() % self.agents.len() as u64) as usize;
            if !self.is_dead(i) {
                self.restart_agent(i, Duration::ZERO, "restart_agent");
            }
        }
        if self.rng.chance(per(f.die_agent)) {
            let i = (self.rng.next_u64() % self.agents.len() as u64) as usize;
            self.die_for_good(i);
        }
        if self.rng.chance(per(f.kill_agent)) {
            let i = (self.rng.next_u64() % self.agents.len() as u64) as usize;
            let silence = self
                .config
                .dispatcher
                .heartbeats()
                .map_or(Duration::ZERO, |h| h.timeout());
            if !self.is_dead(i) {
                self.restart_agent(
                    i,
                    silence.saturating_add(Duration::from_secs(1)),
                    "kill_agent",
                );
            }
        }
        if self.rng.chance(per(f.partition_agent)) {
            self.partition_agent();
        }
        if self.rng.chance(per(f.client_stops)) && self.now >= self.client_down_until {
            *self.faults.entry("client_stops").or_default() += 1;
            let down = self
                .rng
                .between(Duration::from_secs(1), Duration::from_secs(5));
            self.client_down_until = self.now.saturating_add(down);
            self.orphaned.append(&mut self.recent);
            self.log(format_args!("FAULT the client stops, down {down:?}"));
        }
        if self.rng.chance(per(f.redrive)) {
            *self.faults.entry("redrive").or_default() += 1;
            let every = Redrive::Matching(DeadLetterFilter::new());
            self.post(Message::Redrive(every));
            self.log(format_args!("an operator redrives every dead letter"));
        }
        if self.rng.chance(per(f.restart_store)) {
            *self.faults.entry("restart_store").or_default() += 1;
            let down = self
                .rng
                .between(Duration::from_millis(100), Duration::from_secs(1));
            self.store_down_until = self.now.saturating_add(down);
            self.store_gen += 1;
            self.log(format_args!("FAULT store restarts, down {down:?}"));
        }
    }

    /// Cuts an agent that holds attempts off from the store until the
    /// leader failed them over (at the latest a heartbeat interval after
    /// its heartbeat timeout), so that its reports race the attempts'
    /// next tries. Its work goes on, and its session sends what it has
    /// once it is back.
    fn partition_agent(&mut self) {
        let Some(heartbeats) = self.config.dispatcher.heartbeats() else {
            return;
        };
        let now = self.now;
        let holders: Vec<usize> = (0..self.agents.len())
            .filter(|&i| {
                now >= self.agents[i].down_until
                    && !self
                        .attempts_held(self.agents[i].session.agent())
                        .is_empty()
            })
            .collect();
        if holders.is_empty() {
            return;
        }
        let i = holders[(self.rng.next_u64() % holders.len() as u64) as usize];
        let agent = self.agents[i].session.agent();
        let last = self
            .auditor
            .dispatcher()
            .registry()
            .get(agent)
            .map_or(now, |record| record.last_heartbeat());
        let until = last
            .saturating_add(heartbeats.timeout())
            .max(now)
            .saturating_add(heartbeats.interval);
        *self.faults.entry("partition_agent").or_default() += 1;
        self.log(format_args!("FAULT agent {i} cut off from the store"));
        // Cut off, a new incarnation cannot register to fail its old
        // life's attempts over: the failover a restart expected is void.
        self.stranded.retain(|s| s.agent != agent);
        let slot = &mut self.agents[i];
        (slot.down_until, slot.cut_until) = (until, until);
        // Its earlier wake-ups find it cut off: it wakes when it is back.
        slot.next_wake = None;
        self.wake_agent_at(i, until);
        let held = self.attempts_held(agent);
        let life = self.agents[i].life;
        self.cut_off.push(CutOff {
            slot: i,
            life,
            held,
        });
    }

    fn crash_node(&mut self, i: usize) {
        *self.faults.entry("crash_node").or_default() += 1;
        self.log(format_args!("FAULT crash node {i}"));
        match self.new_node(i) {
            Ok(mut slot) => {
                slot.life = self.nodes[i].life + 1;
                self.nodes[i] = slot;
                self.wake_node_at(i, self.now);
            }
            Err(why) => self.violate(why),
        }
    }

    /// A new incarnation of agent `i` after `down` (zero: at once, inside
    /// its heartbeat window).
    pub(crate) fn restart_agent(&mut self, i: usize, down: Duration, kind: &'static str) {
        *self.faults.entry(kind).or_default() += 1;
        self.log(format_args!("FAULT {kind} {i}, down {down:?}"));
        // A later fault on the agent voids what an earlier one expected.
        let agent = self.agents[i].session.agent();
        self.stranded.retain(|s| s.agent != agent);
        if down.is_zero() {
            self.expect_failover(i);
            self.maybe_old_life(i);
        }
        match self.new_agent(i) {
            Ok(mut slot) => {
                slot.life = self.agents[i].life + 1;
                slot.slow = self.agents[i].slow;
                slot.down_until = self.now.saturating_add(down);
                self.agents[i] = slot;
                let at = self.now.saturating_add(down);
                self.wake_agent_at(i, at);
            }
            Err(why) => self.violate(why),
        }
    }

    /// Records the attempts agent `i` holds as it restarts at once: its new
    /// incarnation's registration must fail them over well before the
    /// heartbeat timeout would.
    fn expect_failover(&mut self, i: usize) {
        let agent = self.agents[i].session.agent();
        let attempts = self.attempts_held(agent);
        let timeout = self
            .config
            .dispatcher
            .heartbeats()
            .map_or(Duration::ZERO, |h| h.timeout());
        // No leader, a frozen node, or a store that is down or came back
        // so recently that the roles may still be backing off, delays
        // failover legitimately. A node that still believes it leads an
        // epoch the lease has left (deposed, it has not heard yet) is no
        // leader.
        let backing_off = self
            .store_down_until
            .saturating_add(self.config.node.backoff.ceiling());
        let epoch = self.store.lease(self.now).epoch;
        let leading = self.nodes.iter().any(|n| {
            matches!(n.role, Role::Leading { epoch: e } if e == epoch) && self.now >= n.paused_until
        });
        let outage = !leading
            || self.now < backing_off
            || self.nodes.iter().any(|n| self.now < n.paused_until);
        if !attempts.is_empty() && !timeout.is_zero() && !outage {
            self.stranded.push(super::world::Stranded {
                deadline: self.now.saturating_add(timeout / 2),
                agent,
                attempts,
                disturbed: self.disturbances(),
            });
        }
    }

    /// The attempts `agent` holds, as the journal says.
    pub(crate) fn attempts_held(
        &self,
        agent: crate::AgentId,
    ) -> Vec<(crate::TaskId, crate::AttemptToken)> {
        let dispatcher = self.auditor.dispatcher();
        dispatcher
            .in_flight(agent)
            .iter()
            .filter_map(|&task| match dispatcher.task_state(task) {
                Some(crate::scheduler::TaskState::InFlight { token, .. }) => Some((task, token)),
                _ => None,
            })
            .collect()
    }

    /// Counts what delays a failover legitimately: takeovers, store
    /// restarts, leaders paused or crashed.
    fn disturbances(&self) -> (u64, u64) {
        let faults = |kind| self.faults.get(kind).copied().unwrap_or(0);
        let outages = faults("pause_leader") + faults("crash_node") + faults("restart_store");
        (self.takeovers, outages)
    }

    /// Checks the failovers whose deadline passed.
    pub(crate) fn check_failovers(&mut self) {
        let now = self.now;
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.stranded)
            .into_iter()
            .partition(|s| s.deadline <= now);
        self.stranded = later;
        for s in due {
            if s.disturbed != self.disturbances() {
                continue;
            }
            let dispatcher = self.auditor.dispatcher();
            let still: Vec<_> = s
                .attempts
                .iter()
                .filter(|(task, token)| {
                    matches!(dispatcher.task_state(*task),
                        Some(crate::scheduler::TaskState::InFlight { token: t, agent, .. })
                            if t == *token && agent == s.agent)
                })
                .collect();
            if !still.is_empty() {
                let what = format!(
                    "agent {} restarted with a new incarnation, but {} of its attempts ({still:?}) were still in flight on it half a heartbeat timeout later",
                    s.agent,
                    still.len()
                );
                self.violate(what);
            }
        }
    }
}
