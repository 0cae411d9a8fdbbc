//! Backfills as stored objects: every materialization record of a backfill carries its id; a
//! finished backfill's record (status, counts, request) agrees with its report, in memory and
//! through SQL as another process sees it; its outcomes page by (asset, partition); a backfill
//! is cancelled from another instance; and one whose process died is resumed from another,
//! through the queue or in process, each partition run once, none lost.
//!
//! A process dies here as a thread with its own tokio runtime and pool: dropping the runtime
//! takes everything it ran (the backfill, the task writing its record, its jobs), as a death
//! would. The SIGKILL of a real process is in `queue_multiprocess.rs`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use flowstone::backfill::{
    BackfillCounts, BackfillRecord, BackfillRequest, BackfillStatus, BackfillStore,
    PartitionRecord, StoredSource,
};
use flowstone::store::MaterializationStatus;
use flowstone::{
    Asset, Backfill, BackfillId, BackfillReport, Daily, Error, ErrorKind, FlowStone, Monthly,
    Partition, PartitionMapping, Run, StaticPartitions, Strategy, TaskAsyncExecutor,
};
use flowstone_queue::testing::TestDb;

use common::queue::{connect, start_worker};
use common::wait::{PATIENCE, wait_for, wait_until};
use common::{Calls, Counter, day, graph, numbered, records};

fn regions() -> Asset {
    Asset::new("regions")
        .partitioned_by(StaticPartitions::new(["eu", "us", "ap"]))
        .execute(|ctx| async move { Ok::<_, Error>(ctx.partition().to_string()) })
}

async fn backfill_records_carry_the_backfill_id(db: &TestDb) {
    let fs = connect(db, vec![regions()]).await;
    let worker = start_worker(&fs, "backfill-ids").await;
    for strategy in [Strategy::Async, Strategy::Queue] {
        let report = fs
            .backfill(
                "regions",
                Backfill::all().executor(strategy.clone()).force(true),
            )
            .await
            .unwrap();
        assert_eq!(report.succeeded, 3, "{strategy:?}: {report:?}");
        let of_this: Vec<_> = records(&fs, "regions")
            .await
            .into_iter()
            .filter(|m| m.backfill_id == Some(report.backfill_id))
            .collect();
        assert_eq!(of_this.len(), 3, "{strategy:?}: one record per partition");
    }
    // A run outside a backfill carries none.
    fs.materialize("regions", Run::partition("eu").executor(Strategy::Sync))
        .await
        .unwrap();
    let outside = records(&fs, "regions")
        .await
        .into_iter()
        .filter(|m| m.backfill_id.is_none())
        .count();
    assert_eq!(outside, 1);
    worker.shutdown(Duration::from_secs(5)).await;
}

// ---------------------------------------------------------------------------------------------
// Fixtures

/// Days of January and February 2024 (`failing`, if any, fails for good) and the months over
/// them (`PartitionMapping::time_window`), each counting its runs in `calls`.
fn days_and_months(calls: &Calls, failing: Option<NaiveDate>) -> Vec<Asset> {
    let (day_calls, month_calls) = (calls.clone(), calls.clone());
    vec![
        Asset::new("day")
            .partitioned_by(Daily::from("2024-01-01").to("2024-02-29"))
            .execute(move |ctx| {
                let calls = day_calls.clone();
                async move {
                    calls.bump(ctx.asset(), ctx.partition());
                    if Some(ctx.partition().date()?) == failing {
                        return Err(Error::permanent("the source has no such day"));
                    }
                    Ok::<i64, Error>(1)
                }
            }),
        Asset::new("month")
            .partitioned_by(Monthly::from("2024-01").to("2024-02"))
            .depends_on_mapped("day", PartitionMapping::time_window())
            .execute(move |ctx| {
                let calls = month_calls.clone();
                async move {
                    calls.bump(ctx.asset(), ctx.partition());
                    let days = ctx.deps::<i64>("day")?;
                    Ok::<i64, Error>(days.iter().map(|(_, n)| n).sum())
                }
            }),
    ]
}

