//! Choosing the members: greedy weighted set cover over a phase's
//! requirement sets, then pruning to an irredundant team.
//!
//! The result pairs every requirement set with its *servers*: the members
//! that may do its steps. A [`Servers`] list is never empty — it starts
//! from the member that covered the set and refuses to lose its last one —
//! so every step of a covered set has a member to go to by construction.

use std::cmp::Ordering;

use crate::planning::PlanAgent;

/// What the cover minimizes (see [`TeamObjective`](super::TeamObjective)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Pricing {
    /// A price per member: the fewest agents.
    PerAgent,
    /// A price per step done: the cheapest phase.
    PerStep,
}

/// One agent as the cover sees it.
#[derive(Clone, Debug)]
pub(super) struct Candidate<'a> {
    /// The agent.
    pub(super) agent: &'a PlanAgent,
    /// Its position in the matrix: its identity here, and the last
    /// tie-break.
    pub(super) index: usize,
    /// Requirement sets it covers, ascending.
    pub(super) covers: Vec<usize>,
    /// No free slot: serves only sets no agent with a free slot covers.
    pub(super) saturated: bool,
    /// On the previous staff, with a continuity preference above 0: wins
    /// ties in the cover.
    pub(super) kept: bool,
    /// What the cover charges, continuity discount included: per member
    /// ([`Pricing::PerAgent`]) or per step ([`Pricing::PerStep`]). Finite,
    /// non-negative.
    pub(super) price: f64,
    /// Cost of one task on it, `cost · q`, without the continuity discount:
    /// what steps are assigned and members pruned by under
    /// [`Pricing::PerStep`]. Finite, non-negative.
    pub(super) task_price: f64,
    /// The quality factor `q`, finite: breaks ties.
    pub(super) quality: f64,
}

impl Candidate<'_> {
    fn is(&self, other: &Candidate<'_>) -> bool {
        self.index == other.index
    }
}

/// The members that may do the steps of one requirement set: never empty.
///
/// With a free member among them, only free members (a saturated member
/// is a last resort).
#[derive(Clone, Debug)]
pub(super) struct Servers<'a> {
    head: &'a Candidate<'a>,
    tail: Vec<&'a Candidate<'a>>,
}

impl<'a> Servers<'a> {
    /// The servers: the first one, then the others.
    pub(super) fn iter(&self) -> impl Iterator<Item = &'a Candidate<'a>> + '_ {
        std::iter::once(self.head).chain(self.tail.iter().copied())
    }

    /// The best server by `order` (the least); the earlier in the list on
    /// ties. There always is one.
    pub(super) fn best_by(
        &self,
        mut order: impl FnMut(&Candidate<'a>, &Candidate<'a>) -> Ordering,
    ) -> &'a Candidate<'a> {
        self.tail.iter().fold(self.head, |best, &c| {
            if order(c, best) == Ordering::Less {
                c
            } else {
                best
            }
        })
    }

    fn contains(&self, member: &Candidate<'_>) -> bool {
        self.iter().any(|c| c.is(member))
    }

    /// Removes `member` unless it is the only server left.
    fn remove(&mut self, member: &Candidate<'_>) {
        if self.head.is(member) {
            if !self.tail.is_empty() {
                self.head = self.tail.remove(0);
            }
        } else {
            self.tail.retain(|c| !c.is(member));
        }
    }
}

/// One requirement set handed to [`select`]: how many steps need it, and
/// what the caller wants back with it.
pub(super) struct Set<T> {
    pub(super) steps: usize,
    pub(super) data: T,
}

/// A candidate newly covering some sets, as the greedy weighs it.
#[derive(Clone, Copy)]
struct Pick<'a> {
    candidate: &'a Candidate<'a>,
    ratio: f64,
    new_sets: usize,
    new_steps: usize,
}

/// Whether `a` is a better pick than `b`: not saturated, then the lower
/// price per newly covered unit, then on the previous staff, then more
/// newly covered sets, then more newly covered steps, then the lower
/// quality factor, then the earlier in the matrix.
fn rank(a: &Pick<'_>, b: &Pick<'_>) -> Ordering {
    let (ca, cb) = (a.candidate, b.candidate);
    ca.saturated
        .cmp(&cb.saturated)
        .then_with(|| a.ratio.total_cmp(&b.ratio))
        .then_with(|| cb.kept.cmp(&ca.kept))
        .then_with(|| b.new_sets.cmp(&a.new_sets))
        .then_with(|| b.new_steps.cmp(&a.new_steps))
        .then_with(|| ca.quality.total_cmp(&cb.quality))
        .then_with(|| ca.index.cmp(&cb.index))
}

