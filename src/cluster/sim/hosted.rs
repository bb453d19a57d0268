//! Workflow runs hosted by the cluster's nodes, in a simulation
//! ([`simulate_hosted`](super::simulate_hosted)): the payload that carries
//! plain tasks, steps and the numbers a run passes along
//! ([`HostedTask`]), the sagas a simulated client registers and runs
//! ([`HostedSagas`]), the codec every node hosts them with, and how the
//! agents attempt their steps. The client is in `hosted_client`, the
//! checks in `hosted_checks`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::schedule::{OverlapPolicy, ScheduleSpec};
use crate::scheduler::AttemptOutcome;
use crate::workflow::{StepDef, StepInput, StepKind, StepTask, WorkflowDef};
use crate::{AgentId, AttemptToken, StepId, TaskId};

use super::super::config::ConfigError;
use super::super::contract::{Assignment, NodeOp, NodeState};
use super::super::runs::RunCodec;
use super::config::SimRng;
use super::driver::{Attempted, Driver, Landed, RunCounts, Tick};
use super::flows::{Carries, SagaLoad, invalid, saga_steps};
use super::hosted_checks::Checker;
use super::hosted_client::HostedClient;

/// A cluster payload in a simulation with hosted runs: a plain task of
/// the host's workload, a step's task, or a number a run passes along.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum HostedTask<T> {
    /// A plain task.
    Task(T),
    /// A hosted run's step task: the step, and what it takes — the run's
    /// input (from no step) or its predecessors' outputs, each with the
    /// step it came from.
    Step {
        /// The run, the step, the run's attempt token, and whether it
        /// compensates.
        step: StepTask,
        /// Its inputs, in the step's input order.
        inputs: Vec<(Option<StepId>, Datum)>,
    },
    /// A run's input, a step's output or a signal's payload.
    Datum(Datum),
}

/// A number a hosted run passes along, and where it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Datum {
    /// The number.
    pub value: i64,
    /// Who made it.
    pub origin: Origin,
}

/// Where a [`Datum`] came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Origin {
    /// The client: a run's input.
    Input,
    /// An agent's attempt at a step: the task and the attempt's token.
    Attempt {
        /// The step's task.
        task: TaskId,
        /// The attempt.
        token: AttemptToken,
    },
    /// The client: a signal's payload, by the client's number for the send.
    Signal(u64),
    /// Nobody: a payload that is no number stood where one belongs (an
    /// old life's late completion of a step, say, which is fenced).
    Foreign,
}

impl Datum {
    /// What a payload that is no number reads as.
    const FOREIGN: Datum = Datum {
        value: 0,
        origin: Origin::Foreign,
    };
}

impl<T> Carries<T> for HostedTask<T> {
    fn task(payload: T) -> Self {
        HostedTask::Task(payload)
    }

    fn plain(&self) -> Option<&T> {
        match self {
            HostedTask::Task(payload) => Some(payload),
            HostedTask::Step { .. } | HostedTask::Datum(_) => None,
        }
    }
}

/// The number `payload` carries, if it is one.
fn datum<T>(payload: &HostedTask<T>) -> Datum {
    match payload {
        HostedTask::Datum(datum) => *datum,
        HostedTask::Task(_) | HostedTask::Step { .. } => Datum::FOREIGN,
    }
}

/// The codec every node of a simulation with hosted runs is built with: a
/// step's task carries its step and its inputs; a completed task's output
/// is the step's as it is.
pub(crate) fn codec<T: Clone>() -> RunCodec<HostedTask<T>> {
    RunCodec::new(
        HostedTask::Datum(Datum::FOREIGN),
        |_, step: StepTask, input: StepInput<HostedTask<T>>| {
            let run_input = input.run_input.iter().map(|p| (None, datum(p)));
            let outputs = input.inputs.iter().map(|(s, p)| (Some(*s), datum(p)));
            HostedTask::Step {
                step,
                inputs: run_input.chain(outputs).collect(),
            }
        },
    )
}

/// Which saga a run is of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Saga {
    /// `order`: reserve (compensable), charge (compensable), ship.
    Order = 0,
    /// `approval`: `order` whose charge also waits for an `approve`
    /// signal.
    Approval = 1,
}

/// The hosted workload: two sagas a simulated client registers with the
/// cluster and starts at `runs_per_second`, with explicit run ids.
///
/// `order` runs `reserve` (compensable), `charge` (compensable) and
/// `ship`, in a chain; `approval` (half the runs) also waits for an
/// `approve` signal before `charge`, which the client sends once the
/// run started. Each agent step adds one to the sum of its inputs (the
/// run's input, or its predecessors' outputs, a signal's payload
/// included), so every run's output is known; an attempt fails with
/// probability `fail` and is tried twice, so some runs compensate; a
/// step times out after `step_timeout`. The client cancels one run in
/// twenty, and now and then signals a run twice, a run that ended, or one
/// that never existed.
#[derive(Clone, Debug)]
pub struct HostedSagas {
    pub(crate) load: SagaLoad,
    /// `order` and `approval`, by [`Saga`].
    pub(crate) defs: [Arc<WorkflowDef>; 2],
    /// When the client's schedule fires ([`SCHEDULE_ID`]).
    pub(crate) schedule: ScheduleSpec,
}

