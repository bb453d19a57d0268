//! Workflows in a simulation: what the host supplies ([`SimWorkflows`]),
//! the payload that carries steps beside plain tasks ([`SimTask`]), and a
//! ready-made saga workload ([`SagaFlows`]).

use std::sync::Arc;
use std::time::Duration;

use crate::resilience::Fixed;
use crate::scheduler::{AttemptOutcome, TaskSpec};
use crate::workflow::{StepDef, StepFailure, StepOutput, StepTask, WorkflowDef};
use crate::{AgentId, StepId, WorkflowId};

use super::super::config::ConfigError;
use super::super::contract::Assignment;
use super::config::{SimRng, SimWork};

/// The host's workflows in a simulation
/// ([`simulate_workflows`](super::simulate_workflows)): which runs its
/// clients start, how its agents' attempts at steps go, and what its
/// in-process steps return. A [`WorkflowClient`](super::super::WorkflowClient)
/// on the simulated store runs them on a
/// [`WorkflowEngine`](crate::workflow::WorkflowEngine), so the sagas,
/// retries and timeouts are the engine's own.
pub trait SimWorkflows {
    /// The engine's payload (step outputs and run inputs).
    type Output: Clone + Default;

    /// The runs to start in one tick of the client (every 100 ms while
    /// the faults last); `started` runs were started before.
    fn start(
        &mut self,
        started: u64,
        rng: &mut SimRng,
    ) -> Vec<(Arc<WorkflowDef>, Option<Self::Output>)>;

    /// How `agent`'s attempt at `step` (a step, or its compensation)
    /// goes: how long it takes and how it ends.
    fn attempt(
        &mut self,
        agent: AgentId,
        step: &StepTask,
        rng: &mut SimRng,
    ) -> (Duration, AttemptOutcome);

    /// The result of an in-process step.
    fn local(
        &mut self,
        run: WorkflowId,
        step: StepId,
        rng: &mut SimRng,
    ) -> Result<StepOutput<Self::Output>, StepFailure>;

    /// The items of a multi-instance step. Default: none.
    fn items(&mut self, run: WorkflowId, step: StepId, rng: &mut SimRng) -> Vec<Self::Output> {
        let _ = (run, step, rng);
        Vec::new()
    }

    /// The runs [`start`](Self::start) begins a second, if it keeps a
    /// rate: [`simulate_workflows`](super::simulate_workflows) refuses
    /// workflows that would start more than [`MAX_RUNS`] runs while the
    /// faults last. Default: `None` (workflows without a rate bound
    /// themselves).
    fn runs_per_second(&self) -> Option<f64> {
        None
    }
}

/// The most workflow runs a simulation may start: every run holds its
/// state until it ends, and a rate the cluster cannot keep up with keeps
/// them all.
pub const MAX_RUNS: u64 = 100_000;

/// Refuses `flows` if they would start more than [`MAX_RUNS`] runs in
/// `faulty_for`.
pub(crate) fn check_runs(
    flows: &impl SimWorkflows,
    faulty_for: Duration,
) -> Result<(), ConfigError> {
    check_rate(flows.runs_per_second(), faulty_for)
}

/// Refuses a `rate` of runs a second (if there is one) that would start
/// more than [`MAX_RUNS`] runs in `faulty_for`.
pub(crate) fn check_rate(rate: Option<f64>, faulty_for: Duration) -> Result<(), ConfigError> {
    let Some(rate) = rate else {
        return Ok(());
    };
    let runs = rate * faulty_for.as_secs_f64();
    if runs > MAX_RUNS as f64 {
        return Err(ConfigError(format!(
            "the workflows would start {runs:.0} runs ({rate} a second over {faulty_for:?}), over \
             the simulator's bound of {MAX_RUNS} (MAX_RUNS): lower the rate or the duration"
        )));
    }
    Ok(())
}

/// A cluster payload in a simulation with workflows: a plain task of the
/// host's workload, or a workflow step.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum SimTask<T> {
    /// A plain task.
    Task(T),
    /// A step of a run.
    Step(StepTask),
}

impl<T> From<StepTask> for SimTask<T> {
    fn from(step: StepTask) -> Self {
        SimTask::Step(step)
    }
}

/// A cluster payload that carries the host's plain tasks beside other
/// work (steps): [`SimTask`], and `HostedTask` for hosted runs.
pub(crate) trait Carries<T> {
    /// A plain task's payload.
    fn task(payload: T) -> Self;

    /// The plain task it carries, if it is one.
    fn plain(&self) -> Option<&T>;
}

impl<T> Carries<T> for SimTask<T> {
    fn task(payload: T) -> Self {
        SimTask::Task(payload)
    }

    fn plain(&self) -> Option<&T> {
        match self {
            SimTask::Task(payload) => Some(payload),
            SimTask::Step(_) => None,
        }
    }
}

/// The host's plain workload `W` of payloads `T`, carried by another
/// payload type.
pub(crate) struct Plain<W, T>(W, std::marker::PhantomData<fn() -> T>);

impl<W, T> Plain<W, T> {
    pub(crate) fn new(work: W) -> Self {
        Plain(work, std::marker::PhantomData)
    }
}

impl<T: Clone, Q: Carries<T>, W: SimWork<T>> SimWork<Q> for Plain<W, T> {
    fn task(&mut self, n: u64, rng: &mut SimRng) -> TaskSpec<Q> {
        self.0.task(n, rng).map_payload(Q::task)
    }

