//! How the engine moves its runs: a run's actions become pool tasks, child
//! runs and engine actions; a finished run reports to its parent or the
//! host; a task the pool gave up on fails its attempt.

use std::collections::VecDeque;
use std::sync::Arc;

use super::{EngineAction, StepTask, Tracked, WorkflowEngine};
use crate::workflow::{
    RunAction, RunOutcome, StepDef, StepFailure, StepKind, StepOutput, TaskPool,
};
use crate::{AttemptToken, Instant, StepId, TaskId, TaskRequirements, WorkflowId};

impl<P: Clone> WorkflowEngine<P> {
    /// Turns a run's pending actions into dispatcher tasks, child runs and
    /// engine actions, then files its next timer.
    pub(super) fn pump(&mut self, pool: &mut impl TaskPool, id: WorkflowId, now: Instant) {
        let mut batch: VecDeque<RunAction> = VecDeque::new();
        loop {
            let Some(entry) = self.runs.get_mut(&id) else {
                return;
            };
            let action = match batch.pop_front() {
                Some(action) => action,
                None => {
                    let Some(action) = entry.run.poll_action() else {
                        break;
                    };
                    if matches!(action, RunAction::Cancel { .. }) {
                        // Cancels come in runs (a cancelled run, a decided
                        // join): within one, queued steps go first, so a
                        // slot an attempt frees never goes to a step about
                        // to be cancelled.
                        batch.push_back(action);
                        let mut after = None;
                        while let Some(next) = entry.run.poll_action() {
                            if !matches!(next, RunAction::Cancel { .. }) {
                                after = Some(next);
                                break;
                            }
                            batch.push_back(next);
                        }
                        let live = &self.live;
                        let running = |a: &RunAction| match a {
                            RunAction::Cancel { token, .. } => live
                                .get(&(id, *token))
                                .is_some_and(|&task| pool.is_running(task)),
                            _ => false,
                        };
                        batch.make_contiguous().sort_by_key(running);
                        batch.extend(after);
                        continue;
                    }
                    action
                }
            };
            let def = Arc::clone(entry.run.definition());
            match action {
                RunAction::Start { step, token, .. } => {
                    let Some(step_def) = def.step(step) else {
                        continue;
                    };
                    match &step_def.kind {
                        StepKind::Agent => self.submit(pool, id, step, token, false, now),
                        StepKind::SubWorkflow(child) => {
                            let input = entry.run.input(token).ok().and_then(|input| {
                                input
                                    .inputs
                                    .last()
                                    .map(|(_, v)| v.clone())
                                    .or(input.run_input)
                            });
                            let child =
                                self.spawn(pool, Arc::clone(child), input, Some((id, token)), now);
                            // A child that ended as it started (its step
                            // refused) has completed the attempt already.
                            if self.runs.contains_key(&child) {
                                self.children.insert((id, token), child);
                            }
                        }
                        StepKind::Local | StepKind::Wait { .. } => {
                            self.actions.push_back(EngineAction::RunLocal {
                                run: id,
                                step,
                                token,
                            });
                        }
                    }
                }
                RunAction::Expand { step } => {
                    self.actions
                        .push_back(EngineAction::Expand { run: id, step });
                }
                RunAction::Cancel { step, token, .. } => {
                    if let Some(task) = self.live.remove(&(id, token)) {
                        // Queued tasks vanish; an attempt in flight is
                        // stopped now (the pool's Cancel action about it
                        // is swallowed when it comes).
                        match pool.cancel_task(task, now) {
                            Some((agent, token)) => {
                                if let Some(tracked) = self.tasks.get_mut(&task) {
                                    tracked.closing = true;
                                }
                                self.actions.push_back(EngineAction::CancelAssigned {
                                    task,
                                    agent,
                                    token,
                                });
                            }
                            // The pool gave the task up before the
                            // cancel: its action about it is still to
                            // come, and is swallowed.
                            None if pool.take_given_up(task).is_some() => {
                                if let Some(tracked) = self.tasks.get_mut(&task) {
                                    tracked.closing = true;
                                }
                            }
                            None => {
                                self.tasks.remove(&task);
                            }
                        }
                    } else if let Some(child) = self.children.remove(&(id, token)) {
                        if let Some(entry) = self.runs.get_mut(&child) {
                            entry.parent = None;
                            let _ = entry.run.cancel(now);
                            self.pump(pool, child, now);
                        }
                    } else {
                        self.actions.push_back(EngineAction::CancelLocal {
                            run: id,
                            step,
                            token,
                        });
                    }
                }
                RunAction::Compensate { step, token, .. } => {
                    if def.step(step).is_some_and(StepDef::is_agent) {
                        self.submit(pool, id, step, token, true, now);
                    } else {
                        self.actions.push_back(EngineAction::CompensateLocal {
                            run: id,
                            step,
                            token,
                        });
                    }
                }
                RunAction::Finished => {
                    self.finished(pool, id, now);
                    return;
                }
            }
        }
        self.reschedule(id);
    }

