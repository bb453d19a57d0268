//! Dispatcher configuration, validated when built.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::resilience::{
    BreakerConfig, Bulkhead, ExponentialBackoff, KeyedRateLimiter, Quota, RetryBudget, RetryPolicy,
    RetrySpec,
};

use super::gates::concurrency::ConcurrencyLimit;
use super::gates::tenants::TenantQuota;
use super::{MAX_KEY_BYTES, SchedulerError};
use crate::TenantId;

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
///
/// A configuration is cheap to clone (the retry policy is shared), and
/// travels with every [`Snapshot`](super::Snapshot): a restore checks that
/// the host's configuration is the one the snapshot was taken with, and
/// [`Snapshot::config`](super::Snapshot::config) gives it back.
#[derive(Clone)]
pub struct DispatcherConfig {
    pub(crate) settings: Settings,
    pub(crate) retry: RetrySetting,
}

/// Every setting of a [`DispatcherConfig`] but the retry policy: plain data,
/// stored in snapshots and compared on restore.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(crate) struct Settings {
    pub(crate) queue_capacity: usize,
    pub(crate) aging_interval: Option<Duration>,
    pub(crate) reserved_share: f64,
    pub(crate) idempotency_window: Duration,
    pub(crate) heartbeats: Option<Heartbeats>,
    pub(crate) attempt_timeout: Option<Duration>,
    pub(crate) unroutable_timeout: Option<Duration>,
    pub(crate) terminal_history: usize,
    pub(crate) retry_budget: Option<RetryBudget>,
    pub(crate) circuit_breaker: Option<BreakerConfig>,
    pub(crate) kind_bulkhead: Option<Bulkhead<String>>,
    pub(crate) kind_rate_limit: Option<KeyedRateLimiter<String>>,
    pub(crate) agent_rate_limit: Option<Quota>,
    pub(crate) preemption: bool,
    pub(crate) seed: u64,
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "BTreeMap::is_empty")
    )]
    pub(crate) concurrency_limits: BTreeMap<String, ConcurrencyLimit>,
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "BTreeMap::is_empty")
    )]
    pub(crate) tenant_quotas: BTreeMap<TenantId, TenantQuota>,
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub(crate) default_tenant_quota: Option<TenantQuota>,
}

/// The retry policy, shared, with its description as data when it is a
/// built-in one ([`RetryPolicy::spec`]).
#[derive(Clone)]
pub(crate) struct RetrySetting {
    pub(crate) spec: Option<RetrySpec>,
    pub(crate) policy: Arc<dyn RetryPolicy + Send + Sync>,
}

impl RetrySetting {
    pub(crate) fn new(policy: impl RetryPolicy + Send + Sync + 'static) -> Self {
        RetrySetting {
            spec: policy.spec(),
            policy: Arc::new(policy),
        }
    }
}

impl fmt::Debug for DispatcherConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let retry: &dyn fmt::Debug = match &self.retry.spec {
            Some(spec) => spec,
            None => &format_args!("a host RetryPolicy"),
        };
        f.debug_struct("DispatcherConfig")
            .field("settings", &self.settings)
            .field("retry", retry)
            .finish()
    }
}

impl DispatcherConfig {
    /// A builder with the defaults listed on each of its methods.
    pub fn builder() -> DispatcherConfigBuilder {
        DispatcherConfigBuilder {
            config: DispatcherConfig {
                settings: Settings {
                    queue_capacity: 100_000,
                    aging_interval: Some(Duration::from_secs(5)),
                    reserved_share: 0.0,
                    idempotency_window: Duration::from_secs(600),
                    heartbeats: None,
                    attempt_timeout: None,
                    unroutable_timeout: None,
                    terminal_history: 10_000,
                    retry_budget: None,
                    circuit_breaker: None,
                    kind_bulkhead: None,
                    kind_rate_limit: None,
                    agent_rate_limit: None,
                    preemption: false,
                    seed: 0,
                    concurrency_limits: BTreeMap::new(),
                    tenant_quotas: BTreeMap::new(),
                    default_tenant_quota: None,
                },
                retry: RetrySetting::new(ExponentialBackoff::default()),
            },
        }
    }

    /// The aging interval, if aging is on.
    pub fn aging_interval(&self) -> Option<Duration> {
        self.settings.aging_interval
    }

    /// Heartbeat monitoring, if on.
    pub fn heartbeats(&self) -> Option<Heartbeats> {
        self.settings.heartbeats
    }

    /// Most tasks waiting (queued or delayed) at once.
    pub fn queue_capacity(&self) -> usize {
        self.settings.queue_capacity
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
        self.config.settings.queue_capacity = capacity;
        self
    }

    /// Waiting time per level of priority gained. Default 5 s; `None`
    /// disables aging (then low priorities can starve).
    pub fn aging_interval(mut self, interval: Option<Duration>) -> Self {
        self.config.settings.aging_interval = interval;
        self
    }

