//! Scale hints: how many agents a pool should have for the work it could
//! take, with a Kubernetes-style activation threshold, tolerance and
//! scale-down stabilisation window.
//!
//! A pool is a set of capabilities: its agents are the registered agents
//! that have them all, its work the tasks that require none beyond them.
//! The dispatcher counts each watched pool's arrivals and completions as
//! they happen ([`Dispatcher::watch_pool`](super::Dispatcher::watch_pool))
//! and answers [`Dispatcher::scale_hint`](super::Dispatcher::scale_hint)
//! with a [`ScaleHint`]. The hint is advice: the host (or its
//! orchestrator) starts and stops agents.

mod window;

use std::collections::BTreeSet;
use std::time::Duration;

use thiserror::Error;
use window::{Keep, SlicedWindow};

use crate::Instant;
use crate::metrics::Throughput;

/// How a pool's desired number of agents is worked out. Built with
/// [`ScalePolicy::builder`], which refuses values that cannot work.
///
/// The demand, in task slots, is what arrivals need by Little's law
/// (arrivals per second × mean run time) plus what clears the queue within
/// the drain time (queued × mean run time ÷ drain). Before any task of the
/// window has completed (no run time known yet), it is every task present
/// (queued + in flight). Then:
///
/// - below the **activation** threshold (queued + in flight), the pool
///   wants no agent; at or above it, at least one;
/// - the desired count is the demand over the slots of one agent at the
///   **target utilisation** (by default 80 %, the headroom that keeps a
///   queue from growing under random arrivals), rounded up, within
///   `min_agents..=max_agents`;
/// - within the **tolerance** of the current count (by default 10 %), the
///   count stays;
/// - it rises at most by the **scale-up limit** within its period (by
///   default to twice the lowest count of the last 15 seconds, or 4 more
///   agents, whichever is more), so a cold start or a burst whose run
///   time is not known yet does not ask for a thousand agents at once;
/// - it falls only to the highest count recommended during the
///   **stabilisation** window (by default 5 minutes), so a dip does not
///   shed agents that the next minute needs again.
///
/// The first hint counts from the pool's online agents. The defaults are
/// a Kubernetes horizontal pod autoscaler's.
///
/// ```
/// use std::time::Duration;
/// use taskweave::scheduler::ScalePolicy;
///
/// let policy = ScalePolicy::builder()
///     .slots_per_agent(8)
///     .agents(0, 50)
///     .activation(1)
///     .stabilisation(Duration::from_secs(300))
///     .build()?;
/// assert_eq!(policy.slots_per_agent(), 8);
/// assert!(ScalePolicy::builder().agents(5, 2).build().is_err());
/// # Ok::<(), taskweave::scheduler::ScaleError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScalePolicy {
    slots_per_agent: u32,
    min_agents: u32,
    max_agents: u32,
    activation: u32,
    tolerance_percent: u8,
    target_percent: u8,
    stabilisation: Duration,
    rate_window: Duration,
    drain: Duration,
    up_percent: u32,
    up_agents: u32,
    up_period: Duration,
}

/// The largest agent count or slot count a policy may name.
pub const MAX_SCALE: u32 = 1_000_000;

/// The longest stabilisation window or drain time.
pub const MAX_SCALE_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

/// Why a [`ScalePolicy`] was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ScaleError {
    /// An agent takes at least one task at a time.
    #[error("slots_per_agent is 0; an agent runs at least one task at a time")]
    ZeroSlots,
    /// The bounds are crossed.
    #[error("min_agents {min} is above max_agents {max}; swap them")]
    MinAboveMax {
        /// The floor given.
        min: u32,
        /// The ceiling given.
        max: u32,
    },
    /// A count above its limit ([`MAX_SCALE`] for agents and slots).
    #[error("{field} is {value}, above the limit of {limit}")]
    TooLarge {
        /// The setting.
        field: &'static str,
        /// Its value.
        value: u32,
        /// The most it may be.
        limit: u32,
    },
    /// A tolerance above 100 %.
    #[error("a tolerance of {0} % is above 100 %")]
    Tolerance(u8),
    /// A scale-up limit that never lets the count rise.
    #[error("a scale-up limit of 0 % and 0 agents never lets the count rise; allow one of them")]
    NoScaleUp,
    /// A target utilisation of 0 or above 100 %.
    #[error("a target utilisation of {0} % is outside 1 to 100 %")]
    TargetUtilisation(u8),
    /// A window outside what the setting allows.
    #[error("{field} is {value:?}; it must be from {min:?} to {max:?}")]
    Window {
        /// The setting.
        field: &'static str,
        /// Its value.
        value: Duration,
        /// The shortest allowed.
        min: Duration,
        /// The longest allowed.
        max: Duration,
    },
    /// No pool of this name is watched.
    #[error("no pool `{0}` is watched; watch it first (Dispatcher::watch_pool)")]
    UnknownPool(String),
    /// A pool of this name is watched already.
    #[error("a pool `{0}` is watched already; unwatch it first to change it")]
    PoolExists(String),
}