    pub(super) fn submit(
        &mut self,
        pool: &mut impl TaskPool,
        run: WorkflowId,
        step: StepId,
        token: AttemptToken,
        compensation: bool,
        now: Instant,
    ) {
        let Some(entry) = self.runs.get_mut(&run) else {
            return;
        };
        let Some(step_def) = entry.run.definition().step(step) else {
            return;
        };
        let task = StepTask {
            run,
            step,
            token,
            compensation,
        };
        let requirements = entry
            .run
            .definition()
            .step_requirements(step)
            .cloned()
            .unwrap_or_else(|| {
                TaskRequirements::new().require(step_def.capabilities.iter().cloned())
            });
        match pool.submit_step(task, step_def.priority, requirements, now) {
            Ok(id) => {
                self.live.insert((run, token), id);
                self.tasks.insert(
                    id,
                    Tracked {
                        step: task,
                        closing: false,
                    },
                );
            }
            Err(refused) => {
                let failure =
                    StepFailure::retryable(format!("the dispatcher refused the task: {refused}"));
                let _ = if compensation {
                    entry.run.compensated(token, Err(failure), now)
                } else {
                    entry.run.fail(token, failure, now)
                };
            }
        }
    }

    pub(super) fn reschedule(&mut self, id: WorkflowId) {
        let Some(entry) = self.runs.get_mut(&id) else {
            return;
        };
        let next = entry.run.poll_timeout();
        if next != entry.timer {
            if let Some(old) = entry.timer {
                self.timers.remove(&(old, id));
            }
            if let Some(new) = next {
                self.timers.insert((new, id));
            }
            entry.timer = next;
        }
    }

    pub(super) fn finished(&mut self, pool: &mut impl TaskPool, id: WorkflowId, now: Instant) {
        let Some(entry) = self.runs.remove(&id) else {
            return;
        };
        if let Some(at) = entry.timer {
            self.timers.remove(&(at, id));
        }
        let outcome = entry
            .run
            .outcome()
            .cloned()
            .unwrap_or(RunOutcome::Failed(crate::workflow::FailureCause::Cancelled));
        let output = entry.run.output().cloned();
        match entry.parent {
            Some((parent, token)) => {
                self.children.remove(&(parent, token));
                if let Some(parent_entry) = self.runs.get_mut(&parent) {
                    let _ = match outcome {
                        RunOutcome::Succeeded => parent_entry.run.succeed(
                            token,
                            StepOutput {
                                value: output,
                                branches: Vec::new(),
                                again: false,
                            },
                            now,
                        ),
                        other => parent_entry.run.fail(
                            token,
                            StepFailure::fatal(format!("the sub-workflow ended {other:?}")),
                            now,
                        ),
                    };
                    self.pump(pool, parent, now);
                }
            }
            None => {
                let def = entry.run.definition();
                let workflow = (def.name().to_string(), def.version());
                self.top_level_finished(id, workflow, outcome, output, now);
            }
        }
    }

    /// A top-level run ended: the host hears of it, and the engine
    /// remembers it ([`RunRetention`](super::RunRetention)).
    pub(super) fn top_level_finished(
        &mut self,
        run: WorkflowId,
        (workflow, version): (String, u32),
        outcome: RunOutcome,
        output: Option<P>,
        at: Instant,
    ) {
        self.finished.record(super::FinishedRun {
            run,
            workflow,
            version,
            outcome: outcome.clone(),
            output: output.clone(),
            at,
        });
        self.actions.push_back(EngineAction::Finished {
            run,
            outcome,
            output,
        });
    }

    /// A task the pool gave up on by itself: its attempt fails.
    pub(super) fn task_failed(&mut self, pool: &mut impl TaskPool, task: TaskId, step: StepTask) {
        self.tasks.remove(&task);
        let (reason, at) = pool
            .take_given_up(task)
            .unwrap_or_else(|| ("the pool gave the task up".to_string(), self.latest));
        if self.live.remove(&(step.run, step.token)).is_none() {
            return;
        }
        // The pool's clock may be ahead of the engine's (a host that
        // ticked the pool alone) or behind it: the engine's clock takes
        // the later, so ends are recorded in order.
        let now = self.clock(at);
        let Some(entry) = self.runs.get_mut(&step.run) else {
            return;
        };
        let failure = StepFailure::retryable(reason);
        let _ = if step.compensation {
            entry.run.compensated(step.token, Err(failure), now)
        } else {
            entry.run.fail(step.token, failure, now)
        };
        self.pump(pool, step.run, now);
    }
}
