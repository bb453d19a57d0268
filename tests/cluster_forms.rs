//! The cluster's stored forms — journal entries, inbox messages, verdicts,
//! the status — read back from a fixture committed to the repository, so a
//! change that breaks a store's contents fails here; and the leader fed
//! hostile messages and corrupted journals, which must never panic it.
//!
//! The fixture records a small cluster run on the in-memory store: agents
//! registering (one twice: a new incarnation), heartbeats, reports,
//! submissions, a cancel, a forged report and a drain. Replaying its
//! journal must end in its recorded final state, and every form must read
//! back and write again to the same bytes. After a deliberate format
//! change (and a bump of `Entry::FORMAT`; keep the old fixture as
//! `cluster_forms_fN.json`), rewrite it with
//! `TASKWEAVE_WRITE_FIXTURES=1 cargo test --all-features --test cluster_forms`.

#![cfg(feature = "cluster")]

use std::path::PathBuf;
use std::time::Duration;

use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use taskweave::agent::AgentProfile;
use taskweave::cluster::{
    AgentOp, Auditor, ClientOp, ClientReply, Entry, Fault, JournalRow, MemStore, Message, Node,
    NodeConfig, Redrive, Role, Sender, Status, Store, Verdict,
};
use taskweave::scheduler::{
    AttemptOutcome, DeadLetterFilter, DispatcherConfig, Input, Snapshot, TaskReport, TaskSpec,
};
use taskweave::{AgentId, AttemptToken, Instant, Priority, TaskId};

fn dispatcher_config() -> DispatcherConfig {
    DispatcherConfig::builder()
        .heartbeats(Duration::from_millis(250), 8)
        .seed(7)
        .build()
        .unwrap()
}

/// What the fixture holds.
#[derive(Debug, Serialize, Deserialize)]
struct Recorded {
    format: u32,
    entries: Vec<(u64, Entry<String>)>,
    messages: Vec<(Sender, Message<String>)>,
    verdicts: Vec<Verdict>,
    status: Status,
    final_state: String,
}

fn fixture() -> PathBuf {
    fixture_named("cluster_forms.json")
}

