//! Deterministic simulation of a whole cluster: the same [`Node`] and
//! [`AgentSession`] code the PostgreSQL host runs, driven by one event
//! queue in virtual time over a [`MemStore`], behind links that delay,
//! drop, duplicate and lose answers and deliver requests after their
//! sender gave up, with the faults of a [`FaultMenu`]:
//! crashes, a leader frozen past its lease, agents restarted inside their
//! heartbeat window or after it, store restarts, clock skew, slow agents,
//! cancellations, bursts of submissions, agents cut off from the store.
//! One seed decides every choice.
//!
//! After every event the run checks that no write lands under a deposed
//! epoch and, through an [`Auditor`] fed each commit, that every task ends
//! at most once and no report from a fenced attempt is accepted; at every
//! takeover, that the new leader's state equals a replay of the journal
//! (or lags it only by its own late commits, which its next commit finds);
//! once the faults stop, that every task ends within the liveness bound.
//! The first violation ends the run with the trace around it. Two runs of
//! a seed must give the same [`SimReport::trace_hash`].
//!
//! A host simulates its own agents and workload by implementing
//! [`SimWork`]: the tasks its clients submit and how each attempt goes;
//! and its workflows, with `SimWorkflows` and `simulate_workflows`
//! (feature `workflow`): a `WorkflowClient` on
//! the simulated store runs them, its agent steps cluster tasks, and the
//! run checks its sagas too. [`simulate_hosted`] runs sagas the nodes
//! themselves host ([`Node::host_runs`](super::Node::host_runs)), and
//! checks every commit against the audit's replay of it.
//!
//! ```
//! use std::time::Duration;
//! use taskweave::cluster::sim::{simulate, FaultMenu, SimConfig, UniformWork};
//!
//! let config = SimConfig::builder(7)
//!     .duration(Duration::from_secs(20), Duration::from_secs(30))
//!     .faults(FaultMenu { crash_node: 0.2, restart_agent: 0.5, ..FaultMenu::default() })
//!     .build()?;
//! let work = UniformWork { work: (Duration::from_millis(1), Duration::from_millis(50)), fail: 0.05 };
//! let report = simulate(config.clone(), work.clone());
//! assert!(report.violation.is_none(), "{:?}", report.violation);
//! assert!(report.completed > 0);
//! // Deterministic: the same seed, the same history.
//! assert_eq!(simulate(config, work).trace_hash, report.trace_hash);
//! # Ok::<(), taskweave::cluster::ConfigError>(())
//! ```
//!
//! [`Node`]: super::Node
//! [`AgentSession`]: super::AgentSession
//! [`MemStore`]: super::MemStore
//! [`Auditor`]: super::Auditor

mod checks;
mod config;
mod driver;
mod failures;
mod faults;
#[cfg(feature = "workflow")]
mod flows;
mod hosted;
mod hosted_checks;
mod hosted_client;
mod lives;
mod queue;
#[cfg(feature = "workflow")]
mod run_client;
mod step;
mod trace;
mod world;

use std::collections::BTreeMap;
use std::time::Duration;

pub use config::{
    EntryCodec, FaultMenu, MAX_OPERATIONS, MAX_TASKS, SimConfig, SimConfigBuilder, SimRng, SimWork,
    UniformWork,
};
pub use driver::RunCounts;
#[cfg(feature = "workflow")]
pub use flows::{MAX_RUNS, SagaFlows, SimTask, SimWorkflows};
pub use hosted::{Datum, HostedSagas, HostedTask, Origin};

use super::audit::Auditor;
use super::mem_store::MemStore;
use crate::Instant;
use crate::rng::SplitMix64;
use queue::Queue;
use trace::Trace;
use world::{Event, World};

/// A broken invariant, when and with what led to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Simulated time since the start.
    pub at: Duration,
    /// Which rule broke, in words.
    pub what: String,
    /// The trace's last lines, the violation last.
    pub trace: Vec<String>,
}

/// The violation, when, and the trace around it, a line each (indented).
impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at {:?} of simulated time", self.what, self.at)?;
        for line in &self.trace {
            write!(f, "\n  {line}")?;
        }
        Ok(())
    }
}

