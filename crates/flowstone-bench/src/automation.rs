//! Automation benchmarks: how fast an eager condition reacts to an upstream materialization,
//! how long one evaluation of a large partitioned graph takes (full, and after one event),
//! and how late a schedule's tick launches.

use std::time::{Duration, Instant};

use chrono::Utc;
use flowstone::automation::{AutomationCondition, TickQuery};
use flowstone::{
    Asset, Backfill, CustomPartitions, Daily, FlowStone, Partition, Run, Schedule, Strategy,
    TickPartition,
};
use flowstone_queue::testing::TestDb;
use serde_json::json;

use crate::queue_executor::engine_name;
use crate::report::{emit, median, percentile};

fn noop(name: &str) -> Asset {
    Asset::new(name).execute(|_ctx| async move { Ok::<u64, flowstone::Error>(1) })
}

async fn databases() -> Vec<TestDb> {
    let mut dbs = vec![TestDb::sqlite().await];
    if let Some(pg) = TestDb::postgres().await {
        dbs.push(pg);
    }
    dbs
}

/// Waits until a backfill launched by `by` exists beyond the `known` ones; returns when.
async fn launched(fs: &FlowStone, by: &str, known: usize) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let count = fs
            .backfills(known + 1)
            .await?
            .iter()
            .filter(|b| b.request.launched_by.as_deref() == Some(by))
            .count();
        if count > known {
            return Ok(Instant::now());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "nothing launched by {by} within 10 s"
        );
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
}

