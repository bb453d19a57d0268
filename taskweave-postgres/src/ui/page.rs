//! The operator's page as HTML: what `taskweave-pg status` prints, and the
//! forms that cancel a task, redrive dead letters and drain the cluster.
//! Every figure has an `id` (a browser test reads them); every text the
//! cluster or a peer wrote (names, reasons, statuses) is escaped.

use std::fmt::Write as _;

use taskweave::cluster::{Lease, Status};

/// What the page shows.
pub(super) struct View<'a> {
    /// The lease and the leader's latest status, or why they could not be
    /// read.
    pub(super) status: Result<&'a (Lease, Option<Status>), &'a str>,
    /// The logins with the most unread inbox messages, or why not known.
    pub(super) unread: Result<&'a [(String, u64)], &'a str>,
    /// The result of the action the operator took last, if any.
    pub(super) said: Option<&'a str>,
    /// The form token that proves a post came from this page.
    pub(super) token: &'a str,
    /// How old the status is, in seconds.
    pub(super) age_secs: f64,
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;max-width:60em}\
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}\
#said{background:#ffd;padding:.5em}.warn{color:#a00}form{margin:.5em 0}";

/// The page.
pub(super) fn render(view: &View<'_>) -> String {
    let mut html = String::with_capacity(4096);
    let _ = write!(
        html,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>taskweave cluster</title><style>{STYLE}</style></head><body>\
         <h1>taskweave cluster</h1><p><a href=\"/\">reload</a> · \
         <a href=\"/status.json\">status.json</a></p>"
    );
    if let Some(said) = view.said {
        let _ = write!(html, "<p id=\"said\">{}</p>", escape(said));
    }
    match view.status {
        Ok((lease, status)) => {
            lease_section(&mut html, lease);
            unread_section(&mut html, view.unread);
            match status {
                Some(status) => status_sections(&mut html, status, view.age_secs),
                None => html.push_str("<p id=\"no-status\">no status published yet</p>"),
            }
        }
        Err(why) => {
            let _ = write!(
                html,
                "<p id=\"unreadable\" class=\"warn\">cannot read the status: {}</p>",
                escape(why)
            );
        }
    }
    actions(&mut html, view.token);
    html.push_str("</body></html>");
    html
}

fn lease_section(html: &mut String, lease: &Lease) {
    let state = match (lease.stopped, lease.held) {
        (true, _) => "the cluster was drained and stopped",
        (false, true) => "lease held",
        (false, false) => "lease expired: no leader right now",
    };
    let _ = write!(
        html,
        "<h2>Leader</h2><p>epoch <span id=\"epoch\">{}</span>, leader \
         <span id=\"leader\">{}</span> (<span id=\"lease-state\">{state}</span>)</p>",
        lease.epoch,
        escape(&lease.holder)
    );
}

fn unread_section(html: &mut String, unread: Result<&[(String, u64)], &str>) {
    html.push_str("<p id=\"unread\">inbox unread by login: ");
    match unread {
        Ok([]) => html.push_str("none"),
        Ok(logins) => {
            let named: Vec<String> = logins
                .iter()
                .map(|(login, n)| format!("{} {n}", escape(login)))
                .collect();
            html.push_str(&named.join(", "));
        }
        Err(why) => {
            let _ = write!(html, "not readable with this login ({})", escape(why));
        }
    }
    html.push_str("</p>");
}

