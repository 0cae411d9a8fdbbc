//! Backfills: skipping, failures and `retry_failed`, progress, cancellation, concurrency.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;
use flowstone::store::MaterializationStatus;
use flowstone::{
    Asset, Backfill, CancellationToken, Daily, Error, ErrorKind, FlowStone, Partition,
    PartitionOutcome, Run, StaticPartitions, Strategy, TaskAsyncExecutor,
};

use common::wait::wait_until;
use common::{RunLog, Shared, all_records, day, records};

fn january() -> (NaiveDate, NaiveDate) {
    (day(2024, 1, 1), day(2024, 1, 31))
}

/// A daily asset that logs each partition it runs and fails on `fail_on` while it is set.
fn daily_asset(log: &RunLog, fail_on: &Arc<Mutex<Option<NaiveDate>>>) -> FlowStone {
    let (log, fail_on) = (log.clone(), Arc::clone(fail_on));
    FlowStone::builder()
        .asset(
            Asset::new("events")
                .partitioned_by(Daily::from("2024-01-01").to("2024-12-31"))
                .execute(move |ctx| {
                    let (log, fail_on) = (log.clone(), Arc::clone(&fail_on));
                    async move {
                        let d = ctx.partition().date()?;
                        log.push(d.to_string());
                        if *fail_on.lock().unwrap() == Some(d) {
                            return Err(Error::failed(format!(
                                "upstream API returned 503 for {d}"
                            )));
                        }
                        Ok::<_, Error>(d.to_string())
                    }
                }),
        )
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_31_day_backfill_succeeds_then_skips_everything() {
    let log = RunLog::default();
    let fs = daily_asset(&log, &Arc::default());
    let (from, to) = january();

    let report = fs
        .backfill("events", Backfill::range(from, to).max_concurrency(4))
        .await
        .unwrap();
    assert_eq!(report.asset, "events");
    assert_eq!(report.total, 31);
    assert_eq!(report.succeeded, 31);
    assert_eq!((report.failed, report.skipped, report.cancelled), (0, 0, 0));
    assert_eq!(log.entries().len(), 31);
    // Outcomes come in partition order.
    let parts: Vec<Partition> = report
        .outcomes
        .iter()
        .map(|r| r.partition.clone())
        .collect();
    let expected: Vec<Partition> = (1..=31).map(|d| day(2024, 1, d).into()).collect();
    assert_eq!(parts, expected);
    assert_eq!(records(&fs, "events").await.len(), 31);
    let stored: String = fs.load("events", day(2024, 1, 17)).await.unwrap();
    assert_eq!(stored, "2024-01-17");

    let again = fs
        .backfill("events", Backfill::range(from, to))
        .await
        .unwrap();
    assert_eq!(again.total, 31);
    assert_eq!(again.skipped, 31);
    assert_eq!((again.succeeded, again.failed, again.cancelled), (0, 0, 0));
    assert!(
        again
            .outcomes
            .iter()
            .all(|r| matches!(r.outcome, PartitionOutcome::Skipped))
    );
    assert_eq!(log.entries().len(), 31, "nothing ran again");
    assert_ne!(report.backfill_id, again.backfill_id);

    // force runs them all again.
    let forced = fs
        .backfill("events", Backfill::range(from, to).force(true))
        .await
        .unwrap();
    assert_eq!(forced.succeeded, 31);
    assert_eq!(log.entries().len(), 62);
}

#[tokio::test]
async fn a_failed_partition_is_reported_and_retry_failed_runs_only_it() {
    let log = RunLog::default();
    let fail_on = Arc::new(Mutex::new(Some(day(2024, 1, 15))));
    let fs = daily_asset(&log, &fail_on);
    let (from, to) = january();

    let report = fs
        .backfill("events", Backfill::range(from, to).max_concurrency(3))
        .await
        .unwrap();
    assert_eq!(report.total, 31);
    assert_eq!(report.succeeded, 30);
    assert_eq!(report.failed, 1);
    assert_eq!((report.skipped, report.cancelled), (0, 0));
    let failures: Vec<_> = report.failures().collect();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].0, &Partition::from(day(2024, 1, 15)));
    assert_eq!(failures[0].1.kind(), ErrorKind::ExecutionFailed);
    assert!(
        failures[0].1.to_string().contains("503 for 2024-01-15"),
        "{}",
        failures[0].1
    );
    assert_eq!(log.entries().len(), 31);

    // The source is fixed: retry only the failure.
    *fail_on.lock().unwrap() = None;
    let retry = fs
        .backfill("events", Backfill::range(from, to).retry_failed(true))
        .await
        .unwrap();
    assert_eq!(retry.total, 31);
    assert_eq!(retry.succeeded, 1);
    assert_eq!(retry.skipped, 30);
    assert_eq!((retry.failed, retry.cancelled), (0, 0));
    assert_eq!(log.entries().len(), 32);
    assert_eq!(log.entries()[31], "2024-01-15");
    assert_eq!(log.count("2024-01-15"), 2);

    // Nothing failed any more: a second retry runs nothing; a plain run skips all.
    let retry = fs
        .backfill("events", Backfill::range(from, to).retry_failed(true))
        .await
        .unwrap();
    assert_eq!(retry.skipped, 31);
    let plain = fs
        .backfill("events", Backfill::range(from, to))
        .await
        .unwrap();
    assert_eq!(plain.skipped, 31);
    assert_eq!(log.entries().len(), 32);
}

