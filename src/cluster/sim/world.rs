//! The simulated world: nodes, agent sessions and a client around one
//! in-memory store, links that delay, drop, duplicate and lose answers,
//! and the faults of the menu — every step an event of one queue.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::scheduler::AttemptOutcome;
use crate::{AgentId, AttemptToken, Instant, TaskId};

use super::super::agent_session::AgentSession;
use super::super::audit::Auditor;
use super::super::contract::{AgentOp, AgentReply, MessageId, NodeOp, NodeReply, StoreFailure};
use super::super::mem_store::MemStore;
use super::super::node::{Node, Notice, Role};
use super::super::runs::RunCodec;
use super::Violation;
use super::config::{SimConfig, SimRng, SimWork};
use super::driver::Driver;
use super::queue::Queue;
use super::trace::Trace;

/// How often the client submits and the fault menu is drawn.
pub(crate) const TICK: Duration = Duration::from_millis(100);

pub(crate) enum Event<P> {
    WakeNode(usize),
    WakeAgent(usize),
    NodeArrive {
        node: usize,
        life: u64,
        op: Box<NodeOp<P>>,
        copy: bool,
    },
    AgentArrive {
        agent: usize,
        life: u64,
        op: Box<AgentOp<P>>,
        copy: bool,
    },
    NodeAnswer {
        node: usize,
        life: u64,
        store: u64,
        reply: Box<Result<NodeReply<P>, StoreFailure>>,
    },
    AgentAnswer {
        agent: usize,
        life: u64,
        store: u64,
        reply: Box<Result<AgentReply<P>, StoreFailure>>,
    },
    Finish {
        agent: usize,
        life: u64,
        task: TaskId,
        token: AttemptToken,
        outcome: Box<AttemptOutcome>,
        /// A success's output (every other task completes with its
        /// payload as its output, so both kinds of report are simulated).
        output: Option<P>,
    },
    /// The store's notice that work was published for an agent.
    Notice(usize),
    /// The store's notice of an inbox post or a journal append, to a
    /// node's life.
    NodeNotice {
        node: usize,
        life: u64,
        what: Notice,
    },
    /// An agent's previous life's claim and report reach the store late,
    /// after its new life registered.
    OldLife {
        agent: usize,
        incarnation: u64,
        attempts: Vec<(TaskId, AttemptToken)>,
    },
    Tick,
}

/// How long an agent may run an attempt after the leader journaled its
/// cancel, while the store stays up: its session learns of the cancel
/// from a claim, sent at least every claim poll (250 ms) and after at most
/// the backoff's ceiling (2 s) when the store fails.
pub(crate) const CANCEL_BOUND: Duration = Duration::from_secs(5);

/// How long a long attempt ([`FaultMenu::long_attempts`](super::FaultMenu::long_attempts))
/// runs: past [`CANCEL_BOUND`], so a cancel its agent never hears of shows.
pub(crate) const LONG_ATTEMPT: Duration = Duration::from_secs(6);

/// The attempts an agent held when it restarted inside its heartbeat
/// window: they must leave it before its heartbeat timeout would have
/// failed them over.
pub(crate) struct Stranded {
    pub(crate) deadline: Instant,
    pub(crate) agent: AgentId,
    pub(crate) attempts: Vec<(TaskId, AttemptToken)>,
    /// Takeovers and outages (store restarts, leaders paused or crashed)
    /// when it was recorded: if either moves before the deadline, the check
    /// is void (failover waits for them).
    pub(crate) disturbed: (u64, u64),
}

/// An agent cut off from the store
/// ([`FaultMenu::partition_agent`](super::FaultMenu::partition_agent)).
pub(crate) struct CutOff {
    /// Its slot.
    pub(crate) slot: usize,
    /// Its life then: a restart ends the cut.
    pub(crate) life: u64,
    /// The attempts it held.
    pub(crate) held: Vec<(TaskId, AttemptToken)>,
}

impl<P: Clone> Event<P> {
    /// A second delivery of a request, whose answer is discarded.
    fn copy(&self) -> Option<Event<P>> {
        match self {
            Event::NodeArrive { node, life, op, .. } => Some(Event::NodeArrive {
                node: *node,
                life: *life,
                op: op.clone(),
                copy: true,
            }),
            Event::AgentArrive {
                agent, life, op, ..
            } => Some(Event::AgentArrive {
                agent: *agent,
                life: *life,
                op: op.clone(),
                copy: true,
            }),
            _ => None,
        }
    }
}

