//! [`RunTenants`]: the tenant of each hosted run a tenant's client
//! started, and how many of each tenant's runs are active — what scopes a
//! run to its tenant and what its live-run quota
//! ([`TenantQuota::live_runs`](crate::scheduler::TenantQuota::live_runs))
//! counts.

use crate::hash::IdMap;
use crate::workflow::WorkflowEngine;
use crate::{TenantId, WorkflowId};

/// The fewest runs remembered before forgotten ones are dropped.
const FIRST_BOUND: usize = 64;

/// The tenants of the top-level runs the engine knows (active, or
/// finished and remembered); a sub-workflow run is its top-level run's.
///
/// Bounded by construction: [`forget`](Self::forget) keeps only the runs
/// the engine still knows once the map reaches twice what it kept the
/// time before, and the engine's runs are bounded (active ones by
/// [`MAX_ACTIVE_RUNS`](super::MAX_ACTIVE_RUNS), finished ones by its
/// retention).
#[derive(Debug)]
pub(super) struct RunTenants {
    of: IdMap<WorkflowId, TenantId>,
    /// Each tenant's active runs; derived, never stored.
    live: IdMap<TenantId, u32>,
    bound: usize,
}

impl RunTenants {
    pub(super) fn new() -> Self {
        RunTenants {
            of: IdMap::default(),
            live: IdMap::default(),
            bound: FIRST_BOUND,
        }
    }

    /// The tenants a snapshot holds, checked against its `engine`.
    ///
    /// # Errors
    ///
    /// Why they do not restore: a run named twice, a run the engine does
    /// not know, or a sub-workflow run (its tenant is its parent's).
    pub(super) fn restore<P: Clone>(
        pairs: Vec<(WorkflowId, TenantId)>,
        engine: &WorkflowEngine<P>,
    ) -> Result<Self, String> {
        let mut tenants = RunTenants::new();
        for (run, tenant) in pairs {
            let active = engine.run(run).is_some();
            if !active && engine.finished_run(run).is_none() {
                return Err(format!(
                    "{tenant}'s run {run} is not a run the engine knows"
                ));
            }
            if engine.parent(run).is_some() {
                return Err(format!(
                    "{tenant}'s run {run} is a sub-workflow run: its tenant is its parent's"
                ));
            }
            if tenants.of.insert(run, tenant).is_some() {
                return Err(format!("run {run} is given a tenant twice"));
            }
            if active {
                *tenants.live.entry(tenant).or_default() += 1;
            }
        }
        tenants.bound = (tenants.of.len() * 2).max(FIRST_BOUND);
        Ok(tenants)
    }

    /// The stored form: each top-level run the engine knows with its
    /// tenant, by run. Runs the engine forgot since the last
    /// [`forget`](Self::forget) are left out, as [`restore`](Self::restore)
    /// refuses them.
    pub(super) fn snapshot<P: Clone>(
        &self,
        engine: &WorkflowEngine<P>,
    ) -> Vec<(WorkflowId, TenantId)> {
        let mut pairs: Vec<_> = self
            .of
            .iter()
            .filter(|&(&run, _)| known_top_level(engine, run))
            .map(|(&run, &t)| (run, t))
            .collect();
        pairs.sort_unstable();
        pairs
    }

    /// The tenant of `run`, a top-level run or one of its sub-workflow
    /// runs, if the engine knows it and it has one: the map is read at
    /// the top-level run only, so an id the engine forgot and gave to a
    /// sub-workflow run since never finds the forgotten run's tenant.
    /// `O(depth)`.
    pub(super) fn of<P: Clone>(
        &self,
        engine: &WorkflowEngine<P>,
        run: WorkflowId,
    ) -> Option<TenantId> {
        let mut top = run;
        // A run's parents are fewer than the active runs: the bound only
        // guards against a cycle no engine makes.
        for _ in 0..=engine.active_runs() {
            match engine.parent(top) {
                Some(parent) => top = parent,
                None => return self.of.get(&top).copied(),
            }
        }
        None
    }

    /// `tenant`'s active runs.
    pub(super) fn live(&self, tenant: TenantId) -> u32 {
        self.live.get(&tenant).copied().unwrap_or(0)
    }

    /// The top-level run `run` started afresh, for `tenant` or for no
    /// tenant: a tenant the map kept for a forgotten run of that id goes.
    pub(super) fn started(&mut self, run: WorkflowId, tenant: Option<TenantId>) {
        match tenant {
            Some(tenant) => {
                self.of.insert(run, tenant);
                *self.live.entry(tenant).or_default() += 1;
            }
            None => {
                self.of.remove(&run);
            }
        }
    }

    /// The top-level run `run` ended: its tenant, whose room it frees.
    pub(super) fn finished(&mut self, run: WorkflowId) -> Option<TenantId> {
        let tenant = *self.of.get(&run)?;
        if let Some(live) = self.live.get_mut(&tenant) {
            *live = live.saturating_sub(1);
            if *live == 0 {
                self.live.remove(&tenant);
            }
        }
        Some(tenant)
    }

    /// Forgets the runs `engine` no longer knows, once the map reached
    /// its bound.
    pub(super) fn forget<P: Clone>(&mut self, engine: &WorkflowEngine<P>) {
        if self.of.len() < self.bound {
            return;
        }
        self.of.retain(|&run, _| known_top_level(engine, run));
        self.bound = (self.of.len() * 2).max(FIRST_BOUND);
    }
}

/// Whether `run` is a top-level run `engine` knows: active, or finished
/// and remembered. An id it forgot, or gave to a sub-workflow run since,
/// is not.
fn known_top_level<P: Clone>(engine: &WorkflowEngine<P>, run: WorkflowId) -> bool {
    match engine.run(run) {
        Some(_) => engine.parent(run).is_none(),
        None => engine.finished_run(run).is_some(),
    }
}
