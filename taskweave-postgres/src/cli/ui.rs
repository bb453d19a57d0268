//! `taskweave-pg ui`: the operator's page.

use std::process::ExitCode;

use taskweave_postgres::LogLine;
use taskweave_postgres::ui::OperatorPage;

use super::args::Args;
use super::{log, logger};

const USAGE: &str = "\
usage: taskweave-pg ui --db CONNINFO [--listen ADDR] [--log-format text|json]

Serves the operator's page on http://ADDR/ (default 127.0.0.1:8080; port 0:
any free one, logged) until it is stopped: the lease and its leader, the
queues, every agent and its health, dead letters and totals, unroutable
tasks, hosted runs, and the logins that flood the inbox, as `status` prints
them (reload for the latest; /status.json gives them as `status --json`
does). Its forms cancel a task and drain the cluster with this command's
login: a node login may do both, a submitter's login cancels its own tasks.
Bind it to a loopback or private address: whoever reaches the page acts with
its login. It outlives PostgreSQL restarts (the page says why it cannot read
meanwhile). Its log is text, or JSON lines with --log-format json.";

pub(crate) fn run(raw: &[String]) -> Result<ExitCode, String> {
    let args = Args::parse(raw, USAGE, &["--db", "--listen", "--log-format"])?;
    if args.wants_help() {
        say!("{USAGE}");
        return Ok(ExitCode::SUCCESS);
    }
    log::install(&args)?;
    let db = args.db()?;
    let listen = args.value("--listen").unwrap_or("127.0.0.1:8080");
    let page = OperatorPage::serve(listen, &db).map_err(|e| e.to_string())?;
    let mut log = logger("ui".to_string());
    log(LogLine::info(&format!(
        "the operator's page is on http://{}/",
        page.local_addr()
    )));
    loop {
        std::thread::park();
    }
}
