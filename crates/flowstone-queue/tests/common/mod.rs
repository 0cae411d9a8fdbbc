//! Helpers shared by the queue's integration tests.
#![allow(dead_code)]

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use flowstone_queue::testing::TestDb;
use flowstone_queue::{
    Database, Error, NewJob, Pool, Queue, Worker, WorkerBuilder, WorkerHandle, WorkerSettings,
};

/// Short timings so rescue, polling and give-backs happen within a test.
pub fn fast() -> WorkerSettings {
    WorkerSettings {
        poll_interval: Duration::from_millis(50),
        heartbeat_interval: Duration::from_millis(100),
        rescue_after: Duration::from_secs(3),
        rescue_interval: Duration::from_millis(200),
        cancel_poll_interval: Duration::from_millis(100),
        unserved_kind_after: Duration::from_secs(3600),
        prune_after: None,
        prune_interval: Duration::from_secs(300),
        lease_ttl: Duration::from_secs(2),
        lease_renew_interval: Duration::from_millis(100),
        durable_claims: false,
        prefetch: None,
    }
}

/// A queue on the test's database, migrated.
pub async fn migrated(t: &TestDb) -> Queue {
    let q = t.queue();
    q.migrate().await.expect("queue migrations apply");
    q
}

/// A worker on `db` running queue `default` with `concurrency`, on [`fast`] timings.
pub fn fast_worker(db: &Database, concurrency: usize) -> WorkerBuilder {
    Worker::builder(db.clone())
        .queue("default", concurrency)
        .settings(fast())
}

/// A one-slot worker on queue `default` whose `kind` handler raises the returned flag when it
/// starts, then waits for the returned `Notify` (one permit per job) before it completes.
pub fn gated_worker(
    db: &Database,
    kind: &str,
    settings: WorkerSettings,
) -> (Flag, Arc<tokio::sync::Notify>, WorkerBuilder) {
    let (started, release) = (Flag::default(), Arc::new(tokio::sync::Notify::new()));
    let (st, rel) = (started.clone(), Arc::clone(&release));
    let worker = Worker::builder(db.clone())
        .queue("default", 1)
        .settings(settings)
        .handler(kind, move |_ctx| {
            let (st, rel) = (st.clone(), Arc::clone(&rel));
            async move {
                st.set();
                rel.notified().await;
                flowstone_queue::Outcome::complete()
            }
        });
    (started, release, worker)
}

/// `start` for tests: a worker that does not start fails the test.
pub trait StartForTest {
    /// Starts the worker or panics saying why not.
    fn started(self) -> impl Future<Output = WorkerHandle>;
}

impl StartForTest for WorkerBuilder {
    async fn started(self) -> WorkerHandle {
        self.start()
            .await
            .unwrap_or_else(|e| panic!("worker starts: {e}"))
    }
}

/// Starts a worker that must be refused; returns the error and its message.
pub async fn start_refused(builder: WorkerBuilder, why: &str) -> (Error, String) {
    match builder.start().await {
        Ok(_) => panic!("a worker must not start: {why}"),
        Err(e) => {
            let message = e.to_string();
            (e, message)
        }
    }
}

/// Inserts one job and returns its id.
pub async fn enqueue(q: &Queue, job: NewJob) -> i64 {
    q.insert(job).await.expect("job inserts").job.id
}

/// Inserts jobs in bulk and returns their ids in input order.
pub async fn enqueue_many(q: &Queue, jobs: &[NewJob]) -> Vec<i64> {
    let inserted = q.insert_many(jobs).await.expect("jobs insert");
    inserted.iter().map(|i| i.id).collect()
}

/// A one-way signal between a handler and its test ("the handler started", "the token
/// fired"): cheap to clone into handlers.
#[derive(Clone, Default)]
pub struct Flag(Arc<AtomicBool>);

