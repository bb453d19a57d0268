//! The agent role: a separate process that registers, heartbeats, claims
//! its assignments from the outbox, runs them (a sleep and a failure rate
//! stand in for real work), and reports each result with its attempt
//! token. A report the dispatcher fenced out (its attempt was failed over
//! or cancelled meanwhile) comes back rejected; the agent logs and drops
//! it.

use std::time::{Duration, Instant as WallInstant};

use taskweave::scheduler::{AttemptOutcome, TaskReport};
use taskweave::{AgentId, AttemptToken, TaskId};

use crate::mailbox::Claim;
use crate::model::{HEARTBEAT_INTERVAL, Message, mix};
use crate::store::{Store, StoreError};

/// How an agent process behaves.
#[derive(Debug, Clone)]
pub(crate) struct AgentOptions {
    /// Its id (≥ 1).
    pub(crate) id: i64,
    /// Tasks it runs at once.
    pub(crate) capacity: u32,
    /// Simulated work per task: from, to (milliseconds, inclusive).
    pub(crate) work_ms: (u64, u64),
    /// Share of attempts that fail; a fifth of those fail for good.
    pub(crate) fail_rate: f64,
}

/// Runs the agent until the process is killed.
///
/// # Errors
///
/// A store error (the database went away).
pub(crate) fn run(store: &mut Store, options: &AgentOptions) -> Result<(), StoreError> {
    let id = options.id;
    store.post(
        id,
        &[Message::Register {
            capacity: options.capacity,
        }],
    )?;
    let mut last_beat = WallInstant::now();
    let mut last_check = WallInstant::now();
    loop {
        if last_beat.elapsed() >= HEARTBEAT_INTERVAL {
            store.post(id, &[Message::Heartbeat])?;
            last_beat = WallInstant::now();
        }
        if last_check.elapsed() >= Duration::from_millis(500) {
            for (inbox_id, verdict) in store.take_rejections(id)? {
                eprintln!("agent {id}: report {inbox_id} fenced out ({verdict}); dropped");
            }
            last_check = WallInstant::now();
        }
        let claims = store.claim(id, i64::from(options.capacity))?;
        if claims.is_empty() {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        let reports: Vec<Message> = std::thread::scope(|scope| {
            let running: Vec<_> = claims
                .iter()
                .map(|claim| scope.spawn(|| work(claim, options)))
                .collect();
            running
                .into_iter()
                .map(|h| h.join().expect("simulated work does not panic"))
                .collect()
        });
        let done: Vec<(i64, i64)> = claims.iter().map(|c| (c.task, c.token)).collect();
        store.post_reports(id, &reports, &done)?;
    }
}

/// Runs one claimed attempt: sleeps, then succeeds or fails as the hash of
/// its token decides, so each attempt of a task draws afresh.
fn work(claim: &Claim, options: &AgentOptions) -> Message {
    let h = mix(claim.token as u64 ^ (claim.task as u64).rotate_left(32));
    let (from, to) = options.work_ms;
    let ms = from + h % (to.saturating_sub(from) + 1);
    std::thread::sleep(Duration::from_millis(ms));
    let draw = (mix(h) >> 11) as f64 / (1u64 << 53) as f64;
    let outcome = if draw >= options.fail_rate {
        AttemptOutcome::Success
    } else if mix(h ^ 1) % 5 == 0 {
        AttemptOutcome::fatal("simulated fatal error")
    } else {
        AttemptOutcome::failure("simulated transient error")
    };
    Message::Report(TaskReport {
        task: TaskId::new(claim.task as u64),
        agent: AgentId::new(options.id as u64),
        token: AttemptToken::new(claim.token as u64),
        outcome,
    })
}
