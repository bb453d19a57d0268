//! A dispatcher rebuilt from the store: the latest snapshot, then every
//! journal entry after it, in order. Followers and the leader are both a
//! replica; the leader applies its batch before committing it and throws
//! the replica away if the commit fails.

use std::collections::{BTreeMap, BTreeSet};

use crate::hash::IdMap;
use crate::scheduler::{
    Action, Applied, Dispatcher, DispatcherConfig, Input, ScalePolicy, Submitted, TaskState,
};
use crate::{AgentId, Instant, Priority, TaskId, WorkflowId};

use super::super::contract::{Assignment, Entry, NodeState, Outputs, RunEnd, TaskEnd};
use super::super::incarnation::registered_incarnation;
use super::super::runs::{HostedRuns, RunCodec};
use super::task_tenants::TaskTenants;

/// What applying an entry did.
pub(crate) enum Effect<P> {
    /// The dispatcher applied it.
    Applied(Applied<P>),
    /// A run's start named this run.
    Run(WorkflowId),
    /// Applied, with nothing to answer.
    Done,
}

/// One entry applied: its effect or why it was refused, and what it
/// decided for the outbox and the clients.
pub(crate) struct Step<P> {
    pub(crate) result: Result<Effect<P>, String>,
    pub(crate) actions: Vec<Action>,
    pub(crate) ended: Vec<RunEnd<P>>,
}

/// The journal applied so far.
pub(crate) struct Replica<P> {
    /// The state machine.
    pub(crate) dispatcher: Dispatcher<P>,
    /// The next journal entry to apply.
    pub(crate) next_seq: u64,
    /// A drain was journaled.
    pub(crate) draining: bool,
    /// When each task applied since the restore was submitted, for the
    /// status's oldest queued task; pruned when the status is read.
    submitted_at: BTreeMap<TaskId, Instant>,
    /// The clock of the restored snapshot: the submission time assumed
    /// for tasks it held.
    restored_at: Instant,
    /// The hosted runs, on a node that hosts them.
    runs: Option<HostedRuns<P>>,
    /// The tenant of each task that has one, for the ends a commit
    /// publishes.
    tenants: TaskTenants,
}

impl<P: Clone> Replica<P> {
    /// A replica with an empty journal, hosting runs with `codec` if
    /// there is one.
    pub(crate) fn empty(config: DispatcherConfig, codec: Option<RunCodec<P>>) -> Self {
        let dispatcher = Dispatcher::new(config);
        Replica {
            tenants: TaskTenants::of_live(&dispatcher),
            dispatcher,
            next_seq: 1,
            draining: false,
            submitted_at: BTreeMap::new(),
            restored_at: Instant::ZERO,
            runs: codec.map(HostedRuns::new),
        }
    }

    /// A replica at the snapshot taken after entry `seq`.
    ///
    /// # Errors
    ///
    /// The reason the snapshot does not restore.
    pub(crate) fn restore(
        config: DispatcherConfig,
        codec: Option<RunCodec<P>>,
        seq: u64,
        state: NodeState<P>,
    ) -> Result<Self, String> {
        let strategy: Box<dyn crate::routing::RoutingStrategy + Send> =
            Box::new(crate::routing::LeastLoaded::new());
        let dispatcher = Dispatcher::restore(config, strategy, state.dispatcher)
            .map_err(|e| format!("the snapshot after entry {seq} does not restore: {e}"))?;
        let runs = match (codec, state.runs) {
            (None, None) => None,
            (Some(codec), None) => Some(HostedRuns::new(codec)),
            (Some(codec), Some(runs)) => Some(
                HostedRuns::restore(codec, runs)
                    .map_err(|e| format!("the snapshot after entry {seq}: {e}"))?,
            ),
            (None, Some(_)) => {
                return Err(format!(
                    "the snapshot after entry {seq} holds hosted runs, but this node hosts \
                     none: build every node of the cluster with Node::host_runs"
                ));
            }
        };
        let restored_at = dispatcher.clock();
        let mut tenants = TaskTenants::of_live(&dispatcher);
        for (task, tenant) in runs.iter().flat_map(HostedRuns::step_tenants) {
            tenants.note_as(task, tenant);
        }
        Ok(Replica {
            tenants,
            dispatcher,
            next_seq: seq.saturating_add(1),
            // A leader takes no snapshot once draining, so the drain is
            // always in the journal behind the latest snapshot.
            draining: false,
            submitted_at: BTreeMap::new(),
            restored_at,
            runs,
        })
    }

