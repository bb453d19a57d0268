//! Contract-net negotiation: a sealed-bid, lowest-cost-wins auction.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::AuctionError;

#[cfg(feature = "serde")]
mod form;
use crate::agent::{AgentRecord, Registry};
use crate::capability::CapabilitySet;
use crate::routing::{Candidates, ResolvedRequirements};
use crate::{AgentId, Instant, TaskRequirements};

/// Whether `deadline` has come at `now`. [`Instant::MAX`] means never.
fn reached(now: Instant, deadline: Instant) -> bool {
    deadline != Instant::MAX && now >= deadline
}

/// What the winner of an [`Auction`] is paid.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Pricing {
    /// The winner is paid its own bid.
    #[default]
    FirstPrice,
    /// Vickrey: the winner is paid the second-lowest valid bid, so bidding
    /// one's true cost is the best strategy. With a single valid bid the
    /// winner is paid the reserve price if one was announced, its own bid
    /// otherwise.
    SecondPrice,
}

/// What a bidder must offer.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
enum Needs {
    Capabilities(CapabilitySet),
    Requirements(Box<ResolvedRequirements>),
}

impl Needs {
    fn admit(&self, registry: &Registry, record: &AgentRecord) -> bool {
        match self {
            Needs::Capabilities(required) => record.capabilities().is_superset(required),
            Needs::Requirements(requirements) => {
                Candidates::new(registry, requirements).admits_ignoring_load(record)
            }
        }
    }
}

/// The call for bids: what the task needs, until when bids are taken, how
/// the winner is paid, and optionally a reserve price and an invitation list.
///
/// Configuration is checked when the auction opens
/// ([`Auction::open`]).
///
/// ```
/// use taskweave::agent::{AgentProfile, Registry};
/// use taskweave::coordination::{Announcement, Pricing};
/// use taskweave::{AgentId, Instant, TaskRequirements};
///
/// let mut registry = Registry::new();
/// let gpu = AgentProfile::builder().capabilities(["gpu"]).build()?;
/// registry.register(AgentId::new(1), gpu, Instant::ZERO)?;
///
/// let call = Announcement::for_task(
///     &registry,
///     &TaskRequirements::new().require(["gpu"]),
///     Instant::from_secs(10),
/// )?
/// .pricing(Pricing::SecondPrice)
/// .reserve(100.0)
/// .invite([AgentId::new(1)]);
/// assert_eq!(call.deadline(), Instant::from_secs(10));
///
/// // Nobody can do TPU work: the announcement is refused up front.
/// let tpu = TaskRequirements::new().require(["tpu"]);
/// assert!(Announcement::for_task(&registry, &tpu, Instant::from_secs(10)).is_err());
/// # Ok::<(), taskweave::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Announcement {
    needs: Needs,
    deadline: Instant,
    pricing: Pricing,
    reserve: Option<f64>,
    invited: Option<BTreeSet<AgentId>>,
}

impl Announcement {
    /// A first-price call for bids from agents that have every capability
    /// in `required` (interned by the registry bidders are checked against,
    /// see [`Registry::capabilities`]), open until `deadline`.
    pub fn new(required: CapabilitySet, deadline: Instant) -> Self {
        Self::with_needs(Needs::Capabilities(required), deadline)
    }

    /// A first-price call for bids from agents that satisfy `requirements`
    /// (capabilities, labels, pinning, exclusions, anti-affinity — but not
    /// status or load: a busy agent may bid for later work and say so with
    /// its ETA).
    pub fn resolved(requirements: ResolvedRequirements, deadline: Instant) -> Self {
        Self::with_needs(Needs::Requirements(Box::new(requirements)), deadline)
    }

    /// Resolves `requirements` against `registry` (see
    /// [`ResolvedRequirements::new`]) and calls for bids as in
    /// [`resolved`](Self::resolved).
    ///
    /// # Errors
    ///
    /// [`AuctionError::Unresolvable`] when a required capability or label
    /// constraint matches no agent that ever registered.
    pub fn for_task(
        registry: &Registry,
        requirements: &TaskRequirements,
        deadline: Instant,
    ) -> Result<Self, AuctionError> {
        let resolved = ResolvedRequirements::new(registry, requirements)
            .map_err(AuctionError::Unresolvable)?;
        Ok(Self::resolved(resolved, deadline))
    }

