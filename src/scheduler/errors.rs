//! Errors of the scheduler module.

use thiserror::Error;

use super::gates::tenants::TenantLimit;
use super::task::metadata::MetadataTooLarge;
use super::task::{TaskSpec, TaskState};
use crate::agent::RegistryError;
use crate::{AgentId, AttemptToken, Instant, TaskId, TenantId};

/// Invalid dispatcher configuration, or a refused host request.
#[derive(Clone, Debug, PartialEq, Error)]
#[non_exhaustive]
pub enum SchedulerError {
    /// A configuration setting is out of range.
    #[error("invalid {setting}: {value}")]
    InvalidConfig {
        /// Which setting.
        setting: &'static str,
        /// The rejected value, as text.
        value: String,
    },
    /// A task id the dispatcher never issued, or whose record was evicted.
    #[error("unknown task {0}")]
    UnknownTask(TaskId),
    /// The task already reached a terminal state.
    #[error("task {task} already ended as {state:?}")]
    AlreadyFinished {
        /// The task.
        task: TaskId,
        /// Its terminal state.
        state: TaskState,
    },
    /// A resubmission the queue refused.
    #[error(transparent)]
    Submit(SubmitErrorKind),
    /// A snapshot written in a format this version cannot read.
    #[error(
        "snapshot format {found} is not supported (this version reads {} to {supported}; \
         a snapshot from a newer release needs that release)",
        crate::scheduler::Snapshot::<()>::READABLE.start()
    )]
    SnapshotVersion {
        /// The snapshot's format version.
        found: u32,
        /// The newest version this library reads
        /// ([`Snapshot::VERSION`](crate::scheduler::Snapshot::VERSION); it
        /// reads [`Snapshot::READABLE`](crate::scheduler::Snapshot::READABLE)).
        supported: u32,
    },
    /// A snapshot whose parts disagree: not one a dispatcher could have
    /// taken (corrupted in storage or forged).
    #[error("corrupt snapshot: {field}: {problem}")]
    CorruptSnapshot {
        /// The field at fault, with its index or key where it has one.
        field: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A snapshot restored with another configuration than the one it was
    /// taken with: the restored dispatcher would not continue as the
    /// original would.
    #[error("the snapshot was taken with another {setting} than the configuration given")]
    ConfigMismatch {
        /// The first setting that differs.
        setting: &'static str,
    },
    /// No dead letter for this task.
    #[error("no dead letter for task {0}")]
    NoDeadLetter(TaskId),
    /// An agent operation the registry refused.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// Why a submission was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SubmitErrorKind {
    /// The queue holds its configured capacity of waiting tasks.
    #[error("queue is full ({capacity} tasks waiting)")]
    QueueFull {
        /// The configured capacity.
        capacity: usize,
    },
    /// The task asks for a zero attempt timeout: every attempt would time
    /// out as it starts.
    #[error("attempt timeout of zero")]
    ZeroAttemptTimeout,
    /// The task's deadline had already passed when it was submitted.
    #[error("deadline {deadline} already passed at {now}")]
    DeadlinePassed {
        /// The task's deadline.
        deadline: Instant,
        /// The submission time.
        now: Instant,
    },
    /// The task may not start before its deadline: it could never run.
    #[error("start {not_before} is not before the deadline {deadline}")]
    StartAfterDeadline {
        /// The task's start instant.
        not_before: Instant,
        /// The task's deadline.
        deadline: Instant,
    },
    /// The task may not start before [`Instant::MAX`], the instant that
    /// never comes ([the clock rule](crate::time#the-clock-rule)): it could
    /// never run.
    #[error("start {not_before} never comes")]
    StartNever {
        /// The task's start instant.
        not_before: Instant,
    },
    /// A fair share of weight zero would never be served.
    #[error("fair-share weight of zero")]
    ZeroFairnessWeight,
    /// At most zero attempts: the task could never run
    /// ([`TaskSpec::max_attempts`](crate::scheduler::TaskSpec::max_attempts)).
    #[error("at most zero attempts")]
    ZeroMaxAttempts,
    /// The idempotency key names a task submitted with another payload
    /// ([`TaskOptions::payload_fingerprint`](crate::scheduler::TaskOptions::payload_fingerprint)):
    /// nothing was submitted.
    #[error(
        "conflict: the idempotency key names {task}, submitted with another payload; use another key, or the same payload"
    )]
    KeyConflict {
        /// The task the key names.
        task: TaskId,
    },
    /// The task's tenant is at one of its quotas
    /// ([`DispatcherConfigBuilder::tenant_quota`](super::DispatcherConfigBuilder::tenant_quota)):
    /// nothing was submitted.
    #[error("{tenant} is at its quota of {limit}")]
    OverQuota {
        /// The task's tenant.
        tenant: TenantId,
        /// The quota it is at.
        limit: TenantLimit,
    },
    /// A cost of zero: every limit would let the task through for free.
    #[error("cost of zero")]
    ZeroCost,
    /// The task costs more than a rate limit it falls under can ever admit
    /// at once: it would never run.
    #[error("cost {cost} exceeds the burst {burst} of the {limit} rate limit")]
    CostOverBurst {
        /// Which limit.
        limit: LimitScope,
        /// The task's cost.
        cost: u32,
        /// That limit's burst.
        burst: u32,
    },
    /// A fair-share or concurrency key longer than
    /// [`MAX_KEY_BYTES`](super::MAX_KEY_BYTES).
    #[error("a key of {bytes} bytes is too long")]
    KeyTooLong {
        /// The key's length.
        bytes: usize,
    },
    /// More than [`MAX_CONCURRENCY_KEYS`](super::MAX_CONCURRENCY_KEYS)
    /// concurrency keys.
    #[error("{count} concurrency keys are too many")]
    TooManyConcurrencyKeys {
        /// How many the task carried.
        count: usize,
    },
    /// Metadata over its bounds.
    #[error(transparent)]
    MetadataTooLarge(#[from] MetadataTooLarge),
    /// A redrive of a dead letter whose task was marked
    /// [`no_redrive`](super::TaskSpec::no_redrive): its submitter retries
    /// that work its own way (a workflow run, its step). The letter stays
    /// in the dead-letter queue.
    #[error(
        "its task was submitted with no_redrive: its submitter (a workflow run, for its step) decides whether it runs again; retry through the submitter, or leave the letter"
    )]
    NotRedrivable,
}

