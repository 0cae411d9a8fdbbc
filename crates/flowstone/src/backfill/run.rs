//! Running a backfill's plan.
//!
//! Two ways, one set of books:
//!
//! - **Released here** (in-process executors, or a mix of executors): the loop hands out each
//!   partition once everything it reads in the backfill has succeeded; in-process jobs run as
//!   futures of their own, at most `max_concurrency` at once, jobs of a persistent executor
//!   go to it in batches whose concurrency its workers bound.
//! - **Released by the executor** (one executor with [`Capability::Graphs`],
//!   the queue): the whole plan goes to it at once, with its edges, and the worker that
//!   completes a partition releases what waits for it in the same transaction. The loop only
//!   follows: no partition released twice, none forgotten if this process dies.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};

use super::plan::Plan;
use super::record::{
    BackfillCounts, BackfillRecord, BackfillRequest, BackfillStatus, PartitionRecord,
};
use super::{Backfill, BackfillReport, PartitionOutcome, PartitionResult, Progress, plan_of};
use crate::dispatch::Dispatcher;
use crate::error::{Error, ErrorKind, Result};
use crate::executor::{Capability, ExecContext, Executor};
use crate::ids::{BackfillId, JobId, RunId};
use crate::job::Job;
use crate::partition::Partition;
use crate::store::MaterializationStatus;

/// What the loop knows of one selected asset: how its jobs are made and run, and its latest
/// statuses for deciding what to skip.
struct AssetRun {
    executor: Arc<dyn Executor>,
    template: Job,
    /// Jobs go to the executor in batches (one bulk insert) and the executor's workers bound
    /// the concurrency; otherwise each job runs as its own future, at most `concurrency` at
    /// once.
    batched: bool,
    latest: HashMap<Partition, (MaterializationStatus, Option<BackfillId>)>,
}

/// A node's result, from a future of its own or from a batch's callback.
type Finished = (usize, Result<()>);

/// The plan and each node's outcome as the backfill goes.
struct Books<'a> {
    plan: Plan,
    backfill: &'a Backfill,
    ready: VecDeque<usize>,
    outcomes: Vec<Option<PartitionOutcome>>,
    done: usize,
    failed: usize,
    /// The executor releases the partitions (and ends those a failure blocks); the books
    /// only record what it reports.
    released_by_executor: bool,
    /// The counts so far, for the task that writes them to the backfill's record.
    live: Arc<std::sync::Mutex<BackfillCounts>>,
}