    fn attempt(
        &mut self,
        agent: AgentId,
        work: &Assignment<Q>,
        rng: &mut SimRng,
    ) -> (Duration, AttemptOutcome) {
        match work.payload.plain() {
            Some(payload) => {
                let plain = Assignment {
                    task: work.task,
                    agent: work.agent,
                    token: work.token,
                    attempt: work.attempt,
                    incarnation: work.incarnation,
                    payload: payload.clone(),
                };
                self.0.attempt(agent, &plain, rng)
            }
            // Steps go to the workflows before they reach the workload.
            None => (
                Duration::ZERO,
                AttemptOutcome::fatal("a step reached the plain workload"),
            ),
        }
    }
}

/// The default workflows: an order saga — `reserve` and `charge`
/// (compensable), `ship`, then an in-process `confirm` — started at
/// `runs_per_second` (a simulation refuses more than [`MAX_RUNS`] runs in
/// all). Each agent attempt takes `work` (uniform) and fails
/// for good with probability `fail`; a step makes two attempts (a
/// compensation too) and times out after `step_timeout`, so runs succeed,
/// compensate, fail to compensate, and time out.
#[derive(Clone, Debug)]
pub struct SagaFlows {
    def: Arc<WorkflowDef>,
    backlog: f64,
    load: SagaLoad,
}

/// The most runs a second [`SagaFlows`] starts (the simulation's bound on
/// its rates of tasks and faults).
const MAX_RUNS_PER_SECOND: f64 = 1e6;

/// What a saga workload takes, checked: runs started a second, an agent
/// attempt's duration (uniform in the range), and the share of attempts
/// that fail for good.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SagaLoad {
    pub(crate) runs_per_second: f64,
    pub(crate) work: (Duration, Duration),
    pub(crate) fail: f64,
}

impl SagaLoad {
    /// The load of the workload `what`, whose rate is at most `max` runs
    /// a second.
    pub(crate) fn new(
        what: &str,
        max: f64,
        runs_per_second: f64,
        work: (Duration, Duration),
        fail: f64,
    ) -> Result<Self, ConfigError> {
        if !(0.0..=max).contains(&runs_per_second)
            || !(0.0..=1.0).contains(&fail)
            || work.0 > work.1
        {
            return Err(ConfigError(format!(
                "{what} need 0 to {max} runs a second, a share of failures from 0 to 1 and an attempt's duration from..=to, not {runs_per_second}, {fail}, {work:?}"
            )));
        }
        Ok(SagaLoad {
            runs_per_second,
            work,
            fail,
        })
    }

    /// One agent attempt: how long it takes, and whether it failed.
    pub(crate) fn attempt(&self, rng: &mut SimRng) -> (Duration, AttemptOutcome) {
        let took = rng.between(self.work.0, self.work.1);
        if rng.chance(self.fail) {
            (took, AttemptOutcome::fatal("simulated step failure"))
        } else {
            (took, AttemptOutcome::Success)
        }
    }
}

/// The sagas' agent steps, by id: two attempts 200 ms apart (a
/// compensation too), each timing out after `step_timeout`.
pub(crate) fn saga_steps(step_timeout: Duration) -> Result<impl Fn(&str) -> StepDef, ConfigError> {
    let retry = Fixed::new(Duration::from_millis(200), 2).map_err(|e| invalid(&e))?;
    Ok(move |id: &str| StepDef::agent(id).retry(retry).timeout(step_timeout))
}

/// A definition's error as a simulation's.
pub(crate) fn invalid(e: &dyn std::fmt::Display) -> ConfigError {
    ConfigError(e.to_string())
}

impl SagaFlows {
    /// The saga, started at `runs_per_second`, each attempt taking `work`
    /// and failing with probability `fail`; each step times out after
    /// `step_timeout`.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for a rate that is not finite or outside 0 to 1e6
    /// a second, a share of failures outside 0 to 1, a duration range
    /// upside down, or a zero `step_timeout` (the definition's error).
    pub fn new(
        runs_per_second: f64,
        work: (Duration, Duration),
        fail: f64,
        step_timeout: Duration,
    ) -> Result<Self, ConfigError> {
        let load = SagaLoad::new(
            "saga flows",
            MAX_RUNS_PER_SECOND,
            runs_per_second,
            work,
            fail,
        )?;
        let agent = saga_steps(step_timeout)?;
        let def = WorkflowDef::builder("order", 1)
            .step(agent("reserve").compensable())
            .step(agent("charge").compensable())
            .step(agent("ship"))
            .step(StepDef::local("confirm"))
            .edge("reserve", "charge")
            .edge("charge", "ship")
            .edge("ship", "confirm")
            .build()
            .map_err(|e| invalid(&e))?;
        Ok(SagaFlows {
            def: Arc::new(def),
            backlog: 0.0,
            load,
        })
    }
}

impl SimWorkflows for SagaFlows {
    type Output = ();

    fn start(&mut self, _started: u64, _rng: &mut SimRng) -> Vec<(Arc<WorkflowDef>, Option<()>)> {
        self.backlog += self.load.runs_per_second * super::world::TICK.as_secs_f64();
        let count = self.backlog as usize;
        self.backlog -= count as f64;
        (0..count).map(|_| (Arc::clone(&self.def), None)).collect()
    }

    fn attempt(
        &mut self,
        _agent: AgentId,
        _step: &StepTask,
        rng: &mut SimRng,
    ) -> (Duration, AttemptOutcome) {
        self.load.attempt(rng)
    }

    fn local(
        &mut self,
        _run: WorkflowId,
        _step: StepId,
        _rng: &mut SimRng,
    ) -> Result<StepOutput<()>, StepFailure> {
        Ok(StepOutput::new(()))
    }

    fn runs_per_second(&self) -> Option<f64> {
        Some(self.load.runs_per_second)
    }
}