/// The days and months of `from..=to` (a range inside January-February 2024) through `strategy`.
fn days_and_months_backfill(from: NaiveDate, to: NaiveDate, strategy: Strategy) -> Backfill {
    Backfill::range(from, to)
        .select("day+")
        .executor(strategy)
        .max_concurrency(4)
}

/// The request `days_and_months_backfill(from, to, Async)` is stored as.
fn days_and_months_request(from: NaiveDate, to: NaiveDate) -> BackfillRequest {
    BackfillRequest {
        selection: String::from("day+"),
        anchor: None,
        source: StoredSource::Range { from, to },
        executor: Some(String::from("async")),
        force: false,
        retry_failed: false,
        max_concurrency: Some(4),
        launched_by: None,
    }
}

/// An asset of integer partitions that counts its starts and its ends per partition; the
/// partitions in `gated` wait for `gate` before they end.
fn part(
    started: &Calls,
    ended: &Calls,
    gated: &'static [i64],
    gate: &Arc<tokio::sync::Notify>,
) -> Asset {
    let (started, ended, gate) = (started.clone(), ended.clone(), Arc::clone(gate));
    Asset::new("part")
        .partitioned_by(numbered())
        .execute(move |ctx| {
            let (started, ended, gate) = (started.clone(), ended.clone(), Arc::clone(&gate));
            async move {
                started.bump(ctx.asset(), ctx.partition());
                let Partition::Int(i) = *ctx.partition() else {
                    return Err(Error::permanent("part takes an integer partition"));
                };
                if gated.contains(&i) {
                    gate.notified().await;
                }
                ended.bump(ctx.asset(), ctx.partition());
                Ok::<i64, Error>(i)
            }
        })
}

/// An asset of integer partitions that counts its starts and waits for `gate`, which the test
/// never opens: only a cancel ends it (it returns when its token fires, and the run is
/// cancelled all the same).
fn gated(started: &Counter, gate: &Arc<tokio::sync::Notify>) -> Asset {
    let (started, gate) = (started.clone(), Arc::clone(gate));
    Asset::new("gated")
        .partitioned_by(numbered())
        .execute(move |ctx| {
            let (started, gate) = (started.clone(), Arc::clone(&gate));
            async move {
                started.bump();
                tokio::select! {
                    () = gate.notified() => {}
                    () = ctx.cancellation().cancelled() => {}
                }
                Ok::<i64, Error>(0)
            }
        })
}

/// Another process on the test's database, as far as the store and the queue can tell: a
/// thread with its own tokio runtime and pool running one backfill. [`Doomed::kill`] drops
/// the runtime with everything on it, as the death of the process would.
struct Doomed {
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<Option<String>>,
}

impl Doomed {
    fn start(db: &TestDb, assets: Vec<Asset>, backfill: Backfill) -> Doomed {
        let url = db.url().to_owned();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("the doomed process's runtime");
            let ended = runtime.block_on(async move {
                let fs = FlowStone::builder()
                    .assets(assets)
                    .executor(TaskAsyncExecutor::new().max_concurrency(8))
                    .database(&url)
                    .connect()
                    .await
                    .expect("the doomed process connects");
                tokio::select! {
                    report = fs.run_backfill(backfill) => Some(format!("{report:?}")),
                    _ = stopped => None,
                }
            });
            runtime.shutdown_background();
            ended
        });
        Doomed { stop, thread }
    }

    /// Kills the process: its backfill, the task writing its record and its jobs go away.
    fn kill(self) {
        drop(self.stop);
        let ended = self.thread.join().expect("the doomed process's thread");
        assert!(
            ended.is_none(),
            "the backfill ended before its process was killed: {ended:?}"
        );
    }
}

/// The one stored backfill `fs` sees, once there is one.
async fn the_backfill(fs: &FlowStone) -> BackfillRecord {
    wait_for("the backfill's record", || async {
        let mut listed = fs.backfills(10).await.unwrap();
        assert!(listed.len() <= 1, "one backfill in this test: {listed:?}");
        listed.pop()
    })
    .await
}

