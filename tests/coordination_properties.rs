//! Properties of the coordination module, checked against independent
//! models: a contract-net auction against a list of the bids that should
//! have been accepted, and weighted consensus against exact integer
//! arithmetic. Case counts follow `PROPTEST_CASES`.

#![cfg(feature = "coordination")]

use std::collections::BTreeSet;
use std::time::Duration;

use proptest::prelude::*;
use taskweave::agent::{AgentProfile, Registry};
use taskweave::coordination::{
    Announcement, Auction, AuctionError, AuctionOutcome, Ballot, Bid, Decision, Pricing, Threshold,
    Vote,
};
use taskweave::{AgentId, Instant, TaskRequirements};

const DEADLINE: Instant = Instant::from_secs(10);

/// One bid attempt as generated: who (an index that may name no agent),
/// what, and when.
#[derive(Clone, Debug)]
struct Attempt {
    agent: u64,
    cost: f64,
    eta_secs: u64,
    valid_until_secs: u64,
    at_secs: u64,
}

fn cost() -> impl Strategy<Value = f64> {
    prop_oneof![
        // Small integers, so ties are common.
        6 => (0u32..12).prop_map(f64::from),
        2 => 0.0f64..12.0,
        1 => prop_oneof![
            Just(-1.0),
            Just(-0.0),
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(f64::MIN_POSITIVE),
        ],
    ]
}

fn attempts(agents: u64) -> impl Strategy<Value = Vec<Attempt>> {
    // Mostly registered agents; `agents` and `agents + 1` are unknown ids.
    let agent = prop_oneof![8 => 0..agents, 1 => agents..agents + 2];
    let attempt = (agent, cost(), 0u64..4, 0u64..40, 0u64..11).prop_map(
        |(agent, cost, eta_secs, valid_until_secs, at_secs)| Attempt {
            agent,
            cost,
            eta_secs,
            valid_until_secs,
            at_secs,
        },
    );
    proptest::collection::vec(attempt, 0..32).prop_map(|mut v| {
        // Bids arrive in time order (stable, so equal times keep their order).
        v.sort_by_key(|a| a.at_secs);
        v
    })
}

/// A pool where `capable[i]` says whether agent `i` can `render`.
fn scenario() -> impl Strategy<
    Value = (
        Vec<bool>,
        Vec<Attempt>,
        Pricing,
        Option<f64>,
        u64, // close time, seconds
    ),
> {
    proptest::collection::vec(proptest::bool::weighted(0.75), 1..8).prop_flat_map(|capable| {
        let n = capable.len() as u64;
        (
            Just(capable),
            attempts(n),
            prop_oneof![Just(Pricing::FirstPrice), Just(Pricing::SecondPrice)],
            proptest::option::of((0u32..12).prop_map(f64::from)),
            10u64..20,
        )
    })
}

fn build_registry(capable: &[bool]) -> Registry {
    let mut registry = Registry::new();
    for (i, &can) in capable.iter().enumerate() {
        let caps: &[&str] = if can { &["render", "cpu"] } else { &["cpu"] };
        let profile = AgentProfile::builder()
            .capabilities(caps.iter().copied())
            .build()
            .unwrap();
        registry
            .register(AgentId::new(i as u64), profile, Instant::ZERO)
            .unwrap();
    }
    // Someone must have `render` for the requirements to resolve.
    let renderer = AgentProfile::builder()
        .capabilities(["render"])
        .build()
        .unwrap();
    registry
        .register(AgentId::new(1_000), renderer, Instant::ZERO)
        .unwrap();
    registry
}

/// The rejection the model expects, by name; `None` if the bid is accepted.
fn model_rejection(
    attempt: &Attempt,
    capable: &[bool],
    reserve: Option<f64>,
    holders: &BTreeSet<u64>,
) -> Option<&'static str> {
    let at = Instant::from_secs(attempt.at_secs);
    let valid_until = Instant::from_secs(attempt.valid_until_secs);
    if at >= DEADLINE {
        Some("late")
    } else if attempt.cost.is_nan() || attempt.cost.is_infinite() || attempt.cost < 0.0 {
        Some("invalid cost")
    } else if valid_until <= at {
        Some("expired")
    } else if attempt.agent as usize >= capable.len() {
        Some("unknown")
    } else if !capable[attempt.agent as usize] {
        Some("incapable")
    } else if reserve.is_some_and(|r| attempt.cost > r) {
        Some("above reserve")
    } else if holders.contains(&attempt.agent) {
        Some("duplicate")
    } else {
        None
    }
}

