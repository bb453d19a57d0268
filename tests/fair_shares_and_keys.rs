//! Fair shares and concurrency keys under random load: shares follow the
//! weights, a key is never over-admitted under faults, failover and
//! preemption, a cancelled task never completes, nothing waits for ever,
//! and every state along the way is one a snapshot restores. Case counts
//! follow `PROPTEST_CASES`.

#![cfg(feature = "serde")]

mod corrupt;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::Index;
use taskweave::agent::{AgentProfile, AgentStatus};
use taskweave::resilience::{Fixed, Quota};
use taskweave::routing::{LeastLoaded, RoutingStrategy};
use taskweave::scheduler::{
    Action, AttemptOutcome, CancelReason, ConcurrencyLimit, Dispatcher, DispatcherConfig,
    SchedulerError, Snapshot, TaskReport, TaskSpec, TaskState, WhenFull,
};
use taskweave::{AgentId, AttemptToken, Instant, Priority, TaskId};

mod harness;

const KEYS: [&str; 3] = ["a", "b", "c"];

fn limits() -> [(ConcurrencyLimit, usize); 3] {
    let tokens = Quota::new(4, Duration::from_secs(1))
        .and_then(|q| q.with_burst(5))
        .unwrap();
    [
        (ConcurrencyLimit::new(1), 1),
        (
            ConcurrencyLimit::new(2).when_full(WhenFull::CancelOldest),
            2,
        ),
        (
            ConcurrencyLimit::new(2)
                .when_full(WhenFull::CancelNewest)
                .rate(tokens),
            2,
        ),
    ]
}

fn config() -> DispatcherConfig {
    let mut builder = DispatcherConfig::builder()
        .heartbeats(Duration::from_secs(3), 2)
        .attempt_timeout(Duration::from_secs(8))
        .retry_policy(Fixed::new(Duration::from_millis(500), 3).unwrap())
        .preemption(true)
        .terminal_history(100_000);
    for (key, (limit, _)) in KEYS.iter().zip(limits()) {
        builder = builder.concurrency_limit(*key, limit);
    }
    builder.build().unwrap()
}

fn strategy() -> Box<dyn RoutingStrategy + Send> {
    Box::new(LeastLoaded::new())
}

#[derive(Clone, Debug)]
enum Op {
    Submit {
        keys: u8,
        priority: u8,
        cost: u32,
        tenant: u8,
    },
    Register(u32),
    Unregister(Index),
    SetStatus(Index, u8),
    Heartbeats,
    Succeed(Index),
    Fail(Index, bool),
    Cancel(Index),
    Advance(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0u8..8, 0u8..4, 1u32..4, 0u8..3).prop_map(|(keys, priority, cost, tenant)| Op::Submit { keys, priority, cost, tenant }),
        1 => (1u32..4).prop_map(Op::Register),
        1 => any::<Index>().prop_map(Op::Unregister),
        1 => (any::<Index>(), 0u8..3).prop_map(|(i, s)| Op::SetStatus(i, s)),
        2 => Just(Op::Heartbeats),
        4 => any::<Index>().prop_map(Op::Succeed),
        2 => (any::<Index>(), any::<bool>()).prop_map(|(i, r)| Op::Fail(i, r)),
        2 => any::<Index>().prop_map(Op::Cancel),
        2 => (1u16..4_000).prop_map(Op::Advance),
    ]
}

/// The host: the dispatcher, the attempts it was told to run, and what it
/// knows of each task.
struct Host {
    d: Dispatcher<u32>,
    now: Instant,
    agents: Vec<AgentId>,
    next_agent: u64,
    running: Vec<(TaskId, AgentId, AttemptToken)>,
    keys: BTreeMap<TaskId, Vec<usize>>,
    cancelled: BTreeSet<TaskId>,
}

impl Host {
    fn new() -> Self {
        Host {
            d: Dispatcher::new(config()),
            now: Instant::from_secs(1),
            agents: Vec::new(),
            next_agent: 0,
            running: Vec::new(),
            keys: BTreeMap::new(),
            cancelled: BTreeSet::new(),
        }
    }

