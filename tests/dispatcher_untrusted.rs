//! The dispatcher under untrusted state and a host's clock: corrupted
//! snapshots, clocks that jump, step back, repeat and saturate, and extreme
//! settings. Each case runs under a watchdog thread, so a hang fails the test
//! instead of stalling it, and every step re-checks the state the strictest
//! way the crate knows: a snapshot of it must restore, and must come back
//! byte for byte through JSON.
//!
//! Case counts default low for CI; `PROPTEST_CASES` raises them.

#![cfg(feature = "serde")]

mod corrupt;
mod harness;

use corrupt::{PathStep, at_path, corrupt_leaf, paths_where, reshape_array, watchdog};
use harness::Clock;

use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::Value;
use taskweave::agent::Registry;
use taskweave::agent::{AgentProfile, AgentStatus};
use taskweave::resilience::{BreakerConfig, Bulkhead, Fixed, KeyedRateLimiter, Quota, RetryBudget};
use taskweave::routing::{
    Adaptive, CapabilityMatch, LeastLoaded, PowerOfTwoChoices, PriorityBased, Rendezvous,
    RoundRobin, RoutingError, RoutingStrategy, ScoreWeights, Scored, WeightedRoundRobin,
};
use taskweave::scheduler::{
    Action, AttemptOutcome, Dispatcher, DispatcherConfig, MAX_TERMINAL_HISTORY, SchedulerError,
    Snapshot, SubmitErrorKind, Submitted, TaskReport, TaskSpec, TaskState, TenantQuota,
};
use taskweave::{AgentId, AttemptToken, Instant, Priority, TaskRequirements, TenantId};

/// Actions one call may hand out before the watchdog calls it a runaway.
const ACTIONS_PER_CALL: usize = 10_000;

/// Every feature that keeps state in a snapshot is on.
fn config() -> DispatcherConfig {
    let mut bulkhead = Bulkhead::new(2).unwrap();
    bulkhead.set_limit("batch".to_string(), 1).unwrap();
    DispatcherConfig::builder()
        .aging_interval(Some(Duration::from_secs(2)))
        .heartbeats(Duration::from_secs(3), 2)
        .attempt_timeout(Duration::from_secs(8))
        .unroutable_timeout(Duration::from_secs(25))
        .retry_policy(Fixed::new(Duration::from_millis(500), 3).unwrap())
        .retry_budget(RetryBudget::builder().min_retries(5).build().unwrap())
        .circuit_breaker(
            BreakerConfig::builder()
                .consecutive_failures(2)
                .cooldown(Duration::from_secs(4))
                .probes(1)
                .build()
                .unwrap(),
        )
        .agent_rate_limit(Quota::new(5, Duration::from_secs(1)).unwrap())
        .kind_bulkhead(bulkhead)
        .kind_rate_limit(KeyedRateLimiter::new(
            Quota::new(4, Duration::from_secs(1)).unwrap(),
        ))
        .idempotency_window(Duration::from_secs(30))
        .preemption(true)
        .queue_capacity(60)
        .terminal_history(40)
        .tenant_quota(
            TenantId::new(1),
            TenantQuota::new()
                .live_tasks(4)
                .cost_rate(Quota::new(6, Duration::from_secs(1)).unwrap()),
        )
        .default_tenant_quota(TenantQuota::new().live_tasks(8))
        .build()
        .unwrap()
}

fn strategy() -> Box<dyn RoutingStrategy + Send> {
    Box::new(LeastLoaded::new())
}

/// One host input. Targets are picked among what the dispatcher shows, so
/// the same driver works on a dispatcher restored from anything.
#[derive(Clone, Debug)]
enum Op {
    Submit {
        priority: u8,
        gpu: bool,
        kind: Option<u8>,
        ttl: Option<u16>,
        key: Option<u8>,
        /// A tenant (1 under both quotas, 2 and 3 under the default) and
        /// a cost.
        tenant: Option<(u8, u8)>,
    },
    Register {
        gpu: bool,
        capacity: u32,
        /// Any finite cost: its decimal form must come back bit for bit.
        cost: f64,
    },
    Unregister(Index),
    SetStatus(Index, u8),
    Heartbeat(Index),
    Report(Index, u8),
    Cancel(Index),
    Clock(Clock),
}

/// How the host clock moves before a timer check.
fn clock() -> impl Strategy<Value = Clock> {
    harness::clock(Duration::from_secs(20), Duration::from_secs(50))
}

fn op(clocks: impl Strategy<Value = Clock>) -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0u8..4, any::<bool>(), proptest::option::of(0u8..3),
              proptest::option::weighted(0.3, 0u16..20_000), proptest::option::weighted(0.3, 0u8..6),
              proptest::option::weighted(0.5, (1u8..4, 0u8..4)))
            .prop_map(|(priority, gpu, kind, ttl, key, tenant)| Op::Submit { priority, gpu, kind, ttl, key, tenant }),
        1 => (any::<bool>(), 1u32..4, 0.0f64..1e9)
            .prop_map(|(gpu, capacity, cost)| Op::Register { gpu, capacity, cost }),
        1 => any::<Index>().prop_map(Op::Unregister),
        1 => (any::<Index>(), 0u8..4).prop_map(|(i, s)| Op::SetStatus(i, s)),
        1 => any::<Index>().prop_map(Op::Heartbeat),
        5 => (any::<Index>(), any::<u8>()).prop_map(|(i, o)| Op::Report(i, o)),
        1 => any::<Index>().prop_map(Op::Cancel),
        3 => clocks.prop_map(Op::Clock),
    ]
}

struct Host {
    now: Instant,
    /// Whether to check a step back against a twin (which needs the
    /// dispatcher to run with [`config`]).
    twin_checks: bool,
    next_agent: u64,
    submitted: u32,
}

fn pick<T: Copy>(items: &[T], index: &Index) -> Option<T> {
    (!items.is_empty()).then(|| items[index.index(items.len())])
}

