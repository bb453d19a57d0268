//! A task's scheduling options: a start time, a fair share, concurrency
//! keys, a cost and metadata. Held by [`TaskSpec`](crate::scheduler::TaskSpec) behind
//! one pointer, so a task that uses none of them moves and checks one word.

use super::key_name::KeyName;
use super::metadata::Metadata;
use crate::{Instant, TenantId};

/// Most concurrency keys one task may carry.
pub const MAX_CONCURRENCY_KEYS: usize = 8;
/// Longest fair-share or concurrency key, in bytes.
pub const MAX_KEY_BYTES: usize = 256;

/// The scheduling options of a task, each off by default
/// ([`TaskOptions::NONE`]). Set them with the builder methods of
/// [`TaskSpec`](crate::scheduler::TaskSpec) (`not_before`, `fairness`,
/// `concurrency_key`, `cost`, `metadata`), or all at once:
///
/// ```
/// use taskweave::scheduler::{TaskOptions, TaskSpec};
/// use taskweave::Instant;
///
/// let spec = TaskSpec::new("digest").with_options(TaskOptions {
///     not_before: Some(Instant::from_secs(60)),
///     cost: 3,
///     ..TaskOptions::NONE
/// });
/// assert_eq!(spec.options().cost, 3);
/// assert_eq!(TaskSpec::new("plain").options(), &TaskOptions::NONE);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct TaskOptions {
    /// The task is not dispatched before this instant: it waits as
    /// [`TaskState::Delayed`](crate::scheduler::TaskState::Delayed), and
    /// [`poll_timeout`](crate::scheduler::Dispatcher::poll_timeout) wakes the host for
    /// it. Its TTL counts from here; its deadline still holds (a start at or
    /// after the deadline is refused at submission).
    pub not_before: Option<Instant>,
    /// The fair-share key (a tenant, a customer) and its weight: within a
    /// priority level, keys are served in proportion to their weights.
    pub fairness: Option<FairShare>,
    /// Concurrency keys (a provider, a customer): a key with a limit set on
    /// the dispatcher ([`DispatcherConfigBuilder::concurrency_limit`](crate::scheduler::DispatcherConfigBuilder::concurrency_limit))
    /// caps the tasks holding it in flight. At most
    /// [`MAX_CONCURRENCY_KEYS`] keys of at most [`MAX_KEY_BYTES`] bytes.
    pub concurrency_keys: Vec<KeyName>,
    /// What one attempt costs against rate limits (tokens, requests,
    /// bytes): every kind, agent and concurrency-key rate limit takes this
    /// many cells. Default 1; must be at least 1 and at most each
    /// applicable limit's burst.
    pub cost: u32,
    /// Host metadata, handed back with every assignment
    /// ([`Dispatcher::metadata`](crate::scheduler::Dispatcher::metadata)).
    pub metadata: Metadata,
    /// The most attempts the task is ever handed out, whatever the
    /// dispatcher's retry policy allows: once this many were, a failure,
    /// a lost agent or a preemption dead-letters it
    /// ([`DeadLetterReason::RetriesExhausted`](crate::scheduler::DeadLetterReason::RetriesExhausted)).
    /// `None`: the policy alone decides. At least 1.
    pub max_attempts: Option<u32>,
    /// A fingerprint of the payload (a hash of its stored form), for the
    /// idempotency key: a second submission of the key within its window
    /// with **another** fingerprint is refused
    /// ([`SubmitErrorKind::KeyConflict`](crate::scheduler::SubmitErrorKind::KeyConflict))
    /// instead of answering the first task while its payload is dropped.
    /// `None` (either side): the key alone decides, as before. A store
    /// sets it from the payload it decodes (`taskweave-postgres` does), so
    /// a submitter cannot forge it.
    pub payload_fingerprint: Option<u64>,
    /// The tenant that owns the task: its idempotency key is scoped to the
    /// tenant (another tenant's same key is another key), and the
    /// tenant's quota ([`DispatcherConfigBuilder::tenant_quota`](crate::scheduler::DispatcherConfigBuilder::tenant_quota))
    /// applies. `None`: no tenant, no quota; keys share one scope.
    pub tenant: Option<TenantId>,
    /// Its dead letter is never requeued by
    /// [`redrive_dead_letters`](crate::scheduler::Dispatcher::redrive_dead_letters)
    /// or [`requeue_dead_letter`](crate::scheduler::Dispatcher::requeue_dead_letter):
    /// both refuse it ([`SubmitErrorKind::NotRedrivable`](crate::scheduler::SubmitErrorKind::NotRedrivable))
    /// and leave it in the dead-letter queue. For work whose submitter
    /// retries it its own way: a cluster's workflow step, whose run's
    /// policy decides whether it runs again, would otherwise run once more
    /// outside its run (after the run compensated it, say). `false`: any
    /// letter may be redriven.
    pub no_redrive: bool,
}

