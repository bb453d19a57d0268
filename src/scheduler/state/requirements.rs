//! Interned task requirements, shared by every task that asks the same.
//!
//! Most tasks in a pool ask for one of a few requirement sets; storing each
//! set once keeps a queued task small and lets routing reuse the resolved
//! bitsets.
//!
//! An entry whose last user finished stays, resolution included, so a set
//! that comes back (a pool that runs one task at a time empties it after
//! every task) is neither hashed nor resolved again. Unused entries are swept
//! once there are more than [`UNUSED_KEPT`] of them and more than entries in
//! use, so the table stays within about twice the sets in use.
//!
//! Each entry also knows its task kind as a [`KindId`]: the kinds of the
//! entries are interned beside them, so the kind gates (bulkhead, kind rate
//! limit) look a task's kind up without building a string, and two tasks
//! have the same kind when their ids are equal. Kinds are derived data:
//! a snapshot does not carry them, and [`validated`](RequirementsTable::validated)
//! interns them again.
//!
//! A resolution is kept valid by construction. A resolution that left a
//! name out because no agent had it yet (a preferred capability, a label
//! value under `NotEquals` or `OneOf`) is *partial*: when the registry
//! learns new names ([`names_learned`](RequirementsTable::names_learned),
//! called after every registration), the partial resolutions are made
//! again, so a task that avoids `region=eu` never reaches an agent in `eu`
//! that joined after the set was first resolved. A complete resolution
//! never goes stale: the registry's interners only grow. A snapshot's
//! resolutions are made again on restore rather than compared.

use std::collections::HashMap;

use crate::TaskRequirements;
use crate::agent::Registry;
use crate::free_list::check_free_list;
use crate::routing::{ResolvedRequirements, RoutingError};

/// Index of an interned requirement set.
pub(crate) type RequirementsId = u32;

/// Index of an interned task kind: equal for equal kind strings while any
/// entry of the table has that kind.
pub(crate) type KindId = u32;

/// Unused entries that are never worth a sweep.
const UNUSED_KEPT: usize = 64;

#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
struct Interned {
    requirements: TaskRequirements,
    /// Resolved against the registry, and made again when the registry
    /// learns a name a partial resolution left out (see the module docs).
    resolved: Option<ResolvedRequirements>,
    users: usize,
    /// The interned `requirements.task_kind()`; derived.
    #[cfg_attr(feature = "serde", serde(skip))]
    kind: Option<KindId>,
}

/// One interned kind, and how many entries have it.
#[derive(Clone, Debug)]
struct Kind {
    name: String,
    entries: usize,
}

/// The task kinds of the table's entries, each stored once.
#[derive(Clone, Debug, Default)]
struct Kinds {
    slots: Vec<Option<Kind>>,
    free: Vec<KindId>,
    ids: HashMap<String, KindId>,
}

impl Kinds {
    /// The id of `name`, counting one more entry of that kind. Allocates
    /// only for a kind no entry has.
    fn intern(&mut self, name: &str) -> KindId {
        if let Some(&id) = self.ids.get(name) {
            if let Some(kind) = self.slots.get_mut(id as usize).and_then(Option::as_mut) {
                kind.entries += 1;
            }
            return id;
        }
        let kind = Kind {
            name: name.to_owned(),
            entries: 1,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id as usize] = Some(kind);
                id
            }
            None => {
                self.slots.push(Some(kind));
                (self.slots.len() - 1) as KindId
            }
        };
        self.ids.insert(name.to_owned(), id);
        id
    }

    /// One entry of kind `id` fewer; the kind goes with its last entry.
    fn forget(&mut self, id: KindId) {
        let Some(slot) = self.slots.get_mut(id as usize) else {
            return;
        };
        if let Some(kind) = slot.as_mut() {
            kind.entries -= 1;
            if kind.entries == 0 {
                if let Some(kind) = slot.take() {
                    self.ids.remove(&kind.name);
                }
                self.free.push(id);
            }
        }
    }

    fn name(&self, id: KindId) -> Option<&String> {
        self.slots
            .get(id as usize)
            .and_then(Option::as_ref)
            .map(|k| &k.name)
    }
}

#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(crate) struct RequirementsTable {
    entries: Vec<Option<Interned>>,
    free: Vec<RequirementsId>,
    /// Derived from `entries`; rebuilt by [`validated`](Self::validated).
    #[cfg_attr(feature = "serde", serde(skip))]
    ids: HashMap<TaskRequirements, RequirementsId>,
    /// The entry handed out last (a hint: looked up with a checked index).
    last: Option<RequirementsId>,
    /// Entries with no user left; derived like `ids`.
    #[cfg_attr(feature = "serde", serde(skip))]
    unused: usize,
    /// The kinds of the entries; derived like `ids`.
    #[cfg_attr(feature = "serde", serde(skip))]
    kinds: Kinds,
    /// How many capability and label names the registry knew when the
    /// resolutions were last brought up to date; derived like `ids`.
    #[cfg_attr(feature = "serde", serde(skip))]
    names: (usize, usize),
}

