//! The FlowStone worker: runs queued materializations with this process's registry.
//!
//! Everything a job needs is in its row (the serialized [`Job`]); the asset, its hooks, IO
//! managers and resources are looked up by name here. Outcomes map onto the queue's:
//!
//! - success → `complete`, with the output stored in the row when a caller waits for it;
//! - a retryable error → `retry` after the asset's backoff (the queue counts attempts);
//! - a non-retryable error → `discard`;
//! - a missing dependency → `snooze` (no attempt used up), growing, until a limit, then discard
//!   with `DependencyNotReady`;
//! - each asset has its own job kind ([`super::job_kind`]) and a worker claims only its own
//!   registry's, so in a rolling deploy an old worker leaves a new asset to the new workers
//!   (the queue discards a job no live worker has served for `unserved_kind_after`); a row
//!   of the legacy kind for an asset this worker does not know → given back with `snooze`,
//!   until a limit, then discard naming the asset;
//! - cancelled → `cancelled`; stopped by this worker's shutdown past its grace period → back
//!   to the queue (`retry` at once, the interrupted attempt spent).
//!
//! Both give-backs count in the row's `snoozed`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use flowstone_queue::{
    HandlerOptions, JobContext, Outcome, ShutdownReport, WorkerHandle, WorkerSettings,
};

use super::{DEFAULT_QUEUE, KIND, encode_error, job_kind};
use crate::error::{Error, ErrorKind, Result};
use crate::job::Job;
use crate::runtime::{RunEnv, Runtime};
use crate::store::RetentionPolicy;

/// Configures a worker; from [`crate::FlowStone::worker`].
#[must_use = "a worker does nothing until .start() or .run_until(..)"]
pub struct WorkerBuilder {
    fs: crate::FlowStone,
    runtime: Runtime,
    database: Option<flowstone_queue::Database>,
    queues: Vec<(String, usize)>,
    settings: WorkerSettings,
    node: Option<String>,
    limits: Limits,
    grace: Duration,
    retention: Option<(RetentionPolicy, Duration)>,
    automation: Option<crate::automation::Automation>,
}

/// After an asset's cancel grace, how long its handler may take to write the cancelled record
/// before the queue aborts it.
const RECORD_AFTER_CANCEL: Duration = Duration::from_secs(10);

/// The name the retention pass runs under as a leader duty (in warnings about it).
pub const RETENTION_DUTY: &str = "flowstone.retention";

#[derive(Debug, Clone, Copy)]
struct Limits {
    unknown_asset: i32,
    dependency_snoozes: i32,
    dependency_backoff: Duration,
    timeout: Duration,
}

impl WorkerBuilder {
    pub(crate) fn new(fs: crate::FlowStone) -> Self {
        WorkerBuilder {
            runtime: fs.runtime().clone(),
            database: fs.database().cloned(),
            fs,
            queues: Vec::new(),
            settings: WorkerSettings::default(),
            node: None,
            limits: Limits {
                unknown_asset: 25,
                dependency_snoozes: 20,
                dependency_backoff: Duration::from_secs(1),
                timeout: Duration::from_secs(3600),
            },
            grace: Duration::from_secs(30),
            retention: None,
            automation: None,
        }
    }

    /// Also runs automation (schedules, sensors, conditions; see [`crate::automation`]) in
    /// this worker: however many workers do, one leads at a time and the others stand by.
    /// It stops with the worker, after the running jobs.
    pub fn automation(mut self, on: bool) -> Self {
        self.automation = on.then(|| crate::automation::Automation::new(self.fs.clone()));
        self
    }

    /// Runs automation configured as `automation` (lease time, poll interval, executor); it
    /// takes this worker's node name unless it was given one.
    pub fn automation_with(mut self, automation: crate::automation::Automation) -> Self {
        self.automation = Some(automation);
        self
    }

    /// Prunes materialization history by `policy` every `interval` (records and the lineage
    /// they recorded; see [`crate::retention`]). However many workers are configured so, the
    /// pass runs on one at a time: the holder of the queue's maintenance lease, which also
    /// prunes finished queue rows. A failed pass is logged as a warning and tried again at the
    /// next interval.
    pub fn retention(mut self, policy: RetentionPolicy, interval: Duration) -> Self {
        self.retention = Some((policy, interval));
        self
    }

    /// Runs `queue` with at most `concurrency` jobs at once (default: `assets`, 10).
    pub fn queue(mut self, queue: impl Into<String>, concurrency: usize) -> Self {
        self.queues.push((queue.into(), concurrency));
        self
    }

    /// Timings of the underlying queue worker (poll, heartbeat, rescue...).
    pub fn settings(mut self, settings: WorkerSettings) -> Self {
        self.settings = settings;
        self
    }

    /// This node's name (default: host and process id).
    pub fn node(mut self, node: impl Into<String>) -> Self {
        self.node = Some(node.into());
        self
    }

    /// How often a job naming an asset this worker does not know is given back before it is
    /// discarded (default 25).
    pub fn unknown_asset_limit(mut self, limit: i32) -> Self {
        self.limits.unknown_asset = limit;
        self
    }