#[tokio::test]
async fn on_progress_is_called_once_per_partition() {
    let log = RunLog::default();
    let fail_on = Arc::new(Mutex::new(Some(day(2024, 1, 10))));
    let fs = daily_asset(&log, &fail_on);
    let (from, to) = january();

    let calls: Shared<(usize, usize, usize, Partition)> = Arc::default();
    let c = Arc::clone(&calls);
    fs.backfill(
        "events",
        Backfill::range(from, to)
            .max_concurrency(4)
            .on_progress(move |p| {
                c.lock()
                    .unwrap()
                    .push((p.done, p.total, p.failed, p.partition.clone()));
            }),
    )
    .await
    .unwrap();
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 31);
    let done: Vec<usize> = calls.iter().map(|c| c.0).collect();
    assert_eq!(done, (1..=31).collect::<Vec<_>>());
    assert!(calls.iter().all(|c| c.1 == 31));
    let partitions: BTreeSet<Partition> = calls.iter().map(|c| c.3.clone()).collect();
    assert_eq!(partitions.len(), 31, "each partition reported once");
    assert_eq!(calls.last().unwrap().2, 1, "the failure is counted");

    // Skipped partitions are reported too.
    let count = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&count);
    let report = fs
        .backfill(
            "events",
            Backfill::range(from, to).on_progress(move |p| {
                // The 10th still fails (and, having failed, is run again); the rest are done.
                assert!(matches!(
                    p.outcome,
                    PartitionOutcome::Skipped | PartitionOutcome::Failed(_)
                ));
                c.fetch_add(1, Ordering::SeqCst);
            }),
        )
        .await
        .unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 31);
    assert_eq!((report.skipped, report.succeeded), (30, 0));
    assert_eq!(report.failed, 1, "still failing on the 10th");
    assert_eq!(log.count("2024-01-10"), 2);
}

/// An asset whose first `succeed` starts finish at once and later starts wait for the cancel.
/// When `cancel_on_start` is set, the start right after the successful ones fires the token.
fn cancellable(
    started: &Arc<AtomicUsize>,
    succeed: usize,
    cancel_on_start: Option<CancellationToken>,
) -> FlowStone {
    let started = Arc::clone(started);
    FlowStone::builder()
        // More slots than the backfill's max_concurrency, so the backfill's limit is the one
        // that binds (the built-in TaskAsync executor has one slot per core).
        .executor(TaskAsyncExecutor::new().max_concurrency(8))
        .asset(
            Asset::new("events")
                .partitioned_by(Daily::from("2024-01-01").to("2024-01-31"))
                .execute(move |ctx| {
                    let (started, token) = (Arc::clone(&started), cancel_on_start.clone());
                    async move {
                        let n = started.fetch_add(1, Ordering::SeqCst) + 1;
                        if n <= succeed {
                            return Ok::<_, Error>(ctx.partition().to_string());
                        }
                        if let (Some(token), true) = (token, n == succeed + 1) {
                            token.cancel();
                        }
                        // Wait until cancelled: the cancel stops this future here.
                        std::future::pending::<()>().await;
                        unreachable!("a cancelled asset resumed")
                    }
                }),
        )
        .build()
        .unwrap()
}

async fn assert_nothing_left_running(fs: &FlowStone) {
    let recs = all_records(fs).await;
    let running: Vec<_> = recs
        .iter()
        .filter(|r| r.status == MaterializationStatus::Running)
        .collect();
    assert!(running.is_empty(), "still running: {running:?}");
    assert!(
        recs.iter()
            .any(|r| r.status == MaterializationStatus::Cancelled),
        "a started partition is recorded as cancelled: {recs:?}"
    );
}

