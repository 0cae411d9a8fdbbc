//! Fixtures for the Queue executor tests (`queue_executor.rs`, `queue_multiprocess.rs`):
//! short worker timings, workers started with them, polling waits with generous timeouts (no
//! timing assertions), and access to the queue row behind a job.

use std::future::Future;
use std::time::{Duration, Instant};

use flowstone::queue::worker::WorkerBuilder;
use flowstone::{Asset, FlowStone, Job, JobStatus};
use flowstone_queue::testing::TestDb;
use flowstone_queue::{WorkerHandle, WorkerSettings};

/// How long any wait may take before the test fails: generous, the machine is shared.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// How often waits poll.
pub const POLL: Duration = Duration::from_millis(25);

/// Worker timings short enough for tests to finish in seconds. A node is presumed dead after
/// 20 missed heartbeats: quick enough for the SIGKILL test, and a live node on a loaded
/// machine is not rescued by mistake.
pub fn fast_settings() -> WorkerSettings {
    WorkerSettings {
        poll_interval: Duration::from_millis(50),
        heartbeat_interval: Duration::from_millis(200),
        rescue_after: Duration::from_secs(4),
        rescue_interval: Duration::from_millis(200),
        cancel_poll_interval: Duration::from_millis(100),
        unknown_kind_limit: 25,
        unknown_kind_delay: Duration::from_millis(100),
        prune_after: None,
        ..WorkerSettings::default()
    }
}

/// A worker for `fs` on `queue` with `slots` concurrent jobs, a unique node named after
/// `label` and [`fast_settings`]; the caller adds what its test needs and starts it.
pub fn worker(fs: &FlowStone, queue: &str, slots: usize, label: &str) -> WorkerBuilder {
    fs.worker()
        .queue(queue, slots)
        .node(node(label))
        .settings(fast_settings())
}

/// A started [`worker`] on the `assets` queue with 4 slots.
pub async fn start_worker(fs: &FlowStone, label: &str) -> WorkerHandle {
    worker(fs, "assets", 4, label)
        .start()
        .await
        .expect("the worker starts")
}

/// Polls `probe` until it returns `Some`, for up to `timeout`; panics naming `what` after.
pub async fn wait_for_within<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(
            started.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// [`wait_for_within`] with [`PATIENCE`].
pub async fn wait_for<T, F, Fut>(what: &str, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    wait_for_within(what, PATIENCE, probe).await
}

/// A FlowStone with `assets` on the test's database (its own pool, as another process would).
pub async fn connect(db: &TestDb, assets: Vec<Asset>) -> FlowStone {
    FlowStone::builder()
        .assets(assets)
        .database(db.url())
        .connect()
        .await
        .expect("connect to the test database")
}

/// The queue row behind `job`.
pub async fn row(fs: &FlowStone, job: &Job) -> flowstone_queue::Job {
    let id = flowstone::queue::queue_job_id(job).expect("a job scheduled on the queue");
    fs.queue()
        .expect("a database is configured")
        .get(id)
        .await
        .expect("read the queue row")
}

/// Polls `job_status` until the job has finished.
pub async fn wait_finished(fs: &FlowStone, job: &Job) -> JobStatus {
    wait_for(
        &format!("job {} of '{}' to finish", job.id, job.asset),
        || async {
            let status = fs.job_status(job).await.expect("job_status");
            status.is_finished().then_some(status)
        },
    )
    .await
}

/// A unique node name for a worker in this test process.
pub fn node(label: &str) -> String {
    let id = uuid::Uuid::now_v7().simple().to_string();
    format!("{label}-{}", &id[id.len() - 8..])
}
