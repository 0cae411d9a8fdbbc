//! The Queue executor: durable, multi-process materialization on the flowstone-queue job queue.
//!
//! `schedule` inserts a job row whose args are the whole [`Job`] (it is plain data), `execute`
//! inserts and waits for the row to finish and returns the output stored in it, and `status` and
//! `cancel` read and write the row, so they work from any process connected to the same
//! database, for pending and running jobs alike. Workers ([`crate::queue::worker`]) run the jobs
//! with their own registry, resolved by name.
//!
//! The queue row's id is kept in the job's metadata under [`QUEUE_JOB_ID`], the way the Elixir
//! original kept `oban_job_id`; unlike there, nothing else lives only in the scheduling process.

pub mod worker;

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use flowstone_queue::{JobState, NewJob, Queue, Unique};

use crate::error::{Error, ErrorKind, ErrorRecord, Result};
use crate::executor::{Capabilities, Capability, ExecContext, ExecOptions, Executor};
use crate::job::{Job, JobStatus};
use crate::output::Output;
use crate::runtime::Runtime;

/// The prefix of the job kinds FlowStone's materializations use on the queue: a row's kind is
/// [`job_kind`]`(asset)`, so a worker claims only the assets its registry has, and in a
/// rolling deploy a worker without a new asset leaves its jobs to workers that have it. Rows
/// written before kinds named their asset have this kind alone; workers still run them.
pub const KIND: &str = "flowstone.materialize";

/// The queue job kind of `asset`'s materializations: `flowstone.materialize:<asset>`.
pub fn job_kind(asset: &str) -> String {
    format!("{KIND}:{asset}")
}
/// The queue used when a run names none.
pub const DEFAULT_QUEUE: &str = "assets";

/// How recent a worker's heartbeat must be for `Strategy::Auto` to count it alive: the
/// workers' default `rescue_after`, after which their jobs are rescued anyway.
pub const LIVE_WITHIN: Duration = Duration::from_secs(60);
/// Attempts a row gets beyond its asset's own, for deliveries a dead or stopped worker
/// interrupted: a crash must not use up a one-attempt asset's only attempt.
pub const DELIVERY_SLACK: u32 = 2;
/// The row metadata key holding the attempts the asset's errors may use.
pub const ATTEMPTS: &str = "attempts";
/// The row metadata key that is `false` when no caller waits for the output (a backfill's
/// rows): the worker then completes the row without it.
pub const RETURNS_OUTPUT: &str = "returns_output";
/// The metadata key holding the queue row's id.
pub const QUEUE_JOB_ID: &str = "queue_job_id";

/// What a queue row is for.
#[derive(Debug, Clone, Copy)]
enum RowFor {
    /// `schedule` and `execute`: unique per asset + partition + run, so scheduling the same run
    /// twice makes one job; the output is kept in the row for the caller.
    Caller,
    /// One partition of a backfill: unique per asset + partition across all backfills, so a
    /// partition with an active backfill job (of an overlapping backfill, or of one whose
    /// process died) is not enqueued again but reported in flight. Nobody waits for its
    /// output, which is in the IO manager.
    Backfill,
}

/// Runs jobs through the durable queue.
#[derive(Clone)]
pub struct QueueExecutor {
    queue: Queue,
}

impl QueueExecutor {
    /// An executor on `queue` (migrated).
    pub fn new(queue: Queue) -> Self {
        QueueExecutor { queue }
    }

    /// The queue client.
    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// The rows of `batch` by (asset, encoded partition), from their meta.
    async fn rows_of_batch(&self, batch: &str) -> Result<HashMap<(String, String), i64>> {
        let mut rows = HashMap::new();
        let mut after = None;
        loop {
            let page = self
                .queue
                .list_batch(batch, after, Some(1000))
                .await
                .map_err(queue_error)?;
            let Some(last) = page.last() else {
                return Ok(rows);
            };
            after = Some(last.id);
            for row in &page {
                let text = |key: &str| {
                    row.meta
                        .get(key)
                        .and_then(|v| v.as_str())
                        .map(str::to_owned)
                };
                if let (Some(asset), Some(partition)) = (text("asset"), text("partition")) {
                    rows.insert((asset, partition), row.id);
                }
            }
        }
    }

