//! The client of the runs a simulated cluster hosts: it registers the
//! sagas and adds a schedule, starts runs by id at a rate, signals the
//! runs that wait for it, cancels some, and reads the runs' ends; each command is posted
//! again until it has a verdict. A run is started, signalled, cancelled
//! and read by its [`owner`]: a client of one of two tenants or of none;
//! now and then a client that is not the owner signals or cancels a live
//! run, which must be refused. Stopped
//! ([`FaultMenu::client_stops`](super::FaultMenu::client_stops)), it
//! forgets the commands it was waiting on, and posts them again by id
//! when it comes back.

use std::collections::{BTreeMap, VecDeque};

use crate::{TenantId, WorkflowId};

use super::super::contract::{
    ClientOp, ClientReply, Message, MessageId, RunCommand, ScheduleCommand, ScheduledStart, Verdict,
};
use super::driver::Tick;
use super::hosted::{
    CANCELLED, Datum, HostedSagas, HostedTask, Origin, SCHEDULE_ID, SCHEDULED_INPUT, SIGNALLED,
    Saga,
};
use super::hosted_checks::Checker;
use super::world::TICK;

/// A command the client posts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Command {
    /// Registers a saga.
    Register(Saga),
    /// Starts a run by its id.
    Start(WorkflowId),
    /// Signals `approve` to a run, with `value`, the client's `send`-th
    /// signal, as the client of tenant `by` (or of none).
    Signal {
        run: WorkflowId,
        send: u64,
        value: i64,
        by: Option<TenantId>,
    },
    /// Cancels a run, as the client of tenant `by` (or of none).
    Cancel {
        run: WorkflowId,
        by: Option<TenantId>,
    },
    /// Adds the schedule that starts an `order` run every
    /// [`SCHEDULE_EVERY`], whatever runs go.
    Schedule,
}

/// Where a command the client owes stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Need {
    /// Not wanted.
    No,
    /// To post (again).
    Owed,
    /// Posted, its verdict awaited.
    Posted,
    /// Answered.
    Done,
}

/// A run the client started and has not read the end of.
struct Want {
    saga: Saga,
    input: i64,
    start: Need,
    /// The `approve` signal, for a run that waits for one.
    signal: Need,
    cancel: Need,
}

/// The chance, per tick, that an owed cancel is posted (so cancels reach
/// runs at every stage).
const CANCEL_NOW: f64 = 0.3;

/// The chance that an owed signal is posted twice at once.
const TWICE: f64 = 0.2;

/// The chance, per tick, of a signal to a run that ended or never was.
const STRAY: f64 = 0.05;

/// How many ended runs the client remembers, for stray signals.
const REMEMBERED: usize = 16;

/// The chance, per tick, that a client not the owner of a live run
/// signals or cancels it.
const FOREIGN: f64 = 0.05;

/// The clients that act on runs: one of no tenant's, tenant 1's and
/// tenant 2's.
const CLIENTS: [Option<TenantId>; 3] = [None, Some(TenantId::new(1)), Some(TenantId::new(2))];

/// Whose run `run` is: one of the [`CLIENTS`], by its id.
pub(crate) fn owner(run: WorkflowId) -> Option<TenantId> {
    CLIENTS[(run.get() % 3) as usize]
}

/// Who sends `command`: a registration and the schedule are a client of
/// no tenant's; a start, the owner of the run; a signal and a cancel, the
/// client they name.
fn sender(command: Command) -> Option<TenantId> {
    match command {
        Command::Register(_) | Command::Schedule => None,
        Command::Start(run) => owner(run),
        Command::Signal { by, .. } | Command::Cancel { by, .. } => by,
    }
}

/// Another client than `of`: the next of the [`CLIENTS`].
fn other_than(of: Option<TenantId>) -> Option<TenantId> {
    let at = CLIENTS.iter().position(|&c| c == of).unwrap_or(0);
    CLIENTS[(at + 1) % CLIENTS.len()]
}

/// Run ids from here on are never started: a stray signal's target.
const UNKNOWN_RUNS: u64 = 1 << 40;

