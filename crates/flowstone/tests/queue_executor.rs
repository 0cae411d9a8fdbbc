//! The Queue executor (issue 4), in one process, on SQLite and on PostgreSQL: every scenario is
//! one function run against both engines, each on a database of its own (PostgreSQL tests are
//! skipped with a loud message when it is unreachable, and fail under `CI=true`).
//!
//! Nothing here asserts on durations: tests wait for conditions (polling, 30 s patience) with
//! short worker timings. The child-process scenarios are in `queue_multiprocess.rs`.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DurationRound, Utc};
use flowstone::store::MaterializationStatus;
use flowstone::{
    Asset, Backfill, CancellationToken, Error, ErrorKind, FlowStone, JobStatus, Partition,
    PartitionOutcome, RetryPolicy, Run, Strategy,
};
use flowstone_queue::JobState;
use flowstone_queue::testing::TestDb;

use common::outcome::{
    assert_error, completed, failed, failure, job_status, latest_record, lineage, materialized,
    output, scheduled,
};
use common::queue::{connect, fast_settings, row, start_worker, worker};
use common::wait::{PATIENCE, settled_record, wait_finished, wait_for};
use common::{Counter, always_failing, constant, flaky, graph, numbered, records};

/// Partitions (as integers) an asset ran for, in order.
type Runs = Arc<Mutex<Vec<i64>>>;

fn int(partition: &Partition) -> i64 {
    match partition {
        Partition::Int(i) => *i,
        Partition::Unpartitioned => 0,
        other => panic!("the test assets take integer partitions, got {other}"),
    }
}

/// An asset that logs the partition it runs for and returns `partition * factor`.
fn logged(name: &str, runs: &Runs, factor: i64) -> Asset {
    let runs = Arc::clone(runs);
    Asset::new(name).execute(move |ctx| {
        let runs = Arc::clone(&runs);
        async move {
            let i = int(ctx.partition());
            runs.lock().unwrap().push(i);
            Ok::<i64, Error>(i * factor)
        }
    })
}

/// An asset that reads the integer output of `dep` and returns it plus `n`.
fn plus(name: &str, dep: &'static str, n: i64) -> Asset {
    Asset::new(name)
        .depends_on([dep])
        .execute(move |ctx| async move {
            let value: i64 = ctx.dep(dep)?;
            Ok::<i64, Error>(value + n)
        })
}

/// A run of `partition` on the queue.
fn queue_run(partition: impl Into<Partition>) -> Run {
    Run::partition(partition).executor(Strategy::Queue)
}

/// An unpartitioned run on the queue.
fn queue_run_unpartitioned() -> Run {
    Run::unpartitioned().executor(Strategy::Queue)
}

/// What a queue row says about its attempts: (state, attempts spent, errors kept).
/// `(state, attempts used up, errors)`: snoozes take attempt numbers without using up
/// attempts.
fn attempts(r: &flowstone_queue::Job) -> (JobState, i32, usize) {
    (r.state, r.attempt - r.snoozed, r.errors.len())
}

// ---------------------------------------------------------------------------------------------

/// A job scheduled for later is `Pending` with that time; once it is due a worker runs it and it
/// is `Completed`. A job cancelled before its time is `Cancelled` and never runs.
async fn scheduled_job_runs_when_due_and_a_cancelled_one_never_runs(db: &TestDb) {
    let runs = Runs::default();
    let fs = connect(
        db,
        vec![logged("tick", &runs, 10).partitioned_by(numbered())],
    )
    .await;
    // Millisecond precision, so the time read back from either database compares equal.
    let at = (Utc::now() + chrono::Duration::milliseconds(1500))
        .duration_trunc(chrono::Duration::milliseconds(1))
        .unwrap();
    let job = scheduled(&fs, "tick", queue_run(1).scheduled_at(at)).await;
    let doomed = scheduled(&fs, "tick", queue_run(2).scheduled_at(at)).await;
    assert_eq!(job.executor, "queue");

    // No worker runs yet, so nothing can have started.
    match job_status(&fs, &job).await {
        JobStatus::Pending {
            scheduled_at,
            attempt,
        } => {
            assert_eq!(scheduled_at, Some(at));
            assert_eq!(attempt, 1);
        }
        other => panic!("expected pending, got {other}"),
    }
    fs.cancel_job(&doomed).await.expect("cancel a pending job");
    assert!(matches!(
        job_status(&fs, &doomed).await,
        JobStatus::Cancelled
    ));

    let worker = start_worker(&fs, "sched").await;
    assert_eq!(completed::<i64>(wait_finished(&fs, &job).await), 10);
    let record = latest_record(&fs, "tick").await;
    assert_eq!(record.status, MaterializationStatus::Success);
    assert!(
        record.started_at >= at,
        "ran at {} before its scheduled time {at}",
        record.started_at
    );
    // The cancelled job was due at the same time as the one that ran: it never ran.
    assert!(matches!(
        job_status(&fs, &doomed).await,
        JobStatus::Cancelled
    ));
    // Cancelling a finished job is refused naming its state, and changes nothing.
    let err = fs
        .cancel_job(&job)
        .await
        .expect_err("cancel a completed job");
    assert_eq!(err.kind(), ErrorKind::AlreadyFinished, "{err}");
    assert!(err.to_string().contains("already completed"), "{err}");
    assert!(matches!(
        job_status(&fs, &job).await,
        JobStatus::Completed(_)
    ));
    assert_eq!(*runs.lock().unwrap(), vec![1]);
    assert_eq!(row(&fs, &doomed).await.state, JobState::Cancelled);
    assert_eq!(row(&fs, &doomed).await.attempt, 0);
    assert_eq!(records(&fs, "tick").await.len(), 1);
    worker.shutdown(Duration::from_secs(5)).await;
}