impl ScalePolicy {
    /// A policy with every setting at its default: one slot per agent,
    /// 0 to 1,000 agents, activation at 1 task, 80 % target utilisation,
    /// 10 % tolerance, a scale-up limit of 100 % or 4 agents per 15 s, a
    /// 5-minute
    /// stabilisation window, rates over a 60-second window, backlog drained
    /// in 30 seconds.
    pub fn builder() -> ScalePolicyBuilder {
        ScalePolicyBuilder {
            policy: ScalePolicy {
                slots_per_agent: 1,
                min_agents: 0,
                max_agents: 1_000,
                activation: 1,
                tolerance_percent: 10,
                target_percent: 80,
                stabilisation: Duration::from_secs(300),
                rate_window: Duration::from_secs(60),
                drain: Duration::from_secs(30),
                up_percent: 100,
                up_agents: 4,
                up_period: Duration::from_secs(15),
            },
        }
    }

    /// Tasks one agent of the pool runs at once.
    pub fn slots_per_agent(&self) -> u32 {
        self.slots_per_agent
    }

    /// The floor and ceiling of the desired count.
    pub fn agents(&self) -> (u32, u32) {
        (self.min_agents, self.max_agents)
    }

    /// Work (queued + in flight) below which the pool wants no agent.
    pub fn activation(&self) -> u32 {
        self.activation
    }

    /// The scale-down stabilisation window.
    pub fn stabilisation(&self) -> Duration {
        self.stabilisation
    }

    /// The window arrival and completion rates are measured over.
    pub fn rate_window(&self) -> Duration {
        self.rate_window
    }

    /// The scale-up limit: percent, agents, period (see
    /// [`ScalePolicyBuilder::scale_up`]).
    pub fn scale_up(&self) -> (u32, u32, Duration) {
        (self.up_percent, self.up_agents, self.up_period)
    }
}

/// Builds a [`ScalePolicy`].
#[derive(Clone, Copy, Debug)]
#[must_use = "a builder does nothing until built"]
pub struct ScalePolicyBuilder {
    policy: ScalePolicy,
}

impl ScalePolicyBuilder {
    /// Tasks one agent runs at once (default 1).
    pub fn slots_per_agent(mut self, slots: u32) -> Self {
        self.policy.slots_per_agent = slots;
        self
    }

    /// The floor and ceiling of the desired count (default 0 and 1,000).
    pub fn agents(mut self, min: u32, max: u32) -> Self {
        self.policy.min_agents = min;
        self.policy.max_agents = max;
        self
    }

    /// Work (queued + in flight) below which the pool wants no agent
    /// (default 1: any task activates it).
    pub fn activation(mut self, tasks: u32) -> Self {
        self.policy.activation = tasks;
        self
    }

    /// The share of its slots (in percent, 1 to 100) a pool should keep
    /// busy (default 80).
    pub fn target_utilisation_percent(mut self, percent: u8) -> Self {
        self.policy.target_percent = percent;
        self
    }

    /// How far (in percent of the current count's slots) the demand may
    /// move before the count changes (default 10).
    pub fn tolerance_percent(mut self, percent: u8) -> Self {
        self.policy.tolerance_percent = percent;
        self
    }

    /// How long a lower count must be all the policy recommends before
    /// the count falls (default 5 minutes; at most a day).
    pub fn stabilisation(mut self, window: Duration) -> Self {
        self.policy.stabilisation = window;
        self
    }

    /// How fast the count may rise: within any `period`, to the lowest
    /// count of that period plus `percent` % of it or plus `agents`,
    /// whichever is more (default 100 %, 4 agents, 15 s; the period 1 s to
    /// 1 h, the percentage at most 10,000).
    pub fn scale_up(mut self, percent: u32, agents: u32, period: Duration) -> Self {
        self.policy.up_percent = percent;
        self.policy.up_agents = agents;
        self.policy.up_period = period;
        self
    }