    fn with_needs(needs: Needs, deadline: Instant) -> Self {
        Announcement {
            needs,
            deadline,
            pricing: Pricing::FirstPrice,
            reserve: None,
            invited: None,
        }
    }

    /// Sets the pricing rule (first price by default).
    pub fn pricing(mut self, pricing: Pricing) -> Self {
        self.pricing = pricing;
        self
    }

    /// Sets a reserve price: the most the announcer will pay. Bids above it
    /// are rejected; a lone second-price winner is paid the reserve.
    pub fn reserve(mut self, max_price: f64) -> Self {
        self.reserve = Some(max_price);
        self
    }

    /// Restricts bidding to these agents (added to any already invited).
    /// Once every invited agent holds a valid bid the auction may close
    /// before its deadline.
    pub fn invite(mut self, agents: impl IntoIterator<Item = AgentId>) -> Self {
        self.invited
            .get_or_insert_with(BTreeSet::new)
            .extend(agents);
        self
    }

    /// The bid deadline.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The pricing rule.
    pub fn pricing_rule(&self) -> Pricing {
        self.pricing
    }

    /// The reserve price, if any.
    pub fn reserve_price(&self) -> Option<f64> {
        self.reserve
    }

    /// The invited agents, if bidding is by invitation.
    pub fn invited(&self) -> Option<&BTreeSet<AgentId>> {
        self.invited.as_ref()
    }
}

/// One sealed bid: what the agent asks to be paid, how long it needs once
/// awarded, and until when the offer stands.
///
/// A bid is valid at `now` while `now < valid_until`; `valid_until` of
/// [`Instant::MAX`] means it never lapses.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Bid {
    /// The bidder.
    pub agent: AgentId,
    /// The price asked: finite and non-negative.
    pub cost: f64,
    /// Expected time to complete the task once awarded.
    pub eta: Duration,
    /// The offer lapses at this instant.
    pub valid_until: Instant,
}

impl Bid {
    /// A bid from `agent`.
    pub const fn new(agent: AgentId, cost: f64, eta: Duration, valid_until: Instant) -> Self {
        Bid {
            agent,
            cost,
            eta,
            valid_until,
        }
    }

    /// Whether the offer still stands at `now`. An offer valid until
    /// [`Instant::MAX`] never lapses.
    pub fn is_valid_at(&self, now: Instant) -> bool {
        now < self.valid_until || self.valid_until == Instant::MAX
    }

    /// The award order: lower cost, then lower ETA, then lower agent id.
    fn rank(&self, other: &Bid) -> Ordering {
        self.cost
            .total_cmp(&other.cost)
            .then(self.eta.cmp(&other.eta))
            .then(self.agent.cmp(&other.agent))
    }
}

/// The result of a successful [`Auction::close`].
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum AuctionOutcome {
    /// The task goes to the winner of the award.
    Awarded(Award),
    /// No bid was valid at closing time (none arrived, or all expired).
    NoBids,
}

impl AuctionOutcome {
    /// The award, if there was a winner.
    pub fn award(&self) -> Option<&Award> {
        match self {
            AuctionOutcome::Awarded(award) => Some(award),
            AuctionOutcome::NoBids => None,
        }
    }
}

/// Who won an auction and what they are paid.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct Award {
    /// The winning bid.
    pub winner: Bid,
    /// What the winner is paid under the auction's pricing rule.
    pub price: f64,
    /// The best losing valid bid, if any (it set the second price).
    pub runner_up: Option<Bid>,
    /// How many bids were valid at closing time.
    pub valid_bids: usize,
}

