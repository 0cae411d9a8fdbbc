//! Queue benchmarks: drain throughput (fresh and with 200,000 finished rows of history),
//! bulk insert rate, the same claim-and-complete work as bare batched SQL on the same
//! database (the floor a queue library cannot beat), and insert-to-handler latency. Each
//! runs on SQLite (a temporary file) and on PostgreSQL (a fresh database created from
//! `FLOWSTONE_TEST_PG_URL`, default `postgres://postgres@127.0.0.1:5432/test`, dropped
//! afterwards); PostgreSQL figures are skipped with a message when it cannot be reached.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use flowstone_queue::testing::TestDb;
use flowstone_queue::{Database, Engine, NewJob, Outcome, Pool, Queue, Worker, WorkerSettings};
use serde_json::json;
use tokio::sync::{Notify, mpsc};

use crate::report::{emit, median, peak_rss_bytes, percentile};

/// Jobs per throughput run.
pub const JOBS: usize = 20_000;
/// Queue concurrency of the draining worker.
pub const CONCURRENCY: usize = 10;
/// Finished rows already in the table for the aged run.
pub const HISTORY: usize = 200_000;
/// Jobs per latency run.
pub const LATENCY_JOBS: usize = 1_000;
/// Measured rounds per throughput figure (the median is reported).
pub const REPEATS: usize = 3;
/// Jobs drained before measuring, to open connections and prepare statements.
pub const WARM_UP: usize = 1_000;
/// Batch size of the bare-SQL floor loop.
pub const RAW_BATCH: i64 = 100;

fn engine_name(e: Engine) -> &'static str {
    match e {
        Engine::Sqlite => "sqlite",
        Engine::Postgres => "postgres",
    }
}

/// Fresh databases for one figure: SQLite always, PostgreSQL when reachable.
async fn databases() -> Vec<TestDb> {
    let mut dbs = vec![TestDb::sqlite().await];
    if let Some(pg) = TestDb::postgres().await {
        dbs.push(pg);
    }
    dbs
}

fn noop_jobs(n: usize) -> Vec<NewJob> {
    (0..n)
        .map(|i| NewJob::new("noop", json!({ "i": i })))
        .collect()
}

/// Bulk-inserts `JOBS` no-op jobs; returns inserts per second.
async fn bulk_insert(queue: &Queue) -> anyhow::Result<f64> {
    let jobs = noop_jobs(JOBS);
    let started = Instant::now();
    let ids = queue.insert_many(&jobs).await?;
    let secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(ids.len() == JOBS, "inserted {} of {JOBS}", ids.len());
    Ok(JOBS as f64 / secs)
}

/// Jobs not yet finished: counted through the partial indexes (pending states, and
/// `executing`), so the check costs the same however much history the table holds.
async fn unfinished(db: &Database) -> anyhow::Result<i64> {
    let sql = "SELECT (SELECT count(*) FROM flowstone_jobs
                        WHERE state IN ('available', 'scheduled', 'retryable'))
                    + (SELECT count(*) FROM flowstone_jobs WHERE state = 'executing')";
    let n = match db.pool() {
        Pool::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await?,
        Pool::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await?,
    };
    Ok(n)
}

/// Starts one worker (queue concurrency `CONCURRENCY`, no-op handler) on the jobs already
/// inserted and waits until none is left unfinished in the database; returns jobs/s.
async fn drain(db: &Database, expected: usize) -> anyhow::Result<f64> {
    drain_with(db, expected, WorkerSettings::default()).await
}

/// [`drain`] with explicit worker settings.
async fn drain_with(
    db: &Database,
    expected: usize,
    settings: WorkerSettings,
) -> anyhow::Result<f64> {
    let done = Arc::new(AtomicUsize::new(0));
    let all_ran = Arc::new(Notify::new());
    let (d, a) = (Arc::clone(&done), Arc::clone(&all_ran));
    let started = Instant::now();
    let worker = Worker::builder(db.clone())
        .queue("default", CONCURRENCY)
        .settings(settings)
        .handler("noop", move |_ctx| {
            if d.fetch_add(1, Ordering::Relaxed) + 1 == expected {
                a.notify_one();
            }
            async { Outcome::complete() }
        })
        .start()
        .await?;
    tokio::time::timeout(Duration::from_secs(600), all_ran.notified())
        .await
        .context("drain did not finish in 10 minutes")?;
    // The last acks are written right after the handlers return.
    while unfinished(db).await? > 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    worker.shutdown(Duration::from_secs(10)).await;
    Ok(expected as f64 / secs)
}

