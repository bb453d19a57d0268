//! Availability index: the structure that lets routing avoid full scans.
//!
//! Agents with the same capability set and the same labels form a *class*.
//! Each class keeps its available agents (online, with a free slot) in three
//! orders — registration, load ratio, priority — plus a dense vector for
//! uniform sampling. A request walks only the classes whose capabilities and
//! labels satisfy it and takes the head of each class's ordered set, so a
//! choice costs `O(matching classes × log n)` rather than `O(n)`.
//!
//! The registry updates the index on every change of status or load, so
//! routing never rebuilds anything.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeSet, HashMap};

use crate::capability::CapabilitySet;

/// Dense handle of a registered agent inside the registry's slab.
pub(crate) type Slot = u32;
/// Dense handle of a class inside the index.
pub(crate) type ClassId = u32;

/// Orders agents by `load / capacity` (exactly, by cross-multiplication),
/// then by registration order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LoadKey {
    pub(crate) load: u32,
    pub(crate) capacity: u32,
    pub(crate) order: u64,
    pub(crate) slot: Slot,
}

impl Ord for LoadKey {
    fn cmp(&self, other: &Self) -> Ordering {
        let lhs = u64::from(self.load) * u64::from(other.capacity);
        let rhs = u64::from(other.load) * u64::from(self.capacity);
        lhs.cmp(&rhs).then(self.order.cmp(&other.order))
    }
}

impl PartialOrd for LoadKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Everything the index needs to know to file one available agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Availability {
    pub(crate) load: LoadKey,
    pub(crate) priority: u32,
}

impl Availability {
    fn order(&self) -> (u64, Slot) {
        (self.load.order, self.load.slot)
    }

    fn priority_key(&self) -> (Reverse<u32>, LoadKey) {
        (Reverse(self.priority), self.load)
    }
}

/// The available agents of one class.
#[derive(Clone, Debug)]
pub(crate) struct Class {
    pub(crate) capabilities: CapabilitySet,
    pub(crate) labels: CapabilitySet,
    members: usize,
    /// Members whose status is online, busy or not.
    pub(crate) online: usize,
    pub(crate) by_order: BTreeSet<(u64, Slot)>,
    pub(crate) by_load: BTreeSet<LoadKey>,
    pub(crate) by_priority: BTreeSet<(Reverse<u32>, LoadKey)>,
    pub(crate) dense: Vec<Slot>,
}

/// All classes, plus the reverse map from slot to dense position.
#[derive(Clone, Debug, Default)]
pub(crate) struct AvailabilityIndex {
    classes: Vec<Option<Class>>,
    free_classes: Vec<ClassId>,
    class_of: HashMap<(CapabilitySet, CapabilitySet), ClassId>,
    dense_position: Vec<usize>,
    available: usize,
}

impl AvailabilityIndex {
    /// The class for this capability/label combination, created on first use;
    /// counts one more member.
    pub(crate) fn join(&mut self, capabilities: &CapabilitySet, labels: &CapabilitySet) -> ClassId {
        let key = (capabilities.clone(), labels.clone());
        let id = match self.class_of.get(&key) {
            Some(&id) => id,
            None => {
                let class = Class {
                    capabilities: key.0.clone(),
                    labels: key.1.clone(),
                    members: 0,
                    online: 0,
                    by_order: BTreeSet::new(),
                    by_load: BTreeSet::new(),
                    by_priority: BTreeSet::new(),
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
                self.class_of.remove(&(class.capabilities, class.labels));
            }
            self.free_classes.push(id);
        }
    }

    fn class_mut(&mut self, id: ClassId) -> Option<&mut Class> {
        self.classes.get_mut(id as usize).and_then(Option::as_mut)
    }

    /// Counts one agent of `class` more (`sign = 1`) or fewer (`-1`) as online.
    pub(crate) fn count_online(&mut self, class: ClassId, sign: i64) {
        if let Some(c) = self.class_mut(class) {
            c.online = c.online.saturating_add_signed(sign as isize);
        }
    }

    /// Files an agent as available.
    pub(crate) fn insert(&mut self, class: ClassId, entry: Availability) {
        let slot = entry.load.slot as usize;
        if self.dense_position.len() <= slot {
            self.dense_position.resize(slot + 1, 0);
        }
        let Some(c) = self
            .classes
            .get_mut(class as usize)
            .and_then(Option::as_mut)
        else {
            return;
        };
        c.by_order.insert(entry.order());
        c.by_load.insert(entry.load);
        c.by_priority.insert(entry.priority_key());
        self.dense_position[slot] = c.dense.len();
        c.dense.push(entry.load.slot);
        self.available += 1;
    }

    /// Withdraws an agent filed with exactly `entry`.
    pub(crate) fn remove(&mut self, class: ClassId, entry: Availability) {
        let Some(c) = self
            .classes
            .get_mut(class as usize)
            .and_then(Option::as_mut)
        else {
            return;
        };
        c.by_order.remove(&entry.order());
        c.by_load.remove(&entry.load);
        c.by_priority.remove(&entry.priority_key());
        let position = self.dense_position[entry.load.slot as usize];
        c.dense.swap_remove(position);
        if let Some(&moved) = c.dense.get(position) {
            self.dense_position[moved as usize] = position;
        }
        self.available -= 1;
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
