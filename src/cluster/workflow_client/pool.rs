//! [`ClusterPool`]: a cluster seen by a workflow engine as its task pool.

use std::collections::BTreeMap;

use super::super::contract::{Message, MessageId, Outcome, TaskEnd, Verdict};
use crate::scheduler::{ReportError, TaskReport, TaskSpec};
use crate::workflow::{StepTask, TaskPool};
use crate::{AgentId, AttemptToken, Instant, Priority, TaskId, TaskRequirements};

/// The [`TaskPool`] a [`WorkflowClient`](super::WorkflowClient) lends its
/// engine: each step the engine submits becomes a [`Message::Submit`] of
/// one task to the cluster, each cancel a [`Message::Cancel`]. The engine
/// knows a step's task by a local id, handed out at once; the cluster's id
/// comes later, in the submission's verdict.
///
/// Every step task carries an idempotency key made of the client's name,
/// the run, the run's attempt token and whether it compensates, so a
/// submission whose answer was lost is posted again without a second
/// task.
pub struct ClusterPool<T> {
    /// Prefix of every idempotency key: the client's name.
    name: String,
    next: u64,
    steps: BTreeMap<TaskId, Pending<T>>,
    /// Submissions waiting for their verdict: message → local id.
    by_message: BTreeMap<MessageId, TaskId>,
    /// Tasks the cluster runs: the cluster's id → local id.
    by_remote: BTreeMap<TaskId, TaskId>,
    /// The cluster's ids of tasks to cancel.
    cancels: Vec<TaskId>,
    /// Why the cluster gave a task up, for the engine to take.
    given_up: BTreeMap<TaskId, (String, Instant)>,
    accepted: u64,
    /// Steps submitted whose payloads the client writes with their inputs
    /// before they are posted; kept only once it asked
    /// ([`WorkflowClient::with_inputs`](super::WorkflowClient::with_inputs)).
    to_fill: Option<Vec<(TaskId, StepTask)>>,
}

struct Pending<T> {
    remote: Remote<T>,
    /// The engine cancelled the step: cancel the task once its id is known.
    cancelled: bool,
}

enum Remote<T> {
    /// To post; `sent` once a post of it may have reached the store.
    Unposted { spec: TaskSpec<T>, sent: bool },
    /// Posted; its verdict names the task.
    Posted,
    /// The cluster's task.
    Known(TaskId),
}

/// What one post carried, in the order of its messages.
pub(super) enum Posting {
    Submit(TaskId),
    Cancel(TaskId),
}

impl<T> std::fmt::Debug for ClusterPool<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterPool")
            .field("name", &self.name)
            .field("steps", &self.steps.len())
            .field("awaiting_verdict", &self.by_message.len())
            .field("running", &self.by_remote.len())
            .field("cancels", &self.cancels.len())
            .finish()
    }
}

impl<T: Clone> ClusterPool<T> {
    pub(super) fn new(name: String) -> Self {
        ClusterPool {
            name,
            next: 1,
            steps: BTreeMap::new(),
            by_message: BTreeMap::new(),
            by_remote: BTreeMap::new(),
            cancels: Vec::new(),
            given_up: BTreeMap::new(),
            accepted: 0,
            to_fill: None,
        }
    }

    /// From now on, the steps submitted wait for [`fill`](Self::fill).
    pub(super) fn keep_to_fill(&mut self) {
        self.to_fill.get_or_insert_with(Vec::new);
    }

    /// Writes the payload of every step submitted since the last call and
    /// not posted yet: `payload(step)`, or the payload it has when that
    /// is `None`.
    pub(super) fn fill(&mut self, mut payload: impl FnMut(StepTask) -> Option<T>) {
        for (local, step) in self
            .to_fill
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
        {
            if let Some(Pending {
                remote: Remote::Unposted { spec, sent: false },
                ..
            }) = self.steps.get_mut(&local)
            {
                if let Some(written) = payload(step) {
                    spec.payload = written;
                }
            }
        }
    }

    /// Step tasks the pool still tracks: to post, awaiting a verdict,
    /// running on the cluster, or waiting to be cancelled there.
    pub fn tracked(&self) -> usize {
        self.steps.len()
    }

