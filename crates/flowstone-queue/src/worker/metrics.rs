//! What a worker counts about itself, for its owner: [`WorkerMetrics`], a snapshot of
//! counters the worker's tasks bump as things happen (read with
//! [`WorkerHandle::metrics`](super::WorkerHandle::metrics)). Counters are cheap atomics, so
//! more can join without cost: claimed, completed, rescued, ...

use std::sync::atomic::{AtomicU64, Ordering};

use crate::engine::Written;

/// The `metrics` histogram of claim round trips (acks written with the claim included), in
/// seconds, by `queue`.
pub const CLAIM_SECONDS: &str = "flowstone_queue_claim_seconds";
/// The `metrics` histogram of ack-only writes, in seconds.
pub const ACK_SECONDS: &str = "flowstone_queue_ack_seconds";
/// The `metrics` counter of jobs returned to the queue (or discarded) because their node died.
pub const RESCUED: &str = "flowstone_queue_rescued_jobs_total";
/// The `metrics` counter of jobs discarded by this process's workers, by `kind`.
pub const DISCARDED: &str = "flowstone_queue_discarded_jobs_total";

/// Describes the queue's `metrics` to the installed recorder (see [`CLAIM_SECONDS`] and the
/// others), for exporters' help text.
pub fn describe_metrics() {
    metrics::describe_histogram!(
        CLAIM_SECONDS,
        metrics::Unit::Seconds,
        "Claim round trips (with the acks that ride along), by queue."
    );
    metrics::describe_histogram!(ACK_SECONDS, metrics::Unit::Seconds, "Ack-only writes.");
    metrics::describe_counter!(
        RESCUED,
        "Jobs of dead nodes rescued (or discarded) by the leader."
    );
    metrics::describe_counter!(
        DISCARDED,
        "Jobs discarded by this process's workers, by kind."
    );
}

/// A snapshot of a worker's counters since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerMetrics {
    /// Acks the attempt fence refused: the job's row had moved on to another attempt
    /// (rescued from this node, presumed dead) or was cancelled before the outcome was
    /// written, so the outcome was not stored. Each is also logged as a warning.
    pub late_acks: u64,
}

/// The live counters behind [`WorkerMetrics`].
#[derive(Debug, Default)]
pub(super) struct Counters {
    late_acks: AtomicU64,
}

impl Counters {
    pub(super) fn snapshot(&self) -> WorkerMetrics {
        WorkerMetrics {
            late_acks: self.late_acks.load(Ordering::Relaxed),
        }
    }

    /// Logs and counts the acks of `written` that the fence refused.
    pub(super) fn record_late_acks(&self, node: &str, written: &Written) {
        for &(job, attempt) in &written.late {
            tracing::warn!(
                job,
                attempt,
                node,
                "flowstone-queue: late ack refused: the job no longer runs this attempt on this \
                 node (rescued or cancelled meanwhile); its outcome was not stored"
            );
        }
        self.late_acks
            .fetch_add(written.late.len() as u64, Ordering::Relaxed);
    }
}