fn fixture_named(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn agent(id: u64, incarnation: u64) -> Sender {
    Sender::Agent {
        agent: AgentId::new(id),
        incarnation,
    }
}

/// Runs one node until it has nothing to do at `now`.
fn settle(node: &mut Node<String>, store: &mut MemStore<String>, now: Instant) {
    while let Some(op) = node.poll_op(now) {
        let reply = store.node(op, now);
        node.handle_reply(reply, now);
    }
}

/// Posts `messages` one tick apart, letting the leader take each in.
fn feed(
    node: &mut Node<String>,
    store: &mut MemStore<String>,
    now: &mut Instant,
    messages: &[(Sender, Message<String>)],
) {
    for (sender, message) in messages {
        *now = now.saturating_add(Duration::from_millis(10));
        let posted = match sender {
            Sender::Client => store
                .client(ClientOp::Post(vec![message.clone()]), *now)
                .map(drop),
            Sender::Tenant(tenant) => store
                .tenant_client(*tenant, ClientOp::Post(vec![message.clone()]), *now)
                .map(drop),
            Sender::Agent { .. } => {
                let post = AgentOp::Post {
                    sender: *sender,
                    messages: vec![message.clone()],
                };
                store.agent(post, *now).map(drop)
            }
        };
        posted.expect("the in-memory store takes every post");
        settle(node, store, *now);
    }
}

fn record() -> Recorded {
    let profile = AgentProfile::builder()
        .capacity(2)
        .capability("gpu")
        .build()
        .unwrap();
    let report = |task, agent, token, outcome| {
        Message::Report(TaskReport {
            task: TaskId::new(task),
            agent: AgentId::new(agent),
            token: AttemptToken::new(token),
            outcome,
        })
    };
    let messages = vec![
        (
            agent(1, 1),
            Message::Register {
                profile: profile.clone(),
            },
        ),
        (
            agent(2, 2),
            Message::Register {
                profile: profile.clone(),
            },
        ),
        (
            Sender::Client,
            Message::Submit(vec![
                TaskSpec::new("a".to_string()).priority(Priority::P1),
                TaskSpec::new("b".to_string()).idempotency_key("b-1"),
                TaskSpec::new("c".to_string()),
            ]),
        ),
        (agent(1, 1), Message::Heartbeat),
        (
            agent(1, 1),
            Message::Completed {
                task: TaskId::new(0),
                token: AttemptToken::new(0),
                output: "result-a".to_string(),
            },
        ),
        (
            agent(2, 2),
            report(1, 2, 2, AttemptOutcome::failure("flaky")),
        ),
        (agent(2, 2), report(0, 1, 1, AttemptOutcome::Success)),
        (
            agent(1, 1),
            Message::Completed {
                task: TaskId::new(1),
                token: AttemptToken::new(2),
                output: "not agent 1's attempt".to_string(),
            },
        ),
        (Sender::Client, Message::Cancel(TaskId::new(2))),
        (agent(1, 3), Message::Register { profile }),
        (agent(1, 1), Message::Heartbeat),
        (Sender::Client, Message::Drain),
        (
            Sender::Client,
            Message::Submit(vec![TaskSpec::new("late".to_string())]),
        ),
    ];
    let mut store = MemStore::new();
    let config = NodeConfig::builder("recorder").build().unwrap();
    let mut node = Node::new(config, dispatcher_config()).unwrap();
    let mut now = Instant::from_secs(100);
    settle(&mut node, &mut store, now);
    feed(&mut node, &mut store, &mut now, &messages[..4]);
    // The store fails the leader for over a heartbeat interval: its next
    // intake excuses the agents' silence.
    for _ in 0..3 {
        now = now.saturating_add(Duration::from_millis(200));
        store.fail_next(Fault::Fail);
        settle(&mut node, &mut store, now);
    }
    feed(&mut node, &mut store, &mut now, &messages[4..]);
    // Let the retry and the heartbeats' timers run out, so the drained
    // cluster ends.
    for _ in 0..50 {
        now = now.saturating_add(Duration::from_millis(100));
        settle(&mut node, &mut store, now);
    }
    // The in-memory store numbers messages 1, 2, … in the order posted.
    let verdicts = (1..=messages.len() as u64)
        .map(|id| {
            store
                .verdict(id)
                .cloned()
                .expect("every message has a verdict")
        })
        .collect();
    let status = match store.client(ClientOp::Status, now) {
        Ok(ClientReply::Status(_, Some(status))) => status,
        other => panic!("{other:?}"),
    };
    Recorded {
        format: Entry::<String>::FORMAT,
        entries: store.journal().map(|row| (row.epoch, row.entry)).collect(),
        messages,
        verdicts,
        status,
        final_state: serde_json::to_string(&node.dispatcher().snapshot()).unwrap(),
    }
}

fn read() -> Recorded {
    read_from(fixture())
}

fn read_from(fixture: PathBuf) -> Recorded {
    let text = std::fs::read_to_string(&fixture).expect("the fixture exists");
    serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "{} no longer reads: {e}. A format change must bump Entry::FORMAT and rewrite \
             the fixture (TASKWEAVE_WRITE_FIXTURES=1)",
            fixture.display()
        )
    })
}

fn replay(entries: &[(u64, Entry<String>)]) -> Auditor<String> {
    let mut auditor = Auditor::new(dispatcher_config());
    for (seq, (epoch, entry)) in (1..).zip(entries) {
        auditor.apply(JournalRow {
            seq,
            epoch: *epoch,
            entry: entry.clone(),
            bytes: 0,
        });
    }
    auditor
}

#[test]
fn stored_cluster_forms_read_back_and_replay_as_recorded() {
    if std::env::var_os("TASKWEAVE_WRITE_FIXTURES").is_some() {
        let text = serde_json::to_string_pretty(&record()).unwrap();
        std::fs::write(fixture(), text + "\n").unwrap();
    }
    let stored = read();
    assert_eq!(stored.format, Entry::<String>::FORMAT);
    // Exact: each form writes back to the bytes it was read from.
    let text = std::fs::read_to_string(fixture()).unwrap();
    assert_eq!(serde_json::to_string_pretty(&stored).unwrap() + "\n", text);
    // The recording covers what it claims to.
    let refused = stored.verdicts.iter().filter(|v| v.is_refusal()).count();
    assert!(
        refused >= 2,
        "the forged report and the late submission: {:?}",
        stored.verdicts
    );
    assert!(
        stored
            .entries
            .iter()
            .any(|(_, e)| matches!(e, Entry::Drain { .. }))
    );
    assert!(
        stored
            .entries
            .iter()
            .any(|(_, e)| matches!(e, Entry::Input(Input::ExcuseSilence { .. })))
    );
    let completions: Vec<_> = stored
        .entries
        .iter()
        .filter(|(_, e)| matches!(e, Entry::Completed { .. }))
        .collect();
    assert_eq!(completions.len(), 2, "an accepted and a refused completion");
    assert!(stored.status.draining);
    let auditor = replay(&stored.entries);
    let report = auditor.report();
    assert!(report.is_clean(), "{:?}", report.violations);
    assert_eq!(
        serde_json::to_string(&auditor.dispatcher().snapshot()).unwrap(),
        stored.final_state,
        "the stored journal no longer replays to its recorded state"
    );
    // Today's code records the same history.
    let now = record();
    assert_eq!(
        now.final_state, stored.final_state,
        "the same messages lead elsewhere today"
    );
}

