//! [`TaskTenants`]: the tenant of each task that has one, kept past the
//! task's end so that the commit publishing the end confines it to the
//! tenant (the dispatcher forgets a task's tenant as the task ends).

use crate::hash::IdMap;
use crate::scheduler::Dispatcher;
use crate::{TaskId, TenantId};

/// The fewest tasks remembered before ended ones are forgotten.
const FIRST_BOUND: usize = 64;

/// The tenants of live tasks, and of tasks that ended since the last
/// [`forget_ended`](TaskTenants::forget_ended).
///
/// Bounded by construction: `forget_ended` keeps only live tasks once the
/// map reaches twice what it kept the time before, so the map holds at
/// most twice the live tenants' tasks (or [`FIRST_BOUND`]), and each task
/// is looked at `O(1)` times amortized.
#[derive(Debug)]
pub(crate) struct TaskTenants {
    of: IdMap<TaskId, TenantId>,
    bound: usize,
}

impl TaskTenants {
    /// The tenants of `dispatcher`'s live tasks: what a restored replica
    /// remembers.
    pub(crate) fn of_live<P>(dispatcher: &Dispatcher<P>) -> Self {
        let of: IdMap<TaskId, TenantId> = dispatcher
            .iter_live_tasks()
            .filter_map(|(task, ..)| Some((task, dispatcher.tenant(task)?)))
            .collect();
        let bound = (of.len() * 2).max(FIRST_BOUND);
        TaskTenants { of, bound }
    }

    /// Remembers `task`'s tenant, if it has one.
    pub(crate) fn note<P>(&mut self, dispatcher: &Dispatcher<P>, task: TaskId) {
        if let Some(tenant) = dispatcher.tenant(task) {
            self.of.insert(task, tenant);
        }
    }

    /// Remembers that `task` is `tenant`'s though the dispatcher does not
    /// know it so: a step task of a tenant's hosted run.
    pub(crate) fn note_as(&mut self, task: TaskId, tenant: TenantId) {
        self.of.insert(task, tenant);
    }

    /// The tenant of `task`, live or ended since the last
    /// [`forget_ended`](Self::forget_ended).
    pub(crate) fn get(&self, task: TaskId) -> Option<TenantId> {
        self.of.get(&task).copied()
    }

    /// Forgets the tasks `dispatcher` no longer holds live, once the map
    /// reached its bound. Call it only when every end so far has been
    /// published.
    pub(crate) fn forget_ended<P>(&mut self, dispatcher: &Dispatcher<P>) {
        if self.of.len() < self.bound {
            return;
        }
        self.of.retain(|&task, _| dispatcher.is_live(task));
        self.bound = (self.of.len() * 2).max(FIRST_BOUND);
    }

    /// How many tasks it remembers.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.of.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Instant;
    use crate::scheduler::{DispatcherConfig, Input, TaskSpec};

    fn submit(dispatcher: &mut Dispatcher<u8>, tenant: Option<u64>) -> TaskId {
        let mut spec = TaskSpec::new(0u8);
        if let Some(tenant) = tenant {
            spec = spec.tenant(TenantId::new(tenant));
        }
        let now = Instant::ZERO;
        match dispatcher.apply(Input::Submit { spec, now }) {
            Ok(crate::scheduler::Applied::Submitted(task)) => task.id(),
            other => panic!("submit refused: {other:?}"),
        }
    }

    #[test]
    fn remembers_tenant_tasks_only_and_keeps_an_end_until_forgotten() {
        let mut dispatcher = Dispatcher::new(DispatcherConfig::default());
        let (plain, tenant) = (
            submit(&mut dispatcher, None),
            submit(&mut dispatcher, Some(3)),
        );
        let mut tenants = TaskTenants::of_live(&dispatcher);
        assert_eq!(tenants.get(plain), None);
        assert_eq!(tenants.get(tenant), Some(TenantId::new(3)));
        let now = Instant::ZERO;
        let cancelled = dispatcher.apply(Input::Cancel { task: tenant, now });
        assert!(cancelled.is_ok(), "a live task cancels: {cancelled:?}");
        // Ended, but below the bound: still there for the publishing commit.
        tenants.forget_ended(&dispatcher);
        assert_eq!(tenants.get(tenant), Some(TenantId::new(3)));
    }

    #[test]
    fn forgets_ended_tasks_once_at_its_bound_and_keeps_live_ones() {
        let mut dispatcher = Dispatcher::new(DispatcherConfig::default());
        let mut tenants = TaskTenants::of_live(&dispatcher);
        let live = submit(&mut dispatcher, Some(1));
        tenants.note(&dispatcher, live);
        // A hosted run's step: live, and its run's tenant's, though the
        // dispatcher knows no tenant of it.
        let step = submit(&mut dispatcher, None);
        tenants.note_as(step, TenantId::new(4));
        let now = Instant::ZERO;
        for _ in 0..FIRST_BOUND * 3 {
            let task = submit(&mut dispatcher, Some(2));
            tenants.note(&dispatcher, task);
            let cancelled = dispatcher.apply(Input::Cancel { task, now });
            assert!(cancelled.is_ok(), "a live task cancels: {cancelled:?}");
            tenants.forget_ended(&dispatcher);
            assert!(tenants.len() <= FIRST_BOUND, "{} remembered", tenants.len());
        }
        assert_eq!(tenants.get(live), Some(TenantId::new(1)));
        assert_eq!(tenants.get(step), Some(TenantId::new(4)));
    }
}
