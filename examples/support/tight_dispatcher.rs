//! The second fixed yardstick of `perf_report`: a tight O(1) dispatcher,
//! what a host would write by hand for this one job and nothing else.
//!
//! Tasks live in a slab (a `Vec` of slots and a free list) whose slots carry
//! a generation, so an attempt's token fences a late report; four FIFO
//! queues of slot indices hold the waiting tasks by priority; agents of one
//! capacity sit in load buckets (bucket `k` holds the agents running `k`
//! tasks, each agent knowing its place in its bucket), so picking the least
//! loaded agent and moving it between buckets are O(1). No hashing, no
//! events, no timers, no keys: every operation is a few array accesses.
//!
//! This is a yardstick, not a competitor: it is measured the same way in
//! every report, and its code changes only with a CHANGELOG note.

use std::collections::VecDeque;

/// An attempt: the slot of its task and the slot's generation.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Token {
    slot: u32,
    generation: u32,
}

struct Slot {
    payload: u64,
    generation: u32,
    /// The agent running the task; `u32::MAX` while it waits.
    agent: u32,
}

pub(crate) struct TightDispatcher {
    slots: Vec<Slot>,
    free: Vec<u32>,
    queues: [VecDeque<u32>; 4],
    /// `buckets[k]`: the agents running `k` tasks.
    buckets: Vec<Vec<u32>>,
    /// Per agent: its load and its index in `buckets[load]`.
    loads: Vec<(u32, u32)>,
    capacity: u32,
}

impl TightDispatcher {
    pub(crate) fn new(agents: usize, capacity: u32) -> Self {
        let mut buckets = vec![Vec::new(); capacity as usize + 1];
        buckets[0] = (0..agents as u32).collect();
        TightDispatcher {
            slots: Vec::new(),
            free: Vec::new(),
            queues: Default::default(),
            buckets,
            loads: (0..agents as u32).map(|i| (0, i)).collect(),
            capacity,
        }
    }

    /// Queues a task at `priority` (0 is the most urgent of four).
    pub(crate) fn submit(&mut self, payload: u64, priority: usize) {
        let slot = match self.free.pop() {
            Some(slot) => {
                let entry = &mut self.slots[slot as usize];
                entry.payload = payload;
                entry.agent = u32::MAX;
                slot
            }
            None => {
                self.slots.push(Slot {
                    payload,
                    generation: 0,
                    agent: u32::MAX,
                });
                (self.slots.len() - 1) as u32
            }
        };
        self.queues[priority].push_back(slot);
    }

    /// Assigns the most urgent waiting task to the least loaded agent with
    /// a free slot: the task's payload, the agent and the attempt's token.
    pub(crate) fn assign(&mut self) -> Option<(u64, u32, Token)> {
        let load = (0..self.capacity as usize).find(|&k| !self.buckets[k].is_empty())?;
        let slot = self.queues.iter_mut().find_map(VecDeque::pop_front)?;
        let agent = self.buckets[load].pop().expect("a non-empty bucket");
        self.enter(agent, load + 1);
        let entry = &mut self.slots[slot as usize];
        entry.agent = agent;
        let token = Token {
            slot,
            generation: entry.generation,
        };
        Some((entry.payload, agent, token))
    }

    /// Ends the attempt `token` of `agent` with success: false (and nothing
    /// changed) when the token is stale.
    pub(crate) fn succeed(&mut self, agent: u32, token: Token) -> bool {
        let entry = &mut self.slots[token.slot as usize];
        if entry.generation != token.generation || entry.agent != agent {
            return false;
        }
        entry.generation = entry.generation.wrapping_add(1);
        entry.agent = u32::MAX;
        self.free.push(token.slot);
        let (load, at) = self.loads[agent as usize];
        let bucket = &mut self.buckets[load as usize];
        bucket.swap_remove(at as usize);
        if let Some(&moved) = bucket.get(at as usize) {
            self.loads[moved as usize].1 = at;
        }
        self.enter(agent, load as usize - 1);
        true
    }

    fn enter(&mut self, agent: u32, load: usize) {
        let bucket = &mut self.buckets[load];
        self.loads[agent as usize] = (load as u32, bucket.len() as u32);
        bucket.push(agent);
    }
}

/// `perf_report`'s full cycle on the tight dispatcher: a pool kept half
/// busy, each cycle submitting a task, assigning it and ending the oldest
/// attempt in flight with success.
pub(crate) struct TightCycle {
    dispatcher: TightDispatcher,
    in_flight: VecDeque<(u32, Token)>,
    clock: u64,
}

/// The priority of every task of the cycle (the dispatcher's `Normal`).
const PRIORITY: usize = 2;

impl TightCycle {
    pub(crate) fn new(agents: usize, capacity: u32, in_flight_per_agent: usize) -> Self {
        let mut cycle = TightCycle {
            dispatcher: TightDispatcher::new(agents, capacity),
            in_flight: VecDeque::with_capacity(agents * in_flight_per_agent + 1),
            clock: 0,
        };
        for _ in 0..agents * in_flight_per_agent {
            let held = cycle.submit_and_assign();
            cycle.in_flight.push_back(held);
        }
        cycle
    }

    fn submit_and_assign(&mut self) -> (u32, Token) {
        self.clock += 1;
        self.dispatcher
            .submit(std::hint::black_box(self.clock), PRIORITY);
        let (payload, agent, token) = self.dispatcher.assign().expect("a free slot");
        std::hint::black_box(payload);
        (agent, token)
    }

    pub(crate) fn cycle(&mut self) {
        let held = self.submit_and_assign();
        self.in_flight.push_back(held);
        if let Some((agent, token)) = self.in_flight.pop_front() {
            assert!(self.dispatcher.succeed(agent, token), "a current token");
        }
    }
}