/// Applies one op; an error of the dispatcher is an answer, not a failure.
fn drive(d: &mut Dispatcher<u32>, host: &mut Host, op: &Op) -> Result<(), String> {
    let agents: Vec<AgentId> = d.registry().iter().map(|r| r.id()).collect();
    let now = host.now;
    match op {
        Op::Submit {
            priority,
            gpu,
            kind,
            ttl,
            key,
            tenant,
        } => {
            let mut needs = TaskRequirements::new();
            if *gpu {
                needs = needs.require(["gpu"]);
            }
            if let Some(kind) = kind {
                needs = needs.kind(["batch", "chat", "index"][*kind as usize]);
            }
            let mut spec = TaskSpec::new(host.submitted)
                .priority(Priority::from_index(*priority as usize).unwrap_or_default())
                .requirements(needs);
            host.submitted += 1;
            if let Some(ttl) = ttl {
                spec = spec.ttl(Duration::from_millis(u64::from(*ttl)));
            }
            if let Some(key) = key {
                spec = spec.idempotency_key(format!("key-{key}"));
            }
            if let Some((tenant, cost)) = tenant {
                spec = spec
                    .tenant(TenantId::new(u64::from(*tenant)))
                    .cost(u32::from(*cost));
            }
            let _ = d.submit(spec, now);
        }
        Op::Register {
            gpu,
            capacity,
            cost,
        } => {
            let id = AgentId::new(host.next_agent);
            host.next_agent += 1;
            let caps: &[&str] = if *gpu { &["gpu", "cpu"] } else { &["cpu"] };
            let profile = AgentProfile::builder()
                .capabilities(caps.iter().copied())
                .capacity(*capacity)
                .cost_per_task(*cost)
                .build()
                .map_err(|e| e.to_string())?;
            let _ = d.register_agent(id, profile, now);
        }
        Op::Unregister(i) => {
            if let Some(agent) = pick(&agents, i) {
                let _ = d.unregister_agent(agent, now);
            }
        }
        Op::SetStatus(i, s) => {
            if let Some(agent) = pick(&agents, i) {
                let status = [
                    AgentStatus::Online,
                    AgentStatus::Draining,
                    AgentStatus::Offline,
                    AgentStatus::Unhealthy,
                ][*s as usize % 4];
                let _ = d.set_agent_status(agent, status, now);
            }
        }
        Op::Heartbeat(i) => {
            if let Some(agent) = pick(&agents, i) {
                let _ = d.heartbeat(agent, now);
            }
        }
        Op::Report(i, o) => {
            let running: Vec<(taskweave::TaskId, AgentId, AttemptToken)> = d
                .iter_live_tasks()
                .filter_map(|(task, state, ..)| match state {
                    TaskState::InFlight { agent, token, .. } => Some((task, agent, token)),
                    _ => None,
                })
                .collect();
            if let Some((task, agent, token)) = pick(&running, i) {
                let outcome = match o % 4 {
                    0 | 1 => AttemptOutcome::Success,
                    2 => AttemptOutcome::Failure {
                        reason: "boom".into(),
                        retryable: true,
                    },
                    _ => AttemptOutcome::Failure {
                        reason: "fatal".into(),
                        retryable: false,
                    },
                };
                let forged = o % 7 == 6;
                let token = if forged {
                    AttemptToken::new(token.get() ^ 0x5a5a)
                } else {
                    token
                };
                let result = d.report(
                    TaskReport {
                        task,
                        agent,
                        token,
                        outcome,
                    },
                    now,
                );
                if result.is_ok() == forged {
                    return Err(format!("report (forged: {forged}) gave {result:?}"));
                }
            }
        }
        Op::Cancel(i) => {
            let live: Vec<taskweave::TaskId> = d.iter_live_tasks().map(|t| t.0).collect();
            if let Some(task) = pick(&live, i) {
                d.cancel(task, now)
                    .map_err(|e| format!("cancel of a live task: {e}"))?;
            }
        }
        Op::Clock(clock) => {
            host.now = clock.apply(host.now, d.poll_timeout());
            // Agents beat now and then, so some are lost.
            if host.submitted % 2 == 0 {
                for &agent in &agents {
                    let _ = d.heartbeat(agent, host.now);
                }
            }
            drain(d)?;
            let latest = d.clock();
            if host.now < latest && host.twin_checks {
                // A step back is no time passing: the same as a tick at the
                // latest instant, checked on a twin restored from a snapshot.
                let json = serde_json::to_string(&d.snapshot()).map_err(|e| e.to_string())?;
                let snapshot: Snapshot<u32> =
                    serde_json::from_str(&json).map_err(|e| e.to_string())?;
                let mut twin = Dispatcher::restore(config(), strategy(), snapshot)
                    .map_err(|e| e.to_string())?;
                d.handle_timeout(host.now);
                twin.handle_timeout(latest);
                let ours = harness::drain(d);
                let theirs = harness::drain(&mut twin);
                let ours_state = serde_json::to_value(d.snapshot()).map_err(|e| e.to_string())?;
                let theirs_state =
                    serde_json::to_value(twin.snapshot()).map_err(|e| e.to_string())?;
                if ours != theirs || ours_state != theirs_state {
                    return Err(format!(
                        "a tick in the past differed from a tick at the latest instant: \
                         {ours:?} vs {theirs:?}; {}",
                        first_difference(&ours_state, &theirs_state, "")
                    ));
                }
            } else {
                d.handle_timeout(host.now);
            }
        }
    }
    drain(d).map(drop)
}

/// Takes every pending action, checking each assignment, and counts them.
fn drain(d: &mut Dispatcher<u32>) -> Result<usize, String> {
    let actions = harness::drain_within(d, ACTIONS_PER_CALL)?;
    for action in &actions {
        if let Action::Assign { agent, .. } = *action {
            let status = d.registry().get(agent).map(|r| r.status());
            if status != Some(AgentStatus::Online) {
                return Err(format!("assigned to {agent} in status {status:?}"));
            }
        }
    }
    Ok(actions.len())
}

