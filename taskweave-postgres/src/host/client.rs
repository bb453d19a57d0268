//! [`PgClient`]: submits, cancels, drains, and reads verdicts, status and
//! task outcomes.

use std::time::{Duration, Instant as WallInstant};

use serde::Serialize;
use serde::de::DeserializeOwned;
use taskweave::cluster::{
    ClientOp, ClientReply, Lease, Message, MessageId, Outcome, Redrive, RunCommand, RunEnd,
    RunEndCursor, Status, Store, StoreFailure, Verdict,
};
use taskweave::scheduler::TaskSpec;
use taskweave::{TaskId, WorkflowId};

use super::wall_now;
use crate::{PgError, PgStore};

/// A client of the cluster. Its messages go to the leader's inbox; each
/// gets a verdict once the leader journaled it.
///
/// Submitting two tasks, reading the ids the leader gave them and waiting
/// for their outcomes:
///
/// ```no_run
/// use std::time::Duration;
///
/// use taskweave::TaskId;
/// use taskweave::cluster::Verdict;
/// use taskweave::scheduler::TaskSpec;
/// use taskweave_postgres::PgClient;
///
/// let db = "host=127.0.0.1 port=5432 user=sub dbname=postgres";
/// let mut client = PgClient::<u32>::connect(db)?;
/// let message = client.submit(vec![TaskSpec::new(20), TaskSpec::new(21)])?;
/// let verdict = client.wait_verdicts(&[message], Duration::from_secs(30))?;
/// let Some(Some(Verdict::Submitted(ids))) = verdict.into_iter().next() else {
///     return Err("no verdict within 30 s: is a node running?".into());
/// };
/// let tasks = ids.into_iter().collect::<Result<Vec<TaskId>, String>>()?;
/// for (task, outcome) in tasks.iter().zip(client.wait_outcomes(&tasks, Duration::from_secs(30))?) {
///     match outcome {
///         Some(outcome) => println!("{task}: {}, output {:?}", outcome.end, outcome.output),
///         None => println!("{task}: still running"),
///     }
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct PgClient<P> {
    store: PgStore<P>,
}

impl<P: Clone + Serialize + DeserializeOwned> PgClient<P> {
    /// Connects to `conninfo`.
    ///
    /// # Errors
    ///
    /// [`PgError`], with its cause and remedy.
    pub fn connect(conninfo: &str) -> Result<Self, PgError> {
        Ok(PgClient {
            store: PgStore::connect(conninfo)?,
        })
    }

    fn post(&mut self, messages: Vec<Message<P>>) -> Result<Vec<MessageId>, StoreFailure> {
        match self.store.client(ClientOp::Post(messages), wall_now())? {
            ClientReply::Posted(ids) => Ok(ids),
            other => Err(unrelated(&other)),
        }
    }

    /// Submits tasks in one message; answers its id.
    ///
    /// # Errors
    ///
    /// The store's [`StoreFailure`].
    pub fn submit(&mut self, specs: Vec<TaskSpec<P>>) -> Result<MessageId, StoreFailure> {
        self.post(vec![Message::Submit(specs)]).map(first_id)
    }

    /// Submits many messages of tasks at once; answers their ids.
    ///
    /// # Errors
    ///
    /// The store's [`StoreFailure`].
    pub fn submit_many(
        &mut self,
        batches: Vec<Vec<TaskSpec<P>>>,
    ) -> Result<Vec<MessageId>, StoreFailure> {
        self.post(batches.into_iter().map(Message::Submit).collect())
    }

    /// Asks the leader to cancel `task`.
    ///
    /// # Errors
    ///
    /// The store's [`StoreFailure`].
    pub fn cancel(&mut self, task: TaskId) -> Result<MessageId, StoreFailure> {
        self.post(vec![Message::Cancel(task)]).map(first_id)
    }

    /// Drains the cluster: no more submissions; once the work in flight is
    /// done every node and agent stops.
    ///
    /// # Errors
    ///
    /// The store's [`StoreFailure`] (a submitter's login may not drain).
    pub fn drain(&mut self) -> Result<MessageId, StoreFailure> {
        self.post(vec![Message::Drain]).map(first_id)
    }