    /// The queue row for `job`, built from the job and the caller's options.
    fn new_job(&self, job: &Job, cx: &ExecContext, purpose: RowFor) -> Result<NewJob> {
        let asset = cx.runtime.registry().get(&job.asset)?;
        let max_attempts = cx
            .options
            .max_attempts
            .unwrap_or(asset.retry_policy().max_attempts)
            .clamp(1, u32::MAX - DELIVERY_SLACK);
        let mut meta = serde_json::json!({
            ATTEMPTS: max_attempts,
            "asset": job.asset,
            "partition": job.partition.encode(),
            "run_id": job.run_id.to_string(),
            "job_id": job.id.to_string(),
        });
        let mut row = NewJob::with_args(job_kind(&job.asset), job)
            .map_err(queue_error)?
            .queue(cx.options.queue.as_deref().unwrap_or(DEFAULT_QUEUE))
            .priority(job.priority)
            .max_attempts(i32::try_from(max_attempts + DELIVERY_SLACK).unwrap_or(i32::MAX));
        match purpose {
            RowFor::Caller => {
                row = row.unique(Unique::Key(format!(
                    "{KIND}|{}|{}|{}",
                    job.asset,
                    job.partition.encode(),
                    job.run_id
                )));
            }
            RowFor::Backfill => {
                meta[RETURNS_OUTPUT] = false.into();
                // Lengths first, so no asset name and partition pair can spell another's.
                let (asset, partition) = (&*job.asset, job.partition.encode());
                row = row.unique(Unique::Key(format!(
                    "{KIND}|backfill|{}:{asset}|{}:{partition}",
                    asset.len(),
                    partition.len()
                )));
            }
        }
        row = row.meta(meta);
        if let Some(at) = job.scheduled_at {
            row = row.scheduled_at(at);
        }
        if let Some(backfill) = job.backfill_id {
            row = row.batch(backfill.to_string());
        }
        Ok(row)
    }

    /// Inserts `job`'s row and records its id in the job.
    async fn enqueue(&self, job: Job, cx: &ExecContext) -> Result<Job> {
        let row = self.new_job(&job, cx, RowFor::Caller)?;
        let inserted = self.queue.insert(row).await.map_err(queue_error)?;
        Ok(Self::with_queue_id(job, inserted.job.id))
    }

    fn with_queue_id(mut job: Job, id: i64) -> Job {
        job.metadata.insert(QUEUE_JOB_ID.into(), id.into());
        job
    }

    /// Waits for queue row `id` to finish, however long it takes.
    async fn wait_for(&self, id: i64) -> Result<flowstone_queue::Job> {
        loop {
            match self.queue.wait(id, Duration::from_secs(3600)).await {
                Ok(row) => return Ok(row),
                Err(flowstone_queue::Error::WaitTimeout { .. }) => continue,
                Err(err) => return Err(queue_error(err)),
            }
        }
    }
}

/// The queue row id recorded in `job`.
pub fn queue_job_id(job: &Job) -> Result<i64> {
    job.metadata
        .get(QUEUE_JOB_ID)
        .and_then(serde_json::Value::as_i64)
        .ok_or_else(|| {
            Error::invalid_options(format!(
                "job {} has no '{QUEUE_JOB_ID}' in its metadata: it was not scheduled on the queue",
                job.id
            ))
        })
}

pub(crate) fn queue_error(err: flowstone_queue::Error) -> Error {
    let kind = match &err {
        flowstone_queue::Error::BadUrl { .. } | flowstone_queue::Error::Unreachable { .. } => {
            ErrorKind::Config
        }
        flowstone_queue::Error::NotFound(_) => ErrorKind::NotFound,
        flowstone_queue::Error::AlreadyFinished { .. } => ErrorKind::AlreadyFinished,
        _ => ErrorKind::Queue,
    };
    Error::new(kind, err.to_string()).with_source(err)
}

/// Encodes an error for a queue row's `errors`, so another process can rebuild it whole.
pub(crate) fn encode_error(err: &Error) -> String {
    serde_json::to_string(&err.to_record()).unwrap_or_else(|_| err.to_string())
}

/// Rebuilds an error written by [`encode_error`] (or a plain message from elsewhere).
pub(crate) fn decode_error(text: &str) -> Error {
    match serde_json::from_str::<ErrorRecord>(text) {
        Ok(record) => Error::from_record(record),
        Err(_) => Error::failed(text.to_owned()),
    }
}