fn rejection_name(error: &AuctionError) -> &'static str {
    match error {
        AuctionError::Late { .. } => "late",
        AuctionError::InvalidCost { .. } => "invalid cost",
        AuctionError::Expired { .. } => "expired",
        AuctionError::UnknownAgent(_) => "unknown",
        AuctionError::Incapable(_) => "incapable",
        AuctionError::AboveReserve { .. } => "above reserve",
        AuctionError::DuplicateBid(_) => "duplicate",
        _ => "other",
    }
}

/// The award order: cost, then ETA, then agent id.
fn award_key(bid: &Bid) -> (f64, Duration, AgentId) {
    (bid.cost, bid.eta, bid.agent)
}

fn by_award_order(a: &Bid, b: &Bid) -> std::cmp::Ordering {
    let (ka, kb) = (award_key(a), award_key(b));
    ka.0.partial_cmp(&kb.0)
        .unwrap()
        .then(ka.1.cmp(&kb.1))
        .then(ka.2.cmp(&kb.2))
}

proptest! {
    /// Every bid is accepted or rejected exactly as the model says, and at
    /// the close the winner is the lowest-cost bid still valid (ties on
    /// ETA, then agent id); the price follows the pricing rule; late,
    /// expired, incapable and unknown bidders never win.
    #[test]
    fn the_auction_awards_the_cheapest_valid_bid_at_the_right_price(
        (capable, attempts, pricing, reserve, close_secs) in scenario(),
    ) {
        let registry = build_registry(&capable);
        let needs = TaskRequirements::new().require(["render"]);
        let mut call = Announcement::for_task(&registry, &needs, DEADLINE)
            .unwrap()
            .pricing(pricing);
        if let Some(reserve) = reserve {
            call = call.reserve(reserve);
        }
        let mut auction = Auction::open(call).unwrap();

        let mut accepted: Vec<Bid> = Vec::new();
        let mut holders = BTreeSet::new();
        for attempt in &attempts {
            let bid = Bid::new(
                AgentId::new(attempt.agent),
                attempt.cost,
                Duration::from_secs(attempt.eta_secs),
                Instant::from_secs(attempt.valid_until_secs),
            );
            let expected = model_rejection(attempt, &capable, reserve, &holders);
            let got = auction.bid(&registry, bid, Instant::from_secs(attempt.at_secs));
            prop_assert_eq!(got.as_ref().err().map(rejection_name), expected, "{:?}", attempt);
            if got.is_ok() {
                holders.insert(attempt.agent);
                accepted.push(bid);
            }
        }

        let close_at = Instant::from_secs(close_secs);
        let mut valid: Vec<Bid> = accepted
            .iter()
            .copied()
            .filter(|b| close_at < b.valid_until)
            .collect();
        valid.sort_by(by_award_order);

        let outcome = auction.close(close_at).unwrap();
        match (&outcome, valid.as_slice()) {
            (AuctionOutcome::NoBids, []) => {}
            (AuctionOutcome::Awarded(award), [best, rest @ ..]) => {
                prop_assert_eq!(award.winner.agent, best.agent);
                prop_assert_eq!(award.valid_bids, valid.len());
                // No valid bid is cheaper than the winner.
                prop_assert!(valid.iter().all(|b| award.winner.cost <= b.cost));
                // The winner is a bid the model accepted, valid at the close.
                let winner = award.winner.agent.get();
                prop_assert!((winner as usize) < capable.len() && capable[winner as usize]);
                prop_assert!(close_at < award.winner.valid_until);
                let expected_price = match (pricing, rest.first()) {
                    (Pricing::FirstPrice, _) => best.cost,
                    (Pricing::SecondPrice, Some(second)) => second.cost,
                    (Pricing::SecondPrice, None) => reserve.unwrap_or(best.cost),
                };
                prop_assert_eq!(award.price, expected_price);
                prop_assert_eq!(award.runner_up.map(|b| b.agent), rest.first().map(|b| b.agent));
                if pricing == Pricing::SecondPrice {
                    // Vickrey never pays less than the winner asked.
                    prop_assert!(award.price >= award.winner.cost);
                }
            }
            (outcome, valid) => {
                prop_assert!(false, "outcome {:?} but valid bids {:?}", outcome, valid);
            }
        }
        prop_assert_eq!(auction.close(close_at), Err(AuctionError::Closed));
    }

    /// Before the deadline an auction without invitations always answers
    /// "not yet" and changes nothing.
    #[test]
    fn closing_before_the_deadline_is_not_yet(
        (capable, attempts, pricing, _reserve, _close) in scenario(),
        early in 0u64..10,
    ) {
        let registry = build_registry(&capable);
        let needs = TaskRequirements::new().require(["render"]);
        let call = Announcement::for_task(&registry, &needs, DEADLINE).unwrap().pricing(pricing);
        let mut auction = Auction::open(call).unwrap();
        for a in &attempts {
            let bid = Bid::new(
                AgentId::new(a.agent),
                a.cost,
                Duration::from_secs(a.eta_secs),
                Instant::from_secs(a.valid_until_secs),
            );
            let _ = auction.bid(&registry, bid, Instant::from_secs(a.at_secs));
        }
        let before = auction.clone();
        prop_assert_eq!(
            auction.close(Instant::from_secs(early)),
            Err(AuctionError::BiddingOpen { deadline: DEADLINE })
        );
        prop_assert_eq!(&auction, &before);
        prop_assert_eq!(auction.poll_timeout(), Some(DEADLINE));
    }
}