/// What a run did and found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimReport {
    /// The seed.
    pub seed: u64,
    /// Simulated time from the start to the end of the run.
    pub simulated: Duration,
    /// Events processed.
    pub events: u64,
    /// Every event folded into one hash: equal for two runs of a seed.
    pub trace_hash: u64,
    /// Faults injected, by kind.
    pub faults: BTreeMap<&'static str, u64>,
    /// Tasks the clients submitted.
    pub submitted: u64,
    /// Tasks the workflow clients posted for their runs' steps
    /// ([`simulate_workflows`]): with `submitted`, every task the cluster
    /// was asked to run (so `completed` may exceed `submitted`). With
    /// [`simulate_hosted`], the step tasks the nodes assigned to agents
    /// (a step's task cancelled before any agent got it is not counted).
    pub step_tasks: u64,
    /// Tasks refused at submission (the queue was full): each has a
    /// verdict that says so, and no task id.
    pub refused: u64,
    /// Tasks completed (per the audit of the journal).
    pub completed: u64,
    /// Dead-lettered.
    pub dead_lettered: u64,
    /// Dead letters an operator requeued as new tasks
    /// ([`FaultMenu::redrive`]); each new task counts in the ends above.
    pub redriven: u64,
    /// Expired.
    pub expired: u64,
    /// Cancelled.
    pub cancelled: u64,
    /// Journal entries written.
    pub journal_entries: u64,
    /// Their bytes through the codec (0 without one).
    pub journal_bytes: u64,
    /// Times a node started to lead.
    pub takeovers: u64,
    /// How the workflow runs ended ([`simulate_workflows`],
    /// [`simulate_hosted`]; all zero without workflows).
    pub runs: RunCounts,
    /// The first broken invariant, if any.
    pub violation: Option<Violation>,
}

/// Runs one simulation to its end: the first violation, or every task
/// ended after the faults stopped. Deterministic in `config` (its seed)
/// and `work`.
pub fn simulate<P, W>(config: SimConfig<P>, work: W) -> SimReport
where
    P: Clone + PartialEq + std::fmt::Debug,
    W: SimWork<P>,
{
    run(config, work, ())
}

#[cfg(feature = "workflow")]
/// Runs one simulation with workflows: besides the plain tasks of `work`,
/// a [`WorkflowClient`](super::WorkflowClient) on the simulated store
/// starts the runs of `flows`, whose agent steps are cluster tasks
/// ([`SimTask::Step`]) that the agents attempt as
/// [`SimWorkflows::attempt`] says. The run also checks, on the engine's
/// events, that a step is compensated only after it completed and only
/// once every completed step that depends on it was compensated; that each
/// run finishes once, as its steps say (a success has every step
/// completed or skipped, a compensated run owes no compensation); and,
/// once the faults stop, that every run finishes within the liveness
/// bound. The client itself does not crash (its runs live in its
/// process); its store operations fail, and their answers are lost, like
/// the other roles'.
///
/// # Errors
///
/// [`ConfigError`](super::ConfigError) when `flows` would start more than
/// [`MAX_RUNS`] runs while the faults last (their
/// [rate](SimWorkflows::runs_per_second) times the faults' duration).
///
/// ```
/// use std::time::Duration;
/// use taskweave::cluster::sim::{simulate_workflows, FaultMenu, SagaFlows, SimConfig, UniformWork};
///
/// let config = SimConfig::builder(3)
///     .duration(Duration::from_secs(20), Duration::from_secs(60))
///     .tasks_per_second(50.0)
///     .faults(FaultMenu { crash_node: 0.2, restart_agent: 0.5, ..FaultMenu::default() })
///     .build()?;
/// let work = UniformWork { work: (Duration::from_millis(1), Duration::from_millis(50)), fail: 0.05 };
/// let flows = SagaFlows::new(20.0, (Duration::from_millis(1), Duration::from_millis(50)), 0.2, Duration::from_secs(2))?;
/// let report = simulate_workflows(config, work, flows)?;
/// assert!(report.violation.is_none(), "{:?}", report.violation);
/// assert!(report.runs.succeeded > 0 && report.runs.compensated > 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn simulate_workflows<T, W, F>(
    config: SimConfig<SimTask<T>>,
    work: W,
    flows: F,
) -> Result<SimReport, super::ConfigError>
where
    T: Clone + PartialEq + std::fmt::Debug,
    W: SimWork<T>,
    F: SimWorkflows,
{
    flows::check_runs(&flows, config.faulty_for)?;
    Ok(run(
        config,
        flows::Plain::new(work),
        run_client::Flows::new(flows),
    ))
}

