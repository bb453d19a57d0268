//! The cluster's roles against the in-memory store, in virtual time: two
//! nodes, three agent sessions and a client, with crashes, a leader paused
//! past its lease, agents restarted inside their heartbeat window, store
//! operations that fail or lose their answer. After the faults stop, every
//! task must end, the drained cluster must stop, and a replay of the
//! journal must break no rule and equal the final state.

#![cfg(feature = "cluster")]

use std::time::Duration;

use proptest::prelude::*;
use taskweave::agent::AgentProfile;
use taskweave::cluster::{
    AgentSession, Auditor, ClientOp, ClientReply, Fault, MemStore, Message, Node, NodeConfig,
    NodeOp, NodeReply, Role, SessionConfig, SessionEvent, Store, TaskEnd, Verdict,
};
use taskweave::resilience::Fixed;
use taskweave::scheduler::{AttemptOutcome, DispatcherConfig, TaskSpec};
use taskweave::{AgentId, AttemptToken, Instant, TaskId, TaskRequirements};

const TICK: Duration = Duration::from_millis(1);

fn dispatcher_config() -> DispatcherConfig {
    DispatcherConfig::builder()
        .heartbeats(Duration::from_millis(250), 8)
        .retry_policy(Fixed::new(Duration::from_millis(20), 3).unwrap())
        .terminal_history(100)
        .seed(13)
        .build()
        .unwrap()
}

fn node(name: &str, trim: bool) -> Node<u32> {
    let config = NodeConfig::builder(name)
        .snapshots(200, trim)
        .build()
        .unwrap();
    Node::new(config, dispatcher_config()).unwrap()
}

fn session(id: u64) -> AgentSession<u32> {
    let profile = AgentProfile::builder().capacity(4).build().unwrap();
    AgentSession::new(
        AgentId::new(id),
        profile,
        SessionConfig::builder().build().unwrap(),
    )
}

/// A small deterministic generator (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut x = self.0;
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^ (x >> 31)
    }

    fn chance(&mut self, per_million: u64) -> bool {
        self.next() % 1_000_000 < per_million
    }
}

struct Agent {
    session: AgentSession<u32>,
    /// (finishes at, task, token, fails)
    running: Vec<(Instant, TaskId, AttemptToken, bool)>,
}

struct Cluster {
    store: MemStore<u32>,
    nodes: Vec<(Node<u32>, Instant)>,
    /// Each node's role at the last step, to spot takeovers.
    roles: Vec<Role>,
    agents: Vec<Agent>,
    now: Instant,
    rng: Rng,
    /// Faults are injected.
    faults: bool,
    /// The nodes trim the journal and forget consumed messages.
    trim: bool,
    log: Vec<String>,
}

impl Cluster {
    fn new(seed: u64) -> Self {
        Self::with(seed, false)
    }

    fn with(seed: u64, trim: bool) -> Self {
        Cluster {
            store: MemStore::new(),
            nodes: vec![
                (node("a", trim), Instant::ZERO),
                (node("b", trim), Instant::ZERO),
            ],
            roles: vec![Role::Starting, Role::Starting],
            agents: (1..=3)
                .map(|id| Agent {
                    session: session(id),
                    running: Vec::new(),
                })
                .collect(),
            now: Instant::from_secs(1),
            rng: Rng(seed),
            faults: true,
            trim,
            log: Vec::new(),
        }
    }

    /// With no agent, submits five tasks and waits 400 ms: the status
    /// the leader published.
    fn status_of_five_idle_tasks(&mut self) -> taskweave::cluster::Status {
        self.agents.clear();
        for _ in 0..20 {
            self.step();
        }
        self.submit(5);
        for _ in 0..400 {
            self.step();
        }
        match self.store.client(ClientOp::Status, self.now) {
            Ok(ClientReply::Status(_, Some(status))) => status,
            other => panic!("{other:?}"),
        }
    }