/// A voter as generated: integer weight and an optional vote.
fn voters() -> impl Strategy<Value = Vec<(u64, Option<Vote>)>> {
    let vote = proptest::option::of(prop_oneof![
        Just(Vote::Yes),
        Just(Vote::No),
        Just(Vote::Abstain)
    ]);
    proptest::collection::vec((0u64..=10, vote), 0..12)
}

/// A fraction `a / b` with `b` in `1..=10`, as (numerator, denominator).
fn fraction() -> impl Strategy<Value = (u64, u64)> {
    (1u64..=10).prop_flat_map(|b| (0..=b, Just(b)))
}

/// Integer tallies of generated voters: (yes, no, abstain, total).
fn integer_tally(voters: &[(u64, Option<Vote>)]) -> (u64, u64, u64, u64) {
    let mut t = (0, 0, 0, 0);
    for &(w, vote) in voters {
        t.3 += w;
        match vote {
            Some(Vote::Yes) => t.0 += w,
            Some(Vote::No) => t.1 += w,
            Some(Vote::Abstain) => t.2 += w,
            None => {}
        }
    }
    t
}

fn build_ballot(voters: &[(u64, Option<Vote>)], quorum: f64, threshold: Threshold) -> Ballot {
    let mut ballot = Ballot::builder()
        .voters(
            voters
                .iter()
                .enumerate()
                .map(|(i, &(w, _))| (AgentId::new(i as u64), w as f64)),
        )
        .quorum(quorum)
        .threshold(threshold)
        .build()
        .unwrap();
    // Cast in reverse id order: the tally must not depend on arrival order.
    for (i, &(_, vote)) in voters.iter().enumerate().rev() {
        if let Some(vote) = vote {
            ballot.vote(AgentId::new(i as u64), vote).unwrap();
        }
    }
    ballot
}

fn kind(decision: &Decision) -> &'static str {
    match decision {
        Decision::Accepted(_) => "accepted",
        Decision::Rejected(_) => "rejected",
        Decision::NoQuorum(_) => "no quorum",
    }
}

/// `x`'s successor among positive finite `f64`s (`f64::next_up` needs Rust
/// 1.86, above the MSRV).
fn next_up(x: f64) -> f64 {
    f64::from_bits(x.to_bits() + 1)
}

