//! Dense storage of live tasks, addressed by [`TaskId`]s that carry a
//! generation, so an id of a finished task never reaches its slot's next
//! occupant.

use crate::TaskId;

#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

/// A slab whose keys are [`TaskId`]s: `generation << 32 | index`.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(crate) struct TaskSlab<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Default for TaskSlab<T> {
    fn default() -> Self {
        TaskSlab {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

fn split(id: TaskId) -> (usize, u32) {
    (
        (id.get() & u64::from(u32::MAX)) as usize,
        (id.get() >> 32) as u32,
    )
}

impl<T> TaskSlab<T> {
    /// Stores `value` and returns its new id.
    pub(crate) fn insert(&mut self, value: T) -> TaskId {
        self.len += 1;
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    value: None,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[index as usize];
        slot.value = Some(value);
        TaskId::new(u64::from(slot.generation) << 32 | u64::from(index))
    }

    pub(crate) fn get(&self, id: TaskId) -> Option<&T> {
        let (index, generation) = split(id);
        self.slots
            .get(index)
            .filter(|slot| slot.generation == generation)
            .and_then(|slot| slot.value.as_ref())
    }

    pub(crate) fn get_mut(&mut self, id: TaskId) -> Option<&mut T> {
        let (index, generation) = split(id);
        self.slots
            .get_mut(index)
            .filter(|slot| slot.generation == generation)
            .and_then(|slot| slot.value.as_mut())
    }

    /// Removes the value; the slot's next occupant gets a new generation.
    pub(crate) fn remove(&mut self, id: TaskId) -> Option<T> {
        let (index, generation) = split(id);
        let slot = self
            .slots
            .get_mut(index)
            .filter(|slot| slot.generation == generation)?;
        let value = slot.value.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(index as u32);
        self.len -= 1;
        Some(value)
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Every stored value with its id, in slot order. Costs `O(slots)`:
    /// the peak number of values stored at once.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (TaskId, &T)> + '_ {
        self.slots.iter().zip(0u64..).filter_map(|(slot, index)| {
            let id = TaskId::new(u64::from(slot.generation) << 32 | index);
            slot.value.as_ref().map(|value| (id, value))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_ids_miss_reused_slots() {
        let mut slab = TaskSlab::default();
        let a = slab.insert("a");
        assert_eq!(slab.remove(a), Some("a"));
        let b = slab.insert("b");
        assert_ne!(a, b);
        assert_eq!(slab.get(a), None);
        assert_eq!(slab.remove(a), None);
        assert_eq!(slab.get(b), Some(&"b"));
        assert_eq!(slab.len(), 1);
        let c = slab.insert("c");
        assert_eq!(slab.iter().collect::<Vec<_>>(), [(b, &"b"), (c, &"c")]);
    }
}