/// Opens the pool's connections and prepares statements: a small drain, not measured.
async fn warm_up(queue: &Queue) -> anyhow::Result<()> {
    queue.migrate().await?;
    queue.insert_many(&noop_jobs(WARM_UP)).await?;
    drain(queue.database(), WARM_UP).await?;
    settle(queue.database()).await;
    Ok(())
}

/// Writes dirty pages out now (PostgreSQL `CHECKPOINT`, SQLite WAL checkpoint), so that a
/// checkpoint caused by the set-up (bulk history) does not land in a measured drain.
/// Best effort: a role that may not checkpoint just skips it.
async fn settle(db: &Database) {
    let done = match db.pool() {
        Pool::Postgres(p) => sqlx::query("CHECKPOINT").execute(p).await.map(|_| ()),
        Pool::Sqlite(p) => sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(p)
            .await
            .map(|_| ()),
    };
    if let Err(e) = done {
        eprintln!("queue bench: checkpoint skipped: {e}");
    }
}

/// `queue_throughput`: `JOBS` no-op jobs bulk-inserted, then drained by one worker;
/// the median of `REPEATS` rounds on one database.
pub async fn queue_throughput() -> anyhow::Result<()> {
    for t in databases().await {
        let queue = t.queue();
        warm_up(&queue).await?;
        let (mut inserts, mut jobs, mut durable) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..REPEATS {
            inserts.push(bulk_insert(&queue).await?);
            jobs.push(drain(&t.db, JOBS).await?);
            if t.engine() == Engine::Postgres {
                // For comparison: claims that also wait for the WAL flush.
                bulk_insert(&queue).await?;
                let settings = WorkerSettings {
                    durable_claims: true,
                    ..WorkerSettings::default()
                };
                durable.push(drain_with(&t.db, JOBS, settings).await?);
            }
        }
        let mut fields = json!({
            "engine": engine_name(t.engine()),
            "jobs": JOBS,
            "concurrency": CONCURRENCY,
            "rounds": REPEATS,
            "jobs_per_sec": median(&mut jobs).round(),
            "inserts_per_sec": median(&mut inserts).round(),
            "jobs_per_sec_rounds": rounded(&jobs),
            "peak_rss_bytes": peak_rss_bytes(),
        });
        if !durable.is_empty() {
            fields["jobs_per_sec_durable_claims"] = json!(median(&mut durable).round());
        }
        emit("queue_throughput", fields);
        t.cleanup().await;
    }
    Ok(())
}

fn rounded(sample: &[f64]) -> Vec<f64> {
    sample.iter().map(|x| x.round()).collect()
}

