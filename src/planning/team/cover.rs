//! Choosing the members: greedy weighted set cover over a phase's
//! requirement sets, then pruning to an irredundant team.

use std::cmp::Ordering;

/// One agent as the cover sees it; its index in the candidate list is its
/// position in the matrix.
#[derive(Clone, Debug)]
pub(super) struct Candidate {
    /// Requirement sets it covers, ascending.
    pub(super) covers: Vec<usize>,
    /// No free slot: taken only for sets no agent with a free slot covers.
    pub(super) saturated: bool,
    /// Effective cost, never NaN.
    pub(super) cost: f64,
    /// Load and performance factor, never NaN; breaks ties.
    pub(super) quality: f64,
}

/// Whether candidate `a`, newly covering `new_a` sets, is a better pick
/// than `b` newly covering `new_b`: not saturated, then the lower cost per
/// new set, then more new sets, then the lower quality factor, then the
/// earlier in the matrix.
fn rank(a: (usize, &Candidate, usize), b: (usize, &Candidate, usize)) -> Ordering {
    let ((ia, a, new_a), (ib, b, new_b)) = (a, b);
    let per_set = |c: &Candidate, new: usize| c.cost / new as f64;
    a.saturated
        .cmp(&b.saturated)
        .then_with(|| per_set(a, new_a).total_cmp(&per_set(b, new_b)))
        .then_with(|| new_b.cmp(&new_a))
        .then_with(|| a.quality.total_cmp(&b.quality))
        .then_with(|| ia.cmp(&ib))
}

/// The candidates chosen to cover all `sets` requirement sets (those some
/// candidate covers), ascending.
pub(super) fn select(candidates: &[Candidate], sets: usize) -> Vec<usize> {
    let mut uncovered = vec![true; sets];
    let mut left = sets;
    let mut chosen = vec![false; candidates.len()];
    let mut team = Vec::new();
    let is_uncovered = |uncovered: &[bool], s: usize| uncovered.get(s).copied().unwrap_or(false);
    while left > 0 {
        let mut best: Option<(usize, &Candidate, usize)> = None;
        for (i, candidate) in candidates.iter().enumerate() {
            if chosen.get(i).copied().unwrap_or(true) {
                continue;
            }
            let new = candidate
                .covers
                .iter()
                .filter(|&&s| is_uncovered(&uncovered, s))
                .count();
            if new == 0 {
                continue;
            }
            let this = (i, candidate, new);
            if best.is_none_or(|best| rank(this, best) == Ordering::Less) {
                best = Some(this);
            }
        }
        let Some((i, candidate, _)) = best else {
            break;
        };
        if let Some(slot) = chosen.get_mut(i) {
            *slot = true;
        }
        team.push(i);
        for &s in &candidate.covers {
            if let Some(slot) = uncovered.get_mut(s).filter(|slot| **slot) {
                *slot = false;
                left -= 1;
            }
        }
    }
    prune(candidates, sets, &mut team);
    team.sort_unstable();
    team
}

/// Removes members whose every set another member covers: saturated ones
/// first, then the costliest, the least performing, the latest in the
/// matrix. One pass suffices: removing a member never makes another one
/// redundant.
fn prune(candidates: &[Candidate], sets: usize, team: &mut Vec<usize>) {
    let mut count = vec![0usize; sets];
    let covers = |i: usize| candidates.get(i).map_or(&[][..], |c| c.covers.as_slice());
    for &i in team.iter() {
        for &s in covers(i) {
            if let Some(n) = count.get_mut(s) {
                *n += 1;
            }
        }
    }
    let mut order: Vec<(usize, &Candidate)> = team
        .iter()
        .filter_map(|&i| candidates.get(i).map(|c| (i, c)))
        .collect();
    order.sort_by(|(ia, a), (ib, b)| {
        b.saturated
            .cmp(&a.saturated)
            .then_with(|| b.cost.total_cmp(&a.cost))
            .then_with(|| b.quality.total_cmp(&a.quality))
            .then_with(|| ib.cmp(ia))
    });
    for (i, candidate) in order {
        let redundant = candidate
            .covers
            .iter()
            .all(|&s| count.get(s).is_some_and(|&n| n >= 2));
        if redundant {
            for &s in &candidate.covers {
                if let Some(n) = count.get_mut(s) {
                    *n -= 1;
                }
            }
            team.retain(|&m| m != i);
        }
    }
}
