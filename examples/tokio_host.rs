//! Tokio host: the same sans-IO dispatcher, driven by an async runtime.
//!
//! The dispatcher does no I/O and reads no clock, so nothing in it changes
//! under tokio: this host converts `tokio::time::Instant` into a
//! [`taskweave::Instant`] (nanoseconds since the run started), wakes its
//! loop at [`Dispatcher::poll_timeout`] with `tokio::time::sleep_until`, and
//! `select!`s between that wake-up and the agents' messages. Every agent is
//! a tokio task: it runs each attempt as a task of its own that really
//! sleeps for a few milliseconds, reports with the attempt's token, aborts
//! an attempt it is told to cancel, and sends a heartbeat every 50 ms from
//! a sidecar task. Everything happens in real time, on one thread:
//!
//! * agent-3 is **flaky**: every third attempt it runs fails, and the task
//!   is retried after a backoff, preferably on another agent;
//! * agent-4 **hangs** on its first attempt (its worker is wedged, its
//!   heartbeat sidecar still beats) far past the attempt timeout: the
//!   attempt times out and is retried elsewhere, and the result it sends
//!   when it comes back is rejected as stale by its fencing token;
//! * agent-5 **crashes** when its third attempt arrives: no more heartbeats,
//!   no more reports. It is declared lost after four missed heartbeats and
//!   the attempts it held fail over to the others.
//!
//! It prints the notable events as they happen and a summary, checks that
//! every task ended exactly once and that each failure above really
//! happened, and exits with status 1 if a check fails or the run does not
//! end within a watchdog timeout.
//!
//! Run with `cargo run --release --example tokio_host`.

#[path = "support/checks.rs"]
mod checks;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use taskweave::agent::AgentProfile;
use taskweave::resilience::{ExponentialBackoff, Jitter};
use taskweave::scheduler::{
    Action, AttemptOutcome, CancelReason, Dispatcher, DispatcherConfig, ReportError, TaskReport,
    TaskSpec, TaskState,
};
use taskweave::{AgentId, AttemptToken, Instant, TaskId};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::task::{AbortHandle, JoinHandle};
use tokio::time::{Instant as TokioInstant, sleep, sleep_until};

const SEED: u64 = 2026;
const BURSTS: usize = 4;
const BURST_SIZE: usize = 12;
const TASKS: usize = BURSTS * BURST_SIZE;
const BURST_EVERY: Duration = Duration::from_millis(50);
/// Work time of one attempt: a real sleep, drawn from this range (ms).
const WORK_MS: std::ops::Range<u64> = 3..12;
const CAPACITY: u32 = 2;
/// Real time on a loaded machine: a healthy agent starved of the CPU for
/// a while must not look dead (at 10 ms × 3 it did, under a parallel build).
const HEARTBEAT: Duration = Duration::from_millis(50);
const MISSED_HEARTBEATS: u32 = 4;
const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(400);
/// How long agent-4's wedged first attempt takes.
const HANG: Duration = Duration::from_millis(800);
/// agent-3 fails every this many attempts.
const FLAKY_EVERY: u32 = 3;
/// agent-5 crashes when this attempt arrives.
const CRASH_ON: u32 = 3;
/// The longest the host loop sleeps without a reason to wake.
const IDLE: Duration = Duration::from_millis(100);
/// The whole run, draining included, must end by then.
const WATCHDOG: Duration = Duration::from_secs(30);

type BoxError = Box<dyn std::error::Error>;

// ----- what travels between the host and the agents ----------------------

/// The payload of a task: how long it takes.
#[derive(Clone, Copy, Debug)]
struct Job {
    work: Duration,
}

#[derive(Debug)]
enum ToAgent {
    Run {
        task: TaskId,
        token: AttemptToken,
        job: Job,
    },
    Cancel {
        token: AttemptToken,
    },
}

#[derive(Debug)]
enum FromAgent {
    Heartbeat(AgentId),
    Report(TaskReport),
}

// ----- the agents: tokio tasks ---------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Steady,
    Flaky,
    Hangs,
    Crashes,
}

impl Role {
    fn describe(self) -> &'static str {
        match self {
            Role::Steady => "steady",
            Role::Flaky => "flaky",
            Role::Hangs => "hangs once",
            Role::Crashes => "crashes",
        }
    }
}

