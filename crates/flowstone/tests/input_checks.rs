//! Limits checked where the input enters: concurrency and timeout options, asset names, the
//! composition of a backfill's options, and errors that name what they concern.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flowstone::limits::{MAX_ASSET_NAME_BYTES, MAX_CONCURRENCY};
use flowstone::store::MaterializationQuery;
use flowstone::{
    Asset, Backfill, Error, ErrorKind, FlowStone, Partition, Run, SerialExecutor, StaticPartitions,
    Strategy, SyncExecutor, TaskAsyncExecutor,
};

fn constant(name: &str) -> Asset {
    Asset::new(name).execute(|_ctx| async { Ok::<_, Error>(7u64) })
}

fn keyed(name: &str) -> Asset {
    Asset::new(name)
        .partitioned_by(StaticPartitions::new(["a", "b", "c"]))
        .execute(|ctx| async move { Ok::<_, Error>(ctx.partition().to_string()) })
}

#[track_caller]
fn assert_invalid_options(err: Error, option: &str) {
    assert_eq!(err.kind(), ErrorKind::InvalidOptions, "{err}");
    assert!(
        err.to_string().contains(option),
        "does not name {option}: {err}"
    );
}

#[test]
fn task_async_max_concurrency_zero_fails_build_naming_it() {
    let err = FlowStone::builder()
        .asset(constant("x"))
        .executor(TaskAsyncExecutor::new().max_concurrency(0))
        .build()
        .unwrap_err();
    assert_invalid_options(err, "max_concurrency");
}

#[tokio::test]
async fn task_async_huge_concurrency_is_clamped_and_runs() {
    let executor = TaskAsyncExecutor::new().max_concurrency(usize::MAX);
    assert_eq!(executor.concurrency_limit(), MAX_CONCURRENCY);
    let fs = FlowStone::builder()
        .asset(constant("x"))
        .executor(executor)
        .build()
        .unwrap();
    let out: u64 = fs
        .materialize("x", Run::unpartitioned().executor(Strategy::Async))
        .await
        .unwrap()
        .value()
        .unwrap();
    assert_eq!(out, 7);
}

#[tokio::test]
async fn backfill_max_concurrency_zero_is_refused_and_huge_is_clamped() {
    let fs = FlowStone::builder().asset(keyed("k")).build().unwrap();
    let err = fs
        .backfill("k", Backfill::all().max_concurrency(0))
        .await
        .unwrap_err();
    assert_invalid_options(err, "max_concurrency");
    let report = fs
        .backfill("k", Backfill::all().max_concurrency(usize::MAX))
        .await
        .unwrap();
    assert_eq!(report.succeeded, 3, "{report:?}");
}

#[tokio::test]
async fn a_zero_run_timeout_is_refused_by_every_executor() {
    let fs = FlowStone::builder().asset(constant("x")).build().unwrap();
    for strategy in [Strategy::Sync, Strategy::Async, Strategy::Serial] {
        let err = fs
            .materialize(
                "x",
                Run::unpartitioned()
                    .executor(strategy.clone())
                    .timeout(Duration::ZERO),
            )
            .await
            .unwrap_err();
        assert_invalid_options(err, "timeout");
    }
}

#[test]
fn a_zero_executor_timeout_fails_build_naming_the_executor() {
    let builders = [
        FlowStone::builder().executor(SyncExecutor::new().timeout(Duration::ZERO)),
        FlowStone::builder().executor(TaskAsyncExecutor::new().timeout(Duration::ZERO)),
        FlowStone::builder().executor(SerialExecutor::new().timeout(Duration::ZERO)),
    ];
    for (builder, name) in builders.into_iter().zip(["sync", "async", "serial"]) {
        let err = builder.asset(constant("x")).build().unwrap_err();
        assert_invalid_options(err.clone(), "timeout");
        assert!(err.to_string().contains(&format!("'{name}'")), "{err}");
    }
}

#[test]
fn a_zero_asset_timeout_fails_build_naming_the_asset() {
    let err = FlowStone::builder()
        .asset(constant("slow").timeout(Duration::ZERO))
        .build()
        .unwrap_err();
    assert_invalid_options(err.clone(), "timeout");
    assert!(err.to_string().contains("'slow'"), "{err}");
}

#[tokio::test]
async fn a_worker_queue_of_concurrency_zero_is_refused_naming_the_queue() {
    let fs = FlowStone::builder()
        .asset(constant("x"))
        .database("sqlite::memory:")
        .connect()
        .await
        .unwrap();
    let err = fs.worker().queue("assets", 0).start().await.unwrap_err();
    assert_invalid_options(err.clone(), "concurrency");
    assert!(err.to_string().contains("'assets'"), "{err}");
}