impl<P> Event<P> {
    /// What the trace records of it.
    pub(crate) fn label(&self) -> (&'static str, usize) {
        match self {
            Event::WakeNode(i) => ("wake node", *i),
            Event::WakeAgent(i) => ("wake agent", *i),
            Event::NodeArrive { node, .. } => ("node op arrives", *node),
            Event::AgentArrive { agent, .. } => ("agent op arrives", *agent),
            Event::NodeAnswer { node, reply, .. } => (
                if reply.is_ok() {
                    "node answered"
                } else {
                    "node failed"
                },
                *node,
            ),
            Event::AgentAnswer { agent, reply, .. } => (
                if reply.is_ok() {
                    "agent answered"
                } else {
                    "agent failed"
                },
                *agent,
            ),
            Event::Finish { agent, .. } => ("work done", *agent),
            Event::Notice(i) => ("work notice", *i),
            Event::NodeNotice { node, .. } => ("node notice", *node),
            Event::OldLife { agent, .. } => ("an old life's late ops", *agent),
            Event::Tick => ("tick", 0),
        }
    }
}

pub(crate) struct NodeSlot<P> {
    pub(crate) node: Node<P>,
    pub(crate) life: u64,
    pub(crate) busy: bool,
    pub(crate) next_wake: Option<Instant>,
    pub(crate) paused_until: Instant,
    /// The node's clock minus the store's, in nanoseconds.
    skew: i64,
    pub(crate) role: Role,
}

pub(crate) struct AgentSlot<P> {
    pub(crate) session: AgentSession<P>,
    pub(crate) life: u64,
    pub(crate) busy: bool,
    pub(crate) next_wake: Option<Instant>,
    pub(crate) down_until: Instant,
    /// The end of its latest cut from the store
    /// ([`FaultMenu::partition_agent`](super::FaultMenu::partition_agent)):
    /// a cancel journaled before then may reach it late.
    pub(crate) cut_until: Instant,
    pub(crate) slow: bool,
}

/// Everything a run holds.
pub(crate) struct World<P, W, D> {
    pub(crate) config: SimConfig<P>,
    pub(crate) work: W,
    /// The workflows, if any.
    pub(crate) flows: D,
    pub(crate) rng: SimRng,
    pub(crate) store: MemStore<P>,
    pub(crate) queue: Queue<Event<P>>,
    pub(crate) nodes: Vec<NodeSlot<P>>,
    pub(crate) agents: Vec<AgentSlot<P>>,
    pub(crate) auditor: Auditor<P>,
    /// The codec the nodes host runs with, if they host any.
    pub(crate) codec: Option<RunCodec<P>>,
    pub(crate) trace: Trace,
    pub(crate) start: Instant,
    pub(crate) now: Instant,
    pub(crate) store_gen: u64,
    /// The store's counts of posts and appends the nodes were told of
    /// ([`MemStore::notified`]).
    pub(crate) noticed: (u64, u64),
    pub(crate) store_down_until: Instant,
    pub(crate) faults: BTreeMap<&'static str, u64>,
    pub(crate) submitted: u64,
    /// Tasks the leader refused (a full queue), per the verdicts.
    pub(crate) refused: u64,
    pub(crate) backlog: f64,
    /// Submission messages whose tasks may still be cancelled.
    pub(crate) recent: Vec<MessageId>,
    /// Submissions of a client that stopped before it heard back: only
    /// the final accounts read their verdicts.
    pub(crate) orphaned: Vec<MessageId>,
    /// The client is stopped until then.
    pub(crate) client_down_until: Instant,
    pub(crate) takeovers: u64,
    /// Attempts held by agents restarted inside their heartbeat window,
    /// which must fail over before `deadline`: (deadline, agent, attempts,
    /// takeovers and store restarts when recorded).
    pub(crate) stranded: Vec<Stranded>,
    /// Agents cut off from the store: each comes back once one of the
    /// attempts it held failed over.
    pub(crate) cut_off: Vec<CutOff>,
    /// Every attempt an agent started, by its token (tokens are unique):
    /// no attempt runs twice.
    pub(crate) executed: std::collections::HashSet<AttemptToken>,
    /// Attempts some agent started that the leader then cancelled, with
    /// when the cancel was journaled and the store's generation then: the
    /// agent must stop them within [`CANCEL_BOUND`].
    pub(crate) cancelled_at: std::collections::HashMap<AttemptToken, (Instant, u64)>,
    /// Attempts an agent stopped because its session said they were
    /// cancelled: their work ends without a report.
    pub(crate) stopped: std::collections::HashSet<AttemptToken>,
    pub(crate) journal_bytes: u64,
    pub(crate) violation: Option<Violation>,
    /// Every task ended after the faults: the run is over.
    pub(crate) finished: bool,
    /// The cluster was told to drain, once the faults and the workflow
    /// runs were over.
    pub(crate) drained: bool,
}

