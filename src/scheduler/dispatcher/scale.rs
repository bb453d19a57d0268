//! The dispatcher's side of scale hints: the pools it watches, their
//! arrivals and completions counted as they happen, and their load read
//! when a hint is asked for. The policy and the arithmetic are the
//! scheduler's `scale` module.

use std::collections::BTreeSet;

use super::super::TaskState;
use super::super::scale::{PoolLoad, ScaleError, ScaleHint, ScalePolicy, Watch};
use super::super::state::requirements::RequirementsId;
use super::Dispatcher;
use crate::agent::AgentStatus;
use crate::routing::RoutingStrategy;
use crate::{Instant, TaskId};

impl<P, S: RoutingStrategy> Dispatcher<P, S> {
    /// The work of [`watch_pool`](Self::watch_pool).
    pub(super) fn add_watch(
        &mut self,
        name: String,
        capabilities: BTreeSet<String>,
        policy: ScalePolicy,
    ) -> Result<(), ScaleError> {
        if self.watches.iter().any(|w| w.name == name) {
            return Err(ScaleError::PoolExists(name));
        }
        self.watches.push(Watch::new(name, capabilities, policy)?);
        Ok(())
    }

    /// The work of [`unwatch_pool`](Self::unwatch_pool).
    pub(super) fn remove_watch(&mut self, name: &str) -> bool {
        let before = self.watches.len();
        self.watches.retain(|w| w.name != name);
        self.watches.len() < before
    }

    /// Counts a submission for every watched pool that could take it.
    pub(super) fn scale_arrival(&mut self, requirements: RequirementsId, now: Instant) {
        let Some(needs) = self.state.requirements.requirements(requirements) else {
            return;
        };
        for watch in &mut self.watches {
            if watch.takes(needs.required()) {
                watch.arrived(now);
            }
        }
    }

    /// Counts a completion of `task` (still live), which ran `ran` ns, for
    /// every watched pool that could take it.
    pub(super) fn scale_completion(&mut self, task: TaskId, ran: u64, now: Instant) {
        let requirements = self.state.tasks.get(task).map(|t| t.requirements);
        let Some(needs) = requirements.and_then(|id| self.state.requirements.requirements(id))
        else {
            return;
        };
        for watch in &mut self.watches {
            if watch.takes(needs.required()) {
                watch.completed(ran, now);
            }
        }
    }

    /// The hint for the pool at `index` of the watches, at `now` or the
    /// clock if later (the clock rule).
    pub(super) fn hint_at(&mut self, index: usize, now: Instant) -> Option<ScaleHint> {
        let now = now.max(self.state.clock);
        let load = self.pool_load(self.watches.get(index)?);
        Some(self.watches.get_mut(index)?.hint(load, now))
    }

    /// The pool's load: one pass over the live tasks for the counts, one
    /// over the queues' entries (the main queue, the parked groups, the
    /// concurrency keys' waiters) for the oldest, each `O(n)`; each
    /// distinct set of requirements is decided once. Requirement ids are
    /// dense (the table reuses freed ones), so the decisions fit a vector
    /// as long as the largest id in use.
    fn pool_load(&self, watch: &Watch) -> PoolLoad {
        let mut load = PoolLoad::default();
        // Whether the pool takes each set of requirements, by its id:
        // 0 not yet decided, 1 yes, 2 no.
        let mut takes: Vec<u8> = Vec::new();
        let mut ours = |id: RequirementsId| {
            let at = id as usize;
            if at >= takes.len() {
                takes.resize(at + 1, 0);
            }
            if takes[at] == 0 {
                let requirements = self.state.requirements.requirements(id);
                takes[at] = if requirements.is_some_and(|r| watch.takes(r.required())) {
                    1
                } else {
                    2
                };
            }
            takes[at] == 1
        };
        for (_, task) in self.state.tasks.iter() {
            match task.state {
                TaskState::Queued if ours(task.requirements) => load.queued += 1,
                TaskState::InFlight { .. } if ours(task.requirements) => load.in_flight += 1,
                _ => {}
            }
        }
        // A queue entry says when its task (re-)entered the queue; entries
        // of tasks no longer queued are left behind, and skipped.
        let parked = self.state.parked.iter().map(|group| &group.queue);
        let waiting = self.state.key_gates.waiters().map(|(_, queue)| queue);
        let queues = std::iter::once(&self.state.queue)
            .chain(parked)
            .chain(waiting);
        for entry in queues.flat_map(|queue| queue.entries()) {
            let Some(task) = self.state.tasks.get(entry.task) else {
                continue;
            };
            if task.state == TaskState::Queued && ours(task.requirements) {
                let since = entry.since;
                load.oldest_queued = Some(load.oldest_queued.map_or(since, |o| o.min(since)));
            }
        }
        for agent in self.state.registry.iter() {
            let status = agent.status();
            if status == AgentStatus::Online
                && watch.capabilities.is_subset(agent.profile().capabilities())
            {
                load.agents += 1;
                load.capacity += u64::from(agent.capacity());
            }
        }
        load
    }
}