/// The forms before the current ones read back, and their journals replay
/// to the states recorded then: format 1 (every field of a task spec
/// written out, the final state a version-4 snapshot), format 2 (before
/// `ExcuseSilence`), format 3 (before `Entry::Completed`), format 4
/// (before `Entry::Run`, whose own fixture `tests/cluster_hosted_runs.rs`
/// reads), format 5 (before `RunCommand::Schedule`), format 6 with a
/// version-5 snapshot (before tenants), format 6 with a version-6
/// snapshot (before `Entry::Run`'s tenant), format 7 with a version-6
/// snapshot (before a snapshot's rows), format 7 with a version-7
/// snapshot (before `Entry::SkipIds`), and format 8 with a version-7
/// snapshot (before a queued task's state as `0`).
#[test]
fn older_formats_read_back_and_replay_to_their_recorded_states() {
    replays_to_its_recorded_state("cluster_forms_f1.json", 1, 4);
    replays_to_its_recorded_state("cluster_forms_f2.json", 2, 5);
    replays_to_its_recorded_state("cluster_forms_f3.json", 3, 5);
    replays_to_its_recorded_state("cluster_forms_f4.json", 4, 5);
    replays_to_its_recorded_state("cluster_forms_f5.json", 5, 5);
    replays_to_its_recorded_state("cluster_forms_f6_v5.json", 6, 5);
    replays_to_its_recorded_state("cluster_forms_f6.json", 6, 6);
    replays_to_its_recorded_state("cluster_forms_f7_v6.json", 7, 6);
    replays_to_its_recorded_state("cluster_forms_f7.json", 7, 7);
    replays_to_its_recorded_state("cluster_forms_f8_v7.json", 8, 7);
}

/// `Entry::SkipIds` (form 8), which no recording journals (only a leader
/// whose store went back in time writes it), has a pinned stored form.
#[test]
fn the_entry_that_skips_ids_has_a_pinned_stored_form() {
    let entry: Entry<String> = Entry::SkipIds {
        tasks: 3,
        runs: 41,
        now: taskweave::Instant::from_nanos(7),
    };
    let text = r#"{"SkipIds":{"tasks":3,"runs":41,"now":7}}"#;
    assert_eq!(serde_json::to_string(&entry).unwrap(), text);
    assert_eq!(serde_json::from_str::<Entry<String>>(text).unwrap(), entry);
}

/// The fixture `name`, of entry format `format` and snapshot `version`,
/// reads back, and its journal replays to its recorded state.
fn replays_to_its_recorded_state(name: &str, format: u32, version: u32) {
    assert!(Entry::<String>::READABLE.contains(&format));
    let old = read_from(fixture_named(name));
    assert_eq!(old.format, format);
    let auditor = replay(&old.entries);
    let report = auditor.report();
    assert!(report.is_clean(), "{:?}", report.violations);
    // The recorded state, read and written again by this build, against
    // the replay's; only the version it names differs.
    let recorded: Snapshot<String> = serde_json::from_str(&old.final_state).unwrap();
    assert_eq!(recorded.version(), version);
    let mut recorded = serde_json::to_value(&recorded).unwrap();
    let mut replayed = serde_json::to_value(auditor.dispatcher().snapshot()).unwrap();
    recorded["version"] = 0.into();
    replayed["version"] = 0.into();
    assert_eq!(
        replayed, recorded,
        "a format-{format} journal replays elsewhere"
    );
    // Its messages are today's, in the form written then, but for the
    // completions with outputs that format 4 added (today's recording
    // sends one where the older ones reported a plain success, and one
    // more).
    let now = record();
    let plain = |messages: &[(Sender, Message<String>)]| -> Vec<serde_json::Value> {
        messages
            .iter()
            .filter(|(_, m)| !matches!(m, Message::Completed { .. } | Message::Report(_)))
            .map(|m| serde_json::to_value(m).unwrap())
            .collect()
    };
    assert_eq!(plain(&old.messages), plain(&now.messages));
    let added = usize::from(format < 4);
    assert_eq!(
        old.messages.len() + added,
        now.messages.len(),
        "format 4 added one completion"
    );
}

