//! The agent role: registers a new incarnation, heartbeats, claims its
//! assignments from the outbox, hands them to the host's code, and reports
//! each result with its attempt token.

use std::collections::{BTreeSet, VecDeque};

use crate::agent::AgentProfile;
use crate::scheduler::{AttemptOutcome, TaskReport};
use crate::{AgentId, AttemptToken, Instant, TaskId};

use super::config::SessionConfig;
use super::contract::{
    AgentOp, AgentReply, Assignment, Finished, Message, MessageId, Sender, StoreFailure,
};

/// What an agent session tells its host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionEvent {
    /// Registered as this incarnation.
    Registered {
        /// The incarnation.
        incarnation: u64,
    },
    /// The leader refused one of this agent's messages (a report of an
    /// attempt that was failed over, say).
    Refused {
        /// The message.
        message: MessageId,
        /// Why.
        reason: String,
    },
    /// A store operation failed; the session tries again after `retry_in`.
    StoreTrouble {
        /// The operation.
        op: &'static str,
        /// What the store said.
        failure: StoreFailure,
        /// The pause before the next try.
        retry_in: std::time::Duration,
    },
    /// The store answered an operation with a reply of another kind (a
    /// store that breaks the contract): the session sends it again after
    /// `retry_in`, a pause that grows while such answers go on.
    BadAnswer {
        /// What was wrong with the answer.
        why: String,
        /// The pause before the next try.
        retry_in: std::time::Duration,
    },
    /// The cluster cancelled an attempt the host runs (see
    /// [`AgentSession::poll_cancelled`]).
    Cancelled {
        /// The task.
        task: TaskId,
        /// The attempt.
        token: AttemptToken,
    },
    /// The cluster stopped; the session ends.
    Stopped,
}

impl std::fmt::Display for SessionEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionEvent::Registered { incarnation } => {
                write!(f, "registered as incarnation {incarnation}")
            }
            SessionEvent::Refused { message, reason } => {
                write!(f, "message {message} refused by the leader: {reason}")
            }
            SessionEvent::StoreTrouble {
                op,
                failure,
                retry_in,
            } => write!(f, "{op}: {failure}; trying again in {retry_in:?}"),
            SessionEvent::BadAnswer { why, retry_in } => write!(
                f,
                "the store's answer cannot be used ({why}); trying again in {retry_in:?}"
            ),
            SessionEvent::Cancelled { task, token } => {
                write!(f, "{token} of {task} was cancelled by the cluster; stop it")
            }
            SessionEvent::Stopped => write!(f, "the cluster stopped"),
        }
    }
}

/// The most reports one post carries; the rest follow in the next posts.
/// A store may refuse an agent's post while too many of its messages wait
/// unread (PostgreSQL refuses at 1,024), so a post must fit under such a
/// limit, or an agent with many results could never report them.
pub const MAX_REPORTS_PER_POST: usize = 256;

/// An agent that posted nothing but heartbeats since it last read its
/// refusals reads them again only after this many refusal periods: a
/// heartbeat is refused only when the agent was replaced or lost, which
/// the refusal merely logs, so an idle agent need not ask every period.
const QUIET_REFUSALS_PERIODS: u32 = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Incarnate,
    Register,
    Run,
    Stopped,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sent {
    Incarnate,
    Register,
    Heartbeat,
    /// A claim of at most `limit` new rows.
    Claim {
        limit: usize,
    },
    Report,
    Refusals,
}

/// The agent role: registers a new incarnation, heartbeats, claims its
/// assignments from the outbox, hands them to the host's code, and reports
/// each result with its attempt token.
///
/// ```text
/// Incarnate ─▶ Register ─▶ run: report finished ▸ heartbeat ▸ read refusals ▸ claim
/// ```
///
/// Like [`Node`](super::Node), a session is sans-IO: the host executes
/// each [`AgentOp`] on its store and feeds the answer back; it pulls work
/// with [`poll_work`](AgentSession::poll_work) and gives each result back
/// with [`finish`](AgentSession::finish). A session never loses a result:
/// a report whose answer is lost is sent again (a duplicate is refused by
/// the leader as fenced, which the session logs).
#[derive(Debug)]
pub struct AgentSession<P> {
    agent: AgentId,
    profile: AgentProfile,
    config: SessionConfig,
    phase: Phase,
    incarnation: u64,
    sent: Option<Sent>,
    wake_at: Instant,
    heartbeat_at: Instant,
    claim_at: Instant,
    /// A claim is sent by then even with no free slot: its answer tells
    /// which held attempts were cancelled.
    check_at: Instant,
    refusals_at: Instant,
    /// A registration or a report was posted since the last read of the
    /// refusals: the next read comes a refusals period after that one.
    posted_since_read: bool,
    /// Claimed, not yet handed to the host.
    ready: VecDeque<Assignment<P>>,
    /// Every attempt claimed and not yet reported (ready, running or
    /// finished): a repeated claim answer is recognised by it.
    held: BTreeSet<(TaskId, AttemptToken)>,
    /// Results to report.
    finished: Vec<Finished<P>>,
    /// Results in the outstanding report.
    reporting: Vec<Finished<P>>,
    /// Held attempts the cluster cancelled, for the host to stop.
    cancelled: VecDeque<(TaskId, AttemptToken)>,
    events: VecDeque<SessionEvent>,
}

