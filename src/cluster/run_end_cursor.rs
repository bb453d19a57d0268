//! [`RunEndCursor`]: a client's place in the stream of hosted runs' ends,
//! so that it reads each end once instead of asking after every open run.

use crate::WorkflowId;

/// The most run ends one [`ClientOp::RunEndsAfter`](super::ClientOp::RunEndsAfter)
/// answers; a larger `limit` is read as this one.
pub const MAX_RUN_ENDS_PAGE: usize = 10_000;

/// A place in the hosted runs' ends, ordered as the journal ended them:
/// by the sequence number of the commit's last entry, then by run id.
///
/// A client starts at [`RunEndCursor::START`], reads a page with
/// [`ClientOp::RunEndsAfter`](super::ClientOp::RunEndsAfter), and passes
/// the cursor of the page's last end to read the next: every end a commit
/// published is read once, in journal order, whatever the page size. A
/// cursor is data (`serde`), so a client may keep it across restarts. A
/// store keeps a run's end while the leader's engine remembers the run
/// (its retention) or the journal holds the entry that ended it (rule 8);
/// an end forgotten before a client read it is not answered, and
/// [`ClientOp::Runs`](super::ClientOp::Runs) answers `None` for it too.
///
/// ```
/// use taskweave::WorkflowId;
/// use taskweave::cluster::RunEndCursor;
///
/// let first = RunEndCursor::new(7, WorkflowId::new(3));
/// assert!(RunEndCursor::START < first);
/// assert!(first < RunEndCursor::new(7, WorkflowId::new(4)));
/// assert!(RunEndCursor::new(7, WorkflowId::new(4)) < RunEndCursor::new(8, WorkflowId::new(1)));
/// ```
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct RunEndCursor {
    seq: u64,
    run: WorkflowId,
}

impl RunEndCursor {
    /// Before every end.
    pub const START: Self = RunEndCursor {
        seq: 0,
        run: WorkflowId::new(0),
    };

    /// The place of `run`'s end, published by the commit whose last entry
    /// is `seq`.
    pub const fn new(seq: u64, run: WorkflowId) -> Self {
        RunEndCursor { seq, run }
    }

    /// The sequence number of the commit that published the end.
    pub const fn seq(self) -> u64 {
        self.seq
    }

    /// The run whose end this is.
    pub const fn run(self) -> WorkflowId {
        self.run
    }
}

impl Default for RunEndCursor {
    fn default() -> Self {
        RunEndCursor::START
    }
}