impl TaskOptions {
    /// No option set: no start time, fair share or keys, cost 1, no
    /// metadata.
    pub const NONE: TaskOptions = TaskOptions {
        not_before: None,
        fairness: None,
        concurrency_keys: Vec::new(),
        cost: 1,
        metadata: Metadata::new(),
        max_attempts: None,
        payload_fingerprint: None,
        tenant: None,
        no_redrive: false,
    };
}

impl Default for TaskOptions {
    fn default() -> Self {
        Self::NONE
    }
}

/// A task's fair-share key and weight ([`TaskSpec::fairness`](crate::scheduler::TaskSpec::fairness)).
///
/// Within one priority level, the dispatcher serves the keys with waiting
/// tasks in deficit round robin: each key in turn takes up to `weight`
/// tasks, oldest first. Over any stretch in which keys stay backlogged,
/// each gets `weight / Σ weights` of the dispatches, whatever the length of
/// its queue; tasks without a key share one lane of weight 1. A key's
/// weight is the one its most recently queued task carried.
///
/// ```
/// use taskweave::agent::AgentProfile;
/// use taskweave::scheduler::{Action, AttemptOutcome, Dispatcher, DispatcherConfig, TaskReport, TaskSpec};
/// use taskweave::{AgentId, Instant};
///
/// let mut d = Dispatcher::new(DispatcherConfig::default());
/// let now = Instant::ZERO;
/// // A big tenant queues 100 tasks, then a small one queues 2.
/// for _ in 0..100 {
///     let _ = d.submit(TaskSpec::new("big").fairness("big", 1), now)?;
/// }
/// for _ in 0..2 {
///     let _ = d.submit(TaskSpec::new("small").fairness("small", 1), now)?;
/// }
/// d.register_agent(AgentId::new(1), AgentProfile::builder().capacity(1).build()?, now)?;
/// let mut order = Vec::new();
/// for _ in 0..4 {
///     let Some(Action::Assign { task, agent, token, .. }) = d.poll_action() else { unreachable!() };
///     order.push(*d.payload(task).unwrap());
///     d.report(TaskReport { task, agent, token, outcome: AttemptOutcome::Success }, now)?;
/// }
/// // The small tenant does not wait behind the big one's backlog.
/// assert_eq!(order, ["big", "small", "big", "small"]);
/// # Ok::<(), taskweave::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct FairShare {
    /// The key (tenant, customer, …).
    pub key: KeyName,
    /// Its weight, at least 1.
    pub weight: u16,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::TaskSpec;

    #[test]
    fn explicit_default_options_equal_unset_ones() {
        let explicit = {
            let mut spec = TaskSpec::new(1u8);
            *spec.options_mut() = TaskOptions::NONE;
            spec
        };
        assert!(!explicit.is_plain());
        assert_eq!(explicit, TaskSpec::new(1u8));
        assert!(
            TaskSpec::new(1u8)
                .with_options(TaskOptions::NONE)
                .is_plain()
        );
    }
}
