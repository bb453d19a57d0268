//! [`AsyncPgAgent`] against a live cluster (a node run by `taskweave-pg`),
//! from tokio: outside a runtime it answers an error that says so; its
//! `serve` runs a handler per assignment as a tokio task and reports each
//! output; a handler's error and a handler's panic fail their attempts
//! (the cluster retries, then dead-letters them, naming the cause); an
//! attempt cancelled by a client has its task aborted; it outlives a
//! PostgreSQL restart; and `serve` returns when the cluster is drained.

mod common;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use common::async_host::{WAIT, block_on_outside_tokio, runtime, submit};
use common::cli::{node_agent_submitter, start, wait_until};
use serde_json::{Value, json};
use taskweave::AgentId;
use taskweave::agent::AgentProfile;
use taskweave::cluster::{Assignment, SessionConfig, TaskEnd};
use taskweave::scheduler::DeadLetterReason;
use taskweave_postgres::testkit::start_or_skip;
use taskweave_postgres::{AsyncPgAgent, AsyncPgClient, Handled, LogLine, PgError};

/// Sets its flag when dropped: the handler's future was aborted.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// What the test watches of the handler.
#[derive(Default)]
struct Seen {
    /// The attempt told to hang has started.
    hanging: AtomicBool,
    /// Its future was dropped (its task aborted).
    aborted: Arc<AtomicBool>,
    /// Attempts told to panic, so far.
    panics: AtomicU32,
}

/// The handler: `{"n": N}` answers `{"double": 2N}` after an async sleep;
/// `{"do": "fail"}` fails, `{"do": "panic"}` panics, `{"do": "hang"}`
/// never ends (and `serve`'s closure itself panics at `{"do": "panic at
/// once"}`).
async fn handle(seen: Arc<Seen>, work: Assignment<Value>) -> Handled<Value> {
    match work.payload["do"].as_str() {
        Some("fail") => Err("asked to fail".to_string()),
        Some("panic") => {
            seen.panics.fetch_add(1, Ordering::SeqCst);
            panic!("asked to panic");
        }
        Some("hang") => {
            let _guard = SetOnDrop(Arc::clone(&seen.aborted));
            seen.hanging.store(true, Ordering::SeqCst);
            std::future::pending::<Handled<Value>>().await
        }
        _ => {
            tokio::time::sleep(Duration::from_millis(1)).await;
            let n = work.payload["n"].as_u64().unwrap_or(0);
            Ok(json!({ "double": 2 * n }))
        }
    }
}

