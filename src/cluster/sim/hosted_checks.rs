//! The checks of hosted runs, made on every commit that lands, from what
//! the commit publishes, what the audit's replay of its entries gives,
//! and what the client posted: each run ends once, as the replay says,
//! with the output its steps give; a step takes the outputs of the
//! completions the leader accepted (and the signal it accepted); only a
//! completed step is compensated; no step starts after its run ended;
//! the cluster answers each command as it should; and the client's
//! schedule starts one run per slot.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use crate::schedule::RunKey;
use crate::workflow::{RunOutcome, StepKind, StepTask};
use crate::{Instant, StepId, TaskId, WorkflowId};

use super::super::audit::Ended;
use super::super::contract::{MessageId, NodeOp, NodeState, RunEnd, Verdict};
use super::driver::{Landed, RunCounts};
use super::hosted::{
    Datum, HostedSagas, HostedTask, Origin, SCHEDULE_EVERY, SCHEDULE_ID, SCHEDULED_INPUT, Saga,
    expected,
};
use super::hosted_client::{Command, owner};

/// What the checks know of a run that has not ended.
struct RunCheck {
    saga: Saga,
    input: i64,
    /// The output of the completion the leader accepted for each step.
    accepted: BTreeMap<StepId, Datum>,
    /// The signal the leader accepted: the client's send, and its value.
    signal: Option<(u64, i64)>,
    /// Its step tasks, forgotten with it.
    tasks: Vec<TaskId>,
}

/// A step task a commit assigns: the task, its step, its inputs.
type StepAssigned = (TaskId, StepTask, Vec<(Option<StepId>, Datum)>);

/// What the checks keep of a commit on its way to the store.
struct Staged<T> {
    first_seq: u64,
    assigned: Vec<StepAssigned>,
    ends: Vec<RunEnd<HostedTask<T>>>,
    verdicts: Vec<(MessageId, Verdict)>,
}

/// The checks of hosted runs, and how the runs ended.
pub(crate) struct Checker<T> {
    sagas: HostedSagas,
    runs: BTreeMap<WorkflowId, RunCheck>,
    /// How each run ended (each id once: no run ends twice).
    ended: HashMap<WorkflowId, RunOutcome>,
    /// The step tasks of the runs that have not ended.
    tasks: HashMap<TaskId, StepTask>,
    /// The client's messages the store took, until their verdict.
    awaiting: BTreeMap<MessageId, Command>,
    staged: Option<Staged<T>>,
    counts: RunCounts,
    step_tasks: u64,
    /// The run id of each fire of the client's schedule, up to `foreseen`.
    scheduled: HashMap<WorkflowId, Instant>,
    foreseen: Instant,
    /// The fires whose run the leader started, as its commits show.
    fires: BTreeSet<Instant>,
}

impl<T> Checker<T> {
    pub(crate) fn new(sagas: HostedSagas) -> Self {
        Checker {
            sagas,
            runs: BTreeMap::new(),
            ended: HashMap::new(),
            tasks: HashMap::new(),
            awaiting: BTreeMap::new(),
            staged: None,
            counts: RunCounts::default(),
            step_tasks: 0,
            scheduled: HashMap::new(),
            foreseen: Instant::ZERO,
            fires: BTreeSet::new(),
        }
    }

    /// Learns the run ids of the schedule's fires up to a minute after
    /// `now`, so a run the schedule started is known when it shows.
    pub(crate) fn foresee(&mut self, now: Instant) {
        let until = now.saturating_add(Duration::from_secs(60));
        while self.foreseen <= until {
            let key = RunKey {
                schedule: SCHEDULE_ID.to_owned(),
                fire: self.foreseen,
            };
            self.scheduled.insert(key.workflow_id(), self.foreseen);
            self.foreseen = self.foreseen.saturating_add(SCHEDULE_EVERY);
        }
    }

    /// A run the checks have not met: if it is a fire's of the client's
    /// schedule, it is the `order` saga with the scheduled input.
    fn adopt(&mut self, run: WorkflowId) {
        if self.runs.contains_key(&run) || self.ended.contains_key(&run) {
            return;
        }
        let Some(&fire) = self.scheduled.get(&run) else {
            return;
        };
        self.fires.insert(fire);
        self.started(run, Saga::Order, SCHEDULED_INPUT);
    }

