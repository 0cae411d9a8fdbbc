//! Rescue: returning jobs to the queue when the node running them is gone, and ending jobs
//! no node can run. Three duties with different scopes: jobs of nodes whose heartbeat
//! stopped, and jobs of kinds no live node has served for `unserved_kind_after` (leader
//! duties: one node does them for the cluster), and this node's own orphans, jobs the
//! database says run here but this node does not know about (a claim whose reply was lost
//! with its connection), which every node sweeps for itself.

use std::sync::Arc;

use super::leader::LeaderDuty;
use super::run_job::give_back;
use super::settings::WorkerSettings;
use super::{Shared, pause};
use crate::engine;

/// The leader duty that returns the jobs of nodes silent for `rescue_after` to the queue
/// (or discards them when that was their last attempt), every `rescue_interval`.
pub(super) fn rescue_duty(settings: &WorkerSettings) -> LeaderDuty {
    let after = settings.rescue_after;
    LeaderDuty::new("rescue", settings.rescue_interval, move |db| async move {
        let ids = engine::rescue(&db, after).await?;
        metrics::counter!(super::metrics::RESCUED).increment(ids.len() as u64);
        log_swept(ids.len(), "flowstone-queue: rescued jobs of dead nodes");
        Ok::<(), crate::Error>(())
    })
}

/// The leader duty that discards, every `prune_interval`, due jobs whose kind no live
/// worker has served on their queue for `unserved_kind_after` (workers claim only their own
/// kinds, so such a job would otherwise wait forever).
pub(super) fn unserved_duty(settings: &WorkerSettings) -> LeaderDuty {
    let after = settings.unserved_kind_after;
    LeaderDuty::new("unserved", settings.prune_interval, move |db| async move {
        let ids = engine::discard_unserved(&db, after).await?;
        log_swept(
            ids.len(),
            "flowstone-queue: discarded jobs whose kind no live worker serves",
        );
        Ok::<(), crate::Error>(())
    })
}

/// The leader duty that ends, every `rescue_interval`, what still waits for jobs that gave up
/// or were cancelled: the node that acknowledged them blocks their dependents right after, and
/// this sweep does it when that node died in between.
pub(super) fn blocked_duty(settings: &WorkerSettings) -> LeaderDuty {
    LeaderDuty::new("blocked", settings.rescue_interval, move |db| async move {
        let roots = engine::block_stuck(&db).await?;
        log_swept(
            roots,
            "flowstone-queue: ended jobs that waited for jobs which did not complete",
        );
        Ok::<(), crate::Error>(())
    })
}

/// Says how many jobs a duty moved, if any.
fn log_swept(count: usize, what: &'static str) {
    if count > 0 {
        tracing::info!(count, "{what}");
    }
}

/// Every `rescue_interval`: gives back this node's orphans.
pub(super) async fn sweeper(shared: Arc<Shared>) {
    while pause(&shared.stop, shared.settings.rescue_interval).await {
        sweep_orphans(&shared).await;
    }
}

/// Jobs the database says this node executes but this node does not know about (a claim
/// whose reply was lost with a dropped connection, so no handler ran): give them back. The
/// attempt number stays spent (no attempt ever runs twice); `max_attempts` grows by one, so
/// the lost claim does not use up the job's attempts.
async fn sweep_orphans(shared: &Shared) {
    let rows =
        match engine::executing_on(&shared.db, &shared.node, shared.settings.rescue_after).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::debug!(error = %e, "flowstone-queue: orphan sweep failed");
                return;
            }
        };
    let orphans: Vec<(i64, i32)> = {
        let running = shared.running();
        rows.into_iter()
            .filter(|(id, _)| !running.contains_key(id))
            .collect()
    };
    for (id, attempt) in orphans {
        if let Err(e) = engine::transition(&shared.db, id, attempt, &give_back()).await {
            tracing::debug!(error = %e, "flowstone-queue: orphan give-back failed");
        }
    }
}
