//! Pruning: deleting finished rows older than `prune_after`, so the jobs table does not
//! grow without bound while a finished job's status stays readable for that long.

use std::sync::Arc;

use super::{Shared, pause};
use crate::engine;

/// Most rows one prune deletes: bounds the statement; the next round takes the rest.
const PRUNE_BATCH: i64 = 10_000;

/// Every `prune_interval`, unless pruning is off (`prune_after: None`).
pub(super) async fn pruner(shared: Arc<Shared>) {
    let Some(after) = shared.settings.prune_after else {
        return;
    };
    while pause(&shared.stop, shared.settings.prune_interval).await {
        if let Err(e) = engine::prune(&shared.db, after, PRUNE_BATCH).await {
            tracing::warn!(error = %e, "flowstone-queue: prune failed");
        }
    }
}
