//! [`MetricsEndpoint`]: a registry served over HTTP for Prometheus.

use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};

use prometheus_client::registry::Registry;

use crate::http::{Request, Response, Server};

/// The content type of the OpenMetrics text exposition, which Prometheus
/// reads.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serves a [`Registry`] on `GET /metrics`, on a thread of its own, until
/// dropped.
///
/// Connections are answered one at a time, each given 5 s in all to send
/// a request of at most 8 KiB and 5 s to take the answer: a scrape is a
/// small request every few seconds, and a client that sends more, or
/// nothing, or a byte at a time, is answered or dropped without holding
/// the others for longer. Any other path is a
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
    server: Server,
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
        Self::serve_when(addr, registry, || true)
    }

    /// [`serve`](Self::serve), answering `503 Service Unavailable` while
    /// `ready` answers `false`: a scrape then fails, and reads no counter
    /// that would jump from zero to the cluster's totals once a node has
    /// restored its state ([`NodeMetrics::is_restored`](super::NodeMetrics::is_restored)).
    ///
    /// # Errors
    ///
    /// As [`serve`](Self::serve).
    pub fn serve_when(
        addr: impl ToSocketAddrs,
        registry: Registry,
        ready: impl Fn() -> bool + Send + 'static,
    ) -> io::Result<MetricsEndpoint> {
        let listener = TcpListener::bind(addr)?;
        let server = Server::serve(listener, "taskweave-metrics", move |request| {
            if ready() {
                respond(&request, &registry)
            } else {
                Response::text(
                    "503 Service Unavailable",
                    "not ready: the node is restoring the cluster's state\n",
                )
            }
        })?;
        Ok(MetricsEndpoint { server })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }
}

/// The answer to `request`.
fn respond(request: &Request, registry: &Registry) -> Response {
    if request.method != "GET" {
        return Response::text("405 Method Not Allowed", "only GET /metrics is served\n");
    }
    if request.path != "/metrics" {
        return Response::text("404 Not Found", "only GET /metrics is served\n");
    }
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, registry) {
        Ok(()) => Response {
            status: "200 OK",
            content_type: CONTENT_TYPE,
            location: None,
            body,
        },
        Err(_) => Response::text(
            "500 Internal Server Error",
            "the metrics could not be encoded\n",
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpStream};

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
        let refusals: [(&[u8], &str); 6] = [
            (b"GET / HTTP/1.1\r\n\r\n", "404"),
            (b"POST /metrics HTTP/1.1\r\n\r\n", "405"),
            (b"\xff\xfe garbage\r\n\r\n", "405"),
            (&[b'a'; 20_000], "431"),
            (
                b"GET /metrics HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n",
                "413",
            ),
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
    fn a_client_that_drips_bytes_holds_the_others_back_for_its_deadline_at_most() {
        let (endpoint, _counter) = endpoint();
        let addr = endpoint.local_addr();
        let mut dripping = TcpStream::connect(addr).unwrap();
        let drip = std::thread::spawn(move || {
            // A byte every 200 ms for 30 s: each read well within a
            // per-read timeout, the whole far past the connection's.
            for _ in 0..150 {
                if dripping.write_all(b"G").is_err() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        });
        std::thread::sleep(std::time::Duration::from_millis(100));
        let mut scrape = TcpStream::connect(addr).unwrap();
        scrape
            .set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .unwrap();
        let answer = {
            let _ = scrape.write_all(b"GET /metrics HTTP/1.1\r\n\r\n");
            let _ = scrape.shutdown(Shutdown::Write);
            let mut answer = String::new();
            let _ = scrape.read_to_string(&mut answer);
            answer
        };
        assert!(answer.contains("probe_total 0"), "{answer:?}");
        drop(endpoint);
        drip.join().unwrap();
    }

    #[test]
    fn not_ready_is_a_503_until_it_is() {
        let ready = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&ready);
        let endpoint = MetricsEndpoint::serve_when("127.0.0.1:0", Registry::default(), move || {
            flag.load(std::sync::atomic::Ordering::Relaxed)
        })
        .unwrap();
        let scrape = b"GET /metrics HTTP/1.1\r\n\r\n";
        let answer = ask(endpoint.local_addr(), scrape);
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        ready.store(true, std::sync::atomic::Ordering::Relaxed);
        let answer = ask(endpoint.local_addr(), scrape);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }

    #[test]
    fn a_dropped_endpoint_frees_its_address() {
        let (endpoint, _counter) = endpoint();
        let addr = endpoint.local_addr();
        drop(endpoint);
        TcpListener::bind(addr).expect("the address is free again");
    }
}
