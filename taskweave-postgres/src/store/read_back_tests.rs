//! Outcomes and run ends read back by a client, as a property against a
//! real server. Whatever a row holds (a body or an output that is no
//! JSON, the wrong JSON, nested past the parser's limit, or a run's end
//! stored under another run, at any key), a client's read answers every
//! asked task or run whose row decodes, `None` for one with no row, or
//! fails naming an asked row that does not decode, its table and its key.
//! It never panics, and a corrupt row nobody asked for changes nothing.

use postgres::Client;
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use taskweave::cluster::{
    ClientOp, ClientReply, Outcome, RunEnd, RunEndCursor, Store, StoreFailure, TaskEnd,
};
use taskweave::scheduler::{DeadLetterReason, Expiry};
use taskweave::workflow::RunOutcome;
use taskweave::{TaskId, TenantId, WorkflowId};

use super::PgStore;
use super::server_properties::{extreme_i64, on_a_server};
use super::tests::now;

/// Stored text: what a well-behaved writer would store, or not.
#[derive(Clone, Debug)]
enum Text<T> {
    /// The JSON of this value.
    Holds(T),
    /// Text that is not the JSON of a `T`.
    Garbage(String),
}

impl<T: serde::Serialize> Text<T> {
    fn stored(&self) -> String {
        match self {
            Text::Holds(value) => serde_json::to_string(value).unwrap_or_default(),
            Text::Garbage(text) => text.clone(),
        }
    }

    fn value(&self) -> Option<&T> {
        match self {
            Text::Holds(value) => Some(value),
            Text::Garbage(_) => None,
        }
    }
}

/// Text that is not the JSON of a `T`.
fn garbage<T: DeserializeOwned + std::fmt::Debug>() -> impl Strategy<Value = Text<T>> {
    prop_oneof![
        Just(String::new()),
        Just("not json".to_string()),
        Just("{}".to_string()),
        Just("[]".to_string()),
        Just("42".to_string()),
        Just("\"Exploded\"".to_string()),
        Just("\"Completed\" and more".to_string()),
        Just("[".repeat(100_000)),
        "[^\u{0}]{0,12}".boxed(),
    ]
    .prop_filter("not the JSON of a T", |text| {
        serde_json::from_str::<T>(text).is_err()
    })
    .prop_map(Text::Garbage)
}

fn task_end() -> impl Strategy<Value = TaskEnd> {
    prop_oneof![
        Just(TaskEnd::Completed),
        Just(TaskEnd::Cancelled),
        Just(TaskEnd::Expired(Expiry::Deadline)),
        any::<String>()
            .prop_map(|reason| TaskEnd::DeadLettered(DeadLetterReason::NonRetryable { reason })),
    ]
}

/// One `outcomes` row: its task, body and output.
#[derive(Clone, Debug)]
struct OutcomeRow {
    task: i64,
    body: Text<TaskEnd>,
    output: Option<Text<String>>,
}

impl OutcomeRow {
    /// What a client reads back, or `None` if the row does not decode.
    fn reads_as(&self) -> Option<Outcome<String>> {
        let output = match &self.output {
            None => None,
            Some(text) => Some(text.value()?.clone()),
        };
        Some(Outcome {
            end: self.body.value()?.clone(),
            output,
        })
    }
}

fn outcome_row(task: i64) -> impl Strategy<Value = OutcomeRow> {
    let body = prop_oneof![3 => task_end().prop_map(Text::Holds), 1 => garbage()];
    let output = prop_oneof![
        1 => Just(None),
        2 => any::<String>().prop_map(|o| Some(Text::Holds(o))),
        1 => garbage().prop_map(Some),
    ];
    (body, output).prop_map(move |(body, output)| OutcomeRow { task, body, output })
}

/// One `run_ends` row: its run, journal position and body. A body that
/// holds an end may hold another run's.
#[derive(Clone, Debug)]
struct RunEndRow {
    run: i64,
    seq: i64,
    body: Text<RunEnd<String>>,
}

impl RunEndRow {
    fn reads_as(&self) -> Option<RunEnd<String>> {
        self.body
            .value()
            .filter(|end| end.run.get() == self.run as u64)
            .cloned()
    }
}

fn run_end_row(run: i64) -> impl Strategy<Value = RunEndRow> {
    let end = (
        prop_oneof![4 => Just(run), 1 => Just(run.wrapping_add(1))],
        prop_oneof![
            Just(RunOutcome::Succeeded),
            Just(RunOutcome::Failed(
                taskweave::workflow::FailureCause::Cancelled
            ))
        ],
        proptest::option::of(any::<String>()),
        proptest::option::of(any::<u64>().prop_map(TenantId::new)),
    )
        .prop_map(|(holder, outcome, output, tenant)| RunEnd {
            run: WorkflowId::new(holder as u64),
            outcome,
            output,
            tenant,
        });
    (
        1i64..4,
        prop_oneof![3 => end.prop_map(Text::Holds), 1 => garbage()],
    )
        .prop_map(move |(seq, body)| RunEndRow { run, seq, body })
}

/// Rows at distinct keys (any values), and the keys a client asks for:
/// some of the rows' in any order, and keys no row has.
fn keyed<R: std::fmt::Debug + Clone>(
    row: fn(i64) -> BoxedStrategy<R>,
) -> impl Strategy<Value = (Vec<R>, Vec<i64>)> {
    proptest::collection::btree_set(extreme_i64(), 1..6)
        .prop_flat_map(move |keys| {
            let keys: Vec<i64> = keys.into_iter().collect();
            let rows: Vec<_> = keys.iter().map(|&key| row(key)).collect();
            let asked = proptest::sample::subsequence(keys.clone(), 0..=keys.len()).prop_shuffle();
            let absent = proptest::collection::vec(1_000i64..2_000, 0..3);
            (rows, asked, absent)
        })
        .prop_map(|(rows, mut asked, absent)| {
            asked.extend(absent);
            (rows, asked)
        })
}