/// The simulated client of the hosted runs. What it keeps across a stop
/// is what a real client would keep in its own database: the sagas it
/// registered, the runs it decided to start (by id, with their input)
/// and whether the cluster named each, the signals and cancels it owes.
pub(crate) struct HostedClient {
    sagas: HostedSagas,
    register: [Need; 2],
    schedule: Need,
    runs: BTreeMap<WorkflowId, Want>,
    finished: VecDeque<WorkflowId>,
    next_run: u64,
    backlog: f64,
    sends: u64,
    /// Posted commands waiting for a verdict: forgotten when it stops.
    pending: BTreeMap<MessageId, Command>,
    down: bool,
}

impl HostedClient {
    pub(crate) fn new(sagas: HostedSagas) -> Self {
        HostedClient {
            sagas,
            register: [Need::Owed; 2],
            schedule: Need::Owed,
            runs: BTreeMap::new(),
            finished: VecDeque::new(),
            next_run: 1,
            backlog: 0.0,
            sends: 0,
            pending: BTreeMap::new(),
            down: false,
        }
    }

    /// Runs whose start the client has not heard named: until it has,
    /// it posts the start again (the cluster must not drain before).
    pub(crate) fn unstarted(&self) -> usize {
        self.runs.values().filter(|w| w.start != Need::Done).count()
    }

    /// The client's share of a tick: verdicts, ends, new runs, and the
    /// commands it owes, posted in one go.
    pub(crate) fn tick<T: Clone>(
        &mut self,
        tick: &mut Tick<'_, HostedTask<T>>,
        checker: &mut Checker<T>,
    ) {
        if tick.client_down {
            if !self.down {
                self.stop(tick);
            }
            return;
        }
        self.down = false;
        self.read_verdicts(tick);
        self.read_ends(tick);
        if tick.starting && self.register.iter().all(|&r| r == Need::Done) {
            self.start_runs(tick, checker);
        }
        let commands = self.owed(tick);
        self.post(tick, checker, commands);
    }

    /// The process stops: what it was waiting on is forgotten, to be
    /// posted again when it comes back.
    fn stop<T>(&mut self, tick: &mut Tick<'_, HostedTask<T>>) {
        self.down = true;
        let forgotten = std::mem::take(&mut self.pending).len();
        let again = |need: &mut Need| {
            if *need == Need::Posted {
                *need = Need::Owed;
            }
        };
        self.register.iter_mut().for_each(again);
        again(&mut self.schedule);
        for want in self.runs.values_mut() {
            again(&mut want.start);
            again(&mut want.signal);
            again(&mut want.cancel);
        }
        tick.log.push(format!(
            "the hosted runs' client stops, forgetting {forgotten} commands it posted"
        ));
    }

    /// Takes the verdicts that came in.
    fn read_verdicts<T: Clone>(&mut self, tick: &mut Tick<'_, HostedTask<T>>) {
        if self.pending.is_empty() {
            return;
        }
        // Each sender reads the verdicts of its own messages.
        for by in CLIENTS {
            let ids: Vec<MessageId> = (self.pending.iter())
                .filter(|&(_, &command)| sender(command) == by)
                .map(|(&id, _)| id)
                .collect();
            if ids.is_empty() {
                continue;
            }
            let done = tick.execute_as(by, ClientOp::Verdicts(ids.clone()));
            let Ok(ClientReply::Verdicts(verdicts)) = tick.heard(done) else {
                continue;
            };
            for (id, verdict) in ids.into_iter().zip(verdicts) {
                let Some(verdict) = verdict else { continue };
                if let Some(command) = self.pending.remove(&id) {
                    self.answered(command, &verdict);
                }
            }
        }
    }

    /// What a verdict means to the client (whether it was the right one
    /// is the checks' to say).
    fn answered(&mut self, command: Command, verdict: &Verdict) {
        let settle = |need: &mut Need, done: bool| {
            if *need == Need::Posted {
                *need = if done { Need::Done } else { Need::Owed };
            }
        };
        match command {
            Command::Register(saga) => {
                settle(
                    &mut self.register[saga as usize],
                    *verdict == Verdict::Accepted,
                );
            }
            Command::Start(run) => {
                if let Some(want) = self.runs.get_mut(&run) {
                    settle(&mut want.start, matches!(verdict, Verdict::Run(_)));
                }
            }
            // Refused, the signal or the cancel came too late: the run
            // ended, or another copy was taken. (A foreign one was never
            // owed.)
            Command::Signal { run, by, .. } if owner(run) == by => {
                if let Some(want) = self.runs.get_mut(&run) {
                    settle(&mut want.signal, true);
                }
            }
            Command::Cancel { run, by } if owner(run) == by => {
                if let Some(want) = self.runs.get_mut(&run) {
                    settle(&mut want.cancel, true);
                }
            }
            Command::Signal { .. } | Command::Cancel { .. } => {}
            // Refused, it was added already (a copy posted before a stop).
            Command::Schedule => settle(&mut self.schedule, true),
        }
    }

