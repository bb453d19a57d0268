//! The simulation's one event queue: events in virtual time, ties broken
//! by the order they were scheduled, so a run depends on its seed alone.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::Instant;

/// Events ordered by their instant, then by when they were scheduled.
#[derive(Debug)]
pub(crate) struct Queue<E> {
    heap: BinaryHeap<Reverse<(Instant, u64, Slot<E>)>>,
    next: u64,
}

/// An event in the heap; it takes no part in the ordering.
#[derive(Debug)]
struct Slot<E>(E);

impl<E> PartialEq for Slot<E> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl<E> Eq for Slot<E> {}
impl<E> PartialOrd for Slot<E> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Slot<E> {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

impl<E> Queue<E> {
    pub(crate) fn new() -> Self {
        Queue {
            heap: BinaryHeap::new(),
            next: 0,
        }
    }

    /// Schedules `event` at `at`.
    pub(crate) fn push(&mut self, at: Instant, event: E) {
        self.heap.push(Reverse((at, self.next, Slot(event))));
        self.next += 1;
    }

    /// The earliest event, if any.
    pub(crate) fn pop(&mut self) -> Option<(Instant, E)> {
        self.heap.pop().map(|Reverse((at, _, Slot(e)))| (at, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_leave_in_time_order_and_ties_in_scheduling_order() {
        let mut q = Queue::new();
        let t = Instant::from_millis;
        q.push(t(5), "c");
        q.push(t(1), "a");
        q.push(t(5), "d");
        q.push(t(1), "b");
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).map(|(_, e)| e).collect();
        assert_eq!(order, ["a", "b", "c", "d"]);
    }
}
