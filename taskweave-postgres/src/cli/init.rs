//! `taskweave-pg init`: creates or migrates the schema and the logins.

use std::process::ExitCode;

use taskweave::TenantId;
use taskweave_postgres::{
    LoginKind, PgError, cluster_config, connect_admin, create_login, grant_agent, map_tenant,
    migrate, set_cluster_config,
};

use super::args::Args;
use super::dispatcher_config;
use super::privilege::{OWNER, hint};

const USAGE: &str = "\
usage: taskweave-pg init --db CONNINFO [--node LOGIN]... [--agent ID:LOGIN]...
                         [--grant LOGIN:SLOTS[:CAP,CAP…]]... [--submitter LOGIN]...
                         [--tenant LOGIN:TENANT]...

Creates the taskweave schema, or migrates it to this build's version (running
it again changes nothing), and the group roles taskweave_node, taskweave_agent
and taskweave_submitter. Each --node, --agent and --submitter also creates a
login role in its group; an agent's login may act only as agent ID (row-level
security). --grant limits an agent login's registrations to SLOTS slots and the
capabilities listed (none when there is no list): the database refuses one
beyond them; run it again to change the grant. An agent login without a grant
registers as it likes. --tenant makes a submitter login act for tenant TENANT (a
number): its tasks are the tenant's, its idempotency keys the tenant's, and it
cancels only the tenant's tasks; run it again to move the login. Run it as the
database owner or a superuser.
Authentication is the server's: set passwords with ALTER ROLE … PASSWORD, or use
certificates.";

pub(crate) fn run(raw: &[String]) -> Result<ExitCode, String> {
    let args = Args::parse(
        raw,
        USAGE,
        &[
            "--db",
            "--node",
            "--agent",
            "--grant",
            "--submitter",
            "--tenant",
        ],
    )?;
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
    store_defaults(&mut client)?;
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
    for grant in args.values("--grant") {
        let (login, slots, capabilities) = parse_grant(grant).map_err(|why| args.wrong(&why))?;
        grant_agent(&mut client, login, slots, &capabilities).map_err(hint("init", OWNER))?;
        say!("login {login}: at most {slots} slots, capabilities {capabilities:?}");
    }
    for pair in args.values("--tenant") {
        let (login, tenant) = pair
            .split_once(':')
            .and_then(|(login, tenant)| Some((login, tenant.parse::<u64>().ok()?)))
            .filter(|(login, _)| !login.is_empty())
            .ok_or_else(|| {
                args.wrong(&format!(
                    "--tenant: expected LOGIN:TENANT with TENANT a number, got {pair:?}"
                ))
            })?;
        let tenant = TenantId::new(tenant);
        map_tenant(&mut client, login, tenant).map_err(hint("init", OWNER))?;
        say!("login {login}: acts for {tenant}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Stores the default dispatcher configuration if the cluster has none;
/// a cluster that already ran (a journal) without one keeps what its
/// first node stores.
fn store_defaults(client: &mut postgres::Client) -> Result<(), String> {
    if cluster_config(client)
        .map_err(hint("init", OWNER))?
        .is_some()
    {
        return Ok(());
    }
    match set_cluster_config(client, &dispatcher_config()?) {
        Ok(()) => say!("config: stored the defaults (taskweave-pg config show)"),
        Err(PgError::JournalNotEmpty { .. }) => {}
        Err(e) => return Err(hint("init", OWNER)(e)),
    }
    Ok(())
}

/// `LOGIN:SLOTS[:CAP,CAP…]` as the login, its slots and its capabilities.
fn parse_grant(grant: &str) -> Result<(&str, u32, Vec<String>), String> {
    let wrong =
        || format!("--grant: expected LOGIN:SLOTS[:CAP,CAP…] with SLOTS ≥ 1, got {grant:?}");
    let mut parts = grant.splitn(3, ':');
    let login = parts
        .next()
        .filter(|login| !login.is_empty())
        .ok_or_else(wrong)?;
    let slots = parts
        .next()
        .and_then(|slots| slots.parse::<u32>().ok())
        .filter(|slots| *slots >= 1)
        .ok_or_else(wrong)?;
    let capabilities = parts
        .next()
        .map(|list| {
            list.split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Ok((login, slots, capabilities))
}

#[cfg(test)]
mod tests {
    use super::parse_grant;

    #[test]
    fn grants_parse_and_bad_ones_name_the_form() {
        assert_eq!(parse_grant("a1:4"), Ok(("a1", 4, vec![])));
        assert_eq!(
            parse_grant("a1:8:gpu,net:tcp"),
            Ok(("a1", 8, vec!["gpu".to_string(), "net:tcp".to_string()]))
        );
        for bad in ["a1", "a1:0", "a1:x", ":4", "a1:-1", "a1:99999999999"] {
            let why = parse_grant(bad).expect_err(bad);
            assert!(why.contains("LOGIN:SLOTS"), "{bad}: {why}");
        }
    }
}
