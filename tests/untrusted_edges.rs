//! Untrusted edges: extreme builder values, a host clock that jumps,
//! repeats and steps back, and corrupted snapshots, for the resilience
//! policies, the metrics windows, coordination and the sparse tensor.
//! Case counts follow `PROPTEST_CASES` (64 by default here).

#![cfg(all(feature = "serde", feature = "coordination", feature = "planning"))]

mod corrupt;

use corrupt::{at_path, paths_where};

use std::time::Duration;

use proptest::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use taskweave::agent::{AgentProfile, Registry};
use taskweave::coordination::{Announcement, Auction, Ballot, Bid, Threshold, Vote};
use taskweave::metrics::{Histogram, Throughput};
use taskweave::planning::{
    CapabilityMatrix, Plan, PlanAgent, SparseTaskTensor, TeamAssembler, TensorOptions, TensorTask,
    heft,
};
use taskweave::resilience::{
    BreakerConfig, BreakerRejected, BreakerState, Bulkhead, CircuitBreaker, ExponentialBackoff,
    Fixed, Jitter, KeyedRateLimiter, Quota, RateLimiter, RetryBudget, RetryPolicy, RetrySpec,
};
use taskweave::workflow::{StepDef, WorkflowDef};
use taskweave::{AgentId, Instant, Priority, TaskId, TaskRequirements};

fn config() -> ProptestConfig {
    corrupt::config(64)
}

// ---- extreme values -------------------------------------------------------

fn extreme_u32() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0u32),
        Just(1),
        Just(2),
        Just(u32::MAX),
        Just(u32::MAX - 1),
        any::<u32>()
    ]
}

fn extreme_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(u64::MAX),
        Just(u64::MAX - 1),
        any::<u64>()
    ]
}

fn extreme_usize() -> impl Strategy<Value = usize> {
    prop_oneof![Just(0usize), Just(1), Just(usize::MAX), 0usize..10_000]
}

fn extreme_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.0f64),
        Just(-0.0),
        Just(1.0),
        Just(0.5),
        Just(-1.0),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(f64::MAX),
        Just(f64::MIN_POSITIVE),
        Just(1e-300),
        Just(1e300),
        any::<f64>(),
    ]
}

fn extreme_duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::from_nanos(1)),
        Just(Duration::MAX),
        Just(Duration::from_nanos(u64::MAX)),
        Just(Duration::from_secs(u64::MAX)),
        Just(Duration::from_secs(1)),
        (0u64..10_000_000_000).prop_map(Duration::from_nanos),
    ]
}

/// An instant: small, large, or near the end of time.
fn instant() -> impl Strategy<Value = Instant> {
    prop_oneof![
        3 => (0u64..100_000_000_000).prop_map(Instant::from_nanos),
        1 => Just(Instant::ZERO),
        1 => Just(Instant::MAX),
        1 => (0u64..10_000_000_000).prop_map(|back| Instant::from_nanos(u64::MAX - back)),
        1 => any::<u64>().prop_map(Instant::from_nanos),
    ]
}

/// A clock: forward jumps, backward steps, repeats, leaps to near the end.
fn clock() -> impl Strategy<Value = Vec<Instant>> {
    let step = prop_oneof![
        3 => (0u64..2_000_000_000).prop_map(|d| d as i128),
        2 => (0u64..2_000_000_000).prop_map(|d| -(d as i128)),
        1 => Just(0i128),
        1 => Just(i128::MAX),
        1 => Just(i128::MIN),
        1 => any::<u64>().prop_map(|d| d as i128),
    ];
    (instant(), proptest::collection::vec(step, 1..60)).prop_map(|(start, steps)| {
        let mut now = start.as_nanos() as i128;
        let mut out = vec![start];
        for step in steps {
            now = match step {
                i128::MAX => u64::MAX as i128 - 1_000,
                i128::MIN => 0,
                d => (now + d).clamp(0, u64::MAX as i128),
            };
            out.push(Instant::from_nanos(now as u64));
        }
        out
    })
}