    fn submit(&mut self, n: u32) -> Vec<u64> {
        let specs = (0..n).map(TaskSpec::new).collect();
        // The client's post is not under test: spend any armed fault on a
        // read first.
        let _ = self.store.node(NodeOp::ReadLease, self.now);
        match self
            .store
            .client(ClientOp::Post(vec![Message::Submit(specs)]), self.now)
        {
            Ok(ClientReply::Posted(ids)) => ids,
            other => panic!("{other:?}"),
        }
    }

    /// One millisecond of virtual time: every role that is not paused runs
    /// its due operations.
    fn step(&mut self) {
        self.now = self.now.saturating_add(TICK);
        let now = self.now;
        for (i, (node, paused_until)) in self.nodes.iter_mut().enumerate() {
            if now < *paused_until {
                continue;
            }
            for _ in 0..4 {
                let Some(op) = node.poll_op(now) else { break };
                // Commits are few beside reads: fail them on purpose too.
                if self.faults && matches!(op, NodeOp::Commit { .. }) && self.rng.chance(30_000) {
                    let lose = self.rng.next() % 2 == 0;
                    self.store
                        .fail_next(if lose { Fault::LoseAnswer } else { Fault::Fail });
                }
                let reply = self.store.node(op, now);
                node.handle_reply(reply, now);
                // A new leader's state equals a replay of the journal, at
                // the moment it starts to lead.
                let role = node.role();
                if let Role::Failed(why) = &role {
                    panic!("node {i} failed: {why}");
                }
                if matches!(role, Role::Leading { .. }) && self.roles[i] != role {
                    let replayed = replay(&self.store, node.applied());
                    let state = serde_json::to_string(&node.dispatcher().snapshot()).unwrap();
                    assert!(
                        replayed == state,
                        "node {i} leads from a state that is not the journal's\n{}",
                        self.log.join("\n")
                    );
                }
                self.roles[i] = role;
            }
            while let Some(event) = node.poll_event() {
                self.log.push(format!("{now:?} node {i}: {event}"));
            }
        }
        for agent in &mut self.agents {
            let session = &mut agent.session;
            agent.running.retain(|&(at, task, token, fails)| {
                if at > now {
                    return true;
                }
                let outcome = if fails {
                    AttemptOutcome::failure("simulated")
                } else {
                    AttemptOutcome::Success
                };
                session.finish(task, token, outcome);
                false
            });
            for _ in 0..4 {
                let Some(op) = session.poll_op(now) else {
                    break;
                };
                let reply = self.store.agent(op, now);
                session.handle_reply(reply, now);
            }
            while let Some((task, token)) = session.poll_cancelled() {
                agent.running.retain(|r| (r.1, r.2) != (task, token));
            }
            while let Some(work) = session.poll_work() {
                let ms = 1 + self.rng.next() % 20;
                let fails = self.rng.chance(50_000);
                agent.running.push((
                    now.saturating_add(Duration::from_millis(ms)),
                    work.task,
                    work.token,
                    fails,
                ));
            }
            while let Some(event) = session.poll_event() {
                if let SessionEvent::Registered { .. } = event {
                    self.log
                        .push(format!("{now:?} agent {}: {event}", session.agent()));
                }
            }
        }
    }

    /// Maybe injects one fault.
    fn fault(&mut self) {
        let rng = &mut self.rng;
        if rng.chance(2_000) {
            let i = (rng.next() % 2) as usize;
            self.log.push(format!("{:?} crash node {i}", self.now));
            self.nodes[i] = (
                node(if i == 0 { "a" } else { "b" }, self.trim),
                Instant::ZERO,
            );
            self.roles[i] = Role::Starting;
        } else if rng.chance(1_000) {
            let i = (rng.next() % 2) as usize;
            // Past the 1 s lease: it wakes up deposed and must not write.
            let until = self.now.saturating_add(Duration::from_millis(1_500));
            self.log.push(format!("{:?} pause node {i}", self.now));
            self.nodes[i].1 = until;
        } else if rng.chance(2_000) {
            let i = (rng.next() % 3) as usize;
            self.log
                .push(format!("{:?} restart agent {}", self.now, i + 1));
            self.agents[i] = Agent {
                session: session(i as u64 + 1),
                running: Vec::new(),
            };
        } else if rng.chance(20_000) {
            let fault = if rng.next() % 2 == 0 {
                Fault::Fail
            } else {
                Fault::LoseAnswer
            };
            self.store.fail_next(fault);
        }
    }

