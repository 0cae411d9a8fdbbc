//! Backfills: materialize an asset, or a selection of assets, over many partitions.
//!
//! Partitions come from a list, a date range, or the asset's own definition. Partitions already
//! materialized (latest record `success`) are skipped unless `force`; `retry_failed` runs only the
//! partitions whose latest record is `failed`. At most `max_concurrency` jobs are in flight.
//! `on_progress` is called once per partition, skipped ones included. Cancelling (through the
//! token given with [`Backfill::cancel_on`]) stops running jobs and starts no new ones; the report
//! counts every partition exactly once.

mod plan;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{NaiveDate, NaiveDateTime};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio_util::sync::CancellationToken;

use plan::Plan;

use crate::dispatch::Dispatcher;
use crate::error::{Error, ErrorKind, Result};
use crate::executor::{Capability, ExecContext, Executor, Strategy};
use crate::ids::{BackfillId, JobId, RunId};
use crate::job::Job;
use crate::partition::Partition;
use crate::registry::Registry;
use crate::run::Run;
use crate::selection::AssetSelection;
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

/// What the loop knows of one selected asset: how its jobs are made and run, and its latest
/// statuses for deciding what to skip.
struct AssetRun {
    executor: Arc<dyn Executor>,
    template: Job,
    /// Jobs go to the executor in batches (one bulk insert) and the executor's workers bound
    /// the concurrency; otherwise each job runs as its own future, at most `concurrency` at
    /// once.
    batched: bool,
    latest: HashMap<Partition, MaterializationStatus>,
}

/// A node's result, from a future of its own or from a batch's callback.
type Finished = (usize, Result<()>);

