//! The command line of the role processes: `leader`, `standby` and
//! `agent`, each with its flags.

use crate::agent::{self, AgentOptions};
use crate::leader::LeadOptions;
use crate::standby;
use crate::store::Store;

/// The usage text.
pub(crate) const USAGE: &str = "\
usage: cluster demo [--tasks N] [--agents N] [--keep-journal]
       cluster leader  --db CONNINFO [--name NAME] [--trim]
       cluster standby --db CONNINFO [--name NAME] [--trim]
       cluster agent   --db CONNINFO --id N [--capacity N] [--work-ms FROM-TO] [--fail-rate F]";

/// The value after `--flag`, if given.
pub(crate) fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn parsed<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> Result<T, String> {
    flag(args, name).map_or(Ok(default), |v| {
        v.parse()
            .map_err(|_| format!("{name}: cannot read {v:?}\n{USAGE}"))
    })
}

/// Runs the role named by `args[0]` (`leader`, `standby`, `agent`) until
/// it ends.
///
/// # Errors
///
/// A bad command line or the error that ended the role.
pub(crate) fn run_role(args: &[String]) -> Result<(), String> {
    let db = flag(args, "--db").ok_or_else(|| format!("--db is required\n{USAGE}"))?;
    let mut store = Store::connect(db).map_err(|e| e.to_string())?;
    match args.first().map(String::as_str) {
        Some(role @ ("leader" | "standby")) => {
            let name = flag(args, "--name").unwrap_or(role);
            let options = LeadOptions {
                trim: args.iter().any(|a| a == "--trim"),
                name: name.to_string(),
            };
            standby::run(&mut store, name, role == "leader", &options)
                .map_err(|e| format!("{name}: {e}"))
        }
        Some("agent") => {
            let work = flag(args, "--work-ms").unwrap_or("0-2");
            let (from, to) = work
                .split_once('-')
                .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
                .ok_or_else(|| format!("--work-ms: expected FROM-TO, got {work:?}"))?;
            let options = AgentOptions {
                id: parsed(args, "--id", 0)?,
                capacity: parsed(args, "--capacity", 8)?,
                work_ms: (from, to),
                fail_rate: parsed(args, "--fail-rate", 0.05)?,
            };
            if options.id < 1 || options.capacity < 1 || !(0.0..=1.0).contains(&options.fail_rate) {
                return Err(format!(
                    "agent: --id and --capacity must be ≥ 1, --fail-rate within 0..=1\n{USAGE}"
                ));
            }
            agent::run(&mut store, &options).map_err(|e| format!("agent {}: {e}", options.id))
        }
        _ => Err(USAGE.to_string()),
    }
}