impl<P: Clone + PartialEq + std::fmt::Debug, W: SimWork<P>, D: Driver<P>> World<P, W, D> {
    fn ms(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.start).as_millis()).unwrap_or(u64::MAX)
    }

    /// Records a notable line: a fault, what a role reported.
    pub(crate) fn log(&mut self, line: std::fmt::Arguments<'_>) {
        let at = self.ms(self.now);
        self.trace.record(at, line, true);
    }

    /// Records a routine event.
    pub(crate) fn log_event(&mut self, kind: &'static str, who: usize) {
        let at = self.ms(self.now);
        self.trace.record_event(at, kind, who);
    }

    pub(crate) fn violate(&mut self, what: String) {
        if self.violation.is_none() {
            self.log(format_args!("VIOLATION: {what}"));
            self.violation = Some(Violation {
                at: self.now.saturating_duration_since(self.start),
                what,
                trace: self.trace.recent(),
            });
        }
    }

    pub(crate) fn new_node(&mut self, i: usize) -> Result<NodeSlot<P>, String> {
        let config = self
            .config
            .node
            .renamed(format!("node-{i}"))
            .map_err(|e| e.to_string())?;
        let mut node =
            Node::new(config, self.config.dispatcher.clone()).map_err(|e| e.to_string())?;
        if let Some(codec) = &self.codec {
            node = node.host_runs(codec.clone());
        }
        let bound = self.config.faults.clock_skew.as_nanos() as u64;
        let skew = if bound == 0 {
            0
        } else {
            (self.rng.next_u64() % (2 * bound + 1)) as i64 - bound as i64
        };
        Ok(NodeSlot {
            node,
            life: 0,
            busy: false,
            next_wake: None,
            paused_until: Instant::ZERO,
            skew,
            role: Role::Starting,
        })
    }

    pub(crate) fn new_agent(&mut self, i: usize) -> Result<AgentSlot<P>, String> {
        let profile = crate::agent::AgentProfile::builder()
            .capacity(self.config.capacity)
            .build()
            .map_err(|e| e.to_string())?;
        let session = AgentSession::new(
            AgentId::new(i as u64 + 1),
            profile,
            self.config.session.clone(),
        );
        let slow = self.rng.chance(self.config.faults.slow_agents);
        Ok(AgentSlot {
            session,
            life: 0,
            busy: false,
            next_wake: None,
            down_until: Instant::ZERO,
            cut_until: Instant::ZERO,
            slow,
        })
    }

    /// A node's clock at the store's instant `at`.
    pub(crate) fn node_clock(&self, i: usize, at: Instant) -> Instant {
        shifted(at, i128::from(self.nodes[i].skew))
    }

    pub(crate) fn delay(&mut self) -> Duration {
        let (from, to) = self.config.link_delay;
        self.rng.between(from, to)
    }

    /// How long a role waits for an answer that never comes.
    fn timeout(&self) -> Duration {
        self.config.link_delay.1 * 2 + Duration::from_millis(50)
    }

    pub(crate) fn wake_node_at(&mut self, i: usize, at: Instant) {
        let slot = &mut self.nodes[i];
        if slot.next_wake.is_none_or(|w| at < w) {
            slot.next_wake = Some(at);
            self.queue.push(at, Event::WakeNode(i));
        }
    }

    pub(crate) fn wake_agent_at(&mut self, i: usize, at: Instant) {
        let slot = &mut self.agents[i];
        if slot.next_wake.is_none_or(|w| at < w) {
            slot.next_wake = Some(at);
            self.queue.push(at, Event::WakeAgent(i));
        }
    }

    /// Sends node `i`'s next operation, or sleeps it until it has one.
    pub(crate) fn drive_node(&mut self, i: usize) {
        let now = self.now;
        if self.nodes[i].busy {
            return;
        }
        let clock = self.node_clock(i, now);
        let life = self.nodes[i].life;
        match self.nodes[i].node.poll_op(clock) {
            Some(op) => {
                self.nodes[i].busy = true;
                self.log_event(op.name(), i);
                self.send(Event::NodeArrive {
                    node: i,
                    life,
                    op: Box::new(op),
                    copy: false,
                });
            }
            None => {
                if let Some(at) = self.nodes[i].node.poll_timeout() {
                    // The node's instant, on the store's clock.
                    let at = shifted(at, -i128::from(self.nodes[i].skew));
                    self.wake_node_at(i, at.max(now));
                }
            }
        }
    }

    /// Sends agent `i`'s next operation, or sleeps it.
    pub(crate) fn drive_agent(&mut self, i: usize) {
        let now = self.now;
        if self.agents[i].busy || now < self.agents[i].down_until {
            return;
        }
        let life = self.agents[i].life;
        match self.agents[i].session.poll_op(now) {
            Some(op) => {
                self.agents[i].busy = true;
                self.send(Event::AgentArrive {
                    agent: i,
                    life,
                    op: Box::new(op),
                    copy: false,
                });
            }
            None => {
                if let Some(at) = self.agents[i].session.poll_timeout() {
                    self.wake_agent_at(i, at.max(now));
                }
            }
        }
    }

    /// An operation on its way: dropped (its sender times out knowing
    /// nothing), late (its sender times out, then it takes effect),
    /// delivered, or delivered twice (the copy's answer is discarded).
    fn send(&mut self, arrive: Event<P>) {
        let now = self.now;
        let faults = &self.config.faults;
        let (drop, late, duplicate) = (
            faults.drop_request,
            faults.late_request,
            faults.duplicate_request,
        );
        let gave_up = now.saturating_add(self.timeout());
        if self.rng.chance(drop) {
            *self.faults.entry("drop_request").or_default() += 1;
            self.queue.push(gave_up, lost(arrive));
            return;
        }
        if self.rng.chance(late) {
            *self.faults.entry("late_request").or_default() += 1;
            // Up to a quarter second late: after the sender's read-back,
            // maybe after its next attempt.
            let late_by = self.rng.between(Duration::ZERO, LATE_BY);
            let arrives = gave_up.saturating_add(late_by);
            if let Some(copy) = arrive.copy() {
                self.queue.push(arrives, copy);
            }
            self.queue.push(gave_up, lost(arrive));
            return;
        }
        let at = now.saturating_add(self.delay());
        // Only a duplicated request pays for a copy of its operation.
        let copy = if self.rng.chance(duplicate) {
            *self.faults.entry("duplicate_request").or_default() += 1;
            let again = now.saturating_add(self.delay());
            Some((again, arrive.copy()))
        } else {
            None
        };
        self.queue.push(at, arrive);
        if let Some((again, Some(copy))) = copy {
            self.queue.push(again, copy);
        }
    }
}

/// `at` moved by `nanos`, clamped to the clock's range.
fn shifted(at: Instant, nanos: i128) -> Instant {
    let moved = i128::from(at.as_nanos()) + nanos;
    Instant::from_nanos(u64::try_from(moved.max(0)).unwrap_or(u64::MAX))
}

/// The answer its sender gets, by its timeout, for a request that never
/// arrived.
fn lost<P>(arrive: Event<P>) -> Event<P> {
    let failure = || StoreFailure::Unknown {
        cause: "simulated: no answer (the request was lost)".into(),
    };
    match arrive {
        Event::NodeArrive { node, life, .. } => Event::NodeAnswer {
            node,
            life,
            store: LOST,
            reply: Box::new(Err(failure())),
        },
        Event::AgentArrive { agent, life, .. } => Event::AgentAnswer {
            agent,
            life,
            store: LOST,
            reply: Box::new(Err(failure())),
        },
        other => other,
    }
}

/// How late a late request may reach the store after its sender gave up.
const LATE_BY: Duration = Duration::from_millis(250);

/// The store generation of an answer that never came from the store.
pub(crate) const LOST: u64 = u64::MAX;
