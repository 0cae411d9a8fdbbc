//! Rescue: returning jobs to the queue when the node running them is gone. Two duties with
//! different scopes: jobs of nodes whose heartbeat stopped (any node may do it; one is
//! enough), and this node's own orphans, jobs the database says run here but this node does
//! not know about (a claim whose reply was lost with its connection).

use std::sync::Arc;
use std::time::Duration;

use super::{Shared, pause};
use crate::engine::{self, Transition};
use crate::job::JobState;

/// Every `rescue_interval`: rescues dead nodes' jobs, then gives back this node's orphans.
pub(super) async fn rescuer(shared: Arc<Shared>) {
    while pause(&shared.stop, shared.settings.rescue_interval).await {
        rescue_dead_nodes(&shared).await;
        sweep_orphans(&shared).await;
    }
}

/// Returns the jobs of nodes silent for `rescue_after` to the queue (or discards them when
/// that was their last attempt).
async fn rescue_dead_nodes(shared: &Shared) {
    match engine::rescue(&shared.db, shared.settings.rescue_after).await {
        Ok(ids) if !ids.is_empty() => {
            tracing::info!(
                count = ids.len(),
                "flowstone-queue: rescued jobs of dead nodes"
            );
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "flowstone-queue: rescue failed"),
    }
}

/// Jobs the database says this node executes but this node does not know about (a claim
/// whose reply was lost with a dropped connection): give them back, attempt returned.
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
        let to = Transition {
            state: JobState::Available,
            delay: Some(Duration::ZERO),
            give_back: 1,
            snoozed: 0,
            unhandled: 0,
            error: None,
        };
        if let Err(e) = engine::transition(&shared.db, id, attempt, &to).await {
            tracing::debug!(error = %e, "flowstone-queue: orphan give-back failed");
        }
    }
}
