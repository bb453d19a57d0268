//! The agent threads of the `dispatch` example, and what travels between
//! them and the host: each runs up to its capacity of attempts, reports
//! them, sends heartbeats, and misbehaves as its role says.

use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant as StdInstant};

use crossbeam::channel::{self, Receiver, RecvTimeoutError, Sender};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use taskweave::scheduler::{AttemptOutcome, TaskReport};
use taskweave::{AgentId, AttemptToken, TaskId};

#[cfg(doc)]
use super::CAPACITY;
use super::{BAD_UNTIL, DIES_AT, FLAKY_FAILURE_RATE, FROZEN_FOR, HEARTBEAT, SEED};

// ----- what travels between the host and the agents ----------------------

/// The payload of a task: how long it takes, and whether it can succeed.
#[derive(Clone, Copy, Debug)]
pub(super) struct Job {
    pub(super) work: Duration,
    pub(super) kind: JobKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum JobKind {
    Normal,
    /// Malformed input: every agent reports a non-retryable failure.
    Poison,
    /// A dependency that is always down: every attempt fails, retryably.
    Cursed,
}

pub(super) enum ToAgent {
    Run {
        task: TaskId,
        token: AttemptToken,
        job: Job,
    },
    Cancel {
        task: TaskId,
        token: AttemptToken,
    },
}

pub(super) enum FromAgent {
    Heartbeat(AgentId),
    Report(TaskReport),
}

// ----- the agents ---------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Role {
    Steady,
    Flaky,
    Bad,
    Doomed,
}

impl Role {
    pub(super) fn describe(self) -> &'static str {
        match self {
            Role::Steady => "steady",
            Role::Flaky => "flaky",
            Role::Bad => "bad, then fine",
            Role::Doomed => "dies",
        }
    }
}

pub(super) const ROLES: [Role; 6] = [
    Role::Steady,
    Role::Steady,
    Role::Steady,
    Role::Flaky,
    Role::Bad,
    Role::Doomed,
];

/// An attempt an agent is working on.
struct Running {
    done_at: StdInstant,
    task: TaskId,
    token: AttemptToken,
    job: Job,
}

/// One agent thread. It runs up to [`CAPACITY`] attempts at once (each one
/// just waits out its work time), reports each when it is done, and sends a
/// heartbeat every [`HEARTBEAT`].
pub(super) struct Agent {
    id: AgentId,
    role: Role,
    start: StdInstant,
    rng: StdRng,
    inbox: Receiver<ToAgent>,
    outbox: Sender<FromAgent>,
    running: Vec<Running>,
    /// Work time of the attempts reported.
    busy: Duration,
}

impl Agent {
    pub(super) fn spawn(
        id: AgentId,
        role: Role,
        start: StdInstant,
        outbox: Sender<FromAgent>,
    ) -> (Sender<ToAgent>, JoinHandle<Duration>) {
        let (tx, inbox) = channel::unbounded();
        let agent = Agent {
            id,
            role,
            start,
            rng: StdRng::seed_from_u64(SEED ^ id.get()),
            inbox,
            outbox,
            running: Vec::new(),
            busy: Duration::ZERO,
        };
        (tx, thread::spawn(move || agent.run()))
    }

    /// Works until the host hangs up (or the agent dies); returns the time
    /// spent working.
    fn run(mut self) -> Duration {
        let mut next_beat = StdInstant::now();
        loop {
            let now = StdInstant::now();
            if self.role == Role::Doomed && now >= self.start + DIES_AT {
                return self.die();
            }
            if !self.finish_due(now) {
                return self.busy;
            }
            if now >= next_beat {
                if self.outbox.send(FromAgent::Heartbeat(self.id)).is_err() {
                    return self.busy;
                }
                next_beat = now + HEARTBEAT;
            }
            let wake = self
                .running
                .iter()
                .map(|r| r.done_at)
                .fold(next_beat, StdInstant::min);
            match self.inbox.recv_deadline(wake) {
                Ok(ToAgent::Run { task, token, job }) => self.running.push(Running {
                    done_at: StdInstant::now() + job.work,
                    task,
                    token,
                    job,
                }),
                Ok(ToAgent::Cancel { task, token }) => {
                    self.running.retain(|r| (r.task, r.token) != (task, token))
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return self.busy,
            }
        }
    }

    /// Reports the attempts whose work is done. False if the host is gone.
    fn finish_due(&mut self, now: StdInstant) -> bool {
        let (done, running) = std::mem::take(&mut self.running)
            .into_iter()
            .partition(|r| r.done_at <= now);
        self.running = running;
        done.into_iter().all(|r| self.report(r))
    }

    /// Freezes (a crash, a partition, a stop-the-world pause) long enough to
    /// be declared lost, then sends the results it was holding and quits.
    fn die(mut self) -> Duration {
        thread::sleep(FROZEN_FOR);
        for r in std::mem::take(&mut self.running) {
            self.report(r);
        }
        self.busy
    }

    fn report(&mut self, r: Running) -> bool {
        self.busy += r.job.work;
        let outcome = self.outcome(r.job);
        let report = TaskReport {
            task: r.task,
            agent: self.id,
            token: r.token,
            outcome,
        };
        self.outbox.send(FromAgent::Report(report)).is_ok()
    }

    fn outcome(&mut self, job: Job) -> AttemptOutcome {
        match job.kind {
            JobKind::Poison => AttemptOutcome::fatal("malformed input"),
            JobKind::Cursed => AttemptOutcome::failure("dependency unavailable"),
            JobKind::Normal => match self.role {
                Role::Flaky if self.rng.random_bool(FLAKY_FAILURE_RATE) => {
                    AttemptOutcome::failure("connection reset")
                }
                Role::Bad if self.start.elapsed() < BAD_UNTIL => {
                    AttemptOutcome::failure("upstream returned 503")
                }
                _ => AttemptOutcome::Success,
            },
        }
    }
}
