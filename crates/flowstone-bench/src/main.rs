//! `flowstone-bench [core|queue|queue-executor|graph|ui|all]`: prints one JSON line per figure.
//!
//! Run in release mode: `cargo run --release -p flowstone-bench -- all`.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let which = std::env::args().nth(1).unwrap_or_else(|| "all".into());
    let result = match which.as_str() {
        "core" => flowstone_bench::core::run_all().await,
        "queue" => flowstone_bench::queue::run_all().await,
        "queue-executor" => flowstone_bench::queue_executor::queue_backfill(10_000).await,
        "graph" => flowstone_bench::graph::run_all().await,
        "ui" => flowstone_bench::ui::run_all().await,
        "graph-inprocess" => flowstone_bench::graph::multi_asset_inprocess(10_000, 3).await,
        "all" => match flowstone_bench::core::run_all().await {
            Ok(()) => match flowstone_bench::queue::run_all().await {
                Ok(()) => match flowstone_bench::queue_executor::queue_backfill(10_000).await {
                    Ok(()) => flowstone_bench::graph::run_all().await,
                    err => err,
                },
                err => err,
            },
            err => err,
        },
        other => {
            eprintln!(
                "unknown benchmark group '{other}': use core, queue, queue-executor, graph, ui or all"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("benchmark failed: {err:#}");
            ExitCode::FAILURE
        }
    }
}
