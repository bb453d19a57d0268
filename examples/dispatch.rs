//! Dispatch: a host loop driving real agent threads through failures.
//!
//! The main thread owns a sans-IO [`Dispatcher`] and is the host loop: it
//! reads the wall clock, submits a stream of tasks, forwards assignments to
//! six agent threads over crossbeam channels, and feeds their reports and
//! heartbeats back. The agents misbehave on purpose:
//!
//! * agent-4 is **flaky**: a fifth of its attempts fail, and the tasks are
//!   retried with exponential backoff, preferably on another agent;
//! * agent-5 is **bad** for its first 600 ms: it fails everything, so its
//!   circuit breaker opens, lets a probe through after each cooldown, and
//!   closes once a probe succeeds;
//! * agent-6 **dies** at 450 ms: it stops answering and stops sending
//!   heartbeats, so it is declared lost and its tasks fail over to the
//!   others. It wakes up later and sends its stale results, which are
//!   rejected with a typed error;
//! * a few tasks are poisoned (every agent reports a non-retryable failure)
//!   or cursed (every attempt fails), and end in the dead-letter queue.
//!
//! At the end it prints the dispatcher's metrics, the agents' records and
//! the dead-letter queue, and checks that nothing was lost or done twice;
//! it exits with status 1 if a check fails.
//!
//! Run with `cargo run --release --example dispatch`.

#[path = "support/dispatch_agents.rs"]
mod agents;
#[path = "support/checks.rs"]
mod checks;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant as StdInstant};

use crossbeam::channel::{self, Receiver, RecvTimeoutError, Sender};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use taskweave::agent::AgentProfile;
use taskweave::resilience::{BreakerConfig, BreakerState, ExponentialBackoff, Jitter};
use taskweave::scheduler::{
    Action, AttemptOutcome, CancelReason, DeadLetterReason, Dispatcher, DispatcherConfig,
    TaskReport, TaskSpec, TaskState,
};
use taskweave::{AgentId, Instant, Priority, TaskId};

use agents::{Agent, FromAgent, Job, JobKind, ROLES, Role, ToAgent};

const SEED: u64 = 2026;
const BATCHES: usize = 40;
const BATCH_SIZE: usize = 12;
const TASKS: usize = BATCHES * BATCH_SIZE;
const BATCH_EVERY: Duration = Duration::from_millis(25);
const CAPACITY: u32 = 3;
const HEARTBEAT: Duration = Duration::from_millis(50);
const MISSED_HEARTBEATS: u32 = 3;
const FLAKY_FAILURE_RATE: f64 = 0.2;
const BAD_UNTIL: Duration = Duration::from_millis(600);
const DIES_AT: Duration = Duration::from_millis(450);
const FROZEN_FOR: Duration = Duration::from_millis(400);
/// Gives up (and fails) if the run has not finished by then.
const WATCHDOG: Duration = Duration::from_secs(30);
/// How many notices of one kind are printed before they are only counted.
const SHOWN: usize = 3;

// ----- notices ------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Notice {
    Breaker,
    AgentLost,
    Failover,
    Rejected,
    Retry,
    Cancel,
    DeadLetter,
    Expired,
}

impl Notice {
    fn label(self) -> &'static str {
        match self {
            Notice::Breaker => "breaker",
            Notice::AgentLost => "agent lost",
            Notice::Failover => "failover",
            Notice::Rejected => "rejected",
            Notice::Retry => "retry",
            Notice::Cancel => "cancel",
            Notice::DeadLetter => "dead letter",
            Notice::Expired => "expired",
        }
    }

    /// The story-telling kinds are always shown; the frequent ones only
    /// the first few times.
    fn shown(self) -> usize {
        match self {
            Notice::Breaker | Notice::AgentLost => usize::MAX,
            _ => SHOWN,
        }
    }
}

/// One-line notices, rate-limited per kind.
#[derive(Default)]
struct Log {
    counts: BTreeMap<Notice, usize>,
}