/// The state restores from its own snapshot — every check of `restore`
/// holds — and that snapshot survives JSON byte for byte.
fn invariants(d: &Dispatcher<u32>) -> Result<(), String> {
    let json = serde_json::to_string(&d.snapshot()).map_err(|e| e.to_string())?;
    let snapshot: Snapshot<u32> = serde_json::from_str(&json).map_err(|e| e.to_string())?;
    let restored = Dispatcher::restore(config(), strategy(), snapshot)
        .map_err(|e| format!("a dispatcher's own snapshot was refused: {e}"))?;
    let again = serde_json::to_string(&restored.snapshot()).map_err(|e| e.to_string())?;
    if serde_json::from_str::<Value>(&again).ok() != serde_json::from_str::<Value>(&json).ok() {
        let (a, b): (Value, Value) = (
            serde_json::from_str(&json).map_err(|e| e.to_string())?,
            serde_json::from_str(&again).map_err(|e| e.to_string())?,
        );
        return Err(format!(
            "the snapshot did not survive a JSON round trip exactly: {}",
            first_difference(&a, &b, "")
        ));
    }
    if d.poll_timeout() == Some(Instant::MAX) {
        return Err("poll_timeout reported a timer that never fires".into());
    }
    let mut live_of = std::collections::BTreeMap::<TenantId, u32>::new();
    for (task, state, ..) in d.iter_live_tasks() {
        if state.is_terminal() {
            return Err(format!("live task {task} is {state:?}"));
        }
        if let Some(tenant) = d.tenant(task) {
            *live_of.entry(tenant).or_default() += 1;
        }
    }
    for tenant in (1..4).map(TenantId::new) {
        let (counted, live) = (d.tenant_live_tasks(tenant), live_of.get(&tenant).copied());
        if counted != live.unwrap_or(0) {
            return Err(format!(
                "{tenant} counts {counted} live tasks, has {live:?}"
            ));
        }
    }
    Ok(())
}

/// Where two JSON values first differ, as a path with both sides.
fn first_difference(a: &Value, b: &Value, path: &str) -> String {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (key, value) in x {
                if y.get(key) != Some(value) {
                    let other = y.get(key).unwrap_or(&Value::Null);
                    return first_difference(value, other, &format!("{path}.{key}"));
                }
            }
            format!("{path}: the same values, with keys in another order")
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find(|(_, (p, q))| p != q)
            .map_or(format!("{path}: equal"), |(i, (p, q))| {
                first_difference(p, q, &format!("{path}[{i}]"))
            }),
        _ => format!("{path}: {a} vs {b}"),
    }
}

/// A dispatcher after `ops`, with the host that drove it.
fn busy(ops: &[Op]) -> Result<(Dispatcher<u32>, Host), String> {
    let mut d = Dispatcher::new(config());
    let mut host = Host {
        now: Instant::from_secs(1),
        twin_checks: true,
        next_agent: 0,
        submitted: 0,
    };
    for op in ops {
        drive(&mut d, &mut host, op)?;
    }
    Ok((d, host))
}

/// Reads `value` as a snapshot and restores it: refused by serde or with
/// a typed error, or the restored dispatcher keeps its invariants through
/// `after`, driven by `host`.
fn restore_and_run(value: Value, mut host: Host, after: &[Op]) -> Result<&'static str, String> {
    let Ok(snapshot) = serde_json::from_value::<Snapshot<u32>>(value) else {
        return Ok("refused by serde");
    };
    let mut restored = match Dispatcher::restore(config(), strategy(), snapshot) {
        Ok(restored) => restored,
        Err(
            SchedulerError::CorruptSnapshot { .. }
            | SchedulerError::SnapshotVersion { .. }
            | SchedulerError::ConfigMismatch { .. },
        ) => {
            return Ok("refused by restore");
        }
        Err(other) => return Err(format!("unexpected error kind: {other}")),
    };
    run_on(&mut restored, &mut host, after)?;
    Ok("ran on")
}

