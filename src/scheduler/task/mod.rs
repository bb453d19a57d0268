//! Tasks as the host submits them, and the states they move through.

mod dead_letter_cause;
#[cfg(feature = "serde")]
pub(super) mod form;
pub(super) mod key_name;
pub(super) mod metadata;
pub(super) mod options;

pub use dead_letter_cause::{DeadLetterCause, UnknownCause};

use std::time::Duration;

use crate::{AgentId, AttemptToken, Instant, Priority, TaskId, TaskRequirements, TenantId};
use key_name::KeyName;
use options::{FairShare, TaskOptions};

/// A task to submit: a payload of the host's type plus how to schedule it.
///
/// ```
/// use std::time::Duration;
/// use taskweave::scheduler::TaskSpec;
/// use taskweave::{Priority, TaskRequirements};
///
/// let spec = TaskSpec::new("summarize report 42")
///     .priority(Priority::High)
///     .requirements(TaskRequirements::new().require(["llm"]))
///     .ttl(Duration::from_secs(30))
///     .idempotency_key("report-42");
/// assert_eq!(spec.priority, Priority::High);
/// ```
///
/// The scheduling options — a start time, a fair share, concurrency keys,
/// a cost and metadata — are off by default and cost nothing when unused;
/// a journal entry or snapshot written without them reads back unchanged.
///
/// They live in one [`TaskOptions`] behind a pointer: read them with
/// [`options`](Self::options), set them with the builder methods below or
/// [`options_mut`](Self::options_mut). In serialized form they sit beside
/// the other fields, each written only when set.
#[derive(Clone, Debug)]
pub struct TaskSpec<P> {
    /// The host's payload; the dispatcher stores it and hands it back.
    pub payload: P,
    /// Priority level.
    pub priority: Priority,
    /// What the task asks of its agent.
    pub requirements: TaskRequirements,
    /// Longest time the task may wait in the queue (counted from submission;
    /// checked whenever it is waiting). `None`: no limit.
    pub ttl: Option<Duration>,
    /// Instant by which the task must be completed, running or not.
    pub deadline: Option<Instant>,
    /// Longest time one attempt may run before it counts as a failure with
    /// reason timeout. `None`: the dispatcher's default.
    pub attempt_timeout: Option<Duration>,
    /// Submitting the same key again within the idempotency window returns
    /// the first task's id instead of creating a second task.
    pub idempotency_key: Option<String>,
    /// The scheduling options, allocated on first use: `None` is
    /// [`TaskOptions::NONE`], so a task that uses none of them costs one
    /// pointer check.
    pub(super) options: Option<Box<TaskOptions>>,
}

impl<P> TaskSpec<P> {
    /// A normal-priority task with no requirements and no limits.
    pub fn new(payload: P) -> Self {
        TaskSpec {
            payload,
            priority: Priority::Normal,
            requirements: TaskRequirements::new(),
            ttl: None,
            deadline: None,
            attempt_timeout: None,
            idempotency_key: None,
            options: None,
        }
    }

    /// The same task with its payload mapped by `f`: a host that wraps
    /// its payloads in an enum of its own (tasks and workflow steps on one
    /// pool, say) keeps every other setting.
    ///
    /// ```
    /// use taskweave::Priority;
    /// use taskweave::scheduler::TaskSpec;
    ///
    /// let spec = TaskSpec::new(7u64).priority(Priority::High).idempotency_key("job-7");
    /// let wrapped = spec.map_payload(|n| format!("job {n}"));
    /// assert_eq!(wrapped.payload, "job 7");
    /// assert_eq!(wrapped.priority, Priority::High);
    /// assert_eq!(wrapped.idempotency_key.as_deref(), Some("job-7"));
    /// ```
    pub fn map_payload<Q>(self, f: impl FnOnce(P) -> Q) -> TaskSpec<Q> {
        TaskSpec {
            payload: f(self.payload),
            priority: self.priority,
            requirements: self.requirements,
            ttl: self.ttl,
            deadline: self.deadline,
            attempt_timeout: self.attempt_timeout,
            idempotency_key: self.idempotency_key,
            options: self.options,
        }
    }