    /// The window of the arrival and completion rates (default 60 s; 1 s
    /// to 1 h).
    pub fn rate_window(mut self, window: Duration) -> Self {
        self.policy.rate_window = window;
        self
    }

    /// How soon the backlog should be cleared (default 30 s; 1 s to a
    /// day).
    pub fn drain(mut self, drain: Duration) -> Self {
        self.policy.drain = drain;
        self
    }

    /// The policy.
    ///
    /// # Errors
    ///
    /// A [`ScaleError`] naming the setting that cannot work.
    pub fn build(self) -> Result<ScalePolicy, ScaleError> {
        let p = self.policy;
        if p.slots_per_agent == 0 {
            return Err(ScaleError::ZeroSlots);
        }
        for (field, value) in [
            ("slots_per_agent", p.slots_per_agent),
            ("max_agents", p.max_agents),
            ("activation", p.activation),
            ("scale-up agents", p.up_agents),
        ] {
            if value > MAX_SCALE {
                return Err(ScaleError::TooLarge {
                    field,
                    value,
                    limit: MAX_SCALE,
                });
            }
        }
        if p.min_agents > p.max_agents {
            return Err(ScaleError::MinAboveMax {
                min: p.min_agents,
                max: p.max_agents,
            });
        }
        if p.tolerance_percent > 100 {
            return Err(ScaleError::Tolerance(p.tolerance_percent));
        }
        if p.target_percent == 0 || p.target_percent > 100 {
            return Err(ScaleError::TargetUtilisation(p.target_percent));
        }
        if p.up_percent > 10_000 {
            return Err(ScaleError::TooLarge {
                field: "scale-up percent",
                value: p.up_percent,
                limit: 10_000,
            });
        }
        if p.up_percent == 0 && p.up_agents == 0 {
            return Err(ScaleError::NoScaleUp);
        }
        let second = Duration::from_secs(1);
        for (field, value, min, max) in [
            (
                "stabilisation",
                p.stabilisation,
                Duration::ZERO,
                MAX_SCALE_WINDOW,
            ),
            (
                "rate_window",
                p.rate_window,
                second,
                Duration::from_secs(3_600),
            ),
            ("drain", p.drain, second, MAX_SCALE_WINDOW),
            (
                "scale-up period",
                p.up_period,
                second,
                Duration::from_secs(3_600),
            ),
        ] {
            if value < min || value > max {
                return Err(ScaleError::Window {
                    field,
                    value,
                    min,
                    max,
                });
            }
        }
        Ok(p)
    }
}

/// Which way a pool's desired count moved with a hint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum ScaleChange {
    /// More agents than the last hint.
    Up,
    /// Fewer.
    Down,
    /// As many.
    Hold,
}

/// One pool's load and the number of agents it should have, from
/// [`Dispatcher::scale_hint`](super::Dispatcher::scale_hint).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ScaleHint {
    /// The pool's name.
    pub pool: String,
    /// Its tasks waiting in the queue.
    pub queued: usize,
    /// Its tasks running.
    pub in_flight: usize,
    /// Online agents with every capability of the pool (draining,
    /// unhealthy and offline ones are not counted).
    pub agents: usize,
    /// Their slots (the sum of their capacities).
    pub capacity: u64,
    /// How long the longest-waiting of its queued tasks has been in the
    /// queue (since it last entered it), exactly.
    pub oldest_queued: Option<Duration>,
    /// Arrivals per second over the rate window.
    pub arrivals_per_second: f64,
    /// Completions per second over the rate window.
    pub completions_per_second: f64,
    /// Mean run time of the tasks completed in the rate window.
    pub mean_run_time: Option<Duration>,
    /// The task slots the pool needs (see [`ScalePolicy`]).
    pub demand: f64,
    /// The number of agents the pool should have.
    pub desired_agents: u32,
    /// How that compares with the last hint.
    pub change: ScaleChange,
}

/// A pool's load as the dispatcher counts it now.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PoolLoad {
    pub(crate) queued: usize,
    pub(crate) in_flight: usize,
    pub(crate) agents: usize,
    pub(crate) capacity: u64,
    pub(crate) oldest_queued: Option<Instant>,
}

