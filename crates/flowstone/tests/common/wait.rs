//! Polling waits: a test waits for a condition, with generous timeouts because the machine is
//! shared, and never asserts how long anything took.

use std::future::Future;
use std::time::{Duration, Instant};

use flowstone::store::{Materialization, MaterializationStatus};
use flowstone::{FlowStone, Job, JobStatus};

use super::outcome::job_status;
use super::records;

/// How long any wait may take before the test fails: generous, the machine is shared.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// How often waits poll.
pub const POLL: Duration = Duration::from_millis(25);

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

/// Polls `condition` until it holds, for up to [`PATIENCE`]; panics naming `what` after.
pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    wait_for(what, || {
        let holds = condition();
        async move { holds.then_some(()) }
    })
    .await
}

/// Polls `job_status` until the job has finished.
pub async fn wait_finished(fs: &FlowStone, job: &Job) -> JobStatus {
    wait_for(
        &format!("job {} of '{}' to finish", job.id, job.asset),
        || async {
            let status = job_status(fs, job).await;
            status.is_finished().then_some(status)
        },
    )
    .await
}

/// Polls the records of `asset` until one is no longer `Running`, and returns it.
pub async fn settled_record(fs: &FlowStone, asset: &str) -> Materialization {
    wait_for(&format!("a record of '{asset}' to settle"), || async {
        records(fs, asset)
            .await
            .into_iter()
            .find(|r| r.status != MaterializationStatus::Running)
    })
    .await
}