impl<P: Clone> AgentSession<P> {
    /// A session for `agent` with `profile`; it starts by asking the store
    /// for a new incarnation, so a restarted agent's old attempts fail
    /// over as soon as it registers.
    pub fn new(agent: AgentId, profile: AgentProfile, config: SessionConfig) -> Self {
        AgentSession {
            agent,
            profile,
            config,
            phase: Phase::Incarnate,
            incarnation: 0,
            sent: None,
            wake_at: Instant::ZERO,
            heartbeat_at: Instant::ZERO,
            claim_at: Instant::ZERO,
            check_at: Instant::ZERO,
            refusals_at: Instant::ZERO,
            posted_since_read: false,
            ready: VecDeque::new(),
            held: BTreeSet::new(),
            finished: Vec::new(),
            reporting: Vec::new(),
            cancelled: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The agent.
    pub fn agent(&self) -> AgentId {
        self.agent
    }

    /// The incarnation registered (0 before).
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// The cluster stopped: the host ends the session.
    pub fn is_stopped(&self) -> bool {
        self.phase == Phase::Stopped
    }

    /// Attempts claimed and not yet reported.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// The next event to log.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// The next claimed assignment for the host to run.
    pub fn poll_work(&mut self) -> Option<Assignment<P>> {
        self.ready.pop_front()
    }

    /// The next attempt the host runs that the cluster cancelled (it was
    /// cancelled by a client, failed over, superseded or timed out): stop
    /// it; its result would be refused. Learned from the answer to a claim,
    /// which the session sends at least every refusals period.
    pub fn poll_cancelled(&mut self) -> Option<(TaskId, AttemptToken)> {
        self.cancelled.pop_front()
    }

    /// The host heard that the leader published work for this agent (a
    /// PostgreSQL `NOTIFY`, a message on a bus): the next
    /// [`poll_op`](Self::poll_op) claims at once instead of waiting out
    /// the claim poll, which then only catches what a lost notice missed.
    /// Optional; a notice the session cannot use (no free slot, not yet
    /// registered) changes nothing.
    pub fn work_published(&mut self) {
        self.claim_at = Instant::ZERO;
    }

    /// The host finished the attempt `token` of `task`: the outcome is
    /// reported with the next operation. A result for an attempt the
    /// session does not hold is ignored (`false`).
    pub fn finish(&mut self, task: TaskId, token: AttemptToken, outcome: AttemptOutcome) -> bool {
        let report = TaskReport {
            task,
            agent: self.agent,
            token,
            outcome,
        };
        self.push_finished(Finished::report(report))
    }

    /// The host's attempt `token` of `task` succeeded with `output`, the
    /// task's result ([`Outcome::output`](super::Outcome::output)): like
    /// [`finish`](Self::finish) with a success. The leader fails the task
    /// for good if its stored form is over the cluster's
    /// [`max_output_bytes`](super::NodeConfig::max_output_bytes); keep a
    /// large result elsewhere and return a reference to it.
    pub fn complete(&mut self, task: TaskId, token: AttemptToken, output: P) -> bool {
        self.push_finished(Finished::completed(task, self.agent, token, output))
    }

    fn push_finished(&mut self, finished: Finished<P>) -> bool {
        let report = finished.task_report();
        let (task, token) = (report.task, report.token);
        if !self.held.contains(&(task, token)) || self.is_reported(task, token) {
            return false;
        }
        self.finished.push(finished);
        true
    }

    fn is_reported(&self, task: TaskId, token: AttemptToken) -> bool {
        let same = |f: &Finished<P>| {
            let r = f.task_report();
            r.task == task && r.token == token
        };
        self.finished.iter().any(same) || self.reporting.iter().any(same)
    }

    /// When the session wants [`poll_op`](Self::poll_op) called again.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.sent.is_some() || self.phase == Phase::Stopped {
            return None;
        }
        if self.phase != Phase::Run || !self.finished.is_empty() {
            return Some(self.wake_at);
        }
        let mut next = self.heartbeat_at.min(self.refusals_at);
        if self.checks() {
            next = next.min(self.check_at);
        }
        if self.free_slots() > 0 {
            next = next.min(self.claim_at);
        }
        Some(next.max(self.wake_at))
    }