/// A contract-net auction: a sans-IO state machine that takes sealed bids
/// until a deadline and then awards the task to the cheapest valid bid.
///
/// * **Bids** are checked when they arrive, in this order: auction closed,
///   late (`now >= deadline`), invalid cost (NaN, infinite, negative),
///   already expired (`valid_until <= now`), unknown agent, not invited,
///   incapable (fails the requirements), above the reserve, duplicate.
/// * **Duplicates are rejected**: an agent holds at most one bid and its
///   first bid stands. To revise an offer, [`withdraw`](Self::withdraw) it
///   and bid again.
/// * **Closing** before the deadline answers
///   [`AuctionError::BiddingOpen`] — unless bidding is by invitation and
///   every invited agent holds a bid valid at `now`. At or after the
///   deadline it awards to the lowest-cost bid still valid at `now`; ties
///   go to the lower ETA, then to the lower [`AgentId`]. Expired bids are
///   ignored, missing bids are simply absent, and no valid bid gives
///   [`AuctionOutcome::NoBids`].
/// * **Eligibility is checked at bid time** against the registry passed to
///   [`bid`](Self::bid); an agent that leaves afterwards can be taken out
///   with [`withdraw`](Self::withdraw).
///
/// Closing costs `O(b)` for `b` bids; a bid costs `O(log b)` plus the
/// requirement check.
///
/// ```
/// use std::time::Duration;
/// use taskweave::agent::{AgentProfile, Registry};
/// use taskweave::coordination::{Announcement, Auction, AuctionError, Bid, Pricing};
/// use taskweave::{AgentId, Instant, TaskRequirements};
///
/// let mut registry = Registry::new();
/// for id in 1..=3 {
///     let profile = AgentProfile::builder().capabilities(["render"]).build()?;
///     registry.register(AgentId::new(id), profile, Instant::ZERO)?;
/// }
/// let deadline = Instant::from_secs(5);
/// let call = Announcement::for_task(&registry, &TaskRequirements::new().require(["render"]), deadline)?
///     .pricing(Pricing::SecondPrice);
/// let mut auction = Auction::open(call)?;
///
/// let now = Instant::from_secs(1);
/// let until = Instant::from_secs(60);
/// let eta = Duration::from_secs(30);
/// auction.bid(&registry, Bid::new(AgentId::new(1), 12.0, eta, until), now)?;
/// auction.bid(&registry, Bid::new(AgentId::new(2), 9.5, eta, until), now)?;
/// // A bid that lapses before the deadline will not count.
/// auction.bid(&registry, Bid::new(AgentId::new(3), 1.0, eta, Instant::from_secs(4)), now)?;
///
/// assert_eq!(auction.poll_timeout(), Some(deadline));
/// assert_eq!(auction.close(now), Err(AuctionError::BiddingOpen { deadline }));
///
/// let outcome = auction.close(deadline)?;
/// let award = outcome.award().unwrap();
/// assert_eq!(award.winner.agent, AgentId::new(2));
/// assert_eq!(award.price, 12.0); // Vickrey: the second-lowest valid bid
/// assert_eq!(auction.poll_timeout(), None);
/// # Ok::<(), taskweave::Error>(())
/// ```
///
/// Time that goes backwards counts as no time passing: the auction keeps
/// the latest `now` of a call that changed it (an accepted bid, the
/// close), and an earlier `now` is taken as that one, so a bid stamped
/// before one already accepted is judged at the later instant. A refused
/// call changes nothing, not even that instant. A deadline
/// of [`Instant::MAX`] means bidding never ends on its own (only an
/// invitation list that has every bid in can close it).
///
/// With the `serde` feature an auction deserializes only if it could have
/// been reached through [`open`](Self::open) and [`bid`](Self::bid): a
/// valid reserve and invitation list, and every bid filed under its own
/// agent, with a finite, non-negative cost within the reserve, from an
/// invited agent.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "form::AuctionForm"))]
pub struct Auction {
    announcement: Announcement,
    bids: BTreeMap<AgentId, Bid>,
    outcome: Option<AuctionOutcome>,
    /// The latest `now` seen.
    latest: Instant,
}

impl Auction {
    /// Opens bidding on an announcement.
    ///
    /// # Errors
    ///
    /// * [`AuctionError::InvalidReserve`] for a NaN, infinite or negative
    ///   reserve price;
    /// * [`AuctionError::NoInvitees`] for an empty invitation list.
    pub fn open(announcement: Announcement) -> Result<Self, AuctionError> {
        if let Some(reserve) = announcement.reserve {
            if !(reserve.is_finite() && reserve >= 0.0) {
                return Err(AuctionError::InvalidReserve(reserve));
            }
        }
        if announcement
            .invited
            .as_ref()
            .is_some_and(BTreeSet::is_empty)
        {
            return Err(AuctionError::NoInvitees);
        }
        Ok(Auction {
            announcement,
            bids: BTreeMap::new(),
            outcome: None,
            latest: Instant::ZERO,
        })
    }

