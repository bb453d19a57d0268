//! Coordination among agents: contract-net auctions, weighted consensus,
//! hierarchical delegation.
//!
//! Each concept is a small sans-IO state machine. None reads a clock: time
//! comes in as an [`Instant`](crate::Instant) argument, and the host decides
//! when to act on what the machine answers. Ties break on fixed rules (cost,
//! then ETA, then [`AgentId`](crate::AgentId); sums in id order), never on
//! hash-map order, so the same inputs give the same decisions.
//!
//! | type | decides | rules |
//! |---|---|---|
//! | [`Auction`] (contract net) | which agent gets a task, at what price | sealed bids until a deadline; lowest valid cost wins; [`Pricing::FirstPrice`] or [`Pricing::SecondPrice`] (Vickrey) |
//! | [`Ballot`] | whether a proposal is accepted | weighted votes; a quorum of participating weight; a yes-share [`Threshold`] (strict majority by default) |
//! | [`Delegation`] over a [`Hierarchy`] | how a leader's work is split among subordinates and the results combined | a host [`Splitter`] and [`Aggregator`], a depth limit, one report per leaf |
//!
//! Bidders are checked against the [`Registry`](crate::agent::Registry):
//! an announcement's requirements are the same
//! [`TaskRequirements`](crate::TaskRequirements) routing uses (or a plain
//! [`CapabilitySet`](crate::capability::CapabilitySet)), and
//! [`performance_weight`] turns an agent's track record into a vote weight.
//! Errors are typed: [`AuctionError`], [`ConsensusError`] and
//! [`DelegationError`], wrapped by [`CoordinationError`] and the crate-wide
//! [`Error`](crate::Error).
//!
//! ```
//! use std::time::Duration;
//! use taskweave::agent::{AgentProfile, Registry};
//! use taskweave::coordination::{Announcement, Auction, Ballot, Bid, Vote};
//! use taskweave::{AgentId, Instant, TaskRequirements};
//!
//! let mut registry = Registry::new();
//! for id in 1..=3 {
//!     let profile = AgentProfile::builder().capabilities(["translate"]).build()?;
//!     registry.register(AgentId::new(id), profile, Instant::ZERO)?;
//! }
//!
//! // Contract net: the cheapest valid bid at the deadline wins.
//! let deadline = Instant::from_secs(2);
//! let needs = TaskRequirements::new().require(["translate"]);
//! let mut auction = Auction::open(Announcement::for_task(&registry, &needs, deadline)?)?;
//! let (eta, until) = (Duration::from_secs(60), Instant::from_secs(30));
//! auction.bid(&registry, Bid::new(AgentId::new(1), 8.0, eta, until), Instant::ZERO)?;
//! auction.bid(&registry, Bid::new(AgentId::new(2), 5.0, eta, until), Instant::ZERO)?;
//! let outcome = auction.close(deadline)?;
//! assert_eq!(outcome.award().map(|a| a.winner.agent), Some(AgentId::new(2)));
//!
//! // Consensus: the agents vote on the translation, weighted by track record.
//! let mut ballot = Ballot::builder().registry_voters(&registry).quorum(0.6).build()?;
//! ballot.vote(AgentId::new(1), Vote::Yes)?;
//! ballot.vote(AgentId::new(3), Vote::Yes)?;
//! assert!(ballot.decide().is_accepted());
//! # Ok::<(), taskweave::Error>(())
//! ```

mod consensus;
mod contract_net;
mod delegation;
mod error;

pub use consensus::{Ballot, BallotBuilder, Decision, Tally, Threshold, Vote, performance_weight};
pub use contract_net::{Announcement, Auction, AuctionOutcome, Award, Bid, Pricing};
pub use delegation::{
    Aggregator, Assignment, Delegation, Hierarchy, NodeId, Split, SplitContext, Splitter,
};
pub use error::{AuctionError, ConsensusError, CoordinationError, DelegationError};
