//! The `telemetry` hook: an INFO span around the attempt (asset, partition, run id, attempt,
//! executor), an event with its outcome and duration (a failure at WARN with its error kind, so
//! the log line says what failed and how), process-wide counters ([`Metrics`]), and the same
//! figures through the `metrics` facade for whatever exporter the binary installs
//! ([`describe_metrics`] names them).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use tracing::Instrument;

use super::{Hook, Materializing, Next};
use crate::error::{ErrorKind, Result};
use crate::output::Output;

/// The `metrics` counter of ended attempts, by `asset` and `status` (success, failed,
/// cancelled).
pub const MATERIALIZATIONS: &str = "flowstone_materializations_total";
/// The `metrics` histogram of attempt durations in seconds, by `asset` and `status`.
pub const MATERIALIZATION_SECONDS: &str = "flowstone_materialization_duration_seconds";

/// Describes FlowStone's metrics (and the queue's) to the installed recorder, so exporters
/// print their help text; call it once after installing one.
pub fn describe_metrics() {
    metrics::describe_counter!(
        MATERIALIZATIONS,
        "Materialization attempts that ended, by asset and status."
    );
    metrics::describe_histogram!(
        MATERIALIZATION_SECONDS,
        metrics::Unit::Seconds,
        "How long materialization attempts took, by asset and status."
    );
    #[cfg(feature = "database")]
    flowstone_queue::describe_metrics();
}

/// Counters of materialization attempts in this process.
#[derive(Debug, Default)]
pub struct Metrics {
    started: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    cancelled: AtomicU64,
    busy_micros: AtomicU64,
}

/// A copy of [`Metrics`] at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MetricsSnapshot {
    /// Attempts started.
    pub started: u64,
    /// Attempts that succeeded.
    pub succeeded: u64,
    /// Attempts that failed.
    pub failed: u64,
    /// Attempts cancelled.
    pub cancelled: u64,
    /// Total time spent in attempts, in microseconds.
    pub busy_micros: u64,
}

impl Metrics {
    /// The counters now.
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            started: self.started.load(Ordering::Relaxed),
            succeeded: self.succeeded.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            cancelled: self.cancelled.load(Ordering::Relaxed),
            busy_micros: self.busy_micros.load(Ordering::Relaxed),
        }
    }
}

/// Traces and counts attempts.
#[derive(Debug)]
pub struct TelemetryHook {
    metrics: Arc<Metrics>,
}

impl TelemetryHook {
    /// Counts into `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        TelemetryHook { metrics }
    }
}

#[async_trait]
impl Hook for TelemetryHook {
    async fn call(&self, cx: &mut Materializing<'_>, next: Next<'_>) -> Result<Output> {
        self.metrics.started.fetch_add(1, Ordering::Relaxed);
        let span = tracing::info_span!(
            "materialize",
            asset = cx.asset.name(),
            partition = tracing::field::display(&cx.job.partition),
            run_id = tracing::field::display(cx.job.run_id),
            attempt = cx.attempt,
            executor = cx.executor,
        );
        let result = next.run(cx).instrument(span.clone()).await;
        let micros = u64::try_from(cx.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.metrics
            .busy_micros
            .fetch_add(micros, Ordering::Relaxed);
        let _entered = span.enter();
        let status = match &result {
            Ok(_) => "success",
            Err(err) if err.kind() == ErrorKind::Cancelled => "cancelled",
            Err(_) => "failed",
        };
        let asset = cx.asset.name().to_owned();
        metrics::counter!(MATERIALIZATIONS, "asset" => asset.clone(), "status" => status)
            .increment(1);
        metrics::histogram!(MATERIALIZATION_SECONDS, "asset" => asset, "status" => status)
            .record(cx.started.elapsed().as_secs_f64());
        match &result {
            Ok(_) => {
                self.metrics.succeeded.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(duration_us = micros, "materialized");
            }
            Err(err) if err.kind() == ErrorKind::Cancelled => {
                self.metrics.cancelled.fetch_add(1, Ordering::Relaxed);
                tracing::info!(duration_us = micros, "cancelled");
            }
            Err(err) => {
                self.metrics.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    duration_us = micros,
                    error_kind = ?err.kind(),
                    error = %err,
                    retryable = err.retryable(),
                    "failed"
                );
            }
        }
        result
    }
}
