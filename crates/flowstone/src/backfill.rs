//! Backfills: materialize an asset over many partitions.
//!
//! Partitions come from a list, a date range, or the asset's own definition. Partitions already
//! materialized (latest record `success`) are skipped unless `force`; `retry_failed` runs only the
//! partitions whose latest record is `failed`. At most `max_concurrency` jobs are in flight.
//! `on_progress` is called once per partition, skipped ones included. Cancelling (through the
//! token given with [`Backfill::cancel_on`]) stops running jobs and starts no new ones; the report
//! counts every partition exactly once.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{NaiveDate, NaiveDateTime};
use tokio_util::sync::CancellationToken;

use crate::dispatch::Dispatcher;
use crate::error::{Error, ErrorKind, Result};
use crate::executor::{ExecContext, Strategy};
use crate::ids::{BackfillId, JobId, RunId};
use crate::job::Job;
use crate::partition::Partition;
use crate::registry::Registry;
use crate::run::Run;
use crate::store::MaterializationStatus;

/// Where a backfill's partitions come from.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum BackfillSource {
    /// These partitions.
    List(Vec<Partition>),
    /// Every partition of the asset's definition between two dates (inclusive); daily dates when
    /// the asset has no definition.
    Range(NaiveDate, NaiveDate),
    /// Every partition of the asset's definition.
    All,
}

/// The progress callback.
pub type ProgressCallback = Arc<dyn Fn(&Progress<'_>) + Send + Sync>;

/// What `on_progress` receives after each partition.
#[derive(Debug)]
pub struct Progress<'a> {
    /// The partition just finished.
    pub partition: &'a Partition,
    /// How it ended.
    pub outcome: &'a PartitionOutcome,
    /// Partitions finished so far, this one included.
    pub done: usize,
    /// Partitions in the backfill.
    pub total: usize,
    /// Failures so far.
    pub failed: usize,
}

/// How one partition of a backfill ended.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum PartitionOutcome {
    /// Materialized.
    Succeeded,
    /// Failed with this error.
    Failed(crate::error::Error),
    /// Not run: already materialized (or, with `retry_failed`, not failed).
    Skipped,
    /// Not run, or stopped, because the backfill was cancelled.
    Cancelled,
    /// Not enqueued: the partition already had an active job on the queue (of an
    /// overlapping backfill, or of one whose process died). The error names that job, which
    /// decides the partition's outcome; this backfill does not wait for it.
    InFlight(crate::error::Error),
}

impl PartitionOutcome {
    /// `succeeded`, `failed`, `skipped`, `cancelled` or `in_flight`: the outcome's name in
    /// reports.
    pub fn name(&self) -> &'static str {
        match self {
            PartitionOutcome::Succeeded => "succeeded",
            PartitionOutcome::Failed(_) => "failed",
            PartitionOutcome::Skipped => "skipped",
            PartitionOutcome::Cancelled => "cancelled",
            PartitionOutcome::InFlight(_) => "in_flight",
        }
    }

    /// The error of a failed partition, or for one in flight the error naming its job.
    pub fn error(&self) -> Option<&crate::error::Error> {
        match self {
            PartitionOutcome::Failed(err) | PartitionOutcome::InFlight(err) => Some(err),
            _ => None,
        }
    }
}

/// A backfill request. Start with [`Backfill::partitions`], [`Backfill::range`] or
/// [`Backfill::all`].
#[derive(Clone)]
#[must_use = "a backfill does nothing until it is passed to FlowStone::backfill"]
pub struct Backfill {
    source: BackfillSource,
    run: Run,
    max_concurrency: Option<usize>,
    on_progress: Option<ProgressCallback>,
    force: bool,
    retry_failed: bool,
    cancel: CancellationToken,
}

/// What a backfill did.
#[derive(Debug, Clone)]
pub struct BackfillReport {
    /// This backfill.
    pub backfill_id: BackfillId,
    /// The asset.
    pub asset: String,
    /// Partitions considered.
    pub total: usize,
    /// Materialized.
    pub succeeded: usize,
    /// Failed.
    pub failed: usize,
    /// Skipped.
    pub skipped: usize,
    /// Cancelled.
    pub cancelled: usize,
    /// Already had an active job elsewhere, so not enqueued again.
    pub in_flight: usize,
    /// Each partition's outcome, in the backfill's partition order.
    pub outcomes: Vec<(Partition, PartitionOutcome)>,
}

impl BackfillReport {
    /// The partitions that failed, with their errors.
    pub fn failures(&self) -> impl Iterator<Item = (&Partition, &crate::error::Error)> {
        self.outcomes.iter().filter_map(|(p, o)| match o {
            PartitionOutcome::Failed(err) => Some((p, err)),
            _ => None,
        })
    }
}

impl Backfill {
    fn from_source(source: BackfillSource) -> Self {
        Backfill {
            source,
            run: Run::default(),
            max_concurrency: None,
            on_progress: None,
            force: false,
            retry_failed: false,
            cancel: CancellationToken::new(),
        }
    }

