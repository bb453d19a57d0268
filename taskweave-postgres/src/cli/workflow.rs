//! `taskweave-pg workflow register`: a workflow definition for the runs
//! the cluster's nodes host.

use std::process::ExitCode;
use std::time::Duration;

use taskweave::cluster::{RunCommand, Verdict};
use taskweave::workflow::WorkflowDef;
use taskweave_postgres::PgClient;

use super::Payload;
use super::args::Args;
use super::privilege::{SUBMITTER, hint};
use super::submit::MAX_MESSAGE_BYTES;

const USAGE: &str = "\
usage: taskweave-pg workflow register FILE.json [--wait SECONDS]

Registers the workflow definition in FILE.json (`-` reads stdin) with the
cluster: a name, a version, and its steps as data, e.g.

  {\"name\": \"order\", \"version\": 1,
   \"tasks\": [{\"id\": \"reserve\", \"compensable\": true},
             {\"id\": \"charge\", \"depends_on\": [\"reserve\"]}]}

The definition is checked here first (a cycle, an unknown step, … is named);
the leader then journals it. The same definition again changes nothing;
another one under a registered name and version is refused: register a new
version. A hosted run executes no host code, so a local, multi-instance or
compensable sub-workflow step is refused, by name; so is a file over 16 MiB
(what one message may hold), before it is parsed. Waits up to --wait seconds
(default 30) for the leader's verdict. A submitter's login may register.";

pub(crate) fn run(raw: &[String]) -> Result<ExitCode, String> {
    let args = Args::parse(raw, USAGE, &["--db", "--wait"])?;
    if args.wants_help() {
        say!("{USAGE}");
        return Ok(ExitCode::SUCCESS);
    }
    let [action, file] = &args.positional[..] else {
        return Err(args.wrong("usage: workflow register FILE.json"));
    };
    if action != "register" {
        return Err(args.wrong(&format!("unknown workflow command {action:?}")));
    }
    let text = read_bounded(file)?;
    let def: WorkflowDef = serde_json::from_str(&text)
        .map_err(|e| format!("{file} is not a workflow definition: {e}"))?;
    let named = format!("{} v{}", def.name(), def.version());
    let wait = Duration::from_secs(args.parsed("--wait", 30)?);
    let mut client: PgClient<Payload> =
        PgClient::connect(&args.db()?).map_err(|e| e.to_string())?;
    let posted = client
        .run(RunCommand::Register(Box::new(def)))
        .map_err(hint("workflow register", SUBMITTER))?;
    let verdict = client
        .wait_verdicts(&[posted], wait)
        .map_err(hint("workflow register", SUBMITTER))?;
    match verdict.into_iter().next().flatten() {
        Some(Verdict::Accepted) => {
            say!("{named}: registered");
            Ok(ExitCode::SUCCESS)
        }
        Some(Verdict::Refused(why)) => {
            say!("{named}: refused: {why}");
            Ok(ExitCode::from(1))
        }
        Some(other) => {
            say!("{named}: unexpected verdict {other:?}");
            Ok(ExitCode::from(1))
        }
        None => {
            say!(
                "{named}: no verdict within {wait:?}: is a node running? (the registration \
                 stays posted and applies when a leader reads it)"
            );
            Ok(ExitCode::from(1))
        }
    }
}

/// The text of `file` (`-`: stdin), refused past what one message may
/// hold before it is read whole.
fn read_bounded(file: &str) -> Result<String, String> {
    use std::io::Read;
    let source: Box<dyn Read> = match file {
        "-" => Box::new(std::io::stdin()),
        path => {
            Box::new(std::fs::File::open(path).map_err(|e| format!("cannot read {file}: {e}"))?)
        }
    };
    let mut bytes = Vec::new();
    source
        .take(MAX_MESSAGE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {file}: {e}"))?;
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(format!(
            "{file} is over {MAX_MESSAGE_BYTES} bytes, what one message may hold: no workflow \
             definition is that large (keep large data out of it)"
        ));
    }
    String::from_utf8(bytes).map_err(|e| format!("cannot read {file}: it is not UTF-8: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_definition_file_past_a_message_is_refused_before_it_is_parsed() {
        let dir = std::env::temp_dir().join(format!("tw-register-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let large = dir.join("large.json");
        let file = std::fs::File::create(&large).unwrap();
        // Sparse: no 16 MiB written to disk.
        file.set_len(MAX_MESSAGE_BYTES as u64 + 1).unwrap();
        let refused = read_bounded(large.to_str().unwrap()).unwrap_err();
        assert!(refused.contains("one message may hold"), "{refused}");
        let small = dir.join("small.json");
        std::fs::write(&small, "{}").unwrap();
        assert_eq!(read_bounded(small.to_str().unwrap()).unwrap(), "{}");
        let missing = read_bounded(dir.join("none.json").to_str().unwrap()).unwrap_err();
        assert!(missing.starts_with("cannot read"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