proptest! {
    /// The decision equals an exact integer computation: quorum met iff
    /// `total > 0` and `participating * b >= a * total` for quorum `a / b`;
    /// accepted iff `yes + no > 0` and the yes share passes `c / d` (strictly
    /// for `MoreThan`).
    #[test]
    fn consensus_matches_an_exact_integer_reference(
        voters in voters(),
        (qa, qb) in fraction(),
        (ta, tb) in fraction(),
        strict in any::<bool>(),
    ) {
        let quorum = qa as f64 / qb as f64;
        let t = ta as f64 / tb as f64;
        let threshold = if strict { Threshold::MoreThan(t) } else { Threshold::AtLeast(t) };
        let ballot = build_ballot(&voters, quorum, threshold);

        let (yes, no, abstain, total) = integer_tally(&voters);
        let participating = yes + no + abstain;
        let decisive = yes + no;
        let expected = if total == 0 || participating * qb < qa * total {
            "no quorum"
        } else if decisive > 0
            && if strict { yes * tb > ta * decisive } else { yes * tb >= ta * decisive }
        {
            "accepted"
        } else {
            "rejected"
        };
        let decision = ballot.decide();
        prop_assert_eq!(kind(&decision), expected);
        let tally = decision.tally();
        prop_assert_eq!(
            (tally.yes, tally.no, tally.abstain, tally.total),
            (yes as f64, no as f64, abstain as f64, total as f64)
        );
        prop_assert_eq!(tally.votes, voters.iter().filter(|(_, v)| v.is_some()).count());
    }

    /// A quorum set exactly at the participation share is met; the next
    /// representable quorum above it is just missed.
    #[test]
    fn quorum_exactly_met_counts_and_just_missed_does_not(voters in voters()) {
        let (yes, no, abstain, total) = integer_tally(&voters);
        let participating = yes + no + abstain;
        if total == 0 {
            // No weight, no quorum to sit exactly on (covered by the unit tests).
            return Ok(());
        }
        let share = participating as f64 / total as f64;
        let met = build_ballot(&voters, share, Threshold::STRICT_MAJORITY).decide();
        prop_assert_ne!(kind(&met), "no quorum");
        prop_assert_eq!(met.is_accepted(), yes > no);
        if share > 0.0 && share < 1.0 {
            let missed = build_ballot(&voters, next_up(share), Threshold::STRICT_MAJORITY);
            prop_assert_eq!(kind(&missed.decide()), "no quorum");
        }
    }

    /// With arbitrary real weights the decision equals the textbook formula
    /// computed in id order, whatever order the votes arrive in.
    #[test]
    fn consensus_matches_a_float_reference(
        voters in proptest::collection::vec(
            (0.0f64..1_000.0, proptest::option::of(prop_oneof![
                Just(Vote::Yes), Just(Vote::No), Just(Vote::Abstain)
            ])),
            0..12,
        ),
        quorum in 0.0f64..=1.0,
        threshold in 0.0f64..=1.0,
    ) {
        let mut ballot = Ballot::builder()
            .voters(voters.iter().enumerate().map(|(i, &(w, _))| (AgentId::new(i as u64), w)))
            .quorum(quorum)
            .threshold(Threshold::MoreThan(threshold))
            .build()
            .unwrap();
        for (i, &(_, vote)) in voters.iter().enumerate().rev() {
            if let Some(vote) = vote {
                ballot.vote(AgentId::new(i as u64), vote).unwrap();
            }
        }
        let sum = |pick: Option<Vote>| -> f64 {
            voters.iter().filter(|(_, v)| pick.is_none() || *v == pick).map(|(w, _)| w).sum()
        };
        let (yes, no, abstain, total) =
            (sum(Some(Vote::Yes)), sum(Some(Vote::No)), sum(Some(Vote::Abstain)), sum(None));
        let expected = if !(total > 0.0 && (yes + no + abstain) / total >= quorum) {
            "no quorum"
        } else if yes + no > 0.0 && yes / (yes + no) > threshold {
            "accepted"
        } else {
            "rejected"
        };
        prop_assert_eq!(kind(&ballot.decide()), expected);
    }
}