/// The bare floor: claim up to `RAW_BATCH` with one statement, complete them with another,
/// on one connection, until the queue is empty. Returns jobs/s.
async fn raw_drain(db: &Database) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut total = 0usize;
    match db.pool() {
        Pool::Postgres(pool) => {
            // The same durability as the engine: claims are leases (not flushed), completions
            // are durable.
            let mut conn = pool.acquire().await?;
            let mut done_conn = pool.acquire().await?;
            sqlx::query("SET synchronous_commit = off")
                .execute(&mut *conn)
                .await?;
            loop {
                let ids: Vec<i64> = sqlx::query_scalar(
                    "UPDATE flowstone_jobs SET state = 'executing', attempt = attempt + 1,
                            attempted_at = now(), node = 'raw'
                      WHERE id IN (SELECT id FROM flowstone_jobs
                                    WHERE queue = 'default'
                                      AND state IN ('available', 'scheduled', 'retryable')
                                      AND scheduled_at <= now()
                                    ORDER BY priority, scheduled_at, id
                                    LIMIT $1 FOR UPDATE SKIP LOCKED)
                      RETURNING id",
                )
                .bind(RAW_BATCH)
                .fetch_all(&mut *conn)
                .await?;
                if ids.is_empty() {
                    break;
                }
                total += ids.len();
                sqlx::query(
                    "UPDATE flowstone_jobs SET state = 'completed', completed_at = now()
                      WHERE id = ANY($1) AND state = 'executing'",
                )
                .bind(&ids)
                .execute(&mut *done_conn)
                .await?;
            }
            sqlx::query("RESET synchronous_commit")
                .execute(&mut *conn)
                .await?;
        }
        Pool::Sqlite(pool) => {
            use sqlx::Connection as _;
            let mut conn = pool.acquire().await?;
            loop {
                let now = chrono_micros();
                let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
                let ids: Vec<i64> = sqlx::query_scalar(
                    "UPDATE flowstone_jobs SET state = 'executing', attempt = attempt + 1,
                            attempted_at = ?1, node = 'raw'
                      WHERE id IN (SELECT id FROM flowstone_jobs
                                    WHERE queue = 'default'
                                      AND state IN ('available', 'scheduled', 'retryable')
                                      AND scheduled_at <= ?1
                                    ORDER BY priority, scheduled_at, id LIMIT ?2)
                      RETURNING id",
                )
                .bind(now)
                .bind(RAW_BATCH)
                .fetch_all(&mut *tx)
                .await?;
                tx.commit().await?;
                if ids.is_empty() {
                    break;
                }
                total += ids.len();
                let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
                sqlx::query(
                    "UPDATE flowstone_jobs SET state = 'completed', completed_at = ?1
                      WHERE id IN (SELECT value FROM json_each(?2)) AND state = 'executing'",
                )
                .bind(now)
                .bind(serde_json::to_string(&ids)?)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
            }
        }
    }
    anyhow::ensure!(total == JOBS, "raw loop drained {total} of {JOBS}");
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

fn chrono_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// `queue_raw_floor`: the engine's drain and the bare-SQL drain on the same database in the
/// same run, alternating for `REPEATS` rounds; prints the ratio of the medians, engine ÷ raw.
pub async fn queue_raw_floor() -> anyhow::Result<()> {
    for t in databases().await {
        let queue = t.queue();
        warm_up(&queue).await?;
        let (mut engine, mut raw) = (Vec::new(), Vec::new());
        for _ in 0..REPEATS {
            bulk_insert(&queue).await?;
            engine.push(drain(&t.db, JOBS).await?);
            bulk_insert(&queue).await?;
            raw.push(raw_drain(&t.db).await?);
        }
        let (engine, raw) = (median(&mut engine), median(&mut raw));
        emit(
            "queue_raw_floor",
            json!({
                "engine": engine_name(t.engine()),
                "jobs": JOBS,
                "rounds": REPEATS,
                "engine_jobs_per_sec": engine.round(),
                "raw_jobs_per_sec": raw.round(),
                "raw_batch": RAW_BATCH,
                "ratio": (engine / raw * 1000.0).round() / 1000.0,
            }),
        );
        t.cleanup().await;
    }
    Ok(())
}

/// Adds `HISTORY` completed rows in one statement.
async fn add_history(db: &Database) -> anyhow::Result<()> {
    match db.pool() {
        Pool::Postgres(p) => {
            sqlx::query(
                "INSERT INTO flowstone_jobs (queue, kind, args, state, attempt, attempted_at,
                                             completed_at, node)
                 SELECT 'default', 'noop', jsonb_build_object('i', g), 'completed', 1, now(),
                        now(), 'history'
                   FROM generate_series(1, $1) AS g",
            )
            .bind(HISTORY as i64)
            .execute(p)
            .await?;
            sqlx::query("VACUUM ANALYZE flowstone_jobs")
                .execute(p)
                .await?;
        }
        Pool::Sqlite(p) => {
            let now = chrono_micros();
            sqlx::query(
                "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < ?1)
                 INSERT INTO flowstone_jobs (queue, kind, args, state, attempt, inserted_at,
                                             scheduled_at, attempted_at, completed_at, node)
                 SELECT 'default', 'noop', json_object('i', i), 'completed', 1, ?2, ?2, ?2, ?2,
                        'history'
                   FROM g",
            )
            .bind(HISTORY as i64)
            .bind(now)
            .execute(p)
            .await?;
            sqlx::query("ANALYZE").execute(p).await?;
        }
    }
    Ok(())
}

