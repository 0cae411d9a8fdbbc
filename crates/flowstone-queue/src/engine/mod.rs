//! The storage operations the queue needs, once, with the SQL dialect behind them in
//! `sqlite.rs` and `postgres.rs`. This module dispatches on the engine, decodes rows into
//! the shared types (the two engines select the same column names and types: JSON as text,
//! timestamps as microseconds since the epoch), and publishes in-process events after
//! writes so waiters and workers in this process wake at once.
//!
//! Each engine is a cargo feature (`sqlite`, `postgres`). This module is where the crate
//! says so: the dialect modules are compiled only with their feature, and every choice of
//! dialect goes through `by_engine!`, whose arm for a missing engine is compiled out.
//! (`database.rs` gates the `Engine` and `Pool` variants and refuses, at connect, the URL of
//! an engine the build lacks.)
//!
//! Longer than the crate's other files on purpose: it is one cohesive thing, the list of every
//! storage operation the queue has, each dispatched once; so are the two dialect modules,
//! which hold the same list in their SQL.

#[cfg(feature = "postgres")]
pub(crate) mod notify;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;

/// Runs the arm for the engine of a [`Pool`](crate::Pool):
/// `by_engine!(db.pool(), p => { sqlite: sqlite::f(p).await, postgres: postgres::f(p).await })`.
/// The arm of an engine this build lacks is compiled out, names and all.
macro_rules! by_engine {
    ($pool:expr, $bind:pat => { sqlite: $sqlite:expr, postgres: $postgres:expr $(,)? }) => {
        match $pool {
            #[cfg(feature = "sqlite")]
            $crate::database::Pool::Sqlite($bind) => $sqlite,
            #[cfg(feature = "postgres")]
            $crate::database::Pool::Postgres($bind) => $postgres,
        }
    };
}
pub(crate) use by_engine;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::pool::PoolConnection;
use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::database::{Database, Event, Pool};
use crate::error::{Error, Result};
use crate::job::{AttemptError, InsertedId, Job, JobFilter, JobState, NewJob};

/// Rows per insert statement: bounds statement size (the rows travel as arrays / one JSON
/// document, so bind-parameter limits do not apply).
pub(crate) const INSERT_CHUNK: usize = 5000;

/// A job as a worker claims it: just what the handler needs.
#[derive(Debug, Clone)]
pub(crate) struct Claimed {
    pub id: i64,
    pub queue: String,
    pub kind: String,
    pub args: String,
    pub meta: String,
    pub priority: i32,
    pub attempt: i32,
    pub max_attempts: i32,
    pub snoozed: i32,
    /// Microseconds since the epoch: with the priority, the order claimed jobs start in.
    pub scheduled_at: i64,
}

/// A state change that ends an attempt other than plain completion. All of them are
/// fenced: they apply only while the row is still `executing` the same attempt.
#[derive(Debug, Clone)]
pub(crate) struct Transition {
    pub state: JobState,
    /// Set `scheduled_at` to now + delay.
    pub delay: Option<Duration>,
    /// 1 raises `max_attempts` by one, so this attempt does not count against the limit
    /// (a snooze, a claim this node lost track of). Attempt numbers are never handed back:
    /// each attempt of a job runs at most once.
    pub extra_attempt: i32,
    pub snoozed: i32,
    pub unhandled: i32,
    /// Appended to `errors` with the attempt and time.
    pub error: Option<String>,
}

/// How an attempt ended, as written to the row.
#[derive(Debug, Clone)]
pub(crate) enum Ack {
    Complete {
        id: i64,
        attempt: i32,
        result: Option<String>,
    },
    Transition {
        id: i64,
        attempt: i32,
        to: Transition,
    },
}

impl Ack {
    pub fn id(&self) -> i64 {
        match self {
            Self::Complete { id, .. } | Self::Transition { id, .. } => *id,
        }
    }

    /// The attempt this ack ends (its fence).
    pub fn attempt(&self) -> i32 {
        match self {
            Self::Complete { attempt, .. } | Self::Transition { attempt, .. } => *attempt,
        }
    }

    fn is_final(&self) -> bool {
        match self {
            Self::Complete { .. } => true,
            Self::Transition { to, .. } => to.state.is_final(),
        }
    }
}

