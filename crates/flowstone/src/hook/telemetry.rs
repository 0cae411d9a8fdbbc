//! The `telemetry` hook: a tracing span around the attempt, an event with its outcome and
//! duration, and process-wide counters ([`Metrics`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use tracing::Instrument;

use super::{Hook, Materializing, Next};
use crate::error::{ErrorKind, Result};
use crate::output::Output;

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
        let span = tracing::debug_span!(
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
                tracing::warn!(duration_us = micros, error = %err, retryable = err.retryable(), "failed");
            }
        }
        result
    }
}
