//! Tenant quotas: how many live tasks a tenant may hold, and how much cost
//! it may submit per period. A submission over either is refused with
//! [`SubmitErrorKind::OverQuota`](crate::scheduler::SubmitErrorKind::OverQuota),
//! naming the tenant and the quota; nothing is filed.
//!
//! The live counts are derived from the tasks (rebuilt when a snapshot is
//! restored); the cost-rate limiters are state, stored in the snapshot.

use std::collections::hash_map::Entry;

use thiserror::Error;

use crate::hash::IdMap;
use crate::resilience::{Quota, RateLimiter};
use crate::{Instant, TenantId};

/// What one tenant may hold and submit. Each bound is off until set.
///
/// ```
/// use std::time::Duration;
/// use taskweave::resilience::Quota;
/// use taskweave::scheduler::TenantQuota;
///
/// // At most 500 tasks queued or running, and 1,000 cost units a minute.
/// let quota = TenantQuota::new()
///     .live_tasks(500)
///     .cost_rate(Quota::new(1_000, Duration::from_secs(60))?);
/// assert_eq!(quota.max_live_tasks(), Some(500));
/// # Ok::<(), taskweave::resilience::ResilienceError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TenantQuota {
    live_tasks: Option<u32>,
    cost_rate: Option<Quota>,
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    live_runs: Option<u32>,
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    fair_share: Option<u16>,
}

impl TenantQuota {
    /// No bound.
    pub const fn new() -> Self {
        TenantQuota {
            live_tasks: None,
            cost_rate: None,
            live_runs: None,
            fair_share: None,
        }
    }

    /// At most `tasks` of the tenant's tasks live at once: waiting,
    /// delayed or running (at least 1, checked when the configuration is
    /// built). A task that ends makes room.
    pub const fn live_tasks(mut self, tasks: u32) -> Self {
        self.live_tasks = Some(tasks);
        self
    }

    /// At most `quota` cost units ([`TaskSpec::cost`](crate::scheduler::TaskSpec::cost))
    /// submitted per period, in bursts of at most the quota's burst.
    pub const fn cost_rate(mut self, quota: Quota) -> Self {
        self.cost_rate = Some(quota);
        self
    }

    /// At most `runs` of the tenant's workflow runs active at once on a
    /// cluster that hosts runs ([`Node::host_runs`](crate::cluster::Node::host_runs);
    /// at least 1, checked when the configuration is built). A run that
    /// ends makes room; its sub-workflow runs count as part of it. The
    /// dispatcher itself holds no runs: the nodes read this bound from
    /// its configuration, so a tenant's quotas are all in one place. A
    /// run's step tasks count against this bound, not against
    /// [`live_tasks`](Self::live_tasks) or [`cost_rate`](Self::cost_rate):
    /// a step the run is ready for is never refused.
    pub const fn live_runs(mut self, runs: u32) -> Self {
        self.live_runs = Some(runs);
        self
    }

    /// Keys the tenant's tasks' fair share by the tenant, with `weight`
    /// (at least 1, checked when the configuration is built): each of its
    /// tasks is filed in one lane named after the tenant (`tenant-N`),
    /// whatever fair-share key it was submitted with. A tenant then gets
    /// its weight's share of the agents however many keys its tasks name,
    /// and a cluster's tenant client cannot spread over many lanes. A
    /// task of no tenant with the key `tenant-N` shares that lane.
    pub const fn fair_share(mut self, weight: u16) -> Self {
        self.fair_share = Some(weight);
        self
    }

    /// The weight of the tenant's lane, if its fair share is keyed by it.
    pub const fn fair_share_weight(&self) -> Option<u16> {
        self.fair_share
    }

    /// The live-run bound, if set.
    pub const fn max_live_runs(&self) -> Option<u32> {
        self.live_runs
    }

    /// The live-task bound, if set.
    pub const fn max_live_tasks(&self) -> Option<u32> {
        self.live_tasks
    }

    /// The cost-rate bound, if set.
    pub const fn max_cost_rate(&self) -> Option<Quota> {
        self.cost_rate
    }
}

