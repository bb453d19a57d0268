//! [`Redrive`]: which dead letters an operator sends back to the queue
//! ([`Message::Redrive`](super::Message::Redrive)).

use crate::TaskId;
use crate::scheduler::DeadLetterFilter;

/// Which dead letters a [`Message::Redrive`](super::Message::Redrive)
/// requeues. Each requeued letter becomes a new task (a new id, the old
/// letter kept as its history, no deadline), as
/// [`Dispatcher::requeue_dead_letter`](crate::scheduler::Dispatcher::requeue_dead_letter)
/// and [`Dispatcher::redrive_dead_letters`](crate::scheduler::Dispatcher::redrive_dead_letters)
/// do; the verdict ([`Verdict::Redriven`](super::Verdict::Redriven)) pairs
/// each old id with its new one.
///
/// ```
/// use taskweave::TaskId;
/// use taskweave::cluster::{Message, Redrive};
/// use taskweave::scheduler::{DeadLetterCause, DeadLetterFilter};
///
/// let one: Message<String> = Message::Redrive(Redrive::Task(TaskId::new(7)));
/// let failed_for_good = DeadLetterFilter::new().cause(DeadLetterCause::NonRetryable);
/// let many: Message<String> = Message::Redrive(Redrive::Matching(failed_for_good));
/// # let _ = (one, many);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Redrive {
    /// The letter of this task.
    Task(TaskId),
    /// Every letter the filter matches, oldest first.
    Matching(DeadLetterFilter),
}
