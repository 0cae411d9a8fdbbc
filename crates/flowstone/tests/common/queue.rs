//! Fixtures for the Queue executor tests (`queue_executor.rs`, `queue_multiprocess.rs`):
//! short worker timings, workers started with them, a FlowStone on the test's database, and
//! access to the queue row behind a job.

use std::time::Duration;

use flowstone::queue::worker::WorkerBuilder;
use flowstone::{Asset, FlowStone, Job};
use flowstone_queue::testing::TestDb;
use flowstone_queue::{WorkerHandle, WorkerSettings};

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
        unserved_kind_after: Duration::from_secs(3600),
        prune_after: None,
        // A killed leader's lease lapses quickly, so the next worker rescues its jobs.
        lease_ttl: Duration::from_secs(2),
        lease_renew_interval: Duration::from_millis(200),
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

/// A unique node name for a worker in this test process.
pub fn node(label: &str) -> String {
    let id = uuid::Uuid::now_v7().simple().to_string();
    format!("{label}-{}", &id[id.len() - 8..])
}