/// How many capability and label names `registry` knows.
fn names_known(registry: &Registry) -> (usize, usize) {
    (
        registry.capabilities().len(),
        registry.label_interner().len(),
    )
}

impl RequirementsTable {
    /// The id of `requirements`, counting one more user.
    ///
    /// Tasks tend to come in runs with the same requirements, mostly none
    /// at all or one shared set: that case is inline and compares no sets.
    #[inline]
    pub(crate) fn acquire(&mut self, requirements: TaskRequirements) -> RequirementsId {
        if let Some(id) = self.last {
            if let Some(entry) = self.entry_mut(id) {
                if entry.users > 0 && entry.requirements.is_identical(&requirements) {
                    entry.users += 1;
                    return id;
                }
            }
        }
        self.acquire_any(requirements)
    }

    /// [`acquire`](Self::acquire) beyond its inline case.
    #[inline(never)]
    fn acquire_any(&mut self, requirements: TaskRequirements) -> RequirementsId {
        // Comparing with the last set costs less than hashing.
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
            if let Some(entry) = self.entries.get_mut(id as usize).and_then(Option::as_mut) {
                if entry.users == 0 {
                    self.unused -= 1;
                }
                entry.users = entry.users.saturating_add(1);
            }
            return id;
        }
        let entry = Interned {
            kind: requirements.task_kind().map(|k| self.kinds.intern(k)),
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

    /// One user fewer; unused entries go in sweeps (see the module docs).
    #[inline]
    pub(crate) fn release(&mut self, id: RequirementsId) {
        let Some(entry) = self.entry_mut(id) else {
            return;
        };
        entry.users -= 1;
        if entry.users == 0 {
            self.unused_one();
        }
    }

    /// An entry lost its last user: counted, and swept with the others
    /// when they are many.
    #[inline(never)]
    fn unused_one(&mut self) {
        self.unused += 1;
        let in_use = self.ids.len() - self.unused;
        if self.unused > UNUSED_KEPT && self.unused > in_use {
            self.sweep();
        }
    }

    /// Drops every entry with no user.
    fn sweep(&mut self) {
        for (id, slot) in self.entries.iter_mut().enumerate() {
            if let Some(entry) = slot.take_if(|e| e.users == 0) {
                self.ids.remove(&entry.requirements);
                if let Some(kind) = entry.kind {
                    self.kinds.forget(kind);
                }
                self.free.push(id as RequirementsId);
            }
        }
        self.unused = 0;
    }

    pub(crate) fn requirements(&self, id: RequirementsId) -> Option<&TaskRequirements> {
        self.entry(id).map(|e| &e.requirements)
    }

    /// The task kind of entry `id`, interned.
    pub(crate) fn kind(&self, id: RequirementsId) -> Option<KindId> {
        self.entry(id).and_then(|e| e.kind)
    }

    /// The name of an interned kind.
    pub(crate) fn kind_name(&self, kind: KindId) -> Option<&String> {
        self.kinds.name(kind)
    }

    /// The entry resolved against `registry`, resolving it if it is not
    /// resolved yet.
    ///
    /// # Errors
    ///
    /// The resolution error: a capability or label no agent has.
    #[inline]
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
        match resolved {
            Some(resolved) => Ok(resolved),
            None => Self::resolve_first(requirements, resolved, registry),
        }
    }

