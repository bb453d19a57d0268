//! [`AsyncPgClient`]: the client of a cluster for async (tokio) hosts, on
//! `tokio-postgres`.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use taskweave::cluster::{
    ClientOp, ClientReply, Lease, Message, MessageId, Outcome, Redrive, RunCommand, RunEnd, Status,
    StoreFailure, Verdict,
};
use taskweave::scheduler::TaskSpec;
use taskweave::{TaskId, WorkflowId};

use super::async_link::AsyncLink;
use super::client::{first_id, unrelated};
use crate::PgError;
use crate::store::client_ops::{Plan, plan};

/// What a read's reply answers: one `Option` per thing asked.
type AnswersOf<P, T> = fn(ClientReply<P>) -> Result<Vec<Option<T>>, StoreFailure>;

/// How often the `wait_*` calls read again.
const WAIT_STEP: Duration = Duration::from_millis(20);

/// A client of a taskweave cluster on PostgreSQL for async hosts: what
/// [`PgClient`](crate::PgClient) does (submit, cancel, redrive, drain,
/// post run commands; read verdicts, outcomes, run ends and the status),
/// as `async fn`s on one `tokio-postgres` connection, so a request
/// handler awaits the cluster without a blocking thread.
///
/// It must run inside a tokio runtime (the connection is a tokio task);
/// polled outside one, it answers [`PgError::NoRuntime`] (a call after
/// `connect`, a [`StoreFailure::Failed`] that says so) instead of
/// panicking.
/// A broken connection (PostgreSQL restarted, say) fails the call that
/// met it, and the next call connects again. A post whose answer was
/// lost is [`StoreFailure::Unknown`]: it may have landed. Like
/// `PgClient`, it holds one connection; a host that serves many requests
/// at once keeps a few clients (each call takes `&mut self`).
///
/// [`AsyncPgAgent`](crate::AsyncPgAgent) is its counterpart for agents;
/// why the node has none: the crate's "Blocking hosts, async hosts".
/// `examples/tokio_service.rs` embeds them all.
///
/// ```no_run
/// use std::time::Duration;
/// use taskweave::scheduler::TaskSpec;
/// use taskweave::cluster::Verdict;
/// use taskweave_postgres::AsyncPgClient;
///
/// # async fn handler() -> Result<(), Box<dyn std::error::Error>> {
/// let mut client = AsyncPgClient::<serde_json::Value>::connect("host=/tmp dbname=app user=app_submitter").await?;
/// let message = client.submit(vec![TaskSpec::new(serde_json::json!({"n": 1}))]).await?;
/// if let [Some(Verdict::Submitted(tasks))] = &client.wait_verdicts(&[message], Duration::from_secs(5)).await?[..] {
///     let task = tasks[0].clone()?;
///     let outcome = client.wait_outcomes(&[task], Duration::from_secs(30)).await?;
///     println!("{task}: {:?}", outcome[0]);
/// }
/// # Ok(())
/// # }
/// ```
pub struct AsyncPgClient<P> {
    link: AsyncLink,
    payload: PhantomData<fn() -> P>,
}

impl<P> fmt::Debug for AsyncPgClient<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncPgClient")
            .field("target", &self.link.target())
            .field("connected", &self.link.is_connected())
            .finish_non_exhaustive()
    }
}

impl<P: Serialize + DeserializeOwned + Clone> AsyncPgClient<P> {
    /// Connects as the login `conninfo` names, as
    /// [`PgStore::connect`](crate::PgStore::connect) does (libpq's
    /// environment and password file, the session's settings), and checks
    /// the schema version.
    ///
    /// # Errors
    ///
    /// [`PgError::Conninfo`], [`PgError::Connect`] or [`PgError::Schema`],
    /// as `PgStore::connect`; [`PgError::NoRuntime`] when polled outside a
    /// tokio runtime.
    pub async fn connect(conninfo: &str) -> Result<Self, PgError> {
        Ok(AsyncPgClient {
            link: AsyncLink::connect(conninfo, Vec::new(), None).await?,
            payload: PhantomData,
        })
    }

    /// Runs one client operation of the store contract (each statement
    /// prepared once per connection).
    async fn op(&mut self, op: ClientOp<P>) -> Result<ClientReply<P>, StoreFailure> {
        match plan(op)? {
            Plan::Answered(reply) => Ok(*reply),
            Plan::Query {
                sql,
                params,
                write,
                rows,
            } => rows.decode(&self.link.query(sql, &params, write).await?),
        }
    }

    async fn post(&mut self, messages: Vec<Message<P>>) -> Result<Vec<MessageId>, StoreFailure> {
        match self.op(ClientOp::Post(messages)).await? {
            ClientReply::Posted(ids) => Ok(ids),
            other => Err(unrelated(&other)),
        }
    }

    /// Submits tasks in one message; answers its id
    /// ([`PgClient::submit`](crate::PgClient::submit)).
    ///
    /// # Errors
    ///
    /// The store's [`StoreFailure`].
    pub async fn submit(&mut self, specs: Vec<TaskSpec<P>>) -> Result<MessageId, StoreFailure> {
        self.post(vec![Message::Submit(specs)]).await.map(first_id)
    }

    /// Submits many messages of tasks at once; answers their ids.
    ///
    /// # Errors
    ///
    /// The store's [`StoreFailure`].
    pub async fn submit_many(
        &mut self,
        batches: Vec<Vec<TaskSpec<P>>>,
    ) -> Result<Vec<MessageId>, StoreFailure> {
        self.post(batches.into_iter().map(Message::Submit).collect())
            .await
    }