#[tokio::test]
async fn cancelling_from_inside_an_asset_stops_the_backfill() {
    let token = CancellationToken::new();
    let started = Arc::new(AtomicUsize::new(0));
    let fs = cancellable(&started, 4, Some(token.clone()));
    let (from, to) = january();
    let progress = Arc::new(AtomicUsize::new(0));
    let p = Arc::clone(&progress);

    let report = fs
        .backfill(
            "events",
            Backfill::range(from, to)
                .max_concurrency(3)
                .cancel_on(token)
                .on_progress(move |_| {
                    p.fetch_add(1, Ordering::SeqCst);
                }),
        )
        .await
        .unwrap();
    assert_eq!(report.total, 31);
    assert_eq!(
        report.succeeded + report.failed + report.skipped + report.cancelled,
        report.total
    );
    assert!(report.cancelled > 0);
    assert_eq!(report.succeeded, 4);
    assert_eq!(report.failed, 0);
    assert_eq!(report.cancelled, 27);
    assert_eq!(progress.load(Ordering::SeqCst), 31);
    assert!(
        started.load(Ordering::SeqCst) < 31,
        "later partitions never start"
    );
    assert_nothing_left_running(&fs).await;

    // Cancelled partitions are not done: a plain backfill selects exactly them again (with an
    // already-fired token, so they are reported and not run), while retry_failed selects none.
    let fired = CancellationToken::new();
    fired.cancel();
    let before = started.load(Ordering::SeqCst);
    let again = fs
        .backfill("events", Backfill::range(from, to).cancel_on(fired))
        .await
        .unwrap();
    assert_eq!((again.skipped, again.cancelled), (4, 27));
    let retry = fs
        .backfill("events", Backfill::range(from, to).retry_failed(true))
        .await
        .unwrap();
    assert_eq!(retry.skipped, 31);
    assert_eq!(started.load(Ordering::SeqCst), before, "nothing started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_from_another_task_stops_the_backfill() {
    let token = CancellationToken::new();
    let started = Arc::new(AtomicUsize::new(0));
    let fs = cancellable(&started, 4, None);
    let (from, to) = january();

    let running = tokio::spawn({
        let (fs, token) = (fs.clone(), token.clone());
        async move {
            fs.backfill(
                "events",
                Backfill::range(from, to)
                    .executor(Strategy::Async)
                    .max_concurrency(3)
                    .cancel_on(token),
            )
            .await
        }
    });
    // Four finish, then three start and wait: the backfill is stuck until cancelled.
    wait_until("three partitions are in flight", || {
        started.load(Ordering::SeqCst) == 7
    })
    .await;
    tokio::spawn(async move { token.cancel() }).await.unwrap();
    let report = running.await.unwrap().unwrap();

    assert_eq!(report.total, 31);
    assert_eq!(report.succeeded, 4);
    assert_eq!(report.cancelled, 27);
    assert_eq!(report.failed + report.skipped, 0);
    assert_eq!(started.load(Ordering::SeqCst), 7);
    assert_nothing_left_running(&fs).await;
    let cancelled_records = all_records(&fs)
        .await
        .into_iter()
        .filter(|r| r.status == MaterializationStatus::Cancelled)
        .count();
    assert_eq!(cancelled_records, 3, "the three in flight were stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_on_async_respects_max_concurrency() {
    let current = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (c, p) = (Arc::clone(&current), Arc::clone(&peak));
    let fs = FlowStone::builder()
        .asset(
            Asset::new("events")
                .partitioned_by(Daily::from("2024-01-01").to("2024-01-31"))
                .execute(move |_ctx| {
                    let (current, peak) = (Arc::clone(&c), Arc::clone(&p));
                    async move {
                        let now = current.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        tokio::task::yield_now().await;
                        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                        current.fetch_sub(1, Ordering::SeqCst);
                        Ok::<_, Error>(())
                    }
                }),
        )
        .build()
        .unwrap();
    let (from, to) = january();
    let report = fs
        .backfill(
            "events",
            Backfill::range(from, to)
                .executor(Strategy::Async)
                .max_concurrency(2),
        )
        .await
        .unwrap();
    assert_eq!(report.succeeded, 31);
    assert!(
        peak.load(Ordering::SeqCst) <= 2,
        "peak {}",
        peak.load(Ordering::SeqCst)
    );
    assert!(
        records(&fs, "events")
            .await
            .iter()
            .all(|r| r.executor == "async")
    );
}

#[tokio::test]
async fn backfill_sources_list_range_and_all() {
    let log = RunLog::default();
    let fs = daily_asset(&log, &Arc::default());
    let report = fs
        .backfill(
            "events",
            Backfill::partitions([day(2024, 3, 1), day(2024, 3, 5)]),
        )
        .await
        .unwrap();
    assert_eq!((report.total, report.succeeded), (2, 2));
    assert_eq!(log.entries(), ["2024-03-01", "2024-03-05"]);

    // A range picks the definition's partitions inside it (the definition runs all year).
    let report = fs
        .backfill("events", Backfill::range(day(2024, 2, 27), day(2024, 3, 2)))
        .await
        .unwrap();
    assert_eq!(report.total, 5, "2024 is a leap year");
    assert_eq!((report.succeeded, report.skipped), (4, 1));

    // All: every partition of the definition.
    let small = FlowStone::builder()
        .asset(
            Asset::new("regions")
                .partitioned_by(StaticPartitions::new(["eu", "us", "apac"]))
                .execute(|ctx| async move { Ok::<_, Error>(ctx.partition().to_string()) }),
        )
        .build()
        .unwrap();
    let report = small.backfill("regions", Backfill::all()).await.unwrap();
    assert_eq!((report.total, report.succeeded), (3, 3));
    // A date range cannot select static partitions: a clear error, nothing run.
    let err = small
        .backfill("regions", Backfill::range(day(2024, 1, 1), day(2024, 1, 2)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidOptions, "{err}");
    assert!(err.to_string().contains("regions"), "{err}");
}

#[tokio::test]
async fn backfill_refuses_bad_options_before_running_anything() {
    let log = RunLog::default();
    let fs = daily_asset(&log, &Arc::default());
    let (from, to) = january();
    let err = fs
        .backfill("events", Backfill::range(from, to).max_concurrency(0))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidOptions, "{err}");
    let err = fs
        .backfill(
            "events",
            Backfill::range(from, to).run_options(Run::default().queue("high")),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidOptions, "{err}");
    let err = fs
        .backfill("evnets", Backfill::range(from, to))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AssetNotFound, "{err}");
    assert!(err.to_string().contains("did you mean 'events'"), "{err}");
    assert!(log.entries().is_empty());
    assert!(all_records(&fs).await.is_empty());
}

/// `report` reads `raw` for the same day.
fn dependent_pair(ran: &RunLog) -> FlowStone {
    let ran = ran.clone();
    FlowStone::builder()
        .asset(
            Asset::new("raw")
                .partitioned_by(Daily::from("2024-01-01").to("2024-01-31"))
                .execute(|ctx| async move { Ok::<_, Error>(ctx.partition().to_string()) }),
        )
        .asset(
            Asset::new("report")
                .depends_on(["raw"])
                .partitioned_by(Daily::from("2024-01-01").to("2024-01-31"))
                .execute(move |ctx| {
                    let ran = ran.clone();
                    async move {
                        let raw: String = ctx.dep("raw")?;
                        ran.push(ctx.partition().to_string());
                        Ok::<_, Error>(raw.len())
                    }
                }),
        )
        .build()
        .unwrap()
}

/// [`dependent_pair`] with `raw` backfilled for every day of January but the 15th.
async fn dependent_pair_missing_the_15th(ran: &RunLog) -> FlowStone {
    let fs = dependent_pair(ran);
    let mut days: Vec<NaiveDate> = (1..=31).map(|d| day(2024, 1, d)).collect();
    days.retain(|d| *d != day(2024, 1, 15));
    fs.backfill("raw", Backfill::partitions(days))
        .await
        .unwrap();
    fs
}

#[tokio::test]
async fn a_backfill_reports_partitions_whose_dependency_is_missing_as_failed() {
    let ran = RunLog::default();
    let fs = dependent_pair_missing_the_15th(&ran).await;
    let (from, to) = january();

    let report = fs
        .backfill("report", Backfill::range(from, to))
        .await
        .unwrap();
    assert_eq!((report.succeeded, report.failed), (30, 1));
    let (partition, err) = report.failures().next().unwrap();
    assert_eq!(partition, &Partition::from(day(2024, 1, 15)));
    assert_eq!(err.kind(), ErrorKind::DependencyNotReady, "{err}");
    assert_eq!(err.missing_dependencies(), ["raw".to_owned()]);
    assert_eq!(ran.entries().len(), 30);
}

#[tokio::test]
async fn retry_failed_reruns_a_partition_that_failed_for_a_missing_dependency() {
    let ran = RunLog::default();
    let fs = dependent_pair_missing_the_15th(&ran).await;
    let (from, to) = january();
    let first = fs
        .backfill("report", Backfill::range(from, to))
        .await
        .unwrap();
    assert_eq!(first.failed, 1);

    fs.materialize("raw", Run::partition(day(2024, 1, 15)))
        .await
        .unwrap();
    let retry = fs
        .backfill("report", Backfill::range(from, to).retry_failed(true))
        .await
        .unwrap();
    assert_eq!((retry.succeeded, retry.skipped), (1, 30));
    assert_eq!(ran.count("d:2024-01-15"), 1);
}