#[test]
fn asset_names_are_limited_at_build() {
    let long = "n".repeat(MAX_ASSET_NAME_BYTES + 1);
    for bad in [long.as_str(), "", "a\nb", "nul\0name"] {
        let err = FlowStone::builder()
            .asset(constant(bad))
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidGraph, "{bad:?}: {err}");
        assert!(err.to_string().contains("asset name"), "{err}");
    }
    let longest = "n".repeat(MAX_ASSET_NAME_BYTES);
    FlowStone::builder()
        .asset(constant(&longest))
        .build()
        .unwrap();
}

/// Which executor each record of `asset` names.
async fn executors_recorded(fs: &FlowStone, asset: &str) -> Vec<String> {
    fs.materializations(&MaterializationQuery::asset(asset))
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.executor)
        .collect()
}

#[tokio::test]
async fn run_options_after_executor_keep_the_executor() {
    let fs = FlowStone::builder().asset(keyed("k")).build().unwrap();
    let steps = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&steps);
    // on_step needs the Serial executor: had run_options dropped it, the backfill would fall
    // back to Auto (Sync) and refuse the option.
    let run = Run::default()
        .on_step(move |_| {
            seen.fetch_add(1, Ordering::Relaxed);
        })
        .metadata("origin", "test");
    let report = fs
        .backfill(
            "k",
            Backfill::all().executor(Strategy::Serial).run_options(run),
        )
        .await
        .unwrap();
    assert_eq!(report.succeeded, 3, "{report:?}");
    assert_eq!(
        steps.load(Ordering::Relaxed),
        6,
        "a Before and an After per partition"
    );
    assert_eq!(executors_recorded(&fs, "k").await, vec!["serial"; 3]);
}

#[tokio::test]
async fn executor_after_run_options_wins() {
    let fs = FlowStone::builder().asset(keyed("k")).build().unwrap();
    let report = fs
        .backfill(
            "k",
            Backfill::all()
                .run_options(Run::default().executor(Strategy::Sync))
                .executor(Strategy::Serial),
        )
        .await
        .unwrap();
    assert_eq!(report.succeeded, 3, "{report:?}");
    assert_eq!(executors_recorded(&fs, "k").await, vec!["serial"; 3]);
}

#[tokio::test]
async fn run_options_choosing_an_executor_replace_the_earlier_one() {
    let fs = FlowStone::builder().asset(keyed("k")).build().unwrap();
    fs.backfill(
        "k",
        Backfill::all()
            .executor(Strategy::Serial)
            .run_options(Run::default().executor(Strategy::Async)),
    )
    .await
    .unwrap();
    assert_eq!(executors_recorded(&fs, "k").await, vec!["async"; 3]);
}

#[tokio::test]
async fn an_asset_failure_names_the_asset_and_the_partition() {
    let fs = FlowStone::builder()
        .asset(
            Asset::new("fragile")
                .partitioned_by(StaticPartitions::new(["eu"]))
                .execute(|_ctx| async { Err::<u64, _>(Error::permanent("the source is gone")) }),
        )
        .build()
        .unwrap();
    let err = fs
        .materialize("fragile", Run::partition(Partition::from("eu")))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("the source is gone"), "{text}");
    assert!(text.contains("asset 'fragile'"), "{text}");
    assert!(text.contains("partition eu"), "{text}");
}

#[tokio::test]
async fn a_dependency_read_with_the_wrong_type_names_dependency_and_type() {
    let read: Arc<Mutex<Option<String>>> = Arc::default();
    let fs = FlowStone::builder()
        .asset(constant("count"))
        .asset(
            Asset::new("report")
                .depends_on(["count"])
                .execute(|ctx| async move {
                    let words: Vec<String> = ctx.dep("count")?;
                    Ok::<_, Error>(words.len())
                }),
        )
        .build()
        .unwrap();
    let err = fs
        .materialize("report", Run::unpartitioned().with_upstream(true))
        .await
        .unwrap_err();
    let text = err.to_string();
    *read.lock().unwrap() = Some(text.clone());
    assert!(text.contains("dependency 'count'"), "{text}");
    assert!(text.contains("asset 'report'"), "{text}");
    assert!(text.contains("Vec<alloc::string::String>"), "{text}");
    assert!(text.contains("u64"), "names the stored type: {text}");
}
