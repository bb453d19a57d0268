//! Every input to the dispatcher as a value, and [`Dispatcher::apply`],
//! which applies one.
//!
//! A host that records each [`Input`] it applies (to a file, a log, a
//! replicated journal) can rebuild the dispatcher exactly: replaying the
//! recorded inputs into a fresh [`Dispatcher`] with the same configuration,
//! seed and strategy yields the identical action sequence and state, because
//! the dispatcher reads no clock and draws randomness only from its seeded
//! source.
//!
//! ```
//! use taskweave::agent::AgentProfile;
//! use taskweave::scheduler::{Dispatcher, DispatcherConfig, Input, TaskSpec};
//! use taskweave::{AgentId, Instant};
//!
//! let journal = vec![
//!     Input::RegisterAgent { agent: AgentId::new(1), profile: AgentProfile::builder().build()?, now: Instant::ZERO },
//!     Input::Submit { spec: TaskSpec::new("a"), now: Instant::from_secs(1) },
//!     Input::HandleTimeout { now: Instant::from_secs(2) },
//! ];
//! let run = |inputs: &[Input<&'static str>]| {
//!     let mut d = Dispatcher::new(DispatcherConfig::default());
//!     let mut actions = Vec::new();
//!     for input in inputs.iter().cloned() {
//!         let _ = d.apply(input);
//!         actions.extend(std::iter::from_fn(|| d.poll_action()));
//!     }
//!     actions
//! };
//! assert_eq!(run(&journal), run(&journal));
//! # Ok::<(), taskweave::Error>(())
//! ```

use crate::agent::{AgentProfile, AgentStatus};
use crate::routing::RoutingStrategy;
use crate::scheduler::{
    ApplyError, DeadLetterFilter, Dispatcher, Redriven, SubmitError, Submitted, TaskReport,
    TaskSpec,
};
use crate::{AgentId, Instant, TaskId};

/// One input to a [`Dispatcher`], with the instant it happened.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Input<P> {
    /// [`Dispatcher::submit`].
    Submit {
        /// The task.
        spec: TaskSpec<P>,
        /// When.
        now: Instant,
    },
    /// [`Dispatcher::submit_batch`].
    SubmitBatch {
        /// The tasks.
        specs: Vec<TaskSpec<P>>,
        /// When.
        now: Instant,
    },
    /// [`Dispatcher::cancel`].
    Cancel {
        /// The task.
        task: TaskId,
        /// When.
        now: Instant,
    },
    /// [`Dispatcher::report`].
    Report {
        /// The report.
        report: TaskReport,
        /// When.
        now: Instant,
    },
    /// [`Dispatcher::register_agent`].
    RegisterAgent {
        /// The agent.
        agent: AgentId,
        /// Its profile.
        profile: AgentProfile,
        /// When.
        now: Instant,
    },
    /// [`Dispatcher::unregister_agent`].
    UnregisterAgent {
        /// The agent.
        agent: AgentId,
        /// When.
        now: Instant,
    },
    /// [`Dispatcher::set_agent_status`].
    SetAgentStatus {
        /// The agent.
        agent: AgentId,
        /// Its new status.
        status: AgentStatus,
        /// When.
        now: Instant,
    },
    /// [`Dispatcher::heartbeat`].
    Heartbeat {
        /// The agent.
        agent: AgentId,
        /// When.
        now: Instant,
    },
    /// [`Dispatcher::handle_timeout`].
    HandleTimeout {
        /// When.
        now: Instant,
    },
    /// [`Dispatcher::excuse_silence`] (format 3 on).
    ExcuseSilence {
        /// When.
        now: Instant,
    },
    /// [`Dispatcher::requeue_dead_letter`].
    RequeueDeadLetter {
        /// The dead-lettered task.
        task: TaskId,
        /// When.
        now: Instant,
    },
    /// [`Dispatcher::redrive_dead_letters`].
    RedriveDeadLetters {
        /// Which letters.
        filter: DeadLetterFilter,
        /// When.
        now: Instant,
    },
}

impl<P> Input<P> {
    /// The stored form of an input this library writes. A host that keeps
    /// a journal stores it beside its entries, and reads back only the
    /// formats in [`READABLE`](Self::READABLE); it changes whenever a
    /// build that reads the formats before it could not read what this
    /// one writes (README, "Compatibility of stored state"). Format 3
    /// adds [`Input::ExcuseSilence`]; format 2 leaves a task spec's fields
    /// out at their defaults; format 1 wrote them all.
    pub const FORMAT: u32 = 3;

    /// The stored forms of an input this library reads: a journal written
    /// in any of them reads back and replays the same.
    pub const READABLE: std::ops::RangeInclusive<u32> = 1..=Self::FORMAT;

