//! Availability index: the structure that lets routing avoid full scans.
//!
//! Agents with the same capability set, labels and profile priority form a
//! *class*. Each class keeps its available agents (online, with a free slot)
//! in two orders — registration and load ratio — plus a dense vector for
//! uniform sampling; priority order needs no index of its own, since every
//! agent of a class shares one priority. A request walks only the classes whose
//! capabilities and labels satisfy it and takes the head of each class's
//! order, so a choice costs `O(matching classes × log k)` for `k` distinct
//! keys, rather than `O(n)`.
//!
//! The load order is a [`BucketLists`]: agents sharing a load ratio
//! wait in arrival order, and an assignment or completion moves an agent
//! between buckets in `O(1)` plus a lookup among the few distinct keys.
//!
//! The registry updates the index on every change of status or load, so
//! routing never rebuilds anything.

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;

use super::buckets::{BucketLists, Links, Ratio};
use crate::capability::CapabilitySet;
use crate::free_list::check_free_list;

pub(crate) use super::slot::Slot;
/// Dense handle of a class inside the index.
pub(crate) type ClassId = u32;

/// Everything the index needs to know to file one available agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Availability {
    pub(crate) slot: Slot,
    pub(crate) order: u64,
    pub(crate) ratio: Ratio,
}

/// The available agents of one class.
#[derive(Clone, Debug)]
pub(crate) struct Class {
    capabilities: CapabilitySet,
    labels: CapabilitySet,
    /// The profile priority shared by every member.
    priority: u32,
    members: usize,
    /// Members whose status is online, busy or not.
    online: usize,
    by_order: BTreeSet<(u64, Slot)>,
    by_load: BucketLists<Ratio>,
    dense: Vec<Slot>,
}

/// What routing reads of a class; the index alone changes it.
impl Class {
    /// The capabilities every member has.
    pub(crate) fn capabilities(&self) -> &CapabilitySet {
        &self.capabilities
    }

    /// The labels every member has.
    pub(crate) fn labels(&self) -> &CapabilitySet {
        &self.labels
    }

    /// The profile priority every member has.
    pub(crate) fn priority(&self) -> u32 {
        self.priority
    }

    /// Whether some member is online, busy or not.
    pub(crate) fn has_online(&self) -> bool {
        self.online > 0
    }

    /// The available members as `(registration order, slot)`, in
    /// registration order, from the first registered after `after` (all
    /// of them with `None`). `O(log k)` to the first.
    pub(crate) fn by_registration(
        &self,
        after: Option<u64>,
    ) -> impl Iterator<Item = (u64, Slot)> + '_ {
        let from = match after {
            Some(order) => Bound::Excluded((order, Slot::MAX)),
            None => Bound::Unbounded,
        };
        self.by_order.range((from, Bound::Unbounded)).copied()
    }

    /// The available members, for uniform sampling: a dense list whose
    /// order carries no meaning.
    pub(crate) fn sampling(&self) -> &[Slot] {
        &self.dense
    }
}

/// All classes, plus the reverse map from slot to dense position.
#[derive(Clone, Debug, Default)]
pub(crate) struct AvailabilityIndex {
    classes: Vec<Option<Class>>,
    free_classes: Vec<ClassId>,
    class_of: HashMap<(CapabilitySet, CapabilitySet, u32), ClassId>,
    dense_position: Vec<usize>,
    load_links: Links<Ratio>,
    available: usize,
}

impl AvailabilityIndex {
    /// The class for this capability/label combination, created on first use;
    /// counts one more member.
    pub(crate) fn join(
        &mut self,
        capabilities: &CapabilitySet,
        labels: &CapabilitySet,
        priority: u32,
    ) -> ClassId {
        let key = (capabilities.clone(), labels.clone(), priority);
        let id = match self.class_of.get(&key) {
            Some(&id) => id,
            None => {
                let class = Class {
                    capabilities: key.0.clone(),
                    labels: key.1.clone(),
                    priority,
                    members: 0,
                    online: 0,
                    by_order: BTreeSet::new(),
                    by_load: BucketLists::default(),
                    dense: Vec::new(),
                };
                let id = match self.free_classes.pop() {
                    Some(id) => {
                        self.classes[id as usize] = Some(class);
                        id
                    }
                    None => {
                        self.classes.push(Some(class));
                        (self.classes.len() - 1) as ClassId
                    }
                };
                self.class_of.insert(key, id);
                id
            }
        };
        if let Some(class) = self.class_mut(id) {
            class.members += 1;
        }
        id
    }