    /// Share of all agent slots kept free for P0/P1 work: P2/P3 tasks are
    /// only dispatched while less than `1 − share` of the slots are busy.
    /// Default 0; must be in `[0, 1)`.
    pub fn reserved_share(mut self, share: f64) -> Self {
        self.config.settings.reserved_share = share;
        self
    }

    /// How long an idempotency key is remembered. Default 10 minutes.
    pub fn idempotency_window(mut self, window: Duration) -> Self {
        self.config.settings.idempotency_window = window;
        self
    }

    /// Turns heartbeat monitoring on. Default off.
    pub fn heartbeats(mut self, interval: Duration, tolerance: u32) -> Self {
        self.config.settings.heartbeats = Some(Heartbeats {
            interval,
            tolerance,
        });
        self
    }

    /// Default per-attempt timeout for tasks that set none. Default none.
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.config.settings.attempt_timeout = Some(timeout);
        self
    }

    /// Dead-letters a task that found no eligible agent for this long.
    /// Default: wait forever.
    pub fn unroutable_timeout(mut self, timeout: Duration) -> Self {
        self.config.settings.unroutable_timeout = Some(timeout);
        self
    }

    /// How many finished tasks keep a queryable record. Default 10,000;
    /// must be at least 1 and at most [`MAX_TERMINAL_HISTORY`]. A record keeps its task's slot in the task table
    /// until it is forgotten, so the table holds up to the peak number of
    /// live tasks plus this many slots (each about the size of a live task
    /// without its boxed extras).
    pub fn terminal_history(mut self, records: usize) -> Self {
        self.config.settings.terminal_history = records;
        self
    }

    /// The retry policy. Default [`ExponentialBackoff::default`]. A
    /// built-in policy (one whose [`RetryPolicy::spec`] describes it)
    /// travels with snapshots; a host policy must be given again on restore.
    pub fn retry_policy(mut self, policy: impl RetryPolicy + Send + Sync + 'static) -> Self {
        self.config.retry = RetrySetting::new(policy);
        self
    }

    /// Caps retries at a share of recent traffic; a failure that finds the
    /// budget spent is dead-lettered as retries exhausted. Default: no budget.
    pub fn retry_budget(mut self, budget: RetryBudget) -> Self {
        self.config.settings.retry_budget = Some(budget);
        self
    }

    /// Gives every agent a circuit breaker with this configuration: while a
    /// breaker is open its agent receives no task, and while half-open only
    /// the configured number of probes. Default: no breakers.
    pub fn circuit_breaker(mut self, config: BreakerConfig) -> Self {
        self.config.settings.circuit_breaker = Some(config);
        self
    }

    /// Caps the tasks in flight per task kind
    /// ([`TaskRequirements::kind`](crate::TaskRequirements::kind)); a task of a
    /// kind at its limit waits until one of that kind finishes. Tasks without
    /// a kind are not limited. Default: no bulkhead.
    pub fn kind_bulkhead(mut self, bulkhead: Bulkhead<String>) -> Self {
        self.config.settings.kind_bulkhead = Some(bulkhead);
        self
    }

    /// Limits how fast tasks of each kind are assigned; a task whose kind is
    /// over its rate waits until the limiter's `NotUntil` instant. Default:
    /// no limit.
    pub fn kind_rate_limit(mut self, limiter: KeyedRateLimiter<String>) -> Self {
        self.config.settings.kind_rate_limit = Some(limiter);
        self
    }

    /// Limits how fast each agent receives tasks, in cost units
    /// ([`TaskSpec::cost`](super::TaskSpec::cost)): an agent takes a task
    /// only when the task's whole cost conforms to its quota, so over any
    /// window it starts at most its burst plus what the rate earns. An
    /// agent that cannot pay for a task is held back until it can, and
    /// the task goes to another. Default: no limit.
    pub fn agent_rate_limit(mut self, quota: Quota) -> Self {
        self.config.settings.agent_rate_limit = Some(quota);
        self
    }

    /// Lets a waiting P0 task with no free eligible slot preempt the
    /// lowest-priority running task on an eligible agent; the preempted task
    /// goes back to the queue without spending a retry. Default off.
    pub fn preemption(mut self, enabled: bool) -> Self {
        self.config.settings.preemption = enabled;
        self
    }

    /// Limits the tasks in flight that carry concurrency key `key`
    /// ([`TaskSpec::concurrency_key`](super::TaskSpec::concurrency_key)),
    /// across all kinds and agents, and optionally their rate in cost
    /// units. Keys without a limit limit nothing. Default: no key limited;
    /// the limit must allow at least one task, the key at most
    /// [`MAX_KEY_BYTES`] bytes.
    pub fn concurrency_limit(mut self, key: impl Into<String>, limit: ConcurrencyLimit) -> Self {
        self.config
            .settings
            .concurrency_limits
            .insert(key.into(), limit);
        self
    }

    /// Bounds what `tenant`'s tasks ([`TaskSpec::tenant`](super::TaskSpec::tenant))
    /// may hold and submit; a submission over a bound is refused
    /// ([`SubmitErrorKind::OverQuota`](super::SubmitErrorKind::OverQuota)).
    /// Default: no tenant bounded but by
    /// [`default_tenant_quota`](Self::default_tenant_quota). A live-task
    /// bound must allow at least one task.
    ///
    /// ```
    /// use taskweave::scheduler::{Dispatcher, DispatcherConfig, SubmitErrorKind, TaskSpec, TenantLimit, TenantQuota};
    /// use taskweave::{Instant, TenantId};
    ///
    /// let (acme, globex) = (TenantId::new(1), TenantId::new(2));
    /// let config = DispatcherConfig::builder()
    ///     .tenant_quota(acme, TenantQuota::new().live_tasks(2))
    ///     .build()?;
    /// let mut d: Dispatcher<&str> = Dispatcher::new(config);
    /// let now = Instant::ZERO;
    /// for job in ["a", "b"] {
    ///     d.submit(TaskSpec::new(job).tenant(acme), now)?;
    /// }
    /// let refused = d.submit(TaskSpec::new("c").tenant(acme), now).unwrap_err();
    /// assert_eq!(refused.kind, SubmitErrorKind::OverQuota { tenant: acme, limit: TenantLimit::LiveTasks { limit: 2 } });
    /// // Another tenant is not held back by acme's backlog.
    /// assert!(d.submit(TaskSpec::new("d").tenant(globex), now).is_ok());
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    pub fn tenant_quota(mut self, tenant: TenantId, quota: TenantQuota) -> Self {
        self.config.settings.tenant_quotas.insert(tenant, quota);
        self
    }

    /// The quota of every tenant not given its own by
    /// [`tenant_quota`](Self::tenant_quota). Default: none.
    pub fn default_tenant_quota(mut self, quota: TenantQuota) -> Self {
        self.config.settings.default_tenant_quota = Some(quota);
        self
    }

    /// Seed of the dispatcher's random source (retry jitter). Default 0.
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.settings.seed = seed;
        self
    }

    /// Validates and builds.
    ///
    /// # Errors
    ///
    /// [`SchedulerError::InvalidConfig`] naming the first invalid setting.
    pub fn build(self) -> Result<DispatcherConfig, SchedulerError> {
        self.config.settings.validate()?;
        Ok(self.config)
    }
}

