//! Errors of the coordination module: one enum per concept, wrapped by
//! [`CoordinationError`].

use thiserror::Error;

use super::NodeId;
use crate::routing::RoutingError;
use crate::{AgentId, Instant};

/// Why an auction refused an announcement, a bid, a withdrawal or a close.
/// Every bid rejection names the bidder.
#[derive(Clone, Debug, PartialEq, Error)]
#[non_exhaustive]
pub enum AuctionError {
    /// The task's requirements name a capability or label no agent has.
    #[error("task requirements cannot be resolved: {0}")]
    Unresolvable(RoutingError),
    /// A reserve price must be finite and non-negative.
    #[error("reserve price must be finite and non-negative, got {0}")]
    InvalidReserve(f64),
    /// An invitation list was given but names nobody.
    #[error("the invitation list is empty")]
    NoInvitees,
    /// The auction was already closed.
    #[error("the auction is closed")]
    Closed,
    /// The "not yet" answer of [`close`](super::Auction::close): bidding is
    /// still open and not every invited agent holds a valid bid.
    #[error("bidding is open until {deadline}")]
    BiddingOpen {
        /// When bidding ends.
        deadline: Instant,
    },
    /// A bid arrived at or after the bid deadline.
    #[error("bid from {agent} at {now} is late (deadline {deadline})")]
    Late {
        /// The bidder.
        agent: AgentId,
        /// The bid deadline.
        deadline: Instant,
        /// When the bid arrived.
        now: Instant,
    },
    /// A cost that is NaN, infinite or negative.
    #[error("bid from {agent} has invalid cost {cost}")]
    InvalidCost {
        /// The bidder.
        agent: AgentId,
        /// The rejected cost.
        cost: f64,
    },
    /// A bid whose validity had already ended when it arrived.
    #[error("bid from {agent} expired at {valid_until}, received at {now}")]
    Expired {
        /// The bidder.
        agent: AgentId,
        /// The end of the bid's validity.
        valid_until: Instant,
        /// When the bid arrived.
        now: Instant,
    },
    /// The bidder is not in the registry.
    #[error("bidder {0} is not registered")]
    UnknownAgent(AgentId),
    /// The auction is by invitation and the bidder was not invited.
    #[error("bidder {0} was not invited")]
    NotInvited(AgentId),
    /// The bidder does not meet the task's requirements (capabilities, and
    /// for announcements made from
    /// [`TaskRequirements`](crate::TaskRequirements) also labels, pinning,
    /// exclusions and anti-affinity).
    #[error("bidder {0} does not meet the task's requirements")]
    Incapable(AgentId),
    /// The cost is above the announced reserve price.
    #[error("bid from {agent} costs {cost}, above the reserve price {reserve}")]
    AboveReserve {
        /// The bidder.
        agent: AgentId,
        /// The bid's cost.
        cost: f64,
        /// The reserve price.
        reserve: f64,
    },
    /// The agent already holds a bid; withdraw it first to replace it.
    #[error("agent {0} already holds a bid")]
    DuplicateBid(AgentId),
    /// A withdrawal for an agent that holds no bid.
    #[error("agent {0} holds no bid")]
    NoBidFrom(AgentId),
}

/// Why a ballot could not be built or refused a vote.
#[derive(Clone, Debug, PartialEq, Error)]
#[non_exhaustive]
pub enum ConsensusError {
    /// A voter weight that is NaN, infinite or negative.
    #[error("voter {voter} has invalid weight {weight}")]
    InvalidWeight {
        /// The voter.
        voter: AgentId,
        /// The rejected weight.
        weight: f64,
    },
    /// The voters' weights add up to more than `f64` can hold.
    #[error("the total voter weight is not finite")]
    WeightOverflow,
    /// The same voter was added twice.
    #[error("voter {0} was added twice")]
    DuplicateVoter(AgentId),
    /// A quorum outside `0..=1` (or NaN).
    #[error("quorum must be in 0..=1, got {0}")]
    InvalidQuorum(f64),
    /// An acceptance threshold outside `0..=1` (or NaN).
    #[error("acceptance threshold must be in 0..=1, got {0}")]
    InvalidThreshold(f64),
    /// A vote from an agent that is not a voter of this ballot.
    #[error("agent {0} is not a voter of this ballot")]
    UnknownVoter(AgentId),
    /// A second vote from the same voter; the first one stands.
    #[error("voter {0} has already voted")]
    DuplicateVote(AgentId),
}

/// Why a hierarchy or a delegation refused a request.
#[derive(Clone, Debug, PartialEq, Error)]
#[non_exhaustive]
pub enum DelegationError {
    /// Adding the subordinate would close a cycle; `path` runs from the
    /// subordinate down to the leader and back to the subordinate
    /// (`[a, a]` when an agent is made its own subordinate).
    #[error("delegation cycle: {path:?}")]
    Cycle {
        /// The cycle, first agent repeated at the end.
        path: Vec<AgentId>,
    },
    /// The agent already reports to another leader.
    #[error("agent {agent} already reports to {leader}")]
    AlreadyLed {
        /// The subordinate.
        agent: AgentId,
        /// Its existing leader.
        leader: AgentId,
    },
    /// A splitter handed work to an agent that is not one of the leader's
    /// subordinates.
    #[error("agent {agent} is not a subordinate of {leader}")]
    UnknownSubordinate {
        /// The leader that split its work.
        leader: AgentId,
        /// The agent named by the split.
        agent: AgentId,
    },
    /// A splitter delegated from a leader already at the depth limit.
    #[error("leader {leader} is at the depth limit {limit} and cannot delegate further")]
    DepthLimitExceeded {
        /// The leader that tried to delegate.
        leader: AgentId,
        /// The depth limit.
        limit: usize,
    },
    /// A splitter delegated to nobody; it should keep the work instead.
    #[error("leader {leader} delegated its work to nobody")]
    EmptySplit {
        /// The leader.
        leader: AgentId,
    },
    /// A report for a node this delegation does not have.
    #[error("{0} is not a node of this delegation")]
    UnknownNode(NodeId),
    /// A report for a node that delegated its work: only leaves report.
    #[error("{0} delegated its work; only leaves report results")]
    NotALeaf(NodeId),
    /// A second report for the same leaf; the first one stands.
    #[error("{0} has already reported")]
    AlreadyReported(NodeId),
}

/// Any coordination error, as wrapped by the crate-wide
/// [`Error`](crate::Error).
#[derive(Clone, Debug, PartialEq, Error)]
#[non_exhaustive]
pub enum CoordinationError {
    /// A contract-net auction error.
    #[error(transparent)]
    Auction(#[from] AuctionError),
    /// A consensus ballot error.
    #[error(transparent)]
    Consensus(#[from] ConsensusError),
    /// A hierarchy or delegation error.
    #[error(transparent)]
    Delegation(#[from] DelegationError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concept_errors_convert_to_the_crate_error_and_keep_their_message() {
        let agent = AgentId::new(3);
        let err: crate::Error = AuctionError::Incapable(agent).into();
        assert_eq!(
            err.to_string(),
            "bidder agent-3 does not meet the task's requirements"
        );
        assert!(matches!(
            err,
            crate::Error::Coordination(CoordinationError::Auction(AuctionError::Incapable(_)))
        ));
        let err: crate::Error = ConsensusError::DuplicateVote(agent).into();
        assert_eq!(err.to_string(), "voter agent-3 has already voted");
        let err: crate::Error = DelegationError::Cycle {
            path: vec![agent, agent],
        }
        .into();
        assert!(matches!(
            err,
            crate::Error::Coordination(CoordinationError::Delegation(_))
        ));
    }
}
