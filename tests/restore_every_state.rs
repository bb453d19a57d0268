//! Every state the dispatcher reaches by itself restores, and the restored
//! dispatcher goes on exactly as the original.
//!
//! Random journals of every input kind — agents joining with capabilities
//! and labels, leaving and coming back with another profile, changing
//! status and beating; submissions (single and batched) with every kind of
//! requirement (required, preferred, labels equal, not equal and one of,
//! pinned, preferred and avoided agents, exclusions, affinity, kinds),
//! TTLs, deadlines, idempotency keys, fair shares, concurrency keys,
//! costs and tenants (with live-task and cost-rate quotas); good, failed, fatal and stale reports; cancels, time jumps,
//! excused silences, redrives of dead letters — are applied to one dispatcher. After *every*
//! input its snapshot goes through JSON and is restored; the restored
//! dispatcher takes the rest of the journal and must hand out the same
//! actions and end in the same stored state as the original.
//!
//! Case counts follow `PROPTEST_CASES` (default 256 per feature set).

#![cfg(feature = "serde")]

use std::time::Duration;

use proptest::prelude::*;
use taskweave::agent::{AgentProfile, AgentStatus};
use taskweave::resilience::{BreakerConfig, Fixed, Quota};
use taskweave::routing::{LeastLoaded, RoutingStrategy};
use taskweave::scheduler::{
    Action, AttemptOutcome, ConcurrencyLimit, DeadLetterFilter, Dispatcher, DispatcherConfig,
    Input, SchedulerError, TaskReport, TaskSpec, TenantQuota, WhenFull,
};
use taskweave::{AgentId, AttemptToken, Instant, LabelConstraint, Priority, TaskId, TenantId};
use taskweave::{TaskRequirements, scheduler::Applied};

mod harness;

const CAPABILITIES: [&str; 3] = ["a", "gpu", "tpu"];
const REGIONS: [&str; 3] = ["eu", "us", "ap"];
const AGENTS: u64 = 4;

#[derive(Clone, Debug)]
enum Op {
    Register {
        agent: u64,
        capabilities: u8,
        region: Option<u8>,
        capacity: u32,
    },
    Unregister(u64),
    SetStatus(u64, u8),
    Heartbeat(u64),
    Submit(Vec<Shape>),
    Report(prop::sample::Index, u8),
    Stale(prop::sample::Index),
    Cancel(prop::sample::Index),
    Advance(u16),
    Requeue(prop::sample::Index),
    RedriveAll,
    Excuse,
}

/// One submission, described by small numbers the harness turns into a
/// spec.
#[derive(Clone, Debug)]
struct Shape {
    priority: u8,
    required: u8,
    preferred: u8,
    label: Option<(u8, u8)>,
    agent_rule: Option<(u8, u64)>,
    affinity: Option<u8>,
    kind: Option<u8>,
    ttl: Option<u8>,
    deadline: Option<u8>,
    key: Option<u8>,
    share: Option<(u8, u16)>,
    concurrency: Option<u8>,
    cost: u8,
    not_before: Option<u8>,
    max_attempts: Option<u32>,
    tenant: Option<u8>,
}

fn shape() -> impl Strategy<Value = Shape> {
    let requirements = (
        0u8..4,
        0u8..8,
        0u8..8,
        proptest::option::weighted(0.3, (0u8..3, 0u8..3)),
        proptest::option::weighted(0.2, (0u8..4, 0..AGENTS)),
        proptest::option::weighted(0.2, 0u8..3),
        proptest::option::weighted(0.3, 0u8..2),
    );
    let options = (
        proptest::option::weighted(0.15, 1u8..30),
        proptest::option::weighted(0.1, 1u8..40),
        proptest::option::weighted(0.2, 0u8..4),
        proptest::option::weighted(0.3, (0u8..3, 1u16..4)),
        proptest::option::weighted(0.3, 0u8..2),
        0u8..3,
        proptest::option::weighted(0.1, 1u8..10),
        proptest::option::weighted(0.3, 1u32..3),
        proptest::option::weighted(0.4, 1u8..4),
    );
    (requirements, options).prop_map(
        |(
            (priority, required, preferred, label, agent_rule, affinity, kind),
            (ttl, deadline, key, share, concurrency, cost, not_before, max_attempts, tenant),
        )| Shape {
            priority,
            // Most tasks ask for little: keep the common case common.
            required: if required < 5 { 0 } else { required - 4 },
            preferred,
            label,
            agent_rule,
            affinity,
            kind,
            ttl,
            deadline,
            key,
            share,
            concurrency,
            cost,
            not_before,
            max_attempts,
            tenant,
        },
    )
}