fn registry() -> Registry {
    let mut registry = Registry::new();
    for raw in 1..=4 {
        let profile = AgentProfile::builder()
            .capabilities(["render"])
            .build()
            .unwrap();
        registry
            .register(AgentId::new(raw), profile, Instant::ZERO)
            .unwrap();
    }
    registry
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn extreme_breaker_configs_are_typed_errors_or_work(
        failures in extreme_u32(), rate in extreme_f64(), calls in extreme_u32(),
        window in extreme_duration(), buckets in extreme_u32(), cooldown in extreme_duration(),
        probes in extreme_u32(), to_close in extreme_u32(), times in clock(), ops in proptest::collection::vec(0u8..4, 1..40),
    ) {
        let built = BreakerConfig::builder()
            .consecutive_failures(failures)
            .failure_rate(rate)
            .minimum_calls(calls)
            .window(window)
            .buckets(buckets)
            .cooldown(cooldown)
            .probes(probes)
            .successes_to_close(to_close)
            .build();
        let Ok(config) = built else { return Ok(()); };
        prop_assert!(rate > 0.0 && rate <= 1.0 && failures > 0 && probes > 0);
        let mut breaker = CircuitBreaker::new(config);
        for (&now, &op) in times.iter().zip(ops.iter().cycle()) {
            match op {
                0 => { let _ = breaker.try_acquire(now); }
                1 => breaker.on_success(now),
                2 => { let _ = breaker.on_failure(now); }
                _ => { let _ = breaker.release_probe(); }
            }
            let _ = breaker.state(now);
        }
    }

    #[test]
    fn extreme_budgets_backoffs_and_quotas_are_typed_errors_or_work(
        window in extreme_duration(), buckets in extreme_u32(), min in extreme_u32(), ratio in extreme_f64(),
        base in extreme_duration(), factor in extreme_f64(), cap in extreme_duration(), attempts in extreme_u32(),
        cells in extreme_u32(), period in extreme_duration(), burst in extreme_u32(), n in extreme_u32(),
        limit in extreme_u32(), times in clock(), seed in any::<u64>(),
    ) {
        if let Ok(mut budget) = RetryBudget::builder().window(window).buckets(buckets).min_retries(min).ratio(ratio).build() {
            prop_assert!((0.0..=1.0).contains(&ratio));
            for &now in &times {
                budget.record_request(now);
                let _ = budget.try_spend(now);
                let _ = budget.available(now);
            }
        }
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
        for jitter in [Jitter::None, Jitter::Full, Jitter::Equal, Jitter::Decorrelated] {
            let built = ExponentialBackoff::builder().base(base).factor(factor).cap(cap).max_attempts(attempts).jitter(jitter).build();
            if let Ok(backoff) = built {
                prop_assert!(factor.is_finite() && factor >= 1.0 && attempts > 0);
                let mut previous = None;
                for failures in [0, 1, 2, 63, 64, 1_000, u32::MAX] {
                    let delay = RetrySpec::from(backoff).next_delay(failures, previous, &mut rng);
                    if let Some(d) = delay { prop_assert!(d <= cap.max(base)); previous = Some(d); }
                }
            }
        }
        if let Ok(fixed) = Fixed::new(base, attempts) {
            let _ = fixed.next_delay(u32::MAX, None, &mut rng);
        }
        if let Ok(quota) = Quota::new(cells, period).and_then(|q| q.with_burst(burst)) {
            let mut limiter = RateLimiter::new(quota);
            let mut keyed = KeyedRateLimiter::new(quota);
            for (i, &now) in times.iter().enumerate() {
                let _ = limiter.check(now);
                let _ = limiter.check_n(now, n);
                let _ = keyed.check(&(i % 3), now);
                let _ = keyed.check_n(&(i % 2), now, n);
                keyed.retain_recent(now);
            }
        }
        if let Ok(mut bulkhead) = Bulkhead::new(limit) {
            prop_assert!(limit > 0);
            let _ = bulkhead.set_limit(1u8, limit);
            for _ in 0..3 { let _ = bulkhead.try_acquire(&1); let _ = bulkhead.try_acquire(&2); }
            let _ = bulkhead.release(&1);
        }
    }

    #[test]
    fn extreme_metrics_coordination_and_planning_values_are_typed_errors_or_work(
        window in extreme_duration(), buckets in extreme_usize(), times in clock(),
        weights in proptest::collection::vec(extreme_f64(), 0..4), quorum in extreme_f64(), threshold in extreme_f64(),
        reserve in extreme_f64(), cost in extreme_f64(), deadline in instant(), valid in instant(),
        temperature in extreme_f64(), k in extreme_usize(), speed in extreme_f64(), values in proptest::collection::vec(extreme_u64(), 0..8),
    ) {
        if let Ok(mut throughput) = Throughput::new(window, buckets) {
            prop_assert!((1..=Throughput::MAX_BUCKETS).contains(&buckets));
            let mut recorded = 0u64;
            for &now in &times {
                throughput.record_n(now, 3);
                recorded = recorded.saturating_add(3);
                prop_assert!(throughput.count(now) <= recorded);
                let rate = throughput.per_second(now);
                prop_assert!(rate.is_finite() && rate >= 0.0);
            }
        }
        let mut histogram = Histogram::new();
        for &v in &values { histogram.record(v); }
        let _ = histogram.summary();
        for threshold in [Threshold::MoreThan(threshold), Threshold::AtLeast(threshold)] {
            let built = Ballot::builder()
                .voters(weights.iter().enumerate().map(|(i, &w)| (AgentId::new(i as u64), w)))
                .quorum(quorum)
                .threshold(threshold)
                .build();
            if let Ok(mut ballot) = built {
                prop_assert!(ballot.total_weight().is_finite());
                for i in 0..weights.len() as u64 { let _ = ballot.vote(AgentId::new(i), Vote::Yes); }
                let _ = ballot.decide();
            }
        }
        let registry = registry();
        let needs = TaskRequirements::new().require(["render"]);
        let call = Announcement::for_task(&registry, &needs, deadline).unwrap().reserve(reserve);
        if let Ok(mut auction) = Auction::open(call) {
            prop_assert!(reserve.is_finite() && reserve >= 0.0);
            for (i, &now) in times.iter().enumerate() {
                let bid = Bid::new(AgentId::new(1 + i as u64 % 4), cost, Duration::ZERO, valid);
                let _ = auction.bid(&registry, bid, now);
                let _ = auction.is_ready(now);
            }
            let _ = auction.close(*times.last().unwrap());
        }
        if let Ok(options) = TensorOptions::new().with_temperature(temperature).and_then(|o| o.with_top_k(k)) {
            let agents: Vec<AgentId> = (0..3).map(AgentId::new).collect();
            let task = TensorTask::with_candidates(TaskId::new(1), Priority::Low, [(0, cost), (2, speed)]);
            let _ = SparseTaskTensor::from_plan(&agents, &[task], &options);
        }
        let agent = PlanAgent::new(AgentId::new(1), ["x"]).speed(speed).cost(cost);
        if let Ok(matrix) = CapabilityMatrix::new([agent]) {
            prop_assert!(speed.is_finite() && speed > 0.0);
            // Huge estimates on a very slow or very fast agent saturate.
            let workflow = WorkflowDef::builder("w", 1)
                .step(StepDef::agent("a").capabilities(["x"]).estimated_duration(window))
                .step(StepDef::agent("b").capabilities(["x"]).estimated_duration(Duration::MAX))
                .step(StepDef::local("c").estimated_duration(window))
                .edge("a", "b")
                .edge("b", "c")
                .build()
                .unwrap();
            let _ = heft(&workflow, &matrix).map(|s| s.mermaid_gantt());
            let plan = Plan::single_phase(workflow);
            let assembler = TeamAssembler::new()
                .with_continuity(threshold)
                .and_then(|a| a.with_load_weight(quorum))
                .and_then(|a| a.with_performance_weight(reserve))
                .map(|a| a.with_default_duration(window));
            if let Ok(assembler) = assembler {
                let _ = assembler.assemble(&plan, &matrix);
            }
        }
    }
}

