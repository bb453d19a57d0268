//! A leader whose commit answer was lost (`StoreFailure::Unknown`) reads
//! the commit's first entry back: found under its epoch, it leads on
//! without rebuilding; not found, it rebuilds; and while an earlier lost
//! commit may still land, an entry of its epoch proves nothing.

#![cfg(feature = "cluster")]

use std::time::Duration;

use taskweave::Instant;
use taskweave::cluster::{
    ClientOp, ClientReply, MemStore, Message, Node, NodeConfig, NodeOp, NodeReply, Role, Store,
    StoreFailure,
};
use taskweave::scheduler::{DispatcherConfig, TaskSpec};

fn lost() -> StoreFailure {
    StoreFailure::Unknown {
        cause: "test: the answer was lost".into(),
    }
}

struct Host {
    store: MemStore<u32>,
    node: Node<u32>,
    now: Instant,
}

impl Host {
    fn new() -> Self {
        let dispatcher = DispatcherConfig::builder()
            .heartbeats(Duration::from_millis(250), 8)
            .build()
            .unwrap();
        let config = NodeConfig::builder("a").build().unwrap();
        Host {
            store: MemStore::new(),
            node: Node::new(config, dispatcher).unwrap(),
            now: Instant::from_secs(1),
        }
    }

    fn submit(&mut self, n: u32) {
        let specs = (0..n).map(TaskSpec::new).collect();
        let posted = self
            .store
            .client(ClientOp::Post(vec![Message::Submit(specs)]), self.now);
        assert!(matches!(posted, Ok(ClientReply::Posted(_))), "{posted:?}");
    }

    /// The node's next operation, moving time on until it has one.
    fn next_op(&mut self) -> NodeOp<u32> {
        for _ in 0..10_000 {
            if let Some(op) = self.node.poll_op(self.now) {
                return op;
            }
            self.now = self.now.saturating_add(Duration::from_millis(1));
        }
        panic!("the node sent nothing for 10 s");
    }

    /// Runs operations on the store until the node sends a commit with
    /// entries, which it returns unexecuted.
    fn until_dirty_commit(&mut self) -> NodeOp<u32> {
        for _ in 0..1_000 {
            let op = self.next_op();
            if matches!(&op, NodeOp::Commit { entries, .. } if !entries.is_empty()) {
                return op;
            }
            let reply = self.store.node(op, self.now);
            self.node.handle_reply(reply, self.now);
        }
        panic!("no commit with entries in 1,000 operations");
    }

    /// The journal's last entry.
    fn journal_end(&mut self) -> u64 {
        match self.store.node(
            NodeOp::ReadJournal {
                from: 1,
                limit: 1_000,
            },
            self.now,
        ) {
            Ok(NodeReply::Journal(rows)) => rows.last().map_or(0, |r| r.seq),
            other => panic!("{other:?}"),
        }
    }
}

fn first_seq(op: &NodeOp<u32>) -> u64 {
    match op {
        NodeOp::Commit { first_seq, .. } => *first_seq,
        other => panic!("not a commit: {other:?}"),
    }
}

/// The node answers the read-back of the commit at `seq` and says what it
/// sent next.
fn read_back(host: &mut Host, seq: u64) -> NodeOp<u32> {
    let op = host.next_op();
    assert!(
        matches!(op, NodeOp::ReadJournal { from, limit: 1 } if from == seq),
        "expected the read-back of entry {seq}, got {op:?}"
    );
    let reply = host.store.node(op, host.now);
    host.node.handle_reply(reply, host.now);
    host.next_op()
}

#[test]
fn a_commit_that_landed_is_confirmed_without_rebuilding() {
    let mut host = Host::new();
    host.submit(3);
    let commit = host.until_dirty_commit();
    let seq = first_seq(&commit);
    let landed = host.store.node(commit, host.now);
    assert!(matches!(landed, Ok(NodeReply::Done)), "{landed:?}");
    host.node.handle_reply(Err(lost()), host.now);
    let next = read_back(&mut host, seq);
    assert!(
        !matches!(next, NodeOp::LatestSnapshot),
        "the leader rebuilt although its commit landed"
    );
    assert!(matches!(host.node.role(), Role::Leading { epoch: 1 }));
    assert_eq!(host.node.applied(), host.journal_end());
}

/// A leader's first commit, lost without landing and read back: the
/// commit, and what the node sent next (the start of its rebuild).
fn lost_unlanded(host: &mut Host) -> (NodeOp<u32>, NodeOp<u32>) {
    host.submit(3);
    let commit = host.until_dirty_commit();
    let seq = first_seq(&commit);
    host.node.handle_reply(Err(lost()), host.now);
    let next = read_back(host, seq);
    assert!(matches!(next, NodeOp::LatestSnapshot), "{next:?}");
    (commit, next)
}

#[test]
fn a_commit_that_did_not_land_is_rebuilt() {
    let mut host = Host::new();
    let _ = lost_unlanded(&mut host);
    assert_eq!(host.node.role(), Role::Starting);
}

/// A commit lost without landing may land later (a server still finishing
/// it). Then the entry at a later commit's place, under the same epoch,
/// may be the old commit's: the leader must rebuild, not trust it.
#[test]
fn an_entry_of_its_epoch_proves_nothing_while_an_older_commit_is_in_doubt() {
    let mut host = Host::new();
    let (old, next) = lost_unlanded(&mut host);
    let seq = first_seq(&old);
    let reply = host.store.node(next, host.now);
    host.node.handle_reply(reply, host.now);

    // Rebuilt and leading again, it commits the same messages anew; the
    // old commit lands first and this one's answer is lost.
    let new = host.until_dirty_commit();
    assert_eq!(first_seq(&new), seq);
    let landed = host.store.node(old, host.now);
    assert!(matches!(landed, Ok(NodeReply::Done)), "{landed:?}");
    host.node.handle_reply(Err(lost()), host.now);
    let next = read_back(&mut host, seq);
    assert!(
        matches!(next, NodeOp::LatestSnapshot),
        "trusted an entry an older commit may have written: {next:?}"
    );
    // Once rebuilt, it leads from the journal as it is.
    let reply = host.store.node(next, host.now);
    host.node.handle_reply(reply, host.now);
    host.submit(1);
    let after = host.until_dirty_commit();
    assert_eq!(first_seq(&after), host.journal_end() + 1);
    assert_eq!(host.node.applied(), host.journal_end() + 1);
}