/// Runs `backfill` through `fs`'s executors: plans it, then releases each partition as soon
/// as what it needs has succeeded.
pub(crate) async fn run(fs: &Dispatcher, backfill: Backfill) -> Result<BackfillReport> {
    let (selected, mut plan) = plan_of(fs.registry(), &backfill)?;
    let max_concurrency = backfill
        .max_concurrency
        .map(|n| crate::limits::concurrency("max_concurrency", n))
        .transpose()?;
    let concurrency = max_concurrency
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));

    let read_latest = !backfill.force || backfill.retry_failed;
    let mut runs = Vec::with_capacity(plan.assets.len());
    for asset in &plan.assets {
        let (name, executor) = fs.choose_executor(asset, &backfill.run).await?;
        // One template per asset, checked once: options, hooks and IO manager are the same
        // for every job.
        let template = fs.job_template(asset, &backfill.run, &name, executor.as_ref())?;
        let latest = if read_latest {
            fs.runtime()
                .store()
                .latest_per_partition(asset.name())
                .await?
                .into_iter()
                .map(|m| (m.partition, m.status))
                .collect()
        } else {
            HashMap::new()
        };
        runs.push(AssetRun {
            batched: executor.capabilities().has(Capability::Persistent),
            executor,
            template,
            latest,
        });
    }
    for node in &plan.nodes {
        fs.runtime()
            .check_partition(&plan.assets[node.asset], &node.partition)?;
    }
    // With retry_failed, what failed runs again, and so does what a failure kept from
    // running (never materialized, and an input of it ran again in this backfill).
    let should_run = |plan: &Plan, at: usize| {
        let node = &plan.nodes[at];
        let status = runs[node.asset].latest.get(&node.partition).copied();
        if backfill.retry_failed {
            status == Some(MaterializationStatus::Failed)
                || (plan.is_stale(at) && status != Some(MaterializationStatus::Success))
        } else {
            backfill.force || status != Some(MaterializationStatus::Success)
        }
    };

    let backfill_id = BackfillId::new();
    let total = plan.len();
    let mut outcomes: Vec<Option<PartitionOutcome>> = vec![None; total];
    let mut done = 0usize;
    let mut failed = 0usize;
    let cx = ExecContext {
        options: backfill.run.options.clone(),
        cancel: backfill.cancel.clone(),
        ..ExecContext::new(fs.runtime().clone())
    };

    let mut ready: std::collections::VecDeque<usize> = plan.roots().into();
    let mut running = FuturesUnordered::new();
    let mut batches = FuturesUnordered::new();
    let (batch_tx, mut batch_rx) = tokio::sync::mpsc::unbounded_channel::<Finished>();
    let mut in_process = 0usize;
    let mut in_batches = 0usize;
    let mut finished: Vec<Finished> = Vec::new();
    loop {
        // Hand out what is ready: skip what is done, start the rest.
        let mut batch: HashMap<usize, Vec<(usize, Job)>> = HashMap::new();
        while let Some(&at) = ready.front() {
            let node = &plan.nodes[at];
            let run = &runs[node.asset];
            if !should_run(&plan, at) {
                ready.pop_front();
                finish(
                    &mut plan,
                    &mut ready,
                    &mut outcomes,
                    at,
                    PartitionOutcome::Skipped,
                );
                report(
                    &backfill,
                    &plan,
                    at,
                    outcomes[at].as_ref(),
                    &mut done,
                    &mut failed,
                    total,
                );
                continue;
            }
            if backfill.cancel.is_cancelled() {
                ready.pop_front();
                finished.push((at, Err(Error::cancelled(plan.assets[node.asset].name()))));
                continue;
            }
            if !run.batched && in_process >= concurrency {
                break;
            }
            ready.pop_front();
            let job = Job {
                id: JobId::new(),
                run_id: RunId::new(),
                partition: node.partition.clone(),
                backfill_id: Some(backfill_id),
                ..run.template.clone()
            };
            if run.batched {
                batch.entry(node.asset).or_default().push((at, job));
            } else {
                in_process += 1;
                let executor = Arc::clone(&run.executor);
                let cx = cx.clone();
                running.push(async move { (at, executor.execute(job, cx).await.map(drop)) });
            }
        }
        for (asset, members) in batch {
            let (nodes, jobs): (Vec<usize>, Vec<Job>) = members.into_iter().unzip();
            in_batches += nodes.len();
            let executor = Arc::clone(&runs[asset].executor);
            let cx = cx.clone();
            let tx = batch_tx.clone();
            let size = jobs.len();
            batches.push(async move {
                let answer = {
                    let nodes = &nodes;
                    let on_done = move |i: usize, result: Result<()>| {
                        let _ = tx.send((nodes[i], result));
                    };
                    executor.execute_many(jobs, cx, size, &on_done).await
                };
                (nodes, answer)
            });
        }
        // Settle what finished (cancelled ready nodes above, results below).
        for (at, result) in finished.drain(..) {
            settle(
                &mut plan,
                &mut ready,
                &mut outcomes,
                at,
                result,
                &backfill,
                &mut done,
                &mut failed,
                total,
            );
        }
        if !ready.is_empty() && (in_process < concurrency || backfill.cancel.is_cancelled()) {
            continue;
        }
        if in_process == 0 && in_batches == 0 && ready.is_empty() && batches.is_empty() {
            break;
        }
        tokio::select! {
            Some((at, result)) = running.next(), if in_process > 0 => {
                in_process -= 1;
                finished.push((at, result));
            }
            Some((at, result)) = batch_rx.recv(), if in_batches > 0 => {
                in_batches -= 1;
                finished.push((at, result));
            }
            Some((nodes, answer)) = batches.next(), if !batches.is_empty() => {
                if let Err(err) = answer {
                    // The batch stopped before reporting some of its nodes: they failed with
                    // its error (the others were reported through the channel).
                    while let Ok(early) = batch_rx.try_recv() {
                        in_batches -= 1;
                        finished.push(early);
                    }
                    for at in nodes {
                        if outcomes[at].is_none() && !finished.iter().any(|(n, _)| *n == at) {
                            in_batches -= 1;
                            finished.push((at, Err(err.clone())));
                        }
                    }
                }
            }
        }
    }

    let outcomes: Vec<PartitionResult> = plan
        .nodes
        .into_iter()
        .zip(outcomes)
        .map(|(node, outcome)| PartitionResult {
            asset: plan.assets[node.asset].name().to_owned(),
            partition: node.partition,
            outcome: outcome.unwrap_or(PartitionOutcome::Cancelled),
        })
        .collect();
    let count =
        |f: fn(&PartitionOutcome) -> bool| outcomes.iter().filter(|r| f(&r.outcome)).count();
    Ok(BackfillReport {
        backfill_id,
        asset: selected.first().cloned().unwrap_or_default(),
        assets: selected,
        total,
        succeeded: count(|o| matches!(o, PartitionOutcome::Succeeded)),
        failed: count(|o| matches!(o, PartitionOutcome::Failed(_))),
        skipped: count(|o| matches!(o, PartitionOutcome::Skipped)),
        cancelled: count(|o| matches!(o, PartitionOutcome::Cancelled)),
        in_flight: count(|o| matches!(o, PartitionOutcome::InFlight(_))),
        upstream_failed: count(|o| matches!(o, PartitionOutcome::UpstreamFailed(_))),
        outcomes,
    })
}

