//! `taskweave-pg reset`: a drained cluster's database, ready for a new
//! cluster.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use taskweave_postgres::{PgError, connect_admin, reset};

use super::args::Args;
use super::privilege::{OWNER, hint};

const USAGE: &str = "\
usage: taskweave-pg reset --db CONNINFO

Makes the database of a drained cluster ready to run a new one: empties the
journal, snapshots, inbox, outbox, outcomes, run ends and status, and releases the lease.
The schema and the logins stay; start nodes and agents again afterwards. The
old cluster's history is gone: run `taskweave-pg audit` before if it matters.
Every node and agent of the old cluster must have exited (the drain stops them;
kill one that could not act on it, a frozen one too): while one is connected,
`reset` waits up to 10 s for it to go, then refuses, naming each session.
Task ids start again at 0. Refused, changing nothing, unless the cluster was
drained (taskweave-pg drain). Run it as the database owner or a superuser.";

/// How long `reset` waits for the old cluster's nodes and agents to leave
/// (after a drain, each exits once it hears the stop).
const LEAVING_WITHIN: Duration = Duration::from_secs(10);

pub(crate) fn run(raw: &[String]) -> Result<ExitCode, String> {
    let args = Args::parse(raw, USAGE, &["--db"])?;
    if args.wants_help() {
        say!("{USAGE}");
        return Ok(ExitCode::SUCCESS);
    }
    let mut client = connect_admin(&args.db()?).map_err(hint("reset", OWNER))?;
    let deadline = Instant::now() + LEAVING_WITHIN;
    let mut told = false;
    let report = loop {
        match reset(&mut client) {
            Err(PgError::LiveProcesses { sessions }) if Instant::now() < deadline => {
                if !std::mem::replace(&mut told, true) {
                    say!("reset: waiting for {} to leave", sessions.join("; "));
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            done => break done.map_err(hint("reset", OWNER))?,
        }
    };
    say!(
        "reset: removed {} journal entries, {} inbox messages and {} task outcomes; \
         the lease is free (the next leader takes an epoch after {}): start nodes and agents",
        report.journal,
        report.inbox,
        report.outcomes,
        report.epoch
    );
    if report.unread > 0 {
        say!(
            "{} of those messages were posted after the stop and never read: their senders got \
             no verdict and should post them again",
            report.unread
        );
    }
    Ok(ExitCode::SUCCESS)
}