/// What to claim in the same round trip as the acks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClaimSpec<'a> {
    pub queue: &'a str,
    pub node: &'a str,
    pub limit: i64,
    /// Only jobs of these kinds (the node's handlers): a node never takes a job it cannot
    /// run, so in a rolling deploy old nodes leave new kinds to the new ones.
    pub kinds: &'a [String],
    /// `kinds` as a JSON array (what SQLite binds), encoded once per worker.
    pub kinds_json: &'a str,
}

/// Jobs to cancel.
#[derive(Debug, Clone, Copy)]
pub(crate) enum CancelTarget<'a> {
    Ids(&'a [i64]),
    Batch(&'a str),
}

/// A connection a worker keeps for its claim/ack loop (no pool round trip per cycle).
pub(crate) enum Conn {
    #[cfg(feature = "sqlite")]
    Sqlite(PoolConnection<sqlx::Sqlite>),
    #[cfg(feature = "postgres")]
    Postgres(PoolConnection<sqlx::Postgres>),
}

/// What a worker connection is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Claims (and, on SQLite, the acks riding with them).
    Claims { durable: bool },
    /// Acks only (PostgreSQL's separate acker).
    Acks,
}

/// Whether acks may go through their own connection rather than ride with claims.
/// PostgreSQL: yes, so a (lease-style, not flushed) claim never waits for the fsync of an
/// ack batch, and ack batches grow with load. SQLite: no, it has one writer at a time; one
/// transaction does both.
pub(crate) fn separate_acker(db: &Database) -> bool {
    by_engine!(db.pool(), _ => { sqlite: false, postgres: true })
}

/// Whether a job's result may keep NUL characters: SQLite's text keeps results exactly;
/// PostgreSQL's jsonb holds no NUL.
pub(crate) fn results_hold_nul(db: &Database) -> bool {
    by_engine!(db.pool(), _ => { sqlite: true, postgres: false })
}

impl Conn {
    pub async fn acquire(db: &Database, role: Role) -> Result<Self> {
        Ok(by_engine!(db.pool(), p => {
            sqlite: {
                // One kind of connection serves every role on SQLite.
                let _ = role;
                Self::Sqlite(p.acquire().await?)
            },
            postgres: {
                let mut c = p.acquire().await?;
                if role == (Role::Claims { durable: false }) {
                    postgres::prepare_claim_connection(&mut c).await?;
                    // The session setting must not leak into the pool.
                    c.close_on_drop();
                }
                Self::Postgres(c)
            },
        }))
    }

    /// Drops a connection that failed, closing it instead of returning it to the pool.
    pub fn discard(mut self) {
        match &mut self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(c) => c.close_on_drop(),
            #[cfg(feature = "postgres")]
            Self::Postgres(c) => c.close_on_drop(),
        }
    }
}

/// What one ack-and-claim round trip did.
#[derive(Debug, Default)]
pub(crate) struct Written {
    /// The jobs claimed.
    pub claimed: Vec<Claimed>,
    /// `(id, attempt)` of the acks the attempt fence refused: the row no longer executes
    /// that attempt (rescued to another, or cancelled), so the outcome was not stored.
    pub late: Vec<(i64, i32)>,
}

/// Writes `acks` and claims up to `claim.limit` jobs, in one transaction where the engine
/// allows. Publishes the finished ids in-process.
pub(crate) async fn ack_and_claim(
    db: &Database,
    conn: &mut Conn,
    acks: &[Ack],
    claim: Option<ClaimSpec<'_>>,
) -> Result<Written> {
    let (claimed, applied) = match conn {
        #[cfg(feature = "sqlite")]
        Conn::Sqlite(c) => {
            let _gate = db.write_gate().await;
            sqlite::ack_and_claim(c, acks, claim).await?
        }
        #[cfg(feature = "postgres")]
        Conn::Postgres(c) => postgres::ack_and_claim(c, acks, claim).await?,
    };
    let late = if applied.len() == acks.len() {
        Vec::new()
    } else {
        let applied: std::collections::HashSet<i64> = applied.into_iter().collect();
        acks.iter()
            .filter(|a| !applied.contains(&a.id()))
            .map(|a| (a.id(), a.attempt()))
            .collect()
    };
    let finished: Vec<i64> = acks.iter().filter(|a| a.is_final()).map(Ack::id).collect();
    if !finished.is_empty() {
        db.publish(Event::Finished(finished.into()));
    }
    // Jobs that waited for a job that just gave up or was cancelled will not run. Done after
    // the acknowledgement commits; the leader's sweep ([`block_stuck`]) finishes the work of
    // a node that died in between.
    for state in [JobState::Discarded, JobState::Cancelled] {
        let roots: Vec<i64> = acks
            .iter()
            .filter(|a| matches!(a, Ack::Transition { to, .. } if to.state == state))
            .map(Ack::id)
            .filter(|id| !late.iter().any(|(late, _)| late == id))
            .collect();
        block_dependents(db, &roots, state.as_str()).await?;
    }
    Ok(Written { claimed, late })
}