impl Flag {
    /// Raises the flag.
    pub fn set(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Waits until the flag is raised; panics with `what` after [`PATIENCE`].
    pub async fn wait(&self, what: &str) {
        wait_until(what, || async { self.0.load(Ordering::SeqCst) }).await;
    }
}

/// Generous bound for conditions to become true (machines are shared and noisy).
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Polls `cond` until it is true; panics with `what` after [`PATIENCE`].
pub async fn wait_until<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !cond().await {
        assert!(start.elapsed() < PATIENCE, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs SQL (no result) on either engine.
pub async fn exec(db: &Database, sql: &str) {
    let sql = sqlx::AssertSqlSafe(sql.to_string());
    match db.pool() {
        Pool::Sqlite(p) => sqlx::raw_sql(sql).execute(p).await.map(|_| ()),
        Pool::Postgres(p) => sqlx::raw_sql(sql).execute(p).await.map(|_| ()),
    }
    .unwrap_or_else(|e| panic!("test SQL failed: {e}"));
}

/// Runs a query returning one i64 on either engine.
pub async fn scalar(db: &Database, sql: &str) -> i64 {
    let sql = sqlx::AssertSqlSafe(sql.to_string());
    match db.pool() {
        Pool::Sqlite(p) => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await,
        Pool::Postgres(p) => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await,
    }
    .unwrap_or_else(|e| panic!("test SQL failed: {e}"))
}

/// Records (job id, attempt, node) in `runs`, whose unique constraint rejects a second run
/// of the same attempt. Returns false on a duplicate.
pub async fn record_run(db: &Database, id: i64, attempt: i32, node: &str) -> bool {
    let r = match db.pool() {
        Pool::Sqlite(p) => {
            sqlx::query("INSERT INTO runs (job_id, attempt, node) VALUES (?1, ?2, ?3)")
                .bind(id)
                .bind(attempt)
                .bind(node)
                .execute(p)
                .await
                .map(|_| ())
        }
        Pool::Postgres(p) => {
            sqlx::query("INSERT INTO runs (job_id, attempt, node) VALUES ($1, $2, $3)")
                .bind(id)
                .bind(attempt)
                .bind(node)
                .execute(p)
                .await
                .map(|_| ())
        }
    };
    match r {
        Ok(_) => true,
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => false,
        Err(e) => panic!("recording a run failed: {e}"),
    }
}

pub const RUNS_TABLE: &str = "CREATE TABLE runs (job_id BIGINT NOT NULL, attempt INTEGER NOT NULL, \
     node TEXT NOT NULL, UNIQUE (job_id, attempt))";

/// All runs as (job id, attempt, node), ordered.
pub async fn runs(db: &Database) -> Vec<(i64, i32, String)> {
    let sql = "SELECT job_id, attempt, node FROM runs ORDER BY job_id, attempt";
    match db.pool() {
        Pool::Sqlite(p) => sqlx::query_as(sql).fetch_all(p).await,
        Pool::Postgres(p) => sqlx::query_as(sql).fetch_all(p).await,
    }
    .unwrap_or_else(|e| panic!("reading runs failed: {e}"))
}

/// The events this test process logs, as `message field=value ...` lines: a minimal
/// `tracing` subscriber installed process-wide on first use, so the warnings of workers'
/// tasks (on any thread) can be asserted.
pub fn captured_logs() -> &'static Mutex<Vec<String>> {
    static LOGS: OnceLock<&'static Mutex<Vec<String>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs: &'static Mutex<Vec<String>> = Box::leak(Box::default());
        let _ = tracing::subscriber::set_global_default(Capture(logs));
        logs
    })
}

struct Capture(&'static Mutex<Vec<String>>);

#[derive(Default)]
struct Line {
    message: String,
    fields: String,
}

impl tracing::field::Visit for Line {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.fields
                .push_str(&format!(" {}={value:?}", field.name()));
        }
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut line = Line::default();
        event.record(&mut line);
        let level = event.metadata().level();
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(format!("{level} {}{}", line.message, line.fields));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}