/// `materialize` through the queue enqueues, a worker in this process runs it, and the caller
/// gets the output back; upstream assets go through the queue too.
async fn execute_returns_the_output_from_an_in_process_worker(db: &TestDb) {
    let runs = Runs::default();
    let fs = connect(
        db,
        vec![
            constant("twenty", 20i64),
            logged("base", &runs, 1).partitioned_by(numbered()),
            Asset::new("doubled")
                .depends_on(["twenty"])
                .execute(|ctx| async move {
                    let base: i64 = ctx.dep("twenty")?;
                    Ok::<i64, Error>(base * 2 + 2)
                }),
        ],
    )
    .await;
    let worker = start_worker(&fs, "exec").await;
    let out: i64 = output(
        &fs,
        "doubled",
        queue_run_unpartitioned().with_upstream(true),
    )
    .await;
    assert_eq!(out, 42);
    // Several at once.
    let outs =
        futures_util::future::join_all((1..=5).map(|i| output::<i64>(&fs, "base", queue_run(i))))
            .await;
    assert_eq!(outs, vec![1, 2, 3, 4, 5]);
    assert_eq!(
        fs.load::<i64>("doubled", Partition::Unpartitioned)
            .await
            .unwrap(),
        42
    );
    // Lineage written by the worker: `doubled` consumed the run's `twenty`.
    let upstream = lineage(
        &fs,
        "doubled",
        Partition::Unpartitioned,
        flowstone::Direction::Upstream,
        1,
    )
    .await;
    assert_eq!(upstream.len(), 1, "{upstream:?}");
    assert_eq!(upstream[0].key.asset, "twenty");
    for record in records(&fs, "base").await {
        assert_eq!(record.executor, "queue");
        assert_eq!(record.status, MaterializationStatus::Success);
        assert_eq!(record.attempt, 1);
    }
    worker.shutdown(Duration::from_secs(5)).await;
}

/// A job whose dependency is missing snoozes (no attempt spent); once the dependency is
/// materialized it succeeds on its first attempt.
async fn missing_dependency_snoozes_then_succeeds_without_spending_an_attempt(db: &TestDb) {
    let runs = Runs::default();
    let fs = connect(
        db,
        vec![
            logged("upstream", &runs, 7),
            plus("downstream", "upstream", 42).retry(RetryPolicy::attempts(2)),
        ],
    )
    .await;
    let worker = worker(&fs, "assets", 4, "deps")
        .dependency_snoozes(50, Duration::from_millis(50))
        .start()
        .await
        .unwrap();
    let job = scheduled(&fs, "downstream", queue_run_unpartitioned()).await;
    // Read the row between attempts (snoozed, waiting): once claimed again it shows the
    // attempt in flight.
    let snoozed = wait_for("the job to snooze", || async {
        let r = row(&fs, &job).await;
        (r.snoozed >= 1 && r.state == JobState::Scheduled).then_some(r)
    })
    .await;
    assert_eq!(
        snoozed.attempt - snoozed.snoozed,
        0,
        "a snooze uses up no attempt"
    );
    assert_eq!(
        snoozed.max_attempts,
        4 + snoozed.snoozed,
        "each snooze raised the limit (2 attempts + 2 for interrupted deliveries)"
    );
    assert!(snoozed.errors.is_empty(), "{:?}", snoozed.errors);
    assert!(!snoozed.state.is_final(), "{}", snoozed.state);
    assert!(records(&fs, "downstream").await.is_empty());

    let sync = Run::unpartitioned().executor(Strategy::Sync);
    assert_eq!(output::<i64>(&fs, "upstream", sync).await, 0);
    assert_eq!(completed::<i64>(wait_finished(&fs, &job).await), 42);
    let done = row(&fs, &job).await;
    assert_eq!(
        attempts(&done),
        (JobState::Completed, 1, 0),
        "snoozes spent no attempt and left no error: {:?}",
        done.errors
    );
    assert!(done.snoozed >= 1);
    let record = latest_record(&fs, "downstream").await;
    assert_eq!(record.attempt, 1);
    assert_eq!(record.status, MaterializationStatus::Success);
    worker.shutdown(Duration::from_secs(5)).await;
}

/// A dependency that never comes: the job snoozes up to the worker's limit, then fails with
/// `DependencyNotReady` naming the missing asset, having spent one attempt.
async fn missing_dependency_fails_after_the_snooze_limit(db: &TestDb) {
    let runs = Runs::default();
    let fs = connect(
        db,
        vec![
            logged("never", &runs, 1),
            plus("waits_for_never", "never", 0).retry(RetryPolicy::attempts(3)),
        ],
    )
    .await;
    let worker = worker(&fs, "assets", 4, "deps-limit")
        .dependency_snoozes(2, Duration::from_millis(20))
        .start()
        .await
        .unwrap();
    let job = scheduled(&fs, "waits_for_never", queue_run_unpartitioned()).await;
    let err = failed(wait_finished(&fs, &job).await);
    assert_error(&err, ErrorKind::DependencyNotReady, &["never"]);
    assert_eq!(err.missing_dependencies(), ["never".to_owned()]);
    let r = row(&fs, &job).await;
    assert_eq!(
        attempts(&r),
        (JobState::Discarded, 1, 1),
        "snoozes spent no attempt; the last check spent one"
    );
    assert_eq!(r.snoozed, 2);
    assert!(runs.lock().unwrap().is_empty());
    worker.shutdown(Duration::from_secs(5)).await;
}

/// An attempt that outlives the asset's timeout fails with `ExecutionTimeout`, which is
/// retried like any retryable error until the attempts run out.
async fn timeouts_are_retried_then_fail(db: &TestDb) {
    let calls = Counter::default();
    let counter = calls.clone();
    let stuck = Asset::new("stuck")
        .partitioned_by(numbered())
        .timeout(Duration::from_millis(150))
        .retry(RetryPolicy::attempts(2).backoff(Duration::from_millis(20)))
        .execute(move |_ctx| {
            let counter = counter.clone();
            async move {
                counter.bump();
                tokio::time::sleep(Duration::from_secs(600)).await;
                Ok::<u8, Error>(0)
            }
        });
    let fs = connect(db, vec![stuck]).await;
    let worker = start_worker(&fs, "timeout").await;
    let job = scheduled(&fs, "stuck", queue_run(1)).await;
    let err = failed(wait_finished(&fs, &job).await);
    assert_eq!(err.kind(), ErrorKind::ExecutionTimeout, "{err}");
    assert_eq!(attempts(&row(&fs, &job).await), (JobState::Discarded, 2, 2));
    assert_eq!(calls.get(), 2);
    let record = latest_record(&fs, "stuck").await;
    assert_eq!(record.status, MaterializationStatus::Failed);
    assert_eq!(record.attempt, 2);
    worker.shutdown(Duration::from_secs(5)).await;
}

