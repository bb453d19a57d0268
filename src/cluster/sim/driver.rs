//! What a world asks of its workflow client, if it has one: step
//! attempts, a share of every tick, the commits it checks (hosted runs),
//! and how the runs ended.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::scheduler::AttemptOutcome;
use crate::{AgentId, AttemptToken, Instant, TaskId};

use super::super::audit::EndSeen;
use super::super::contract::{
    Assignment, ClientOp, ClientReply, NodeOp, NodeState, RunEnd, Store, StoreFailure,
};
use super::super::mem_store::MemStore;
use super::super::runs::RunCodec;
use super::config::SimRng;
use super::failures::{lost_answer, refusal, refused, store_down};

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
    /// The client is stopped ([`FaultMenu::client_stops`](super::FaultMenu::client_stops)).
    pub(crate) client_down: bool,
    /// Faults injected, by kind.
    pub(crate) faults: &'a mut BTreeMap<&'static str, u64>,
    /// Notable lines for the trace.
    pub(crate) log: &'a mut Vec<String>,
}

impl<P: Clone> Tick<'_, P> {
    /// A client's operation as the store takes it: refused while the
    /// store restarts or at the menu's chance, executed otherwise.
    pub(crate) fn execute(&mut self, op: ClientOp<P>) -> Result<ClientReply<P>, StoreFailure> {
        self.execute_as(None, op)
    }

    /// [`execute`](Self::execute), as the client of `tenant` (or of
    /// none).
    pub(crate) fn execute_as(
        &mut self,
        tenant: Option<crate::TenantId>,
        op: ClientOp<P>,
    ) -> Result<ClientReply<P>, StoreFailure> {
        if self.store_down {
            Err(store_down())
        } else if refused(self.rng, self.refuse, self.faults) {
            Err(refusal())
        } else {
            match tenant {
                Some(tenant) => self.store.tenant_client(tenant, op, self.now),
                None => self.store.client(op, self.now),
            }
        }
    }

    /// What the client hears of `reply`: the answer of an operation that
    /// took effect is lost at the menu's chance.
    pub(crate) fn heard<R>(&mut self, reply: Result<R, StoreFailure>) -> Result<R, StoreFailure> {
        match reply {
            Ok(_) if self.rng.chance(self.lose_answer) => Err(lost_answer()),
            reply => reply,
        }
    }
}

/// How an agent's attempt at a step goes.
pub(crate) struct Attempted<P> {
    /// How long it runs.
    pub(crate) took: Duration,
    /// How it ends.
    pub(crate) outcome: AttemptOutcome,
    /// A success's output; `None`: the world's own rule.
    pub(crate) output: Option<P>,
}

/// A commit that landed, as the checks of hosted runs see it.
pub(crate) struct Landed<'a, P> {
    /// The task ends its entries journaled, as the audit saw them.
    pub(crate) task_ends: &'a [EndSeen<P>],
    /// The hosted runs' ends its entries produce when the audit replays
    /// them, each with its entry.
    pub(crate) run_ends: Vec<(u64, RunEnd<P>)>,
}

/// The part of a world that runs workflows: nothing (`()`), the
/// simulated workflow client, or the client of the runs the nodes host.
pub(crate) trait Driver<P> {
    /// How an agent's attempt at `work` goes, if it is a step.
    fn attempt(
        &mut self,
        agent: AgentId,
        work: &Assignment<P>,
        rng: &mut SimRng,
    ) -> Option<Attempted<P>>;

    /// What an agent's success at `payload` (attempt `token` of `task`)
    /// outputs, if the workflows compute it: a late report of an old
    /// life carries it.
    fn output(&self, task: TaskId, token: AttemptToken, payload: &P) -> Option<P> {
        let _ = (task, token, payload);
        None
    }

    /// The codec the nodes host runs with, if they host any.
    fn codec(&self) -> Option<RunCodec<P>> {
        None
    }

    /// A commit about to reach the store: what its checks need of it.
    fn stage(&mut self, op: &NodeOp<P>) {
        let _ = op;
    }

    /// The commit staged last landed. `Err` is a broken invariant.
    fn landed(&mut self, landed: Landed<'_, P>) -> Result<(), String> {
        let _ = landed;
        Ok(())
    }

    /// One tick: starts, cancels, store operations, the engine's actions
    /// and timers, and the checks. `Err` is a broken invariant.
    fn tick(&mut self, tick: Tick<'_, P>) -> Result<(), String>;

    /// Runs not finished yet, and step tasks still tracked.
    fn live(&self) -> usize;

    /// Step tasks the cluster accepted (with hosted runs, whose nodes
    /// submit them: those assigned to an agent, each once).
    fn tasks(&self) -> u64;

    /// How the runs ended.
    fn counts(&self) -> RunCounts;

    /// Once the cluster stopped, from the state its journal replays to:
    /// `Err` is a broken invariant.
    fn check_stopped(&self, _state: &NodeState<P>) -> Result<(), String> {
        Ok(())
    }
}

/// No workflows.
impl<P> Driver<P> for () {
    fn attempt(&mut self, _: AgentId, _: &Assignment<P>, _: &mut SimRng) -> Option<Attempted<P>> {
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
