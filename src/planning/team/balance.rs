//! Spreading a phase's steps over the team: longest processing time first,
//! each step onto the capable member that would finish its work first.

use std::cmp::Ordering;

use crate::planning::PlanAgent;
use crate::{AgentId, StepId};

/// A member of the team and the requirement sets it covers, ascending.
#[derive(Clone, Copy, Debug)]
pub(super) struct Member<'a> {
    pub(super) agent: &'a PlanAgent,
    pub(super) covers: &'a [usize],
}

/// One step to place: its requirement set and its work in seconds at
/// speed 1.
#[derive(Clone, Copy, Debug)]
pub(super) struct Work {
    pub(super) step: StepId,
    pub(super) set: usize,
    pub(super) secs: f64,
}

/// Assigns each step to a member covering its set: the longest step first
/// (ties to the earlier step), onto the member whose projected busy time
/// per slot — `(load · mean work + assigned work) / speed / max(capacity,
/// 1)` — is lowest once it takes the step (ties to the earlier member).
///
/// Returns the assignments by step, and the work assigned to each member
/// at its speed, in seconds.
pub(super) fn assign(work: &[Work], members: &[Member<'_>]) -> (Vec<(StepId, AgentId)>, Vec<f64>) {
    let mean = if work.is_empty() {
        0.0
    } else {
        work.iter().map(|w| w.secs).sum::<f64>() / work.len() as f64
    };
    let slots = |m: &Member<'_>| f64::from(m.agent.capacity.max(1));
    // Busy seconds per member: the work it already holds, then its share.
    let mut busy: Vec<f64> = members
        .iter()
        .map(|m| f64::from(m.agent.load) * mean / m.agent.speed)
        .collect();
    let mut assigned = vec![0.0f64; members.len()];

    let mut order: Vec<&Work> = work.iter().collect();
    order.sort_by(|a, b| b.secs.total_cmp(&a.secs).then_with(|| a.step.cmp(&b.step)));

    let mut assignments = Vec::with_capacity(work.len());
    for w in order {
        let mut best: Option<(usize, f64, f64)> = None;
        for (i, member) in members.iter().enumerate() {
            if member.covers.binary_search(&w.set).is_err() {
                continue;
            }
            let time = w.secs / member.agent.speed;
            let projected = (busy.get(i).copied().unwrap_or(0.0) + time) / slots(member);
            if best.is_none_or(|(_, p, _)| projected.total_cmp(&p) == Ordering::Less) {
                best = Some((i, projected, time));
            }
        }
        // The cover leaves every set covered by some member; a step that
        // found none would stay unassigned rather than go astray.
        let Some((i, _, time)) = best else {
            continue;
        };
        if let (Some(b), Some(a), Some(member)) =
            (busy.get_mut(i), assigned.get_mut(i), members.get(i))
        {
            *b += time;
            *a += time;
            assignments.push((w.step, member.agent.id));
        }
    }
    assignments.sort_unstable_by_key(|&(step, _)| step);
    (assignments, assigned)
}