const ROLES: [Role; 5] = [
    Role::Steady,
    Role::Steady,
    Role::Flaky,
    Role::Hangs,
    Role::Crashes,
];

/// Milliseconds since `start`, for the trace.
fn ms_since(start: TokioInstant) -> u128 {
    start.elapsed().as_millis()
}

/// Sends a heartbeat every [`HEARTBEAT`] until aborted or the host is gone.
async fn heartbeats(id: AgentId, outbox: UnboundedSender<FromAgent>) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    loop {
        tick.tick().await;
        if outbox.send(FromAgent::Heartbeat(id)).is_err() {
            return;
        }
    }
}

/// One agent. Each attempt runs as a task of its own; a cancelled attempt
/// is aborted. Returns when the host hangs up (its running attempts still
/// finish and report) or when it crashes.
async fn agent(
    id: AgentId,
    role: Role,
    start: TokioInstant,
    mut inbox: UnboundedReceiver<ToAgent>,
    outbox: UnboundedSender<FromAgent>,
) {
    let beat = tokio::spawn(heartbeats(id, outbox.clone()));
    let mut running: Vec<(AttemptToken, AbortHandle)> = Vec::new();
    let mut runs = 0u32;
    while let Some(message) = inbox.recv().await {
        running.retain(|(_, attempt)| !attempt.is_finished());
        let (task, token, job) = match message {
            ToAgent::Run { task, token, job } => (task, token, job),
            ToAgent::Cancel { token } => {
                if let Some(i) = running.iter().position(|&(t, _)| t == token) {
                    running.swap_remove(i).1.abort();
                }
                continue;
            }
        };
        runs += 1;
        let report = |outcome| TaskReport {
            task,
            agent: id,
            token,
            outcome,
        };
        match role {
            Role::Crashes if runs == CRASH_ON => {
                println!(
                    "[{:>4} ms] crash       {id} crashes as {task} arrives: no more heartbeats or reports",
                    ms_since(start)
                );
                beat.abort();
                for (_, attempt) in running {
                    attempt.abort();
                }
                return;
            }
            Role::Hangs if runs == 1 => {
                println!(
                    "[{:>4} ms] hang        {id} is wedged on {task} for {HANG:?} (its heartbeats go on)",
                    ms_since(start)
                );
                // Wedged: the agent's own loop is stuck, so it reads no
                // cancel until it is done.
                sleep(HANG).await;
                let _ = outbox.send(FromAgent::Report(report(AttemptOutcome::Success)));
            }
            _ => {
                let outcome = if role == Role::Flaky && runs % FLAKY_EVERY == 0 {
                    AttemptOutcome::failure("connection reset")
                } else {
                    AttemptOutcome::Success
                };
                let outbox = outbox.clone();
                let message = FromAgent::Report(report(outcome));
                let attempt = tokio::spawn(async move {
                    sleep(job.work).await;
                    let _ = outbox.send(message);
                });
                running.push((token, attempt.abort_handle()));
            }
        }
    }
    beat.abort();
}

// ----- the host -------------------------------------------------------------

/// What happened, counted from the actions and report results.
#[derive(Debug, Default)]
struct Tally {
    retries: usize,
    timeouts: usize,
    lost: Vec<AgentId>,
    failovers: usize,
    late_rejected: usize,
    /// Accepted successful reports per task.
    completions: HashMap<TaskId, u32>,
}

struct Host {
    dispatcher: Dispatcher<Job>,
    start: TokioInstant,
    agents: BTreeMap<AgentId, UnboundedSender<ToAgent>>,
    tally: Tally,
}