impl Settings {
    /// The quota of `tenant`: its own, or the default one.
    #[inline]
    pub(crate) fn tenant_quota(&self, tenant: TenantId) -> Option<&TenantQuota> {
        (self.tenant_quotas.get(&tenant)).or(self.default_tenant_quota.as_ref())
    }

    /// The first setting in which `self` and `other` differ, by name.
    pub(crate) fn first_difference(&self, other: &Settings) -> Option<&'static str> {
        macro_rules! first_difference {
            ($($field:ident),* $(,)?) => {{
                // Naming every field makes a new one a compile error here.
                let Settings { $($field),* } = self;
                $(if *$field != other.$field {
                    return Some(stringify!($field));
                })*
                None
            }};
        }
        first_difference!(
            queue_capacity,
            aging_interval,
            reserved_share,
            idempotency_window,
            heartbeats,
            attempt_timeout,
            unroutable_timeout,
            terminal_history,
            retry_budget,
            circuit_breaker,
            kind_bulkhead,
            kind_rate_limit,
            agent_rate_limit,
            preemption,
            seed,
            concurrency_limits,
            tenant_quotas,
            default_tenant_quota,
        )
    }

    /// The checks of [`DispatcherConfigBuilder::build`].
    pub(crate) fn validate(&self) -> Result<(), SchedulerError> {
        let c = self;
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
        for (key, limit) in &c.concurrency_limits {
            if limit.max_in_flight() == 0 || key.len() > MAX_KEY_BYTES {
                return invalid("concurrency limit", format!("{key:?}: {limit:?}"));
            }
        }
        let empty = |q: &TenantQuota| match (q.max_live_tasks(), q.max_live_runs()) {
            (Some(0), _) => Some("0 live tasks"),
            (_, Some(0)) => Some("0 live runs"),
            _ if q.fair_share_weight() == Some(0) => Some("a fair share of weight 0"),
            _ => None,
        };
        let mut quotas: Vec<_> = c.tenant_quotas.iter().collect();
        quotas.sort_unstable_by_key(|(tenant, _)| **tenant);
        if let Some((tenant, why)) = quotas.iter().find_map(|(t, q)| Some((t, empty(q)?))) {
            return invalid("tenant quota", format!("{tenant}: {why}"));
        }
        if let Some(why) = c.default_tenant_quota.as_ref().and_then(empty) {
            return invalid("tenant quota", format!("every tenant: {why}"));
        }
        Ok(())
    }
}
