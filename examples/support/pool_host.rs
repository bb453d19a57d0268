//! A host in virtual time whose pool of agents follows the dispatcher's
//! scale hint: Poisson arrivals, agents of [`SLOTS`] slots that run every
//! task for a fixed time, a hint asked for every [`POLL`], agents started
//! or drained (then unregistered once idle) to match it. Shared by
//! `examples/autoscale.rs` and `tests/scale_hints.rs`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use taskweave::agent::{AgentProfile, AgentStatus};
use taskweave::scheduler::{
    Action, AttemptOutcome, Dispatcher, DispatcherConfig, ScaleChange, ScaleHint, ScalePolicy,
    TaskReport, TaskSpec,
};
use taskweave::{AgentId, AttemptToken, Instant, TaskId, TaskRequirements};

/// How often the simulated host asks for a hint, as an autoscaler polls.
pub(crate) const POLL: Duration = Duration::from_secs(15);
/// Slots of one agent.
pub(crate) const SLOTS: u32 = 4;

/// A host in virtual time: Poisson arrivals, agents that each run
/// [`SLOTS`] tasks of a fixed run time, and a pool that follows the hint.
pub(crate) struct Host {
    /// The dispatcher, watching the pool `workers`.
    pub(crate) dispatcher: Dispatcher<u64>,
    rng: u64,
    /// The virtual clock.
    pub(crate) now: Instant,
    next_agent: u64,
    /// Agents serving, oldest first; the newest are drained first.
    serving: Vec<AgentId>,
    draining: Vec<AgentId>,
    running: BinaryHeap<Reverse<(Instant, TaskId, AgentId, AttemptToken)>>,
    run: Duration,
    /// Tasks submitted so far.
    pub(crate) submitted: u64,
}

impl Host {
    /// A host whose agents run each task for `run`, watching `workers`
    /// under `policy`; `seed` drives the arrivals.
    pub(crate) fn new(seed: u64, run: Duration, policy: ScalePolicy) -> Host {
        let mut dispatcher = Dispatcher::new(DispatcherConfig::default());
        dispatcher.watch_pool("workers", ["work"], policy).unwrap();
        Host {
            dispatcher,
            rng: seed | 1,
            now: Instant::ZERO,
            next_agent: 1,
            serving: Vec::new(),
            draining: Vec::new(),
            running: BinaryHeap::new(),
            run,
            submitted: 0,
        }
    }

    /// A uniform draw in (0, 1] (xorshift64*).
    fn uniform(&mut self) -> f64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let bits = self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11;
        (bits as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// Runs `span` of virtual time at `rate` arrivals per second, asking
    /// for a hint every [`POLL`] and following it; the hints, in order.
    pub(crate) fn run_for(&mut self, span: Duration, rate: f64) -> Vec<ScaleHint> {
        let end = self.now.saturating_add(span);
        let mut hints = Vec::new();
        let mut next_arrival = self.gap(rate);
        let mut next_poll = self.now.saturating_add(POLL);
        while self.now < end {
            let completion = self.running.peek().map(|Reverse((at, ..))| *at);
            let next = [Some(next_arrival), Some(next_poll), completion]
                .into_iter()
                .flatten()
                .min()
                .unwrap();
            self.now = next.min(end);
            if self.now == end {
                break;
            }
            if completion == Some(self.now) {
                let Reverse((_, task, agent, token)) = self.running.pop().unwrap();
                let outcome = AttemptOutcome::Success;
                let report = TaskReport {
                    task,
                    agent,
                    token,
                    outcome,
                };
                self.dispatcher.report(report, self.now).unwrap();
                self.retire_idle();
            } else if next_arrival == self.now {
                let spec = TaskSpec::new(self.submitted)
                    .requirements(TaskRequirements::new().require(["work"]));
                let _ = self.dispatcher.submit(spec, self.now).unwrap();
                self.submitted += 1;
                next_arrival = self.gap(rate);
            } else {
                let hint = self.dispatcher.scale_hint("workers", self.now).unwrap();
                self.follow(hint.desired_agents);
                hints.push(hint);
                next_poll = self.now.saturating_add(POLL);
            }
            self.drain_actions();
        }
        hints
    }

    /// The next arrival after now.
    fn gap(&mut self, rate: f64) -> Instant {
        let seconds = -self.uniform().ln() / rate;
        self.now.saturating_add(Duration::from_secs_f64(seconds))
    }

    fn drain_actions(&mut self) {
        while let Some(action) = self.dispatcher.poll_action() {
            if let Action::Assign {
                task, agent, token, ..
            } = action
            {
                let done = self.now.saturating_add(self.run);
                self.running.push(Reverse((done, task, agent, token)));
            }
        }
    }

    /// Starts or drains agents until as many serve as `desired`.
    fn follow(&mut self, desired: u32) {
        while self.serving.len() < desired as usize {
            let agent = match self.draining.pop() {
                Some(agent) => {
                    self.dispatcher
                        .set_agent_status(agent, AgentStatus::Online, self.now)
                        .unwrap();
                    agent
                }
                None => {
                    let agent = AgentId::new(self.next_agent);
                    self.next_agent += 1;
                    let profile = AgentProfile::builder()
                        .capabilities(["work"])
                        .capacity(SLOTS)
                        .build()
                        .unwrap();
                    self.dispatcher
                        .register_agent(agent, profile, self.now)
                        .unwrap();
                    agent
                }
            };
            self.serving.push(agent);
        }
        while self.serving.len() > desired as usize {
            let agent = self.serving.pop().unwrap();
            self.dispatcher
                .set_agent_status(agent, AgentStatus::Draining, self.now)
                .unwrap();
            self.draining.push(agent);
        }
        self.retire_idle();
        self.drain_actions();
    }

    /// Unregisters the draining agents that finished their work.
    fn retire_idle(&mut self) {
        let dispatcher = &mut self.dispatcher;
        let now = self.now;
        self.draining.retain(|&agent| {
            let idle = dispatcher.in_flight(agent).is_empty();
            if idle {
                let requeued = dispatcher.unregister_agent(agent, now).unwrap();
                assert!(requeued.is_empty());
            }
            !idle
        });
    }
}

/// How often the desired count turned from rising to falling or back.
pub(crate) fn direction_changes(hints: &[ScaleHint]) -> usize {
    let moves: Vec<ScaleChange> = hints
        .iter()
        .map(|h| h.change)
        .filter(|&c| c != ScaleChange::Hold)
        .collect();
    moves.windows(2).filter(|w| w[0] != w[1]).count()
}
