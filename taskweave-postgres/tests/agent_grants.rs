//! An agent login's grant, enforced by the database: a registration with
//! more slots or other capabilities than the login was granted is refused
//! by the server, in raw SQL and through the store, with a message that
//! names the grant and the remedy; `taskweave-pg init --grant` sets and
//! changes a grant; a login without one registers as it likes.

mod common;

use std::process::Command;

use common::{connect_as, incarnate, migrated_or_skip, now};
use postgres::error::SqlState;
use taskweave::AgentId;
use taskweave::agent::AgentProfile;
use taskweave::cluster::{AgentOp, Message, Sender, Store, StoreFailure};
use taskweave_postgres::{LoginKind, PgError, PgStore, create_login, grant_agent};

const BIN: &str = env!("CARGO_BIN_EXE_taskweave-pg");

/// An agent login's raw insert of a registration body.
fn register_raw(db: &mut postgres::Client, agent: i64, body: &str) -> Result<u64, postgres::Error> {
    db.execute(
        "INSERT INTO inbox (agent, incarnation, kind, body) VALUES ($1, 1, 'register', $2)",
        &[&agent, &body],
    )
}

/// The body the store writes for a registration with this profile.
fn body(capacity: u32, capabilities: &[&str]) -> String {
    let profile = AgentProfile::builder()
        .capacity(capacity)
        .capabilities(capabilities.iter().copied())
        .build()
        .expect("a valid profile");
    serde_json::to_string(&Message::<String>::Register { profile }).expect("a body")
}

/// Refused by the grant: SQLSTATE 42501 with a message containing `says`.
fn beyond_grant(what: &str, result: Result<u64, postgres::Error>, says: &str) {
    let error = result.expect_err(what);
    let db = error
        .as_db_error()
        .unwrap_or_else(|| panic!("{what}: {error}"));
    assert_eq!(
        db.code(),
        &SqlState::INSUFFICIENT_PRIVILEGE,
        "{what}: {db:?}"
    );
    assert!(db.message().contains(says), "{what}: {}", db.message());
    assert!(
        db.detail()
            .is_some_and(|d| d.contains("taskweave-pg init --grant")),
        "{what}: no remedy in {db:?}"
    );
}

fn init(conninfo: &str, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(["init", "--db", conninfo])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{BIN}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "init {args:?}: {text}");
    text
}

#[test]
fn a_registration_beyond_the_logins_grant_is_refused_by_the_database() {
    let Some((cluster, mut admin)) = migrated_or_skip("agent_grants") else {
        return;
    };
    create_login(&mut admin, "agent_one", LoginKind::Agent(1)).unwrap();
    create_login(&mut admin, "agent_two", LoginKind::Agent(2)).unwrap();
    create_login(&mut admin, "node", LoginKind::Node).unwrap();
    grant_agent(&mut admin, "agent_one", 4, &["cpu".to_string()]).unwrap();

    // Raw SQL, as a hostile agent would write it.
    let mut one = connect_as(&cluster.conninfo_as("agent_one"));
    register_raw(&mut one, 1, &body(4, &["cpu"])).expect("within the grant");
    register_raw(&mut one, 1, &body(1, &[])).expect("less than the grant");
    beyond_grant(
        "1,000,000 slots",
        register_raw(&mut one, 1, &body(1_000_000, &["cpu"])),
        "agent_one may register at most 4 slots, not 1000000",
    );
    beyond_grant(
        "a capability not granted",
        register_raw(&mut one, 1, &body(2, &["cpu", "gpu", "net"])),
        "may not claim capabilities {gpu,net}",
    );
    // Bodies no store writes: refused all the same.
    for (what, raw) in [
        ("not JSON", "Register"),
        (
            "a capacity that is text",
            r#"{"Register":{"profile":{"capacity":"lots"}}}"#,
        ),
        (
            "capabilities that are not a list",
            r#"{"Register":{"profile":{"capabilities":{"gpu":1}}}}"#,
        ),
        (
            "a huge capacity",
            r#"{"Register":{"profile":{"capacity":1e300}}}"#,
        ),
    ] {
        let result = register_raw(&mut one, 1, raw);
        assert!(result.is_err(), "{what}: the database allowed it");
    }

    // Through the store, as PgAgent posts it: a failure that names the
    // grant, not a silent registration.
    let mut store: PgStore<String> = PgStore::connect(&cluster.conninfo_as("agent_one")).unwrap();
    let incarnation = incarnate(&mut store, 1);
    let greedy = AgentProfile::builder().capacity(64).build().unwrap();
    let posted = store.agent(
        AgentOp::Post {
            sender: Sender::Agent {
                agent: AgentId::new(1),
                incarnation,
            },
            messages: vec![Message::Register { profile: greedy }],
        },
        now(),
    );
    assert!(
        matches!(&posted, Err(StoreFailure::Failed { cause })
            if cause.starts_with("42501 ") && cause.contains("at most 4 slots, not 64")
                && cause.contains("taskweave-pg init --grant agent_one:SLOTS")),
        "{posted:?}"
    );

    // A login without a grant registers as it likes (as before version 5).
    let mut two = connect_as(&cluster.conninfo_as("agent_two"));
    register_raw(&mut two, 2, &body(1_000_000, &["anything"])).expect("no grant, no limit");

    // The operator grants it through init, and changes the grant by
    // running it again.
    let said = init(&cluster.conninfo(), &["--grant", "agent_two:2:cpu,gpu"]);
    assert!(said.contains("agent_two: at most 2 slots"), "{said}");
    register_raw(&mut two, 2, &body(2, &["gpu"])).expect("within the new grant");
    beyond_grant(
        "3 slots of 2",
        register_raw(&mut two, 2, &body(3, &["gpu"])),
        "at most 2 slots, not 3",
    );
    init(&cluster.conninfo(), &["--grant", "agent_two:8"]);
    register_raw(&mut two, 2, &body(8, &[])).expect("8 slots, no capability");
    beyond_grant(
        "a capability the new grant dropped",
        register_raw(&mut two, 2, &body(1, &["gpu"])),
        "may not claim capabilities {gpu}",
    );

    // Only agent logins take grants, and a grant has a slot.
    assert!(matches!(
        grant_agent(&mut admin, "node", 4, &[]),
        Err(PgError::NotAnAgentLogin { .. })
    ));
    assert!(matches!(
        grant_agent(&mut admin, "agent_one", 0, &[]),
        Err(PgError::InvalidLogin { .. })
    ));
    // Nodes are trusted: the grant does not apply to them.
    let mut node = connect_as(&cluster.conninfo_as("node"));
    register_raw(&mut node, 1, &body(1_000_000, &["gpu"])).expect("a node's row");
}
