//! `--metrics ADDR`: a role's Prometheus metrics served over HTTP.

use prometheus_client::registry::Registry;
use taskweave_postgres::LogLine;
use taskweave_postgres::metrics::MetricsEndpoint;

use super::args::Args;

/// With `--metrics ADDR`: `register`'s metrics, served on ADDR until the
/// endpoint is dropped (the address it listens on is logged), a 503 while
/// `ready` says they are not; without it, none.
pub(crate) fn serve<M: Clone + Send + 'static>(
    args: &Args,
    log: &mut dyn FnMut(LogLine<'_>),
    register: impl FnOnce(&mut Registry) -> M,
    ready: fn(&M) -> bool,
) -> Result<Option<(MetricsEndpoint, M)>, String> {
    let Some(addr) = args.value("--metrics") else {
        return Ok(None);
    };
    let mut registry = Registry::default();
    let metrics = register(&mut registry);
    let gate = metrics.clone();
    let endpoint =
        MetricsEndpoint::serve_when(addr, registry, move || ready(&gate)).map_err(|e| {
            format!(
                "--metrics {addr}: cannot listen there: {e}. Remedy: give a free port on an \
             address of this host, e.g. 127.0.0.1:9464, or port 0 for any free one"
            )
        })?;
    log(LogLine::info(&format!(
        "metrics on http://{}/metrics",
        endpoint.local_addr()
    )));
    Ok(Some((endpoint, metrics)))
}
