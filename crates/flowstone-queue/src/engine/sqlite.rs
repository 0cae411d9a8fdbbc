//! The SQLite dialect of the queue's operations. Every write that claims or acknowledges
//! runs inside `BEGIN IMMEDIATE`, so a transaction takes the write lock up front and waits
//! on the busy timeout instead of failing to upgrade a read lock; with WAL, readers never
//! block. Claims are one `UPDATE … RETURNING`. Batches of ids and acks travel as one JSON
//! document expanded by `json_each`, inserts included, so statement text is constant and
//! there is no bind-parameter limit; where its rows are arrays read by `->>`, `jsonb_each`,
//! so that each row is parsed once rather than rendered and parsed again per field.
//! Timestamps are epoch microseconds taken from this node's clock.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Acquire, Connection, Executor, Row, SqliteConnection, SqlitePool};

use super::{
    Ack, CancelTarget, ClaimSpec, Claimed, Transition, claimed_from_row, job_from_row, micros,
    now_micros, pairs,
};
use crate::database::{ConnectOptions, Engine, bad_url, unreachable, within};
use crate::durability::Durability;
use crate::error::{Error, Result};
use crate::job::{Job, JobFilter, NewJob};
use crate::migrate::{Migrator, recorded};

// ---- connecting ----------------------------------------------------------------------

/// Opens the pool for a `sqlite:` URL (file created if missing): WAL, `synchronous = FULL`
/// (`NORMAL` with relaxed durability), the busy timeout; one connection that is never
/// recycled for an in-memory database, which lives as long as its connection does.
pub(crate) async fn connect(
    url: &str,
    shown: &str,
    options: &ConnectOptions,
) -> Result<SqlitePool> {
    let opts = SqliteConnectOptions::from_str(url)
        .map_err(|e| bad_url(shown, e))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(match options.durability {
            Durability::Full => SqliteSynchronous::Full,
            Durability::Relaxed => SqliteSynchronous::Normal,
        })
        .busy_timeout(options.busy_timeout)
        // Checkpoint (and fsync the database file) every ~40 MB of WAL rather
        // than every 4 MB: a busy queue rewrites the same few pages constantly.
        .pragma("wal_autocheckpoint", "10000");
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    let mut pool = SqlitePoolOptions::new().acquire_timeout(options.acquire_timeout);
    pool = if in_memory {
        pool.max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
    } else {
        pool.max_connections(options.max_connections.unwrap_or(8))
    };
    // One direct connection first: fails at once (the pool would retry until its
    // acquire timeout) and says why.
    let probe = within(
        options.acquire_timeout,
        SqliteConnection::connect_with(&opts),
    )
    .await
    .map_err(|e| unreachable(shown, e))?;
    let _ = probe.close().await;
    pool.connect_with(opts)
        .await
        .map_err(|e| unreachable(shown, e))
}

// ---- jobs ----------------------------------------------------------------------------

macro_rules! job_columns {
    () => {
        "id, queue, kind, args, meta, priority, state, attempt, max_attempts, snoozed, \
         unhandled, errors, result, unique_key, batch, node, inserted_at, scheduled_at, \
         attempted_at, completed_at, cancelled_at, discarded_at"
    };
}

/// The insert of a chunk: one statement text for every chunk size, so it stays prepared.
/// The rows come as one JSON document of `[[queue, kind, args, meta, priority, state,
/// max_attempts, scheduled_at, unique_key, batch], ...]` read by `jsonb_each`: its values
/// are JSONB, so each `->>` reads the parsed row instead of rendering it to text and parsing
/// it again (which `json_each` does, ten times a row). Rows come out in order.
macro_rules! insert_rows {
    () => {
        "INSERT INTO flowstone_jobs
             (queue, kind, args, meta, priority, state, max_attempts, scheduled_at,
              inserted_at, unique_key, batch)
         SELECT j.value ->> 0, j.value ->> 1, j.value ->> 2, j.value ->> 3, j.value ->> 4,
                j.value ->> 5, j.value ->> 6, j.value ->> 7, ?2, j.value ->> 8, j.value ->> 9
           FROM jsonb_each(?1) AS j WHERE true
         ON CONFLICT (unique_key)
             WHERE unique_key IS NOT NULL
               AND state IN ('available', 'scheduled', 'executing', 'retryable')
             DO NOTHING"
    };
}

