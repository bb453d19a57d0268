//! `taskweave-pg node`: a node of the cluster.

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;

use taskweave::cluster::{NodeConfig, NodeConfigBuilder};
use taskweave::scheduler::ScalePolicy;
use taskweave_postgres::host::connect_patiently;
use taskweave_postgres::metrics::NodeMetrics;
use taskweave_postgres::{LogLine, NodeExit, PgNode, json_run_codec};

use super::args::Args;
use super::{LEASE, NOTICE_POLL, Payload, cluster_dispatcher_config, logger};
use super::{log, metrics, privilege};

const USAGE: &str = "\
usage: taskweave-pg node --db CONNINFO [--name NAME] [--keep-journal] [--max-output-bytes N] [--pool NAME:SLOTS[:CAP,CAP...]]... [--metrics ADDR] [--log-format text|json]

Follows the journal, and leads when the lease is free (a 1 s lease, renewed
every 333 ms). Run two or more: a standby takes over within about a second of
the leader's death. It survives PostgreSQL restarts (it reconnects with
backoff and resumes from the journal) and exits 0 when the cluster is drained.
--name        the lease holder's name in logs and status (default: node-PID)
--keep-journal  keep every journal entry (default: delete entries behind the
              previous snapshot; `audit` then checks from the latest snapshot)
--max-output-bytes  the largest output a task may complete with, as stored
              (default 1048576, at most 16777216); a larger one fails its task
              for good: return a reference to a large result. Give every node
              the same value.
--pool        a pool whose scale hint `status` shows while this node leads: its
              agents have SLOTS slots each and every capability CAP (none: every
              agent, every task), e.g. --pool gpu:4:gpu,cuda
--metrics     serve Prometheus metrics on http://ADDR/metrics, e.g. 127.0.0.1:9464
              (port 0: any free one; the address is logged)
--log-format  text (default): `TIME LEVEL WHO: WHAT` a line; json: one JSON
              object a line (timestamp, level, who, message)";

pub(crate) fn run(raw: &[String]) -> Result<ExitCode, String> {
    let args = Args::parse(
        raw,
        USAGE,
        &[
            "--db",
            "--name",
            "--keep-journal!",
            "--max-output-bytes",
            "--pool",
            "--metrics",
            "--log-format",
        ],
    )?;
    if args.wants_help() {
        say!("{USAGE}");
        return Ok(ExitCode::SUCCESS);
    }
    let db = args.db()?;
    let name = args
        .value("--name")
        .map_or_else(|| format!("node-{}", std::process::id()), str::to_string);
    let max_output: usize = args.parsed("--max-output-bytes", 1 << 20)?;
    let mut config = NodeConfig::builder(name.clone())
        .woken_by_notices(NOTICE_POLL)
        .lease(LEASE.0, LEASE.1)
        .snapshots(4_000, !args.switch("--keep-journal"))
        .max_output_bytes(max_output);
    for pool in args.values("--pool") {
        config = with_pool(config, pool).map_err(|why| args.wrong(&why))?;
    }
    let config = config.build().map_err(|e| args.wrong(&e.to_string()))?;
    let stop = AtomicBool::new(false);
    log::install(&args)?;
    // A privilege refusal repeats until an operator grants it: each line
    // names the login this command needs.
    let mut log = privilege::naming_login("node", privilege::NODE, logger(name));
    // The cluster's configuration, once the database answers it (a login
    // that may not read it is told which it needs, again and again, until
    // an operator grants it).
    let mut pause = std::time::Duration::from_millis(100);
    let dispatcher = loop {
        let mut store =
            connect_patiently::<Payload>(&db, &mut log, &|| false).map_err(|e| e.to_string())?;
        match cluster_dispatcher_config(&mut store) {
            Ok(dispatcher) => break dispatcher,
            Err(e) => {
                log(LogLine::warn(&format!("{e}; trying again in {pause:?}")));
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_secs(5));
            }
        }
    };
    let served = metrics::serve(
        &args,
        &mut log,
        NodeMetrics::register,
        NodeMetrics::is_restored,
    )?;
    let mut node = PgNode::<Payload>::new(&db, config, dispatcher)
        .map_err(|e| e.to_string())?
        .host_runs(json_run_codec());
    if let Some((_, metrics)) = &served {
        node = node.observe_with(metrics.clone());
    }
    match node.run(&stop, &mut log)? {
        NodeExit::Stopped => log(LogLine::info(
            "the cluster was drained and stopped; exiting",
        )),
        NodeExit::Interrupted => log(LogLine::info("interrupted")),
    }
    Ok(ExitCode::SUCCESS)
}

/// `config` with the pool `NAME:SLOTS[:CAP,CAP...]` of a `--pool` flag.
fn with_pool(config: NodeConfigBuilder, pool: &str) -> Result<NodeConfigBuilder, String> {
    let mut parts = pool.splitn(3, ':');
    let name = parts.next().unwrap_or_default();
    let slots = parts.next().and_then(|s| s.parse::<u32>().ok()).ok_or_else(|| {
        format!("--pool {pool}: expected NAME:SLOTS[:CAP,CAP...] with SLOTS a number, e.g. gpu:4:gpu,cuda")
    })?;
    let capabilities = parts
        .next()
        .map(|caps| {
            caps.split(',')
                .filter(|c| !c.is_empty())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let policy = ScalePolicy::builder()
        .slots_per_agent(slots)
        .build()
        .map_err(|e| format!("--pool {pool}: {e}"))?;
    Ok(config.scale_pool(name, capabilities, policy))
}