fn op() -> impl Strategy<Value = Op> {
    use prop::sample::Index;
    prop_oneof![
        3 => (0..AGENTS, 0u8..8, proptest::option::weighted(0.6, 0u8..3), 1u32..4).prop_map(
            |(agent, capabilities, region, capacity)| Op::Register { agent, capabilities, region, capacity }
        ),
        1 => (0..AGENTS).prop_map(Op::Unregister),
        1 => (0..AGENTS, 0u8..4).prop_map(|(a, s)| Op::SetStatus(a, s)),
        1 => (0..AGENTS).prop_map(Op::Heartbeat),
        5 => proptest::collection::vec(shape(), 1..4).prop_map(Op::Submit),
        5 => (any::<Index>(), 0u8..4).prop_map(|(i, o)| Op::Report(i, o)),
        1 => any::<Index>().prop_map(Op::Stale),
        1 => any::<Index>().prop_map(Op::Cancel),
        3 => (1u16..12_000).prop_map(Op::Advance),
        1 => any::<Index>().prop_map(Op::Requeue),
        1 => Just(Op::RedriveAll),
        1 => Just(Op::Excuse),
    ]
}

fn config() -> DispatcherConfig {
    DispatcherConfig::builder()
        .aging_interval(Some(Duration::from_secs(2)))
        .heartbeats(Duration::from_secs(3), 2)
        .attempt_timeout(Duration::from_secs(8))
        .unroutable_timeout(Duration::from_secs(20))
        .idempotency_window(Duration::from_secs(30))
        .retry_policy(Fixed::new(Duration::from_millis(700), 2).unwrap())
        .circuit_breaker(
            BreakerConfig::builder()
                .consecutive_failures(2)
                .cooldown(Duration::from_secs(4))
                .probes(1)
                .build()
                .unwrap(),
        )
        .preemption(true)
        .queue_capacity(30)
        .terminal_history(6)
        .concurrency_limit("k0", ConcurrencyLimit::new(1))
        .concurrency_limit(
            "k1",
            ConcurrencyLimit::new(1)
                .when_full(WhenFull::CancelOldest)
                .rate(Quota::new(2, Duration::from_secs(5)).unwrap()),
        )
        .tenant_quota(
            TenantId::new(1),
            TenantQuota::new()
                .live_tasks(3)
                .cost_rate(Quota::new(4, Duration::from_secs(5)).unwrap()),
        )
        // Every other tenant's tasks share one lane, whatever their keys.
        .default_tenant_quota(TenantQuota::new().live_tasks(4).fair_share(2))
        .seed(7)
        .build()
        .unwrap()
}

fn strategy() -> Box<dyn RoutingStrategy + Send> {
    Box::new(LeastLoaded::new())
}

fn spec(shape: &Shape, payload: u32, now: Instant) -> TaskSpec<u32> {
    let mut requirements = TaskRequirements::new();
    let named = |bits: u8| {
        CAPABILITIES
            .iter()
            .enumerate()
            .filter(move |(i, _)| bits & (1 << i) != 0)
            .map(|(_, c)| *c)
    };
    requirements = requirements
        .require(named(shape.required))
        .prefer(named(shape.preferred));
    if let Some((rule, region)) = shape.label {
        let region = REGIONS[region as usize];
        requirements = requirements.label(match rule {
            0 => LabelConstraint::equals("region", region),
            1 => LabelConstraint::not_equals("region", region),
            _ => LabelConstraint::one_of("region", [region, "mars"]),
        });
    }
    if let Some((rule, agent)) = shape.agent_rule {
        let agent = AgentId::new(agent);
        requirements = match rule {
            0 => requirements.pin(agent),
            1 => requirements.prefer_agent(agent),
            2 => requirements.avoid([agent]),
            _ => requirements.exclude([agent]),
        };
    }
    if let Some(key) = shape.affinity {
        requirements = requirements.affinity_key(format!("user-{key}"));
    }
    if let Some(kind) = shape.kind {
        requirements = requirements.kind(["batch", "web"][kind as usize]);
    }
    let mut spec = TaskSpec::new(payload)
        .priority(Priority::from_index(shape.priority as usize).unwrap_or_default())
        .requirements(requirements)
        .cost(u32::from(shape.cost));
    if let Some(ttl) = shape.ttl {
        spec = spec.ttl(Duration::from_secs(u64::from(ttl)));
    }
    if let Some(deadline) = shape.deadline {
        spec = spec.deadline(now + Duration::from_secs(u64::from(deadline)));
    }
    if let Some(key) = shape.key {
        // Now and then the same key with another payload: a conflict.
        spec = spec
            .idempotency_key(format!("key-{key}"))
            .payload_fingerprint(u64::from(shape.cost % 2));
    }
    if let Some((share, weight)) = shape.share {
        spec = spec.fairness(format!("tenant-{share}"), weight);
    }
    if let Some(key) = shape.concurrency {
        spec = spec.concurrency_key(format!("k{key}"));
    }
    if let Some(at) = shape.not_before {
        spec = spec.not_before(now + Duration::from_secs(u64::from(at)));
    }
    if let Some(most) = shape.max_attempts {
        spec = spec.max_attempts(most);
    }
    if let Some(tenant) = shape.tenant {
        spec = spec.tenant(TenantId::new(u64::from(tenant)));
    }
    spec
}