    /// Reads the ends of its runs (more often than the leader snapshots:
    /// a trimmed end can no longer be read).
    fn read_ends<T: Clone>(&mut self, tick: &mut Tick<'_, HostedTask<T>>) {
        if self.runs.is_empty() {
            return;
        }
        // Each owner reads the ends of its own runs.
        for by in CLIENTS {
            let ids: Vec<WorkflowId> = (self.runs.keys().copied())
                .filter(|&run| owner(run) == by)
                .collect();
            if ids.is_empty() {
                continue;
            }
            let done = tick.execute_as(by, ClientOp::Runs(ids.clone()));
            let Ok(ClientReply::Runs(ends)) = tick.heard(done) else {
                continue;
            };
            for (run, end) in ids.into_iter().zip(ends) {
                if end.is_some() && self.runs.remove(&run).is_some() {
                    if self.finished.len() == REMEMBERED {
                        self.finished.pop_front();
                    }
                    self.finished.push_back(run);
                }
            }
        }
    }

    /// The runs due this tick, by the next ids.
    fn start_runs<T>(&mut self, tick: &mut Tick<'_, HostedTask<T>>, checker: &mut Checker<T>) {
        self.backlog += self.sagas.load.runs_per_second * TICK.as_secs_f64();
        let count = self.backlog as u64;
        self.backlog -= count as f64;
        for _ in 0..count {
            let run = WorkflowId::new(self.next_run);
            self.next_run += 1;
            let saga = match tick.rng.chance(SIGNALLED) {
                true => Saga::Approval,
                false => Saga::Order,
            };
            let input = (tick.rng.next_u64() % 1_000) as i64;
            let cancel = match tick.rng.chance(CANCELLED) {
                true => Need::Owed,
                false => Need::No,
            };
            let signal = match saga {
                Saga::Approval => Need::Owed,
                Saga::Order => Need::No,
            };
            checker.started(run, saga, input);
            self.runs.insert(
                run,
                Want {
                    saga,
                    input,
                    start: Need::Owed,
                    signal,
                    cancel,
                },
            );
        }
    }

    /// The commands it owes now: registrations, then each run's start,
    /// signal and cancel, and now and then a stray signal.
    fn owed<T>(&mut self, tick: &mut Tick<'_, HostedTask<T>>) -> Vec<Command> {
        let mut commands = Vec::new();
        for saga in [Saga::Order, Saga::Approval] {
            if self.register[saga as usize] == Need::Owed {
                commands.push(Command::Register(saga));
            }
        }
        let registered = self.register.iter().all(|&r| r == Need::Done);
        if registered && self.schedule == Need::Owed {
            commands.push(Command::Schedule);
        }
        for (&run, want) in self.runs.iter().filter(|_| registered) {
            if want.start == Need::Owed {
                commands.push(Command::Start(run));
                continue;
            }
            if want.start != Need::Done {
                continue;
            }
            let by = owner(run);
            if want.signal == Need::Owed {
                let copies = if tick.rng.chance(TWICE) { 2 } else { 1 };
                for _ in 0..copies {
                    self.sends += 1;
                    let value = 1 + (tick.rng.next_u64() % 100) as i64;
                    let send = self.sends;
                    commands.push(Command::Signal {
                        run,
                        send,
                        value,
                        by,
                    });
                }
            }
            if want.cancel == Need::Owed && tick.rng.chance(CANCEL_NOW) {
                commands.push(Command::Cancel { run, by });
            }
            // Another client's signal or cancel: refused, changing nothing.
            if tick.rng.chance(FOREIGN) {
                self.sends += 1;
                let by = other_than(by);
                commands.push(match tick.rng.chance(0.5) {
                    true => Command::Signal {
                        run,
                        send: self.sends,
                        value: -1,
                        by,
                    },
                    false => Command::Cancel { run, by },
                });
            }
        }
        if registered && tick.rng.chance(STRAY) {
            self.sends += 1;
            let pick = tick.rng.next_u64();
            let run = match self.finished.len() {
                0 => WorkflowId::new(UNKNOWN_RUNS + pick % 1_000),
                n => self.finished[(pick % n as u64) as usize],
            };
            commands.push(Command::Signal {
                run,
                send: self.sends,
                value: 0,
                by: owner(run),
            });
        }
        commands
    }