/// One watched pool: its capabilities, policy, rate windows, and the
/// windows that hold back a fall (stabilisation) and a rise (scale-up).
#[derive(Clone, Debug)]
pub(crate) struct Watch {
    pub(crate) name: String,
    pub(crate) capabilities: BTreeSet<String>,
    policy: ScalePolicy,
    arrivals: Throughput,
    completions: Throughput,
    run_micros: Throughput,
    /// Recommendations of the stabilisation window (the highest of each
    /// slice).
    recommended: SlicedWindow,
    /// Desired counts of the scale-up period (the lowest of each slice).
    counts: SlicedWindow,
    /// The count of the last hint; before the first, the pool's online
    /// agents are the count it starts from.
    desired: Option<u32>,
}

/// Buckets of a rate window.
const RATE_BUCKETS: usize = 60;

/// What the load asks for, before the windows hold it back.
struct Recommendation {
    agents: u32,
    demand: f64,
    arrivals: f64,
    mean_run_time: Option<Duration>,
}

impl Watch {
    pub(crate) fn new(
        name: String,
        capabilities: BTreeSet<String>,
        policy: ScalePolicy,
    ) -> Result<Self, ScaleError> {
        let window = || {
            Throughput::new(policy.rate_window, RATE_BUCKETS).map_err(|_| ScaleError::Window {
                field: "rate_window",
                value: policy.rate_window,
                min: Duration::from_secs(1),
                max: Duration::from_secs(3_600),
            })
        };
        Ok(Watch {
            name,
            capabilities,
            policy,
            arrivals: window()?,
            completions: window()?,
            run_micros: window()?,
            recommended: SlicedWindow::new(policy.stabilisation, Keep::Highest),
            counts: SlicedWindow::new(policy.up_period, Keep::Lowest),
            desired: None,
        })
    }

    /// Whether a task that requires `required` is work for this pool.
    pub(crate) fn takes(&self, required: &BTreeSet<String>) -> bool {
        required.is_subset(&self.capabilities)
    }

    pub(crate) fn arrived(&mut self, now: Instant) {
        self.arrivals.record(now);
    }

    pub(crate) fn completed(&mut self, ran_nanos: u64, now: Instant) {
        self.completions.record(now);
        self.run_micros.record_n(now, ran_nanos / 1_000);
    }

    /// The hint for `load` at `now`, recorded in the windows.
    pub(crate) fn hint(&mut self, load: PoolLoad, now: Instant) -> ScaleHint {
        let (min, max) = self.policy.agents();
        let serving = u32::try_from(load.agents).unwrap_or(u32::MAX);
        let current = self.desired.unwrap_or_else(|| serving.clamp(min, max));
        let recommendation = self.recommend(load, current, now);
        let desired = self.settle(recommendation.agents, current, now);
        ScaleHint {
            pool: self.name.clone(),
            queued: load.queued,
            in_flight: load.in_flight,
            agents: load.agents,
            capacity: load.capacity,
            oldest_queued: load
                .oldest_queued
                .map(|at| now.saturating_duration_since(at)),
            arrivals_per_second: recommendation.arrivals,
            completions_per_second: self.completions.per_second(now),
            mean_run_time: recommendation.mean_run_time,
            demand: recommendation.demand,
            desired_agents: desired,
            change: match desired.cmp(&current) {
                std::cmp::Ordering::Greater => ScaleChange::Up,
                std::cmp::Ordering::Less => ScaleChange::Down,
                std::cmp::Ordering::Equal => ScaleChange::Hold,
            },
        }
    }

    /// The count `load` asks for: the demand over an agent's busy slots,
    /// activated, bounded, and held within the tolerance of `current`.
    fn recommend(&self, load: PoolLoad, current: u32, now: Instant) -> Recommendation {
        let p = self.policy;
        let arrivals = self.arrivals.per_second(now);
        let completed = self.completions.count(now);
        let mean_run_time =
            (completed > 0).then(|| Duration::from_micros(self.run_micros.count(now) / completed));
        let work = load.queued.saturating_add(load.in_flight);
        let demand = match mean_run_time {
            Some(run) => {
                let run = run.as_secs_f64();
                arrivals * run + load.queued as f64 * run / p.drain.as_secs_f64()
            }
            None => work as f64,
        };
        // The busy slots one agent should carry.
        let slots = f64::from(p.slots_per_agent) * f64::from(p.target_percent) / 100.0;
        let active = work >= p.activation as usize && work > 0;
        let mut agents = if active {
            // Saturating: a demand past u32 is clamped by max_agents.
            ((demand / slots).ceil() as u32).max(1)
        } else {
            0
        };
        agents = agents.clamp(p.min_agents, p.max_agents);
        if active && current > 0 && agents != current {
            let ratio = demand / (f64::from(current) * slots);
            if (ratio - 1.0).abs() <= f64::from(p.tolerance_percent) / 100.0 {
                agents = current;
            }
        }
        Recommendation {
            agents,
            demand,
            arrivals,
            mean_run_time,
        }
    }

