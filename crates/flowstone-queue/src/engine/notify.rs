//! PostgreSQL's cross-process wake-ups: one `LISTEN` connection per [`Database`](crate::Database) that turns
//! the triggers' notifications (see `migrations/postgres`) into the same in-process events
//! that local inserts and acks publish. It reconnects on its own and, after any gap, sends
//! [`Event::Resync`] so that waiters re-check what they may have missed.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::database::Event;

/// Channels the PostgreSQL triggers notify (see `migrations/postgres`).
const INSERTED_CHANNEL: &str = "flowstone_jobs_inserted";
const FINISHED_CHANNEL: &str = "flowstone_jobs_finished";

pub(crate) async fn listen(
    pool: PgPool,
    events: broadcast::Sender<Event>,
    stop: CancellationToken,
    ready: tokio::sync::oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    let mut pause = Duration::from_millis(50);
    while !stop.is_cancelled() {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "flowstone-queue: LISTEN connection failed; retrying");
                tokio::select! { _ = stop.cancelled() => return, _ = tokio::time::sleep(pause) => {} }
                pause = (pause * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        if let Err(e) = listener
            .listen_all([INSERTED_CHANNEL, FINISHED_CHANNEL])
            .await
        {
            tracing::warn!(error = %e, "flowstone-queue: LISTEN failed; retrying");
            tokio::select! { _ = stop.cancelled() => return, _ = tokio::time::sleep(pause) => {} }
            continue;
        }
        pause = Duration::from_millis(50);
        if let Some(ready) = ready.take() {
            let _ = ready.send(());
        }
        // Anything that happened while we were not listening was missed.
        let _ = events.send(Event::Resync);
        loop {
            let next = tokio::select! {
                _ = stop.cancelled() => return,
                next = listener.try_recv() => next,
            };
            match next {
                Ok(Some(n)) => {
                    if let Some(event) = parse_notification(n.channel(), n.payload()) {
                        let _ = events.send(event);
                    }
                }
                // Connection lost; the listener reconnects on the next call.
                Ok(None) => {
                    let _ = events.send(Event::Resync);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "flowstone-queue: LISTEN connection broke; reconnecting");
                    let _ = events.send(Event::Resync);
                    break;
                }
            }
        }
    }
}

fn parse_notification(channel: &str, payload: &str) -> Option<Event> {
    match channel {
        INSERTED_CHANNEL => Some(Event::Inserted(Arc::from(payload))),
        FINISHED_CHANNEL => {
            if payload == "*" {
                return Some(Event::Resync);
            }
            let ids: Option<Vec<i64>> = payload.split(',').map(|s| s.parse().ok()).collect();
            Some(ids.map_or(Event::Resync, |ids| Event::Finished(ids.into())))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_parse() {
        assert!(matches!(
            parse_notification(FINISHED_CHANNEL, "1,2,3"),
            Some(Event::Finished(ids)) if ids.as_ref() == [1, 2, 3]
        ));
        assert!(matches!(
            parse_notification(FINISHED_CHANNEL, "*"),
            Some(Event::Resync)
        ));
        assert!(matches!(
            parse_notification(FINISHED_CHANNEL, "x"),
            Some(Event::Resync)
        ));
        assert!(parse_notification("other", "").is_none());
    }
}
