//! Quickstart: the main job, told as a short story.
//!
//! Three agents register with one dispatcher. Plain tasks are dispatched:
//! one attempt fails and is retried, and an agent that crashes while
//! holding a task misses its heartbeats, so its task fails over to another
//! agent. A workflow runs on the same dispatcher: a hotel and a flight are
//! booked, the card is declined for good, and the saga undoes the flight,
//! then the hotel, in reverse order. The host plays the agents on a
//! virtual clock; the example checks the story and exits non-zero if it
//! went another way.
//!
//! `cargo run --release --example quickstart`

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use taskweave::agent::AgentProfile;
use taskweave::resilience::Fixed;
use taskweave::scheduler::{
    Action, AttemptOutcome, Dispatcher, DispatcherConfig, Event, TaskReport, TaskSpec,
};
use taskweave::workflow::{
    EngineAction, RunOutcome, StepDef, StepFailure, StepOutput, StepTask, WorkflowDef,
    WorkflowEngine,
};
use taskweave::{AgentId, AttemptToken, Instant, TaskId, TaskRequirements};

/// What the dispatcher carries: the host's own jobs, and workflow steps.
#[derive(Clone, Debug)]
enum Job {
    Summarize(&'static str),
    Step(StepTask),
}

impl From<StepTask> for Job {
    fn from(step: StepTask) -> Self {
        Job::Step(step)
    }
}

/// Work an agent finishes at a given instant.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Work {
    task: TaskId,
    agent: AgentId,
    token: AttemptToken,
}

const AGENTS: [(u64, &str, &str); 3] = [
    (1, "ada", "write"),
    (2, "bob", "write"),
    (3, "cyd", "travel"),
];
/// bob crashes when he takes his first task.
const CRASHES: u64 = 2;

fn name(agent: AgentId) -> &'static str {
    AGENTS
        .iter()
        .find(|(id, ..)| *id == agent.get())
        .map_or("?", |a| a.1)
}

fn trip() -> Result<WorkflowDef, taskweave::Error> {
    let travel = |id: &str| StepDef::agent(id).capabilities(["travel"]);
    Ok(WorkflowDef::builder("trip", 1)
        .step(travel("hotel").compensable())
        .step(travel("flight").compensable())
        .step(travel("charge_card"))
        .edge("hotel", "flight")
        .edge("flight", "charge_card")
        .build()?)
}

/// The story's host: the dispatcher, the engine, the agents' work in
/// flight, and what it told.
struct Host {
    pool: Dispatcher<Job>,
    engine: WorkflowEngine<String>,
    def: Arc<WorkflowDef>,
    now: Instant,
    busy: BinaryHeap<Reverse<(Instant, Work)>>,
    docs: BTreeMap<TaskId, &'static str>,
    events: Arc<Mutex<Vec<Event>>>,
    crashed: bool,
    overloaded: bool,
    story: Vec<String>,
    trip: Option<RunOutcome>,
}

impl Host {
    fn tell(&mut self, line: String) {
        let line = format!("t={:>4.1}s  {line}", self.now.as_nanos() as f64 / 1e9);
        println!("{line}");
        self.story.push(line);
    }

    /// Hands every dispatcher action to the engine, carries out what
    /// comes back, and tells the dispatcher's events about plain tasks.
    fn settle(&mut self) {
        loop {
            if let Some(action) = self.pool.poll_action() {
                let mine = self.engine.handle_action(&mut self.pool, action);
                self.tell_events();
                if let Some(Action::Assign {
                    task, agent, token, ..
                }) = mine
                {
                    self.take(task, agent, token);
                }
                continue;
            }
            let Some(action) = self.engine.poll_action() else {
                break;
            };
            match action {
                EngineAction::Assign {
                    task,
                    agent,
                    token,
                    step,
                } => {
                    let id = self.step_name(&step);
                    let verb = if step.compensation { "undoes" } else { "runs" };
                    self.tell(format!("trip: {} {verb} {id}", name(agent)));
                    self.take(task, agent, token);
                }
                EngineAction::Finished { outcome, .. } => {
                    let how = match &outcome {
                        RunOutcome::Compensated(_) => "compensated: every booking undone",
                        RunOutcome::Succeeded => "succeeded",
                        _ => "failed",
                    };
                    self.tell(format!("trip: the run ends {how}"));
                    self.trip = Some(outcome);
                }
                other => self.tell(format!("trip: {other:?}")),
            }
        }
        self.tell_events();
    }

    fn tell_events(&mut self) {
        let events = std::mem::take(&mut *self.events.lock().expect("not poisoned"));
        for event in events {
            self.tell_event(event);
        }
    }

    fn tell_event(&mut self, event: Event) {
        let doc = |task| self.docs.get(&task).copied();
        let line = match event {
            Event::Assigned {
                task,
                agent,
                attempt,
                ..
            } => doc(task).map(|d| format!("{d} goes to {} (attempt {attempt})", name(agent))),
            Event::Completed { task, agent, .. } => {
                doc(task).map(|d| format!("{d} done by {}", name(agent)))
            }
            Event::Retried { task, at } => doc(task).map(|d| {
                let wait = at.saturating_duration_since(self.now);
                format!("{d} will be retried in {:.1} s", wait.as_secs_f64())
            }),
            Event::FailedOver { task, agent } => {
                doc(task).map(|d| format!("{d} fails over: taken back from {}", name(agent)))
            }
            Event::AgentLost { agent } => {
                Some(format!("{} missed 3 heartbeats: lost", name(agent)))
            }
            _ => None,
        };
        if let Some(line) = line {
            self.tell(line);
        }
    }

