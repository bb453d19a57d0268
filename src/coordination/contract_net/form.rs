//! An [`Auction`]'s stored form, checked as it is read: it must be one
//! that [`Auction::open`] and [`Auction::bid`] could have reached.

use std::collections::BTreeMap;

use super::{Announcement, Auction, AuctionOutcome, Bid};
use crate::coordination::AuctionError;
use crate::{AgentId, Instant};

/// The unchecked fields of an [`Auction`], as deserialized.
#[derive(serde::Deserialize)]
pub(super) struct AuctionForm {
    announcement: Announcement,
    bids: BTreeMap<AgentId, Bid>,
    outcome: Option<AuctionOutcome>,
    #[serde(default)]
    latest: Instant,
}

impl TryFrom<AuctionForm> for Auction {
    type Error = AuctionError;

    fn try_from(form: AuctionForm) -> Result<Self, AuctionError> {
        let mut auction = Auction::open(form.announcement)?;
        let call = &auction.announcement;
        for (&agent, bid) in &form.bids {
            if bid.agent != agent {
                return Err(AuctionError::NoBidFrom(agent));
            }
            if !(bid.cost.is_finite() && bid.cost >= 0.0) {
                return Err(AuctionError::InvalidCost {
                    agent,
                    cost: bid.cost,
                });
            }
            if let Some(reserve) = call.reserve.filter(|&reserve| bid.cost > reserve) {
                return Err(AuctionError::AboveReserve {
                    agent,
                    cost: bid.cost,
                    reserve,
                });
            }
            if call
                .invited
                .as_ref()
                .is_some_and(|inv| !inv.contains(&agent))
            {
                return Err(AuctionError::NotInvited(agent));
            }
        }
        if let Some(AuctionOutcome::Awarded(award)) = &form.outcome {
            if !(award.price.is_finite() && award.price >= 0.0) {
                return Err(AuctionError::InvalidCost {
                    agent: award.winner.agent,
                    cost: award.price,
                });
            }
        }
        auction.bids = form.bids;
        auction.outcome = form.outcome;
        auction.latest = form.latest;
        Ok(auction)
    }
}