    fn all_verdicts(&mut self, ids: &[u64]) -> Option<Vec<Verdict>> {
        match self
            .store
            .client(ClientOp::Verdicts(ids.to_vec()), self.now)
        {
            Ok(ClientReply::Verdicts(v)) => v.into_iter().collect(),
            _ => None,
        }
    }

    fn live(&self) -> Option<u64> {
        self.nodes
            .iter()
            .find(|(n, _)| matches!(n.role(), Role::Leading { .. }))
            .map(|(n, _)| n.dispatcher().live_tasks() as u64)
    }
}

/// The state after replaying the stored journal up to entry `seq`.
fn replay(store: &MemStore<u32>, seq: u64) -> String {
    let mut auditor = Auditor::new(dispatcher_config());
    // A trimmed journal starts behind the latest snapshot (never after
    // what a leader applied: leaders store snapshots of what they applied).
    let mut store = store.clone();
    if let Ok(NodeReply::Snapshot(Some((at, snapshot)))) =
        store.node(NodeOp::LatestSnapshot, Instant::ZERO)
    {
        if at <= seq {
            auditor = Auditor::from_snapshot(dispatcher_config(), at, *snapshot).unwrap();
        }
    }
    let from = auditor.next_seq();
    for row in store
        .journal()
        .skip_while(|row| row.seq < from)
        .take_while(|row| row.seq <= seq)
    {
        auditor.apply(row);
    }
    serde_json::to_string(&auditor.dispatcher().snapshot()).unwrap()
}

/// Runs one seed: faults for `fault_ms`, then none until everything ends.
fn run(seed: u64, tasks: u32, fault_ms: u64) -> Result<(), String> {
    run_with(seed, tasks, fault_ms, false)
}

