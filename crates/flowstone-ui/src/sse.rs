//! Live backfill progress by server-sent events: `GET /backfills/{id}/events` sends the
//! backfill's status and counts whenever they change (checked every 250 ms) and ends after
//! the backfill has. The page's script updates the progress bar from them; without the script
//! the page still shows the state it was rendered with.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde_json::json;

use crate::error::UiResult;
use crate::pages::backfills::backfill_id;
use crate::state::AppState;

/// How often the stream looks at the record.
const POLL: Duration = Duration::from_millis(250);

/// `GET /backfills/{id}/events`: a `progress` event with `{status, finished, done, total,
/// succeeded, failed, skipped, cancelled, upstream_failed}` on every change.
pub(crate) async fn backfill_events(
    State(state): State<AppState>,
    Path(input): Path<String>,
) -> UiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let id = backfill_id(&input)?;
    // An unknown id is a 404 now, not an empty stream.
    state.fs.backfill_status(id, None, 0).await?;
    let fs = state.fs.clone();
    let stream = futures_util::stream::unfold(
        (fs, None::<serde_json::Value>, false),
        move |(fs, last, ended)| async move {
            if ended {
                return None;
            }
            loop {
                let record = match fs.backfill_status(id, None, 0).await {
                    Ok((record, _)) => record,
                    Err(err) => {
                        let event = Event::default().event("error").data(err.to_string());
                        return Some((Ok(event), (fs, last, true)));
                    }
                };
                let c = record.counts;
                let now = json!({
                    "status": record.status.as_str(),
                    "finished": record.status.is_finished(),
                    "done": c.done(),
                    "total": c.total,
                    "succeeded": c.succeeded,
                    "failed": c.failed,
                    "skipped": c.skipped,
                    "cancelled": c.cancelled,
                    "upstream_failed": c.upstream_failed,
                });
                if last.as_ref() != Some(&now) {
                    let finished = record.status.is_finished();
                    let event = Event::default().event("progress").data(now.to_string());
                    return Some((Ok(event), (fs, Some(now), finished)));
                }
                tokio::time::sleep(POLL).await;
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