/// The stored record of `id`.
async fn record_of(fs: &FlowStone, id: BackfillId) -> BackfillRecord {
    fs.backfill_status(id, None, 0).await.unwrap().0
}

/// Every outcome of `id`, read two at a time: each page after the last (asset, partition) of
/// the one before, every page in (asset, encoded partition) order.
async fn outcomes_in_pages_of_two(fs: &FlowStone, id: BackfillId) -> Vec<PartitionRecord> {
    let mut all: Vec<PartitionRecord> = Vec::new();
    loop {
        let after = all.last().map(|r| (r.asset.clone(), r.partition.clone()));
        let (_, page) = fs
            .backfill_status(id, after.as_ref().map(|(a, p)| (a.as_str(), p)), 2)
            .await
            .unwrap();
        assert!(page.len() <= 2, "a page holds at most its limit: {page:?}");
        if page.is_empty() {
            break;
        }
        all.extend(page);
    }
    let keys: Vec<(String, String)> = all
        .iter()
        .map(|r| (r.asset.clone(), r.partition.encode()))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        keys, sorted,
        "pages in (asset, partition) order, nothing twice"
    );
    all
}

/// The counts a report stands for.
fn counts_of(report: &BackfillReport) -> BackfillCounts {
    BackfillCounts {
        total: report.total,
        succeeded: report.succeeded,
        failed: report.failed,
        skipped: report.skipped,
        cancelled: report.cancelled,
        in_flight: report.in_flight,
        upstream_failed: report.upstream_failed,
    }
}