/// Inserts one chunk of jobs in one statement, on the caller's connection (a caller
/// inserting more than one chunk holds a transaction around the calls); returns `(id,
/// unique key)` of the rows inserted, by id, which follows input order. Args and meta travel
/// as the JSON text `NewJob` holds, as strings of the document.
///
/// A chunk without unique keys cannot conflict, so it needs no `RETURNING` (which buffers
/// every row and hands each one back through the driver): its ids are the `n` before the
/// last inserted rowid. They are consecutive because the table is `AUTOINCREMENT` (a new
/// rowid is one more than the largest ever given) and the statement holds the write lock.
pub(crate) async fn insert(
    conn: &mut SqliteConnection,
    jobs: &[&NewJob],
    keys: &[Option<&str>],
) -> Result<Vec<(i64, Option<String>)>> {
    let now = now_micros();
    let rows: Vec<_> = jobs
        .iter()
        .zip(keys)
        .map(|(job, key)| {
            let scheduled = job.scheduled_at.map_or(now, |t| t.timestamp_micros());
            let state = if scheduled > now {
                "scheduled"
            } else {
                "available"
            };
            (
                &job.queue,
                &job.kind,
                &job.args,
                &job.meta,
                job.priority,
                state,
                job.max_attempts,
                scheduled,
                *key,
                job.batch.as_deref(),
            )
        })
        .collect();
    let rows = serde_json::to_string(&rows)?;
    if keys.iter().all(Option::is_none) {
        let done = sqlx::query(insert_rows!())
            .bind(rows)
            .bind(now)
            .execute(&mut *conn)
            .await?;
        let (n, last) = (done.rows_affected(), done.last_insert_rowid());
        if n != jobs.len() as u64 {
            return Err(Error::Database(sqlx::Error::Protocol(format!(
                "SQLite inserted {n} rows for a chunk of {} jobs without unique keys",
                jobs.len()
            ))));
        }
        let first = last - n as i64 + 1;
        return Ok((first..=last).map(|id| (id, None)).collect());
    }
    let mut out: Vec<(i64, Option<String>)> =
        sqlx::query(concat!(insert_rows!(), " RETURNING id, unique_key"))
            .bind(rows)
            .bind(now)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect::<Result<_>>()?;
    out.sort_unstable_by_key(|(id, _)| *id);
    Ok(out)
}

/// Records `links` (upstream id, downstream id) and makes each downstream job wait for its
/// upstream jobs, in the caller's insert transaction.
pub(crate) async fn link(conn: &mut SqliteConnection, links: &[(i64, i64)]) -> Result<()> {
    let links = serde_json::to_string(links)?;
    sqlx::query(
        "INSERT INTO flowstone_job_deps (upstream_id, downstream_id)
              SELECT e.value ->> 0, e.value ->> 1 FROM jsonb_each(?1) AS e WHERE true
         ON CONFLICT DO NOTHING",
    )
    .bind(&links)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE flowstone_jobs
            SET state = 'scheduled', scheduled_at = ?2, waiting_on = c.n
           FROM (SELECT e.value ->> 1 AS id, count(*) AS n FROM jsonb_each(?1) AS e
                  GROUP BY e.value ->> 1) AS c
          WHERE flowstone_jobs.id = c.id",
    )
    .bind(&links)
    .bind(super::WAITING_UNTIL_MICROS)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Releases what waits for the completions in `?2` (`[[id, attempt, ..], ..]`) that the
/// statement before applied at `?1`: the dependents' counts go down, those at zero become
/// available (due at their insert time, so they run before later work), and the edges used
/// go, so a retried acknowledgement (fenced out above) releases nothing twice. Most queues
/// have no waiting jobs: `EXISTS` on the edges, which SQLite evaluates once before the
/// joins, makes both statements nearly free then (they looked up every completed job
/// twice, an eighth of a drain's acknowledge-and-claim cycle).
const RELEASE: &str = "
         UPDATE flowstone_jobs
            SET waiting_on = flowstone_jobs.waiting_on - r.n,
                state = CASE WHEN flowstone_jobs.waiting_on - r.n <= 0 THEN 'available'
                             ELSE 'scheduled' END,
                scheduled_at = CASE WHEN flowstone_jobs.waiting_on - r.n <= 0
                                    THEN flowstone_jobs.inserted_at ELSE scheduled_at END
           FROM (SELECT d.downstream_id AS id, count(*) AS n
                   FROM jsonb_each(?2) AS a
                   JOIN flowstone_jobs AS u
                     ON u.id = a.value ->> 0 AND u.attempt = a.value ->> 1
                    AND u.state = 'completed' AND u.completed_at = ?1
                   JOIN flowstone_job_deps AS d ON d.upstream_id = u.id
                  WHERE EXISTS (SELECT 1 FROM flowstone_job_deps)
                  GROUP BY d.downstream_id) AS r
          WHERE flowstone_jobs.id = r.id AND flowstone_jobs.waiting_on > 0
            AND flowstone_jobs.state = 'scheduled';
         DELETE FROM flowstone_job_deps WHERE upstream_id IN (
             SELECT u.id FROM jsonb_each(?2) AS a
               JOIN flowstone_jobs AS u
                 ON u.id = a.value ->> 0 AND u.attempt = a.value ->> 1
                AND u.state = 'completed' AND u.completed_at = ?1
              WHERE EXISTS (SELECT 1 FROM flowstone_job_deps));";