fn pick<T: Clone>(items: &[T], index: &prop::sample::Index) -> Option<T> {
    (!items.is_empty()).then(|| items[index.index(items.len())].clone())
}

/// What the host knows while it writes the journal.
#[derive(Default)]
struct Host {
    now: Instant,
    payloads: u32,
    tasks: Vec<TaskId>,
    running: Vec<(TaskId, AgentId, AttemptToken)>,
    past: Vec<(TaskId, AgentId, AttemptToken)>,
    dead: Vec<TaskId>,
}

impl Host {
    /// The journal input for `op`, if it has one in the current state.
    fn input(&mut self, op: &Op) -> Option<Input<u32>> {
        let now = self.now;
        let agent = |a: &u64| AgentId::new(*a);
        Some(match op {
            Op::Register {
                agent: a,
                capabilities,
                region,
                capacity,
            } => {
                let mut profile = AgentProfile::builder()
                    .capabilities(
                        CAPABILITIES
                            .iter()
                            .enumerate()
                            .filter(|(i, _)| capabilities & (1 << i) != 0)
                            .map(|(_, c)| *c),
                    )
                    .capacity(*capacity);
                if let Some(region) = region {
                    profile = profile.label("region", REGIONS[*region as usize]);
                }
                Input::RegisterAgent {
                    agent: agent(a),
                    profile: profile.build().ok()?,
                    now,
                }
            }
            Op::Unregister(a) => Input::UnregisterAgent {
                agent: agent(a),
                now,
            },
            Op::SetStatus(a, s) => Input::SetAgentStatus {
                agent: agent(a),
                status: [
                    AgentStatus::Online,
                    AgentStatus::Draining,
                    AgentStatus::Offline,
                    AgentStatus::Unhealthy,
                ][*s as usize],
                now,
            },
            Op::Heartbeat(a) => Input::Heartbeat {
                agent: agent(a),
                now,
            },
            Op::Submit(shapes) => {
                let mut specs: Vec<TaskSpec<u32>> = Vec::new();
                for shape in shapes {
                    self.payloads += 1;
                    specs.push(spec(shape, self.payloads, now));
                }
                if specs.len() == 1 {
                    Input::Submit {
                        spec: specs.pop()?,
                        now,
                    }
                } else {
                    Input::SubmitBatch { specs, now }
                }
            }
            Op::Report(i, outcome) => {
                let (task, agent, token) = pick(&self.running, i)?;
                let outcome = match outcome {
                    0 => AttemptOutcome::failure("flaky"),
                    1 => AttemptOutcome::fatal("broken"),
                    _ => AttemptOutcome::Success,
                };
                Input::Report {
                    report: TaskReport {
                        task,
                        agent,
                        token,
                        outcome,
                    },
                    now,
                }
            }
            Op::Stale(i) => {
                let (task, agent, token) = pick(&self.past, i)?;
                Input::Report {
                    report: TaskReport {
                        task,
                        agent,
                        token,
                        outcome: AttemptOutcome::Success,
                    },
                    now,
                }
            }
            Op::Cancel(i) => Input::Cancel {
                task: pick(&self.tasks, i)?,
                now,
            },
            Op::Advance(ms) => {
                self.now = now + Duration::from_millis(u64::from(*ms));
                Input::HandleTimeout { now: self.now }
            }
            Op::Requeue(i) => Input::RequeueDeadLetter {
                task: pick(&self.dead, i)?,
                now,
            },
            Op::RedriveAll => Input::RedriveDeadLetters {
                filter: DeadLetterFilter::new(),
                now,
            },
            Op::Excuse => Input::ExcuseSilence { now },
        })
    }