/// Checks what `viewer` sees of the finished backfill of `report`: its record (`status`, the
/// report's counts, `request`, ended, owned by no one) and its outcomes, read in pages of two,
/// one per (asset, partition) of the report with the report's outcome.
async fn check_finished(
    viewer: &FlowStone,
    report: &BackfillReport,
    status: BackfillStatus,
    request: &BackfillRequest,
) {
    let record = record_of(viewer, report.backfill_id).await;
    assert_eq!(record.id, report.backfill_id);
    assert_eq!(record.status, status, "{record:?}");
    assert_eq!(record.counts, counts_of(report), "{record:?}");
    assert_eq!(&record.request, request);
    assert!(record.finished_at.is_some(), "{record:?}");
    assert!(record.created_at <= record.updated_at, "{record:?}");
    assert_eq!(record.owner, None, "nobody runs it any more: {record:?}");

    let stored = outcomes_in_pages_of_two(viewer, report.backfill_id).await;
    let stored: BTreeMap<(String, String), &PartitionRecord> = stored
        .iter()
        .map(|r| ((r.asset.clone(), r.partition.encode()), r))
        .collect();
    assert_eq!(
        stored.len(),
        report.outcomes.len(),
        "one stored outcome per (asset, partition)"
    );
    for result in &report.outcomes {
        let key = (result.asset.clone(), result.partition.encode());
        let stored = stored
            .get(&key)
            .unwrap_or_else(|| panic!("no stored outcome for {key:?}"));
        assert_eq!(stored.partition, result.partition);
        assert_eq!(stored.outcome, result.outcome.name(), "{key:?}");
        assert_eq!(
            stored.error,
            result.outcome.error().map(ToString::to_string),
            "{key:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Records of finished backfills

/// `runner` runs two backfills of days and months, `viewer` reads them back (the same instance
/// in memory, another one on the database): January alone completes; January-February then
/// skips January, and a failing day (February 10) makes it `completed_with_failures` with its
/// month not attempted. Both records agree with their reports, are listed newest first, page
/// their outcomes; an unknown id is `NotFound`, cancelling or resuming a finished one
/// `AlreadyFinished`.
async fn finished_backfills_are_recorded(runner: &FlowStone, viewer: &FlowStone, calls: &Calls) {
    let (jan1, jan31, feb29) = (day(2024, 1, 1), day(2024, 1, 31), day(2024, 2, 29));
    let january = runner
        .run_backfill(days_and_months_backfill(jan1, jan31, Strategy::Async))
        .await
        .unwrap();
    assert_eq!((january.total, january.succeeded), (32, 32), "{january:?}");
    check_finished(
        viewer,
        &january,
        BackfillStatus::Completed,
        &days_and_months_request(jan1, jan31),
    )
    .await;

    let both = runner
        .run_backfill(days_and_months_backfill(jan1, feb29, Strategy::Async))
        .await
        .unwrap();
    assert_eq!(
        (
            both.total,
            both.skipped,
            both.succeeded,
            both.failed,
            both.upstream_failed
        ),
        (62, 32, 28, 1, 1),
        "{:?}",
        both.outcomes
    );
    check_finished(
        viewer,
        &both,
        BackfillStatus::CompletedWithFailures,
        &days_and_months_request(jan1, feb29),
    )
    .await;
    assert_eq!(
        calls.all().len(),
        61,
        "every partition ran but February's month"
    );
    assert!(calls.all().values().all(|&n| n == 1), "{:?}", calls.all());

    let newest_first: Vec<BackfillId> = viewer
        .backfills(10)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(newest_first, [both.backfill_id, january.backfill_id]);
    let newest: Vec<BackfillId> = viewer
        .backfills(1)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(newest, [both.backfill_id]);

    let unknown = BackfillId::new();
    let err = viewer.backfill_status(unknown, None, 10).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let err = viewer.cancel_backfill(unknown).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let err = viewer.resume_backfill(unknown).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    for finished in [january.backfill_id, both.backfill_id] {
        let err = viewer.cancel_backfill(finished).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyFinished, "{err}");
        let err = viewer.resume_backfill(finished).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyFinished, "{err}");
    }
    // Refusing them changed nothing, and ran nothing.
    assert_eq!(
        record_of(viewer, both.backfill_id).await.status,
        BackfillStatus::CompletedWithFailures
    );
    assert!(calls.all().values().all(|&n| n == 1), "{:?}", calls.all());
}

#[tokio::test]
async fn finished_backfills_are_recorded_in_memory() {
    let calls = Calls::default();
    let fs = graph(days_and_months(&calls, Some(day(2024, 2, 10))));
    finished_backfills_are_recorded(&fs, &fs, &calls).await;
}

async fn finished_backfills_are_recorded_and_seen_by_another_instance(db: &TestDb) {
    let calls = Calls::default();
    let runner = connect(db, days_and_months(&calls, Some(day(2024, 2, 10)))).await;
    let viewer = connect(db, days_and_months(&calls, Some(day(2024, 2, 10)))).await;
    finished_backfills_are_recorded(&runner, &viewer, &calls).await;
}

// Written out instead of through `both_engines!`: on SQLite it is ignored (bug).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_backfills_are_recorded_and_seen_by_another_instance_on_postgres() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    finished_backfills_are_recorded_and_seen_by_another_instance(&db).await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_backfills_are_recorded_and_seen_by_another_instance_on_sqlite() {
    let db = TestDb::sqlite().await;
    finished_backfills_are_recorded_and_seen_by_another_instance(&db).await;
    db.cleanup().await;
}

// ---------------------------------------------------------------------------------------------
// Cancel from another instance