/// Checks a restored dispatcher's invariants, then drives it through
/// `after`, checking them after each operation.
fn run_on(d: &mut Dispatcher<u32>, host: &mut Host, after: &[Op]) -> Result<(), String> {
    invariants(d)?;
    for op in after {
        drive(d, host, op)?;
        invariants(d)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(corrupt::config(48))]

    /// A corrupted snapshot is refused with a typed error, or the restored
    /// dispatcher runs on: no panic, no hang, invariants intact.
    #[test]
    fn corrupted_snapshots_are_refused_or_run_safely(
        ops in proptest::collection::vec(op(clock()), 10..70),
        edits in proptest::collection::vec((any::<Index>(), any::<u8>(), any::<u64>()), 1..4),
        after in proptest::collection::vec(op(clock()), 0..120),
    ) {
        let outcome = watchdog(60, move || -> Result<&'static str, String> {
            let (d, host) = busy(&ops)?;
            let mut value = serde_json::to_value(d.snapshot()).map_err(|e| e.to_string())?;
            let paths = paths_where(&value, |v| v.is_number() || v.is_boolean());
            for (at, how, noise) in &edits {
                let Some(path) = pick_path(&paths, at) else { continue };
                let leaf = at_path(&mut value, path);
                *leaf = corrupt_leaf(leaf, *how, *noise);
            }
            restore_and_run(value, host, &after)
        });
        outcome.map_err(TestCaseError::fail)?;
    }

    /// A snapshot whose rows and lists are reshaped (a task's row or a
    /// queue entry shortened, lengthened, reordered, emptied or made an
    /// object) is refused with a typed error, or the restored dispatcher
    /// runs on: no panic, no hang, invariants intact.
    #[test]
    fn reshaped_snapshots_are_refused_or_run_safely(
        ops in proptest::collection::vec(op(clock()), 10..70),
        edits in proptest::collection::vec((any::<Index>(), any::<u8>(), any::<u64>()), 1..3),
        after in proptest::collection::vec(op(clock()), 0..120),
    ) {
        let outcome = watchdog(60, move || -> Result<&'static str, String> {
            let (d, host) = busy(&ops)?;
            let mut value = serde_json::to_value(d.snapshot()).map_err(|e| e.to_string())?;
            for (at, how, noise) in &edits {
                // Found again after each edit, which may move what it holds.
                let paths = paths_where(&value, corrupt::non_empty_array);
                let Some(path) = pick_path(&paths, at) else { continue };
                let array = at_path(&mut value, path);
                *array = reshape_array(array, *how, *noise);
            }
            restore_and_run(value, host, &after)
        });
        outcome.map_err(TestCaseError::fail)?;
    }

    /// A task slab's id floor (a leader rebuilt from a backup raises it;
    /// no generated state has one) set to any JSON value: a number a
    /// `u32` holds restores, the next task takes a generation at or past
    /// it, and the dispatcher runs on with its invariants; any other value
    /// is refused by serde. No panic, no hang.
    #[test]
    fn any_id_floor_in_a_snapshot_is_refused_or_run_safely(
        ops in proptest::collection::vec(op(clock()), 10..70),
        floor in prop_oneof![
            4 => extreme_u32().prop_map(Value::from),
            1 => any::<i64>().prop_map(Value::from),
            1 => Just(Value::from(u64::MAX)),
            1 => Just(Value::from(1.5)),
            1 => Just(Value::Null),
        ],
        after in proptest::collection::vec(op(clock()), 0..120),
    ) {
        let outcome = watchdog(60, move || -> Result<(), String> {
            let (d, mut host) = busy(&ops)?;
            let mut value = serde_json::to_value(d.snapshot()).map_err(|e| e.to_string())?;
            let slabs = paths_where(&value, |v| v.get("slots").is_some() && v.get("retired").is_some());
            let [slab] = slabs.as_slice() else {
                return Err(format!("expected one task slab in the snapshot, found {}", slabs.len()));
            };
            at_path(&mut value, slab)["floor"] = floor.clone();
            let fits = floor.as_u64().and_then(|f| u32::try_from(f).ok());
            let read = serde_json::from_value::<Snapshot<u32>>(value);
            let (snapshot, floor) = match (read, fits) {
                (Ok(snapshot), Some(floor)) => (snapshot, floor),
                (Err(_), None) => return Ok(()),
                (Ok(_), None) => return Err(format!("a floor of {floor} was read")),
                (Err(e), Some(_)) => return Err(format!("a floor of {floor} was refused: {e}")),
            };
            let mut restored = Dispatcher::restore(config(), strategy(), snapshot)
                .map_err(|e| format!("a floor of {floor} was refused: {e}"))?;
            if let Ok(Submitted::New(task)) = restored.submit(TaskSpec::new(u32::MAX), host.now) {
                let generation = task.get() >> 32;
                if generation < u64::from(floor) {
                    return Err(format!("{task} is below the floor {floor}"));
                }
            }
            run_on(&mut restored, &mut host, &after)
        });
        outcome.map_err(TestCaseError::fail)?;
    }

    /// A stored configuration (a cluster keeps one in its database) with
    /// numbers and switches corrupted is refused by serde or by the
    /// builder's checks, or reads back to one a dispatcher runs with: no
    /// panic, no hang, and its own snapshots restore under it.
    #[test]
    fn corrupted_stored_configurations_are_refused_or_run(
        edits in proptest::collection::vec((any::<Index>(), any::<u8>(), any::<u64>()), 1..4),
        ops in proptest::collection::vec(op(clock()), 0..60),
    ) {
        let outcome = watchdog(60, move || -> Result<&'static str, String> {
            let mut value = serde_json::to_value(config()).map_err(|e| e.to_string())?;
            let paths = paths_where(&value, |v| v.is_number() || v.is_boolean());
            for (at, how, noise) in &edits {
                let Some(path) = pick_path(&paths, at) else { continue };
                let leaf = at_path(&mut value, path);
                *leaf = corrupt_leaf(leaf, *how, *noise);
            }
            let Ok(read) = serde_json::from_value::<DispatcherConfig>(value) else {
                return Ok("refused");
            };
            let stored = serde_json::to_value(&read).map_err(|e| e.to_string())?;
            let again: DispatcherConfig =
                serde_json::from_value(stored.clone()).map_err(|e| e.to_string())?;
            if serde_json::to_value(&again).map_err(|e| e.to_string())? != stored {
                return Err("a configuration read back writes another".into());
            }
            let mut d = Dispatcher::new(read.clone());
            let mut host = Host { now: Instant::ZERO, twin_checks: false, next_agent: 0, submitted: 0 };
            for op in &ops {
                drive(&mut d, &mut host, op)?;
            }
            Dispatcher::restore(read, strategy(), d.snapshot())
                .map_err(|e| format!("a snapshot under the read configuration was refused: {e}"))?;
            Ok("ran")
        });
        outcome.map_err(TestCaseError::fail)?;
    }

    /// Clocks that jump, step back, repeat and reach `Instant::MAX`: no
    /// panic, no hang, a backward step fires nothing new, and the state
    /// stays one a snapshot can restore.
    #[test]
    fn random_clocks_keep_the_dispatcher_sound(
        ops in proptest::collection::vec(op(clock()), 1..150),
    ) {
        let outcome = watchdog(60, move || -> Result<(), String> {
            let mut d = Dispatcher::new(config());
            let mut host = Host { now: Instant::ZERO, twin_checks: true, next_agent: 0, submitted: 0 };
            for op in &ops {
                drive(&mut d, &mut host, op)?;
                invariants(&d)?;
            }
            Ok(())
        });
        outcome.map_err(TestCaseError::fail)?;
    }

    /// Extreme settings are refused with a typed error, or work.
    #[test]
    fn extreme_settings_are_refused_or_work(
        sizes in proptest::collection::vec(prop_oneof![Just(0usize), Just(1), Just(usize::MAX), Just(MAX_TERMINAL_HISTORY), Just(MAX_TERMINAL_HISTORY + 1), 2usize..100], 2),
        durations in proptest::collection::vec(prop_oneof![Just(Duration::ZERO), Just(Duration::from_nanos(1)), Just(Duration::MAX), Just(Duration::from_secs(u64::MAX)), (1u64..10_000).prop_map(Duration::from_millis)], 5),
        share in prop_oneof![Just(f64::NAN), Just(f64::INFINITY), Just(f64::NEG_INFINITY), Just(-0.5), Just(1.0), Just(0.0), 0.0f64..1.0],
        tolerance in prop_oneof![Just(0u32), Just(1), Just(u32::MAX)],
        ops in proptest::collection::vec(op(clock()), 0..60),
    ) {
        let outcome = watchdog(60, move || -> Result<(), String> {
            let built = DispatcherConfig::builder()
                .queue_capacity(sizes[0])
                .terminal_history(sizes[1])
                .aging_interval(Some(durations[0]))
                .idempotency_window(durations[1])
                .heartbeats(durations[2], tolerance)
                .attempt_timeout(durations[3])
                .unroutable_timeout(durations[4])
                .reserved_share(share)
                .build();
            let config = match built {
                Ok(config) => config,
                Err(SchedulerError::InvalidConfig { .. }) => return Ok(()),
                Err(other) => return Err(format!("unexpected error kind: {other}")),
            };
            let mut d: Dispatcher<u32> = Dispatcher::new(config);
            let mut host = Host { now: Instant::ZERO, twin_checks: false, next_agent: 0, submitted: 0 };
            for op in &ops {
                drive(&mut d, &mut host, op)?;
            }
            Ok(())
        });
        outcome.map_err(TestCaseError::fail)?;
    }
}

