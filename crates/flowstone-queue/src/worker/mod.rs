//! Running jobs. A [`Worker`] is one node: per queue a producer task claims up to the free
//! concurrency in one round trip, spawns a task per job, and writes the acks of finished
//! jobs in the same round trip as its next claim (so no-op jobs cost a fraction of a round
//! trip each). Beside the producers run a signal task (insert wake-ups, cancels), a
//! heartbeat task (this node is alive) and an orphan sweeper (jobs this node lost track
//! of). The duties one node does for the cluster, rescue of dead nodes' jobs, pruning of old
//! rows and the application's own leader duties, run only on the node that holds the
//! maintenance lease.
//!
//! Every ack is fenced by the attempt it claimed, so a node that was presumed dead and
//! rescued cannot overwrite the new attempt's outcome: delivery is at least once.
//!
//! Queue names are validated when a worker starts: each must be a valid name, and if the
//! application declared its queues with [`WorkerBuilder::known_queues`], each must be one
//! of them (an unknown name is almost always a typo, and would otherwise never run).
//!
//! One file per duty: `builder` (configuring, starting), `settings` (timings), `handle`
//! (shutdown), `producer` (claiming), `acker` (acknowledging), `run_job` (one job, outcome
//! to ack), `signals` (wake-ups, cancels), `heartbeat`, `leader` (the lease, leader duties),
//! `rescue` and `prune`. This module holds the state they share.

mod acker;
mod builder;
mod database_file;
mod handle;
mod heartbeat;
mod leader;
mod metrics;
mod producer;
mod prune;
mod rescue;
mod run_job;
mod settings;
mod signals;

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::database::Database;
use crate::engine::{self, Ack, ClaimSpec, Claimed, Conn};
use crate::error::Result;
use crate::handler::Handler;

pub use builder::{MAX_CONCURRENCY, Worker, WorkerBuilder, default_node_name};
pub use handle::{ShutdownReport, WorkerHandle};
pub use metrics::{
    ACK_SECONDS, CLAIM_SECONDS, DISCARDED, RESCUED, WorkerMetrics, describe_metrics,
};
pub use settings::WorkerSettings;

/// A job running on this node: the attempt it claimed and the token that cancels it.
struct Running {
    attempt: i32,
    cancel: CancellationToken,
}

/// What the worker's tasks share: the database, this node, handlers, settings, running jobs
/// and the tokens that stop it in stages.
struct Shared {
    db: Database,
    node: Arc<str>,
    handlers: HashMap<String, Handler>,
    /// The kinds of `handlers`, sorted: claims ask only for these.
    kinds: Vec<String>,
    /// `kinds` as a JSON array, for SQLite's claims.
    kinds_json: String,
    settings: WorkerSettings,
    /// Jobs claimed here and not yet acknowledged, for cancel signals and orphan sweeps.
    running: Mutex<HashMap<i64, Running>>,
    wake: HashMap<String, Arc<Notify>>,
    /// Whether this node held the maintenance lease at its last renewal.
    leader: AtomicBool,
    stop_claiming: CancellationToken,
    abandon: CancellationToken,
    stop: CancellationToken,
    counters: metrics::Counters,
    /// Why the worker stopped by itself, if it did (set once, before `stop` fires).
    fatal: std::sync::OnceLock<crate::error::Error>,
}

impl Shared {
    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Running>> {
        // A panic while holding this lock cannot leave the map inconsistent: recover it.
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Acks written: these jobs are no longer running here.
    fn forget(&self, acks: &[Ack]) {
        let mut running = self.running();
        for ack in acks {
            running.remove(&ack.id());
        }
    }

    /// A job completed by its handler's own transaction is no longer running here.
    fn forget_id(&self, id: i64) {
        self.running().remove(&id);
    }

    /// Writes acks (and claims), counting and logging the acks the attempt fence refused;
    /// the acked jobs are no longer running here.
    async fn ack_and_claim(
        &self,
        conn: &mut Conn,
        acks: &[Ack],
        claim: Option<ClaimSpec<'_>>,
    ) -> Result<Vec<Claimed>> {
        let written = engine::ack_and_claim(&self.db, conn, acks, claim).await?;
        self.counters.record_late_acks(&self.node, &written);
        self.forget(acks);
        Ok(written.claimed)
    }

    /// Stops the worker for good because of `error`, which its owner can read.
    fn fail(&self, error: crate::error::Error) {
        let _ = self.fatal.set(error);
        self.stop.cancel();
    }

    fn wake_all(&self) {
        for n in self.wake.values() {
            n.notify_one();
        }
    }

    fn cancel_running(&self, ids: &[i64]) {
        let running = self.running();
        for id in ids {
            if let Some(r) = running.get(id) {
                r.cancel.cancel();
            }
        }
    }
}

/// Sleeps `d`, or returns early (false) when `token` fires.
async fn pause(token: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = token.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}
