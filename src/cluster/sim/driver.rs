//! What a world asks of its workflow client, if it has one: step
//! attempts, a share of every tick, and how the runs ended.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::scheduler::AttemptOutcome;
use crate::{AgentId, Instant};

use super::super::mem_store::MemStore;
use super::config::SimRng;

/// How the runs of a simulation ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunCounts {
    /// Runs started.
    pub started: u64,
    /// Every step completed or was skipped.
    pub succeeded: u64,
    /// Failed, and every completed compensable step was compensated.
    pub compensated: u64,
    /// Failed, with nothing to compensate.
    pub failed: u64,
    /// Failed, and some compensation could not be done.
    pub compensation_failed: u64,
    /// Runs the client cancelled (each ends one of the ways above).
    pub cancelled: u64,
}

/// What one tick gives the workflow client.
// Read only by the workflow client (feature `workflow`).
#[cfg_attr(not(feature = "workflow"), allow(dead_code))]
pub(crate) struct Tick<'a, P> {
    pub(crate) store: &'a mut MemStore<P>,
    pub(crate) rng: &'a mut SimRng,
    pub(crate) now: Instant,
    /// The store is restarting: every operation fails.
    pub(crate) store_down: bool,
    /// The chance that an answer is lost.
    pub(crate) lose_answer: f64,
    /// The chance that the store refuses an operation.
    pub(crate) refuse: f64,
    /// The chance, per tick, that a live run is cancelled.
    pub(crate) cancel: f64,
    /// Whether new runs start (during the faults).
    pub(crate) starting: bool,
    /// Faults injected, by kind.
    pub(crate) faults: &'a mut BTreeMap<&'static str, u64>,
    /// Notable lines for the trace.
    pub(crate) log: &'a mut Vec<String>,
}

/// The part of a world that runs workflows: nothing (`()`), or the
/// simulated workflow client.
pub(crate) trait Driver<P> {
    /// How an agent's attempt at `payload` goes, if it is a step.
    fn attempt(
        &mut self,
        agent: AgentId,
        payload: &P,
        rng: &mut SimRng,
    ) -> Option<(Duration, AttemptOutcome)>;

    /// One tick: starts, cancels, store operations, the engine's actions
    /// and timers, and the checks. `Err` is a broken invariant.
    fn tick(&mut self, tick: Tick<'_, P>) -> Result<(), String>;

    /// Runs not finished yet, and step tasks still tracked.
    fn live(&self) -> usize;

    /// Step tasks the cluster accepted.
    fn tasks(&self) -> u64;

    /// How the runs ended.
    fn counts(&self) -> RunCounts;
}

/// No workflows.
impl<P> Driver<P> for () {
    fn attempt(&mut self, _: AgentId, _: &P, _: &mut SimRng) -> Option<(Duration, AttemptOutcome)> {
        None
    }

    fn tick(&mut self, _: Tick<'_, P>) -> Result<(), String> {
        Ok(())
    }

    fn live(&self) -> usize {
        0
    }

    fn tasks(&self) -> u64 {
        0
    }

    fn counts(&self) -> RunCounts {
        RunCounts::default()
    }
}