fn extreme_u32() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0u32),
        Just(1),
        Just(u32::MAX),
        Just(u32::MAX - 1),
        2u32..100
    ]
}

fn extreme_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(-1.0),
        Just(-0.0),
        Just(0.0),
        Just(1.0),
        Just(f64::MAX),
        Just(f64::MIN_POSITIVE),
        0.0f64..10.0,
    ]
}

/// Every routing strategy, each built from the extreme settings given where
/// it takes any: a refused setting must be the typed error.
fn strategies(
    settings: &[f64; 6],
    latency_target: Duration,
) -> Result<Vec<Box<dyn RoutingStrategy + Send>>, String> {
    let mut built: Vec<Box<dyn RoutingStrategy + Send>> = vec![
        Box::new(LeastLoaded::new()),
        Box::new(RoundRobin::new()),
        Box::new(WeightedRoundRobin::new()),
        Box::new(PowerOfTwoChoices::new(settings[0].to_bits())),
        Box::new(PriorityBased::new()),
        Box::new(CapabilityMatch::new()),
        Box::new(Rendezvous::new()),
        Box::new(Scored::new()),
        Box::new(Adaptive::new()),
    ];
    let weights = ScoreWeights {
        skill: settings[0],
        availability: settings[1],
        performance: settings[2],
        cost: settings[3],
    };
    let results: [Result<Box<dyn RoutingStrategy + Send>, RoutingError>; 3] = [
        Rendezvous::with_load_bound(settings[4]).map(|s| Box::new(s) as _),
        Scored::with_weights(weights).map(|s| Box::new(s) as _),
        Adaptive::with_parameters(settings[5], latency_target).map(|s| Box::new(s) as _),
    ];
    for result in results {
        match result {
            Ok(strategy) => built.push(strategy),
            Err(RoutingError::InvalidParameter { .. }) => {}
            Err(other) => return Err(format!("unexpected error kind: {other}")),
        }
    }
    Ok(built)
}

proptest! {
    #![proptest_config(corrupt::config(24))]

    /// Extreme agent profiles, latency smoothing and strategy settings are
    /// refused with a typed error, or route under every strategy without a
    /// panic or a hang.
    #[test]
    fn extreme_profiles_and_strategy_settings_are_refused_or_work(
        profiles in proptest::collection::vec(
            (extreme_u32(), extreme_u32(), extreme_u32(), extreme_f64()), 1..5),
        settings in proptest::array::uniform6(extreme_f64()),
        latency_target in prop_oneof![
            Just(Duration::ZERO), Just(Duration::MAX), (1u64..5_000).prop_map(Duration::from_millis)],
        smoothing in extreme_f64(),
        ops in proptest::collection::vec(op(clock()), 0..40),
    ) {
        let outcome = watchdog(60, move || -> Result<(), String> {
            let accepted = Registry::with_smoothing(smoothing).is_ok();
            if accepted != (smoothing > 0.0 && smoothing <= 1.0) {
                return Err(format!("smoothing {smoothing} accepted: {accepted}"));
            }
            for strategy in strategies(&settings, latency_target)? {
                let mut d = Dispatcher::with_strategy(config(), strategy);
                for (i, &(capacity, weight, priority, cost)) in profiles.iter().enumerate() {
                    let built = AgentProfile::builder()
                        .capabilities(["gpu", "cpu"])
                        .capacity(capacity)
                        .weight(weight)
                        .priority(priority)
                        .cost_per_task(cost)
                        .build();
                    let valid = capacity > 0 && weight > 0 && cost.is_finite() && cost >= 0.0;
                    match built {
                        Ok(profile) if valid => {
                            d.register_agent(AgentId::new(1_000 + i as u64), profile, Instant::ZERO)
                                .map_err(|e| e.to_string())?;
                        }
                        Err(_) if !valid => {}
                        other => return Err(format!("profile {capacity}/{weight}/{cost}: {other:?}")),
                    }
                }
                let mut host = Host { now: Instant::ZERO, twin_checks: false, next_agent: 0, submitted: 0 };
                for op in &ops {
                    drive(&mut d, &mut host, op)?;
                }
            }
            Ok(())
        });
        outcome.map_err(TestCaseError::fail)?;
    }
}

fn pick_path<'a>(paths: &'a [Vec<PathStep>], at: &Index) -> Option<&'a Vec<PathStep>> {
    (!paths.is_empty()).then(|| &paths[at.index(paths.len())])
}

fn one_agent(capacity: u32) -> Dispatcher<&'static str> {
    let mut d = Dispatcher::new(
        DispatcherConfig::builder()
            .retry_policy(Fixed::new(Duration::from_secs(1), 5).unwrap())
            .build()
            .unwrap(),
    );
    let profile = AgentProfile::builder().capacity(capacity).build().unwrap();
    d.register_agent(AgentId::new(1), profile, Instant::ZERO)
        .unwrap();
    d
}