/// Waits until backfill `id` has ended.
async fn finished(fs: &FlowStone, id: flowstone::BackfillId) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !fs
        .backfill_status(id, None, 1)
        .await?
        .0
        .status
        .is_finished()
    {
        anyhow::ensure!(
            Instant::now() < deadline,
            "backfill {id} did not end within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// `automation_eager_reaction`: `up` materialized in this process (committed when
/// `materialize` returns) → the eager `down`'s backfill stored and starting; p50 and p99
/// over `samples` materializations, on SQLite and PostgreSQL.
pub async fn eager_reaction(samples: usize) -> anyhow::Result<()> {
    for test in databases().await {
        let engine = engine_name(test.engine());
        let fs = FlowStone::builder()
            .asset(noop("up").partitioned_by(Daily::from("2020-01-01").to("2030-12-31")))
            .asset(
                noop("down")
                    .depends_on(["up"])
                    .partitioned_by(Daily::from("2020-01-01").to("2030-12-31"))
                    .automation(AutomationCondition::eager().all_windows()),
            )
            .database(test.url())
            .connect()
            .await?;
        let automation = fs
            .automation()
            .executor(Strategy::Sync)
            .poll(Duration::from_secs(5))
            .start()?;
        // The first round sets the cursor; wait for it.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut sample = Vec::with_capacity(samples);
        let first = chrono::NaiveDate::from_ymd_opt(2021, 1, 1).expect("a date");
        for i in 0..samples {
            let day = first + chrono::TimeDelta::days(i as i64);
            fs.materialize("up", Run::partition(day).executor(Strategy::Sync))
                .await?;
            let committed = Instant::now();
            let at = launched(&fs, "condition:down", i).await?;
            sample.push((at - committed).as_secs_f64() * 1000.0);
        }
        automation.stop().await;
        emit(
            "automation_eager_reaction",
            json!({
                "engine": engine,
                "samples": samples,
                "p50_ms": round(median(&mut sample)),
                "p99_ms": round(percentile(&mut sample, 99.0)),
                "target_p50_ms": 20,
                "target_p99_ms": 100,
            }),
        );
        drop(fs);
        test.cleanup().await;
    }
    Ok(())
}

/// `automation_evaluation`: ten assets of `partitions` partitions each, a chain, every one
/// with a condition and every partition materialized (SQLite): one full evaluation (the
/// `on_missing` checks read every asset), and one incremental evaluation after a single new
/// upstream materialization (the eager path). Medians of `rounds`.
pub async fn evaluation(partitions: i64, rounds: usize) -> anyhow::Result<()> {
    let test = TestDb::sqlite().await;
    let ints = move || Ok((0..partitions).map(Partition::Int).collect());
    let mut builder = FlowStone::builder().asset(
        noop("a0")
            .partitioned_by(CustomPartitions::new(ints))
            .automation(AutomationCondition::on_missing()),
    );
    for i in 1..10 {
        let condition = if i % 2 == 0 {
            AutomationCondition::on_missing()
        } else {
            AutomationCondition::eager().all_windows()
        };
        builder = builder.asset(
            noop(&format!("a{i}"))
                .depends_on([format!("a{}", i - 1)])
                .partitioned_by(CustomPartitions::new(ints))
                .automation(condition),
        );
    }
    let fs = builder.database(test.url()).connect().await?;
    let setup = Instant::now();
    let report = fs
        .run_backfill(
            Backfill::all()
                .select("a0+")
                .executor(Strategy::Async)
                .max_concurrency(64),
        )
        .await?;
    anyhow::ensure!(
        report.succeeded == 10 * partitions as usize,
        "setup materialized {} of {}",
        report.succeeded,
        10 * partitions
    );
    let setup_secs = setup.elapsed().as_secs_f64();
    let automation = fs.automation().executor(Strategy::Sync);
    // Outside the events' lookback, so the incremental rounds see only the new event.
    automation.evaluate_once(Utc::now()).await;
    tokio::time::sleep(Duration::from_secs(11)).await;
    let mut full = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        let report = automation.evaluate_once(Utc::now()).await;
        full.push(started.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(
            report.ticks.is_empty(),
            "a full round launched or failed: {:?}",
            report.ticks
        );
    }
    let mut incremental = Vec::with_capacity(rounds);
    for i in 0..rounds {
        // A newer a2 materialization of one partition: a3 (eager) reacts.
        fs.materialize("a2", Run::partition(i as i64).executor(Strategy::Sync))
            .await?;
        let started = Instant::now();
        let report = automation.evaluate_incremental(Utc::now()).await;
        incremental.push(started.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(
            report.ticks.len() == 1,
            "one event should launch one partition of a3: {:?}",
            report.ticks
        );
        // The launch runs before the next event, so rounds are measured alone.
        for id in &report.ticks[0].backfills {
            finished(&fs, *id).await?;
        }
    }
    emit(
        "automation_evaluation",
        json!({
            "engine": "sqlite",
            "assets": 10,
            "partitions_per_asset": partitions,
            "setup_seconds": round(setup_secs),
            "full_ms_median": round(median(&mut full)),
            "incremental_ms_median": round(median(&mut incremental)),
            "target_full_ms": 500,
            "target_incremental_ms": 5,
        }),
    );
    drop(fs);
    test.cleanup().await;
    Ok(())
}

/// `automation_tick_latency`: a schedule firing every second; how long after each tick's
/// instant its backfill is stored, over `ticks` ticks, on SQLite and PostgreSQL.
pub async fn tick_latency(ticks: usize) -> anyhow::Result<()> {
    for test in databases().await {
        let engine = engine_name(test.engine());
        let fs = FlowStone::builder()
            .asset(noop("target"))
            .schedule(
                Schedule::new("every_second", "* * * * * *")
                    .target("target")
                    .partition(TickPartition::Fixed(Partition::Unpartitioned)),
            )
            .database(test.url())
            .connect()
            .await?;
        let automation = fs.automation().executor(Strategy::Sync).start()?;
        let deadline = Instant::now() + Duration::from_secs(ticks as u64 + 15);
        let mut launched = Vec::new();
        while launched.len() < ticks + 1 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
            launched = fs
                .ticks(&TickQuery::default().limit(ticks + 5))
                .await?
                .into_iter()
                .filter(|t| !t.backfills.is_empty())
                .collect();
        }
        automation.stop().await;
        let mut sample = Vec::new();
        for tick in &launched {
            if let Some(id) = tick.backfills.first() {
                let (record, _) = fs.backfill_status(*id, None, 1).await?;
                sample.push((record.created_at - tick.at).as_seconds_f64() * 1000.0);
            }
        }
        anyhow::ensure!(
            sample.len() >= ticks,
            "{engine}: {} ticks launched",
            sample.len()
        );
        emit(
            "automation_tick_latency",
            json!({
                "engine": engine,
                "ticks": sample.len(),
                "p50_ms": round(median(&mut sample)),
                "max_ms": round(percentile(&mut sample, 100.0)),
                "target_ms": 50,
            }),
        );
        drop(fs);
        test.cleanup().await;
    }
    Ok(())
}

/// All automation figures.
pub async fn run_all() -> anyhow::Result<()> {
    eager_reaction(50).await?;
    evaluation(10_000, 5).await?;
    tick_latency(10).await
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
