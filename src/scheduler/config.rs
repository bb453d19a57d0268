//! Dispatcher configuration, validated when built.

use std::fmt;
use std::time::Duration;

use crate::resilience::{
    BreakerConfig, Bulkhead, ExponentialBackoff, KeyedRateLimiter, Quota, RetryBudget, RetryPolicy,
};

use super::SchedulerError;

/// Heartbeat monitoring: an agent that has not sent a heartbeat for
/// `interval × tolerance` is marked unhealthy and its tasks fail over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Heartbeats {
    /// Expected time between heartbeats.
    pub interval: Duration,
    /// Missed heartbeats tolerated before the agent counts as lost (≥ 1).
    pub tolerance: u32,
}

impl Heartbeats {
    /// The silence after which an agent is lost.
    pub fn timeout(&self) -> Duration {
        self.interval.saturating_mul(self.tolerance)
    }
}

/// Most finished tasks whose terminal state a dispatcher can keep
/// queryable ([`DispatcherConfigBuilder::terminal_history`]): the task table
/// addresses its slots with 32 bits, shared by live tasks and kept records.
pub const MAX_TERMINAL_HISTORY: usize = 1 << 31;

/// Everything a [`Dispatcher`](super::Dispatcher) can be tuned with. Build
/// it with [`DispatcherConfig::builder`].
///
/// Durations may be anything up to [`Duration::MAX`]: every instant the
/// dispatcher computes from them saturates at [`Instant::MAX`](crate::Instant::MAX),
/// which never fires. Counts that size the task table are bounded (see
/// [`MAX_TERMINAL_HISTORY`]).
pub struct DispatcherConfig {
    pub(crate) queue_capacity: usize,
    pub(crate) aging_interval: Option<Duration>,
    pub(crate) reserved_share: f64,
    pub(crate) idempotency_window: Duration,
    pub(crate) heartbeats: Option<Heartbeats>,
    pub(crate) attempt_timeout: Option<Duration>,
    pub(crate) unroutable_timeout: Option<Duration>,
    pub(crate) terminal_history: usize,
    pub(crate) retry: Box<dyn RetryPolicy + Send>,
    pub(crate) retry_budget: Option<RetryBudget>,
    pub(crate) circuit_breaker: Option<BreakerConfig>,
    pub(crate) kind_bulkhead: Option<Bulkhead<String>>,
    pub(crate) kind_rate_limit: Option<KeyedRateLimiter<String>>,
    pub(crate) agent_rate_limit: Option<Quota>,
    pub(crate) preemption: bool,
    pub(crate) seed: u64,
}

impl fmt::Debug for DispatcherConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DispatcherConfig")
            .field("queue_capacity", &self.queue_capacity)
            .field("aging_interval", &self.aging_interval)
            .field("reserved_share", &self.reserved_share)
            .field("idempotency_window", &self.idempotency_window)
            .field("heartbeats", &self.heartbeats)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("unroutable_timeout", &self.unroutable_timeout)
            .field("terminal_history", &self.terminal_history)
            .field("retry", &format_args!("dyn RetryPolicy"))
            .field("retry_budget", &self.retry_budget)
            .field("circuit_breaker", &self.circuit_breaker)
            .field("kind_bulkhead", &self.kind_bulkhead)
            .field("kind_rate_limit", &self.kind_rate_limit)
            .field("agent_rate_limit", &self.agent_rate_limit)
            .field("preemption", &self.preemption)
            .field("seed", &self.seed)
            .finish()
    }
}

impl DispatcherConfig {
    /// A builder with the defaults listed on each of its methods.
    pub fn builder() -> DispatcherConfigBuilder {
        DispatcherConfigBuilder {
            config: DispatcherConfig {
                queue_capacity: 100_000,
                aging_interval: Some(Duration::from_secs(5)),
                reserved_share: 0.0,
                idempotency_window: Duration::from_secs(600),
                heartbeats: None,
                attempt_timeout: None,
                unroutable_timeout: None,
                terminal_history: 10_000,
                retry: Box::new(ExponentialBackoff::default()),
                retry_budget: None,
                circuit_breaker: None,
                kind_bulkhead: None,
                kind_rate_limit: None,
                agent_rate_limit: None,
                preemption: false,
                seed: 0,
            },
        }
    }

    /// The aging interval, if aging is on.
    pub fn aging_interval(&self) -> Option<Duration> {
        self.aging_interval
    }

    /// Heartbeat monitoring, if on.
    pub fn heartbeats(&self) -> Option<Heartbeats> {
        self.heartbeats
    }
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        Self::builder().config
    }
}

/// Builder of [`DispatcherConfig`].
#[derive(Debug)]
pub struct DispatcherConfigBuilder {
    config: DispatcherConfig,
}