    fn pick<T: Copy>(items: &[T], index: &Index) -> Option<T> {
        (!items.is_empty()).then(|| items[index.index(items.len())])
    }

    fn step(&mut self, op: &Op) -> Result<(), String> {
        let now = self.now;
        match op {
            Op::Submit {
                keys,
                priority,
                cost,
                tenant,
            } => {
                let held: Vec<usize> = (0..3).filter(|k| keys & (1 << k) != 0).collect();
                let mut spec = TaskSpec::new(self.keys.len() as u32)
                    .priority(Priority::from_index(*priority as usize).unwrap_or_default())
                    .cost(*cost)
                    .fairness(format!("tenant-{tenant}"), u16::from(*tenant) + 1);
                for &k in &held {
                    spec = spec.concurrency_key(KEYS[k]);
                }
                if let Ok(submitted) = self.d.submit(spec, now) {
                    self.keys.insert(submitted.id(), held);
                }
            }
            Op::Register(capacity) => {
                self.next_agent += 1;
                let agent = AgentId::new(self.next_agent);
                let profile = AgentProfile::builder().capacity(*capacity).build().unwrap();
                if self.d.register_agent(agent, profile, now).is_ok() {
                    self.agents.push(agent);
                }
            }
            Op::Unregister(i) => {
                if let Some(agent) = Self::pick(&self.agents, i) {
                    let _ = self.d.unregister_agent(agent, now);
                    self.agents.retain(|&a| a != agent);
                }
            }
            Op::SetStatus(i, s) => {
                if let Some(agent) = Self::pick(&self.agents, i) {
                    let status = [
                        AgentStatus::Online,
                        AgentStatus::Draining,
                        AgentStatus::Offline,
                    ][*s as usize % 3];
                    let _ = self.d.set_agent_status(agent, status, now);
                }
            }
            Op::Heartbeats => {
                for &agent in &self.agents {
                    let _ = self.d.heartbeat(agent, now);
                }
            }
            Op::Succeed(i) | Op::Fail(i, _) => {
                if let Some((task, agent, token)) = Self::pick(&self.running, i) {
                    let outcome = match op {
                        Op::Fail(_, retryable) => AttemptOutcome::Failure {
                            reason: "flaky".into(),
                            retryable: *retryable,
                        },
                        _ => AttemptOutcome::Success,
                    };
                    let accepted = self
                        .d
                        .report(
                            TaskReport {
                                task,
                                agent,
                                token,
                                outcome,
                            },
                            now,
                        )
                        .is_ok();
                    if accepted && self.cancelled.contains(&task) {
                        return Err(format!("a report for cancelled task {task} was accepted"));
                    }
                    self.running.retain(|r| r.2 != token);
                }
            }
            Op::Cancel(i) => {
                let live: Vec<TaskId> = self.keys.keys().copied().collect();
                if let Some(task) = Self::pick(&live, i) {
                    if self.d.cancel(task, now).is_ok() {
                        self.cancelled.insert(task);
                    }
                }
            }
            Op::Advance(ms) => {
                self.now = now + Duration::from_millis(u64::from(*ms));
                self.d.handle_timeout(self.now);
            }
        }
        self.drain_actions()?;
        self.check()
    }

