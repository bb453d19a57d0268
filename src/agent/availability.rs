//! What routing reads of a registry: the live agent classes, each with its
//! available agents in the orders strategies ask for, and records by id or
//! slot. Routing reads the availability index only through this view, so
//! the index stays the agent module's own.

use super::buckets::Ratio;
use super::index::{Class, Slot};
use super::{AgentRecord, Registry};
use crate::AgentId;

/// A registry as routing reads it. Copying it costs a pointer; every query
/// costs what the index's docs say.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Availability<'a> {
    registry: &'a Registry,
}

impl Registry {
    /// This registry as routing reads it.
    #[inline]
    pub(crate) fn availability(&self) -> Availability<'_> {
        Availability { registry: self }
    }
}

impl<'a> Availability<'a> {
    /// The registry behind the view.
    #[inline]
    pub(crate) fn registry(self) -> &'a Registry {
        self.registry
    }

    /// Live classes (agents with the same capabilities, labels and
    /// priority), in id order.
    #[inline]
    pub(crate) fn classes(self) -> impl Iterator<Item = &'a Class> + 'a {
        self.registry.index().classes()
    }

    /// `class`'s available members by `load / capacity`, lowest first;
    /// equal loads in the order the agents reached them.
    #[inline]
    pub(crate) fn by_load(self, class: &'a Class) -> impl Iterator<Item = (Ratio, Slot)> + 'a {
        self.registry.index().by_load(class)
    }

    /// The record in `slot`, if one is there.
    #[inline]
    pub(crate) fn at(self, slot: Slot) -> Option<&'a AgentRecord> {
        self.registry.slot(slot)
    }

    /// The record of `id`, with its slot.
    #[inline]
    pub(crate) fn find(self, id: AgentId) -> Option<(Slot, &'a AgentRecord)> {
        let slot = self.registry.slot_of(id)?;
        Some((slot, self.registry.slot(slot)?))
    }
}
