//! Pruning: deleting finished rows older than `prune_after`, so the jobs table does not
//! grow without bound while a finished job's status stays readable for that long. A leader
//! duty: one node prunes for the cluster.

use super::leader::LeaderDuty;
use super::settings::WorkerSettings;
use crate::engine;

/// Most rows one prune deletes: bounds the statement; the next round takes the rest.
const PRUNE_BATCH: i64 = 10_000;

/// The leader duty that prunes every `prune_interval`; none when pruning is off
/// (`prune_after: None`).
pub(super) fn prune_duty(settings: &WorkerSettings) -> Option<LeaderDuty> {
    let after = settings.prune_after?;
    Some(LeaderDuty::new(
        "prune",
        settings.prune_interval,
        move |db| async move { engine::prune(&db, after, PRUNE_BATCH).await.map(drop) },
    ))
}
