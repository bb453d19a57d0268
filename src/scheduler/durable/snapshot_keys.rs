//! Snapshot checks for the scheduling options: fair-share lanes and
//! concurrency keys agree with the tasks that carry them, and no task
//! waits for a key that nothing will wake.

use std::collections::{BTreeSet, HashMap};

use super::snapshot::corrupt;
use crate::hash::IdMap;
use crate::scheduler::SchedulerError;
use crate::scheduler::config::Settings;
use crate::scheduler::queue::Entry;
use crate::scheduler::state::State;
use crate::scheduler::state::timer::Timer;
use crate::scheduler::task::TaskState;
use crate::{AttemptToken, Instant, TaskId, TenantId};

impl<P> State<P> {
    /// Fair-share keys count exactly the live tasks in each lane; each
    /// task's options are within their bounds; the key gates match the
    /// configuration and the tasks holding each key.
    pub(in crate::scheduler) fn check_options(
        &mut self,
        settings: &Settings,
    ) -> Result<(), SchedulerError> {
        let mut lanes: HashMap<u32, u32> = HashMap::new();
        let mut tenants: IdMap<TenantId, u32> = IdMap::default();
        let mut holders: Vec<BTreeSet<(AttemptToken, TaskId)>> =
            vec![BTreeSet::new(); settings.concurrency_limits.len()];
        let keys = settings.concurrency_limits.len();
        for (id, task) in self.tasks.iter() {
            let field = format!("tasks[{id}]");
            let extras = task.extras();
            if let Some((share, lane)) = &extras.fairness {
                if share.weight == 0 || *lane == 0 {
                    return Err(corrupt(&field, "a fair share of weight or lane zero"));
                }
                *lanes.entry(*lane).or_default() += 1;
            }
            if extras.cost == 0
                || extras.concurrency_keys.len() > crate::scheduler::MAX_CONCURRENCY_KEYS
            {
                return Err(corrupt(&field, "a cost of zero or too many keys"));
            }
            if let Some(tenant) = extras.tenant {
                let live = tenants.entry(tenant).or_default();
                *live = live.saturating_add(1);
            }
            if extras.max_attempts == Some(0) {
                return Err(corrupt(&field, "at most zero attempts"));
            }
            let limited = extras.limited.as_slice();
            if limited.iter().any(|&k| k as usize >= keys) {
                return Err(corrupt(&field, "names a concurrency key not configured"));
            }
            if let TaskState::InFlight { token, .. } = task.state {
                for &key in limited {
                    holders[key as usize].insert((token, id));
                }
            }
        }
        self.fair_keys = std::mem::take(&mut self.fair_keys)
            .validated(&lanes)
            .map_err(|p| corrupt("fair_keys", p))?;
        self.tenants = std::mem::take(&mut self.tenants)
            .validated(tenants, |t| settings.tenant_quota(t).copied(), self.clock)
            .map_err(|p| corrupt("tenant_rates", p))?;
        self.key_gates = std::mem::take(&mut self.key_gates)
            .validated(&settings.concurrency_limits, &holders, self.clock)
            .map_err(|p| corrupt("key_gates", p))?;
        for (id, task) in self.tasks.iter() {
            let extras = task.extras();
            if self.key_gates.limited(&extras.concurrency_keys) != extras.limited {
                return Err(corrupt(
                    &format!("tasks[{id}]"),
                    "its configured keys disagree with its keys",
                ));
            }
        }
        Ok(())
    }

    /// Whether a queue entry agrees with its (queued) task's lane.
    pub(in crate::scheduler) fn entry_lane_agrees(&self, entry: &Entry) -> bool {
        let Some(task) = self.tasks.get(entry.task) else {
            return true;
        };
        task.lane() == (entry.lane, entry.weight)
    }

    /// A key with live waiters is full, has its rate timer armed, or has a
    /// woken task queued outside it: something will wake its waiters.
    pub(in crate::scheduler) fn check_key_waiters(
        &self,
        armed: &BTreeSet<(Timer, Instant)>,
    ) -> Result<(), SchedulerError> {
        let groups = self.parked.iter().map(|g| &g.queue);
        let mut woken: BTreeSet<u32> = BTreeSet::new();
        for entry in std::iter::once(&self.queue)
            .chain(groups)
            .flat_map(|q| q.entries())
        {
            if let Some(task) =
                (self.tasks.get(entry.task)).filter(|t| t.state == TaskState::Queued)
            {
                woken.extend(task.extras().limited.as_slice().iter().copied());
            }
        }
        for (key, waiting) in self.key_gates.waiters() {
            if let Some(until) = self.key_gates.rate_blocked_until(key) {
                if until > self.clock && !armed.contains(&(Timer::KeyRate(key), until)) {
                    return Err(corrupt(
                        &format!("key_gates[{key}]"),
                        "rate-blocked without its timer",
                    ));
                }
            }
            let waits = waiting.entries().any(|e| self.tasks.is_queued(e.task));
            let timer = (Timer::KeyRate(key), Instant::ZERO)..=(Timer::KeyRate(key), Instant::MAX);
            let wakes = self.key_gates.is_full(key)
                || woken.contains(&key)
                || armed.range(timer).next().is_some();
            if waits && !wakes {
                return Err(corrupt(
                    &format!("key_gates[{key}]"),
                    "tasks wait for a key that nothing will wake",
                ));
            }
        }
        Ok(())
    }
}