    /// The state to snapshot.
    pub(crate) fn state(&self) -> NodeState<P> {
        NodeState {
            dispatcher: self.dispatcher.snapshot(),
            runs: self.runs.as_ref().map(HostedRuns::snapshot),
        }
    }

    /// What this state handed out: ids an earlier state of it must not
    /// hand out again ([`Entry::SkipIds`]).
    pub(crate) fn issued(&self) -> super::went_back::Issued {
        super::went_back::Issued {
            tasks: self.dispatcher.past_issued_ids(),
            runs: self.engine().map_or(0, |engine| engine.past_issued_runs()),
        }
    }

    /// The hosted runs' engine.
    pub(crate) fn engine(&self) -> Option<&crate::workflow::WorkflowEngine<P>> {
        self.runs.as_ref().map(HostedRuns::engine)
    }

    /// The hosted runs, on a node that hosts them.
    pub(crate) fn hosted(&self) -> Option<&HostedRuns<P>> {
        self.runs.as_ref()
    }

    /// The hosted runs, on a node that hosts them.
    pub(crate) fn hosted_mut(&mut self) -> Option<&mut HostedRuns<P>> {
        self.runs.as_mut()
    }

    /// The hosted runs by state, on a node that hosts them.
    pub(crate) fn runs_status(&self) -> Option<super::super::status::RunsStatus> {
        let engine = self.engine()?;
        let compensating = engine.runs().filter(|run| run.is_compensating()).count();
        Some(super::super::status::RunsStatus {
            running: (engine.active_runs() - compensating) as u64,
            compensating: compensating as u64,
            finished: engine.finished_runs() as u64,
            workflows: engine.registered().count() as u64,
        })
    }

    /// Whether `task` is a hosted run's step.
    pub(crate) fn is_step(&self, task: TaskId) -> bool {
        self.runs.as_ref().is_some_and(|runs| runs.owns(task))
    }

    /// Active hosted runs.
    pub(crate) fn active_runs(&self) -> usize {
        self.runs.as_ref().map_or(0, HostedRuns::active)
    }

    /// Whether a hosted run's timer is due at `now`.
    /// The next instant a timer of the state is due: the dispatcher's
    /// (heartbeats, backoffs, deadlines) or the runs' (waits, schedules).
    pub(crate) fn next_timer(&self) -> Option<Instant> {
        let runs = self.runs.as_ref().and_then(|runs| runs.next_due());
        [self.dispatcher.poll_timeout(), runs]
            .into_iter()
            .flatten()
            .min()
    }

    pub(crate) fn runs_due(&self, now: Instant) -> bool {
        self.runs.as_ref().is_some_and(|runs| runs.due(now))
    }