    /// The instant the input happened.
    pub fn now(&self) -> Instant {
        match self {
            Input::Submit { now, .. }
            | Input::SubmitBatch { now, .. }
            | Input::Cancel { now, .. }
            | Input::Report { now, .. }
            | Input::RegisterAgent { now, .. }
            | Input::UnregisterAgent { now, .. }
            | Input::SetAgentStatus { now, .. }
            | Input::Heartbeat { now, .. }
            | Input::HandleTimeout { now }
            | Input::ExcuseSilence { now }
            | Input::RequeueDeadLetter { now, .. }
            | Input::RedriveDeadLetters { now, .. } => *now,
        }
    }
}

/// What applying an [`Input`] returned.
#[derive(Debug, PartialEq)]
#[must_use = "a cancelled task's payload and requeued tasks are handed back here"]
pub enum Applied<P> {
    /// Nothing to return.
    Done,
    /// A submission's result.
    Submitted(Submitted),
    /// The results of a batch, in order; each refused task is handed back
    /// in its error.
    Batch(Vec<Result<Submitted, SubmitError<P>>>),
    /// The payload of a cancelled task.
    Cancelled(P),
    /// Tasks requeued from an agent taken out of service.
    Requeued(Vec<TaskId>),
    /// Dead letters requeued by a filter, and those refused.
    Redriven(Redriven),
}

impl<P, S: RoutingStrategy> Dispatcher<P, S> {
    /// The work of [`apply`](Self::apply), whose docs say what it does.
    pub(in crate::scheduler) fn apply_input(
        &mut self,
        input: Input<P>,
    ) -> Result<Applied<P>, ApplyError<P>> {
        Ok(match input {
            Input::Submit { spec, now } => Applied::Submitted(self.submit(spec, now)?),
            Input::SubmitBatch { specs, now } => Applied::Batch(self.submit_batch(specs, now)),
            Input::Cancel { task, now } => Applied::Cancelled(self.cancel(task, now)?),
            Input::Report { report, now } => {
                self.report(report, now)?;
                Applied::Done
            }
            Input::RegisterAgent {
                agent,
                profile,
                now,
            } => {
                self.register_agent(agent, profile, now)?;
                Applied::Done
            }
            Input::UnregisterAgent { agent, now } => {
                Applied::Requeued(self.unregister_agent(agent, now)?)
            }
            Input::SetAgentStatus { agent, status, now } => {
                Applied::Requeued(self.set_agent_status(agent, status, now)?)
            }
            Input::Heartbeat { agent, now } => {
                self.heartbeat(agent, now)?;
                Applied::Done
            }
            Input::HandleTimeout { now } => {
                self.handle_timeout(now);
                Applied::Done
            }
            Input::ExcuseSilence { now } => {
                self.excuse_silence(now);
                Applied::Done
            }
            Input::RequeueDeadLetter { task, now } => {
                Applied::Submitted(self.requeue_dead_letter(task, now)?)
            }
            Input::RedriveDeadLetters { filter, now } => {
                Applied::Redriven(self.redrive_dead_letters(&filter, now))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::{DispatcherConfig, SubmitErrorKind};

    fn full_queue() -> Dispatcher<&'static str> {
        let config = DispatcherConfig::builder()
            .queue_capacity(1)
            .build()
            .unwrap();
        let mut d = Dispatcher::new(config);
        let _ = d.submit(TaskSpec::new("first"), Instant::ZERO).unwrap();
        d
    }

    #[test]
    fn a_refused_submission_hands_its_task_back() {
        let mut d = full_queue();
        let input = Input::Submit {
            spec: TaskSpec::new("refused"),
            now: Instant::ZERO,
        };
        let error = d.apply(input).unwrap_err();
        assert!(
            matches!(&error, ApplyError::Submit(e) if e.kind == SubmitErrorKind::QueueFull { capacity: 1 })
        );
        assert_eq!(error.into_spec().map(|spec| spec.payload), Some("refused"));
    }

    #[test]
    fn a_batch_hands_back_each_refused_task_in_order() {
        let mut d = full_queue();
        let input = Input::SubmitBatch {
            specs: vec![TaskSpec::new("a"), TaskSpec::new("b")],
            now: Instant::ZERO,
        };
        let Ok(Applied::Batch(results)) = d.apply(input) else {
            panic!("a batch input applies as a batch");
        };
        let refused: Vec<_> = results
            .into_iter()
            .map(|r| r.unwrap_err().spec.payload)
            .collect();
        assert_eq!(refused, ["a", "b"]);
    }
}
