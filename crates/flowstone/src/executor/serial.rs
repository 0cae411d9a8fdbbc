//! The Serial executor: one job at a time, for watching a pipeline step by step.
//!
//! Every job in the process that goes through it waits its turn. With `verbose` each step is
//! traced at debug level; `pause_between` leaves a gap between the end of one step and the start
//! of the next; `on_step` sees a [`Step::Before`] and a [`Step::After`] for every job, in order.

use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::table::{DEFAULT_FINISHED_CAPACITY, JobTable};
use super::{Capabilities, Capability, ExecContext, Executor, Job, JobStatus, Step};
use crate::error::Result;
use crate::output::Output;
use crate::runtime::Runtime;

/// Runs jobs one at a time.
pub struct SerialExecutor {
    timeout: Duration,
    /// Held while a step runs; holds when the last step ended.
    turn: Mutex<Option<Instant>>,
    jobs: JobTable,
}

impl SerialExecutor {
    /// A Serial executor with the Sync executor's default timeout.
    pub fn new() -> Self {
        SerialExecutor {
            timeout: super::SyncExecutor::DEFAULT_TIMEOUT,
            turn: Mutex::new(None),
            jobs: JobTable::new(DEFAULT_FINISHED_CAPACITY),
        }
    }

    /// Sets the default timeout per attempt.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    async fn step(&self, job: &Job, cx: &ExecContext) -> Result<Output> {
        let mut last_end = self.turn.lock().await;
        let opts = &cx.options;
        let verbose = opts.verbose.unwrap_or(false);
        if let (Some(pause), Some(end)) = (opts.pause_between, *last_end) {
            if verbose {
                tracing::debug!(pause_ms = pause.as_millis() as u64, "serial: pausing");
            }
            tokio::time::sleep_until(end + pause).await;
        }
        if verbose {
            tracing::debug!(asset = %job.asset, partition = %job.partition, run_id = %job.run_id, "serial: starting");
        }
        if let Some(on_step) = &opts.on_step {
            on_step(&Step::Before(job));
        }
        let started = Instant::now();
        let env = cx.run_env(&job.executor, self.timeout);
        let result = cx.runtime.run(job, &env).await;
        if verbose {
            let ms = started.elapsed().as_millis() as u64;
            match &result {
                Ok(_) => tracing::debug!(asset = %job.asset, duration_ms = ms, "serial: completed"),
                Err(err) => {
                    tracing::debug!(asset = %job.asset, duration_ms = ms, error = %err, "serial: failed")
                }
            }
        }
        if let Some(on_step) = &opts.on_step {
            on_step(&Step::After(job, &result));
        }
        *last_end = Some(Instant::now());
        result
    }
}

impl Default for SerialExecutor {
    fn default() -> Self {
        SerialExecutor::new()
    }
}

#[async_trait]
impl Executor for SerialExecutor {
    fn name(&self) -> &str {
        "serial"
    }

    fn check(&self) -> Result<()> {
        crate::limits::timeout("timeout", self.timeout).map(drop)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::of(&[
            Capability::Immediate,
            Capability::Stepping,
            Capability::Timeout,
            Capability::Retries,
            Capability::Status,
        ])
    }

    async fn execute(&self, job: Job, cx: ExecContext) -> Result<Output> {
        self.step(&job, &cx).await
    }

    async fn schedule(&self, job: Job, cx: ExecContext) -> Result<Job> {
        self.jobs
            .insert(job.id, JobStatus::Running, cx.cancel.clone());
        let result = self.step(&job, &cx).await;
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