/// Instance A backfills six partitions of a gated asset in process, two at a time; instance B,
/// finding the backfill with `backfills`, cancels it. A's backfill returns with every
/// partition cancelled (those running stop, the waiting ones never start) and the record,
/// as B sees it, ends `cancelled` with the report's counts; a second cancel is
/// `AlreadyFinished`.
async fn a_backfill_is_cancelled_from_another_instance(db: &TestDb) {
    let (started, gate) = (Counter::default(), Arc::new(tokio::sync::Notify::new()));
    let a = connect(db, vec![gated(&started, &gate)]).await;
    let b = connect(db, vec![gated(&Counter::default(), &gate)]).await;
    let backfill = {
        let a = a.clone();
        tokio::spawn(async move {
            a.backfill(
                "gated",
                Backfill::partitions((0..6).map(Partition::Int))
                    .executor(Strategy::Async)
                    .max_concurrency(2),
            )
            .await
        })
    };
    wait_until("a partition is running", || started.get() >= 1).await;
    let running = the_backfill(&b).await;
    assert_eq!(running.status, BackfillStatus::Running, "{running:?}");
    assert!(running.owner.is_some(), "{running:?}");

    let asked = b.cancel_backfill(running.id).await.unwrap();
    assert_eq!(
        asked.status,
        BackfillStatus::Cancelling,
        "its process stops it: {asked:?}"
    );
    let report = tokio::time::timeout(PATIENCE, backfill)
        .await
        .expect("the cancelled backfill returns")
        .unwrap()
        .unwrap();
    assert_eq!(report.backfill_id, running.id);
    assert_eq!(
        (report.total, report.cancelled, report.succeeded),
        (6, 6, 0),
        "{:?}",
        report.outcomes
    );
    assert!(
        started.get() <= 2,
        "at most the two in flight started, the waiting ones never: {}",
        started.get()
    );

    let record = record_of(&b, running.id).await;
    assert_eq!(record.status, BackfillStatus::Cancelled, "{record:?}");
    assert_eq!(record.counts, counts_of(&report), "{record:?}");
    assert!(record.finished_at.is_some(), "{record:?}");
    let outcomes = outcomes_in_pages_of_two(&b, running.id).await;
    assert_eq!(outcomes.len(), 6, "{outcomes:?}");
    assert!(
        outcomes.iter().all(|o| o.outcome == "cancelled"),
        "{outcomes:?}"
    );
    let err = b.cancel_backfill(running.id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyFinished, "{err}");
}

// ---------------------------------------------------------------------------------------------
// Resume after the backfilling process died

/// Checks that every (asset, partition) of `report` succeeded, ran once (`calls`) and has one
/// materialization record, a success carrying backfill `id`.
async fn check_each_ran_once(fs: &FlowStone, report: &BackfillReport, calls: &Calls) {
    for result in &report.outcomes {
        let (asset, partition) = (&result.asset, &result.partition);
        assert_eq!(
            result.outcome.name(),
            "succeeded",
            "{asset} {partition}: {:?}",
            result.outcome
        );
        assert_eq!(
            calls.of(asset, partition),
            1,
            "{asset} {partition} ran once"
        );
    }
    assert_eq!(
        calls.all().len(),
        report.outcomes.len(),
        "{:?}",
        calls.all()
    );
    for asset in ["day", "month"] {
        let mut per_partition: BTreeMap<String, usize> = BTreeMap::new();
        for record in records(fs, asset).await {
            assert_eq!(record.status, MaterializationStatus::Success, "{record:?}");
            assert_eq!(record.backfill_id, Some(report.backfill_id), "{record:?}");
            *per_partition.entry(record.partition.encode()).or_default() += 1;
        }
        assert_eq!(
            per_partition.len(),
            report.of_asset(asset).count(),
            "{asset}: every partition has a record"
        );
        assert!(
            per_partition.values().all(|&n| n == 1),
            "{asset}: one record per partition: {per_partition:?}"
        );
    }
}

