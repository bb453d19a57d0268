//! Weighted-majority consensus with a quorum.

use std::collections::BTreeMap;

use super::ConsensusError;
use crate::AgentId;
use crate::agent::{PerformanceStats, Registry};

/// One voter's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Vote {
    /// For the proposal.
    Yes,
    /// Against the proposal.
    No,
    /// Present, but neither for nor against: counts towards the quorum,
    /// not towards the acceptance share.
    Abstain,
}

/// How large a share of the decisive (yes + no) weight must say yes.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Threshold {
    /// The yes share must be strictly above the value:
    /// `MoreThan(0.5)` is a strict majority, where an exact tie is rejected.
    MoreThan(f64),
    /// The yes share must be at least the value: `AtLeast(2.0 / 3.0)` is a
    /// two-thirds supermajority.
    AtLeast(f64),
}

impl Threshold {
    /// A strict majority, the default: more yes weight than no weight.
    pub const STRICT_MAJORITY: Threshold = Threshold::MoreThan(0.5);

    fn value(self) -> f64 {
        match self {
            Threshold::MoreThan(value) | Threshold::AtLeast(value) => value,
        }
    }

    fn passes(self, share: f64) -> bool {
        match self {
            Threshold::MoreThan(value) => share > value,
            Threshold::AtLeast(value) => share >= value,
        }
    }
}

impl Default for Threshold {
    fn default() -> Self {
        Threshold::STRICT_MAJORITY
    }
}

/// A voting weight derived from an agent's track record: its Laplace-smoothed
/// success rate ([`PerformanceStats::smoothed_success_rate`]), in `(0, 1)`.
/// An agent with no history weighs `0.5`; a reliable one approaches `1`.
///
/// ```
/// use taskweave::agent::PerformanceStats;
/// use taskweave::coordination::performance_weight;
///
/// assert_eq!(performance_weight(&PerformanceStats::default()), 0.5);
/// ```
pub fn performance_weight(stats: &PerformanceStats) -> f64 {
    stats.smoothed_success_rate()
}

/// The weights behind a ballot's decision.
///
/// All sums are taken over voters in ascending [`AgentId`] order, so the
/// same ballot gives bit-identical tallies whatever order votes came in.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct Tally {
    /// Weight of yes votes.
    pub yes: f64,
    /// Weight of no votes.
    pub no: f64,
    /// Weight of abstentions.
    pub abstain: f64,
    /// Weight of every voter of the ballot, voted or not.
    pub total: f64,
    /// Number of votes cast (abstentions included).
    pub votes: usize,
    /// Number of voters.
    pub voters: usize,
}

impl Tally {
    /// Weight of everyone who voted, abstentions included.
    pub fn participating(&self) -> f64 {
        self.yes + self.no + self.abstain
    }

    /// Weight that decides acceptance: yes plus no.
    pub fn decisive(&self) -> f64 {
        self.yes + self.no
    }

    /// `participating / total`, or `None` when the total weight is zero.
    pub fn participation(&self) -> Option<f64> {
        (self.total > 0.0).then(|| self.participating() / self.total)
    }

    /// `yes / (yes + no)`, or `None` when no decisive weight was cast.
    pub fn yes_share(&self) -> Option<f64> {
        let decisive = self.decisive();
        (decisive > 0.0).then(|| self.yes / decisive)
    }
}

/// What a ballot decided, with the tally it decided on.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Decision {
    /// Quorum met and the yes share passed the threshold.
    Accepted(Tally),
    /// Quorum met, but the yes share did not pass the threshold (or no
    /// decisive weight was cast).
    Rejected(Tally),
    /// Too little weight took part.
    NoQuorum(Tally),
}

impl Decision {
    /// The tally behind the decision.
    pub fn tally(&self) -> &Tally {
        match self {
            Decision::Accepted(tally) | Decision::Rejected(tally) | Decision::NoQuorum(tally) => {
                tally
            }
        }
    }

    /// Whether the proposal was accepted.
    pub fn is_accepted(&self) -> bool {
        matches!(self, Decision::Accepted(_))
    }
}

/// Builds a [`Ballot`]; see [`Ballot::builder`].
#[derive(Clone, Debug)]
pub struct BallotBuilder {
    voters: Vec<(AgentId, f64)>,
    quorum: f64,
    threshold: Threshold,
}