    /// Sets the priority.
    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the requirements.
    pub fn requirements(mut self, requirements: TaskRequirements) -> Self {
        self.requirements = requirements;
        self
    }

    /// Sets the time-to-live in the queue.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Sets the completion deadline.
    pub fn deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Sets the per-attempt timeout.
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = Some(timeout);
        self
    }

    /// The scheduling options ([`TaskOptions::NONE`] unless some are set).
    pub fn options(&self) -> &TaskOptions {
        static NONE: TaskOptions = TaskOptions::NONE;
        self.options.as_deref().unwrap_or(&NONE)
    }

    /// The scheduling options, to change in place (allocated on first use).
    pub fn options_mut(&mut self) -> &mut TaskOptions {
        self.options.get_or_insert_with(Box::default)
    }

    /// Replaces the scheduling options.
    pub fn with_options(mut self, options: TaskOptions) -> Self {
        self.options = (options != TaskOptions::NONE).then(|| Box::new(options));
        self
    }

    /// Whether the task uses none of the scheduling options: the
    /// dispatcher's fast path.
    #[inline]
    pub(crate) fn is_plain(&self) -> bool {
        self.options.is_none()
    }

    /// Whether the task sets no limit (TTL, deadline, attempt timeout), no
    /// idempotency key and no option: all a submission then checks is the
    /// queue's room.
    #[inline(always)]
    pub(crate) fn is_unlimited(&self) -> bool {
        self.is_plain()
            && self.ttl.is_none()
            && self.deadline.is_none()
            && self.attempt_timeout.is_none()
            && self.idempotency_key.is_none()
    }

    /// Sets the idempotency key.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Delays the task: it is not dispatched before `at`.
    ///
    /// ```
    /// use taskweave::scheduler::{Dispatcher, DispatcherConfig, TaskSpec, TaskState};
    /// use taskweave::Instant;
    ///
    /// let mut d: Dispatcher<&str> = Dispatcher::new(DispatcherConfig::default());
    /// let at = Instant::from_secs(3_600);
    /// let task = d.submit(TaskSpec::new("send the reminder").not_before(at), Instant::ZERO)?.id();
    /// assert_eq!(d.task_state(task), Some(TaskState::Delayed { until: at }));
    /// assert_eq!(d.poll_timeout(), Some(at));
    /// d.handle_timeout(at);
    /// assert_eq!(d.task_state(task), Some(TaskState::Queued));
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    pub fn not_before(mut self, at: Instant) -> Self {
        self.options_mut().not_before = Some(at);
        self
    }

    /// Sets the fair-share key and its weight (see [`FairShare`]).
    pub fn fairness(mut self, key: impl Into<KeyName>, weight: u16) -> Self {
        self.options_mut().fairness = Some(FairShare {
            key: key.into(),
            weight,
        });
        self
    }

    /// Adds a concurrency key.
    pub fn concurrency_key(mut self, key: impl Into<KeyName>) -> Self {
        self.options_mut().concurrency_keys.push(key.into());
        self
    }

    /// Sets the cost against rate limits.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskweave::resilience::Quota;
    /// use taskweave::scheduler::{ConcurrencyLimit, Dispatcher, DispatcherConfig, LimitScope, SubmitErrorKind, TaskSpec};
    /// use taskweave::Instant;
    ///
    /// // 10,000 tokens a minute, in bursts of at most 4,000.
    /// let tokens = Quota::new(10_000, Duration::from_secs(60))?.with_burst(4_000)?;
    /// let config = DispatcherConfig::builder()
    ///     .concurrency_limit("openai", ConcurrencyLimit::new(8).rate(tokens))
    ///     .build()?;
    /// let mut d: Dispatcher<&str> = Dispatcher::new(config);
    /// let now = Instant::ZERO;
    /// assert!(d.submit(TaskSpec::new("summary").concurrency_key("openai").cost(1_500), now).is_ok());
    /// // A task that could never fit in one burst is refused, not queued for ever.
    /// let refused = d.submit(TaskSpec::new("novel").concurrency_key("openai").cost(9_000), now).unwrap_err();
    /// assert_eq!(
    ///     refused.kind,
    ///     SubmitErrorKind::CostOverBurst { limit: LimitScope::ConcurrencyKey, cost: 9_000, burst: 4_000 }
    /// );
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    pub fn cost(mut self, cost: u32) -> Self {
        self.options_mut().cost = cost;
        self
    }

    /// Caps the attempts the task is ever handed out at `attempts`
    /// ([`TaskOptions::max_attempts`]), below what the retry policy would
    /// allow. A workflow step on a cluster sets 1, so that the step's own
    /// policy is the only one applied to it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskweave::agent::AgentProfile;
    /// use taskweave::resilience::Fixed;
    /// use taskweave::scheduler::{Action, AttemptOutcome, DeadLetterReason, Dispatcher, DispatcherConfig, TaskReport, TaskSpec};
    /// use taskweave::{AgentId, Instant};
    ///
    /// // The dispatcher would try five times; this task, twice.
    /// let config = DispatcherConfig::builder().retry_policy(Fixed::new(Duration::ZERO, 5)?).build()?;
    /// let mut d: Dispatcher<&str> = Dispatcher::new(config);
    /// let agent = AgentId::new(1);
    /// d.register_agent(agent, AgentProfile::builder().build()?, Instant::ZERO)?;
    /// let task = d.submit(TaskSpec::new("flaky").max_attempts(2), Instant::ZERO)?.id();
    /// let mut runs = 0;
    /// while let Some(action) = d.poll_action() {
    ///     match action {
    ///         Action::Assign { task, agent, token, .. } => {
    ///             runs += 1;
    ///             let report = TaskReport { task, agent, token, outcome: AttemptOutcome::failure("no") };
    ///             d.report(report, Instant::ZERO)?;
    ///         }
    ///         Action::DeadLettered { reason: DeadLetterReason::RetriesExhausted { attempts, .. }, .. } => {
    ///             assert_eq!(attempts, 2);
    ///         }
    ///         _ => {}
    ///     }
    /// }
    /// assert_eq!(runs, 2);
    /// # let _ = task;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.options_mut().max_attempts = Some(attempts);
        self
    }

    /// Sets the payload's fingerprint
    /// ([`TaskOptions::payload_fingerprint`]): the same idempotency key
    /// with another fingerprint is refused, not deduplicated.
    ///
    /// ```
    /// use taskweave::scheduler::{Dispatcher, DispatcherConfig, SubmitErrorKind, TaskSpec};
    /// use taskweave::Instant;
    ///
    /// let mut d: Dispatcher<&str> = Dispatcher::new(DispatcherConfig::default());
    /// let first = d.submit(TaskSpec::new("pay 10").idempotency_key("order-7").payload_fingerprint(10), Instant::ZERO)?.id();
    /// // The same payload again: the first task.
    /// let again = d.submit(TaskSpec::new("pay 10").idempotency_key("order-7").payload_fingerprint(10), Instant::ZERO)?;
    /// assert_eq!(again.id(), first);
    /// // Another payload under the same key: refused, naming the task.
    /// let refused = d.submit(TaskSpec::new("pay 99").idempotency_key("order-7").payload_fingerprint(99), Instant::ZERO).unwrap_err();
    /// assert_eq!(refused.kind, SubmitErrorKind::KeyConflict { task: first });
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    pub fn payload_fingerprint(mut self, fingerprint: u64) -> Self {
        self.options_mut().payload_fingerprint = Some(fingerprint);
        self
    }

    /// Sets the tenant that owns the task ([`TaskOptions::tenant`]): its
    /// idempotency key is scoped to the tenant, and the tenant's quota
    /// applies ([`DispatcherConfigBuilder::tenant_quota`](crate::scheduler::DispatcherConfigBuilder::tenant_quota)).
    ///
    /// ```
    /// use taskweave::scheduler::{Dispatcher, DispatcherConfig, Submitted, TaskSpec};
    /// use taskweave::{Instant, TenantId};
    ///
    /// let mut d: Dispatcher<&str> = Dispatcher::new(DispatcherConfig::default());
    /// let (acme, globex) = (TenantId::new(1), TenantId::new(2));
    /// let now = Instant::ZERO;
    /// let first = d.submit(TaskSpec::new("invoice").tenant(acme).idempotency_key("order-7"), now)?;
    /// // Another tenant's same key is another key: a task of its own.
    /// let other = d.submit(TaskSpec::new("invoice").tenant(globex).idempotency_key("order-7"), now)?;
    /// assert!(matches!(other, Submitted::New(id) if id != first.id()));
    /// assert_eq!(d.tenant(other.id()), Some(globex));
    /// // The same tenant's key again: the first task.
    /// let again = d.submit(TaskSpec::new("invoice").tenant(acme).idempotency_key("order-7"), now)?;
    /// assert_eq!(again, Submitted::Duplicate(first.id()));
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    pub fn tenant(mut self, tenant: TenantId) -> Self {
        self.options_mut().tenant = Some(tenant);
        self
    }

    /// Marks the task's dead letter as one no redrive requeues
    /// ([`TaskOptions::no_redrive`]): its submitter retries it its own way.
    ///
    /// ```
    /// use taskweave::agent::AgentProfile;
    /// use taskweave::scheduler::{Action, AttemptOutcome, DeadLetterFilter, Dispatcher, DispatcherConfig, SubmitErrorKind, TaskReport, TaskSpec};
    /// use taskweave::{AgentId, Instant};
    ///
    /// let mut d: Dispatcher<&str> = Dispatcher::new(DispatcherConfig::default());
    /// d.register_agent(AgentId::new(1), AgentProfile::builder().build()?, Instant::ZERO)?;
    /// let step = d.submit(TaskSpec::new("charge card").max_attempts(1).no_redrive(), Instant::ZERO)?.id();
    /// while let Some(action) = d.poll_action() {
    ///     if let Action::Assign { task, agent, token, .. } = action {
    ///         let report = TaskReport { task, agent, token, outcome: AttemptOutcome::fatal("card declined") };
    ///         d.report(report, Instant::ZERO)?;
    ///     }
    /// }
    /// // An operator's redrive of every letter leaves this one where it is.
    /// let redriven = d.redrive_dead_letters(&DeadLetterFilter::new(), Instant::ZERO);
    /// assert!(redriven.requeued.is_empty());
    /// assert_eq!(redriven.refused, [(step, SubmitErrorKind::NotRedrivable)]);
    /// assert_eq!(d.dead_letters().len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn no_redrive(mut self) -> Self {
        self.options_mut().no_redrive = true;
        self
    }

    /// Sets a metadata entry.
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.options_mut().metadata.insert(key, value);
        self
    }
}

