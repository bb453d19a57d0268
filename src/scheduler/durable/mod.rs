//! The dispatcher as stored data: its inputs as a journal, its state as a
//! snapshot, and the checks that make either safe to load.

pub(super) mod journal;
#[cfg(feature = "serde")]
pub(super) mod rows;
pub(super) mod snapshot;
pub(super) mod snapshot_keys;
pub(super) mod state_form;
