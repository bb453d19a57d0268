//! [`check_store_races`]: the store contract under concurrency. Two or
//! more connections send operations on the same rows at once — leaders
//! taking one lease, a leader's commit and its copy at one position,
//! claims of one agent's rows by two of its lives and by one life many
//! times — and every outcome must be one the contract allows, whatever
//! the interleaving.
//!
//! The library does no I/O and starts no thread: the host runs each
//! race's operations at once, one per connection, through the `race`
//! callback, and hands the answers back. A store without connections of
//! its own (the in-memory store) runs them one after another, in any
//! order.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::scheduler::Input;
use crate::{AgentId, AttemptToken, Instant, TaskId};

use super::contract::{
    AgentOp, AgentReply, Assignment, ClientOp, ClientReply, Entry, NodeOp, NodeReply, Outputs,
    Store, StoreFailure,
};

/// One operation of a race, for whichever role sends it.
#[derive(Clone, Debug)]
pub enum StoreCall {
    /// A node's operation (boxed: it is the largest by far).
    Node(Box<NodeOp<String>>),
    /// An agent's operation.
    Agent(AgentOp<String>),
    /// A client's operation.
    Client(ClientOp<String>),
}

/// The store's answer to a [`StoreCall`].
#[derive(Clone, Debug)]
pub enum StoreAnswer {
    /// To a node's operation.
    Node(Result<NodeReply<String>, StoreFailure>),
    /// To an agent's operation.
    Agent(Result<AgentReply<String>, StoreFailure>),
    /// To a client's operation (boxed: a status is large).
    Client(Box<Result<ClientReply<String>, StoreFailure>>),
}

impl StoreCall {
    /// Sends the call to `store`.
    pub fn send<S: Store<String> + ?Sized>(self, store: &mut S, now: Instant) -> StoreAnswer {
        match self {
            StoreCall::Node(op) => StoreAnswer::Node(store.node(*op, now)),
            StoreCall::Agent(op) => StoreAnswer::Agent(store.agent(op, now)),
            StoreCall::Client(op) => StoreAnswer::Client(Box::new(store.client(op, now))),
        }
    }
}

/// The lease the racing leaders hold between races.
const TTL: Duration = Duration::from_secs(30);
/// The lease a racing take asks for; short, so the next round finds it
/// expired.
const SHORT: Duration = Duration::from_millis(50);
/// Ready rows the claim race offers.
const ROWS: u64 = 12;

/// Runs the store's races `rounds` times each on a fresh store that
/// every role may use, with `connections` (at least 2) racing. `race`
/// sends the calls at once, the i-th on the i-th connection, and answers
/// in the same order; `clock(d)` lets `d` pass and answers the current
/// instant. Answers how many checks passed.
///
/// The races:
/// * **the lease**: every connection takes the expired lease at the epoch
///   it saw: exactly one wins, with the next epoch (rule 2);
/// * **a commit and its copies** at one position, under one epoch: exactly
///   one lands, the others are a conflict, and the journal holds the
///   entry once (rules 1 and 3);
/// * **claims**: one agent's rows, assigned to its newer life, are claimed
///   by both lives at once and by the newer one many times: the older
///   life gets none, no row is answered to two claims as fresh, and a
///   claim afterwards answers every row once (rule 5).
///
/// # Errors
///
/// The first race whose outcome the contract does not allow, in words,
/// with the answers.
pub fn check_store_races<S: Store<String> + ?Sized>(
    store: &mut S,
    connections: usize,
    rounds: usize,
    clock: &mut dyn FnMut(Duration) -> Instant,
    race: &mut dyn FnMut(Vec<StoreCall>, Instant) -> Vec<StoreAnswer>,
) -> Result<usize, String> {
    if connections < 2 {
        return Err(format!(
            "a race needs two connections or more, not {connections}"
        ));
    }
    let mut passed = 0;
    let mut epoch = 0;
    for round in 0..rounds {
        epoch = lease_race(store, connections, clock, race, epoch)
            .map_err(|e| format!("round {round}, the lease: {e}"))?;
        passed += 1;
        commit_race(store, connections, clock, race, epoch)
            .map_err(|e| format!("round {round}, a commit and its copies: {e}"))?;
        passed += 1;
        claim_race(store, connections, clock, race, epoch, round as u64)
            .map_err(|e| format!("round {round}, claims: {e}"))?;
        passed += 1;
        // The next round's take finds the lease expired.
        let now = clock(Duration::ZERO);
        let short = NodeOp::Renew { epoch, ttl: SHORT };
        expect_done(store.node(short, now), "a renewal")?;
        clock(SHORT * 2);
    }
    Ok(passed)
}