/// Process A backfills January-February's days and months through the queue with no worker
/// running, and dies once its 62 rows are in (its record stays `running`). B resumes it with a
/// worker: the rows A left are followed, not inserted again, every (asset, partition)
/// succeeds under the same id, each asset function runs once per partition, and the record
/// ends `completed`.
async fn a_queue_backfill_whose_process_died_is_resumed(db: &TestDb) {
    let calls = Calls::default();
    let b = connect(db, days_and_months(&calls, None)).await;
    let queue = b.queue().unwrap();
    let a = Doomed::start(
        db,
        days_and_months(&calls, None),
        days_and_months_backfill(day(2024, 1, 1), day(2024, 2, 29), Strategy::Queue),
    );
    let id = the_backfill(&b).await.id;
    let batch = id.to_string();
    wait_for("the backfill's 62 rows are in", || async {
        let rows = queue.list_batch(&batch, None, Some(1000)).await.unwrap();
        (rows.len() == 62).then_some(())
    })
    .await;
    a.kill();
    let dead = record_of(&b, id).await;
    assert_eq!(dead.status, BackfillStatus::Running, "{dead:?}");
    assert_eq!(calls.all().len(), 0, "nothing ran without a worker");

    // The worker starts once the resume has read what is done (it has when it touches the
    // record), so every partition runs in the resumed backfill: none is skipped.
    let resumed = {
        let b = b.clone();
        tokio::spawn(async move { b.resume_backfill(id).await })
    };
    wait_for("the resume to take the record over", || async {
        (record_of(&b, id).await.updated_at > dead.updated_at).then_some(())
    })
    .await;
    let worker = start_worker(&b, "resume-queue").await;
    let report = tokio::time::timeout(PATIENCE, resumed)
        .await
        .expect("the resumed backfill finishes")
        .unwrap()
        .unwrap();
    worker.shutdown(Duration::from_secs(10)).await;
    assert_eq!(report.backfill_id, id);
    assert_eq!(
        (report.total, report.succeeded),
        (62, 62),
        "{:?}",
        report.outcomes
    );
    check_each_ran_once(&b, &report, &calls).await;

    let rows = queue.list_batch(&batch, None, Some(1000)).await.unwrap();
    let mut per_partition: BTreeMap<(String, String), usize> = BTreeMap::new();
    for row in &rows {
        assert_eq!(row.state, flowstone_queue::JobState::Completed, "{row:?}");
        let key = (
            row.meta["asset"].to_string(),
            row.meta["partition"].to_string(),
        );
        *per_partition.entry(key).or_default() += 1;
    }
    assert_eq!(rows.len(), 62, "no row inserted twice: {per_partition:?}");
    assert_eq!(per_partition.len(), 62);

    let record = record_of(&b, id).await;
    assert_eq!(record.status, BackfillStatus::Completed, "{record:?}");
    assert_eq!(record.counts, counts_of(&report), "{record:?}");
    assert_eq!(record.owner, None, "{record:?}");
}

/// Process A backfills six partitions in process (Async) and dies with partitions 0 to 4
/// materialized and 5 running. B resumes it: what A materialized under the backfill's id is
/// skipped (the record shows it while 5 runs), the rest runs once, and the record ends
/// `completed`.
async fn an_in_process_backfill_whose_process_died_is_resumed(db: &TestDb) {
    let (started, ended) = (Calls::default(), Calls::default());
    let (never, b_gate) = (Arc::default(), Arc::new(tokio::sync::Notify::new()));
    let b = connect(db, vec![part(&started, &ended, &[5], &b_gate)]).await;
    let a = Doomed::start(
        db,
        vec![part(&started, &ended, &[5], &never)],
        Backfill::partitions((0..6).map(Partition::Int))
            .select("part")
            .executor(Strategy::Async)
            .max_concurrency(6),
    );
    let id = the_backfill(&b).await.id;
    wait_for("0 to 4 materialized and 5 started", || async {
        let done: BTreeSet<String> = records(&b, "part")
            .await
            .into_iter()
            .filter(|r| r.status == MaterializationStatus::Success && r.backfill_id == Some(id))
            .map(|r| r.partition.encode())
            .collect();
        let waiting = started.of("part", &Partition::Int(5)) == 1;
        (done.len() == 5 && waiting).then_some(())
    })
    .await;
    a.kill();
    let started_in_a = started.all();
    assert_eq!(
        record_of(&b, id).await.status,
        BackfillStatus::Running,
        "the dead process's record stays running"
    );

    let resumed = {
        let b = b.clone();
        tokio::spawn(async move { b.resume_backfill(id).await })
    };
    let progress = wait_for("the resumed backfill's progress in its record", || async {
        let record = record_of(&b, id).await;
        (record.counts.skipped == 5).then_some(record)
    })
    .await;
    assert_eq!(progress.status, BackfillStatus::Running, "{progress:?}");
    assert_eq!(progress.counts.succeeded, 0, "5 waits: {progress:?}");
    b_gate.notify_one();
    let report = tokio::time::timeout(PATIENCE, resumed)
        .await
        .expect("the resumed backfill finishes")
        .unwrap()
        .unwrap();
    assert_eq!(report.backfill_id, id);
    assert_eq!(
        (report.total, report.skipped, report.succeeded),
        (6, 5, 1),
        "{:?}",
        report.outcomes
    );
    for result in &report.outcomes {
        let Partition::Int(i) = result.partition else {
            panic!("{:?}", result.partition)
        };
        let expected = if i < 5 { "skipped" } else { "succeeded" };
        assert_eq!(result.outcome.name(), expected, "partition {i}");
        assert_eq!(
            ended.of("part", &result.partition),
            1,
            "partition {i} materialized once"
        );
        let in_a = started_in_a[&(String::from("part"), result.partition.encode())];
        let in_b = started.of("part", &result.partition) - in_a;
        assert_eq!(
            (in_a, in_b),
            if i < 5 { (1, 0) } else { (1, 1) },
            "partition {i}: started {in_a} time(s) in A, {in_b} in B"
        );
    }
    let successes: BTreeSet<String> = records(&b, "part")
        .await
        .into_iter()
        .filter(|r| r.status == MaterializationStatus::Success)
        .inspect(|r| assert_eq!(r.backfill_id, Some(id), "{r:?}"))
        .map(|r| r.partition.encode())
        .collect();
    assert_eq!(successes.len(), 6, "{successes:?}");

    let record = record_of(&b, id).await;
    assert_eq!(record.status, BackfillStatus::Completed, "{record:?}");
    assert_eq!(record.counts, counts_of(&report), "{record:?}");
}

