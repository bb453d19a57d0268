//! The store contract's checks of a stop: only the leader's epoch stops
//! the cluster, the lease says so, and agents learn it.

use crate::Instant;
use crate::agent::AgentProfile;

use super::super::contract::{
    AgentOp, AgentReply, Message, NodeOp, NodeReply, Sender, Store, StoreFailure,
};
use super::{Checks, empty_state};

/// Runs the stop's checks on a store whose lease epoch 2 holds, epoch 1
/// deposed, at `later`; `sender` is an agent that registered.
pub(super) fn check_stopping<S: Store<String>>(
    store: &mut S,
    checks: &mut Checks,
    sender: Sender,
    later: Instant,
) -> Result<(), String> {
    let profile = AgentProfile::builder().build().map_err(|e| e.to_string())?;
    let stop = store.node(
        NodeOp::Stop {
            epoch: 1,
            seq: 4,
            snapshot: empty_state(),
        },
        later,
    );
    checks.is("a deposed epoch cannot stop the cluster", &stop, |r| {
        matches!(r, Err(StoreFailure::Fenced { .. }))
    })?;
    let stop = store.node(
        NodeOp::Stop {
            epoch: 2,
            seq: 4,
            snapshot: empty_state(),
        },
        later,
    );
    checks.is("the leader stops the cluster", &stop, |r| {
        matches!(r, Ok(NodeReply::Done))
    })?;
    let lease = store.node(NodeOp::ReadLease, later);
    checks.is(
        "a stopped cluster's lease says so",
        &lease,
        |r| matches!(r, Ok(NodeReply::Lease(l)) if l.stopped),
    )?;
    let posted = store.agent(
        AgentOp::Post {
            sender,
            messages: vec![Message::Register { profile }],
        },
        later,
    );
    checks.that(
        "an agent learns that the cluster stopped",
        matches!(posted, Ok(AgentReply::Posted { stopped: true })),
    )?;
    Ok(())
}
