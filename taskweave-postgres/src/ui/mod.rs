//! [`OperatorPage`]: the cluster's status as a web page, with forms that
//! cancel a task, redrive dead letters and drain the cluster
//! (`taskweave-pg ui`).

mod page;

use std::collections::VecDeque;
use std::io::{self, Read as _};
use std::net::{IpAddr, SocketAddr, TcpListener, ToSocketAddrs};
use std::time::Duration;

use taskweave::TaskId;
use taskweave::cluster::{MessageId, Redrive, StoreFailure, Verdict};
use taskweave::scheduler::DeadLetterFilter;

use crate::http::{Request, Response, Server, form_value};
use crate::{PgClient, PgError, wall_now};
use page::{View, render};

/// How long a cancel or a redrive waits for the leader's verdict before the page says
/// it is still pending.
const VERDICT_WAIT: Duration = Duration::from_secs(10);

/// How many action results the page remembers (each shown once it
/// redirects to it).
const REMEMBERED: usize = 16;

/// Why [`OperatorPage::serve`] could not start.
#[derive(Debug, thiserror::Error)]
pub enum OperatorPageError {
    /// The address cannot be bound.
    #[error(
        "cannot listen on {addr}: {source}. Remedy: give a free port on an address of this \
         host, e.g. 127.0.0.1:8080, or port 0 for any free one"
    )]
    Bind {
        /// The address asked for.
        addr: String,
        /// What the system said.
        source: io::Error,
    },
    /// The database could not be reached or read.
    #[error(transparent)]
    Connect(#[from] PgError),
}

/// The operator's page: the lease and its leader, the queues, every agent
/// and its health, dead letters and totals, unroutable tasks, hosted runs
/// and the logins that flood the inbox, as `taskweave-pg status` prints
/// them; and forms that cancel a task, redrive dead letters (one task's,
/// or every letter of a kind, a cause or a key) and drain the cluster,
/// posted through the page's own connection (what the login may do, it
/// may do here: a node login cancels any task, redrives and drains; a
/// submitter cancels its own tasks).
///
/// It serves `GET /` (the page), `GET /status.json` (the lease and
/// status as `status --json` prints them), `POST /cancel`,
/// `POST /redrive` and `POST /drain`, one connection at a time (a cancel
/// or a redrive waits up to 10 s for its verdict). A post must carry the token of the page it came from, and
/// every request must name the page by an IP address or `localhost` in its
/// `Host`: another site's page can neither post to it nor read it through
/// a rebound DNS name. Bind it to a loopback or private address: whoever
/// reaches it acts with its login.
///
/// ```no_run
/// use taskweave_postgres::ui::OperatorPage;
///
/// let db = "host=127.0.0.1 port=5432 user=node_login dbname=postgres";
/// let page = OperatorPage::serve("127.0.0.1:8080", db)?;
/// println!("open http://{}/", page.local_addr());
/// std::thread::park(); // it serves until dropped
/// # Ok::<(), taskweave_postgres::ui::OperatorPageError>(())
/// ```
#[derive(Debug)]
pub struct OperatorPage {
    server: Server,
}

impl OperatorPage {
    /// Connects to `conninfo` and serves the page on `addr` (port 0: any
    /// free port, see [`local_addr`](Self::local_addr)) from a new thread,
    /// until dropped. The connection reconnects by itself after a
    /// database restart; meanwhile the page says why it cannot read.
    ///
    /// # Errors
    ///
    /// [`OperatorPageError::Connect`] when the database cannot be
    /// reached or has no schema; [`OperatorPageError::Bind`] when `addr`
    /// cannot be bound.
    pub fn serve(
        addr: impl ToSocketAddrs + std::fmt::Display,
        conninfo: &str,
    ) -> Result<OperatorPage, OperatorPageError> {
        let client = PgClient::<serde_json::Value>::connect(conninfo)?;
        let mut state = PageState {
            client,
            token: new_token(),
            said: VecDeque::new(),
            next_said: 0,
            port: 0,
        };
        let named = addr.to_string();
        let bind_error = |source| OperatorPageError::Bind {
            addr: named.clone(),
            source,
        };
        let listener = TcpListener::bind(addr).map_err(bind_error)?;
        state.port = listener.local_addr().map_err(bind_error)?.port();
        let server = Server::serve(listener, "taskweave-ui", move |request| {
            state.answer(request)
        })
        .map_err(bind_error)?;
        Ok(OperatorPage { server })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }
}

/// The page's connection and memory.
struct PageState {
    client: PgClient<serde_json::Value>,
    /// The token every post must carry.
    token: String,
    /// The latest action results, by number.
    said: VecDeque<(u64, String)>,
    next_said: u64,
    /// The port it listens on, which a request's `Host` must name.
    port: u16,
}