/// The run's queue, priority and attempts reach the row and are honoured; a timeout, which
/// the queue cannot honour per run, is refused; scheduling the same run twice while it is
/// pending gives the same row.
async fn run_options_reach_the_queue_row(db: &TestDb) {
    let runs = Runs::default();
    let calls = Counter::default();
    let failing = always_failing("failing", &calls, || Error::failed("still failing"))
        .partitioned_by(numbered());
    let fs = connect(
        db,
        vec![logged("opts", &runs, 1).partitioned_by(numbered()), failing],
    )
    .await;

    let err = fs
        .schedule("opts", queue_run(0).timeout(Duration::from_secs(1)))
        .await
        .expect_err("the queue has no per-run timeout");
    assert_error(&err, ErrorKind::InvalidOptions, &["timeout"]);

    // Priority: with one slot, the priority 0 job runs before the priority 9 one inserted first.
    let low = scheduled(&fs, "opts", queue_run(9).priority(9)).await;
    let high = scheduled(&fs, "opts", queue_run(1).priority(1)).await;
    assert_eq!(row(&fs, &low).await.priority, 9);
    // A job on another queue, and the same run scheduled twice.
    let run_id = flowstone::RunId::new();
    let on_reports = || queue_run(5).queue("reports").run_id(run_id);
    let elsewhere = scheduled(&fs, "opts", on_reports()).await;
    let again = scheduled(&fs, "opts", on_reports()).await;
    assert_eq!(
        flowstone::queue::queue_job_id(&again).unwrap(),
        flowstone::queue::queue_job_id(&elsewhere).unwrap(),
        "one active row per (asset, partition, run)"
    );
    assert_eq!(row(&fs, &elsewhere).await.queue, "reports");

    let assets_worker = worker(&fs, "assets", 1, "assets").start().await.unwrap();
    wait_finished(&fs, &low).await;
    wait_finished(&fs, &high).await;
    assert_eq!(*runs.lock().unwrap(), vec![1, 9], "priority 1 first");
    assert!(
        !row(&fs, &elsewhere).await.state.is_final(),
        "no worker runs queue 'reports' yet"
    );
    let reports_worker = worker(&fs, "reports", 1, "reports").start().await.unwrap();
    assert!(matches!(
        wait_finished(&fs, &elsewhere).await,
        JobStatus::Completed(_)
    ));
    assert_eq!(
        row(&fs, &elsewhere).await.node.as_deref(),
        Some(reports_worker.node())
    );
    assert_eq!(*runs.lock().unwrap(), vec![1, 9, 5]);

    // max_attempts from the run, over the asset's single attempt.
    let job = scheduled(&fs, "failing", queue_run(1).max_attempts(2)).await;
    failed(wait_finished(&fs, &job).await);
    let r = row(&fs, &job).await;
    assert_eq!(
        (r.meta["attempts"].as_i64(), r.attempt, r.errors.len()),
        (Some(2), 2, 2)
    );
    assert_eq!(r.max_attempts, 2 + flowstone::queue::DELIVERY_SLACK as i32);
    assert_eq!(calls.get(), 2);
    assets_worker.shutdown(Duration::from_secs(5)).await;
    reports_worker.shutdown(Duration::from_secs(5)).await;
}

/// An asset failing retryably twice then succeeding: one success, two errors in the row,
/// attempt 3 in the row and in the record.
async fn retryable_failures_are_retried_until_success(db: &TestDb) {
    let calls = Counter::default();
    let flaky = flaky("flaky", &calls, 3)
        .partitioned_by(numbered())
        .retry(RetryPolicy::attempts(3).backoff(Duration::from_millis(20)));
    let fs = connect(db, vec![flaky]).await;
    let worker = start_worker(&fs, "retry").await;
    let job = scheduled(&fs, "flaky", queue_run(1)).await;
    assert_eq!(completed::<u64>(wait_finished(&fs, &job).await), 3);
    assert_eq!(calls.get(), 3);
    let r = row(&fs, &job).await;
    assert_eq!(attempts(&r), (JobState::Completed, 3, 2), "{:?}", r.errors);
    assert_eq!(r.meta["attempts"].as_i64(), Some(3));
    for (i, err) in r.errors.iter().enumerate() {
        assert_eq!(err.attempt, i as i32 + 1);
        assert!(
            err.error.contains(&format!("flaky on attempt {}", i + 1)),
            "{}",
            err.error
        );
    }
    let recs = records(&fs, "flaky").await;
    assert_eq!(recs.len(), 1, "one record per (asset, partition, run)");
    assert_eq!(recs[0].status, MaterializationStatus::Success);
    assert_eq!(recs[0].attempt, 3);
    assert_eq!(recs[0].run_id, job.run_id);
    // The same through `materialize`.
    assert_eq!(output::<u64>(&fs, "flaky", queue_run(2)).await, 3);
    worker.shutdown(Duration::from_secs(5)).await;
}

/// `extra` exists only in the new deployment; `common` in both.
fn deployment(with_extra: bool, extra_runs: &Counter) -> Vec<Asset> {
    let mut assets = vec![constant("common", 1u8)];
    if with_extra {
        let extra_runs = extra_runs.clone();
        assets.push(Asset::new("extra").execute(move |_ctx| {
            let extra_runs = extra_runs.clone();
            async move {
                extra_runs.bump();
                Ok::<String, Error>("new code".into())
            }
        }));
    }
    assets
}

