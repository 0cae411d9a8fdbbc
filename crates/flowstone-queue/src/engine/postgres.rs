//! The PostgreSQL dialect of the queue's operations. Claims use
//! `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED LIMIT n)`, so concurrent workers
//! never wait on each other's rows; completions of the previous round ride in the same
//! statement (a data-modifying CTE), so one round trip and one commit both acknowledge and
//! claim. Batches travel as arrays (`unnest`), so statement text is constant and prepared
//! once. Inserts and finished jobs are announced by triggers (see the migration).

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, Executor, PgConnection, PgPool, Row};

use super::{
    Ack, CancelTarget, ClaimSpec, Claimed, Transition, claimed_from_row, job_from_row, micros,
    pairs,
};
use crate::database::{ConnectOptions, Engine, bad_url, unreachable, within};
use crate::durability::Durability;
use crate::error::Result;
use crate::job::{Job, JobFilter, NewJob};
use crate::migrate::{Migrator, recorded};

// ---- connecting ----------------------------------------------------------------------

/// Opens the pool for a `postgres:` URL.
pub(crate) async fn connect(url: &str, shown: &str, options: &ConnectOptions) -> Result<PgPool> {
    let mut opts = PgConnectOptions::from_str(url).map_err(|e| bad_url(shown, e))?;
    if options.durability == Durability::Relaxed {
        // Every connection of the pool commits without waiting for the WAL flush.
        opts = opts.options([("synchronous_commit", "off")]);
    }
    // One direct connection first: fails at once (the pool would retry until its
    // acquire timeout) and says why.
    let probe = within(options.acquire_timeout, PgConnection::connect_with(&opts))
        .await
        .map_err(|e| unreachable(shown, e))?;
    let _ = probe.close().await;
    PgPoolOptions::new()
        .max_connections(options.max_connections.unwrap_or(10))
        .acquire_timeout(options.acquire_timeout)
        .connect_with(opts)
        .await
        .map_err(|e| unreachable(shown, e))
}

// ---- jobs ----------------------------------------------------------------------------

/// The job columns, with JSON as text and timestamps as epoch microseconds (the shape
/// `job_from_row` decodes on both engines).
macro_rules! job_columns {
    () => {
        "id, queue, kind, args::text AS args, meta::text AS meta, priority, state, attempt, \
         max_attempts, snoozed, unhandled, errors::text AS errors, result::text AS result, \
         unique_key, batch, node, \
         (extract(epoch FROM inserted_at) * 1000000)::int8 AS inserted_at, \
         (extract(epoch FROM scheduled_at) * 1000000)::int8 AS scheduled_at, \
         (extract(epoch FROM attempted_at) * 1000000)::int8 AS attempted_at, \
         (extract(epoch FROM completed_at) * 1000000)::int8 AS completed_at, \
         (extract(epoch FROM cancelled_at) * 1000000)::int8 AS cancelled_at, \
         (extract(epoch FROM discarded_at) * 1000000)::int8 AS discarded_at"
    };
}

/// Claims are leases: a claim lost in a server crash only makes its job available again,
/// which at-least-once delivery allows. So the claim connection commits without waiting for
/// the WAL flush; inserts and acks (completions, retries, …) stay durable.
pub(crate) async fn prepare_claim_connection(conn: &mut PgConnection) -> Result<()> {
    sqlx::query("SET synchronous_commit = off")
        .execute(conn)
        .await?;
    Ok(())
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// The insert of a chunk, one array per column, rows in input order (so identities follow
/// it). A chunk with unique keys adds `on_key_conflict!`.
macro_rules! insert_rows {
    () => {
        "INSERT INTO flowstone_jobs
             (queue, kind, args, meta, priority, state, max_attempts, scheduled_at, unique_key, batch)
         SELECT q, k, a::jsonb, m::jsonb, p,
                CASE WHEN s > now() THEN 'scheduled' ELSE 'available' END,
                x, coalesce(s, now()), u, b
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int4[], $6::int4[],
                       $7::timestamptz[], $8::text[], $9::text[])
                WITH ORDINALITY AS t(q, k, a, m, p, x, s, u, b, ord)
          ORDER BY ord"
    };
}