/// Equal when every field is, options compared by value (unset options
/// equal [`TaskOptions::NONE`] set explicitly).
impl<P: PartialEq> PartialEq for TaskSpec<P> {
    fn eq(&self, other: &Self) -> bool {
        self.payload == other.payload
            && self.priority == other.priority
            && self.requirements == other.requirements
            && self.ttl == other.ttl
            && self.deadline == other.deadline
            && self.attempt_timeout == other.attempt_timeout
            && self.idempotency_key == other.idempotency_key
            && self.options() == other.options()
    }
}

/// Where a task is. Every task is in exactly one state; the last four are
/// terminal and final.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum TaskState {
    /// Waiting for an agent.
    Queued,
    /// Waiting for its start ([`TaskSpec::not_before`]) or retry instant.
    Delayed {
        /// When it becomes ready again.
        until: Instant,
    },
    /// Assigned to an agent.
    InFlight {
        /// The agent running it.
        agent: AgentId,
        /// The fencing token of this attempt.
        token: AttemptToken,
        /// 1 for the first attempt.
        attempt: u32,
    },
    /// Finished successfully.
    Completed,
    /// Cancelled by the host.
    Cancelled,
    /// Ran out of time (TTL or deadline).
    Expired,
    /// Failed for good; its record is in the dead-letter queue.
    DeadLettered,
}