impl PageState {
    fn answer(&mut self, request: Request) -> Response {
        if !self.names_this_page(request.host.as_deref()) {
            return Response::text(
                "421 Misdirected Request",
                "open the page by its IP address or localhost, with its port\n",
            );
        }
        match (request.method.as_str(), request.path.as_str()) {
            ("GET", "/") => self.page(&request.query),
            ("GET", "/status.json") => self.status_json(),
            ("POST", "/cancel" | "/redrive" | "/drain") => {
                let token = form_value(&request.body, "token").unwrap_or_default();
                if !same_secret(token.as_bytes(), self.token.as_bytes()) {
                    return Response::text(
                        "403 Forbidden",
                        "this form is not from this page (its token is wrong or missing): \
                         reload the page and post again\n",
                    );
                }
                let said = match request.path.as_str() {
                    "/cancel" => {
                        self.cancel(form_value(&request.body, "task").unwrap_or_default().trim())
                    }
                    "/redrive" => self.redrive(&request.body),
                    _ => self.drain(),
                };
                let number = self.remember(said);
                Response::see_other(format!("/?said={number}"))
            }
            (_, "/" | "/status.json" | "/cancel" | "/redrive" | "/drain") => {
                Response::text("405 Method Not Allowed", "not with this method\n")
            }
            _ => Response::text("404 Not Found", "no such page: try /\n"),
        }
    }

    /// Whether `host` names this page: an IP address or `localhost`, with
    /// its port (none for port 80).
    fn names_this_page(&self, host: Option<&str>) -> bool {
        names_page(host, self.port)
    }

    fn page(&mut self, query: &str) -> Response {
        let said = form_value(query.as_bytes(), "said")
            .and_then(|n| n.parse::<u64>().ok())
            .and_then(|n| self.said.iter().find(|(k, _)| *k == n))
            .map(|(_, text)| text.clone());
        let status = self.client.status().map_err(|e| e.to_string());
        let unread = self.client.unread_by_login(3).map_err(|e| e.to_string());
        let age_secs = status
            .as_ref()
            .ok()
            .and_then(|(_, s)| s.as_ref())
            .map_or(0.0, |s| {
                wall_now().saturating_duration_since(s.at).as_nanos() as f64 / 1e9
            });
        let body = render(&View {
            status: status.as_ref().map_err(String::as_str),
            unread: unread.as_deref().map_err(String::as_str),
            said: said.as_deref(),
            token: &self.token,
            age_secs,
        });
        Response {
            status: if status.is_ok() {
                "200 OK"
            } else {
                "503 Service Unavailable"
            },
            content_type: "text/html; charset=utf-8",
            location: None,
            body,
        }
    }

    fn status_json(&mut self) -> Response {
        match self.client.status_json() {
            Ok(json) => Response {
                status: "200 OK",
                content_type: "application/json",
                location: None,
                body: json.to_string(),
            },
            Err(e) => Response::text("503 Service Unavailable", format!("{e}\n")),
        }
    }

    /// Cancels `task` (`task-N` or `N`) and waits for the verdict.
    fn cancel(&mut self, task: &str) -> String {
        let id = match task.parse::<TaskId>() {
            Ok(id) => id,
            Err(e) => return e.to_string(),
        };
        let posted = self
            .client
            .cancel(id)
            .and_then(|message| self.verdict(message));
        match posted {
            Ok(Some(Verdict::Accepted)) => format!("{id}: cancelled"),
            Ok(Some(Verdict::Refused(why))) => format!("{id}: refused: {why}"),
            Ok(Some(other)) => format!("{id}: unexpected verdict {other:?}"),
            Ok(None) => no_verdict(&id.to_string(), "cancel"),
            Err(e) => needs_login(
                e,
                "a submitter login (its own tasks) or a node login may cancel",
            ),
        }
    }

    /// Redrives the letter of `task` (`task-N` or `N`), or, with no task,
    /// every letter the form's kind, cause and key match, and waits for
    /// the verdict.
    fn redrive(&mut self, form: &[u8]) -> String {
        let field = |name| form_value(form, name).map(|v| v.trim().to_owned());
        let field = |name| field(name).filter(|v| !v.is_empty());
        let which = match field("task") {
            Some(task) => match task.parse::<TaskId>() {
                Ok(id) => Redrive::Task(id),
                Err(e) => return e.to_string(),
            },
            None => {
                let (kind, cause, key) = (field("kind"), field("cause"), field("key"));
                match DeadLetterFilter::from_words(
                    kind.as_deref(),
                    cause.as_deref(),
                    key.as_deref(),
                ) {
                    Ok(filter) => Redrive::Matching(filter),
                    Err(e) => return e.to_string(),
                }
            }
        };
        let posted = self
            .client
            .redrive(which)
            .and_then(|message| self.verdict(message));
        match posted {
            Ok(Some(Verdict::Redriven { requeued, refused })) => {
                let mut said: Vec<String> = (requeued.iter())
                    .map(|(old, new)| format!("{old}: requeued as {new}"))
                    .chain(
                        refused
                            .iter()
                            .map(|(old, why)| format!("{old}: refused: {why}")),
                    )
                    .collect();
                if said.is_empty() {
                    said.push("no dead letter matched".into());
                }
                said.join("; ")
            }
            Ok(Some(Verdict::Refused(why))) => format!("refused: {why}"),
            Ok(Some(other)) => format!("unexpected verdict {other:?}"),
            Ok(None) => no_verdict("the redrive", "redrive"),
            Err(e) => needs_login(e, "only a node login may redrive"),
        }
    }