/// Discards (or cancels) what waits for `roots`, and tells waiters.
pub(crate) async fn block_dependents(db: &Database, roots: &[i64], state: &str) -> Result<()> {
    if roots.is_empty() {
        return Ok(());
    }
    let blocked = by_engine!(db.pool(), p => {
        sqlite: {
            let (mut c, _turn) = sqlite_turn(db, p).await?;
            let mut tx = sqlx::Connection::begin_with(&mut *c, "BEGIN IMMEDIATE").await?;
            let blocked = sqlite::block_dependents(&mut tx, roots, state).await?;
            tx.commit().await?;
            blocked
        },
        postgres: postgres::block_dependents(&mut *p.acquire().await?, roots, state).await?,
    });
    if !blocked.is_empty() {
        db.publish(Event::Finished(blocked.into()));
    }
    Ok(())
}

/// The leader's sweep: blocks what still waits for jobs that ended without completing.
/// Returns how many upstream jobs it handled.
pub(crate) async fn block_stuck(db: &Database) -> Result<usize> {
    let roots = by_engine!(db.pool(), p => {
        sqlite: sqlite::stuck_roots(&mut *p.acquire().await?).await?,
        postgres: postgres::stuck_roots(&mut *p.acquire().await?).await?,
    });
    for state in ["discarded", "cancelled"] {
        let ids: Vec<i64> = roots
            .iter()
            .filter(|(_, s)| s == state)
            .map(|(id, _)| *id)
            .collect();
        block_dependents(db, &ids, state).await?;
    }
    Ok(roots.len())
}

/// Inserts jobs (validated, chunked); ids in input order. The whole batch is one
/// transaction (SQLite: one `BEGIN IMMEDIATE` under the write gate), so a batch that fails
/// anywhere leaves none of its jobs. A lone job is one statement, atomic by itself.
pub(crate) async fn insert_many(db: &Database, jobs: &[NewJob]) -> Result<Vec<InsertedId>> {
    insert_graph(db, jobs, &[]).await
}

