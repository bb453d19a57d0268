//! The gates: everything that may hold a task or an agent back although an
//! agent is free — per-agent circuit breakers and rate limits, the kind
//! bulkhead and kind rate limit, and the retry budget.
//!
//! [`Gates`] owns their state (it travels in a [`Snapshot`](super::Snapshot))
//! and answers placement and attempts through a small API. Kinds come in as
//! [`KindId`]s interned by the requirements table, so consulting a kind gate
//! allocates nothing.

pub(super) mod concurrency;
pub(super) mod holders;
pub(super) mod tenants;

use std::collections::BTreeMap;

use super::state::requirements::{KindId, RequirementsTable};
use super::state::timer::Timer;
use super::{DispatcherConfig, SchedulerError};
use crate::agent::Registry;
use crate::hash::IdMap;
use crate::resilience::{
    BreakerState, Bulkhead, CircuitBreaker, KeyedRateLimiter, RateLimiter, RetryBudget,
};
use crate::{AgentId, Instant};

/// The state of every gate. Agents appear in the per-agent maps while they
/// are registered; kinds appear in the bulkhead while a task of the kind
/// runs.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(crate) struct Gates {
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_maps::as_pairs"))]
    breakers: IdMap<AgentId, CircuitBreaker>,
    bulkhead: Option<Bulkhead<String>>,
    kind_rates: Option<KeyedRateLimiter<String>>,
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_maps::as_pairs"))]
    agent_rates: IdMap<AgentId, RateLimiter>,
    /// Agents over their rate, and when they conform again (each with its
    /// [`Timer::AgentRate`]).
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_maps::as_pairs"))]
    rate_blocked_until: IdMap<AgentId, Instant>,
    retry_budget: Option<RetryBudget>,
}

/// What a breaker made of an attempt's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub(crate) enum Verdict {
    /// Nothing changed that the dispatcher must act on.
    Counted,
    /// The breaker opened; it may let probes through at the instant given.
    Tripped(Option<Instant>),
}

impl Gates {
    /// The gates of a new dispatcher with `config`: no agent yet, nothing
    /// running.
    pub(crate) fn new(config: &DispatcherConfig) -> Self {
        Gates {
            breakers: IdMap::default(),
            bulkhead: config.settings.kind_bulkhead.clone(),
            kind_rates: config.settings.kind_rate_limit.clone(),
            agent_rates: IdMap::default(),
            rate_blocked_until: IdMap::default(),
            retry_budget: config.settings.retry_budget.clone(),
        }
    }

    // ----- agents -------------------------------------------------------

    /// Gives a newly registered agent its breaker and rate limit, as
    /// configured.
    pub(crate) fn agent_joined(&mut self, agent: AgentId, config: &DispatcherConfig) {
        if let Some(breaker) = &config.settings.circuit_breaker {
            self.breakers
                .insert(agent, CircuitBreaker::new(breaker.clone()));
        }
        if let Some(quota) = config.settings.agent_rate_limit {
            self.agent_rates.insert(agent, RateLimiter::new(quota));
        }
    }

    /// Forgets an agent that left.
    pub(crate) fn agent_left(&mut self, agent: AgentId) {
        self.breakers.remove(&agent);
        self.agent_rates.remove(&agent);
        self.rate_blocked_until.remove(&agent);
    }

    /// The state of `agent`'s breaker at `now`, if breakers are on.
    pub(crate) fn breaker_state(&self, agent: AgentId, now: Instant) -> Option<BreakerState> {
        self.breakers.get(&agent).map(|b| b.state(now))
    }

    /// Lets an attempt start on `agent` as far as its breaker is concerned:
    /// `Some(true)` when it is a half-open breaker's probe, `None` when
    /// the breaker refuses it.
    #[inline]
    pub(crate) fn open_attempt(&mut self, agent: AgentId, now: Instant) -> Option<bool> {
        if self.breakers.is_empty() {
            return Some(false);
        }
        let Some(breaker) = self.breakers.get_mut(&agent) else {
            return Some(false);
        };
        let half_open = breaker.state(now) == BreakerState::HalfOpen;
        breaker.try_acquire(now).ok()?;
        Some(half_open)
    }

    /// Gives back the probe permit of an attempt that ended without an
    /// outcome, or never started.
    #[inline]
    pub(crate) fn release_probe(&mut self, agent: AgentId) {
        if let Some(breaker) = self.breakers.get_mut(&agent) {
            breaker.release_probe();
        }
    }

    /// Feeds an outcome to `agent`'s breaker. Outcomes of attempts started
    /// before the breaker opened do not count while it is open or
    /// half-open: only probes speak for a recovering agent.
    #[inline(always)]
    pub(crate) fn attempt_outcome(
        &mut self,
        agent: AgentId,
        probe: bool,
        success: bool,
        now: Instant,
    ) -> Verdict {
        if self.breakers.is_empty() {
            return Verdict::Counted;
        }
        let Some(breaker) = self.breakers.get_mut(&agent) else {
            return Verdict::Counted;
        };
        if !probe && !breaker.state(now).is_closed() {
            return Verdict::Counted;
        }
        if success {
            breaker.on_success(now);
        } else if breaker.on_failure(now) {
            return Verdict::Tripped(breaker.next_transition());
        }
        Verdict::Counted
    }

