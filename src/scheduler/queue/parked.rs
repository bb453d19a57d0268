//! Tasks no agent could take, set aside by requirement set. A blocked group
//! is not retried until an agent that could serve it frees a slot, so one
//! unroutable task never stalls the queue behind it.

use std::collections::HashMap;

use super::{Entry, Queue};
use crate::scheduler::state::requirements::RequirementsId;

/// One requirement set's parked tasks.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(in crate::scheduler) struct Parked {
    pub(in crate::scheduler) requirements: RequirementsId,
    pub(in crate::scheduler) queue: Queue,
    pub(in crate::scheduler) blocked: bool,
}

/// The parked groups, in the order they were first parked, and which group
/// holds each requirement set. Stored as the groups alone; the lookup is
/// rebuilt by [`ParkedGroups::checked`] on restore.
#[derive(Clone, Debug, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(transparent)
)]
pub(in crate::scheduler) struct ParkedGroups {
    groups: Vec<Parked>,
    #[cfg_attr(feature = "serde", serde(skip))]
    by_requirements: HashMap<RequirementsId, usize>,
}

impl ParkedGroups {
    /// Whether no task is parked.
    #[inline]
    pub(in crate::scheduler) fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Every group, by position.
    pub(in crate::scheduler) fn iter(&self) -> impl Iterator<Item = &Parked> {
        self.groups.iter()
    }

    /// Every group, by position, to look into or unblock.
    pub(in crate::scheduler) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Parked> {
        self.groups.iter_mut()
    }

    /// The group at `index`.
    pub(in crate::scheduler) fn get_mut(&mut self, index: usize) -> Option<&mut Parked> {
        self.groups.get_mut(index)
    }

    /// The group of `requirements`, if any of its tasks is parked.
    #[inline]
    pub(in crate::scheduler) fn of(&mut self, requirements: RequirementsId) -> Option<&mut Parked> {
        let index = *self.by_requirements.get(&requirements)?;
        self.groups.get_mut(index)
    }

    /// Whether every group waits for an agent.
    #[inline]
    pub(in crate::scheduler) fn all_blocked(&self) -> bool {
        self.groups.iter().all(|g| g.blocked)
    }

    /// Parks `entry` in the group at `index` if given (where it came
    /// from), else in its requirement set's group, opened if need be with
    /// the queue's `aging` interval; the group is blocked.
    pub(in crate::scheduler) fn park(
        &mut self,
        entry: Entry,
        requirements: RequirementsId,
        index: Option<usize>,
        aging: Option<std::time::Duration>,
    ) {
        let index = match index.or_else(|| self.by_requirements.get(&requirements).copied()) {
            Some(index) => index,
            None => {
                self.groups.push(Parked {
                    requirements,
                    queue: Queue::new(aging),
                    blocked: true,
                });
                self.by_requirements
                    .insert(requirements, self.groups.len() - 1);
                self.groups.len() - 1
            }
        };
        if let Some(group) = self.groups.get_mut(index) {
            group.queue.push(entry);
            group.blocked = true;
        }
    }

    /// Drops the groups whose queues emptied; positions shift.
    pub(in crate::scheduler) fn drop_empty(&mut self) {
        self.groups.retain(|g| !g.queue.is_empty());
        self.by_requirements = self
            .groups
            .iter()
            .enumerate()
            .map(|(index, g)| (g.requirements, index))
            .collect();
    }

    /// Checks each group of a restored state with `check` (given its
    /// position) and rebuilds the lookup; a requirement set parked in two
    /// groups is refused, naming the second.
    pub(in crate::scheduler) fn checked<E>(
        &mut self,
        mut check: impl FnMut(usize, &mut Parked) -> Result<(), E>,
        repeated: impl Fn(usize) -> E,
    ) -> Result<(), E> {
        self.by_requirements = HashMap::with_capacity(self.groups.len());
        for (index, group) in self.groups.iter_mut().enumerate() {
            check(index, group)?;
            if self
                .by_requirements
                .insert(group.requirements, index)
                .is_some()
            {
                return Err(repeated(index));
            }
        }
        Ok(())
    }
}
