//! The run the demo and the crash test share: a leader, a standby and
//! agent processes on one database; tasks submitted through the inbox; one
//! agent and then the leader killed with `SIGKILL` part-way; the standby
//! takes over and everything finishes; the leader stores its final state.

use std::process::{Child, Command};
use std::time::{Duration, Instant as WallInstant};

use taskweave::Priority;
use taskweave::scheduler::TaskSpec;

use crate::model::{Job, Message, mix, wall_ms};
use crate::store::{Store, StoreError};

/// What to run.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// Tasks to submit.
    pub(crate) tasks: u32,
    /// Agent processes.
    pub(crate) agents: u32,
    /// Slots per agent.
    pub(crate) capacity: u32,
    /// Simulated work per task, milliseconds (from, to).
    pub(crate) work_ms: (u64, u64),
    /// Share of attempts that fail.
    pub(crate) fail_rate: f64,
    /// Kill agent 1 once this share of the tasks has finished.
    pub(crate) kill_agent_at: f64,
    /// Kill the leader once this share has finished (early enough that the
    /// new leader still has tasks to assign: the recovery time is measured
    /// to its first assignment).
    pub(crate) kill_leader_at: f64,
    /// Once this share has finished, under the new leader, stop agent 2
    /// (`SIGSTOP`) for `pause_agent`, longer than the heartbeat timeout,
    /// and let it go on (`SIGCONT`): its attempts fail over meanwhile, so
    /// its late reports are fenced out.
    pub(crate) pause_agent_at: f64,
    /// How long agent 2 stays stopped (zero: not at all).
    pub(crate) pause_agent: Duration,
    /// Trim the journal behind snapshots.
    pub(crate) trim: bool,
    /// Give up after this long.
    pub(crate) timeout: Duration,
}

impl Plan {
    /// The crash scenario of the demo and of `tests/cluster_crash.rs`:
    /// 8 slots per agent, 0–2 ms of work, 5 % failing attempts; agent 1
    /// killed at 20 % done, the leader at 40 %, agent 2 paused 3 s at 60 %.
    pub(crate) fn crash(tasks: u32, agents: u32, trim: bool, timeout: Duration) -> Plan {
        Plan {
            tasks,
            agents,
            capacity: 8,
            work_ms: (0, 2),
            fail_rate: 0.05,
            kill_agent_at: 0.2,
            kill_leader_at: 0.4,
            pause_agent_at: 0.6,
            pause_agent: Duration::from_secs(3),
            trim,
            timeout,
        }
    }
}

/// What the run measured.
#[derive(Debug, Clone)]
pub(crate) struct Figures {
    /// Submit to the last task finished.
    pub(crate) elapsed: Duration,
    /// Kill to the new leader's lease.
    pub(crate) takeover: Duration,
    /// Kill to the new leader's first assignment (none when every task
    /// left was already in flight).
    pub(crate) recovery: Option<Duration>,
    /// Journal rows appended (all epochs).
    pub(crate) journal_rows: i64,
    /// Their bytes.
    pub(crate) journal_bytes: i64,
    /// Tasks completed, dead-lettered, expired (from the final status).
    pub(crate) completed: i64,
    /// Dead-lettered.
    pub(crate) dead_lettered: i64,
    /// Expired.
    pub(crate) expired: i64,
}

/// Child processes, killed (`SIGKILL`) and reaped when dropped, on every
/// exit path.
#[derive(Debug, Default)]
pub(crate) struct Children(Vec<(String, Child)>);

impl Children {
    fn spawn(&mut self, name: &str, mut command: Command) -> Result<(), String> {
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        self.0.push((name.to_string(), child));
        Ok(())
    }

