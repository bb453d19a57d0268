//! The dense handle of a registered agent, shared by the registry, its
//! availability index and the index's bucket lists.

/// Dense handle of a registered agent inside the registry's slab.
pub(crate) type Slot = u32;