/// [`insert_many`], and each `(upstream, downstream)` edge (positions in `jobs`) makes the
/// downstream job wait for the upstream one (see the v5 migration). An edge whose ends were
/// not both inserted (a unique key already held by an active job) is dropped: that job runs
/// on its own terms.
pub(crate) async fn insert_graph(
    db: &Database,
    jobs: &[NewJob],
    edges: &[(usize, usize)],
) -> Result<Vec<InsertedId>> {
    if let Some((up, down)) = edges
        .iter()
        .find(|(up, down)| *up >= jobs.len() || *down >= jobs.len() || up == down)
    {
        return Err(Error::InvalidJob(format!(
            "edge ({up}, {down}) of a graph of {} jobs names a job outside it, or a job \
             waiting for itself",
            jobs.len()
        )));
    }
    for (index, job) in jobs.iter().enumerate() {
        job.validate().map_err(|e| Error::InvalidBatchJob {
            index,
            reason: Box::new(e),
        })?;
    }
    let keys: Vec<Option<String>> = jobs.iter().map(NewJob::unique_key).collect();
    let atomic = jobs.len() > 1;
    let out = match db.pool() {
        #[cfg(feature = "sqlite")]
        Pool::Sqlite(p) => {
            let (mut c, _turn) = sqlite_turn(db, p).await?;
            if atomic {
                let mut tx = sqlx::Connection::begin_with(&mut *c, "BEGIN IMMEDIATE").await?;
                match insert_chunks(InsertConn::Sqlite(&mut tx), jobs, &keys).await {
                    Ok(out) => {
                        let links = links(&out, edges);
                        if !links.is_empty() {
                            sqlite::link(&mut tx, &links).await?;
                        }
                        tx.commit().await?;
                        out
                    }
                    Err(Error::BatchRejected { rows, source }) => {
                        tx.rollback().await?;
                        let rows = narrow_rejected(InsertConn::Sqlite(&mut c), jobs, &keys, rows);
                        return Err(Error::BatchRejected {
                            rows: rows.await,
                            source,
                        });
                    }
                    Err(e) => return Err(e),
                }
            } else {
                insert_chunks(InsertConn::Sqlite(&mut c), jobs, &keys).await?
            }
        }
        #[cfg(feature = "postgres")]
        Pool::Postgres(p) => {
            if atomic {
                let mut tx = p.begin().await?;
                match insert_chunks(InsertConn::Postgres(&mut tx), jobs, &keys).await {
                    Ok(out) => {
                        let links = links(&out, edges);
                        if !links.is_empty() {
                            postgres::link(&mut tx, &links).await?;
                        }
                        tx.commit().await?;
                        out
                    }
                    Err(Error::BatchRejected { rows, source }) => {
                        tx.rollback().await?;
                        let mut c = p.acquire().await?;
                        let rows = narrow_rejected(InsertConn::Postgres(&mut c), jobs, &keys, rows);
                        return Err(Error::BatchRejected {
                            rows: rows.await,
                            source,
                        });
                    }
                    Err(e) => return Err(e),
                }
            } else {
                insert_chunks(InsertConn::Postgres(&mut *p.acquire().await?), jobs, &keys).await?
            }
        }
    };
    let mut queues: Vec<&str> = jobs
        .iter()
        .filter(|j| j.scheduled_at.is_none_or(|t| t <= Utc::now()))
        .map(|j| j.queue.as_str())
        .collect();
    queues.sort_unstable();
    queues.dedup();
    for q in queues {
        db.publish(Event::Inserted(q.into()));
    }
    Ok(out)
}

/// The `(upstream id, downstream id)` pairs of `edges` whose ends were both inserted.
fn links(inserted: &[InsertedId], edges: &[(usize, usize)]) -> Vec<(i64, i64)> {
    edges
        .iter()
        .filter(|(up, down)| !inserted[*up].conflict && !inserted[*down].conflict)
        .map(|(up, down)| (inserted[*up].id, inserted[*down].id))
        .collect()
}

/// When a waiting job is due: far enough that no claim takes it, near enough that every
/// reader decodes it (9999-12-31T23:59:59Z, in microseconds).
pub(crate) const WAITING_UNTIL_MICROS: i64 = 253_402_300_799_000_000;

/// Upstream jobs that ended without completing (or are gone) while jobs still wait for them,
/// with the state to give those jobs; the same SQL on both engines.
pub(crate) const STUCK_ROOTS: &str = "
    SELECT DISTINCT d.upstream_id,
           CASE WHEN u.state = 'cancelled' THEN 'cancelled' ELSE 'discarded' END
      FROM flowstone_job_deps AS d LEFT JOIN flowstone_jobs AS u ON u.id = d.upstream_id
     WHERE u.id IS NULL OR u.state IN ('discarded', 'cancelled')
     LIMIT 1000";

/// The error a job gets when a job it waits for is discarded (it is discarded too, without
/// running); a cancelled upstream job cancels what waits for it instead.
pub const UPSTREAM_FAILED: &str = "upstream failed";