impl Books<'_> {
    /// Records `at`'s result, once (an executor that releases partitions itself reports the
    /// ones it blocked too), and, when the loop releases partitions, moves the plan on: a
    /// success releases what waited for it (first in line, so a month runs as soon as its
    /// days are done), a failure or cancel ends what needs it.
    fn settle(&mut self, at: usize, result: Result<()>) {
        if self.outcomes[at].is_some() {
            return;
        }
        let outcome = match result {
            Ok(()) => PartitionOutcome::Succeeded,
            Err(err) => match err.kind() {
                ErrorKind::Cancelled => PartitionOutcome::Cancelled,
                ErrorKind::InFlight => PartitionOutcome::InFlight(err),
                ErrorKind::UpstreamFailed => PartitionOutcome::UpstreamFailed(err),
                _ => PartitionOutcome::Failed(err),
            },
        };
        self.finish(at, outcome);
    }

    /// `at` was already done: skipped, and (when the loop releases) what waited for it goes.
    fn skip(&mut self, at: usize) {
        self.finish(at, PartitionOutcome::Skipped);
    }

    fn finish(&mut self, at: usize, outcome: PartitionOutcome) {
        let moves_on = !self.released_by_executor;
        let blocked = match &outcome {
            PartitionOutcome::Succeeded | PartitionOutcome::Skipped if moves_on => {
                let mut released = Vec::new();
                let ran = matches!(outcome, PartitionOutcome::Succeeded);
                self.plan.succeeded(at, ran, &mut released);
                for next in released.into_iter().rev() {
                    self.ready.push_front(next);
                }
                Vec::new()
            }
            PartitionOutcome::Succeeded | PartitionOutcome::Skipped => Vec::new(),
            _ if moves_on => self.plan.blocked_by(at),
            _ => Vec::new(),
        };
        let cancelled = matches!(outcome, PartitionOutcome::Cancelled);
        self.outcomes[at] = Some(outcome);
        self.report(at);
        let node = &self.plan.nodes[at];
        let upstream = self.plan.assets[node.asset].name().to_owned();
        let partition = node.partition.clone();
        for next in blocked {
            let outcome = if cancelled {
                PartitionOutcome::Cancelled
            } else {
                let asset = self.plan.assets[self.plan.nodes[next].asset].name();
                PartitionOutcome::UpstreamFailed(
                    Error::new(
                        ErrorKind::UpstreamFailed,
                        format!(
                            "upstream failed: asset '{asset}' was not attempted because \
                             '{upstream}' {partition} did not succeed in this backfill"
                        ),
                    )
                    .with_asset(asset)
                    .with_partition(self.plan.nodes[next].partition.clone()),
                )
            };
            self.outcomes[next] = Some(outcome);
            self.report(next);
        }
    }

    /// Calls `on_progress` for a node that just got its outcome.
    fn report(&mut self, at: usize) {
        let Some(outcome) = &self.outcomes[at] else {
            return;
        };
        self.done += 1;
        if matches!(outcome, PartitionOutcome::Failed(_)) {
            self.failed += 1;
        }
        count(
            &mut self.live.lock().unwrap_or_else(|p| p.into_inner()),
            outcome,
        );
        if let Some(on_progress) = &self.backfill.on_progress {
            let node = &self.plan.nodes[at];
            on_progress(&Progress {
                asset: self.plan.assets[node.asset].name(),
                partition: &node.partition,
                outcome,
                done: self.done,
                total: self.plan.len(),
                failed: self.failed,
            });
        }
    }
}

/// How often a running backfill writes its counts and looks for a cancel from elsewhere.
const CHECK_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// This process, as a backfill's owner.
pub(crate) fn this_process() -> String {
    #[cfg(feature = "database")]
    {
        flowstone_queue::default_node_name()
    }
    #[cfg(not(feature = "database"))]
    {
        format!("pid-{}", std::process::id())
    }
}

/// Runs `backfill` through `fs`'s executors: stores it, plans it, then runs each partition as
/// soon as what it needs has succeeded.
pub(crate) async fn run(fs: &Dispatcher, backfill: Backfill) -> Result<BackfillReport> {
    drive(fs, backfill, None).await
}

/// Goes on with the stored backfill `id` after the process running it died (or stopped): its
/// request runs again under the same id, skipping what it already materialized; on the queue,
/// rows it left behind are followed, not inserted again. No partition runs twice, none is
/// forgotten.
pub(crate) async fn resume(fs: &Dispatcher, id: BackfillId) -> Result<BackfillReport> {
    let store = fs.runtime().storage().backfills();
    let record = store
        .get(id)
        .await?
        .ok_or_else(|| super::record::not_found(id))?;
    if record.status.is_finished() {
        return Err(Error::already_finished(
            format!("backfill {id}"),
            record.status.as_str(),
        ));
    }
    drive(fs, record.request.to_backfill(), Some(id)).await
}

