//! The operator's scenario under faults, with real processes of the built
//! `taskweave-pg` on a private PostgreSQL: three nodes and five agents
//! (each with its own login) run trivial commands, some of which fail for
//! good, while tasks arrive in three waves and the test kills the leader
//! three times, freezes it past its lease twice, kills agents (one while
//! it holds work, restarted at once with the same id, then twenty fast
//! restarts in a row), restarts PostgreSQL the way a crash would, and
//! stops it for ten seconds. It counts leader changes that no fault
//! caused (none allowed), agents found lost (only the one left down),
//! and executions per task (a task that does not fail runs again only
//! when an agent was killed while it ran it). Then every task must finish within a
//! bound, the drain must stop every process with status 0, and the audit
//! must be clean and account for every task. The nodes trim the journal
//! as they do by default, so the audit checks the entries after the
//! latest snapshot and takes the totals before them from it.
//!
//! The figures (takeover times, recovery, throughput, refused reports)
//! are written straight to stderr, past the harness's capture.
//! `TASKWEAVE_CHAOS_TASKS` overrides the number of tasks.

/// A line of figures straight to stderr, past the test harness's capture,
/// so a passing run shows them in CI's log.
macro_rules! figure {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

use std::fmt::Write as _;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use taskweave::AgentId;
use taskweave::cluster::{Lease, Status};
use taskweave_postgres::testkit::{PgCluster, start_or_skip};
use taskweave_postgres::{PgClient, wall_now};

const BIN: &str = env!("CARGO_BIN_EXE_taskweave-pg");
/// Tasks in all, unless `TASKWEAVE_CHAOS_TASKS` says otherwise.
const TASKS: u64 = 20_000;
const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];
const AGENTS: u64 = 5;
const CAPACITY: &str = "8";
/// One task in this many asks its command to fail, every attempt: it
/// ends dead-lettered.
const FAIL_EVERY: u64 = 20;
/// The agents' command: reads the payload, notes that it ran (one line
/// appended: the test counts executions per task), fails when it says so.
const COMMAND: &str = r#"read -r task; echo "$task" >> "$TASKWEAVE_CHAOS_RUNS"; case "$task" in *fail*) echo "asked to fail" >&2; exit 1;; esac; exit 0"#;
/// Fast agent restarts: each kills an agent and starts it again at once.
const FAST_RESTARTS: u64 = 20;
/// How long PostgreSQL stays stopped in the outage.
const OUTAGE: Duration = Duration::from_secs(10);
/// The lease lasts 1 s: a freeze of 2.5 s outlives it.
const FREEZE: Duration = Duration::from_millis(2_500);
/// After the last fault, every task must be finished within this.
const FINISH_BOUND: Duration = Duration::from_secs(60);
/// How often conditions are polled.
const POLL: Duration = Duration::from_millis(20);

/// What a process is, for the checks at the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A node or an agent: runs until the drain.
    Member,
    /// A command that ends by itself (a submit wave).
    Job,
}

/// A child process with its log.
struct Proc {
    name: String,
    kind: Kind,
    child: Child,
    log: PathBuf,
    /// Killed by the test (not expected to exit 0).
    killed: bool,
    /// Its exit status, once reaped.
    exit: Option<ExitStatus>,
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn running(&mut self) -> bool {
        if self.exit.is_some() {
            return false;
        }
        match self.child.try_wait() {
            Ok(None) => true,
            Ok(Some(status)) => {
                self.exit = Some(status);
                false
            }
            Err(_) => false,
        }
    }
}

/// Everything the scenario started. Dropping it kills every child (also
/// when a check panics); the private server stops when `cluster` drops,
/// after the children.
struct Scene {
    procs: Vec<Proc>,
    cluster: PgCluster,
    dir: PathBuf,
    /// The test's own client (once the schema exists).
    client: Option<PgClient<Value>>,
    spawned: u32,
    /// The lease's epoch when the last fault that may move the lease
    /// (a leader killed or frozen, PostgreSQL down) had passed.
    calm_epoch: Option<u64>,
    /// Leader changes while no such fault was under way.
    unforced: Vec<String>,
}

impl Drop for Scene {
    fn drop(&mut self) {
        for p in &mut self.procs {
            if p.exit.is_none() {
                // A frozen process dies of SIGKILL too.
                let _ = p.child.kill();
                let _ = p.child.wait();
            }
        }
    }
}