    /// Step tasks the cluster accepted so far (by their verdicts).
    pub fn accepted(&self) -> u64 {
        self.accepted
    }

    pub(super) fn has_posts(&self) -> bool {
        !self.cancels.is_empty()
            || self
                .steps
                .values()
                .any(|p| matches!(p.remote, Remote::Unposted { .. }))
    }

    /// The messages to post now — every unposted submission and every
    /// cancel — and what each one is.
    pub(super) fn take_posts(&mut self) -> (Vec<Message<T>>, Vec<Posting>) {
        let mut messages = Vec::new();
        let mut postings = Vec::new();
        for (&local, pending) in &mut self.steps {
            if let Remote::Unposted { spec, sent } = &mut pending.remote {
                *sent = true;
                messages.push(Message::Submit(vec![spec.clone()]));
                postings.push(Posting::Submit(local));
            }
        }
        for remote in self.cancels.drain(..) {
            messages.push(Message::Cancel(remote));
            postings.push(Posting::Cancel(remote));
        }
        (messages, postings)
    }

    /// The store took the post: each submission waits for its verdict. A
    /// message the answer names no id for (a store that breaks the
    /// contract) is posted again; how many were.
    pub(super) fn posted(&mut self, postings: Vec<Posting>, ids: Vec<MessageId>) -> usize {
        let mut ids = ids.into_iter();
        let mut unnamed = Vec::new();
        for posting in postings {
            match (posting, ids.next()) {
                (Posting::Submit(local), Some(id)) => {
                    if let Some(pending) = self.steps.get_mut(&local) {
                        pending.remote = Remote::Posted;
                        self.by_message.insert(id, local);
                    }
                }
                (Posting::Cancel(_), Some(_)) => {}
                (posting, None) => unnamed.push(posting),
            }
        }
        let again = unnamed.len();
        self.post_failed(unnamed);
        again
    }

    /// The post failed: its submissions are posted again (their keys make
    /// a post that did land harmless) and its cancels too.
    pub(super) fn post_failed(&mut self, postings: Vec<Posting>) {
        for posting in postings {
            if let Posting::Cancel(remote) = posting {
                self.cancels.push(remote);
            }
        }
    }

    /// Whether a verdict or an end is awaited.
    pub(super) fn has_reads(&self) -> bool {
        !self.by_message.is_empty() || !self.by_remote.is_empty()
    }

    /// Drops a task the engine no longer waits for.
    pub(super) fn forget(&mut self, local: TaskId) {
        self.steps.remove(&local);
    }

    /// Messages whose verdict is awaited.
    pub(super) fn awaiting_verdicts(&self) -> Vec<MessageId> {
        self.by_message.keys().copied().collect()
    }

    /// Takes the verdicts of `ids`; returns the local tasks the cluster
    /// refused (their reasons are kept for
    /// [`take_given_up`](TaskPool::take_given_up)).
    pub(super) fn verdicts(
        &mut self,
        ids: Vec<MessageId>,
        verdicts: Vec<Option<Verdict>>,
        now: Instant,
    ) -> Vec<TaskId> {
        let mut refused = Vec::new();
        for (id, verdict) in ids.into_iter().zip(verdicts) {
            let Some(verdict) = verdict else { continue };
            let Some(local) = self.by_message.remove(&id) else {
                continue;
            };
            let answer = match verdict {
                Verdict::Submitted(mut tasks) if tasks.len() == 1 => tasks.remove(0),
                Verdict::Refused(why) => Err(why),
                other => Err(format!("a submission answered {other:?}")),
            };
            let cancelled = self.steps.get(&local).is_none_or(|p| p.cancelled);
            self.accepted += u64::from(answer.is_ok());
            match answer {
                Ok(remote) if cancelled => {
                    self.steps.remove(&local);
                    self.cancels.push(remote);
                }
                Ok(remote) => {
                    if let Some(pending) = self.steps.get_mut(&local) {
                        pending.remote = Remote::Known(remote);
                    }
                    self.by_remote.insert(remote, local);
                }
                Err(_) if cancelled => {
                    self.steps.remove(&local);
                }
                Err(why) => {
                    self.steps.remove(&local);
                    self.given_up
                        .insert(local, (format!("the cluster refused the step: {why}"), now));
                    refused.push(local);
                }
            }
        }
        refused
    }