impl Host {
    /// The dispatcher's clock: nanoseconds since the run started.
    fn now(&self) -> Instant {
        let nanos = self.start.elapsed().as_nanos();
        Instant::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// A dispatcher instant on tokio's clock.
    fn wall(&self, at: Instant) -> TokioInstant {
        self.start + Duration::from_nanos(at.as_nanos())
    }

    fn trace(&self, now: Instant, kind: &str, message: std::fmt::Arguments<'_>) {
        println!(
            "[{:>4} ms] {kind:<11} {message}",
            now.as_nanos() / 1_000_000
        );
    }

    fn on_message(&mut self, message: FromAgent) -> Result<(), taskweave::Error> {
        let now = self.now();
        match message {
            FromAgent::Heartbeat(agent) => self.dispatcher.heartbeat(agent, now)?,
            FromAgent::Report(report) => self.on_report(report, now),
        }
        Ok(())
    }

    fn on_report(&mut self, report: TaskReport, now: Instant) {
        let (task, agent, outcome) = (report.task, report.agent, report.outcome.clone());
        match self.dispatcher.report(report, now) {
            Ok(()) => {}
            Err(error @ (ReportError::StaleToken { .. } | ReportError::NotInFlight { .. })) => {
                self.tally.late_rejected += 1;
                self.trace(
                    now,
                    "rejected",
                    format_args!("late report from {agent}: {error}"),
                );
                return;
            }
            Err(error) => {
                self.trace(now, "rejected", format_args!("{agent}: {error}"));
                return;
            }
        }
        match outcome {
            AttemptOutcome::Success => *self.tally.completions.entry(task).or_default() += 1,
            AttemptOutcome::Failure { reason, .. } => {
                if let Some(TaskState::Delayed { until }) = self.dispatcher.task_state(task) {
                    self.tally.retries += 1;
                    let wait = until.saturating_duration_since(now);
                    self.trace(
                        now,
                        "retry",
                        format_args!("{task} failed on {agent} ({reason}): retry in {wait:.1?}"),
                    );
                }
            }
        }
    }

    /// Carries out what the dispatcher decided.
    fn forward_actions(&mut self) {
        let now = self.now();
        while let Some(action) = self.dispatcher.poll_action() {
            match action {
                Action::Assign {
                    task,
                    agent,
                    token,
                    attempt,
                } => {
                    let Some(&job) = self.dispatcher.payload(task) else {
                        continue;
                    };
                    if attempt > 1 {
                        self.trace(
                            now,
                            "reassign",
                            format_args!("{task} attempt {attempt} goes to {agent}"),
                        );
                    }
                    self.send(agent, ToAgent::Run { task, token, job });
                }
                Action::Cancel {
                    task,
                    agent,
                    token,
                    reason,
                } => {
                    match reason {
                        CancelReason::TimedOut => {
                            self.tally.timeouts += 1;
                            if matches!(
                                self.dispatcher.task_state(task),
                                Some(TaskState::Delayed { .. } | TaskState::Queued)
                            ) {
                                self.tally.retries += 1;
                            }
                            self.trace(
                                now,
                                "timeout",
                                format_args!(
                                    "{task} on {agent} passed its {ATTEMPT_TIMEOUT:?}: cancelled, to be retried"
                                ),
                            );
                        }
                        CancelReason::AgentLost => {
                            self.tally.failovers += 1;
                            self.trace(
                                now,
                                "failover",
                                format_args!("{task} taken back from {agent}"),
                            );
                        }
                        other => {
                            self.trace(now, "cancel", format_args!("{task} on {agent}: {other:?}"))
                        }
                    }
                    self.send(agent, ToAgent::Cancel { token });
                }
                Action::AgentLost { agent } => {
                    self.tally.lost.push(agent);
                    let silence = HEARTBEAT * MISSED_HEARTBEATS;
                    self.trace(
                        now,
                        "agent lost",
                        format_args!("{agent} silent for {silence:?}: marked lost"),
                    );
                }
                Action::DeadLettered { task, reason } => {
                    self.trace(now, "dead letter", format_args!("{task}: {reason:?}"));
                }
                Action::Expired { task, limit } => {
                    self.trace(now, "expired", format_args!("{task}: {limit:?}"));
                }
            }
        }
    }

    fn send(&self, agent: AgentId, message: ToAgent) {
        if let Some(tx) = self.agents.get(&agent) {
            // A crashed agent no longer listens; the dispatcher finds out
            // from its missing heartbeats.
            let _ = tx.send(message);
        }
    }

    fn all_terminal(&self, ids: &[TaskId]) -> bool {
        ids.iter().all(|&id| {
            self.dispatcher
                .task_state(id)
                .is_some_and(|s| s.is_terminal())
        })
    }

    /// The host loop: submits the bursts on time, sleeps until the
    /// dispatcher's next timer, the next burst or an agent's message,
    /// whichever comes first, and feeds all of it to the dispatcher, until
    /// every task is terminal. Returns the ids submitted.
    async fn drive(
        &mut self,
        inbox: &mut UnboundedReceiver<FromAgent>,
    ) -> Result<Vec<TaskId>, BoxError> {
        let mut rng = StdRng::seed_from_u64(SEED);
        let mut ids = Vec::with_capacity(TASKS);
        let mut next_burst = self.start;
        loop {
            let now = self.now();
            if ids.len() < TASKS && self.wall(now) >= next_burst {
                let burst = (0..BURST_SIZE).map(|_| {
                    let work = Duration::from_millis(rng.random_range(WORK_MS));
                    TaskSpec::new(Job { work })
                });
                for submitted in self.dispatcher.submit_batch(burst, now) {
                    ids.push(submitted?.id());
                }
                next_burst += BURST_EVERY;
            }
            self.forward_actions();
            if ids.len() == TASKS && self.all_terminal(&ids) {
                return Ok(ids);
            }

            let mut wake = TokioInstant::now() + IDLE;
            if let Some(at) = self.dispatcher.poll_timeout() {
                wake = wake.min(self.wall(at));
            }
            if ids.len() < TASKS {
                wake = wake.min(next_burst);
            }
            tokio::select! {
                biased;
                message = inbox.recv() => {
                    let Some(message) = message else {
                        return Err("every agent is gone".into());
                    };
                    self.on_message(message)?;
                    while let Ok(message) = inbox.try_recv() {
                        self.on_message(message)?;
                    }
                }
                () = sleep_until(wake) => {}
            }
            let now = self.now();
            self.dispatcher.handle_timeout(now);
        }
    }
}

// ----- setup and checks -------------------------------------------------------

fn config() -> Result<DispatcherConfig, taskweave::Error> {
    let retry = ExponentialBackoff::builder()
        .base(Duration::from_millis(5))
        .factor(2.0)
        .cap(Duration::from_millis(40))
        .max_attempts(6)
        .jitter(Jitter::Equal)
        .build()?;
    Ok(DispatcherConfig::builder()
        .heartbeats(HEARTBEAT, MISSED_HEARTBEATS)
        .attempt_timeout(ATTEMPT_TIMEOUT)
        .retry_policy(retry)
        .terminal_history(TASKS)
        .seed(SEED)
        .build()?)
}

async fn run() -> Result<bool, BoxError> {
    let start = TokioInstant::now();
    let mut dispatcher = Dispatcher::new(config()?);
    let (outbox, mut inbox) = mpsc::unbounded_channel();
    let mut agents = BTreeMap::new();
    let mut tasks: Vec<JoinHandle<()>> = Vec::new();
    for (i, &role) in ROLES.iter().enumerate() {
        let id = AgentId::new(i as u64 + 1);
        let profile = AgentProfile::builder().capacity(CAPACITY).build()?;
        dispatcher.register_agent(id, profile, Instant::ZERO)?;
        let (tx, rx) = mpsc::unbounded_channel();
        tasks.push(tokio::spawn(agent(id, role, start, rx, outbox.clone())));
        agents.insert(id, tx);
    }
    drop(outbox);
    println!(
        "taskweave on tokio: {TASKS} tasks in {BURSTS} bursts, {} agents (tokio tasks) of capacity {CAPACITY}",
        ROLES.len()
    );
    println!(
        "roles: {}; attempt timeout {ATTEMPT_TIMEOUT:?}, heartbeat every {HEARTBEAT:?}, lost after {MISSED_HEARTBEATS} missed\n",
        ROLES
            .iter()
            .enumerate()
            .map(|(i, r)| format!("agent-{} {}", i + 1, r.describe()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut host = Host {
        dispatcher,
        start,
        agents,
        tally: Tally::default(),
    };
    let ids = host.drive(&mut inbox).await?;
    let finished = start.elapsed();

    // Hang up and drain: the agents stop, their running attempts still
    // report, and a wedged agent sends its late result, which the
    // dispatcher must refuse.
    host.agents.clear();
    while let Some(message) = inbox.recv().await {
        host.on_message(message)?;
    }
    for task in tasks {
        let _ = task.await;
    }
    println!(
        "\nall {TASKS} tasks ended in {finished:.1?}; agents drained in {:.1?}\n",
        start.elapsed()
    );
    print_summary(&host);
    Ok(check(&host, &ids))
}

fn print_summary(host: &Host) {
    let c = host.dispatcher.metrics().counters;
    println!(
        "counters: submitted {}  assigned {}  completed {}  failed {}  retried {}  dead-lettered {}  rejected reports {}",
        c.submitted,
        c.assigned,
        c.completed,
        c.failed,
        c.retried,
        c.dead_lettered,
        c.rejected_reports
    );
    println!("agent     role        done  failed  status");
    for (i, role) in ROLES.iter().enumerate() {
        let id = AgentId::new(i as u64 + 1);
        let Some(record) = host.dispatcher.registry().get(id) else {
            continue;
        };
        let stats = record.stats();
        println!(
            "{:<9} {:<11} {:>4} {:>7}  {:?}",
            id.to_string(),
            role.describe(),
            stats.completed(),
            stats.failed(),
            record.status(),
        );
    }
    println!();
}

/// Checks the run; prints each check. False if any failed.
fn check(host: &Host, ids: &[TaskId]) -> bool {
    let d = &host.dispatcher;
    let c = d.metrics().counters;
    let t = &host.tally;
    let mut completed = 0u64;
    let mut dead = 0u64;
    let mut unfinished = 0usize;
    for &id in ids {
        match d.task_state(id) {
            Some(TaskState::Completed) => completed += 1,
            Some(TaskState::DeadLettered) => dead += 1,
            _ => unfinished += 1,
        }
    }
    let accepted: u64 = t.completions.values().map(|&n| u64::from(n)).sum();
    let twice = t.completions.values().filter(|&&n| n > 1).count();
    let crashed = ROLES
        .iter()
        .position(|&r| r == Role::Crashes)
        .map(|i| AgentId::new(i as u64 + 1));
    let loaded = d.registry().iter().filter(|r| r.load() > 0).count();
    let checks = [
        (
            format!(
                "every task ended exactly once: {} submitted = {completed} completed + {dead} dead-lettered, {unfinished} unfinished",
                ids.len()
            ),
            ids.len() == TASKS
                && unfinished == 0
                && completed + dead == TASKS as u64
                && (c.submitted, c.completed, c.dead_lettered) == (TASKS as u64, completed, dead),
        ),
        (
            format!("no task completed twice ({accepted} successes accepted, {twice} duplicates)"),
            twice == 0 && accepted == completed,
        ),
        (
            format!(
                "no agent holds work ({loaded} loaded, {} live tasks)",
                d.live_tasks()
            ),
            loaded == 0 && d.live_tasks() == 0,
        ),
        (
            format!(
                "at least one retry ({} seen, {} counted by the dispatcher)",
                t.retries, c.retried
            ),
            t.retries >= 1 && c.retried >= 1,
        ),
        (
            format!("at least one attempt timeout ({} seen)", t.timeouts),
            t.timeouts >= 1,
        ),
        (
            format!(
                "the crashed agent lost to missed heartbeats, its work failed over (lost: {:?}, {} failovers)",
                t.lost, t.failovers
            ),
            crashed.is_some_and(|a| t.lost.contains(&a)) && t.failovers >= 1,
        ),
        (
            format!(
                "late reports rejected, their attempts no longer current ({} rejected)",
                t.late_rejected
            ),
            t.late_rejected >= 1,
        ),
    ];
    checks::report(&checks)
}

fn main() -> Result<(), BoxError> {
    // One thread is enough: the agents are tasks, not threads.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let passed = runtime.block_on(async {
        match tokio::time::timeout(WATCHDOG, run()).await {
            Ok(result) => result,
            Err(_) => {
                println!("FAIL: the run did not finish within {WATCHDOG:?}");
                Ok(false)
            }
        }
    })?;
    if !passed {
        std::process::exit(1);
    }
    Ok(())
}
