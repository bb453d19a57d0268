//! The little HTTP/1.1 the metrics endpoint and the operator's page speak:
//! one request per connection, bounded in size and time, answered from a
//! thread of their own. A connection has 5 s to send its request and 5 s
//! to take the answer, however it paces its bytes: a slow or silent client
//! holds the others back that long at most.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The most of a request's line and headers read.
const MAX_HEAD: usize = 8 * 1024;

/// The most of a request's body read (a form of a few fields).
const MAX_BODY: usize = 4 * 1024;

/// The most read and dropped after the answer.
const MAX_DRAINED: u64 = 64 * 1024;

/// How long a connection may take to send its request, and then to take
/// the answer.
pub(crate) const CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);

/// A request as read.
#[derive(Debug, Default)]
pub(crate) struct Request {
    /// `GET`, `POST`, …; empty if the client sent no request line.
    pub(crate) method: String,
    /// The path, without the query.
    pub(crate) path: String,
    /// The query, without the `?`.
    pub(crate) query: String,
    /// The `Host` header, if any.
    pub(crate) host: Option<String>,
    /// The body (at most [`MAX_BODY`] bytes).
    pub(crate) body: Vec<u8>,
}

/// An answer.
#[derive(Debug)]
pub(crate) struct Response {
    /// Status code and reason, e.g. `200 OK`.
    pub(crate) status: &'static str,
    /// Its `Content-Type`.
    pub(crate) content_type: &'static str,
    /// A `Location` to go to (a redirect).
    pub(crate) location: Option<String>,
    /// The body.
    pub(crate) body: String,
}

impl Response {
    /// A plain-text answer.
    pub(crate) fn text(status: &'static str, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            location: None,
            body: body.into(),
        }
    }

    /// A `303 See Other` to `location`.
    pub(crate) fn see_other(location: String) -> Response {
        Response {
            status: "303 See Other",
            content_type: "text/plain; charset=utf-8",
            location: Some(location),
            body: String::new(),
        }
    }
}

/// A listener answering each connection with `handle`, on a thread of its
/// own, until dropped.
#[derive(Debug)]
pub(crate) struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Answers every request on `listener` with `handle`, one connection
    /// at a time.
    pub(crate) fn serve(
        listener: TcpListener,
        name: &str,
        mut handle: impl FnMut(Request) -> Response + Send + 'static,
    ) -> io::Result<Server> {
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                for stream in listener.incoming() {
                    if stopped.load(Ordering::Relaxed) {
                        return;
                    }
                    // A connection that failed, or a client that left
                    // early, concerns that client alone; a listener that
                    // cannot accept (out of file descriptors) is asked
                    // again after a pause, not in a spin.
                    match stream {
                        Ok(stream) => {
                            let _ = answer(stream, &mut handle);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })?;
        Ok(Server {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accepting thread, which sees the flag and returns.
        let woke = TcpStream::connect_timeout(&self.addr, CONNECTION_TIMEOUT).is_ok();
        if let Some(thread) = self.thread.take().filter(|_| woke) {
            let _ = thread.join();
        }
    }
}

/// A connection whose reads and writes share one deadline.
struct Connection {
    stream: TcpStream,
    deadline: Instant,
}

impl Connection {
    /// The time left, or a timeout once it is spent.
    fn left(&self) -> io::Result<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the connection's time is spent",
            ));
        }
        Ok(left)
    }
}

impl Read for Connection {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.left()?;
        self.stream.set_read_timeout(Some(left))?;
        self.stream.read(buf)
    }
}

impl Write for Connection {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let left = self.left()?;
        self.stream.set_write_timeout(Some(left))?;
        self.stream.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

/// Reads one request from `stream` and writes `handle`'s answer.
fn answer(stream: TcpStream, handle: &mut impl FnMut(Request) -> Response) -> io::Result<()> {
    let mut connection = Connection {
        stream,
        deadline: Instant::now() + CONNECTION_TIMEOUT,
    };
    let response = match read_request(&mut connection)? {
        Ok(request) => handle(request),
        Err(refusal) => refusal,
    };
    // The answer's own time, however long the handler took.
    connection.deadline = Instant::now() + CONNECTION_TIMEOUT;
    let location = response
        .location
        .as_deref()
        .map_or_else(String::new, |to| format!("Location: {to}\r\n"));
    let head = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{location}\
         Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n\
         X-Frame-Options: DENY\r\nContent-Security-Policy: frame-ancestors 'none'\r\n\
         Connection: close\r\n\r\n",
        response.status,
        response.content_type,
        response.body.len()
    );
    connection.write_all(head.as_bytes())?;
    connection.write_all(response.body.as_bytes())?;
    connection.flush()?;
    // A close with unread bytes would reset the connection, and the client
    // could lose the answer: read what it still sends, to a bound.
    connection.stream.shutdown(Shutdown::Write)?;
    io::copy(&mut (&mut connection).take(MAX_DRAINED), &mut io::sink()).map(drop)
}

