//! `taskweave-pg config show|set`: the dispatcher configuration the
//! cluster's nodes and its audit run with, kept in the database.

use std::process::ExitCode;
use std::time::Duration;

use taskweave::scheduler::DispatcherConfig;
use taskweave_postgres::{cluster_config, connect_admin, set_cluster_config};

use super::args::Args;
use super::privilege::{OWNER, hint};
use super::{HEARTBEAT, dispatcher_config};

const USAGE: &str = "\
usage: taskweave-pg config show --db CONNINFO
       taskweave-pg config set --db CONNINFO FILE.json

The dispatcher configuration every node, `audit` and `run show` of the cluster
run with: retries, heartbeats, queue capacity, the seed, tenant quotas
(\"tenant_quotas\": live tasks, cost rate, live runs, fair share) and the rest,
as JSON. `init` stores the defaults; a node stores its own when none is, and
one whose configuration disagrees is refused, naming the setting and both
values. `show` prints the stored one (or the defaults, when none is yet).
`set` replaces it, checked as a builder checks one, while the cluster has no
journal: before its first start, or after `drain` and `reset`; nodes started
afterwards run with it. `set` refuses a heartbeat timeout (interval × missed
heartbeats) under 1 s: `taskweave-pg agent` heartbeats every 500 ms, and a
shorter timeout would have every such agent counted as lost. Run `set` as the
database owner or a superuser.";

/// The shortest heartbeat timeout `set` stores: two of the command's
/// agents' heartbeat periods, so one late heartbeat loses no agent.
const MIN_HEARTBEAT_TIMEOUT: Duration = HEARTBEAT.saturating_mul(2);

/// `Err` naming both values and the remedy when `config`'s heartbeat
/// timeout is shorter than `taskweave-pg agent`'s heartbeats can meet.
fn agents_can_meet(config: &DispatcherConfig) -> Result<(), String> {
    match config.heartbeats() {
        Some(beats) if beats.timeout() < MIN_HEARTBEAT_TIMEOUT => Err(format!(
            "a heartbeat timeout of {:?} ({:?} × {}) is shorter than `taskweave-pg agent` \
             can meet: it heartbeats every {HEARTBEAT:?} and would be counted as lost; set \
             \"heartbeats\" with an interval × tolerance of at least {MIN_HEARTBEAT_TIMEOUT:?}",
            beats.timeout(),
            beats.interval,
            beats.tolerance
        )),
        _ => Ok(()),
    }
}

pub(crate) fn run(raw: &[String]) -> Result<ExitCode, String> {
    let args = Args::parse(raw, USAGE, &["--db"])?;
    if args.wants_help() {
        say!("{USAGE}");
        return Ok(ExitCode::SUCCESS);
    }
    let words = &args.positional;
    let mut client = connect_admin(&args.db()?).map_err(hint("config", OWNER))?;
    match words.first().map(String::as_str) {
        Some("show") if words.len() == 1 => {
            let (config, stored) = match cluster_config(&mut client).map_err(|e| e.to_string())? {
                Some(config) => (config, true),
                None => (dispatcher_config()?, false),
            };
            let json = serde_json::to_string_pretty(&config).map_err(|e| e.to_string())?;
            say!("{json}");
            if !stored {
                say!("(none stored yet: these are the defaults a node stores when it starts)");
            }
            Ok(ExitCode::SUCCESS)
        }
        Some("set") if words.len() == 2 => {
            let text =
                std::fs::read_to_string(&words[1]).map_err(|e| format!("{}: {e}", words[1]))?;
            let config: DispatcherConfig = serde_json::from_str(&text)
                .map_err(|e| format!("{}: not a dispatcher configuration: {e}", words[1]))?;
            agents_can_meet(&config).map_err(|e| format!("{}: {e}", words[1]))?;
            set_cluster_config(&mut client, &config).map_err(hint("config", OWNER))?;
            say!("config: stored; nodes started from now on run with it");
            Ok(ExitCode::SUCCESS)
        }
        _ => Err(args.wrong("expected `config show` or `config set FILE.json`")),
    }
}