fn assigned(d: &mut Dispatcher<&'static str>) -> Vec<(AgentId, AttemptToken)> {
    harness::drain(d)
        .into_iter()
        .filter_map(|a| match a {
            Action::Assign { agent, token, .. } => Some((agent, token)),
            _ => None,
        })
        .collect()
}

/// One agent of capacity 1 and one task with a 5 s TTL, submitted at zero.
fn one_task_with_a_five_second_ttl() -> (Dispatcher<&'static str>, taskweave::TaskId) {
    let mut d = one_agent(1);
    let spec = TaskSpec::new("t").ttl(Duration::from_secs(5));
    let task = d.submit(spec, Instant::ZERO).unwrap().id();
    (d, task)
}

#[test]
fn a_ttl_that_ran_out_while_the_task_ran_expires_it_when_it_is_requeued() {
    let (mut d, task) = one_task_with_a_five_second_ttl();
    assert_eq!(assigned(&mut d).len(), 1);
    // The TTL timer fires while the task runs: nothing happens yet.
    d.handle_timeout(Instant::from_secs(6));
    assert!(matches!(
        d.task_state(task),
        Some(TaskState::InFlight { .. })
    ));
    // The agent goes offline at 10 s: the task would wait again, past its TTL.
    d.set_agent_status(
        AgentId::new(1),
        AgentStatus::Offline,
        Instant::from_secs(10),
    )
    .unwrap();
    assert_eq!(d.task_state(task), Some(TaskState::Expired));
    assert_eq!(d.live_tasks(), 0);
}

#[test]
fn a_ttl_that_ran_out_before_a_retry_expires_the_task_instead() {
    let (mut d, task) = one_task_with_a_five_second_ttl();
    let (agent, token) = assigned(&mut d)[0];
    let failure = AttemptOutcome::Failure {
        reason: "flaky".into(),
        retryable: true,
    };
    let report = TaskReport {
        task,
        agent,
        token,
        outcome: failure,
    };
    d.report(report, Instant::from_secs(7)).unwrap();
    assert_eq!(d.task_state(task), Some(TaskState::Expired));
    assert_eq!(d.live_tasks(), 0);
}

#[test]
fn a_rejected_report_changes_nothing_but_its_counter() {
    let mut d = one_agent(2);
    let task = d
        .submit(TaskSpec::new("t"), Instant::from_secs(1))
        .unwrap()
        .id();
    let (agent, token) = assigned(&mut d)[0];
    let before = serde_json::to_value(d.snapshot()).unwrap();
    let forged = TaskReport {
        task,
        agent,
        token: AttemptToken::new(token.get() + 77),
        outcome: AttemptOutcome::Success,
    };
    assert!(d.report(forged, Instant::from_secs(1_000)).is_err());
    let mut after = serde_json::to_value(d.snapshot()).unwrap();
    let counter = &mut after["state"]["recorder"]["counters"]["rejected_reports"];
    assert_eq!(*counter, Value::from(1));
    *counter = Value::from(0);
    assert_eq!(after, before);
}

#[test]
fn timers_at_instant_max_never_fire_and_the_clock_may_reach_it() {
    let mut d = Dispatcher::new(
        DispatcherConfig::builder()
            .heartbeats(Duration::from_secs(1), 3)
            .build()
            .unwrap(),
    );
    let profile = AgentProfile::builder().capacity(1).build().unwrap();
    d.register_agent(AgentId::new(1), profile, Instant::ZERO)
        .unwrap();
    d.heartbeat(AgentId::new(1), Instant::MAX).unwrap();
    let task = d
        .submit(TaskSpec::new("t").ttl(Duration::MAX), Instant::MAX)
        .unwrap()
        .id();
    d.handle_timeout(Instant::MAX);
    d.handle_timeout(Instant::MAX);
    // The agent beat at MAX: its silence never ends, so it is not lost.
    let status = d.registry().get(AgentId::new(1)).map(|r| r.status());
    assert_eq!(status, Some(AgentStatus::Online));
    assert!(matches!(
        d.task_state(task),
        Some(TaskState::InFlight { .. })
    ));
    assert_eq!(d.poll_timeout(), None);
}

#[test]
fn a_clock_that_steps_back_counts_as_no_time_passing() {
    let mut d = one_agent(1);
    let first = d
        .submit(
            TaskSpec::new("a").ttl(Duration::from_secs(5)),
            Instant::from_secs(100),
        )
        .unwrap()
        .id();
    let second = d
        .submit(
            TaskSpec::new("b").ttl(Duration::from_secs(5)),
            Instant::from_secs(3),
        )
        .unwrap()
        .id();
    // The second task was submitted "at 3 s" after 100 s: it counts as 100 s,
    // so its TTL runs to 105 s, not 8 s.
    d.handle_timeout(Instant::from_secs(50));
    assert_eq!(d.task_state(second), Some(TaskState::Queued));
    d.handle_timeout(Instant::from_secs(105));
    assert_eq!(d.task_state(second), Some(TaskState::Expired));
    assert!(matches!(
        d.task_state(first),
        Some(TaskState::InFlight { .. })
    ));
}

#[test]
fn extreme_sizes_are_refused_where_they_could_overflow() {
    let refused = DispatcherConfig::builder()
        .terminal_history(usize::MAX)
        .build();
    assert!(matches!(
        refused,
        Err(SchedulerError::InvalidConfig {
            setting: "terminal history",
            ..
        })
    ));
    let mut d: Dispatcher<u32> = Dispatcher::new(
        DispatcherConfig::builder()
            .terminal_history(MAX_TERMINAL_HISTORY)
            .build()
            .unwrap(),
    );
    let task = d.submit(TaskSpec::new(1), Instant::ZERO).unwrap().id();
    d.cancel(task, Instant::ZERO).unwrap();
    assert_eq!(d.task_state(task), Some(TaskState::Cancelled));
    let zero = d.submit(
        TaskSpec::new(2).attempt_timeout(Duration::ZERO),
        Instant::ZERO,
    );
    assert_eq!(zero.unwrap_err().kind, SubmitErrorKind::ZeroAttemptTimeout);
}