/// How often a running backfill writes its record (`backfill/run.rs`, `CHECK_EVERY`).
const RECORD_WRITES_EVERY: Duration = Duration::from_millis(500);

/// A backfill whose task is aborted (its future dropped: the caller's `select!` or timeout,
/// an aborted task) stops writing its record. Here the aborted backfill is resumed to the
/// end; its record must then stay `completed` and stop moving. Watching for a write that must
/// not come takes a wait: several of the writer's periods.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_backfill_stops_writing_its_record() {
    // The first run of the partition never ends; the resumed one does.
    let started = Counter::default();
    let first_blocks = {
        let started = started.clone();
        Asset::new("first_blocks")
            .partitioned_by(numbered())
            .execute(move |_ctx| {
                let started = started.clone();
                async move {
                    if started.bump() == 0 {
                        std::future::pending::<()>().await;
                    }
                    Ok::<i64, Error>(1)
                }
            })
    };
    let fs = graph([first_blocks]);
    let backfill = {
        let fs = fs.clone();
        tokio::spawn(async move {
            fs.backfill(
                "first_blocks",
                Backfill::partitions([Partition::Int(1)]).executor(Strategy::Async),
            )
            .await
        })
    };
    wait_until("the partition is running", || started.get() == 1).await;
    let id = the_backfill(&fs).await.id;
    backfill.abort();
    assert!(backfill.await.unwrap_err().is_cancelled());

    let report = fs.resume_backfill(id).await.unwrap();
    assert_eq!(report.backfill_id, id);
    let finished = record_of(&fs, id).await;
    assert_eq!(finished.status, BackfillStatus::Completed, "{finished:?}");
    tokio::time::sleep(RECORD_WRITES_EVERY * 4).await;
    let later = record_of(&fs, id).await;
    assert_eq!(
        later, finished,
        "nothing writes the record of a finished backfill"
    );
}

/// A backfill's record ends with its final status, however short the backfill: twenty
/// one-partition backfills, each over before its record-writing task's first write (which
/// comes at once) has landed, all end `completed`.
async fn a_short_backfill_ends_with_its_final_status(db: &TestDb) {
    let fs = connect(db, vec![regions()]).await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        let report = fs
            .backfill(
                "regions",
                Backfill::partitions(["eu"])
                    .executor(Strategy::Async)
                    .force(true),
            )
            .await
            .unwrap();
        assert_eq!(report.succeeded, 1, "{report:?}");
        ids.push(report.backfill_id);
    }
    let listed = fs.backfills(100).await.unwrap();
    let not_completed: Vec<&BackfillRecord> = listed
        .iter()
        .filter(|r| r.status != BackfillStatus::Completed)
        .collect();
    assert_eq!(listed.len(), 20);
    assert!(
        not_completed.is_empty(),
        "{} of 20 finished backfills are not `completed`: {not_completed:?}",
        not_completed.len()
    );
}

