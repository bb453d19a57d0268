//! The simulated workflow client: a [`WorkflowClient`] on the simulated
//! store, driven every tick, and the sagas' invariants checked on the
//! engine's events.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use crate::workflow::{EngineAction, EngineError, RunOutcome, WorkflowDef, WorkflowEvent};
use crate::{AgentId, StepId, WorkflowId};

use super::super::contract::Assignment;
use super::super::workflow_client::WorkflowClient;
use super::config::SimRng;
use super::driver::{Attempted, Driver, RunCounts, Tick};
use super::flows::{SimTask, SimWorkflows};
use super::world::TICK;

/// What the checks keep of a live run.
struct Track {
    def: Arc<WorkflowDef>,
    completed: BTreeMap<StepId, u32>,
    compensated: BTreeMap<StepId, u32>,
    skipped: BTreeSet<StepId>,
    /// A step attempt failed (retried or failed for good), or the run was
    /// cancelled: only then may it end other than succeeded.
    troubled: bool,
}

impl Track {
    fn count(map: &BTreeMap<StepId, u32>, step: StepId) -> u32 {
        map.get(&step).copied().unwrap_or(0)
    }

    /// A completed compensable step not compensated as often as it
    /// completed.
    fn owes(&self, step: StepId) -> bool {
        self.def.step(step).is_some_and(|s| s.compensable)
            && Self::count(&self.completed, step) > Self::count(&self.compensated, step)
    }
}

/// The host's workflows on a [`WorkflowClient`].
pub(crate) struct Flows<T, F: SimWorkflows> {
    flows: F,
    client: WorkflowClient<SimTask<T>, F::Output>,
    events: Arc<Mutex<Vec<WorkflowEvent>>>,
    runs: BTreeMap<WorkflowId, Track>,
    ended: BTreeSet<WorkflowId>,
    counts: RunCounts,
}

/// Store operations one tick may make: posts, verdicts, outcomes, and a
/// retry of each after a lost answer.
const OPS_PER_TICK: usize = 8;

impl<T: Clone, F: SimWorkflows> Flows<T, F> {
    pub(crate) fn new(flows: F) -> Self {
        let events = Arc::new(Mutex::new(Vec::new()));
        let mut client = WorkflowClient::new("sim-client", TICK);
        let sink = Arc::clone(&events);
        client.parts().0.set_observer(move |event: &WorkflowEvent| {
            if let Ok(mut events) = sink.lock() {
                events.push(event.clone());
            }
        });
        Flows {
            flows,
            client,
            events,
            runs: BTreeMap::new(),
            ended: BTreeSet::new(),
            counts: RunCounts::default(),
        }
    }

    fn start_and_cancel(&mut self, tick: &mut Tick<'_, SimTask<T>>) {
        for (def, input) in self.flows.start(self.counts.started, tick.rng) {
            let (engine, pool) = self.client.parts();
            let run = engine.start(pool, Arc::clone(&def), input, tick.now);
            let track = Track {
                def,
                completed: BTreeMap::new(),
                compensated: BTreeMap::new(),
                skipped: BTreeSet::new(),
                troubled: false,
            };
            self.runs.insert(run, track);
            self.counts.started += 1;
        }
        if !self.runs.is_empty() && tick.rng.chance(tick.cancel) {
            let nth = (tick.rng.next_u64() % self.runs.len() as u64) as usize;
            if let Some(&run) = self.runs.keys().nth(nth) {
                let (engine, pool) = self.client.parts();
                if engine.cancel(pool, run, tick.now).is_ok() {
                    if let Some(track) = self.runs.get_mut(&run) {
                        track.troubled = true;
                    }
                    self.counts.cancelled += 1;
                    *tick.faults.entry("cancel_run").or_default() += 1;
                    tick.log.push(format!("FAULT cancel run {run}"));
                }
            }
        }
    }

    /// The client's due store operations, with the link's lost answers.
    fn operate(&mut self, tick: &mut Tick<'_, SimTask<T>>) {
        for _ in 0..OPS_PER_TICK {
            let Some(op) = self.client.poll_op(tick.now) else {
                break;
            };
            let done = tick.execute(op);
            let reply = tick.heard(done);
            self.client.handle_reply(reply, tick.now);
        }
        // Store failures are the faults' doing; the client rides them out.
        while self.client.poll_event().is_some() {}
    }

    /// Carries out the engine's actions, checking the events before each.
    fn act(&mut self, tick: &mut Tick<'_, SimTask<T>>) -> Result<(), String> {
        loop {
            self.check_events()?;
            let (engine, pool) = self.client.parts();
            let Some(action) = engine.poll_action() else {
                return Ok(());
            };
            let now = tick.now;
            let done = match action {
                EngineAction::RunLocal { run, step, token } => {
                    let result = self.flows.local(run, step, tick.rng);
                    engine.report_local(pool, run, token, result, now)
                }
                EngineAction::CompensateLocal { run, token, .. } => {
                    engine.compensated(pool, run, token, Ok(()), now)
                }
                EngineAction::Expand { run, step } => {
                    let items = self.flows.items(run, step, tick.rng);
                    engine.expand(pool, run, step, items, now)
                }
                EngineAction::CancelLocal { .. } => Ok(()),
                EngineAction::Finished { run, outcome, .. } => {
                    self.check_events()?;
                    self.finished(run, &outcome)?;
                    tick.log.push(format!("run {run} finished: {outcome:?}"));
                    Ok(())
                }
                EngineAction::Assign { task, .. } | EngineAction::CancelAssigned { task, .. } => {
                    return Err(format!(
                        "the engine handed out an agent action on {task}: a cluster pool never assigns"
                    ));
                }
            };
            match done {
                // The run ended meanwhile (cancelled, say; its `Finished`
                // is queued behind): nothing waits. A run that vanished
                // without one never finishes, which the liveness check sees.
                Err(EngineError::UnknownRun(_) | EngineError::RunFinished { .. }) => {}
                Err(e) => return Err(format!("the engine refused its own action's result: {e}")),
                Ok(()) => {}
            }
        }
    }

