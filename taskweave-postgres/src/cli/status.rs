//! `taskweave-pg status`: what the leader published last.

use std::process::ExitCode;
use std::time::Duration;

use taskweave_postgres::{PgClient, wall_now};

use super::Payload;
use super::args::Args;
use super::privilege::{READER, hint};

const USAGE: &str = "\
usage: taskweave-pg status --db CONNINFO [--json]

Prints the lease (epoch, leader, held or expired), the logins with the most
inbox messages still unread (a login that floods the inbox is named there,
with its limit), then what the leader published last (every 250 ms, every
second while only heartbeats come): tasks queued by priority with the age of
the oldest, delayed, in flight, each agent with its load, dead letters and
totals, the inbox messages read since the
previous status and who sent the most, the scale hint of each pool the leader
watches (`node --pool`), and the queued tasks that no online agent can take,
with why (a drain waits for them until they expire or are cancelled).
--json  the status as one JSON object instead";

pub(crate) fn run(raw: &[String]) -> Result<ExitCode, String> {
    let args = Args::parse(raw, USAGE, &["--db", "--json!"])?;
    if args.wants_help() {
        say!("{USAGE}");
        return Ok(ExitCode::SUCCESS);
    }
    let mut client = PgClient::<Payload>::connect(&args.db()?).map_err(|e| e.to_string())?;
    if args.switch("--json") {
        let json = client.status_json().map_err(hint("status", READER))?;
        say!("{json}");
        return Ok(ExitCode::SUCCESS);
    }
    let (lease, status) = client.status().map_err(hint("status", READER))?;
    let state = match (lease.stopped, lease.held) {
        (true, _) => "the cluster was drained and stopped",
        (false, true) => "lease held",
        (false, false) => "lease expired: no leader right now",
    };
    say!("epoch {} leader {:?} ({state})", lease.epoch, lease.holder);
    unread(&mut client);
    let Some(s) = status else {
        say!("no status published yet");
        return Ok(ExitCode::SUCCESS);
    };
    let age = Duration::from_nanos(wall_now().saturating_duration_since(s.at).as_nanos() as u64);
    say!(
        "published by {} at journal entry {}, {:.1} s ago{}",
        s.leader,
        s.seq,
        age.as_secs_f64(),
        if s.draining { "; DRAINING" } else { "" }
    );
    let oldest = s.oldest_queued_ms.map_or_else(
        || "none".to_string(),
        |ms| format!("{:.1} s", ms as f64 / 1_000.0),
    );
    say!(
        "queued: P0 {} P1 {} P2 {} P3 {} (oldest {oldest}); delayed {}; in flight {}",
        s.queued[0],
        s.queued[1],
        s.queued[2],
        s.queued[3],
        s.delayed,
        s.in_flight
    );
    say!("agents: {}", s.agents.len());
    for a in &s.agents {
        say!(
            "  agent {:>4}  {:<9} {}/{}  incarnation {}",
            a.agent.get(),
            a.status,
            a.load,
            a.capacity,
            a.incarnation
        );
    }
    say!(
        "dead letters: {}; totals: submitted {}, completed {}, dead-lettered {}, expired {}",
        s.dead_letters,
        s.submitted,
        s.completed,
        s.dead_lettered,
        s.expired
    );
    if let Some(inbox) = &s.inbox {
        say!(
            "inbox: {} messages read since the previous status, {} of them from {}",
            inbox.messages,
            inbox.busiest_messages,
            inbox.busiest
        );
    }
    if let Some(runs) = &s.runs {
        say!(
            "runs: running {}, compensating {}; finished (remembered) {}; workflows registered {}",
            runs.running,
            runs.compensating,
            runs.finished,
            runs.workflows
        );
    }
    for u in &s.unroutable {
        say!(
            "UNROUTABLE: {} queued task(s), first task-{}: {}; start an agent that can take \
             them, or cancel them",
            u.tasks,
            u.first.get(),
            u.reason
        );
    }
    for p in &s.pools {
        let oldest = p.oldest_queued.map_or_else(
            || "none".to_string(),
            |age| format!("{:.1} s", age.as_secs_f64()),
        );
        say!(
            "pool {}: queued {} (oldest {oldest}), in flight {}, {} agents with {} slots; \
             {:.1} arrivals/s, {:.1} completions/s; wants {} agents ({:?})",
            p.pool,
            p.queued,
            p.in_flight,
            p.agents,
            p.capacity,
            p.arrivals_per_second,
            p.completions_per_second,
            p.desired_agents,
            p.change
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Unread messages a login may leave before its posts are refused
/// (schema versions 6 and 8).
const UNREAD_LIMIT: u64 = 1_024;

/// The three logins with the most unread inbox messages, as far as the
/// connection's login may read them; a login at its limit is flagged.
fn unread(client: &mut PgClient<Payload>) {
    match client.unread_by_login(3) {
        Ok(logins) if !logins.is_empty() => {
            let named: Vec<String> = logins
                .iter()
                .map(|(login, n)| match *n >= UNREAD_LIMIT {
                    true => format!("{login} {n} (AT ITS LIMIT: its posts are refused)"),
                    false => format!("{login} {n}"),
                })
                .collect();
            say!("inbox unread by login: {}", named.join(", "));
        }
        Ok(_) => say!("inbox unread by login: none"),
        Err(e) => say!("inbox unread by login: not readable with this login ({e})"),
    }
}