/// A terminal [`TaskState`], as a finished task's record keeps it: one
/// byte, and only the four final states can be written or read back (its
/// stored form is theirs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(crate) enum Terminal {
    Completed,
    Cancelled,
    Expired,
    DeadLettered,
}

impl From<Terminal> for TaskState {
    fn from(terminal: Terminal) -> Self {
        match terminal {
            Terminal::Completed => TaskState::Completed,
            Terminal::Cancelled => TaskState::Cancelled,
            Terminal::Expired => TaskState::Expired,
            Terminal::DeadLettered => TaskState::DeadLettered,
        }
    }
}

impl TaskState {
    /// Whether the state is final.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            TaskState::Completed
                | TaskState::Cancelled
                | TaskState::Expired
                | TaskState::DeadLettered
        )
    }
}

/// How one attempt ended, as an agent reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum AttemptOutcome {
    /// The attempt succeeded.
    Success,
    /// The attempt failed.
    Failure {
        /// Why, in the agent's words.
        reason: String,
        /// Whether trying again could help. `false` dead-letters the task at once.
        retryable: bool,
    },
}

impl AttemptOutcome {
    /// A retryable failure.
    pub fn failure(reason: impl Into<String>) -> Self {
        AttemptOutcome::Failure {
            reason: reason.into(),
            retryable: true,
        }
    }