    /// Learns from what the dispatcher answered and handed out.
    fn learn(&mut self, input: &Input<u32>, applied: Option<&Applied<u32>>, actions: &[Action]) {
        if let Input::Report { report, .. } = input {
            self.running.retain(|r| r.2 != report.token);
        }
        if let Some(Applied::Submitted(s)) = applied {
            self.tasks.push(s.id());
        }
        if let Some(Applied::Batch(all)) = applied {
            self.tasks.extend(all.iter().flatten().map(|s| s.id()));
        }
        for action in actions {
            match action {
                Action::Assign {
                    task, agent, token, ..
                } => {
                    self.running.push((*task, *agent, *token));
                    self.past.push((*task, *agent, *token));
                }
                Action::Cancel { token, .. } => self.running.retain(|r| r.2 != *token),
                Action::DeadLettered { task, .. } => self.dead.push(*task),
                _ => {}
            }
        }
    }
}

/// What a run of `ops` wrote: the journal, the actions of each input,
/// and the stored snapshot before the first input and after each.
struct Run {
    journal: Vec<Input<u32>>,
    actions: Vec<Vec<Action>>,
    snapshots: Vec<String>,
}

fn run(ops: &[Op]) -> Run {
    let mut d = Dispatcher::new(config());
    let mut host = Host::default();
    let mut run = Run {
        journal: Vec::new(),
        actions: Vec::new(),
        snapshots: vec![stored(&d)],
    };
    for op in ops {
        let Some(input) = host.input(op) else {
            continue;
        };
        let applied = d.apply(input.clone()).ok();
        let out = harness::drain(&mut d);
        host.learn(&input, applied.as_ref(), &out);
        run.journal.push(input);
        run.actions.push(out);
        run.snapshots.push(stored(&d));
    }
    run
}

/// `d`'s snapshot as JSON, written both ways: from a copy
/// ([`Dispatcher::snapshot`]) and straight from the dispatcher
/// ([`Dispatcher::serialize_snapshot`]), which must write the same bytes.
fn stored(d: &Dispatcher<u32>) -> String {
    let copied = serde_json::to_string(&d.snapshot()).unwrap();
    let mut borrowed = Vec::new();
    d.serialize_snapshot(&mut serde_json::Serializer::new(&mut borrowed))
        .unwrap();
    assert_eq!(
        String::from_utf8(borrowed).unwrap(),
        copied,
        "serialize_snapshot wrote other bytes than snapshot()"
    );
    copied
}

/// Runs `ops`, restoring a copy from every snapshot and replaying the rest
/// of the journal into it.
fn every_snapshot_continues_identically(ops: &[Op]) -> Result<(), TestCaseError> {
    let Run {
        journal,
        actions,
        snapshots,
    } = run(ops);
    let last = snapshots.last().cloned().unwrap_or_default();
    for (cut, json) in snapshots.iter().enumerate() {
        let snapshot = serde_json::from_str(json).unwrap();
        let restored = Dispatcher::restore(config(), strategy(), snapshot);
        let mut restored = match restored {
            Ok(d) => d,
            Err(error) => {
                return Err(TestCaseError::fail(format!(
                    "the snapshot after input {cut} does not restore: {error}\njournal: {:?}",
                    &journal[..cut]
                )));
            }
        };
        prop_assert_eq!(
            &serde_json::to_string(&restored.snapshot()).unwrap(),
            json,
            "restored state after input {} stores differently",
            cut
        );
        for (at, input) in journal.iter().enumerate().skip(cut) {
            let _ = restored.apply(input.clone());
            let out = harness::drain(&mut restored);
            prop_assert_eq!(
                &out,
                &actions[at],
                "restored after input {}: input {} ({:?}) acts differently",
                cut,
                at,
                input
            );
        }
        prop_assert_eq!(
            &serde_json::to_string(&restored.snapshot()).unwrap(),
            &last,
            "restored after input {}, the run ends in another state",
            cut
        );
    }
    Ok(())
}

