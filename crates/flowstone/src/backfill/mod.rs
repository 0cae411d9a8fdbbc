//! Backfills: materialize an asset, or a selection of assets, over many partitions.
//!
//! Partitions come from a list, a date range, or the asset's own definition. Partitions already
//! materialized (latest record `success`) are skipped unless `force`; `retry_failed` runs only the
//! partitions whose latest record is `failed`. At most `max_concurrency` jobs are in flight.
//! `on_progress` is called once per partition, skipped ones included. Cancelling (through the
//! token given with [`Backfill::cancel_on`]) stops running jobs and starts no new ones; the report
//! counts every partition exactly once.

mod plan;
mod record;
mod run;

use std::sync::Arc;

use chrono::{NaiveDate, NaiveDateTime};
use tokio_util::sync::CancellationToken;

use plan::Plan;
pub(crate) use record::not_found;
pub use record::{
    BackfillCounts, BackfillRecord, BackfillRequest, BackfillStatus, BackfillStore,
    MemoryBackfills, PartitionRecord, StoredSource,
};
pub(crate) use run::{resume, run, this_process};

use crate::error::{Error, Result};
use crate::executor::Strategy;
use crate::ids::BackfillId;
use crate::partition::Partition;
use crate::registry::Registry;
use crate::run::Run;
use crate::selection::AssetSelection;

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
    /// The asset of the partition just finished.
    pub asset: &'a str,
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
    /// Not attempted: a partition of the backfill that it needs failed (or was in flight
    /// elsewhere). The error names that partition.
    UpstreamFailed(crate::error::Error),
}

