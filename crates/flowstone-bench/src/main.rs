//! `flowstone-bench [core|queue|queue-executor|graph|graph-inprocess|automation|ui|all]`:
//! prints one JSON line per figure. `all` runs every group but `graph-inprocess` (a part of
//! `graph`) and `ui` (which needs headless Chromium).
//!
//! Run in release mode: `cargo run --release -p flowstone-bench -- all`.

use std::process::ExitCode;

/// The groups `all` runs, in order.
const ALL: &[&str] = &["core", "queue", "queue-executor", "graph", "automation"];

/// Runs one group; `None` for a name that is not one.
async fn run_group(which: &str) -> Option<anyhow::Result<()>> {
    Some(match which {
        "core" => flowstone_bench::core::run_all().await,
        "queue" => flowstone_bench::queue::run_all().await,
        "queue-executor" => flowstone_bench::queue_executor::queue_backfill(10_000).await,
        "graph" => flowstone_bench::graph::run_all().await,
        "graph-inprocess" => flowstone_bench::graph::multi_asset_inprocess(10_000, 3).await,
        "automation" => flowstone_bench::automation::run_all().await,
        "ui" => flowstone_bench::ui::run_all().await,
        _ => return None,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let which = std::env::args().nth(1).unwrap_or_else(|| "all".into());
    let groups: Vec<&str> = if which == "all" {
        ALL.to_vec()
    } else {
        vec![which.as_str()]
    };
    for group in groups {
        match run_group(group).await {
            None => {
                eprintln!(
                    "unknown benchmark group '{group}': use core, queue, queue-executor, graph, \
                     graph-inprocess, automation, ui or all"
                );
                return ExitCode::from(2);
            }
            Some(Err(err)) => {
                eprintln!("benchmark {group} failed: {err:#}");
                return ExitCode::FAILURE;
            }
            Some(Ok(())) => {}
        }
    }
    ExitCode::SUCCESS
}
