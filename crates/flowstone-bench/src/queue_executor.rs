//! Queue executor benchmark: a backfill through the durable queue, end to end.

use std::time::{Duration, Instant};

use flowstone::{Asset, Backfill, CustomPartitions, FlowStone, Partition, Run, Strategy};
use flowstone_queue::testing::TestDb;
use flowstone_queue::{Engine, WorkerSettings};
use serde_json::json;

use crate::report::emit;

/// Jobs one worker runs at once, per engine (`FLOWSTONE_BENCH_CONCURRENCY` overrides both).
/// Each job waits for a commit it shares with the other jobs in flight (the group-commit
/// writer), so throughput grows with the jobs in flight until the database is busy; past
/// that, PostgreSQL's claims slow down (BENCHMARKS.md has the sweep).
pub fn worker_concurrency(engine: Engine) -> usize {
    let chosen = std::env::var("FLOWSTONE_BENCH_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0);
    chosen.unwrap_or(match engine {
        Engine::Sqlite => 512,
        Engine::Postgres => 256,
    })
}

/// `sqlite` or `postgres`, as the figures name engines.
pub fn engine_name(engine: Engine) -> &'static str {
    match engine {
        Engine::Sqlite => "sqlite",
        Engine::Postgres => "postgres",
    }
}

/// The worker every queue backfill figure drains with: queue `assets`, `concurrency` slots,
/// polling every 100 ms as a fallback to notifications.
pub async fn bench_worker(
    fs: &FlowStone,
    concurrency: usize,
) -> anyhow::Result<flowstone_queue::WorkerHandle> {
    Ok(fs
        .worker()
        .queue("assets", concurrency)
        .settings(WorkerSettings {
            poll_interval: Duration::from_millis(100),
            ..WorkerSettings::default()
        })
        .start()
        .await?)
}

/// `queue_backfill_10k`: backfill `partitions` partitions of a trivial asset (which reads one
/// unpartitioned dependency, so every partition writes its materialization record, its lineage
/// and its output) through the Queue executor, drained by one worker (queue concurrency
/// [`worker_concurrency`]) in this process, on SQLite and on PostgreSQL: partitions per
/// second, insert to last ack.
pub async fn queue_backfill(partitions: i64) -> anyhow::Result<()> {
    let mut dbs = vec![TestDb::sqlite().await];
    if let Some(pg) = TestDb::postgres().await {
        dbs.push(pg);
    }
    for test in dbs {
        let concurrency = worker_concurrency(test.engine());
        let engine = engine_name(test.engine());
        let fs = FlowStone::builder()
            .asset(Asset::new("base").execute(|_ctx| async { Ok::<u64, flowstone::Error>(7) }))
            .asset(
                Asset::new("n")
                    .depends_on(["base"])
                    .partitioned_by(CustomPartitions::new(move || {
                        Ok((0..partitions).map(Partition::Int).collect())
                    }))
                    .execute(|ctx| async move {
                        let base: u64 = ctx.dep("base")?;
                        Ok::<u64, flowstone::Error>(base + ctx.partition().int()? as u64)
                    }),
            )
            .database(test.url())
            .connect()
            .await?;
        fs.materialize("base", Run::unpartitioned().executor(Strategy::Sync))
            .await?;
        let worker = bench_worker(&fs, concurrency).await?;
        let started = Instant::now();
        let report = fs
            .backfill("n", Backfill::all().executor(Strategy::Queue))
            .await?;
        let secs = started.elapsed().as_secs_f64();
        worker.shutdown(Duration::from_secs(10)).await;
        anyhow::ensure!(
            report.succeeded == partitions as usize,
            "{engine}: {} of {partitions} partitions succeeded ({} failed)",
            report.succeeded,
            report.failed
        );
        emit(
            "queue_backfill_10k",
            json!({
                "engine": engine,
                "partitions": partitions,
                "worker_concurrency": concurrency,
                "seconds": (secs * 1000.0).round() / 1000.0,
                "partitions_per_second": (partitions as f64 / secs).round(),
                "target_per_second": if engine == "sqlite" { 10_000 } else { 5_000 },
            }),
        );
        drop(fs);
        test.cleanup().await;
    }
    Ok(())
}
