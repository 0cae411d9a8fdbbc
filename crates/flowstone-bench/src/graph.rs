//! Partitioned-graph benchmarks: resolving partition mappings, planning a multi-asset backfill,
//! and running one (in process, and through the queue).

use std::time::{Duration, Instant};

use chrono::NaiveDate;
use flowstone::{
    Asset, Backfill, Daily, FlowStone, Monthly, Partition, PartitionMapping, Registry, Strategy,
    TaskAsyncExecutor, Yearly,
};
use flowstone_queue::testing::TestDb;
use serde_json::json;

use crate::report::{emit, median};

fn noop(name: &str) -> Asset {
    Asset::new(name).execute(|_ctx| async move { Ok::<u64, flowstone::Error>(1) })
}

/// daily -> monthly -> yearly over `years` years from 2000.
fn calendar(years: i32) -> anyhow::Result<FlowStone> {
    let last = 2000 + years - 1;
    Ok(FlowStone::builder()
        .asset(noop("daily").partitioned_by(Daily::from("2000-01-01").to(format!("{last}-12-31"))))
        .asset(
            noop("monthly")
                .partitioned_by(Monthly::from("2000-01").to(format!("{last}-12")))
                .depends_on_mapped("daily", PartitionMapping::time_window()),
        )
        .asset(
            noop("yearly")
                .partitioned_by(Yearly::from("2000").to(last.to_string()))
                .depends_on_mapped("monthly", PartitionMapping::time_window()),
        )
        .build()?)
}

/// Median ns per call of `resolve` over `batches` batches of `per_batch` calls.
fn per_call(batches: usize, per_batch: usize, mut resolve: impl FnMut(usize) -> usize) -> f64 {
    let mut sample = Vec::with_capacity(batches);
    let mut sink = 0usize;
    for _ in 0..batches {
        let started = Instant::now();
        for i in 0..per_batch {
            sink = sink.wrapping_add(resolve(i));
        }
        sample.push(started.elapsed().as_nanos() as f64 / per_batch as f64);
    }
    std::hint::black_box(sink);
    median(&mut sample)
}

