//! Two tenants share a pool of LLM agents under one provider's token limit:
//! `acme` sends ten times the traffic of `globex`. With fair shares (equal
//! weights), each tenant gets half of what the token limit lets through,
//! so the small tenant is served as fast as it asks; without them, the
//! queue is FIFO and `globex` waits behind `acme`'s backlog.
//!
//! Every task holds the concurrency key `openai`, limited to 6 calls in
//! flight and 1,000 tokens a second (bursts of 5,000), and declares its
//! tokens as its cost. Time is simulated; the run is deterministic.
//!
//! Run with `cargo run --example fair_tenants`.

#[path = "support/checks.rs"]
mod checks;

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use taskweave::agent::AgentProfile;
use taskweave::resilience::Quota;
use taskweave::scheduler::{
    Action, AttemptOutcome, ConcurrencyLimit, Dispatcher, DispatcherConfig, TaskReport, TaskSpec,
};
use taskweave::{AgentId, AttemptToken, Instant, TaskId};

const TENANTS: [(&str, u32); 2] = [("acme", 10), ("globex", 1)];
const TOKENS_PER_TASK: u32 = 500;
const TOKENS_PER_SECOND: u32 = 1_000;
const BURST: u32 = 5_000;
const RUN: Duration = Duration::from_secs(60);
const TICK: Duration = Duration::from_millis(100);
/// How long one call takes.
const CALL: Duration = Duration::from_millis(300);

/// What one simulated minute gave each tenant.
struct Outcome {
    submitted: BTreeMap<&'static str, u32>,
    served: BTreeMap<&'static str, u32>,
    /// Tokens spent in the busiest second.
    peak_tokens: u32,
    most_in_flight: usize,
}

fn simulate(fair: bool) -> Outcome {
    let tokens = Quota::new(TOKENS_PER_SECOND, Duration::from_secs(1))
        .and_then(|q| q.with_burst(BURST))
        .expect("valid quota");
    let config = DispatcherConfig::builder()
        .concurrency_limit("openai", ConcurrencyLimit::new(6).rate(tokens))
        .build()
        .expect("valid config");
    let mut d: Dispatcher<&'static str> = Dispatcher::new(config);
    let mut now = Instant::ZERO;
    for id in 1..=4 {
        let profile = AgentProfile::builder()
            .capacity(4)
            .build()
            .expect("profile");
        d.register_agent(AgentId::new(id), profile, now)
            .expect("fresh agent");
    }
    let mut outcome = Outcome {
        submitted: BTreeMap::new(),
        served: BTreeMap::new(),
        peak_tokens: 0,
        most_in_flight: 0,
    };
    let mut running: VecDeque<(Instant, TaskId, AgentId, AttemptToken)> = VecDeque::new();
    let mut spent: VecDeque<Instant> = VecDeque::new();
    while now < Instant::ZERO + RUN {
        for (tenant, per_tick) in TENANTS {
            for _ in 0..per_tick {
                let mut spec = TaskSpec::new(tenant)
                    .concurrency_key("openai")
                    .cost(TOKENS_PER_TASK)
                    .metadata("tenant", tenant);
                if fair {
                    spec = spec.fairness(tenant, 1);
                }
                if d.submit(spec, now).is_ok() {
                    *outcome.submitted.entry(tenant).or_default() += 1;
                }
            }
        }
        while let Some(action) = d.poll_action() {
            if let Action::Assign {
                task, agent, token, ..
            } = action
            {
                let tenant = d.payload(task).copied().unwrap_or("?");
                *outcome.served.entry(tenant).or_default() += 1;
                running.push_back((now + CALL, task, agent, token));
                spent.push_back(now);
            }
        }
        outcome.most_in_flight = outcome.most_in_flight.max(running.len());
        while spent
            .front()
            .is_some_and(|&at| now - at >= Duration::from_secs(1))
        {
            spent.pop_front();
        }
        let window = u32::try_from(spent.len()).unwrap_or(u32::MAX) * TOKENS_PER_TASK;
        outcome.peak_tokens = outcome.peak_tokens.max(window);
        now += TICK;
        while running.front().is_some_and(|&(done, ..)| done <= now) {
            if let Some((_, task, agent, token)) = running.pop_front() {
                let outcome = AttemptOutcome::Success;
                let _ = d.report(
                    TaskReport {
                        task,
                        agent,
                        token,
                        outcome,
                    },
                    now,
                );
            }
        }
        d.handle_timeout(now);
    }
    outcome
}

fn share(outcome: &Outcome, tenant: &str) -> f64 {
    let total: u32 = outcome.served.values().sum();
    f64::from(outcome.served.get(tenant).copied().unwrap_or(0)) / f64::from(total.max(1))
}

fn main() {
    println!(
        "two tenants, traffic 10:1, one token limit ({TOKENS_PER_SECOND} tokens/s, bursts of {BURST}, {TOKENS_PER_TASK} per call), 6 calls in flight at most, {} s simulated\n",
        RUN.as_secs()
    );
    let fair = simulate(true);
    let fifo = simulate(false);
    for (name, outcome) in [
        ("fair shares (equal weights)", &fair),
        ("FIFO (no fairness key)", &fifo),
    ] {
        println!("{name}");
        for (tenant, _) in TENANTS {
            println!(
                "  {tenant:<7} submitted {:>4}  served {:>4}  share {:>5.1} %",
                outcome.submitted.get(tenant).copied().unwrap_or(0),
                outcome.served.get(tenant).copied().unwrap_or(0),
                100.0 * share(outcome, tenant),
            );
        }
        println!(
            "  busiest second: {} tokens; most calls in flight: {}\n",
            outcome.peak_tokens, outcome.most_in_flight
        );
    }
    let globex_fair = fair.served.get("globex").copied().unwrap_or(0);
    let globex_fifo = fifo.served.get("globex").copied().unwrap_or(0);
    let checks = [
        (
            format!(
                "with fair shares globex gets about half the calls ({:.1} %)",
                100.0 * share(&fair, "globex")
            ),
            (share(&fair, "globex") - 0.5).abs() <= 0.05,
        ),
        (
            format!(
                "fair shares serve globex at least four times as often as FIFO ({globex_fair} calls against {globex_fifo})"
            ),
            globex_fair >= 4 * globex_fifo,
        ),
        (
            format!(
                "FIFO gives globex about its traffic share, 1/11 ({:.1} %)",
                100.0 * share(&fifo, "globex")
            ),
            (share(&fifo, "globex") - 1.0 / 11.0).abs() <= 0.03,
        ),
        (
            "the token limit holds: no second spends more than the rate plus the burst".to_string(),
            [&fair, &fifo]
                .iter()
                .all(|o| o.peak_tokens <= TOKENS_PER_SECOND + BURST),
        ),
        (
            "the key's limit of 6 calls in flight holds".to_string(),
            [&fair, &fifo].iter().all(|o| o.most_in_flight <= 6),
        ),
    ];
    if !checks::report(&checks) {
        std::process::exit(1);
    }
}
