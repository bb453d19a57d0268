//! `taskweave-pg`: run and operate a taskweave cluster on PostgreSQL.
//!
//! ```text
//! taskweave-pg init   --db CONNINFO            create or migrate the schema, logins
//! taskweave-pg node   --db CONNINFO --name N   follow, and lead when the lease is free
//! taskweave-pg agent  --db CONNINFO --id N -- COMMAND…   run COMMAND per task
//! taskweave-pg submit --db CONNINFO [FILE]     JSON lines of tasks
//! taskweave-pg cancel --db CONNINFO TASK…      cancel tasks
//! taskweave-pg outcome --db CONNINFO TASK…     how tasks ended
//! taskweave-pg redrive --db CONNINFO TASK…|--all  dead letters back to the queue
//! taskweave-pg status --db CONNINFO            leader, queues, agents, dead letters
//! taskweave-pg audit  --db CONNINFO            replay the journal, check invariants
//! taskweave-pg drain  --db CONNINFO            finish the work, stop the cluster
//! taskweave-pg reset  --db CONNINFO            a drained cluster's database, ready again
//! taskweave-pg config show|set                 the dispatcher configuration nodes share
//! taskweave-pg workflow register FILE.json     a definition for hosted runs
//! taskweave-pg run start|signal|cancel|result|show  the runs the nodes host
//! taskweave-pg signal RUN NAME [JSON]          a signal to a waiting run
//! taskweave-pg runs [--state S]               the hosted runs, by state
//! taskweave-pg schedule add|list|pause|resume|trigger|remove  schedules of runs
//! ```

/// Prints a line on stdout. A closed stdout (`taskweave-pg status | head`)
/// ends the command quietly instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if writeln!(std::io::stdout().lock(), $($arg)*).is_err() {
            std::process::exit(0);
        }
    }};
}

mod cli;

use std::process::ExitCode;

const USAGE: &str = "\
taskweave-pg: run and operate a taskweave cluster on PostgreSQL

usage: taskweave-pg SUBCOMMAND [--help] [FLAGS]

subcommands:
  init     create or migrate the schema; create logins for nodes, agents, submitters
  node     a node: follows the journal, leads when the lease is free
  agent    an agent that runs a command per task (payload on stdin, exit status = outcome)
  submit   submit tasks: JSON lines from a file or stdin, each checked
  cancel   cancel tasks by the ids submit printed
  outcome  how tasks ended, by the ids submit printed (waits with --wait)
  redrive  send dead letters back to the queue: by task id, or --all matching a filter
  status   epoch and leader, queued by priority, in flight, agents, dead letters
  audit    replay the journal and check every invariant
  drain    stop taking submissions, finish the work in flight, stop the cluster
  reset    after a drain: empty the cluster's tables so a new cluster can start
  config   show or set the dispatcher configuration every node and audit runs with
  workflow register a workflow definition (JSON) for the runs the nodes host
  run      start a run, signal or cancel it, read its result, show its steps
  signal   send a signal to a waiting run (run signal, shorter)
  runs     list the hosted runs, active and lately finished (--state S keeps one kind)
  schedule add, list, pause, resume, trigger or remove a schedule that starts runs
  ui       serve the operator's page: status, agents, dead letters; cancel, redrive, drain

Every subcommand takes --db CONNINFO (a libpq string such as
\"host=127.0.0.1 port=5432 user=postgres dbname=postgres\"), or reads $TASKWEAVE_DB;
libpq's $PGHOST, $PGPORT, $PGUSER, $PGDATABASE fill in what it leaves out, and
$PGPASSWORD or ~/.pgpass (or $PGPASSFILE) give the password.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest = args.get(1..).unwrap_or_default();
    let result = match args.first().map(String::as_str) {
        Some("init") => cli::init::run(rest),
        Some("node") => cli::node::run(rest),
        Some("agent") => cli::agent::run(rest),
        Some("submit") => cli::submit::run(rest),
        Some("cancel") => cli::cancel::run(rest),
        Some("outcome") => cli::outcome::run(rest),
        Some("redrive") => cli::redrive::run(rest),
        Some("status") => cli::status::run(rest),
        Some("audit") => cli::audit::run(rest),
        Some("drain") => cli::drain::run(rest),
        Some("reset") => cli::reset::run(rest),
        Some("config") => cli::config::run(rest),
        Some("workflow") => cli::workflow::run(rest),
        Some("run") => cli::run::run(rest),
        Some("signal") => cli::run::signal(rest),
        Some("runs") => cli::runs::run(rest),
        Some("schedule") => cli::schedule::run(rest),
        Some("bench") => cli::bench::run(rest),
        Some("ui") => cli::ui::run(rest),
        Some("--help" | "-h" | "help") => {
            say!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        Some(other) => Err(format!("unknown subcommand {other:?}\n\n{USAGE}")),
        None => Err(USAGE.to_string()),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            cli::log::complain(&format!("taskweave-pg: {e}"));
            ExitCode::from(2)
        }
    }
}
