//! Spreading a phase's steps over the team: longest processing time first,
//! each step onto one of its requirement set's servers — the cheapest one
//! when the team is chosen for cost, then the one that would finish its
//! work first.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use super::cover::{Candidate, Pricing, Servers};
use crate::{AgentId, StepId};

/// One step to place: its work in seconds at speed 1.
#[derive(Clone, Copy, Debug)]
pub(super) struct Work {
    pub(super) step: StepId,
    pub(super) secs: f64,
}

/// The steps spread over the members.
#[derive(Debug)]
pub(super) struct Spread {
    /// By step, ascending.
    pub(super) assignments: Vec<(StepId, AgentId)>,
    /// The members that got work, in matrix order, with the work assigned
    /// to each at its speed, in seconds.
    pub(super) members: Vec<(AgentId, f64)>,
    /// The assigned members' cost per task, summed over the steps,
    /// saturating at `f64::MAX`.
    pub(super) cost: f64,
}

/// A member's time so far.
struct Busy {
    /// Its existing load plus its share, in seconds.
    busy: f64,
    /// Its share only.
    assigned: f64,
    id: AgentId,
}

/// Assigns every step of `sets` to one of its set's servers: the longest
/// step first (ties to the earlier step); under [`Pricing::PerStep`] to the
/// server with the lowest task price, then, as under
/// [`Pricing::PerAgent`], to the one whose projected busy time per slot —
/// `(load · mean work + assigned work) / speed / max(capacity, 1)` — is
/// lowest once it takes the step, then the earlier in the matrix.
pub(super) fn assign(sets: &[(Servers<'_>, Vec<Work>)], pricing: Pricing) -> Spread {
    let steps = sets.iter().map(|(_, steps)| steps.len()).sum::<usize>();
    let mean = if steps == 0 {
        0.0
    } else {
        sets.iter()
            .flat_map(|(_, steps)| steps)
            .map(|w| w.secs)
            .sum::<f64>()
            / steps as f64
    };
    let own = |c: &Candidate<'_>| f64::from(c.agent.load) * mean / c.agent.speed;
    let slots = |c: &Candidate<'_>| f64::from(c.agent.capacity.max(1));

    // Each step with the servers it may go to: never none.
    let mut order: Vec<(&Work, &Servers<'_>)> = sets
        .iter()
        .flat_map(|(servers, steps)| steps.iter().map(move |w| (w, servers)))
        .collect();
    order.sort_by(|(a, _), (b, _)| b.secs.total_cmp(&a.secs).then_with(|| a.step.cmp(&b.step)));

    // By matrix position: the members that got work so far.
    let mut busy: BTreeMap<usize, Busy> = BTreeMap::new();
    let mut assignments = Vec::with_capacity(steps);
    for (w, servers) in order {
        let projected = |c: &Candidate<'_>| {
            let before = busy.get(&c.index).map_or_else(|| own(c), |b| b.busy);
            (before + w.secs / c.agent.speed) / slots(c)
        };
        let member = servers.best_by(|a, b| {
            let price = match pricing {
                Pricing::PerAgent => Ordering::Equal,
                Pricing::PerStep => a.task_price.total_cmp(&b.task_price),
            };
            price
                .then_with(|| projected(a).total_cmp(&projected(b)))
                .then_with(|| a.index.cmp(&b.index))
        });
        let time = w.secs / member.agent.speed;
        let entry = busy.entry(member.index).or_insert_with(|| Busy {
            busy: own(member),
            assigned: 0.0,
            id: member.agent.id,
        });
        entry.busy += time;
        entry.assigned += time;
        assignments.push((w.step, member.agent.id, member.agent.cost));
    }
    assignments.sort_unstable_by_key(|&(step, _, _)| step);
    let cost = assignments
        .iter()
        .fold(0.0f64, |sum, &(_, _, cost)| (sum + cost).min(f64::MAX));
    Spread {
        assignments: assignments
            .into_iter()
            .map(|(step, agent, _)| (step, agent))
            .collect(),
        members: busy.into_values().map(|b| (b.id, b.assigned)).collect(),
        cost,
    }
}
