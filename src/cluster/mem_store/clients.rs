//! What [`MemStore`]'s clients read and post: verdicts, outcomes and run
//! ends (each confined to its tenant's clients), and client messages.

use crate::{Instant, TaskId, TenantId};

use super::super::contract::{
    ClientOp, ClientReply, MessageId, Outcome, RunEnd, Sender, StoreFailure, Verdict,
};
use super::super::run_end_cursor::{MAX_RUN_ENDS_PAGE, RunEndCursor};
use super::MemStore;

impl<P: Clone> MemStore<P> {
    /// How `task` ended, as a client reads it, the entry that ended it
    /// and its tenant; `None` before its end is published (or after it
    /// was trimmed).
    pub(crate) fn outcome(&self, task: TaskId) -> Option<&(u64, Option<TenantId>, Outcome<P>)> {
        self.outcomes.get(&task)
    }

    /// A client's operation as `tenant`'s client ([`Sender::Tenant`]), as
    /// a store that maps a connection to a tenant would (PostgreSQL maps a
    /// submitter login): it posts as the tenant, and reads the verdicts of
    /// its own posts and the outcomes and run ends of the tenant's tasks
    /// and runs alone; another's read as never submitted.
    /// [`Store::client`](super::super::Store::client) is a client of no
    /// tenant's, confined the same way to what no tenant owns.
    ///
    /// # Errors
    ///
    /// As [`Store::client`](super::super::Store::client): the failure
    /// [`fail_next`](MemStore::fail_next) set up.
    pub fn tenant_client(
        &mut self,
        tenant: TenantId,
        op: ClientOp<P>,
        now: Instant,
    ) -> Result<ClientReply<P>, StoreFailure> {
        self.guarded(|store| Ok(store.run_client(Sender::Tenant(tenant), op, now)))
    }

    /// The ends of `tasks` that `tenant`'s clients may read.
    fn outcomes_for(&self, tenant: Option<TenantId>, tasks: &[TaskId]) -> Vec<Option<Outcome<P>>> {
        tasks
            .iter()
            .map(|task| match self.outcomes.get(task) {
                Some((_, of, outcome)) if *of == tenant => Some(outcome.clone()),
                _ => None,
            })
            .collect()
    }

    /// The verdict of message `id`, once consumed.
    pub fn verdict(&self, id: MessageId) -> Option<&Verdict> {
        self.inbox.get(&id)?.verdict.as_ref()
    }

    /// The kept run ends after `after`, in cursor order, at most `limit`
    /// (and [`MAX_RUN_ENDS_PAGE`]). O(r log r) in the ends kept: a test
    /// store's simplicity, not a model for a real one (PostgreSQL reads an
    /// index on the sequence number).
    fn run_ends_after(
        &self,
        tenant: Option<TenantId>,
        after: RunEndCursor,
        limit: usize,
    ) -> Vec<(RunEndCursor, RunEnd<P>)> {
        let mut later: Vec<(RunEndCursor, RunEnd<P>)> = self
            .runs
            .iter()
            .map(|(&run, (seq, end))| (RunEndCursor::new(*seq, run), end))
            .filter(|(place, end)| *place > after && end.tenant == tenant)
            .map(|(place, end)| (place, end.clone()))
            .collect();
        later.sort_unstable_by_key(|(place, _)| *place);
        later.truncate(limit.min(MAX_RUN_ENDS_PAGE));
        later
    }

    /// A client's operation, as `sender` (a client of a tenant or of
    /// none): it reads what that sender owns alone.
    pub(super) fn run_client(
        &mut self,
        sender: Sender,
        op: ClientOp<P>,
        now: Instant,
    ) -> ClientReply<P> {
        let tenant = sender.tenant();
        match op {
            ClientOp::Post(messages) => ClientReply::Posted(self.post(sender, messages)),
            ClientOp::Verdicts(ids) => ClientReply::Verdicts(
                ids.iter()
                    .map(|id| match self.inbox.get(id) {
                        Some(row) if row.sender == sender => row.verdict.clone(),
                        _ => None,
                    })
                    .collect(),
            ),
            ClientOp::Status => ClientReply::Status(self.lease(now), self.status.clone()),
            ClientOp::Outcomes(tasks) => ClientReply::Outcomes(self.outcomes_for(tenant, &tasks)),
            ClientOp::Runs(runs) => ClientReply::Runs(
                runs.iter()
                    .map(|run| match self.runs.get(run) {
                        Some((_, end)) if end.tenant == tenant => Some(end.clone()),
                        _ => None,
                    })
                    .collect(),
            ),
            ClientOp::RunEndsAfter { after, limit } => {
                ClientReply::RunEndsAfter(self.run_ends_after(tenant, after, limit))
            }
        }
    }
}