    /// The verdict on `message`, waiting up to [`VERDICT_WAIT`].
    fn verdict(&mut self, message: MessageId) -> Result<Option<Verdict>, StoreFailure> {
        (self.client.wait_verdicts(&[message], VERDICT_WAIT)).map(|mut v| v.pop().flatten())
    }

    /// Posts a drain.
    fn drain(&mut self) -> String {
        match self.client.drain() {
            Ok(_) => "drain posted: no more submissions; every node and agent stops once the \
                      work in flight ends"
                .to_string(),
            Err(e) => needs_login(e, "only a node login may drain"),
        }
    }

    /// Keeps `said` under a new number, forgetting the oldest past
    /// [`REMEMBERED`].
    fn remember(&mut self, said: String) -> u64 {
        let number = self.next_said;
        self.next_said += 1;
        if self.said.len() == REMEMBERED {
            self.said.pop_front();
        }
        self.said.push_back((number, said));
        number
    }
}

/// Whether the `Host` header `host` names a page on `port`: an IP address
/// (IPv6 in brackets) or `localhost`, with the port (none for port 80).
fn names_page(host: Option<&str>, port: u16) -> bool {
    let Some(host) = host else {
        return false;
    };
    let (name, given) = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((ip, tail)) => (ip, tail.strip_prefix(':')),
            None => return false,
        },
        None => match host.rsplit_once(':') {
            Some((name, given)) => (name, Some(given)),
            None => (host, None),
        },
    };
    let port_named = match given {
        Some(given) => given.parse() == Ok(port),
        None => port == 80,
    };
    port_named && (name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok())
}

/// Whether `a` and `b` are equal, in a time that does not depend on where
/// they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// What the page says of a message with no verdict yet.
fn no_verdict(what: &str, message: &str) -> String {
    format!(
        "{what}: no verdict within {VERDICT_WAIT:?}: is a node running? (the {message} stays \
         posted and applies when a leader reads it)"
    )
}

/// `error` as the page says it: for want of a privilege, with who may.
fn needs_login(error: impl std::fmt::Display, who_may: &str) -> String {
    let text = error.to_string();
    if crate::store::refused_for_want_of_privilege(&text) {
        format!("{text}; this page's login may not do that: {who_may}")
    } else {
        text
    }
}

/// 16 random bytes as hex, from the system's generator; the clock's
/// nanoseconds and the process id where it cannot be read.
fn new_token() -> String {
    let mut bytes = [0u8; 16];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_err() {
        let seed = wall_now().as_nanos() ^ (u64::from(std::process::id()) << 32);
        bytes[..8].copy_from_slice(&seed.to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_who_may_only_for_a_privilege_refusal() {
        let refused = "42501 permission denied for table journal";
        let said = needs_login(refused, "only a node login may drain");
        assert!(said.starts_with(refused) && said.ends_with("only a node login may drain"));
        let unknown = "task-42501 is not a live task";
        assert_eq!(needs_login(unknown, "only a node login may drain"), unknown);
    }

    #[test]
    fn only_an_address_or_localhost_with_the_port_names_the_page() {
        for (host, port) in [
            ("127.0.0.1:8080", 8080),
            ("localhost:8080", 8080),
            ("LOCALHOST:8080", 8080),
            ("[::1]:8080", 8080),
            ("10.0.0.7:8080", 8080),
            ("127.0.0.1", 80),
            ("[::1]", 80),
        ] {
            assert!(names_page(Some(host), port), "{host} on {port}");
        }
        for (host, port) in [
            ("evil.example:8080", 8080),
            ("127.0.0.1.evil.example:8080", 8080),
            ("127.0.0.1:8081", 8080),
            ("127.0.0.1", 8080),
            ("[::1", 8080),
            ("", 8080),
            (":8080", 8080),
        ] {
            assert!(!names_page(Some(host), port), "{host} on {port}");
        }
        assert!(!names_page(None, 8080));
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"ab"));
        assert!(!same_secret(b"", b"a"));
    }
}
