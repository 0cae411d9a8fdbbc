//! The TaskAsync executor: runs jobs on tokio tasks, at most `max_concurrency` at once.
//!
//! Jobs are not persisted: if the process ends, pending jobs are lost (use the queue for that).
//! The job table is shared by every clone and every task, so `status` and `cancel` work from any
//! task of the process. Cancelling fires the job's token; the core hook stops the asset's future
//! at its next await point and the record says `cancelled`.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::FutureExt;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::table::{DEFAULT_FINISHED_CAPACITY, JobTable};
use super::{Capabilities, Capability, ExecContext, Executor, Job, JobStatus};
use crate::asset::panic_message;
use crate::error::{Error, Result};
use crate::output::Output;
use crate::runtime::Runtime;

/// Runs jobs on tokio tasks.
#[derive(Clone)]
pub struct TaskAsyncExecutor {
    inner: Arc<Inner>,
}

struct Inner {
    permits: Arc<Semaphore>,
    max_concurrency: usize,
    timeout: Duration,
    cancel_wait: Duration,
    jobs: JobTable,
}

impl TaskAsyncExecutor {
    /// Default timeout per attempt: 60 s.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

    /// At most as many jobs at once as the machine has cores.
    pub fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::build(cores, Self::DEFAULT_TIMEOUT)
    }

    fn build(max_concurrency: usize, timeout: Duration) -> Self {
        // A 0 is kept so `check` can refuse it by name; the semaphore gets at least one permit
        // and at most MAX_CONCURRENCY (tokio panics beyond its own maximum).
        let permits = max_concurrency.clamp(1, crate::limits::MAX_CONCURRENCY);
        TaskAsyncExecutor {
            inner: Arc::new(Inner {
                permits: Arc::new(Semaphore::new(permits)),
                max_concurrency,
                timeout,
                cancel_wait: Duration::from_secs(30),
                jobs: JobTable::new(DEFAULT_FINISHED_CAPACITY),
            }),
        }
    }

    /// Sets how many jobs may run at once: at least 1 (0 fails `build()` with `InvalidOptions`),
    /// at most [`crate::limits::MAX_CONCURRENCY`] (larger values are clamped).
    pub fn max_concurrency(self, max_concurrency: usize) -> Self {
        Self::build(max_concurrency, self.inner.timeout)
    }

    /// Sets the default timeout per attempt.
    pub fn timeout(self, timeout: Duration) -> Self {
        Self::build(self.inner.max_concurrency, timeout)
    }

    /// How many jobs may run at once.
    pub fn concurrency_limit(&self) -> usize {
        self.inner
            .max_concurrency
            .clamp(1, crate::limits::MAX_CONCURRENCY)
    }

    /// Starts `job` on a task that waits for a permit, runs, and records its outcome.
    fn spawn(&self, job: Job, cx: ExecContext) -> JoinHandle<Result<Output>> {
        let env = cx.run_env(&job.executor, self.inner.timeout);
        let inner = Arc::clone(&self.inner);
        inner.jobs.insert(
            job.id,
            JobStatus::Pending {
                scheduled_at: None,
                attempt: 1,
            },
            env.cancel.clone(),
        );
        tokio::spawn(async move {
            let permit = tokio::select! {
                biased;
                () = env.cancel.cancelled() => None,
                permit = Arc::clone(&inner.permits).acquire_owned() => permit.ok(),
            };
            let result = match permit {
                Some(_permit) => {
                    inner.jobs.set(job.id, JobStatus::Running);
                    // The core hook catches the asset's panics; this catches a panicking hook,
                    // so the job's status still ends instead of staying `Running`.
                    AssertUnwindSafe(cx.runtime.run(&job, &env))
                        .catch_unwind()
                        .await
                        .unwrap_or_else(|panic| {
                            Err(Error::panicked(&job.asset, &panic_message(panic))
                                .with_partition(job.partition.clone()))
                        })
                }
                None => Err(Error::cancelled(&job.asset).with_partition(job.partition.clone())),
            };
            inner.jobs.finish(job.id, JobStatus::from_result(&result));
            result
        })
    }
}

impl Default for TaskAsyncExecutor {
    fn default() -> Self {
        TaskAsyncExecutor::new()
    }
}

#[async_trait]
impl Executor for TaskAsyncExecutor {
    fn name(&self) -> &str {
        "async"
    }

    fn check(&self) -> Result<()> {
        crate::limits::concurrency("max_concurrency", self.inner.max_concurrency)?;
        crate::limits::timeout("timeout", self.inner.timeout).map(drop)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::of(&[
            Capability::Async,
            Capability::Parallel,
            Capability::Timeout,
            Capability::Retries,
            Capability::Status,
            Capability::Cancel,
        ])
    }

    async fn execute(&self, job: Job, cx: ExecContext) -> Result<Output> {
        let id = job.id;
        let asset = job.asset.clone();
        let result = self.spawn(job, cx).await;
        self.inner.jobs.remove(id);
        result.unwrap_or_else(|join| {
            Err(Error::failed(format!(
                "the task running asset '{asset}' failed: {join}"
            )))
        })
    }

    async fn schedule(&self, job: Job, cx: ExecContext) -> Result<Job> {
        drop(self.spawn(job.clone(), cx));
        Ok(job)
    }

    async fn status(&self, job: &Job, _runtime: &Runtime) -> Result<JobStatus> {
        self.inner.jobs.status(job.id, self.name())
    }

    async fn cancel(&self, job: &Job, _runtime: &Runtime) -> Result<()> {
        self.inner
            .jobs
            .cancel(job.id, self.name(), self.inner.cancel_wait)
            .await
    }
}