#[test]
fn corrupt_snapshots_name_the_field_at_fault() {
    let (d, _) = busy(&[
        Op::Register {
            gpu: true,
            capacity: 3,
            cost: 0.1 + 0.2,
        },
        Op::Register {
            gpu: false,
            capacity: 2,
            cost: 1.0 / 3.0,
        },
        Op::Submit {
            priority: 1,
            gpu: true,
            kind: None,
            ttl: None,
            key: Some(1),
            tenant: Some((1, 2)),
        },
        Op::Submit {
            priority: 2,
            gpu: false,
            kind: None,
            ttl: Some(900),
            key: None,
            tenant: None,
        },
        Op::Submit {
            priority: 0,
            gpu: true,
            kind: Some(1),
            ttl: None,
            key: None,
            tenant: Some((2, 1)),
        },
    ])
    .unwrap();
    let json = serde_json::to_value(d.snapshot()).unwrap();
    let restore = |edit: &dyn Fn(&mut Value)| {
        let mut value = json.clone();
        edit(&mut value);
        match serde_json::from_value::<Snapshot<u32>>(value) {
            Ok(snapshot) => Dispatcher::restore(config(), strategy(), snapshot)
                .err()
                .map(|e| e.to_string()),
            Err(e) => Some(format!("serde: {e}")),
        }
    };
    assert_eq!(restore(&|_| {}), None);
    let version = restore(&|v| v["version"] = Value::from(99)).unwrap();
    assert!(version.contains("format 99"), "{version}");
    let next_token = restore(&|v| v["state"]["next_token"] = Value::from(0)).unwrap();
    assert!(next_token.contains("token"), "{next_token}");
    let next_seq = restore(&|v| v["state"]["next_seq"] = Value::from(1)).unwrap();
    assert!(next_seq.contains("seq"), "{next_seq}");
    let load = restore(&|v| v["state"]["registry"]["agents"][0]["load"] = Value::from(0)).unwrap();
    assert!(load.contains("load"), "{load}");
    let in_flight = restore(&|v| v["state"]["in_flight"] = Value::Array(Vec::new())).unwrap();
    assert!(in_flight.contains("in_flight"), "{in_flight}");
    let rates = restore(&|v| v["state"]["tenant_rates"]["1"]["quota"]["burst"] = Value::from(5));
    assert!(rates.is_some_and(|e| e.contains("tenant_rates")));
    let rates =
        restore(&|v| v["state"]["tenant_rates"]["1"]["state"]["latest"] = Value::from(u64::MAX));
    assert!(rates.is_some_and(|e| e.contains("tenant_rates")));
    let rates =
        restore(&|v| v["state"]["tenant_rates"]["2"] = v["state"]["tenant_rates"]["1"].clone());
    assert!(
        rates.is_some_and(|e| e.contains("tenant_rates")),
        "tenant-2 has no cost rate"
    );
    let keys = restore(&|v| v["state"]["idempotency"] = Value::Array(Vec::new())).unwrap();
    assert!(keys.contains("idempotency"), "{keys}");
    let gates =
        restore(&|v| v["state"]["gates"]["bulkhead"]["in_flight"] = serde_json::json!({})).unwrap();
    assert!(gates.contains("bulkhead"), "{gates}");
    let window = restore(&|v| {
        v["state"]["recorder"]["completions"] = serde_json::to_value(
            taskweave::metrics::Throughput::new(Duration::from_secs(60), 6).unwrap(),
        )
        .unwrap()
    })
    .unwrap();
    assert!(window.contains("recorder"), "{window}");
}