/// A worker that does not know a job's asset (an old deployment) never claims it: it runs
/// what it has (`common`, queued after the job) and leaves the job alone; a worker that knows
/// the asset then runs it on its first attempt.
async fn an_old_worker_leaves_an_asset_it_lacks_to_a_worker_that_has_it(db: &TestDb) {
    let extra_runs = Counter::default();
    let new = connect(db, deployment(true, &extra_runs)).await;
    let old = connect(db, deployment(false, &extra_runs)).await;
    assert!(old.registry().get("extra").is_err());
    let old_worker = start_worker(&old, "old").await;
    let job = scheduled(&new, "extra", queue_run_unpartitioned()).await;
    // Queued after `extra`: the old worker's claim reaches it only past `extra`.
    let common = scheduled(&new, "common", queue_run_unpartitioned()).await;
    assert_eq!(completed::<u8>(wait_finished(&new, &common).await), 1);
    assert_eq!(
        row(&new, &common).await.node.as_deref(),
        Some(old_worker.node())
    );

    let untouched = row(&new, &job).await;
    assert_eq!(
        (untouched.state, untouched.attempt, untouched.snoozed),
        (JobState::Available, 0, 0),
        "the old worker must not claim an asset it lacks"
    );
    assert_eq!(untouched.node, None);
    assert!(matches!(
        job_status(&new, &job).await,
        JobStatus::Pending { attempt: 1, .. }
    ));
    assert_eq!(extra_runs.get(), 0);

    let new_worker = start_worker(&new, "new").await;
    assert_eq!(
        completed::<String>(wait_finished(&new, &job).await),
        "new code"
    );
    let done = row(&new, &job).await;
    assert_eq!(done.node.as_deref(), Some(new_worker.node()));
    assert_eq!(done.attempt, 1);
    assert!(done.errors.is_empty(), "{:?}", done.errors);
    assert_eq!(extra_runs.get(), 1);
    old_worker.shutdown(Duration::from_secs(5)).await;
    new_worker.shutdown(Duration::from_secs(5)).await;
}

/// With no live worker that knows the asset for `unserved_kind_after`, the job is discarded
/// without running, with an error naming the asset's job kind and the queue.
async fn a_job_no_live_worker_can_run_is_discarded_after_the_limit(db: &TestDb) {
    let extra_runs = Counter::default();
    let new = connect(db, deployment(true, &extra_runs)).await;
    let old = connect(db, deployment(false, &extra_runs)).await;
    let mut settings = fast_settings();
    settings.unserved_kind_after = Duration::from_secs(1);
    settings.prune_interval = Duration::from_millis(100);
    let old_worker = worker(&old, "assets", 2, "old")
        .settings(settings)
        .start()
        .await
        .unwrap();
    let job = scheduled(&new, "extra", queue_run_unpartitioned()).await;
    let err = failed(wait_finished(&new, &job).await);
    assert_error(
        &err,
        ErrorKind::ExecutionFailed,
        &[
            "no live worker",
            "`flowstone.materialize:extra`",
            "`assets`",
        ],
    );
    // Also readable from the old deployment, which does not know the asset.
    assert!(matches!(job_status(&old, &job).await, JobStatus::Failed(_)));
    let r = row(&new, &job).await;
    assert_eq!((r.state, r.attempt), (JobState::Discarded, 0));
    assert_eq!(extra_runs.get(), 0);
    old_worker.shutdown(Duration::from_secs(5)).await;
}

/// Backfills never run a partition twice because of other work. A first backfill of 0..10
/// queues its rows and its process "dies" (the task is aborted; its rows stay queued); a
/// second backfill of 5..15, listing 5 and 6 twice, reports 5..10 in flight naming their
/// rows, enqueues only 10..15, and lists each partition once. With a worker started, every
/// partition of 0..15 runs exactly once.
async fn overlapping_backfills_run_each_partition_once(db: &TestDb) {
    let runs = Runs::default();
    let fs = connect(db, vec![logged("sq", &runs, 1).partitioned_by(numbered())]).await;
    let queue = fs.queue().unwrap();
    let first = {
        let fs = fs.clone();
        tokio::spawn(async move {
            fs.backfill(
                "sq",
                Backfill::partitions((0..10).map(Partition::Int)).executor(Strategy::Queue),
            )
            .await
        })
    };
    let queued = |n: usize| {
        let queue = queue.clone();
        async move {
            let pending = queue
                .list(&flowstone_queue::JobFilter {
                    state: Some(JobState::Available),
                    ..Default::default()
                })
                .await
                .unwrap();
            (pending.len() == n).then_some(())
        }
    };
    wait_for("the first backfill's rows are queued", || queued(10)).await;
    first.abort();

    let listed = [5, 5, 6, 6, 7, 8, 9, 10, 11, 12, 13, 14].map(Partition::Int);
    let second = {
        let fs = fs.clone();
        tokio::spawn(async move {
            fs.backfill("sq", Backfill::partitions(listed).executor(Strategy::Queue))
                .await
        })
    };
    // No worker yet, so the first backfill's rows are still active when the second inserts.
    wait_for("the second backfill's new rows are queued", || queued(15)).await;
    let worker = start_worker(&fs, "overlap").await;
    let report = tokio::time::timeout(PATIENCE, second)
        .await
        .expect("the second backfill finishes")
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            report.total,
            report.succeeded,
            report.in_flight,
            report.failed
        ),
        (10, 5, 5, 0),
        "{:?}",
        report.outcomes
    );
    let order: Vec<i64> = report.outcomes.iter().map(|r| int(&r.partition)).collect();
    assert_eq!(
        order,
        (5..15).collect::<Vec<_>>(),
        "each partition once, in order"
    );
    for result in &report.outcomes[..5] {
        let (partition, outcome) = (&result.partition, &result.outcome);
        let PartitionOutcome::InFlight(err) = outcome else {
            panic!("partition {partition}: {outcome:?}")
        };
        assert_eq!(err.kind(), ErrorKind::InFlight);
        assert_error(err, ErrorKind::InFlight, &["queue row", "'sq'"]);
        assert_eq!(err.partition(), Some(partition));
    }
    wait_for("all 15 partitions ran", || async {
        (runs.lock().unwrap().len() >= 15).then_some(())
    })
    .await;
    wait_for("nothing left to run", || async {
        let busy = queue
            .list(&flowstone_queue::JobFilter::default())
            .await
            .unwrap()
            .iter()
            .any(|r| !r.state.is_final());
        (!busy).then_some(())
    })
    .await;
    let mut ran = runs.lock().unwrap().clone();
    ran.sort_unstable();
    assert_eq!(
        ran,
        (0..15).collect::<Vec<_>>(),
        "each partition ran exactly once"
    );
    for i in 0..15 {
        assert_eq!(
            fs.load::<i64>("sq", Partition::Int(i)).await.unwrap(),
            i,
            "partition {i}"
        );
    }
    worker.shutdown(Duration::from_secs(5)).await;
}

