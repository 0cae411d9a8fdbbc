//! The Prometheus endpoint, `/metrics`, in the text exposition format.
//!
//! Two sources: what the libraries count through the `metrics` facade (materializations by
//! asset and status and their durations, queue claim and ack latency, rescued and discarded
//! jobs), recorded process-wide by the exporter [`install`] sets up; and what the database says
//! at scrape time (queue jobs by queue and state, progress of unfinished backfills), read for
//! this FlowStone's database on every scrape. The second part is written here rather than set
//! as global gauges, so two FlowStones in one process (tests, a server with two databases)
//! never overwrite each other's figures.

use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::OnceLock;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use flowstone::FlowStone;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::state::AppState;

/// Buckets of the duration histograms, in seconds: 1 ms to 10 min.
const BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder as the process's `metrics` recorder (once; later calls
/// return the same handle). `None` when another recorder was installed first: the
/// endpoint then serves only the scrape-time figures.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(BUCKETS)
                .expect("the bucket list is not empty");
            match builder.install_recorder() {
                Ok(handle) => {
                    flowstone::hook::describe_metrics();
                    Some(handle)
                }
                Err(err) => {
                    tracing::warn!(error = %err, "another metrics recorder is installed; /metrics shows only database figures");
                    None
                }
            }
        })
        .as_ref()
}

/// The whole exposition for `fs`: the recorder's metrics, then the database's figures.
pub async fn render(fs: &FlowStone) -> Result<String, String> {
    let mut out = install().map(PrometheusHandle::render).unwrap_or_default();
    if let Some(queue) = fs.queue() {
        let counts = queue
            .counts()
            .await
            .map_err(|e| format!("could not count the queue's jobs: {e}"))?;
        out.push_str(
            "# HELP flowstone_queue_jobs Jobs in the durable queue by queue and state, at scrape time.\n\
             # TYPE flowstone_queue_jobs gauge\n",
        );
        for (q, state, n) in counts {
            let _ = writeln!(
                out,
                "flowstone_queue_jobs{{queue=\"{}\",state=\"{}\"}} {n}",
                label(&q),
                state.as_str()
            );
        }
    }
    let backfills = fs
        .backfills(100)
        .await
        .map_err(|e| format!("could not list the backfills: {e}"))?;
    out.push_str(
        "# HELP flowstone_backfill_partitions Partitions of each unfinished backfill: total, and ended so far.\n\
         # TYPE flowstone_backfill_partitions gauge\n",
    );
    for b in backfills.iter().filter(|b| !b.status.is_finished()) {
        let id = b.id.to_string();
        for (kind, n) in [
            ("total", b.counts.total),
            ("done", b.counts.done()),
            ("failed", b.counts.failed),
        ] {
            let _ = writeln!(
                out,
                "flowstone_backfill_partitions{{backfill=\"{id}\",selection=\"{}\",count=\"{kind}\"}} {n}",
                label(&b.request.selection)
            );
        }
    }
    Ok(out)
}

/// A label value escaped as the text format requires.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn respond(result: Result<String, String>) -> Response {
    match result {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(message) => (StatusCode::INTERNAL_SERVER_ERROR, message).into_response(),
    }
}

/// `GET /metrics` of the dashboard.
pub(crate) async fn endpoint(State(state): State<AppState>) -> Response {
    respond(render(&state.fs).await)
}

/// Serves only `GET /metrics` for `fs` on `bind` until `shutdown` resolves: what `worker
/// --metrics-bind ADDR` runs beside the worker. It changes nothing and needs no token.
pub async fn serve_metrics(
    fs: FlowStone,
    bind: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(bind).await?;
    serve_metrics_on(fs, listener, shutdown).await
}

/// [`serve_metrics`] on a bound listener.
pub async fn serve_metrics_on(
    fs: FlowStone,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    install();
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let fs = fs.clone();
            async move { respond(render(&fs).await) }
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::label;

    #[test]
    fn labels_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