/// The schedule the client adds: an `order` run every
/// [`SCHEDULE_EVERY`] with input [`SCHEDULED_INPUT`], every fire started
/// whatever runs go, and fires caught up after an hour without a leader,
/// so each slot from the first on starts one run until the drain.
pub(crate) const SCHEDULE_ID: &str = "sim";

/// How often the schedule fires.
pub(crate) const SCHEDULE_EVERY: Duration = Duration::from_secs(10);

/// The input of a scheduled run.
pub(crate) const SCHEDULED_INPUT: i64 = 7;

/// The schedule's spec.
fn schedule_spec() -> Result<ScheduleSpec, ConfigError> {
    ScheduleSpec::every(SCHEDULE_EVERY)
        .overlap(OverlapPolicy::AllowAll)
        .catch_up(Duration::from_secs(3_600))
        .build()
        .map_err(|e| invalid(&e))
}

/// The share of runs that wait for a signal.
pub(crate) const SIGNALLED: f64 = 0.5;

/// The share of runs the client cancels.
pub(crate) const CANCELLED: f64 = 0.05;

/// The most runs a second the client starts: a restarted client starts
/// again the runs it had not heard back about, and the engine remembers
/// the ids of the last 10,000 runs that finished, so fewer than that must
/// finish while it is down (5 s at most).
const MAX_HOSTED_PER_SECOND: f64 = 1_000.0;

impl HostedSagas {
    /// The sagas, started at `runs_per_second`, each attempt taking
    /// `work` and failing with probability `fail`; each step times out
    /// after `step_timeout`.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for a rate that is not finite or outside 0 to
    /// 1,000 a second, a share of failures outside 0 to 1, a duration
    /// range upside down, or a zero `step_timeout` (the definition's
    /// error).
    pub fn new(
        runs_per_second: f64,
        work: (Duration, Duration),
        fail: f64,
        step_timeout: Duration,
    ) -> Result<Self, ConfigError> {
        let load = SagaLoad::new(
            "hosted sagas",
            MAX_HOSTED_PER_SECOND,
            runs_per_second,
            work,
            fail,
        )?;
        let agent = saga_steps(step_timeout)?;
        let order = WorkflowDef::builder("order", 1)
            .step(agent("reserve").compensable())
            .step(agent("charge").compensable())
            .step(agent("ship"))
            .chain(["reserve", "charge", "ship"])
            .output("ship")
            .build()
            .map_err(|e| invalid(&e))?;
        let approval = WorkflowDef::builder("approval", 1)
            .step(StepDef::wait("approve", ["approve"]))
            .step(agent("reserve").compensable())
            .step(agent("charge").compensable())
            .step(agent("ship"))
            .edge("approve", "charge")
            .edge("reserve", "charge")
            .edge("charge", "ship")
            .output("ship")
            .build()
            .map_err(|e| invalid(&e))?;
        Ok(HostedSagas {
            load,
            defs: [Arc::new(order), Arc::new(approval)],
            schedule: schedule_spec()?,
        })
    }

    /// The definition of `saga`.
    pub(crate) fn def(&self, saga: Saga) -> &Arc<WorkflowDef> {
        &self.defs[saga as usize]
    }
}

/// Refuses sagas that would start more than [`MAX_RUNS`](super::MAX_RUNS) runs in
/// `faulty_for`.
pub(crate) fn check_runs(sagas: &HostedSagas, faulty_for: Duration) -> Result<(), ConfigError> {
    super::flows::check_rate(Some(sagas.load.runs_per_second), faulty_for)
}

/// What a run of `def` outputs when its agent steps each add one to the
/// sum of their inputs: `input` for its entry steps, `signal` from its
/// wait steps. `None` for a definition without an output step.
pub(crate) fn expected(def: &WorkflowDef, input: i64, signal: i64) -> Option<i64> {
    fn value(
        def: &WorkflowDef,
        step: StepId,
        input: i64,
        signal: i64,
        memo: &mut BTreeMap<StepId, i64>,
    ) -> i64 {
        if let Some(&known) = memo.get(&step) {
            return known;
        }
        let made = match def.step(step).map(|s| &s.kind) {
            Some(StepKind::Wait { .. }) => signal,
            _ => {
                let from = def.input_steps(step);
                let taken: i64 = if from.is_empty() {
                    input
                } else {
                    from.into_iter()
                        .map(|s| value(def, s, input, signal, memo))
                        .fold(0i64, i64::saturating_add)
                };
                taken.saturating_add(1)
            }
        };
        memo.insert(step, made);
        made
    }
    // A definition is acyclic, so the recursion ends (at its depth).
    let output = def.output()?;
    Some(value(def, output, input, signal, &mut BTreeMap::new()))
}