/// The connection (inside the batch's transaction, if any) an insert runs on.
enum InsertConn<'c> {
    #[cfg(feature = "sqlite")]
    Sqlite(&'c mut sqlx::SqliteConnection),
    #[cfg(feature = "postgres")]
    Postgres(&'c mut sqlx::PgConnection),
}

/// Inserts `jobs` in statements of [`INSERT_CHUNK`]. A statement the database rejects is
/// reported with the positions in the batch of the rows it carried.
async fn insert_chunks(
    mut conn: InsertConn<'_>,
    jobs: &[NewJob],
    keys: &[Option<String>],
) -> Result<Vec<InsertedId>> {
    let mut out = Vec::with_capacity(jobs.len());
    for (n, (chunk, chunk_keys)) in jobs
        .chunks(INSERT_CHUNK)
        .zip(keys.chunks(INSERT_CHUNK))
        .enumerate()
    {
        let first = n * INSERT_CHUNK;
        let mut ids = insert_chunk_resolving_conflicts(&mut conn, chunk, chunk_keys)
            .await
            .map_err(|e| match e {
                // A lone job's rejection is its own, not a batch's.
                Error::Database(source @ sqlx::Error::Database(_)) if jobs.len() > 1 => {
                    Error::BatchRejected {
                        rows: first..first + chunk.len(),
                        source,
                    }
                }
                other => other,
            })?;
        out.append(&mut ids);
    }
    Ok(out)
}

/// After the database rejected the statement carrying `rows` (and the batch was rolled
/// back): finds the job it rejects by bisection, each try inserting a half in a transaction
/// that is rolled back. Runs only on that failure, so the fast path pays nothing. Returns
/// the single job's position, or the narrowest range that still fails when no one job does
/// by itself (the rejection then depends on several).
async fn narrow_rejected(
    mut conn: InsertConn<'_>,
    jobs: &[NewJob],
    keys: &[Option<String>],
    rows: std::ops::Range<usize>,
) -> std::ops::Range<usize> {
    let jobs: Vec<&NewJob> = jobs.iter().collect();
    let keys: Vec<Option<&str>> = keys.iter().map(Option::as_deref).collect();
    let mut suspects = rows;
    'narrowing: while suspects.len() > 1 {
        let middle = suspects.start + suspects.len() / 2;
        for half in [suspects.start..middle, middle..suspects.end] {
            if rejects(&mut conn, &jobs[half.clone()], &keys[half.clone()]).await {
                suspects = half;
                continue 'narrowing;
            }
        }
        break;
    }
    suspects
}

/// Whether the database rejects inserting `jobs` (tried in a transaction rolled back after).
async fn rejects(conn: &mut InsertConn<'_>, jobs: &[&NewJob], keys: &[Option<&str>]) -> bool {
    let tried = match conn {
        #[cfg(feature = "sqlite")]
        InsertConn::Sqlite(c) => match sqlx::Connection::begin(&mut **c).await {
            Ok(mut tx) => {
                let tried = sqlite::insert(&mut tx, jobs, keys).await;
                let _ = tx.rollback().await;
                tried
            }
            Err(e) => Err(e.into()),
        },
        #[cfg(feature = "postgres")]
        InsertConn::Postgres(c) => match sqlx::Connection::begin(&mut **c).await {
            Ok(mut tx) => {
                let tried = postgres::insert(&mut tx, jobs, keys).await;
                let _ = tx.rollback().await;
                tried
            }
            Err(e) => Err(e.into()),
        },
    };
    matches!(tried, Err(Error::Database(sqlx::Error::Database(_))))
}

/// Inserts one chunk. A unique job whose key is taken returns the active holder; if the
/// holder finished in between (so the key is free again), the insert is tried again.
async fn insert_chunk_resolving_conflicts(
    conn: &mut InsertConn<'_>,
    jobs: &[NewJob],
    keys: &[Option<String>],
) -> Result<Vec<InsertedId>> {
    let mut result: Vec<Option<InsertedId>> = vec![None; jobs.len()];
    let mut todo: Vec<usize> = (0..jobs.len()).collect();
    for _round in 0..10 {
        let batch: Vec<&NewJob> = todo.iter().map(|&i| &jobs[i]).collect();
        let batch_keys: Vec<Option<&str>> = todo.iter().map(|&i| keys[i].as_deref()).collect();
        let inserted = match conn {
            #[cfg(feature = "sqlite")]
            InsertConn::Sqlite(c) => sqlite::insert(c, &batch, &batch_keys).await?,
            #[cfg(feature = "postgres")]
            InsertConn::Postgres(c) => postgres::insert(c, &batch, &batch_keys).await?,
        };
        // Rows come back sorted by id, which follows input order; conflicts are missing.
        let mut rows = inserted.into_iter().peekable();
        let mut conflicted = Vec::new();
        for (&i, key) in todo.iter().zip(&batch_keys) {
            let mine = rows
                .peek()
                .is_some_and(|(_, row_key)| row_key.as_deref() == *key);
            if mine && let Some((id, _)) = rows.next() {
                result[i] = Some(InsertedId {
                    id,
                    conflict: false,
                });
            } else {
                conflicted.push(i);
            }
        }
        if conflicted.is_empty() {
            break;
        }
        let wanted: Vec<String> = conflicted.iter().filter_map(|&i| keys[i].clone()).collect();
        let holders = match conn {
            #[cfg(feature = "sqlite")]
            InsertConn::Sqlite(c) => sqlite::active_by_unique_keys(c, &wanted).await?,
            #[cfg(feature = "postgres")]
            InsertConn::Postgres(c) => postgres::active_by_unique_keys(c, &wanted).await?,
        };
        todo.clear();
        for i in conflicted {
            let holder = keys[i]
                .as_deref()
                .and_then(|k| holders.iter().find(|(_, hk)| hk == k));
            match holder {
                Some((id, _)) => {
                    result[i] = Some(InsertedId {
                        id: *id,
                        conflict: true,
                    })
                }
                None => todo.push(i),
            }
        }
        if todo.is_empty() {
            break;
        }
    }
    result
        .into_iter()
        .map(|r| {
            r.ok_or_else(|| {
                Error::InvalidJob(
                    "a unique job's key kept changing hands during insert; try again".into(),
                )
            })
        })
        .collect()
}