/// A non-retryable error discards the job at once, whatever the retry policy.
async fn permanent_error_discards_at_once(db: &TestDb) {
    let calls = Counter::default();
    let broken = always_failing("broken", &calls, || {
        Error::permanent("row 7 has no timestamp")
    })
    .partitioned_by(numbered())
    .retry(RetryPolicy::attempts(5).backoff(Duration::from_millis(20)));
    let fs = connect(db, vec![broken]).await;
    let worker = start_worker(&fs, "perm").await;
    let job = scheduled(&fs, "broken", queue_run(1)).await;
    let err = failed(wait_finished(&fs, &job).await);
    assert!(!err.retryable(), "{err}");
    assert_error(
        &err,
        ErrorKind::ExecutionFailed,
        &["row 7 has no timestamp"],
    );
    assert_eq!(err.asset(), Some("broken"));
    assert_eq!(calls.get(), 1);
    assert_eq!(attempts(&row(&fs, &job).await), (JobState::Discarded, 1, 1));
    let record = latest_record(&fs, "broken").await;
    assert_eq!(record.status, MaterializationStatus::Failed);
    assert_eq!(record.attempt, 1);
    assert!(!record.error.as_ref().unwrap().retryable);

    let err = failure(&fs, "broken", queue_run(2)).await;
    assert!(!err.retryable(), "{err}");
    assert!(err.to_string().contains("row 7 has no timestamp"), "{err}");
    assert_eq!(calls.get(), 2);
    worker.shutdown(Duration::from_secs(5)).await;
}

/// `Strategy::Auto` (the default) picks the queue when a database is configured, Sync otherwise.
async fn auto_picks_the_queue_with_a_database_and_sync_without(db: &TestDb) {
    let runs = Runs::default();
    let fs = connect(
        db,
        vec![logged("auto", &runs, 2).partitioned_by(numbered())],
    )
    .await;
    let worker = start_worker(&fs, "auto").await;
    let job = scheduled(&fs, "auto", Run::partition(1)).await;
    assert_eq!(job.executor, "queue");
    assert!(flowstone::queue::queue_job_id(&job).is_ok());
    assert!(matches!(
        wait_finished(&fs, &job).await,
        JobStatus::Completed(_)
    ));
    assert_eq!(output::<i64>(&fs, "auto", Run::partition(2)).await, 4);
    for record in records(&fs, "auto").await {
        assert_eq!(record.executor, "queue");
    }
    worker.shutdown(Duration::from_secs(5)).await;

    let plain = graph([logged("auto", &runs, 2).partitioned_by(numbered())]);
    let job = scheduled(&plain, "auto", Run::partition(3)).await;
    assert_eq!(job.executor, "sync");
    assert!(flowstone::queue::queue_job_id(&job).is_err());
    assert!(matches!(
        job_status(&plain, &job).await,
        JobStatus::Completed(_)
    ));
    materialized(&plain, "auto", Run::partition(4)).await;
    for record in records(&plain, "auto").await {
        assert_eq!(record.executor, "sync");
    }
}

/// Cancelling a running queued job from another FlowStone instance on the same database fires
/// the asset's cancellation token; the job ends `Cancelled`.
async fn cancelling_a_running_job_from_another_instance_stops_it(db: &TestDb) {
    type Slot = Arc<Mutex<Option<CancellationToken>>>;
    fn waiting(slot: &Slot) -> Asset {
        let slot = Arc::clone(slot);
        Asset::new("waits")
            .partitioned_by(numbered())
            .execute(move |ctx| {
                let slot = Arc::clone(&slot);
                async move {
                    *slot.lock().unwrap() = Some(ctx.cancellation().clone());
                    ctx.cancellation().cancelled().await;
                    Ok::<u8, Error>(0)
                }
            })
    }
    let running = Slot::default();
    let here = connect(db, vec![waiting(&running)]).await;
    let elsewhere = connect(db, vec![waiting(&Slot::default())]).await;
    let worker = start_worker(&here, "cancel").await;
    let job = scheduled(&here, "waits", queue_run(1)).await;
    let token = wait_for("the asset to start", || async {
        running.lock().unwrap().clone()
    })
    .await;
    assert!(matches!(
        job_status(&elsewhere, &job).await,
        JobStatus::Running
    ));
    assert!(!token.is_cancelled());

    elsewhere
        .cancel_job(&job)
        .await
        .expect("cancel a running job");
    assert!(matches!(
        wait_finished(&elsewhere, &job).await,
        JobStatus::Cancelled
    ));
    wait_for("the asset's cancellation token to fire", || async {
        token.is_cancelled().then_some(())
    })
    .await;
    let record = settled_record(&here, "waits").await;
    assert_eq!(record.status, MaterializationStatus::Cancelled);
    assert!(matches!(
        job_status(&here, &job).await,
        JobStatus::Cancelled
    ));
    assert_eq!(row(&here, &job).await.state, JobState::Cancelled);
    // The worker is free again: a second job starts, and cancelling it stops it too.
    let second = scheduled(&here, "waits", queue_run(2)).await;
    let token = wait_for("the second job to start", || async {
        running
            .lock()
            .unwrap()
            .clone()
            .filter(|t| !t.is_cancelled())
    })
    .await;
    here.cancel_job(&second).await.unwrap();
    wait_for("the second token to fire", || async {
        token.is_cancelled().then_some(())
    })
    .await;
    worker.shutdown(Duration::from_secs(5)).await;
}