    /// These partitions.
    pub fn partitions(partitions: impl IntoIterator<Item = impl Into<Partition>>) -> Self {
        Self::from_source(BackfillSource::List(
            partitions.into_iter().map(Into::into).collect(),
        ))
    }

    /// The asset's partitions between `from` and `to`, inclusive.
    pub fn range(from: NaiveDate, to: NaiveDate) -> Self {
        Self::from_source(BackfillSource::Range(from, to))
    }

    /// Every partition of the asset's definition.
    pub fn all() -> Self {
        Self::from_source(BackfillSource::All)
    }

    /// The executor (default: the asset's, else Auto).
    pub fn executor(mut self, strategy: Strategy) -> Self {
        self.run = self.run.executor(strategy);
        self
    }

    /// Options for every job (timeout, attempts, hooks, IO manager, metadata...). Its partition
    /// and `with_upstream` are ignored. Composes with [`Backfill::executor`] in either order: an
    /// executor chosen before is kept unless `run` chooses one itself.
    pub fn run_options(mut self, mut run: Run) -> Self {
        if run.strategy.is_none() {
            run.strategy = self.run.strategy.take();
        }
        self.run = run;
        self
    }

    /// At most this many jobs in flight (default: the number of cores).
    pub fn max_concurrency(mut self, max_concurrency: usize) -> Self {
        self.max_concurrency = Some(max_concurrency);
        self
    }

