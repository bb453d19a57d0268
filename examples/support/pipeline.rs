//! `perf_report`'s task cycles: a pool kept half busy whose tasks carry
//! nothing, fair-share and concurrency keys, or keys and a tenant under a
//! quota; the lines that time the keyed and tenant cycles against the
//! plain one, and the plain cycle at 10,000 agents against 10.

use std::collections::VecDeque;
use std::hint::black_box;
use std::time::Duration;

use taskweave::agent::AgentProfile;
use taskweave::resilience::Quota;
use taskweave::scheduler::{
    Action, AttemptOutcome, ConcurrencyLimit, Dispatcher, DispatcherConfig, TaskReport, TaskSpec,
    TenantQuota,
};
use taskweave::{AgentId, AttemptToken, Instant, TaskId, TenantId};

use super::turns;
use super::{CAPACITY, IN_FLIGHT_PER_AGENT, ROUND, ROUNDS, SEED, SIZES, TICK_NANOS, WARM_UP};

pub(crate) fn pool(agents: usize, queue_capacity: usize, load: u8) -> Dispatcher<u64> {
    let mut config = DispatcherConfig::builder()
        .seed(SEED)
        .queue_capacity(queue_capacity);
    if load >= KEYED {
        let slots = u32::try_from(agents).unwrap_or(u32::MAX) * CAPACITY;
        config = config.concurrency_limit("openai", ConcurrencyLimit::new(slots));
    }
    if load == TENANTED {
        // Checked and counted on every task, never reached: a cell a
        // nanosecond, and a live-task bound above any queue.
        let rate = Quota::new(1_000_000, Duration::from_millis(1)).expect("valid quota");
        let quota = TenantQuota::new().live_tasks(u32::MAX).cost_rate(rate);
        config = config.default_tenant_quota(quota);
    }
    let config = config.build().expect("valid config");
    let mut dispatcher = Dispatcher::new(config);
    let profile = AgentProfile::builder()
        .capacity(CAPACITY)
        .build()
        .expect("valid profile");
    for i in 0..agents {
        dispatcher
            .register_agent(AgentId::new(i as u64), profile.clone(), Instant::ZERO)
            .expect("fresh id");
    }
    dispatcher
}

/// The tasks of a [`Pipeline`] carry nothing but a payload.
pub(crate) const PLAIN: u8 = 0;
/// They carry a fair-share key and a concurrency key.
const KEYED: u8 = 1;
/// They carry the keys and a tenant with a quota.
const TENANTED: u8 = 2;

/// A pool kept half busy: a FIFO of the attempts in flight. `LOAD`: what
/// its tasks carry ([`PLAIN`], [`KEYED`], [`TENANTED`]; a constant, so the
/// plain cycle's driver carries no branch for the rest).
pub(crate) struct Pipeline<const LOAD: u8> {
    pub(crate) dispatcher: Dispatcher<u64>,
    in_flight: VecDeque<(TaskId, AgentId, AttemptToken)>,
    clock: u64,
}

/// Fair-share tenants of `full_cycle_keys`.
const TENANTS: [&str; 16] = [
    "t00", "t01", "t02", "t03", "t04", "t05", "t06", "t07", "t08", "t09", "t10", "t11", "t12",
    "t13", "t14", "t15",
];

impl<const LOAD: u8> Pipeline<LOAD> {
    pub(crate) fn new(agents: usize) -> Self {
        let mut pipeline = Pipeline {
            dispatcher: pool(agents, 100_000, LOAD),
            in_flight: VecDeque::with_capacity(agents * IN_FLIGHT_PER_AGENT + 1),
            clock: 0,
        };
        for _ in 0..agents * IN_FLIGHT_PER_AGENT {
            let held = pipeline.submit_and_assign();
            pipeline.in_flight.push_back(held);
        }
        pipeline
    }