    /// Whether the session checks its held attempts with a claim every
    /// so often: only while it holds some (none can be cancelled
    /// otherwise, and the cluster's stop comes with a notice and every
    /// heartbeat's answer).
    fn checks(&self) -> bool {
        !self.held.is_empty()
    }

    fn free_slots(&self) -> usize {
        (self.profile.capacity() as usize).saturating_sub(self.held.len())
    }

    fn sender(&self) -> Sender {
        Sender::Agent {
            agent: self.agent,
            incarnation: self.incarnation,
        }
    }

    /// The next operation for the store, if one is due at `now`.
    pub fn poll_op(&mut self, now: Instant) -> Option<AgentOp<P>> {
        if self.sent.is_some() || now < self.wake_at {
            return None;
        }
        let (sent, op) = match self.phase {
            Phase::Stopped => return None,
            Phase::Incarnate => (Sent::Incarnate, AgentOp::Incarnate { agent: self.agent }),
            Phase::Register => (
                Sent::Register,
                AgentOp::Post {
                    sender: self.sender(),
                    messages: vec![Message::Register {
                        profile: self.profile.clone(),
                    }],
                },
            ),
            Phase::Run if !self.finished.is_empty() => {
                let later = self
                    .finished
                    .split_off(self.finished.len().min(MAX_REPORTS_PER_POST));
                self.reporting = std::mem::replace(&mut self.finished, later);
                let op = AgentOp::Report {
                    sender: self.sender(),
                    reports: self.reporting.clone(),
                };
                (Sent::Report, op)
            }
            Phase::Run if now >= self.heartbeat_at => (
                Sent::Heartbeat,
                AgentOp::Post {
                    sender: self.sender(),
                    messages: vec![Message::Heartbeat],
                },
            ),
            Phase::Run if now >= self.refusals_at => {
                (Sent::Refusals, AgentOp::TakeRefusals { agent: self.agent })
            }
            Phase::Run
                if (now >= self.claim_at && self.free_slots() > 0)
                    || (now >= self.check_at && self.checks()) =>
            {
                self.check_at = now.saturating_add(self.config.refusals_every);
                let limit = self.free_slots();
                (
                    Sent::Claim { limit },
                    AgentOp::Claim {
                        agent: self.agent,
                        incarnation: self.incarnation,
                        limit,
                    },
                )
            }
            Phase::Run => return None,
        };
        self.sent = Some(sent);
        Some(op)
    }

