//! `cargo bench -p flowstone-bench`: the same figures as the bench binary, at reduced sizes so a
//! `cargo bench` run stays short. Set `FLOWSTONE_BENCH_FULL=1` for the full sizes.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::var_os("FLOWSTONE_BENCH_FULL").is_some() {
        flowstone_bench::core::run_all().await?;
        return flowstone_bench::queue::run_all().await;
    }
    flowstone_bench::core::async_backfill(20_000, 3).await?;
    flowstone_bench::graph::mapping_resolution(5)?;
    flowstone_bench::graph::backfill_planning(3)?;
    flowstone_bench::graph::multi_asset_inprocess(2_000, 3).await?;
    flowstone_bench::core::sync_materialize(20, 2_000).await
}