/// What a finished queue row means for its job.
pub(crate) fn outcome_of(row: &flowstone_queue::Job) -> Result<Output> {
    match row.state {
        JobState::Completed => {
            let value = row.result.clone().unwrap_or(serde_json::Value::Null);
            Ok(Output::from_json_bytes(serde_json::to_vec(&value)?))
        }
        JobState::Cancelled => {
            let asset = row
                .meta
                .get("asset")
                .and_then(|a| a.as_str())
                .unwrap_or("?");
            Err(Error::cancelled(asset))
        }
        _ => Err(match row.errors.last() {
            Some(e) if e.error.starts_with(flowstone_queue::UPSTREAM_FAILED) => Error::new(
                ErrorKind::UpstreamFailed,
                format!("{} (queue job {})", e.error, row.id),
            ),
            Some(e) => decode_error(&e.error),
            None => Error::failed(format!("queue job {} was {}", row.id, row.state)),
        }),
    }
}

fn status_of(row: &flowstone_queue::Job) -> JobStatus {
    match row.state {
        JobState::Available | JobState::Scheduled | JobState::Retryable => JobStatus::Pending {
            scheduled_at: row.scheduled_at,
            attempt: u32::try_from(row.attempt + 1).unwrap_or(1),
        },
        JobState::Executing => JobStatus::Running,
        _ => JobStatus::from_result(&outcome_of(row)),
    }
}

#[async_trait]
impl Executor for QueueExecutor {
    fn name(&self) -> &str {
        "queue"
    }

    /// Ready while a worker that sent a heartbeat within [`LIVE_WITHIN`] works the job's queue.
    async fn ready(&self, options: &ExecOptions) -> std::result::Result<(), String> {
        let queue = options.queue.as_deref().unwrap_or(DEFAULT_QUEUE);
        match self.queue.workers_serving(queue, LIVE_WITHIN).await {
            Ok(nodes) if !nodes.is_empty() => Ok(()),
            Ok(_) => Err(format!("no live worker serves queue '{queue}'")),
            Err(err) => Err(format!("cannot ask the queue for live workers: {err}")),
        }
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::of(&[
            Capability::Async,
            Capability::Parallel,
            Capability::Scheduled,
            Capability::Queues,
            Capability::Priority,
            Capability::Retries,
            Capability::Timeout,
            Capability::Persistent,
            Capability::Distributed,
            Capability::Status,
            Capability::Cancel,
            Capability::Graphs,
        ])
    }

    /// Enqueues `job` and waits for its row to finish. The run's `timeout` bounds the wait: past
    /// it the call fails with `ExecutionTimeout` naming the job, and the job stays queued (follow
    /// it with `job_status`, or cancel it).
    async fn execute(&self, job: Job, cx: ExecContext) -> Result<Output> {
        let job = self.enqueue(job, &cx).await?;
        let id = queue_job_id(&job)?;
        let wait = async {
            tokio::select! {
                row = self.wait_for(id) => row,
                () = cx.cancel.cancelled() => {
                    self.queue.cancel(id).await.map_err(queue_error)?;
                    self.wait_for(id).await
                }
            }
        };
        let row = match cx.options.timeout {
            None => wait.await?,
            Some(limit) => tokio::time::timeout(limit, wait).await.map_err(|_| {
                Error::new(
                    ErrorKind::ExecutionTimeout,
                    format!(
                        "job {} (queue row {id}) of asset '{}' did not finish within {limit:?}; \
                         it stays queued: follow it with job_status or cancel it",
                        job.id, job.asset
                    ),
                )
                .with_asset(&job.asset)
                .with_partition(job.partition.clone())
            })??,
        };
        outcome_of(&row)
    }

    async fn schedule(&self, job: Job, cx: ExecContext) -> Result<Job> {
        if cx.options.timeout.is_some() {
            return Err(Error::invalid_options(
                "option 'timeout' on the queue bounds how long materialize waits for the job; \
                 schedule does not wait: drop it, or give the asset its own .timeout(..)",
            )
            .with_asset(&job.asset));
        }
        self.enqueue(job, &cx).await
    }

    async fn status(&self, job: &Job, _runtime: &Runtime) -> Result<JobStatus> {
        let row = self
            .queue
            .get(queue_job_id(job)?)
            .await
            .map_err(queue_error)?;
        Ok(status_of(&row))
    }

