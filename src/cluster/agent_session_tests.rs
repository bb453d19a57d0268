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
    let now = Instant::ZERO;
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