#[test]
fn a_finished_record_holds_only_a_final_state() {
    let mut d = one_agent(1);
    let now = Instant::ZERO;
    let task = d.submit(TaskSpec::new("done"), now).unwrap().id();
    assert_eq!(d.cancel(task, now), Ok("done"));
    let text = serde_json::to_string(&d.snapshot()).unwrap();
    let record = r#"{"Finished":"Cancelled"}"#;
    assert!(text.contains(record), "the record is stored as its state");
    let read = |text: &str| serde_json::from_str::<Snapshot<&str>>(text).map(drop);
    assert!(read(&text).is_ok());
    // A record is read back only as one of the four final states.
    for live in [r#""Queued""#, r#"{"Delayed":{"until":5}}"#] {
        let forged = text.replace(record, &format!(r#"{{"Finished":{live}}}"#));
        assert!(read(&forged).is_err(), "{live} read back as a record");
    }
}

#[test]
fn rate_limiters_and_breakers_that_saw_past_the_clock_are_refused() {
    let mut d: Dispatcher<u32> = Dispatcher::with_strategy(config(), strategy());
    let profile = AgentProfile::builder().capacity(2).build().unwrap();
    d.register_agent(AgentId::new(1), profile, Instant::ZERO)
        .unwrap();
    let batch = TaskRequirements::new().kind("batch");
    let now = Instant::from_secs(10);
    let _ = d.submit(TaskSpec::new(1).requirements(batch), now).unwrap();
    assert!(matches!(d.poll_action(), Some(Action::Assign { .. })));
    let value = serde_json::to_value(d.snapshot()).unwrap();
    // Every instant a rate limiter or breaker has seen (a sliding window's
    // `latest` is a bucket number, checked when it is read).
    let mut gates = value["state"]["gates"].clone();
    let seen: Vec<Vec<PathStep>> = paths_where(&gates, |_| true)
        .into_iter()
        .filter(|path| matches!(path.last(), Some(PathStep::Key(key)) if key == "latest"))
        .filter(|path| {
            at_path(&mut gates, &path[..path.len() - 1])
                .get("width")
                .is_none()
        })
        .collect();
    assert_eq!(seen.len(), 4, "agent and kind limiters, breaker: {seen:?}");
    for path in &seen {
        let mut bad = value.clone();
        // A day past the clock: well-formed, only too late.
        *at_path(&mut bad["state"]["gates"], path) = Value::from(86_400_000_000_000_u64);
        let snapshot: Snapshot<u32> = serde_json::from_value(bad).unwrap();
        let restored = Dispatcher::restore(config(), strategy(), snapshot);
        assert!(
            matches!(restored, Err(SchedulerError::CorruptSnapshot { .. })),
            "{path:?}: {restored:?}"
        );
    }
    // The clock itself is not corrupt: the snapshot as taken restores.
    let snapshot: Snapshot<u32> = serde_json::from_value(value).unwrap();
    assert!(Dispatcher::restore(config(), strategy(), snapshot).is_ok());
}

/// The idempotency keys and their expiry queue must name the same keys,
/// each once: a queue that repeats a key (while the map holds one more), a
/// key that names another key's task, and a queue key the map lacks are
/// each refused.
#[test]
fn idempotency_keys_that_disagree_with_their_queue_are_refused() {
    let mut d: Dispatcher<u32> = Dispatcher::with_strategy(config(), strategy());
    let now = Instant::from_secs(1);
    for (n, key) in ["alpha", "beta"].into_iter().enumerate() {
        let _ = d
            .submit(TaskSpec::new(n as u32).idempotency_key(key), now)
            .unwrap();
    }
    let json = serde_json::to_value(d.snapshot()).unwrap();
    let restore = |edit: &dyn Fn(&mut Value)| {
        let mut value = json.clone();
        edit(&mut value);
        let snapshot = serde_json::from_value::<Snapshot<u32>>(value).unwrap();
        Dispatcher::restore(config(), strategy(), snapshot)
            .err()
            .map(|e| e.to_string())
    };
    assert_eq!(restore(&|_| {}), None);
    let queue = |v: &mut Value| {
        v["state"]["idempotency_expiry"]
            .as_array_mut()
            .unwrap()
            .clone()
    };
    let repeated = restore(&|v| {
        let mut q = queue(v);
        q[1] = q[0].clone();
        v["state"]["idempotency_expiry"] = Value::Array(q);
    });
    assert!(repeated.is_some_and(|e| e.contains("idempotency")));
    let shared_task = restore(&|v| {
        let pairs = v["state"]["idempotency"].as_array_mut().unwrap();
        let first_task = pairs[0][1].clone();
        pairs[1][1] = first_task;
    });
    assert!(shared_task.is_some_and(|e| e.contains("idempotency")));
    let unknown = restore(&|v| {
        let mut q = queue(v);
        q[0][1] = Value::from("gamma");
        v["state"]["idempotency_expiry"] = Value::Array(q);
    });
    assert!(unknown.is_some_and(|e| e.contains("idempotency")));
    let stray_fingerprint = restore(&|v| {
        v["state"]["idempotency_fingerprints"] = serde_json::json!([["gamma", 7]]);
    });
    assert!(stray_fingerprint.is_some_and(|e| e.contains("idempotency_fingerprints")));
    // A key expiring later than one submitted at the state's clock would:
    // the next key joins the queue behind it, out of order, and the
    // dispatcher's own next snapshot would be refused (found by
    // `corrupted_snapshots_are_refused_or_run_safely`).
    let window = Duration::from_secs(30); // config()'s idempotency window
    let at = |v: &Value| Instant::from_nanos(v["state"]["clock"].as_u64().unwrap());
    let last_at = |v: &Value, nanos: u64| {
        let mut q = queue(&mut v.clone());
        q[1][0] = Value::from(nanos);
        q
    };
    let beyond = restore(&|v| {
        let latest = at(v).saturating_add(window).as_nanos();
        v["state"]["idempotency_expiry"] = Value::Array(last_at(v, latest + 1));
    });
    assert!(beyond.is_some_and(|e| e.contains("idempotency_expiry")));
    let at_the_edge = restore(&|v| {
        let latest = at(v).saturating_add(window).as_nanos();
        v["state"]["idempotency_expiry"] = Value::Array(last_at(v, latest));
    });
    assert_eq!(at_the_edge, None);
}

/// An attempt in flight under a timeout must have its timer, due at its
/// start plus the timeout: a snapshot that lost it (or moved it, or the
/// start past the clock) would leave the task waiting for ever on an agent
/// that heartbeats and never reports. Found by
/// `corrupted_snapshots_with_keys_are_refused_or_run_safely`.
#[test]
fn an_attempt_in_flight_without_its_timer_is_refused() {
    let config = || {
        DispatcherConfig::builder()
            .attempt_timeout(Duration::from_secs(8))
            .build()
            .unwrap()
    };
    let mut d = Dispatcher::new(config());
    let profile = AgentProfile::builder().capacity(1).build().unwrap();
    d.register_agent(AgentId::new(1), profile, Instant::ZERO)
        .unwrap();
    let submitted = d.submit(TaskSpec::new(String::from("t")), Instant::from_secs(2));
    assert!(submitted.is_ok(), "{submitted:?}");
    let actions = harness::drain(&mut d);
    assert!(actions.iter().any(|a| matches!(a, Action::Assign { .. })));
    let stored = serde_json::to_value(d.snapshot()).unwrap();
    let restore = |edit: &dyn Fn(&mut Value)| {
        let mut value = stored.clone();
        edit(&mut value);
        let snapshot: Snapshot<String> = serde_json::from_value(value).unwrap();
        Dispatcher::restore(config(), strategy(), snapshot)
            .err()
            .map(|e| e.to_string())
    };
    assert_eq!(restore(&|_| {}), None);
    let is_attempt = |timer: &Value| timer[2].get("Attempt").is_some();
    let lost = restore(&|v| {
        let timers = v["state"]["timers"].as_array_mut().unwrap();
        timers.retain(|timer| !is_attempt(timer));
    });
    assert!(
        lost.as_deref()
            .is_some_and(|e| e.contains("without its attempt timer")),
        "{lost:?}"
    );
    let later = restore(&|v| {
        let timers = v["state"]["timers"].as_array_mut().unwrap();
        let timer = timers.iter_mut().find(|t| is_attempt(t)).unwrap();
        timer[0] = Value::from(u64::MAX / 2);
    });
    assert!(
        later
            .as_deref()
            .is_some_and(|e| e.contains("without its attempt timer")),
        "{later:?}"
    );
}