impl PartitionOutcome {
    /// `succeeded`, `failed`, `skipped`, `cancelled`, `in_flight` or `upstream_failed`: the
    /// outcome's name in reports.
    pub fn name(&self) -> &'static str {
        match self {
            PartitionOutcome::Succeeded => "succeeded",
            PartitionOutcome::Failed(_) => "failed",
            PartitionOutcome::Skipped => "skipped",
            PartitionOutcome::Cancelled => "cancelled",
            PartitionOutcome::InFlight(_) => "in_flight",
            PartitionOutcome::UpstreamFailed(_) => "upstream_failed",
        }
    }

    /// The error of a failed partition, or for one in flight the error naming its job.
    pub fn error(&self) -> Option<&crate::error::Error> {
        match self {
            PartitionOutcome::Failed(err)
            | PartitionOutcome::InFlight(err)
            | PartitionOutcome::UpstreamFailed(err) => Some(err),
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
    selection: Option<String>,
    anchor: Option<String>,
    run: Run,
    max_concurrency: Option<usize>,
    on_progress: Option<ProgressCallback>,
    force: bool,
    retry_failed: bool,
    cancel: CancellationToken,
}

/// How one (asset, partition) of a backfill ended.
#[derive(Debug, Clone)]
pub struct PartitionResult {
    /// The asset.
    pub asset: String,
    /// The partition.
    pub partition: Partition,
    /// How it ended.
    pub outcome: PartitionOutcome,
}

/// What a backfill did.
#[derive(Debug, Clone)]
pub struct BackfillReport {
    /// This backfill.
    pub backfill_id: BackfillId,
    /// The first selected asset (the one asset of a single-asset backfill).
    pub asset: String,
    /// Every selected asset, in topological order.
    pub assets: Vec<String>,
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
    /// Not attempted because a partition they need failed.
    pub upstream_failed: usize,
    /// Each (asset, partition)'s outcome: assets in topological order, each asset's
    /// partitions in the backfill's order.
    pub outcomes: Vec<PartitionResult>,
}

impl BackfillReport {
    /// The partitions that failed, with their errors.
    pub fn failures(&self) -> impl Iterator<Item = (&Partition, &crate::error::Error)> {
        self.outcomes.iter().filter_map(|r| match &r.outcome {
            PartitionOutcome::Failed(err) => Some((&r.partition, err)),
            _ => None,
        })
    }

    /// The outcomes of `asset`'s partitions.
    pub fn of_asset<'a>(&'a self, asset: &'a str) -> impl Iterator<Item = &'a PartitionResult> {
        self.outcomes.iter().filter(move |r| r.asset == asset)
    }
}

impl Backfill {
    fn from_source(source: BackfillSource) -> Self {
        Backfill {
            source,
            selection: None,
            anchor: None,
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

    /// Every partition of every asset `selection` selects (see [`crate::selection`] for the
    /// syntax: `raw+`, `+report`, `tag:team=x`, comma lists); narrow it with
    /// [`Backfill::select`] on [`Backfill::range`] or [`Backfill::partitions`] instead. Run it
    /// with [`FlowStone::run_backfill`](crate::FlowStone::run_backfill).
    pub fn assets(selection: impl Into<String>) -> Self {
        Backfill::all().select(selection)
    }

    /// The assets the backfill covers (the selection syntax of [`crate::selection`]). The
    /// partitions of the source are the anchor's ([`Backfill::anchor`], by default the first
    /// asset the selection names); the others' are translated through the
    /// partition mappings. Each partition runs once everything it needs in the backfill has
    /// succeeded; one that needs a failed partition is not attempted.
    pub fn select(mut self, selection: impl Into<String>) -> Self {
        self.selection = Some(selection.into());
        self
    }

    /// The asset whose partitions the source names (default: the first asset the selection
    /// names, so `+yearly_report` over 2013 means that year and what it reads).
    pub fn anchor(mut self, asset: impl Into<String>) -> Self {
        self.anchor = Some(asset.into());
        self
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

    /// Runs only partitions whose latest materialization failed, and those of the backfill that
    /// a failure kept from running (never materialized, downstream of a partition that runs
    /// again).
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
            if dated.is_empty() {
                return Err(Error::invalid_options(format!(
                    "the range {from} to {to} selects no partition of asset '{asset}' ({})",
                    def.expected_form()
                ))
                .with_asset(asset));
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

/// The selected assets (in topological order) and the plan of `backfill`.
fn plan_of(registry: &Registry, backfill: &Backfill) -> Result<(Vec<String>, Plan)> {
    let selection = match &backfill.selection {
        Some(text) => AssetSelection::parse(text)?,
        None => {
            return Err(Error::invalid_options(
                "the backfill selects no asset; use FlowStone::backfill(asset, ..) or \
                 Backfill::assets(selection)",
            ));
        }
    };
    let selected = selection.resolve(registry)?;
    let anchor = backfill
        .anchor
        .clone()
        .or_else(|| selection.anchor(&selected));
    let plan = Plan::build(registry, &selected, anchor.as_deref(), &backfill.source)?;
    Ok((selected, plan))
}

/// What a backfill would run, without running it: every (asset, partition) it covers and how
/// many partitions of the backfill each waits for. From [`FlowStone::plan_backfill`].
///
/// [`FlowStone::plan_backfill`]: crate::FlowStone::plan_backfill
#[derive(Debug)]
pub struct BackfillPlan(Plan);

impl BackfillPlan {
    /// Plans `backfill` against `registry`.
    pub fn new(registry: &Registry, backfill: &Backfill) -> Result<BackfillPlan> {
        plan_of(registry, backfill).map(|(_, plan)| BackfillPlan(plan))
    }

    /// The selected assets, in topological order.
    pub fn assets(&self) -> impl Iterator<Item = &str> {
        self.0.assets.iter().map(|a| a.name())
    }

    /// How many (asset, partition)s the backfill covers.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it covers none.
    pub fn is_empty(&self) -> bool {
        self.0.len() == 0
    }

    /// The partitions of `asset` the backfill covers, in order.
    pub fn partitions_of<'a>(&'a self, asset: &'a str) -> impl Iterator<Item = &'a Partition> {
        self.0
            .nodes
            .iter()
            .filter(move |n| self.0.assets[n.asset].name() == asset)
            .map(|n| &n.partition)
    }

    /// How many partitions of the backfill the (asset, partition) waits for (`None` when the
    /// backfill does not cover it).
    pub fn waits_for(&self, asset: &str, partition: &Partition) -> Option<usize> {
        self.0
            .nodes
            .iter()
            .position(|n| self.0.assets[n.asset].name() == asset && n.partition == *partition)
            .map(|at| self.0.waiting_on(at))
    }
}