/// Runs one simulation with workflow runs the cluster's nodes host
/// ([`Node::host_runs`](super::Node::host_runs)): besides the plain
/// tasks of `work`, a client registers the two sagas of `sagas` and
/// starts their runs by id, signals the runs that wait, cancels some and
/// reads their ends, under every fault of the menu — the nodes that hold
/// the runs crash, the leader freezes, the store restarts, and the client
/// stops and comes back knowing nothing of the commands it had not heard
/// back about (it posts them again: a start by its id starts nothing
/// twice). The agents run the steps ([`HostedTask::Step`]).
///
/// Besides the checks of [`simulate`], on every commit: no run ends
/// twice, and the run ends it publishes are exactly those its entries
/// give when the audit replays them; a step's task takes the outputs of
/// the completions the leader accepted for its predecessors (and the
/// payload of the signal it accepted); only a completed step is
/// compensated; no step of a run is assigned after its end was
/// published; a run that succeeds outputs what its steps give; a
/// registration and a start by id are answered as they should, and no
/// signal is taken twice, nor by a run that ended or never was. At every
/// takeover the new leader's runs are the journal's, and every snapshot
/// restores with its runs. Once the faults stop, every run the client
/// started ends within the liveness bound.
///
/// # Errors
///
/// [`ConfigError`](super::ConfigError) when `sagas` would start more than
/// [`MAX_RUNS`] runs while the faults last.
///
/// ```
/// use std::time::Duration;
/// use taskweave::cluster::sim::{simulate_hosted, FaultMenu, HostedSagas, SimConfig, UniformWork};
///
/// let config = SimConfig::builder(5)
///     .duration(Duration::from_secs(20), Duration::from_secs(60))
///     .tasks_per_second(50.0)
///     .faults(FaultMenu { crash_node: 0.2, client_stops: 0.2, ..FaultMenu::default() })
///     .build()?;
/// let work = UniformWork { work: (Duration::from_millis(1), Duration::from_millis(50)), fail: 0.05 };
/// let ms = Duration::from_millis;
/// let sagas = HostedSagas::new(10.0, (ms(1), ms(50)), 0.2, Duration::from_secs(3))?;
/// let report = simulate_hosted(config, work, sagas)?;
/// assert!(report.violation.is_none(), "{:?}", report.violation);
/// assert!(report.runs.succeeded > 0 && report.runs.compensated > 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn simulate_hosted<T, W>(
    config: SimConfig<HostedTask<T>>,
    work: W,
    sagas: HostedSagas,
) -> Result<SimReport, super::ConfigError>
where
    T: Clone + PartialEq + std::fmt::Debug,
    W: SimWork<T>,
{
    hosted::check_runs(&sagas, config.faulty_for)?;
    Ok(run(
        config,
        flows::Plain::new(work),
        hosted::Hosted::new(sagas),
    ))
}

fn run<P, W, D>(config: SimConfig<P>, work: W, flows: D) -> SimReport
where
    P: Clone + PartialEq + std::fmt::Debug,
    W: SimWork<P>,
    D: driver::Driver<P>,
{
    let start = Instant::from_secs(1);
    let codec = flows.codec();
    let mut world = World {
        auditor: {
            let mut auditor = match codec.clone() {
                Some(codec) => Auditor::with_runs(config.dispatcher.clone(), codec),
                None => Auditor::new(config.dispatcher.clone()),
            };
            auditor.watch();
            auditor
        },
        codec,
        trace: Trace::new(config.keep_trace),
        rng: SimRng(SplitMix64::new(config.seed)),
        config,
        work,
        flows,
        store: MemStore::new(),
        queue: Queue::new(),
        nodes: Vec::new(),
        agents: Vec::new(),
        start,
        now: start,
        store_gen: 0,
        noticed: (0, 0),
        store_down_until: Instant::ZERO,
        faults: BTreeMap::new(),
        submitted: 0,
        refused: 0,
        backlog: 0.0,
        recent: Vec::new(),
        orphaned: Vec::new(),
        client_down_until: Instant::ZERO,
        takeovers: 0,
        stranded: Vec::new(),
        cut_off: Vec::new(),
        executed: std::collections::HashSet::new(),
        cancelled_at: std::collections::HashMap::new(),
        stopped: std::collections::HashSet::new(),
        journal_bytes: 0,
        violation: None,
        finished: false,
        drained: false,
    };
    for i in 0..world.config.nodes {
        match world.new_node(i) {
            Ok(slot) => world.nodes.push(slot),
            Err(why) => world.violate(why),
        }
        world.wake_node_at(i, start);
    }
    for i in 0..world.config.agents {
        match world.new_agent(i) {
            Ok(slot) => world.agents.push(slot),
            Err(why) => world.violate(why),
        }
        world.wake_agent_at(i, start);
    }
    world.queue.push(start, Event::Tick);
    let mut events = 0u64;
    while world.violation.is_none() {
        // A run ends when its ticks end (everything settled) — the roles'
        // own wake-ups go on for ever.
        let Some((at, event)) = world.queue.pop() else {
            break;
        };
        world.now = world.now.max(at);
        events += 1;
        world.step(event);
        world.notify_nodes();
        if world.finished {
            break;
        }
    }
    let report = world.auditor.report();
    SimReport {
        seed: world.config.seed,
        simulated: world.now.saturating_duration_since(start),
        events,
        trace_hash: world.trace.hash(),
        faults: world.faults,
        submitted: world.submitted,
        step_tasks: world.flows.tasks(),
        refused: world.refused,
        completed: report.completed,
        dead_lettered: report.dead_lettered,
        redriven: report.redriven,
        expired: report.expired,
        cancelled: report.cancelled,
        journal_entries: report.entries,
        journal_bytes: world.journal_bytes,
        takeovers: world.takeovers,
        runs: world.flows.counts(),
        violation: world.violation,
    }
}
