//! Completing a job inside the handler's own transaction, so that what the job wrote and its
//! completion commit together or not at all.
//!
//! A handler's writes and the worker's ack are two commits. A cancel (or a rescue) that lands
//! between them leaves the handler's writes in place beside a job that says `cancelled`. On
//! SQLite, where another process's cancel is only seen by polling, that window is as long as
//! the poll interval. A handler whose writes go to the same SQLite database closes it: it
//! opens its transaction (`BEGIN IMMEDIATE`), calls [`complete_sqlite`] there, writes its own
//! rows only for the jobs it says applied, commits, calls [`announce_completed`], and returns
//! [`Outcome::Committed`](crate::Outcome::Committed). The completion is fenced like any ack
//! (this attempt, still `executing`), so once a cancel has committed no handler can commit a
//! success, and once the success has committed a cancel is `Error::AlreadyFinished`.

use crate::database::{Database, Event};
#[cfg(feature = "sqlite")]
use crate::error::Result;
#[cfg(feature = "sqlite")]
use crate::handler::JobContext;

/// Completes the jobs `ctx` runs, each with its result, inside the caller's open SQLite
/// transaction on the queue's database; one statement for all. For each, true when it
/// applied; false when the job no longer executes that attempt (cancelled, or rescued to
/// another node): then the caller must not commit what it would have committed with that
/// success.
#[cfg(feature = "sqlite")]
pub async fn complete_sqlite(
    conn: &mut sqlx::SqliteConnection,
    jobs: &[(&JobContext, Option<&serde_json::Value>)],
) -> Result<Vec<bool>> {
    let results: Vec<Option<String>> = jobs
        .iter()
        .map(|(_, result)| result.map(serde_json::Value::to_string))
        .collect();
    let completes: Vec<(i64, i32, Option<&str>)> = jobs
        .iter()
        .zip(&results)
        .map(|((ctx, _), result)| (ctx.id, ctx.attempt, result.as_deref()))
        .collect();
    let applied =
        crate::engine::sqlite::complete(conn, &completes, crate::engine::now_micros()).await?;
    Ok(jobs
        .iter()
        .map(|(ctx, _)| applied.contains(&ctx.id))
        .collect())
}

/// Tells this process's waiters and workers that job `id` has finished, after the
/// transaction that completed it ([`complete_sqlite`]) has committed.
pub fn announce_completed(db: &Database, id: i64) {
    db.publish(Event::Finished(vec![id].into()));
}
