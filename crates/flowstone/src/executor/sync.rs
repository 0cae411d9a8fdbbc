//! The Sync executor: runs the job in the caller's task and returns when it is done.
//!
//! Best for tests, scripts and debugging. `schedule` runs the job now and keeps the outcome, so
//! `status` reports it (the Elixir original threw it away).

use std::time::Duration;

use async_trait::async_trait;

use super::table::{DEFAULT_FINISHED_CAPACITY, JobTable};
use super::{Capabilities, Capability, ExecContext, Executor, Job, JobStatus};
use crate::error::Result;
use crate::output::Output;
use crate::runtime::Runtime;

/// Runs jobs in the caller's task.
pub struct SyncExecutor {
    timeout: Duration,
    jobs: JobTable,
}

impl SyncExecutor {
    /// Default timeout per attempt: 30 s.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

    /// A Sync executor with the default timeout.
    pub fn new() -> Self {
        SyncExecutor {
            timeout: Self::DEFAULT_TIMEOUT,
            jobs: JobTable::new(DEFAULT_FINISHED_CAPACITY),
        }
    }

    /// Sets the default timeout per attempt.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

impl Default for SyncExecutor {
    fn default() -> Self {
        SyncExecutor::new()
    }
}

#[async_trait]
impl Executor for SyncExecutor {
    fn name(&self) -> &str {
        "sync"
    }

    fn check(&self) -> Result<()> {
        crate::limits::timeout("timeout", self.timeout).map(drop)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::of(&[
            Capability::Immediate,
            Capability::Timeout,
            Capability::Retries,
            Capability::Status,
        ])
    }

    async fn execute(&self, job: Job, cx: ExecContext) -> Result<Output> {
        let env = cx.run_env(&job.executor, self.timeout);
        cx.runtime.run(&job, &env).await
    }

    async fn schedule(&self, job: Job, cx: ExecContext) -> Result<Job> {
        let env = cx.run_env(&job.executor, self.timeout);
        self.jobs
            .insert(job.id, JobStatus::Running, env.cancel.clone());
        let result = cx.runtime.run(&job, &env).await;
        self.jobs.finish(job.id, JobStatus::from_result(&result));
        Ok(job)
    }

    async fn status(&self, job: &Job, _runtime: &Runtime) -> Result<JobStatus> {
        self.jobs.status(job.id, self.name())
    }

    /// A scheduled job has run by the time `schedule` returns, so this only answers for the
    /// jobs it ran: `AlreadyFinished` naming the state (Ok for a cancelled one).
    async fn cancel(&self, job: &Job, _runtime: &Runtime) -> Result<()> {
        self.jobs.cancel(job.id, self.name(), Duration::ZERO).await
    }
}