fn status_sections(html: &mut String, s: &Status, age_secs: f64) {
    let _ = write!(
        html,
        "<p>published by {} at journal entry <span id=\"seq\">{}</span>, {age_secs:.1} s ago{}</p>",
        escape(&s.leader),
        s.seq,
        if s.draining {
            " <strong id=\"draining\">DRAINING</strong>"
        } else {
            ""
        }
    );
    html.push_str("<h2>Queues</h2><table id=\"queues\"><tr>");
    for level in 0..s.queued.len() {
        let _ = write!(html, "<th>P{level}</th>");
    }
    html.push_str("<th>delayed</th><th>in flight</th><th>oldest queued</th></tr><tr>");
    for (level, queued) in s.queued.iter().enumerate() {
        let _ = write!(html, "<td id=\"queued-P{level}\">{queued}</td>");
    }
    let oldest = s.oldest_queued_ms.map_or_else(
        || "none".to_string(),
        |ms| format!("{:.1} s", ms as f64 / 1_000.0),
    );
    let _ = write!(
        html,
        "<td id=\"delayed\">{}</td><td id=\"in-flight\">{}</td><td>{oldest}</td></tr></table>",
        s.delayed, s.in_flight
    );
    let _ = write!(
        html,
        "<h2>Agents: <span id=\"agent-count\">{}</span></h2><table id=\"agents\">\
         <tr><th>agent</th><th>health</th><th>load</th><th>incarnation</th></tr>",
        s.agents.len()
    );
    for a in &s.agents {
        let _ = write!(
            html,
            "<tr data-agent=\"{0}\"><td>{0}</td><td class=\"health\">{1}</td>\
             <td>{2}/{3}</td><td>{4}</td></tr>",
            a.agent.get(),
            escape(&a.status),
            a.load,
            a.capacity,
            a.incarnation
        );
    }
    let _ = write!(
        html,
        "</table><h2>Tasks</h2><p>dead letters <span id=\"dead-letters\">{}</span>; totals: \
         submitted <span id=\"submitted\">{}</span>, completed <span id=\"completed\">{}</span>, \
         dead-lettered <span id=\"dead-lettered\">{}</span>, expired \
         <span id=\"expired\">{}</span></p>",
        s.dead_letters, s.submitted, s.completed, s.dead_lettered, s.expired
    );
    for u in &s.unroutable {
        let _ = write!(
            html,
            "<p class=\"warn unroutable\">UNROUTABLE: {} queued task(s), first task-{}: {}; \
             start an agent that can take them, or cancel them</p>",
            u.tasks,
            u.first.get(),
            escape(&u.reason)
        );
    }
    if let Some(inbox) = &s.inbox {
        let _ = write!(
            html,
            "<p>inbox: {} messages read since the previous status, {} of them from {}</p>",
            inbox.messages,
            inbox.busiest_messages,
            escape(&inbox.busiest.to_string())
        );
    }
    if let Some(runs) = &s.runs {
        let _ = write!(
            html,
            "<h2>Runs</h2><p>running <span id=\"runs-running\">{}</span>, compensating \
             <span id=\"runs-compensating\">{}</span>; finished (remembered) \
             <span id=\"runs-finished\">{}</span>; workflows registered \
             <span id=\"workflows\">{}</span></p>",
            runs.running, runs.compensating, runs.finished, runs.workflows
        );
    }
    for p in &s.pools {
        let _ = write!(
            html,
            "<p class=\"pool\">pool {}: queued {}, in flight {}, {} agents with {} slots; \
             wants {} agents</p>",
            escape(&p.pool),
            p.queued,
            p.in_flight,
            p.agents,
            p.capacity,
            p.desired_agents
        );
    }
}

fn actions(html: &mut String, token: &str) {
    let _ = write!(
        html,
        "<h2>Actions</h2>\
         <form method=\"post\" action=\"/cancel\"><input type=\"hidden\" name=\"token\" \
         value=\"{token}\"><label>cancel task <input id=\"cancel-task\" name=\"task\" \
         placeholder=\"task-N\" required></label> <button id=\"cancel-submit\">cancel</button>\
         </form>\
         <form method=\"post\" action=\"/redrive\"><input type=\"hidden\" name=\"token\" \
         value=\"{token}\">redrive dead letters: <label>task <input id=\"redrive-task\" \
         name=\"task\" placeholder=\"task-N\"></label> or every letter of <label>kind \
         <input id=\"redrive-kind\" name=\"kind\"></label> <label>cause <select \
         id=\"redrive-cause\" name=\"cause\"><option value=\"\">any</option><option>retries-exhausted</option><option>non-retryable</option><option>unroutable</option><option>expired</option>\
         </select></label> <label>key <input id=\"redrive-key\" name=\"key\"></label> \
         <button id=\"redrive-submit\">redrive</button> (each runs again as a new task)</form>\
         <form method=\"post\" action=\"/drain\"><input type=\"hidden\" name=\"token\" \
         value=\"{token}\"><button id=\"drain-submit\">drain the cluster</button> (no more \
         submissions; every node and agent stops once the work in flight ends)</form>\
         <p>Cancelling a task needs a submitter's login (its own tasks) or a node login; \
         redriving and draining need a node login.</p>"
    );
}

/// `text` safe inside HTML text and attribute values.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: &str) -> Lease {
        Lease {
            epoch: 3,
            holder: holder.to_string(),
            held: true,
            left: std::time::Duration::from_millis(800),
            stopped: false,
        }
    }

    #[test]
    fn what_a_peer_wrote_is_escaped() {
        let hostile = "<script>alert('x')</script>\"&";
        let status = (lease(hostile), None);
        let unread = [(hostile.to_string(), 5)];
        let html = render(&View {
            status: Ok(&status),
            unread: Ok(&unread),
            said: Some(hostile),
            token: "t",
            age_secs: 0.0,
        });
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&quot;&amp;"),
            "{html}"
        );
        assert!(html.contains("<span id=\"epoch\">3</span>"), "{html}");
        assert!(html.contains("no status published yet"), "{html}");
    }

    #[test]
    fn an_unreadable_status_says_why_and_keeps_the_actions() {
        let html = render(&View {
            status: Err("connection refused"),
            unread: Err("not asked"),
            said: None,
            token: "abc",
            age_secs: 0.0,
        });
        assert!(
            html.contains("cannot read the status: connection refused"),
            "{html}"
        );
        assert!(html.contains("name=\"token\" value=\"abc\""), "{html}");
        assert!(!html.contains("id=\"said\""), "{html}");
    }
}
