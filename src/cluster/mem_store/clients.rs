//! What [`MemStore`]'s clients read and post: verdicts, outcomes (each
//! confined to its tenant's clients), run ends, and client messages.

use crate::{Instant, TaskId, TenantId};

use super::super::contract::{
    ClientOp, ClientReply, Message, MessageId, Outcome, RunEnd, Sender, Verdict,
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

    /// How `tasks` ended, as `tenant`'s client reads them
    /// ([`ClientOp::Outcomes`] for a store that maps a connection to a
    /// tenant): the ends of that tenant's tasks alone, `None` for every
    /// other task, as for a task never submitted.
    pub fn outcomes_as_tenant(
        &self,
        tenant: TenantId,
        tasks: &[TaskId],
    ) -> Vec<Option<Outcome<P>>> {
        self.outcomes_for(Some(tenant), tasks)
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

    /// Posts `messages` as `tenant`'s client ([`Sender::Tenant`]), as a
    /// store that maps a connection to a tenant would; their ids, in
    /// order.
    pub fn post_as_tenant(
        &mut self,
        tenant: TenantId,
        messages: Vec<Message<P>>,
    ) -> Vec<MessageId> {
        self.post(Sender::Tenant(tenant), messages)
    }

    /// The verdict of message `id`, once consumed.
    pub fn verdict(&self, id: MessageId) -> Option<&Verdict> {
        self.inbox.get(&id)?.verdict.as_ref()
    }

    /// The kept run ends after `after`, in cursor order, at most `limit`
    /// (and [`MAX_RUN_ENDS_PAGE`]). O(r log r) in the ends kept: a test
    /// store's simplicity, not a model for a real one (PostgreSQL reads an
    /// index on the sequence number).
    fn run_ends_after(&self, after: RunEndCursor, limit: usize) -> Vec<(RunEndCursor, RunEnd<P>)> {
        let mut later: Vec<(RunEndCursor, RunEnd<P>)> = self
            .runs
            .iter()
            .map(|(&run, (seq, end))| (RunEndCursor::new(*seq, run), end))
            .filter(|(place, _)| *place > after)
            .map(|(place, end)| (place, end.clone()))
            .collect();
        later.sort_unstable_by_key(|(place, _)| *place);
        later.truncate(limit.min(MAX_RUN_ENDS_PAGE));
        later
    }

    /// A client's operation, as a client acting for no tenant.
    pub(super) fn run_client(&mut self, op: ClientOp<P>, now: Instant) -> ClientReply<P> {
        match op {
            ClientOp::Post(messages) => ClientReply::Posted(self.post(Sender::Client, messages)),
            ClientOp::Verdicts(ids) => ClientReply::Verdicts(
                ids.iter()
                    .map(|id| self.inbox.get(id).and_then(|r| r.verdict.clone()))
                    .collect(),
            ),
            ClientOp::Status => ClientReply::Status(self.lease(now), self.status.clone()),
            // A client acting for no tenant reads the ends of tasks
            // without one.
            ClientOp::Outcomes(tasks) => ClientReply::Outcomes(self.outcomes_for(None, &tasks)),
            ClientOp::Runs(runs) => ClientReply::Runs(
                runs.iter()
                    .map(|run| self.runs.get(run).map(|(_, end)| end.clone()))
                    .collect(),
            ),
            ClientOp::RunEndsAfter { after, limit } => {
                ClientReply::RunEndsAfter(self.run_ends_after(after, limit))
            }
        }
    }
}