fn connect(
    db: &str,
    log: &mut (dyn FnMut(LogLine<'_>) + Send),
) -> impl Future<Output = Result<AsyncPgAgent<Value>, PgError>> + Send {
    let profile = AgentProfile::builder().capacity(8).build().unwrap();
    // No claim poll to speak of: the leader's notices must wake the
    // agent (a minute's poll would outlast every wait below).
    let session = SessionConfig::builder()
        .heartbeat_every(Duration::from_millis(500))
        .claim_poll(Duration::from_secs(60))
        .build()
        .unwrap();
    AsyncPgAgent::connect(db, AgentId::new(1), profile, session, log, &|| false)
}

#[test]
fn an_async_agent_serves_fails_aborts_outlives_a_restart_and_ends_with_the_drain() {
    let Some(mut cluster) = start_or_skip("async_agent") else {
        return;
    };
    let runtime = runtime();
    let (node, agent_db, sub) = node_agent_submitter(&cluster);

    // Outside a runtime: an error naming the remedy, not tokio's panic.
    let outside = block_on_outside_tokio(connect(&agent_db, &mut |_| {}));
    assert!(matches!(outside, Err(PgError::NoRuntime)), "{outside:?}");
    assert!(
        PgError::NoRuntime.to_string().contains("AsyncPgAgent"),
        "{}",
        PgError::NoRuntime
    );

    let _node = start(&["node", "--db", &node, "--name", "node-a"]);
    let seen = Arc::new(Seen::default());
    let agent = runtime
        .block_on(connect(&agent_db, &mut |line| eprintln!("agent 1: {line}")))
        .unwrap();
    // `serve` is a Send future: it runs as a task of its own.
    let served = {
        let seen = Arc::clone(&seen);
        let log = |line: LogLine<'_>| eprintln!("agent 1: {line}");
        runtime.spawn(agent.serve(log, move |work| {
            // A handler may panic before it makes its future, too.
            if work.payload["do"] == "panic at once" {
                seen.panics.fetch_add(1, Ordering::SeqCst);
                panic!("asked to panic at once");
            }
            handle(Arc::clone(&seen), work)
        }))
    };
    let mut client = runtime
        .block_on(AsyncPgClient::<Value>::connect(&sub))
        .unwrap();

    // Its session is named, so `reset` knows an agent is about.
    let mut admin = postgres::Client::connect(&cluster.conninfo(), postgres::NoTls).unwrap();
    let named = admin
        .query(
            "SELECT 1 FROM pg_stat_activity WHERE application_name = 'taskweave agent 1'",
            &[],
        )
        .unwrap();
    assert_eq!(named.len(), 1);

    runtime.block_on(async {
        // Twenty answers, each the handler's output for its payload.
        let tasks = submit(&mut client, (0..20).map(|n| json!({ "n": n })).collect()).await;
        let outcomes = client.wait_outcomes(&tasks, WAIT).await.unwrap();
        for (n, outcome) in outcomes.iter().enumerate() {
            let outcome = outcome.as_ref().expect("every task ended");
            assert_eq!(outcome.end, TaskEnd::Completed, "task {n}");
            assert_eq!(outcome.output, Some(json!({ "double": 2 * n })));
        }

        // An error and a panic (in the future, or in the call that makes
        // it) fail their attempts: retried, then dead-lettered with the
        // cause, and `serve` goes on.
        let failing = submit(
            &mut client,
            vec![
                json!({"do": "fail"}),
                json!({"do": "panic"}),
                json!({"do": "panic at once"}),
            ],
        )
        .await;
        let outcomes = client.wait_outcomes(&failing, WAIT).await.unwrap();
        let causes = [
            "asked to fail",
            "the handler panicked: asked to panic",
            "the handler panicked: asked to panic at once",
        ];
        for (outcome, cause) in outcomes.iter().zip(causes) {
            let outcome = outcome.as_ref().expect("both ended");
            let TaskEnd::DeadLettered(DeadLetterReason::RetriesExhausted { last_error, .. }) =
                &outcome.end
            else {
                panic!("{outcome:?}");
            };
            assert!(last_error.contains(cause), "{last_error}");
        }
        assert!(
            seen.panics.load(Ordering::SeqCst) > 3,
            "both panics were retried"
        );

        // A client cancels an attempt in flight: its task is aborted.
        let hang = submit(&mut client, vec![json!({"do": "hang"})]).await;
        let deadline = tokio::time::Instant::now() + WAIT;
        while !seen.hanging.load(Ordering::SeqCst) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the hang never started"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        client.cancel(hang[0]).await.unwrap();
        let outcome = client.wait_outcomes(&hang, WAIT).await.unwrap();
        assert_eq!(
            outcome[0].as_ref().map(|o| &o.end),
            Some(&TaskEnd::Cancelled)
        );
        while !seen.aborted.load(Ordering::SeqCst) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the hang was not aborted"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });

    // PostgreSQL restarts under the agent: it connects again and serves.
    cluster.restart_immediate().unwrap();
    wait_until("the client to reach PostgreSQL again", || {
        runtime.block_on(client.status()).is_ok()
    });
    runtime.block_on(async {
        let tasks = submit(&mut client, (20..25).map(|n| json!({ "n": n })).collect()).await;
        let outcomes = client.wait_outcomes(&tasks, WAIT).await.unwrap();
        for (n, outcome) in (20..).zip(&outcomes) {
            let outcome = outcome
                .as_ref()
                .expect("every task ended after the restart");
            assert_eq!(outcome.output, Some(json!({ "double": 2 * n })));
        }
    });

    // The drain stops the cluster: `serve` returns its completions.
    runtime.block_on(async {
        let mut operator = AsyncPgClient::<Value>::connect(&node).await.unwrap();
        operator.drain().await.unwrap();
        let completed = tokio::time::timeout(WAIT, served)
            .await
            .expect("serve ended with the drain")
            .unwrap();
        assert_eq!(completed, 25);
    });
}