    /// Submits a sealed bid at `now`, checking the bidder against
    /// `registry`. A cost of `-0.0` is stored as `0.0`.
    ///
    /// # Errors
    ///
    /// The first failing check, in the order listed on [`Auction`]:
    /// [`AuctionError::Closed`], [`Late`](AuctionError::Late),
    /// [`InvalidCost`](AuctionError::InvalidCost),
    /// [`Expired`](AuctionError::Expired),
    /// [`UnknownAgent`](AuctionError::UnknownAgent),
    /// [`NotInvited`](AuctionError::NotInvited),
    /// [`Incapable`](AuctionError::Incapable),
    /// [`AboveReserve`](AuctionError::AboveReserve),
    /// [`DuplicateBid`](AuctionError::DuplicateBid). A rejected bid changes
    /// nothing, not even the latest instant seen.
    pub fn bid(&mut self, registry: &Registry, bid: Bid, now: Instant) -> Result<(), AuctionError> {
        let now = now.max(self.latest);
        let agent = bid.agent;
        let call = &self.announcement;
        if self.outcome.is_some() {
            return Err(AuctionError::Closed);
        }
        if reached(now, call.deadline) {
            return Err(AuctionError::Late {
                agent,
                deadline: call.deadline,
                now,
            });
        }
        if !(bid.cost.is_finite() && bid.cost >= 0.0) {
            return Err(AuctionError::InvalidCost {
                agent,
                cost: bid.cost,
            });
        }
        if !bid.is_valid_at(now) {
            return Err(AuctionError::Expired {
                agent,
                valid_until: bid.valid_until,
                now,
            });
        }
        let record = registry
            .get(agent)
            .ok_or(AuctionError::UnknownAgent(agent))?;
        if call
            .invited
            .as_ref()
            .is_some_and(|inv| !inv.contains(&agent))
        {
            return Err(AuctionError::NotInvited(agent));
        }
        if !call.needs.admit(registry, record) {
            return Err(AuctionError::Incapable(agent));
        }
        if let Some(reserve) = call.reserve.filter(|&reserve| bid.cost > reserve) {
            return Err(AuctionError::AboveReserve {
                agent,
                cost: bid.cost,
                reserve,
            });
        }
        if self.bids.contains_key(&agent) {
            return Err(AuctionError::DuplicateBid(agent));
        }
        // Adding 0.0 turns -0.0 into 0.0, so equal costs rank as ties.
        let bid = Bid {
            cost: bid.cost + 0.0,
            ..bid
        };
        self.bids.insert(agent, bid);
        self.latest = now;
        Ok(())
    }

    /// Takes an agent's bid back (to revise it, or because the agent left)
    /// and returns it.
    ///
    /// # Errors
    ///
    /// [`AuctionError::Closed`] once the auction is closed;
    /// [`AuctionError::NoBidFrom`] if the agent holds no bid.
    pub fn withdraw(&mut self, agent: AgentId) -> Result<Bid, AuctionError> {
        if self.outcome.is_some() {
            return Err(AuctionError::Closed);
        }
        self.bids
            .remove(&agent)
            .ok_or(AuctionError::NoBidFrom(agent))
    }

    /// Whether [`close`](Self::close) would award at `now`: the auction is
    /// open and either the deadline has come or every invited agent holds
    /// a bid valid at `now`.
    pub fn is_ready(&self, now: Instant) -> bool {
        let now = now.max(self.latest);
        self.outcome.is_none()
            && (reached(now, self.announcement.deadline)
                || self.announcement.invited.as_ref().is_some_and(|invited| {
                    invited
                        .iter()
                        .all(|agent| self.bids.get(agent).is_some_and(|b| b.is_valid_at(now)))
                }))
    }