/// Discards (or cancels, `state`) every job that waits, directly or not, for one of `roots`,
/// with the error naming the first root; returns their ids.
pub(crate) async fn block_dependents(
    conn: &mut SqliteConnection,
    roots: &[i64],
    state: &str,
) -> Result<Vec<i64>> {
    if roots.is_empty() {
        return Ok(Vec::new());
    }
    let now = now_micros();
    let rows = sqlx::query(
        "WITH RECURSIVE blocked(id) AS (
             SELECT downstream_id FROM flowstone_job_deps
              WHERE upstream_id IN (SELECT value FROM json_each(?1))
             UNION
             SELECT d.downstream_id FROM flowstone_job_deps AS d JOIN blocked AS b
                 ON d.upstream_id = b.id)
         UPDATE flowstone_jobs SET
             state = ?2, waiting_on = 0,
             discarded_at = CASE WHEN ?2 = 'discarded' THEN ?3 ELSE discarded_at END,
             cancelled_at = CASE WHEN ?2 = 'cancelled' THEN ?3 ELSE cancelled_at END,
             errors = json_insert(errors, '$[#]', json_object(
                 'attempt', attempt,
                 'at', strftime('%Y-%m-%dT%H:%M:%fZ', ?3 / 1000000.0, 'unixepoch'),
                 'error', ?4 || ': job ' || ?5 || ' it waits for was ' || ?2))
          WHERE id IN (SELECT id FROM blocked) AND waiting_on > 0
            AND state IN ('available', 'scheduled', 'retryable')
          RETURNING id",
    )
    .bind(serde_json::to_string(roots)?)
    .bind(state)
    .bind(now)
    .bind(super::UPSTREAM_FAILED)
    .bind(roots[0])
    .fetch_all(&mut *conn)
    .await?;
    let ids: Vec<i64> = rows
        .iter()
        .map(|r| r.try_get(0))
        .collect::<std::result::Result<_, _>>()?;
    let mut all = roots.to_vec();
    all.extend(&ids);
    sqlx::query(
        "DELETE FROM flowstone_job_deps WHERE upstream_id IN (SELECT value FROM json_each(?1))",
    )
    .bind(serde_json::to_string(&all)?)
    .execute(&mut *conn)
    .await?;
    Ok(ids)
}

/// Upstream jobs that ended without completing (or are gone) while jobs still wait for them,
/// with the state to give those jobs: what [`block_dependents`] did not get to.
pub(crate) async fn stuck_roots(conn: &mut SqliteConnection) -> Result<Vec<(i64, String)>> {
    let rows = sqlx::query(super::STUCK_ROOTS)
        .fetch_all(&mut *conn)
        .await?;
    pairs(&rows)
}

pub(crate) async fn active_by_unique_keys(
    conn: &mut SqliteConnection,
    keys: &[String],
) -> Result<Vec<(i64, String)>> {
    let rows = sqlx::query(
        "SELECT id, unique_key FROM flowstone_jobs
          WHERE unique_key IN (SELECT value FROM json_each(?1))
            AND state IN ('available', 'scheduled', 'executing', 'retryable')",
    )
    .bind(serde_json::to_string(keys)?)
    .fetch_all(conn)
    .await?;
    pairs(&rows)
}

pub(crate) async fn get(pool: &SqlitePool, id: i64) -> Result<Option<Job>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        job_columns!(),
        " FROM flowstone_jobs WHERE id = ?1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(job_from_row).transpose()
}