impl Log {
    fn note(&mut self, kind: Notice, now: Instant, message: impl FnOnce() -> String) {
        let count = self.counts.entry(kind).or_default();
        *count += 1;
        if *count <= kind.shown() {
            println!("[{:>5} ms] {:<11} {}", ms(now), kind.label(), message());
        }
    }

    fn summary(&self) -> String {
        self.counts
            .iter()
            .map(|(kind, n)| match n.saturating_sub(kind.shown()) {
                0 => format!("{n} {}", kind.label()),
                hidden => format!("{n} {} ({hidden} not shown)", kind.label()),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn ms(at: Instant) -> u64 {
    at.as_nanos() / 1_000_000
}

fn ms_f(nanos: u64) -> f64 {
    nanos as f64 / 1e6
}

// ----- the host -----------------------------------------------------------

struct Host {
    dispatcher: Dispatcher<Job>,
    start: StdInstant,
    agents: BTreeMap<AgentId, Sender<ToAgent>>,
    log: Log,
    breakers: BTreeMap<AgentId, &'static str>,
    /// Accepted successful reports per task.
    completions: HashMap<TaskId, u32>,
    /// Tasks taken back from a lost agent and not yet reassigned.
    failed_over: HashMap<TaskId, AgentId>,
    requeued: usize,
}

impl Host {
    fn now(&self) -> Instant {
        let nanos = self.start.elapsed().as_nanos();
        Instant::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    fn wall(&self, at: Instant) -> StdInstant {
        self.start + Duration::from_nanos(at.as_nanos())
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
        if let Err(error) = self.dispatcher.report(report, now) {
            self.log.note(Notice::Rejected, now, || {
                format!("report from {agent} refused: {error}")
            });
            return;
        }
        match outcome {
            AttemptOutcome::Success => *self.completions.entry(task).or_default() += 1,
            AttemptOutcome::Failure { reason, .. } => {
                if let Some(TaskState::Delayed { until }) = self.dispatcher.task_state(task) {
                    let wait = until.saturating_duration_since(now);
                    self.log.note(Notice::Retry, now, || {
                        format!("{task} failed on {agent} ({reason}): retry in {wait:.0?}")
                    });
                }
            }
        }
    }

    /// Carries out what the dispatcher decided.
    fn forward_actions(&mut self, now: Instant) {
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
                    if let Some(from) = self.failed_over.remove(&task) {
                        self.log.note(Notice::Failover, now, || {
                            format!(
                                "{task} (was on {from}) reassigned to {agent}, attempt {attempt}"
                            )
                        });
                    }
                    self.send(agent, ToAgent::Run { task, token, job });
                }
                Action::Cancel {
                    task,
                    agent,
                    token,
                    reason,
                } => {
                    if reason == CancelReason::AgentLost {
                        self.failed_over.insert(task, agent);
                        self.requeued += 1;
                    } else {
                        self.log.note(Notice::Cancel, now, || {
                            format!("{task} on {agent} stopped: {reason:?}")
                        });
                    }
                    self.send(agent, ToAgent::Cancel { task, token });
                }
                Action::DeadLettered { task, reason } => {
                    self.log.note(Notice::DeadLetter, now, || {
                        format!("{task}: {}", describe(&reason))
                    });
                }
                Action::Expired { task, limit } => {
                    self.log.note(Notice::Expired, now, || {
                        format!("{task}: {limit:?} ran out")
                    });
                }
                Action::AgentLost { agent } => {
                    let silence = HEARTBEAT * MISSED_HEARTBEATS;
                    self.log.note(Notice::AgentLost, now, || {
                        format!("{agent} silent for {silence:?}: its tasks fail over")
                    });
                }
            }
        }
    }

    fn send(&self, agent: AgentId, message: ToAgent) {
        if let Some(tx) = self.agents.get(&agent) {
            // An agent that has quit no longer listens; the dispatcher
            // already treats its work as lost.
            let _ = tx.send(message);
        }
    }

    /// Prints every breaker transition since the last look.
    fn watch_breakers(&mut self, now: Instant) {
        for (&agent, last) in &mut self.breakers {
            let state = self.dispatcher.breaker_state(agent, now);
            let label = match state {
                Some(BreakerState::Closed) | None => "closed",
                Some(BreakerState::Open { .. }) => "open",
                Some(BreakerState::HalfOpen) => "half-open",
            };
            if label != *last {
                let until = match state {
                    Some(BreakerState::Open { until }) => format!(" until {} ms", ms(until)),
                    _ => String::new(),
                };
                let from = std::mem::replace(last, label);
                self.log.note(Notice::Breaker, now, || {
                    format!("{agent}: {from} -> {label}{until}")
                });
            }
        }
    }

    fn all_terminal(&self, ids: &[TaskId]) -> bool {
        ids.iter().all(|&id| {
            self.dispatcher
                .task_state(id)
                .is_some_and(|s| s.is_terminal())
        })
    }
}

fn describe(reason: &DeadLetterReason) -> String {
    match reason {
        DeadLetterReason::RetriesExhausted {
            attempts,
            last_error,
        } => format!("retries exhausted after {attempts} attempts ({last_error})"),
        DeadLetterReason::NonRetryable { reason } => format!("non-retryable failure ({reason})"),
        DeadLetterReason::Unroutable { waited } => format!("no eligible agent for {waited:?}"),
        DeadLetterReason::Expired { limit } => format!("{limit:?} ran out"),
    }
}

// ----- setup --------------------------------------------------------------

fn config() -> Result<DispatcherConfig, taskweave::Error> {
    let retry = ExponentialBackoff::builder()
        .base(Duration::from_millis(10))
        .factor(2.0)
        .cap(Duration::from_millis(160))
        .max_attempts(4)
        .jitter(Jitter::Equal)
        .build()?;
    let breaker = BreakerConfig::builder()
        .consecutive_failures(4)
        .cooldown(Duration::from_millis(200))
        .probes(1)
        .successes_to_close(1)
        .build()?;
    Ok(DispatcherConfig::builder()
        .heartbeats(HEARTBEAT, MISSED_HEARTBEATS)
        .attempt_timeout(Duration::from_secs(2))
        .circuit_breaker(breaker)
        .retry_policy(retry)
        .terminal_history(TASKS)
        .seed(SEED)
        .build()?)
}

/// The task stream: mixed priorities and work times, a few doomed tasks.
fn jobs() -> Vec<TaskSpec<Job>> {
    let mut rng = StdRng::seed_from_u64(SEED);
    (0..TASKS)
        .map(|n| {
            let kind = match n {
                _ if n % 53 == 7 => JobKind::Poison,
                _ if n % 97 == 11 => JobKind::Cursed,
                _ => JobKind::Normal,
            };
            let priority = match n % 10 {
                0 => Priority::Critical,
                1 | 2 => Priority::High,
                3..=7 => Priority::Normal,
                _ => Priority::Low,
            };
            let work = Duration::from_millis(rng.random_range(5..20));
            TaskSpec::new(Job { work, kind }).priority(priority)
        })
        .collect()
}

fn main() -> Result<(), taskweave::Error> {
    let start = StdInstant::now();
    let mut dispatcher = Dispatcher::new(config()?);
    let (outbox, inbox) = channel::unbounded();
    let mut agents = BTreeMap::new();
    let mut threads = Vec::new();
    for (i, &role) in ROLES.iter().enumerate() {
        let id = AgentId::new(i as u64 + 1);
        let profile = AgentProfile::builder().capacity(CAPACITY).build()?;
        dispatcher.register_agent(id, profile, Instant::ZERO)?;
        let (tx, handle) = Agent::spawn(id, role, start, outbox.clone());
        agents.insert(id, tx);
        threads.push((id, role, handle));
    }
    drop(outbox);
    println!(
        "taskweave dispatch: {TASKS} tasks in {BATCHES} bursts, {} agent threads of capacity {CAPACITY}",
        ROLES.len()
    );
    println!(
        "agent-4 fails {:.0}% of its tasks; agent-5 fails everything for {BAD_UNTIL:?}; agent-6 dies at {DIES_AT:?}\n",
        FLAKY_FAILURE_RATE * 100.0
    );
    let mut host = Host {
        dispatcher,
        start,
        breakers: agents.keys().map(|&id| (id, "closed")).collect(),
        agents,
        log: Log::default(),
        completions: HashMap::new(),
        failed_over: HashMap::new(),
        requeued: 0,
    };
    let ids = drive(&mut host, &inbox)?;
    let elapsed = start.elapsed();

    // Hang up on the agents and wait for them; a frozen one may still send
    // late results, which the dispatcher must refuse.
    host.agents.clear();
    let busy: Vec<(AgentId, Role, Duration)> = threads
        .into_iter()
        .map(|(id, role, handle)| (id, role, handle.join().unwrap_or_default()))
        .collect();
    for message in inbox.try_iter() {
        host.on_message(message)?;
    }

    println!("\nall {TASKS} tasks finished in {elapsed:.2?}");
    println!("notices: {}", host.log.summary());
    println!(
        "failover: {} tasks requeued from lost agents\n",
        host.requeued
    );
    print_metrics(&host, elapsed);
    print_agents(&host, &busy, elapsed);
    print_dead_letters(&host);
    if !check(&host, &ids) {
        std::process::exit(1);
    }
    Ok(())
}

/// The host loop: submits the bursts on time, feeds agent messages and
/// timeouts to the dispatcher, and forwards its actions, until every task
/// is terminal. Returns the ids submitted.
fn drive(host: &mut Host, inbox: &Receiver<FromAgent>) -> Result<Vec<TaskId>, taskweave::Error> {
    let mut pending = jobs().into_iter();
    let mut ids = Vec::with_capacity(TASKS);
    let mut next_batch = host.start;
    loop {
        let now = host.now();
        if ids.len() < TASKS && host.wall(now) >= next_batch {
            let batch = pending.by_ref().take(BATCH_SIZE);
            for submitted in host.dispatcher.submit_batch(batch, now) {
                ids.push(submitted?.id());
            }
            next_batch += BATCH_EVERY;
        }
        host.forward_actions(now);
        host.watch_breakers(now);
        if ids.len() == TASKS && host.all_terminal(&ids) {
            return Ok(ids);
        }
        if host.start.elapsed() > WATCHDOG {
            println!("FAIL: the run did not finish within {WATCHDOG:?}");
            std::process::exit(1);
        }

        let mut wake = host.wall(now) + HEARTBEAT;
        if let Some(at) = host.dispatcher.poll_timeout() {
            wake = wake.min(host.wall(at));
        }
        if ids.len() < TASKS {
            wake = wake.min(next_batch);
        }
        match inbox.recv_deadline(wake) {
            Ok(message) => {
                host.on_message(message)?;
                for message in inbox.try_iter() {
                    host.on_message(message)?;
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                println!("FAIL: every agent thread is gone");
                std::process::exit(1);
            }
        }
        let now = host.now();
        host.dispatcher.handle_timeout(now);
    }
}

// ----- the report ---------------------------------------------------------

fn print_metrics(host: &Host, elapsed: Duration) {
    let metrics = host.dispatcher.metrics();
    let c = metrics.counters;
    println!("counters");
    println!(
        "  submitted {}  assigned {}  completed {}  failed {}  retried {}",
        c.submitted, c.assigned, c.completed, c.failed, c.retried
    );
    println!(
        "  dead-lettered {}  expired {}  cancelled {}  rejected reports {}  breaker trips {}\n",
        c.dead_lettered, c.expired, c.cancelled, c.rejected_reports, c.breaker_trips
    );
    println!("latency (ms)   queue wait p50    p95    p99   run time p50    p95    p99");
    for priority in Priority::ALL {
        let wait = metrics.queue_wait[priority.index()];
        let run = metrics.run_time[priority.index()];
        println!(
            "  {priority}        {:>14.1} {:>6.1} {:>6.1} {:>14.1} {:>6.1} {:>6.1}",
            ms_f(wait.p50),
            ms_f(wait.p95),
            ms_f(wait.p99),
            ms_f(run.p50),
            ms_f(run.p95),
            ms_f(run.p99),
        );
    }
    println!(
        "throughput: {:.0} completions/s over the run ({:.1}/s averaged over the {:?} metrics window)\n",
        c.completed as f64 / elapsed.as_secs_f64(),
        metrics.completions_per_second,
        taskweave::scheduler::THROUGHPUT_WINDOW,
    );
}

fn print_agents(host: &Host, busy: &[(AgentId, Role, Duration)], elapsed: Duration) {
    println!("agent     role             done  failed  success   busy  load");
    let slot_time = elapsed.as_secs_f64() * f64::from(CAPACITY);
    for &(id, role, worked) in busy {
        let Some(record) = host.dispatcher.registry().get(id) else {
            continue;
        };
        let stats = record.stats();
        let success = stats.success_rate().map_or(0.0, |r| r * 100.0);
        println!(
            "{:<9} {:<15} {:>5} {:>7} {:>7.1}% {:>5.1}% {:>5}",
            id.to_string(),
            role.describe(),
            stats.completed(),
            stats.failed(),
            success,
            100.0 * worked.as_secs_f64() / slot_time,
            record.load(),
        );
    }
    println!("(busy: work time over capacity × run time)\n");
}

fn print_dead_letters(host: &Host) {
    let letters = host.dispatcher.dead_letters();
    println!("dead-letter queue ({} letters)", letters.len());
    for letter in letters.iter() {
        println!(
            "  {:<18} {} at {:>4} ms: {}",
            letter.task.to_string(),
            letter.spec.priority,
            ms(letter.at),
            describe(&letter.reason)
        );
    }
    println!();
}

/// Checks that every task ended exactly once. Prints each check; false if
/// any failed.
fn check(host: &Host, ids: &[TaskId]) -> bool {
    let d = &host.dispatcher;
    let c = d.metrics().counters;
    let mut ends: BTreeMap<&str, u64> = BTreeMap::new();
    let mut unfinished = 0;
    for &id in ids {
        match d.task_state(id) {
            Some(TaskState::Completed) => *ends.entry("completed").or_default() += 1,
            Some(TaskState::DeadLettered) => *ends.entry("dead-lettered").or_default() += 1,
            Some(TaskState::Expired) => *ends.entry("expired").or_default() += 1,
            Some(TaskState::Cancelled) => *ends.entry("cancelled").or_default() += 1,
            _ => unfinished += 1,
        }
    }
    let end = |name| ends.get(name).copied().unwrap_or(0);
    let (completed, dead, expired, cancelled) = (
        end("completed"),
        end("dead-lettered"),
        end("expired"),
        end("cancelled"),
    );
    let submitted = ids.len() as u64;
    let distinct = ids.iter().collect::<HashSet<_>>().len();
    let accepted: u64 = host.completions.values().map(|&n| u64::from(n)).sum();
    let twice = host.completions.values().filter(|&&n| n > 1).count();
    let loaded: Vec<AgentId> = d
        .registry()
        .iter()
        .filter(|r| r.load() > 0)
        .map(|r| r.id())
        .collect();
    let checks = [
        (
            format!(
                "submitted {submitted} = completed {completed} + dead-lettered {dead} + expired {expired} + cancelled {cancelled}"
            ),
            submitted == completed + dead + expired + cancelled,
        ),
        (
            format!(
                "every task has one terminal state ({unfinished} unfinished, {distinct} distinct ids)"
            ),
            unfinished == 0 && distinct == ids.len(),
        ),
        (
            "the dispatcher's counters agree with the task states".to_owned(),
            (
                c.submitted,
                c.completed,
                c.dead_lettered,
                c.expired,
                c.cancelled,
            ) == (submitted, completed, dead, expired, cancelled),
        ),
        (
            format!("no task completed twice ({accepted} successes accepted, {twice} duplicates)"),
            twice == 0 && accepted == completed,
        ),
        (
            format!(
                "the dead-letter queue holds the {} failed tasks",
                dead + expired
            ),
            d.dead_letters().len() as u64 == dead + expired,
        ),
        (
            format!("every agent's load is 0 (loaded: {loaded:?})"),
            loaded.is_empty() && d.live_tasks() == 0,
        ),
    ];
    checks::report(&checks)
}