    /// How often a job whose dependencies are missing snoozes before it fails with
    /// `DependencyNotReady` (default 20), and the first snooze (doubling, at most a minute).
    pub fn dependency_snoozes(mut self, limit: i32, first: Duration) -> Self {
        self.limits.dependency_snoozes = limit;
        self.limits.dependency_backoff = first;
        self
    }

    /// Timeout per attempt for assets that set none (default 1 h).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.limits.timeout = timeout;
        self
    }

    /// How long running jobs may take to finish on shutdown (default 30 s).
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Starts claiming jobs.
    pub async fn start(self) -> Result<WorkerHandle> {
        let db = self.database.ok_or_else(|| {
            Error::config(
                "a worker needs a database: build FlowStone with .database(\"sqlite://flowstone.db\")",
            )
        })?;
        // On SQLite, where another process's cancel is only polled, a success commits its
        // records and outputs in the transaction that completes the job (see `run_job`).
        #[cfg(feature = "sqlite")]
        let fence = (db.engine() == flowstone_queue::Engine::Sqlite).then(|| db.clone());
        #[cfg(not(feature = "sqlite"))]
        let fence: Option<flowstone_queue::Database> = None;
        let mut builder = flowstone_queue::Worker::builder(db).settings(self.settings);
        let queues = if self.queues.is_empty() {
            vec![(DEFAULT_QUEUE.to_owned(), 10)]
        } else {
            self.queues
        };
        for (queue, concurrency) in queues {
            let concurrency = crate::limits::concurrency(
                &format!("concurrency of queue '{queue}'"),
                concurrency,
            )?;
            builder = builder.queue(queue, concurrency);
        }
        if let Some(node) = &self.node {
            builder = builder.node(node.clone());
        }
        if let Some((policy, interval)) = self.retention {
            let runtime = self.runtime.clone();
            builder = builder.leader_duty(RETENTION_DUTY, interval, move |_db| {
                let runtime = runtime.clone();
                async move {
                    let pruned = policy
                        .apply(runtime.store().as_ref(), runtime.lineage().as_ref())
                        .await?;
                    if pruned.records > 0 {
                        tracing::info!(
                            records = pruned.records,
                            lineage_edges = pruned.lineage_edges,
                            "retention pruned materialization history"
                        );
                    }
                    Ok::<(), Error>(())
                }
            });
        }
        if let Some(mut automation) = self.automation {
            // The worker's node name also names it as the automation leader.
            if let Some(node) = &self.node {
                automation = automation.default_node(node);
            }
            builder = builder.service(move |_db, stop| automation.run(stop));
        }
        let runtime = self.runtime;
        let limits = self.limits;
        // One kind per asset of this registry (so nothing else is claimed), and the kind
        // of rows written before kinds named their asset. The asset's own cancel grace runs
        // inside the handler (its future is dropped after it, and the cancelled record is
        // written); the queue aborts the handler only well after that.
        let options = |grace: Duration| HandlerOptions {
            cancel_grace: grace.saturating_add(RECORD_AFTER_CANCEL),
            ..HandlerOptions::default()
        };
        let mut kinds: Vec<(String, HandlerOptions)> = runtime
            .registry()
            .assets()
            .map(|a| (job_kind(&a.name), options(a.cancel_grace)))
            .collect();
        let longest = runtime
            .registry()
            .assets()
            .map(|a| a.cancel_grace)
            .max()
            .unwrap_or_default();
        kinds.push((KIND.to_owned(), options(longest)));
        let handler = move |ctx: JobContext, job: Job| {
            let (runtime, fence) = (runtime.clone(), fence.clone());
            async move { run_job(&runtime, ctx, job, limits, fence.as_ref()).await }
        };
        for (kind, options) in kinds {
            builder = builder.typed_handler_with(kind, options, handler.clone());
        }
        let handle = builder.start().await.map_err(super::queue_error)?;
        Ok(handle)
    }

    /// Runs until `signal` completes, then shuts down gracefully.
    pub async fn run_until(self, signal: impl Future<Output = ()>) -> Result<ShutdownReport> {
        let grace = self.grace;
        let handle = self.start().await?;
        signal.await;
        Ok(handle.shutdown(grace).await)
    }
}

/// The outcome of a successful attempt: the output in the row for a waiting caller, and, with
/// held writes, the commit that stores them and completes the job in one transaction.
async fn succeed(
    ctx: &JobContext,
    output: &crate::output::Output,
    held: Option<(&flowstone_queue::Database, crate::sql::Held)>,
) -> Result<Outcome> {
    let value = if returns_output(ctx) {
        match output.to_json() {
            Ok(value) => Some(value),
            Err(err) => {
                if let Some((_, held)) = held {
                    held.commit().await?;
                }
                return Ok(Outcome::discard(encode_error(&err)));
            }
        }
    } else {
        None
    };
    let Some((db, held)) = held else {
        return Ok(Outcome::Complete(value));
    };
    let completion = crate::sql::Completion {
        ctx: ctx.clone(),
        result: value,
    };
    if held.commit_completing(completion).await? {
        flowstone_queue::transaction::announce_completed(db, ctx.id);
        Ok(Outcome::Committed)
    } else {
        // The cancel (or rescue) committed first: nothing of the success was stored, and the
        // row is no longer this attempt's, so this outcome is fenced off as well.
        Ok(Outcome::cancelled(format!(
            "queue job {} was cancelled before its success committed",
            ctx.id
        )))
    }
}