pub(crate) async fn list(pool: &SqlitePool, f: &JobFilter) -> Result<Vec<Job>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        job_columns!(),
        " FROM flowstone_jobs
          WHERE (?1 IS NULL OR queue = ?1) AND (?2 IS NULL OR state = ?2)
            AND (?3 IS NULL OR batch = ?3) AND id > ?4
          ORDER BY id LIMIT ?5"
    ))
    .bind(f.queue.as_deref())
    .bind(f.state.map(|s| s.as_str()))
    .bind(f.batch.as_deref())
    .bind(f.after_id.unwrap_or(0))
    .bind(f.limit.unwrap_or(100))
    .fetch_all(pool)
    .await?;
    rows.iter().map(job_from_row).collect()
}

pub(crate) async fn states(pool: &SqlitePool, ids: &[i64]) -> Result<Vec<(i64, String)>> {
    let rows = sqlx::query(
        "SELECT id, state FROM flowstone_jobs WHERE id IN (SELECT value FROM json_each(?1))",
    )
    .bind(serde_json::to_string(ids)?)
    .fetch_all(pool)
    .await?;
    pairs(&rows)
}

pub(crate) async fn get_many(pool: &SqlitePool, ids: &[i64]) -> Result<Vec<Job>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        job_columns!(),
        " FROM flowstone_jobs WHERE id IN (SELECT value FROM json_each(?1))"
    ))
    .bind(serde_json::to_string(ids)?)
    .fetch_all(pool)
    .await?;
    rows.iter().map(job_from_row).collect()
}

pub(crate) async fn count_batch(pool: &SqlitePool, batch: &str) -> Result<Vec<(String, i64)>> {
    let rows =
        sqlx::query("SELECT state, count(*) FROM flowstone_jobs WHERE batch = ?1 GROUP BY state")
            .bind(batch)
            .fetch_all(pool)
            .await?;
    pairs(&rows)
}

pub(crate) async fn cancel(
    conn: &mut SqliteConnection,
    target: CancelTarget<'_>,
) -> Result<Vec<i64>> {
    let query = match target {
        CancelTarget::Ids(ids) => sqlx::query(
            "UPDATE flowstone_jobs SET state = 'cancelled', cancelled_at = ?1
              WHERE id IN (SELECT value FROM json_each(?2))
                AND state IN ('available', 'scheduled', 'executing', 'retryable')
              RETURNING id",
        )
        .bind(now_micros())
        .bind(serde_json::to_string(ids)?),
        CancelTarget::Batch(batch) => sqlx::query(
            "UPDATE flowstone_jobs SET state = 'cancelled', cancelled_at = ?1
              WHERE batch = ?2
                AND state IN ('available', 'scheduled', 'executing', 'retryable')
              RETURNING id",
        )
        .bind(now_micros())
        .bind(batch.to_string()),
    };
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let rows = query.fetch_all(&mut *tx).await?;
    tx.commit().await?;
    rows.iter()
        .map(|r| r.try_get(0).map_err(Into::into))
        .collect()
}

pub(crate) async fn prune(
    conn: &mut SqliteConnection,
    older_than: Duration,
    limit: i64,
) -> Result<u64> {
    let done = sqlx::query(
        "DELETE FROM flowstone_jobs WHERE id IN (
            SELECT id FROM flowstone_jobs
             WHERE state IN ('completed', 'discarded', 'cancelled')
               AND coalesce(completed_at, discarded_at, cancelled_at) < ?1
             LIMIT ?2)",
    )
    .bind(now_micros() - micros(older_than))
    .bind(limit)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