pub(crate) async fn get(db: &Database, id: i64) -> Result<Option<Job>> {
    by_engine!(db.pool(), p => {
        sqlite: sqlite::get(p, id).await,
        postgres: postgres::get(p, id).await,
    })
}

pub(crate) async fn list(db: &Database, filter: &JobFilter) -> Result<Vec<Job>> {
    by_engine!(db.pool(), p => {
        sqlite: sqlite::list(p, filter).await,
        postgres: postgres::list(p, filter).await,
    })
}

/// The state of each of `ids` that exists (SQLite and PostgreSQL take any number of ids).
pub(crate) async fn states(db: &Database, ids: &[i64]) -> Result<Vec<(i64, JobState)>> {
    let rows = by_engine!(db.pool(), p => {
        sqlite: sqlite::states(p, ids).await?,
        postgres: postgres::states(p, ids).await?,
    });
    Ok(rows
        .into_iter()
        .filter_map(|(id, s)| JobState::parse(&s).map(|s| (id, s)))
        .collect())
}

/// The jobs among `ids` that exist, in no particular order.
pub(crate) async fn get_many(db: &Database, ids: &[i64]) -> Result<Vec<Job>> {
    by_engine!(db.pool(), p => {
        sqlite: sqlite::get_many(p, ids).await,
        postgres: postgres::get_many(p, ids).await,
    })
}

pub(crate) async fn count_batch(db: &Database, batch: &str) -> Result<Vec<(JobState, i64)>> {
    let rows = by_engine!(db.pool(), p => {
        sqlite: sqlite::count_batch(p, batch).await?,
        postgres: postgres::count_batch(p, batch).await?,
    });
    Ok(rows
        .into_iter()
        .filter_map(|(s, n)| JobState::parse(&s).map(|s| (s, n)))
        .collect())
}

/// How many jobs each queue has in each state, by queue then state (pairs with none are left
/// out): one `GROUP BY` over the jobs table, the same text on both engines.
pub(crate) async fn count_by_queue(db: &Database) -> Result<Vec<(String, JobState, i64)>> {
    const SQL: &str = "SELECT queue, state, count(*) FROM flowstone_jobs
                        GROUP BY queue, state ORDER BY queue, state";
    let rows: Vec<(String, String, i64)> = by_engine!(db.pool(), p => {
        sqlite: sqlx::query_as(SQL).fetch_all(p).await?,
        postgres: sqlx::query_as(SQL).fetch_all(p).await?,
    });
    Ok(rows
        .into_iter()
        .filter_map(|(q, s, n)| JobState::parse(&s).map(|s| (q, s, n)))
        .collect())
}

/// A connection of `pool` and this process's turn to write on `db` (see
/// `Database::write_gate`), connection first, as every writer takes them.
#[cfg(feature = "sqlite")]
async fn sqlite_turn<'a>(
    db: &'a Database,
    pool: &sqlx::SqlitePool,
) -> Result<(
    PoolConnection<sqlx::Sqlite>,
    Option<tokio::sync::MutexGuard<'a, ()>>,
)> {
    let c = pool.acquire().await?;
    Ok((c, db.write_gate().await))
}