    /// Feeds the store's answer to the operation last polled. An answer
    /// of the operation's kind resets the backoff; one of another kind
    /// does not, so a store that keeps giving them is asked ever less
    /// often.
    pub fn handle_reply(&mut self, reply: Result<AgentReply<P>, StoreFailure>, now: Instant) {
        let Some(sent) = self.sent.take() else {
            return;
        };
        let reply = match reply {
            Ok(reply) => reply,
            Err(failure) => return self.failed(sent, failure, now),
        };
        match (sent, reply) {
            (Sent::Incarnate, AgentReply::Incarnation(incarnation)) => {
                self.incarnation = incarnation;
                self.phase = Phase::Register;
            }
            (
                _,
                AgentReply::Posted { stopped: true } | AgentReply::Claimed { stopped: true, .. },
            ) => {
                self.events.push_back(SessionEvent::Stopped);
                self.phase = Phase::Stopped;
            }
            (Sent::Register, AgentReply::Posted { .. }) => {
                self.events.push_back(SessionEvent::Registered {
                    incarnation: self.incarnation,
                });
                self.phase = Phase::Run;
                self.heartbeat_at = now.saturating_add(self.config.heartbeat_every);
                self.refusals_at = now.saturating_add(self.config.refusals_every);
                self.posted_since_read = true;
            }
            (Sent::Heartbeat, AgentReply::Posted { .. }) => {
                self.heartbeat_at = now.saturating_add(self.config.heartbeat_every);
            }
            (Sent::Report, AgentReply::Posted { .. }) => {
                self.refusals_posted(now);
                for finished in std::mem::take(&mut self.reporting) {
                    let report = finished.task_report();
                    self.held.remove(&(report.task, report.token));
                }
            }
            (Sent::Refusals, AgentReply::Refusals(refusals)) => {
                // A post answered just before this read may have been
                // consumed after it: one more read a period later.
                let periods = if std::mem::take(&mut self.posted_since_read) {
                    1
                } else {
                    QUIET_REFUSALS_PERIODS
                };
                let pause = self.config.refusals_every.saturating_mul(periods);
                self.refusals_at = now.saturating_add(pause);
                for (message, reason) in refusals {
                    self.events
                        .push_back(SessionEvent::Refused { message, reason });
                }
            }
            (Sent::Claim { limit }, AgentReply::Claimed { rows, .. }) => {
                self.cancelled_since(&rows);
                let fresh: Vec<_> = rows
                    .into_iter()
                    .filter(|row| {
                        row.agent == self.agent && self.held.insert((row.task, row.token))
                    })
                    .collect();
                // Fewer new rows than asked for: none were left to claim.
                if fresh.len() < limit {
                    self.claim_at = now.saturating_add(self.config.claim_poll);
                }
                self.ready.extend(fresh);
            }
            (sent, _) => {
                let why = format!(
                    "the store answered {} with an unrelated reply",
                    sent_name(sent)
                );
                let retry_in = self.pause(sent, now);
                self.events
                    .push_back(SessionEvent::BadAnswer { why, retry_in });
                return;
            }
        }
        self.config.backoff.reset();
    }

    /// A registration or reports were posted: their refusals, if any, are
    /// read within a refusals period.
    fn refusals_posted(&mut self, now: Instant) {
        self.posted_since_read = true;
        let due = now.saturating_add(self.config.refusals_every);
        self.refusals_at = self.refusals_at.min(due);
    }

    /// A claim answers every row this incarnation holds and has not
    /// reported; a held attempt missing from it, and not being reported,
    /// was cancelled (its row deleted, contract rule 8).
    fn cancelled_since(&mut self, rows: &[Assignment<P>]) {
        let answered: BTreeSet<_> = rows.iter().map(|r| (r.task, r.token)).collect();
        let gone: Vec<_> = self
            .held
            .iter()
            .copied()
            .filter(|&(task, token)| {
                !answered.contains(&(task, token)) && !self.is_reported(task, token)
            })
            .collect();
        for attempt in gone {
            self.held.remove(&attempt);
            let before = self.ready.len();
            self.ready.retain(|a| (a.task, a.token) != attempt);
            // One not yet handed out is simply dropped.
            if self.ready.len() == before {
                self.cancelled.push_back(attempt);
                self.events.push_back(SessionEvent::Cancelled {
                    task: attempt.0,
                    token: attempt.1,
                });
            }
        }
    }

    fn failed(&mut self, sent: Sent, failure: StoreFailure, now: Instant) {
        let retry_in = self.pause(sent, now);
        self.events.push_back(SessionEvent::StoreTrouble {
            op: sent_name(sent),
            failure,
            retry_in,
        });
    }

    /// `sent` must run again: no operation before the backoff's next
    /// pause, which it returns.
    fn pause(&mut self, sent: Sent, now: Instant) -> std::time::Duration {
        if sent == Sent::Report {
            // Send the same reports again: a duplicate is fenced out.
            let mut again = std::mem::take(&mut self.reporting);
            again.append(&mut self.finished);
            self.finished = again;
        }
        let retry_in = self.config.backoff.next();
        self.wake_at = now.saturating_add(retry_in);
        retry_in
    }
}

fn sent_name(sent: Sent) -> &'static str {
    match sent {
        Sent::Incarnate => "ask for an incarnation",
        Sent::Register => "register",
        Sent::Heartbeat => "heartbeat",
        Sent::Claim { .. } => "claim",
        Sent::Report => "report",
        Sent::Refusals => "read refusals",
    }
}

#[cfg(test)]
#[path = "agent_session_tests.rs"]
mod tests;
