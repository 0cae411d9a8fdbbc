//! A running worker as its owner sees it: [`WorkerHandle`] and the graceful shutdown
//! (stop claiming, let jobs finish within the grace period, abandon the rest, write the last
//! acks, stop the services, release the lease, unregister the node) that [`ShutdownReport`] summarises.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::{Shared, WorkerMetrics, leader};
use crate::engine;

/// A running worker. Call [`shutdown`](Self::shutdown) to stop it gracefully; dropping it
/// stops it at once (its running jobs are then rescued by another node later).
#[must_use = "dropping a WorkerHandle stops the worker at once; keep it, and call .shutdown(grace)"]
pub struct WorkerHandle {
    shared: Arc<Shared>,
    /// One claim loop per queue; each returns how many jobs it abandoned.
    producers: Vec<JoinHandle<usize>>,
    /// PostgreSQL's ack writer (it ends once every producer has).
    acker: Option<JoinHandle<()>>,
    /// Signals, heartbeats, the lease, leader duties: stopped last.
    services: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for WorkerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerHandle")
            .field("node", &self.node())
            .field("queues", &self.producers.len())
            .finish_non_exhaustive()
    }
}

/// What a graceful shutdown did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Jobs whose handlers had not returned by the grace period's end (plus a short wait
    /// after their tokens fired): returned to the queue, or discarded if that was their
    /// last attempt.
    pub abandoned: usize,
}

impl WorkerHandle {
    /// The handle over a started worker's tasks.
    pub(super) fn new(
        shared: Arc<Shared>,
        producers: Vec<JoinHandle<usize>>,
        acker: JoinHandle<()>,
        services: Vec<JoinHandle<()>>,
    ) -> Self {
        Self {
            shared,
            producers,
            acker: Some(acker),
            services,
        }
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.shared.node
    }

    /// Resolves when the worker stops by itself on a fatal error, with that error: today
    /// [`Error::DatabaseFileGone`](crate::Error::DatabaseFileGone), when its SQLite file is
    /// deleted or replaced. Never resolves for a worker that keeps running; wait on it beside
    /// your shutdown signal, then call [`shutdown`](Self::shutdown) all the same.
    pub async fn failed(&self) -> &crate::Error {
        self.shared.stop.cancelled().await;
        match self.shared.fatal.get() {
            Some(error) => error,
            // Stopped without a fatal error only by `shutdown` or drop, which end the handle.
            None => std::future::pending().await,
        }
    }

    /// A snapshot of this worker's counters (late acks, ...).
    pub fn metrics(&self) -> WorkerMetrics {
        self.shared.counters.snapshot()
    }

    /// Stops claiming, lets running jobs finish for up to `grace`, then fires the
    /// cancellation tokens of those still running and returns them to the queue; writes all
    /// acks, releases the maintenance lease if this node holds it (another node takes over
    /// at once), and unregisters the node.
    pub async fn shutdown(mut self, grace: Duration) -> ShutdownReport {
        self.shared.stop_claiming.cancel();
        let mut producers = std::mem::take(&mut self.producers);
        let all = futures_util::future::join_all(producers.iter_mut());
        let done = tokio::time::timeout(grace, all).await;
        let mut abandoned = 0;
        match done {
            Ok(results) => abandoned += results.into_iter().filter_map(|r| r.ok()).sum::<usize>(),
            Err(_) => {
                self.shared.abandon.cancel();
                for mut p in producers {
                    // A producer stuck on an unreachable database is stopped: its jobs stay
                    // `executing` and are rescued once this node's heartbeat is gone.
                    match tokio::time::timeout(FINAL_WAIT, &mut p).await {
                        Ok(n) => abandoned += n.unwrap_or(0),
                        Err(_) => p.abort(),
                    }
                }
            }
        }
        // Producers are done, so the acker's channel is closed: it ends once all is written.
        if let Some(mut acker) = self.acker.take()
            && tokio::time::timeout(FINAL_WAIT, &mut acker).await.is_err()
        {
            acker.abort();
        }
        self.shared.stop.cancel();
        for s in std::mem::take(&mut self.services) {
            let _ = s.await;
        }
        leader::resign(&self.shared).await;
        if let Err(e) = engine::remove_node(&self.shared.db, &self.shared.node).await {
            tracing::warn!(error = %e, "flowstone-queue: could not unregister node");
        }
        ShutdownReport { abandoned }
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        self.shared.stop.cancel();
    }
}

/// At shutdown, how long to wait for the last database writes before giving up on them.
const FINAL_WAIT: Duration = Duration::from_secs(10);
