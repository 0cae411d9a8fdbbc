//! Materializing assets through the API: dependencies, records, lineage, errors, timeouts,
//! upstream runs, resources and hooks.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use flowstone::hook::{Hook, Materializing, Next, stacks};
use flowstone::store::MaterializationStatus;
use flowstone::{
    Asset, Daily, Direction, Error, ErrorKind, FlowStone, Output, Partition, PartitionsDefinition,
    RetryPolicy, Run,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use common::outcome::{
    assert_error, assert_error_in, entry, failed_record, failure, latest_record, lineage,
    materialized, output,
};
use common::wait::settled_record;
use common::{
    Counter, RunLog, Shared, all_records, always_failing, chain, constant, counted, day, flaky,
    graph, logged, records,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Report {
    events: usize,
    total: u64,
}

fn raw_events() -> Asset {
    Asset::new("raw_events")
        .partitioned_by(Daily::from("2024-01-01").to("2024-01-31"))
        .execute(|ctx| async move {
            let day = ctx.partition().date()?;
            let n = u64::from(chrono::Datelike::day(&day));
            Ok::<_, Error>(vec![n, n * 10])
        })
}

fn daily_report() -> Asset {
    Asset::new("daily_report")
        .depends_on(["raw_events"])
        .partitioned_by(Daily::from("2024-01-01").to("2024-01-31"))
        .execute(|ctx| async move {
            let events: Vec<u64> = ctx.dep("raw_events")?;
            Ok::<_, Error>(Report {
                events: events.len(),
                total: events.iter().sum(),
            })
        })
}

/// `daily_report` of January 2024, reading that day's `raw_events`: [day, day * 10].
fn report_graph() -> FlowStone {
    graph([raw_events(), daily_report()])
}

// ---------------------------------------------------------------------------------------------
// Dependencies
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn dependency_present_output_is_returned_and_loadable() {
    let fs = report_graph();
    let d = day(2024, 1, 5);
    materialized(&fs, "raw_events", Run::partition(d)).await;

    let report: Report = output(&fs, "daily_report", Run::partition(d)).await;
    assert_eq!(
        report,
        Report {
            events: 2,
            total: 55
        }
    );

    let loaded: Report = fs.load("daily_report", d).await.unwrap();
    assert_eq!(loaded, report);
    let raw: Vec<u64> = fs.load("raw_events", d).await.unwrap();
    assert_eq!(raw, vec![5, 50]);

    // Another partition was never materialized: loading it is a NotFound naming the asset.
    let err = fs
        .load::<Report>("daily_report", day(2024, 1, 6))
        .await
        .unwrap_err();
    assert_error(&err, ErrorKind::NotFound, &["daily_report"]);
}

#[tokio::test]
async fn missing_dependency_is_dependency_not_ready_naming_it() {
    let fs = report_graph();
    let err = failure(&fs, "daily_report", Run::partition(day(2024, 1, 5))).await;
    assert_error(&err, ErrorKind::DependencyNotReady, &["raw_events"]);
    assert_eq!(err.missing_dependencies(), ["raw_events".to_owned()]);
    assert_eq!(err.asset(), Some("daily_report"));
    assert_eq!(err.partition(), Some(&Partition::from(day(2024, 1, 5))));
    // The partition of another day being materialized does not count.
    materialized(&fs, "raw_events", Run::partition(day(2024, 1, 4))).await;
    let err = failure(&fs, "daily_report", Run::partition(day(2024, 1, 5))).await;
    assert_eq!(err.kind(), ErrorKind::DependencyNotReady, "{err}");
}

#[tokio::test]
async fn missing_dependency_lists_every_missing_asset() {
    let log = RunLog::default();
    let fs = graph([
        logged("left", &[], &log),
        logged("middle", &[], &log),
        logged("right", &[], &log),
        logged("joined", &["left", "middle", "right"], &log),
    ]);
    materialized(&fs, "middle", Run::unpartitioned()).await;
    let err = failure(&fs, "joined", Run::unpartitioned()).await;
    assert_error(&err, ErrorKind::DependencyNotReady, &["left", "right"]);
    assert_eq!(
        err.missing_dependencies(),
        ["left".to_owned(), "right".to_owned()]
    );
    assert_eq!(log.count("joined"), 0, "the asset must not run");
}

#[tokio::test]
async fn missing_optional_dependency_arrives_as_none() {
    let seen: Shared<(Option<u32>, Option<u32>)> = Arc::default();
    let seen_in_asset = Arc::clone(&seen);
    let fs = graph([
        constant("enrichment", 7u32),
        Asset::new("main")
            .depends_on(["enrichment"])
            .optional(["enrichment"])
            .execute(move |ctx| {
                let seen = Arc::clone(&seen_in_asset);
                async move {
                    let as_option: Option<u32> = ctx.dep("enrichment")?;
                    let optional: Option<u32> = ctx.optional_dep("enrichment")?;
                    seen.lock().unwrap().push((as_option, optional));
                    Ok::<_, Error>(as_option.unwrap_or(0))
                }
            }),
    ]);

    let out: u32 = output(&fs, "main", Run::unpartitioned()).await;
    assert_eq!(out, 0);
    assert_eq!(seen.lock().unwrap().as_slice(), &[(None, None)]);

    // Once it exists, both reads see it.
    materialized(&fs, "enrichment", Run::unpartitioned()).await;
    let out: u32 = output(&fs, "main", Run::unpartitioned()).await;
    assert_eq!(out, 7);
    assert_eq!(seen.lock().unwrap()[1], (Some(7), Some(7)));
}

#[tokio::test]
async fn reading_a_missing_optional_dependency_as_a_plain_type_is_an_error() {
    let fs = graph([
        constant("extra", 1u32),
        Asset::new("main")
            .depends_on(["extra"])
            .optional(["extra"])
            .execute(|ctx| async move {
                let value: u32 = ctx.dep("extra")?;
                Ok::<_, Error>(value)
            }),
    ]);
    let err = failure(&fs, "main", Run::unpartitioned()).await;
    assert_error(&err, ErrorKind::DependencyNotReady, &["extra"]);
}

// ---------------------------------------------------------------------------------------------
// Records and lineage
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn success_is_recorded_with_a_duration() {
    let fs = report_graph();
    let d = day(2024, 1, 3);
    materialized(&fs, "raw_events", Run::partition(d).metadata("who", "test")).await;
    let recs = records(&fs, "raw_events").await;
    assert_eq!(recs.len(), 1, "{recs:?}");
    let rec = &recs[0];
    assert_eq!(rec.status, MaterializationStatus::Success);
    assert_eq!(rec.asset, "raw_events");
    assert_eq!(rec.partition, Partition::from(d));
    assert!(rec.duration.is_some(), "{rec:?}");
    assert!(rec.finished_at.is_some(), "{rec:?}");
    assert!(rec.finished_at.unwrap() >= rec.started_at, "{rec:?}");
    assert!(rec.error.is_none(), "{rec:?}");
    assert_eq!(rec.attempt, 1);
    assert_eq!(rec.executor, "sync");
    assert_eq!(rec.metadata.get("who"), Some(&json!("test")));
}

#[tokio::test]
async fn lineage_upstream_is_exactly_the_dependency_run_and_downstream_has_the_target() {
    let fs = report_graph();
    let d = day(2024, 1, 9);
    materialized(&fs, "raw_events", Run::partition(d)).await;
    // A second run of the same dependency for another day must not show up.
    materialized(&fs, "raw_events", Run::partition(day(2024, 1, 10))).await;
    materialized(&fs, "daily_report", Run::partition(d)).await;

    let dep_rec = records(&fs, "raw_events")
        .await
        .into_iter()
        .find(|r| r.partition == Partition::from(d))
        .unwrap();
    let target_rec = latest_record(&fs, "daily_report").await;
    assert_ne!(
        dep_rec.run_id, target_rec.run_id,
        "separate calls, separate runs"
    );

    let upstream = lineage(&fs, "daily_report", d, Direction::Upstream, 5).await;
    assert_eq!(
        upstream,
        vec![entry("raw_events", dep_rec.partition, dep_rec.run_id, 1)]
    );

    let downstream = lineage(&fs, "raw_events", d, Direction::Downstream, 5).await;
    let target = entry("daily_report", d, target_rec.run_id, 1);
    assert!(downstream.contains(&target), "{downstream:?}");
    // Nothing consumed the other day's raw events.
    let other = lineage(
        &fs,
        "raw_events",
        day(2024, 1, 10),
        Direction::Downstream,
        5,
    )
    .await;
    assert!(other.is_empty(), "{other:?}");
}

#[tokio::test]
async fn lineage_depth_and_impact_over_a_three_level_chain() {
    let fs = chain(&RunLog::default());
    materialized(&fs, "c", Run::unpartitioned().with_upstream(true)).await;
    let run_of = |asset: &'static str| {
        let fs = fs.clone();
        async move { latest_record(&fs, asset).await.run_id }
    };
    let (ra, rb, rc) = (run_of("a").await, run_of("b").await, run_of("c").await);
    let at = |asset: &str, run_id, depth| entry(asset, Partition::Unpartitioned, run_id, depth);

    let walks = [
        ("c", Direction::Upstream, 1, vec![at("b", rb, 1)]),
        (
            "c",
            Direction::Upstream,
            2,
            vec![at("b", rb, 1), at("a", ra, 2)],
        ),
        ("a", Direction::Downstream, 1, vec![at("b", rb, 1)]),
    ];
    for (asset, direction, depth, expected) in walks {
        let found = lineage(&fs, asset, Partition::Unpartitioned, direction, depth).await;
        assert_eq!(
            found, expected,
            "{direction:?} of '{asset}' to depth {depth}"
        );
    }
    let down2 = lineage(&fs, "a", Partition::Unpartitioned, Direction::Downstream, 2).await;
    assert_eq!(down2.len(), 2, "{down2:?}");
    assert!(down2.contains(&at("c", rc, 2)), "{down2:?}");

    let impact = fs.impact("a").await.unwrap();
    let impacted: Vec<(&str, u32)> = impact
        .iter()
        .map(|e| (e.key.asset.as_str(), e.depth))
        .collect();
    assert_eq!(impacted, vec![("b", 1), ("c", 2)]);
    assert!(fs.impact("c").await.unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn unknown_asset_is_not_found_with_a_suggestion() {
    let fs = report_graph();
    let err = failure(&fs, "daly_report", Run::partition(day(2024, 1, 1))).await;
    assert_error(
        &err,
        ErrorKind::AssetNotFound,
        &["did you mean 'daily_report'", "daly_report"],
    );

    // Far from every name: no suggestion, still names the input.
    let err = failure(&fs, "zzz", Run::unpartitioned()).await;
    assert_error(&err, ErrorKind::AssetNotFound, &["'zzz'"]);
    assert!(!err.to_string().contains("did you mean"), "{err}");
    // The read side agrees.
    let err = fs.load::<Report>("daly_report", day(2024, 1, 1)).await;
    assert_eq!(err.unwrap_err().kind(), ErrorKind::AssetNotFound);
}

#[tokio::test]
async fn a_panicking_asset_is_a_failed_record_and_the_next_run_works() {
    let panic_now = Arc::new(AtomicBool::new(true));
    let flag = Arc::clone(&panic_now);
    let fs = graph([
        Asset::new("fragile").execute(move |_ctx| {
            let flag = Arc::clone(&flag);
            async move {
                if flag.load(Ordering::SeqCst) {
                    panic!("kaboom at row 42");
                }
                Ok::<_, Error>(1u8)
            }
        }),
        constant("steady", 2u8),
    ]);

    let err = failure(&fs, "fragile", Run::unpartitioned()).await;
    assert_error(&err, ErrorKind::Panicked, &["kaboom at row 42"]);

    assert_eq!(records(&fs, "fragile").await.len(), 1);
    let stored = failed_record(&fs, "fragile", ErrorKind::Panicked).await;
    assert!(stored.message.contains("kaboom at row 42"), "{stored:?}");

    // The process goes on: another asset and the same one both materialize.
    let two: u8 = output(&fs, "steady", Run::unpartitioned()).await;
    assert_eq!(two, 2);
    panic_now.store(false, Ordering::SeqCst);
    let one: u8 = output(&fs, "fragile", Run::unpartitioned()).await;
    assert_eq!(one, 1);
    assert_eq!(
        latest_record(&fs, "fragile").await.status,
        MaterializationStatus::Success
    );
}

#[tokio::test]
async fn a_panic_before_the_asset_future_is_built_is_caught_too() {
    // The closure's synchronous part (before `async move`) panics: still the asset's panic.
    let fs = graph([
        Asset::new("eager").execute(
            |ctx: flowstone::Context| -> std::future::Ready<Result<u8, Error>> {
                if ctx.attempt() > 0 {
                    panic!("panicked while preparing");
                }
                std::future::ready(Ok(0))
            },
        ),
        constant("steady", 2u8),
    ]);
    let err = failure(&fs, "eager", Run::unpartitioned()).await;
    assert_error(&err, ErrorKind::Panicked, &["panicked while preparing"]);
    failed_record(&fs, "eager", ErrorKind::Panicked).await;
    materialized(&fs, "steady", Run::unpartitioned()).await;
}

#[tokio::test]
async fn a_permanent_error_stays_non_retryable_through_the_api_and_the_record() {
    let calls = Counter::default();
    let strict = always_failing("strict", &calls, || {
        Error::permanent("column 'amount' is not a number")
    })
    // Retries are allowed, but a permanent error must not use them.
    .retry(RetryPolicy::attempts(3).backoff(Duration::from_millis(1)));
    let fs = graph([strict]);
    let err = failure(&fs, "strict", Run::unpartitioned()).await;
    assert_error(&err, ErrorKind::ExecutionFailed, &["column 'amount'"]);
    assert!(!err.retryable(), "{err:?}");
    assert_eq!(err.asset(), Some("strict"));
    assert_eq!(calls.get(), 1, "no retry of a permanent error");

    let stored = failed_record(&fs, "strict", ErrorKind::ExecutionFailed).await;
    assert!(!stored.retryable, "{stored:?}");
    assert!(!Error::from_record(stored).retryable());
}

#[tokio::test]
async fn a_retryable_error_is_retried_up_to_the_policy() {
    let calls = Counter::default();
    let fs =
        graph([flaky("flaky", &calls, 3)
            .retry(RetryPolicy::attempts(3).backoff(Duration::from_millis(1)))]);
    let attempt: u32 = output(&fs, "flaky", Run::unpartitioned()).await;
    assert_eq!(attempt, 3);
    assert_eq!(calls.get(), 3);
    let recs = records(&fs, "flaky").await;
    assert_eq!(recs.len(), 1, "one record per run, updated per attempt");
    assert_eq!(recs[0].status, MaterializationStatus::Success);
    assert_eq!(recs[0].attempt, 3);
}

/// An asset that sleeps 10 s, then sets `done`: only a timeout or a drop ends it sooner.
fn sleeper(name: &str, done: &Arc<AtomicBool>) -> Asset {
    let done = Arc::clone(done);
    Asset::new(name).execute(move |_ctx| {
        let done = Arc::clone(&done);
        async move {
            tokio::time::sleep(Duration::from_secs(10)).await;
            done.store(true, Ordering::SeqCst);
            Ok::<_, Error>(0u8)
        }
    })
}

/// Materializes a [`sleeper`] named `slow` (`asset_timeout` set on the asset, if any) with
/// `run` on Sync: it must fail with `ExecutionTimeout`, record so, and be stopped.
async fn assert_sync_timeout(asset_timeout: Option<Duration>, run: Run) {
    let done = Arc::new(AtomicBool::new(false));
    let slow = sleeper("slow", &done);
    let fs = graph([match asset_timeout {
        Some(timeout) => slow.timeout(timeout),
        None => slow,
    }]);
    let err = failure(&fs, "slow", run).await;
    assert_error(&err, ErrorKind::ExecutionTimeout, &["slow"]);
    failed_record(&fs, "slow", ErrorKind::ExecutionTimeout).await;
    assert!(!done.load(Ordering::SeqCst));
}

#[tokio::test]
async fn sync_timeout_from_the_asset_is_an_execution_timeout() {
    assert_sync_timeout(Some(Duration::from_millis(50)), Run::unpartitioned()).await;
}

#[tokio::test]
async fn sync_timeout_from_the_run_is_an_execution_timeout() {
    let run = Run::unpartitioned()
        .executor(flowstone::Strategy::Sync)
        .timeout(Duration::from_millis(50));
    assert_sync_timeout(None, run).await;
}

#[tokio::test]
async fn error_messages_name_the_input() {
    // A person's partition input, parsed by the asset's definition.
    let def = Daily::from("2024-01-01").to("2024-01-31");
    for input in ["2024-13-45", "yesterday", "2024-02-01"] {
        let err = def.parse(input).unwrap_err();
        assert_error_in(input, &err, ErrorKind::InvalidPartition, &[input]);
    }
    // A partitioned asset materialized without a partition names the asset and the form.
    let fs = report_graph();
    let err = failure(&fs, "raw_events", Run::unpartitioned()).await;
    assert_error(
        &err,
        ErrorKind::InvalidPartition,
        &["raw_events", "2024-01-05"],
    );
    // An id that is not one.
    let err = "not-a-uuid".parse::<flowstone::JobId>().unwrap_err();
    assert!(err.to_string().contains("not-a-uuid"), "{err}");
    // An executor name with a typo.
    let run = Run::partition(day(2024, 1, 1)).executor(flowstone::Strategy::named("snyc"));
    let err = failure(&fs, "raw_events", run).await;
    assert_error(&err, ErrorKind::Config, &["'snyc'", "did you mean 'sync'"]);
}

// ---------------------------------------------------------------------------------------------
// with_upstream
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn with_upstream_runs_the_missing_chain_in_order_once() {
    let log = RunLog::default();
    // Declared out of order: the run order must come from the dependencies.
    let fs = graph([
        logged("c", &["b"], &log),
        logged("a", &[], &log),
        logged("b", &["a"], &log),
    ]);
    let out: u64 = output(&fs, "c", Run::unpartitioned().with_upstream(true)).await;
    assert_eq!(out, 1);
    assert_eq!(log.entries(), ["a", "b", "c"]);
    // All three in one run.
    let runs: Vec<_> = all_records(&fs).await.iter().map(|r| r.run_id).collect();
    assert_eq!(runs.len(), 3);
    assert!(runs.iter().all(|r| *r == runs[0]), "{runs:?}");

    // The upstream is there now: a second call runs only the target.
    materialized(&fs, "c", Run::unpartitioned().with_upstream(true)).await;
    assert_eq!(log.entries(), ["a", "b", "c", "c"]);

    // Without with_upstream nothing upstream runs either.
    materialized(&fs, "c", Run::unpartitioned()).await;
    assert_eq!(log.entries(), ["a", "b", "c", "c", "c"]);
}

#[tokio::test]
async fn with_upstream_on_partitions_runs_the_partition_of_each_dependency() {
    let fs = report_graph();
    let d = day(2024, 1, 20);
    let report: Report = output(&fs, "daily_report", Run::partition(d).with_upstream(true)).await;
    assert_eq!(report.total, 220);
    let raw: Vec<u64> = fs.load("raw_events", d).await.unwrap();
    assert_eq!(raw, vec![20, 200]);
    assert_eq!(records(&fs, "raw_events").await.len(), 1);
}

#[tokio::test]
async fn with_upstream_stops_at_a_failing_upstream() {
    let log = RunLog::default();
    let fs = graph([
        Asset::new("a").execute(|_ctx| async { Err::<u8, _>(Error::permanent("source is down")) }),
        logged("b", &["a"], &log),
    ]);
    let err = failure(&fs, "b", Run::unpartitioned().with_upstream(true)).await;
    assert!(err.to_string().contains("source is down"), "{err}");
    assert_eq!(err.asset(), Some("a"));
    assert_eq!(log.count("b"), 0);
}

// ---------------------------------------------------------------------------------------------
// Resources
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Settings {
    region: String,
}

#[tokio::test]
async fn resources_are_handed_only_to_assets_that_declare_them() {
    let fs = FlowStone::builder()
        .resource_value(
            "settings",
            Settings {
                region: "eu".into(),
            },
        )
        .asset(
            Asset::new("declared")
                .requires(["settings"])
                .execute(|ctx| async move {
                    let settings = ctx.resource::<Settings>("settings").await?;
                    Ok::<_, Error>(settings.region.clone())
                }),
        )
        .asset(Asset::new("sneaky").execute(|ctx| async move {
            let settings = ctx.resource::<Settings>("settings").await?;
            Ok::<_, Error>(settings.region.clone())
        }))
        .build()
        .unwrap();

    let region: String = output(&fs, "declared", Run::unpartitioned()).await;
    assert_eq!(region, "eu");

    let err = failure(&fs, "sneaky", Run::unpartitioned()).await;
    assert_error(&err, ErrorKind::Resource, &["'settings'", "sneaky"]);
}

#[tokio::test]
async fn a_failing_resource_is_named_and_other_resources_keep_working() {
    let setups = Counter::default();
    let counter = setups.clone();
    let fs = FlowStone::builder()
        .resource("warehouse", move || {
            counter.bump();
            async { Err::<u32, _>("connection refused by db:5432") }
        })
        .resource_value("settings", 11u32)
        .asset(
            Asset::new("uses_warehouse")
                .requires(["warehouse"])
                .execute(|ctx| async move {
                    let conn = ctx.resource::<u32>("warehouse").await?;
                    Ok::<_, Error>(*conn)
                }),
        )
        .asset(
            Asset::new("uses_settings")
                .requires(["settings"])
                .execute(|ctx| async move {
                    let value = ctx.resource::<u32>("settings").await?;
                    Ok::<_, Error>(*value)
                }),
        )
        .build()
        .unwrap();

    let err = failure(&fs, "uses_warehouse", Run::unpartitioned()).await;
    assert_error(
        &err,
        ErrorKind::Resource,
        &["'warehouse'", "connection refused"],
    );
    failed_record(&fs, "uses_warehouse", ErrorKind::Resource).await;

    let value: u32 = output(&fs, "uses_settings", Run::unpartitioned()).await;
    assert_eq!(value, 11);

    // A failed setup is tried again on the next use.
    let again = failure(&fs, "uses_warehouse", Run::unpartitioned()).await;
    assert_eq!(again.kind(), ErrorKind::Resource);
    assert_eq!(setups.get(), 2);
}

// ---------------------------------------------------------------------------------------------
// Hooks
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Default)]
struct AuditHook {
    seen: Shared<(String, Option<serde_json::Value>)>,
}

#[async_trait]
impl Hook for AuditHook {
    async fn call(&self, cx: &mut Materializing<'_>, next: Next<'_>) -> flowstone::Result<Output> {
        self.seen
            .lock()
            .unwrap()
            .push((cx.asset.name().to_owned(), cx.hook_config("audit").cloned()));
        next.run(cx).await
    }
}

/// A graph of one asset, `ledger` (100), with an [`AuditHook`] registered as `audit`.
fn audited() -> (FlowStone, AuditHook) {
    let audit = AuditHook::default();
    let fs = FlowStone::builder()
        .hook("audit", audit.clone())
        .asset(constant("ledger", 100i64))
        .build()
        .unwrap();
    (fs, audit)
}

#[tokio::test]
async fn a_custom_hook_named_in_the_stack_receives_its_config() {
    let (fs, audit) = audited();
    let config = json!({"level": "strict", "notify": ["ops"]});
    let run = Run::unpartitioned()
        .hooks(["audit", "core"])
        .hook_config("audit", config.clone());
    let value: i64 = output(&fs, "ledger", run).await;
    assert_eq!(value, 100);
    assert_eq!(
        audit.seen.lock().unwrap().as_slice(),
        &[("ledger".to_owned(), Some(config))]
    );
    // The default stack does not include it.
    materialized(&fs, "ledger", Run::unpartitioned()).await;
    assert_eq!(audit.seen.lock().unwrap().len(), 1);
    // It composes with the built-in hooks.
    let stack = ["telemetry", "record", "audit", "lineage", "storage", "core"];
    materialized(&fs, "ledger", Run::unpartitioned().hooks(stack)).await;
    assert_eq!(audit.seen.lock().unwrap().len(), 2);
    assert_eq!(audit.seen.lock().unwrap()[1].1, None);
    assert_eq!(records(&fs, "ledger").await.len(), 2);
}

#[tokio::test]
async fn an_unknown_hook_name_is_a_config_error() {
    let (fs, audit) = audited();
    let err = failure(&fs, "ledger", Run::unpartitioned().hooks(["audti", "core"])).await;
    assert_error(
        &err,
        ErrorKind::Config,
        &["'audti'", "did you mean 'audit'"],
    );
    assert!(audit.seen.lock().unwrap().is_empty());
    assert!(records(&fs, "ledger").await.is_empty());
}

#[tokio::test]
async fn a_stack_not_ending_in_core_is_a_config_error() {
    let (fs, audit) = audited();
    for stack in [vec!["core", "audit"], vec!["audit"], vec![]] {
        let err = failure(&fs, "ledger", Run::unpartitioned().hooks(stack.clone())).await;
        assert_error_in(&format!("{stack:?}"), &err, ErrorKind::Config, &["core"]);
    }
    assert!(audit.seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn the_core_only_stack_writes_no_record() {
    let (fs, _) = audited();
    let run = Run::unpartitioned().hooks(stacks::CORE_ONLY.iter().copied());
    let value: i64 = output(&fs, "ledger", run).await;
    assert_eq!(value, 100);
    assert!(all_records(&fs).await.is_empty());
}

#[tokio::test]
async fn record_false_writes_no_record_but_stores_the_output() {
    let (fs, _) = audited();
    materialized(&fs, "ledger", Run::unpartitioned().record(false)).await;
    assert!(all_records(&fs).await.is_empty());
    let stored: i64 = fs.load("ledger", Partition::Unpartitioned).await.unwrap();
    assert_eq!(stored, 100);
}

// ---------------------------------------------------------------------------------------------
// More upstream, lineage and option behaviour
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn with_upstream_runs_independent_branches_in_parallel() {
    // left and right each wait until both have started: run one after the other, they would
    // wait forever (bounded here by a timeout that fails the test).
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let branch = |name: &'static str| {
        let barrier = Arc::clone(&barrier);
        Asset::new(name).depends_on(["root"]).execute(move |_ctx| {
            let barrier = Arc::clone(&barrier);
            async move {
                barrier.wait().await;
                Ok::<_, Error>(name.len())
            }
        })
    };
    let fs = graph([
        constant("root", 1usize),
        branch("left"),
        branch("right"),
        Asset::new("join")
            .depends_on(["left", "right"])
            .execute(|ctx| async move {
                let (l, r): (usize, usize) = (ctx.dep("left")?, ctx.dep("right")?);
                Ok::<_, Error>(l + r)
            }),
    ]);
    let out = tokio::time::timeout(
        Duration::from_secs(10),
        fs.materialize("join", Run::unpartitioned().with_upstream(true)),
    )
    .await
    .expect("independent branches did not run in parallel")
    .unwrap();
    assert_eq!(out.value::<usize>().unwrap(), 9);
}

#[tokio::test]
async fn schedule_refuses_with_upstream() {
    let (fs, _) = audited();
    let err = fs
        .schedule("ledger", Run::unpartitioned().with_upstream(true))
        .await
        .unwrap_err();
    assert_error(&err, ErrorKind::InvalidOptions, &["with_upstream"]);
}

#[tokio::test]
async fn lineage_keeps_the_run_that_was_consumed_after_the_dependency_reruns() {
    let fs = report_graph();
    let d = day(2024, 1, 9);
    materialized(&fs, "raw_events", Run::partition(d)).await;
    let consumed_run = latest_record(&fs, "raw_events").await.run_id;
    materialized(&fs, "daily_report", Run::partition(d)).await;
    // raw_events runs again; the report was not re-run, so it still descends from the first.
    materialized(&fs, "raw_events", Run::partition(d)).await;
    let newer_run = latest_record(&fs, "raw_events").await.run_id;
    assert_ne!(newer_run, consumed_run);

    let upstream = lineage(&fs, "daily_report", d, Direction::Upstream, 1).await;
    assert_eq!(upstream.len(), 1);
    assert_eq!(upstream[0].key.run_id, consumed_run);
    let downstream_of = |run_id| {
        let fs = fs.clone();
        async move {
            fs.lineage_of_run("raw_events", d, Some(run_id), Direction::Downstream, 3)
                .await
                .unwrap()
        }
    };
    let from_newer = downstream_of(newer_run).await;
    assert!(from_newer.is_empty(), "{from_newer:?}");
    let from_consumed = downstream_of(consumed_run).await;
    assert_eq!(from_consumed.len(), 1);
    assert_eq!(from_consumed[0].key.asset, "daily_report");
}

#[tokio::test(start_paused = true)]
async fn a_run_timeout_wins_over_the_asset_timeout() {
    // Virtual time: the asset needs 1 s; its own timeout is 50 ms, the run allows 5 s.
    let fs = graph([Asset::new("patient")
        .timeout(Duration::from_millis(50))
        .execute(|_ctx| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, Error>(1u8)
        })]);
    let err = failure(&fs, "patient", Run::unpartitioned()).await;
    assert_eq!(err.kind(), ErrorKind::ExecutionTimeout, "{err}");
    let run = Run::unpartitioned().timeout(Duration::from_secs(5));
    let out: u8 = output(&fs, "patient", run).await;
    assert_eq!(out, 1);
}

#[tokio::test]
async fn a_partition_outside_the_definition_is_refused_before_running() {
    let ran = Counter::default();
    let fs =
        graph(
            [counted("january", &ran).partitioned_by(Daily::from("2024-01-01").to("2024-01-31"))],
        );
    for partition in [
        Partition::from(day(2025, 6, 1)),
        Partition::from("not-a-date"),
        Partition::from(42),
    ] {
        let err = failure(&fs, "january", Run::partition(partition.clone())).await;
        let shown = partition.to_string();
        assert_error_in(&shown, &err, ErrorKind::InvalidPartition, &[&shown]);
    }
    assert_eq!(ran.get(), 0);
    assert!(all_records(&fs).await.is_empty());
}

#[tokio::test]
async fn an_unpartitioned_dependency_serves_every_partition() {
    let log = RunLog::default();
    let l = log.clone();
    let fs = graph([
        Asset::new("fx_rates").execute(move |_ctx| {
            let log = l.clone();
            async move {
                log.push("fx_rates");
                Ok::<_, Error>(1.25f64)
            }
        }),
        Asset::new("converted")
            .depends_on(["fx_rates"])
            .partitioned_by(Daily::from("2024-01-01").to("2024-01-31"))
            .execute(|ctx| async move {
                let rate: f64 = ctx.dep("fx_rates")?;
                Ok::<_, Error>(rate * 2.0)
            }),
    ]);
    // with_upstream materializes the unpartitioned dependency once, unpartitioned.
    for d in [day(2024, 1, 1), day(2024, 1, 2)] {
        let value: f64 = output(&fs, "converted", Run::partition(d).with_upstream(true)).await;
        assert_eq!(value, 2.5, "{d}");
    }
    assert_eq!(log.entries(), ["fx_rates"]);
    let fx = latest_record(&fs, "fx_rates").await;
    assert_eq!(fx.partition, Partition::Unpartitioned);
    let upstream = lineage(&fs, "converted", day(2024, 1, 2), Direction::Upstream, 1).await;
    assert_eq!(
        upstream,
        vec![entry("fx_rates", Partition::Unpartitioned, fx.run_id, 1)]
    );
    let downstream = lineage(
        &fs,
        "fx_rates",
        Partition::Unpartitioned,
        Direction::Downstream,
        1,
    )
    .await;
    assert_eq!(downstream.len(), 2, "{downstream:?}");
}

#[tokio::test]
async fn dropping_a_sync_materialization_leaves_no_running_record() {
    let done = Arc::new(AtomicBool::new(false));
    let fs = graph([sleeper("slow", &done)]);
    let dropped = tokio::time::timeout(
        Duration::from_millis(50),
        fs.materialize("slow", Run::unpartitioned()),
    )
    .await;
    assert!(dropped.is_err(), "the outer timeout fired");
    // Its record was written before the asset started; the record hook's drop guard writes the
    // final status on a task of its own.
    latest_record(&fs, "slow").await;
    let rec = settled_record(&fs, "slow").await;
    assert_eq!(rec.status, MaterializationStatus::Cancelled, "{rec:?}");
}