/// `materialize` waiting on a queued job gets `Cancelled` when another instance cancels the job
/// before any worker runs it; a worker run with `run_until` stops cleanly on its signal.
async fn a_waiting_materialize_sees_a_cancel_and_run_until_stops_cleanly(db: &TestDb) {
    let runs = Runs::default();
    let fs = connect(
        db,
        vec![logged("later", &runs, 1).partitioned_by(numbered())],
    )
    .await;
    let other = connect(
        db,
        vec![logged("later", &runs, 1).partitioned_by(numbered())],
    )
    .await;
    let waiting = {
        let fs = fs.clone();
        tokio::spawn(async move { fs.materialize("later", queue_run(1).queue("nobody")).await })
    };
    let queue = other.queue().unwrap();
    let pending = wait_for("the job to be enqueued", || async {
        queue
            .list(&flowstone_queue::JobFilter {
                queue: Some("nobody".into()),
                ..Default::default()
            })
            .await
            .unwrap()
            .pop()
    })
    .await;
    queue.cancel(pending.id).await.unwrap();
    let err = tokio::time::timeout(PATIENCE, waiting)
        .await
        .expect("materialize returns once the job is cancelled")
        .unwrap()
        .expect_err("cancelled");
    assert_eq!(err.kind(), ErrorKind::Cancelled, "{err}");
    assert!(runs.lock().unwrap().is_empty());

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let worker = {
        let builder = worker(&fs, "assets", 2, "until");
        tokio::spawn(async move {
            builder
                .run_until(async {
                    let _ = stop_rx.await;
                })
                .await
        })
    };
    assert_eq!(output::<i64>(&fs, "later", queue_run(2)).await, 2);
    stop_tx.send(()).unwrap();
    let report = tokio::time::timeout(PATIENCE, worker)
        .await
        .expect("run_until returns after its signal")
        .unwrap()
        .expect("a clean shutdown");
    assert_eq!(report.abandoned, 0);
}

/// A worker shut down while a job runs, past its grace period, hands the job back to the queue
/// (the interrupted attempt spent, as with any interrupted attempt) instead of cancelling it,
/// so another worker finishes it.
async fn worker_shutdown_past_grace_hands_the_running_job_back(db: &TestDb) {
    let started = Counter::default();
    let asset = {
        let started = started.clone();
        Asset::new("long")
            .partitioned_by(numbered())
            .retry(RetryPolicy::attempts(3).backoff(Duration::from_millis(20)))
            .execute(move |ctx| {
                let started = started.clone();
                async move {
                    started.bump();
                    if ctx.attempt() == 1 {
                        // Outlives any grace period: only the shutdown stops it.
                        ctx.cancellation().cancelled().await;
                    }
                    Ok::<u32, Error>(ctx.attempt())
                }
            })
    };
    let fs = connect(db, vec![asset]).await;
    let first = start_worker(&fs, "leaving").await;
    let job = scheduled(&fs, "long", queue_run(1)).await;
    wait_for("the first attempt to start", || async {
        (started.get() == 1).then_some(())
    })
    .await;
    first.shutdown(Duration::from_millis(100)).await;
    let r = row(&fs, &job).await;
    assert!(
        !r.state.is_final(),
        "a job interrupted by a worker's shutdown must go back to the queue, not end {}: {r:?}",
        r.state
    );
    assert!(matches!(
        job_status(&fs, &job).await,
        JobStatus::Pending { .. }
    ));
    let second = start_worker(&fs, "arriving").await;
    assert_eq!(completed::<u32>(wait_finished(&fs, &job).await), 2);
    assert_eq!(row(&fs, &job).await.node.as_deref(), Some(second.node()));
    second.shutdown(Duration::from_secs(5)).await;
}

/// The progress callback's calls: (partition, done).
type ProgressLog = Arc<Mutex<Vec<(i64, usize)>>>;