/// The counters that restore checks exactly against the tasks they
/// counted (the others are checked within bounds, or not at all; see
/// `Dispatcher::restore`).
const EXACT_COUNTERS: [&str; 6] = [
    "submitted",
    "assigned",
    "completed",
    "dead_lettered",
    "expired",
    "cancelled",
];

/// Runs `ops` and returns the stored snapshot after input `cut` (clamped).
fn snapshot_after(ops: &[Op], cut: &prop::sample::Index) -> serde_json::Value {
    let snapshots = run(ops).snapshots;
    serde_json::from_str(&snapshots[cut.index(snapshots.len())]).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    /// Restore checks every count against what it counts: any of the
    /// exact counters moved by one, up or down, is refused.
    #[test]
    fn a_counter_moved_by_one_is_refused(
        ops in proptest::collection::vec(op(), 1..60),
        cut in any::<prop::sample::Index>(),
    ) {
        let value = snapshot_after(&ops, &cut);
        for counter in EXACT_COUNTERS {
            let stored = value["state"]["recorder"]["counters"][counter].as_u64().unwrap();
            for moved in [stored.checked_add(1), stored.checked_sub(1)].into_iter().flatten() {
                let mut corrupted = value.clone();
                corrupted["state"]["recorder"]["counters"][counter] = moved.into();
                let snapshot = serde_json::from_value(corrupted).unwrap();
                let restored = Dispatcher::<u32>::restore(config(), strategy(), snapshot);
                prop_assert!(
                    matches!(restored, Err(SchedulerError::CorruptSnapshot { .. })),
                    "{} moved from {} to {} was not refused: {:?}",
                    counter,
                    stored,
                    moved,
                    restored.err()
                );
            }
        }
    }

    #[test]
    fn every_state_restores_and_continues_identically(ops in proptest::collection::vec(op(), 1..60)) {
        every_snapshot_continues_identically(&ops)?;
    }
}

/// Issue 40, finding 1: a task that *prefers* a capability nobody has is
/// resolved without it; an agent with it joins later. The cached
/// resolution went stale, and the dispatcher's own snapshot was refused.
#[test]
fn a_preference_learned_after_the_task_was_placed_restores() {
    let mut d: Dispatcher<u32> = Dispatcher::new(config());
    let now = Instant::ZERO;
    let a = AgentProfile::builder().capabilities(["a"]).build().unwrap();
    d.register_agent(AgentId::new(1), a, now).unwrap();
    let prefers_gpu = TaskRequirements::new().prefer(["gpu"]);
    let _ = d
        .submit(TaskSpec::new(1).requirements(prefers_gpu.clone()), now)
        .unwrap();
    assert!(matches!(d.poll_action(), Some(Action::Assign { .. })));
    let gpu = AgentProfile::builder()
        .capabilities(["gpu"])
        .build()
        .unwrap();
    d.register_agent(AgentId::new(2), gpu, now).unwrap();
    let json = serde_json::to_string(&d.snapshot()).unwrap();
    let restored =
        Dispatcher::<u32>::restore(config(), strategy(), serde_json::from_str(&json).unwrap());
    assert!(restored.is_ok(), "{:?}", restored.err());
}

/// The same staleness, live: a task that must avoid `region=eu` was
/// resolved while no agent had that label; an agent in `eu` joins. The
/// next such task must not go to it.
#[test]
fn a_label_learned_after_the_task_was_placed_still_excludes() {
    let mut d: Dispatcher<u32> = Dispatcher::new(config());
    let now = Instant::ZERO;
    let us = AgentProfile::builder()
        .label("region", "us")
        .build()
        .unwrap();
    d.register_agent(AgentId::new(1), us, now).unwrap();
    let not_eu = TaskRequirements::new().label(LabelConstraint::not_equals("region", "eu"));
    let _ = d
        .submit(TaskSpec::new(1).requirements(not_eu.clone()), now)
        .unwrap();
    assert!(matches!(d.poll_action(), Some(Action::Assign { .. })));
    let eu = AgentProfile::builder()
        .label("region", "eu")
        .build()
        .unwrap();
    d.register_agent(AgentId::new(2), eu, now).unwrap();
    let _ = d
        .submit(TaskSpec::new(2).requirements(not_eu), now)
        .unwrap();
    let actions = harness::drain(&mut d);
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::Assign { agent, .. } if *agent == AgentId::new(2))),
        "a task that avoids eu went to the agent in eu: {actions:?}"
    );
}