/// A message from any sender, with arbitrary ids, tokens and outcomes.
fn any_message() -> impl Strategy<Value = (Sender, Message<String>)> {
    let sender = prop_oneof![
        Just(Sender::Client),
        (0u64..4, 0u64..4).prop_map(|(a, i)| agent(a, i)),
    ];
    let message = prop_oneof![
        (0u32..3).prop_map(|capacity| Message::Register {
            profile: AgentProfile::builder()
                .capacity(capacity.max(1))
                .build()
                .unwrap()
        }),
        Just(Message::Heartbeat),
        (0u64..6, 0u64..4, 0u64..8, any::<bool>()).prop_map(|(t, a, k, ok)| {
            Message::Report(TaskReport {
                task: TaskId::new(t),
                agent: AgentId::new(a),
                token: AttemptToken::new(k),
                outcome: if ok {
                    AttemptOutcome::Success
                } else {
                    AttemptOutcome::fatal("x")
                },
            })
        }),
        (0u64..6, 0u64..8, "[a-z]{0,3}").prop_map(|(t, k, output)| Message::Completed {
            task: TaskId::new(t),
            token: AttemptToken::new(k),
            output,
        }),
        proptest::collection::vec("[a-z]{0,3}", 0..4).prop_map(|payloads| {
            Message::Submit(payloads.into_iter().map(TaskSpec::new).collect())
        }),
        (0u64..6).prop_map(|t| Message::Cancel(TaskId::new(t))),
        (0u64..6).prop_map(|t| Message::Redrive(Redrive::Task(TaskId::new(t)))),
        proptest::option::of("[a-z]{0,3}").prop_map(|kind| {
            let filter = DeadLetterFilter::from_words(kind.as_deref(), None, None).unwrap();
            Message::Redrive(Redrive::Matching(filter))
        }),
        Just(Message::Drain),
    ];
    (sender, message)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(64)
    ))]

    /// Whatever agents and clients post, the leader answers every message
    /// with a verdict, never panics, and journals a history that audits
    /// clean.
    #[test]
    fn hostile_messages_get_verdicts_and_a_clean_journal(
        messages in proptest::collection::vec(any_message(), 1..40)
    ) {
        let mut store = MemStore::new();
        let config = NodeConfig::builder("n").build().unwrap();
        let mut node = Node::new(config, dispatcher_config()).unwrap();
        let mut now = Instant::from_secs(1);
        settle(&mut node, &mut store, now);
        feed(&mut node, &mut store, &mut now, &messages);
        now = now.saturating_add(Duration::from_millis(10));
        settle(&mut node, &mut store, now);
        prop_assert!(!matches!(node.role(), Role::Failed(_)));
        // Every message has its verdict, unless the node stopped a
        // drained, idle cluster, after which nothing is consumed.
        if node.role() != Role::Stopped {
            let missing: Vec<u64> = (1..=messages.len() as u64)
                .filter(|id| store.verdict(*id).is_none())
                .collect();
            prop_assert!(missing.is_empty(), "no verdict for {missing:?}");
        }
        let entries: Vec<(u64, Entry<String>)> = store.journal().map(|r| (r.epoch, r.entry)).collect();
        let report = replay(&entries).report();
        prop_assert!(report.is_clean(), "{:?}", report.violations);
    }

    /// A stored journal entry with one byte changed either does not decode
    /// or replays without a panic.
    #[test]
    fn corrupted_journal_entries_are_refused_or_replay_safely(
        index in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let stored = read();
        let (epoch, entry) = index.get(&stored.entries).clone();
        let mut text = serde_json::to_vec(&entry).unwrap();
        let i = at.index(text.len());
        text[i] = byte;
        if let Ok(corrupted) = serde_json::from_slice::<Entry<String>>(&text) {
            let mut entries = stored.entries.clone();
            let position = entries.iter().position(|e| e.1 == entry).unwrap();
            entries[position] = (epoch, corrupted);
            let _ = replay(&entries).report();
        }
    }
}