    fn step_name(&self, step: &StepTask) -> String {
        self.def
            .step(step.step)
            .map_or_else(|| "?".into(), |s| s.id.clone())
    }

    /// An agent starts an attempt; bob crashes on his first one instead.
    fn take(&mut self, task: TaskId, agent: AgentId, token: AttemptToken) {
        if agent.get() == CRASHES && !self.crashed {
            self.crashed = true;
            self.tell("bob crashes while holding his task".into());
            return;
        }
        let at = self.now + Duration::from_secs(1);
        self.busy.push(Reverse((at, Work { task, agent, token })));
    }

    /// An attempt ends: how it went is the story's.
    fn finish(&mut self, work: Work) {
        let Work { task, agent, token } = work;
        if let Some(Job::Summarize(doc)) = self.pool.payload(task).cloned() {
            let outcome = match doc {
                "report-1" if !self.overloaded => {
                    self.overloaded = true;
                    self.tell(format!("{doc} fails on {}: model overloaded", name(agent)));
                    AttemptOutcome::failure("model overloaded")
                }
                _ => AttemptOutcome::Success,
            };
            let report = TaskReport {
                task,
                agent,
                token,
                outcome,
            };
            self.pool.report(report, self.now).expect("a live attempt");
            return;
        }
        let Some(Job::Step(step)) = self.pool.payload(task).cloned() else {
            return;
        };
        let id = self.step_name(&step);
        let result = if id == "charge_card" && !step.compensation {
            self.tell("trip: charge_card fails for good: card declined".into());
            Err(StepFailure::fatal("card declined"))
        } else {
            Ok(StepOutput::new(id))
        };
        self.engine
            .report(&mut self.pool, task, agent, token, result, self.now)
            .expect("a live step");
    }
}

fn main() -> ExitCode {
    let config = DispatcherConfig::builder()
        .heartbeats(Duration::from_secs(1), 3)
        .retry_policy(Fixed::new(Duration::from_millis(500), 3).expect("valid"))
        .build()
        .expect("valid configuration");
    let mut pool: Dispatcher<Job> = Dispatcher::new(config);
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    pool.set_observer(move |event: &Event| sink.lock().expect("not poisoned").push(*event));
    let def = Arc::new(trip().expect("a valid definition"));
    let mut host = Host {
        pool,
        engine: WorkflowEngine::new(),
        def,
        now: Instant::ZERO,
        busy: BinaryHeap::new(),
        docs: BTreeMap::new(),
        events,
        crashed: false,
        overloaded: false,
        story: Vec::new(),
        trip: None,
    };

    for (id, agent, capability) in AGENTS {
        let profile = AgentProfile::builder()
            .capabilities([capability])
            .capacity(1)
            .build()
            .expect("a valid profile");
        host.pool
            .register_agent(AgentId::new(id), profile, host.now)
            .expect("a new agent");
        host.tell(format!("{agent} registers ({capability})"));
    }
    for doc in ["report-1", "report-2", "report-3"] {
        let spec = TaskSpec::new(Job::Summarize(doc))
            .requirements(TaskRequirements::new().require(["write"]));
        let task = host.pool.submit(spec, host.now).expect("accepted").id();
        host.docs.insert(task, doc);
    }
    host.tell("3 reports submitted; a trip workflow starts on the same dispatcher".into());
    let def = Arc::clone(&host.def);
    let _ = host.engine.start(&mut host.pool, def, None, host.now);

    let mut next_heartbeat = Instant::ZERO;
    loop {
        host.settle();
        let done = host.pool.live_tasks() == 0 && host.trip.is_some();
        if done || host.now > Instant::from_secs(60) {
            break;
        }
        let due_work = host.busy.peek().map(|Reverse((at, _))| *at);
        let wake = [
            due_work,
            Some(next_heartbeat),
            host.pool.poll_timeout(),
            host.engine.poll_timeout(),
        ];
        host.now = wake
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(host.now)
            .max(host.now);
        while host
            .busy
            .peek()
            .is_some_and(|Reverse((at, _))| *at <= host.now)
        {
            if let Some(Reverse((_, work))) = host.busy.pop() {
                host.finish(work);
            }
        }
        if host.now >= next_heartbeat {
            for (id, ..) in AGENTS {
                if !(id == CRASHES && host.crashed) {
                    let _ = host.pool.heartbeat(AgentId::new(id), host.now);
                }
            }
            next_heartbeat = host.now + Duration::from_secs(1);
        }
        host.pool.handle_timeout(host.now);
        host.engine.handle_timeout(&mut host.pool, host.now);
    }

    let told = |text: &str| host.story.iter().position(|l| l.contains(text));
    let undo_flight = told("undoes flight");
    let undo_hotel = told("undoes hotel");
    let done = host
        .story
        .iter()
        .filter(|l| l.contains(" done by "))
        .count();
    let as_expected = done == 3
        && told("will be retried").is_some()
        && told("fails over").is_some()
        && matches!(host.trip, Some(RunOutcome::Compensated(_)))
        && undo_flight.zip(undo_hotel).is_some_and(|(f, h)| f < h);
    if as_expected {
        println!("every report done, one retry, one failover; the trip undone in reverse order");
        ExitCode::SUCCESS
    } else {
        eprintln!("the story went another way");
        ExitCode::FAILURE
    }
}