/// The attempts the asset's own errors may use, as recorded in the row.
fn asset_attempts(ctx: &JobContext) -> i32 {
    ctx.meta
        .get(super::ATTEMPTS)
        .and_then(serde_json::Value::as_i64)
        .and_then(|n| i32::try_from(n).ok())
        .unwrap_or(ctx.max_attempts)
}

/// Whether a caller waits for the output in the row (rows written before the flag existed
/// all had one).
fn returns_output(ctx: &JobContext) -> bool {
    ctx.meta
        .get(super::RETURNS_OUTPUT)
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(true)
}

/// Runs one queued materialization. With `fence` (the queue's SQLite database), the writes
/// that end it are held back and committed in the transaction that completes the job, fenced
/// by the job's state: a cancel that commits first leaves no success behind (its records say
/// cancelled, no output or lineage is stored), and one that comes after finds the job
/// completed.
async fn run_job(
    runtime: &Runtime,
    ctx: JobContext,
    job: Job,
    limits: Limits,
    fence: Option<&flowstone_queue::Database>,
) -> Outcome {
    let asset = match runtime.registry().get(&job.asset) {
        Ok(asset) => Arc::clone(asset),
        Err(_) if ctx.snoozed < limits.unknown_asset => {
            tracing::warn!(asset = %job.asset, node = %ctx.node, "asset unknown here; giving the job back");
            return Outcome::snooze(Duration::from_secs(1));
        }
        Err(err) => {
            let err = Error::new(
                ErrorKind::AssetNotFound,
                format!(
                    "no worker that ran this job knows asset '{}' (given back {} times): {err}",
                    job.asset, ctx.snoozed
                ),
            )
            .with_asset(&job.asset)
            .with_retryable(false);
            return Outcome::discard(encode_error(&err));
        }
    };
    let env = RunEnv {
        executor: job.executor.clone(),
        timeout: None,
        default_timeout: limits.timeout,
        max_attempts: Some(1),
        cancel: ctx.cancel.clone(),
    };
    // Snoozes take queue attempt numbers without using up attempts; the asset counts only
    // the deliveries that ran it.
    let counted = ctx.attempt.saturating_sub(ctx.snoozed).max(1);
    let attempt = u32::try_from(counted).unwrap_or(1);
    let run = runtime.run_attempt(&job, attempt, &env);
    let (result, held) = match fence {
        Some(db) => {
            let (result, held) = crate::sql::hold(db, run).await;
            (result, Some((db, held)))
        }
        None => (run.await, None),
    };
    let result = match (result, held) {
        (Ok(output), held) => succeed(&ctx, &output, held).await,
        (Err(err), Some((_, held))) => {
            // A failure's records are stored all the same.
            if let Err(store) = held.commit().await {
                tracing::warn!(asset = %job.asset, error = %store, "could not store a failed materialization's records");
            }
            Err(err)
        }
        (Err(err), None) => Err(err),
    };
    match result {
        Ok(outcome) => outcome,
        Err(err) => match err.kind() {
            ErrorKind::DependencyNotReady if ctx.snoozed < limits.dependency_snoozes => {
                let factor = 2u32.saturating_pow(u32::try_from(ctx.snoozed).unwrap_or(0).min(16));
                let wait = limits
                    .dependency_backoff
                    .saturating_mul(factor)
                    .min(Duration::from_secs(60));
                Outcome::snooze(wait)
            }
            // The token fires on a cancel, on a rescue by another node, and when this worker
            // shuts down past its grace period. After a cancel or a rescue the row is no longer
            // this attempt's and the ack is fenced off; only after a shutdown is it read, and
            // then the job must go back to the queue like any interrupted attempt, not end
            // cancelled.
            ErrorKind::Cancelled if ctx.cancel.is_cancelled() => {
                let err = Error::failed(format!(
                    "worker {} stopped before attempt {} of '{}' finished",
                    ctx.node, ctx.attempt, job.asset
                ))
                .with_asset(&job.asset)
                .with_partition(job.partition.clone());
                Outcome::retry_in(encode_error(&err), Duration::ZERO)
            }
            ErrorKind::Cancelled => Outcome::cancelled(encode_error(&err)),
            // The asset's errors may use the attempts it asked for; the row's extra attempts
            // are only for interrupted deliveries.
            _ if err.retryable()
                && err.kind() != ErrorKind::DependencyNotReady
                && counted < asset_attempts(&ctx) =>
            {
                Outcome::retry_in(
                    encode_error(&err),
                    asset.retry_policy().delay_after(attempt),
                )
            }
            _ => Outcome::discard(encode_error(&err)),
        },
    }
}