impl BallotBuilder {
    /// Adds a voter with a weight (finite, non-negative; zero is allowed
    /// and makes the voter count for nothing).
    pub fn voter(mut self, voter: AgentId, weight: f64) -> Self {
        self.voters.push((voter, weight));
        self
    }

    /// Adds several voters.
    pub fn voters(mut self, voters: impl IntoIterator<Item = (AgentId, f64)>) -> Self {
        self.voters.extend(voters);
        self
    }

    /// Adds every agent of `registry`, weighted by its track record
    /// ([`performance_weight`]).
    pub fn registry_voters(self, registry: &Registry) -> Self {
        self.voters(
            registry
                .iter()
                .map(|record| (record.id(), performance_weight(record.stats()))),
        )
    }

    /// The minimum share of the total weight that must vote (abstentions
    /// count), in `0..=1`; `0.5` by default. The quorum is met when
    /// `participating / total >= quorum`.
    pub fn quorum(mut self, quorum: f64) -> Self {
        self.quorum = quorum;
        self
    }

    /// The acceptance threshold; a strict majority by default.
    pub fn threshold(mut self, threshold: Threshold) -> Self {
        self.threshold = threshold;
        self
    }

    /// Checks the configuration and builds the ballot.
    ///
    /// # Errors
    ///
    /// * [`ConsensusError::InvalidQuorum`] unless `0 <= quorum <= 1`;
    /// * [`ConsensusError::InvalidThreshold`] unless the threshold value
    ///   is in `0..=1`;
    /// * [`ConsensusError::InvalidWeight`] for a NaN, infinite or negative
    ///   weight;
    /// * [`ConsensusError::DuplicateVoter`] for a voter added twice;
    /// * [`ConsensusError::WeightOverflow`] if the weights add up to
    ///   infinity.
    pub fn build(self) -> Result<Ballot, ConsensusError> {
        if !(0.0..=1.0).contains(&self.quorum) {
            return Err(ConsensusError::InvalidQuorum(self.quorum));
        }
        if !(0.0..=1.0).contains(&self.threshold.value()) {
            return Err(ConsensusError::InvalidThreshold(self.threshold.value()));
        }
        let mut voters = BTreeMap::new();
        for (voter, weight) in self.voters {
            if !(weight.is_finite() && weight >= 0.0) {
                return Err(ConsensusError::InvalidWeight { voter, weight });
            }
            let fresh = Voter {
                weight: weight + 0.0,
                vote: None,
            };
            if voters.insert(voter, fresh).is_some() {
                return Err(ConsensusError::DuplicateVoter(voter));
            }
        }
        let total: f64 = voters.values().map(|v| v.weight).sum();
        if !total.is_finite() {
            return Err(ConsensusError::WeightOverflow);
        }
        Ok(Ballot {
            voters,
            quorum: self.quorum,
            threshold: self.threshold,
            total,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
struct Voter {
    weight: f64,
    vote: Option<Vote>,
}

/// A weighted-majority vote on one proposal, with a quorum.
///
/// Each voter has a weight — expertise, stake, or a track record through
/// [`performance_weight`] — and casts one [`Vote`]. The decision, available
/// at any time from [`decide`](Self::decide) (the host decides when voting
/// ends), is:
///
/// 1. [`Decision::NoQuorum`] unless `total > 0` and
///    `participating / total >= quorum` (abstentions participate). A ballot
///    whose total weight is zero — no voters, or only zero-weight ones —
///    never reaches a quorum, not even a quorum of `0`.
/// 2. Otherwise [`Decision::Accepted`] if some decisive weight was cast
///    (`yes + no > 0`) and `yes / (yes + no)` passes the [`Threshold`];
///    [`Decision::Rejected`] if not. So a ballot where everyone abstains is
///    rejected, and under the default strict majority an exact tie is
///    rejected.
///
/// A voter votes once: a second vote is refused and the first one stands.
///
/// ```
/// use taskweave::AgentId;
/// use taskweave::coordination::{Ballot, Decision, Vote};
///
/// let [a, b, c] = [1, 2, 3].map(AgentId::new);
/// let mut ballot = Ballot::builder()
///     .voter(a, 3.0)
///     .voter(b, 2.0)
///     .voter(c, 2.0)
///     .quorum(0.5)
///     .build()?;
/// ballot.vote(a, Vote::Yes)?;
/// assert!(matches!(ballot.decide(), Decision::NoQuorum(_))); // 3 of 7
/// ballot.vote(b, Vote::No)?;
/// ballot.vote(c, Vote::No)?;
/// let decision = ballot.decide();
/// assert!(matches!(decision, Decision::Rejected(_))); // 3 yes against 4 no
/// assert_eq!(decision.tally().participating(), 7.0);
/// assert!(ballot.vote(a, Vote::No).is_err()); // one vote each
/// # Ok::<(), taskweave::Error>(())
/// ```
///
/// With the `serde` feature a ballot serializes as its voters (weight and
/// vote, in id order), quorum and threshold; deserializing checks them as
/// [`BallotBuilder::build`] does and sums the total weight again rather
/// than trusting a stored one.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "BallotForm", into = "BallotForm"))]
pub struct Ballot {
    voters: BTreeMap<AgentId, Voter>,
    quorum: f64,
    threshold: Threshold,
    total: f64,
}

/// What a [`Ballot`] serializes to: everything but the derived total.
#[cfg(feature = "serde")]
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct BallotForm {
    voters: BTreeMap<AgentId, Voter>,
    quorum: f64,
    threshold: Threshold,
}

#[cfg(feature = "serde")]
impl From<Ballot> for BallotForm {
    fn from(ballot: Ballot) -> Self {
        BallotForm {
            voters: ballot.voters,
            quorum: ballot.quorum,
            threshold: ballot.threshold,
        }
    }
}

#[cfg(feature = "serde")]
impl TryFrom<BallotForm> for Ballot {
    type Error = ConsensusError;

    fn try_from(form: BallotForm) -> Result<Self, ConsensusError> {
        let mut ballot = Ballot::builder()
            .voters(form.voters.iter().map(|(&id, voter)| (id, voter.weight)))
            .quorum(form.quorum)
            .threshold(form.threshold)
            .build()?;
        for (&id, voter) in &form.voters {
            if let Some(vote) = voter.vote {
                ballot.vote(id, vote)?;
            }
        }
        Ok(ballot)
    }
}

impl Ballot {
    /// A builder with no voters, a quorum of `0.5` and a strict-majority
    /// threshold.
    pub fn builder() -> BallotBuilder {
        BallotBuilder {
            voters: Vec::new(),
            quorum: 0.5,
            threshold: Threshold::STRICT_MAJORITY,
        }
    }

    /// Records `voter`'s vote.
    ///
    /// # Errors
    ///
    /// [`ConsensusError::UnknownVoter`] if `voter` is not on the ballot;
    /// [`ConsensusError::DuplicateVote`] if it already voted (the first vote
    /// stands).
    pub fn vote(&mut self, voter: AgentId, vote: Vote) -> Result<(), ConsensusError> {
        let entry = self
            .voters
            .get_mut(&voter)
            .ok_or(ConsensusError::UnknownVoter(voter))?;
        if entry.vote.is_some() {
            return Err(ConsensusError::DuplicateVote(voter));
        }
        entry.vote = Some(vote);
        Ok(())
    }

    /// The current tally. Costs `O(voters)`.
    pub fn tally(&self) -> Tally {
        let mut tally = Tally {
            yes: 0.0,
            no: 0.0,
            abstain: 0.0,
            total: self.total,
            votes: 0,
            voters: self.voters.len(),
        };
        for voter in self.voters.values() {
            let bucket = match voter.vote {
                Some(Vote::Yes) => &mut tally.yes,
                Some(Vote::No) => &mut tally.no,
                Some(Vote::Abstain) => &mut tally.abstain,
                None => continue,
            };
            *bucket += voter.weight;
            tally.votes += 1;
        }
        tally
    }

    /// The decision on the votes cast so far; see [`Ballot`] for the rules.
    /// Costs `O(voters)`.
    pub fn decide(&self) -> Decision {
        let tally = self.tally();
        let quorate = tally
            .participation()
            .is_some_and(|share| share >= self.quorum);
        if !quorate {
            return Decision::NoQuorum(tally);
        }
        match tally.yes_share() {
            Some(share) if self.threshold.passes(share) => Decision::Accepted(tally),
            _ => Decision::Rejected(tally),
        }
    }

    /// The vote `voter` cast, if any.
    pub fn vote_of(&self, voter: AgentId) -> Option<Vote> {
        self.voters.get(&voter).and_then(|v| v.vote)
    }

    /// `voter`'s weight, if it is on the ballot.
    pub fn weight(&self, voter: AgentId) -> Option<f64> {
        self.voters.get(&voter).map(|v| v.weight)
    }

    /// Voters that have not voted yet, in id order.
    pub fn pending(&self) -> impl Iterator<Item = AgentId> + '_ {
        self.voters
            .iter()
            .filter(|(_, v)| v.vote.is_none())
            .map(|(&id, _)| id)
    }

    /// Whether every voter has voted.
    pub fn is_complete(&self) -> bool {
        self.voters.values().all(|v| v.vote.is_some())
    }

    /// The quorum.
    pub fn quorum(&self) -> f64 {
        self.quorum
    }

    /// The acceptance threshold.
    pub fn threshold(&self) -> Threshold {
        self.threshold
    }

    /// Sum of all voters' weights.
    pub fn total_weight(&self) -> f64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::{AgentProfile, Outcome};
    use crate::{Instant, coordination::ConsensusError};
    use std::time::Duration;

    fn id(raw: u64) -> AgentId {
        AgentId::new(raw)
    }

    fn ballot(weights: &[f64], quorum: f64, threshold: Threshold) -> Ballot {
        Ballot::builder()
            .voters(weights.iter().enumerate().map(|(i, &w)| (id(i as u64), w)))
            .quorum(quorum)
            .threshold(threshold)
            .build()
            .unwrap()
    }

    fn cast(ballot: &mut Ballot, votes: &[(u64, Vote)]) {
        for &(voter, vote) in votes {
            ballot.vote(id(voter), vote).unwrap();
        }
    }

    #[test]
    fn weighted_majority_accepts_and_rejects() {
        let mut b = ballot(&[5.0, 1.0, 1.0, 1.0], 0.5, Threshold::default());
        cast(&mut b, &[(0, Vote::Yes), (1, Vote::No), (2, Vote::No)]);
        let decision = b.decide();
        assert!(decision.is_accepted());
        let tally = decision.tally();
        assert_eq!((tally.yes, tally.no, tally.abstain), (5.0, 2.0, 0.0));
        assert_eq!((tally.votes, tally.voters), (3, 4));
        assert_eq!(tally.participation(), Some(7.0 / 8.0));

        let mut b = ballot(&[1.0, 1.0, 5.0], 0.5, Threshold::default());
        cast(&mut b, &[(0, Vote::Yes), (1, Vote::Yes), (2, Vote::No)]);
        assert!(matches!(b.decide(), Decision::Rejected(_)));
    }

    #[test]
    fn an_exact_tie_is_rejected_by_a_strict_majority_but_accepted_at_least_half() {
        for (threshold, accepted) in [
            (Threshold::STRICT_MAJORITY, false),
            (Threshold::AtLeast(0.5), true),
        ] {
            let mut b = ballot(&[2.0, 1.0, 1.0], 0.0, threshold);
            cast(&mut b, &[(0, Vote::Yes), (1, Vote::No), (2, Vote::No)]);
            assert_eq!(b.decide().tally().yes_share(), Some(0.5));
            assert_eq!(b.decide().is_accepted(), accepted, "{threshold:?}");
        }
    }

    #[test]
    fn quorum_exactly_met_counts_and_just_missed_does_not() {
        // Quorum 0.5 of a total of 4: 2 is exactly met, 1.5 misses.
        let mut met = ballot(&[2.0, 1.5, 0.5], 0.5, Threshold::default());
        cast(&mut met, &[(0, Vote::Yes)]);
        assert!(met.decide().is_accepted());
        let mut missed = ballot(&[1.5, 2.0, 0.5], 0.5, Threshold::default());
        cast(&mut missed, &[(0, Vote::Yes)]);
        assert!(matches!(missed.decide(), Decision::NoQuorum(_)));
        // A quorum of 1 needs everyone.
        let mut all = ballot(&[1.0, 1.0], 1.0, Threshold::default());
        cast(&mut all, &[(0, Vote::Yes)]);
        assert!(matches!(all.decide(), Decision::NoQuorum(_)));
        cast(&mut all, &[(1, Vote::Abstain)]);
        assert!(all.decide().is_accepted());
        assert!(all.is_complete());
    }

    #[test]
    fn abstentions_reach_quorum_but_decide_nothing() {
        let mut b = ballot(&[1.0, 1.0, 1.0], 0.5, Threshold::default());
        cast(&mut b, &[(0, Vote::Abstain), (1, Vote::Abstain)]);
        let decision = b.decide();
        assert!(matches!(decision, Decision::Rejected(_)));
        assert_eq!(decision.tally().yes_share(), None);
        cast(&mut b, &[(2, Vote::Yes)]);
        assert!(b.decide().is_accepted());
    }

    #[test]
    fn zero_total_weight_never_reaches_quorum() {
        for weights in [&[][..], &[0.0, 0.0][..]] {
            let mut b = ballot(weights, 0.0, Threshold::AtLeast(0.0));
            if !weights.is_empty() {
                cast(&mut b, &[(0, Vote::Yes), (1, Vote::Yes)]);
            }
            let decision = b.decide();
            assert!(matches!(decision, Decision::NoQuorum(_)));
            assert_eq!(decision.tally().participation(), None);
        }
    }

    #[test]
    fn zero_weight_yes_votes_are_not_decisive() {
        let mut b = ballot(&[0.0, 1.0], 0.5, Threshold::default());
        cast(&mut b, &[(0, Vote::Yes), (1, Vote::Abstain)]);
        assert!(matches!(b.decide(), Decision::Rejected(_)));
    }

    #[test]
    fn quorum_zero_is_met_without_votes_but_nothing_is_accepted() {
        let b = ballot(&[1.0], 0.0, Threshold::default());
        assert!(matches!(b.decide(), Decision::Rejected(_)));
        assert_eq!(b.pending().collect::<Vec<_>>(), [id(0)]);
    }

    #[test]
    fn configuration_errors_are_typed() {
        for quorum in [-0.1, 1.1, f64::NAN] {
            assert!(matches!(
                Ballot::builder().quorum(quorum).build(),
                Err(ConsensusError::InvalidQuorum(_))
            ));
        }
        for threshold in [Threshold::MoreThan(1.5), Threshold::AtLeast(f64::NAN)] {
            assert!(matches!(
                Ballot::builder().threshold(threshold).build(),
                Err(ConsensusError::InvalidThreshold(_))
            ));
        }
        for weight in [-1.0, f64::NAN, f64::INFINITY] {
            assert!(matches!(
                Ballot::builder().voter(id(1), weight).build(),
                Err(ConsensusError::InvalidWeight { voter, .. }) if voter == id(1)
            ));
        }
        assert_eq!(
            Ballot::builder()
                .voter(id(1), 1.0)
                .voter(id(1), 2.0)
                .build(),
            Err(ConsensusError::DuplicateVoter(id(1)))
        );
        assert_eq!(
            Ballot::builder()
                .voter(id(1), f64::MAX)
                .voter(id(2), f64::MAX)
                .build(),
            Err(ConsensusError::WeightOverflow)
        );
    }

    #[test]
    fn vote_errors_are_typed_and_the_first_vote_stands() {
        let mut b = ballot(&[1.0], 0.5, Threshold::default());
        assert_eq!(
            b.vote(id(9), Vote::Yes),
            Err(ConsensusError::UnknownVoter(id(9)))
        );
        b.vote(id(0), Vote::Yes).unwrap();
        assert_eq!(
            b.vote(id(0), Vote::No),
            Err(ConsensusError::DuplicateVote(id(0)))
        );
        assert_eq!(b.vote_of(id(0)), Some(Vote::Yes));
        assert_eq!(b.weight(id(0)), Some(1.0));
        assert_eq!(b.weight(id(9)), None);
        assert_eq!((b.quorum(), b.total_weight()), (0.5, 1.0));
        assert_eq!(b.threshold(), Threshold::STRICT_MAJORITY);
    }

    #[test]
    fn registry_voters_are_weighted_by_their_track_record() {
        let mut registry = Registry::new();
        for raw in [1, 2] {
            let profile = AgentProfile::builder().build().unwrap();
            registry.register(id(raw), profile, Instant::ZERO).unwrap();
        }
        for _ in 0..8 {
            registry
                .record_outcome(id(1), Outcome::success(Duration::ZERO))
                .unwrap();
        }
        let b = Ballot::builder()
            .registry_voters(&registry)
            .build()
            .unwrap();
        assert_eq!(b.weight(id(1)), Some(0.9));
        assert_eq!(b.weight(id(2)), Some(0.5));
    }
}