    /// Closes the auction and awards the task; see [`Auction`] for the
    /// rules. The outcome stays available through
    /// [`outcome`](Self::outcome).
    ///
    /// # Errors
    ///
    /// * [`AuctionError::BiddingOpen`] — "not yet" — before the deadline
    ///   (see [`is_ready`](Self::is_ready)); nothing changes, not even the
    ///   latest instant seen;
    /// * [`AuctionError::Closed`] if the auction was already closed, so a
    ///   task is never awarded twice.
    pub fn close(&mut self, now: Instant) -> Result<AuctionOutcome, AuctionError> {
        if self.outcome.is_some() {
            return Err(AuctionError::Closed);
        }
        if !self.is_ready(now) {
            // "Not yet" changes nothing, not even the latest instant seen:
            // it is earlier than the deadline anyway.
            return Err(AuctionError::BiddingOpen {
                deadline: self.announcement.deadline,
            });
        }
        let now = self.observe(now);
        let mut best: Option<&Bid> = None;
        let mut second: Option<&Bid> = None;
        let mut valid_bids = 0;
        for bid in self.bids.values().filter(|b| b.is_valid_at(now)) {
            valid_bids += 1;
            match best {
                Some(leader) if bid.rank(leader).is_ge() => {
                    if second.is_none_or(|s| bid.rank(s).is_lt()) {
                        second = Some(bid);
                    }
                }
                _ => {
                    second = best;
                    best = Some(bid);
                }
            }
        }
        let outcome = match best {
            None => AuctionOutcome::NoBids,
            Some(&winner) => {
                let price = match (self.announcement.pricing, second) {
                    (Pricing::FirstPrice, _) => winner.cost,
                    (Pricing::SecondPrice, Some(runner_up)) => runner_up.cost,
                    (Pricing::SecondPrice, None) => {
                        self.announcement.reserve.unwrap_or(winner.cost)
                    }
                };
                AuctionOutcome::Awarded(Award {
                    winner,
                    price,
                    runner_up: second.copied(),
                    valid_bids,
                })
            }
        };
        self.outcome = Some(outcome.clone());
        Ok(outcome)
    }

    /// `now`, or the latest instant seen if that is later; remembers it.
    fn observe(&mut self, now: Instant) -> Instant {
        self.latest = self.latest.max(now);
        self.latest
    }

