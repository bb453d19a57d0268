//! A taskweave cluster across processes on PostgreSQL: a leader that
//! journals every input under a fenced lease, a standby that tails the
//! journal and takes over, agent processes that claim work from an outbox
//! and report with attempt tokens, and a demo that runs them all, kills
//! the leader and an agent with `SIGKILL`, and prints figures.
//!
//! ```text
//! cargo run --release --example cluster -- demo
//! ```
//!
//! The demo needs PostgreSQL's server programs (`initdb`, `pg_ctl`); it
//! starts a private cluster in a temporary directory and removes it after.
//! See README, "Running across processes".

mod agent;
mod audit;
#[path = "../support/checks.rs"]
mod checks;
mod cli;
mod demo;
mod leader;
mod mailbox;
mod model;
mod pg;
mod replica;
mod scenario;
mod standby;
mod store;

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("demo") => demo::run(&args, &|role_args| {
            let exe = std::env::current_exe().expect("the running program has a path");
            let mut command = Command::new(exe);
            command.args(role_args);
            command
        }),
        Some(_) => cli::run_role(&args),
        None => Err(cli::USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