    /// Sends dead letters back to the queue: one task's letter
    /// ([`Redrive::Task`]) or every letter a filter matches
    /// ([`Redrive::Matching`]). Each becomes a new task; the message's
    /// verdict, [`Verdict::Redriven`], pairs each old id with its new one
    /// and names the letters the queue refused.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use taskweave::cluster::{Redrive, Verdict};
    /// use taskweave::scheduler::{DeadLetterCause, DeadLetterFilter};
    /// use taskweave_postgres::PgClient;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut operator = PgClient::<serde_json::Value>::connect("host=/tmp dbname=app user=app_node")?;
    /// let unroutable = DeadLetterFilter::new().cause(DeadLetterCause::Unroutable);
    /// let id = operator.redrive(Redrive::Matching(unroutable))?;
    /// if let [Some(Verdict::Redriven { requeued, .. })] = &operator.wait_verdicts(&[id], Duration::from_secs(10))?[..] {
    ///     for (old, new) in requeued {
    ///         println!("{old} runs again as {new}");
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// The store's [`StoreFailure`] (a submitter's login may not redrive:
    /// it needs a node login).
    pub fn redrive(&mut self, which: Redrive) -> Result<MessageId, StoreFailure> {
        self.post(vec![Message::Redrive(which)]).map(first_id)
    }

    /// Posts a command to the runs the cluster hosts (register a
    /// definition; start, signal or cancel a run); answers its message's
    /// id. A start's verdict is [`Verdict::Run`] with the run's id.
    ///
    /// # Errors
    ///
    /// The store's [`StoreFailure`].
    pub fn run(&mut self, command: RunCommand<P>) -> Result<MessageId, StoreFailure> {
        self.post(vec![Message::Run(command)]).map(first_id)
    }

    /// Posts many run commands at once, one message each; answers their
    /// ids, in order.
    ///
    /// # Errors
    ///
    /// The store's [`StoreFailure`].
    pub fn run_many(
        &mut self,
        commands: Vec<RunCommand<P>>,
    ) -> Result<Vec<MessageId>, StoreFailure> {
        self.post(commands.into_iter().map(Message::Run).collect())
    }

    /// How each hosted run ended, with its output: `None` while it is
    /// active, for an id no run took, and once the leader's engine forgot
    /// the run (its retention: 10,000 runs, a day) and a snapshot trimmed
    /// the entry that ended it.
    ///
    /// # Errors
    ///
    /// The store's [`StoreFailure`].
    pub fn run_ends(
        &mut self,
        runs: &[WorkflowId],
    ) -> Result<Vec<Option<RunEnd<P>>>, StoreFailure> {
        match self
            .store
            .client(ClientOp::Runs(runs.to_vec()), wall_now())?
        {
            ClientReply::Runs(ends) => Ok(ends),
            other => Err(unrelated(&other)),
        }
    }

    /// The ends of hosted runs published after `after`, each with its
    /// place, in journal order: at most `limit` (and
    /// [`MAX_RUN_ENDS_PAGE`](taskweave::cluster::MAX_RUN_ENDS_PAGE)). Pass
    /// the last place read to read the next page; an empty page means no
    /// end came since. A client waiting for many runs reads each end once
    /// this way, where [`run_ends`](Self::run_ends) asks after every open
    /// run at every poll. Ends forgotten before they were read (rule 8) are
    /// skipped, as [`RunEndCursor`] says.
    ///
    /// ```no_run
    /// use taskweave::cluster::RunEndCursor;
    /// use taskweave_postgres::PgClient;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut client = PgClient::<serde_json::Value>::connect("host=/tmp dbname=app user=app_submitter")?;
    /// let mut cursor = RunEndCursor::START;
    /// loop {
    ///     let page = client.run_ends_after(cursor, 500)?;
    ///     let Some(&(last, _)) = page.last() else { break };
    ///     for (_, end) in &page {
    ///         println!("{} ended {:?} with {:?}", end.run, end.outcome, end.output);
    ///     }
    ///     cursor = last;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// The store's [`StoreFailure`].
    pub fn run_ends_after(
        &mut self,
        after: RunEndCursor,
        limit: usize,
    ) -> Result<Vec<(RunEndCursor, RunEnd<P>)>, StoreFailure> {
        match self
            .store
            .client(ClientOp::RunEndsAfter { after, limit }, wall_now())?
        {
            ClientReply::RunEndsAfter(ends) => Ok(ends),
            other => Err(unrelated(&other)),
        }
    }

    /// Waits up to `timeout` for every run to end; those still active
    /// then (or unknown, or forgotten) are `None`.
    ///
    /// # Errors
    ///
    /// The store's [`StoreFailure`].
    pub fn wait_run_ends(
        &mut self,
        runs: &[WorkflowId],
        timeout: Duration,
    ) -> Result<Vec<Option<RunEnd<P>>>, StoreFailure> {
        self.wait_for_all(timeout, |client| client.run_ends(runs))
    }