/// Cancels pending and running jobs; returns the ids it cancelled. Running ones are
/// signalled: in-process here, to other processes by NOTIFY (PostgreSQL) or their polling.
pub(crate) async fn cancel(db: &Database, target: CancelTarget<'_>) -> Result<Vec<i64>> {
    let ids = by_engine!(db.pool(), p => {
        sqlite: {
            let (mut c, _turn) = sqlite_turn(db, p).await?;
            sqlite::cancel(&mut c, target).await?
        },
        postgres: postgres::cancel(p, target).await?,
    });
    if !ids.is_empty() {
        db.publish(Event::Finished(ids.clone().into()));
    }
    block_dependents(db, &ids, "cancelled").await?;
    Ok(ids)
}

pub(crate) async fn prune(db: &Database, older_than: Duration, limit: i64) -> Result<u64> {
    by_engine!(db.pool(), p => {
        sqlite: {
            let (mut c, _turn) = sqlite_turn(db, p).await?;
            sqlite::prune(&mut c, older_than, limit).await
        },
        postgres: postgres::prune(p, older_than, limit).await,
    })
}

/// Records that `node` is alive and runs `kinds` on `queues`.
pub(crate) async fn heartbeat(
    db: &Database,
    node: &str,
    queues: &[&str],
    kinds: &[String],
) -> Result<()> {
    by_engine!(db.pool(), p => {
        sqlite: {
            let (mut c, _turn) = sqlite_turn(db, p).await?;
            sqlite::heartbeat(&mut c, node, queues, kinds).await
        },
        postgres: postgres::heartbeat(p, node, queues, kinds).await,
    })
}

/// Discards due jobs whose kind no worker has served on their queue for `after`; returns
/// their ids.
pub(crate) async fn discard_unserved(db: &Database, after: Duration) -> Result<Vec<i64>> {
    let ids = by_engine!(db.pool(), p => {
        sqlite: {
            let (mut c, _turn) = sqlite_turn(db, p).await?;
            sqlite::discard_unserved(&mut c, after).await?
        },
        postgres: postgres::discard_unserved(p, after).await?,
    });
    if !ids.is_empty() {
        db.publish(Event::Finished(ids.clone().into()));
    }
    block_dependents(db, &ids, "discarded").await?;
    Ok(ids)
}

/// The nodes that work `queue` and have sent a heartbeat within `within`.
pub(crate) async fn nodes_serving(
    db: &Database,
    queue: &str,
    within: Duration,
) -> Result<Vec<String>> {
    by_engine!(db.pool(), p => {
        sqlite: sqlite::nodes_serving(&mut *p.acquire().await?, queue, within).await,
        postgres: postgres::nodes_serving(p, queue, within).await,
    })
}

pub(crate) async fn remove_node(db: &Database, node: &str) -> Result<()> {
    by_engine!(db.pool(), p => {
        sqlite: {
            let (mut c, _turn) = sqlite_turn(db, p).await?;
            sqlite::remove_node(&mut c, node).await
        },
        postgres: postgres::remove_node(p, node).await,
    })
}

/// Returns jobs of nodes whose heartbeat is older than `after` to `available` (or
/// `discarded` when that was their last attempt); forgets those nodes.
pub(crate) async fn rescue(db: &Database, after: Duration) -> Result<Vec<i64>> {
    let ids = by_engine!(db.pool(), p => {
        sqlite: {
            let (mut c, _turn) = sqlite_turn(db, p).await?;
            sqlite::rescue(&mut c, after).await?
        },
        postgres: postgres::rescue(p, after).await?,
    });
    if !ids.is_empty() {
        db.publish(Event::Resync);
    }
    Ok(ids)
}

/// Of the given `(id, attempt)` pairs this node runs, those whose row is no longer
/// executing that attempt here (cancelled, rescued, …): their handlers should stop.
pub(crate) async fn no_longer_ours(
    db: &Database,
    node: &str,
    running: &[(i64, i32)],
) -> Result<Vec<i64>> {
    if running.is_empty() {
        return Ok(Vec::new());
    }
    by_engine!(db.pool(), p => {
        sqlite: sqlite::no_longer_ours(p, node, running).await,
        postgres: postgres::no_longer_ours(p, node, running).await,
    })
}