    fn drain_actions(&mut self) -> Result<(), String> {
        while let Some(action) = self.d.poll_action() {
            match action {
                Action::Assign {
                    task, agent, token, ..
                } => {
                    if self.cancelled.contains(&task) {
                        return Err(format!("cancelled task {task} was assigned"));
                    }
                    self.running.push((task, agent, token));
                }
                Action::Cancel {
                    task,
                    token,
                    reason,
                    ..
                } => {
                    self.running.retain(|r| r.2 != token);
                    if reason == CancelReason::Superseded {
                        self.cancelled.insert(task);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// No key over its limit; no cancelled task other than cancelled.
    fn check(&self) -> Result<(), String> {
        let mut in_flight = [0usize; 3];
        for (&task, held) in &self.keys {
            let state = self.d.task_state(task);
            if matches!(state, Some(TaskState::InFlight { .. })) {
                for &k in held {
                    in_flight[k] += 1;
                }
            }
            if self.cancelled.contains(&task) && state != Some(TaskState::Cancelled) {
                return Err(format!("cancelled task {task} is {state:?}"));
            }
        }
        for (k, (_, max)) in limits().iter().enumerate() {
            if in_flight[k] > *max {
                return Err(format!(
                    "key {} has {} in flight, limit {max}",
                    KEYS[k], in_flight[k]
                ));
            }
        }
        Ok(())
    }

    /// A snapshot of the state restores, and writes the same bytes again.
    fn restores(&self) -> Result<(), String> {
        let json = serde_json::to_string(&self.d.snapshot()).map_err(|e| e.to_string())?;
        let snapshot: Snapshot<u32> = serde_json::from_str(&json).map_err(|e| e.to_string())?;
        let restored = Dispatcher::restore(config(), strategy(), snapshot)
            .map_err(|e| format!("a state the dispatcher reached is refused: {e}"))?;
        let again = serde_json::to_string(&restored.snapshot()).map_err(|e| e.to_string())?;
        (again == json)
            .then_some(())
            .ok_or_else(|| "the restored snapshot differs".to_string())
    }

    /// Brings every agent back and completes everything: nothing may stay
    /// waiting for a key for ever.
    fn drain(&mut self) -> Result<(), String> {
        self.step(&Op::Register(4))?;
        for &agent in &self.agents.clone() {
            let _ = self
                .d
                .set_agent_status(agent, AgentStatus::Online, self.now);
        }
        for _ in 0..2_000 {
            if self.d.live_tasks() == 0 {
                return Ok(());
            }
            self.step(&Op::Heartbeats)?;
            while let Some((task, agent, token)) = self.running.pop() {
                let outcome = AttemptOutcome::Success;
                let report = TaskReport {
                    task,
                    agent,
                    token,
                    outcome,
                };
                if self.d.report(report, self.now).is_ok() && self.cancelled.contains(&task) {
                    return Err(format!("a report for cancelled task {task} was accepted"));
                }
                self.drain_actions()?;
                self.check()?;
            }
            self.step(&Op::Advance(1_000))?;
        }
        Err(format!("{} tasks never finished", self.d.live_tasks()))
    }
}

proptest! {
    #![proptest_config(corrupt::config(64))]

    /// Under random submissions, faults, failover, preemption and
    /// cancellations, no concurrency key is ever over its limit, a
    /// cancelled (or superseded) task never completes and its reports are
    /// rejected, every state restores from a snapshot, and in the end every
    /// task finishes.
    #[test]
    fn keys_are_never_over_admitted_and_cancels_win(
        ops in proptest::collection::vec(op(), 1..160),
    ) {
        let outcome = corrupt::watchdog(60, move || -> Result<(), String> {
            let mut host = Host::new();
            for (i, op) in ops.iter().enumerate() {
                host.step(op)?;
                if i % 16 == 0 {
                    host.restores()?;
                }
            }
            host.restores()?;
            host.drain()
        });
        outcome.map_err(TestCaseError::fail)?;
    }

    /// A corrupted snapshot of a dispatcher using fair shares and keys is
    /// refused with a typed error, or the restored dispatcher runs on with
    /// no key over its limit and drains: nothing waits for ever.
    #[test]
    fn corrupted_snapshots_with_keys_are_refused_or_run_safely(
        ops in proptest::collection::vec(op(), 10..80),
        edits in proptest::collection::vec((any::<Index>(), any::<u8>(), any::<u64>()), 1..4),
        after in proptest::collection::vec(op(), 0..60),
    ) {
        let outcome = corrupt::watchdog(60, move || -> Result<&'static str, String> {
            let mut host = Host::new();
            for op in &ops {
                host.step(op)?;
            }
            let mut value = serde_json::to_value(host.d.snapshot()).map_err(|e| e.to_string())?;
            let paths = corrupt::paths_where(&value, |v| v.is_number() || v.is_boolean());
            if paths.is_empty() {
                return Ok("nothing to corrupt");
            }
            for (at, how, noise) in &edits {
                let path = &paths[at.index(paths.len())];
                let leaf = corrupt::at_path(&mut value, path);
                *leaf = corrupt::corrupt_leaf(leaf, *how, *noise);
            }
            let Ok(snapshot) = serde_json::from_value::<Snapshot<u32>>(value) else {
                return Ok("refused by serde");
            };
            host.d = match Dispatcher::restore(config(), strategy(), snapshot) {
                Ok(restored) => restored,
                Err(SchedulerError::CorruptSnapshot { .. } | SchedulerError::ConfigMismatch { .. } | SchedulerError::SnapshotVersion { .. }) => {
                    return Ok("refused by restore");
                }
                Err(other) => return Err(format!("unexpected error kind: {other}")),
            };
            // The host's view of attempts and cancels may no longer hold, and
            // its clock follows the restored one.
            host.running.clear();
            host.cancelled.clear();
            host.now = host.now.max(host.d.clock());
            host.check()?;
            for op in &after {
                host.step(op)?;
            }
            // A clock corrupted to the end of time leaves no time to drain
            // in: what waits for an instant waits for "never".
            let end_of_time = Instant::from_nanos(u64::MAX - 365 * 86_400 * 1_000_000_000);
            match host.drain() {
                Err(_) if host.d.clock() >= end_of_time => Ok("ran on at the end of time"),
                drained => drained.map(|()| "ran on"),
            }
        });
        outcome.map_err(TestCaseError::fail)?;
    }

    /// With every key backlogged, dispatches follow the weights within
    /// ±10 %, however long each key's queue, and FIFO within a key.
    #[test]
    fn fair_shares_follow_the_weights(
        weights in proptest::collection::vec(1u16..10, 2..5),
        backlog in proptest::collection::vec(200usize..2_000, 4),
        unkeyed in 0usize..50,
    ) {
        let mut d: Dispatcher<(usize, usize)> = Dispatcher::new(DispatcherConfig::default());
        let now = Instant::ZERO;
        let mut specs = Vec::new();
        for (key, &weight) in weights.iter().enumerate() {
            for n in 0..backlog[key] {
                specs.push(TaskSpec::new((key, n)).fairness(format!("tenant-{key}"), weight));
            }
        }
        specs.extend((0..unkeyed).map(|n| TaskSpec::new((usize::MAX, n))));
        for result in d.submit_batch(specs, now) {
            prop_assert!(result.is_ok());
        }
        let profile = AgentProfile::builder().capacity(1).build().unwrap();
        d.register_agent(AgentId::new(1), profile, now).unwrap();
        let total: u32 = weights.iter().map(|&w| u32::from(w)).sum();
        // As many dispatches as keep every key backlogged.
        let rounds = weights
            .iter()
            .enumerate()
            .map(|(k, &w)| backlog[k] / usize::from(w))
            .min()
            .unwrap_or(0)
            .min(150);
        let dispatches = rounds * total as usize;
        let mut served = vec![0usize; weights.len()];
        let mut next_in_key = vec![0usize; weights.len()];
        for _ in 0..dispatches {
            let Some(Action::Assign { task, agent, token, .. }) = d.poll_action() else {
                return Err(TestCaseError::fail("no assignment"));
            };
            let (key, n) = *d.payload(task).unwrap();
            if key != usize::MAX {
                prop_assert_eq!(n, next_in_key[key], "FIFO within key {}", key);
                next_in_key[key] += 1;
                served[key] += 1;
            }
            d.report(TaskReport { task, agent, token, outcome: AttemptOutcome::Success }, now).unwrap();
        }
        let keyed: usize = served.iter().sum();
        for (key, &weight) in weights.iter().enumerate() {
            let share = served[key] as f64 / keyed as f64;
            let expected = f64::from(weight) / f64::from(total);
            prop_assert!(
                (share - expected).abs() <= 0.1 * expected,
                "key {} of weight {} got {:.3}, expected {:.3}", key, weight, share, expected
            );
        }
    }
}

#[test]
fn a_key_with_ten_tasks_is_not_held_back_by_one_with_ten_thousand() {
    let mut d: Dispatcher<&str> = Dispatcher::new(DispatcherConfig::default());
    let now = Instant::ZERO;
    let big = (0..10_000).map(|_| TaskSpec::new("big").fairness("big", 1));
    let small = (0..10).map(|_| TaskSpec::new("small").fairness("small", 1));
    let results = d.submit_batch(big.chain(small), now);
    assert!(results.iter().all(Result::is_ok));
    let profile = AgentProfile::builder().capacity(1).build().unwrap();
    d.register_agent(AgentId::new(1), profile, now).unwrap();
    let mut small_done = 0;
    for _ in 0..20 {
        let Some(Action::Assign {
            task, agent, token, ..
        }) = d.poll_action()
        else {
            panic!("no assignment");
        };
        small_done += usize::from(d.payload(task) == Some(&"small"));
        let outcome = AttemptOutcome::Success;
        d.report(
            TaskReport {
                task,
                agent,
                token,
                outcome,
            },
            now,
        )
        .unwrap();
    }
    assert_eq!(small_done, 10);
}

#[test]
fn priority_and_aging_keep_their_meaning_across_keys() {
    let config = DispatcherConfig::builder()
        .aging_interval(Some(Duration::from_secs(10)))
        .build()
        .unwrap();
    let mut d: Dispatcher<&str> = Dispatcher::new(config);
    let t0 = Instant::ZERO;
    let _ = d.submit(
        TaskSpec::new("old-low")
            .priority(Priority::Low)
            .fairness("x", 1),
        t0,
    );
    let later = Instant::from_secs(19);
    for _ in 0..3 {
        let spec = TaskSpec::new("high")
            .priority(Priority::High)
            .fairness("y", 9);
        let _ = d.submit(spec, later);
    }
    let profile = AgentProfile::builder().capacity(1).build().unwrap();
    d.register_agent(AgentId::new(1), profile, later).unwrap();
    let Some(Action::Assign { task, .. }) = d.poll_action() else {
        panic!("no assignment");
    };
    // At 19 s the P3 task has aged to P2: the P1 key is served first,
    // whatever the weights.
    assert_eq!(d.payload(task), Some(&"high"));
    let mut d2: Dispatcher<&str> = Dispatcher::new(
        DispatcherConfig::builder()
            .aging_interval(Some(Duration::from_secs(10)))
            .build()
            .unwrap(),
    );
    let _ = d2.submit(
        TaskSpec::new("old-low")
            .priority(Priority::Low)
            .fairness("x", 1),
        t0,
    );
    let at = Instant::from_secs(30);
    let _ = d2.submit(
        TaskSpec::new("critical")
            .priority(Priority::Critical)
            .fairness("y", 9),
        at,
    );
    d2.register_agent(
        AgentId::new(1),
        AgentProfile::builder().capacity(1).build().unwrap(),
        at,
    )
    .unwrap();
    let Some(Action::Assign { task, .. }) = d2.poll_action() else {
        panic!("no assignment");
    };
    // At 30 s it has aged to P0 and wins on age over fresh P0 work.
    assert_eq!(d2.payload(task), Some(&"old-low"));
}

#[test]
fn superseded_holders_are_cancelled_and_their_reports_rejected() {
    for (policy, victim) in [(WhenFull::CancelOldest, 0), (WhenFull::CancelNewest, 1)] {
        let config = DispatcherConfig::builder()
            .concurrency_limit("report", ConcurrencyLimit::new(2).when_full(policy))
            .build()
            .unwrap();
        let mut d: Dispatcher<u32> = Dispatcher::new(config);
        let now = Instant::ZERO;
        let profile = AgentProfile::builder().capacity(5).build().unwrap();
        d.register_agent(AgentId::new(1), profile, now).unwrap();
        let mut assigned = Vec::new();
        for n in 0..2 {
            let task = d
                .submit(TaskSpec::new(n).concurrency_key("report"), now)
                .unwrap()
                .id();
            let Some(Action::Assign { agent, token, .. }) = d.poll_action() else {
                panic!("no assignment");
            };
            assigned.push((task, agent, token));
        }
        let newest = d
            .submit(TaskSpec::new(2).concurrency_key("report"), now)
            .unwrap()
            .id();
        let (task, agent, token) = assigned[victim];
        assert_eq!(
            d.poll_action(),
            Some(Action::Cancel {
                task,
                agent,
                token,
                reason: CancelReason::Superseded
            })
        );
        assert!(matches!(d.poll_action(), Some(Action::Assign { task, .. }) if task == newest));
        assert_eq!(d.task_state(task), Some(TaskState::Cancelled));
        let late = TaskReport {
            task,
            agent,
            token,
            outcome: AttemptOutcome::Success,
        };
        assert!(d.report(late, now).is_err());
    }
}

#[test]
fn a_full_key_holds_back_only_its_own_tasks() {
    let config = DispatcherConfig::builder()
        .concurrency_limit("openai", ConcurrencyLimit::new(1))
        .build()
        .unwrap();
    let mut d: Dispatcher<&str> = Dispatcher::new(config);
    let now = Instant::ZERO;
    let profile = AgentProfile::builder().capacity(3).build().unwrap();
    d.register_agent(AgentId::new(1), profile, now).unwrap();
    let first = d
        .submit(TaskSpec::new("a").concurrency_key("openai"), now)
        .unwrap()
        .id();
    let _ = d
        .submit(TaskSpec::new("b").concurrency_key("openai"), now)
        .unwrap();
    let other = d
        .submit(TaskSpec::new("c").concurrency_key("anthropic"), now)
        .unwrap()
        .id();
    let assigned: Vec<TaskId> = harness::drain(&mut d)
        .into_iter()
        .filter_map(|a| match a {
            Action::Assign { task, .. } => Some(task),
            _ => None,
        })
        .collect();
    assert_eq!(assigned, [first, other]);
    assert_eq!(d.queue_depth(Priority::Normal), 1);
}

#[test]
fn corrupt_key_state_in_a_snapshot_is_refused() {
    let mut host = Host::new();
    host.step(&Op::Register(1)).unwrap();
    for _ in 0..4 {
        host.step(&Op::Submit {
            keys: 1,
            priority: 2,
            cost: 1,
            tenant: 1,
        })
        .unwrap();
    }
    let value = serde_json::to_value(host.d.snapshot()).unwrap();
    type Corruption = (&'static str, fn(&mut serde_json::Value));
    let corruptions: [Corruption; 3] = [
        ("a holder dropped", |v| {
            v["state"]["key_gates"]["gates"][0]["running"] = serde_json::json!([]);
        }),
        ("a key forgotten", |v| {
            v["state"]["fair_keys"]["slots"] = serde_json::json!([]);
        }),
        ("a key gate removed", |v| {
            v["state"]["key_gates"]["gates"] = serde_json::json!([]);
        }),
    ];
    for (what, corrupt) in corruptions {
        let mut bad = value.clone();
        corrupt(&mut bad);
        let snapshot: Snapshot<u32> = serde_json::from_value(bad).unwrap();
        let result = Dispatcher::restore(config(), strategy(), snapshot);
        assert!(
            matches!(result, Err(SchedulerError::CorruptSnapshot { .. })),
            "{what}: {result:?}"
        );
    }
}
