//! Which queued tasks no online agent can take at all, and why: for an
//! operator's status, and for a host deciding to start an agent.

use std::collections::BTreeMap;

use super::Dispatcher;
use crate::TaskId;
use crate::agent::{AgentStatus, Registry};
use crate::requirements::TaskRequirements;
use crate::routing::{ResolvedRequirements, RoutingStrategy};
use crate::scheduler::TaskState;
use crate::scheduler::state::requirements::RequirementsId;

/// Queued tasks of one requirement set that no online agent can take, free
/// slot or not ([`Dispatcher::unroutable`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Unroutable {
    /// How many tasks.
    pub tasks: u64,
    /// The first submitted of them.
    pub first: TaskId,
    /// Why no agent can take them, naming what is missing.
    pub reason: String,
}

impl<P, S: RoutingStrategy> Dispatcher<P, S> {
    /// The queued tasks that no online agent can take at all — a required
    /// capability or a label no agent has, or none of the agents that have
    /// them online, or a pinned agent that is not online — by requirement
    /// set, the set of the first submitted task first. Tasks waiting for a
    /// concurrency key count too. Tasks merely waiting for a busy capable
    /// agent are not listed, nor delayed ones.
    /// Read-only; `O(t log g + g·c)` for `t` queued tasks, `g` requirement
    /// sets and `c` agent classes: for a status read now and then, not
    /// for every dispatch.
    ///
    /// ```
    /// use taskweave::agent::AgentProfile;
    /// use taskweave::scheduler::{Dispatcher, DispatcherConfig, TaskSpec};
    /// use taskweave::{AgentId, Instant, TaskRequirements};
    ///
    /// let mut d: Dispatcher<&str> = Dispatcher::new(DispatcherConfig::default());
    /// let cpu = AgentProfile::builder().capabilities(["cpu"]).build()?;
    /// d.register_agent(AgentId::new(1), cpu, Instant::ZERO)?;
    /// let gpu = TaskRequirements::new().require(["gpu"]);
    /// let task = d.submit(TaskSpec::new("train").requirements(gpu), Instant::ZERO)?.id();
    /// let stuck = d.unroutable();
    /// assert_eq!((stuck[0].tasks, stuck[0].first), (1, task));
    /// assert!(stuck[0].reason.contains("gpu"), "{}", stuck[0].reason);
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    #[must_use]
    pub fn unroutable(&self) -> Vec<Unroutable> {
        let registry = &self.state.registry;
        let interned = &self.state.requirements;
        // Every queued task, set aside or not, by requirement set: how
        // many, and the first submitted (its sequence number and id).
        let mut groups: BTreeMap<RequirementsId, (u64, u64, TaskId)> = BTreeMap::new();
        // Queued tasks wait in the main queue, in a parked group, or for a
        // concurrency key; an entry of a task no longer queued (or queued
        // anew) is dead.
        let parked = self.state.parked.iter().map(|group| &group.queue);
        let keyed = self.state.key_gates.waiters().map(|(_, queue)| queue);
        let queued = std::iter::once(&self.state.queue)
            .chain(parked)
            .chain(keyed)
            .flat_map(|queue| queue.entries());
        for entry in queued {
            let Some(task) = self.state.tasks.get(entry.task) else {
                continue;
            };
            if task.state != TaskState::Queued || task.seq != entry.seq {
                continue;
            }
            let group = groups
                .entry(task.requirements)
                .or_insert((0, entry.seq, entry.task));
            group.0 += 1;
            if entry.seq < group.1 {
                (group.1, group.2) = (entry.seq, entry.task);
            }
        }
        let mut stuck: Vec<(u64, Unroutable)> = groups
            .into_iter()
            .filter_map(|(id, (tasks, seq, first))| {
                let requirements = interned.requirements(id)?;
                let reason = match interned.resolved(id) {
                    Some(resolved) => why_not(resolved, requirements, registry),
                    None => match ResolvedRequirements::new(registry, requirements) {
                        Ok(resolved) => why_not(&resolved, requirements, registry),
                        Err(unknown) => Some(unknown.to_string()),
                    },
                }?;
                Some((
                    seq,
                    Unroutable {
                        tasks,
                        first,
                        reason,
                    },
                ))
            })
            .collect();
        stuck.sort_by_key(|&(seq, _)| seq);
        stuck
            .into_iter()
            .map(|(_, unroutable)| unroutable)
            .collect()
    }
}

