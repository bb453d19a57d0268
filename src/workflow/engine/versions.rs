//! Several versions of a workflow on one engine: which one a new run
//! takes ([`StartPolicy`]), how many runs each still has, and removing a
//! version once it has drained.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::WorkflowEngine;
use crate::hash::mix;
use crate::{Instant, WorkflowId};

use super::super::{EngineError, TaskPool, WorkflowDef};

/// Which registered version of a workflow a new run takes
/// ([`WorkflowEngine::start_version`]). Runs already in flight keep the
/// definition they started with, whatever the policy says later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum StartPolicy {
    /// The highest version registered.
    Latest,
    /// This version.
    Pinned(u32),
    /// `percent` of new runs (0 to 100) take version `to`; the others the
    /// highest registered version that is not `to` (all take `to` when it
    /// is the only one). Which run goes where is drawn from the id the run
    /// takes (and the version's hash), whatever ids runs started with
    /// [`start_as`](WorkflowEngine::start_as) or resumed hold, so a replay
    /// decides alike.
    Ramp {
        /// The version ramped up to.
        to: u32,
        /// Its share of new runs, in percent.
        percent: u8,
    },
}

/// The registered versions of each workflow name.
#[derive(Default)]
pub(super) struct Versions {
    by_name: BTreeMap<String, BTreeMap<u32, Arc<WorkflowDef>>>,
}

impl Versions {
    /// The registered version `version` of `name`.
    pub(super) fn get(&self, name: &str, version: u32) -> Option<&Arc<WorkflowDef>> {
        self.by_name.get(name)?.get(&version)
    }

    /// Every registered definition, by name and version.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Arc<WorkflowDef>> + '_ {
        self.by_name.values().flat_map(BTreeMap::values)
    }

    /// The version `policy` gives the run `id` of `name`.
    fn pick(
        &self,
        name: &str,
        policy: StartPolicy,
        id: WorkflowId,
    ) -> Result<Arc<WorkflowDef>, EngineError> {
        let versions = self
            .by_name
            .get(name)
            .ok_or_else(|| EngineError::UnknownWorkflow(name.to_owned()))?;
        let version = |v: u32| {
            versions.get(&v).ok_or_else(|| EngineError::UnknownVersion {
                name: name.to_owned(),
                version: v,
            })
        };
        let latest = || {
            versions
                .values()
                .next_back()
                .expect("a registered name has a version")
        };
        let def = match policy {
            StartPolicy::Latest => latest(),
            StartPolicy::Pinned(v) => version(v)?,
            StartPolicy::Ramp { to, percent } if percent > 100 => {
                return Err(EngineError::InvalidRamp { to, percent });
            }
            StartPolicy::Ramp { to, percent } => {
                let target = version(to)?;
                let other = versions.iter().rev().find(|(v, _)| **v != to);
                match other {
                    Some((_, other))
                        if mix(id.get(), target.content_hash()) % 100 >= u64::from(percent) =>
                    {
                        other
                    }
                    _ => target,
                }
            }
        };
        Ok(Arc::clone(def))
    }
}

impl<P: Clone> WorkflowEngine<P> {
    /// Registers `def` as one version of its workflow, beside the others
    /// of its name, for [`start_version`](Self::start_version). Registering
    /// the same definition again changes nothing.
    ///
    /// # Errors
    ///
    /// [`EngineError::VersionConflict`] if another definition of the same
    /// name and version (another content hash) is registered.
    pub fn register(&mut self, def: Arc<WorkflowDef>) -> Result<(), EngineError> {
        let versions = self
            .versions
            .by_name
            .entry(def.name().to_owned())
            .or_default();
        match versions.get(&def.version()) {
            Some(known) if known.content_hash() != def.content_hash() => {
                Err(EngineError::VersionConflict {
                    name: def.name().to_owned(),
                    version: def.version(),
                })
            }
            Some(_) => Ok(()),
            None => {
                versions.insert(def.version(), def);
                Ok(())
            }
        }
    }