    /// Called once per partition as it finishes.
    pub fn on_progress(
        mut self,
        on_progress: impl Fn(&Progress<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.on_progress = Some(Arc::new(on_progress));
        self
    }

    /// Runs partitions even when already materialized.
    pub fn force(mut self, force: bool) -> Self {
        self.force = force;
        self
    }

    /// Runs only partitions whose latest materialization failed.
    pub fn retry_failed(mut self, retry_failed: bool) -> Self {
        self.retry_failed = retry_failed;
        self
    }

    /// Cancels the backfill when `token` fires.
    pub fn cancel_on(mut self, token: CancellationToken) -> Self {
        self.cancel = token;
        self
    }

    /// Where the partitions come from.
    pub fn source(&self) -> &BackfillSource {
        &self.source
    }
}

/// The date a partition stands for, for range filtering.
fn date_of(partition: &Partition) -> Option<NaiveDate> {
    match partition {
        Partition::Date(d) => Some(*d),
        Partition::DateTime(dt) => Some(dt.date_naive()),
        Partition::NaiveDateTime(ndt) => Some(NaiveDateTime::date(ndt)),
        Partition::Tuple(parts) => parts.first().and_then(date_of),
        _ => None,
    }
}

/// The partitions a backfill of `asset` covers, in order.
pub fn resolve_partitions(
    registry: &Registry,
    asset: &str,
    source: &BackfillSource,
) -> Result<Vec<Partition>> {
    let def = registry.get(asset)?.partitions().cloned();
    match (source, def) {
        (BackfillSource::List(list), None) => match list.iter().find(|p| !p.is_unpartitioned()) {
            Some(partition) => Err(crate::runtime::not_partitioned(asset, partition)),
            None => Ok(list.clone()),
        },
        (BackfillSource::List(list), Some(def)) => {
            check_members(asset, list, def.as_ref())?;
            Ok(list.clone())
        }
        (BackfillSource::Range(..), None) => Err(Error::invalid_options(format!(
            "asset '{asset}' has no partitions definition, so a date range selects none of its \
             partitions; give it one with .partitioned_by(Daily::from(..))"
        ))
        .with_asset(asset)),
        (BackfillSource::Range(from, to), Some(def)) => {
            let all = def.partitions()?;
            let mut dated = Vec::new();
            for partition in all {
                let date = date_of(&partition).ok_or_else(|| {
                    Error::invalid_options(format!(
                        "a date range cannot select partitions of asset '{asset}', whose \
                         partitions are not dates ({}); list the partitions instead",
                        def.expected_form()
                    ))
                })?;
                if (*from..=*to).contains(&date) {
                    dated.push(partition);
                }
            }
            Ok(dated)
        }
        (BackfillSource::All, Some(def)) => def.partitions(),
        (BackfillSource::All, None) => Err(Error::invalid_options(format!(
            "asset '{asset}' has no partitions definition, so there is no 'all'; give a list or \
             a range"
        ))),
    }
}

/// Checks that every listed partition belongs to the definition; a large list is checked
/// against the expanded set once, so custom definitions are not expanded per partition.
fn check_members(
    asset: &str,
    list: &[Partition],
    def: &dyn crate::partition::PartitionsDefinition,
) -> Result<()> {
    let outsider = if list.len() > 16 {
        let all: std::collections::HashSet<Partition> = def.partitions()?.into_iter().collect();
        list.iter().find(|p| !all.contains(*p))
    } else {
        let mut outsider = None;
        for partition in list {
            if !def.contains(partition)? {
                outsider = Some(partition);
                break;
            }
        }
        outsider
    };
    match outsider {
        Some(partition) => Err(crate::runtime::not_a_partition_of(
            asset,
            &partition.encode(),
            def,
        )),
        None => Ok(()),
    }
}

/// Runs `backfill` of `asset` through `fs`'s executors.
pub(crate) async fn run(
    fs: &Dispatcher,
    asset_name: &str,
    backfill: Backfill,
) -> Result<BackfillReport> {
    let asset = Arc::clone(fs.registry().get(asset_name)?);
    // A partition listed twice runs once: the report lists each partition once, in the
    // order it was first given.
    let partitions = {
        let mut seen = std::collections::HashSet::new();
        let mut all = resolve_partitions(fs.registry(), asset_name, &backfill.source)?;
        all.retain(|p| seen.insert(p.clone()));
        all
    };
    let (exec_name, executor) = fs.choose_executor(&asset, &backfill.run).await?;
    let max_concurrency = backfill
        .max_concurrency
        .map(|n| crate::limits::concurrency("max_concurrency", n))
        .transpose()?;

    let latest: HashMap<Partition, MaterializationStatus> =
        if backfill.force && !backfill.retry_failed {
            HashMap::new()
        } else {
            fs.runtime()
                .store()
                .latest_per_partition(asset_name)
                .await?
                .into_iter()
                .map(|m| (m.partition, m.status))
                .collect()
        };
    let should_run = |partition: &Partition| {
        let status = latest.get(partition).copied();
        if backfill.retry_failed {
            status == Some(MaterializationStatus::Failed)
        } else {
            backfill.force || status != Some(MaterializationStatus::Success)
        }
    };

    let backfill_id = BackfillId::new();
    let total = partitions.len();
    let mut outcomes: Vec<Option<PartitionOutcome>> = vec![None; total];
    let done = AtomicUsize::new(0);
    let failed = AtomicUsize::new(0);
    let report_progress = |partition: &Partition, outcome: &PartitionOutcome| {
        let done = done.fetch_add(1, Ordering::Relaxed) + 1;
        if matches!(outcome, PartitionOutcome::Failed(_)) {
            failed.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(on_progress) = &backfill.on_progress {
            on_progress(&Progress {
                partition,
                outcome,
                done,
                total,
                failed: failed.load(Ordering::Relaxed),
            });
        }
    };

    // One template, checked once: options, hooks and IO manager are the same for every job.
    let template = fs.job_template(&asset, &backfill.run, &exec_name, executor.as_ref())?;
    let mut jobs = Vec::new();
    let mut job_index = Vec::new();
    for (index, partition) in partitions.iter().enumerate() {
        if should_run(partition) {
            fs.runtime().check_partition(&asset, partition)?;
            jobs.push(Job {
                id: JobId::new(),
                run_id: RunId::new(),
                partition: partition.clone(),
                backfill_id: Some(backfill_id),
                ..template.clone()
            });
            job_index.push(index);
        } else {
            outcomes[index] = Some(PartitionOutcome::Skipped);
            report_progress(partition, &PartitionOutcome::Skipped);
        }
    }

    let cx = ExecContext {
        options: backfill.run.options.clone(),
        cancel: backfill.cancel.clone(),
        ..ExecContext::new(fs.runtime().clone())
    };
    let concurrency = max_concurrency
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let finished = std::sync::Mutex::new(Vec::with_capacity(jobs.len()));
    let on_done = |i: usize, result: Result<()>| {
        let outcome = match result {
            Ok(_) => PartitionOutcome::Succeeded,
            Err(err) if err.kind() == ErrorKind::Cancelled => PartitionOutcome::Cancelled,
            Err(err) if err.kind() == ErrorKind::InFlight => PartitionOutcome::InFlight(err),
            Err(err) => PartitionOutcome::Failed(err),
        };
        report_progress(&partitions[job_index[i]], &outcome);
        finished
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((job_index[i], outcome));
    };
    executor
        .execute_many(jobs, cx, concurrency, &on_done)
        .await?;

    for (index, outcome) in finished.into_inner().unwrap_or_else(|p| p.into_inner()) {
        outcomes[index] = Some(outcome);
    }
    let outcomes: Vec<(Partition, PartitionOutcome)> = partitions
        .into_iter()
        .zip(outcomes)
        .map(|(p, o)| (p, o.unwrap_or(PartitionOutcome::Cancelled)))
        .collect();
    let count = |f: fn(&PartitionOutcome) -> bool| outcomes.iter().filter(|(_, o)| f(o)).count();
    Ok(BackfillReport {
        backfill_id,
        asset: asset_name.to_owned(),
        total,
        succeeded: count(|o| matches!(o, PartitionOutcome::Succeeded)),
        failed: count(|o| matches!(o, PartitionOutcome::Failed(_))),
        skipped: count(|o| matches!(o, PartitionOutcome::Skipped)),
        cancelled: count(|o| matches!(o, PartitionOutcome::Cancelled)),
        in_flight: count(|o| matches!(o, PartitionOutcome::InFlight(_))),
        outcomes,
    })
}