    /// Checks each step event: a step is compensated only after it
    /// completed, at most as often, and only once every completed
    /// compensable step after it was compensated (reverse order).
    fn check_events(&mut self) -> Result<(), String> {
        let events = match self.events.lock() {
            Ok(mut events) => std::mem::take(&mut *events),
            Err(_) => return Err("the event log was poisoned".into()),
        };
        for event in events {
            match event {
                WorkflowEvent::StepCompleted { run, step } => {
                    if let Some(track) = self.runs.get_mut(&run) {
                        *track.completed.entry(step).or_default() += 1;
                    }
                }
                WorkflowEvent::StepRetried { run, .. } | WorkflowEvent::StepFailed { run, .. } => {
                    if let Some(track) = self.runs.get_mut(&run) {
                        track.troubled = true;
                    }
                }
                WorkflowEvent::StepSkipped { run, step } => {
                    if let Some(track) = self.runs.get_mut(&run) {
                        track.skipped.insert(step);
                    }
                }
                WorkflowEvent::StepCompensated { run, step } => {
                    let Some(track) = self.runs.get_mut(&run) else {
                        continue;
                    };
                    if !track.owes(step) {
                        return Err(format!(
                            "run {run} compensated step {step} more often than it completed"
                        ));
                    }
                    if let Some((later, _)) =
                        track.def.successors(step).find(|&(s, _)| track.owes(s))
                    {
                        return Err(format!(
                            "run {run} compensated step {step} before step {later}, which depends on it and is not compensated"
                        ));
                    }
                    *track.compensated.entry(step).or_default() += 1;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// A run ended once, as its steps say it should have.
    fn finished(&mut self, run: WorkflowId, outcome: &RunOutcome) -> Result<(), String> {
        if !self.ended.insert(run) {
            return Err(format!("run {run} finished twice"));
        }
        let Some(track) = self.runs.remove(&run) else {
            return Err(format!("run {run} finished, but was never started"));
        };
        // A run whose every step succeeded, not cancelled, succeeds.
        if !track.troubled && !matches!(outcome, RunOutcome::Succeeded) {
            return Err(format!(
                "run {run} ended {outcome:?}, yet no step of it failed and nobody cancelled it"
            ));
        }
        let mut steps = track.def.steps().map(|(id, _)| id);
        // A failed run, compensated or with nothing to compensate, owes no
        // compensation.
        let owed = match outcome {
            RunOutcome::Succeeded => {
                self.counts.succeeded += 1;
                if let Some(step) = steps.find(|&s| {
                    Track::count(&track.completed, s) == 0 && !track.skipped.contains(&s)
                }) {
                    return Err(format!(
                        "run {run} succeeded, but step {step} neither completed nor was skipped"
                    ));
                }
                None
            }
            RunOutcome::Failed(_) => {
                self.counts.failed += 1;
                steps.find(|&s| track.owes(s))
            }
            RunOutcome::Compensated(_) => {
                self.counts.compensated += 1;
                steps.find(|&s| track.owes(s))
            }
            RunOutcome::CompensationFailed { .. } => {
                self.counts.compensation_failed += 1;
                None
            }
        };
        match owed {
            Some(step) => Err(format!(
                "run {run} ended {outcome:?}, but step {step} completed and was not compensated"
            )),
            None => Ok(()),
        }
    }
}

impl<T: Clone, F: SimWorkflows> Driver<SimTask<T>> for Flows<T, F> {
    fn attempt(
        &mut self,
        agent: AgentId,
        work: &Assignment<SimTask<T>>,
        rng: &mut SimRng,
    ) -> Option<Attempted<SimTask<T>>> {
        match &work.payload {
            SimTask::Step(step) => {
                let (took, outcome) = self.flows.attempt(agent, step, rng);
                Some(Attempted {
                    took,
                    outcome,
                    output: None,
                })
            }
            SimTask::Task(_) => None,
        }
    }

    fn tick(&mut self, mut tick: Tick<'_, SimTask<T>>) -> Result<(), String> {
        if tick.starting {
            self.start_and_cancel(&mut tick);
        }
        self.client.handle_timeout(tick.now);
        self.operate(&mut tick);
        self.act(&mut tick)
    }

    fn live(&self) -> usize {
        self.runs.len() + self.client.engine().active_runs() + self.client.pool().tracked()
    }

    fn tasks(&self) -> u64 {
        self.client.pool().accepted()
    }

    fn counts(&self) -> RunCounts {
        self.counts
    }
}
