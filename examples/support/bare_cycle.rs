//! The first fixed yardstick of `perf_report`'s full cycle: a bare
//! priority queue and a bare least-loaded pick, timed apart and summed.

use std::collections::{BTreeSet, VecDeque};
use std::hint::black_box;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// The first baseline: four `VecDeque`s, push to a level, pop from the
/// first non-empty one.
pub(crate) struct PushPop {
    levels: Vec<usize>,
    queues: [VecDeque<(u64, u64)>; 4],
    seq: u64,
}

impl PushPop {
    pub(crate) fn new(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        PushPop {
            levels: (0..1024).map(|_| rng.random_range(0..4)).collect(),
            queues: Default::default(),
            seq: 0,
        }
    }

    pub(crate) fn step(&mut self) {
        self.seq += 1;
        let level = self.levels[(self.seq as usize) & (self.levels.len() - 1)];
        self.queues[black_box(level)].push_back((self.seq, self.seq));
        black_box(self.queues.iter_mut().find_map(VecDeque::pop_front));
    }
}

/// The second baseline: a `BTreeSet<(load ratio, id)>` of `entries`
/// agents; pop the least loaded, reinsert it one task busier.
pub(crate) struct Pick {
    loads: Vec<u32>,
    index: BTreeSet<(u64, u32)>,
    capacity: u32,
}

impl Pick {
    fn ratio(load: u32, capacity: u32) -> u64 {
        (u64::from(load) << 32) / u64::from(capacity)
    }

    pub(crate) fn new(entries: usize, capacity: u32, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let loads: Vec<u32> = (0..entries)
            .map(|_| rng.random_range(0..capacity))
            .collect();
        let index = (loads.iter().enumerate())
            .map(|(id, &load)| (Self::ratio(load, capacity), id as u32))
            .collect();
        Pick {
            loads,
            index,
            capacity,
        }
    }

    pub(crate) fn step(&mut self) {
        if let Some((_, id)) = self.index.pop_first() {
            let load = &mut self.loads[id as usize];
            *load += 1;
            self.index.insert((Self::ratio(*load, self.capacity), id));
            black_box(id);
        }
    }
}