    /// [`resolve`](Self::resolve) of an entry not resolved yet.
    #[inline(never)]
    fn resolve_first<'a>(
        requirements: &TaskRequirements,
        resolved: &'a mut Option<ResolvedRequirements>,
        registry: &Registry,
    ) -> Result<&'a ResolvedRequirements, RoutingError> {
        Ok(resolved.insert(ResolvedRequirements::new(registry, requirements)?))
    }

    /// Brings the resolutions up to date after `registry` may have learned
    /// new capability or label names (a registration): every partial
    /// resolution is made again. Costs `O(1)` when no name is new, else
    /// `O(e)` resolutions for `e` partial entries.
    pub(crate) fn names_learned(&mut self, registry: &Registry) {
        let known = names_known(registry);
        if known == self.names {
            return;
        }
        self.names = known;
        for entry in self.entries.iter_mut().flatten() {
            if entry.resolved.as_ref().is_some_and(|r| r.is_partial()) {
                entry.resolved = ResolvedRequirements::new(registry, &entry.requirements).ok();
            }
        }
    }

    /// The resolution, if [`resolve`](Self::resolve) succeeded before.
    pub(crate) fn resolved(&self, id: RequirementsId) -> Option<&ResolvedRequirements> {
        self.entry(id).and_then(|e| e.resolved.as_ref())
    }

    /// Checks a table read from a snapshot and rebuilds what it derives:
    /// the free list names exactly the vacant entries, no two entries hold
    /// the same requirements, and every stored resolution is made again
    /// against `registry` (a forged one would route tasks to agents that
    /// cannot serve them; one that no longer resolves, though the
    /// registry's names only grow, is refused). Users are checked by the
    /// caller, who knows the tasks.
    ///
    /// # Errors
    ///
    /// The first inconsistency, as text naming the field.
    pub(crate) fn validated(mut self, registry: &Registry) -> Result<Self, String> {
        if u32::try_from(self.entries.len()).is_err() {
            return Err("entries: more than u32::MAX".into());
        }
        check_free_list("free", &self.entries, &self.free)?;
        self.ids.clear();
        self.unused = 0;
        self.kinds = Kinds::default();
        self.names = names_known(registry);
        for (id, entry) in self.entries.iter_mut().enumerate() {
            let Some(entry) = entry else { continue };
            entry.kind = entry.requirements.task_kind().map(|k| self.kinds.intern(k));
            if entry.resolved.is_some() {
                let again = ResolvedRequirements::new(registry, &entry.requirements)
                    .map_err(|e| format!("entries[{id}].resolved no longer resolves: {e}"))?;
                entry.resolved = Some(again);
            }
            if self
                .ids
                .insert(entry.requirements.clone(), id as RequirementsId)
                .is_some()
            {
                return Err(format!(
                    "entries[{id}] repeats another entry's requirements"
                ));
            }
            self.unused += usize::from(entry.users == 0);
        }
        Ok(self)
    }

    /// Every entry's id and number of users.
    pub(crate) fn users(&self) -> impl Iterator<Item = (RequirementsId, usize)> + '_ {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(id, e)| e.as_ref().map(|e| (id as RequirementsId, e.users)))
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
    fn equal_requirements_share_one_entry_that_outlives_its_users() {
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
        // Unused, but kept until a sweep: coming back costs no new entry.
        assert_eq!(table.requirements(b), Some(&gpu));
        assert_eq!(table.acquire(gpu.clone()), a);
        assert_eq!(table.requirements(c), Some(&TaskRequirements::new()));
    }

    #[test]
    fn kinds_are_interned_beside_the_sets_and_go_with_their_last_set() {
        let mut table = RequirementsTable::default();
        let batch = table.acquire(TaskRequirements::new().kind("batch"));
        let batch_gpu = table.acquire(TaskRequirements::new().kind("batch").require(["gpu"]));
        let web = table.acquire(TaskRequirements::new().kind("web"));
        let none = table.acquire(TaskRequirements::new());
        let kind = table.kind(batch).unwrap();
        assert_eq!(table.kind(batch_gpu), Some(kind));
        assert_ne!(table.kind(web), Some(kind));
        assert_eq!(table.kind(none), None);
        assert_eq!(table.kind_name(kind).map(String::as_str), Some("batch"));
        // Swept sets give their kinds back; the kinds of live sets stay.
        for id in [batch, batch_gpu, web] {
            table.release(id);
        }
        table.sweep();
        assert_eq!(table.kind_name(kind), None);
        assert!(table.kinds.ids.is_empty());
        let again = table.acquire(TaskRequirements::new().kind("web"));
        let web_kind = table.kind(again).unwrap();
        assert_eq!(table.kind_name(web_kind).map(String::as_str), Some("web"));
    }

    #[test]
    fn unused_entries_are_swept_once_they_outnumber_the_used_ones() {
        let mut table = RequirementsTable::default();
        let kept = table.acquire(TaskRequirements::new());
        let sets = UNUSED_KEPT + 10;
        for i in 0..sets {
            let id = table.acquire(TaskRequirements::new().affinity_key(i.to_string()));
            table.release(id);
            assert!(table.unused <= UNUSED_KEPT, "{} unused", table.unused);
        }
        // One sweep happened: the table holds the used entry and the unused
        // ones since, never more than the bound.
        let stored = table.entries.iter().flatten().count();
        assert_eq!(stored, table.ids.len());
        assert!(stored <= UNUSED_KEPT + 1, "{stored} stored");
        assert_eq!(table.requirements(kept), Some(&TaskRequirements::new()));
        assert_eq!(
            table
                .entries
                .iter()
                .flatten()
                .filter(|e| e.users == 0)
                .count(),
            table.unused
        );
    }
}