/// One set during the greedy: the member that first covered it, if any.
struct Slot<'a, T> {
    steps: usize,
    data: T,
    head: Option<&'a Candidate<'a>>,
}

/// Greedy weighted set cover of `sets` by `candidates`, pruned.
///
/// Returns every set with its servers, in the order given; or, if some
/// sets no candidate covers, the data of those sets, in the order given.
pub(super) fn select<'a, T>(
    candidates: &'a [Candidate<'a>],
    sets: Vec<Set<T>>,
    pricing: Pricing,
) -> Result<Vec<(Servers<'a>, T)>, Vec<T>> {
    let mut slots: Vec<Slot<'a, T>> = sets
        .into_iter()
        .map(|set| Slot {
            steps: set.steps,
            data: set.data,
            head: None,
        })
        .collect();
    let mut team: Vec<&'a Candidate<'a>> = Vec::new();
    loop {
        let mut best: Option<Pick<'a>> = None;
        for candidate in candidates {
            let (mut new_sets, mut new_steps) = (0usize, 0usize);
            for slot in candidate.covers.iter().filter_map(|&s| slots.get(s)) {
                if slot.head.is_none() {
                    new_sets += 1;
                    new_steps += slot.steps;
                }
            }
            // Members chosen already cover nothing new.
            if new_sets == 0 {
                continue;
            }
            let ratio = match pricing {
                Pricing::PerAgent => candidate.price / new_sets as f64,
                // `price · new_steps` for the new steps: `price` each.
                Pricing::PerStep => candidate.price,
            };
            let pick = Pick {
                candidate,
                ratio,
                new_sets,
                new_steps,
            };
            if best.is_none_or(|best| rank(&pick, &best) == Ordering::Less) {
                best = Some(pick);
            }
        }
        // Every set covered, or the rest coverable by nobody.
        let Some(Pick { candidate, .. }) = best else {
            break;
        };
        team.push(candidate);
        for &s in &candidate.covers {
            if let Some(slot) = slots.get_mut(s) {
                slot.head.get_or_insert(candidate);
            }
        }
    }

    let mut covered = Vec::with_capacity(slots.len());
    let mut uncovered = Vec::new();
    for (s, slot) in slots.into_iter().enumerate() {
        let Some(head) = slot.head else {
            uncovered.push(slot.data);
            continue;
        };
        // The first member covering a set has a free slot unless no agent
        // with one covers it.
        let tail = team
            .iter()
            .copied()
            .filter(|m| {
                !m.is(head)
                    && (!m.saturated || head.saturated)
                    && m.covers.binary_search(&s).is_ok()
            })
            .collect();
        covered.push((Servers { head, tail }, slot.data));
    }
    if !uncovered.is_empty() {
        return Err(uncovered);
    }
    prune(&mut covered, &team, pricing);
    Ok(covered)
}

/// Removes the members whose every set other servers also serve — and,
/// under [`Pricing::PerStep`], serve at a task price no higher — trying
/// saturated members first, then the higher price, then those not on the
/// previous staff, then the higher quality factor, then the later in the
/// matrix.
///
/// One pass suffices: removing a member only takes servers away, so it
/// never makes another member removable.
fn prune<T>(sets: &mut [(Servers<'_>, T)], team: &[&Candidate<'_>], pricing: Pricing) {
    let mut order = team.to_vec();
    order.sort_by(|a, b| {
        b.saturated
            .cmp(&a.saturated)
            .then_with(|| b.price.total_cmp(&a.price))
            .then_with(|| a.kept.cmp(&b.kept))
            .then_with(|| b.quality.total_cmp(&a.quality))
            .then_with(|| b.index.cmp(&a.index))
    });
    for member in order {
        let replaceable = |servers: &Servers<'_>| {
            servers.iter().any(|other| {
                !other.is(member)
                    && match pricing {
                        Pricing::PerAgent => true,
                        Pricing::PerStep => other.task_price <= member.task_price,
                    }
            })
        };
        let redundant = sets
            .iter()
            .all(|(servers, _)| !servers.contains(member) || replaceable(servers));
        if redundant {
            for (servers, _) in sets.iter_mut() {
                servers.remove(member);
            }
        }
    }
}