    /// Once the cluster stopped: the schedule started a run for every
    /// slot from its first fire on, each once, skipping and missing none
    /// (its runs may overlap, and it catches up an hour).
    pub(crate) fn check_schedule(&self, state: &NodeState<HostedTask<T>>) -> Result<(), String>
    where
        T: Clone,
    {
        let counts = state
            .runs
            .as_ref()
            .and_then(|runs| runs.schedules())
            .and_then(|schedules| schedules.schedules().counts(SCHEDULE_ID));
        let Some(counts) = counts else {
            return match self.fires.first() {
                None => Ok(()),
                Some(fire) => Err(format!(
                    "the leader started the run of fire {fire:?} of schedule {SCHEDULE_ID:?}, which the stopped cluster does not hold"
                )),
            };
        };
        let seen = self.fires.len() as u64;
        let span = match (self.fires.first(), self.fires.last()) {
            (Some(first), Some(last)) => {
                last.saturating_duration_since(*first).as_nanos() / SCHEDULE_EVERY.as_nanos() + 1
            }
            _ => 0,
        };
        if counts.started != seen || span != u128::from(seen) || counts.missed + counts.skipped > 0
        {
            return Err(format!(
                "schedule {SCHEDULE_ID:?} counts {counts:?}, but the commits started the runs of {seen} fires spanning {span} slots (first {:?}, last {:?})",
                self.fires.first(),
                self.fires.last()
            ));
        }
        Ok(())
    }

    /// The client decided to start `run` of `saga` with `input`.
    pub(crate) fn started(&mut self, run: WorkflowId, saga: Saga, input: i64) {
        self.counts.started += 1;
        self.runs.insert(
            run,
            RunCheck {
                saga,
                input,
                accepted: BTreeMap::new(),
                signal: None,
                tasks: Vec::new(),
            },
        );
    }

    /// The store took the client's `commands` as messages `ids`.
    pub(crate) fn posted(&mut self, commands: &[Command], ids: &[MessageId]) {
        self.awaiting
            .extend(ids.iter().copied().zip(commands.iter().copied()));
    }

    /// Runs started and not ended.
    pub(crate) fn live(&self) -> usize {
        self.runs.len()
    }

    /// Step tasks assigned, each counted once.
    pub(crate) fn step_tasks(&self) -> u64 {
        self.step_tasks
    }

    pub(crate) fn counts(&self) -> RunCounts {
        self.counts
    }
}

impl<T: Clone + PartialEq + std::fmt::Debug> Checker<T> {
    /// Keeps what the checks need of a commit on its way to the store.
    pub(crate) fn stage(&mut self, op: &NodeOp<HostedTask<T>>) {
        let NodeOp::Commit {
            first_seq,
            consumed,
            outputs,
            ..
        } = op
        else {
            return;
        };
        let assigned = outputs
            .assign
            .iter()
            .filter_map(|a| match &a.payload {
                HostedTask::Step { step, inputs } => Some((a.task, *step, inputs.clone())),
                HostedTask::Task(_) | HostedTask::Datum(_) => None,
            })
            .collect();
        let verdicts = consumed
            .iter()
            .filter(|(id, _)| self.awaiting.contains_key(id))
            .cloned()
            .collect();
        self.staged = Some(Staged {
            first_seq: *first_seq,
            assigned,
            ends: outputs.runs.clone(),
            verdicts,
        });
    }

    /// The commit staged last landed: its verdicts, then the completions
    /// it accepted, then its assignments, then the run ends it published.
    pub(crate) fn landed(&mut self, landed: Landed<'_, HostedTask<T>>) -> Result<(), String> {
        let Some(staged) = self.staged.take() else {
            return Ok(());
        };
        for (id, verdict) in staged.verdicts {
            if let Some(command) = self.awaiting.remove(&id) {
                self.verdict(id, command, &verdict)?;
            }
        }
        for (task, seq, how, output) in landed.task_ends {
            if *how == Ended::Completed {
                self.completed(*task, *seq, output.as_ref())?;
            }
        }
        for assigned in staged.assigned {
            self.assigned(staged.first_seq, assigned)?;
        }
        let replayed: Vec<_> = landed.run_ends.into_iter().map(|(_, end)| end).collect();
        if staged.ends != replayed {
            return Err(format!(
                "the commit from entry {} published the run ends {:?}, but its entries replay to {replayed:?}",
                staged.first_seq, staged.ends
            ));
        }
        for end in staged.ends {
            self.run_ended(staged.first_seq, end)?;
        }
        Ok(())
    }