/// `queue_throughput_aged`: the same drain with `HISTORY` completed rows already in the
/// table, next to fresh-table drains of the same run (medians of `REPEATS` rounds each).
pub async fn queue_throughput_aged() -> anyhow::Result<()> {
    for t in databases().await {
        let queue = t.queue();
        warm_up(&queue).await?;
        let (mut fresh, mut aged) = (Vec::new(), Vec::new());
        for _ in 0..REPEATS {
            bulk_insert(&queue).await?;
            fresh.push(drain(&t.db, JOBS).await?);
        }
        add_history(&t.db).await?;
        settle(&t.db).await;
        for _ in 0..REPEATS {
            bulk_insert(&queue).await?;
            aged.push(drain(&t.db, JOBS).await?);
        }
        let (fresh, aged) = (median(&mut fresh), median(&mut aged));
        emit(
            "queue_throughput_aged",
            json!({
                "engine": engine_name(t.engine()),
                "jobs": JOBS,
                "rounds": REPEATS,
                "history_rows_at_start": HISTORY + REPEATS * JOBS + WARM_UP,
                "fresh_jobs_per_sec": fresh.round(),
                "aged_jobs_per_sec": aged.round(),
                "aged_over_fresh": (aged / fresh * 1000.0).round() / 1000.0,
            }),
        );
        t.cleanup().await;
    }
    Ok(())
}

/// `queue_latency`: one job at a time, from just before `insert` to the handler's first
/// line; p50 and p99 over `LATENCY_JOBS`. On PostgreSQL the inserting client has its own
/// pool, so the worker learns of the job by LISTEN/NOTIFY; on SQLite both share one process
/// and database handle (in-process notify).
pub async fn queue_latency() -> anyhow::Result<()> {
    for t in databases().await {
        let queue_for_worker = t.queue();
        queue_for_worker.migrate().await?;
        let inserter = match t.engine() {
            Engine::Postgres => Queue::connect(t.url()).await?,
            Engine::Sqlite => t.queue(),
        };
        let (tx, mut rx) = mpsc::unbounded_channel::<Instant>();
        let worker = Worker::builder(t.db.clone())
            .queue("default", CONCURRENCY)
            .handler("ping", move |_ctx| {
                let _ = tx.send(Instant::now());
                async { Outcome::complete() }
            })
            .start()
            .await?;
        let mut samples = Vec::with_capacity(LATENCY_JOBS);
        // Warm-up: connections, prepared statements.
        for i in 0..50 + LATENCY_JOBS {
            let sent = Instant::now();
            inserter.insert(NewJob::new("ping", json!(i))).await?;
            let started = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .context("a job did not start within 10 s")?
                .context("worker stopped")?;
            if i >= 50 {
                samples.push(started.duration_since(sent).as_secs_f64() * 1000.0);
            }
        }
        worker.shutdown(Duration::from_secs(10)).await;
        let p99 = percentile(&mut samples, 99.0);
        let p50 = median(&mut samples);
        emit(
            "queue_latency",
            json!({
                "engine": engine_name(t.engine()),
                "jobs": LATENCY_JOBS,
                "wakeup": match t.engine() {
                    Engine::Postgres => "listen_notify",
                    Engine::Sqlite => "in_process",
                },
                "p50_ms": (p50 * 1000.0).round() / 1000.0,
                "p99_ms": (p99 * 1000.0).round() / 1000.0,
            }),
        );
        t.cleanup().await;
    }
    Ok(())
}

/// Every queue figure.
pub async fn run_all() -> anyhow::Result<()> {
    queue_throughput().await?;
    queue_raw_floor().await?;
    queue_throughput_aged().await?;
    queue_latency().await?;
    Ok(())
}
