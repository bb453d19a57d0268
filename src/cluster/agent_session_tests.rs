//! The session's posts of reports.

use super::*;

fn registered(capacity: u32) -> AgentSession<u32> {
    let profile = AgentProfile::builder()
        .capacity(capacity)
        .build()
        .expect("a profile");
    let config = SessionConfig::builder().build().expect("a config");
    let mut session = AgentSession::new(AgentId::new(1), profile, config);
    let now = Instant::ZERO;
    assert!(matches!(
        session.poll_op(now),
        Some(AgentOp::Incarnate { .. })
    ));
    session.handle_reply(Ok(AgentReply::Incarnation(1)), now);
    assert!(matches!(session.poll_op(now), Some(AgentOp::Post { .. })));
    session.handle_reply(Ok(AgentReply::Posted { stopped: false }), now);
    session
}

fn claim(session: &mut AgentSession<u32>, tasks: u64) {
    claim_at(session, tasks, Instant::ZERO);
}

fn claim_at(session: &mut AgentSession<u32>, tasks: u64, now: Instant) {
    session.work_published();
    // Heartbeat and refusals are due first on a fresh registration.
    loop {
        match session.poll_op(now) {
            Some(AgentOp::Claim { .. }) => break,
            Some(AgentOp::Post { .. }) => {
                session.handle_reply(Ok(AgentReply::Posted { stopped: false }), now)
            }
            Some(AgentOp::TakeRefusals { .. }) => {
                session.handle_reply(Ok(AgentReply::Refusals(Vec::new())), now)
            }
            other => panic!("expected a claim, got {other:?}"),
        }
    }
    let rows = (1..=tasks)
        .map(|n| Assignment {
            task: TaskId::new(n),
            agent: AgentId::new(1),
            token: AttemptToken::new(n),
            attempt: 1,
            incarnation: 1,
            payload: 0,
        })
        .collect();
    session.handle_reply(
        Ok(AgentReply::Claimed {
            rows,
            stopped: false,
        }),
        now,
    );
}

/// Results beyond one post's limit go in the next posts, in the order
/// they finished, each post within the limit a store may hold an agent's
/// unread messages to; a failed post is sent again whole.
#[test]
fn many_results_are_reported_in_posts_of_at_most_the_limit() {
    let tasks = 2 * MAX_REPORTS_PER_POST as u64 + 88;
    let mut session = registered(tasks as u32);
    claim(&mut session, tasks);
    while let Some(work) = session.poll_work() {
        assert!(session.complete(work.task, work.token, 7));
    }
    let mut now = Instant::ZERO;
    let mut posted = Vec::new();
    let mut failed_once = false;
    while session.held() > 0 {
        now = now.saturating_add(std::time::Duration::from_secs(60));
        let Some(AgentOp::Report { reports, .. }) = session.poll_op(now) else {
            continue;
        };
        assert!(reports.len() <= MAX_REPORTS_PER_POST, "{}", reports.len());
        if !failed_once {
            failed_once = true;
            let cause = "54000 too many unread messages".to_string();
            session.handle_reply(Err(StoreFailure::Failed { cause }), now);
            continue;
        }
        posted.extend(reports.iter().map(|r| r.task_report().task.get()));
        session.handle_reply(Ok(AgentReply::Posted { stopped: false }), now);
    }
    assert_eq!(posted, (1..=tasks).collect::<Vec<_>>());
}

/// Drives `session` from `from` to `until` against a store that accepts
/// everything and has no work, and answers the times it read refusals.
fn refusal_reads(session: &mut AgentSession<u32>, from: Instant, until: Instant) -> Vec<Instant> {
    let mut now = from;
    let mut reads = Vec::new();
    while now < until {
        while let Some(op) = session.poll_op(now) {
            let reply = match op {
                AgentOp::TakeRefusals { .. } => {
                    reads.push(now);
                    AgentReply::Refusals(Vec::new())
                }
                AgentOp::Claim { .. } => AgentReply::Claimed {
                    rows: Vec::new(),
                    stopped: false,
                },
                AgentOp::Post { .. } | AgentOp::Report { .. } => {
                    AgentReply::Posted { stopped: false }
                }
                AgentOp::Incarnate { .. } => AgentReply::Incarnation(1),
            };
            session.handle_reply(Ok(reply), now);
        }
        now = session.poll_timeout().expect("a running session wakes");
    }
    reads
}

/// An agent that posts nothing but heartbeats reads its refusals ten
/// times less often than one that reports: twice after its registration
/// (the second catches a refusal consumed after the first read), then
/// every ten periods.
#[test]
fn an_idle_agent_reads_its_refusals_rarely() {
    let mut session = registered(2);
    let period = std::time::Duration::from_millis(500);
    let minute = Instant::ZERO.saturating_add(std::time::Duration::from_secs(60));
    let reads = refusal_reads(&mut session, Instant::ZERO, minute);
    let gaps: Vec<_> = reads
        .windows(2)
        .map(|w| w[1].saturating_duration_since(w[0]))
        .collect();
    assert_eq!(reads.first(), Some(&Instant::ZERO.saturating_add(period)));
    assert_eq!(gaps.first(), Some(&period), "{gaps:?}");
    assert!(
        gaps[1..]
            .iter()
            .all(|&g| g == period * QUIET_REFUSALS_PERIODS),
        "{gaps:?}"
    );
    assert_eq!(reads.len(), 13, "{reads:?}");
}

/// A report brings the next read of refusals within a period, however
/// long the idle pause that was due, and the read after it a period
/// later; then the agent is quiet again.
#[test]
fn a_report_brings_the_refusals_read_near() {
    let mut session = registered(1);
    let second = std::time::Duration::from_secs(1);
    let at = |s: u64| Instant::ZERO.saturating_add(second * s as u32);
    refusal_reads(&mut session, Instant::ZERO, at(10));
    claim_at(&mut session, 1, at(10));
    let work = session.poll_work().expect("claimed");
    assert!(session.finish(work.task, work.token, AttemptOutcome::Success));
    let reported = at(10);
    let Some(AgentOp::Report { .. }) = session.poll_op(reported) else {
        panic!("the report goes first");
    };
    session.handle_reply(Ok(AgentReply::Posted { stopped: false }), reported);
    let reads = refusal_reads(&mut session, reported, at(30));
    let period = std::time::Duration::from_millis(500);
    assert_eq!(reads[0], reported.saturating_add(period), "{reads:?}");
    assert_eq!(reads[1], reported.saturating_add(period * 2), "{reads:?}");
    assert_eq!(
        reads[2],
        reported.saturating_add(period * (2 + QUIET_REFUSALS_PERIODS)),
        "{reads:?}"
    );
}