    /// Message `id`, the client's `command`, was answered `verdict`.
    fn verdict(
        &mut self,
        id: MessageId,
        command: Command,
        verdict: &Verdict,
    ) -> Result<(), String> {
        match command {
            Command::Register(saga) if *verdict != Verdict::Accepted => Err(format!(
                "the registration of workflow {:?} (message {id}) was answered {verdict:?}",
                self.sagas.def(saga).name()
            )),
            Command::Start(run) if *verdict != Verdict::Run(run) => Err(format!(
                "the start of run {run} by its id (message {id}) was answered {verdict:?}"
            )),
            Command::Signal { run, by, .. } | Command::Cancel { run, by }
                if *verdict == Verdict::Accepted && owner(run) != by =>
            {
                let whose = |tenant: Option<crate::TenantId>| {
                    tenant.map_or_else(|| "no tenant".to_string(), |t| t.to_string())
                };
                Err(format!(
                    "{command:?} from a client of {} to run {run}, which is {}'s, was accepted \
                     (message {id}): a run is its owner's alone",
                    whose(by),
                    whose(owner(run))
                ))
            }
            Command::Signal {
                run, send, value, ..
            } if *verdict == Verdict::Accepted => {
                if let Some(outcome) = self.ended.get(&run) {
                    return Err(format!(
                        "a signal to run {run}, which had ended {outcome:?}, was accepted (message {id})"
                    ));
                }
                let Some(check) = self.runs.get_mut(&run) else {
                    return Err(format!(
                        "a signal to run {run}, which was never started, was accepted (message {id})"
                    ));
                };
                if let Some((first, _)) = check.signal {
                    return Err(format!(
                        "run {run} took two approve signals (the client's sends {first} and {send}, the second by message {id}): a signal is applied once"
                    ));
                }
                check.signal = Some((send, value));
                Ok(())
            }
            // Refused only as added already: a copy posted before the
            // client stopped.
            Command::Schedule => match verdict {
                Verdict::Accepted => Ok(()),
                Verdict::Refused(why) if why.contains("exists") => Ok(()),
                other => Err(format!(
                    "the schedule's addition (message {id}) was answered {other:?}"
                )),
            },
            Command::Cancel { .. } if *verdict == Verdict::Accepted => {
                self.counts.cancelled += 1;
                Ok(())
            }
            Command::Register(_) | Command::Start(_) | Command::Signal { .. } => Ok(()),
            Command::Cancel { .. } => Ok(()),
        }
    }

    /// The leader accepted a completion of `task` with `output`, in entry
    /// `seq`: for a step, the output its agent computed, once per step.
    fn completed(
        &mut self,
        task: TaskId,
        seq: u64,
        output: Option<&HostedTask<T>>,
    ) -> Result<(), String> {
        let Some(step) = self.tasks.get(&task).copied() else {
            // A plain task.
            return Ok(());
        };
        if step.compensation {
            return Ok(());
        }
        let Some(check) = self.runs.get_mut(&step.run) else {
            return Ok(());
        };
        let key = step_key(&self.sagas, check.saga, step.step);
        let datum = match output {
            Some(HostedTask::Datum(d)) if matches!(d.origin, Origin::Attempt { task: t, .. } if t == task) => {
                *d
            }
            other => {
                return Err(format!(
                    "step {key} of run {} completed with {other:?} in entry {seq}, which no attempt at its task {task} computed",
                    step.run
                ));
            }
        };
        if let Some(first) = check.accepted.insert(step.step, datum) {
            return Err(format!(
                "step {key} of run {} completed twice: with {first:?}, then with {datum:?} (task {task}, entry {seq})",
                step.run
            ));
        }
        Ok(())
    }