/// [`run`], with the nodes trimming the journal and forgetting consumed
/// messages when `trim`: the audit then replays from the latest snapshot,
/// and verdicts may be forgotten before they are read.
fn run_with(seed: u64, tasks: u32, fault_ms: u64, trim: bool) -> Result<(), String> {
    let mut c = Cluster::with(seed, trim);
    let mut ids = c.submit(tasks / 2);
    for ms in 0..fault_ms {
        if ms == fault_ms / 2 {
            ids.extend(c.submit(tasks - tasks / 2));
        }
        c.fault();
        c.step();
    }
    // Faults stop: everything must end within a bound of virtual time.
    c.faults = false;
    c.nodes
        .iter_mut()
        .for_each(|(_, paused_until)| *paused_until = Instant::ZERO);
    let calm = c.now;
    let bound = Duration::from_secs(30);
    loop {
        c.step();
        let verdicts = c.all_verdicts(&ids);
        if (trim || verdicts.is_some()) && c.live() == Some(0) {
            break;
        }
        if c.now.saturating_duration_since(calm) > bound {
            return Err(format!(
                "tasks still live {bound:?} after the last fault\n{}",
                c.log.join("\n")
            ));
        }
    }
    // The leader publishes its status at least every 250 ms while anything
    // changes, and every second while only heartbeats come.
    for _ in 0..300 {
        c.step();
    }
    match c.store.client(ClientOp::Status, c.now) {
        Ok(ClientReply::Status(_, Some(status))) => {
            let waiting = status.queued.iter().sum::<u64>() + status.delayed + status.in_flight;
            let age = c.now.saturating_duration_since(status.at);
            if waiting != 0 || age > Duration::from_millis(1_250) || status.completed == 0 {
                return Err(format!("a stale status, {age:?} old: {status:?}"));
            }
        }
        other => return Err(format!("no status: {other:?}")),
    }
    let _ = c.store.node(NodeOp::ReadLease, c.now);
    let drain = match c.store.client(ClientOp::Post(vec![Message::Drain]), c.now) {
        Ok(ClientReply::Posted(ids)) => ids,
        other => return Err(format!("{other:?}")),
    };
    while !c.nodes.iter().all(|(n, _)| n.role() == Role::Stopped)
        || !c.agents.iter().all(|a| a.session.is_stopped())
    {
        c.step();
        if c.now.saturating_duration_since(calm) > bound * 2 {
            return Err(format!(
                "the drained cluster did not stop\n{}",
                c.log.join("\n")
            ));
        }
    }
    if c.all_verdicts(&drain) != Some(vec![Verdict::Accepted]) {
        return Err("the drain was not accepted".into());
    }
    let mut auditor = Auditor::new(dispatcher_config());
    if trim {
        if let Ok(NodeReply::Snapshot(Some((seq, snapshot)))) =
            c.store.node(NodeOp::LatestSnapshot, c.now)
        {
            auditor = Auditor::from_snapshot(dispatcher_config(), seq, *snapshot)?;
        }
    }
    let from = auditor.next_seq();
    for row in c.store.journal().skip_while(|row| row.seq < from) {
        auditor.apply(row);
    }
    let report = auditor.report();
    if !report.is_clean() {
        return Err(format!("{:?}\n{}", report.violations, c.log.join("\n")));
    }
    let ended = report.completed + report.dead_lettered + report.expired + report.cancelled;
    if trim {
        // Rule 8: what the store keeps is bounded by the work in flight
        // (none now) and one snapshot's worth of history.
        let kept = c.store.kept();
        if kept.outbox != 0
            || kept.journal > 1_000
            || kept.inbox > 2_000
            || kept.outcomes > 1_000
            || report.live != 0
        {
            return Err(format!("kept {kept:?}; {report:?}"));
        }
        // Issue 40, finding 6: the audit of a trimmed journal says where
        // it starts and counts every task since the start, the trimmed
        // part from the snapshot's totals.
        let totals = report.since_start;
        let since_start_ended =
            totals.completed + totals.dead_lettered + totals.expired + totals.cancelled;
        if report.is_whole()
            || totals.submitted != u64::from(tasks)
            || since_start_ended != totals.submitted
            || totals.submitted <= report.tasks
        {
            return Err(format!("{tasks} tasks, but the audit says {report:?}"));
        }
    } else {
        let accepted: Vec<TaskId> = c
            .all_verdicts(&ids)
            .unwrap()
            .into_iter()
            .flat_map(|v| match v {
                Verdict::Submitted(tasks) => tasks.into_iter().flatten().collect(),
                _ => Vec::new(),
            })
            .collect();
        let submitted = accepted.len() as u64;
        // Every task's outcome, as a client reads it, is the end the
        // journal gave it.
        let Ok(ClientReply::Outcomes(outcomes)) =
            c.store.client(ClientOp::Outcomes(accepted), c.now)
        else {
            return Err("the outcomes do not read".into());
        };
        let count = |kind: fn(&TaskEnd) -> bool| {
            outcomes
                .iter()
                .flatten()
                .filter(|outcome| kind(&outcome.end))
                .count() as u64
        };
        let read = [
            count(|e| *e == TaskEnd::Completed),
            count(|e| matches!(e, TaskEnd::DeadLettered(_))),
            count(|e| matches!(e, TaskEnd::Expired(_))),
            count(|e| *e == TaskEnd::Cancelled),
        ];
        let journaled = [
            report.completed,
            report.dead_lettered,
            report.expired,
            report.cancelled,
        ];
        if read != journaled || outcomes.iter().any(Option::is_none) {
            return Err(format!(
                "outcomes read {read:?}, journaled {journaled:?}, {} missing",
                outcomes.iter().filter(|o| o.is_none()).count()
            ));
        }
        if report.tasks != u64::from(tasks)
            || submitted != report.tasks
            || ended != report.tasks
            || report.live != 0
        {
            return Err(format!(
                "tasks {tasks}, submitted {submitted}, report {report:?}"
            ));
        }
    }
    let (seq, final_state) = c.store.final_state().ok_or("no final state")?;
    let replayed = serde_json::to_string(&auditor.dispatcher().snapshot()).unwrap();
    if *seq + 1 != auditor.next_seq() || serde_json::to_string(final_state).unwrap() != replayed {
        return Err("the final state differs from a replay of the journal".into());
    }
    Ok(())
}