/// Which rate limit a [`SubmitErrorKind::CostOverBurst`] names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum LimitScope {
    /// The task kind's rate limit.
    #[error("kind")]
    Kind,
    /// The per-agent rate limit.
    #[error("agent")]
    Agent,
    /// A concurrency key's rate limit.
    #[error("concurrency key")]
    ConcurrencyKey,
}

/// A refused submission. Hands the task back, so nothing is lost.
#[derive(Clone, Debug, PartialEq, Error)]
#[error("{kind}")]
pub struct SubmitError<P> {
    /// Why.
    pub kind: SubmitErrorKind,
    /// The task, returned to the caller (boxed: it can be large, and this
    /// is the cold path).
    pub spec: Box<TaskSpec<P>>,
}

/// Why [`Dispatcher::apply`](super::Dispatcher::apply) refused an input:
/// the error of the method the input stands for. A refused submission
/// hands its task back, as [`Dispatcher::submit`](super::Dispatcher::submit)
/// does, so a host driven by a journal loses nothing either.
#[derive(Clone, Debug, PartialEq, Error)]
#[non_exhaustive]
pub enum ApplyError<P> {
    /// A refused submission ([`Input::Submit`](super::Input::Submit)), with
    /// its task.
    #[error(transparent)]
    Submit(SubmitError<P>),
    /// A rejected report ([`Input::Report`](super::Input::Report)).
    #[error(transparent)]
    Report(#[from] ReportError),
    /// Any other refused input: an unknown or finished task, an unknown or
    /// duplicate agent, a dead letter that is not there.
    #[error(transparent)]
    Scheduler(#[from] SchedulerError),
}

impl<P> ApplyError<P> {
    /// The refused task of a [`Submit`](Self::Submit) error; `None` for
    /// any other error.
    pub fn into_spec(self) -> Option<TaskSpec<P>> {
        match self {
            ApplyError::Submit(error) => Some(*error.spec),
            ApplyError::Report(_) | ApplyError::Scheduler(_) => None,
        }
    }
}

impl<P> From<SubmitError<P>> for ApplyError<P> {
    fn from(error: SubmitError<P>) -> Self {
        ApplyError::Submit(error)
    }
}

/// Why a report was rejected. A rejected report changes nothing.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ReportError {
    /// A task id the dispatcher never issued, or whose record was evicted.
    #[error("report for unknown task {0}")]
    UnknownTask(TaskId),
    /// The task is not running (queued, delayed or finished).
    #[error("task {task} is not in flight ({state:?})")]
    NotInFlight {
        /// The task.
        task: TaskId,
        /// Its current state.
        state: TaskState,
    },
    /// The token is not the current attempt's: a late result from an
    /// earlier attempt, or a forged one.
    #[error("stale or forged token {token} for task {task}")]
    StaleToken {
        /// The task.
        task: TaskId,
        /// The token the report carried.
        token: AttemptToken,
    },
    /// The report came from an agent that does not hold the task.
    #[error("agent {agent} does not hold task {task}")]
    WrongAgent {
        /// The task.
        task: TaskId,
        /// The agent that reported.
        agent: AgentId,
    },
}
