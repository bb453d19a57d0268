//! Interned task requirements, shared by every task that asks the same.
//!
//! Most tasks in a pool ask for one of a few requirement sets; storing each
//! set once keeps a queued task small and lets routing reuse the resolved
//! bitsets.

use std::collections::HashMap;

use crate::TaskRequirements;
use crate::agent::Registry;
use crate::routing::{ResolvedRequirements, RoutingError};

/// Index of an interned requirement set.
pub(crate) type RequirementsId = u32;

#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
struct Interned {
    requirements: TaskRequirements,
    /// Resolved against the registry once every name is known; the
    /// registry's interners only grow, so a resolution stays valid.
    resolved: Option<ResolvedRequirements>,
    users: usize,
}

#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(crate) struct RequirementsTable {
    entries: Vec<Option<Interned>>,
    free: Vec<RequirementsId>,
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_pairs"))]
    ids: HashMap<TaskRequirements, RequirementsId>,
    /// The entry handed out last.
    last: Option<RequirementsId>,
}

impl RequirementsTable {
    /// The id of `requirements`, counting one more user.
    pub(crate) fn acquire(&mut self, requirements: TaskRequirements) -> RequirementsId {
        // Tasks tend to come in runs with the same requirements: comparing
        // with the last set costs less than hashing.
        let repeated = self.last.filter(|&id| {
            self.entry(id).is_some_and(|e| {
                // Most tasks ask for nothing: check that without comparing sets.
                match (e.requirements.is_empty(), requirements.is_empty()) {
                    (true, true) => true,
                    (false, false) => e.requirements == requirements,
                    _ => false,
                }
            })
        });
        if let Some(id) = repeated.or_else(|| self.ids.get(&requirements).copied()) {
            self.last = Some(id);
            if let Some(entry) = self.entry_mut(id) {
                entry.users += 1;
            }
            return id;
        }
        let entry = Interned {
            requirements: requirements.clone(),
            resolved: None,
            users: 1,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.entries[id as usize] = Some(entry);
                id
            }
            None => {
                self.entries.push(Some(entry));
                (self.entries.len() - 1) as RequirementsId
            }
        };
        self.ids.insert(requirements, id);
        self.last = Some(id);
        id
    }

    /// One user fewer; the entry goes when none is left.
    pub(crate) fn release(&mut self, id: RequirementsId) {
        let Some(entry) = self.entry_mut(id) else {
            return;
        };
        entry.users -= 1;
        if entry.users == 0 {
            if let Some(entry) = self.entries[id as usize].take() {
                self.ids.remove(&entry.requirements);
            }
            self.free.push(id);
        }
    }

    pub(crate) fn requirements(&self, id: RequirementsId) -> Option<&TaskRequirements> {
        self.entry(id).map(|e| &e.requirements)
    }

    /// The entry resolved against `registry`, resolving it if it is not
    /// resolved yet.
    ///
    /// # Errors
    ///
    /// The resolution error: a capability or label no agent has.
    pub(crate) fn resolve(
        &mut self,
        id: RequirementsId,
        registry: &Registry,
    ) -> Result<&ResolvedRequirements, RoutingError> {
        let Some(Interned {
            requirements,
            resolved,
            ..
        }) = self.entries.get_mut(id as usize).and_then(Option::as_mut)
        else {
            return Err(RoutingError::NoEligibleAgent);
        };
        Ok(match resolved {
            Some(resolved) => resolved,
            None => resolved.insert(registry.resolve(requirements)?),
        })
    }

    /// The resolution, if [`resolve`](Self::resolve) succeeded before.
    pub(crate) fn resolved(&self, id: RequirementsId) -> Option<&ResolvedRequirements> {
        self.entry(id).and_then(|e| e.resolved.as_ref())
    }

    fn entry(&self, id: RequirementsId) -> Option<&Interned> {
        self.entries.get(id as usize).and_then(Option::as_ref)
    }

    fn entry_mut(&mut self, id: RequirementsId) -> Option<&mut Interned> {
        self.entries.get_mut(id as usize).and_then(Option::as_mut)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_requirements_share_one_entry_until_the_last_user_leaves() {
        let mut table = RequirementsTable::default();
        let gpu = TaskRequirements::new().require(["gpu"]);
        let a = table.acquire(gpu.clone());
        let b = table.acquire(gpu.clone());
        let c = table.acquire(TaskRequirements::new());
        assert_eq!(a, b);
        assert_ne!(a, c);
        table.release(a);
        assert_eq!(table.requirements(b), Some(&gpu));
        table.release(b);
        assert_eq!(table.requirements(b), None);
        assert_eq!(table.requirements(c), Some(&TaskRequirements::new()));
    }
}