/// Why no online agent can take tasks with these requirements, or `None`
/// if one can.
fn why_not(
    resolved: &ResolvedRequirements,
    requirements: &TaskRequirements,
    registry: &Registry,
) -> Option<String> {
    if resolved.servable_by(registry) {
        return None;
    }
    if let Some(agent) = requirements.pinned() {
        let status = registry.get(agent).map(|record| record.status());
        return Some(match status {
            None => format!("pinned to {agent}, which is not registered"),
            Some(AgentStatus::Online) => {
                format!("pinned to {agent}, which lacks its capabilities or labels")
            }
            Some(status) => format!("pinned to {agent}, which is {status:?}"),
        });
    }
    let required: Vec<&str> = requirements.required().iter().map(String::as_str).collect();
    let labels = requirements.labels();
    Some(match (required.is_empty(), labels.is_empty()) {
        (true, true) => "no agent is online".to_string(),
        (false, true) => format!("no online agent has every capability of {required:?}"),
        (true, false) => format!("no online agent has labels matching {labels:?}"),
        (false, false) => format!(
            "no online agent has every capability of {required:?} and labels matching {labels:?}"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::AgentProfile;
    use crate::scheduler::{DispatcherConfig, TaskSpec};
    use crate::{AgentId, Instant};

    fn needing(capabilities: &[&str]) -> TaskRequirements {
        TaskRequirements::new().require(capabilities.iter().copied())
    }

    /// Only tasks that no online agent can take are listed: not those
    /// waiting for a busy capable agent, not cancelled ones; an agent
    /// that goes away makes its tasks unroutable, one that comes back
    /// clears them.
    #[test]
    fn lists_what_no_online_agent_can_take_and_no_more() {
        let now = Instant::ZERO;
        let mut d: Dispatcher<u32> = Dispatcher::new(DispatcherConfig::default());
        let cpu = AgentProfile::builder()
            .capabilities(["cpu"])
            .capacity(1)
            .build()
            .unwrap();
        d.register_agent(AgentId::new(1), cpu.clone(), now).unwrap();
        // Two cpu tasks: one runs, one waits for the busy agent.
        for i in 0..2 {
            let _ = d.submit(TaskSpec::new(i).requirements(needing(&["cpu"])), now);
        }
        // A capability no agent has, twice; one of them cancelled.
        let gpu = d
            .submit(TaskSpec::new(7).requirements(needing(&["gpu"])), now)
            .unwrap()
            .id();
        let gone = d
            .submit(TaskSpec::new(8).requirements(needing(&["gpu"])), now)
            .unwrap()
            .id();
        d.cancel(gone, now).unwrap();
        // Pinned to an agent that is not registered.
        let pinned = TaskRequirements::new().pin(AgentId::new(9));
        let _ = d.submit(TaskSpec::new(9).requirements(pinned), now);
        while d.poll_action().is_some() {}
        let stuck = d.unroutable();
        let summary: Vec<_> = stuck.iter().map(|u| (u.tasks, u.first)).collect();
        assert_eq!(summary.len(), 2, "{stuck:?}");
        assert_eq!(summary[0], (1, gpu), "{stuck:?}");
        assert!(stuck[1].reason.contains("agent-9"), "{stuck:?}");

        // The cpu agent leaves: its waiting task has no online agent.
        d.unregister_agent(AgentId::new(1), now).unwrap();
        while d.poll_action().is_some() {}
        let reasons: Vec<_> = d.unroutable().into_iter().map(|u| u.reason).collect();
        assert!(reasons.iter().any(|r| r.contains("cpu")), "{reasons:?}");
        d.register_agent(AgentId::new(1), cpu, now).unwrap();
        while d.poll_action().is_some() {}
        let reasons: Vec<_> = d.unroutable().into_iter().map(|u| u.reason).collect();
        assert!(!reasons.iter().any(|r| r.contains("cpu")), "{reasons:?}");
    }

    /// A task waiting for its concurrency key counts, and comes first
    /// when it was submitted first.
    #[test]
    fn counts_the_tasks_waiting_for_a_concurrency_key() {
        use crate::scheduler::ConcurrencyLimit;
        let config = DispatcherConfig::builder()
            .concurrency_limit("k", ConcurrencyLimit::new(1))
            .build()
            .unwrap();
        let mut d: Dispatcher<u32> = Dispatcher::new(config);
        let now = Instant::ZERO;
        let cpu = AgentProfile::builder()
            .capabilities(["cpu"])
            .capacity(4)
            .build()
            .unwrap();
        d.register_agent(AgentId::new(1), cpu, now).unwrap();
        let holder = TaskSpec::new(1)
            .concurrency_key("k")
            .requirements(needing(&["cpu"]));
        let _ = d.submit(holder, now).unwrap();
        let keyed = TaskSpec::new(2)
            .concurrency_key("k")
            .requirements(needing(&["gpu"]));
        let waiting = d.submit(keyed, now).unwrap().id();
        let _ = d.submit(TaskSpec::new(3).requirements(needing(&["gpu"])), now);
        while d.poll_action().is_some() {}
        let stuck = d.unroutable();
        assert_eq!(stuck.len(), 1, "{stuck:?}");
        assert_eq!((stuck[0].tasks, stuck[0].first), (2, waiting), "{stuck:?}");
    }
}
