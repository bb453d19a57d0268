//! How a change to an agent's record reaches the availability index and
//! the online totals: every mutation of a record goes through
//! [`Registry::update`], or [`Registry::update_load`] for the load alone,
//! which refile the agent from where its old state filed it to where its
//! new state does.

use super::super::record::TrackedState;
use super::super::slot::Slot;
use super::super::{AgentRecord, AgentStatus, PerformanceStats};
use super::{Registry, RegistryError};
use crate::AgentId;

/// What [`Registry::update_load`] lets a change see of a record: its load,
/// its capacity (read only) and its outcome history.
pub(super) struct LoadOnly<'a> {
    pub(super) load: u32,
    capacity: u32,
    pub(super) stats: &'a mut PerformanceStats,
}

impl LoadOnly<'_> {
    pub(super) fn capacity(&self) -> u32 {
        self.capacity
    }
}

impl Registry {
    /// The slot of a registered agent.
    #[inline]
    pub(super) fn known_slot(&self, id: AgentId) -> Result<Slot, RegistryError> {
        self.slot_of(id).ok_or(RegistryError::UnknownAgent(id))
    }

    /// The slot and record of a registered agent.
    #[inline]
    pub(super) fn locate_mut(
        &mut self,
        id: AgentId,
    ) -> Result<(Slot, &mut AgentRecord), RegistryError> {
        let slot = self.known_slot(id)?;
        Ok((slot, self.record_at(id, slot)?))
    }

    /// The record of the agent `id` in `slot`.
    #[inline]
    fn record_at(&mut self, id: AgentId, slot: Slot) -> Result<&mut AgentRecord, RegistryError> {
        self.slots
            .get_mut(slot as usize)
            .and_then(Option::as_mut)
            .filter(|record| record.id == id)
            .ok_or(RegistryError::UnknownAgent(id))
    }

    /// Applies `change` to an agent's record, then moves the agent in the
    /// index and the online totals from where its old state filed it to
    /// where its new state files it.
    pub(super) fn update<T>(
        &mut self,
        id: AgentId,
        change: impl FnOnce(&mut AgentRecord) -> Result<T, RegistryError>,
    ) -> Result<T, RegistryError> {
        let (slot, record) = self.locate_mut(id)?;
        let before = record.tracked();
        let result = change(record);
        let after = record.tracked();
        if before == after {
            return result;
        }
        let same_standing = (before.status, before.capacity, before.class)
            == (after.status, after.capacity, after.class);
        if !same_standing {
            self.count_online(before, -1);
            self.count_online(after, 1);
        } else if after.status == AgentStatus::Online {
            // Only the load moved (the common case): no class to visit.
            self.shift_online_load(before.load, after.load);
        }
        self.refile(slot, before, after);
        result
    }

    /// [`update`](Self::update) for a change of load alone — what every
    /// assignment and completion makes — of the agent `id` in `slot`.
    /// `change` sees a [`LoadOnly`] view of the record, which lets it move
    /// the load and the history but not the status, capacity, slot limit or
    /// class, so the agent keeps its standing: the online totals move by
    /// the load difference, and the index refiles the agent by load, files
    /// it or withdraws it, without comparing whole states.
    ///
    /// # Errors
    ///
    /// [`RegistryError::UnknownAgent`] unless `id` is registered in `slot`;
    /// whatever `change` returns.
    #[inline(always)]
    pub(super) fn update_load<T>(
        &mut self,
        id: AgentId,
        slot: Slot,
        change: impl FnOnce(&mut LoadOnly<'_>) -> Result<T, RegistryError>,
    ) -> Result<T, RegistryError> {
        let record = self.record_at(id, slot)?;
        let before = record.load;
        let mut view = LoadOnly {
            load: record.load,
            capacity: record.capacity(),
            stats: &mut record.stats,
        };
        let result = change(&mut view);
        record.load = view.load;
        if before == record.load || record.status != AgentStatus::Online {
            // Not online: neither in the totals nor in the index.
            return result;
        }
        let after = record.tracked();
        let before = TrackedState {
            load: before,
            ..after
        };
        self.shift_online_load(before.load, after.load);
        self.refile(slot, before, after);
        result
    }

    /// Adds (`sign = 1`) or withdraws (`sign = -1`) an agent's contribution
    /// to the index and to the online totals.
    pub(super) fn track(&mut self, slot: Slot, state: TrackedState, sign: i64) {
        self.count_online(state, sign);
        if let Some(entry) = state.availability(slot) {
            if sign > 0 {
                self.index.insert(state.class, entry);
            } else {
                self.index.remove(state.class, entry);
            }
        }
    }

    /// Moves an agent in the index from where `before` filed it to where
    /// `after` files it. Always inline: every assignment and completion of
    /// an available agent comes here, and a call costs it about a fifth.
    #[inline(always)]
    fn refile(&mut self, slot: Slot, before: TrackedState, after: TrackedState) {
        match (before.availability(slot), after.availability(slot)) {
            // Still available: only the load order moves.
            (Some(_), Some(new)) => self.index.reorder(after.class, new),
            (old, new) => {
                if let Some(old) = old {
                    self.index.remove(before.class, old);
                }
                if let Some(new) = new {
                    self.index.insert(after.class, new);
                }
            }
        }
    }

    /// An online agent's load moved from `before` to `after`.
    #[inline]
    fn shift_online_load(&mut self, before: u32, after: u32) {
        self.online_load = self
            .online_load
            .saturating_add(u64::from(after))
            .saturating_sub(u64::from(before));
    }

    /// The online totals' share of one agent state.
    fn count_online(&mut self, state: TrackedState, sign: i64) {
        if state.status == AgentStatus::Online {
            let apply =
                |total: u64, amount: u32| total.saturating_add_signed(sign * i64::from(amount));
            self.online_load = apply(self.online_load, state.load);
            self.online_capacity = apply(self.online_capacity, state.capacity);
            self.index.count_online(state.class, sign);
        }
    }
}