// ---- clocks ---------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// A breaker never admits a call while it is open, whatever the clock
    /// does: an instant earlier than one seen counts as the latest.
    #[test]
    fn a_breaker_never_admits_while_open(
        times in clock(), ops in proptest::collection::vec(0u8..4, 1..60),
        cooldown in prop_oneof![Just(Duration::MAX), (1u64..5_000_000_000).prop_map(Duration::from_nanos)],
    ) {
        let config = BreakerConfig::builder().consecutive_failures(2).cooldown(cooldown).probes(1).build().unwrap();
        let mut breaker = CircuitBreaker::new(config);
        let mut latest = Instant::ZERO;
        let mut open_until: Option<Instant> = None;
        for (&now, &op) in times.iter().zip(ops.iter().cycle()) {
            latest = latest.max(now);
            match op {
                0 => {
                    let admitted = breaker.try_acquire(now).is_ok();
                    if let Some(until) = open_until {
                        if until == Instant::MAX || latest < until {
                            prop_assert!(!admitted, "admitted at {:?} (latest {:?}) while open until {:?}", now, latest, until);
                        }
                    }
                }
                1 => breaker.on_success(now),
                2 => {
                    if breaker.on_failure(now) {
                        open_until = breaker.next_transition();
                        prop_assert!(open_until.is_some());
                    }
                }
                _ => { let _ = breaker.release_probe(); }
            }
            if let BreakerState::Closed = breaker.state(now) { open_until = None; }
            if let Err(BreakerRejected::Open { until }) = breaker.try_acquire(now) {
                prop_assert!(until == Instant::MAX || latest < until);
            }
        }
    }

    /// However the clock moves, a limiter admits at most its burst plus one
    /// cell per interval of (never decreasing) time, and never panics.
    #[test]
    fn a_limiter_never_admits_more_than_its_quota(
        times in clock(), cells in 1u32..5, period_ms in 1u64..5_000, burst in 1u32..4, n in 0u32..4,
    ) {
        let quota = Quota::new(cells, Duration::from_millis(period_ms)).unwrap().with_burst(burst).unwrap();
        let interval = quota.interval().as_nanos();
        let mut limiter = RateLimiter::new(quota);
        let mut keyed = KeyedRateLimiter::new(quota);
        let (mut admitted, mut keyed_admitted) = (0u128, 0u128);
        let first = times[0];
        let mut latest = first;
        for &now in &times {
            latest = latest.max(now);
            if limiter.check(now).is_ok() { admitted += 1; }
            if let Ok(Ok(())) = limiter.check_n(now, n) { admitted += u128::from(n); }
            if keyed.check(&"k", now).is_ok() { keyed_admitted += 1; }
            keyed.retain_recent(now);
            let bound = u128::from(burst) + (latest.as_nanos() - first.as_nanos()) as u128 / interval;
            prop_assert!(admitted <= bound, "{} admitted, bound {}", admitted, bound);
            prop_assert!(keyed_admitted <= bound, "{} admitted, bound {}", keyed_admitted, bound);
        }
    }

    #[test]
    fn windows_budgets_and_auctions_survive_any_clock(times in clock(), seed in 0u64..4) {
        let mut budget = RetryBudget::builder().min_retries(2).ratio(0.5).build().unwrap();
        let mut throughput = Throughput::new(Duration::from_secs(10), 10).unwrap();
        let registry = registry();
        let needs = TaskRequirements::new().require(["render"]);
        let deadline = times[times.len() / 2];
        let mut auction = Auction::open(Announcement::for_task(&registry, &needs, deadline).unwrap()).unwrap();
        let mut spent = 0u64;
        for (i, &now) in times.iter().enumerate() {
            budget.record_request(now);
            if budget.try_spend(now) { spent += 1; }
            throughput.record(now);
            prop_assert!(throughput.count(now) <= i as u64 + 1);
            let bid = Bid::new(AgentId::new(1 + (i as u64 + seed) % 4), 1.0, Duration::ZERO, Instant::MAX);
            let _ = auction.bid(&registry, bid, now);
            let _ = auction.close(now);
        }
        // 2 + half of the requests at most, over any window.
        prop_assert!(spent <= 2 + times.len() as u64);
    }
}