    /// A failure that no retry can fix.
    pub fn fatal(reason: impl Into<String>) -> Self {
        AttemptOutcome::Failure {
            reason: reason.into(),
            retryable: false,
        }
    }
}

/// An agent's report on one attempt. Accepted only from the agent holding the
/// task's current attempt, with that attempt's token.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TaskReport {
    /// The task.
    pub task: TaskId,
    /// The reporting agent.
    pub agent: AgentId,
    /// The token of the attempt being reported.
    pub token: AttemptToken,
    /// How it went.
    pub outcome: AttemptOutcome,
}

/// Why a task was dead-lettered.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum DeadLetterReason {
    /// The retry policy (or the retry budget) gave up.
    RetriesExhausted {
        /// Attempts made.
        attempts: u32,
        /// The last failure's reason.
        last_error: String,
    },
    /// An agent reported a failure that retrying cannot fix.
    NonRetryable {
        /// The agent's reason.
        reason: String,
    },
    /// No agent could take the task for longer than the configured limit.
    Unroutable {
        /// How long it waited without an eligible agent.
        waited: Duration,
    },
    /// The task ran out of time.
    Expired {
        /// Which limit ran out.
        limit: Expiry,
    },
}

impl DeadLetterReason {
    /// The reason's variant, without its details.
    pub fn cause(&self) -> DeadLetterCause {
        match self {
            DeadLetterReason::RetriesExhausted { .. } => DeadLetterCause::RetriesExhausted,
            DeadLetterReason::NonRetryable { .. } => DeadLetterCause::NonRetryable,
            DeadLetterReason::Unroutable { .. } => DeadLetterCause::Unroutable,
            DeadLetterReason::Expired { .. } => DeadLetterCause::Expired,
        }
    }
}

/// Which time limit expired a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Expiry {
    /// Its time-to-live in the queue.
    Ttl,
    /// Its completion deadline.
    Deadline,
}