/// Sends `signal` (a name: KILL, STOP, CONT) to `pid`.
fn signal(signal: &str, pid: u32) -> Result<(), String> {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .map_err(|e| format!("kill -{signal} {pid}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("kill -{signal} {pid}: {status}"))
    }
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Every number in `line`, in order.
fn numbers(line: &str) -> Vec<u64> {
    line.split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect()
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

impl Scene {
    /// Starts `args` of the binary as `name`, its stdout and stderr in a
    /// log file of its own.
    fn spawn(&mut self, name: &str, kind: Kind, args: &[String]) -> Result<usize, String> {
        self.spawned += 1;
        let log = self.dir.join(format!("{:02}-{name}.log", self.spawned));
        let out = File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(BIN)
            .args(args)
            .env("TASKWEAVE_CHAOS_RUNS", self.dir.join("executions"))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start {BIN} for {name}: {e}"))?;
        self.procs.push(Proc {
            name: name.to_string(),
            kind,
            child,
            log,
            killed: false,
            exit: None,
        });
        Ok(self.procs.len() - 1)
    }

    fn node(&mut self, name: &str) -> Result<usize, String> {
        let args = [
            "node",
            "--db",
            &self.cluster.conninfo_as("node"),
            "--name",
            name,
            "--pool",
            "all:4",
        ];
        self.spawn(name, Kind::Member, &args.map(String::from))
    }

    fn agent(&mut self, id: u64) -> Result<usize, String> {
        let args = [
            "agent",
            "--db",
            &self.cluster.conninfo_as(&format!("agent{id}")),
            "--id",
            &id.to_string(),
            "--capacity",
            CAPACITY,
            "--",
            "sh",
            "-c",
            COMMAND,
        ];
        self.spawn(
            &format!("agent-{id}"),
            Kind::Member,
            &args.map(String::from),
        )
    }

    /// Runs the binary with `args` to its end (at most `limit`); answers
    /// its exit status and its output.
    fn run(
        &mut self,
        name: &str,
        args: &[String],
        limit: Duration,
    ) -> Result<(i32, String), String> {
        let i = self.spawn(name, Kind::Job, args)?;
        let deadline = Instant::now() + limit;
        while self.procs[i].running() {
            if Instant::now() >= deadline {
                return Err(format!("{name} did not end within {limit:?}"));
            }
            std::thread::sleep(POLL);
        }
        let output = std::fs::read_to_string(&self.procs[i].log).unwrap_or_default();
        let code = self.procs[i].exit.and_then(|s| s.code()).unwrap_or(-1);
        Ok((code, output))
    }

    /// The live member called `name`.
    fn member(&mut self, name: &str) -> Result<usize, String> {
        self.procs
            .iter_mut()
            .position(|p| p.name == name && p.kind == Kind::Member && p.running())
            .ok_or_else(|| format!("no running process is called {name}"))
    }

    /// SIGKILLs member `i` and reaps it.
    fn kill(&mut self, i: usize) -> Result<(), String> {
        let p = &mut self.procs[i];
        signal("KILL", p.pid())?;
        p.killed = true;
        p.exit = Some(p.child.wait().map_err(|e| e.to_string())?);
        Ok(())
    }

    /// The lease and status, `None` while the server cannot answer.
    fn status(&mut self) -> Option<(Lease, Option<Status>)> {
        self.client.as_mut()?.status().ok()
    }

    /// Polls `probe` until it answers `Some`, at most `limit`.
    fn wait_for<T>(
        &mut self,
        what: &str,
        limit: Duration,
        mut probe: impl FnMut(&mut Self) -> Option<T>,
    ) -> Result<T, String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(value) = probe(self) {
                return Ok(value);
            }
            if Instant::now() >= deadline {
                return Err(format!("timed out after {limit:?} waiting for {what}"));
            }
            std::thread::sleep(POLL);
        }
    }

    /// The leader as `taskweave-pg status --json` names it, once the lease
    /// is held: (holder, epoch).
    fn leader(&mut self) -> Result<(String, u64), String> {
        let db = self.cluster.conninfo_as("submitter");
        self.wait_for("a leader", Duration::from_secs(30), |scene| {
            let args = ["status", "--db", &db, "--json"].map(String::from);
            let (code, out) = scene.run("status", &args, Duration::from_secs(30)).ok()?;
            let json: Value = serde_json::from_str(out.trim())
                .ok()
                .filter(|_| code == 0)?;
            let held = json["held"].as_bool()? && !json["stopped"].as_bool()?;
            let holder = json["holder"].as_str()?.to_string();
            held.then_some((holder, json["epoch"].as_u64()?))
        })
    }

    /// Waits until a lease newer than `epoch` is held; answers its holder.
    fn new_leader(&mut self, epoch: u64) -> Result<(String, u64), String> {
        self.wait_for(
            &format!("a leader after epoch {epoch}"),
            Duration::from_secs(30),
            |scene| {
                let (lease, _) = scene.status()?;
                (lease.held && lease.epoch > epoch).then_some((lease.holder, lease.epoch))
            },
        )
    }

    /// The log of every process the test started (its tail) and the
    /// server's, for a failure message.
    fn tails(&self) -> String {
        let mut text = String::new();
        for p in &self.procs {
            let log = std::fs::read_to_string(&p.log).unwrap_or_default();
            let _ = writeln!(
                text,
                "\n----- {} (pid {}, {}{:?}) {}:\n{}",
                p.name,
                p.child.id(),
                if p.killed { "killed by the test, " } else { "" },
                p.exit,
                p.log.display(),
                tail(&log, 12)
            );
        }
        let _ = writeln!(
            text,
            "\n----- PostgreSQL:\n{}",
            tail(&self.cluster.server_log(), 30)
        );
        text
    }

    /// Every log line of the members containing `needle`.
    fn member_lines(&self, needle: &str) -> Vec<String> {
        self.procs
            .iter()
            .filter(|p| p.kind == Kind::Member)
            .flat_map(|p| {
                std::fs::read_to_string(&p.log)
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| l.contains(needle))
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Waits until `percent` % of `total` tasks have ended, and says how
    /// far the work is.
    fn gate(&mut self, total: u64, percent: u64) -> Result<(), String> {
        let want = total * percent / 100;
        let status = self.wait_for(
            &format!("{percent} % of the tasks to end"),
            Duration::from_secs(180),
            |scene| {
                let s = scene.status()?.1?;
                (s.completed + s.dead_lettered + s.expired >= want).then_some(s)
            },
        )?;
        figure!(
            "chaos: {percent} %: {} submitted, {} completed, {} dead-lettered, {} queued, {} in \
             flight",
            status.submitted,
            status.completed,
            status.dead_lettered,
            status.queued.iter().sum::<u64>(),
            status.in_flight
        );
        // The pool of every agent and every task (`--pool all:4`): its hint
        // counts what the status counts.
        let [pool] = &status.pools[..] else {
            return Err(format!("one scale pool expected: {:?}", status.pools));
        };
        let counted = (pool.queued as u64, pool.in_flight as u64);
        if counted != (status.queued.iter().sum::<u64>(), status.in_flight) {
            return Err(format!(
                "the pool's hint disagrees with the status: {status:?}"
            ));
        }
        figure!(
            "chaos: {percent} %: pool `all` wants {} agents ({:?}): {:.0} arrivals/s, {:.0} \
             completions/s, {} agents with {} slots",
            pool.desired_agents,
            pool.change,
            pool.arrivals_per_second,
            pool.completions_per_second,
            pool.agents,
            pool.capacity
        );
        Ok(())
    }

    /// Submits a task that requires a capability no agent has, cancels it
    /// with `taskweave-pg cancel`, then cancels it again: refused.
    fn cancel_unservable(&mut self) -> Result<(), String> {
        let file = self.dir.join("unservable.jsonl");
        let line = "{\"payload\": 0, \"requires\": [\"nobody-has-this\"]}\n";
        std::fs::write(&file, line).map_err(|e| format!("{}: {e}", file.display()))?;
        let db = self.cluster.conninfo_as("submitter");
        let submit = ["submit", "--db", &db, &file.display().to_string()].map(String::from);
        let (code, out) = self.run("submit-unservable", &submit, Duration::from_secs(60))?;
        let id = out
            .lines()
            .find_map(|l| l.strip_prefix("line 1: task-"))
            .and_then(|id| id.trim().parse::<u64>().ok())
            .filter(|_| code == 0)
            .ok_or_else(|| format!("submit exited {code}:\n{}", tail(&out, 5)))?;
        let cancel = ["cancel", "--db", &db, &format!("task-{id}")].map(String::from);
        let (code, out) = self.run("cancel", &cancel, Duration::from_secs(60))?;
        if code != 0 || !out.contains(&format!("task-{id}: cancelled")) {
            return Err(format!("cancel exited {code}:\n{}", tail(&out, 5)));
        }
        let (code, again) = self.run("cancel-again", &cancel, Duration::from_secs(60))?;
        let refused = again.lines().find(|l| l.contains(": refused: "));
        let Some(refused) = refused.filter(|_| code == 1) else {
            return Err(format!(
                "a second cancel exited {code}:\n{}",
                tail(&again, 5)
            ));
        };
        figure!("chaos: cancel: task-{id} cancelled; again: {refused}");
        Ok(())
    }

    /// Writes a wave of tasks `first..first + count` to a file and starts
    /// `taskweave-pg submit` on it in the background.
    fn submit(&mut self, wave: u32, first: u64, count: u64) -> Result<usize, String> {
        let mut lines = String::new();
        for n in first..first + count {
            let payload = if n % FAIL_EVERY == 0 {
                serde_json::json!({ "n": n, "fail": true })
            } else {
                serde_json::json!({ "n": n })
            };
            let _ = writeln!(lines, "{}", serde_json::json!({ "payload": payload }));
        }
        let file = self.dir.join(format!("wave-{wave}.jsonl"));
        std::fs::write(&file, lines).map_err(|e| format!("{}: {e}", file.display()))?;
        let args = [
            "submit",
            "--db",
            &self.cluster.conninfo_as("submitter"),
            "--wait",
            "120",
            &file.display().to_string(),
        ];
        self.spawn(
            &format!("submit-{wave}"),
            Kind::Job,
            &args.map(String::from),
        )
    }

    /// Waits for the submit wave `i` of `count` tasks: every line accepted.
    fn submitted(&mut self, i: usize, count: u64) -> Result<(), String> {
        let name = self.procs[i].name.clone();
        self.wait_for(
            &format!("{name} to end"),
            Duration::from_secs(150),
            |scene| (!scene.procs[i].running()).then_some(()),
        )?;
        let out = std::fs::read_to_string(&self.procs[i].log).unwrap_or_default();
        let accepted = out.lines().filter(|l| l.contains(": task-")).count() as u64;
        let status = self.procs[i].exit;
        if status.is_some_and(|s| s.success()) && accepted == count {
            Ok(())
        } else {
            Err(format!(
                "{name}: {status:?}, {accepted} of {count} tasks accepted:\n{}",
                tail(&out, 5)
            ))
        }
    }

    /// SIGKILLs the leader, measures the takeover, restarts the node.
    /// The lease's epoch, once the status answers.
    fn epoch(&mut self) -> Result<u64, String> {
        self.wait_for("the lease", Duration::from_secs(30), |scene| {
            scene.status().map(|(lease, _)| lease.epoch)
        })
    }

    /// A fault that may move the lease begins: a leader change since the
    /// last one ended had no fault to cause it.
    fn lease_fault_begins(&mut self, what: &str) -> Result<(), String> {
        let now = self.epoch()?;
        if let Some(calm) = self.calm_epoch.filter(|&calm| now != calm) {
            self.unforced
                .push(format!("epoch {calm} -> {now} before {what}"));
        }
        Ok(())
    }

    /// The fault has passed: the epoch now is the calm one.
    fn lease_fault_ends(&mut self) -> Result<(), String> {
        self.calm_epoch = Some(self.epoch()?);
        Ok(())
    }

    /// Kills and restarts agents one after another, each at once:
    /// `FAST_RESTARTS` in all, each waiting only until the leader has
    /// replaced the old incarnation.
    fn restart_agents_fast(&mut self) -> Result<(), String> {
        let start = Instant::now();
        for round in 0..FAST_RESTARTS {
            let id = 1 + round % AGENTS;
            let agent = AgentId::new(id);
            let needle = format!("agent {agent} restarted (incarnation");
            let before = self.member_lines(&needle).len();
            let i = self.member(&format!("agent-{id}"))?;
            self.kill(i)?;
            self.agent(id)?;
            self.wait_for(
                &format!("fast restart {round}: the leader to replace agent {id}"),
                Duration::from_secs(15),
                |scene| (scene.member_lines(&needle).len() > before).then_some(()),
            )?;
        }
        figure!(
            "chaos: {FAST_RESTARTS} fast agent restarts in {} ms",
            ms(start.elapsed())
        );
        Ok(())
    }

    /// Waits until the leader publishes a status past entry `seq`, written
    /// after now (after `what`); answers its entry.
    fn status_advances_past(&mut self, seq: u64, what: &str) -> Result<u64, String> {
        let back = wall_now();
        self.wait_for(
            &format!("the status to advance after {what}"),
            Duration::from_secs(60),
            |scene| {
                let status = scene.status()?.1?;
                (status.seq > seq && status.at > back).then_some(status.seq)
            },
        )
    }

    /// Stops PostgreSQL for `OUTAGE` and starts it again; measures until
    /// the leader publishes a new status.
    fn stop_postgres(&mut self) -> Result<(), String> {
        let seq = self.status().and_then(|(_, s)| s).map_or(0, |s| s.seq);
        let start = Instant::now();
        self.cluster.stop();
        std::thread::sleep(OUTAGE);
        self.cluster
            .start_again()
            .map_err(|e| format!("starting PostgreSQL again: {e}"))?;
        let new_seq = self.status_advances_past(seq, "the outage")?;
        figure!(
            "chaos: PostgreSQL stopped for {} ms; the status advanced from entry {seq} to \
             {new_seq} {} ms after the outage began",
            ms(OUTAGE),
            ms(start.elapsed())
        );
        Ok(())
    }

    fn kill_leader(&mut self, round: u32) -> Result<(), String> {
        let (holder, epoch) = self.leader()?;
        let i = self.member(&holder)?;
        let in_flight = self
            .status()
            .and_then(|(_, s)| s)
            .map_or(0, |s| s.in_flight);
        let start = Instant::now();
        self.kill(i)?;
        let (new, new_epoch) = self.new_leader(epoch)?;
        let took = start.elapsed();
        figure!(
            "chaos: SIGKILL #{round} of leader {holder} (epoch {epoch}, {in_flight} in flight): \
             {new} leads with epoch {new_epoch} after {} ms",
            ms(took)
        );
        self.node(&holder)?;
        Ok(())
    }

    /// Freezes the leader past its lease, wakes it, and checks it was
    /// deposed and keeps running as a follower.
    fn freeze_leader(&mut self, round: u32) -> Result<(), String> {
        let (holder, epoch) = self.leader()?;
        let i = self.member(&holder)?;
        let pid = self.procs[i].pid();
        let start = Instant::now();
        signal("STOP", pid)?;
        // A standby takes over while the leader is still frozen: failover
        // must not wait for the frozen process (its open transaction's
        // lock on the lease row is dropped by the server).
        let during = self.wait_for(
            &format!("a standby to lead while {holder} is frozen"),
            FREEZE.saturating_sub(Duration::from_millis(200)),
            |scene| {
                let (lease, _) = scene.status()?;
                (lease.held && lease.epoch > epoch).then_some((lease.holder, lease.epoch))
            },
        );
        let took = start.elapsed();
        std::thread::sleep(FREEZE.saturating_sub(start.elapsed()));
        signal("CONT", pid)?;
        let (new, new_epoch) = during?;
        let needle = format!("{holder}: lost the lease of epoch {epoch}");
        self.wait_for(
            &format!("{holder} to learn it was deposed"),
            Duration::from_secs(15),
            |scene| (!scene.member_lines(&needle).is_empty()).then_some(()),
        )?;
        if !self.procs[i].running() {
            return Err(format!("{holder} died after its freeze"));
        }
        figure!(
            "chaos: freeze #{round} of leader {holder} (epoch {epoch}) for {} ms: {new} leads \
             with epoch {new_epoch} {} ms after the freeze began, while {holder} was still frozen; \
             {holder} woke deposed and follows",
            ms(FREEZE),
            ms(took)
        );
        Ok(())
    }

    /// Kills agent `id` while it holds work and restarts it at once, well
    /// within the heartbeat window: its attempts must fail over at once.
    fn restart_agent_at_once(&mut self, id: u64) -> Result<(), String> {
        let agent = AgentId::new(id);
        let load = self.wait_for(
            &format!("agent {id} to hold work"),
            Duration::from_secs(30),
            |scene| {
                let (_, status) = scene.status()?;
                let load = status?.agents.iter().find(|a| a.agent == agent)?.load;
                (load > 0).then_some(load)
            },
        )?;
        let needle = format!("agent {agent} restarted (incarnation");
        let before = self.member_lines(&needle).len();
        let i = self.member(&format!("agent-{id}"))?;
        let start = Instant::now();
        self.kill(i)?;
        self.agent(id)?;
        let line = self.wait_for(
            "the leader to requeue the old incarnation's attempts",
            Duration::from_secs(15),
            |scene| scene.member_lines(&needle).get(before).cloned(),
        )?;
        let took = start.elapsed();
        let requeued = line
            .split("; ")
            .nth(1)
            .and_then(|s| numbers(s).first().copied())
            .unwrap_or(0);
        if requeued == 0 {
            return Err(format!("no attempt was requeued: {line}"));
        }
        if took >= Duration::from_secs(2) {
            return Err(format!(
                "the failover took {} ms, no faster than the heartbeat window: {line}",
                ms(took)
            ));
        }
        figure!(
            "chaos: agent {id} killed holding {load} attempts (by the last status) and restarted \
             at once: {requeued} requeued after {} ms ({line})",
            ms(took)
        );
        Ok(())
    }

    /// Kills agent `id` and restarts it after the heartbeat window: the
    /// leader must have found it lost.
    fn restart_agent_late(&mut self, id: u64) -> Result<(), String> {
        let i = self.member(&format!("agent-{id}"))?;
        let needle = format!("agent {} missed its heartbeats", AgentId::new(id));
        let before = self.member_lines(&needle).len();
        let start = Instant::now();
        self.kill(i)?;
        self.wait_for(
            "the leader to find the agent lost",
            Duration::from_secs(15),
            |scene| (scene.member_lines(&needle).len() > before).then_some(()),
        )?;
        let took = start.elapsed();
        self.agent(id)?;
        figure!(
            "chaos: agent {id} killed; found lost after {} ms, then restarted",
            ms(took)
        );
        Ok(())
    }

    /// Restarts PostgreSQL as after a crash; measures until the leader
    /// publishes a new status.
    fn restart_postgres(&mut self) -> Result<(), String> {
        let seq = self.status().and_then(|(_, s)| s).map_or(0, |s| s.seq);
        let start = Instant::now();
        self.cluster
            .restart_immediate()
            .map_err(|e| format!("restarting PostgreSQL: {e}"))?;
        let up = start.elapsed();
        let new_seq = self.status_advances_past(seq, "the restart")?;
        figure!(
            "chaos: PostgreSQL restarted (-m immediate) in {} ms; the status advanced from \
             entry {seq} to {new_seq} {} ms after the restart began",
            ms(up),
            ms(start.elapsed())
        );
        Ok(())
    }
}

fn tasks() -> u64 {
    std::env::var("TASKWEAVE_CHAOS_TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n >= 100)
        .unwrap_or(TASKS)
}

/// The scenario; an error names the step that failed.
fn scenario(scene: &mut Scene) -> Result<(), String> {
    let total = tasks();
    let failing = (0..total).filter(|n| n % FAIL_EVERY == 0).count() as u64;
    let waves = [
        total * 2 / 5,
        total * 3 / 10,
        total - total * 2 / 5 - total * 3 / 10,
    ];

    // The schema and one login per role.
    let mut init = vec![
        "init".to_string(),
        "--db".into(),
        scene.cluster.conninfo(),
        "--node".into(),
        "node".into(),
        "--submitter".into(),
        "submitter".into(),
    ];
    for id in 1..=AGENTS {
        init.extend(["--agent".to_string(), format!("{id}:agent{id}")]);
    }
    let (code, out) = scene.run("init", &init, Duration::from_secs(60))?;
    if code != 0 {
        return Err(format!("init exited {code}:\n{out}"));
    }
    scene.client = Some(
        PgClient::connect(&scene.cluster.conninfo_as("submitter"))
            .map_err(|e| format!("the test's client: {e}"))?,
    );
    for name in NODES {
        scene.node(name)?;
    }
    for id in 1..=AGENTS {
        scene.agent(id)?;
    }
    scene.leader()?;

    // The faults are spread over the run: each waits until a share of
    // the tasks has ended, so work flows during every one.
    let began = Instant::now();
    let wave1 = scene.submit(1, 0, waves[0])?;
    scene.lease_fault_ends()?;
    scene.gate(total, 5)?;
    scene.lease_fault_begins("SIGKILL #1")?;
    scene.kill_leader(1)?;
    scene.lease_fault_ends()?;
    scene.gate(total, 10)?;
    scene.restart_agent_at_once(1)?;
    scene.gate(total, 15)?;
    scene.lease_fault_begins("freeze #1")?;
    scene.freeze_leader(1)?;
    scene.lease_fault_ends()?;
    let wave2 = scene.submit(2, waves[0], waves[1])?;
    scene.gate(total, 22)?;
    scene.lease_fault_begins("SIGKILL #2")?;
    scene.kill_leader(2)?;
    scene.lease_fault_ends()?;
    scene.gate(total, 28)?;
    scene.restart_agent_late(2)?;
    // No submit is running while the server restarts: a wave's count
    // must be known.
    scene.submitted(wave1, waves[0])?;
    scene.submitted(wave2, waves[1])?;
    scene.gate(total, 35)?;
    scene.lease_fault_begins("the PostgreSQL restart")?;
    scene.restart_postgres()?;
    scene.lease_fault_ends()?;
    let wave3 = scene.submit(3, waves[0] + waves[1], waves[2])?;
    scene.gate(total, 42)?;
    scene.restart_agents_fast()?;
    scene.gate(total, 50)?;
    scene.lease_fault_begins("freeze #2")?;
    scene.freeze_leader(2)?;
    scene.lease_fault_ends()?;
    scene.gate(total, 60)?;
    scene.lease_fault_begins("the PostgreSQL outage")?;
    scene.stop_postgres()?;
    scene.lease_fault_ends()?;
    scene.gate(total, 75)?;
    scene.lease_fault_begins("SIGKILL #3")?;
    scene.kill_leader(3)?;
    scene.lease_fault_ends()?;
    let last_fault = Instant::now();
    scene.submitted(wave3, waves[2])?;

    // Every task ends within the bound.
    let done = scene.wait_for(
        "every task to finish after the last fault",
        FINISH_BOUND,
        |scene| {
            let s = scene.status()?.1?;
            let idle = s.queued.iter().sum::<u64>() + s.delayed + s.in_flight == 0;
            let ended = s.completed + s.dead_lettered + s.expired;
            (idle && s.submitted == total && ended == total).then_some(s)
        },
    )?;
    let wall = began.elapsed();
    figure!(
        "chaos: every task finished {} ms after the last fault (bound {} s); {total} tasks in \
         {:.1} s = {:.0} tasks/s through all the faults; {} completed, {} dead-lettered \
         ({failing} asked to fail)",
        ms(last_fault.elapsed()),
        FINISH_BOUND.as_secs(),
        wall.as_secs_f64(),
        total as f64 / wall.as_secs_f64(),
        done.completed,
        done.dead_lettered
    );

    // No leader change without a fault to cause it.
    scene.lease_fault_begins("the drain")?;
    if !scene.unforced.is_empty() {
        return Err(format!(
            "leader changes no fault caused: {}",
            scene.unforced.join("; ")
        ));
    }
    figure!("chaos: 0 leader changes that no fault caused");

    // No live agent was found lost: only the one killed and left down
    // past its heartbeats (a PostgreSQL outage is nobody's fault).
    let lost = scene.member_lines("missed its heartbeats");
    if lost.len() != 1 {
        return Err(format!(
            "agents found lost: {} (1 expected, the one left down):\n{}",
            lost.len(),
            lost.join("\n")
        ));
    }

    // Executions: a task that does not fail ran once, unless an agent
    // was killed while it ran it (each kill ends at most CAPACITY
    // attempts).
    let runs = std::fs::read_to_string(scene.dir.join("executions"))
        .map_err(|e| format!("the executions log: {e}"))?;
    let mut per_task = std::collections::BTreeMap::<&str, u64>::new();
    // A command started by an agent killed before it wrote the payload
    // reads an empty line.
    for line in runs
        .lines()
        .filter(|l| !l.is_empty() && !l.contains("fail"))
    {
        *per_task.entry(line).or_default() += 1;
    }
    let reruns: u64 = per_task.values().map(|n| n - 1).sum();
    let kills = 2 + FAST_RESTARTS;
    let bound = kills * CAPACITY.parse::<u64>().unwrap_or(8);
    if per_task.len() as u64 != total - failing || reruns > bound {
        return Err(format!(
            "{} tasks that do not fail ran, {} expected; {reruns} ran again, at most {bound} \
             (the attempts of {kills} agents killed)",
            per_task.len(),
            total - failing
        ));
    }
    figure!(
        "chaos: {} tasks that do not fail ran; {reruns} ran again (at most {bound}: {kills} agent \
         kills of {CAPACITY} slots)",
        per_task.len()
    );

    // An operator cancels a task no agent can take: one more task
    // submitted, and it ends cancelled.
    scene.cancel_unservable()?;

    // No member died on its own.
    let mut dead = Vec::new();
    for p in &mut scene.procs {
        if p.kind == Kind::Member && !p.killed && !p.running() {
            dead.push(format!("{} ({:?})", p.name, p.exit));
        }
    }
    if !dead.is_empty() {
        return Err(format!("died before the drain: {}", dead.join(", ")));
    }

    // The drain stops every member, each with status 0.
    let drain = [
        "drain",
        "--db",
        &scene.cluster.conninfo_as("node"),
        "--wait",
        "60",
    ];
    let (code, out) = scene.run("drain", &drain.map(String::from), Duration::from_secs(90))?;
    if code != 0 || !out.contains("drained: the cluster stopped") {
        return Err(format!("drain exited {code}:\n{}", tail(&out, 5)));
    }
    scene.wait_for("every member to exit", Duration::from_secs(30), |scene| {
        let mut all = true;
        for p in &mut scene.procs {
            all &= p.kind == Kind::Job || p.killed || !p.running();
        }
        all.then_some(())
    })?;
    let failed: Vec<String> = scene
        .procs
        .iter()
        .filter(|p| p.kind == Kind::Member && !p.killed)
        .filter(|p| !p.exit.is_some_and(|s| s.success()))
        .map(|p| format!("{} ({:?})", p.name, p.exit))
        .collect();
    if !failed.is_empty() {
        return Err(format!(
            "exited badly after the drain: {}",
            failed.join(", ")
        ));
    }

    // The audit replays the journal after the latest snapshot; its totals
    // count from the cluster's start.
    let audit = ["audit", "--db", &scene.cluster.conninfo_as("node")];
    let (code, out) = scene.run("audit", &audit.map(String::from), Duration::from_secs(120))?;
    let line = |prefix: &str| {
        out.lines()
            .find(|l| l.starts_with(prefix))
            .map(numbers)
            .unwrap_or_default()
    };
    let counts = line("tasks: ");
    let trimmed = out.contains(" were trimmed: ");
    let reports = line("reports: ");
    let final_line = out
        .lines()
        .any(|l| l.starts_with("final state after entry ") && l.ends_with(": equals the replay"));
    let problems = [
        (code != 0, format!("audit exited {code}")),
        (
            !out.contains("checked entries "),
            "the audit does not say which entries it checked".into(),
        ),
        (
            !out.lines().any(|l| l.starts_with("audit: clean")),
            "the audit is not clean".into(),
        ),
        (
            out.contains("VIOLATION"),
            "the audit found violations".into(),
        ),
        (
            !final_line,
            "the final state does not equal the replay".into(),
        ),
        (counts.len() != 6, "no task counts".into()),
        (reports.len() != 2, "no report counts".into()),
    ];
    if let Some((_, why)) = problems.iter().find(|(bad, _)| *bad) {
        return Err(format!("{why}:\n{out}"));
    }
    let [
        submitted,
        completed,
        dead_lettered,
        expired,
        cancelled,
        live,
    ] = counts[..]
    else {
        return Err(format!("cannot read the task counts:\n{out}"));
    };
    let mut wrong = Vec::new();
    if submitted != total + 1 {
        wrong.push(format!("{submitted} submitted, {} sent", total + 1));
    }
    if cancelled != 1 {
        wrong.push(format!("{cancelled} cancelled, 1 by the operator"));
    }
    if completed + dead_lettered + expired + cancelled != submitted {
        wrong.push("completed + dead-lettered + expired + cancelled != submitted".to_string());
    }
    if live != 0 {
        wrong.push(format!("{live} live"));
    }
    if dead_lettered < failing || completed > total - failing {
        wrong.push(format!(
            "{failing} tasks always fail, yet {dead_lettered} dead-lettered"
        ));
    }
    if !wrong.is_empty() {
        return Err(format!("the audit's counts: {}:\n{out}", wrong.join("; ")));
    }
    figure!(
        "chaos: audit clean: {submitted} submitted, {completed} completed, {dead_lettered} \
         dead-lettered, {expired} expired, {cancelled} cancelled, 0 live since the start \
         (journal trimmed: {trimmed}); reports {} accepted, {} refused (fenced) in the checked \
         entries; {}",
        reports[0],
        reports[1],
        out.lines().find(|l| l.contains(" entries, ")).unwrap_or("")
    );
    Ok(())
}

#[test]
fn the_cluster_survives_the_operators_worst_day() {
    let Some(cluster) = start_or_skip("the_cluster_survives_the_operators_worst_day") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!(
        "taskweave-chaos-{}-{}",
        std::process::id(),
        wall_now().as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut scene = Scene {
        procs: Vec::new(),
        cluster,
        dir: dir.clone(),
        client: None,
        spawned: 0,
        calm_epoch: None,
        unforced: Vec::new(),
    };
    match scenario(&mut scene) {
        Ok(()) => {
            drop(scene);
            let _ = std::fs::remove_dir_all(&dir);
        }
        Err(why) => panic!(
            "chaos: {why}\n\nthe logs are in {}; their tails:{}",
            dir.display(),
            scene.tails()
        ),
    }
}