#[test]
fn a_short_run_with_faults_ends_every_task_and_stops_when_drained() {
    run(1, 400, 2_000).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(12)
    ))]

    #[test]
    fn under_faults_every_task_ends_exactly_once(seed in any::<u64>()) {
        if let Err(e) = run(seed, 300, 8_000) {
            prop_assert!(false, "seed {seed}: {e}");
        }
    }

    #[test]
    fn with_trimming_the_store_keeps_a_bounded_history(seed in any::<u64>()) {
        if let Err(e) = run_with(seed, 600, 12_000, true) {
            prop_assert!(false, "seed {seed}: {e}");
        }
    }
}

/// An agent restarted with the same id inside its heartbeat window: the
/// new incarnation replaces the old one at once, whose attempts go back to
/// the queue and reach the new incarnation, not after a timeout.
#[test]
fn a_restarted_agent_gets_its_stranded_attempts_back_at_once() {
    let mut c = Cluster::new(7);
    c.agents.truncate(1);
    let ids = c.submit(8);
    // Let agent 1 claim its four slots, then never finish them.
    for _ in 0..200 {
        c.step();
        c.agents[0]
            .running
            .iter_mut()
            .for_each(|r| r.0 = Instant::MAX);
    }
    assert_eq!(c.agents[0].session.held(), 4);
    let old_life: Vec<AttemptToken> = c.agents[0].running.iter().map(|r| r.2).collect();
    let restarted_at = c.now;
    c.agents[0] = Agent {
        session: session(1),
        running: Vec::new(),
    };
    let mut replaced = false;
    for _ in 0..200 {
        c.step();
        // Issue 40, finding 5: the new life never runs its old life's
        // attempts (it claimed them before the leader read its
        // registration, and they ran twice).
        let rerun: Vec<_> = (c.agents[0].running.iter())
            .filter(|r| old_life.contains(&r.2))
            .collect();
        assert!(
            rerun.is_empty(),
            "the new life runs {rerun:?}\n{}",
            c.log.join("\n")
        );
        replaced |= c.log.iter().any(|l| l.contains("restarted (incarnation"));
        if c.live() == Some(0) {
            break;
        }
    }
    assert!(replaced, "{}", c.log.join("\n"));
    assert_eq!(c.live(), Some(0), "{}", c.log.join("\n"));
    // Well inside the 2 s heartbeat tolerance.
    assert!(c.now.saturating_duration_since(restarted_at) < Duration::from_millis(500));
    assert!(c.all_verdicts(&ids).is_some());
}

/// A registration of an older incarnation and a report in another agent's
/// name are refused with a verdict, and the node logs each.
#[test]
fn refused_messages_get_a_verdict_and_an_event() {
    use taskweave::cluster::{AgentOp, Sender};
    use taskweave::scheduler::TaskReport;
    let mut c = Cluster::new(3);
    for _ in 0..100 {
        c.step();
    }
    let sender = |incarnation| Sender::Agent {
        agent: AgentId::new(1),
        incarnation,
    };
    let profile = AgentProfile::builder().build().unwrap();
    let forged = TaskReport {
        task: TaskId::new(1),
        agent: AgentId::new(2),
        token: AttemptToken::new(1),
        outcome: AttemptOutcome::Success,
    };
    for (incarnation, message) in [
        (0, Message::Register { profile }),
        (1, Message::Report(forged)),
    ] {
        let _ = c.store.node(NodeOp::ReadLease, c.now);
        c.store
            .agent(
                AgentOp::Post {
                    sender: sender(incarnation),
                    messages: vec![message],
                },
                c.now,
            )
            .unwrap();
    }
    for _ in 0..50 {
        c.step();
    }
    let refused: Vec<&String> = c
        .log
        .iter()
        .filter(|l| l.contains("refused message"))
        .collect();
    assert_eq!(refused.len(), 2, "{}", c.log.join("\n"));
    assert!(
        refused[0].contains("older than the registered"),
        "{}",
        refused[0]
    );
    assert!(
        refused[1].contains("names agent agent-2, but agent agent-1 sent it"),
        "{}",
        refused[1]
    );
}