    /// Applies one entry: what it did, and every action it produced.
    pub(crate) fn apply(&mut self, entry: Entry<P>) -> Step<P> {
        self.next_seq = self.next_seq.saturating_add(1);
        // Every end so far is published: the leader publishes each entry's
        // before it applies the next, and a follower publishes none.
        self.tenants.forget_ended(&self.dispatcher);
        let now = entry.now();
        let dispatcher = &mut self.dispatcher;
        let applied = |result: Result<Applied<P>, _>| {
            result
                .map(Effect::Applied)
                .map_err(|e: crate::scheduler::ApplyError<P>| e.to_string())
        };
        let result = match (entry, self.runs.as_mut()) {
            (Entry::Drain { .. }, runs) => {
                self.draining = true;
                if let Some(runs) = runs {
                    runs.drain();
                }
                Ok(Effect::Done)
            }
            (
                Entry::Run {
                    command,
                    tenant,
                    now,
                },
                Some(runs),
            ) => runs
                .command(dispatcher, command, tenant, now)
                .map(|run| run.map_or(Effect::Done, Effect::Run)),
            (Entry::RunTimers { now }, Some(runs)) => {
                runs.timers(dispatcher, now);
                Ok(Effect::Done)
            }
            (Entry::Run { .. } | Entry::RunTimers { .. }, None) => Err(NO_RUNS.to_owned()),
            (
                Entry::SkipIds {
                    tasks, runs: next, ..
                },
                runs,
            ) => {
                dispatcher.skip_issued_ids(tasks);
                if let Some(runs) = runs {
                    runs.skip_issued_runs(next);
                }
                Ok(Effect::Done)
            }
            // A step's report goes to its run, which reports it to the
            // dispatcher; a follower rebuilds the same from the entry.
            (
                Entry::Completed {
                    report,
                    output,
                    now,
                },
                Some(runs),
            ) if runs.owns(report.task) => runs
                .report(dispatcher, report, Some(output), now)
                .map(|()| Effect::Done),
            (Entry::Input(Input::Report { report, now }), Some(runs)) if runs.owns(report.task) => {
                runs.report(dispatcher, report, None, now)
                    .map(|()| Effect::Done)
            }
            // The output is the leader's to publish (intake), and a
            // follower's to forget: the dispatcher keeps ends, not results.
            (Entry::Completed { report, now, .. }, _) => {
                applied(dispatcher.apply(Input::Report { report, now }))
            }
            (Entry::Input(input), _) => {
                let now = input.now();
                let result = dispatcher.apply(input);
                // Every task this input made new (a submission, or a dead
                // letter requeued) is noted as a submission's.
                let (submitted_at, tenants) = (&mut self.submitted_at, &mut self.tenants);
                let mut note = |task: TaskId| {
                    submitted_at.insert(task, now);
                    tenants.note(dispatcher, task);
                };
                match &result {
                    Ok(Applied::Batch(results)) => {
                        for submitted in results.iter().flatten() {
                            if let Submitted::New(task) = *submitted {
                                note(task);
                            }
                        }
                    }
                    Ok(Applied::Submitted(Submitted::New(task))) => note(*task),
                    Ok(Applied::Redriven(redriven)) => {
                        redriven.requeued.iter().for_each(|&(_, task)| note(task));
                    }
                    _ => {}
                }
                applied(result)
            }
        };
        let (actions, ended) = match &mut self.runs {
            Some(runs) => {
                let settled = runs.settle(&mut self.dispatcher, now);
                for (task, tenant) in settled.step_tenants {
                    self.tenants.note_as(task, tenant);
                }
                (settled.actions, settled.ended)
            }
            None => {
                let actions = std::iter::from_fn(|| self.dispatcher.poll_action()).collect();
                (actions, Vec::new())
            }
        };
        Step {
            result,
            actions,
            ended,
        }
    }

    /// Watches the scale pools a status carries hints for.
    pub(crate) fn watch(&mut self, pools: &[(String, BTreeSet<String>, ScalePolicy)]) {
        for (name, capabilities, policy) in pools {
            // The names are unique (NodeConfig checks them) and the
            // replica new: no pool is watched yet, so none is refused.
            let _ = self
                .dispatcher
                .watch_pool(name.clone(), capabilities.iter().cloned(), *policy);
        }
    }