    /// A commit from entry `seq` assigns a step's task: not after its run
    /// ended; a compensation only of a step that completed; a step with
    /// the run's input or the outputs the leader accepted.
    fn assigned(&mut self, seq: u64, (task, step, inputs): StepAssigned) -> Result<(), String> {
        let run = step.run;
        self.adopt(run);
        if let Some(outcome) = self.ended.get(&run) {
            return Err(format!(
                "the commit from entry {seq} assigns task {task} (a step of run {run}), but the run had ended {outcome:?}"
            ));
        }
        let Some(check) = self.runs.get_mut(&run) else {
            return Err(format!(
                "the commit from entry {seq} assigns task {task}, a step of run {run}, which was never started"
            ));
        };
        if self.tasks.insert(task, step).is_none() {
            check.tasks.push(task);
            self.step_tasks += 1;
        }
        let def = self.sagas.def(check.saga);
        let key = |s| step_key(&self.sagas, check.saga, s);
        if step.compensation {
            if !check.accepted.contains_key(&step.step) {
                return Err(format!(
                    "run {run} compensates step {} (task {task}, entry {seq}), which never completed",
                    key(step.step)
                ));
            }
            return Ok(());
        }
        for (from, datum) in inputs {
            let right = match from {
                None => datum.value == check.input && datum.origin == Origin::Input,
                Some(from) => match def.step(from).map(|s| &s.kind) {
                    Some(StepKind::Wait { .. }) => check.signal.is_some_and(|(send, value)| {
                        datum.value == value && datum.origin == Origin::Signal(send)
                    }),
                    _ => check.accepted.get(&from) == Some(&datum),
                },
            };
            if !right {
                let (source, given) = match from {
                    None => ("the run's input".to_owned(), format!("{}", check.input)),
                    Some(from) => match def.step(from).map(|s| &s.kind) {
                        Some(StepKind::Wait { .. }) => (
                            format!("wait step {}", key(from)),
                            match check.signal {
                                None => "the leader accepted no signal for the run".to_owned(),
                                Some((send, value)) => format!(
                                    "the signal the leader accepted (the client's send {send}) carries {value}"
                                ),
                            },
                        ),
                        _ => (
                            format!("step {}", key(from)),
                            match check.accepted.get(&from) {
                                None => "the leader accepted no completion of it".to_owned(),
                                Some(d) => {
                                    format!("the completion the leader accepted output {d:?}")
                                }
                            },
                        ),
                    },
                };
                return Err(format!(
                    "step {} of run {run} (task {task}, entry {seq}) takes {datum:?} from {source}, but {given}",
                    key(step.step)
                ));
            }
        }
        Ok(())
    }

    /// A commit from entry `seq` published `end`: the run's only end, of
    /// a run the client started; a success with the output its steps
    /// give.
    fn run_ended(&mut self, seq: u64, end: RunEnd<HostedTask<T>>) -> Result<(), String> {
        let run = end.run;
        self.adopt(run);
        if let Some(first) = self.ended.get(&run) {
            return Err(format!(
                "run {run} ended a second time, {:?} in the commit from entry {seq}: it had ended {first:?}",
                end.outcome
            ));
        }
        let Some(check) = self.runs.remove(&run) else {
            return Err(format!(
                "run {run} ended {:?} in the commit from entry {seq}, but it was never started",
                end.outcome
            ));
        };
        for task in &check.tasks {
            self.tasks.remove(task);
        }
        match &end.outcome {
            RunOutcome::Succeeded => {
                self.counts.succeeded += 1;
                self.check_output(seq, &check, &end)?;
            }
            RunOutcome::Failed(_) => self.counts.failed += 1,
            RunOutcome::Compensated(_) => self.counts.compensated += 1,
            RunOutcome::CompensationFailed { .. } => self.counts.compensation_failed += 1,
        }
        self.ended.insert(run, end.outcome);
        Ok(())
    }

    /// A run that succeeded took the signal it waited for, and outputs
    /// the output of the completion the leader accepted for its output
    /// step, which is what its steps give.
    fn check_output(
        &self,
        seq: u64,
        check: &RunCheck,
        end: &RunEnd<HostedTask<T>>,
    ) -> Result<(), String> {
        let run = end.run;
        let def = self.sagas.def(check.saga);
        let waits = def
            .steps()
            .any(|(_, s)| matches!(s.kind, StepKind::Wait { .. }));
        if waits && check.signal.is_none() {
            return Err(format!(
                "run {run} succeeded in the commit from entry {seq}, but the leader accepted no signal for it to wait for"
            ));
        }
        let last = def.output();
        let accepted = last.and_then(|s| check.accepted.get(&s));
        let output = match &end.output {
            Some(HostedTask::Datum(d)) => Some(d),
            _ => None,
        };
        if output.is_none() || output != accepted {
            let step =
                last.map_or_else(|| "(none)".into(), |s| step_key(&self.sagas, check.saga, s));
            let accepted = match accepted {
                None => format!("the leader accepted no completion of its output step {step}"),
                Some(d) => format!(
                    "the completion the leader accepted for its output step {step} output {d:?}"
                ),
            };
            return Err(format!(
                "run {run} succeeded in the commit from entry {seq} with {:?}, but {accepted}",
                end.output
            ));
        }
        let signal = check.signal.map_or(0, |(_, value)| value);
        let want = expected(def, check.input, signal);
        if output.map(|d| d.value) != want {
            return Err(format!(
                "run {run} succeeded in the commit from entry {seq} with {:?}, but its steps give {want:?} (input {}, signal {:?})",
                end.output, check.input, check.signal
            ));
        }
        Ok(())
    }
}

/// A step's key in `saga`'s definition (its id where it has none).
fn step_key(sagas: &HostedSagas, saga: Saga, step: StepId) -> String {
    match sagas.def(saga).step(step) {
        Some(def) => format!("{:?}", def.id),
        None => step.to_string(),
    }
}