pub(crate) async fn heartbeat(
    conn: &mut SqliteConnection,
    node: &str,
    queues: &[&str],
    kinds: &[String],
) -> Result<()> {
    let now = now_micros();
    let queues = serde_json::to_string(queues)?;
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    sqlx::query(
        "INSERT INTO flowstone_nodes (node, started_at, heartbeat_at, queues) VALUES (?1, ?2, ?2, ?3)
         ON CONFLICT (node) DO UPDATE SET
             heartbeat_at = excluded.heartbeat_at, queues = excluded.queues",
    )
    .bind(node)
    .bind(now)
    .bind(&queues)
    .execute(&mut *tx)
    .await?;
    // `WHERE true` lets SQLite parse the upsert after a join.
    sqlx::query(
        "INSERT INTO flowstone_kinds (queue, kind, served_at)
              SELECT q.value, k.value, ?1 FROM json_each(?2) AS q, json_each(?3) AS k WHERE true
         ON CONFLICT (queue, kind) DO UPDATE SET served_at = excluded.served_at",
    )
    .bind(now)
    .bind(&queues)
    .bind(serde_json::to_string(kinds)?)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Discards due jobs whose kind no worker has served on their queue for `after`.
pub(crate) async fn discard_unserved(
    conn: &mut SqliteConnection,
    after: Duration,
) -> Result<Vec<i64>> {
    let now = now_micros();
    let rows = sqlx::query(
        "UPDATE flowstone_jobs SET
             state = 'discarded', discarded_at = ?1,
             errors = json_insert(errors, '$[#]', json_object(
                 'attempt', attempt,
                 'at', strftime('%Y-%m-%dT%H:%M:%fZ', ?1 / 1000000.0, 'unixepoch'),
                 'error', 'no live worker has served job kind `' || kind || '` on queue `'
                          || queue || '` for ' || ?3 || ' s: discarded without running'))
          WHERE state IN ('available', 'scheduled', 'retryable')
            AND scheduled_at < ?2
            AND NOT EXISTS (SELECT 1 FROM flowstone_kinds AS k
                             WHERE k.queue = flowstone_jobs.queue AND k.kind = flowstone_jobs.kind
                               AND k.served_at > ?2)
          RETURNING id",
    )
    .bind(now)
    .bind(now - micros(after))
    .bind(after.as_secs_f64())
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| r.try_get(0).map_err(Into::into))
        .collect()
}

pub(crate) async fn nodes_serving(
    conn: &mut SqliteConnection,
    queue: &str,
    within: Duration,
) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT node FROM flowstone_nodes
          WHERE heartbeat_at >= ?2
            AND EXISTS (SELECT 1 FROM json_each(flowstone_nodes.queues) WHERE value = ?1)
          ORDER BY node",
    )
    .bind(queue)
    .bind(now_micros().saturating_sub(micros(within)))
    .fetch_all(conn)
    .await?)
}

pub(crate) async fn remove_node(conn: &mut SqliteConnection, node: &str) -> Result<()> {
    sqlx::query("DELETE FROM flowstone_nodes WHERE node = ?1")
        .bind(node)
        .execute(conn)
        .await?;
    Ok(())
}

pub(crate) async fn rescue(conn: &mut SqliteConnection, after: Duration) -> Result<Vec<i64>> {
    let now = now_micros();
    let cutoff = now - micros(after);
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let rows = sqlx::query(
        "UPDATE flowstone_jobs SET
             state = CASE WHEN attempt >= max_attempts THEN 'discarded' ELSE 'available' END,
             discarded_at = CASE WHEN attempt >= max_attempts THEN ?1 ELSE discarded_at END,
             scheduled_at = ?1,
             errors = json_insert(errors, '$[#]', json_object(
                 'attempt', attempt, 'at', strftime('%Y-%m-%dT%H:%M:%fZ', ?1 / 1000000.0, 'unixepoch'),
                 'error', 'node ' || coalesce(node, '(none)')
                          || ' stopped heartbeating during attempt ' || attempt))
          WHERE state = 'executing'
            AND NOT EXISTS (SELECT 1 FROM flowstone_nodes AS n
                             WHERE n.node = flowstone_jobs.node AND n.heartbeat_at > ?2)
          RETURNING id",
    )
    .bind(now)
    .bind(cutoff)
    .fetch_all(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM flowstone_nodes WHERE heartbeat_at < ?1")
        .bind(cutoff)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    rows.iter()
        .map(|r| r.try_get(0).map_err(Into::into))
        .collect()
}

pub(crate) async fn no_longer_ours(
    pool: &SqlitePool,
    node: &str,
    running: &[(i64, i32)],
) -> Result<Vec<i64>> {
    let rows = sqlx::query(
        "SELECT r.value ->> 0 FROM jsonb_each(?1) AS r
           LEFT JOIN flowstone_jobs AS j
             ON j.id = r.value ->> 0 AND j.attempt = r.value ->> 1
            AND j.state = 'executing' AND j.node = ?2
          WHERE j.id IS NULL",
    )
    .bind(serde_json::to_string(running)?)
    .bind(node)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| r.try_get(0).map_err(Into::into))
        .collect()
}