    /// Kills `name` with `SIGKILL` and reaps it.
    fn kill(&mut self, name: &str) {
        if let Some(i) = self.0.iter().position(|(n, _)| n == name) {
            let (_, mut child) = self.0.remove(i);
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (`STOP`, `CONT`) to `name`.
    fn signal(&mut self, name: &str, signal: &str) -> Result<(), String> {
        let (_, child) = self
            .0
            .iter()
            .find(|(n, _)| n == name)
            .ok_or(format!("no {name}"))?;
        // The shell's built-in kill: a minimal system may lack /bin/kill
        // (procps), and the crate forbids the unsafe a direct call needs.
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!("kill -{signal} {}", child.id()))
            .status()
            .map_err(|e| format!("kill -{signal}: {e}"))?;
        status
            .success()
            .then_some(())
            .ok_or(format!("kill -{signal} {name}: {status}"))
    }

    /// A child that failed, with its status: a role dying is an error,
    /// not something to wait out.
    fn exited(&mut self) -> Option<String> {
        self.0.iter_mut().find_map(|(name, child)| {
            let status = child.try_wait().ok()??;
            (!status.success()).then(|| format!("{name} failed: {status}"))
        })
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn db(e: StoreError) -> String {
    e.to_string()
}

/// Runs the plan against the database at `conninfo`. `role` builds the
/// command that starts one role process with the given arguments.
///
/// # Errors
///
/// A description of what failed or timed out.
pub(crate) fn run(
    plan: &Plan,
    conninfo: &str,
    role: &dyn Fn(&[String]) -> Command,
) -> Result<Figures, String> {
    let deadline = WallInstant::now() + plan.timeout;
    let mut store = Store::connect(conninfo).map_err(db)?;
    store.create_schema().map_err(db)?;
    let mut children = Children::default();
    let args = |items: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = items.iter().map(|s| s.to_string()).collect();
        v.extend(["--db".to_string(), conninfo.to_string()]);
        if plan.trim {
            v.push("--trim".to_string());
        }
        v
    };
    children.spawn("leader", role(&args(&["leader", "--name", "leader"])))?;
    wait(
        &mut store,
        &mut children,
        deadline,
        "the first lease",
        |s| Ok((s.lease()?.0 >= 1).then_some(())),
    )?;
    children.spawn("standby", role(&args(&["standby", "--name", "standby"])))?;
    for id in 1..=plan.agents {
        let (id, capacity) = (id.to_string(), plan.capacity.to_string());
        let work = format!("{}-{}", plan.work_ms.0, plan.work_ms.1);
        let fail = plan.fail_rate.to_string();
        let a = args(&[
            "agent",
            "--id",
            &id,
            "--capacity",
            &capacity,
            "--work-ms",
            &work,
            "--fail-rate",
            &fail,
        ]);
        children.spawn(&format!("agent {id}"), role(&a))?;
    }
    let started = WallInstant::now();
    submit(&mut store, plan.tasks).map_err(db)?;
    let total = i64::from(plan.tasks);
    let share = |s: f64| (s * total as f64) as i64;
    wait(
        &mut store,
        &mut children,
        deadline,
        "tasks to finish before killing an agent",
        |s| Ok((finished(s)? >= share(plan.kill_agent_at)).then_some(())),
    )?;
    eprintln!("driver: SIGKILL agent 1");
    children.kill("agent 1");
    wait(
        &mut store,
        &mut children,
        deadline,
        "tasks to finish before killing the leader",
        |s| Ok((finished(s)? >= share(plan.kill_leader_at)).then_some(())),
    )?;
    let killed_at_ms = wall_ms() as i64;
    children.kill("leader");
    eprintln!("driver: SIGKILL leader");
    if !plan.pause_agent.is_zero() && plan.agents >= 2 {
        wait(
            &mut store,
            &mut children,
            deadline,
            "tasks to finish before pausing an agent",
            |s| Ok((finished(s)? >= share(plan.pause_agent_at)).then_some(())),
        )?;
        pause_holding_work(&mut store, &mut children, deadline, plan.pause_agent)?;
    }
    wait(
        &mut store,
        &mut children,
        deadline,
        "every task to finish under the new leader",
        |s| {
            let row = s
                .client()
                .query_one("SELECT epoch, live, submitted FROM status", &[])?;
            let (epoch, live, submitted): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
            Ok(
                (epoch >= 2 && live == 0 && submitted == total && finished(s)? == total)
                    .then_some(()),
            )
        },
    )?;
    let elapsed = started.elapsed();
    store.post(0, &[Message::Shutdown]).map_err(db)?;
    wait(
        &mut store,
        &mut children,
        deadline,
        "the final state",
        |s| {
            Ok(s.client()
                .query_opt("SELECT 1 FROM final_state", &[])?
                .map(|_| ()))
        },
    )?;
    // The agents still running poll for their fenced-out reports twice a
    // second; agent 1 was killed and never will.
    wait(
        &mut store,
        &mut children,
        deadline,
        "the agents to log their fenced-out reports",
        |s| {
            let unseen: i64 = s
                .client()
                .query_one(
                    "SELECT count(*) FROM inbox WHERE verdict LIKE 'rejected%' AND NOT seen AND agent <> 1",
                    &[],
                )?
                .get(0);
            Ok((unseen == 0).then_some(()))
        },
    )?;
    let event = |s: &mut Store, name: &str| -> Result<Option<i64>, String> {
        let row = s
            .client()
            .query_one(
                "SELECT min(at_ms) FROM events WHERE name = $1 AND epoch >= 2",
                &[&name],
            )
            .map_err(|e| e.to_string())?;
        Ok(row.get(0))
    };
    let since_kill = |at: i64| Duration::from_millis((at - killed_at_ms).max(0) as u64);
    let takeover = event(&mut store, "takeover")?
        .map(since_kill)
        .ok_or("the new leader recorded no takeover")?;
    let recovery = event(&mut store, "first_assign")?.map(since_kill);
    let row = store
        .client()
        .query_one(
            "SELECT journal_rows, journal_bytes, completed, dead_lettered, expired FROM status",
            &[],
        )
        .map_err(|e| e.to_string())?;
    Ok(Figures {
        elapsed,
        takeover,
        recovery,
        journal_rows: row.get(0),
        journal_bytes: row.get(1),
        completed: row.get(2),
        dead_lettered: row.get(3),
        expired: row.get(4),
    })
}

/// Stops agent 2 (`SIGSTOP`) at a moment it holds claimed attempts, keeps
/// it stopped for `pause` (past its heartbeat timeout, so those attempts
/// fail over) and lets it go on (`SIGCONT`): its reports come late and are
/// fenced out.
fn pause_holding_work(
    store: &mut Store,
    children: &mut Children,
    deadline: WallInstant,
    pause: Duration,
) -> Result<(), String> {
    loop {
        children.signal("agent 2", "STOP")?;
        // A transaction the agent sent just before it stopped may still
        // commit: count after it had time to.
        std::thread::sleep(Duration::from_millis(50));
        let holding: i64 = store
            .client()
            .query_one(
                "SELECT count(*) FROM outbox WHERE agent = 2 AND state = 'claimed'",
                &[],
            )
            .map_err(|e| e.to_string())?
            .get(0);
        if holding > 0 {
            eprintln!(
                "driver: SIGSTOP agent 2, holding {holding} attempts, for {} ms",
                pause.as_millis()
            );
            break;
        }
        children.signal("agent 2", "CONT")?;
        if WallInstant::now() >= deadline {
            return Err("timed out waiting for agent 2 to hold work".into());
        }
        std::thread::sleep(Duration::from_millis(3));
    }
    let until = WallInstant::now() + pause;
    wait(store, children, deadline, "the pause", |_| {
        Ok((WallInstant::now() >= until).then_some(()))
    })?;
    children.signal("agent 2", "CONT")?;
    eprintln!("driver: SIGCONT agent 2");
    Ok(())
}

/// Submits `tasks` tasks with mixed priorities, 500 to a message.
fn submit(store: &mut Store, tasks: u32) -> Result<(), StoreError> {
    let specs: Vec<TaskSpec<Job>> = (0..tasks)
        .map(|n| {
            let priority = Priority::ALL[(mix(u64::from(n)) % 4) as usize];
            TaskSpec::new(Job { n }).priority(priority)
        })
        .collect();
    let messages: Vec<Message> = specs
        .chunks(500)
        .map(|c| Message::Submit(c.to_vec()))
        .collect();
    store.post(0, &messages)
}

/// Tasks finished so far, by the leader's status row.
fn finished(store: &mut Store) -> Result<i64, StoreError> {
    let row = store.client().query_opt(
        "SELECT completed + dead_lettered + expired FROM status",
        &[],
    )?;
    Ok(row.map_or(0, |r| r.get(0)))
}

fn wait(
    store: &mut Store,
    children: &mut Children,
    deadline: WallInstant,
    what: &str,
    mut f: impl FnMut(&mut Store) -> Result<Option<()>, StoreError>,
) -> Result<(), String> {
    loop {
        if f(store).map_err(db)?.is_some() {
            return Ok(());
        }
        if let Some(exit) = children.exited() {
            return Err(format!("while waiting for {what}: {exit}"));
        }
        if WallInstant::now() >= deadline {
            return Err(format!("timed out waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