/// Jobs the database says this node has executed for longer than `older_than`.
pub(crate) async fn executing_on(
    db: &Database,
    node: &str,
    older_than: Duration,
) -> Result<Vec<(i64, i32)>> {
    by_engine!(db.pool(), p => {
        sqlite: sqlite::executing_on(p, node, older_than).await,
        postgres: postgres::executing_on(p, node, older_than).await,
    })
}

/// Applies one fenced transition outside a worker's loop (orphan give-back).
pub(crate) async fn transition(
    db: &Database,
    id: i64,
    attempt: i32,
    to: &Transition,
) -> Result<bool> {
    by_engine!(db.pool(), p => {
        sqlite: {
            let (mut c, _turn) = sqlite_turn(db, p).await?;
            sqlite::transition(&mut c, id, attempt, to).await
        },
        postgres: postgres::transition(&mut *p.acquire().await?, id, attempt, to).await,
    })
}

// ---- shared row decoding -------------------------------------------------------------

/// This host's clock in epoch microseconds (SQLite's timestamps; PostgreSQL uses its own).
#[cfg(feature = "sqlite")]
pub(crate) fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

pub(crate) fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

fn from_micros(us: Option<i64>) -> Option<DateTime<Utc>> {
    us.and_then(DateTime::<Utc>::from_timestamp_micros)
}

/// Decodes rows of two columns into pairs (the id-and-something reads of both dialects).
pub(crate) fn pairs<'r, R, A, B>(rows: &'r [R]) -> Result<Vec<(A, B)>>
where
    R: Row,
    usize: ColumnIndex<R>,
    A: Decode<'r, R::Database> + Type<R::Database>,
    B: Decode<'r, R::Database> + Type<R::Database>,
{
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// Decodes a row selected with the engine's job column list.
pub(crate) fn job_from_row<'r, R>(row: &'r R) -> Result<Job>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    i32: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    let args: String = row.try_get("args")?;
    let meta: String = row.try_get("meta")?;
    let errors: String = row.try_get("errors")?;
    let result: Option<String> = row.try_get("result")?;
    let state: String = row.try_get("state")?;
    let priority: i32 = row.try_get("priority")?;
    Ok(Job {
        id: row.try_get("id")?,
        queue: row.try_get("queue")?,
        kind: row.try_get("kind")?,
        args: lenient_json(&args),
        meta: lenient_json(&meta),
        priority: u8::try_from(priority).unwrap_or(0),
        // The CHECK constraint keeps unknown states out; fall back rather than panic.
        state: JobState::parse(&state).unwrap_or(JobState::Discarded),
        attempt: row.try_get("attempt")?,
        max_attempts: row.try_get("max_attempts")?,
        snoozed: row.try_get("snoozed")?,
        unhandled: row.try_get("unhandled")?,
        errors: serde_json::from_str::<Vec<AttemptError>>(&errors).unwrap_or_default(),
        result: result.as_deref().map(lenient_json),
        unique_key: row.try_get("unique_key")?,
        batch: row.try_get("batch")?,
        node: row.try_get("node")?,
        inserted_at: from_micros(row.try_get("inserted_at")?),
        scheduled_at: from_micros(row.try_get("scheduled_at")?),
        attempted_at: from_micros(row.try_get("attempted_at")?),
        completed_at: from_micros(row.try_get("completed_at")?),
        cancelled_at: from_micros(row.try_get("cancelled_at")?),
        discarded_at: from_micros(row.try_get("discarded_at")?),
    })
}

/// Decodes a claimed row (`id, queue, kind, args, meta, priority, attempt, max_attempts,
/// snoozed, scheduled_at`).
pub(crate) fn claimed_from_row<'r, R>(row: &'r R) -> Result<Claimed>
where
    R: Row,
    usize: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    i32: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(Claimed {
        id: row.try_get(0)?,
        queue: row.try_get(1)?,
        kind: row.try_get(2)?,
        args: row.try_get(3)?,
        meta: row.try_get(4)?,
        priority: row.try_get(5)?,
        attempt: row.try_get(6)?,
        max_attempts: row.try_get(7)?,
        snoozed: row.try_get(8)?,
        scheduled_at: row.try_get(9)?,
    })
}

/// JSON text as a value; text that is not JSON becomes a JSON string (never an error:
/// rows may be written by hand).
pub(crate) fn lenient_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}