// Written out instead of through `both_engines!`: on SQLite it is ignored (bug). On
// PostgreSQL the stray write has not been seen to land late (it waits for no lock there).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_backfill_ends_with_its_final_status_on_sqlite() {
    let db = TestDb::sqlite().await;
    a_short_backfill_ends_with_its_final_status(&db).await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_backfill_ends_with_its_final_status_on_postgres() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    a_short_backfill_ends_with_its_final_status(&db).await;
    db.cleanup().await;
}

/// `create` stores a backfill once (a second create under its id changes nothing), and `take`
/// gives a requested backfill to one owner, a fresh running one to nobody, and a running one
/// whose progress is older than the staleness to the next owner.
async fn backfills_are_created_once_and_taken_by_one(store: &dyn BackfillStore) {
    let now = chrono::Utc::now();
    let record = BackfillRecord {
        id: BackfillId::new(),
        request: days_and_months_request(day(2024, 1, 1), day(2024, 1, 2)),
        status: BackfillStatus::Requested,
        counts: BackfillCounts::default(),
        created_at: now,
        updated_at: now,
        finished_at: None,
        owner: None,
    };
    assert!(
        store.create(&record).await.unwrap(),
        "stored the first time"
    );
    let again = BackfillRecord {
        status: BackfillStatus::Completed,
        ..record.clone()
    };
    assert!(!store.create(&again).await.unwrap(), "not stored twice");
    let hour = chrono::TimeDelta::hours(1);
    assert!(
        store.take(record.id, "a", hour).await.unwrap(),
        "requested: taken"
    );
    assert!(
        !store.take(record.id, "b", hour).await.unwrap(),
        "running and fresh: not taken"
    );
    let taken = store.get(record.id).await.unwrap().unwrap();
    assert_eq!(taken.status, BackfillStatus::Running);
    assert_eq!(taken.owner.as_deref(), Some("a"));
    tokio::time::sleep(Duration::from_millis(20)).await;
    let stale = chrono::TimeDelta::milliseconds(10);
    assert!(
        store.take(record.id, "b", stale).await.unwrap(),
        "running and stale: taken"
    );
    assert!(
        !store.take(record.id, "c", hour).await.unwrap(),
        "just taken: fresh again"
    );
    assert_eq!(
        store
            .get(record.id)
            .await
            .unwrap()
            .unwrap()
            .owner
            .as_deref(),
        Some("b")
    );
    assert!(
        !store.take(BackfillId::new(), "a", stale).await.unwrap(),
        "an unknown id is not taken"
    );
    store
        .update(record.id, BackfillStatus::Completed, &record.counts, None)
        .await
        .unwrap();
    assert!(
        !store.take(record.id, "c", stale).await.unwrap(),
        "ended: not taken"
    );
}

#[tokio::test]
async fn backfills_are_created_once_and_taken_by_one_in_memory() {
    backfills_are_created_once_and_taken_by_one(&flowstone::backfill::MemoryBackfills::new()).await;
}

async fn backfills_are_created_once_and_taken_by_one_in_sql(db: &TestDb) {
    let fs = connect(db, vec![regions()]).await;
    backfills_are_created_once_and_taken_by_one(fs.runtime().storage().backfills().as_ref()).await;
}

flowstone_queue::both_engines!(
    backfills_are_created_once_and_taken_by_one_in_sql,
    backfill_records_carry_the_backfill_id,
    a_backfill_is_cancelled_from_another_instance,
    a_queue_backfill_whose_process_died_is_resumed,
    an_in_process_backfill_whose_process_died_is_resumed,
);