    fn submit_and_assign(&mut self) -> (TaskId, AgentId, AttemptToken) {
        self.clock += TICK_NANOS;
        let now = Instant::from_nanos(self.clock);
        let mut spec = TaskSpec::new(black_box(self.clock));
        if LOAD >= KEYED {
            let tenant = (self.clock / TICK_NANOS) as usize % TENANTS.len();
            spec = spec
                .fairness(TENANTS[tenant], 1 + (tenant % 3) as u16)
                .concurrency_key("openai");
            if LOAD == TENANTED {
                spec = spec.tenant(TenantId::new(tenant as u64));
            }
        }
        let _ = self.dispatcher.submit(spec, now).expect("queue has room");
        match self.dispatcher.poll_action() {
            Some(Action::Assign {
                task, agent, token, ..
            }) => (task, agent, token),
            other => panic!("expected an assignment, got {other:?}"),
        }
    }

    /// Submit → assign → report success for the oldest attempt in flight.
    pub(crate) fn cycle(&mut self) {
        let held = self.submit_and_assign();
        self.in_flight.push_back(held);
        let Some((task, agent, token)) = self.in_flight.pop_front() else {
            return;
        };
        let report = TaskReport {
            task,
            agent,
            token,
            outcome: AttemptOutcome::Success,
        };
        self.dispatcher
            .report(report, Instant::from_nanos(self.clock))
            .expect("current attempt");
    }
}

/// Two pipelines' cycles timed in turns: the medians of `a`'s and `b`'s
/// times per cycle, and of the rounds' quotients `b / a`.
fn in_turns<const A: u8, const B: u8>(a: &mut Pipeline<A>, b: &mut Pipeline<B>) -> (f64, f64, f64) {
    let rounds = turns::in_turns(
        &mut [&mut || a.cycle(), &mut || b.cycle()],
        ROUNDS,
        ROUND,
        WARM_UP,
    );
    black_box((a.dispatcher.live_tasks(), b.dispatcher.live_tasks()));
    (
        turns::median(rounds.iter().map(|r| r[0])),
        turns::median(rounds.iter().map(|r| r[1])),
        turns::median(rounds.iter().map(|r| r[1] / r[0])),
    )
}

/// The full cycle at the largest pool over that at the smallest.
pub(crate) fn full_cycle_ratio() -> String {
    let (small, large) = (SIZES[0], SIZES[SIZES.len() - 1]);
    let mut few = Pipeline::<PLAIN>::new(small);
    let mut many = Pipeline::<PLAIN>::new(large);
    let (_, _, ratio) = in_turns(&mut few, &mut many);
    format!(
        "{{\"bench\":\"full_cycle_ratio\",\"rounds\":{ROUNDS},\"ratio_{large}_vs_{small}\":{ratio:.3}}}"
    )
}

/// The full cycle at 1,000 agents with fair-share and concurrency keys on,
/// against the plain cycle.
pub(crate) fn full_cycle_keys() -> String {
    against_plain::<KEYED>("full_cycle_keys")
}

/// The keyed cycle at 1,000 agents with every task also of a tenant (one
/// of 16) under a quota (live tasks and cost rate) it never reaches,
/// against the plain cycle.
pub(crate) fn full_cycle_tenants() -> String {
    against_plain::<TENANTED>("full_cycle_tenants")
}

/// The cycle of tasks carrying `LOAD` at 1,000 agents, timed in turns with
/// the plain cycle: the line of `bench`.
fn against_plain<const LOAD: u8>(bench: &str) -> String {
    let agents = SIZES[2];
    let (mut plain, mut loaded) = (
        Pipeline::<PLAIN>::new(agents),
        Pipeline::<LOAD>::new(agents),
    );
    let (plain, ns, ratio) = in_turns(&mut plain, &mut loaded);
    format!(
        "{{\"bench\":\"{bench}\",\"agents\":{agents},\"rounds\":{ROUNDS},\"tenants\":{},\"ns_per_op\":{ns:.2},\"plain_ns_per_op\":{plain:.2},\"ratio_to_plain\":{ratio:.3}}}",
        TENANTS.len(),
    )
}