/// A job whose key an active job holds is left out (the caller finds the holder).
macro_rules! on_key_conflict {
    () => {
        " ON CONFLICT (unique_key)
            WHERE unique_key IS NOT NULL
              AND state IN ('available', 'scheduled', 'executing', 'retryable')
            DO NOTHING"
    };
}

/// Inserts one chunk of jobs in one statement; returns `(id, unique key)` of the rows
/// inserted, by id, which follows input order. A chunk without unique keys cannot conflict
/// and goes without `ON CONFLICT`: that clause makes every row a speculative insertion (a
/// check of the arbiter index first, a confirmation record after), about an eighth more WAL
/// per job for nothing.
pub(crate) async fn insert(
    conn: &mut PgConnection,
    jobs: &[&NewJob],
    keys: &[Option<&str>],
) -> Result<Vec<(i64, Option<String>)>> {
    let sql = if keys.iter().all(Option::is_none) {
        concat!(insert_rows!(), " RETURNING id, unique_key")
    } else {
        concat!(
            insert_rows!(),
            on_key_conflict!(),
            " RETURNING id, unique_key"
        )
    };
    let rows = sqlx::query(sql)
        .bind(jobs.iter().map(|j| j.queue.as_str()).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.kind.as_str()).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.args.as_str()).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.meta.as_str()).collect::<Vec<_>>())
        .bind(
            jobs.iter()
                .map(|j| i32::from(j.priority))
                .collect::<Vec<_>>(),
        )
        .bind(jobs.iter().map(|j| j.max_attempts).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.scheduled_at).collect::<Vec<_>>())
        .bind(keys.to_vec())
        .bind(jobs.iter().map(|j| j.batch.as_deref()).collect::<Vec<_>>())
        .fetch_all(conn)
        .await?;
    let mut out: Vec<(i64, Option<String>)> = pairs(&rows)?;
    out.sort_unstable_by_key(|(id, _)| *id);
    Ok(out)
}

/// Records `links` (upstream id, downstream id) and makes each downstream job wait for its
/// upstream jobs, in the caller's insert transaction.
pub(crate) async fn link(conn: &mut PgConnection, links: &[(i64, i64)]) -> Result<()> {
    let ups: Vec<i64> = links.iter().map(|(u, _)| *u).collect();
    let downs: Vec<i64> = links.iter().map(|(_, d)| *d).collect();
    sqlx::query(
        "WITH edges AS (
             INSERT INTO flowstone_job_deps (upstream_id, downstream_id)
                  SELECT * FROM unnest($1::int8[], $2::int8[])
             ON CONFLICT DO NOTHING)
         UPDATE flowstone_jobs AS j
            SET state = 'scheduled', waiting_on = c.n,
                scheduled_at = to_timestamp($3::float8 / 1000000)
           FROM (SELECT d AS id, count(*) AS n FROM unnest($2::int8[]) AS t(d) GROUP BY d) AS c
          WHERE j.id = c.id",
    )
    .bind(ups)
    .bind(downs)
    .bind(super::WAITING_UNTIL_MICROS as f64)
    .execute(conn)
    .await?;
    Ok(())
}