/// The quota that refused a tenant's submission.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TenantLimit {
    /// The tenant already has this many live tasks.
    #[error("{limit} live tasks; a task of the tenant must end first")]
    LiveTasks {
        /// The bound ([`TenantQuota::live_tasks`]).
        limit: u32,
    },
    /// The tenant already has this many workflow runs active on the
    /// cluster (a node's refusal of a run's start; the dispatcher itself
    /// never answers it).
    #[error("{limit} live runs; a run of the tenant must end first")]
    LiveRuns {
        /// The bound ([`TenantQuota::live_runs`]).
        limit: u32,
    },
    /// The task's cost does not fit the tenant's cost rate now.
    #[error(
        "a cost of {} per {:?} (bursts of {}); this cost fits again at {retry_at}",
        quota.cells(), quota.period(), quota.burst()
    )]
    CostRate {
        /// The bound ([`TenantQuota::cost_rate`]).
        quota: Quota,
        /// The earliest instant the same cost would fit;
        /// [`Instant::MAX`] when it never can (a cost above the burst).
        retry_at: Instant,
    },
}

/// Each tenant's live tasks (derived) and cost-rate limiter (stored).
#[derive(Clone, Debug, Default)]
pub(crate) struct TenantLoads {
    live: IdMap<TenantId, u32>,
    rates: IdMap<TenantId, RateLimiter>,
}

/// Limiters kept before idle ones (back at a full burst, no different
/// from none) are dropped: whenever the count reaches a power of two from
/// here, so the moment depends on the state alone.
const PRUNE_FROM: usize = 64;

impl TenantLoads {
    /// Counts a new live task of `tenant` costing `cost`, if its `quota`
    /// has room; else why not, with nothing counted.
    pub(crate) fn admit(
        &mut self,
        tenant: TenantId,
        cost: u32,
        quota: Option<&TenantQuota>,
        now: Instant,
    ) -> Result<(), TenantLimit> {
        if let Some(quota) = quota {
            if let Some(limit) = quota.live_tasks {
                if self.live.get(&tenant).is_some_and(|&live| live >= limit) {
                    return Err(TenantLimit::LiveTasks { limit });
                }
            }
            if let Some(rate) = quota.cost_rate {
                (self.take_cost(tenant, rate, cost, now)).map_err(|retry_at| {
                    TenantLimit::CostRate {
                        quota: rate,
                        retry_at,
                    }
                })?;
            }
        }
        let live = self.live.entry(tenant).or_default();
        *live = live.saturating_add(1);
        Ok(())
    }

