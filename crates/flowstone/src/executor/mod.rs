//! Executors: *how* and *where* a job runs, separate from what the asset computes.
//!
//! An [`Executor`] executes a job and waits for it, or schedules it and returns at once; it may
//! report the status of and cancel the jobs it owns. In-process executors ([`SyncExecutor`],
//! [`TaskAsyncExecutor`], [`SerialExecutor`]) all run jobs through the same
//! [`crate::runtime::Runtime`], so they differ only in scheduling. The durable queue executor and
//! users' own executors implement the same trait. Options an executor cannot honour are refused
//! before anything runs ([`check_options`]), never silently dropped.

mod capability;
mod options;
mod selector;
mod serial;
mod sync;
mod table;
mod task_async;

use async_trait::async_trait;

pub use crate::job::{Job, JobStatus};
pub use capability::{Capabilities, Capability};
pub use options::{ExecContext, ExecOptions, Step, StepCallback, check_options};
pub use selector::{ExecutorTable, Strategy};
pub use serial::SerialExecutor;
pub use sync::SyncExecutor;
pub use task_async::TaskAsyncExecutor;

use crate::error::{Error, Result};
use crate::output::Output;
use crate::runtime::Runtime;

/// A way to run jobs.
#[async_trait]
pub trait Executor: Send + Sync + 'static {
    /// The name it is registered under by default (`sync`, `async`, `serial`, `queue`, ...).
    fn name(&self) -> &str;

    /// What it can honour.
    fn capabilities(&self) -> Capabilities;

    /// Whether it can run a job with `options` now; `Strategy::Auto` asks before it picks this
    /// executor, and `Err(reason)` makes Auto run the job in process instead. The default is
    /// always ready; the queue executor is ready while a live worker serves the job's queue.
    async fn ready(&self, options: &ExecOptions) -> std::result::Result<(), String> {
        let _ = options;
        Ok(())
    }

    /// Checks the executor's own settings (a zero timeout, a zero concurrency). FlowStone's
    /// builder calls it for every executor it registers, so a bad setting fails `build()`
    /// naming the executor instead of failing every job later.
    fn check(&self) -> Result<()> {
        Ok(())
    }

    /// Runs `job` and waits for its output.
    async fn execute(&self, job: Job, cx: ExecContext) -> Result<Output>;

    /// Starts `job` without waiting (or, for immediate executors, runs it now) and returns it,
    /// so `status` and `cancel` can find it.
    async fn schedule(&self, job: Job, cx: ExecContext) -> Result<Job>;

    /// Where `job` stands.
    async fn status(&self, job: &Job, runtime: &Runtime) -> Result<JobStatus> {
        let _ = runtime;
        Err(Error::unsupported(format!(
            "executor '{}' does not keep job status (job {})",
            self.name(),
            job.id
        )))
    }

    /// Cancels `job`.
    async fn cancel(&self, job: &Job, runtime: &Runtime) -> Result<()> {
        let _ = runtime;
        Err(Error::unsupported(format!(
            "executor '{}' cannot cancel jobs (job {})",
            self.name(),
            job.id
        )))
    }

    /// Runs many jobs (a backfill), at most `concurrency` at once, calling `on_done(index,
    /// result)` as each one finishes. Once `cx.cancel` fires, jobs not started yet end
    /// `Cancelled` without running. Outputs are not handed back: they are in the IO manager,
    /// and a backfill of many partitions must not carry them all (the queue does not even
    /// keep them in its rows).
    ///
    /// The default runs them through [`Executor::execute`]; the queue executor overrides it
    /// with one bulk insert.
    async fn execute_many(
        &self,
        jobs: Vec<Job>,
        cx: ExecContext,
        concurrency: usize,
        on_done: &(dyn Fn(usize, Result<()>) + Send + Sync),
    ) -> Result<()> {
        let total = jobs.len();
        // Lanes take jobs by value from one shared iterator: no job is cloned.
        let pending = std::sync::Mutex::new(jobs.into_iter().enumerate());
        let lane = || async {
            loop {
                let next = pending.lock().unwrap_or_else(|p| p.into_inner()).next();
                let Some((index, job)) = next else { break };
                let result = if cx.cancel.is_cancelled() {
                    Err(Error::cancelled(&job.asset).with_partition(job.partition))
                } else {
                    self.execute(job, cx.clone()).await.map(drop)
                };
                on_done(index, result);
            }
        };
        let lanes = concurrency.clamp(1, total.max(1));
        futures_util::future::join_all((0..lanes).map(|_| lane())).await;
        Ok(())
    }

    /// Runs a graph of jobs: each `(upstream, downstream)` edge (positions in `jobs`) makes the
    /// downstream job wait until the upstream one succeeded; one that fails or is cancelled
    /// ends what waits for it (reported as an `UpstreamFailed` or `Cancelled` error). Calls
    /// `on_done(index, result)` once per job as it finishes. Only executors with
    /// [`Capability::Graphs`] implement it; backfills release partitions themselves through
    /// [`Executor::execute_many`] otherwise.
    async fn execute_graph(
        &self,
        jobs: Vec<Job>,
        edges: Vec<(usize, usize)>,
        cx: ExecContext,
        on_done: &(dyn Fn(usize, Result<()>) + Send + Sync),
    ) -> Result<()> {
        let _ = (jobs, edges, cx, on_done);
        Err(Error::unsupported(format!(
            "executor '{}' does not run graphs of jobs",
            self.name()
        )))
    }
}