    /// Whether `agent` can take a task of `cost` cells at `now` within its
    /// rate; if not, the instant it could. Nothing is spent. A cost above
    /// the burst (which admission refuses) is let through rather than
    /// blocked for ever.
    pub(crate) fn agent_affords(
        &self,
        agent: AgentId,
        cost: u32,
        now: Instant,
    ) -> Result<(), Instant> {
        let Some(limiter) = self.agent_rates.get(&agent) else {
            return Ok(());
        };
        match limiter.clone().check_n(now, cost) {
            Ok(Err(not_until)) => Err(not_until.earliest()),
            Ok(Ok(())) | Err(_) => Ok(()),
        }
    }

    /// Keeps `agent` from new tasks until `until`, when its rate allows
    /// the task it could not afford.
    pub(crate) fn block_agent_rate(&mut self, agent: AgentId, until: Instant) {
        self.rate_blocked_until.insert(agent, until);
    }

    /// Counts an assignment of `cost` cells against `agent`'s rate.
    /// Returns the instant it conforms again if its next task would exceed
    /// the rate; the agent then takes none until
    /// [`rate_block_ended`](Self::rate_block_ended). Placement checks
    /// [`agent_affords`](Self::agent_affords) first, so the whole cost
    /// conforms and the rate holds exactly.
    #[inline]
    pub(crate) fn spend_agent_rate(
        &mut self,
        agent: AgentId,
        cost: u32,
        now: Instant,
    ) -> Option<Instant> {
        if self.agent_rates.is_empty() {
            return None;
        }
        let limiter = self.agent_rates.get_mut(&agent)?;
        if !matches!(limiter.check_n(now, cost), Ok(Ok(()))) {
            for _ in 0..cost {
                if limiter.check(now).is_err() {
                    break;
                }
            }
        }
        let mut probe = limiter.clone();
        let until = probe.check(now).err()?.earliest();
        self.rate_blocked_until.insert(agent, until);
        Some(until)
    }

    /// Whether `agent`'s rate block is over at `now`; if so it is lifted.
    pub(crate) fn rate_block_ended(&mut self, agent: AgentId, now: Instant) -> bool {
        let ended = self
            .rate_blocked_until
            .get(&agent)
            .is_some_and(|&until| until <= now);
        if ended {
            self.rate_blocked_until.remove(&agent);
        }
        ended
    }

    /// Whether agents' rates are limited.
    #[inline]
    pub(crate) fn rates_agents(&self) -> bool {
        !self.agent_rates.is_empty()
    }

    /// Whether any gate limits agents' slots (breakers or agent rates on).
    #[inline]
    pub(crate) fn limits_agents(&self) -> bool {
        !self.breakers.is_empty() || self.rates_agents()
    }