/// A read's answer, or the key of the asked row it found corrupt.
fn expected<T: Clone>(asked: &[i64], row: impl Fn(i64) -> Option<Option<T>>) -> Answer<T> {
    let mut answers = Vec::with_capacity(asked.len());
    let mut corrupt = Vec::new();
    for &key in asked {
        match row(key) {
            None => answers.push(None),
            Some(Some(value)) => answers.push(Some(value)),
            Some(None) => corrupt.push(key),
        }
    }
    if corrupt.is_empty() {
        Answer::Values(answers)
    } else {
        Answer::Corrupt(corrupt)
    }
}

#[derive(Debug, PartialEq)]
enum Answer<T> {
    Values(Vec<Option<T>>),
    /// The failure names one of these keys.
    Corrupt(Vec<i64>),
}

/// Whether `got` is `want`: values equal, or a failure naming one of the
/// corrupt keys in `table`.
fn agrees<T: PartialEq + std::fmt::Debug>(
    table: &str,
    got: Result<Vec<Option<T>>, StoreFailure>,
    want: &Answer<T>,
) -> Result<(), String> {
    match (&got, want) {
        (Ok(values), Answer::Values(wanted)) if values == wanted => Ok(()),
        (Err(StoreFailure::Failed { cause }), Answer::Corrupt(keys))
            if keys
                .iter()
                .any(|key| cause.starts_with(&format!("corrupt row {key} in table {table}: "))) =>
        {
            Ok(())
        }
        _ => Err(format!("{table}: read {got:?}, not {want:?}")),
    }
}

fn outcomes_agree(
    admin: &mut Client,
    store: &mut PgStore<String>,
    (rows, asked): &(Vec<OutcomeRow>, Vec<i64>),
) -> Result<(), String> {
    admin
        .batch_execute("DELETE FROM taskweave.outcomes")
        .map_err(|e| e.to_string())?;
    for row in rows {
        let output = row.output.as_ref().map(Text::stored);
        admin
            .execute(
                "INSERT INTO taskweave.outcomes (task, seq, body, output) VALUES ($1, 1, $2, $3)",
                &[&row.task, &row.body.stored(), &output],
            )
            .map_err(|e| format!("inserting {row:?}: {e}"))?;
    }
    let want = expected(asked, |task| {
        let row = rows.iter().find(|row| row.task == task)?;
        Some(row.reads_as())
    });
    let tasks = asked.iter().map(|&t| TaskId::new(t as u64)).collect();
    let got = match store.client(ClientOp::Outcomes(tasks), now()) {
        Ok(ClientReply::Outcomes(outcomes)) => Ok(outcomes),
        Ok(other) => return Err(format!("outcomes answered {other:?}")),
        Err(failure) => Err(failure),
    };
    agrees("outcomes", got, &want)
}

fn run_ends_agree(
    admin: &mut Client,
    store: &mut PgStore<String>,
    (rows, asked): &(Vec<RunEndRow>, Vec<i64>),
) -> Result<(), String> {
    admin
        .batch_execute("DELETE FROM taskweave.run_ends")
        .map_err(|e| e.to_string())?;
    for row in rows {
        admin
            .execute(
                "INSERT INTO taskweave.run_ends (run, seq, body) VALUES ($1, $2, $3)",
                &[&row.run, &row.seq, &row.body.stored()],
            )
            .map_err(|e| format!("inserting {row:?}: {e}"))?;
    }
    let want = expected(asked, |run| {
        let row = rows.iter().find(|row| row.run == run)?;
        Some(row.reads_as())
    });
    let runs = asked.iter().map(|&r| WorkflowId::new(r as u64)).collect();
    let got = match store.client(ClientOp::Runs(runs), now()) {
        Ok(ClientReply::Runs(ends)) => Ok(ends),
        Ok(other) => return Err(format!("runs answered {other:?}")),
        Err(failure) => Err(failure),
    };
    agrees("run_ends", got, &want)?;
    // A page from the start reads every row, in journal order then by
    // run (as an unsigned id).
    let mut every: Vec<_> = rows.iter().map(|row| (row.seq, row.run as u64)).collect();
    every.sort_unstable();
    let every: Vec<i64> = every.into_iter().map(|(_, run)| run as i64).collect();
    let want = expected(&every, |run| {
        let row = rows.iter().find(|row| row.run == run)?;
        Some(row.reads_as().map(|end| (row.seq as u64, end)))
    });
    let op = ClientOp::RunEndsAfter {
        after: RunEndCursor::START,
        limit: 100,
    };
    let got = match store.client(op, now()) {
        Ok(ClientReply::RunEndsAfter(page)) => Ok(page
            .into_iter()
            .map(|(cursor, end)| (cursor.run() == end.run).then_some((cursor.seq(), end)))
            .collect()),
        Ok(other) => return Err(format!("a page of run ends answered {other:?}")),
        Err(failure) => Err(failure),
    };
    agrees("run_ends", got, &want)
}

#[test]
fn any_outcome_row_reads_back_or_is_named_corrupt() {
    on_a_server(
        "untrusted_outcomes",
        keyed(|task| outcome_row(task).boxed()),
        outcomes_agree,
    );
}

#[test]
fn any_run_end_row_reads_back_or_is_named_corrupt() {
    on_a_server(
        "untrusted_run_ends",
        keyed(|run| run_end_row(run).boxed()),
        run_ends_agree,
    );
}