    /// Takes `cost` cells of `tenant`'s limiter at `rate`, if they
    /// conform; else the instant they would ([`Instant::MAX`]: never).
    /// A new limiter is kept only if it admitted the cost.
    fn take_cost(
        &mut self,
        tenant: TenantId,
        rate: Quota,
        cost: u32,
        now: Instant,
    ) -> Result<(), Instant> {
        let check = |limiter: &mut RateLimiter| match limiter.check_n(now, cost) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(wait)) => Err(wait.earliest()),
            Err(_) => Err(Instant::MAX),
        };
        match self.rates.entry(tenant) {
            Entry::Occupied(mut limiter) => check(limiter.get_mut()),
            Entry::Vacant(slot) => {
                let mut limiter = RateLimiter::new(rate);
                check(&mut limiter)?;
                slot.insert(limiter);
                let kept = self.rates.len();
                if kept >= PRUNE_FROM && kept.is_power_of_two() {
                    self.rates.retain(|t, l| *t == tenant || !l.is_idle(now));
                }
                Ok(())
            }
        }
    }

    /// Counts a live task of `tenant` that ended.
    pub(crate) fn release(&mut self, tenant: TenantId) {
        if let Some(live) = self.live.get_mut(&tenant) {
            *live = live.saturating_sub(1);
            if *live == 0 {
                self.live.remove(&tenant);
            }
        }
    }

    /// The tenant's live tasks.
    pub(crate) fn live(&self, tenant: TenantId) -> u32 {
        self.live.get(&tenant).copied().unwrap_or(0)
    }

    /// The cost-rate limiters, for a snapshot.
    pub(crate) fn rates(&self) -> &IdMap<TenantId, RateLimiter> {
        &self.rates
    }

    /// Loads with `rates` as stored, and the live counts still to be
    /// rebuilt ([`validated`](Self::validated)).
    pub(crate) fn from_rates(rates: IdMap<TenantId, RateLimiter>) -> Self {
        TenantLoads {
            live: IdMap::default(),
            rates,
        }
    }

    /// These loads with `live` counted from the tasks, if every stored
    /// limiter has the quota its tenant is configured with and has seen
    /// nothing after `clock`; else the problem.
    pub(crate) fn validated(
        mut self,
        live: IdMap<TenantId, u32>,
        quota_of: impl Fn(TenantId) -> Option<TenantQuota>,
        clock: Instant,
    ) -> Result<Self, String> {
        // The first tenant at fault, so the same snapshot always names
        // the same one.
        let fault = |(&tenant, limiter): (&TenantId, &RateLimiter)| {
            if quota_of(tenant).and_then(|q| q.cost_rate) != Some(limiter.quota()) {
                Some((
                    tenant,
                    "a cost-rate limiter its configuration does not give it",
                ))
            } else if limiter.latest_seen() > clock {
                Some((
                    tenant,
                    "a cost-rate limiter that has seen past the dispatcher's clock",
                ))
            } else {
                None
            }
        };
        if let Some((tenant, why)) = self.rates.iter().filter_map(fault).min() {
            return Err(format!("{tenant} has {why}"));
        }
        self.live = live;
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn tenant(n: u64) -> TenantId {
        TenantId::new(n)
    }

    #[test]
    fn live_tasks_are_bounded_per_tenant_and_freed_as_tasks_end() {
        let quota = TenantQuota::new().live_tasks(2);
        let mut loads = TenantLoads::default();
        let now = Instant::ZERO;
        assert!(loads.admit(tenant(1), 1, Some(&quota), now).is_ok());
        assert!(loads.admit(tenant(1), 1, Some(&quota), now).is_ok());
        assert_eq!(
            loads.admit(tenant(1), 1, Some(&quota), now),
            Err(TenantLimit::LiveTasks { limit: 2 })
        );
        // Another tenant has its own room; a tenant with no quota, no bound.
        assert!(loads.admit(tenant(2), 1, Some(&quota), now).is_ok());
        assert!((0..10).all(|_| loads.admit(tenant(3), 1, None, now).is_ok()));
        loads.release(tenant(1));
        assert_eq!(loads.live(tenant(1)), 1);
        assert!(loads.admit(tenant(1), 1, Some(&quota), now).is_ok());
    }

    #[test]
    fn a_cost_over_the_rate_is_refused_with_the_instant_it_fits_and_counts_nothing()
    -> Result<(), crate::resilience::ResilienceError> {
        let rate = Quota::new(10, Duration::from_secs(1))?;
        let quota = TenantQuota::new().cost_rate(rate);
        let mut loads = TenantLoads::default();
        let now = Instant::ZERO;
        assert!(loads.admit(tenant(1), 10, Some(&quota), now).is_ok());
        let refused = loads.admit(tenant(1), 5, Some(&quota), now);
        assert_eq!(
            refused,
            Err(TenantLimit::CostRate {
                quota: rate,
                retry_at: Instant::from_millis(500)
            })
        );
        assert_eq!(loads.live(tenant(1)), 1);
        assert!(
            loads
                .admit(tenant(1), 5, Some(&quota), Instant::from_millis(500))
                .is_ok()
        );
        // Above the burst: never, and no limiter is left for a refused
        // tenant's first submission.
        let never = loads.admit(tenant(2), 11, Some(&quota), now);
        assert!(
            matches!(never, Err(TenantLimit::CostRate { retry_at, .. }) if retry_at == Instant::MAX)
        );
        assert!(!loads.rates().contains_key(&tenant(2)));
        Ok(())
    }

    #[test]
    fn idle_limiters_are_dropped_as_tenants_come_and_go()
    -> Result<(), crate::resilience::ResilienceError> {
        let quota = TenantQuota::new().cost_rate(Quota::new(1, Duration::from_secs(1))?);
        let mut loads = TenantLoads::default();
        for n in 0..1_000 {
            let now = Instant::from_secs(n);
            assert!(loads.admit(tenant(n), 1, Some(&quota), now).is_ok());
            loads.release(tenant(n));
        }
        assert!(
            loads.rates().len() < 2 * PRUNE_FROM,
            "{}",
            loads.rates().len()
        );
        Ok(())
    }

    #[test]
    fn a_restore_names_the_first_tenant_at_fault_whatever_the_map_order()
    -> Result<(), crate::resilience::ResilienceError> {
        let quota = TenantQuota::new().cost_rate(Quota::new(2, Duration::from_secs(1))?);
        let mut loads = TenantLoads::default();
        for n in (1..40).rev() {
            assert!(
                loads
                    .admit(tenant(n), 1, Some(&quota), Instant::from_secs(9))
                    .is_ok()
            );
        }
        // Every limiter saw past the clock, and tenant-7's has no quota
        // either: the first tenant is named.
        let quota_of = |t: TenantId| (t != tenant(7)).then_some(quota);
        let restored = TenantLoads::from_rates(loads.rates().clone()).validated(
            IdMap::default(),
            quota_of,
            Instant::from_secs(1),
        );
        assert_eq!(
            restored.err().as_deref(),
            Some("tenant-1 has a cost-rate limiter that has seen past the dispatcher's clock")
        );
        Ok(())
    }
}
