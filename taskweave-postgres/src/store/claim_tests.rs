//! Claims of untrusted outbox rows, as a property against a real server.
//! Whatever a row holds (any ids, tokens and attempts, a payload that is
//! no JSON, the wrong JSON or nested past the parser's limit, another
//! agent or another incarnation), a claim answers the rows of its agent
//! and incarnation whose payload decodes, in the order of their tokens
//! (ids, unsigned); reports each other one failed for good, once, and
//! closes it; and leaves the other agents' and incarnations' rows alone.
//! The claim after it answers the same rows and reports nothing.

use std::collections::BTreeMap;

use postgres::Client;
use proptest::prelude::*;
use taskweave::AgentId;
use taskweave::cluster::{AgentOp, AgentReply, Message, Store};
use taskweave::scheduler::AttemptOutcome;

use super::PgStore;
use super::server_properties::{extreme_i64, on_a_server};
use super::tests::now;

/// The agent that claims (a row may be another's), and its incarnation.
const AGENT: i64 = 7;
const INCARNATION: i64 = 1;

/// One outbox row as a hostile or broken writer might leave it.
#[derive(Clone, Debug)]
struct Row {
    task: i64,
    agent: i64,
    token: i64,
    attempt: i32,
    payload: String,
    incarnation: Option<i64>,
}

impl Row {
    fn claimable(&self) -> bool {
        self.agent == AGENT && self.incarnation.is_none_or(|i| i == INCARNATION)
    }

    fn readable(&self) -> bool {
        serde_json::from_str::<String>(&self.payload).is_ok()
    }
}

fn payload() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
        1 => "[^\u{0}]{0,12}",
        1 => Just("not json".to_string()),
        1 => Just("null".to_string()),
        1 => Just("[\"a\"]".to_string()),
        1 => Just("\"\\ud800\"".to_string()),
        1 => Just("[".repeat(100_000)),
    ]
}

fn row() -> impl Strategy<Value = Row> {
    (
        prop_oneof![4 => Just(AGENT), 1 => Just(AGENT + 1)],
        extreme_i64(),
        any::<i32>(),
        payload(),
        prop_oneof![Just(None), Just(Some(INCARNATION)), Just(Some(2))],
    )
        .prop_map(|(agent, token, attempt, payload, incarnation)| Row {
            task: 0,
            agent,
            token,
            attempt,
            payload,
            incarnation,
        })
}

/// Rows with distinct tasks (any values) for the table's key.
fn rows() -> impl Strategy<Value = Vec<Row>> {
    (
        proptest::collection::btree_set(extreme_i64(), 1..7),
        proptest::collection::vec(row(), 7),
    )
        .prop_map(|(tasks, rows)| {
            tasks
                .into_iter()
                .zip(rows)
                .map(|(task, row)| Row { task, ..row })
                .collect()
        })
}

/// The `(task, token)` pairs of the rows a claim answered, in its order.
fn claim(store: &mut PgStore<String>) -> Result<Vec<(i64, i64)>, String> {
    let op = AgentOp::Claim {
        agent: AgentId::new(AGENT as u64),
        incarnation: INCARNATION as u64,
        limit: 10,
    };
    match store.agent(op, now()) {
        Ok(AgentReply::Claimed { rows, .. }) => Ok(rows
            .iter()
            .map(|a| (a.task.get() as i64, a.token.get() as i64))
            .collect()),
        other => Err(format!("the claim answered {other:?}")),
    }
}

/// The `(task, token)` of every report posted, each a fatal failure.
fn reports(admin: &mut Client) -> Result<Vec<(i64, i64)>, String> {
    let rows = admin
        .query(
            "SELECT body FROM taskweave.inbox WHERE kind = 'report' AND agent = $1",
            &[&AGENT],
        )
        .map_err(|e| e.to_string())?;
    let mut reported = Vec::new();
    for row in rows {
        let body: String = row.get(0);
        let message: Message<String> = serde_json::from_str(&body).map_err(|e| e.to_string())?;
        let Message::Report(report) = message else {
            return Err(format!("not a report: {body}"));
        };
        if !matches!(
            report.outcome,
            AttemptOutcome::Failure {
                retryable: false,
                ..
            }
        ) {
            return Err(format!("not a failure for good: {body}"));
        }
        reported.push((report.task.get() as i64, report.token.get() as i64));
    }
    reported.sort_unstable();
    Ok(reported)
}

/// Each row's state, by task.
fn states(admin: &mut Client) -> Result<BTreeMap<i64, String>, String> {
    let rows = admin
        .query("SELECT task, state FROM taskweave.outbox", &[])
        .map_err(|e| e.to_string())?;
    Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
}

fn check(admin: &mut Client, store: &mut PgStore<String>, rows: &[Row]) -> Result<(), String> {
    admin
        .batch_execute("DELETE FROM taskweave.outbox; DELETE FROM taskweave.inbox;")
        .map_err(|e| e.to_string())?;
    for row in rows {
        admin
            .execute(
                "INSERT INTO taskweave.outbox (task, token, agent, attempt, payload, epoch, incarnation)
                 VALUES ($1, $2, $3, $4, $5, 1, $6)",
                &[&row.task, &row.token, &row.agent, &row.attempt, &row.payload, &row.incarnation],
            )
            .map_err(|e| format!("inserting {row:?}: {e}"))?;
    }
    let pair = |row: &Row| (row.task, row.token);
    let mut answered: Vec<_> = rows
        .iter()
        .filter(|r| r.claimable() && r.readable())
        .map(pair)
        .collect();
    answered.sort_unstable_by_key(|&(task, token)| (token as u64, task));
    let mut unreadable: Vec<_> = rows
        .iter()
        .filter(|r| r.claimable() && !r.readable())
        .map(pair)
        .collect();
    unreadable.sort_unstable();
    for round in ["first", "second"] {
        let mut got = claim(store)?;
        if !got.is_sorted_by_key(|&(_, token)| token as u64) {
            return Err(format!("the {round} claim is not in token order: {got:?}"));
        }
        got.sort_unstable_by_key(|&(task, token)| (token as u64, task));
        if got != answered {
            return Err(format!(
                "the {round} claim answered {got:?}, not {answered:?}"
            ));
        }
        let reported = reports(admin)?;
        if reported != unreadable {
            return Err(format!(
                "after the {round} claim, reports for {reported:?}, not {unreadable:?}"
            ));
        }
    }
    let states = states(admin)?;
    for row in rows {
        let expected = match (row.claimable(), row.readable()) {
            (false, _) => "ready",
            (true, true) => "claimed",
            (true, false) => "done",
        };
        if states.get(&row.task).map(String::as_str) != Some(expected) {
            return Err(format!(
                "{row:?} is {:?}, not {expected}",
                states.get(&row.task)
            ));
        }
    }
    Ok(())
}

#[test]
fn any_outbox_row_is_answered_or_failed_for_good_once() {
    on_a_server("untrusted_claims", rows(), |admin, store, rows| {
        check(admin, store, rows)
    });
}