/// `mapping_resolution`: a month over its days and a year over its days through the registry
/// (median ns per resolution), and every day of ten years mapped to its month (median ms for
/// all of them).
pub fn mapping_resolution(batches: usize) -> anyhow::Result<()> {
    let fs = calendar(10)?;
    let days_fs = FlowStone::builder()
        .asset(noop("daily").partitioned_by(Daily::from("2000-01-01").to("2009-12-31")))
        .asset(
            noop("yearly")
                .partitioned_by(Yearly::from("2000").to("2009"))
                .depends_on_mapped("daily", PartitionMapping::time_window()),
        )
        .build()?;
    let registry: &Registry = fs.registry();
    let months: Vec<_> = fs
        .plan_backfill(&Backfill::assets("monthly"))?
        .partitions_of("monthly")
        .cloned()
        .collect();
    let days: Vec<_> = fs
        .plan_backfill(&Backfill::assets("daily"))?
        .partitions_of("daily")
        .cloned()
        .collect();
    let monthly = registry.get("monthly")?;
    let month_ns = per_call(batches, 12_000, |i| {
        registry
            .upstream_partitions(monthly, "daily", &months[i % months.len()])
            .map_or(0, |m| m.partitions.len())
    });
    let years: Vec<_> = (2000..2010)
        .map(|y| Partition::ymd(y, 1, 1))
        .collect::<Result<_, _>>()?;
    let yearly = days_fs.registry().get("yearly")?;
    let year_ns = per_call(batches, 1_000, |i| {
        days_fs
            .registry()
            .upstream_partitions(yearly, "daily", &years[i % years.len()])
            .map_or(0, |m| m.partitions.len())
    });
    let mut all_days_ms = Vec::with_capacity(batches);
    for _ in 0..batches {
        let started = Instant::now();
        let mut hits = 0;
        for day in &days {
            hits += registry
                .downstream_partitions(monthly, "daily", day)
                .map_or(0, |d| d.len());
        }
        anyhow::ensure!(hits == days.len(), "every day maps to one month");
        all_days_ms.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    emit(
        "mapping_resolution",
        json!({
            "month_over_days_median_ns": month_ns.round(),
            "year_over_365_days_median_ns": year_ns.round(),
            "ten_years_of_days_to_months_median_ms": (median(&mut all_days_ms) * 1000.0).round() / 1000.0,
            "days": days.len(),
            "batches": batches,
            "target_ns": 2000,
            "target_ms": 5,
        }),
    );
    Ok(())
}

/// `backfill_planning`: planning a backfill of the daily -> monthly -> yearly chain over ten
/// years of days; median ms over `runs` plans.
pub fn backfill_planning(runs: usize) -> anyhow::Result<()> {
    let fs = calendar(10)?;
    let from = chrono_date(2000, 1, 1)?;
    let to = chrono_date(2009, 12, 31)?;
    let mut ms = Vec::with_capacity(runs);
    let mut nodes = 0;
    for _ in 0..runs {
        let started = Instant::now();
        let plan = fs.plan_backfill(&Backfill::range(from, to).select("daily+"))?;
        ms.push(started.elapsed().as_secs_f64() * 1000.0);
        nodes = plan.len();
    }
    emit(
        "backfill_planning",
        json!({
            "assets": 3,
            "partitions": nodes,
            "runs": runs,
            "median_ms": (median(&mut ms) * 1000.0).round() / 1000.0,
            "target_ms": 50,
        }),
    );
    Ok(())
}

fn chrono_date(y: i32, m: u32, d: u32) -> anyhow::Result<NaiveDate> {
    NaiveDate::from_ymd_opt(y, m, d).ok_or_else(|| anyhow::anyhow!("{y}-{m}-{d} is no date"))
}

/// raw (daily) -> clean (daily) -> monthly over `days` days from 2000-01-01: the chain of the
/// multi-asset backfill figures.
fn chain(days: i64) -> anyhow::Result<flowstone::api::Builder> {
    let first = chrono_date(2000, 1, 1)?;
    let last = first + chrono::Days::new(days as u64 - 1);
    // The last month the days cover whole (a month reads all its days).
    let next = last + chrono::Days::new(1);
    let last_month = if next.format("%d").to_string() == "01" {
        last.format("%Y-%m").to_string()
    } else {
        (last - chrono::Days::new(u64::from(next.format("%d").to_string().parse::<u32>()?)))
            .format("%Y-%m")
            .to_string()
    };
    Ok(FlowStone::builder()
        .asset(noop("raw").partitioned_by(Daily::from(first).to(last)))
        .asset(
            Asset::new("clean")
                .partitioned_by(Daily::from(first).to(last))
                .depends_on(["raw"])
                .execute(|ctx| async move {
                    let raw: u64 = ctx.dep("raw")?;
                    Ok::<u64, flowstone::Error>(raw + 1)
                }),
        )
        .asset(
            Asset::new("monthly")
                .partitioned_by(Monthly::from("2000-01").to(last_month))
                .depends_on_mapped("clean", PartitionMapping::time_window())
                .execute(|ctx| async move {
                    let days = ctx.deps::<u64>("clean")?;
                    Ok::<u64, flowstone::Error>(days.iter().map(|(_, v)| v).sum())
                }),
        ))
}

/// `multi_asset_backfill_inprocess`: the raw -> clean -> monthly chain over `days` days on the
/// TaskAsync executor with memory storage; partitions (of all three assets) per second, median
/// of `runs`.
pub async fn multi_asset_inprocess(days: i64, runs: usize) -> anyhow::Result<()> {
    let mut rates = Vec::with_capacity(runs);
    let mut total = 0;
    for _ in 0..runs {
        let fs = chain(days)?
            .executor(TaskAsyncExecutor::new().max_concurrency(8))
            .build()?;
        let started = Instant::now();
        let report = fs
            .run_backfill(
                Backfill::assets("raw+")
                    .executor(Strategy::Async)
                    .max_concurrency(8),
            )
            .await?;
        let secs = started.elapsed().as_secs_f64();
        anyhow::ensure!(
            report.succeeded == report.total,
            "{} of {} partitions succeeded",
            report.succeeded,
            report.total
        );
        total = report.total;
        rates.push(report.total as f64 / secs);
    }
    emit(
        "multi_asset_backfill_inprocess",
        json!({
            "days": days,
            "partitions": total,
            "max_concurrency": 8,
            "runs": runs,
            "median_partitions_per_second": median(&mut rates).round(),
            "target_per_second": 100_000,
        }),
    );
    Ok(())
}

/// `multi_asset_queue_backfill`: the raw -> clean -> monthly chain over `days` days through
/// the queue, drained by one worker in this process, on SQLite and PostgreSQL; partitions per
/// second, first insert to last ack.
pub async fn multi_asset_queue(days: i64) -> anyhow::Result<()> {
    let mut dbs = vec![TestDb::sqlite().await];
    if let Some(pg) = TestDb::postgres().await {
        dbs.push(pg);
    }
    for test in dbs {
        let concurrency = crate::queue_executor::worker_concurrency(test.engine());
        let engine = crate::queue_executor::engine_name(test.engine());
        let fs = chain(days)?.database(test.url()).connect().await?;
        let worker = crate::queue_executor::bench_worker(&fs, concurrency).await?;
        let started = Instant::now();
        let report = fs
            .run_backfill(Backfill::assets("raw+").executor(Strategy::Queue))
            .await?;
        let secs = started.elapsed().as_secs_f64();
        worker.shutdown(Duration::from_secs(10)).await;
        anyhow::ensure!(
            report.succeeded == report.total,
            "{engine}: {} of {} partitions succeeded ({} failed)",
            report.succeeded,
            report.total,
            report.failed
        );
        emit(
            "multi_asset_queue_backfill",
            json!({
                "engine": engine,
                "days": days,
                "partitions": report.total,
                "worker_concurrency": concurrency,
                "seconds": (secs * 1000.0).round() / 1000.0,
                "partitions_per_second": (report.total as f64 / secs).round(),
                "target_per_second": if engine == "sqlite" { 8_000 } else { 5_000 },
            }),
        );
        drop(fs);
        test.cleanup().await;
    }
    Ok(())
}

/// Every graph figure at full size.
pub async fn run_all() -> anyhow::Result<()> {
    mapping_resolution(15)?;
    backfill_planning(7)?;
    multi_asset_inprocess(10_000, 3).await?;
    multi_asset_queue(10_000).await
}
