//! Heartbeats: this node records that it is alive, so the rescuer on the leader does not
//! return its running jobs to the queue, and which kinds it serves on which queues, so
//! their jobs are not discarded as unserved. Every node runs its own.

use std::sync::Arc;

use super::{Shared, pause};
use crate::engine;

pub(super) async fn heartbeats(shared: Arc<Shared>) {
    let queues: Vec<&str> = shared.wake.keys().map(String::as_str).collect();
    while pause(&shared.stop, shared.settings.heartbeat_interval).await {
        if let Err(e) = engine::heartbeat(&shared.db, &shared.node, &queues, &shared.kinds).await {
            tracing::warn!(error = %e, "flowstone-queue: heartbeat failed");
        }
    }
}