    /// Each message's verdict, `None` while it is pending.
    ///
    /// # Errors
    ///
    /// The store's [`StoreFailure`].
    pub fn verdicts(&mut self, ids: &[MessageId]) -> Result<Vec<Option<Verdict>>, StoreFailure> {
        match self
            .store
            .client(ClientOp::Verdicts(ids.to_vec()), wall_now())?
        {
            ClientReply::Verdicts(v) => Ok(v),
            other => Err(unrelated(&other)),
        }
    }

    /// Waits up to `timeout` for every message's verdict; those still
    /// pending then are `None`.
    ///
    /// # Errors
    ///
    /// The store's [`StoreFailure`].
    pub fn wait_verdicts(
        &mut self,
        ids: &[MessageId],
        timeout: Duration,
    ) -> Result<Vec<Option<Verdict>>, StoreFailure> {
        self.wait_for_all(timeout, |client| client.verdicts(ids))
    }

    /// How each task ended, with its output: `None` while it is live, for an id the
    /// cluster never gave out, and once the leader trimmed the journal
    /// entry that ended it (rule 8 of the store contract: read outcomes
    /// at least once per snapshot interval).
    ///
    /// # Errors
    ///
    /// The store's [`StoreFailure`].
    pub fn outcomes(&mut self, tasks: &[TaskId]) -> Result<Vec<Option<Outcome<P>>>, StoreFailure> {
        match self
            .store
            .client(ClientOp::Outcomes(tasks.to_vec()), wall_now())?
        {
            ClientReply::Outcomes(ends) => Ok(ends),
            other => Err(unrelated(&other)),
        }
    }

    /// Waits up to `timeout` for every task to end; those still live then
    /// (or never given out, or forgotten) are `None`.
    ///
    /// # Errors
    ///
    /// The store's [`StoreFailure`].
    pub fn wait_outcomes(
        &mut self,
        tasks: &[TaskId],
        timeout: Duration,
    ) -> Result<Vec<Option<Outcome<P>>>, StoreFailure> {
        self.wait_for_all(timeout, |client| client.outcomes(tasks))
    }

    /// Reads until every answer is there or `timeout` has passed, every
    /// 20 ms.
    fn wait_for_all<T>(
        &mut self,
        timeout: Duration,
        mut read: impl FnMut(&mut Self) -> Result<Vec<Option<T>>, StoreFailure>,
    ) -> Result<Vec<Option<T>>, StoreFailure> {
        let deadline = WallInstant::now() + timeout;
        loop {
            let answers = read(self)?;
            if answers.iter().all(Option::is_some) || WallInstant::now() >= deadline {
                return Ok(answers);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The logins with the most inbox messages the leader has not read
    /// yet, most first, at most `limit` of them
    /// ([`PgStore::unread_by_login`]): `taskweave-pg status` names a
    /// flooding login this way, submitter or agent.
    ///
    /// # Errors
    ///
    /// [`PgError`](crate::PgError) when the query fails.
    pub fn unread_by_login(&mut self, limit: u32) -> Result<Vec<(String, u64)>, crate::PgError> {
        self.store.unread_by_login(limit)
    }

    /// The lease and the status the leader published last.
    ///
    /// # Errors
    ///
    /// The store's [`StoreFailure`].
    pub fn status(&mut self) -> Result<(Lease, Option<Status>), StoreFailure> {
        match self.store.client(ClientOp::Status, wall_now())? {
            ClientReply::Status(lease, status) => Ok((lease, status)),
            other => Err(unrelated(&other)),
        }
    }

    /// The lease and the status as one JSON object, `{"epoch", "holder",
    /// "held", "stopped", "status"}` (`status` is `null` before a leader
    /// published one): what `taskweave-pg status --json` prints and the
    /// operator's page serves at `/status.json`.
    ///
    /// # Errors
    ///
    /// The store's [`StoreFailure`].
    pub fn status_json(&mut self) -> Result<serde_json::Value, StoreFailure> {
        let (lease, status) = self.status()?;
        Ok(
            serde_json::json!({ "epoch": lease.epoch, "holder": lease.holder,
            "held": lease.held, "stopped": lease.stopped, "status": status }),
        )
    }
}

/// The id of the one message a post answered for.
pub(super) fn first_id(ids: Vec<MessageId>) -> MessageId {
    ids.first().copied().unwrap_or(0)
}

/// A reply of another kind than the operation asked.
pub(super) fn unrelated<P>(reply: &ClientReply<P>) -> StoreFailure {
    StoreFailure::Failed {
        cause: format!(
            "the store answered with an unrelated reply: {}",
            reply.summary()
        ),
    }
}