/// Discards (or cancels, `state`) every job that waits, directly or not, for one of `roots`,
/// with the error naming the first root; returns their ids.
pub(crate) async fn block_dependents(
    conn: &mut PgConnection,
    roots: &[i64],
    state: &str,
) -> Result<Vec<i64>> {
    if roots.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(
        "WITH RECURSIVE blocked(id) AS (
             SELECT downstream_id FROM flowstone_job_deps WHERE upstream_id = ANY($1)
             UNION
             SELECT d.downstream_id FROM flowstone_job_deps AS d JOIN blocked AS b
                 ON d.upstream_id = b.id),
         done AS (
             UPDATE flowstone_jobs SET
                 state = $2::text, waiting_on = 0,
                 discarded_at = CASE WHEN $2::text = 'discarded' THEN now() ELSE discarded_at END,
                 cancelled_at = CASE WHEN $2::text = 'cancelled' THEN now() ELSE cancelled_at END,
                 errors = errors || jsonb_build_array(jsonb_build_object(
                     'attempt', attempt, 'at', now(),
                     'error', $3::text || ': job ' || $4::text || ' it waits for was ' || $2::text))
              WHERE id IN (SELECT id FROM blocked) AND waiting_on > 0
                AND state IN ('available', 'scheduled', 'retryable')
              RETURNING id),
         gone AS (
             DELETE FROM flowstone_job_deps
              WHERE upstream_id = ANY($1) OR upstream_id IN (SELECT id FROM done))
         SELECT id FROM done",
    )
    .bind(roots)
    .bind(state)
    .bind(super::UPSTREAM_FAILED)
    .bind(roots[0].to_string())
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| r.try_get(0).map_err(Into::into))
        .collect()
}

/// Upstream jobs that ended without completing (or are gone) while jobs still wait for them,
/// with the state to give those jobs: what [`block_dependents`] did not get to.
pub(crate) async fn stuck_roots(conn: &mut PgConnection) -> Result<Vec<(i64, String)>> {
    let rows = sqlx::query(super::STUCK_ROOTS).fetch_all(conn).await?;
    pairs(&rows)
}

pub(crate) async fn active_by_unique_keys(
    conn: &mut PgConnection,
    keys: &[String],
) -> Result<Vec<(i64, String)>> {
    let rows = sqlx::query(
        "SELECT id, unique_key FROM flowstone_jobs
          WHERE unique_key = ANY($1)
            AND state IN ('available', 'scheduled', 'executing', 'retryable')",
    )
    .bind(keys)
    .fetch_all(conn)
    .await?;
    pairs(&rows)
}

pub(crate) async fn get(pool: &PgPool, id: i64) -> Result<Option<Job>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        job_columns!(),
        " FROM flowstone_jobs WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(job_from_row).transpose()
}

pub(crate) async fn list(pool: &PgPool, f: &JobFilter) -> Result<Vec<Job>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        job_columns!(),
        " FROM flowstone_jobs
          WHERE ($1::text IS NULL OR queue = $1) AND ($2::text IS NULL OR state = $2)
            AND ($3::text IS NULL OR batch = $3) AND id > $4
          ORDER BY id LIMIT $5"
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

pub(crate) async fn states(pool: &PgPool, ids: &[i64]) -> Result<Vec<(i64, String)>> {
    let rows = sqlx::query("SELECT id, state FROM flowstone_jobs WHERE id = ANY($1)")
        .bind(ids)
        .fetch_all(pool)
        .await?;
    pairs(&rows)
}

pub(crate) async fn get_many(pool: &PgPool, ids: &[i64]) -> Result<Vec<Job>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        job_columns!(),
        " FROM flowstone_jobs WHERE id = ANY($1)"
    ))
    .bind(ids)
    .fetch_all(pool)
    .await?;
    rows.iter().map(job_from_row).collect()
}

pub(crate) async fn count_batch(pool: &PgPool, batch: &str) -> Result<Vec<(String, i64)>> {
    let rows =
        sqlx::query("SELECT state, count(*) FROM flowstone_jobs WHERE batch = $1 GROUP BY state")
            .bind(batch)
            .fetch_all(pool)
            .await?;
    pairs(&rows)
}