/// A drained cluster refuses submissions with a reason.
#[test]
fn a_draining_cluster_refuses_submissions() {
    let mut c = Cluster::new(5);
    for _ in 0..50 {
        c.step();
    }
    c.store
        .client(ClientOp::Post(vec![Message::Drain]), c.now)
        .unwrap();
    c.nodes.iter_mut().for_each(|n| n.1 = Instant::ZERO);
    for _ in 0..3 {
        c.step();
    }
    let late = c.submit(1);
    for _ in 0..50 {
        c.step();
    }
    let verdict = c.store.verdict(late[0]).cloned();
    assert!(
        matches!(&verdict, Some(Verdict::Refused(why)) if why.contains("draining"))
            || c.nodes.iter().all(|n| n.0.role() == Role::Stopped),
        "{verdict:?}"
    );
}

/// A leader with nothing more to commit still publishes the status of its
/// last commits once the status period has passed.
#[test]
fn an_idle_leader_publishes_the_status_of_its_last_commit() {
    let status = Cluster::new(11).status_of_five_idle_tasks();
    assert_eq!(status.queued[2], 5, "{status:?}");
}

/// Tasks whose requirements no online agent meets are named in the status,
/// with the reason, and the others are not held up by them.
#[test]
fn the_status_names_the_tasks_no_agent_can_take() {
    let mut c = Cluster::new(5);
    c.faults = false;
    for _ in 0..20 {
        c.step();
    }
    let gpu = TaskRequirements::new().require(["gpu"]);
    let specs = (0..3)
        .map(|i| TaskSpec::new(100 + i).requirements(gpu.clone()))
        .collect();
    let posted = c
        .store
        .client(ClientOp::Post(vec![Message::Submit(specs)]), c.now);
    assert!(matches!(posted, Ok(ClientReply::Posted(_))), "{posted:?}");
    c.submit(4);
    for _ in 0..600 {
        c.step();
    }
    let status = match c.store.client(ClientOp::Status, c.now) {
        Ok(ClientReply::Status(_, Some(status))) => status,
        other => panic!("{other:?}"),
    };
    assert_eq!(status.completed, 4, "{status:?}");
    assert_eq!(status.unroutable.len(), 1, "{status:?}");
    let stuck = &status.unroutable[0];
    assert_eq!(stuck.tasks, 3);
    assert!(stuck.reason.contains("gpu"), "{}", stuck.reason);
}

/// A leader configured with a scale pool publishes its hint with the
/// status: the pool's work only, and the agents it wants.
#[test]
fn a_leaders_status_carries_the_hints_of_its_scale_pools() {
    use taskweave::scheduler::{ScaleChange, ScalePolicy};
    let mut c = Cluster::new(11);
    let policy = ScalePolicy::builder()
        .slots_per_agent(2)
        .target_utilisation_percent(100)
        .build()
        .unwrap();
    let config = NodeConfig::builder("a")
        .scale_pool("any", Vec::<String>::new(), policy)
        .scale_pool("gpu", ["gpu"], policy)
        .build()
        .unwrap();
    c.nodes = vec![(
        Node::new(config, dispatcher_config()).unwrap(),
        Instant::ZERO,
    )];
    c.roles = vec![Role::Starting];
    let status = c.status_of_five_idle_tasks();
    let hints: Vec<_> = status
        .pools
        .iter()
        .map(|h| (h.pool.as_str(), h.queued, h.desired_agents, h.change))
        .collect();
    // Five tasks that need nothing: work for `any` (3 agents of 2 slots),
    // and for `gpu`, whose agents could take them too.
    assert_eq!(
        hints,
        [
            ("any", 5, 3, ScaleChange::Up),
            ("gpu", 5, 3, ScaleChange::Up)
        ],
        "{status:?}"
    );
    let duplicate = NodeConfig::builder("a")
        .scale_pool("any", ["x"], policy)
        .scale_pool("any", ["y"], policy)
        .build()
        .unwrap_err();
    assert!(duplicate.to_string().contains("named twice"), "{duplicate}");
}