    /// The cluster's tasks whose end is awaited.
    pub(super) fn running(&self) -> Vec<TaskId> {
        self.by_remote.keys().copied().collect()
    }

    /// Takes the outcomes of `remotes`; returns each ended task's local
    /// id and outcome. A task that did not complete is forgotten here, its
    /// reason kept for [`take_given_up`](TaskPool::take_given_up); a
    /// completed one stays until the engine's report.
    pub(super) fn ended(
        &mut self,
        remotes: Vec<TaskId>,
        outcomes: Vec<Option<Outcome<T>>>,
        now: Instant,
    ) -> Vec<(TaskId, Outcome<T>)> {
        let mut out = Vec::new();
        for (remote, outcome) in remotes.into_iter().zip(outcomes) {
            let Some(outcome) = outcome else { continue };
            let Some(local) = self.by_remote.remove(&remote) else {
                continue;
            };
            if outcome.end != TaskEnd::Completed {
                self.steps.remove(&local);
                self.given_up.insert(local, (outcome.end.to_string(), now));
            }
            out.push((local, outcome));
        }
        out
    }

    fn key(&self, step: &StepTask) -> String {
        let kind = if step.compensation {
            "compensate"
        } else {
            "run"
        };
        format!(
            "{}/{}/{}/{kind}",
            self.name,
            step.run.get(),
            step.token.get()
        )
    }
}

impl<T: Clone + From<StepTask>> TaskPool for ClusterPool<T> {
    fn submit_step(
        &mut self,
        step: StepTask,
        priority: Priority,
        requirements: TaskRequirements,
        _now: Instant,
    ) -> Result<TaskId, String> {
        let local = TaskId::new(self.next);
        self.next += 1;
        // One attempt: the step's own retry policy is the only one applied
        // (each of its attempts is a task of its own). For the same reason
        // an operator's redrive leaves its dead letter: requeued, it would
        // run again outside its run, after the run moved on.
        let spec = TaskSpec::new(T::from(step))
            .priority(priority)
            .requirements(requirements)
            .idempotency_key(self.key(&step))
            .max_attempts(1)
            .no_redrive();
        let remote = Remote::Unposted { spec, sent: false };
        if let Some(to_fill) = &mut self.to_fill {
            to_fill.push((local, step));
        }
        self.steps.insert(
            local,
            Pending {
                remote,
                cancelled: false,
            },
        );
        Ok(local)
    }

    /// Queues the cancel of the cluster's task (once its id is known).
    /// Always `None`: the cluster stops the attempt and tells its agent.
    fn cancel_task(&mut self, task: TaskId, _now: Instant) -> Option<(AgentId, AttemptToken)> {
        let pending = self.steps.get_mut(&task)?;
        match pending.remote {
            Remote::Unposted { sent: false, .. } => {
                self.steps.remove(&task);
            }
            Remote::Known(remote) => {
                self.steps.remove(&task);
                self.by_remote.remove(&remote);
                self.cancels.push(remote);
            }
            Remote::Unposted { sent: true, .. } | Remote::Posted => pending.cancelled = true,
        }
        None
    }

    /// Accepts a report on a task the cluster completed (the client
    /// reports it, with placeholder agent and token: the agent reported to
    /// the cluster, which checked them).
    fn verify_report(&self, task: TaskId, _: AgentId, _: AttemptToken) -> Result<(), ReportError> {
        match self.steps.get(&task) {
            Some(Pending {
                remote: Remote::Known(_),
                cancelled: false,
            }) => Ok(()),
            _ => Err(ReportError::UnknownTask(task)),
        }
    }

    fn report(&mut self, report: TaskReport, _now: Instant) -> Result<(), ReportError> {
        self.steps.remove(&report.task);
        Ok(())
    }

    fn take_given_up(&mut self, task: TaskId) -> Option<(String, Instant)> {
        self.given_up.remove(&task)
    }
}