async fn drive(
    fs: &Dispatcher,
    backfill: Backfill,
    resumed: Option<BackfillId>,
) -> Result<BackfillReport> {
    let (selected, mut plan) = plan_of(fs.registry(), &backfill)?;
    let request = BackfillRequest::of(&backfill);
    let max_concurrency = backfill
        .max_concurrency
        .map(|n| crate::limits::concurrency("max_concurrency", n))
        .transpose()?;
    let concurrency = max_concurrency
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));

    let read_latest = !backfill.force || backfill.retry_failed || resumed.is_some();
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
                .map(|m| (m.partition, (m.status, m.backfill_id)))
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
    // A resumed backfill also skips what it materialized itself before.
    let should_run = |plan: &Plan, at: usize| {
        let node = &plan.nodes[at];
        let latest = runs[node.asset].latest.get(&node.partition).copied();
        let status = latest.map(|(status, _)| status);
        if resumed.is_some_and(|id| latest == Some((MaterializationStatus::Success, Some(id)))) {
            return false;
        }
        if backfill.retry_failed {
            status == Some(MaterializationStatus::Failed)
                || (plan.is_stale(at) && status != Some(MaterializationStatus::Success))
        } else {
            backfill.force || status != Some(MaterializationStatus::Success)
        }
    };
    let released_by_executor = runs.first().is_some_and(|first| {
        first.executor.capabilities().has(Capability::Graphs)
            && runs
                .iter()
                .all(|r| Arc::ptr_eq(&r.executor, &first.executor))
    });

    let total = plan.len();
    let store = Arc::clone(fs.runtime().storage().backfills());
    let owner = this_process();
    let backfill_id = match resumed {
        Some(id) => {
            store
                .update(
                    id,
                    BackfillStatus::Running,
                    &BackfillCounts {
                        total,
                        ..Default::default()
                    },
                    Some(&owner),
                )
                .await?;
            id
        }
        None => {
            let now = chrono::Utc::now();
            let record = BackfillRecord {
                id: BackfillId::new(),
                request,
                status: BackfillStatus::Running,
                counts: BackfillCounts {
                    total,
                    ..Default::default()
                },
                created_at: now,
                updated_at: now,
                finished_at: None,
                owner: Some(owner.clone()),
            };
            store.create(&record).await?;
            record.id
        }
    };
    // Fired by the caller's token, or by a cancel asked from another process (seen at the
    // next check).
    let cancel = backfill.cancel.child_token();
    let cx = ExecContext {
        options: backfill.run.options.clone(),
        cancel: cancel.clone(),
        ..ExecContext::new(fs.runtime().clone())
    };
    let job_of = |plan: &Plan, at: usize| {
        let node = &plan.nodes[at];
        Job {
            id: JobId::new(),
            run_id: RunId::new(),
            partition: node.partition.clone(),
            backfill_id: Some(backfill_id),
            ..runs[node.asset].template.clone()
        }
    };

    let roots = plan.roots();
    let mut books = Books {
        plan,
        backfill: &backfill,
        ready: roots.into(),
        outcomes: vec![None; total],
        done: 0,
        failed: 0,
        released_by_executor,
        live: Arc::new(std::sync::Mutex::new(BackfillCounts {
            total,
            ..Default::default()
        })),
    };
    let mut running = FuturesUnordered::new();
    let mut batches = FuturesUnordered::new();
    let (batch_tx, mut batch_rx) = tokio::sync::mpsc::unbounded_channel::<Finished>();
    let mut in_process = 0usize;
    let mut in_batches = 0usize;
    let mut finished: Vec<Finished> = Vec::new();

    if released_by_executor {
        // The whole plan at once: what is done is skipped (its dependents do not wait for
        // it), the rest goes with the edges between them.
        books.ready.clear();
        let mut members: Vec<usize> = Vec::new();
        let mut position = vec![usize::MAX; total];
        for (at, slot) in position.iter_mut().enumerate() {
            if !should_run(&books.plan, at) {
                books.skip(at);
                continue;
            }
            *slot = members.len();
            members.push(at);
            books.plan.mark_ran(at);
        }
        if cancel.is_cancelled() {
            for at in members.drain(..) {
                let asset = books.plan.assets[books.plan.nodes[at].asset].name();
                books.settle(at, Err(Error::cancelled(asset)));
            }
        }
        let edges: Vec<(usize, usize)> = members
            .iter()
            .flat_map(|&up| {
                let position = &position;
                books
                    .plan
                    .downstream_of(up)
                    .filter(move |&down| position[down] != usize::MAX)
                    .map(move |down| (position[up], position[down]))
            })
            .collect();
        let jobs: Vec<Job> = members.iter().map(|&at| job_of(&books.plan, at)).collect();
        if !jobs.is_empty() {
            in_batches = jobs.len();
            batches.push(send_batch(
                Arc::clone(&runs[0].executor),
                members,
                jobs,
                Some(edges),
                cx.clone(),
                batch_tx.clone(),
            ));
        }
    }

    // The record follows on a task of its own: a write here could wait for a transaction that
    // a batch future of this loop holds open (SQLite), and the loop would not poll it.
    let watcher = {
        let (store, owner, cancel, live) = (
            Arc::clone(&store),
            owner.clone(),
            cancel.clone(),
            Arc::clone(&books.live),
        );
        let stop = tokio_util::sync::CancellationToken::new();
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut checks = tokio::time::interval(CHECK_EVERY);
            checks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = checks.tick() => {}
                    () = stopped.cancelled() => return,
                }
                let counts = *live.lock().unwrap_or_else(|p| p.into_inner());
                let written = store
                    .update(backfill_id, BackfillStatus::Running, &counts, Some(&owner))
                    .await;
                if let Err(err) = written {
                    tracing::warn!(%backfill_id, error = %err, "could not record a backfill's progress");
                }
                if let Ok(Some(record)) = store.get(backfill_id).await
                    && record.status == BackfillStatus::Cancelling
                {
                    cancel.cancel();
                }
            }
        });
        // Dropped with this future (an aborted backfill): the task is aborted too; a write of
        // it that still lands cannot undo a final status (the stores refuse that).
        Watcher {
            stop,
            task: Some(task),
        }
    };
    loop {
        // Hand out what is ready: skip what is done, start the rest.
        let mut batch: HashMap<usize, Vec<(usize, Job)>> = HashMap::new();
        while let Some(&at) = books.ready.front() {
            let asset = books.plan.nodes[at].asset;
            if !should_run(&books.plan, at) {
                books.ready.pop_front();
                books.skip(at);
                continue;
            }
            if cancel.is_cancelled() {
                books.ready.pop_front();
                finished.push((at, Err(Error::cancelled(books.plan.assets[asset].name()))));
                continue;
            }
            let run = &runs[asset];
            if !run.batched && in_process >= concurrency {
                break;
            }
            books.ready.pop_front();
            let job = job_of(&books.plan, at);
            if run.batched {
                batch.entry(asset).or_default().push((at, job));
            } else {
                in_process += 1;
                let executor = Arc::clone(&run.executor);
                let cx = cx.clone();
                running.push(async move { (at, executor.execute(job, cx).await.map(drop)) });
            }
        }
        for (asset, members) in batch {
            let (members, jobs): (Vec<usize>, Vec<Job>) = members.into_iter().unzip();
            in_batches += members.len();
            batches.push(send_batch(
                Arc::clone(&runs[asset].executor),
                members,
                jobs,
                None,
                cx.clone(),
                batch_tx.clone(),
            ));
        }
        // Settle what finished (cancelled ready nodes above, results below).
        for (at, result) in finished.drain(..) {
            books.settle(at, result);
        }
        if !books.ready.is_empty() && (in_process < concurrency || cancel.is_cancelled()) {
            continue;
        }
        if in_process == 0 && in_batches == 0 && books.ready.is_empty() && batches.is_empty() {
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
            Some((members, answer)) = batches.next(), if !batches.is_empty() => {
                if let Err(err) = answer {
                    // The batch stopped before reporting some of its nodes: they failed with
                    // its error (the others were reported through the channel).
                    while let Ok(early) = batch_rx.try_recv() {
                        in_batches -= 1;
                        finished.push(early);
                    }
                    for at in members {
                        if books.outcomes[at].is_none() && !finished.iter().any(|(n, _)| *n == at) {
                            in_batches -= 1;
                            finished.push((at, Err(err.clone())));
                        }
                    }
                }
            }
        }
    }

    // Stopped between writes and awaited, so none of its writes lands after the final one.
    watcher.finish().await;
    let Books { plan, outcomes, .. } = books;
    let counts = counts_of(&outcomes, total);
    let ended: Vec<PartitionRecord> = plan
        .nodes
        .iter()
        .zip(&outcomes)
        .filter_map(|(node, outcome)| {
            outcome.as_ref().map(|o| PartitionRecord {
                asset: plan.assets[node.asset].name().to_owned(),
                partition: node.partition.clone(),
                outcome: o.name().to_owned(),
                error: o.error().map(ToString::to_string),
            })
        })
        .collect();
    store.record_outcomes(backfill_id, ended).await?;
    let status = if counts.cancelled > 0 || cancel.is_cancelled() {
        BackfillStatus::Cancelled
    } else if counts.failed + counts.upstream_failed + counts.in_flight > 0 {
        BackfillStatus::CompletedWithFailures
    } else {
        BackfillStatus::Completed
    };
    store.update(backfill_id, status, &counts, None).await?;
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
    // Partitions the loop never reached (it stopped on a cancel) count as cancelled.
    let never = total - counts.done();
    Ok(BackfillReport {
        backfill_id,
        asset: selected.first().cloned().unwrap_or_default(),
        assets: selected,
        total,
        succeeded: counts.succeeded,
        failed: counts.failed,
        skipped: counts.skipped,
        cancelled: counts.cancelled + never,
        in_flight: counts.in_flight,
        upstream_failed: counts.upstream_failed,
        outcomes,
    })
}