pub(crate) async fn executing_on(
    pool: &SqlitePool,
    node: &str,
    older_than: Duration,
) -> Result<Vec<(i64, i32)>> {
    let rows = sqlx::query(
        "SELECT id, attempt FROM flowstone_jobs
          WHERE state = 'executing' AND node = ?1 AND attempted_at < ?2",
    )
    .bind(node)
    .bind(now_micros() - micros(older_than))
    .fetch_all(pool)
    .await?;
    pairs(&rows)
}

pub(crate) async fn transition(
    conn: &mut SqliteConnection,
    id: i64,
    attempt: i32,
    to: &Transition,
) -> Result<bool> {
    let now = now_micros();
    let done = sqlx::query(
        "UPDATE flowstone_jobs SET
             state = ?3,
             scheduled_at = CASE WHEN ?4 IS NULL THEN scheduled_at ELSE ?9 + ?4 END,
             max_attempts = max_attempts + min(?5, 2147483647 - max_attempts), snoozed = snoozed + ?6, unhandled = unhandled + ?7,
             errors = CASE WHEN ?8 IS NULL THEN errors
                           ELSE json_insert(errors, '$[#]', json_object(
                                'attempt', attempt,
                                'at', strftime('%Y-%m-%dT%H:%M:%fZ', ?9 / 1000000.0, 'unixepoch'),
                                'error', ?8)) END,
             discarded_at = CASE WHEN ?3 = 'discarded' THEN ?9 ELSE discarded_at END,
             cancelled_at = CASE WHEN ?3 = 'cancelled' THEN ?9 ELSE cancelled_at END
          WHERE id = ?1 AND attempt = ?2 AND state = 'executing'",
    )
    .bind(id)
    .bind(attempt)
    .bind(to.state.as_str())
    .bind(to.delay.map(micros))
    .bind(to.extra_attempt)
    .bind(to.snoozed)
    .bind(to.unhandled)
    .bind(to.error.as_deref())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Writes `acks` and claims; returns the claimed jobs and the ids of the acks that applied
/// (the others were fenced out).
pub(crate) async fn ack_and_claim(
    conn: &mut SqliteConnection,
    acks: &[Ack],
    claim: Option<ClaimSpec<'_>>,
) -> Result<(Vec<Claimed>, Vec<i64>)> {
    let limit = claim.map_or(0, |c| c.limit);
    if acks.is_empty() && limit == 0 {
        return Ok((Vec::new(), Vec::new()));
    }
    let only_completes = acks.iter().all(|a| matches!(a, Ack::Complete { .. }));
    if only_completes {
        return complete_and_claim(conn, acks, claim).await;
    }
    let mut completes = Vec::new();
    let mut applied = Vec::with_capacity(acks.len());
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    for ack in acks {
        match ack {
            Ack::Complete {
                id,
                attempt,
                result,
            } => completes.push((*id, *attempt, result.as_deref())),
            Ack::Transition { id, attempt, to } => {
                if transition(tx.acquire().await?, *id, *attempt, to).await? {
                    applied.push(*id);
                }
            }
        }
    }
    let now = now_micros();
    if !completes.is_empty() {
        applied.extend(complete(&mut tx, &completes, now).await?);
    }
    let mut claimed = Vec::new();
    if let Some(c) = claim.filter(|c| c.limit > 0) {
        let rows = sqlx::query(
            "UPDATE flowstone_jobs
                SET state = 'executing', attempt = attempt + 1, attempted_at = ?1, node = ?2
              WHERE id IN (
                  SELECT id FROM flowstone_jobs
                   WHERE queue = ?3
                     AND state IN ('available', 'scheduled', 'retryable')
                     AND scheduled_at <= ?1
                     AND kind IN (SELECT value FROM json_each(?5))
                   ORDER BY priority, scheduled_at, id
                   LIMIT ?4 + 0)
             RETURNING id, queue, kind, args, meta, priority, attempt, max_attempts, snoozed,
                       scheduled_at",
        )
        .bind(now)
        .bind(c.node)
        .bind(c.queue)
        .bind(c.limit)
        .bind(c.kinds_json)
        .fetch_all(&mut *tx)
        .await?;
        claimed = rows
            .iter()
            .map(claimed_from_row)
            .collect::<Result<Vec<_>>>()?;
        claimed.sort_by_key(|c| (c.priority, c.scheduled_at, c.id));
    }
    tx.commit().await?;
    Ok((claimed, applied))
}

/// The common cycle in ONE round trip to SQLite's worker thread: a single query string of
/// four statements (`?N` parameters are shared by all of them). `LIMIT ?N + 0`, not
/// `LIMIT ?N`: SQLite's planner looks at a bare bound LIMIT and re-prepares the statement
/// whenever its value changes. The completion returns the ids it applied as one-column rows,
/// the claim its jobs as ten-column rows. On error the transaction
/// may be left open: the caller discards the connection, which rolls it back.
async fn complete_and_claim(
    conn: &mut SqliteConnection,
    acks: &[Ack],
    claim: Option<ClaimSpec<'_>>,
) -> Result<(Vec<Claimed>, Vec<i64>)> {
    let completes: Vec<(i64, i32, Option<&str>)> = acks
        .iter()
        .filter_map(|a| match a {
            Ack::Complete {
                id,
                attempt,
                result,
            } => Some((*id, *attempt, result.as_deref())),
            Ack::Transition { .. } => None,
        })
        .collect();
    let (queue, node, limit, kinds) = claim.map_or(("", "", 0, "[]"), |c| {
        (c.queue, c.node, c.limit, c.kinds_json)
    });
    static CYCLE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        String::from(
            "BEGIN IMMEDIATE;
         UPDATE flowstone_jobs
            SET state = 'completed', completed_at = ?1, result = a.value ->> 2
           FROM jsonb_each(?2) AS a
          WHERE flowstone_jobs.id = a.value ->> 0
            AND flowstone_jobs.attempt = a.value ->> 1
            AND flowstone_jobs.state = 'executing'
         RETURNING flowstone_jobs.id;",
        ) + RELEASE
            + "
         UPDATE flowstone_jobs
            SET state = 'executing', attempt = attempt + 1, attempted_at = ?1, node = ?3
          WHERE id IN (
              SELECT id FROM flowstone_jobs
               WHERE queue = ?4
                 AND state IN ('available', 'scheduled', 'retryable')
                 AND scheduled_at <= ?1
                 AND kind IN (SELECT value FROM json_each(?6))
               ORDER BY priority, scheduled_at, id
               LIMIT ?5 + 0)
         RETURNING id, queue, kind, args, meta, priority, attempt, max_attempts, snoozed,
                   scheduled_at;
         COMMIT;"
    });
    let rows = sqlx::query(CYCLE.as_str())
        .bind(now_micros())
        .bind(serde_json::to_string(&completes)?)
        .bind(node)
        .bind(queue)
        .bind(limit)
        .bind(kinds)
        .fetch_all(&mut *conn)
        .await;
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => {
            // A statement after BEGIN failed: do not leave the transaction open.
            let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
            return Err(e.into());
        }
    };
    let mut applied = Vec::with_capacity(completes.len());
    let mut claimed = Vec::with_capacity(rows.len());
    for row in &rows {
        if row.len() == 1 {
            applied.push(row.try_get(0)?);
        } else {
            claimed.push(claimed_from_row(row)?);
        }
    }
    claimed.sort_by_key(|c| (c.priority, c.scheduled_at, c.id));
    Ok((claimed, applied))
}