/// Records `outcome` for `at` and moves the plan on: a success (or a skip) releases what
/// waited for it; anything else blocks what needs it.
fn finish(
    plan: &mut Plan,
    ready: &mut std::collections::VecDeque<usize>,
    outcomes: &mut [Option<PartitionOutcome>],
    at: usize,
    outcome: PartitionOutcome,
) -> Vec<usize> {
    let blocked = match &outcome {
        PartitionOutcome::Succeeded | PartitionOutcome::Skipped => {
            // Released partitions go first: a month runs as soon as its days are done rather
            // than after every day already waiting.
            let mut released = Vec::new();
            plan.succeeded(
                at,
                matches!(outcome, PartitionOutcome::Succeeded),
                &mut released,
            );
            for next in released.into_iter().rev() {
                ready.push_front(next);
            }
            Vec::new()
        }
        _ => plan.blocked_by(at),
    };
    outcomes[at] = Some(outcome);
    blocked
}

/// Classifies a node's result, finishes it, and gives the nodes it blocked their outcome:
/// cancelled when it was cancelled, "upstream failed" otherwise.
#[allow(clippy::too_many_arguments)]
fn settle(
    plan: &mut Plan,
    ready: &mut std::collections::VecDeque<usize>,
    outcomes: &mut [Option<PartitionOutcome>],
    at: usize,
    result: Result<()>,
    backfill: &Backfill,
    done: &mut usize,
    failed: &mut usize,
    total: usize,
) {
    let outcome = match result {
        Ok(()) => PartitionOutcome::Succeeded,
        Err(err) if err.kind() == ErrorKind::Cancelled => PartitionOutcome::Cancelled,
        Err(err) if err.kind() == ErrorKind::InFlight => PartitionOutcome::InFlight(err),
        Err(err) => PartitionOutcome::Failed(err),
    };
    let cancelled = matches!(outcome, PartitionOutcome::Cancelled);
    let blocked = finish(plan, ready, outcomes, at, outcome);
    report(
        backfill,
        plan,
        at,
        outcomes[at].as_ref(),
        done,
        failed,
        total,
    );
    let node = &plan.nodes[at];
    let upstream = plan.assets[node.asset].name().to_owned();
    let partition = node.partition.clone();
    for next in blocked {
        let outcome = if cancelled {
            PartitionOutcome::Cancelled
        } else {
            let asset = plan.assets[plan.nodes[next].asset].name();
            PartitionOutcome::UpstreamFailed(
                Error::new(
                    ErrorKind::DependencyNotReady,
                    format!(
                        "upstream failed: asset '{asset}' was not attempted because \
                         '{upstream}' {partition} did not succeed in this backfill"
                    ),
                )
                .with_asset(asset)
                .with_partition(plan.nodes[next].partition.clone()),
            )
        };
        outcomes[next] = Some(outcome);
        report(
            backfill,
            plan,
            next,
            outcomes[next].as_ref(),
            done,
            failed,
            total,
        );
    }
}

/// Calls `on_progress` for a node that just got its outcome.
fn report(
    backfill: &Backfill,
    plan: &Plan,
    at: usize,
    outcome: Option<&PartitionOutcome>,
    done: &mut usize,
    failed: &mut usize,
    total: usize,
) {
    let Some(outcome) = outcome else { return };
    *done += 1;
    if matches!(outcome, PartitionOutcome::Failed(_)) {
        *failed += 1;
    }
    if let Some(on_progress) = &backfill.on_progress {
        let node = &plan.nodes[at];
        on_progress(&Progress {
            asset: plan.assets[node.asset].name(),
            partition: &node.partition,
            outcome,
            done: *done,
            total,
            failed: *failed,
        });
    }
}