pub(crate) async fn cancel(pool: &PgPool, target: CancelTarget<'_>) -> Result<Vec<i64>> {
    let query = match target {
        CancelTarget::Ids(ids) => sqlx::query(
            "UPDATE flowstone_jobs SET state = 'cancelled', cancelled_at = now()
              WHERE id = ANY($1)
                AND state IN ('available', 'scheduled', 'executing', 'retryable')
              RETURNING id",
        )
        .bind(ids),
        CancelTarget::Batch(batch) => sqlx::query(
            "UPDATE flowstone_jobs SET state = 'cancelled', cancelled_at = now()
              WHERE batch = $1
                AND state IN ('available', 'scheduled', 'executing', 'retryable')
              RETURNING id",
        )
        .bind(batch),
    };
    let rows = query.fetch_all(pool).await?;
    rows.iter()
        .map(|r| r.try_get(0).map_err(Into::into))
        .collect()
}

pub(crate) async fn prune(pool: &PgPool, older_than: Duration, limit: i64) -> Result<u64> {
    let done = sqlx::query(
        "DELETE FROM flowstone_jobs WHERE id IN (
            SELECT id FROM flowstone_jobs
             WHERE state IN ('completed', 'discarded', 'cancelled')
               AND coalesce(completed_at, discarded_at, cancelled_at)
                   < now() - make_interval(secs => $1)
             LIMIT $2)",
    )
    .bind(secs(older_than))
    .bind(limit)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

pub(crate) async fn heartbeat(
    pool: &PgPool,
    node: &str,
    queues: &[&str],
    kinds: &[String],
) -> Result<()> {
    sqlx::query(
        "WITH node AS (
             INSERT INTO flowstone_nodes (node, queues) VALUES ($1, $2)
             ON CONFLICT (node) DO UPDATE SET heartbeat_at = now(), queues = excluded.queues)
         INSERT INTO flowstone_kinds (queue, kind, served_at)
              SELECT q, k, now() FROM unnest($2::text[]) AS q, unnest($3::text[]) AS k
         ON CONFLICT (queue, kind) DO UPDATE SET served_at = excluded.served_at",
    )
    .bind(node)
    .bind(queues)
    .bind(kinds)
    .execute(pool)
    .await?;
    Ok(())
}

/// Discards due jobs whose kind no worker has served on their queue for `after`.
pub(crate) async fn discard_unserved(pool: &PgPool, after: Duration) -> Result<Vec<i64>> {
    let rows = sqlx::query(
        "UPDATE flowstone_jobs AS j SET
             state = 'discarded', discarded_at = now(),
             errors = errors || jsonb_build_array(jsonb_build_object(
                 'attempt', attempt, 'at', now(),
                 'error', 'no live worker has served job kind `' || kind || '` on queue `'
                          || queue || '` for ' || $1::float8 || ' s: discarded without running'))
          WHERE state IN ('available', 'scheduled', 'retryable')
            AND scheduled_at < now() - make_interval(secs => $1)
            AND NOT EXISTS (SELECT 1 FROM flowstone_kinds AS k
                             WHERE k.queue = j.queue AND k.kind = j.kind
                               AND k.served_at > now() - make_interval(secs => $1))
          RETURNING id",
    )
    .bind(secs(after))
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| r.try_get(0).map_err(Into::into))
        .collect()
}

pub(crate) async fn nodes_serving(
    pool: &PgPool,
    queue: &str,
    within: Duration,
) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT node FROM flowstone_nodes
          WHERE heartbeat_at >= now() - make_interval(secs => $2) AND $1 = ANY(queues)
          ORDER BY node",
    )
    .bind(queue)
    .bind(within.as_secs_f64())
    .fetch_all(pool)
    .await?)
}

pub(crate) async fn remove_node(pool: &PgPool, node: &str) -> Result<()> {
    sqlx::query("DELETE FROM flowstone_nodes WHERE node = $1")
        .bind(node)
        .execute(pool)
        .await?;
    Ok(())
}