    async fn cancel(&self, job: &Job, _runtime: &Runtime) -> Result<()> {
        match self.queue.cancel(queue_job_id(job)?).await {
            Ok(_) => Ok(()),
            Err(flowstone_queue::Error::AlreadyFinished { id, state }) => Err(
                Error::already_finished(format!("{} (queue row {id})", job.id), state.as_str()),
            ),
            Err(err) => Err(queue_error(err)),
        }
    }

    /// Inserts every job in one bulk insert under the backfill's batch, then follows the rows
    /// in the database until each has finished; cancelling cancels the batch.
    async fn execute_many(
        &self,
        jobs: Vec<Job>,
        cx: ExecContext,
        _concurrency: usize,
        on_done: &(dyn Fn(usize, Result<()>) + Send + Sync),
    ) -> Result<()> {
        self.execute_graph(jobs, Vec::new(), cx, on_done).await
    }

    /// One bulk insert of the whole graph ([`flowstone_queue::Queue::insert_graph`]): the
    /// worker that completes a job releases what waits for it in the same transaction, so no
    /// process has to stay up to move the backfill on.
    async fn execute_graph(
        &self,
        jobs: Vec<Job>,
        edges: Vec<(usize, usize)>,
        cx: ExecContext,
        on_done: &(dyn Fn(usize, Result<()>) + Send + Sync),
    ) -> Result<()> {
        if cx.options.timeout.is_some() {
            return Err(Error::invalid_options(
                "option 'timeout' on the queue bounds how long materialize waits for one job; a \
                 backfill through the queue does not take it: give the asset its own .timeout(..)",
            ));
        }
        if jobs.is_empty() {
            return Ok(());
        }
        // Every row of the call shares one batch, so the whole backfill is cancelled at once.
        let batch = jobs[0].backfill_id.unwrap_or_default().to_string();
        // The graph is inserted in one transaction, so a batch that already has rows was
        // inserted whole by a process that is gone (this is a resumed backfill): follow its
        // rows, and insert only the jobs that have none (never inserting a partition again
        // whose row may be completing right now).
        let left = self.rows_of_batch(&batch).await?;
        let mut ids = Vec::with_capacity(jobs.len());
        let mut index_of: HashMap<i64, usize> = HashMap::with_capacity(jobs.len());
        let mut fresh: Vec<usize> = Vec::with_capacity(jobs.len());
        for (index, job) in jobs.iter().enumerate() {
            match left.get(&(job.asset.clone(), job.partition.encode())) {
                Some(&id) => {
                    ids.push(id);
                    index_of.insert(id, index);
                }
                None => fresh.push(index),
            }
        }
        let mut position = vec![usize::MAX; jobs.len()];
        for (at, &index) in fresh.iter().enumerate() {
            position[index] = at;
        }
        let edges: Vec<(usize, usize)> = edges
            .into_iter()
            .filter(|(up, down)| position[*up] != usize::MAX && position[*down] != usize::MAX)
            .map(|(up, down)| (position[up], position[down]))
            .collect();
        let rows = fresh
            .iter()
            .map(|&index| {
                Ok(self
                    .new_job(&jobs[index], &cx, RowFor::Backfill)?
                    .batch(batch.clone()))
            })
            .collect::<Result<Vec<_>>>()?;
        let inserted = if rows.is_empty() {
            Vec::new()
        } else {
            self.queue
                .insert_graph(&rows, &edges)
                .await
                .map_err(queue_error)?
        };
        // A partition whose active job was already there (another backfill's) is reported in
        // flight at once: it runs once, as that job.
        for (row, &index) in inserted.iter().zip(&fresh) {
            let job = &jobs[index];
            if row.conflict {
                let job_ref = format!("queue row {}", row.id);
                on_done(
                    index,
                    Err(Error::in_flight(&job.asset, &job.partition, job_ref)),
                );
            } else {
                ids.push(row.id);
                index_of.insert(row.id, index);
            }
        }
        let mut report = |row: flowstone_queue::Job| {
            if let Some(index) = index_of.remove(&row.id) {
                on_done(index, outcome_of(&row).map(drop));
            }
        };
        tokio::select! {
            followed = self.queue.wait_all(&ids, &mut report) => return followed.map_err(queue_error),
            () = cx.cancel.cancelled() => {}
        }
        self.queue.cancel_batch(&batch).await.map_err(queue_error)?;
        // Rows reported before the cancel are handed over again and ignored by `report`.
        self.queue
            .wait_all(&ids, &mut report)
            .await
            .map_err(queue_error)
    }
}
