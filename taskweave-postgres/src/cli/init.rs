//! `taskweave-pg init`: creates or migrates the schema and the logins.

use std::process::ExitCode;

use taskweave_postgres::{LoginKind, connect_admin, create_login, migrate};

use super::args::Args;
use super::privilege::{OWNER, hint};

const USAGE: &str = "\
usage: taskweave-pg init --db CONNINFO [--node LOGIN]... [--agent ID:LOGIN]... [--submitter LOGIN]...

Creates the taskweave schema, or migrates it to this build's version (running
it again changes nothing), and the group roles taskweave_node, taskweave_agent
and taskweave_submitter. Each --node, --agent and --submitter also creates a
login role in its group; an agent's login may act only as agent ID (row-level
security). Run it as the database owner or a superuser. Authentication is the
server's: set passwords with ALTER ROLE … PASSWORD, or use certificates.";

pub(crate) fn run(raw: &[String]) -> Result<ExitCode, String> {
    let args = Args::parse(raw, USAGE, &["--db", "--node", "--agent", "--submitter"])?;
    if args.wants_help() {
        say!("{USAGE}");
        return Ok(ExitCode::SUCCESS);
    }
    let db = args.db()?;
    let mut client = connect_admin(&db).map_err(hint("init", OWNER))?;
    let report = migrate(&mut client).map_err(hint("init", OWNER))?;
    if report.applied.is_empty() {
        say!("schema: at version {}, nothing to do", report.to);
    } else {
        say!(
            "schema: migrated from version {} to {} (applied {:?})",
            report.from,
            report.to,
            report.applied
        );
    }
    let mut logins: Vec<(String, LoginKind)> = Vec::new();
    for login in args.values("--node") {
        logins.push((login.to_string(), LoginKind::Node));
    }
    for login in args.values("--submitter") {
        logins.push((login.to_string(), LoginKind::Submitter));
    }
    for pair in args.values("--agent") {
        let (id, login) = pair
            .split_once(':')
            .and_then(|(id, login)| Some((id.parse::<u64>().ok()?, login)))
            .filter(|(id, _)| *id >= 1)
            .ok_or_else(|| {
                args.wrong(&format!(
                    "--agent: expected ID:LOGIN with ID ≥ 1, got {pair:?}"
                ))
            })?;
        logins.push((login.to_string(), LoginKind::Agent(id)));
    }
    for (login, kind) in logins {
        create_login(&mut client, &login, kind).map_err(hint("init", OWNER))?;
        say!("login {login}: {kind:?}");
    }
    Ok(ExitCode::SUCCESS)
}
