//! The eligible agents for one task, as strategies see them.

use std::cell::Cell;
use std::cmp::Reverse;

use rand::{Rng, RngExt};

use crate::AgentId;
use crate::agent::{AgentRecord, Availability, Class, Registry, Slot};

use super::ResolvedRequirements;

/// How many uniform draws [`Candidates::sample`] makes before it falls back
/// to listing the eligible agents (only avoided agents make draws miss).
const SAMPLE_ATTEMPTS: usize = 8;

/// The agents eligible for one task: a read-only view that strategies query.
///
/// An agent is eligible when it is online with a free slot, has every
/// required capability, satisfies every label constraint, is neither excluded
/// nor under anti-affinity, and is the pinned agent if the task is pinned.
/// Every method returns only eligible agents.
///
/// The ordered queries ([`first`](Self::first), [`next_after`](Self::next_after),
/// [`least_loaded`](Self::least_loaded), [`highest_priority`](Self::highest_priority),
/// [`sample`](Self::sample)) read the registry's availability index: they cost
/// `O(c · log n)` for `c` matching agent classes (distinct
/// capability/label combinations), independent of how many agents share a
/// class. [`iter`](Self::iter) visits every eligible agent.
#[derive(Clone, Copy, Debug)]
pub struct Candidates<'a> {
    agents: Availability<'a>,
    requirements: &'a ResolvedRequirements,
    /// Where routing notes the last agent a single-agent query returned,
    /// with its registry slot: a strategy that picks it needs no second
    /// eligibility check, and the dispatcher takes its slot without a
    /// lookup.
    vouched: Option<&'a Cell<Option<(AgentId, Slot)>>>,
}

impl<'a> Candidates<'a> {
    /// The agents of `registry` eligible for `requirements` (resolved with
    /// [`ResolvedRequirements::new`]), for a host that calls a strategy's
    /// [`select`](super::RoutingStrategy::select) itself — over the
    /// dispatcher's registry, or over a candidate set of its own built with
    /// [`Registry::from_records`]. Building costs nothing; each query costs
    /// as its docs say.
    pub fn new(registry: &'a Registry, requirements: &'a ResolvedRequirements) -> Self {
        Candidates {
            agents: registry.availability(),
            requirements,
            vouched: None,
        }
    }

    /// Candidates that note in `vouched` every agent a single-agent query
    /// returns (all of them eligible: the registry cannot change while the
    /// candidates borrow it).
    pub(crate) fn vouching(
        registry: &'a Registry,
        requirements: &'a ResolvedRequirements,
        vouched: &'a Cell<Option<(AgentId, Slot)>>,
    ) -> Self {
        Candidates {
            vouched: Some(vouched),
            ..Self::new(registry, requirements)
        }
    }

    /// Notes `found` as vouched for, and returns its record.
    fn vouch(&self, found: Option<(Slot, &'a AgentRecord)>) -> Option<&'a AgentRecord> {
        let (slot, record) = found?;
        if let Some(cell) = self.vouched {
            cell.set(Some((record.id(), slot)));
        }
        Some(record)
    }

    /// The task's resolved requirements.
    pub fn requirements(&self) -> &'a ResolvedRequirements {
        self.requirements
    }

    /// The registry the candidates come from.
    pub fn registry(&self) -> &'a Registry {
        self.agents.registry()
    }

    /// Whether `record` is eligible for the task.
    pub fn admits(&self, record: &AgentRecord) -> bool {
        record.is_available() && self.admits_ignoring_load(record)
    }

    /// Whether `record` satisfies every constraint of the task except having
    /// a free slot and being online: capabilities, labels, exclusions,
    /// anti-affinity and pinning.
    pub fn admits_ignoring_load(&self, record: &AgentRecord) -> bool {
        let req = self.requirements;
        req.pinned().is_none_or(|pinned| pinned == record.id())
            && !req.avoids(record.id())
            && req.matches(record.capabilities(), record.labels())
    }