/// Every connection takes the expired lease at once; answers the new
/// epoch.
fn lease_race<S: Store<String> + ?Sized>(
    store: &mut S,
    connections: usize,
    clock: &mut dyn FnMut(Duration) -> Instant,
    race: &mut dyn FnMut(Vec<StoreCall>, Instant) -> Vec<StoreAnswer>,
    seen: u64,
) -> Result<u64, String> {
    let calls = (0..connections)
        .map(|i| {
            StoreCall::Node(Box::new(NodeOp::TakeLease {
                seen,
                holder: format!("racer-{i}"),
                ttl: TTL,
            }))
        })
        .collect();
    let answers = race(calls, clock(Duration::ZERO));
    let won: Vec<u64> = answers
        .iter()
        .filter_map(|a| match a {
            StoreAnswer::Node(Ok(NodeReply::Taken { epoch })) => Some(*epoch),
            _ => None,
        })
        .collect();
    let lost_fairly = answers.iter().all(|a| {
        matches!(
            a,
            StoreAnswer::Node(Ok(NodeReply::Taken { .. } | NodeReply::Lease(_)))
        )
    });
    if won != [seen + 1] || !lost_fairly {
        return Err(format!(
            "{connections} takes of the lease at epoch {seen}: expected one winner with epoch {}, got {answers:?}",
            seen + 1
        ));
    }
    match store.node(NodeOp::ReadLease, clock(Duration::ZERO)) {
        Ok(NodeReply::Lease(lease))
            if lease.epoch == seen + 1 && lease.held && lease.holder.starts_with("racer-") =>
        {
            Ok(seen + 1)
        }
        other => Err(format!(
            "after the race for epoch {}, the lease reads {other:?}",
            seen + 1
        )),
    }
}

/// A commit and its copies at one position: one lands.
fn commit_race<S: Store<String> + ?Sized>(
    store: &mut S,
    connections: usize,
    clock: &mut dyn FnMut(Duration) -> Instant,
    race: &mut dyn FnMut(Vec<StoreCall>, Instant) -> Vec<StoreAnswer>,
    epoch: u64,
) -> Result<(), String> {
    let now = clock(Duration::ZERO);
    let next = next_seq(store, now)?;
    let entry = Entry::Input(Input::HandleTimeout {
        now: Instant::from_secs(next),
    });
    let commit = NodeOp::Commit {
        epoch,
        ttl: TTL,
        first_seq: next,
        entries: vec![entry],
        consumed: Vec::new(),
        outputs: Outputs::default(),
    };
    let calls = (0..connections)
        .map(|_| StoreCall::Node(Box::new(commit.clone())))
        .collect();
    let answers = race(calls, now);
    let landed = answers
        .iter()
        .filter(|a| matches!(a, StoreAnswer::Node(Ok(NodeReply::Done))))
        .count();
    let conflicts = answers
        .iter()
        .filter(|a| matches!(a, StoreAnswer::Node(Err(StoreFailure::Conflict { .. }))))
        .count();
    if landed != 1 || conflicts != connections - 1 {
        return Err(format!(
            "{connections} copies of the commit at entry {next}: expected one to land and the rest to conflict, got {answers:?}"
        ));
    }
    let after = next_seq(store, clock(Duration::ZERO))?;
    if after != next + 1 {
        return Err(format!(
            "after the commit at entry {next}, the journal's next entry is {after}"
        ));
    }
    Ok(())
}