    /// Posts `commands` in one go; the checks learn of every message the
    /// store took, the client only of those whose answer it heard.
    fn post<T: Clone>(
        &mut self,
        tick: &mut Tick<'_, HostedTask<T>>,
        checker: &mut Checker<T>,
        commands: Vec<Command>,
    ) {
        if commands.is_empty() {
            return;
        }
        // Each sender posts its own, in one go.
        for by in CLIENTS {
            let mine: Vec<Command> = (commands.iter().copied())
                .filter(|&c| sender(c) == by)
                .collect();
            if mine.is_empty() {
                continue;
            }
            let messages = mine.iter().map(|c| self.message(*c)).collect();
            let done = tick.execute_as(by, ClientOp::Post(messages));
            if let Ok(ClientReply::Posted(ids)) = &done {
                checker.posted(&mine, ids);
            }
            let Ok(ClientReply::Posted(ids)) = tick.heard(done) else {
                continue;
            };
            for (id, command) in ids.into_iter().zip(mine) {
                self.pending.insert(id, command);
                self.mark_posted(command);
            }
        }
    }

    /// An owed command was posted: its verdict is awaited (a foreign one
    /// was never owed).
    fn mark_posted(&mut self, command: Command) {
        let owned = |run: WorkflowId, by| owner(run) == by;
        let need = match command {
            Command::Register(saga) => Some(&mut self.register[saga as usize]),
            Command::Start(run) => self.runs.get_mut(&run).map(|w| &mut w.start),
            Command::Signal { run, by, .. } if owned(run, by) => {
                self.runs.get_mut(&run).map(|w| &mut w.signal)
            }
            Command::Cancel { run, by } if owned(run, by) => {
                self.runs.get_mut(&run).map(|w| &mut w.cancel)
            }
            Command::Signal { .. } | Command::Cancel { .. } => None,
            Command::Schedule => Some(&mut self.schedule),
        };
        if let Some(need) = need.filter(|n| **n == Need::Owed) {
            *need = Need::Posted;
        }
    }

    /// The message that carries `command`.
    fn message<T>(&self, command: Command) -> Message<HostedTask<T>> {
        let number = |value, origin| Some(HostedTask::Datum(Datum { value, origin }));
        Message::Run(match command {
            Command::Register(saga) => {
                RunCommand::Register(Box::new((**self.sagas.def(saga)).clone()))
            }
            Command::Start(run) => {
                let (saga, input) = self
                    .runs
                    .get(&run)
                    .map_or((Saga::Order, 0), |w| (w.saga, w.input));
                let def = self.sagas.def(saga);
                RunCommand::Start {
                    workflow: def.name().to_owned(),
                    version: Some(def.version()),
                    id: Some(run),
                    input: number(input, Origin::Input),
                }
            }
            Command::Signal {
                run, send, value, ..
            } => RunCommand::Signal {
                run,
                name: "approve".into(),
                payload: number(value, Origin::Signal(send)),
            },
            Command::Cancel { run, .. } => RunCommand::Cancel(run),
            Command::Schedule => {
                let def = self.sagas.def(Saga::Order);
                RunCommand::Schedule(ScheduleCommand::Add {
                    id: SCHEDULE_ID.into(),
                    spec: self.sagas.schedule.clone(),
                    start: ScheduledStart {
                        workflow: def.name().to_owned(),
                        version: Some(def.version()),
                        input: number(SCHEDULED_INPUT, Origin::Input),
                    },
                })
            }
        })
    }
}
