//! Per-agent state of the dispatcher, stored by the agent's registry slot.
//!
//! The dispatcher touches an agent's list of running tasks on every
//! assignment and every report. Keyed by [`AgentId`] that was a hash lookup
//! each time; keyed by the agent's [`Slot`] — which routing returns with
//! the agent, and a running task keeps — it is an index. Each entry keeps
//! its agent's id beside it, so a slot reused by another agent can never
//! answer for the one that left.
//!
//! Stored state does not know slots: the table travels as `(agent, value)`
//! pairs in agent order (the form of the map it replaced, byte for byte),
//! and a table read back is [`placed`](AgentTable::placed) by the restored
//! registry before use.

use crate::AgentId;
use crate::agent::{Registry, Slot};

/// Values of type `T` for some registered agents, by slot.
#[derive(Clone, Debug)]
pub(crate) struct AgentTable<T> {
    slots: Vec<Option<(AgentId, T)>>,
}

impl<T> Default for AgentTable<T> {
    fn default() -> Self {
        AgentTable { slots: Vec::new() }
    }
}

impl<T> AgentTable<T> {
    /// The value of agent `id` in `slot`.
    #[inline]
    pub(crate) fn get(&self, id: AgentId, slot: Slot) -> Option<&T> {
        match self.slots.get(slot as usize) {
            Some(Some((owner, value))) if *owner == id => Some(value),
            _ => None,
        }
    }

    /// The value of agent `id` in `slot`, to change.
    #[inline]
    pub(crate) fn get_mut(&mut self, id: AgentId, slot: Slot) -> Option<&mut T> {
        match self.slots.get_mut(slot as usize) {
            Some(Some((owner, value))) if *owner == id => Some(value),
            _ => None,
        }
    }

    /// The value of agent `id` in `slot`, made with `T::default()` if it
    /// has none (replacing whatever a former occupant of the slot left).
    #[inline]
    pub(crate) fn get_or_default(&mut self, id: AgentId, slot: Slot) -> &mut T
    where
        T: Default,
    {
        let entry = self.entry_at(slot);
        if entry.as_ref().is_some_and(|(owner, _)| *owner != id) {
            *entry = None;
        }
        &mut entry.get_or_insert_with(|| (id, T::default())).1
    }

    /// Takes the value of agent `id` in `slot` out.
    pub(crate) fn remove(&mut self, id: AgentId, slot: Slot) -> Option<T> {
        let entry = self.slots.get_mut(slot as usize)?;
        match entry {
            Some((owner, _)) if *owner == id => entry.take().map(|(_, value)| value),
            _ => None,
        }
    }

    /// Every `(agent, value)`, in slot order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (AgentId, &T)> + '_ {
        self.slots.iter().flatten().map(|(id, value)| (*id, value))
    }

    /// Whether agent `id` has a value.
    pub(crate) fn contains(&self, id: AgentId, registry: &Registry) -> bool {
        registry
            .slot_of(id)
            .is_some_and(|slot| self.get(id, slot).is_some())
    }

    /// The table of a state read back, with every value moved to its
    /// agent's slot in `registry`.
    ///
    /// # Errors
    ///
    /// The first agent that is not registered.
    pub(crate) fn placed(self, registry: &Registry) -> Result<Self, AgentId> {
        let mut placed = AgentTable::default();
        for (id, value) in self.slots.into_iter().flatten() {
            let slot = registry.slot_of(id).ok_or(id)?;
            *placed.entry_at(slot) = Some((id, value));
        }
        Ok(placed)
    }

    /// The entry of `slot`, the table grown to hold it if needed.
    #[inline]
    fn entry_at(&mut self, slot: Slot) -> &mut Option<(AgentId, T)> {
        let at = slot as usize;
        if self.slots.len() <= at {
            self.slots.resize_with(at + 1, || None);
        }
        &mut self.slots[at]
    }
}

#[cfg(feature = "serde")]
mod form {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::AgentTable;
    use crate::AgentId;

    /// `(agent, value)` pairs sorted by agent: equal tables, equal bytes.
    impl<T: Serialize> Serialize for AgentTable<T> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let mut pairs: Vec<(AgentId, &T)> = self.iter().collect();
            pairs.sort_unstable_by_key(|&(id, _)| id);
            serializer.collect_seq(pairs)
        }
    }

    /// Reads the pairs, refusing an agent given twice. The values are not
    /// placed yet: see [`AgentTable::placed`].
    impl<'de, T: Deserialize<'de>> Deserialize<'de> for AgentTable<T> {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            let mut pairs: Vec<(AgentId, T)> = Vec::deserialize(deserializer)?;
            pairs.sort_unstable_by_key(|&(id, _)| id);
            if pairs.windows(2).any(|w| w[0].0 == w[1].0) {
                return Err(D::Error::custom("a key is given twice in a stored map"));
            }
            Ok(AgentTable {
                slots: pairs.into_iter().map(Some).collect(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Instant;
    use crate::agent::AgentProfile;

    fn registry(ids: &[u64]) -> Registry {
        let mut registry = Registry::new();
        for &id in ids {
            let profile = AgentProfile::builder().build().unwrap();
            registry
                .register(AgentId::new(id), profile, Instant::ZERO)
                .unwrap();
        }
        registry
    }

    #[test]
    fn a_slot_answers_only_for_its_own_agent() {
        let (a, b) = (AgentId::new(1), AgentId::new(2));
        let mut table: AgentTable<Vec<u32>> = AgentTable::default();
        table.get_or_default(a, 3).push(7);
        assert_eq!(table.get(a, 3), Some(&vec![7]));
        assert_eq!(table.get(b, 3), None);
        assert_eq!(table.get(a, 2), None);
        // Another agent in the same slot starts afresh.
        table.get_or_default(b, 3).push(8);
        assert_eq!(table.get(b, 3), Some(&vec![8]));
        assert_eq!(table.get(a, 3), None);
        assert_eq!(table.remove(a, 3), None);
        assert_eq!(table.remove(b, 3), Some(vec![8]));
        assert_eq!(table.iter().count(), 0);
    }

    #[test]
    fn placing_moves_values_to_the_registry_slots_and_refuses_strangers() {
        let registry = registry(&[5, 9]);
        let (five, nine) = (AgentId::new(5), AgentId::new(9));
        let stored = AgentTable {
            slots: vec![Some((nine, 'n')), Some((five, 'f'))],
        };
        let placed = stored.placed(&registry).unwrap();
        let slot = |id| registry.slot_of(id).unwrap();
        assert_eq!(placed.get(five, slot(five)), Some(&'f'));
        assert_eq!(placed.get(nine, slot(nine)), Some(&'n'));
        assert!(placed.contains(nine, &registry));

        let stranger = AgentTable {
            slots: vec![Some((AgentId::new(4), 'x'))],
        };
        assert_eq!(stranger.placed(&registry).unwrap_err(), AgentId::new(4));
    }

    #[cfg(feature = "serde")]
    #[test]
    fn travels_as_sorted_pairs_and_refuses_a_repeated_agent() {
        let mut table: AgentTable<u8> = AgentTable::default();
        *table.get_or_default(AgentId::new(9), 0) = 1;
        *table.get_or_default(AgentId::new(5), 1) = 2;
        let json = serde_json::to_string(&table).unwrap();
        assert_eq!(json, "[[5,2],[9,1]]");
        assert!(serde_json::from_str::<AgentTable<u8>>("[[5,2],[5,1]]").is_err());
        let back: AgentTable<u8> = serde_json::from_str(&json).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
    }
}