/// Both lives of an agent, and the newer many times, claim its rows.
fn claim_race<S: Store<String> + ?Sized>(
    store: &mut S,
    connections: usize,
    clock: &mut dyn FnMut(Duration) -> Instant,
    race: &mut dyn FnMut(Vec<StoreCall>, Instant) -> Vec<StoreAnswer>,
    epoch: u64,
    round: u64,
) -> Result<(), String> {
    let now = clock(Duration::ZERO);
    // A new agent each round, with rows of its own.
    let agent = AgentId::new(1_000 + round);
    let mut incarnate = || match store.agent(AgentOp::Incarnate { agent }, now) {
        Ok(AgentReply::Incarnation(n)) => Ok(n),
        other => Err(format!("an incarnation was asked for: {other:?}")),
    };
    let (old, new) = (incarnate()?, incarnate()?);
    let next = next_seq(store, now)?;
    let first_task = 10_000 * (round + 1);
    let assign = (0..ROWS)
        .map(|i| Assignment {
            task: TaskId::new(first_task + i),
            agent,
            token: AttemptToken::new(first_task + i),
            attempt: 1,
            incarnation: new,
            payload: format!("row {i}"),
        })
        .collect();
    let commit = NodeOp::Commit {
        epoch,
        ttl: TTL,
        first_seq: next,
        entries: vec![Entry::Input(Input::HandleTimeout {
            now: Instant::from_secs(next),
        })],
        consumed: Vec::new(),
        outputs: Outputs {
            assign,
            ..Outputs::default()
        },
    };
    expect_done(store.node(commit, now), "the commit of the rows")?;
    let claim = |incarnation| {
        StoreCall::Agent(AgentOp::Claim {
            agent,
            incarnation,
            limit: 4,
        })
    };
    let calls: Vec<StoreCall> = (0..connections)
        .map(|i| claim(if i == 0 { old } else { new }))
        .collect();
    let answers = race(calls, now);
    let mut claimed = BTreeSet::new();
    for (i, answer) in answers.iter().enumerate() {
        let StoreAnswer::Agent(Ok(AgentReply::Claimed { rows, .. })) = answer else {
            return Err(format!("claim {i} answered {answer:?}"));
        };
        if i == 0 && !rows.is_empty() {
            return Err(format!(
                "the older life claimed rows assigned to the newer: {rows:?}"
            ));
        }
        for row in rows {
            if row.agent != agent || row.incarnation != new {
                return Err(format!("claim {i} answered a row not its own: {row:?}"));
            }
            claimed.insert(row.token);
        }
    }
    // Every row claimed is held by the newer life, once.
    let held = match store.agent(
        AgentOp::Claim {
            agent,
            incarnation: new,
            limit: 0,
        },
        now,
    ) {
        Ok(AgentReply::Claimed { rows, .. }) => rows,
        other => return Err(format!("a claim afterwards answered {other:?}")),
    };
    let tokens: Vec<AttemptToken> = held.iter().map(|r| r.token).collect();
    let distinct: BTreeSet<AttemptToken> = tokens.iter().copied().collect();
    if distinct.len() != tokens.len() || distinct != claimed {
        return Err(format!(
            "the racers claimed {claimed:?}, a claim afterwards holds {tokens:?}"
        ));
    }
    if claimed.is_empty() {
        return Err(format!(
            "{connections} claims took none of {ROWS} ready rows"
        ));
    }
    Ok(())
}

/// The journal's next position.
fn next_seq<S: Store<String> + ?Sized>(store: &mut S, now: Instant) -> Result<u64, String> {
    let mut from = 1;
    loop {
        match store.node(NodeOp::ReadJournal { from, limit: 1_000 }, now) {
            Ok(NodeReply::Journal(rows)) => match rows.last() {
                Some(last) => from = last.seq + 1,
                None => return Ok(from),
            },
            other => return Err(format!("reading the journal answered {other:?}")),
        }
    }
}

fn expect_done(answer: Result<NodeReply<String>, StoreFailure>, what: &str) -> Result<(), String> {
    match answer {
        Ok(NodeReply::Done) => Ok(()),
        other => Err(format!("{what} answered {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::cluster::MemStore;

    /// The in-memory store runs each race's calls one after another, in
    /// order and in reverse on alternate races.
    #[test]
    fn the_in_memory_store_wins_every_race() {
        let store = RefCell::new(MemStore::<String>::new());
        let mut time = Instant::ZERO;
        let mut clock = |d: Duration| {
            time = time.saturating_add(d);
            time
        };
        let mut flip = false;
        let mut race = |calls: Vec<StoreCall>, now: Instant| {
            flip = !flip;
            let mut indexed: Vec<(usize, StoreCall)> = calls.into_iter().enumerate().collect();
            if flip {
                indexed.reverse();
            }
            let mut answers: Vec<(usize, StoreAnswer)> = indexed
                .into_iter()
                .map(|(i, call)| (i, call.send(&mut *store.borrow_mut(), now)))
                .collect();
            answers.sort_by_key(|(i, _)| *i);
            answers.into_iter().map(|(_, a)| a).collect()
        };
        let mut shared = Shared(&store);
        let passed = check_store_races(&mut shared, 3, 4, &mut clock, &mut race);
        assert_eq!(passed, Ok(3 * 4), "{passed:?}");
    }

    #[test]
    fn fewer_than_two_connections_are_refused() {
        let mut store = MemStore::<String>::new();
        let mut clock = |_| Instant::ZERO;
        let mut race = |_: Vec<StoreCall>, _| Vec::new();
        let refused = check_store_races(&mut store, 1, 1, &mut clock, &mut race);
        assert!(refused.is_err_and(|e| e.contains("two connections")));
    }

    /// A store that borrows the shared in-memory store per call.
    struct Shared<'a>(&'a RefCell<MemStore<String>>);

    impl Store<String> for Shared<'_> {
        fn node(
            &mut self,
            op: NodeOp<String>,
            now: Instant,
        ) -> Result<NodeReply<String>, StoreFailure> {
            self.0.borrow_mut().node(op, now)
        }

        fn agent(
            &mut self,
            op: AgentOp<String>,
            now: Instant,
        ) -> Result<AgentReply<String>, StoreFailure> {
            self.0.borrow_mut().agent(op, now)
        }

        fn client(
            &mut self,
            op: ClientOp<String>,
            now: Instant,
        ) -> Result<ClientReply<String>, StoreFailure> {
            self.0.borrow_mut().client(op, now)
        }
    }
}