/// An attempt the cluster cancels reaches the agent running it: the next
/// claim's answer lacks its row, and the session hands it to the host to
/// stop, even with every slot busy.
#[test]
fn an_agent_learns_that_an_attempt_it_runs_was_cancelled() {
    let mut c = Cluster::new(13);
    c.agents.truncate(1);
    c.submit(4);
    for _ in 0..200 {
        c.step();
        c.agents[0]
            .running
            .iter_mut()
            .for_each(|r| r.0 = Instant::MAX);
    }
    assert_eq!(c.agents[0].session.held(), 4, "every slot is busy");
    let victim = c.agents[0].running[0].1;
    let _ = c.store.node(NodeOp::ReadLease, c.now);
    c.store
        .client(ClientOp::Post(vec![Message::Cancel(victim)]), c.now)
        .unwrap();
    let mut learned = None;
    for ms in 0..1_000 {
        c.step();
        if !c.agents[0].running.iter().any(|r| r.1 == victim) {
            learned = Some(ms);
            break;
        }
    }
    let ms = learned.expect("the agent never learned of the cancel");
    // Within one claim check (the refusals period, 500 ms) and a commit.
    assert!(ms <= 600, "{ms} ms");
    assert_eq!(c.agents[0].session.held(), 3);
}

/// Issue 40, finding 1, on the cluster: a task that prefers a capability
/// nobody has runs on agent 1; an agent with that capability joins; the
/// leader writes a snapshot; a node that starts then restores it and
/// follows (before, it stayed `Role::Failed`: "the snapshot after entry
/// … does not restore").
#[test]
fn a_follower_restores_a_snapshot_taken_after_a_preference_became_known() {
    let mut c = Cluster::new(3);
    c.faults = false;
    let with = |id: u64, capability: &str| Agent {
        session: AgentSession::new(
            AgentId::new(id),
            AgentProfile::builder()
                .capabilities([capability])
                .capacity(1)
                .build()
                .unwrap(),
            SessionConfig::builder().build().unwrap(),
        ),
        running: Vec::new(),
    };
    c.agents = vec![with(1, "a")];
    for _ in 0..50 {
        c.step();
    }
    let prefers_gpu = TaskSpec::new(1).requirements(TaskRequirements::new().prefer(["gpu"]));
    let posted = c.store.client(
        ClientOp::Post(vec![Message::Submit(vec![prefers_gpu])]),
        c.now,
    );
    assert!(matches!(posted, Ok(ClientReply::Posted(_))), "{posted:?}");
    // Agent 1 takes it and never finishes.
    for _ in 0..100 {
        c.step();
        c.agents[0]
            .running
            .iter_mut()
            .for_each(|r| r.0 = Instant::MAX);
    }
    assert_eq!(c.agents[0].session.held(), 1, "{}", c.log.join("\n"));
    c.agents.push(with(2, "gpu"));
    let snapshot_at = |c: &mut Cluster| match c.store.node(NodeOp::LatestSnapshot, c.now) {
        Ok(NodeReply::Snapshot(Some((at, _)))) => at,
        _ => 0,
    };
    let before = snapshot_at(&mut c);
    let mut steps = 0;
    while snapshot_at(&mut c) == before {
        c.step();
        c.agents[0]
            .running
            .iter_mut()
            .for_each(|r| r.0 = Instant::MAX);
        steps += 1;
        assert!(steps < 60_000, "no snapshot was written");
    }
    // A new node restores the snapshot (`step` panics on a failed node).
    c.nodes.push((node("c", false), Instant::ZERO));
    c.roles.push(Role::Starting);
    for _ in 0..500 {
        c.step();
    }
    assert!(
        matches!(c.nodes[2].0.role(), Role::Following),
        "{:?}\n{}",
        c.nodes[2].0.role(),
        c.log.join("\n")
    );
}