    /// One member fewer; drops the class when it becomes empty. The agent
    /// must already have been made unavailable.
    pub(crate) fn leave(&mut self, id: ClassId) {
        let Some(class) = self.class_mut(id) else {
            return;
        };
        class.members -= 1;
        if class.members == 0 {
            if let Some(class) = self.classes[id as usize].take() {
                self.class_of
                    .remove(&(class.capabilities, class.labels, class.priority));
            }
            self.free_classes.push(id);
        }
    }

    fn class_mut(&mut self, id: ClassId) -> Option<&mut Class> {
        class_in(&mut self.classes, id)
    }

    /// Counts one agent of `class` more (`sign = 1`) or fewer (`-1`) as online.
    pub(crate) fn count_online(&mut self, class: ClassId, sign: i64) {
        if let Some(c) = self.class_mut(class) {
            c.online = c.online.saturating_add_signed(sign as isize);
        }
    }

    /// Files an agent as available.
    pub(crate) fn insert(&mut self, class: ClassId, entry: Availability) {
        self.file(class, entry);
        let Some(c) = class_in(&mut self.classes, class) else {
            return;
        };
        self.dense_position[entry.slot as usize] = c.dense.len();
        c.dense.push(entry.slot);
    }

    /// Refiles an agent that stays available under a new load:
    /// its registration-order and sampling positions do not move. Inline:
    /// every acquire and release of an available agent comes here.
    #[inline]
    pub(crate) fn reorder(&mut self, class: ClassId, entry: Availability) {
        let Some(c) = class_in(&mut self.classes, class) else {
            return;
        };
        c.by_load
            .update(entry.slot, entry.ratio, &mut self.load_links);
    }

    /// Withdraws an agent filed with exactly `entry`.
    pub(crate) fn remove(&mut self, class: ClassId, entry: Availability) {
        let Some(c) = class_in(&mut self.classes, class) else {
            return;
        };
        c.by_order.remove(&(entry.order, entry.slot));
        c.by_load.remove(entry.slot, &mut self.load_links);
        let position = self.dense_position[entry.slot as usize];
        c.dense.swap_remove(position);
        if let Some(&moved) = c.dense.get(position) {
            self.dense_position[moved as usize] = position;
        }
        self.available -= 1;
    }

    /// `class`'s available members by `load / capacity`, lowest first;
    /// equal loads in the order the agents reached them. `O(log b)` to the
    /// first, for `b` distinct loads in the class.
    pub(crate) fn by_load<'a>(
        &'a self,
        class: &'a Class,
    ) -> impl Iterator<Item = (Ratio, Slot)> + 'a {
        class.by_load.iter(&self.load_links)
    }

    /// Number of available agents across all classes.
    pub(crate) fn available(&self) -> usize {
        self.available
    }

    /// Live classes, in id order.
    pub(crate) fn classes(&self) -> impl Iterator<Item = &Class> {
        self.classes.iter().flatten()
    }
}

/// A class as stored: its key and its available members in load order
/// and in sampling order. Counts and the other orders are derived.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(crate) struct ClassForm {
    capabilities: CapabilitySet,
    labels: CapabilitySet,
    priority: u32,
    by_load: Vec<Slot>,
    dense: Vec<Slot>,
}

/// The index as stored: the classes by id and the free class ids, in the
/// order they will be reused.
#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(crate) struct IndexForm {
    classes: Vec<Option<ClassForm>>,
    free_classes: Vec<ClassId>,
}

/// What the index needs to know of one registered agent to check and file
/// it when it is rebuilt from an [`IndexForm`].
pub(crate) struct Member<'a> {
    pub(crate) class: ClassId,
    pub(crate) capabilities: &'a CapabilitySet,
    pub(crate) labels: &'a CapabilitySet,
    pub(crate) priority: u32,
    pub(crate) online: bool,
    pub(crate) availability: Option<Availability>,
}

impl AvailabilityIndex {
    /// The stored form: every class with its load and sampling orders.
    pub(crate) fn to_form(&self) -> IndexForm {
        let classes = self
            .classes
            .iter()
            .map(|class| {
                class.as_ref().map(|c| ClassForm {
                    capabilities: c.capabilities.clone(),
                    labels: c.labels.clone(),
                    priority: c.priority,
                    by_load: c.by_load.iter(&self.load_links).map(|(_, s)| s).collect(),
                    dense: c.dense.clone(),
                })
            })
            .collect();
        IndexForm {
            classes,
            free_classes: self.free_classes.clone(),
        }
    }

