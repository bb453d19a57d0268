//! [`MetricsEndpoint`]: a registry served over HTTP for Prometheus.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use prometheus_client::registry::Registry;

/// The most of a request read: a scrape's request line and headers are a
/// few hundred bytes.
const MAX_REQUEST: usize = 8 * 1024;

/// The most read and dropped after the answer.
const MAX_DRAINED: u64 = 64 * 1024;

/// How long a connection may take to send its request, and to read the
/// answer.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);

/// The content type of the OpenMetrics text exposition, which Prometheus
/// reads.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serves a [`Registry`] on `GET /metrics`, on a thread of its own, until
/// dropped.
///
/// Connections are answered one at a time, each given at most 5 s to
/// send a request of at most 8 KiB: a scrape is a small request every few
/// seconds, and a client that sends more, or nothing, is answered or
/// dropped without holding the others for longer. Any other path is a
/// 404, any other method a 405. Bind it to a loopback or private address:
/// the figures are not secret, but they are not access-controlled either.
///
/// ```no_run
/// use prometheus_client::registry::Registry;
/// use taskweave_postgres::metrics::{MetricsEndpoint, NodeMetrics};
///
/// let mut registry = Registry::default();
/// let metrics = NodeMetrics::register(&mut registry);
/// let endpoint = MetricsEndpoint::serve("127.0.0.1:9464", registry)?;
/// println!("scrape http://{}/metrics", endpoint.local_addr());
/// // PgNode::new(...)?.observe_with(metrics).run(...)
/// # drop(metrics);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct MetricsEndpoint {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsEndpoint {
    /// Binds `addr` (port 0: any free port, see
    /// [`local_addr`](Self::local_addr)) and serves `registry` from a new
    /// thread.
    ///
    /// # Errors
    ///
    /// The address cannot be bound (in use, not this host's, no
    /// permission), or no thread could be started.
    pub fn serve(addr: impl ToSocketAddrs, registry: Registry) -> io::Result<MetricsEndpoint> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("taskweave-metrics".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    if stopped.load(Ordering::Relaxed) {
                        return;
                    }
                    // A connection that failed, or a client that left
                    // early, concerns that client alone.
                    if let Ok(stream) = stream {
                        let _ = answer(stream, &registry);
                    }
                }
            })?;
        Ok(MetricsEndpoint {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsEndpoint {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accepting thread, which sees the flag and returns.
        let woke = TcpStream::connect_timeout(&self.addr, CONNECTION_TIMEOUT).is_ok();
        if let Some(thread) = self.thread.take().filter(|_| woke) {
            let _ = thread.join();
        }
    }
}

/// Reads one request from `stream` and answers it.
fn answer(mut stream: TcpStream, registry: &Registry) -> io::Result<()> {
    stream.set_read_timeout(Some(CONNECTION_TIMEOUT))?;
    stream.set_write_timeout(Some(CONNECTION_TIMEOUT))?;
    let (status, content_type, body) = match read_request_line(&mut stream)? {
        Request::Line(line) => respond(&line, registry),
        Request::TooLarge => (
            "431 Request Header Fields Too Large",
            "text/plain",
            format!("a request is at most {MAX_REQUEST} bytes\n"),
        ),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    stream.flush()?;
    // A close with unread bytes would reset the connection, and the client
    // could lose the answer: read what it still sends, to a bound.
    stream.shutdown(Shutdown::Write)?;
    io::copy(&mut (&stream).take(MAX_DRAINED), &mut io::sink()).map(drop)
}

/// What a client sent.
enum Request {
    /// Its request line (the headers were read and dropped).
    Line(String),
    /// More than [`MAX_REQUEST`] bytes without the end of the headers.
    TooLarge,
}

/// Reads up to the blank line that ends the headers, at most
/// [`MAX_REQUEST`] bytes.
fn read_request_line(stream: &mut TcpStream) -> io::Result<Request> {
    let mut request = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        if request.len() >= MAX_REQUEST {
            return Ok(Request::TooLarge);
        }
        let read = stream.read(&mut chunk)?;
        if read == 0 {
            break;
        }
        request.extend_from_slice(&chunk[..read]);
    }
    let line = request.split(|&b| b == b'\n').next().unwrap_or_default();
    Ok(Request::Line(
        String::from_utf8_lossy(line).trim_end().to_string(),
    ))
}

/// The status, content type and body answering `request_line`.
fn respond(request_line: &str, registry: &Registry) -> (&'static str, &'static str, String) {
    let mut parts = request_line.split(' ');
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    if method != "GET" {
        return (
            "405 Method Not Allowed",
            "text/plain",
            "only GET /metrics is served\n".to_string(),
        );
    }
    if path != "/metrics" {
        return (
            "404 Not Found",
            "text/plain",
            "only GET /metrics is served\n".to_string(),
        );
    }
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, registry) {
        Ok(()) => ("200 OK", CONTENT_TYPE, body),
        Err(_) => (
            "500 Internal Server Error",
            "text/plain",
            "the metrics could not be encoded\n".to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;

    /// Sends `request` to `addr`; the answer.
    fn ask(addr: SocketAddr, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(addr).unwrap();
        // A client that sends too much may see its write refused once the
        // server answered and closed: the answer is still there to read.
        let _ = stream.write_all(request);
        let _ = stream.shutdown(Shutdown::Write);
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    }

    fn endpoint() -> (MetricsEndpoint, Counter) {
        let mut registry = Registry::default();
        let counter = Counter::default();
        registry.register("probe", "A probe", counter.clone());
        (
            MetricsEndpoint::serve("127.0.0.1:0", registry).unwrap(),
            counter,
        )
    }

    #[test]
    fn a_scrape_reads_the_registry_as_it_is_now() {
        let (endpoint, counter) = endpoint();
        counter.inc_by(41);
        counter.inc();
        let answer = ask(
            endpoint.local_addr(),
            b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
        );
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.contains(CONTENT_TYPE), "{answer}");
        assert!(answer.contains("\nprobe_total 42\n"), "{answer}");
        assert!(answer.ends_with("# EOF\n"), "{answer}");
    }

    #[test]
    fn anything_but_a_scrape_is_refused_and_the_endpoint_goes_on() {
        let (endpoint, _counter) = endpoint();
        let addr = endpoint.local_addr();
        let refusals: [(&[u8], &str); 5] = [
            (b"GET / HTTP/1.1\r\n\r\n", "404"),
            (b"POST /metrics HTTP/1.1\r\n\r\n", "405"),
            (b"\xff\xfe garbage\r\n\r\n", "405"),
            (&[b'a'; 20_000], "431"),
            (b"", "405"),
        ];
        for (request, status) in refusals {
            let answer = ask(addr, request);
            assert!(
                answer.starts_with(&format!("HTTP/1.1 {status}")),
                "{:?}: {answer}",
                String::from_utf8_lossy(&request[..request.len().min(40)])
            );
        }
        let answer = ask(addr, b"GET /metrics?x=1 HTTP/1.0\r\n\r\n");
        assert!(answer.contains("probe_total 0"), "{answer}");
    }

    #[test]
    fn a_dropped_endpoint_frees_its_address() {
        let (endpoint, _counter) = endpoint();
        let addr = endpoint.local_addr();
        drop(endpoint);
        TcpListener::bind(addr).expect("the address is free again");
    }
}