/// Hands `jobs` (the plan's nodes `members`) to a persistent executor in one call, as a graph
/// with `edges` or as a plain batch, reporting each job's end through `tx` by node; resolves
/// to the nodes and the call's own result once it returns.
fn send_batch(
    executor: Arc<dyn Executor>,
    members: Vec<usize>,
    jobs: Vec<Job>,
    edges: Option<Vec<(usize, usize)>>,
    cx: ExecContext,
    tx: tokio::sync::mpsc::UnboundedSender<Finished>,
) -> futures_util::future::BoxFuture<'static, (Vec<usize>, Result<()>)> {
    async move {
        let answer = {
            let members = &members;
            let on_done = move |i: usize, result: Result<()>| {
                let _ = tx.send((members[i], result));
            };
            match edges {
                Some(edges) => executor.execute_graph(jobs, edges, cx, &on_done).await,
                None => {
                    let size = jobs.len();
                    executor.execute_many(jobs, cx, size, &on_done).await
                }
            }
        };
        (members, answer)
    }
    .boxed()
}

/// The task that writes a running backfill's progress.
struct Watcher {
    stop: tokio_util::sync::CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Watcher {
    /// Stops it between two writes and waits until it has.
    async fn finish(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The counts of `outcomes` (of a plan of `total` partitions).
fn counts_of(outcomes: &[Option<PartitionOutcome>], total: usize) -> BackfillCounts {
    let mut counts = BackfillCounts {
        total,
        ..Default::default()
    };
    for outcome in outcomes.iter().flatten() {
        count(&mut counts, outcome);
    }
    counts
}

/// Adds `outcome` to `counts`.
fn count(counts: &mut BackfillCounts, outcome: &PartitionOutcome) {
    match outcome {
        PartitionOutcome::Succeeded => counts.succeeded += 1,
        PartitionOutcome::Failed(_) => counts.failed += 1,
        PartitionOutcome::Skipped => counts.skipped += 1,
        PartitionOutcome::Cancelled => counts.cancelled += 1,
        PartitionOutcome::InFlight(_) => counts.in_flight += 1,
        PartitionOutcome::UpstreamFailed(_) => counts.upstream_failed += 1,
    }
}
