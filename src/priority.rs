//! Task priority levels.

use std::fmt;

/// The priority of a task: four levels, `P0` (most urgent) to `P3`.
///
/// `Ord` follows urgency: `Critical < High < Normal < Low`, so sorting puts
/// the most urgent first. [`Priority::index`] gives the level as `0..4` for
/// per-level arrays.
///
/// ```
/// use taskweave::Priority;
///
/// assert!(Priority::Critical < Priority::Low);
/// assert_eq!(Priority::P2, Priority::Normal);
/// assert_eq!(Priority::from_index(1), Some(Priority::High));
/// assert_eq!(Priority::from_index(4), None);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Priority {
    /// P0: must run now (incidents, user-facing latency).
    Critical = 0,
    /// P1: important, ahead of regular work.
    High = 1,
    /// P2: regular work.
    #[default]
    Normal = 2,
    /// P3: background work, served last (but aging keeps it from starving).
    Low = 3,
}

impl Priority {
    /// Alias of [`Priority::Critical`].
    pub const P0: Priority = Priority::Critical;
    /// Alias of [`Priority::High`].
    pub const P1: Priority = Priority::High;
    /// Alias of [`Priority::Normal`].
    pub const P2: Priority = Priority::Normal;
    /// Alias of [`Priority::Low`].
    pub const P3: Priority = Priority::Low;
    /// Every level, most urgent first.
    pub const ALL: [Priority; 4] = [
        Priority::Critical,
        Priority::High,
        Priority::Normal,
        Priority::Low,
    ];
    /// Number of levels.
    pub const LEVELS: usize = 4;

    /// The level as an index: 0 for `P0` up to 3 for `P3`.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The level with the given index, or `None` past `P3`.
    pub const fn from_index(index: usize) -> Option<Priority> {
        match index {
            0 => Some(Priority::Critical),
            1 => Some(Priority::High),
            2 => Some(Priority::Normal),
            3 => Some(Priority::Low),
            _ => None,
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "P{}", self.index())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_round_trips_for_every_level() {
        for p in Priority::ALL {
            assert_eq!(Priority::from_index(p.index()), Some(p));
        }
        assert_eq!(Priority::Low.to_string(), "P3");
    }
}