/// The hosted runs' share of a world: the client, and the checks.
pub(crate) struct Hosted<T> {
    sagas: HostedSagas,
    client: HostedClient,
    checker: Checker<T>,
}

impl<T> Hosted<T> {
    pub(crate) fn new(sagas: HostedSagas) -> Self {
        Hosted {
            client: HostedClient::new(sagas.clone()),
            checker: Checker::new(sagas.clone()),
            sagas,
        }
    }
}

impl<T: Clone + PartialEq + std::fmt::Debug> Driver<HostedTask<T>> for Hosted<T> {
    fn attempt(
        &mut self,
        _agent: AgentId,
        work: &Assignment<HostedTask<T>>,
        rng: &mut SimRng,
    ) -> Option<Attempted<HostedTask<T>>> {
        let step = match &work.payload {
            HostedTask::Task(_) => return None,
            HostedTask::Step { step, .. } => step,
            HostedTask::Datum(_) => {
                return Some(Attempted {
                    took: Duration::ZERO,
                    outcome: AttemptOutcome::fatal("a number is no task"),
                    output: None,
                });
            }
        };
        let took = rng.between(self.sagas.load.work.0, self.sagas.load.work.1);
        // A compensation always succeeds (its output is ignored).
        if !step.compensation && rng.chance(self.sagas.load.fail) {
            return Some(Attempted {
                took,
                outcome: AttemptOutcome::failure("simulated step failure"),
                output: None,
            });
        }
        Some(Attempted {
            took,
            outcome: AttemptOutcome::Success,
            output: self.output(work.task, work.token, &work.payload),
        })
    }

    /// A step's output: one more than the sum of its inputs (nothing for
    /// a compensation), made by attempt `token` of `task`.
    fn output(
        &self,
        task: TaskId,
        token: AttemptToken,
        payload: &HostedTask<T>,
    ) -> Option<HostedTask<T>> {
        let HostedTask::Step { step, inputs } = payload else {
            return None;
        };
        let value = match step.compensation {
            true => 0,
            false => inputs
                .iter()
                .map(|(_, d)| d.value)
                .fold(0i64, i64::saturating_add)
                .saturating_add(1),
        };
        let origin = Origin::Attempt { task, token };
        Some(HostedTask::Datum(Datum { value, origin }))
    }

    fn codec(&self) -> Option<RunCodec<HostedTask<T>>> {
        Some(codec())
    }

    fn stage(&mut self, op: &NodeOp<HostedTask<T>>) {
        self.checker.stage(op);
    }

    fn landed(&mut self, landed: Landed<'_, HostedTask<T>>) -> Result<(), String> {
        self.checker.landed(landed)
    }

    fn tick(&mut self, mut tick: Tick<'_, HostedTask<T>>) -> Result<(), String> {
        self.checker.foresee(tick.now);
        self.client.tick(&mut tick, &mut self.checker);
        Ok(())
    }

    fn live(&self) -> usize {
        self.checker.live() + self.client.unstarted()
    }

    fn tasks(&self) -> u64 {
        self.checker.step_tasks()
    }

    fn counts(&self) -> RunCounts {
        self.checker.counts()
    }

    fn check_stopped(&self, state: &NodeState<HostedTask<T>>) -> Result<(), String> {
        self.checker.check_schedule(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expected_output_adds_one_per_agent_step() {
        let sagas = HostedSagas::new(
            1.0,
            (Duration::ZERO, Duration::ZERO),
            0.0,
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(expected(sagas.def(Saga::Order), 10, 0), Some(13));
        assert_eq!(expected(sagas.def(Saga::Approval), 10, 5), Some(18));
    }

    #[test]
    fn settings_out_of_range_are_refused() {
        let work = (Duration::ZERO, Duration::ZERO);
        let second = Duration::from_secs(1);
        assert!(HostedSagas::new(f64::NAN, work, 0.0, second).is_err());
        assert!(HostedSagas::new(1e4, work, 0.0, second).is_err());
        assert!(HostedSagas::new(1.0, work, 1.5, second).is_err());
        assert!(HostedSagas::new(1.0, (second, Duration::ZERO), 0.0, second).is_err());
        assert!(HostedSagas::new(1.0, work, 0.0, Duration::ZERO).is_err());
    }
}