    /// The eligible agent with this id, if it is eligible.
    pub fn get(&self, id: AgentId) -> Option<&'a AgentRecord> {
        self.vouch(self.find(id))
    }

    /// The eligible agent with this id, with its slot.
    fn find(&self, id: AgentId) -> Option<(Slot, &'a AgentRecord)> {
        self.agents
            .find(id)
            .filter(|(_, record)| self.admits(record))
    }

    /// Whether no agent is eligible.
    pub fn is_empty(&self) -> bool {
        self.first().is_none()
    }

    /// Every eligible agent, class by class and in registration order within
    /// a class: deterministic, but not globally sorted. Costs `O(n)`.
    pub fn iter(&self) -> impl Iterator<Item = &'a AgentRecord> + 'a {
        self.eligible().map(|(_, record)| record)
    }

    /// [`iter`](Self::iter), with each agent's slot.
    fn eligible(&self) -> impl Iterator<Item = (Slot, &'a AgentRecord)> + 'a {
        let this = *self;
        let pinned = self.requirements.pinned().map(|id| self.find(id));
        let all = self
            .classes()
            .filter(move |_| pinned.is_none())
            .flat_map(move |class| {
                class
                    .by_registration(None)
                    .filter_map(move |(_, slot)| this.usable(slot))
            });
        pinned.flatten().into_iter().chain(all)
    }

    /// The eligible agent registered first.
    pub fn first(&self) -> Option<&'a AgentRecord> {
        self.best(|class| class.by_registration(None))
    }

    /// The eligible agent registered next after registration order `order`,
    /// wrapping around to [`first`](Self::first): one step of a rotation.
    pub fn next_after(&self, order: u64) -> Option<&'a AgentRecord> {
        self.best(|class| class.by_registration(Some(order)))
            .or_else(|| self.first())
    }

    /// The eligible agent with the lowest `load / capacity`. Among equally
    /// loaded agents of one class, the one that reached that load first wins
    /// (so equal agents take turns); across classes, the one registered first.
    #[inline]
    pub fn least_loaded(&self) -> Option<&'a AgentRecord> {
        let agents = self.agents;
        self.best(|class| agents.by_load(class))
    }

    /// The eligible agent with the highest profile priority, then the lowest
    /// `load / capacity`, with ties broken as in
    /// [`least_loaded`](Self::least_loaded).
    pub fn highest_priority(&self) -> Option<&'a AgentRecord> {
        let agents = self.agents;
        self.best(|class| {
            let priority = Reverse(class.priority());
            agents
                .by_load(class)
                .map(move |(ratio, slot)| ((priority, ratio), slot))
        })
    }

    /// A uniformly random eligible agent, drawn from `rng`.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Option<&'a AgentRecord> {
        self.vouch(self.draw(rng))
    }

    /// [`sample`](Self::sample), without the note.
    fn draw<R: Rng + ?Sized>(&self, rng: &mut R) -> Option<(Slot, &'a AgentRecord)> {
        if let Some(pinned) = self.requirements.pinned() {
            return self.find(pinned);
        }
        let total: usize = self.classes().map(|class| class.sampling().len()).sum();
        if total == 0 {
            return None;
        }
        for _ in 0..SAMPLE_ATTEMPTS {
            let mut draw = rng.random_range(0..total);
            for class in self.classes() {
                if let Some(&slot) = class.sampling().get(draw) {
                    if let Some(record) = self.usable(slot) {
                        return Some(record);
                    }
                    break;
                }
                draw -= class.sampling().len();
            }
        }
        let eligible: Vec<(Slot, &AgentRecord)> = self.eligible().collect();
        match eligible.len() {
            0 => None,
            len => Some(eligible[rng.random_range(0..len)]),
        }
    }

    /// Live classes whose capabilities and labels satisfy the task.
    fn classes(&self) -> impl Iterator<Item = &'a Class> + 'a {
        let requirements = self.requirements;
        self.agents
            .classes()
            .filter(move |class| requirements.matches(class.capabilities(), class.labels()))
    }

    /// The agent in `slot` unless the task avoids it. Only called for slots
    /// of matching classes, which hold available agents only.
    fn usable(&self, slot: Slot) -> Option<(Slot, &'a AgentRecord)> {
        let record = self.agents.at(slot)?;
        (!self.requirements.avoids(record.id())).then_some((slot, record))
    }

    /// The minimum, by key and then registration order, over every matching
    /// class of the first usable agent in that class's ordering.
    fn best<K, I>(&self, ordering: impl Fn(&'a Class) -> I) -> Option<&'a AgentRecord>
    where
        K: Ord,
        I: Iterator<Item = (K, Slot)>,
    {
        if let Some(pinned) = self.requirements.pinned() {
            return self.get(pinned);
        }
        // The first usable member of each matching class; the least
        // `(key, registration order)` among them. (A loop rather than
        // `min_by`: with one class, as most pools have, nothing is compared.)
        let mut best: Option<(K, (Slot, &'a AgentRecord))> = None;
        for class in self.classes() {
            let Some((key, found)) =
                ordering(class).find_map(|(key, slot)| self.usable(slot).map(|found| (key, found)))
            else {
                continue;
            };
            let better = match &best {
                Some((best_key, (_, best_record))) => {
                    (&key, found.1.order()) < (best_key, best_record.order())
                }
                None => true,
            };
            if better {
                best = Some((key, found));
            }
        }
        self.vouch(best.map(|(_, found)| found))
    }
}