fn progress_of(log: &ProgressLog) -> impl Fn(&flowstone::Progress<'_>) + Send + Sync + 'static {
    let log = Arc::clone(log);
    move |p| log.lock().unwrap().push((int(p.partition), p.done))
}

fn assert_once_per_partition(log: &ProgressLog, total: usize) {
    let log = std::mem::take(&mut *log.lock().unwrap());
    assert_eq!(log.len(), total, "on_progress once per partition: {log:?}");
    let partitions: BTreeSet<i64> = log.iter().map(|(p, _)| *p).collect();
    assert_eq!(partitions.len(), total, "{log:?}");
    let done: BTreeSet<usize> = log.iter().map(|(_, d)| *d).collect();
    assert_eq!(done, (1..=total).collect(), "{log:?}");
}

async fn batch_counts(fs: &FlowStone, batch: &str) -> HashMap<JobState, i64> {
    fs.queue()
        .unwrap()
        .count_batch(batch)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

/// A backfill through the queue with a worker in this process: the report counts right,
/// `on_progress` is called once per partition, `retry_failed` reruns only the failures and a
/// further backfill skips everything.
async fn backfill_through_the_queue(db: &TestDb) {
    let runs = Runs::default();
    let broken = Arc::new(AtomicBool::new(true));
    let asset = {
        let runs = Arc::clone(&runs);
        let broken = Arc::clone(&broken);
        Asset::new("parts")
            .partitioned_by(numbered())
            .execute(move |ctx| {
                let runs = Arc::clone(&runs);
                let broken = broken.load(Ordering::SeqCst);
                async move {
                    let i = int(ctx.partition());
                    runs.lock().unwrap().push(i);
                    if broken && i % 5 == 0 {
                        return Err(Error::permanent(format!("partition {i} is bad")));
                    }
                    Ok::<i64, Error>(i * 3)
                }
            })
    };
    let fs = connect(db, vec![asset]).await;
    let worker = start_worker(&fs, "backfill").await;
    let progress = ProgressLog::default();
    let backfill = || {
        Backfill::partitions((0..20).map(Partition::Int))
            .executor(Strategy::Queue)
            .on_progress(progress_of(&progress))
    };

    let first = fs.backfill("parts", backfill()).await.unwrap();
    assert_eq!(
        (
            first.total,
            first.succeeded,
            first.failed,
            first.skipped,
            first.cancelled
        ),
        (20, 16, 4, 0, 0)
    );
    let failed: BTreeSet<i64> = first.failures().map(|(p, _)| int(p)).collect();
    assert_eq!(failed, BTreeSet::from([0, 5, 10, 15]));
    for (p, err) in first.failures() {
        assert!(
            err.to_string()
                .contains(&format!("partition {} is bad", int(p))),
            "{err}"
        );
    }
    assert_once_per_partition(&progress, 20);
    assert_eq!(runs.lock().unwrap().len(), 20);
    let batch = first.backfill_id.to_string();
    assert_eq!(
        batch_counts(&fs, &batch).await,
        HashMap::from([(JobState::Completed, 16), (JobState::Discarded, 4)])
    );

    broken.store(false, Ordering::SeqCst);
    runs.lock().unwrap().clear();
    let retried = fs
        .backfill("parts", backfill().retry_failed(true))
        .await
        .unwrap();
    assert_eq!(
        (
            retried.succeeded,
            retried.failed,
            retried.skipped,
            retried.cancelled
        ),
        (4, 0, 16, 0)
    );
    assert_once_per_partition(&progress, 20);
    let rerun: BTreeSet<i64> = runs.lock().unwrap().iter().copied().collect();
    assert_eq!(
        rerun,
        BTreeSet::from([0, 5, 10, 15]),
        "only the failures reran"
    );
    assert_eq!(runs.lock().unwrap().len(), 4);
    assert_eq!(
        batch_counts(&fs, &retried.backfill_id.to_string()).await,
        HashMap::from([(JobState::Completed, 4)])
    );

    runs.lock().unwrap().clear();
    let again = fs.backfill("parts", backfill()).await.unwrap();
    assert_eq!(
        (
            again.succeeded,
            again.failed,
            again.skipped,
            again.cancelled
        ),
        (0, 0, 20, 0)
    );
    assert!(
        again
            .outcomes
            .iter()
            .all(|r| matches!(r.outcome, PartitionOutcome::Skipped))
    );
    assert_once_per_partition(&progress, 20);
    assert!(runs.lock().unwrap().is_empty());
    assert!(
        batch_counts(&fs, &again.backfill_id.to_string())
            .await
            .is_empty()
    );
    for i in 0..20 {
        assert_eq!(
            fs.load::<i64>("parts", Partition::Int(i)).await.unwrap(),
            i * 3
        );
    }
    worker.shutdown(Duration::from_secs(5)).await;
}

/// A backfill of a downstream asset whose upstream partitions do not exist yet: its jobs snooze
/// (no attempt spent) while a backfill of the upstream runs, then all succeed.
async fn backfill_waits_for_an_upstream_backfill(db: &TestDb) {
    let runs = Runs::default();
    let fs = connect(
        db,
        vec![
            Asset::new("raw")
                .partitioned_by(flowstone::StaticPartitions::new(
                    (0..30).map(|i| i.to_string()),
                ))
                .execute(|ctx| async move {
                    let i: i64 = ctx.partition().to_string().parse().unwrap();
                    Ok::<i64, Error>(i)
                }),
            {
                let runs = Arc::clone(&runs);
                Asset::new("cooked")
                    .depends_on(["raw"])
                    .partitioned_by(flowstone::StaticPartitions::new(
                        (0..30).map(|i| i.to_string()),
                    ))
                    .execute(move |ctx| {
                        let runs = Arc::clone(&runs);
                        async move {
                            let raw: i64 = ctx.dep("raw")?;
                            runs.lock().unwrap().push(raw);
                            Ok::<i64, Error>(raw * 10)
                        }
                    })
            },
        ],
    )
    .await;
    let worker = worker(&fs, "assets", 4, "chain")
        .dependency_snoozes(100, Duration::from_millis(50))
        .start()
        .await
        .unwrap();
    let cooked = {
        let fs = fs.clone();
        tokio::spawn(async move {
            fs.backfill("cooked", Backfill::all().executor(Strategy::Queue))
                .await
        })
    };
    let queue = fs.queue().unwrap();
    wait_for("the downstream jobs to snooze", || async {
        let snoozed = queue
            .list(&flowstone_queue::JobFilter {
                limit: Some(1000),
                ..Default::default()
            })
            .await
            .unwrap()
            .iter()
            .filter(|r| r.snoozed > 0)
            .count();
        (snoozed >= 10).then_some(())
    })
    .await;
    let raw = fs
        .backfill("raw", Backfill::all().executor(Strategy::Queue))
        .await
        .unwrap();
    assert_eq!((raw.succeeded, raw.failed), (30, 0));
    let cooked = tokio::time::timeout(PATIENCE, cooked)
        .await
        .expect("the downstream backfill finishes")
        .unwrap()
        .unwrap();
    assert_eq!((cooked.total, cooked.succeeded, cooked.failed), (30, 30, 0));
    let rows = queue
        .list_batch(&cooked.backfill_id.to_string(), None, Some(100))
        .await
        .unwrap();
    assert_eq!(rows.len(), 30);
    assert!(
        rows.iter()
            .all(|r| r.attempt - r.snoozed == 1 && r.errors.is_empty()),
        "{rows:?}"
    );
    assert!(rows.iter().any(|r| r.snoozed > 0));
    assert_eq!(runs.lock().unwrap().len(), 30);
    worker.shutdown(Duration::from_secs(5)).await;
}

/// Cancelling a backfill through the queue mid-way cancels its pending rows: none is left
/// executing or waiting, and the report counts the cancelled partitions.
async fn cancelling_a_backfill_cancels_its_pending_rows(db: &TestDb) {
    let runs = Runs::default();
    let asset = {
        let runs = Arc::clone(&runs);
        Asset::new("slow_parts")
            .partitioned_by(numbered())
            .execute(move |ctx| {
                let runs = Arc::clone(&runs);
                async move {
                    let i = int(ctx.partition());
                    runs.lock().unwrap().push(i);
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    Ok::<i64, Error>(i)
                }
            })
    };
    let fs = connect(db, vec![asset]).await;
    let worker = worker(&fs, "assets", 2, "cancel-backfill")
        .start()
        .await
        .unwrap();
    let token = CancellationToken::new();
    let progress = ProgressLog::default();
    let report = {
        let token = token.clone();
        let log = progress_of(&progress);
        fs.backfill(
            "slow_parts",
            Backfill::partitions((0..100).map(Partition::Int))
                .executor(Strategy::Queue)
                .cancel_on(token.clone())
                .on_progress(move |p| {
                    log(p);
                    if p.done >= 3 {
                        token.cancel();
                    }
                }),
        )
        .await
        .unwrap()
    };
    assert!(token.is_cancelled());
    assert_eq!(report.total, 100);
    assert!(report.succeeded >= 3, "{report:?}");
    assert!(report.cancelled > 0, "{report:?}");
    assert_eq!(report.failed, 0, "{report:?}");
    assert_eq!(report.succeeded + report.cancelled, 100);
    assert_once_per_partition(&progress, 100);
    let counts = batch_counts(&fs, &report.backfill_id.to_string()).await;
    for state in [
        JobState::Available,
        JobState::Scheduled,
        JobState::Executing,
        JobState::Retryable,
    ] {
        assert!(!counts.contains_key(&state), "{counts:?}");
    }
    assert_eq!(
        counts.get(&JobState::Completed).copied().unwrap_or(0),
        report.succeeded as i64
    );
    assert_eq!(
        counts.get(&JobState::Cancelled).copied().unwrap_or(0),
        report.cancelled as i64
    );
    assert!(runs.lock().unwrap().len() < 100);
    worker.shutdown(Duration::from_secs(5)).await;
}

flowstone_queue::both_engines!(
    scheduled_job_runs_when_due_and_a_cancelled_one_never_runs,
    execute_returns_the_output_from_an_in_process_worker,
    missing_dependency_snoozes_then_succeeds_without_spending_an_attempt,
    missing_dependency_fails_after_the_snooze_limit,
    timeouts_are_retried_then_fail,
    run_options_reach_the_queue_row,
    retryable_failures_are_retried_until_success,
    an_old_worker_leaves_an_asset_it_lacks_to_a_worker_that_has_it,
    overlapping_backfills_run_each_partition_once,
    a_job_no_live_worker_can_run_is_discarded_after_the_limit,
    permanent_error_discards_at_once,
    auto_picks_the_queue_with_a_database_and_sync_without,
    cancelling_a_running_job_from_another_instance_stops_it,
    a_waiting_materialize_sees_a_cancel_and_run_until_stops_cleanly,
    worker_shutdown_past_grace_hands_the_running_job_back,
    backfill_through_the_queue,
    backfill_waits_for_an_upstream_backfill,
    cancelling_a_backfill_cancels_its_pending_rows,
    a_multi_asset_backfill_is_released_by_the_workers,
);

/// Days of January and February 2024 (one of them failing for good) and the months over them.
fn days_and_months(failing: chrono::NaiveDate) -> Vec<Asset> {
    vec![
        Asset::new("day")
            .partitioned_by(flowstone::Daily::from("2024-01-01").to("2024-02-29"))
            .execute(move |ctx| async move {
                let day = ctx.partition().date()?;
                if day == failing {
                    return Err(Error::permanent("the source has no such day"));
                }
                Ok::<i64, Error>(1)
            }),
        Asset::new("month")
            .partitioned_by(flowstone::Monthly::from("2024-01").to("2024-02"))
            .depends_on_mapped("day", flowstone::PartitionMapping::time_window())
            .execute(|ctx| async move {
                let days = ctx.deps::<i64>("day")?;
                Ok::<i64, Error>(days.iter().map(|(_, n)| n).sum())
            }),
    ]
}

async fn a_multi_asset_backfill_is_released_by_the_workers(db: &TestDb) {
    let failing = chrono::NaiveDate::from_ymd_opt(2024, 2, 10).unwrap();
    let fs = connect(db, days_and_months(failing)).await;
    let queue = fs.queue().unwrap();
    // The backfilling process goes away once its rows are in: the workers release the months.
    let backfill = {
        let fs = fs.clone();
        tokio::spawn(async move {
            fs.run_backfill(Backfill::assets("day+").executor(Strategy::Queue))
                .await
        })
    };
    let inserted = |n: usize| {
        let queue = queue.clone();
        async move {
            let rows = queue
                .list(&flowstone_queue::JobFilter::default())
                .await
                .unwrap();
            (rows.len() == n).then_some(rows)
        }
    };
    let rows = wait_for("the plan's 62 rows are in", || inserted(31 + 29 + 2)).await;
    backfill.abort();
    let months: Vec<i64> = rows
        .iter()
        .filter(|r| r.meta.get("asset").and_then(|a| a.as_str()) == Some("month"))
        .map(|r| r.id)
        .collect();
    assert_eq!(months.len(), 2);
    for id in &months {
        assert_eq!(
            queue.get(*id).await.unwrap().state,
            JobState::Scheduled,
            "a month waits for its days"
        );
    }
    let worker = start_worker(&fs, "release").await;
    let finished = |id: i64| {
        let queue = queue.clone();
        async move { queue.get(id).await.unwrap().state.is_final().then_some(()) }
    };
    for id in &months {
        wait_for("a month finishes", || finished(*id)).await;
    }
    worker.shutdown(Duration::from_secs(10)).await;
    let january = queue.get(months[0]).await.unwrap();
    let february = queue.get(months[1]).await.unwrap();
    assert_eq!(january.state, JobState::Completed);
    let jan: i64 = fs
        .load("month", Partition::ymd(2024, 1, 1).unwrap())
        .await
        .unwrap();
    assert_eq!(jan, 31, "January read its 31 days");
    assert_eq!(february.state, JobState::Discarded);
    assert_eq!(february.attempt, 0, "February never ran");
    assert!(
        february.errors[0]
            .error
            .starts_with(flowstone_queue::UPSTREAM_FAILED),
        "{:?}",
        february.errors
    );

    // A backfill that follows to the end reports the same, with the outcome per partition.
    let again = connect(db, days_and_months(failing)).await;
    let worker = start_worker(&again, "follow").await;
    let report = again
        .run_backfill(
            Backfill::assets("day+")
                .executor(Strategy::Queue)
                .retry_failed(true),
        )
        .await
        .unwrap();
    worker.shutdown(Duration::from_secs(10)).await;
    // The failing day fails again; its month is not attempted; the rest was done.
    assert_eq!(report.failed, 1, "{:?}", report.outcomes);
    assert_eq!(report.upstream_failed, 1, "{:?}", report.outcomes);
    assert_eq!(report.skipped, 62 - 2);
    let feb = report
        .outcomes
        .iter()
        .find(|r| r.asset == "month" && r.partition == Partition::ymd(2024, 2, 1).unwrap())
        .unwrap();
    let PartitionOutcome::UpstreamFailed(err) = &feb.outcome else {
        panic!("{:?}", feb.outcome)
    };
    assert_eq!(err.kind(), ErrorKind::UpstreamFailed);
}
