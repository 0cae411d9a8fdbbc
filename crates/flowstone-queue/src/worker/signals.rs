//! The signal task: turns database events into wake-ups of idle producers and cancels of
//! running jobs, and polls running jobs' rows where signals may not arrive.

use std::sync::Arc;

use tokio::sync::broadcast;

use super::Shared;
use crate::database::Event;
use crate::engine;

/// Turns events into wake-ups and cancels; polls running jobs' rows where signals may not
/// arrive (SQLite across processes, after a reconnect).
pub(super) async fn signals(shared: Arc<Shared>, mut events: broadcast::Receiver<Event>) {
    let mut tick = tokio::time::interval(shared.settings.cancel_poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let recheck = tokio::select! {
            _ = shared.stop.cancelled() => return,
            event = events.recv() => match event {
                Ok(Event::Inserted(queue)) => {
                    if let Some(n) = shared.wake.get(&*queue) {
                        n.notify_one();
                    }
                    false
                }
                Ok(Event::Finished(ids)) => {
                    shared.cancel_running(&ids);
                    false
                }
                Ok(Event::Resync) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    shared.wake_all();
                    true
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = tick.tick() => true,
        };
        if recheck {
            check_running(&shared).await;
        }
    }
}

async fn check_running(shared: &Shared) {
    let running: Vec<(i64, i32)> = shared
        .running()
        .iter()
        .map(|(id, r)| (*id, r.attempt))
        .collect();
    match engine::no_longer_ours(&shared.db, &shared.node, &running).await {
        Ok(ids) => shared.cancel_running(&ids),
        Err(e) => tracing::debug!(error = %e, "flowstone-queue: cancel poll failed"),
    }
}