    /// The submission instant of the oldest queued task; forgets tasks
    /// that are no longer live. One pass over the tasks it remembers,
    /// `O(n)` for `n` live tasks; a queued task it never saw submitted
    /// (restored from a snapshot) counts from the restore.
    pub(crate) fn oldest_queued(&mut self) -> Option<Instant> {
        let dispatcher = &self.dispatcher;
        let (mut oldest, mut seen) = (None::<Instant>, 0usize);
        self.submitted_at
            .retain(|&task, &mut at| match dispatcher.task_state(task) {
                Some(TaskState::Queued) => {
                    seen += 1;
                    oldest = Some(oldest.map_or(at, |o| o.min(at)));
                    true
                }
                Some(state) => is_live(&state),
                None => false,
            });
        let queued: usize = Priority::ALL
            .iter()
            .map(|&p| dispatcher.queue_depth(p))
            .sum();
        if seen < queued {
            oldest = Some(oldest.map_or(self.restored_at, |o| o.min(self.restored_at)));
        }
        oldest
    }

    /// What `action` means for the outbox, added to `out`.
    pub(crate) fn publish(&self, action: &Action, out: &mut Outputs<P>) {
        match *action {
            Action::Assign {
                task,
                agent,
                token,
                attempt,
            } => {
                // An attempt just handed out always has its payload.
                if let Some(payload) = self.dispatcher.payload(task) {
                    out.assign.push(Assignment {
                        task,
                        agent,
                        token,
                        attempt,
                        incarnation: self.incarnation(agent),
                        payload: payload.clone(),
                    });
                }
            }
            Action::Cancel { task, token, .. } => out.cancel.push((task, token)),
            Action::DeadLettered { task, ref reason } => {
                self.publish_end(task, TaskEnd::DeadLettered(reason.clone()), out);
            }
            Action::Expired { task, limit } => {
                self.publish_end(task, TaskEnd::Expired(limit), out);
            }
            Action::AgentLost { .. } => {}
        }
    }

    /// Publishes that each dead letter of `requeued` was requeued as its
    /// new task, for the new task's tenant (the letter's own: the
    /// dispatcher forgot the letter's, a redriven task keeps it). A letter
    /// whose end this commit publishes already has that end replaced: a
    /// commit publishes one end per task.
    pub(crate) fn publish_redriven(&self, requeued: &[(TaskId, TaskId)], out: &mut Outputs<P>) {
        let published: IdMap<TaskId, usize> = (out.ended.iter().enumerate())
            .map(|(at, &(task, _))| (task, at))
            .collect();
        for &(letter, new) in requeued {
            match published.get(&letter) {
                Some(&at) => out.ended[at].1 = TaskEnd::Redriven(new),
                None => out.ended.push((letter, TaskEnd::Redriven(new))),
            }
            if let Some(tenant) = self.tenants.get(new) {
                out.tenants.push((letter, tenant));
            }
        }
    }

    /// Publishes how `task` ended, confined to its tenant if it has one.
    pub(crate) fn publish_end(&self, task: TaskId, end: TaskEnd, out: &mut Outputs<P>) {
        out.ended.push((task, end));
        if let Some(tenant) = self.tenants.get(task) {
            out.tenants.push((task, tenant));
        }
    }

    /// The incarnation `agent` registered with (0, any, for an agent that
    /// registered without one).
    fn incarnation(&self, agent: AgentId) -> u64 {
        registered_incarnation(self.dispatcher.registry(), agent)
    }

    /// Every attempt in flight, as outbox rows.
    pub(crate) fn in_flight(&self) -> Vec<Assignment<P>> {
        self.dispatcher
            .iter_live_tasks()
            .filter_map(|(task, state, _, _)| match state {
                TaskState::InFlight {
                    agent,
                    token,
                    attempt,
                } => Some(Assignment {
                    task,
                    agent,
                    token,
                    attempt,
                    incarnation: self.incarnation(agent),
                    payload: self.dispatcher.payload(task)?.clone(),
                }),
                _ => None,
            })
            .collect()
    }
}

/// Why a run command is refused on a node without runs.
const NO_RUNS: &str = "this cluster hosts no workflow runs: build its nodes with Node::host_runs \
                       (every node of a cluster with the same codec)";

fn is_live(state: &TaskState) -> bool {
    matches!(
        state,
        TaskState::Queued | TaskState::Delayed { .. } | TaskState::InFlight { .. }
    )
}

#[cfg(test)]
#[path = "replica_tests.rs"]
mod tests;