    /// The instant the host should call [`close`](Self::close) at — the bid
    /// deadline — or `None` once the auction is closed. A deadline of
    /// [`Instant::MAX`] means never.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.outcome.is_none().then_some(self.announcement.deadline)
    }

    /// The announcement the auction runs on.
    pub fn announcement(&self) -> &Announcement {
        &self.announcement
    }

    /// The bid deadline.
    pub fn deadline(&self) -> Instant {
        self.announcement.deadline
    }

    /// Every bid held, valid or not, in agent-id order.
    pub fn bids(&self) -> impl Iterator<Item = &Bid> {
        self.bids.values()
    }

    /// The bid `agent` holds, if any.
    pub fn bid_of(&self, agent: AgentId) -> Option<&Bid> {
        self.bids.get(&agent)
    }

    /// Whether the auction was closed.
    pub fn is_closed(&self) -> bool {
        self.outcome.is_some()
    }

    /// The outcome, once closed.
    pub fn outcome(&self) -> Option<&AuctionOutcome> {
        self.outcome.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::AgentProfile;
    use crate::{AgentId, LabelConstraint};

    const DEADLINE: Instant = Instant::from_secs(10);
    const UNTIL: Instant = Instant::from_secs(100);
    const EARLY: Instant = Instant::from_secs(1);

    fn id(raw: u64) -> AgentId {
        AgentId::new(raw)
    }

    /// Agents 1..=4 can `render`; agent 5 can only `cpu`.
    fn registry() -> Registry {
        let mut registry = Registry::new();
        for raw in 1..=4 {
            let profile = AgentProfile::builder()
                .capabilities(["render", "cpu"])
                .label("zone", if raw % 2 == 0 { "eu" } else { "us" })
                .build()
                .unwrap();
            registry.register(id(raw), profile, Instant::ZERO).unwrap();
        }
        let cpu = AgentProfile::builder()
            .capabilities(["cpu"])
            .build()
            .unwrap();
        registry.register(id(5), cpu, Instant::ZERO).unwrap();
        registry
    }

    fn render_call(registry: &Registry) -> Announcement {
        let needs = TaskRequirements::new().require(["render"]);
        Announcement::for_task(registry, &needs, DEADLINE).unwrap()
    }

    fn bid(raw: u64, cost: f64) -> Bid {
        Bid::new(id(raw), cost, Duration::from_secs(1), UNTIL)
    }

    fn award(outcome: AuctionOutcome) -> Award {
        match outcome {
            AuctionOutcome::Awarded(award) => award,
            AuctionOutcome::NoBids => panic!("expected an award"),
        }
    }

    #[test]
    fn lowest_cost_wins_and_first_price_pays_its_own_bid() {
        let registry = registry();
        let mut auction = Auction::open(render_call(&registry)).unwrap();
        for (raw, cost) in [(1, 7.0), (2, 3.0), (3, 5.0)] {
            auction.bid(&registry, bid(raw, cost), EARLY).unwrap();
        }
        let award = award(auction.close(DEADLINE).unwrap());
        assert_eq!(award.winner.agent, id(2));
        assert_eq!(award.price, 3.0);
        assert_eq!(award.runner_up.map(|b| b.agent), Some(id(3)));
        assert_eq!(award.valid_bids, 3);
        assert!(auction.is_closed());
        assert_eq!(
            auction.outcome().and_then(AuctionOutcome::award),
            Some(&award)
        );
    }

    #[test]
    fn second_price_pays_the_second_lowest_valid_bid() {
        let registry = registry();
        let call = render_call(&registry).pricing(Pricing::SecondPrice);
        let mut auction = Auction::open(call).unwrap();
        auction.bid(&registry, bid(1, 7.0), EARLY).unwrap();
        auction.bid(&registry, bid(2, 3.0), EARLY).unwrap();
        // Cheaper than both, but expires before the award.
        let lapsing = Bid::new(id(3), 4.0, Duration::ZERO, DEADLINE);
        auction.bid(&registry, lapsing, EARLY).unwrap();
        let award = award(auction.close(DEADLINE).unwrap());
        assert_eq!((award.winner.agent, award.price), (id(2), 7.0));
        assert_eq!(award.valid_bids, 2);
    }

    #[test]
    fn a_lone_second_price_bid_pays_the_reserve_or_its_own_cost() {
        let registry = registry();
        for (reserve, expected) in [(Some(10.0), 10.0), (None, 4.0)] {
            let mut call = render_call(&registry).pricing(Pricing::SecondPrice);
            if let Some(reserve) = reserve {
                call = call.reserve(reserve);
            }
            let mut auction = Auction::open(call).unwrap();
            auction.bid(&registry, bid(1, 4.0), EARLY).unwrap();
            assert_eq!(award(auction.close(DEADLINE).unwrap()).price, expected);
        }
    }

    #[test]
    fn ties_go_to_the_lower_eta_then_the_lower_agent_id() {
        let registry = registry();
        let mut auction = Auction::open(render_call(&registry)).unwrap();
        let slow = Duration::from_secs(9);
        let fast = Duration::from_secs(2);
        auction
            .bid(&registry, Bid::new(id(1), 5.0, slow, UNTIL), EARLY)
            .unwrap();
        auction
            .bid(&registry, Bid::new(id(4), 5.0, fast, UNTIL), EARLY)
            .unwrap();
        auction
            .bid(&registry, Bid::new(id(3), 5.0, fast, UNTIL), EARLY)
            .unwrap();
        let award = award(auction.close(DEADLINE).unwrap());
        assert_eq!(award.winner.agent, id(3));
        assert_eq!(award.runner_up.map(|b| b.agent), Some(id(4)));
    }

    #[test]
    fn negative_zero_ties_with_zero() {
        let registry = registry();
        let mut auction = Auction::open(render_call(&registry)).unwrap();
        auction.bid(&registry, bid(2, 0.0), EARLY).unwrap();
        auction.bid(&registry, bid(1, -0.0), EARLY).unwrap();
        let award = award(auction.close(DEADLINE).unwrap());
        assert_eq!(award.winner.agent, id(1));
        assert!(award.price.is_sign_positive());
    }

    #[test]
    fn no_valid_bid_is_an_explicit_outcome() {
        let registry = registry();
        let mut empty = Auction::open(render_call(&registry)).unwrap();
        assert_eq!(empty.close(DEADLINE), Ok(AuctionOutcome::NoBids));

        let mut lapsed = Auction::open(render_call(&registry)).unwrap();
        let short = Bid::new(id(1), 1.0, Duration::ZERO, Instant::from_secs(5));
        lapsed.bid(&registry, short, EARLY).unwrap();
        assert_eq!(lapsed.close(DEADLINE), Ok(AuctionOutcome::NoBids));
        assert_eq!(lapsed.outcome().and_then(AuctionOutcome::award), None);
    }

    #[test]
    fn closing_early_is_not_yet_and_closing_twice_is_refused() {
        let registry = registry();
        let mut auction = Auction::open(render_call(&registry)).unwrap();
        auction.bid(&registry, bid(1, 1.0), EARLY).unwrap();
        assert_eq!(
            auction.close(Instant::from_secs(9)),
            Err(AuctionError::BiddingOpen { deadline: DEADLINE })
        );
        assert!(!auction.is_closed());
        assert_eq!(auction.poll_timeout(), Some(DEADLINE));
        assert!(auction.close(Instant::from_secs(11)).is_ok());
        assert_eq!(
            auction.close(Instant::from_secs(12)),
            Err(AuctionError::Closed)
        );
        assert_eq!(auction.poll_timeout(), None);
        assert_eq!(
            auction.bid(&registry, bid(2, 1.0), EARLY),
            Err(AuctionError::Closed)
        );
        assert_eq!(auction.withdraw(id(1)), Err(AuctionError::Closed));
    }

    #[test]
    fn every_bid_rejection_is_typed_and_changes_nothing() {
        let registry = registry();
        let call = render_call(&registry).reserve(50.0);
        let mut auction = Auction::open(call).unwrap();
        auction.bid(&registry, bid(1, 5.0), EARLY).unwrap();
        let cases = [
            (
                bid(2, f64::NAN),
                EARLY,
                AuctionError::InvalidCost {
                    agent: id(2),
                    cost: f64::NAN,
                },
            ),
            (
                Bid::new(id(2), 1.0, Duration::ZERO, EARLY),
                EARLY,
                AuctionError::Expired {
                    agent: id(2),
                    valid_until: EARLY,
                    now: EARLY,
                },
            ),
            (bid(99, 1.0), EARLY, AuctionError::UnknownAgent(id(99))),
            (bid(5, 1.0), EARLY, AuctionError::Incapable(id(5))),
            (
                bid(2, 51.0),
                EARLY,
                AuctionError::AboveReserve {
                    agent: id(2),
                    cost: 51.0,
                    reserve: 50.0,
                },
            ),
            (bid(1, 1.0), EARLY, AuctionError::DuplicateBid(id(1))),
        ];
        for (offer, now, expected) in cases {
            let got = auction.bid(&registry, offer, now).unwrap_err();
            // NaN != NaN: compare the NaN case by shape.
            if let AuctionError::InvalidCost { cost, .. } = got {
                assert!(cost.is_nan());
            } else {
                assert_eq!(got, expected);
            }
        }
        for cost in [-1.0, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(matches!(
                auction.bid(&registry, bid(2, cost), EARLY),
                Err(AuctionError::InvalidCost { .. })
            ));
        }
        // Last: a late bid is refused.
        let late = AuctionError::Late {
            agent: id(2),
            deadline: DEADLINE,
            now: DEADLINE,
        };
        assert_eq!(auction.bid(&registry, bid(2, 1.0), DEADLINE), Err(late));
        assert_eq!(auction.bids().count(), 1);
        assert_eq!(auction.bid_of(id(1)).map(|b| b.cost), Some(5.0));
    }

    #[test]
    fn a_bid_stamped_before_an_accepted_one_is_judged_at_the_later_instant() {
        let registry = registry();
        let mut auction = Auction::open(render_call(&registry)).unwrap();
        auction
            .bid(&registry, bid(1, 5.0), Instant::from_secs(5))
            .unwrap();
        // Lapses at 4 s: expired at 5 s, whatever the stamp says.
        let stale = Bid::new(id(2), 1.0, Duration::ZERO, Instant::from_secs(4));
        assert_eq!(
            auction.bid(&registry, stale, EARLY),
            Err(AuctionError::Expired {
                agent: id(2),
                valid_until: Instant::from_secs(4),
                now: Instant::from_secs(5),
            })
        );
    }

    #[test]
    fn a_deadline_or_validity_of_instant_max_means_never() {
        let registry = registry();
        let call = Announcement::new(CapabilitySet::default(), Instant::MAX);
        let mut auction = Auction::open(call).unwrap();
        let forever = Bid::new(id(1), 1.0, Duration::ZERO, Instant::MAX);
        auction.bid(&registry, forever, Instant::MAX).unwrap();
        assert!(!auction.is_ready(Instant::MAX));
        assert_eq!(
            auction.close(Instant::MAX),
            Err(AuctionError::BiddingOpen {
                deadline: Instant::MAX
            })
        );
        assert_eq!(auction.poll_timeout(), Some(Instant::MAX));
    }

    #[test]
    fn withdrawing_lets_an_agent_revise_its_bid() {
        let registry = registry();
        let mut auction = Auction::open(render_call(&registry)).unwrap();
        auction.bid(&registry, bid(1, 5.0), EARLY).unwrap();
        assert_eq!(auction.withdraw(id(1)).map(|b| b.cost), Ok(5.0));
        assert_eq!(auction.withdraw(id(1)), Err(AuctionError::NoBidFrom(id(1))));
        auction.bid(&registry, bid(1, 2.0), EARLY).unwrap();
        assert_eq!(award(auction.close(DEADLINE).unwrap()).price, 2.0);
    }

    #[test]
    fn invitations_restrict_bidders_and_allow_an_early_close() {
        let registry = registry();
        let call = render_call(&registry).invite([id(1), id(2)]);
        assert_eq!(call.invited().map(BTreeSet::len), Some(2));
        let mut auction = Auction::open(call).unwrap();
        assert_eq!(
            auction.bid(&registry, bid(3, 1.0), EARLY),
            Err(AuctionError::NotInvited(id(3)))
        );
        auction.bid(&registry, bid(1, 4.0), EARLY).unwrap();
        assert!(!auction.is_ready(EARLY));
        // Agent 2's bid lapses at 3 s: an early close is possible only while
        // it stands.
        let short = Bid::new(id(2), 6.0, Duration::ZERO, Instant::from_secs(3));
        auction.bid(&registry, short, EARLY).unwrap();
        assert!(auction.is_ready(Instant::from_secs(2)));
        assert!(!auction.is_ready(Instant::from_secs(3)));
        let award = award(auction.close(Instant::from_secs(2)).unwrap());
        assert_eq!((award.winner.agent, award.valid_bids), (id(1), 2));
    }

    #[test]
    fn invalid_announcements_are_refused_when_opened() {
        let registry = registry();
        for reserve in [-1.0, f64::NAN, f64::INFINITY] {
            assert!(matches!(
                Auction::open(render_call(&registry).reserve(reserve)),
                Err(AuctionError::InvalidReserve(_))
            ));
        }
        assert_eq!(
            Auction::open(render_call(&registry).invite([])),
            Err(AuctionError::NoInvitees)
        );
        let unknown = TaskRequirements::new().require(["quantum"]);
        assert!(matches!(
            Announcement::for_task(&registry, &unknown, DEADLINE),
            Err(AuctionError::Unresolvable(_))
        ));
    }

    #[test]
    fn capability_set_announcements_check_capabilities_only() {
        let registry = registry();
        let required = registry.capabilities().lookup_all(["render"]).unwrap();
        let call = Announcement::new(required, DEADLINE);
        assert_eq!(call.pricing_rule(), Pricing::FirstPrice);
        assert_eq!(call.reserve_price(), None);
        let mut auction = Auction::open(call).unwrap();
        assert_eq!(
            auction.bid(&registry, bid(5, 1.0), EARLY),
            Err(AuctionError::Incapable(id(5)))
        );
        auction.bid(&registry, bid(4, 1.0), EARLY).unwrap();
        assert_eq!(auction.deadline(), DEADLINE);
        assert_eq!(auction.announcement().deadline(), DEADLINE);
    }

    #[test]
    fn resolved_requirements_check_labels_and_exclusions() {
        let registry = registry();
        let needs = TaskRequirements::new()
            .require(["render"])
            .label(LabelConstraint::equals("zone", "eu"))
            .exclude([id(4)]);
        let call = Announcement::for_task(&registry, &needs, DEADLINE).unwrap();
        let mut auction = Auction::open(call).unwrap();
        assert_eq!(
            auction.bid(&registry, bid(1, 1.0), EARLY),
            Err(AuctionError::Incapable(id(1)))
        );
        assert_eq!(
            auction.bid(&registry, bid(4, 1.0), EARLY),
            Err(AuctionError::Incapable(id(4)))
        );
        auction.bid(&registry, bid(2, 1.0), EARLY).unwrap();
    }

    #[test]
    fn busy_or_offline_agents_may_still_bid() {
        let mut registry = registry();
        registry
            .set_status(id(1), crate::agent::AgentStatus::Offline)
            .unwrap();
        let mut auction = Auction::open(render_call(&registry)).unwrap();
        assert!(auction.bid(&registry, bid(1, 1.0), EARLY).is_ok());
    }

    #[cfg(feature = "serde")]
    #[test]
    fn auctions_round_trip_through_serde() {
        let registry = registry();
        let mut auction = Auction::open(render_call(&registry)).unwrap();
        auction.bid(&registry, bid(1, 2.5), EARLY).unwrap();
        let json = serde_json::to_string(&auction).unwrap();
        let back: Auction = serde_json::from_str(&json).unwrap();
        assert_eq!(back, auction);
    }
}