/// The request on `connection`, or the answer refusing it: past
/// [`MAX_HEAD`] or [`MAX_BODY`]. It holds at most `MAX_HEAD` + 1 KiB of
/// head and `MAX_BODY` of body, whatever the peer sends.
fn read_request(connection: &mut impl Read) -> io::Result<Result<Request, Response>> {
    let mut read = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    let head_end = loop {
        if let Some(at) = read.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        if read.len() >= MAX_HEAD {
            return Ok(Err(Response::text(
                "431 Request Header Fields Too Large",
                format!("a request's line and headers are at most {MAX_HEAD} bytes\n"),
            )));
        }
        let n = connection.read(&mut chunk)?;
        if n == 0 {
            break read.len();
        }
        read.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&read[..head_end.min(read.len())]).into_owned();
    let mut body = read.get(head_end + 4..).unwrap_or_default().to_vec();
    let mut lines = head.lines();
    let mut parts = lines.next().unwrap_or("").split(' ');
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut request = Request {
        method,
        path: path.to_string(),
        query: query.to_string(),
        ..Request::default()
    };
    let mut length = 0usize;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("host") {
            request.host = Some(value.to_string());
        } else if name.eq_ignore_ascii_case("content-length") {
            match value.parse::<usize>() {
                Ok(n) if n <= MAX_BODY => length = n,
                _ => {
                    return Ok(Err(Response::text(
                        "413 Content Too Large",
                        format!("a request's body is at most {MAX_BODY} bytes\n"),
                    )));
                }
            }
        }
    }
    while body.len() < length {
        let n = connection.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    request.body = body;
    Ok(Ok(request))
}

/// The value of `name` in an `application/x-www-form-urlencoded` body or
/// query, decoded; `None` if absent or not UTF-8.
pub(crate) fn form_value(form: &[u8], name: &str) -> Option<String> {
    form.split(|&b| b == b'&').find_map(|pair| {
        let (key, value) = match pair.iter().position(|&b| b == b'=') {
            Some(at) => (&pair[..at], &pair[at + 1..]),
            None => (pair, &[][..]),
        };
        (percent_decode(key)? == name)
            .then(|| percent_decode(value))
            .flatten()
    })
}

/// `text` with `+` as a space and `%XX` as its byte; `None` if the bytes
/// are not UTF-8. A `%` not followed by two hex digits stays as it is.
fn percent_decode(text: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match text[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < text.len() => match (hex(text[i + 1]), hex(text[i + 2])) {
                (Some(high), Some(low)) => {
                    out.push((high * 16 + low) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `text` as a form value: every byte but letters and digits as %XX.
    fn percent_encoded(text: &str) -> String {
        text.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    }

    /// A request's bytes: any, or a well-formed head with some noise.
    fn request_bytes() -> impl Strategy<Value = Vec<u8>> {
        let noise = proptest::collection::vec(any::<u8>(), 0..12_000);
        let formed = (
            "(GET|POST|PUT) /[a-z.?=&]{0,20}",
            proptest::collection::vec("[A-Za-z-]{1,12}: [ -~]{0,40}", 0..8),
            0usize..10_000,
            proptest::collection::vec(any::<u8>(), 0..6_000),
        )
            .prop_map(|(line, headers, length, body)| {
                let mut bytes = format!(
                    "{line} HTTP/1.1\r\n{}Content-Length: {length}\r\n\r\n",
                    headers
                        .iter()
                        .map(|h| format!("{h}\r\n"))
                        .collect::<String>()
                )
                .into_bytes();
                bytes.extend(body);
                bytes
            });
        prop_oneof![noise, formed]
    }

    proptest! {
        /// Whatever a peer sends, the reader ends (its bytes run out),
        /// holds a bounded body, and refuses what is over a limit with an
        /// answer instead of a panic.
        #[test]
        fn any_bytes_read_as_a_bounded_request_or_a_refusal(bytes in request_bytes()) {
            let mut peer: &[u8] = &bytes;
            match read_request(&mut peer) {
                Ok(Ok(request)) => {
                    prop_assert!(request.body.len() <= MAX_BODY);
                    // An invalid byte reads as U+FFFD, three bytes.
                    let head = request.method.len() + request.path.len() + request.query.len();
                    prop_assert!(head <= 3 * bytes.len().min(MAX_HEAD + 1024));
                }
                Ok(Err(refusal)) => {
                    prop_assert!(refusal.status.starts_with("413") || refusal.status.starts_with("431"));
                }
                Err(e) => prop_assert!(false, "a slice cannot fail to read: {}", e),
            }
        }

        /// Any text survives percent-encoding and decoding as a form
        /// value, and any bytes decode without a panic.
        #[test]
        fn form_values_round_trip(value in "\\PC{0,40}", noise in proptest::collection::vec(any::<u8>(), 0..200)) {
            let form = format!("a=1&v={}&z=", percent_encoded(&value));
            prop_assert_eq!(form_value(form.as_bytes(), "v"), Some(value));
            let _ = form_value(&noise, "v");
        }
    }

    #[test]
    fn forms_decode() {
        let form = b"task=task-3&note=a+b%21&bad=%ZZ&empty=&flag";
        assert_eq!(form_value(form, "task").as_deref(), Some("task-3"));
        assert_eq!(form_value(form, "note").as_deref(), Some("a b!"));
        assert_eq!(form_value(form, "bad").as_deref(), Some("%ZZ"));
        assert_eq!(form_value(form, "empty").as_deref(), Some(""));
        assert_eq!(form_value(form, "flag").as_deref(), Some(""));
        assert_eq!(form_value(form, "absent"), None);
        assert_eq!(form_value(b"x=%FF", "x"), None, "not UTF-8");
        assert_eq!(form_value(b"x=%4", "x").as_deref(), Some("%4"));
        assert_eq!(form_value(b"m=%C3%BC%26%3C", "m").as_deref(), Some("ü&<"));
    }
}
