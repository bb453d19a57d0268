//! Following the journal and taking over: the loop both the `leader` and
//! the `standby` roles run. A follower restores the latest snapshot, tails
//! the journal, and when the lease has expired takes it with the next
//! epoch, applies whatever the old leader committed last, and leads from
//! exactly the state the journal holds. A leader that finds itself fenced
//! goes back to following.

use std::time::Duration;

use crate::leader::{LeadEnd, LeadOptions, lead};
use crate::replica::Replica;
use crate::store::{Store, StoreError};

/// How often a follower polls the journal and the lease.
const FOLLOW_POLL: Duration = Duration::from_millis(20);

/// Runs a node until a leader it became is shut down.
///
/// `initial`: take the first lease (epoch 0 → 1) as soon as possible; a
/// standby (`false`) waits until it has seen a leader and that leader's
/// lease expires.
///
/// # Errors
///
/// Any store error but [`StoreError::Fenced`], which only sends a leader
/// back to following.
pub(crate) fn run(
    store: &mut Store,
    name: &str,
    initial: bool,
    options: &LeadOptions,
) -> Result<(), StoreError> {
    let mut replica = Replica::restore(store)?;
    eprintln!(
        "{name}: restored up to journal row {}",
        replica.next_seq - 1
    );
    let mut seen_leader = initial;
    loop {
        replica.catch_up(store)?;
        let (epoch, held) = store.lease()?;
        seen_leader |= epoch > 0;
        if !held && seen_leader {
            if let Some(mine) = store.take_lease(epoch, name)? {
                // The old leader is fenced from here on; whatever it
                // committed before is in the journal now.
                replica.catch_up(store)?;
                eprintln!("{name}: took the lease with epoch {mine}");
                match lead(store, &mut replica, mine, options) {
                    Ok(LeadEnd::Shutdown) => return Ok(()),
                    Err(StoreError::Fenced { epoch }) => {
                        eprintln!("{name}: fenced out of epoch {epoch}; following again");
                    }
                    Err(other) => return Err(other),
                }
            }
        }
        std::thread::sleep(FOLLOW_POLL);
    }
}