/// Completes attempts `(id, attempt, result)` fenced by their state, inside the caller's
/// transaction (acks, and `crate::transaction`); returns the ids that applied.
pub(crate) async fn complete(
    conn: &mut SqliteConnection,
    completes: &[(i64, i32, Option<&str>)],
    now: i64,
) -> Result<Vec<i64>> {
    // [[id, attempt, result-json-text-or-null], ...]
    let rows = sqlx::query(
        "UPDATE flowstone_jobs
            SET state = 'completed', completed_at = ?1, result = a.value ->> 2
           FROM jsonb_each(?2) AS a
          WHERE flowstone_jobs.id = a.value ->> 0
            AND flowstone_jobs.attempt = a.value ->> 1
            AND flowstone_jobs.state = 'executing'
         RETURNING flowstone_jobs.id",
    )
    .bind(now)
    .bind(serde_json::to_string(completes)?)
    .fetch_all(&mut *conn)
    .await?;
    let applied: Vec<i64> = rows
        .iter()
        .map(|row| row.try_get(0))
        .collect::<std::result::Result<_, _>>()?;
    if !applied.is_empty() {
        release(conn, completes, now).await?;
    }
    Ok(applied)
}

/// [`RELEASE`] on its own (after completions applied at `now` in this transaction).
async fn release(
    conn: &mut SqliteConnection,
    completes: &[(i64, i32, Option<&str>)],
    now: i64,
) -> Result<()> {
    let ids: Vec<(i64, i32)> = completes
        .iter()
        .map(|(id, attempt, _)| (*id, *attempt))
        .collect();
    let json = serde_json::to_string(&ids)?;
    for statement in RELEASE.split(';').filter(|s| !s.trim().is_empty()) {
        sqlx::query(statement)
            .bind(now)
            .bind(&json)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

// ---- leases (see `crate::lease`) -----------------------------------------------------

/// Takes or renews the lease `name` for `holder`; expiry by this host's clock (all
/// processes sharing the file share the host).
pub(crate) async fn acquire_lease(
    conn: &mut SqliteConnection,
    name: &str,
    holder: &str,
    ttl: Duration,
) -> Result<bool> {
    let now = now_micros();
    let won = sqlx::query(
        "INSERT INTO flowstone_leases (name, holder, expires_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (name) DO UPDATE SET
             holder = excluded.holder, expires_at = excluded.expires_at
         WHERE flowstone_leases.holder = excluded.holder
            OR flowstone_leases.expires_at <= ?4
         RETURNING holder",
    )
    .bind(name)
    .bind(holder)
    .bind(now.saturating_add(micros(ttl)))
    .bind(now)
    .fetch_optional(conn)
    .await?;
    Ok(won.is_some())
}

pub(crate) async fn release_lease(
    conn: &mut SqliteConnection,
    name: &str,
    holder: &str,
) -> Result<bool> {
    let done = sqlx::query("DELETE FROM flowstone_leases WHERE name = ?1 AND holder = ?2")
        .bind(name)
        .bind(holder)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// The holder of an unexpired lease `name` and its expiry in epoch microseconds.
pub(crate) async fn lease_holder(pool: &SqlitePool, name: &str) -> Result<Option<(String, i64)>> {
    Ok(sqlx::query_as(
        "SELECT holder, expires_at FROM flowstone_leases
         WHERE name = ?1 AND expires_at > ?2",
    )
    .bind(name)
    .bind(now_micros())
    .fetch_optional(pool)
    .await?)
}

// ---- migrations (see `crate::migrate`) -----------------------------------------------

const CREATE_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS flowstone_migrations (
    component TEXT NOT NULL, version INTEGER NOT NULL, name TEXT NOT NULL,
    applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    checksum TEXT,
    PRIMARY KEY (component, version))";
/// Tables made before checksums existed lack the column (SQLite has no `ADD COLUMN IF NOT
/// EXISTS`: the runner asks first).
const HAS_CHECKSUM: &str =
    "SELECT count(*) FROM pragma_table_info('flowstone_migrations') WHERE name = 'checksum'";
const ADD_CHECKSUM: &str = "ALTER TABLE flowstone_migrations ADD COLUMN checksum TEXT";

/// Runs `migrator` in one `BEGIN IMMEDIATE` transaction, which also keeps concurrent
/// runners out: all its migrations apply, or none.
pub(crate) async fn run_migrations(pool: &SqlitePool, migrator: &Migrator) -> Result<Vec<i64>> {
    let component = migrator.component();
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    tx.execute(CREATE_MIGRATIONS_TABLE).await?;
    let has_checksum: i64 = sqlx::query_scalar(HAS_CHECKSUM).fetch_one(&mut *tx).await?;
    if has_checksum == 0 {
        tx.execute(ADD_CHECKSUM).await?;
    }
    let rows =
        sqlx::query("SELECT version, checksum FROM flowstone_migrations WHERE component = ?")
            .bind(component)
            .fetch_all(&mut *tx)
            .await?;
    let plan = migrator.plan(Engine::Sqlite, recorded(rows)?)?;
    for (version, checksum) in &plan.backfill {
        sqlx::query(
            "UPDATE flowstone_migrations SET checksum = ? \
             WHERE component = ? AND version = ?",
        )
        .bind(checksum)
        .bind(component)
        .bind(version)
        .execute(&mut *tx)
        .await?;
    }
    let mut done = Vec::new();
    for (m, checksum) in plan.pending {
        sqlx::raw_sql(m.sqlite)
            .execute(&mut *tx)
            .await
            .map_err(|e| migrator.failed(m, e))?;
        sqlx::query(
            "INSERT INTO flowstone_migrations (component, version, name, checksum) \
             VALUES (?, ?, ?, ?)",
        )
        .bind(component)
        .bind(m.version)
        .bind(m.name)
        .bind(checksum)
        .execute(&mut *tx)
        .await?;
        done.push(m.version);
    }
    tx.commit().await?;
    Ok(done)
}
