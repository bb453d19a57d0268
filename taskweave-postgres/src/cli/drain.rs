//! `taskweave-pg drain`: stop the cluster once its work is done.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use taskweave::cluster::Verdict;
use taskweave_postgres::PgClient;

use super::Payload;
use super::args::Args;
use super::privilege::{OPERATOR, hint};

const USAGE: &str = "\
usage: taskweave-pg drain --db CONNINFO [--wait SECONDS]

Tells the leader to refuse submissions from now on, finish every task that is
queued or in flight, then stop the whole cluster: every node and agent exits.
Waits up to --wait seconds (default 600) for the stop, printing progress.
Needs a node login (or the database owner); a submitter may not drain.";

pub(crate) fn run(raw: &[String]) -> Result<ExitCode, String> {
    let args = Args::parse(raw, USAGE, &["--db", "--wait"])?;
    if args.wants_help() {
        say!("{USAGE}");
        return Ok(ExitCode::SUCCESS);
    }
    let wait = Duration::from_secs(args.parsed("--wait", 600u64)?);
    let mut client = PgClient::<Payload>::connect(&args.db()?).map_err(|e| e.to_string())?;
    let id = client.drain().map_err(hint("drain", OPERATOR))?;
    let deadline = Instant::now() + wait;
    let mut said = Instant::now();
    loop {
        let (lease, status) = client.status().map_err(hint("drain", OPERATOR))?;
        if lease.stopped {
            say!("drained: the cluster stopped");
            return Ok(ExitCode::SUCCESS);
        }
        if let Some(Some(Verdict::Refused(why))) =
            client.verdicts(&[id]).map_err(|e| e.to_string())?.first()
        {
            return Err(format!("the leader refused the drain: {why}"));
        }
        if said.elapsed() >= Duration::from_secs(1) {
            said = Instant::now();
            match status {
                Some(s) => {
                    say!(
                        "draining: {} queued, {} delayed, {} in flight",
                        s.queued.iter().sum::<u64>(),
                        s.delayed,
                        s.in_flight
                    );
                    for u in &s.unroutable {
                        say!(
                            "  {} queued task(s) no online agent can take (first task-{}: {}): \
                             the drain waits for them, and they end only when they expire \
                             (a TTL) or are cancelled; start an agent that can take them, \
                             or cancel them",
                            u.tasks,
                            u.first.get(),
                            u.reason
                        );
                    }
                }
                None => say!("waiting for a leader"),
            }
        }
        if Instant::now() >= deadline {
            say!("still draining after {wait:?}; the drain goes on without this command");
            return Ok(ExitCode::from(1));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