pub(crate) async fn rescue(pool: &PgPool, after: Duration) -> Result<Vec<i64>> {
    let mut tx = pool.begin().await?;
    let rows = sqlx::query(
        "UPDATE flowstone_jobs AS j SET
             state = CASE WHEN attempt >= max_attempts THEN 'discarded' ELSE 'available' END,
             discarded_at = CASE WHEN attempt >= max_attempts THEN now() ELSE discarded_at END,
             scheduled_at = now(),
             errors = errors || jsonb_build_array(jsonb_build_object(
                 'attempt', attempt, 'at', now(),
                 'error', 'node ' || coalesce(node, '(none)')
                          || ' stopped heartbeating during attempt ' || attempt))
          WHERE state = 'executing'
            AND NOT EXISTS (SELECT 1 FROM flowstone_nodes AS n
                             WHERE n.node = j.node
                               AND n.heartbeat_at > now() - make_interval(secs => $1))
          RETURNING id",
    )
    .bind(secs(after))
    .fetch_all(&mut *tx)
    .await?;
    sqlx::query(
        "DELETE FROM flowstone_nodes WHERE heartbeat_at < now() - make_interval(secs => $1)",
    )
    .bind(secs(after))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    rows.iter()
        .map(|r| r.try_get(0).map_err(Into::into))
        .collect()
}

pub(crate) async fn no_longer_ours(
    pool: &PgPool,
    node: &str,
    running: &[(i64, i32)],
) -> Result<Vec<i64>> {
    let rows = sqlx::query(
        "SELECT r.id FROM unnest($1::int8[], $2::int4[]) AS r(id, attempt)
           LEFT JOIN flowstone_jobs AS j
             ON j.id = r.id AND j.attempt = r.attempt AND j.state = 'executing' AND j.node = $3
          WHERE j.id IS NULL",
    )
    .bind(running.iter().map(|r| r.0).collect::<Vec<_>>())
    .bind(running.iter().map(|r| r.1).collect::<Vec<_>>())
    .bind(node)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| r.try_get(0).map_err(Into::into))
        .collect()
}

pub(crate) async fn executing_on(
    pool: &PgPool,
    node: &str,
    older_than: Duration,
) -> Result<Vec<(i64, i32)>> {
    let rows = sqlx::query(
        "SELECT id, attempt FROM flowstone_jobs
          WHERE state = 'executing' AND node = $1
            AND attempted_at < now() - make_interval(secs => $2)",
    )
    .bind(node)
    .bind(secs(older_than))
    .fetch_all(pool)
    .await?;
    pairs(&rows)
}

pub(crate) async fn transition(
    conn: &mut PgConnection,
    id: i64,
    attempt: i32,
    to: &Transition,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE flowstone_jobs SET
             state = $3,
             scheduled_at = CASE WHEN $4::float8 IS NULL THEN scheduled_at
                                 ELSE now() + make_interval(secs => $4::float8) END,
             max_attempts = max_attempts + least($5, 2147483647 - max_attempts), snoozed = snoozed + $6, unhandled = unhandled + $7,
             errors = CASE WHEN $8::text IS NULL THEN errors
                           ELSE errors || jsonb_build_array(jsonb_build_object(
                                'attempt', attempt, 'at', now(), 'error', $8::text)) END,
             discarded_at = CASE WHEN $3 = 'discarded' THEN now() ELSE discarded_at END,
             cancelled_at = CASE WHEN $3 = 'cancelled' THEN now() ELSE cancelled_at END
          WHERE id = $1 AND attempt = $2 AND state = 'executing'",
    )
    .bind(id)
    .bind(attempt)
    .bind(to.state.as_str())
    .bind(to.delay.map(secs))
    .bind(to.extra_attempt)
    .bind(to.snoozed)
    .bind(to.unhandled)
    .bind(to.error.as_deref())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Writes `acks` and claims in one statement; returns the claimed jobs and the ids of the
