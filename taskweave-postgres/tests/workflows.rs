//! Workflows on a PostgreSQL cluster: a `WorkflowClient`'s sagas run as
//! cluster tasks on a real server, through a restart of that server.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use taskweave::agent::AgentProfile;
use taskweave::cluster::{AgentSession, Node, NodeConfig, SessionConfig, Store, WorkflowClient};
use taskweave::scheduler::{AttemptOutcome, DispatcherConfig};
use taskweave::workflow::{EngineAction, RunOutcome, StepDef, StepTask, WorkflowDef};
use taskweave::{AgentId, Instant, WorkflowId};
use taskweave_postgres::PgStore;

mod common;
use common::{drive, migrated_or_skip};

const RUNS: usize = 6;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn sagas_run_on_a_postgres_cluster_and_outlive_a_server_restart() {
    let test = "sagas_run_on_a_postgres_cluster_and_outlive_a_server_restart";
    let Some((mut cluster, _admin)) = migrated_or_skip(test) else {
        return;
    };
    let connect = || {
        PgStore::<StepTask>::connect(&cluster.conninfo()).unwrap_or_else(|e| panic!("connect: {e}"))
    };
    let (mut node_store, mut agent_store, mut client_store) = (connect(), connect(), connect());
    let dispatcher = DispatcherConfig::builder()
        .heartbeats(ms(250), 8)
        .build()
        .unwrap();
    let mut node = Node::new(NodeConfig::builder("node-1").build().unwrap(), dispatcher).unwrap();
    let profile = AgentProfile::builder().capacity(4).build().unwrap();
    let session = SessionConfig::builder().build().unwrap();
    let mut agent = AgentSession::new(AgentId::new(1), profile, session);
    let mut client: WorkflowClient<StepTask, ()> = WorkflowClient::new("pg-test", ms(20));

    let def = Arc::new(
        WorkflowDef::builder("order", 1)
            .step(StepDef::agent("reserve").compensable())
            .step(StepDef::agent("charge"))
            .edge("reserve", "charge")
            .build()
            .unwrap(),
    );
    let charge = def.step_id("charge").unwrap();
    let started = std::time::Instant::now();
    let clock = || Instant::from_nanos(started.elapsed().as_nanos() as u64);
    let mut runs: Vec<WorkflowId> = Vec::new();
    for _ in 0..RUNS {
        let (engine, pool) = client.parts();
        runs.push(engine.start(pool, Arc::clone(&def), None, clock()));
    }
    // Every other run's charge is declined: it compensates its reservation.
    let declined = |run: WorkflowId| runs.iter().position(|&r| r == run).unwrap() % 2 == 1;

    let mut ended: BTreeMap<WorkflowId, RunOutcome> = BTreeMap::new();
    let mut restarted = false;
    while ended.len() < RUNS && started.elapsed() < Duration::from_secs(90) {
        let now = clock();
        drive!(client, client_store, client, now);
        client.handle_timeout(now);
        drive!(node, node_store, node, now);
        drive!(agent, agent_store, agent, now);
        while let Some(work) = agent.poll_work() {
            let step = work.payload;
            let outcome = if step.step == charge && !step.compensation && declined(step.run) {
                AttemptOutcome::fatal("card declined")
            } else {
                AttemptOutcome::Success
            };
            agent.finish(work.task, work.token, outcome);
        }
        while agent.poll_cancelled().is_some() {}
        while let Some(action) = client.parts().0.poll_action() {
            if let EngineAction::Finished { run, outcome, .. } = action {
                assert!(ended.insert(run, outcome).is_none(), "{run} ended twice");
            }
        }
        while client.poll_event().is_some() {}
        if !restarted && !ended.is_empty() {
            // Mid-way, the server goes down hard and comes back: every
            // role's next operation fails, then reconnects.
            cluster
                .restart_immediate()
                .unwrap_or_else(|e| panic!("restart: {e}"));
            restarted = true;
        }
        std::thread::sleep(ms(5));
    }
    assert!(restarted, "no run ended before the restart");
    assert_eq!(
        ended.len(),
        RUNS,
        "runs ended: {ended:?}\nserver log:\n{}",
        cluster.server_log()
    );
    for (run, outcome) in &ended {
        if declined(*run) {
            assert!(
                matches!(outcome, RunOutcome::Compensated(_)),
                "{run}: {outcome:?}"
            );
        } else {
            assert_eq!(outcome, &RunOutcome::Succeeded, "{run}");
        }
    }
    assert_eq!(client.pool().tracked(), 0);
}