    /// The count after the windows, from `current`: a rise up to the
    /// scale-up limit, a fall only to the highest recommendation of the
    /// stabilisation window.
    fn settle(&mut self, recommended: u32, current: u32, now: Instant) -> u32 {
        let p = self.policy;
        self.recommended.file(recommended, now);
        let desired = if recommended >= current {
            // The lowest count of the period: the current one counts too,
            // as the count the period started with when nothing else did.
            self.counts.file(current, now);
            let base = self.counts.lowest().unwrap_or(current);
            let by_share = u64::from(base) * (100 + u64::from(p.up_percent)) / 100;
            let by_agents = u64::from(base) + u64::from(p.up_agents);
            let limit = u32::try_from(by_share.max(by_agents)).unwrap_or(u32::MAX);
            recommended.min(limit.max(current))
        } else {
            // Never above the current count: a recommendation the
            // scale-up limit held back is not a reason to rise.
            self.recommended
                .highest()
                .unwrap_or(recommended)
                .min(current)
        };
        self.counts.file(desired, now);
        self.desired = Some(desired);
        desired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A watch of `policy` at 100 % utilisation with no scale-up limit
    /// to speak of.
    fn watch(policy: ScalePolicyBuilder) -> Watch {
        let policy = policy
            .target_utilisation_percent(100)
            .scale_up(10_000, MAX_SCALE, Duration::from_secs(1))
            .build()
            .unwrap();
        Watch::new("pool".into(), BTreeSet::new(), policy).unwrap()
    }

    fn queued(n: usize) -> PoolLoad {
        PoolLoad {
            queued: n,
            ..PoolLoad::default()
        }
    }

    #[test]
    fn a_demand_within_the_tolerance_keeps_the_count() {
        let mut w = watch(ScalePolicy::builder().tolerance_percent(10));
        let now = Instant::from_secs(1);
        assert_eq!(w.hint(queued(20), now).desired_agents, 20);
        // 21 is 5 % above 20 slots: held. 23 is 15 % above: raised.
        assert_eq!(w.hint(queued(21), now).change, ScaleChange::Hold);
        let hint = w.hint(queued(23), now);
        assert_eq!((hint.desired_agents, hint.change), (23, ScaleChange::Up));
    }

    #[test]
    fn the_window_forgets_slices_that_left_it_and_a_clock_stepping_back_files_in_the_latest() {
        let mut w = watch(ScalePolicy::builder().stabilisation(Duration::from_secs(60)));
        assert_eq!(w.hint(queued(9), Instant::from_secs(10)).desired_agents, 9);
        // Earlier than the last hint: filed in the latest slice, no panic.
        assert_eq!(w.hint(queued(1), Instant::from_secs(5)).desired_agents, 9);
        assert_eq!(w.hint(queued(1), Instant::from_secs(69)).desired_agents, 9);
        let hint = w.hint(queued(1), Instant::from_secs(71));
        assert_eq!((hint.desired_agents, hint.change), (1, ScaleChange::Down));
        assert!(w.recommended.len() <= window::SLICES as usize + 1);
    }

    #[test]
    fn an_enormous_backlog_is_clamped_to_the_ceiling() {
        let mut w = watch(ScalePolicy::builder().agents(2, 7));
        let hint = w.hint(queued(usize::MAX), Instant::ZERO);
        assert_eq!(hint.desired_agents, 7);
        // No work, above the floor: down to the floor after the window.
        let later = Instant::ZERO.saturating_add(Duration::from_secs(301));
        assert_eq!(w.hint(PoolLoad::default(), later).desired_agents, 2);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Any settings a host supplies are built or refused, never a
        /// panic; a built policy's hints, over any loads, events and
        /// clock readings (backwards too), stay within its floor and
        /// ceiling, with a finite demand.
        #[test]
        fn any_settings_and_loads_give_bounded_hints(
            // Mostly valid, with the edges of each range (0, the limits
            // and just past them) in reach; a refused set ends the case.
            slots in 0u32..1_000_100,
            min in 0u32..100,
            max in 0u32..1_000_100,
            activation in 0u32..1_000_100,
            target in 0u8..=101,
            tolerance in 0u8..=101,
            stabilisation in 0u64..90_000,
            rate_window in 0u64..3_700,
            drain in 0u64..90_000,
            steps in proptest::collection::vec(
                (
                    (0u64..u64::MAX / 2, 0usize..usize::MAX, 0usize..10_000),
                    (0u8..4, 0u64..u64::MAX, 0usize..usize::MAX),
                ),
                1..40,
            ),
        ) {
            let built = ScalePolicy::builder()
                .slots_per_agent(slots)
                .agents(min, max)
                .activation(activation)
                .target_utilisation_percent(target)
                .tolerance_percent(tolerance)
                .stabilisation(Duration::from_secs(stabilisation))
                .rate_window(Duration::from_secs(rate_window))
                .drain(Duration::from_secs(drain))
                .build();
            let Ok(policy) = built else {
                return Ok(());
            };
            let mut w = Watch::new("p".into(), BTreeSet::new(), policy).unwrap();
            for ((at, queued, in_flight), (event, ran, agents)) in steps {
                let now = Instant::from_nanos(at);
                match event {
                    0 => w.arrived(now),
                    1 => w.completed(ran, now),
                    _ => {}
                }
                let load = PoolLoad {
                    queued,
                    in_flight,
                    oldest_queued: Some(Instant::from_nanos(at / 2)),
                    agents,
                    ..PoolLoad::default()
                };
                let hint = w.hint(load, now);
                proptest::prop_assert!(hint.demand.is_finite() && hint.demand >= 0.0);
                proptest::prop_assert!(hint.desired_agents <= policy.agents().1);
                proptest::prop_assert!(hint.desired_agents >= policy.agents().0);
                proptest::prop_assert!(w.recommended.len() <= window::SLICES as usize + 1);
                proptest::prop_assert!(w.counts.len() <= window::SLICES as usize + 1);
            }
        }
    }

    #[test]
    fn a_rise_is_held_to_the_scale_up_limit_of_its_period() {
        // Defaults: twice the lowest count of the last 15 s, or 4 more.
        let policy = ScalePolicy::builder()
            .target_utilisation_percent(100)
            .build()
            .unwrap();
        let mut w = Watch::new("pool".into(), BTreeSet::new(), policy).unwrap();
        let at = |secs| Instant::from_secs(secs);
        let counts: Vec<u32> = [0, 5, 10, 15, 20, 30, 45]
            .into_iter()
            .map(|s| w.hint(queued(1_000), at(s)).desired_agents)
            .collect();
        // From 0: +4; then the lowest of the period (0, still within 15 s)
        // holds it; past it, each period doubles the count.
        assert_eq!(counts, [4, 4, 4, 8, 8, 16, 32]);
        // A fall is not held back by what the limit kept from rising.
        let later = at(45 + 301);
        assert_eq!(w.hint(queued(3), later).desired_agents, 3);
    }

    #[test]
    fn the_first_hint_counts_from_the_agents_serving() {
        let policy = ScalePolicy::builder().target_utilisation_percent(100);
        let mut w = Watch::new("pool".into(), BTreeSet::new(), policy.build().unwrap()).unwrap();
        let serving = PoolLoad {
            queued: 1_000,
            agents: 5,
            ..PoolLoad::default()
        };
        let hint = w.hint(serving, Instant::from_secs(1));
        // From 5: twice as many at most.
        assert_eq!((hint.desired_agents, hint.change), (10, ScaleChange::Up));
    }

    #[test]
    fn the_mean_run_time_and_rates_come_from_the_window() {
        let mut w = watch(ScalePolicy::builder().drain(Duration::from_secs(10)));
        let at = Instant::from_secs(30);
        for _ in 0..120 {
            w.arrived(at);
        }
        w.completed(2_000_000_000, at);
        w.completed(4_000_000_000, at);
        let hint = w.hint(queued(10), at);
        assert_eq!(hint.mean_run_time, Some(Duration::from_secs(3)));
        assert_eq!(hint.arrivals_per_second, 2.0);
        // 2/s × 3 s, plus 10 queued × 3 s over a 10 s drain.
        assert_eq!(hint.demand, 9.0);
        assert_eq!(hint.desired_agents, 9);
    }
}