    /// The slot limit `agent`'s gates set for it with `load` tasks running:
    /// none while its breaker is closed and it is within its rate, zero new
    /// tasks while the breaker is open, the free probe permits while it is
    /// half-open, and no new task while it is over its rate.
    pub(crate) fn slot_limit(&self, agent: AgentId, load: u32, now: Instant) -> Option<u32> {
        let breaker_limit =
            self.breakers
                .get(&agent)
                .and_then(|breaker| match breaker.state(now) {
                    BreakerState::Closed => None,
                    BreakerState::Open { .. } => Some(0),
                    BreakerState::HalfOpen => {
                        let free = breaker
                            .config()
                            .probes()
                            .saturating_sub(breaker.probes_in_flight());
                        Some(load.saturating_add(free))
                    }
                });
        let rate_limit = self
            .rate_blocked_until
            .get(&agent)
            .filter(|&&until| now < until)
            .map(|_| load);
        match (breaker_limit, rate_limit) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ----- kinds --------------------------------------------------------

    /// Whether any gate looks at task kinds (bulkhead or kind rate limit).
    #[inline]
    pub(crate) fn by_kind(&self) -> bool {
        self.bulkhead.is_some() || self.kind_rates.is_some()
    }

    /// Whether the bulkhead lets one more task of `kind` run.
    #[inline(always)]
    pub(crate) fn kind_has_room(&self, kind: Option<KindId>, kinds: &RequirementsTable) -> bool {
        if kind.is_none() {
            return true;
        }
        match (kind.and_then(|k| kinds.kind_name(k)), &self.bulkhead) {
            (Some(name), Some(bulkhead)) => bulkhead.in_flight(name) < bulkhead.limit(name),
            _ => true,
        }
    }

    /// Takes `cost` cells of `kind`'s rate, or says when they will
    /// conform. (A cost above the burst was refused at submission.)
    #[inline(always)]
    pub(crate) fn take_kind_rate(
        &mut self,
        kind: Option<KindId>,
        kinds: &RequirementsTable,
        cost: u32,
        now: Instant,
    ) -> Result<(), Instant> {
        if kind.is_none() {
            return Ok(());
        }
        match (kind.and_then(|k| kinds.kind_name(k)), &mut self.kind_rates) {
            (Some(name), Some(limiter)) => match limiter.check_n(name, now, cost) {
                Ok(admitted) => admitted.map_err(|n| n.earliest()),
                Err(_) => Ok(()),
            },
            _ => Ok(()),
        }
    }

    /// A task of `kind` starts running: it takes a bulkhead slot
    /// ([`kind_has_room`](Self::kind_has_room) said there was one).
    #[inline(always)]
    pub(crate) fn kind_started(&mut self, kind: Option<KindId>, kinds: &RequirementsTable) {
        if kind.is_none() {
            return;
        }
        if let (Some(name), Some(bulkhead)) =
            (kind.and_then(|k| kinds.kind_name(k)), &mut self.bulkhead)
        {
            let _ = bulkhead.try_acquire(name);
        }
    }

    /// A task of `kind` stopped running. Returns whether a bulkhead slot
    /// freed, so tasks of that kind held back may try again.
    #[inline(always)]
    pub(crate) fn kind_ended(&mut self, kind: Option<KindId>, kinds: &RequirementsTable) -> bool {
        if kind.is_none() {
            return false;
        }
        match (kind.and_then(|k| kinds.kind_name(k)), &mut self.bulkhead) {
            (Some(name), Some(bulkhead)) => {
                let _ = bulkhead.release(name);
                true
            }
            _ => false,
        }
    }

    // ----- retries ------------------------------------------------------

    /// Counts a submission towards the retry budget.
    #[inline]
    pub(crate) fn request(&mut self, now: Instant) {
        if let Some(budget) = &mut self.retry_budget {
            budget.record_request(now);
        }
    }

    /// Spends a retry from the budget; `false` when it is exhausted.
    #[inline]
    pub(crate) fn spend_retry(&mut self, now: Instant) -> bool {
        self.retry_budget
            .as_mut()
            .is_none_or(|budget| budget.try_spend(now))
    }

    // ----- snapshots ----------------------------------------------------

    /// Checks gates read from a snapshot against the rest of the state:
    /// no rate limiter or breaker has seen past the dispatcher's `clock`, per-agent
    /// state belongs to registered agents, every rate-blocked agent has its
    /// release timer (`armed` says which are), and the
    /// bulkhead counts exactly the tasks of each kind in flight (`running`
    /// lists their kinds) — a count too high would hold a kind back for
    /// ever, one too low would let it past its limit.
    pub(crate) fn check<'a>(
        &self,
        registry: &Registry,
        clock: Instant,
        armed: impl Fn(Timer, Instant) -> bool,
        running: impl Iterator<Item = &'a str>,
    ) -> Result<(), SchedulerError> {
        let corrupt = |field: String, problem: &str| SchedulerError::CorruptSnapshot {
            field,
            problem: problem.to_string(),
        };
        // A limiter or breaker that saw past the clock would hold its agent
        // or kind back until then, whatever the host's clock says.
        let future = "saw past the dispatcher's clock";
        let breakers = (self.breakers.iter()).map(|(&a, b)| ("breakers", a, b.latest_seen()));
        let rates = (self.agent_rates.iter()).map(|(&a, l)| ("agent_rates", a, l.latest_seen()));
        if let Some((field, agent, _)) = breakers.chain(rates).find(|&(.., at)| at > clock) {
            return Err(corrupt(format!("{field}[{agent}]"), future));
        }
        if self
            .kind_rates
            .as_ref()
            .is_some_and(|limiter| limiter.latest_seen() > clock)
        {
            return Err(corrupt("kind_rates".to_string(), future));
        }
        for (&agent, &until) in &self.rate_blocked_until {
            if !armed(Timer::AgentRate(agent), until) {
                return Err(corrupt(format!("rate_blocked_until[{agent}]"), "no timer"));
            }
        }
        let maps: [(&str, Vec<AgentId>); 3] = [
            ("breakers", self.breakers.keys().copied().collect()),
            ("agent_rates", self.agent_rates.keys().copied().collect()),
            (
                "rate_blocked_until",
                self.rate_blocked_until.keys().copied().collect(),
            ),
        ];
        for (field, agents) in maps {
            if let Some(agent) = agents.iter().find(|&&a| !registry.contains(a)) {
                return Err(corrupt(format!("{field}[{agent}]"), "unknown agent"));
            }
        }
        let Some(bulkhead) = &self.bulkhead else {
            return Ok(());
        };
        let mut counted: BTreeMap<&str, u32> = BTreeMap::new();
        for kind in running {
            *counted.entry(kind).or_default() += 1;
        }
        let busy: BTreeMap<&str, u32> = bulkhead.busy().map(|(k, n)| (k.as_str(), n)).collect();
        if busy != counted {
            return Err(corrupt(
                "bulkhead".to_string(),
                "disagrees with the tasks in flight per kind",
            ));
        }
        Ok(())
    }
}