    /// Rebuilds the index from its stored form and the registry's agents
    /// (`members[slot]`), refusing anything inconsistent: a free class id
    /// in use or repeated, two classes with one key, an empty class, an
    /// agent filed under a class of another key, an available agent missing
    /// from its class's orders or listed twice, an unavailable one listed.
    /// Costs `O(agents + classes)` plus the orders' logarithmic inserts.
    ///
    /// # Errors
    ///
    /// What is inconsistent, as text.
    pub(crate) fn from_form(
        form: IndexForm,
        members: &[Option<Member<'_>>],
    ) -> Result<Self, String> {
        let IndexForm {
            classes,
            free_classes,
        } = form;
        check_free_list("free_classes", &classes, &free_classes)?;
        let mut index = AvailabilityIndex {
            classes: Vec::with_capacity(classes.len()),
            free_classes,
            ..AvailabilityIndex::default()
        };
        let mut orders = Vec::with_capacity(classes.len());
        for (id, form) in classes.into_iter().enumerate() {
            let Some(form) = form else {
                index.classes.push(None);
                orders.push((Vec::new(), Vec::new()));
                continue;
            };
            let key = (
                form.capabilities.clone(),
                form.labels.clone(),
                form.priority,
            );
            if index.class_of.insert(key, id as ClassId).is_some() {
                return Err(format!("class {id} repeats the key of another class"));
            }
            index.classes.push(Some(Class {
                capabilities: form.capabilities,
                labels: form.labels,
                priority: form.priority,
                members: 0,
                online: 0,
                by_order: BTreeSet::new(),
                by_load: BucketLists::default(),
                dense: Vec::new(),
            }));
            orders.push((form.by_load, form.dense));
        }
        let mut available_per_class = vec![0usize; index.classes.len()];
        for (slot, member) in members.iter().enumerate() {
            let Some(member) = member else { continue };
            let Some(class) = class_in(&mut index.classes, member.class) else {
                return Err(format!(
                    "agent slot {slot} is filed under missing class {}",
                    member.class
                ));
            };
            let same_key = (&class.capabilities, &class.labels, class.priority)
                == (member.capabilities, member.labels, member.priority);
            if !same_key {
                return Err(format!(
                    "agent slot {slot} does not match its class {}",
                    member.class
                ));
            }
            class.members += 1;
            class.online += usize::from(member.online);
            if member.availability.is_some() {
                available_per_class[member.class as usize] += 1;
            }
        }
        for (id, (by_load, dense)) in orders.into_iter().enumerate() {
            let Some(class) = index.classes.get(id).and_then(Option::as_ref) else {
                continue;
            };
            if class.members == 0 {
                return Err(format!("class {id} has no member"));
            }
            let expected = available_per_class[id];
            if by_load.len() != expected || dense.len() != expected {
                return Err(format!(
                    "class {id} lists {} and {} available agents, not {expected}",
                    by_load.len(),
                    dense.len()
                ));
            }
            for (list, name) in [(&by_load, "load order"), (&dense, "sampling order")] {
                let mut seen = std::collections::BTreeSet::new();
                for &slot in list {
                    let available = members
                        .get(slot as usize)
                        .and_then(Option::as_ref)
                        .filter(|m| m.class as usize == id)
                        .and_then(|m| m.availability);
                    if available.is_none() || !seen.insert(slot) {
                        return Err(format!(
                            "class {id}'s {name} lists slot {slot}, which is not an available member or is listed twice"
                        ));
                    }
                }
            }
            for &slot in &by_load {
                if let Some(entry) = members
                    .get(slot as usize)
                    .and_then(Option::as_ref)
                    .and_then(|m| m.availability)
                {
                    index.file(id as ClassId, entry);
                }
            }
            if let Some(class) = class_in(&mut index.classes, id as ClassId) {
                class.dense = dense;
            }
        }
        for class in index.classes.iter().flatten() {
            for (position, &slot) in class.dense.iter().enumerate() {
                index.dense_position[slot as usize] = position;
            }
        }
        Ok(index)
    }

    /// Files an available agent in its class's registration and load
    /// orders (not the sampling order) and counts it.
    fn file(&mut self, class: ClassId, entry: Availability) {
        let slot = entry.slot as usize;
        if self.dense_position.len() <= slot {
            self.dense_position.resize(slot + 1, 0);
        }
        let Some(c) = class_in(&mut self.classes, class) else {
            return;
        };
        c.by_order.insert((entry.order, entry.slot));
        c.by_load
            .push(entry.slot, entry.ratio, &mut self.load_links);
        self.available += 1;
    }
}

/// The live class `id` among `classes`. A free function so callers can hold
/// it beside other fields of the index (the link tables).
fn class_in(classes: &mut [Option<Class>], id: ClassId) -> Option<&mut Class> {
    classes.get_mut(id as usize).and_then(Option::as_mut)
}