// ---- corrupted snapshots ----------------------------------------------------

fn replacement() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::from(0u64)),
        Just(Value::from(1u64)),
        Just(Value::from(2u64)),
        Just(Value::from(u64::MAX)),
        Just(Value::from(u64::MAX - 1)),
        Just(Value::from(u32::MAX)),
        Just(Value::from(-1i64)),
        Just(Value::from(1e300)),
        Just(Value::from(0.5)),
        any::<u64>().prop_map(Value::from),
        (0u64..2_000).prop_map(Value::from),
    ]
}

/// Round trip exact and canonical; then corrupt up to three numbers and
/// check the result is refused or keeps working through `exercise`.
fn corrupt<T, F>(original: &T, picks: &[(usize, Value)], exercise: F) -> Result<(), TestCaseError>
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
    F: Fn(T),
{
    let json = serde_json::to_string(original).unwrap();
    let back: T = serde_json::from_str(&json).unwrap();
    prop_assert_eq!(&back, original);
    prop_assert_eq!(serde_json::to_string(&back).unwrap(), json.clone());
    let mut value: Value = serde_json::from_str(&json).unwrap();
    let paths = paths_where(&value, Value::is_number);
    if paths.is_empty() {
        return Ok(());
    }
    for (pick, replacement) in picks {
        let path = &paths[pick % paths.len()];
        *at_path(&mut value, path) = replacement.clone();
    }
    if let Ok(corrupted) = serde_json::from_value::<T>(value) {
        exercise(corrupted);
    }
    Ok(())
}

