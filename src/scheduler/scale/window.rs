//! A window of counts in time slices: the recommendations of a
//! stabilisation window (the highest of each slice) and the desired counts
//! of a scale-up period (the lowest of each slice), in bounded memory
//! however often the host asks.

use std::collections::VecDeque;
use std::time::Duration;

use crate::Instant;

/// Slices of a window: it holds at most this many, plus the one being
/// filled.
pub(super) const SLICES: u64 = 60;

/// Counts filed in slices of `window / SLICES`, one value a slice (the
/// highest or the lowest filed in it), the slices older than the window
/// forgotten.
#[derive(Clone, Debug)]
pub(super) struct SlicedWindow {
    width: u64,
    slices: VecDeque<(u64, u32)>,
    keep: Keep,
}

/// Which value a slice keeps.
#[derive(Clone, Copy, Debug)]
pub(super) enum Keep {
    Highest,
    Lowest,
}

impl SlicedWindow {
    pub(super) fn new(window: Duration, keep: Keep) -> Self {
        let nanos = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
        SlicedWindow {
            width: (nanos / SLICES).max(1),
            slices: VecDeque::new(),
            keep,
        }
    }

    /// Files `value` at `now` and forgets the slices that have left the
    /// window. A clock that stepped back files in the latest slice.
    pub(super) fn file(&mut self, value: u32, now: Instant) {
        let slice = now.as_nanos() / self.width;
        while self
            .slices
            .front()
            .is_some_and(|&(s, _)| s.saturating_add(SLICES) <= slice)
        {
            self.slices.pop_front();
        }
        let keep = self.keep;
        match self.slices.back_mut() {
            Some((s, kept)) if *s >= slice => {
                *kept = match keep {
                    Keep::Highest => (*kept).max(value),
                    Keep::Lowest => (*kept).min(value),
                }
            }
            _ => self.slices.push_back((slice, value)),
        }
    }

    /// The highest value in the window.
    pub(super) fn highest(&self) -> Option<u32> {
        self.slices.iter().map(|&(_, v)| v).max()
    }

    /// The lowest value in the window.
    pub(super) fn lowest(&self) -> Option<u32> {
        self.slices.iter().map(|&(_, v)| v).min()
    }

    /// Slices held.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.slices.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_keeps_one_value_a_slice_and_forgets_what_left_it() {
        let mut w = SlicedWindow::new(Duration::from_secs(60), Keep::Lowest);
        w.file(9, Instant::from_millis(100));
        w.file(4, Instant::from_millis(900));
        assert_eq!((w.len(), w.lowest(), w.highest()), (1, Some(4), Some(4)));
        w.file(7, Instant::from_secs(30));
        assert_eq!((w.lowest(), w.highest()), (Some(4), Some(7)));
        // Past the window: the first slice is forgotten.
        w.file(8, Instant::from_secs(61));
        assert_eq!(w.lowest(), Some(7));
        // A clock that stepped back files in the latest slice.
        w.file(1, Instant::from_secs(5));
        assert_eq!(w.lowest(), Some(1));
        for second in 0..1_000 {
            w.file(second, Instant::from_secs(u64::from(second)));
        }
        assert!(w.len() <= SLICES as usize + 1);
    }
}