impl DispatcherConfigBuilder {
    /// Most tasks waiting (queued or delayed) at once; more are refused.
    /// Default 100,000; must be at least 1.
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.config.queue_capacity = capacity;
        self
    }

    /// Waiting time per level of priority gained. Default 5 s; `None`
    /// disables aging (then low priorities can starve).
    pub fn aging_interval(mut self, interval: Option<Duration>) -> Self {
        self.config.aging_interval = interval;
        self
    }

    /// Share of all agent slots kept free for P0/P1 work: P2/P3 tasks are
    /// only dispatched while less than `1 − share` of the slots are busy.
    /// Default 0; must be in `[0, 1)`.
    pub fn reserved_share(mut self, share: f64) -> Self {
        self.config.reserved_share = share;
        self
    }

    /// How long an idempotency key is remembered. Default 10 minutes.
    pub fn idempotency_window(mut self, window: Duration) -> Self {
        self.config.idempotency_window = window;
        self
    }

    /// Turns heartbeat monitoring on. Default off.
    pub fn heartbeats(mut self, interval: Duration, tolerance: u32) -> Self {
        self.config.heartbeats = Some(Heartbeats {
            interval,
            tolerance,
        });
        self
    }

    /// Default per-attempt timeout for tasks that set none. Default none.
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.config.attempt_timeout = Some(timeout);
        self
    }

    /// Dead-letters a task that found no eligible agent for this long.
    /// Default: wait forever.
    pub fn unroutable_timeout(mut self, timeout: Duration) -> Self {
        self.config.unroutable_timeout = Some(timeout);
        self
    }

    /// How many finished tasks keep a queryable record. Default 10,000;
    /// must be at least 1 and at most [`MAX_TERMINAL_HISTORY`]. A record keeps its task's slot in the task table
    /// until it is forgotten, so the table holds up to the peak number of
    /// live tasks plus this many slots (each about the size of a live task
    /// without its boxed extras).
    pub fn terminal_history(mut self, records: usize) -> Self {
        self.config.terminal_history = records;
        self
    }

    /// The retry policy. Default [`ExponentialBackoff::default`].
    pub fn retry_policy(mut self, policy: impl RetryPolicy + Send + 'static) -> Self {
        self.config.retry = Box::new(policy);
        self
    }

    /// Caps retries at a share of recent traffic; a failure that finds the
    /// budget spent is dead-lettered as retries exhausted. Default: no budget.
    pub fn retry_budget(mut self, budget: RetryBudget) -> Self {
        self.config.retry_budget = Some(budget);
        self
    }

    /// Gives every agent a circuit breaker with this configuration: while a
    /// breaker is open its agent receives no task, and while half-open only
    /// the configured number of probes. Default: no breakers.
    pub fn circuit_breaker(mut self, config: BreakerConfig) -> Self {
        self.config.circuit_breaker = Some(config);
        self
    }

    /// Caps the tasks in flight per task kind
    /// ([`TaskRequirements::kind`](crate::TaskRequirements::kind)); a task of a
    /// kind at its limit waits until one of that kind finishes. Tasks without
    /// a kind are not limited. Default: no bulkhead.
    pub fn kind_bulkhead(mut self, bulkhead: Bulkhead<String>) -> Self {
        self.config.kind_bulkhead = Some(bulkhead);
        self
    }

    /// Limits how fast tasks of each kind are assigned; a task whose kind is
    /// over its rate waits until the limiter's `NotUntil` instant. Default:
    /// no limit.
    pub fn kind_rate_limit(mut self, limiter: KeyedRateLimiter<String>) -> Self {
        self.config.kind_rate_limit = Some(limiter);
        self
    }

    /// Limits how fast each agent receives tasks: an agent over its quota
    /// gets no new task until it conforms again. Default: no limit.
    pub fn agent_rate_limit(mut self, quota: Quota) -> Self {
        self.config.agent_rate_limit = Some(quota);
        self
    }

    /// Lets a waiting P0 task with no free eligible slot preempt the
    /// lowest-priority running task on an eligible agent; the preempted task
    /// goes back to the queue without spending a retry. Default off.
    pub fn preemption(mut self, enabled: bool) -> Self {
        self.config.preemption = enabled;
        self
    }

    /// Seed of the dispatcher's random source (retry jitter). Default 0.
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = seed;
        self
    }

    /// Validates and builds.
    ///
    /// # Errors
    ///
    /// [`SchedulerError::InvalidConfig`] naming the first invalid setting.
    pub fn build(self) -> Result<DispatcherConfig, SchedulerError> {
        let c = &self.config;
        let invalid = |setting: &'static str, value: String| {
            Err(SchedulerError::InvalidConfig { setting, value })
        };
        if c.queue_capacity == 0 {
            return invalid("queue capacity", "0".into());
        }
        if !(0.0..1.0).contains(&c.reserved_share) {
            return invalid("reserved share", c.reserved_share.to_string());
        }
        if c.aging_interval.is_some_and(|d| d.is_zero()) {
            return invalid("aging interval", "0s".into());
        }
        if let Some(h) = c.heartbeats {
            if h.interval.is_zero() || h.tolerance == 0 {
                return invalid("heartbeats", format!("{:?} × {}", h.interval, h.tolerance));
            }
        }
        if c.attempt_timeout.is_some_and(|d| d.is_zero()) {
            return invalid("attempt timeout", "0s".into());
        }
        if c.terminal_history == 0 || c.terminal_history > MAX_TERMINAL_HISTORY {
            return invalid("terminal history", c.terminal_history.to_string());
        }
        Ok(self.config)
    }
}