/// acks that applied (the others were fenced out). The completions' ids come back as rows
/// whose other columns are NULL.
pub(crate) async fn ack_and_claim(
    conn: &mut PgConnection,
    acks: &[Ack],
    claim: Option<ClaimSpec<'_>>,
) -> Result<(Vec<Claimed>, Vec<i64>)> {
    let mut ids = Vec::new();
    let mut attempts = Vec::new();
    let mut results = Vec::new();
    let mut applied = Vec::with_capacity(acks.len());
    for ack in acks {
        match ack {
            Ack::Complete {
                id,
                attempt,
                result,
            } => {
                ids.push(*id);
                attempts.push(*attempt);
                results.push(result.as_deref());
            }
            Ack::Transition { id, attempt, to } => {
                if transition(conn, *id, *attempt, to).await? {
                    applied.push(*id);
                }
            }
        }
    }
    let (queue, node, limit, kinds) = claim.map_or(("", "", 0, &[][..]), |c| {
        (c.queue, c.node, c.limit, c.kinds)
    });
    if ids.is_empty() && limit == 0 {
        return Ok((Vec::new(), applied));
    }
    let rows = sqlx::query(
        "WITH acked AS (
             UPDATE flowstone_jobs AS j
                SET state = 'completed', completed_at = now(), result = a.result::jsonb
               FROM unnest($1::int8[], $2::int4[], $3::text[]) AS a(id, attempt, result)
              WHERE j.id = a.id AND j.attempt = a.attempt AND j.state = 'executing'
             RETURNING j.id),
         -- What waits for the completions above: counts down, available at zero (due at its
         -- insert time), and the edges used go, so a retried acknowledgement (fenced out
         -- above) releases nothing twice.
         used AS (
             DELETE FROM flowstone_job_deps AS d USING acked
              WHERE d.upstream_id = acked.id
             RETURNING d.downstream_id),
         released AS (
             UPDATE flowstone_jobs AS w
                SET waiting_on = w.waiting_on - r.n,
                    state = CASE WHEN w.waiting_on - r.n <= 0 THEN 'available' ELSE w.state END,
                    scheduled_at = CASE WHEN w.waiting_on - r.n <= 0 THEN w.inserted_at
                                        ELSE w.scheduled_at END
               FROM (SELECT downstream_id, count(*) AS n FROM used GROUP BY downstream_id) AS r
              WHERE w.id = r.downstream_id AND w.waiting_on > 0 AND w.state = 'scheduled'
             RETURNING w.id),
         claimed AS (
             UPDATE flowstone_jobs
                SET state = 'executing', attempt = attempt + 1, attempted_at = now(), node = $4
              WHERE id IN (
                  SELECT id FROM flowstone_jobs
                   WHERE queue = $5
                     AND state IN ('available', 'scheduled', 'retryable')
                     AND scheduled_at <= now()
                     AND kind = ANY($7)
                   ORDER BY priority, scheduled_at, id
                   LIMIT $6
                   FOR UPDATE SKIP LOCKED)
             RETURNING id, queue, kind, args::text, meta::text, priority, attempt,
                       max_attempts, snoozed,
                       (extract(epoch FROM scheduled_at) * 1000000)::int8)
         SELECT * FROM claimed
         UNION ALL
         SELECT id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM acked",
    )
    .bind(ids)
    .bind(attempts)
    .bind(results)
    .bind(node)
    .bind(queue)
    .bind(limit)
    .bind(kinds)
    .fetch_all(conn)
    .await?;
    let mut claimed = Vec::with_capacity(rows.len());
    for row in &rows {
        if row.try_get::<Option<String>, _>(1)?.is_none() {
            applied.push(row.try_get(0)?);
        } else {
            claimed.push(claimed_from_row(row)?);
        }
    }
    claimed.sort_by_key(|c| (c.priority, c.scheduled_at, c.id));
    Ok((claimed, applied))
}

// ---- leases (see `crate::lease`) -----------------------------------------------------