fn picks() -> impl Strategy<Value = Vec<(usize, Value)>> {
    proptest::collection::vec((any::<usize>(), replacement()), 1..4)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn corrupted_resilience_snapshots_are_refused_or_keep_working(
        times in clock(), picks in picks(), outcomes in proptest::collection::vec(0u8..3, 1..40),
    ) {
        let config = BreakerConfig::builder().consecutive_failures(3).minimum_calls(4).buckets(4).window(Duration::from_secs(4)).build().unwrap();
        let mut breaker = CircuitBreaker::new(config);
        let quota = Quota::new(3, Duration::from_secs(1)).unwrap().with_burst(2).unwrap();
        let mut limiter = RateLimiter::new(quota);
        let mut keyed = KeyedRateLimiter::new(quota);
        keyed.set_quota("vip".to_string(), Quota::new(10, Duration::from_secs(1)).unwrap());
        let mut budget = RetryBudget::builder().window(Duration::from_secs(2)).buckets(4).build().unwrap();
        let mut bulkhead = Bulkhead::new(3).unwrap();
        bulkhead.set_limit("big".to_string(), 5).unwrap();
        for (i, (&now, &outcome)) in times.iter().zip(outcomes.iter().cycle()).enumerate() {
            if breaker.try_acquire(now).is_ok() {
                match outcome { 0 => breaker.on_success(now), 1 => { breaker.on_failure(now); } _ => {} }
            }
            let _ = limiter.check(now);
            let _ = keyed.check(&format!("k{}", i % 5), now);
            budget.record_request(now);
            let _ = budget.try_spend(now);
            let _ = bulkhead.try_acquire(&format!("k{}", i % 3));
        }
        let later = *times.last().unwrap();
        corrupt(&breaker, &picks, |mut b: CircuitBreaker| {
            for &now in &times { let _ = b.try_acquire(now); b.on_success(now); let _ = b.on_failure(now); let _ = b.state(now); }
            let _ = b.try_acquire(later);
        })?;
        corrupt(&limiter, &picks, |mut l: RateLimiter| {
            for &now in &times { let _ = l.check(now); let _ = l.check_n(now, 2); }
        })?;
        corrupt(&keyed, &picks, |mut l: KeyedRateLimiter<String>| {
            for &now in &times { let _ = l.check(&"k1".to_string(), now); l.retain_recent(now); }
        })?;
        corrupt(&budget, &picks, |mut b: RetryBudget| {
            for &now in &times { b.record_request(now); let _ = b.try_spend(now); let _ = b.available(now); }
        })?;
        corrupt(&bulkhead, &picks, |mut b: Bulkhead<String>| {
            for key in ["k0", "k1", "big", "new"] { let _ = b.try_acquire(&key.to_string()); let _ = b.release(&key.to_string()); }
        })?;
    }

    #[test]
    fn corrupted_metrics_tensor_and_coordination_snapshots_are_refused_or_keep_working(
        times in clock(), picks in picks(), values in proptest::collection::vec(any::<u64>(), 1..30),
        scores in proptest::collection::vec(-5.0f64..5.0, 1..6),
    ) {
        let mut histogram = Histogram::new();
        for &v in &values { histogram.record(v); histogram.record(v % 1_000); }
        let mut throughput = Throughput::new(Duration::from_secs(4), 4).unwrap();
        for &now in &times { throughput.record(now); }
        let agents: Vec<AgentId> = (0..6).map(AgentId::new).collect();
        let tasks: Vec<TensorTask> = scores.iter().enumerate().map(|(i, &s)| {
            TensorTask::with_candidates(TaskId::new(i as u64), Priority::ALL[i % 4], [(i % 6, s), ((i + 1) % 6, -s)])
        }).collect();
        let sparse = SparseTaskTensor::from_plan(&agents, &tasks, &TensorOptions::new()).unwrap();
        let mut ballot = Ballot::builder().voter(AgentId::new(1), 2.0).voter(AgentId::new(2), 1.0).voter(AgentId::new(3), 0.5).build().unwrap();
        ballot.vote(AgentId::new(2), Vote::No).unwrap();
        let registry = registry();
        let needs = TaskRequirements::new().require(["render"]);
        let mut auction = Auction::open(Announcement::for_task(&registry, &needs, Instant::from_secs(50)).unwrap().reserve(10.0)).unwrap();
        for raw in 1..=3 {
            auction.bid(&registry, Bid::new(AgentId::new(raw), raw as f64, Duration::from_secs(raw), Instant::from_secs(100)), Instant::from_secs(raw)).unwrap();
        }

        corrupt(&histogram, &picks, |mut h: Histogram| {
            let _ = h.summary();
            for q in [0.0, 0.5, 0.99, 1.0] { let _ = h.quantile(q); }
            h.record(u64::MAX);
            let copy = h.clone();
            h.merge(&copy);
        })?;
        corrupt(&throughput, &picks, |mut t: Throughput| {
            for &now in &times { t.record(now); let _ = t.count(now); let _ = t.per_second(now); }
        })?;
        corrupt(&sparse, &picks, |s: SparseTaskTensor| {
            let _ = s.to_dense();
            let _ = s.row_sums();
            let _ = s.get(0, 0, Priority::Low);
        })?;
        corrupt(&ballot, &picks, |mut b: Ballot| {
            let _ = b.vote(AgentId::new(1), Vote::Yes);
            let decision = b.decide();
            assert!(decision.tally().total.is_finite());
        })?;
        corrupt(&auction, &picks, |mut a: Auction| {
            for &now in &times { let _ = a.is_ready(now); }
            let _ = a.close(Instant::from_secs(60));
        })?;
    }
}