    /// Removes a registered version; returns its definition.
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownVersion`] if it is not registered, and
    /// [`EngineError::VersionInUse`] while runs of it are active: they
    /// would lose nothing (each run holds its definition), but a version
    /// is removed once it has drained, so [`live_runs`](Self::live_runs)
    /// stays the whole truth.
    pub fn unregister(
        &mut self,
        name: &str,
        version: u32,
    ) -> Result<Arc<WorkflowDef>, EngineError> {
        let unknown = || EngineError::UnknownVersion {
            name: name.to_owned(),
            version,
        };
        let def = self
            .versions
            .by_name
            .get(name)
            .and_then(|v| v.get(&version))
            .ok_or_else(unknown)?;
        let runs = self
            .live_runs(name)
            .get(&(version, def.content_hash()))
            .copied()
            .unwrap_or(0);
        if runs > 0 {
            return Err(EngineError::VersionInUse {
                name: name.to_owned(),
                version,
                runs,
            });
        }
        let versions = self.versions.by_name.get_mut(name).ok_or_else(unknown)?;
        let def = versions.remove(&version).ok_or_else(unknown)?;
        if versions.is_empty() {
            self.versions.by_name.remove(name);
        }
        Ok(def)
    }

    /// The registered versions of `name`, lowest first.
    pub fn versions(&self, name: &str) -> impl Iterator<Item = &Arc<WorkflowDef>> + '_ {
        self.versions
            .by_name
            .get(name)
            .into_iter()
            .flat_map(|v| v.values())
    }

    /// Every registered version of every workflow, by name, lowest
    /// version first.
    pub fn registered(&self) -> impl Iterator<Item = &Arc<WorkflowDef>> + '_ {
        self.versions.iter()
    }

    /// Starts a run of the version of `name` that `policy` picks (see
    /// [`start`](Self::start)); returns its id.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use taskweave::scheduler::{Dispatcher, DispatcherConfig};
    /// use taskweave::workflow::{StartPolicy, StepDef, StepTask, WorkflowDef, WorkflowEngine};
    /// use taskweave::Instant;
    ///
    /// let version = |v| Arc::new(WorkflowDef::builder("order", v).step(StepDef::agent(format!("step-v{v}"))).build().unwrap());
    /// let mut pool: Dispatcher<StepTask> = Dispatcher::new(DispatcherConfig::default());
    /// let mut engine: WorkflowEngine<u32> = WorkflowEngine::new();
    /// engine.register(version(1))?;
    /// engine.register(version(2))?;
    /// let ramp = StartPolicy::Ramp { to: 2, percent: 25 };
    /// for _ in 0..1_000 {
    ///     engine.start_version(&mut pool, "order", ramp, None, Instant::ZERO)?;
    /// }
    /// let live = engine.live_runs("order"); // runs per (version, hash)
    /// let on_v2: usize = live.iter().filter(|((v, _), _)| *v == 2).map(|(_, n)| n).sum();
    /// assert!((200..300).contains(&on_v2), "{on_v2}");
    /// // v1 still has runs in flight: it cannot be removed yet.
    /// assert!(engine.unregister("order", 1).is_err());
    /// # Ok::<(), taskweave::workflow::EngineError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownWorkflow`] or [`EngineError::UnknownVersion`]
    /// if nothing registered matches, [`EngineError::InvalidRamp`] for a
    /// share above 100 %. Nothing is started then.
    pub fn start_version(
        &mut self,
        pool: &mut impl TaskPool,
        name: &str,
        policy: StartPolicy,
        input: Option<P>,
        now: Instant,
    ) -> Result<WorkflowId, EngineError> {
        // The version is drawn from the id the run takes, so a replay (or
        // another engine) that gives it that id puts it on that version.
        let def = self.versions.pick(name, policy, self.free_id())?;
        Ok(self.start(pool, def, input, now))
    }

    /// The active runs of workflow `name` (sub-workflow runs included) by
    /// version and content hash, registered or not: a version has drained
    /// when it is no longer listed. `O(active runs)`.
    pub fn live_runs(&self, name: &str) -> BTreeMap<(u32, u64), usize> {
        let mut live = BTreeMap::new();
        for entry in self.runs.values() {
            let def = entry.run.definition();
            if def.name() == name {
                *live.entry((def.version(), def.content_hash())).or_default() += 1;
            }
        }
        live
    }
}