/// Takes or renews the lease `name` for `holder`; expiry by the server's clock (nodes'
/// clocks may differ).
pub(crate) async fn acquire_lease(
    pool: &PgPool,
    name: &str,
    holder: &str,
    ttl: Duration,
) -> Result<bool> {
    let won = sqlx::query(
        "INSERT INTO flowstone_leases (name, holder, expires_at)
             VALUES ($1, $2, now() + $3 * interval '1 microsecond')
             ON CONFLICT (name) DO UPDATE SET
                 holder = excluded.holder, expires_at = excluded.expires_at
             WHERE flowstone_leases.holder = excluded.holder
                OR flowstone_leases.expires_at <= now()
             RETURNING holder",
    )
    .bind(name)
    .bind(holder)
    .bind(micros(ttl))
    .fetch_optional(pool)
    .await?;
    Ok(won.is_some())
}

pub(crate) async fn release_lease(pool: &PgPool, name: &str, holder: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM flowstone_leases WHERE name = $1 AND holder = $2")
        .bind(name)
        .bind(holder)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// The holder of an unexpired lease `name` and its expiry in epoch microseconds.
pub(crate) async fn lease_holder(pool: &PgPool, name: &str) -> Result<Option<(String, i64)>> {
    Ok(sqlx::query_as(
        "SELECT holder, (extract(epoch FROM expires_at) * 1000000)::int8
         FROM flowstone_leases WHERE name = $1 AND expires_at > now()",
    )
    .bind(name)
    .fetch_optional(pool)
    .await?)
}

// ---- migrations (see `crate::migrate`) -----------------------------------------------

/// Key of the advisory lock that serialises migration runners ("fsmigrat").
const MIGRATION_LOCK_KEY: i64 = 0x6673_6d69_6772_6174;

const CREATE_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS flowstone_migrations (
    component text NOT NULL, version bigint NOT NULL, name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    checksum text,
    PRIMARY KEY (component, version));
    ALTER TABLE flowstone_migrations ADD COLUMN IF NOT EXISTS checksum text";

/// Runs `migrator` under a session advisory lock (concurrent runners wait), each migration
/// in its own transaction together with its record.
pub(crate) async fn run_migrations(pool: &PgPool, migrator: &Migrator) -> Result<Vec<i64>> {
    let mut conn = pool.acquire().await?;
    conn.execute(sqlx::query("SELECT pg_advisory_lock($1)").bind(MIGRATION_LOCK_KEY))
        .await?;
    let outcome = run_migrations_locked(&mut conn, migrator).await;
    let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(MIGRATION_LOCK_KEY)
        .execute(&mut *conn)
        .await;
    if unlocked.is_err() {
        // Closing the session releases the lock for sure.
        conn.close_on_drop();
    }
    outcome
}

async fn run_migrations_locked(conn: &mut PgConnection, migrator: &Migrator) -> Result<Vec<i64>> {
    let component = migrator.component();
    sqlx::raw_sql(CREATE_MIGRATIONS_TABLE)
        .execute(&mut *conn)
        .await?;
    let rows =
        sqlx::query("SELECT version, checksum FROM flowstone_migrations WHERE component = $1")
            .bind(component)
            .fetch_all(&mut *conn)
            .await?;
    let plan = migrator.plan(Engine::Postgres, recorded(rows)?)?;
    for (version, checksum) in &plan.backfill {
        sqlx::query(
            "UPDATE flowstone_migrations SET checksum = $1 \
             WHERE component = $2 AND version = $3",
        )
        .bind(checksum)
        .bind(component)
        .bind(version)
        .execute(&mut *conn)
        .await?;
    }
    let mut done = Vec::new();
    for (m, checksum) in plan.pending {
        let mut tx = conn.begin().await?;
        sqlx::raw_sql(m.postgres)
            .execute(&mut *tx)
            .await
            .map_err(|e| migrator.failed(m, e))?;
        sqlx::query(
            "INSERT INTO flowstone_migrations (component, version, name, checksum) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(component)
        .bind(m.version)
        .bind(m.name)
        .bind(checksum)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        done.push(m.version);
    }
    Ok(done)
}
