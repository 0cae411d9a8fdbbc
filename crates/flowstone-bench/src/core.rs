//! Core benchmarks: the cost of one in-process materialization through the hook stack, and a
//! large backfill on local tasks.

use std::time::Instant;

use flowstone::hook::stacks;
use flowstone::{Asset, Backfill, FlowStone, Partition, Run, Strategy, TaskAsyncExecutor};
use serde_json::json;

use crate::report::{emit, median, peak_rss_bytes};

fn trivial_asset(name: &str) -> Asset {
    Asset::new(name).execute(|_ctx| async move { Ok::<u64, flowstone::Error>(42) })
}

/// `sync_materialize`: one trivial asset (returns a `u64`) through the Sync executor, with memory
/// IO and memory store; median ns per materialization over `batches` batches of `per_batch`, for
/// the full default hook stack and for the core-only stack.
pub async fn sync_materialize(batches: usize, per_batch: usize) -> anyhow::Result<()> {
    let mut figures = Vec::new();
    for (stack_name, stack) in [
        ("default", stacks::DEFAULT),
        ("core_only", stacks::CORE_ONLY),
    ] {
        let fs = FlowStone::builder().asset(trivial_asset("n")).build()?;
        let run = || {
            let run = Run::unpartitioned().executor(Strategy::Sync);
            if stack_name == "default" {
                run
            } else {
                run.hooks(stack.iter().copied())
            }
        };
        // Warm up allocators and caches.
        for _ in 0..per_batch {
            fs.materialize("n", run()).await?;
        }
        let mut per_op = Vec::with_capacity(batches);
        for _ in 0..batches {
            let started = Instant::now();
            for _ in 0..per_batch {
                let out = fs.materialize("n", run()).await?;
                std::hint::black_box(out);
            }
            per_op.push(started.elapsed().as_nanos() as f64 / per_batch as f64);
        }
        let med = median(&mut per_op);
        figures.push(med);
        emit(
            "sync_materialize",
            json!({
                "stack": stack_name,
                "median_ns_per_materialization": med.round(),
                "batches": batches,
                "per_batch": per_batch,
                "target_ns": 5000,
            }),
        );
    }
    if let [full, core] = figures[..] {
        emit(
            "sync_materialize_hook_overhead",
            json!({ "default_over_core_only": (full / core * 100.0).round() / 100.0,
                    "hook_cost_ns": (full - core).round() }),
        );
    }
    Ok(())
}

/// `async_backfill_100k`: backfill `partitions` partitions of a trivial asset on the TaskAsync
/// executor with `max_concurrency = 8`; median total seconds over `runs` runs and peak RSS.
pub async fn async_backfill(partitions: i64, runs: usize) -> anyhow::Result<()> {
    let mut seconds = Vec::with_capacity(runs);
    for _ in 0..runs {
        let fs = FlowStone::builder()
            .asset(
                trivial_asset("n").partitioned_by(flowstone::CustomPartitions::new(move || {
                    Ok((0..partitions).map(Partition::Int).collect())
                })),
            )
            .executor(TaskAsyncExecutor::new().max_concurrency(8))
            .build()?;
        let started = Instant::now();
        let report = fs
            .backfill(
                "n",
                Backfill::all().executor(Strategy::Async).max_concurrency(8),
            )
            .await?;
        seconds.push(started.elapsed().as_secs_f64());
        anyhow::ensure!(
            report.succeeded == partitions as usize,
            "backfill did not succeed everywhere: {} of {partitions}",
            report.succeeded
        );
    }
    emit(
        "async_backfill_100k",
        json!({
            "partitions": partitions,
            "max_concurrency": 8,
            "runs": runs,
            "median_seconds": (median(&mut seconds) * 1000.0).round() / 1000.0,
            "peak_rss_mb": peak_rss_bytes().map(|b| (b as f64 / 1_048_576.0).round()),
            "target_seconds": 1.0,
            "target_rss_mb": 300,
        }),
    );
    Ok(())
}

/// Every core figure at full size.
pub async fn run_all() -> anyhow::Result<()> {
    // The backfill first, so the peak RSS it reports is its own.
    async_backfill(100_000, 3).await?;
    sync_materialize(50, 4_000).await
}