    /// Asks the leader to cancel `task`.
    ///
    /// # Errors
    ///
    /// The store's [`StoreFailure`].
    pub async fn cancel(&mut self, task: TaskId) -> Result<MessageId, StoreFailure> {
        self.post(vec![Message::Cancel(task)]).await.map(first_id)
    }

    /// Sends dead letters back to the queue
    /// ([`PgClient::redrive`](crate::PgClient::redrive)); needs a node
    /// login.
    ///
    /// # Errors
    ///
    /// The store's [`StoreFailure`].
    pub async fn redrive(&mut self, which: Redrive) -> Result<MessageId, StoreFailure> {
        self.post(vec![Message::Redrive(which)]).await.map(first_id)
    }

    /// Drains the cluster ([`PgClient::drain`](crate::PgClient::drain));
    /// needs a node login.
    ///
    /// # Errors
    ///
    /// The store's [`StoreFailure`].
    pub async fn drain(&mut self) -> Result<MessageId, StoreFailure> {
        self.post(vec![Message::Drain]).await.map(first_id)
    }

    /// Posts a command to the runs the cluster hosts
    /// ([`PgClient::run`](crate::PgClient::run)).
    ///
    /// # Errors
    ///
    /// The store's [`StoreFailure`].
    pub async fn run(&mut self, command: RunCommand<P>) -> Result<MessageId, StoreFailure> {
        self.post(vec![Message::Run(command)]).await.map(first_id)
    }

    /// Each message's verdict, `None` while it is pending.
    ///
    /// # Errors
    ///
    /// The store's [`StoreFailure`].
    pub async fn verdicts(
        &mut self,
        ids: &[MessageId],
    ) -> Result<Vec<Option<Verdict>>, StoreFailure> {
        verdicts_of(self.op(ClientOp::Verdicts(ids.to_vec())).await?)
    }

    /// How each task ended, with its output
    /// ([`PgClient::outcomes`](crate::PgClient::outcomes)).
    ///
    /// # Errors
    ///
    /// The store's [`StoreFailure`].
    pub async fn outcomes(
        &mut self,
        tasks: &[TaskId],
    ) -> Result<Vec<Option<Outcome<P>>>, StoreFailure> {
        outcomes_of(self.op(ClientOp::Outcomes(tasks.to_vec())).await?)
    }

    /// How each hosted run ended ([`PgClient::run_ends`](crate::PgClient::run_ends)).
    ///
    /// # Errors
    ///
    /// The store's [`StoreFailure`].
    pub async fn run_ends(
        &mut self,
        runs: &[WorkflowId],
    ) -> Result<Vec<Option<RunEnd<P>>>, StoreFailure> {
        match self.op(ClientOp::Runs(runs.to_vec())).await? {
            ClientReply::Runs(ends) => Ok(ends),
            other => Err(unrelated(&other)),
        }
    }

    /// The lease and the status the leader published last.
    ///
    /// # Errors
    ///
    /// The store's [`StoreFailure`].
    pub async fn status(&mut self) -> Result<(Lease, Option<Status>), StoreFailure> {
        match self.op(ClientOp::Status).await? {
            ClientReply::Status(lease, status) => Ok((lease, status)),
            other => Err(unrelated(&other)),
        }
    }

    /// Waits up to `timeout` (reading every 20 ms, with tokio's timer)
    /// for every message's verdict; those still pending then are `None`.
    ///
    /// # Errors
    ///
    /// The store's [`StoreFailure`].
    pub async fn wait_verdicts(
        &mut self,
        ids: &[MessageId],
        timeout: Duration,
    ) -> Result<Vec<Option<Verdict>>, StoreFailure> {
        let op = ClientOp::Verdicts(ids.to_vec());
        self.wait_for_all(timeout, op, verdicts_of).await
    }

    /// Waits up to `timeout` for every task to end; those still live then
    /// (or never given out, or forgotten) are `None`.
    ///
    /// # Errors
    ///
    /// The store's [`StoreFailure`].
    pub async fn wait_outcomes(
        &mut self,
        tasks: &[TaskId],
        timeout: Duration,
    ) -> Result<Vec<Option<Outcome<P>>>, StoreFailure> {
        let op = ClientOp::Outcomes(tasks.to_vec());
        self.wait_for_all(timeout, op, outcomes_of).await
    }

    /// Runs the read `op` until every answer is there or `timeout` has
    /// passed, every [`WAIT_STEP`]. (A read and a function rather than a
    /// closure over `self`: the future stays `Send`.)
    async fn wait_for_all<T>(
        &mut self,
        timeout: Duration,
        op: ClientOp<P>,
        answers_of: AnswersOf<P, T>,
    ) -> Result<Vec<Option<T>>, StoreFailure> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let answers = answers_of(self.op(op.clone()).await?)?;
            if answers.iter().all(Option::is_some) || tokio::time::Instant::now() >= deadline {
                return Ok(answers);
            }
            tokio::time::sleep(WAIT_STEP).await;
        }
    }
}

/// The verdicts a reply carries.
fn verdicts_of<P>(reply: ClientReply<P>) -> Result<Vec<Option<Verdict>>, StoreFailure> {
    match reply {
        ClientReply::Verdicts(verdicts) => Ok(verdicts),
        other => Err(unrelated(&other)),
    }
}

/// The outcomes a reply carries.
fn outcomes_of<P>(reply: ClientReply<P>) -> Result<Vec<Option<Outcome<P>>>, StoreFailure> {
    match reply {
        ClientReply::Outcomes(ends) => Ok(ends),
        other => Err(unrelated(&other)),
    }
}
